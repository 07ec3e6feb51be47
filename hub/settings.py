"""The hub's configuration: flags > ``NURSERYCRY_HUB_*`` env > ``--config`` file > defaults.

Sections nest (Frigate's style): ``mqtt``, ``influx``, ``history``, ``clips``,
``detector``; in the environment with ``__`` (``NURSERYCRY_HUB_INFLUX__URL``), as
flags with ``-`` (``--influx-url``), in the file as mappings (``influx: {url: ...}``).
Without ``influx.url`` the hub keeps a local SQLite history instead (``history.db``).
Flags and ``--help`` are generated from these models (:mod:`nurserycry.shared.settings_cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from nurserycry.shared.config import (
    MQTT_SHORTCUTS,
    LogLevel,
    MqttSettings,
    RoleSettings,
    refuse_example,
)
from nurserycry.shared.detector import DetectorConfig
from nurserycry.shared.model import ModelMetadata, default_model_dir
from nurserycry.shared.topics import MAX_PARTITIONS, check_nursery, parse_partitions

DATA_DIR = Path("~/.local/share/nurserycry").expanduser()


class InfluxSettings(BaseModel):
    """InfluxDB 2 output (off while ``url`` is unset)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, max_length=500, description="InfluxDB URL, e.g. http://localhost:8086 (unset: off)"
    )
    org: str = Field("nurserycry", min_length=1, max_length=200, description="organisation")
    bucket: str = Field("nurserycry", min_length=1, max_length=200, description="bucket")
    token: SecretStr | None = Field(
        None, max_length=4096, description="API token with write access"
    )
    batch: int = Field(500, ge=1, le=50_000, description="points per write")
    flush_s: float = Field(1.0, gt=0, le=60, description="longest wait before a write, s")
    timeout_s: float = Field(10.0, gt=0, le=300, description="HTTP timeout per write, s")
    memory_points: int = Field(
        20_000, ge=100, le=10_000_000, description="points held in memory before spilling to disk"
    )
    spool: Path = Field(
        DATA_DIR / "influx-spool.sqlite", description="on-disk queue while InfluxDB is down"
    )
    spool_points: int = Field(
        2_000_000,
        ge=1000,
        le=1_000_000_000,
        description="disk bound (~150 bytes a point); beyond it the oldest are dropped",
    )

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_example(value)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("influx.url must start with http:// or https://")
        return value


class HistorySettings(BaseModel):
    """The local SQLite history that ``nurserycry report`` draws."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: keep the local history only when influx.url is unset"
    )
    db: Path = Field(DATA_DIR / "history.sqlite", description="SQLite file of the local history")
    days: float = Field(60, gt=0, le=36_500, description="history older than this is deleted")


class ClipsSettings(BaseModel):
    """Clips of alerts, asked of edges that allow them (off while ``dir`` is unset)."""

    model_config = ConfigDict(extra="forbid")

    dir: Path | None = Field(
        None,
        description="keep a clip of every alert here (the edge must have clips on too); "
        "unset: no clips are asked for",
    )
    seconds: float = Field(
        30, ge=1, le=60, description="seconds of audio up to the alert to ask the edge for"
    )
    keep: int = Field(200, ge=1, le=100_000, description="clips kept per nursery")


class HubMqttSettings(MqttSettings):
    """The hub's broker settings; ``partitions`` turns on sharding over a NATS cluster."""

    partition_count: int = Field(
        32,
        ge=1,
        le=MAX_PARTITIONS,
        description="partitions in the broker's mapping {{partition(COUNT,1)}}; the same on "
        "every hub and the broker",
    )
    partitions: str | None = Field(
        None,
        max_length=4000,
        description="partitions this hub owns, e.g. 0-7 or 0,2,9-12 (a NATS cluster maps "
        "each nursery to one; see compose/cluster); unset: every nursery, one session",
    )

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, value: str | None, info: ValidationInfo) -> str | None:
        count = info.data.get("partition_count")
        if value is not None and count is not None:
            parse_partitions(value, count)  # raises a clear error
        return value

    @property
    def owned(self) -> tuple[int, ...]:
        """The partitions owned; empty when not partitioned."""
        if self.partitions is None:
            return ()
        return parse_partitions(self.partitions, self.partition_count)


