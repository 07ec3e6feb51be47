"""The hub against a mosquitto that wants a user name and password, and one that speaks TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nurserycry.hub.service import Hub
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink

from tests.servers import Mosquitto, require
from tests.test_hub_support import FakeModel, hub_settings, payload, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.timeout(60)]

# mosquitto started as root drops to the 'mosquitto' user, which cannot read pytest's
# private tmp dirs: "user root" keeps it as it is (a warning, fine for a test).


def test_username_and_password(tmp_path: Path) -> None:
    require("mosquitto_passwd", package="mosquitto")
    pwfile = tmp_path / "passwd"
    for i, (user, pw) in enumerate([("hub", "hub-secret"), ("n1", "n1-secret")]):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(pwfile), user, pw], check=True)
    broker = Mosquitto(
        tmp_path / "mq", conf_extra=f"user root\nallow_anonymous false\npassword_file {pwfile}\n"
    )
    broker.start()
    wrong = Hub(
        hub_settings(tmp_path / "a", broker.url, mqtt={"broker": broker.url, "username": "hub"}),
        FakeModel(),
    )
    hub = Hub(
        hub_settings(
            tmp_path / "b",
            broker.url,
            mqtt={"broker": broker.url, "username": "hub", "password": "hub-secret"},
        ),
        FakeModel(),
    )
    try:
        wrong.start()
        hub.start()
        assert hub.wait_connected(10)
        assert not wrong.wait_connected(1.5)  # refused: no password
        link = MqttLink(
            MqttSettings(broker=broker.url, username="n1", password="n1-secret"),  # type: ignore[arg-type]
            "edge-n1",
        )
        link.start()
        assert link.wait_connected(10)
        for seq in range(3):
            link.publish("nurserycry/n1/features", payload("n1", seq), qos=1)
            link.wait_published(5)
        wait_for(
            lambda: hub.counters.get("windows") == 2, what="windows via an authenticated broker"
        )
        link.stop()
    finally:
        wrong.stop()
        hub.stop()
        broker.stop()


def test_tls_with_own_ca(tmp_path: Path) -> None:
    require("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    broker = Mosquitto(
        tmp_path / "mq",
        conf_extra=f"user root\nallow_anonymous true\ncertfile {cert}\nkeyfile {key}\n",
    )
    broker.start()
    url = f"mqtts://127.0.0.1:{broker.port}"
    hub = Hub(
        hub_settings(tmp_path, url, mqtt={"broker": url, "tls_ca_file": str(cert)}), FakeModel()
    )
    try:
        hub.start()
        assert hub.wait_connected(10)
        assert hub.settings.mqtt.tls
        link = MqttLink(MqttSettings(broker=url, tls_ca_file=cert), "edge-n1")
        link.start()
        assert link.wait_connected(10)
        for seq in range(3):
            link.publish("nurserycry/n1/features", payload("n1", seq), qos=1)
            link.wait_published(5)
        wait_for(lambda: hub.counters.get("windows") == 2, what="windows over TLS")
        link.stop()
    finally:
        hub.stop()
        broker.stop()
