"""HubSettings: flags > env > file > defaults, per-nursery episode rules, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurserycry.hub.cli import load_settings, parser
from nurserycry.hub.counters import Counters
from nurserycry.hub.engine import Engine
from nurserycry.hub.settings import HubSettings
from nurserycry.shared.errors import ConfigError

from tests.test_hub_support import FakeModel


def load(argv: list[str]) -> HubSettings:
    return load_settings(parser().parse_args(argv))


def test_precedence_flag_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "mqtt:\n  broker: mqtt://file-host:1883\n  username: file-user\n"
        "influx:\n  bucket: from-file\nstate_interval_s: 7\n"
    )
    monkeypatch.setenv("NURSERYCRY_HUB_MQTT__USERNAME", "env-user")
    monkeypatch.setenv("NURSERYCRY_HUB_INFLUX__BUCKET", "from-env")
    s = load(["--config", str(config), "--broker", "mqtt://flag-host:1884"])
    assert s.mqtt.broker == "mqtt://flag-host:1884"  # flag
    assert s.mqtt.username == "env-user"  # env over file, merged with the flag
    assert s.influx.bucket == "from-env"
    assert s.state_interval_s == 7  # file
    assert s.keep_history  # no InfluxDB: local history


def test_per_nursery_episode_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "NURSERYCRY_HUB_NURSERIES", '{"noisy": {"episodes": {"onset_n": 3, "onset_m": 4}}}'
    )
    monkeypatch.setenv("NURSERYCRY_HUB_DETECTOR__EPISODES__RELEASE_S", "9")
    s = load([])
    assert s.detector_for("noisy").episodes.onset_n == 3
    assert s.detector_for("other").episodes.release_s == 9
    engine = Engine(FakeModel(), s.detector_for, Counters())
    assert engine._detector("noisy").config.episodes.onset_m == 4
    # window and hop always come from the model
    assert engine._detector("other").config.window_frames == 50


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"NURSERYCRY_HUB_NURSERIES": '{"Bad Name": {}}'}, "invalid nursery name"),
        (
            {"NURSERYCRY_HUB_DETECTOR__EPISODES__ONSET_N": "5"},
            "onset_n (5) cannot exceed onset_m",
        ),
        ({"NURSERYCRY_HUB_HISTORY__MODE": "sometimes"}, "NURSERYCRY_HUB_HISTORY__MODE"),
    ],
)
def test_bad_values_name_the_setting(
    env: dict[str, str], text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load([])
    assert text in str(err.value)
