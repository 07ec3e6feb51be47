"""Engine (pure): windows batched across nurseries, states, episode events; discovery payloads."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from nurserycry.hub import discovery
from nurserycry.hub.counters import Counters
from nurserycry.hub.engine import Engine, Outputs
from nurserycry.hub.ingest import Accepted
from nurserycry.shared.detector import DetectorConfig
from nurserycry.shared.episodes import EpisodeConfig
from nurserycry.shared.errors import TopicError
from nurserycry.shared.schemas import NurseryState
from nurserycry.shared.topics import Topics

from tests.test_hub_support import T0, FakeModel, features, metadata


def accepted(device: str, seq: int, crying: bool) -> Accepted:
    msg = features(device, seq, crying=crying)
    return Accepted(device, msg, msg.mel.to_numpy(), msg.level.to_numpy())


def run(engine: Engine, plan: dict[str, list[bool]]) -> list[Outputs]:
    """Feed each nursery's messages (crying or not) one batch per message index."""
    outs = []
    for seq in range(max(len(v) for v in plan.values())):
        batch = [accepted(d, seq, c[seq]) for d, c in plan.items() if seq < len(c)]
        outs.append(engine.process(batch))
    return outs


def make(
    config: DetectorConfig | None = None,
    crying_seconds: Callable[[str, float, float], float] | None = None,
) -> tuple[Engine, FakeModel]:
    model = FakeModel()
    cfg = config or DetectorConfig(
        episodes=EpisodeConfig(release_s=2.0, cooldown_s=10.0, min_episode_s=1.0)
    )
    engine = Engine(
        model, lambda _n: cfg, Counters(), state_interval_s=5.0, crying_seconds=crying_seconds
    )
    return engine, model


def test_windows_from_several_nurseries_share_one_model_call() -> None:
    engine, model = make()
    outs = run(engine, {"a": [False] * 4, "b": [True] * 4, "c": [False] * 4})
    # 25 frames per message, 50-frame windows every 25: one window per nursery per message
    # from the second message on, all scored together
    assert model.calls == [3, 3, 3]
    windows = [w for o in outs for w in o.windows]
    assert len(windows) == 9
    assert engine.counters.get("windows") == 9
    by = {w.nursery: w for w in windows}
    assert by["b"].label == "crying"
    assert by["a"].label == "quiet"
    assert by["a"].level_dbfs < -90
    assert abs(by["b"].probability - 0.95) < 1e-6


def test_episode_started_and_ended_with_duration_and_peak() -> None:
    engine, _ = make()
    plan = [False] * 2 + [True] * 10 + [False] * 10
    outs = run(engine, {"n1": plan})
    events = [e.event for o in outs for e in o.events]
    assert [e.event for e in events] == ["started", "ended"]
    started, ended = events
    assert started.episode_id == ended.episode_id
    assert started.alert
    assert ended.ended_at is not None
    assert 4.0 <= ended.duration_s <= 6.5
    assert abs(ended.peak_probability - 0.95) < 1e-6
    assert engine.counters.get("episodes") == 1
    states = [s for o in outs for s in o.states.values()]
    assert any(s.crying and s.state == "crying" for s in states)
    final = engine.state("n1")
    assert final is not None
    assert not final.crying
    assert final.last_episode_s == ended.duration_s
    assert abs(final.crying_minutes_today - ended.duration_s / 60) < 0.01


def test_crying_minutes_today_start_from_the_history() -> None:
    asked: list[tuple[str, float, float]] = []

    def recorded(nursery: str, since: float, until: float) -> float:
        asked.append((nursery, since, until))
        return 120.0

    engine, _ = make(crying_seconds=recorded)
    run(engine, {"n1": [False] * 3})
    state = engine.state("n1")
    assert state is not None
    assert state.crying_minutes_today == 2.0
    assert len(asked) == 1
    assert asked[0][0] == "n1"
    assert asked[0][2] - asked[0][1] < 86400


def states_per_window(engine: Engine, plan: list[bool]) -> list[NurseryState]:
    """The nursery's state after every message (emitted or not)."""
    out = []
    for seq, crying in enumerate(plan):
        engine.process([accepted("n1", seq, crying)])
        state = engine.state("n1")
        if state is not None:
            out.append(state)
    return out


