"""MqttLink for clusters, against real brokers: a broker list fails over in turn, a
subscription NATS refuses is retried until granted, manual acks wait for the program."""

from __future__ import annotations

import queue
import signal
import time
from pathlib import Path

import pytest

from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink, Received

from tests.servers import Mosquitto, NatsCluster, free_port

pytestmark = pytest.mark.servers


def test_a_broker_list_fails_over_to_the_next_node(tmp_path: Path) -> None:
    first, second = Mosquitto(tmp_path / "a"), Mosquitto(tmp_path / "b")
    first.start()
    second.start()
    dead = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens: tried, then skipped
    link = MqttLink(
        MqttSettings(broker=f"{dead},{first.url},{second.url}"),
        "failover",
        min_backoff_s=1,
        max_backoff_s=1,
    )
    try:
        link.start()
        assert link.wait_connected(15)
        assert link.address == f"127.0.0.1:{first.port}"
        first.kill()
        time.sleep(0.5)
        assert link.wait_connected(15)
        assert link.address == f"127.0.0.1:{second.port}"
    finally:
        link.stop()
        first.stop()
        second.stop()


ACCOUNT = """authorization {{ users: [{{ user: u, password: p, permissions: {{
  publish: ">", subscribe: [{subscribe}] }} }}] }}"""


def test_a_refused_subscription_is_retried_until_granted(tmp_path: Path) -> None:
    """NATS refuses a subscription its permissions do not allow (SUBACK failure); once
    they are widened (config reload) the link's retry gets it."""
    narrow = ACCOUNT.format(subscribe='"open.>", "$MQTT.sub.>"')
    node = NatsCluster(tmp_path, size=1, conf_extra=narrow)
    node.start()
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    settings = MqttSettings(broker=node.mqtt_urls[0], username="u", password="p")
    link = MqttLink(settings, "retry", min_backoff_s=1, max_backoff_s=1)
    link.subscribe("closed/x", lambda m: got.put((m.topic, m.payload)))
    pub = MqttLink(settings, "retry-pub")
    try:
        node.wait_ready()
        link.start()
        pub.start()
        assert pub.wait_connected(10)
        assert not link.wait_connected(3), "ready although the broker refused a subscription"
        wide = ACCOUNT.format(subscribe='"open.>", "closed.>", "$MQTT.sub.>"')
        node.confs[0].write_text(node.confs[0].read_text().replace(narrow, wide))
        assert node.procs[0] is not None
        node.procs[0].send_signal(signal.SIGHUP)  # nats-server reloads its config
        assert link.wait_connected(20), "the refused subscription was not retried"
        pub.publish("closed/x", b"now", qos=1)
        assert pub.wait_published(5)
        assert got.get(timeout=5) == ("closed/x", b"now")
    finally:
        link.stop()
        pub.stop()
        node.stop()


def test_manual_acks_hold_a_message_for_the_next_session(mosquitto: Mosquitto) -> None:
    """Unacknowledged QoS 1 messages come back to the next owner of the session; the
    acknowledged one does not; an Ack from a lost connection does nothing."""
    got: queue.Queue[Received] = queue.Queue()
    settings = MqttSettings(broker=mosquitto.url)

    def owner() -> MqttLink:
        link = MqttLink(settings, "partition-0", persistent_session=True, manual_ack=True)
        link.subscribe("p/#", got.put)
        link.start()
        assert link.wait_connected(10)
        return link

    pub = MqttLink(settings, "acks-pub")
    pub.start()
    assert pub.wait_connected(10)
    first = owner()
    for n in (1, 2):
        pub.publish(f"p/{n}", b"x", qos=1)
    assert pub.wait_published(5)
    one, two = got.get(timeout=5), got.get(timeout=5)
    assert one.ack is not None and two.ack is not None
    one.ack()  # p/1 used; p/2 not
    time.sleep(0.3)
    first.stop()
    second = owner()
    try:
        again = got.get(timeout=10)
        assert again.topic == two.topic == "p/2" and again.ack is not None
        two.ack()  # stale: the connection it came on is gone; must not ack anything
        again.ack()
        with pytest.raises(queue.Empty):
            got.get(timeout=1)
    finally:
        second.stop()
        pub.stop()


def test_publishing_while_disconnected_keeps_every_message(mosquitto: Mosquitto) -> None:
    """More than 1,000 QoS 1 messages published while the broker is away: publish()
    goes on, and all are sent once the broker is back."""
    got: queue.Queue[Received] = queue.Queue()
    sub = MqttLink(MqttSettings(broker=mosquitto.url), "queued-sub", min_backoff_s=1)
    sub.subscribe("q/#", got.put)
    sub.start()
    assert sub.wait_connected(10)
    mosquitto.stop()
    link = MqttLink(MqttSettings(broker=mosquitto.url), "queued-pub", min_backoff_s=1)
    sent = [link.publish(f"q/{n}", b"x", qos=1) for n in range(1200)]
    assert not any(p.sent for p in sent)
    mosquitto.start()
    try:
        assert sub.wait_connected(15)  # subscribed again before the queue goes out
        link.start()
        assert link.wait_connected(15)
        topics = {got.get(timeout=15).topic for _ in range(1200)}
        assert len(topics) == 1200
    finally:
        link.stop()
        sub.stop()
