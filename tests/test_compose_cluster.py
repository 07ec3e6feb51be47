"""compose/cluster/: the compose file and the NATS configs parse, and the hubs agree with
the broker (every partition owned once, the same partition count, reordering that
outlasts the broker's ack_wait). tests/test_cluster.py runs the account in a cluster."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nurserycry.hub.settings import HubSettings
from nurserycry.shared.topics import parse_partitions

from tests.servers import require
from tests.test_compose import _compose_config, _env_file

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "compose" / "cluster"
COMPOSE_FILE = CLUSTER / "docker-compose.yml"
ENV_EXAMPLE = CLUSTER / "env.example"
NATS_CONF = CLUSTER / "nats" / "nats.conf"
ACCOUNT = CLUSTER / "nats" / "nurserycry.conf"
HUBS = ("hub-1", "hub-2")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    out = _compose_config(ENV_EXAMPLE, COMPOSE_FILE)
    assert out.returncode == 0, out.stderr
    parsed: dict[str, Any] = yaml.safe_load(out.stdout)
    return parsed


def test_cluster_compose_validates(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"nats-1", "nats-2", "nats-3", "influxdb", "grafana", *HUBS}
    names = [config["services"][f"nats-{i}"]["environment"]["NATS_NAME"] for i in (1, 2, 3)]
    assert names == ["nats-1", "nats-2", "nats-3"]
    routes = re.findall(r"nats-route://(nats-\d):6222", NATS_CONF.read_text())
    assert routes == names
    for mount in config["services"]["grafana"]["volumes"]:
        source = mount.split(":")[0]
        assert "/" not in source or Path(source).exists(), mount


def test_missing_secrets_stop_compose_with_a_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("TZ=UTC\n")
    out = _compose_config(empty, COMPOSE_FILE)
    assert out.returncode != 0
    assert re.search(r"set \w+ in compose/cluster/\.env", out.stderr), out.stderr


def _hub_settings(
    config: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> HubSettings:
    env = config["services"][name]["environment"]
    for key in [k for k in os.environ if k.startswith("NURSERYCRY_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("NURSERYCRY_HUB_"):
            text = str(value).replace("/var/lib/nurserycry", str(tmp_path))
            # the example secrets are refused at start-up (tested in test_compose.py)
            real = "a-real-" + key.lower() if text.startswith("change-me") else text
            monkeypatch.setenv(key, real)
    return HubSettings.load()


def test_hubs_own_every_partition_once_with_the_brokers_count(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (count,) = re.findall(r"\{\{partition\((\d+),1\)\}\}", ACCOUNT.read_text())
    ack_wait = re.search(r'ack_wait: "(\d+)s"', NATS_CONF.read_text())
    assert ack_wait is not None
    owned: list[int] = []
    ids = set()
    for name in HUBS:
        settings = _hub_settings(config, name, monkeypatch, tmp_path)
        assert settings.mqtt.partition_count == int(count)
        assert [h for h, _p in settings.mqtt.addresses] == ["nats-1", "nats-2", "nats-3"]
        assert settings.mqtt.username == "hub"
        assert settings.reorder_wait_s > int(ack_wait.group(1))
        assert settings.influx.url == "http://influxdb:8086"
        assert settings.keep_history
        owned += settings.mqtt.owned
        ids.add(settings.client_id)
    assert sorted(owned) == list(range(int(count)))
    assert len(ids) == len(HUBS)
    assert parse_partitions("0-31", int(count)) == tuple(range(32))


def test_nats_configs_parse(tmp_path: Path) -> None:
    binary = require("nats-server", "/usr/sbin/nats-server")
    env = {"PATH": os.environ.get("PATH", ""), "NATS_NAME": "nats-1"}
    env |= dict.fromkeys(re.findall(r"password: \$(\w+)", ACCOUNT.read_text()), "secret")
    out = subprocess.run(
        [binary, "-t", "-c", str(NATS_CONF)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # the secrets must come from the environment: without them the config is refused
    out = subprocess.run(
        [binary, "-t", "-c", str(NATS_CONF)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": env["PATH"], "NATS_NAME": "nats-1"},
        check=False,
    )
    assert out.returncode != 0
    example = _env_file(ENV_EXAMPLE)
    for key in re.findall(r"password: \$(\w+)", ACCOUNT.read_text()):
        assert "change-me" in example[key], key
