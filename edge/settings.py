"""The edge agent's configuration: flags > ``NURSERYCRY_EDGE_*`` env > ``--config`` > defaults.

MQTT settings are nested like the hub's (flag ``--broker``, env
``NURSERYCRY_EDGE_MQTT__BROKER``; ``--username``/``--password`` likewise).
Exactly one audio source: ``device`` (a PyAudio input by name or index),
``file`` or ``stdin``; with none of them the default microphone is used (what
the systemd unit does unless ``NURSERYCRY_EDGE_DEVICE`` is set).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from nurserycry.shared.config import (
    MQTT_SHORTCUTS,
    AudioFile,
    LogLevel,
    MqttSettings,
    RoleSettings,
)
from nurserycry.shared.schemas import NurseryId
from nurserycry.shared.settings_errors import conflict


def default_data_dir() -> Path:
    """systemd's ``StateDirectory`` when run as the service, else ~/.local/share."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    return Path("~/.local/share/nurserycry").expanduser()


class EdgeSettings(RoleSettings):
    """Everything ``nurserycry edge`` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="NURSERYCRY_EDGE_",
        extra="forbid",
        env_nested_delimiter="__",
        cli_shortcuts=MQTT_SHORTCUTS,
    )

    nursery: NurseryId = Field(description="this nursery's name: its MQTT topic level")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT client id (unset: nurserycry-edge-<nursery>-<host>-<pid>)",
    )

    # -- the audio source --------------------------------------------------
    device: str | None = Field(
        None, max_length=200, description="PyAudio input device: index or part of its name"
    )
    file: AudioFile | None = Field(
        None, description="WAV/FLAC file to stream instead of a microphone"
    )
    fast: bool = Field(False, description="with file: as fast as possible, not real time")
    start_time: float | None = Field(
        None, ge=1e9, le=4.1e9, description="with file: Unix time of its first sample"
    )
    stdin: bool = Field(False, description="read raw s16le PCM from standard input")
    rate: int | None = Field(
        None,
        ge=8000,
        le=192_000,
        description="sample rate of stdin PCM, or the microphone's (unset: 16 kHz if "
        "the card offers it, else its default rate)",
    )
    channels: int = Field(
        1, ge=1, le=32, description="channels of stdin PCM / opened on the device (mixed)"
    )
    gain_db: float = Field(0.0, ge=-40, le=60, description="gain applied before the frontend, dB")
    block_ms: int = Field(100, ge=10, le=1000, description="audio block length, ms")

    # -- what goes on the wire --------------------------------------------
    frames_per_message: int = Field(
        25, ge=1, le=500, description="feature frames per MQTT message (25 = 0.5 s)"
    )
    status_interval_s: float = Field(5.0, ge=0.5, le=3600, description="EdgeStatus period, s")

    # -- buffers ----------------------------------------------------------
    ring_seconds: float = Field(
        10.0, ge=0.5, le=600, description="audio held between capture and processing, s"
    )
    spool: Path | None = Field(
        None, description="spool database (unset: <data dir>/edge-<nursery>.spool)"
    )
    spool_max_mb: float = Field(
        100.0, ge=0.01, le=100_000, description="spool bound, MB; beyond it the oldest go first"
    )
    spool_sync_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="0: every message on disk before it is sent; > 0: write-behind, only "
        "messages unacknowledged this long reach the disk (spares an SD card)",
    )
    inflight: int = Field(32, ge=1, le=100, description="QoS 1 messages awaiting PUBACK")
    flush_timeout_s: float = Field(
        5.0, ge=0, le=600, description="on SIGTERM: longest wait to send what is spooled, s"
    )
    clips: bool = Field(
        False, description="allow raw FLAC clips on request (raw audio leaves the nursery)"
    )
    clip_seconds: float = Field(
        30.0, ge=1, le=60, description="pre-roll kept for clips, and a request's default, s"
    )
    stall_s: float = Field(
        15.0, ge=1, le=3600, description="exit 1 when a microphone delivers nothing this long, s"
    )
    log_level: LogLevel = "INFO"

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [n for n, v in (("device", self.device), ("file", self.file)) if v is not None]
        if self.stdin:
            given.append("stdin")
        if len(given) > 1:
            raise conflict(f"choose one audio source, not {' and '.join(given)}", *given)
        if self.stdin and self.rate is None:
            object.__setattr__(self, "rate", 16_000)
        if (self.fast or self.start_time is not None) and self.file is None:
            raise conflict("fast and start_time apply to a file only", "file", "fast", "start_time")
        return self

    @property
    def source_kind(self) -> Literal["microphone", "file", "stdin"]:
        if self.file is not None:
            return "file"
        return "stdin" if self.stdin else "microphone"

    @property
    def spool_path(self) -> Path:
        return self.spool or default_data_dir() / f"edge-{self.nursery}.spool"

    @property
    def mqtt_client_id(self) -> str:
        """Unique per host and process by default, so two agents for one nursery (a Pi
        and a laptop test) never take each other's connection (#14.1). The agent's
        session is clean: nothing is lost by a new id after a restart."""
        if self.client_id:
            return self.client_id
        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:20] or "host"
        return f"nurserycry-edge-{self.nursery}-{host}-{os.getpid()}"
