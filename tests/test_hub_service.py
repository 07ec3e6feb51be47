"""The hub against a real mosquitto (and victoria-metrics): frames in, MQTT/history/InfluxDB out.

The model is the fake from ``test_hub_support`` (loud mel codes = crying): these
tests are about the service, not the model.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nurserycry.edge.clips import encode_clip
from nurserycry.hub import discovery
from nurserycry.hub.service import Hub
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink, Received
from nurserycry.shared.schemas import EpisodeEvent, HubStatus, NurseryState

from tests.servers import Mosquitto, VictoriaMetrics
from tests.test_hub_support import (
    T0,
    Edge,
    FakeModel,
    Watcher,
    edge_status,
    hub_settings,
    payload,
    wait_for,
)

pytestmark = pytest.mark.servers


@pytest.fixture
def watcher(mosquitto: Mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto)
    yield w
    w.stop()


def start_hub(tmp_path: Path, broker: Mosquitto, **kw: object) -> Hub:
    hub = Hub(hub_settings(tmp_path, broker.url, **kw), FakeModel())
    hub.start()
    assert hub.wait_connected(10)
    return hub


def test_frames_in_state_events_discovery_and_history_out(
    mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    hub = start_hub(tmp_path, mosquitto)
    edge = Edge(mosquitto, "nursery-1")
    try:
        heartbeat = edge_status("nursery-1")
        edge.raw("nurserycry/nursery-1/status", heartbeat.encode())
        plan = [False] * 4 + [True] * 16 + [False] * 16
        for seq, crying in enumerate(plan):
            edge.send(seq, crying)
        ended = watcher.wait("nurserycry/nursery-1/event", 2)
        events = [EpisodeEvent.decode(p) for p in ended]
        assert [e.event for e in events] == ["started", "ended"]
        assert events[1].duration_s > 5
        assert events[1].peak_probability > 0.9
        configs = [t for t, _ in watcher.pump() if t.startswith("homeassistant/")]
        nursery = [t for t in configs if "/nurserycry_nursery-1/" in t]
        assert len(nursery) == len(discovery.ENTITIES)
        assert "homeassistant/binary_sensor/nurserycry_nursery-1/crying/config" in nursery
        assert len(set(configs) - set(nursery)) == 4  # the hub's own device

        def quiet_again() -> list[NurseryState] | None:
            # the states after the episode's end may arrive just after its "ended" event
            states = [NurseryState.decode(p) for p in watcher.on("nurserycry/nursery-1/state")]
            return states if states and not states[-1].crying else None

        states = wait_for(quiet_again, what="a state saying the crying stopped")
        assert any(s.crying for s in states)
        detections = watcher.wait("nurserycry/nursery-1/detection", len(plan) - 1)
        assert len(detections) == len(plan) - 1
        assert watcher.on("nurserycry/hub/availability")[0] == b"online"
        status = HubStatus.decode(watcher.wait("nurserycry/hub/status")[-1])
        assert status.model == "fake-1"
        wait_for(  # what the hub device's "Nurseries online" shows
            lambda: [
                s
                for s in map(HubStatus.decode, watcher.on("nurserycry/hub/status"))
                if s.counters.get("nurseries_online") == 1
            ],
            what="a status counting the nursery online",
        )
        snap = hub.snapshot()
        assert snap.states["nursery-1"].device == "nursery-1"
        assert snap.edges_online == {"nursery-1": True}
        assert snap.edge_status["nursery-1"] == heartbeat
    finally:
        edge.stop()
        hub.stop()
    assert watcher.wait("nurserycry/hub/availability", 2)[-1] == b"offline"
    with sqlite3.connect(tmp_path / "history.sqlite") as db:
        n_windows = db.execute("SELECT count(*) FROM windows").fetchone()[0]
        n_episodes = db.execute("SELECT count(*) FROM episodes").fetchone()[0]
    db.close()
    assert n_windows == len(plan) - 1  # 25-frame messages, 50-frame windows, hop 25
    assert n_episodes == 1


def test_bad_messages_are_counted_and_good_nurseries_unaffected(
    mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    hub = start_hub(tmp_path, mosquitto)
    good = Edge(mosquitto, "good")
    bad = Edge(mosquitto, "bad")
    try:
        version = json.loads(payload("bad", 0))
        version["v"] = 7
        for seq in range(20):
            good.send(seq)
            if seq % 5 == 0:
                good.send(seq)  # a redelivered duplicate
            bad.raw("nurserycry/bad/features", b"{broken")
            bad.raw("nurserycry/bad/features", b"z" * 80_000)
            bad.raw("nurserycry/bad/features", json.dumps(version).encode())
            bad.raw("nurserycry/bad/features", payload("good", 100 + seq))  # not its name
            bad.raw("nurserycry/bad/features", payload("bad", seq, frontend="00000000deadbeef"))
        wait_for(lambda: hub.counters.get("windows") >= 19, what="windows of the good nursery")
        c = hub.counters
        wait_for(lambda: c.get("rejected_frontend") == 20, what="all bad messages handled")
        assert c.get("rejected_malformed") == 20
        assert c.get("rejected_oversize") == 20
        assert c.get("rejected_version") == 20
        assert c.get("rejected_topic") == 20
        assert c.get("duplicates") == 4
        assert c.get("windows") == 19
        assert hub.engine.nurseries == ["good"]
        status = wait_for(
            lambda: [
                s
                for s in map(HubStatus.decode, watcher.on("nurserycry/hub/status"))
                if s.counters["rejected_malformed"] == 20
            ],
            what="status with the counters",
        )[-1]
        assert status.counters["rejected_topic"] == 20
    finally:
        good.stop()
        bad.stop()
        hub.stop()


def test_a_nursery_sending_digital_zeros_shows_a_silent_microphone(
    mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    hub = start_hub(tmp_path, mosquitto, microphone_silent_s=5.0)
    edge = Edge(mosquitto, "n1")
    try:
        for seq in range(16):  # 8 s at the frontend's floor (the fake edge's quiet frames)
            edge.send(seq)

        def states() -> list[NurseryState]:
            return [NurseryState.decode(p) for p in watcher.on("nurserycry/n1/state")]

        wait_for(lambda: [s for s in states() if s.microphone == "silent"], what="silent")
        assert states()[0].microphone == "ok"  # not before 5 s of zeros
        assert hub.counters.get("microphone_silent") == 1
        for seq in range(16, 20):  # sound again
            edge.send(seq, crying=True)
        wait_for(lambda: states()[-1].microphone == "ok", what="the microphone back")
    finally:
        edge.stop()
        hub.stop()


def test_gap_is_reported(mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path) -> None:
    hub = start_hub(tmp_path, mosquitto, reorder_messages=2)
    edge = Edge(mosquitto, "n1")
    try:
        for seq in [0, 1, 2, 6, 7, 8, 9, 10]:
            edge.send(seq)
        wait_for(lambda: hub.counters.get("gaps") == 1, what="a gap")
        assert hub.counters.get("frames_lost") == 75
        status = wait_for(
            lambda: [
                s
                for s in map(HubStatus.decode, watcher.on("nurserycry/hub/status"))
                if s.counters["gaps"] == 1
            ],
            what="status reporting the gap",
        )
        assert status[-1].counters["frames_lost"] == 75
    finally:
        edge.stop()
        hub.stop()


def test_home_assistant_online_republishes_discovery(
    mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    hub = start_hub(tmp_path, mosquitto)
    edge = Edge(mosquitto, "n1")
    try:
        edge.send(0)
        topic = "homeassistant/sensor/nurserycry_n1/sound_level/config"
        watcher.wait(topic, 1)
        edge.raw("homeassistant/status", b"online")
        watcher.wait(topic, 2)
    finally:
        edge.stop()
        hub.stop()


def test_broker_restart_mid_stream(mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path) -> None:
    hub = start_hub(tmp_path, mosquitto)
    edge = Edge(mosquitto, "n1")
    try:
        for seq in range(10):
            edge.send(seq)
        wait_for(lambda: hub.counters.get("windows") == 9, what="windows before the restart")
        config = "homeassistant/binary_sensor/nurserycry_n1/crying/config"
        watcher.wait(config, 1)  # what the hub published reached the broker
        mosquitto.stop()
        wait_for(lambda: not hub.link.connected, what="hub sees the broker gone")
        mosquitto.start()  # no persistence: retained discovery/state are gone
        assert hub.wait_connected(20)
        assert edge.link.wait_connected(20)
        assert watcher.link.wait_connected(20)
        # discovery was published again after the reconnect, and after the hub's
        # resubscription on the same connection: once it is there, the stream goes on
        # (what an edge sends before the hub has resubscribed to a fresh broker is lost)
        watcher.wait(config, 2)
        for seq in range(10, 20):
            edge.send(seq)
        wait_for(lambda: hub.counters.get("windows") == 19, what="windows after the restart")
        assert hub.counters.get("gaps") == 0
        assert hub.counters.get("duplicates") == 0
        state = watcher.wait("nurserycry/n1/state", 1)
        assert NurseryState.decode(state[-1]).device == "n1"
    finally:
        edge.stop()
        hub.stop()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_persistent_session_keeps_features_while_hub_restarts(
    mosquitto: Mosquitto, tmp_path: Path, protocol: str
) -> None:
    mqtt = {"broker": mosquitto.url, "protocol": protocol}
    hub = start_hub(tmp_path, mosquitto, mqtt=mqtt)
    edge = Edge(mosquitto, "n1")
    try:
        for seq in range(5):
            edge.send(seq)
        wait_for(lambda: hub.counters.get("windows") == 4, what="first windows")
        hub.stop()
        for seq in range(5, 15):  # the hub is away: the broker queues these (QoS 1)
            edge.send(seq)
        hub = start_hub(tmp_path, mosquitto, mqtt=mqtt)
        wait_for(lambda: hub.counters.get("messages") == 10, what="queued messages delivered")
        wait_for(lambda: hub.counters.get("windows") == 9, what="windows from queued messages")
    finally:
        edge.stop()
        hub.stop()


def test_hub_influx_outage_mid_stream(
    mosquitto: Mosquitto, victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    hub = start_hub(tmp_path, mosquitto, influx={"url": victoria.url, "batch": 20, "flush_s": 0.1})
    assert hub.history is None
    edge = Edge(mosquitto, "n1")
    try:
        for seq in range(21):
            edge.send(seq, crying=10 <= seq < 16)
        wait_for(lambda: hub.counters.get("influx_written") >= 20, what="first points")
        victoria.stop()
        for seq in range(21, 61):
            edge.send(seq)
        wait_for(lambda: hub.counters.get("influx_retries") >= 1, what="a failed write")
        victoria.start()
        for seq in range(61, 81):
            edge.send(seq)
        wait_for(lambda: hub.counters.get("windows") == 80, what="all windows")
    finally:
        edge.stop()
        hub.stop()
    c = hub.counters
    assert c.get("influx_buffered") == 0
    series = victoria.export('{__name__="nurserycry_window_cry_probability"}')
    stamps = [ts for s in series for ts in s["timestamps"]]  # type: ignore[attr-defined]
    assert len(stamps) == 80
    assert len(set(stamps)) == 80
    episodes = victoria.export('{__name__="nurserycry_episode_duration_s"}')
    assert sum(len(s["values"]) for s in episodes) == 1  # type: ignore[arg-type]


def test_edge_offline_ends_an_open_episode(
    mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    hub = start_hub(tmp_path, mosquitto, edge_offline_s=1.0)
    edge = Edge(mosquitto, "n1")
    try:
        for seq in range(8):
            edge.send(seq, crying=True)
        started = watcher.wait("nurserycry/n1/event", 1)
        assert EpisodeEvent.decode(started[0]).event == "started"
        edge.raw("nurserycry/n1/availability", b"offline")  # as its last will would
        ended = EpisodeEvent.decode(watcher.wait("nurserycry/n1/event", 2)[-1])
        assert ended.event == "ended"
        wait_for(
            lambda: not NurseryState.decode(watcher.on("nurserycry/n1/state")[-1]).crying,
            what="a state that is not crying",
        )
        assert hub.snapshot().edges_online == {"n1": False}
    finally:
        edge.stop()
        hub.stop()


def test_an_alert_asks_the_edge_for_a_clip_and_keeps_it(
    mosquitto: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    folder = tmp_path / "clips"
    hub = start_hub(tmp_path, mosquitto, clips={"dir": folder, "seconds": 4, "keep": 2})
    edge = Edge(mosquitto, "n1")
    rate = 16_000
    pcm = (np.sin(np.arange(4 * rate) / 8) * 8000).astype(np.int16)

    def answer(msg: Received) -> None:  # what the edge's ClipService does
        if msg.payload == b"clip 4":
            clip = encode_clip("n1", T0, pcm, rate)
            responder.publish("nurserycry/n1/clip", clip.encode(), qos=1)

    responder = MqttLink(MqttSettings(broker=mosquitto.url), "edge-n1-commands")
    responder.subscribe("nurserycry/n1/command", answer, qos=1)
    responder.start()
    assert responder.wait_connected(10)  # subscribed before any alert
    try:
        for seq in range(8):
            edge.send(seq, crying=True)
        started = EpisodeEvent.decode(watcher.wait("nurserycry/n1/event", 1)[0])
        assert started.alert
        wait_for(lambda: list(folder.glob("n1/*.flac")), what="a stored clip")
        (path,) = folder.glob("n1/*.flac")
        assert path.name == f"20260921T141320_{started.episode_id}.flac"
        samples, got_rate = soundfile.read(path, dtype="int16")
        assert got_rate == rate and samples.size == pcm.size
        np.testing.assert_allclose(samples, pcm, atol=1)
        # Bad clips are refused and counted; the hub goes on.
        edge.raw("nurserycry/n1/clip", b"not json")
        edge.raw("nurserycry/n1/clip", encode_clip("n2", T0, pcm, rate).encode())
        for k in range(1, 3):  # two more: only the newest `clips.keep` stay
            edge.raw("nurserycry/n1/clip", encode_clip("n1", T0 + 60 * k, pcm, rate).encode())
        wait_for(lambda: hub.counters.get("clips_stored") == 3, what="3 clips stored")
        wait_for(lambda: hub.counters.get("clips_rejected") == 2, what="2 clips rejected")
        names = sorted(p.name for p in folder.glob("n1/*.flac"))
        assert names == ["20260921T141420_request.flac", "20260921T141520_request.flac"]
        assert hub.counters.get("clips_requested") == 1
    finally:
        responder.stop()
        edge.stop()
        hub.stop()
