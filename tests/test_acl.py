"""compose/mosquitto/acl with a real mosquitto: who may publish and read what.

The broker runs the deployment's own ``compose/mosquitto/mosquitto.conf`` (its
file paths rewritten, the listener on a free loopback port) and ACL file, with
a password file made by ``compose/add-nursery.sh`` (its local mode) and
``mosquitto_passwd``. mosquitto started as root drops privileges to the
``mosquitto`` user, so the files live in a world-traversable temporary
directory and are owned by that user (when the tests run as root).

Denied publishes are dropped silently by mosquitto (the PUBACK still comes), so
every check ends with an allowed message on the same connection: once the
subscriber has it, everything published before it has been routed, and what
did not arrive was refused.
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.servers import Mosquitto, require
from tests.test_compose import recording_mosquitto_passwd

pytestmark = [pytest.mark.servers, pytest.mark.timeout(60)]

COMPOSE = Path(__file__).resolve().parents[1] / "compose"
PASSWORDS = {
    "hub": "hub-pw",
    "homeassistant": "ha-pw",
    "admin": "admin-pw",
    "nursery-1": "n1-pw",
    "nursery-2": "n2-pw",
}


@pytest.fixture(autouse=True)
def _needs_mosquitto_passwd() -> None:
    require("mosquitto_passwd", package="mosquitto")


def _add_user(
    passwd: Path, name: str, password: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOSQUITTO_PASSWD_FILE": str(passwd)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        ["sh", str(COMPOSE / "add-nursery.sh"), name, "-"],
        env=env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _broker_conf(passwd: Path, acl: Path) -> str:
    """The deployment's mosquitto.conf with this test's paths (the fixture adds the listener)."""
    paths = {
        "password_file": f"password_file {passwd}",
        "acl_file": f"acl_file {acl}",
        "persistence_location": f"persistence_location {passwd.parent}/",
    }
    lines = []
    for line in (COMPOSE / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if line.strip() and not line.startswith("#") and key != "listener":
            lines.append(paths.get(key, line))
    assert "allow_anonymous false" in lines
    assert f"password_file {passwd}" in lines and f"acl_file {acl}" in lines
    return "\n".join(lines) + "\n"


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    work = Path(tempfile.mkdtemp(prefix="nurserycry-acl-"))
    work.chmod(0o755)
    passwd, acl = work / "passwd", work / "acl"
    for name in ("nursery-1", "nursery-2"):
        out = _add_user(passwd, name, PASSWORDS[name])
        assert out.returncode == 0, out.stderr
        assert f"NURSERYCRY_EDGE_MQTT__USERNAME={name}" in out.stdout
    for name in ("hub", "homeassistant", "admin"):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, PASSWORDS[name]], check=True)
    shutil.copy(COMPOSE / "mosquitto" / "acl", acl)
    try:
        owner = pwd.getpwnam("mosquitto")
    except KeyError:
        owner = None
    for path in (passwd, acl):
        path.chmod(0o600)
        if owner is not None and os.geteuid() == 0:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    server = Mosquitto(work, conf_extra=_broker_conf(passwd, acl))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


class Client:
    """A blocking little MQTT 3.1.1 client for the checks."""

    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._connack: queue.Queue[ReasonCode] = queue.Queue()
        self._subacked = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self._connack.put(rc)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda *_a: self._subacked.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.rc = self._connack.get(timeout=10)

    @property
    def accepted(self) -> bool:
        return not self.rc.is_failure

    def subscribe(self, *filters: str) -> None:
        self._subacked.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self._subacked.wait(10)

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def received_until(self, topic: str, payload: str) -> list[tuple[str, str]]:
        """Everything received up to and including (topic, payload); fails after 10 s."""
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                t, p = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append((t, p.decode()))
            if (t, p.decode()) == (topic, payload):
                return seen
        raise AssertionError(f"never received {topic} {payload!r}; got {seen}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


ClientFactory = Callable[..., Client]


@pytest.fixture
def connect(broker: Mosquitto) -> Iterator[ClientFactory]:
    clients: list[Client] = []

    def make(user: str | None, password: str | None = None) -> Client:
        client = Client(
            broker.port, user, PASSWORDS.get(user or "") if password is None else password
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_no_anonymous_and_no_wrong_password(connect: ClientFactory) -> None:
    assert not connect(None).accepted
    assert not connect("hub", "not-the-password").accepted
    assert not connect("nursery-9", "whatever").accepted
    assert connect("nursery-1").accepted


def test_edge_publishes_only_as_its_own_nursery(connect: ClientFactory) -> None:
    hub, ha, edge = connect("hub"), connect("homeassistant"), connect("nursery-1")
    assert hub.accepted and ha.accepted and edge.accepted
    hub.subscribe("nurserycry/#", "homeassistant/#")
    ha.subscribe("nurserycry/#", "homeassistant/#")
    forbidden = [
        "nurserycry/nursery-2/features",
        "nurserycry/nursery-2/availability",
        "nurserycry/nursery-2/status",
        "nurserycry/hub/status",
        "nurserycry/hub/availability",
        "nurserycry/nursery-1/state",
        "nurserycry/nursery-1/event",
        "nurserycry/nursery-1/detection",
        "homeassistant/binary_sensor/nurserycry_nursery-1/crying/config",
        "homeassistant/status",
    ]
    for topic in forbidden:
        edge.publish(topic, "forged")
    edge.publish("nurserycry/nursery-1/features", "own-features")
    edge.publish("nurserycry/nursery-1/availability", "online")
    hub_saw = hub.received_until("nurserycry/nursery-1/availability", "online")
    ha_saw = ha.received_until("nurserycry/nursery-1/availability", "online")
    assert hub_saw == [
        ("nurserycry/nursery-1/features", "own-features"),
        ("nurserycry/nursery-1/availability", "online"),
    ]
    # Home Assistant reads availability, never features
    assert ha_saw == [("nurserycry/nursery-1/availability", "online")]


def test_edge_reads_only_its_own_commands(connect: ClientFactory) -> None:
    hub, edge = connect("hub"), connect("nursery-1")
    edge.subscribe("nurserycry/#")
    hub.publish("nurserycry/nursery-2/command", "clip")
    hub.publish("nurserycry/nursery-1/state", "hub-state")
    hub.publish("nurserycry/nursery-1/command", "clip")
    assert edge.received_until("nurserycry/nursery-1/command", "clip") == [
        ("nurserycry/nursery-1/command", "clip")
    ]


def test_hub_publishes_state_and_home_assistant_reads_it(connect: ClientFactory) -> None:
    hub, ha = connect("hub"), connect("homeassistant")
    ha.subscribe("nurserycry/+/state", "nurserycry/+/event", "nurserycry/hub/#", "homeassistant/#")
    hub.subscribe("homeassistant/status")
    # Home Assistant may not forge the hub's messages or act as a nursery
    ha.publish("nurserycry/nursery-1/state", "forged-by-ha")
    ha.publish("nurserycry/homeassistant/features", "forged-by-ha")
    ha.publish("nurserycry/hub/status", "forged-by-ha")
    hub.publish("nurserycry/hub/status", "hub-status")
    hub.publish("homeassistant/binary_sensor/nurserycry_nursery-1/crying/config", "{}")
    hub.publish("nurserycry/nursery-1/event", "started")
    hub.publish("nurserycry/nursery-1/state", "crying")
    assert ha.received_until("nurserycry/nursery-1/state", "crying") == [
        ("nurserycry/hub/status", "hub-status"),
        ("homeassistant/binary_sensor/nurserycry_nursery-1/crying/config", "{}"),
        ("nurserycry/nursery-1/event", "started"),
        ("nurserycry/nursery-1/state", "crying"),
    ]
    # Home Assistant's birth message reaches the hub (it then republishes discovery)
    ha.publish("homeassistant/status", "online")
    assert hub.received_until("homeassistant/status", "online")[-1] == (
        "homeassistant/status",
        "online",
    )


def test_a_new_nursery_needs_only_a_new_user(broker: Mosquitto, connect: ClientFactory) -> None:
    passwd = broker.workdir / "passwd"
    out = _add_user(passwd, "nursery-3", "n3-pw")
    assert out.returncode == 0, out.stderr
    owner = pwd.getpwnam("mosquitto") if os.geteuid() == 0 else None
    if owner is not None:
        os.chown(passwd, owner.pw_uid, owner.pw_gid)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)  # mosquitto re-reads its password file
    deadline = time.monotonic() + 10
    edge = connect("nursery-3", "n3-pw")
    while not edge.accepted and time.monotonic() < deadline:
        edge = connect("nursery-3", "n3-pw")
    assert edge.accepted
    hub = connect("hub")
    hub.subscribe("nurserycry/+/features")
    edge.publish("nurserycry/nursery-1/features", "forged")
    edge.publish("nurserycry/nursery-3/features", "mine")
    assert hub.received_until("nurserycry/nursery-3/features", "mine") == [
        ("nurserycry/nursery-3/features", "mine")
    ]


@pytest.mark.parametrize("name", ["hub", "homeassistant", "admin", "Nursery 1", "a/b", "#"])
def test_add_nursery_refuses_bad_names(tmp_path: Path, name: str) -> None:
    out = _add_user(tmp_path / "passwd", name, "pw")
    assert out.returncode == 2
    assert "add-nursery.sh" in out.stderr
    assert not (tmp_path / "passwd").exists()


# -- #14.13: no passwords on command lines, a private password file, no example values ---


def test_add_nursery_keeps_the_password_off_command_lines_and_the_file_private(
    tmp_path: Path,
) -> None:
    path, log = recording_mosquitto_passwd(tmp_path)
    passwd = tmp_path / "passwd"
    out = _add_user(passwd, "nursery-7", "s3cret-pw", path=path)
    assert out.returncode == 0, out.stderr
    calls = log.read_text()
    assert "s3cret-pw" not in "".join(x for x in calls.splitlines() if x.startswith("ARGS"))
    assert "STDIN s3cret-pw" in calls  # it went in on standard input
    assert passwd.stat().st_mode & 0o077 == 0
    assert "NURSERYCRY_EDGE_MQTT__PASSWORD=s3cret-pw" in out.stdout
    env = {**os.environ, "MOSQUITTO_PASSWD_FILE": str(passwd)}
    argv = subprocess.run(
        ["sh", str(COMPOSE / "add-nursery.sh"), "nursery-8", "on-the-command-line"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert argv.returncode == 2 and "command line" in argv.stderr


def test_add_nursery_refuses_example_passwords_and_entity_id_twins(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    refused = _add_user(passwd, "nursery-1", "change-me")
    assert refused.returncode == 2 and "example" in refused.stderr
    assert _add_user(passwd, "a_b", "pw-1").returncode == 0
    twin = _add_user(passwd, "a-b", "pw-2")
    assert twin.returncode == 2 and "Home Assistant" in twin.stderr
    assert [line.split(":")[0] for line in passwd.read_text().splitlines()] == ["a_b"]


def test_a_nursery_user_cannot_knock_the_hub_off_the_broker(
    broker: Mosquitto, connect: ClientFactory, tmp_path: Path
) -> None:
    """#14.4: a nursery user connecting with the hub's client id took over its session."""
    from nurserycry.hub.service import Hub

    from tests.test_hub_support import FakeModel, hub_settings, payload, wait_for

    mqtt = {"broker": broker.url, "username": "hub", "password": PASSWORDS["hub"]}
    settings = hub_settings(tmp_path, broker.url, mqtt=mqtt, detections=False)
    hub = Hub(settings.model_copy(update={"client_id": "nurserycry-hub"}), FakeModel())
    ha = connect("homeassistant")
    ha.subscribe("nurserycry/hub/availability")
    hub.start()
    edge = connect("nursery-2")
    attempts = 0
    try:
        assert hub.wait_connected(10)
        for seq in range(20):
            for client_id in ("nurserycry-hub", "hub", settings.client_id):
                attacker = paho.Client(
                    CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
                )
                attacker.username_pw_set("nursery-1", PASSWORDS["nursery-1"])
                attacker.connect("127.0.0.1", broker.port, keepalive=30)
                attacker.loop(0.1)
                attempts += 1
                attacker.disconnect()
            edge.publish("nurserycry/nursery-2/features", payload("nursery-2", seq).decode())
        wait_for(lambda: hub.counters.get("windows") >= 19, 20, "every window")
        assert hub.link.connected
        assert hub.counters.get("windows") == 19 and hub.counters.get("gaps") == 0
    finally:
        hub.stop()
    said = [p for t, p in _drain(ha) if t == "nurserycry/hub/availability"]
    assert attempts == 60
    assert said[0] == "online" and said.count("offline") == 1 and said[-1] == "offline", said


