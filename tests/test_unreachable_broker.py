"""A broker that is not there (refused port, unknown host): hub and edge say so at every
attempt, with the backoff, and what they do meanwhile; ``edge --file`` says what it waits for."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nurserycry.edge.spool import Spool
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink

from tests.servers import Mosquitto, free_port, require
from tests.test_edge_helpers import edge_env, tone_noise, write_wav

ATTEMPT_WAIT = re.compile(r"retrying the connection in (\d+) s")
ATTEMPT = re.compile(
    r"^(\S+ \S+) WARNING .*\(attempt (\d+)\); retrying the connection in (\d+) s", re.M
)


def _start(args: list[str], log: Path, home: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "nurserycry", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=edge_env(HOME=str(home)),
        )


def _wait_for(log: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} within {timeout} s:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()


def _attempts(text: str) -> list[tuple[int, int]]:
    """(attempt, announced wait) per line; checks each wait against the next line's time."""
    found = [
        (dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f"), int(n), int(wait))
        for t, n, wait in ATTEMPT.findall(text)
    ]
    for (t0, _n, wait), (t1, _m, _w) in itertools.pairwise(found):
        gap = (t1 - t0).total_seconds()
        assert abs(gap - wait) < 0.8, f"announced {wait} s, next attempt after {gap:.1f} s"
    return [(n, wait) for _t, n, wait in found]


@pytest.mark.timeout(60)
def test_edge_file_on_a_refused_port_logs_backoff_spools_and_says_what_it_waits_for(
    tmp_path: Path,
) -> None:
    wav = write_wav(tmp_path / "x.wav", tone_noise(3.0))
    spool = tmp_path / "edge.spool"
    broker = f"mqtt://127.0.0.1:{free_port()}"
    log = tmp_path / "edge.log"
    args = ["edge", "--broker", broker, "--nursery", "n1", "--spool", str(spool)]
    proc = _start([*args, "--file", str(wav), "--fast"], log, tmp_path)
    try:
        text = _wait_for(log, r"\(attempt 3\)", timeout=20)
        text = _wait_for(log, "waiting for the broker", timeout=10)
    finally:
        rc = _stop(proc)
    assert rc == 0, text
    attempts = _attempts(text)
    # one line per attempt, the wait doubling: a backoff, not a flood
    assert attempts[:3] == [(1, 3), (2, 4), (3, 8)], text
    assert len(attempts) == 3, text
    assert f"broker {broker}: cannot connect:" in text
    assert "refused" in text.lower()
    assert "spooling features meanwhile" in text
    waiting = re.search(r"waiting for the broker \S+ \(not connected\) to acknowledge (\d+)", text)
    assert waiting, text
    assert "Traceback" not in text
    # the whole file (3 s: 6 messages) stays in the spool for the next run
    kept = Spool(spool, 10**6)
    try:
        assert kept.depth == int(waiting.group(1)) == 6
    finally:
        kept.close()


@pytest.mark.timeout(60)
def test_hub_with_an_unknown_broker_host_logs_every_attempt(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    broker = "mqtt://no-such-broker.invalid:1883"
    proc = _start(["hub", "--broker", broker], log, tmp_path)
    try:
        text = _wait_for(log, r"\(attempt 2\)", timeout=30)
    finally:
        rc = _stop(proc)
    assert rc == 0, text
    assert "hub started" in text
    assert f"broker {broker}: cannot connect:" in text
    assert _attempts(text) == [(1, 3), (2, 4)], text
    assert "Traceback" not in text


@pytest.mark.timeout(60)
def test_after_a_lost_connection_each_announced_wait_is_the_real_one(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    link = MqttLink(MqttSettings(broker=mosquitto.url), "lost", min_backoff_s=1, max_backoff_s=4)
    link.start()
    try:
        assert link.wait_connected(10)
        with caplog.at_level(logging.WARNING, logger="nurserycry.shared.mqtt"):
            mosquitto.stop()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                failed = [r for r in caplog.records if "retrying the connection" in r.message]
                if len(failed) >= 4:
                    break
                time.sleep(0.1)
    finally:
        link.stop()
    waits = [int(ATTEMPT_WAIT.search(r.message).group(1)) for r in failed]  # type: ignore[union-attr]
    assert waits[:4] == [2, 4, 4, 4], [r.message for r in failed]  # doubling, capped
    for before, after, wait in zip(failed, failed[1:], waits, strict=False):
        assert abs(after.created - before.created - wait) < 0.8


@pytest.mark.timeout(60)
def test_edge_with_a_wrong_password_says_the_broker_refused_it(tmp_path: Path) -> None:
    passwd_tool = require("mosquitto_passwd", package="mosquitto")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd_tool, "-b", "-c", str(pwfile), "n1", "right"], check=True)
    conf = f"user root\nallow_anonymous false\npassword_file {pwfile}\n"
    broker = Mosquitto(tmp_path / "mq", conf_extra=conf)
    broker.start()
    log = tmp_path / "edge.log"
    wav = write_wav(tmp_path / "x.wav", tone_noise(1.0))
    args = ["edge", "--broker", broker.url, "--nursery", "n1", "--spool", str(tmp_path / "s")]
    try:
        proc = _start(
            [*args, "--username", "n1", "--password", "wrong", "--file", str(wav)], log, tmp_path
        )
        try:
            text = _wait_for(log, r"\(attempt 3\)", timeout=20)
        finally:
            rc = _stop(proc)
    finally:
        broker.stop()
    assert rc == 0, text
    assert f"broker {broker.url}: the broker refused the connection: Not authorized" in text
    assert _attempts(text)[:3] == [(1, 1), (2, 2), (3, 4)], text
    assert "spooling features meanwhile" in text
