"""Real servers for tests: mosquitto and victoria-metrics on free loopback ports.

Each is a small process manager that can be stopped and started again on the
same port (for outage tests). Fixtures in ``conftest.py`` wrap them.

A program a test needs that is not installed raises :class:`ServerMissing`
(:func:`require`); ``conftest.py`` turns it into a skip with the reason, or into a
failure under ``CI=true``, where ``.ci/run`` installs everything.
"""

from __future__ import annotations

import contextlib
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
