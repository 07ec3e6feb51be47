"""The shared episode rule and window assembly (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from nurserycry.shared.detector import DetectorConfig, NurseryDetector, WindowAssembler
from nurserycry.shared.episodes import EpisodeChange, EpisodeConfig, EpisodeTracker


def run(
    probs: list[float], cfg: EpisodeConfig | None = None, hop: float = 0.5
) -> list[EpisodeChange]:
    tracker = EpisodeTracker(cfg)
    out: list[EpisodeChange] = []
    for i, p in enumerate(probs):
        out += tracker.update(i * hop, i * hop + 1.0, p)
    return out + tracker.finish()


def test_single_hot_window_is_not_an_episode() -> None:
    assert run([0.1] * 5 + [0.99] + [0.1] * 20) == []


def test_onset_is_causal_n_of_m_and_ends_after_release() -> None:
    probs = [0.1] * 4 + [0.9, 0.2, 0.9, 0.9] + [0.5] * 3 + [0.1] * 30
    changes = run(probs)
    assert [c.kind for c in changes] == ["started", "ended"]
    started = changes[0].episode
    assert started.start == 2.0  # first hot window starts at 4 * 0.5
    assert started.alert_at == 4.0  # window 6 (starting 3.0) completes 2 of 3
    ended = changes[1].episode
    assert ended.end == 6.0  # last window >= off_threshold: index 10, ends 5.0 + 1.0
    assert ended.peak == pytest.approx(0.9)
    assert ended.duration == pytest.approx(4.0)


def test_hysteresis_holds_through_short_dips() -> None:
    cfg = EpisodeConfig(release_s=3.0)
    probs = [0.9] * 6 + [0.1] * 4 + [0.9] * 6 + [0.0] * 20  # 2 s dip < 3 s release
    assert [c.kind for c in run(probs, cfg)] == ["started", "ended"]
    probs = [0.9] * 6 + [0.1] * 12 + [0.9] * 6 + [0.0] * 20  # 6 s dip > release
    assert [c.kind for c in run(probs, cfg)] == ["started", "ended", "started", "ended"]


def test_cooldown_marks_second_alert() -> None:
    cfg = EpisodeConfig(release_s=1.0, cooldown_s=30.0)
    probs = [0.9] * 6 + [0.0] * 10 + [0.9] * 6 + [0.0] * 100 + [0.9] * 6 + [0.0] * 10
    starts = [c.episode for c in run(probs, cfg) if c.kind == "started"]
    assert [e.alert for e in starts] == [True, False, True]


def bursts(starts: list[float], cfg: EpisodeConfig, p: float = 0.95) -> list[EpisodeChange]:
    """A 3 s burst of windows at ``p`` at each start (seconds), quiet in between."""
    tracker = EpisodeTracker(cfg)
    out: list[EpisodeChange] = []
    hot = [(s, s + 3.0) for s in starts]
    for i in range(int((max(starts) + 20) / 0.5)):
        t = i * 0.5
        out += tracker.update(t, t + 1.0, p if any(a <= t < b for a, b in hot) else 0.0)
    return out + tracker.finish()


def test_a_non_alerting_episode_does_not_extend_the_cooldown() -> None:
    """A TV or a cat opening an episode every 50 s must not keep a cry quiet forever: the
    cooldown runs from the end of the last episode that ALERTED (it was chained before)."""
    cfg = EpisodeConfig(release_s=2.0, cooldown_s=60.0)
    changes = bursts([10.0, 60.0, 110.0, 160.0, 210.0], cfg)
    ended = [c.episode for c in changes if c.kind == "ended"]
    assert [(e.start, e.end) for e in ended][:2] == [(10.0, 13.5), (60.0, 63.5)]
    # 60 starts 46.5 s after the alerted end (13.5): no alert, and the cooldown stays put, so
    # 110 (96.5 s after it) alerts; chained from 63.5 it was held back, as was every later one
    assert [e.alert for e in ended] == [True, False, True, False, True]


def test_suppression_lasts_at_most_the_cooldown_after_an_alerted_end() -> None:
    """Bounded: every episode alerts unless an ALERTED one ended under cooldown_s before it
    started, whatever came between (bursts every 7-50 s, on a seeded schedule)."""
    cfg = EpisodeConfig(release_s=2.0, cooldown_s=60.0)
    rng = np.random.default_rng(0)
    starts = list(np.cumsum(rng.uniform(7.0, 50.0, 40)))
    ended = [c.episode for c in bursts(starts, cfg) if c.kind == "ended"]
    assert len(ended) == 40
    alerted_end: float | None = None
    for e in ended:
        assert e.end is not None
        assert e.alert is (alerted_end is None or e.start - alerted_end >= cfg.cooldown_s)
        if e.alert:
            alerted_end = e.end
    assert 8 <= sum(e.alert for e in ended) < 30  # both kinds, over ~19 minutes
    # at the edge: 59.5 s after the alerted end is held back, 60 s is not
    for gap, alert in ((59.5, False), (60.0, True)):
        two = [c.episode for c in bursts([10.0, 13.5 + gap], cfg) if c.kind == "ended"]
        assert two[0].end == 13.5 and [e.alert for e in two] == [True, alert]


def test_default_on_threshold_is_0_9() -> None:
    """A run of 0.85 windows was an episode at the old 0.8; with the defaults it is not."""
    probs = [0.1] * 4 + [0.85] * 20 + [0.1] * 30
    assert EpisodeConfig().on_threshold == 0.9
    assert run(probs) == []
    assert [c.kind for c in run(probs, EpisodeConfig(on_threshold=0.8))] == ["started", "ended"]
    assert [c.kind for c in run([0.1] * 4 + [0.9] * 20 + [0.1] * 30)] == ["started", "ended"]


def test_a_room_tone_below_0_5_does_not_hold_an_episode_open() -> None:
    """A cry, then minutes of a background the model scores 0.4: with the old off
    threshold 0.35 the episode never ended (one 8-minute episode over five cries on the
    harness's night streams, four of them without an alert); now it ends after release_s."""
    probs = [0.1] * 4 + [0.95] * 10 + [0.4] * 600 + [0.95] * 10 + [0.1] * 30
    assert EpisodeConfig().off_threshold == 0.5
    starts = [c.episode for c in run(probs) if c.kind == "started"]
    assert len(starts) == 2 and all(e.alert for e in starts)  # the second cry: 300 s later
    # at 0.35 the tone holds the first episode open for 300 s; the late alert (below) still
    # raises the second cry's alert, and the first episode ends where the second began
    held = run(probs, EpisodeConfig(off_threshold=0.35))
    assert [(c.kind, c.episode.alert) for c in held] == [
        ("started", True),
        ("ended", True),
        ("started", True),
        ("ended", True),
    ]
    assert held[1].episode.end == 307.0 == held[2].episode.start


def tone_then_cries(
    cry_starts: list[float], tone: float = 0.7, cfg: EpisodeConfig | None = None
) -> list[EpisodeChange]:
    """A 3 s cry at 0 s, then a room tone scored ``tone`` (over off_threshold, under
    on_threshold) for 400 s, with 3 s cries at ``cry_starts``."""
    tracker = EpisodeTracker(cfg)
    out: list[EpisodeChange] = []
    for i in range(int(420 / 0.5)):
        t = i * 0.5
        cry = any(s <= t < s + 3.0 for s in [0.0, *cry_starts])
        out += tracker.update(t, t + 1.0, 0.95 if cry else tone if t < 400 else 0.0)
    return out + tracker.finish()


def test_a_sound_that_holds_an_alerted_episode_open_cannot_hide_a_later_cry() -> None:
    """Night streams: a room tone scored 0.5-0.9 held an episode open for minutes, and the
    cries in it raised no alert. A run that begins cooldown_s after the episode's last hot
    window now ends it there and alerts; one that begins sooner stays in it."""
    changes = tone_then_cries([30.0, 100.0, 130.0, 250.0])
    assert [(c.kind, c.episode.alert) for c in changes] == [
        ("started", True),  # 0 s
        ("ended", True),  # where the 100 s cry began
        ("started", True),  # the 100 s cry: 66.5 s after the 30 s cry's crying (33.5 s)
        ("ended", True),  # at 250 s: the 130 s cry was 26.5 s after the 100 s one
        ("started", True),  # 250 s
        ("ended", True),
    ]
    ended = [c.episode for c in changes if c.kind == "ended"]
    assert [e.end for e in ended[:2]] == [100.0, 250.0]  # held by the tone until then
    starts = [c.episode for c in changes if c.kind == "started"]
    assert [e.start for e in starts] == [0.0, 100.0, 250.0]
    assert starts[1].alert_at == 101.5  # the onset rule, as for any episode: causal


def test_a_quiet_episode_held_open_past_the_cooldown_alerts_for_a_new_cry() -> None:
    """An episode that began within the cooldown (no alert) and is held open by a tone:
    a cry that begins cooldown_s after the last alerted end splits it and alerts."""
    cfg = EpisodeConfig(release_s=2.0, cooldown_s=60.0)
    tracker = EpisodeTracker(cfg)
    out: list[EpisodeChange] = []
    for i in range(int(200 / 0.5)):
        t = i * 0.5
        cry = t < 3 or 20 <= t < 23 or 90 <= t < 93  # 0 s alerts, 20 s in the cooldown, 90 s
        tone = 0.7 if 23 <= t < 150 else 0.0  # holds the 20 s episode open
        p = 0.95 if cry else tone
        out += tracker.update(t, t + 1.0, p)
    out += tracker.finish()
    assert [(c.kind, c.episode.start, c.episode.alert) for c in out] == [
        ("started", 0.0, True),
        ("ended", 0.0, True),
        ("started", 20.0, False),
        ("ended", 20.0, False),
        ("started", 90.0, True),  # 86.5 s after the alerted end at 3.5 s
        ("ended", 90.0, True),
    ]
    assert out[3].episode.end == 90.0  # the quiet one ends where the new run began


def test_crying_with_hot_windows_less_than_the_cooldown_apart_is_one_episode() -> None:
    changes = tone_then_cries([float(s) for s in range(40, 400, 50)])  # 47 s apart
    assert [c.kind for c in changes] == ["started", "ended"]


def test_min_episode_length_delays_alert() -> None:
    cfg = EpisodeConfig(onset_n=1, onset_m=1, min_episode_s=2.0)
    changes = run([0.0, 0.9, 0.9, 0.9, 0.9] + [0.0] * 20, cfg)
    assert changes[0].episode.alert_at - changes[0].episode.start == pytest.approx(2.0)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="onset_n"):
        EpisodeConfig(onset_n=4, onset_m=3)
    with pytest.raises(ValueError, match="off_threshold"):
        EpisodeConfig(on_threshold=0.4, off_threshold=0.5)


