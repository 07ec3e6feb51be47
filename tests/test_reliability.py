"""Reliability suite: load, failures along the whole chain, and hostile input.

Bounded in time; real mosquitto and victoria-metrics; the edge agent as a real
subprocess where its failure is the point.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurserycry.hub.counters import COUNTER_NAMES
from nurserycry.hub.service import Hub
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.model import CryModel
from nurserycry.shared.mqtt import MqttLink, Received
from nurserycry.shared.schemas import AudioFeatures, Detection, MessageError

from tests.servers import Mosquitto, VictoriaMetrics
from tests.test_hub_support import Edge, FakeModel, Watcher, hub_settings, payload, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.slow]


# -- 100 nurseries at once -------------------------------------------------------------


def test_hundred_nurseries_stream_without_backlog_or_loss(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    nurseries, messages = 100, 30  # 15 s each: quiet, 4 s of crying, quiet
    hub = Hub(hub_settings(tmp_path, mosquitto.url, detections=False), FakeModel())
    hub.start()
    assert hub.wait_connected(10)
    edge = Edge(mosquitto, "load")
    try:
        for seq in range(messages):  # interleaved, as 100 live nurseries would be
            for i in range(nurseries):
                edge.link.publish(
                    f"nurserycry/n{i:03d}/features",
                    payload(f"n{i:03d}", seq, crying=8 <= seq < 16),
                    qos=1,
                )
            edge.link.wait_published(10)
        expected = nurseries * (messages - 1)
        wait_for(lambda: hub.counters.get("windows") >= expected, 60, "every window")
        c = hub.counters
        assert c.get("windows") == expected
        assert c.get("dropped_queue_full") == 0
        assert c.get("gaps") == 0
        assert c.get("duplicates") == 0
        assert c.get("episodes") == nurseries  # each cried once, and each episode ended
        assert sorted(hub.engine.nurseries) == [f"n{i:03d}" for i in range(nurseries)]
        assert not any(hub.engine.crying(f"n{i:03d}") for i in range(nurseries))
    finally:
        edge.stop()
        hub.stop()


# -- hostile input ---------------------------------------------------------------------

GOOD = "good"
REPLAY = "replay"  # stands for: the good nursery's last message, sent again
ids = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["+", "#", "a/b", "hub", "../x", "ünï", "a\u0000b", "x" * 300, ""]),
)
junk = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(str.encode),
    st.just(b"{" * 5000),
    st.just(b"x" * 200_000),
)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes]:
    """A (topic, payload) that the hub must reject or recognise as a replay."""
    kind = draw(st.sampled_from(["junk", "mutated", "wrong_device", "replay", "unicode_topic"]))
    if kind == "junk":
        return "nurserycry/attacker/features", draw(junk)
    if kind == "replay":  # an old message of the good nursery, sent again
        return REPLAY, b""
    if kind == "unicode_topic":
        return "nurserycry/" + draw(
            st.sampled_from(["ünï", "a b", "HUB", "x" * 60])
        ) + "/features", payload("attacker", 0)
    body = json.loads(payload("attacker", draw(st.integers(0, 5))))
    if kind == "wrong_device":  # the device in the payload is not the topic's nursery
        body["device"] = draw(st.one_of(ids, st.just(GOOD)))
        if body["device"] == "attacker":
            body["device"] = GOOD
        return "nurserycry/attacker/features", json.dumps(body).encode()
    key = draw(st.sampled_from(sorted(body)))
    body[key] = draw(
        st.one_of(
            ids,
            st.integers(-(2**70), 2**70),
            st.floats(),
            st.none(),
            st.lists(st.integers(), max_size=3),
        )
    )
    try:
        data = json.dumps(body).encode()
    except ValueError:
        return "nurserycry/attacker/features", b"\xff"
    try:
        AudioFeatures.decode(data)
    except MessageError:
        return "nurserycry/attacker/features", data
    # the mutation happened to be a valid message (e.g. another frame_index):
    # send a replay of the good nursery's last message instead
    return REPLAY, b""


def _good_run(
    hub: Hub, edge: Edge, watcher: Watcher, flood: list[tuple[str, bytes]]
) -> list[tuple[float, float, str]]:
    for seq in range(10):
        crying = 3 <= seq < 8
        edge.send(seq, crying=crying)
        for topic, data in flood[seq::10]:
            if topic == REPLAY:  # QoS 1 redelivery, or an attacker replaying what it saw
                edge.link.publish(edge.topic, payload(GOOD, seq, crying=crying), qos=1)
            else:
                edge.link.publish(topic, data, qos=1)
    wait_for(lambda: hub.counters.get("windows") >= 9, 30, "the good nursery's windows")
    got = watcher.wait(f"nurserycry/{GOOD}/detection", 9)
    return [(d.t, d.cry_probability, d.label) for d in map(Detection.decode, got)]


def _handled(hub: Hub) -> int:
    """Messages the hub rejected or recognised as replays."""
    names = [n for n in COUNTER_NAMES if n.startswith("rejected_")]
    names += ["duplicates", "out_of_order"]
    return sum(hub.counters.get(k) for k in names)


def test_ten_thousand_hostile_messages(mosquitto: Mosquitto, tmp_path: Path) -> None:
    flood: list[tuple[str, bytes]] = []

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(hostile(), min_size=100, max_size=100))
    def collect(batch: list[tuple[str, bytes]]) -> None:
        flood.extend(batch)

    collect()
    assert len(flood) >= 10_000

    clean_dir, dirty_dir = tmp_path / "clean", tmp_path / "dirty"
    results = []
    for workdir, messages in ((clean_dir, []), (dirty_dir, flood)):
        workdir.mkdir()
        hub = Hub(hub_settings(workdir, mosquitto.url), FakeModel())
        hub.start()
        assert hub.wait_connected(10)
        watcher = Watcher(mosquitto, f"watch-{workdir.name}")
        edge = Edge(mosquitto, GOOD)
        try:
            results.append(_good_run(hub, edge, watcher, messages))
            if messages:
                wait_for(lambda h=hub: h.counters.get("messages") >= len(flood) + 10, 60, "all")
                assert _handled(hub) == len(flood), hub.status().counters
                assert hub.engine.nurseries == [GOOD]
        finally:
            edge.stop()
            watcher.stop()
            hub.stop()
    clean, dirty = results
    assert dirty == clean


# -- the whole chain through failures -----------------------------------------------------

SR = 16_000


def _audio(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.05 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * (300 + 200 * np.sin(t)) * t)
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def _edge(broker: Mosquitto, spool: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nurserycry",
            "edge",
            "--broker",
            broker.url,
            "--nursery",
            "chain",
            "--stdin",
            "--rate",
            str(SR),
            "--spool",
            str(spool),
            "--log-level",
            "WARNING",
        ],
        stdin=subprocess.PIPE,
    )


def test_chain_survives_broker_influx_and_edge_failures(
    durable_broker: Mosquitto, victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    broker = durable_broker
    received: list[tuple[str, int, int]] = []
    sub = MqttLink(
        MqttSettings(broker=broker.url),
        "chain-recorder",
        persistent_session=True,
        min_backoff_s=1,
        max_backoff_s=1,
    )

    def record(message: Received) -> None:
        msg = AudioFeatures.decode(message.payload)
        received.append((msg.stream, msg.seq, msg.frame_index))

    sub.subscribe("nurserycry/chain/features", record)
    sub.start()
    assert sub.wait_connected(10)
    hub = Hub(
        hub_settings(
            tmp_path,
            broker.url,
            influx={"url": victoria.url, "batch": 20, "flush_s": 0.2},
            detections=False,
        ),
        CryModel.load(),
    )
    hub.start()
    assert hub.wait_connected(10)
    spool = tmp_path / "edge-spool.sqlite"
    edge = _edge(broker, spool)
    assert edge.stdin is not None
    try:
        edge.stdin.write(_audio(5, 1))
        edge.stdin.flush()
        wait_for(lambda: hub.counters.get("windows") >= 8, 30, "first windows")

        broker.stop()  # broker outage: the edge spools, the hub waits
        edge.stdin.write(_audio(4, 2))
        edge.stdin.flush()
        victoria.stop()  # and the database goes away too
        broker.start()
        wait_for(lambda: hub.counters.get("windows") >= 16, 30, "windows after the broker")
        wait_for(lambda: hub.counters.get("influx_retries") > 0, 30, "writes failing")

        broker.stop()  # fill the edge's spool, then kill it hard
        edge.stdin.write(_audio(4, 3))
        edge.stdin.flush()
        wait_for(lambda: spool.exists() and spool.stat().st_size > 0, 10, "a spool on disk")
        time.sleep(2.0)  # let it process what it read into the spool
        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
        edge.stdin.close()
        broker.start()
        victoria.start()

        edge = _edge(broker, spool)  # the same spool: what was left goes first
        assert edge.stdin is not None
        edge.stdin.write(_audio(4, 4))
        edge.stdin.close()
        assert edge.wait(60) == 0  # exits once every frame is acknowledged
        wait_for(lambda: hub.counters.get("influx_buffered") == 0, 30, "InfluxDB catching up")
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait()
        hub.stop()
        sub.stop()

    # every message the edge spooled reached the broker and the subscriber
    streams = list(dict.fromkeys(s for s, _, _ in received))  # in order of arrival
    # the killed run's spooled messages keep its stream; the restart cannot know what
    # the killed run numbered in memory, so it numbers in a new stream
    assert len(streams) == 2
    by_seq = {q: f for s, q, f in received if s == streams[0]}
    seqs = sorted(by_seq)
    assert seqs == list(range(len(seqs)))  # none missing
    # the killed agent had read 13 s of audio (the last 6 s with no broker): all of it
    # arrived, less at most the message it had not filled yet
    assert by_seq[seqs[-1]] + 25 >= 13 * 50 - 25
    restart = sorted({q for s, q, _ in received if s == streams[1]})
    assert restart == list(range(restart[0], restart[0] + len(restart)))
    assert len(restart) >= 4 * 50 // 25 - 1  # and the second run's 4 s
    # the hub counted each window once, and every window point is in the database once
    windows = hub.counters.get("windows")

    def stamps() -> list[int]:  # victoria-metrics shows new points after about a second
        query = '{__name__="nurserycry_window_cry_probability", nursery="chain"}'
        return [ts for s in victoria.export(query) for ts in s["timestamps"]]  # type: ignore[attr-defined]

    wait_for(lambda: len(stamps()) >= windows, 20, "every window point in the database")
    got = stamps()
    assert len(got) == len(set(got)) == windows, json.dumps(hub.status().counters)
    assert hub.counters.get("gaps") <= 1  # at most the audio the killed edge had not read
