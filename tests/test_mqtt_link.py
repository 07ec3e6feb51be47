"""MqttLink against a real mosquitto: birth/will, resubscribe after a broker restart."""

from __future__ import annotations

import queue
import time

import pytest

from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink, Received

from tests.servers import Mosquitto

pytestmark = pytest.mark.servers


def _link(broker: Mosquitto, name: str, **kw: object) -> MqttLink:
    link = MqttLink(MqttSettings(broker=broker.url), name, min_backoff_s=1, max_backoff_s=1, **kw)  # type: ignore[arg-type]
    link.start()
    assert link.wait_connected(10)
    return link


def test_birth_retained_and_resubscribe_after_restart(mosquitto: Mosquitto) -> None:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    sub = _link(mosquitto, "sub")
    sub.subscribe("t/#", lambda m: got.put((m.topic, m.payload)))
    pub = _link(mosquitto, "pub", birth=[("t/avail", "online")], will=("t/avail", "offline"))
    assert got.get(timeout=5) == ("t/avail", b"online")
    # a later subscriber gets the retained birth, marked retained; a live one is not
    late: queue.Queue[Received] = queue.Queue()
    later = MqttLink(MqttSettings(broker=mosquitto.url), "later")
    later.subscribe("t/avail", late.put)
    later.start()
    assert late.get(timeout=5) == Received("t/avail", b"online", retain=True)
    later.stop()

    mosquitto.stop()
    time.sleep(0.5)
    assert not sub.connected
    mosquitto.start()
    assert sub.wait_connected(15)
    assert pub.wait_connected(15)
    # resubscribed on reconnect, and the birth message was published again
    # (mosquitto may first deliver the will it sent while shutting down)
    seen = [got.get(timeout=5) for _ in range(2 if got.qsize() > 1 else 1)]
    while ("t/avail", b"online") not in seen:
        seen.append(got.get(timeout=5))
    sent = pub.publish("t/x", b"hello", qos=1)
    assert sent.sent and pub.wait_published(5)
    assert got.get(timeout=5) == ("t/x", b"hello")
    pub.stop(final=[("t/avail", "offline")])
    assert got.get(timeout=5) == ("t/avail", b"offline")
    sub.stop()