def frames(n: int, value: int = -40) -> tuple[np.ndarray, np.ndarray]:
    mel = (np.arange(n * 32) % 100 - 90).astype(np.int8).reshape(n, 32)
    return mel, np.full(n, value, np.int8)


def test_assembler_cuts_windows_every_hop_with_times() -> None:
    asm = WindowAssembler(window=50, hop=25)
    got = []
    for k in range(8):  # 8 messages of 25 frames = 4 s
        mel, level = frames(25)
        windows, gap = asm.push(mel, level, 1e9 + k * 0.5, k * 25)
        assert not gap
        got += windows
    assert len(got) == 7
    assert [round(w.t_start - 1e9, 3) for w in got] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert all(w.mel.shape == (50, 32) for w in got)
    assert got[0].t_end - got[0].t_start == pytest.approx(1.0)
    assert got[0].level_dbfs == pytest.approx(-70.0)  # code -40 -> -70 dB


def test_assembler_drops_partial_window_on_gap() -> None:
    asm = WindowAssembler(window=50, hop=25)
    mel, level = frames(25)
    asm.push(mel, level, 1e9, 0)
    windows, gap = asm.push(mel, level, 1e9 + 1.0, 50)  # frames 25..49 lost
    assert gap and windows == []
    windows, gap = asm.push(mel, level, 1e9 + 1.5, 75)
    assert not gap and len(windows) == 1 and windows[0].t_start == pytest.approx(1e9 + 1.0)


