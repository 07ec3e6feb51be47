"""Real servers for tests: mosquitto, victoria-metrics and a NATS cluster on loopback.

Each is a small process manager that can be stopped and started again on the
same port (for outage tests). Fixtures in ``conftest.py`` wrap them.

A program a test needs that is not installed raises :class:`ServerMissing`
(:func:`require`); ``conftest.py`` turns it into a skip with the reason, or into a
failure under ``CI=true``, where ``.ci/run`` installs everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def terminate(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def find_binary(name: str, *extra: str) -> str | None:
    for candidate in (shutil.which(name), *extra):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class ServerMissing(Exception):  # noqa: N818 (a condition, not an error of the test)
    """A server or tool a test needs is not installed."""


def require(name: str, *extra: str, package: str | None = None) -> str:
    """The path of ``name`` (also tried: the ``extra`` paths), or :class:`ServerMissing`."""
    binary = find_binary(name, *extra)
    if binary is None:
        raise ServerMissing(f"{name} is not installed (apt-get install {package or name})")
    return binary


class Mosquitto:
    """A mosquitto broker; ``conf_extra`` lines are appended to its listener config."""

    def __init__(self, workdir: Path, conf_extra: str = "", port: int | None = None) -> None:
        self.binary = require("mosquitto", "/usr/sbin/mosquitto")
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        body = conf_extra or "allow_anonymous true\n"
        if "persistence " not in body:
            body += "\npersistence false\n"
        if "max_queued_messages" not in body:  # mosquitto drops QoS 1 past 1000 queued
            body += "\nmax_queued_messages 100000\n"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{body}\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=log
            )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class VictoriaMetrics:
    """victoria-metrics: accepts InfluxDB line protocol on ``/api/v2/write``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = require("victoria-metrics", "/usr/bin/victoria-metrics")
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.workdir / "vm.log").open("ab") as log:
            self.proc = self._spawn(log)
        wait_port(self.port)

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}",
                "-retentionPeriod=100y",
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ],
            stdout=log,
            stderr=log,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, object]]:
        """Every stored series (after a flush), as victoria-metrics' JSON lines."""
        import json
        from urllib.parse import quote

        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass
        url = f"{self.url}/api/v1/export?match[]={quote(match)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return [json.loads(line) for line in resp.read().decode().splitlines() if line]


class NatsCluster:
    """``size`` nats-server nodes on loopback: one cluster, JetStream, an MQTT listener each.

    ``mqtt_urls[i]`` is node i's MQTT address. ``kill(i)`` is a crash (SIGKILL);
    ``start(i)`` brings the node back with its JetStream store. ``conf_extra`` is
    appended to every node's config (e.g. a subject mapping or accounts); ``env`` is
    the servers' environment (a config reads ``$VAR`` from it).
    """

    def __init__(
        self,
        workdir: Path,
        size: int = 3,
        conf_extra: str = "",
        mqtt: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.binary = require("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
        self.workdir = workdir
        self.size = size
        self.client_ports = [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.mqtt_ports = [free_port() for _ in range(size)]
        self.mqtt_urls = [f"mqtt://127.0.0.1:{p}" for p in self.mqtt_ports]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        self.env = {"PATH": os.environ.get("PATH", ""), **(env or {})}
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        self.confs: list[Path] = []
        for i in range(size):
            node = workdir / f"n{i}"
            node.mkdir(parents=True, exist_ok=True)
            conf = node / "nats.conf"
            conf.write_text(
                f"server_name: n{i}\n"
                f"listen: 127.0.0.1:{self.client_ports[i]}\n"
                f"jetstream {{ store_dir: {json.dumps(str(node / 'js'))}, "
                "max_memory_store: 64MB, max_file_store: 1GB }\n"
                + (
                    f"cluster {{ name: nurserycry, listen: 127.0.0.1:{self.route_ports[i]}, "
                    f"routes: [{routes}] }}\n"
                    if size > 1
                    else ""
                )
                + f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]}\n{mqtt}\n}}\n"
                f"{conf_extra}\n"
            )
            self.confs.append(conf)

    def start(self, i: int | None = None) -> None:
        for n in range(self.size) if i is None else [i]:
            with (self.workdir / f"n{n}" / "nats.log").open("ab") as log:
                self.procs[n] = subprocess.Popen(
                    [self.binary, "-c", str(self.confs[n])], stdout=log, stderr=log, env=self.env
                )
        for n in range(self.size) if i is None else [i]:
            wait_port(self.mqtt_ports[n], timeout=30)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream has a meta leader and every node answers MQTT."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._jetstream_ok(n) for n in range(self.size) if self.procs[n]):
                return
            time.sleep(0.2)
        raise TimeoutError(f"NATS cluster not ready after {timeout}s: see {self.workdir}")

    def _jetstream_ok(self, n: int) -> bool:
        log = (self.workdir / f"n{n}" / "nats.log").read_text(errors="replace")
        if self.size == 1:
            return "Server is ready" in log
        return "JetStream cluster new metadata leader" in log or "Self is new JetStream" in log

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait()
            self.procs[i] = None

    def stop(self) -> None:
        for n, proc in enumerate(self.procs):
            if proc is not None:
                terminate(proc, 10)
                self.procs[n] = None


CLUSTER_ACCOUNT = Path(__file__).resolve().parents[1] / "compose/cluster/nats/nurserycry.conf"
CLUSTER_PASSWORDS = {"hub": "hub-secret", "edge": "edge-secret", "homeassistant": "ha-secret"}


def nurserycry_cluster(workdir: Path, ack_wait: str = "3s") -> NatsCluster:
    """Three nodes with compose/cluster's account (users, permissions, partition mapping,
    JetStream limits); MQTT as in compose/cluster/nats/nats.conf but a shorter ``ack_wait``."""
    return NatsCluster(
        workdir,
        conf_extra=CLUSTER_ACCOUNT.read_text(),
        mqtt=f'ack_wait: "{ack_wait}"\nmax_ack_pending: 256\nstream_replicas: 3\n'
        'consumer_inactive_threshold: "72h"',
        env={
            "NATS_HUB_PASSWORD": CLUSTER_PASSWORDS["hub"],
            "NATS_EDGE_PASSWORD": CLUSTER_PASSWORDS["edge"],
            "NATS_HA_PASSWORD": CLUSTER_PASSWORDS["homeassistant"],
        },
    )