def _drain(client: Client) -> list[tuple[str, str]]:
    time.sleep(0.5)
    out = []
    while not client.messages.empty():
        t, p = client.messages.get_nowait()
        out.append((t, p.decode()))
    return out


def test_admin_reads_everything_and_sends_only_hub_commands(connect: ClientFactory) -> None:
    """The user for a person with mosquitto_sub/pub: client ids are user names, so using
    the hub's own user would take over the hub's session."""
    admin, hub, edge = connect("admin"), connect("hub"), connect("nursery-1")
    admin.subscribe("nurserycry/#")
    hub.subscribe("nurserycry/hub/command", "nurserycry/+/features")
    for topic in ("nurserycry/nursery-1/features", "nurserycry/nursery-1/state"):
        admin.publish(topic, "forged-by-admin")
    admin.publish("nurserycry/hub/command", "reload-model")
    assert hub.received_until("nurserycry/hub/command", "reload-model") == [
        ("nurserycry/hub/command", "reload-model")
    ]
    edge.publish("nurserycry/nursery-1/features", "own-features")
    seen = admin.received_until("nurserycry/nursery-1/features", "own-features")
    assert ("nurserycry/hub/command", "reload-model") in seen  # it reads everything
    assert not [m for m in seen if m[1] == "forged-by-admin"]  # and writes only commands
