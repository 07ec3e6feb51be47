"""Where a server is not installed, every test that needs it skips with the reason
(in a fixture or in the test body alike); under ``CI=true`` each of them fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Real fixtures and server classes, with nothing installed.
PROBE = """
import pytest
from tests import servers

@pytest.fixture(autouse=True)
def _nothing_installed(monkeypatch):
    monkeypatch.setattr(servers, "find_binary", lambda *names: None)

def test_mosquitto_fixture(mosquitto):
    pass

def test_victoria_fixture(victoria):
    pass

def test_mosquitto_in_the_body(tmp_path):
    servers.Mosquitto(tmp_path).start()

def test_a_tool(tmp_path):
    servers.require("mosquitto_passwd", package="mosquitto")

def test_unrelated_failure_still_fails():
    raise RuntimeError("a real bug")
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-rA", "-q", str(probe)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ci", [None, "false"])
def test_locally_every_test_needing_a_server_skips_with_the_reason(
    tmp_path: Path, ci: str | None
) -> None:
    out = _run(tmp_path, ci)
    text = out.stdout + out.stderr
    assert "4 skipped" in text and "1 failed" in text, text
    assert "error" not in text.splitlines()[-1], text
    for reason in (
        "mosquitto is not installed (apt-get install mosquitto)",
        "victoria-metrics is not installed (apt-get install victoria-metrics)",
        "mosquitto_passwd is not installed (apt-get install mosquitto)",
    ):
        assert reason in text, text


def test_under_ci_every_test_needing_a_server_fails(tmp_path: Path) -> None:
    out = _run(tmp_path, "true")
    text = out.stdout + out.stderr
    assert out.returncode == 1
    # (a fixture that fails is an error of the test's setup)
    assert "3 failed, 2 errors" in text and "skipped" not in text, text
    assert text.count("; CI=true: a test that needs it must run, not skip") >= 4, text
    assert "During handling" not in text, text
