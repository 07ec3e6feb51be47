"""A long unacknowledged QoS 1 backlog costs O(1) per publish (no server needed)."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest

from nurserycry.shared import mqtt
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink


def test_publishing_a_backlog_checks_each_message_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = 0
    real = mqtt._acknowledged

    def counted(info: paho.MQTTMessageInfo) -> bool:
        nonlocal checks
        checks += 1
        return bool(real(info))

    monkeypatch.setattr(mqtt, "_acknowledged", counted)
    link = MqttLink(MqttSettings(broker="mqtt://127.0.0.1:9"), "backlog")  # never started
    n = 6_000
    for seq in range(n):
        link.publish("nc/flood/features", b"x%d" % seq, qos=1)
    # pruning the whole dict on every publish past 1,000 made this ~12.5 million checks
    assert checks < 4 * n, checks
