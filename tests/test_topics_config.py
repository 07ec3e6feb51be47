"""Topics and typed configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from nurserycry.shared.config import MqttSettings, RoleSettings
from nurserycry.shared.errors import ConfigError, TopicError
from nurserycry.shared.topics import Topics


def test_topic_layout_and_parse() -> None:
    t = Topics(prefix="home/nc")
    assert t.nursery("nursery-1", "features") == "home/nc/nursery-1/features"
    assert t.all_nurseries("features") == "home/nc/+/features"
    assert t.hub("availability") == "home/nc/hub/availability"
    assert t.parse("home/nc/nursery-1/features") == ("nursery-1", "features")
    assert t.parse("home/nc/hub/status") is None
    assert t.parse("other/nursery-1/features") is None
    assert t.parse("home/nc/a/b/features") is None
    assert t.discovery("binary_sensor", "n1", "crying") == (
        "homeassistant/binary_sensor/nurserycry_n1/crying/config"
    )


@pytest.mark.parametrize("name", ["+", "#", "a/b", "hub", "", "Upper", "x" * 49, "a b", "é"])
def test_nursery_names_cannot_inject_topics(name: str) -> None:
    with pytest.raises(TopicError, match="invalid nursery name"):
        Topics().nursery(name, "features")


def test_bad_prefix() -> None:
    with pytest.raises(TopicError):
        Topics(prefix="a/+/b")


class DemoSettings(RoleSettings):
    model_config = SettingsConfigDict(
        env_prefix="NURSERYCRY_TEST_", extra="forbid", env_nested_delimiter="__"
    )
    mqtt: MqttSettings = MqttSettings()
    gain_db: float = Field(0.0, ge=-20, le=40, description="microphone gain")


def test_precedence_flags_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("gain_db: 3\nmqtt:\n  broker: mqtt://from-file:1884\n")
    s = DemoSettings.load(cfg)
    assert s.gain_db == 3 and s.mqtt.host == "from-file" and s.mqtt.port == 1884
    monkeypatch.setenv("NURSERYCRY_TEST_GAIN_DB", "6")
    assert DemoSettings.load(cfg).gain_db == 6
    assert DemoSettings.load(cfg, gain_db=9).gain_db == 9
    toml = tmp_path / "c.toml"
    toml.write_text('[mqtt]\nbroker = "mqtts://secure:8883"\n')
    assert DemoSettings.load(toml).mqtt.tls


def test_bad_config_message_names_field_flag_and_env(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        DemoSettings.load(None, gain_db=99, mqtt={"broker": "http://x"})
    text = str(info.value)
    assert "gain_db" in text and "--gain-db" in text and "NURSERYCRY_TEST_GAIN_DB" in text
    assert "mqtt.broker" in text and "mqtt://" in text
    with pytest.raises(ConfigError, match="not found"):
        DemoSettings.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gain_db: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        DemoSettings.load(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("gainn_db: 3\n")
    with pytest.raises(ConfigError, match="gainn_db"):
        DemoSettings.load(unknown)


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [("mqtt://h:1", "h", 1, False), ("mqtts://h", "h", 8883, True), ("h", "h", 1883, False)],
)
def test_broker_urls(url: str, host: str, port: int, tls: bool) -> None:
    m = MqttSettings(broker=url)
    assert (m.host, m.port, m.tls) == (host, port, tls)


@pytest.mark.parametrize("url", ["http://h", "mqtt://:1883", "mqtt://h:99999", "mqtt://h:x"])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(ValueError, match="broker"):
        MqttSettings(broker=url)
