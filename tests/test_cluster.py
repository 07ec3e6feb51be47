"""Hubs sharded by nursery on a 3-node NATS cluster, with a node and a hub killed.

Three nats-server nodes on loopback run compose/cluster's account (users and
permissions, the 32-partition mapping, JetStream limits). Two hub processes
(``nurserycry hub``'s flags and service, the fake model) own partitions 0-15 and
16-31, each given all three nodes. 36 simulated nurseries publish features (QoS 1,
over three edge connections, one per node) faster than real time, with two crying
episodes each. Mid-way through the first episode the node the first hub started on
is killed (SIGKILL); in the quiet between the episodes the second hub is stopped
(SIGTERM) and started again with the same partitions while the nurseries go on.

Then: every window of every nursery was made by exactly one hub (none lost, none
twice), every episode alerted exactly once, and each nursery reached its hub through
the partition NATS's mapping chose, which is ``shared.topics.partition``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import pytest

from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink, Received
from nurserycry.shared.topics import partition

from tests.servers import CLUSTER_PASSWORDS, NatsCluster
from tests.test_hub_support import T0, payload, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NURSERIES = [f"room-{i:02d}" for i in range(36)]
STEPS = 300  # messages per nursery: 150 s of audio each
PACE = 12.0  # steps a second: 432 messages/s in all
CRYING = (range(20, 44), range(240, 264))  # 12 s each; 98 s apart (beyond the cooldown)
KILL_NODE_AT = 30  # during the first episode
KILL_HUB_AT = 190  # quiet, and the first episode's cooldown is over


def _brokers(urls: list[str], first: int) -> str:
    return ",".join(urls[first:] + urls[:first])


class HubProcess:
    def __init__(self, cluster: NatsCluster, tmp: Path, name: str, parts: str, first: int):
        self.out = tmp / f"{name}.jsonl"
        self.args = [
            sys.executable,
            "-m",
            "tests.cluster_hub",
            str(self.out),
            "--broker",
            _brokers(cluster.mqtt_urls, first),
            "--username",
            "hub",
            "--password",
            CLUSTER_PASSWORDS["hub"],
            "--partitions",
            parts,
            "--partition-count",
            "32",
            "--client-id",
            f"cluster-{name}",
            "--history",
            "off",
            "--log-level",
            "WARNING",
        ]
        self.env = {
            **os.environ,
            "HOME": str(tmp / name),
            # above the cluster's ack_wait (3 s): hold for what the last owner left
            "NURSERYCRY_HUB_REORDER_WAIT_S": "6",
            "NURSERYCRY_HUB_REORDER_MESSAGES": "500",
            "NURSERYCRY_HUB_DETECTIONS": "false",
        }
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(lambda: self._count("ready") >= self.runs, 60, f"{self.out.name} ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            assert self.proc.wait(30) == 0, self.log.read_text()[-3000:]
            self.proc = None

    def records(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def _count(self, key: str) -> int:
        return sum(1 for r in self.records() if key in r)


class Nurseries:
    """36 nurseries over three edge connections (one per node, failing over)."""

    def __init__(self, cluster: NatsCluster) -> None:
        self.links = []
        self.acked: list[set[int]] = [set(), set(), set()]
        for i in range(3):
            settings = MqttSettings(
                broker=_brokers(cluster.mqtt_urls, i),
                username="edge",
                password=CLUSTER_PASSWORDS["edge"],
            )
            link = MqttLink(settings, f"edges-{i}", min_backoff_s=1, max_backoff_s=2)
            link.on_published(self.acked[i].add)
            link.start()
            assert link.wait_connected(15)
            self.links.append(link)

    def step(self, seq: int) -> list[tuple[int, int]]:
        """Publish one message of every nursery; their (link, mid)."""
        crying = any(seq in r for r in CRYING)
        sent = []
        for i, n in enumerate(NURSERIES):
            topic, data = f"nurserycry/{n}/features", payload(n, seq, crying=crying)
            sent.append((i % 3, self.links[i % 3].publish(topic, data, qos=1).mid))
        return sent

    def published(self, sent: list[tuple[int, int]]) -> None:
        """Until the broker acknowledged each (paho keeps and resends what a dead node had)."""
        wait_for(lambda: all(mid in self.acked[i] for i, mid in sent), 60, "PUBACKs")

    def stop(self) -> None:
        for link in self.links:
            link.stop()


def _partition_probe(cluster: NatsCluster) -> tuple[MqttLink, queue.Queue[str]]:
    """A plain subscriber to every partition (QoS 0, no session): where NATS put whom."""
    seen: queue.Queue[str] = queue.Queue()
    settings = MqttSettings(
        broker=cluster.mqtt_urls[2], username="hub", password=CLUSTER_PASSWORDS["hub"]
    )
    probe = MqttLink(settings, "partition-probe")
    probe.subscribe("hubs/+/nurserycry/+/features", lambda m: seen.put(m.topic), qos=0)
    probe.start()
    assert probe.wait_connected(15)
    return probe, seen


def test_sharded_hubs_survive_a_node_and_a_hub(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    probe, seen = _partition_probe(nats_cluster)
    hubs = [
        HubProcess(nats_cluster, tmp_path, "hub-a", "0-15", first=0),
        HubProcess(nats_cluster, tmp_path, "hub-b", "16-31", first=1),
    ]
    for hub in hubs:
        hub.start()
    edges = Nurseries(nats_cluster)
    restart = threading.Thread(target=lambda: (hubs[1].stop(), hubs[1].start()))
    try:
        pending: list[tuple[int, int]] = []
        start = time.monotonic()
        for seq in range(STEPS):
            if seq == 2:
                probe.stop()
            if seq == KILL_NODE_AT:
                nats_cluster.kill(0)
            if seq == KILL_HUB_AT:
                restart.start()
            edges.published(pending)
            pending = edges.step(seq)
            time.sleep(max(0.0, start + (seq + 1) / PACE - time.monotonic()))
        edges.published(pending)
        restart.join(60)
        # a window ends with every message after the first (times to the ms: each hub
        # adds up frame times from where it started)
        expected = {
            (n, round(T0 + (seq + 1) * 0.5, 3)) for n in NURSERIES for seq in range(1, STEPS)
        }

        def made() -> Tally[tuple[str, float]]:
            return Tally(
                (r["w"][0], round(r["w"][1], 3)) for hub in hubs for r in hub.records() if "w" in r
            )

        wait_for(lambda: set(made()) >= expected, 60, "every window")
    finally:
        edges.stop()
        for hub in hubs:
            hub.stop()

    windows = made()
    assert set(windows) == expected, f"lost: {sorted(expected - set(windows))[:5]}"
    doubled = {w: c for w, c in windows.items() if c > 1}
    assert not doubled, f"made twice: {sorted(doubled)[:5]}"
    for hub, owned in zip(hubs, (range(16), range(16, 32)), strict=True):
        for r in hub.records():
            if "w" in r:
                assert partition(r["w"][0], 32) in owned, (hub.out.name, r)
    alerts = Tally(
        (r["e"][0], r["e"][3])
        for hub in hubs
        for r in hub.records()
        if "e" in r and r["e"][1] == "started" and r["e"][2]
    )
    assert sorted(Tally(n for n, _ in alerts).items()) == [(n, 2) for n in NURSERIES]
    assert set(alerts.values()) == {1}, "an episode alerted twice"
    assert hubs[1].runs == 2
    counters = [r["counters"] for hub in hubs for r in hub.records() if "counters" in r]
    assert len(counters) == 3 and all(c.get("rejected_topic", 0) == 0 for c in counters)
    topics = set()
    while not seen.empty():
        topics.add(seen.get())
    assert len(topics) == len(NURSERIES)  # the first two steps of every nursery
    for topic in topics:
        _hubs, k, _prefix, nursery, _features = topic.split("/")
        assert int(k) == partition(nursery, 32), topic


def test_a_stopped_hub_marks_only_its_own_nurseries_unavailable(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    """Each sharded hub says it is online on its own topic, and the nurseries it scores
    name that topic in their discovery: stopping one leaves the other's available."""
    hubs = [
        HubProcess(nats_cluster, tmp_path, "hub-a", "0-15", first=0),
        HubProcess(nats_cluster, tmp_path, "hub-b", "16-31", first=1),
    ]
    latest: dict[str, bytes] = {}
    lock = threading.Lock()

    def keep(msg: Received) -> None:
        with lock:
            latest[msg.topic] = msg.payload

    def seen() -> dict[str, bytes]:  # the network thread adds topics meanwhile
        with lock:
            return dict(latest)

    settings = MqttSettings(
        broker=nats_cluster.mqtt_urls[2],
        username="homeassistant",
        password=CLUSTER_PASSWORDS["homeassistant"],
    )
    ha = MqttLink(settings, "ha-probe")
    # as Home Assistant subscribes (NATS maps '#' to its parent level too, which the
    # account does not grant)
    for topic in ("nurserycry/hub/availability", "nurserycry/hub/+/availability"):
        ha.subscribe(topic, keep, qos=1)
    ha.subscribe("homeassistant/+/+/+/config", keep, qos=1)
    for hub in hubs:
        hub.start()
    ha.start()
    edges = Nurseries(nats_cluster)
    own = {n: "cluster-hub-a" if partition(n, 32) < 16 else "cluster-hub-b" for n in NURSERIES}

    def hub_of_each_nursery() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        configs = [json.loads(p) for t, p in seen().items() if t.endswith("/config")]
        for cfg in configs:
            if "availability" in cfg:  # a nursery's entity: [hub, edge]
                hub_topic, edge_topic = (a["topic"] for a in cfg["availability"])
                found.setdefault(edge_topic.split("/")[1], set()).add(hub_topic)
        return found

    try:
        assert ha.wait_connected(15)
        for seq in range(3):
            edges.published(edges.step(seq))
        expected = {n: {f"nurserycry/hub/{h}/availability"} for n, h in own.items()}
        wait_for(lambda: hub_of_each_nursery() == expected, 30, "discovery of every nursery")
        hub_topic = {h: f"nurserycry/hub/{h}/availability" for h in set(own.values())}
        assert all(seen()[t] == b"online" for t in hub_topic.values())
        devices = {
            json.loads(p)["device"]["name"]
            for t, p in seen().items()
            if t.endswith("/config") and "availability_topic" in json.loads(p)
        }
        assert devices == {"NurseryCry hub cluster-hub-a", "NurseryCry hub cluster-hub-b"}

        hubs[1].stop()
        wait_for(lambda: seen().get(hub_topic["cluster-hub-b"]) == b"offline", 30, "b offline")
        assert seen()[hub_topic["cluster-hub-a"]] == b"online"
        assert "nurserycry/hub/availability" not in seen()  # nobody speaks for every hub
    finally:
        edges.stop()
        ha.stop()
        for hub in hubs:
            hub.stop()