def test_detector_labels() -> None:
    det = NurseryDetector(DetectorConfig(quiet_dbfs=-60))
    assert det.label(0.95, -30) == "crying"
    assert det.label(0.1, -30) == "other"
    assert det.label(0.1, -75) == "quiet"


def test_silent_windows_are_never_crying() -> None:
    det = NurseryDetector(DetectorConfig(silence_dbfs=-75))
    mel, level = frames(50, value=-100)  # code -100 -> -100 dBFS: digital silence
    windows = det.push(mel, level, 1e9, 0)
    result = det.score(windows[0], 0.99)
    assert result.cry_probability == 0.0
    assert result.label == "quiet"
    loud_mel, loud_level = frames(50, value=40)  # -30 dBFS
    windows = det.push(loud_mel, loud_level, 1e9 + 1, 50)
    assert det.score(windows[0], 0.99).cry_probability == 0.99


@pytest.mark.parametrize("jump", [600.0, -600.0])
def test_a_hole_or_a_step_back_in_time_ends_the_episode(jump: float) -> None:
    """#14.5: windows 10 minutes apart (or going back) are two stretches, not one episode."""
    tracker = EpisodeTracker(EpisodeConfig(cooldown_s=60.0))
    out: list[EpisodeChange] = []
    for i in range(8):
        out += tracker.update(i * 0.5, i * 0.5 + 1.0, 0.95)
    for i in range(8):
        t = 4.0 + jump + i * 0.5
        out += tracker.update(t, t + 1.0, 0.95)
    out += tracker.finish()
    assert [c.kind for c in out] == ["started", "ended", "started", "ended"]
    first, second = out[1].episode, out[3].episode
    assert first.duration < 5 and second.duration < 5
    assert second.alert is (jump > 0)  # going back in time is within the cooldown


