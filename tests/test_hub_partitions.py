"""Partitioned hubs without a broker: the partition layout, and a hand-over between two
hubs with messages redelivered late, out of order and doubled (as a NATS session does
after a node or hub failure): every window made exactly once, every episode alerted once."""

from __future__ import annotations

from collections import Counter as Tally
from pathlib import Path
from typing import cast

import pytest

from nurserycry.hub.counters import Counters
from nurserycry.hub.engine import Engine, Outputs
from nurserycry.hub.ingest import Accepted, Ingest
from nurserycry.hub.partitions import AckLedger, misrouted
from nurserycry.hub.settings import HubSettings
from nurserycry.shared.config import ConfigError, MqttSettings
from nurserycry.shared.detector import DetectorConfig
from nurserycry.shared.mqtt import Ack, MqttLink
from nurserycry.shared.topics import TopicError, Topics, fnv1a_32, parse_partitions, partition

from tests.test_hub_support import FRONTEND, FakeModel, payload

NURSERIES = ("nursery-1", "nursery-2", "n3")
MESSAGES = 300  # 150 s each
CRYING = (range(10, 30), range(220, 240))  # two episodes, 95 s apart (beyond the cooldown)
HANDOVER = 170  # the first hub stops after this seq: quiet, and past the cooldown


def test_fnv1a_and_partitions() -> None:
    assert fnv1a_32(b"") == 0x811C9DC5  # the FNV-1a reference values
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968
    # what nats-server 2.9's {{partition(32,1)}} answered for these (tests/test_cluster.py
    # checks every nursery of its run against the live mapping)
    assert [partition(f"n{i}", 32) for i in (0, 1, 2, 3, 4, 9)] == [19, 0, 25, 6, 31, 24]
    assert parse_partitions("0-3, 7,5", 8) == (0, 1, 2, 3, 5, 7)
    for bad in ("8", "3-1", "a", "0-", ""):
        with pytest.raises(TopicError):
            parse_partitions(bad, 8)


def test_partition_topics() -> None:
    t = Topics()
    assert t.partition_features(5) == "hubs/5/nurserycry/+/features"
    assert t.partition_client_id(5) == "nurserycry-partition-5"
    assert t.parse("hubs/5/nurserycry/n1/features") == ("n1", "features")
    assert t.parse("hubs/5/nurserycry/n1/state") is None
    assert t.parse("hubs/x/nurserycry/n1/features") is None
    assert misrouted(t, "hubs/0/nurserycry/n1/features", "n1", 32) is None
    assert "partition_count" in (misrouted(t, "hubs/0/nurserycry/n0/features", "n0", 32) or "")


def test_partition_settings(tmp_path: Path) -> None:
    s = HubSettings.load(
        None,
        mqtt={"broker": "mqtt://a:1884, b:1885", "partitions": "0-3", "partition_count": 8},
    )
    assert s.mqtt.owned == (0, 1, 2, 3)
    plain = HubSettings.load(None, mqtt=MqttSettings(broker="mqtt://a:1884"))  # e.g. the demo's
    assert plain.mqtt.owned == () and plain.mqtt.addresses == [("a", 1884)]
    assert s.mqtt.addresses == [("a", 1884), ("b", 1885)]
    with pytest.raises(ConfigError, match=r"mqtt\.partitions.*below the partition count 8"):
        HubSettings.load(None, mqtt={"partitions": "0-8", "partition_count": 8})
    with pytest.raises(ConfigError, match="all be mqtt:// or all mqtts://"):
        HubSettings.load(None, mqtt={"broker": "mqtt://a,mqtts://b"})


class _Link:
    """Records the packet ids acknowledged (stands for MqttLink)."""

    def __init__(self) -> None:
        self.acked: set[int] = set()
        self.serial = 0

    def _ack(self, mid: int, _serial: int) -> None:
        self.acked.add(mid)

    def delivery(self, mid: int) -> Ack:
        self.serial += 1
        return Ack(cast(MqttLink, self), mid, self.serial)


