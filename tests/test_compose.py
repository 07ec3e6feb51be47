"""compose/: the files docker-compose reads validate, and agree with the code's settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from nurserycry.shared.config import ConfigError

from tests.servers import require

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose"
COMPOSE_FILE = COMPOSE / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE / "env.example"
SECRETS = (
    "MQTT_HUB_PASSWORD",
    "MQTT_HA_PASSWORD",
    "MQTT_ADMIN_PASSWORD",
    "INFLUXDB_PASSWORD",
    "INFLUXDB_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
)


def _env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _compose_config(
    env_file: Path, compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    require("docker-compose")
    # a clean environment: only the env file may supply values
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    return subprocess.run(
        ["docker-compose", "-f", str(compose_file), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    out = _compose_config(ENV_EXAMPLE)
    assert out.returncode == 0, out.stderr
    parsed: dict[str, Any] = yaml.safe_load(out.stdout)
    return parsed


def test_compose_config_validates_with_the_example_env(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"mosquitto", "influxdb", "grafana", "hub"}
    assert set(config["volumes"]) >= {"mosquitto-data", "influxdb-data", "grafana-data", "hub-data"}


def test_missing_secrets_stop_compose_with_a_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("TZ=UTC\n")
    out = _compose_config(empty)
    assert out.returncode != 0
    assert re.search(r"set (MQTT_HUB_PASSWORD|\w+) in compose/\.env", out.stderr), out.stderr


def test_example_env_defines_every_variable_and_secrets_are_not_committed() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    example = _env_file(ENV_EXAMPLE)
    assert used <= set(example), used - set(example)
    for key in SECRETS:
        assert "change-me" in example[key], key
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", "compose/.env"], cwd=ROOT, timeout=30, check=False
        )
        assert ignored.returncode == 0, "compose/.env must be git-ignored"


def test_influxdb_is_initialised_by_environment(config: dict[str, Any]) -> None:
    env = config["services"]["influxdb"]["environment"]
    example = _env_file(ENV_EXAMPLE)
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == example["INFLUXDB_ORG"]
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == example["INFLUXDB_BUCKET"]
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == example["INFLUXDB_TOKEN"]


def test_grafana_provisions_the_datasource_and_dashboard(config: dict[str, Any]) -> None:
    grafana = config["services"]["grafana"]
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in grafana["volumes"] if "/" in v}
    provisioning = mounts["/etc/grafana/provisioning"]
    dashboards = mounts["/var/lib/grafana/dashboards"]
    assert (provisioning / "datasources" / "influxdb.yml").is_file()
    assert (dashboards / "misery-meter.json").is_file()
    source = yaml.safe_load((provisioning / "datasources" / "influxdb.yml").read_text())
    ds = source["datasources"][0]
    assert ds["type"] == "influxdb"
    assert ds["jsonData"]["version"] == "Flux"
    assert ds["url"] == "http://influxdb:8086"
    # every ${VAR} the provisioning file reads is in Grafana's environment
    for var in re.findall(
        r"\$\{(\w+)\}", (provisioning / "datasources" / "influxdb.yml").read_text()
    ):
        assert var in grafana["environment"], var
    assert grafana["environment"]["INFLUXDB_TOKEN"] == _env_file(ENV_EXAMPLE)["INFLUXDB_TOKEN"]
    provider = yaml.safe_load((provisioning / "dashboards" / "nurserycry.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_mosquitto_requires_authentication(config: dict[str, Any]) -> None:
    conf = (COMPOSE / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    mounts = config["services"]["mosquitto"]["volumes"]
    assert any(v.endswith("/mosquitto/config/acl:ro") for v in mounts)
    start = (COMPOSE / "mosquitto" / "start.sh").read_text()
    assert "mosquitto_passwd -b" not in start  # passwords on stdin, never in argv
    # client ids are the user names: no nursery can take over the hub's session (#14.4)
    assert "use_username_as_clientid true" in conf


def test_hub_env_is_valid_hub_configuration(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings_mod = pytest.importorskip("nurserycry.hub.settings")
    hub = config["services"]["hub"]
    assert hub["build"]["dockerfile"] == "compose/hub.Dockerfile"
    env = {k: str(v) for k, v in hub["environment"].items() if k.startswith("NURSERYCRY_HUB_")}
    assert env["NURSERYCRY_HUB_MQTT__USERNAME"] == "hub"  # the ACL's hub user
    assert env["NURSERYCRY_HUB_MQTT__PASSWORD"] == _env_file(ENV_EXAMPLE)["MQTT_HUB_PASSWORD"]
    for key in [k for k in os.environ if k.startswith("NURSERYCRY_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value.replace("/var/lib/nurserycry", str(tmp_path)))
    with pytest.raises(ConfigError) as refused:  # the example secrets stop the hub (#14.13)
        settings_mod.HubSettings.load()
    assert "change-me" in str(refused.value) and "INFLUX__TOKEN" in str(refused.value)
    assert "NURSERYCRY_HUB_MQTT__PASSWORD" in str(refused.value)
    for key, value in env.items():
        if value.startswith("change-me"):
            monkeypatch.setenv(key, "a-real-" + key.lower())
    settings = settings_mod.HubSettings.load()
    assert settings.influx.url == "http://influxdb:8086"
    assert settings.mqtt.host == "mosquitto"
    assert settings.influx.token.get_secret_value() == "a-real-nurserycry_hub_influx__token"
    assert settings.client_id == settings.mqtt.username == "hub"  # use_username_as_clientid


def test_hub_image_copies_what_exists() -> None:
    dockerfile = (COMPOSE / "hub.Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                if "*" not in source:
                    assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["nurserycry", "hub"]' in dockerfile
    assert '".[hub]"' in dockerfile
    # pip install "." needs every package folder pyproject names (setuptools stops otherwise)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = {d.split("/")[0] for d in project["tool"]["setuptools"]["package-dir"].values()}
    ignore = (COMPOSE / "hub.Dockerfile.dockerignore").read_text().splitlines()
    for folder in folders:
        assert f"COPY {folder} {folder}" in dockerfile, folder
        assert f"!{folder}/" in ignore, folder


def test_readme_home_assistant_example_matches_the_hubs_discovery() -> None:
    discovery = pytest.importorskip("nurserycry.hub.discovery")
    from nurserycry.shared.topics import Topics

    readme = (COMPOSE / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    automation = next(yaml.safe_load(b) for b in blocks if "triggers:" in b)
    (trigger,) = automation["triggers"]
    entity = discovery.config(Topics(), "nursery-1", "crying")["default_entity_id"]
    assert trigger["entity_id"] == entity
    assert trigger["to"] == "on" and trigger["for"]["seconds"] > 0  # not the first whimper
    assert automation["actions"][0]["action"].startswith("notify.")
    for key, (component, _name, _extra) in discovery.ENTITIES.items():
        listed = discovery.config(Topics(), "nursery-1", key)["default_entity_id"]
        assert listed.startswith(component + ".")
        assert f"`{listed}`" in readme, listed


def test_mosquitto_start_script_writes_service_users_and_keeps_nurseries(tmp_path: Path) -> None:
    require("mosquitto_passwd", package="mosquitto")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "nursery-1", "n1"], check=True)
    env = {
        "PATH": os.environ["PATH"],
        "MOSQUITTO_DATA_DIR": str(tmp_path),
        "MOSQUITTO_CONF": "/nonexistent.conf",
        "MOSQUITTO_BIN": "true",  # stands in for mosquitto: exits 0
    }
    script = str(COMPOSE / "mosquitto" / "start.sh")
    missing = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0 and "MQTT_HUB_PASSWORD is not set" in missing.stderr
    env |= {"MQTT_HUB_PASSWORD": "hub-pw", "MQTT_HA_PASSWORD": "ha-pw"}
    env["MQTT_ADMIN_PASSWORD"] = "admin-pw"
    for _ in range(2):  # every container start rewrites them; idempotent
        out = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
    users = [line.split(":")[0] for line in passwd.read_text().splitlines()]
    assert sorted(users) == ["admin", "homeassistant", "hub", "nursery-1"]
    assert passwd.stat().st_mode & 0o077 == 0


def test_docker_waits_for_the_hubs_bounded_shutdown(config: dict[str, Any]) -> None:
    """Docker's default 10 s would SIGKILL a hub still flushing (#14 finding 12)."""
    from nurserycry.hub.sinks.influx import FLUSH_AT_STOP_S

    grace = str(config["services"]["hub"]["stop_grace_period"])
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", grace)
    assert match is not None and grace, grace
    seconds = 60 * int(match.group(1) or 0) + float(match.group(2) or 0)
    link_stop_s = 5.0  # MqttLink.stop waits this long for the offline message
    assert seconds >= FLUSH_AT_STOP_S + link_stop_s + 10