@pytest.mark.parametrize(("after_s", "alert"), [(50.0, True), (30.0, False)])
def test_a_clock_stepped_back_holds_alerts_back_no_longer_than_the_cooldown(
    after_s: float, alert: bool
) -> None:
    """Time going back a day keeps only what was left of the cooldown (44 s here): a cry
    50 s after the step alerts, one 30 s after it does not. (Measured from the alerted
    end's old time, the cooldown would have lasted a day.)"""
    tracker = EpisodeTracker(EpisodeConfig(release_s=2.0, cooldown_s=60.0))
    out: list[EpisodeChange] = []
    for i in range(40):  # a cry from 0 s, ending at 4.5 s; quiet windows to 20.5 s
        t = i * 0.5
        out += tracker.update(t, t + 1.0, 0.95 if t < 4.0 else 0.0)
    for i in range(200):  # a day earlier: quiet, and a 4 s cry after_s into it
        t = 20.0 - 86_400.0 + i * 0.5
        out += tracker.update(t, t + 1.0, 0.95 if after_s <= i * 0.5 < after_s + 4 else 0.0)
    out += tracker.finish()
    ended = [c.episode for c in out if c.kind == "ended"]
    assert [e.alert for e in ended] == [True, alert]


def test_the_cooldown_runs_from_the_crying_not_from_a_tone_that_held_the_episode() -> None:
    """A cry at 0-3 s, a tone at 0.7 holding the episode open until 50 s, quiet, and a
    cry at 68.5 s: 65 s after the crying, 18.5 s after the held episode's end. It alerts
    (before, the cooldown ran from 51 s and held it back)."""
    cfg = EpisodeConfig(release_s=2.0, cooldown_s=60.0)
    tracker = EpisodeTracker(cfg)
    out: list[EpisodeChange] = []
    for i in range(int(100 / 0.5)):
        t = i * 0.5
        cry = t < 3 or 68.5 <= t < 71.5
        out += tracker.update(t, t + 1.0, 0.95 if cry else 0.7 if t < 50 else 0.0)
    out += tracker.finish()
    assert [(c.kind, c.episode.alert) for c in out] == [
        ("started", True),
        ("ended", True),
        ("started", True),
        ("ended", True),
    ]
    assert out[1].episode.end == 50.5  # the episode still ends where the tone stopped
    assert tracker.memory().last_alert_end == 72.0  # the end of the last crying window