class HubSettings(RoleSettings):
    """Everything ``nurserycry hub`` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="NURSERYCRY_HUB_",
        extra="forbid",
        env_nested_delimiter="__",
        cli_shortcuts={
            **MQTT_SHORTCUTS,
            "history.mode": "history",
            "mqtt.partitions": "partitions",
            "mqtt.partition_count": "partition-count",
        },
    )

    mqtt: HubMqttSettings = Field(default_factory=HubMqttSettings)
    client_id: str = Field(
        "nurserycry-hub",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="stable MQTT client id: the broker keeps this session's QoS 1 messages",
    )

    model: Path | None = Field(None, description="model directory (unset: the shipped model)")
    model_poll_s: float = Field(
        3.0, ge=0.2, le=3600, description="how often to check the model's files, s"
    )

    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    clips: ClipsSettings = Field(default_factory=ClipsSettings)
    episode_state: Path | None = Field(
        None,
        description="open episodes and cooldowns, kept across restarts "
        "(unset: episodes.json next to history.db)",
    )

    detector: DetectorConfig = Field(
        default_factory=DetectorConfig,
        description="labels and episode rule for every nursery (window/hop come from the model)",
    )
    nurseries: dict[str, DetectorConfig] = Field(
        default_factory=dict, description="per-nursery overrides of `detector`"
    )

    detections: bool = Field(True, description="publish a Detection per window")
    state_interval_s: float = Field(
        60.0, ge=0, le=3600, description="retained state when nothing changed: this often"
    )
    microphone_silent_s: float = Field(
        120.0,
        ge=5,
        le=3600,
        description="a nursery sending nothing but digital zeros this long has a silent "
        "microphone (a problem sensor in Home Assistant and a WARNING)",
    )
    status_interval_s: float = Field(10.0, ge=1, le=3600, description="HubStatus period, s")
    queue_size: int = Field(
        20_000, ge=100, le=1_000_000, description="messages queued between MQTT and processing"
    )
    reorder_messages: int = Field(
        8, ge=0, le=1000, description="messages held waiting for a missing one before a gap"
    )
    reorder_wait_s: float = Field(2.0, ge=0, le=60, description="longest hold for a missing one")
    stream_idle_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="a nursery's stream silent this long gives way to another one at once",
    )
    max_clock_ahead_s: float = Field(
        300.0,
        ge=1,
        le=86_400,
        description="capture times further ahead of the hub's clock are moved to it",
    )
    allowed_nurseries: str | None = Field(
        None,
        max_length=50_000,
        description="comma-separated nursery names: only these are heard "
        "(unset: any, up to max_nurseries)",
    )
    max_nurseries: int = Field(
        200, ge=1, le=100_000, description="most nurseries heard (and announced to HA) at once"
    )
    edge_offline_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="an edge offline this long, sending nothing, ends its episode",
    )
    log_level: LogLevel = "INFO"

    @field_validator("mqtt", mode="before")
    @classmethod
    def _any_mqtt(cls, value: object) -> object:
        """Take a role-neutral :class:`MqttSettings` too (e.g. the demo's broker)."""
        if isinstance(value, MqttSettings) and not isinstance(value, HubMqttSettings):
            return dict(value)
        return value

    @field_validator("model")
    @classmethod
    def _model_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"model directory not found: {value}")
        return value

    @field_validator("nurseries")
    @classmethod
    def _names(cls, value: dict[str, DetectorConfig]) -> dict[str, DetectorConfig]:
        for name in value:
            check_nursery(name)
        return value

    @field_validator("allowed_nurseries")
    @classmethod
    def _allowed(cls, value: str | None) -> str | None:
        for name in _names(value or ""):
            check_nursery(name)
        return value

    @property
    def allowed(self) -> list[str] | None:
        return None if self.allowed_nurseries is None else _names(self.allowed_nurseries)

    @property
    def episode_state_path(self) -> Path:
        return self.episode_state or self.history.db.with_name("episodes.json")

    def derived(self) -> dict[str, str]:
        """What unset settings resolve to at start-up, for ``--validate-config``."""
        model = self.model or default_model_dir()
        try:
            version = ModelMetadata.read(model).model_version
        except (OSError, ValueError) as exc:
            version = f"unreadable: {exc}"
        return {
            "model": f"{model} ({version})",
            "episode_state": str(self.episode_state_path),
            "history kept in SQLite": "yes" if self.keep_history else "no (InfluxDB is set)",
        }

    @property
    def keep_history(self) -> bool:
        mode = self.history.mode
        return mode == "on" or (mode == "auto" and self.influx.url is None)

    def detector_for(self, nursery: str) -> DetectorConfig:
        return self.nurseries.get(nursery, self.detector)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]
