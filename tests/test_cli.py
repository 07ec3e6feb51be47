"""The nurserycry command: subcommands, and roles imported lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nurserycry import cli


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("edge", "hub", "train", "evaluate", "classify", "demo", "report"):
        assert f"  {name}" in out


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_edge_never_imports_tensorflow_or_hub_dependencies() -> None:
    code = (
        "import sys\n"
        "from nurserycry import cli\n"
        "rc = cli.main(['edge', '--help'])\n"
        "bad = [m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'influxdb_client',"
        " 'matplotlib', 'nurserycry.hub', 'nurserycry.training') if m in sys.modules]\n"
        "print(rc, bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr


def test_installed_console_script() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nurserycry", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip()