def recording_mosquitto_passwd(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose mosquitto_passwd records its arguments and standard input, then runs
    the real one with the same arguments and input."""
    real = require("mosquitto_passwd", package="mosquitto")
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    bindir.mkdir()
    fake = bindir / "mosquitto_passwd"
    fake.write_text(
        "#!/bin/sh\n"
        f'input=$(cat); echo "ARGS $*" >>{log}; echo "STDIN $input" >>{log}\n'
        f'printf "%s\\n" "$input" | {real} "$@"\n'
    )
    fake.chmod(0o755)
    return f"{bindir}:{os.environ['PATH']}", log


def test_mosquitto_start_script_refuses_example_passwords_and_keeps_them_off_argv(
    tmp_path: Path,
) -> None:
    path, log = recording_mosquitto_passwd(tmp_path)
    env = {
        "PATH": path,
        "MOSQUITTO_DATA_DIR": str(tmp_path),
        "MOSQUITTO_CONF": "/nonexistent.conf",
        "MOSQUITTO_BIN": "true",
        "MQTT_HUB_PASSWORD": "change-me-hub-password",
        "MQTT_HA_PASSWORD": "ha-secret",
        "MQTT_ADMIN_PASSWORD": "admin-secret",
    }
    script = str(COMPOSE / "mosquitto" / "start.sh")
    out = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "MQTT_HUB_PASSWORD" in out.stderr
    assert not (tmp_path / "passwd").exists()
    env["MQTT_HUB_PASSWORD"] = "hub-secret"
    out = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    args = [x for x in log.read_text().splitlines() if x.startswith("ARGS")]
    assert len(args) == 3 and not any("secret" in a for a in args)
    assert (tmp_path / "passwd").stat().st_mode & 0o077 == 0
