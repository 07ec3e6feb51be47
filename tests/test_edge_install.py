"""``nurserycry edge install-service`` into a temporary root: the unit (waiting for the
network and NTP), the bounded NTP wait, the env file the agent accepts; and the wheel
carries the templates, so a Pi needs no repository folder."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nurserycry.cli import main
from nurserycry.edge.settings import EdgeSettings

from tests.servers import require

ROOT = Path(__file__).resolve().parents[1]
UNIT = "etc/systemd/system/nurserycry-edge.service"
DROP_IN = "etc/systemd/system/systemd-time-wait-sync.service.d/nurserycry-edge.conf"
ENV = "etc/nurserycry/edge.env"
ARGS = ["--nursery", "nursery-1", "--broker", "mqtt://homeserver.local:1883"]


def _install(
    root: Path, *args: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ["--password-stdin"] if password is not None else []
    command = [sys.executable, "-m", "nurserycry", "edge", "install-service", "--root", str(root)]
    return subprocess.run(
        [*command, *ARGS, *extra, *args],
        input=(password or "") + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def _env(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k: v for k, _, v in pairs if k and not k.startswith("#")}


def test_writes_unit_ntp_wait_and_env_file_the_agent_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _install(tmp_path, "--device", "USB", password="s3cret-Pw")
    assert out.returncode == 0, out.stderr
    assert "systemctl daemon-reload && systemctl enable --now nurserycry-edge" in out.stdout

    unit = _unit((tmp_path / UNIT).read_text())
    wants, after = unit["Unit"]["Wants"].split(), unit["Unit"]["After"].split()
    for target in ("network-online.target", "time-sync.target"):
        assert target in wants and target in after
    assert "systemd-time-wait-sync.service" in wants  # pulled in: time-sync.target means NTP
    service = unit["Service"]
    assert service["ExecStart"] == f"{sys.executable} -m nurserycry edge"
    assert service["EnvironmentFile"] == "/" + ENV
    assert service["StateDirectory"] == "nurserycry"
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    drop_in = _unit((tmp_path / DROP_IN).read_text())
    assert drop_in["Service"]["TimeoutStartSec"] == "120"

    env_path = tmp_path / ENV
    assert env_path.stat().st_mode & 0o777 == 0o600
    env = _env(env_path)
    for key in [k for k in os.environ if k.startswith("NURSERYCRY_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = EdgeSettings.load()
    assert settings.nursery == settings.mqtt.username == "nursery-1"
    assert settings.mqtt.broker == "mqtt://homeserver.local:1883"
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "s3cret-Pw"
    assert settings.device == "USB"


def test_an_existing_env_file_is_kept_unless_forced(tmp_path: Path) -> None:
    assert _install(tmp_path, password="first").returncode == 0
    again = _install(tmp_path, "--time-sync-timeout-s", "30", password="second")
    assert again.returncode == 0, again.stderr
    assert "kept" in again.stdout
    assert _env(tmp_path / ENV)["NURSERYCRY_EDGE_MQTT__PASSWORD"] == "first"
    assert "TimeoutStartSec=30" in (tmp_path / DROP_IN).read_text()  # the unit files are renewed
    forced = _install(tmp_path, "--force", password="second")
    assert forced.returncode == 0, forced.stderr
    assert _env(tmp_path / ENV)["NURSERYCRY_EDGE_MQTT__PASSWORD"] == "second"
    # without a password the line stays a comment (a broker without passwords)
    bare = tmp_path / "bare"
    assert _install(bare).returncode == 0
    assert "NURSERYCRY_EDGE_MQTT__PASSWORD" not in _env(bare / ENV)


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["--nursery", "Nursery One"], None, "NURSERYCRY_EDGE_NURSERY"),
        (["--nursery", "hub"], None, "not 'hub'"),  # an agent could never run with it
        (["--broker", "ftp://x"], None, "NURSERYCRY_EDGE_MQTT__BROKER"),
        ([], "two words", "the password holds characters an env file cannot keep"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(
    tmp_path: Path, args: list[str], password: str | None, message: str
) -> None:
    out = _install(tmp_path, *args, password=password)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "etc").exists()


def test_the_written_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = require("systemd-analyze", package="systemd")
    assert main(["edge", "install-service", "--root", str(tmp_path), *ARGS]) == 0
    out = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "nurserycry-edge.service" not in out.stderr, out.stderr


@pytest.mark.slow
def test_the_wheel_carries_the_service_templates(tmp_path: Path) -> None:
    """A Pi installs a wheel or a git URL: the templates must be package data."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("nurserycry", "shared", "edge", "hub", "training", "demo"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = tmp_path.glob("nurserycry-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("nurserycry-edge.service", "time-wait-sync.conf", "edge.env"):
        assert f"nurserycry/edge/service/{template}" in names, sorted(names)


def test_the_pi_steps_in_compose_readme_work(tmp_path: Path) -> None:
    """The install-service command exactly as compose/README.md gives it, into a temp root;
    and no README sends a Pi to repository files it does not have."""
    readme = (ROOT / "compose" / "README.md").read_text()
    joined = readme.replace("\\\n", " ")
    (line,) = [
        x
        for x in joined.splitlines()
        if x.startswith("/opt/nurserycry/venv/bin/nurserycry edge install-service")
    ]
    args = line.split("nurserycry edge install-service", 1)[1].split()
    out = _install(tmp_path, *args, password="pw")
    assert out.returncode == 0, out.stderr
    assert "systemctl daemon-reload && systemctl enable --now nurserycry-edge" in readme
    for doc in ("README.md", "compose/README.md", "edge/README.md"):
        text = (ROOT / doc).read_text()
        assert "compose/edge/" not in text, doc
        assert "sudo apt" not in text and "sudo cp" not in text, doc