class _Hub:
    """Ingest + engine + ack ledger, as the service wires them for a partitioned hub."""

    def __init__(self, link: _Link) -> None:
        self.clock = 0.0
        self.counters = Counters()
        self.ingest = Ingest(
            Topics(),
            self.counters,
            FRONTEND,
            32,
            reorder_messages=100,
            reorder_wait_s=5.0,
            hold_first=True,
            clock=lambda: self.clock,
        )
        self.engine = Engine(FakeModel(), lambda _n: DetectorConfig(), self.counters)
        self.acks = AckLedger()
        self.link = link
        self.out = Outputs()

    def receive(self, nursery: str, seq: int) -> None:
        self.clock += 0.01
        ack = self.link.delivery(_mid(nursery, seq))
        topic = f"hubs/{partition(nursery, 32)}/nurserycry/{nursery}/features"
        crying = any(seq in r for r in CRYING)
        got = self.ingest.feed(topic, payload(nursery, seq, crying=crying), ack)
        self.acks.fed(ack, got, self.ingest.holds(nursery, ack))
        self._process(got)

    def wait(self, seconds: float) -> None:
        self.clock += seconds
        self._process(self.ingest.expire())

    def _process(self, accepted: list[Accepted]) -> None:
        if accepted:
            out = self.engine.process(accepted)
            self.out.windows += out.windows
            self.out.events += out.events
            self.acks.used(accepted, self.engine.retained_from)


def _mid(nursery: str, seq: int) -> int:
    return NURSERIES.index(nursery) * 10_000 + seq


def _alerts(out: Outputs) -> list[tuple[str, float]]:
    return [
        (e.event.device, e.event.started_at)
        for e in out.events
        if e.event.event == "started" and e.event.alert
    ]


def test_handover_with_late_out_of_order_and_doubled_redelivery() -> None:
    reference = _Hub(_Link())
    for seq in range(MESSAGES):
        for n in NURSERIES:
            reference.receive(n, seq)
    reference.out.events += reference.engine.finish().events
    assert len(reference.out.windows) == len(NURSERIES) * (MESSAGES - 1)
    assert len(_alerts(reference.out)) == 2 * len(NURSERIES)

    # hub A, with a node failure: 50-54 were in flight on the dead node and come back
    # after ack_wait, behind 55-70; 52 and 60 arrive twice
    link_a = _Link()
    a = _Hub(link_a)
    order = [*range(0, 50), *range(55, 71), *range(50, 55), 52, 60, *range(71, HANDOVER + 1)]
    for seq in order:
        for n in NURSERIES:
            a.receive(n, seq)
    a.wait(6.0)
    a.out.events += a.engine.finish().events  # A stops
    # what A did not acknowledge: the frames its last window had not used yet
    unacked = [s for s in range(HANDOVER + 1) if _mid(NURSERIES[0], s) not in link_a.acked]
    assert unacked == [HANDOVER]

    # hub B takes the partition over: newer messages first, the redelivered ones after
    # ack_wait, one of them twice
    b = _Hub(_Link())
    for seq in [HANDOVER + 1, HANDOVER + 2, *unacked, HANDOVER + 3, *unacked]:
        for n in NURSERIES:
            if _mid(n, seq) not in link_a.acked:
                b.receive(n, seq)
    b.wait(6.0)
    for seq in range(HANDOVER + 4, MESSAGES):
        for n in NURSERIES:
            b.receive(n, seq)
    b.out.events += b.engine.finish().events

    made = Tally((w.nursery, w.t) for w in a.out.windows + b.out.windows)
    assert max(made.values()) == 1, "a window was made twice"
    assert set(made) == {(w.nursery, w.t) for w in reference.out.windows}, "a window was lost"
    assert sorted(_alerts(a.out) + _alerts(b.out)) == sorted(_alerts(reference.out))
    for hub in (a, b):
        assert hub.counters.get("gaps") == 0
        assert hub.counters.get("out_of_order") == 0
    assert a.counters.get("duplicates") == 2 * len(NURSERIES)
    assert a.acks.waiting == len(NURSERIES)  # the last message of each, left to B