def test_crying_minutes_today_never_decrease_through_an_episode() -> None:
    engine, _ = make()  # release 2 s: the last 2 s of "alive" are not crying
    states = states_per_window(engine, [False] * 2 + [True] * 10 + [False] * 10)
    minutes = [s.crying_minutes_today for s in states]
    assert minutes == sorted(minutes), minutes  # the release tail is never counted
    ended = engine.state("n1")
    assert ended is not None and ended.last_episode_s is not None
    assert minutes[-1] == round(ended.last_episode_s / 60, 3) > 0


def test_state_is_crying_only_while_an_episode_is_open() -> None:
    engine, _ = make()
    states = states_per_window(engine, [False] * 2 + [True] * 10 + [False] * 10)
    assert all((s.state == "crying") == s.crying for s in states)
    first_hot = next(s for s in states if s.cry_probability > 0.9)
    assert not first_hot.crying and first_hot.state == "other"  # onset needs 2 of 3
    assert any(s.crying for s in states)


class Scripted(FakeModel):
    """Returns the given probabilities, one per window, in order."""

    def __init__(self, probabilities: list[float]) -> None:
        super().__init__()
        self.left = list(probabilities)

    def predict(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
        out, self.left = self.left[: len(mel_codes)], self.left[len(mel_codes) :]
        return np.asarray(out, np.float32)


def emitted_times(engine: Engine, messages: int) -> list[tuple[float, float]]:
    """(capture time, probability) of each state handed out, loud constant level."""
    got = []
    for seq in range(messages):
        out = engine.process([accepted("n1", seq, True)])
        got += [(s.t - T0, s.cry_probability) for s in out.states.values()]
    return got


def test_state_follows_probability_changes_beyond_a_deadband_within_a_second() -> None:
    # windows end every 0.5 s from 1.0 s; none is hot, so no episode opens
    script = [0.10] * 10 + [0.13] * 10 + [0.30] * 10 + [0.31] * 250
    engine = Engine(Scripted(script), lambda _n: DetectorConfig(), Counters())
    got = emitted_times(engine, 1 + len(script))
    times = [t for t, _ in got]
    assert times[0] == 1.0  # the first
    assert [p for _, p in got[:2]] == pytest.approx([0.10, 0.30])  # 0.13 is within 0.05
    assert times[1] == 11.0  # the 0.30 window, at once (more than 1 s after the last)
    # then nothing changes: one a minute (state_interval_s), not every window or 5 s
    assert times[2:] == [71.0, 131.0]


def test_state_at_most_once_a_second_while_crying() -> None:
    engine = Engine(Scripted([0.95] * 40), lambda _n: DetectorConfig(), Counters())
    got = emitted_times(engine, 41)
    crying = [t for t, p in got if p > 0.9]
    gaps = [b - a for a, b in itertools.pairwise(crying)]
    assert gaps and all(g >= 1.0 for g in gaps[1:])  # the onset itself may come sooner
    assert max(gaps) <= 1.0  # and the crying minutes move every second


def test_state_emitted_on_change_and_periodically_only() -> None:
    engine, _ = make()
    outs = run(engine, {"n1": [False] * 30})
    emitted = [o.states["n1"] for o in outs if "n1" in o.states]
    # 29 windows over ~14.5 s of capture time, state_interval 5 s: first + every 5 s
    assert 3 <= len(emitted) <= 4
    assert all(s.state == "quiet" for s in emitted)


def test_gap_closes_an_open_episode() -> None:
    engine, _ = make()
    run(engine, {"n1": [True] * 8})
    assert engine.crying("n1")
    msg = features("n1", 20, crying=True)  # frames 500.. after 200: a gap
    out = engine.process([Accepted("n1", msg, msg.mel.to_numpy(), msg.level.to_numpy())])
    assert [e.event.event for e in out.events] == ["ended"]


def test_edge_going_offline_ends_an_open_episode() -> None:
    engine, _ = make()
    run(engine, {"n1": [True] * 8})
    assert engine.crying("n1")
    out = engine.close("n1")
    assert [e.event.event for e in out.events] == ["ended"]
    assert not out.states["n1"].crying
    assert out.states["n1"].last_episode_s == out.events[0].event.duration_s
    assert not engine.crying("n1")
    assert engine.close("n1").events == []  # nothing open any more
    assert engine.close("unknown").events == []


def test_model_swap_keeps_nurseries() -> None:
    engine, _ = make()
    run(engine, {"n1": [False] * 3})
    engine.model = FakeModel("fake-2")
    out = run(engine, {"n1": [False] * 2})
    assert {w.model for o in out for w in o.windows} <= {"fake-2"}
    assert engine.nurseries == ["n1"]


def test_a_model_with_other_windows_keeps_an_open_episode() -> None:
    """Swapping to a model with 2 s windows mid-bout neither ends the episode nor
    opens a second one (no second alert for the same crying)."""
    engine, _ = make()
    events = [e.event for o in run(engine, {"n1": [True] * 8}) for e in o.events]
    assert [e.event for e in events] == ["started"]
    wide = FakeModel("fake-wide")
    wide.metadata = metadata("fake-wide", window=100, hop=25)
    engine.model = wide
    for seq in range(8, 30):
        out = engine.process([accepted("n1", seq, seq < 16)])
        events += [e.event for e in out.events]
        assert all(w.model == "fake-wide" for w in out.windows)
    assert [e.event for e in events] == ["started", "ended"]
    assert events[0].episode_id == events[1].episode_id
    assert events[1].duration_s >= 7.0  # the 8 s of crying before and after the swap


def test_discovery_payloads_follow_home_assistant_conventions() -> None:
    topics = Topics()
    msgs = dict(discovery.messages(topics, "nursery-1", "9.9"))
    assert set(msgs) == {
        "homeassistant/binary_sensor/nurserycry_nursery-1/crying/config",
        "homeassistant/binary_sensor/nurserycry_nursery-1/microphone/config",
        "homeassistant/sensor/nurserycry_nursery-1/state/config",
        "homeassistant/sensor/nurserycry_nursery-1/cry_probability/config",
        "homeassistant/sensor/nurserycry_nursery-1/sound_level/config",
        "homeassistant/sensor/nurserycry_nursery-1/last_episode/config",
        "homeassistant/sensor/nurserycry_nursery-1/crying_today/config",
    }
    configs = {t.split("/")[-2]: json.loads(p) for t, p in msgs.items()}
    crying = configs["crying"]
    assert crying["device_class"] == "sound"
    assert crying["state_topic"] == "nurserycry/nursery-1/state"
    assert crying["unique_id"] == "nurserycry_nursery-1_crying"
    assert crying["default_entity_id"] == "binary_sensor.nurserycry_nursery_1_crying"
    assert crying["object_id"] == "nurserycry_nursery_1_crying"  # HA before 2025.10
    for c in configs.values():
        assert c["default_entity_id"].split(".", 1)[1] == c["object_id"]
    # one stable attribute on the binary sensor, none elsewhere (no recorder row per message)
    assert "episode_started_at" in crying["json_attributes_template"]
    assert "json_attributes_topic" not in configs["state"]
    assert crying["availability_mode"] == "all"
    assert [a["topic"] for a in crying["availability"]] == [
        "nurserycry/hub/availability",
        "nurserycry/nursery-1/availability",
    ]
    assert crying["device"]["identifiers"] == ["nurserycry_nursery-1"]
    assert crying["device"]["via_device"] == discovery.HUB_DEVICE_ID
    assert crying["device"]["sw_version"] == "9.9"
    assert crying["origin"]["name"] == "NurseryCry"
    assert configs["sound_level"]["unit_of_measurement"] == "dBFS"
    assert "device_class" not in configs["sound_level"]
    assert configs["cry_probability"]["unit_of_measurement"] == "%"
    assert configs["last_episode"]["device_class"] == "duration"
    assert configs["crying_today"]["state_class"] == "total_increasing"
    mic = configs["microphone"]  # a problem sensor, on while only digital zeros arrive
    assert (mic["device_class"], mic["entity_category"]) == ("problem", "diagnostic")
    assert "value_json.microphone == 'silent'" in mic["value_template"]
    assert len({c["unique_id"] for c in configs.values()}) == 7
    # every entity shares one device per nursery
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1


def test_hub_device_discovery_reads_hub_status() -> None:
    msgs = dict(discovery.hub_messages(Topics(), "9.9"))
    assert set(msgs) == {
        f"homeassistant/sensor/nurserycry_hub/{key}/config" for key in discovery.HUB_ENTITIES
    }
    configs = [json.loads(p) for p in msgs.values()]
    for c in configs:
        assert c["state_topic"] == "nurserycry/hub/status"
        assert c["availability_topic"] == "nurserycry/hub/availability"
        assert c["device"]["identifiers"] == [discovery.HUB_DEVICE_ID]
        assert c["default_entity_id"] == "sensor." + c["object_id"]
        assert c["object_id"].startswith("nurserycry_hub_")
    assert len({c["unique_id"] for c in configs}) == len(configs)


def test_a_sharded_hub_names_itself_in_its_topics_device_and_nurseries() -> None:
    topics = Topics(hub_id="hub-2")
    assert topics.hub("availability") == "nurserycry/hub/hub-2/availability"
    assert topics.hub("status") == "nurserycry/hub/hub-2/status"
    assert topics.hub("command") == "nurserycry/hub/command"  # every hub obeys
    assert topics.parse("nurserycry/hub/hub-2/status") is None
    hub = {t: json.loads(p) for t, p in discovery.hub_messages(topics, "9.9")}
    assert set(hub) == {
        f"homeassistant/sensor/nurserycry_hub_hub_2/{key}/config" for key in discovery.HUB_ENTITIES
    }
    for c in hub.values():
        assert c["availability_topic"] == "nurserycry/hub/hub-2/availability"
        assert c["state_topic"] == "nurserycry/hub/hub-2/status"
        assert c["device"] == {**c["device"], "identifiers": ["nurserycry_hub_hub_2"]}
        assert c["device"]["name"] == "NurseryCry hub hub-2"
        assert c["unique_id"].startswith("nurserycry_hub_hub_2_")
    crying = json.loads(
        dict(discovery.messages(topics, "n1"))[topics.discovery("binary_sensor", "n1", "crying")]
    )
    assert [a["topic"] for a in crying["availability"]] == [
        "nurserycry/hub/hub-2/availability",
        "nurserycry/n1/availability",
    ]
    assert crying["device"]["via_device"] == "nurserycry_hub_hub_2"
    with pytest.raises(TopicError, match="invalid hub id"):
        Topics(hub_id="a/b")


def test_an_edge_clock_set_back_a_day_does_not_reset_crying_minutes() -> None:
    engine, _ = make()
    states_per_window(engine, [False] * 2 + [True] * 10 + [False] * 10)
    before = engine.state("n1")
    assert before is not None and before.crying_minutes_today > 0
    for seq in range(3):  # the edge restarted with its clock a day behind
        msg = features("n1", seq, stream="0badc10c", t0=T0 - 86_400)
        engine.process([Accepted("n1", msg, msg.mel.to_numpy(), msg.level.to_numpy())])
    after = engine.state("n1")
    assert after is not None and after.t < before.t
    assert after.crying_minutes_today == before.crying_minutes_today


def test_state_follows_sound_level_changes_beyond_a_deadband() -> None:
    engine = Engine(Scripted([0.1] * 60), lambda _n: DetectorConfig(), Counters())
    got = []
    # level codes: 2 codes = 1 dB; 0 -> -50 dBFS, 4 -> -48 (2 dB), 16 -> -42 (8 dB)
    for seq, code in enumerate([0] * 10 + [4] * 10 + [16] * 10):
        msg = features("n1", seq, crying=True)
        level = np.full(len(msg.level.to_numpy()), code, np.int8)
        out = engine.process([Accepted("n1", msg, msg.mel.to_numpy(), level)])
        got += [(s.t - T0, round(s.level_dbfs)) for s in out.states.values()]
    assert got[0] == (1.0, -50)
    # 2 dB is within the 3 dB deadband; the window half at -48, half at -42 is not
    assert [level for _, level in got] == [-50, -44]
    assert got[1][0] == 10.5  # at once: the first window that reaches a -42 dB frame


def _shifted(seq: int, crying: bool, frames: int = 0, seconds: float = 0.0) -> Accepted:
    msg = features("n1", seq, crying=crying)
    msg = msg.model_copy(update={"frame_index": msg.frame_index + frames, "t0": msg.t0 + seconds})
    return Accepted("n1", msg, msg.mel.to_numpy(), msg.level.to_numpy())


def _episodes(out: Outputs) -> list[tuple[str, float]]:
    return [(e.event.event, round(e.event.duration_s, 1)) for e in out.events]


def test_a_gap_inside_one_batch_separates_two_episodes() -> None:
    """#14.5: 4 s crying, 10 minutes lost, 4 s crying, all in one burst (a backlog)."""
    engine, _ = make()
    burst = [_shifted(s, True) for s in range(8)]
    burst += [_shifted(s, True, frames=30_000, seconds=600.0) for s in range(8, 16)]
    burst += [_shifted(s, False, frames=30_000, seconds=600.0) for s in range(16, 24)]
    out = engine.process(burst)
    starts = [e.event for e in out.events if e.event.event == "started"]
    ends = [e.event for e in out.events if e.event.event == "ended"]
    assert len(starts) == 2 and len(ends) == 2, _episodes(out)
    assert all(e.duration_s < 10 for e in ends)  # not one 603 s episode
    assert ends[0].ended_at is not None and ends[0].ended_at < starts[1].started_at


def test_a_hole_in_capture_time_ends_an_episode_even_with_contiguous_frames() -> None:
    """A clock step or a hub restart: frames numbered on, but 10 minutes later."""
    engine, _ = make()
    batch = [_shifted(s, True) for s in range(8)]
    batch += [_shifted(s, True, seconds=600.0) for s in range(8, 16)]
    out = engine.process(batch)
    assert [k for k, _d in _episodes(out)] == ["started", "ended", "started"]


def test_time_going_back_does_not_freeze_the_retained_state() -> None:
    """#14.6: after one window dated far ahead, states must keep coming."""
    engine, _ = make()
    engine.process([_shifted(0, False, seconds=1e8), _shifted(1, False, seconds=1e8)])
    later = [engine.process([_shifted(s, False, frames=1000)]) for s in range(2, 30)]
    assert sum(1 for o in later if "n1" in o.states) >= 2


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.sent.append(topic)


def test_nurseries_that_would_share_home_assistant_entity_ids_are_not_both_announced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """#14.13: a-b and a_b both became binary_sensor.nurserycry_a_b_crying."""
    from nurserycry.hub.sinks.mqtt import MqttSink

    link = _Recorder()
    pub = MqttSink(link, Topics())
    with caplog.at_level(logging.ERROR):
        pub.announce("a_b")
        pub.announce("a-b")
        pub.announce("a-b")
        pub.announce_all()
    configs = [t for t in link.sent if t.endswith("/config") and "nurserycry_hub/" not in t]
    assert configs and all("a_b" in t for t in configs) and not any("a-b" in t for t in configs)
    assert len(configs) == 2 * len(discovery.ENTITIES)  # announced, then again on announce_all
    refused = [r for r in caplog.records if "NOT announcing nursery a-b" in r.getMessage()]
    assert len(refused) == 1


def test_episode_memory_survives_a_restart_and_a_bad_file_is_moved_aside(tmp_path: Path) -> None:
    from nurserycry.hub.episode_store import EpisodeStore

    engine, _ = make()
    run(engine, {"n1": [True] * 8})
    assert engine.crying("n1")
    store = EpisodeStore(tmp_path / "episodes.json")
    assert store.save(engine.memories())
    again, _ = make()
    again.recall(EpisodeStore(tmp_path / "episodes.json").load())
    assert again.open_recalled() == ["n1"]
    out = again.process([_shifted(s, True) for s in range(8, 12)])  # it goes on: no new start
    assert [e.event.event for e in out.events] == [] and again.crying("n1")
    (tmp_path / "episodes.json").write_text("{not json")
    assert EpisodeStore(tmp_path / "episodes.json").load() == {}
    assert (tmp_path / "episodes.json.unreadable").exists()


def test_a_whole_episode_inside_one_batch_still_shows_crying_then_not() -> None:
    """The retained state must pass through crying even when the onset and the end are
    scored in one batch (a backlog, a slow hub): Home Assistant would otherwise never
    see the binary sensor turn on."""
    engine, _ = make()
    batch = [_shifted(s, 4 <= s < 20) for s in range(36)]
    out = engine.process(batch)
    seen = [(s.state, s.crying) for s in [*out.transitions, *out.states.values()]]
    assert ("crying", True) in seen and seen[-1][1] is False


def test_episode_state_keeps_the_last_alerted_end_and_still_reads_version_1(
    tmp_path: Path,
) -> None:
    """The cooldown runs from the last ALERTED end: that is what episodes.json keeps (v2,
    ``last_alert_end``); a v1 file (``last_end``) written before still loads, as that."""
    from nurserycry.hub.episode_store import EpisodeStore
    from nurserycry.shared.episodes import EpisodeTracker

    cfg = EpisodeConfig(release_s=2.0, cooldown_s=60.0)

    def feed(tracker: EpisodeTracker, start: float, cry: tuple[float, float]) -> list[bool]:
        alerts = []
        for i in range(60):
            t = start + i * 0.5
            hot = cry[0] <= t < cry[1]
            alerts += [
                c.episode.alert for c in tracker.update(t, t + 1, 0.95 * hot) if c.kind == "ended"
            ]
        return alerts

    tracker = EpisodeTracker(cfg)
    assert feed(tracker, 0.0, (0.0, 3.0)) + feed(tracker, 30.0, (40.0, 43.0)) == [True, False]
    path = tmp_path / "episodes.json"
    assert EpisodeStore(path).save({"n1": tracker.memory()})
    body = json.loads(path.read_text())
    assert body["v"] == 2 and body["nurseries"]["n1"]["last_alert_end"] == 3.5  # not 43.5
    again = EpisodeTracker(cfg)
    again.recall(EpisodeStore(path).load()["n1"])
    assert again.memory() == tracker.memory()
    assert feed(again, 60.0, (64.0, 67.0)) == [True]  # 60.5 s after the alerted end

    path.write_text(
        json.dumps(
            {
                "v": 1,
                "nurseries": {
                    "n1": {
                        "open": {
                            "index": 4,
                            "start": 1.0,
                            "alert_at": 2.0,
                            "end": None,
                            "peak": 0.97,
                            "alert": True,
                        },
                        "last_alive": 5.0,
                        "last_end": -50.0,
                        "prev_end": 5.5,
                    }
                },
            }
        )
    )
    old = EpisodeStore(path).load()["n1"]
    assert old.last_alert_end == -50.0 and old.prev_end == 5.5 and old.open is not None
    assert old.open.index == 4 and old.open.alert
    path.write_text(json.dumps({"v": 3, "nurseries": {}}))
    assert EpisodeStore(path).load() == {}
    assert (tmp_path / "episodes.json.unreadable").exists()


def test_a_cry_after_a_tone_held_the_episode_open_is_published_as_an_alert() -> None:
    """The late alert reaches the hub's outputs: a tone the model scores 0.7 holds the
    first episode open for 80 s; the cry after it ends that episode and starts an alerting
    one (before, it was one 90 s episode with a single alert)."""
    script = [0.95] * 6 + [0.7] * 160 + [0.95] * 6 + [0.0] * 20
    engine = Engine(Scripted(script), lambda _n: DetectorConfig(), Counters())
    events = [
        e.event
        for seq in range(1 + len(script))
        for e in engine.process([accepted("n1", seq, True)]).events
    ]
    assert [(e.event, e.alert) for e in events] == [
        ("started", True),
        ("ended", True),
        ("started", True),
        ("ended", True),
    ]
    assert events[0].episode_id == events[1].episode_id != events[2].episode_id
    assert events[1].ended_at == events[2].started_at  # held by the tone until the cry
    assert events[2].started_at - events[0].started_at == pytest.approx(83.0)
