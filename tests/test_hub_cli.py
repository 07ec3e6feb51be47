"""``nurserycry hub`` as a subprocess: a bad config exits non-zero with a readable message;
SIGTERM stops it cleanly (exit 0), says offline and flushes InfluxDB and the history."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nurserycry.shared.model import default_model_dir

from tests.servers import Mosquitto, VictoriaMetrics
from tests.test_hub_support import Edge, Watcher

ROOT = Path(__file__).resolve().parents[1]


def run_hub(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nurserycry", "hub", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "HOME": str(tmp_path), **env},
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--broker", "ftp://host"],
            {},
            ["mqtt.broker", "--broker", "NURSERYCRY_HUB_MQTT__BROKER"],
        ),
        ([], {"NURSERYCRY_HUB_INFLUX__URL": "influx:8086"}, ["influx.url", "http://"]),
        ([], {"NURSERYCRY_HUB_STATUS_INTERVAL_S": "0"}, ["status_interval_s"]),
        (["--model", "/nonexistent/model"], {}, ["model directory not found", "--model"]),
        (["--config", "/nonexistent/hub.yaml"], {}, ["config file not found"]),
    ],
)
def test_bad_config_exits_2_with_a_readable_message(
    args: list[str], env: dict[str, str], expected: list[str], tmp_path: Path
) -> None:
    out = run_hub(args, tmp_path, **env)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    for text in expected:
        assert text in out.stderr


def test_config_file_values_are_used(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("mqtt:\n  broker: mqtt://localhost:1883\nstatus_interval_s: -5\n")
    out = run_hub(["--config", str(config)], tmp_path)
    assert out.returncode == 2
    assert "status_interval_s" in out.stderr
    assert str(config) in out.stderr


def test_help_names_every_env_variable(tmp_path: Path) -> None:
    out = run_hub(["--help"], tmp_path)
    assert out.returncode == 0
    for env in (
        "NURSERYCRY_HUB_MQTT__BROKER",
        "NURSERYCRY_HUB_INFLUX__TOKEN",
        "NURSERYCRY_HUB_MODEL",
    ):
        assert env in out.stdout


@pytest.mark.servers
@pytest.mark.skipif(
    not (default_model_dir() / "model.tflite").is_file()
    and not os.environ.get("NURSERYCRY_HUB_MODEL"),
    reason="no shipped model yet (NURSERYCRY_HUB_MODEL can name another)",
)
def test_sigterm_stops_cleanly_and_flushes(
    mosquitto: Mosquitto, victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    history = tmp_path / "history.sqlite"
    watcher = Watcher(mosquitto)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nurserycry",
            "hub",
            "--broker",
            mosquitto.url,
            "--influx-url",
            victoria.url,
            "--history",
            "on",
            "--history-db",
            str(history),
            "--influx-spool",
            str(tmp_path / "spool.sqlite"),
        ],
        cwd=ROOT,
        env={**os.environ, "HOME": str(tmp_path), "NURSERYCRY_HUB_INFLUX__FLUSH_S": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    edge = Edge(mosquitto, "n1")
    try:
        watcher.wait("nurserycry/hub/availability", 1, timeout=60)
        for seq in range(20):
            edge.send(seq, crying=seq >= 10)
        watcher.wait("nurserycry/n1/detection", 19, timeout=30)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        edge.stop()
    assert proc.returncode == 0, err
    assert watcher.wait("nurserycry/hub/availability", 2)[-1] == b"offline"
    watcher.stop()
    with sqlite3.connect(history) as db:
        assert db.execute("SELECT count(*) FROM windows").fetchone()[0] == 19
    db.close()
    # the flush interval was 30 s: these points were written by the stop, not by the timer
    series = victoria.export('{__name__="nurserycry_window_cry_probability"}')
    assert sum(len(s["timestamps"]) for s in series) == 19  # type: ignore[arg-type]
