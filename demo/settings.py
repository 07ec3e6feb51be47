"""``nurserycry demo``'s configuration: flags > ``NURSERYCRY_DEMO_*`` env > ``--config`` >
defaults. Its flags and ``--help`` are generated from :class:`DemoSettings`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from nurserycry.shared.config import AudioFile, LogLevel, RoleSettings
from nurserycry.shared.schemas.types import NurseryId

Source = Literal["auto", "microphone", "file", "scene"]


class DemoSettings(RoleSettings):
    """Everything ``nurserycry demo`` can be told (env prefix ``NURSERYCRY_DEMO_``)."""

    model_config = SettingsConfigDict(
        env_prefix="NURSERYCRY_DEMO_", extra="forbid", env_nested_delimiter="__"
    )

    file: AudioFile | None = Field(
        None, description="WAV/FLAC file to play (unset: the microphone, else the scene)"
    )
    duration: float | None = Field(
        None,
        gt=0,
        le=7 * 24 * 3600,
        description="stop after this many seconds, wall clock (unset: at the end of the audio)",
    )
    fast: bool = Field(False, description="play a file or the scene as fast as possible")
    source: Source = Field("auto", description="where the audio comes from")
    nursery: NurseryId = Field("demo", description="the demo nursery's name")
    port: int = Field(0, ge=0, le=65535, description="embedded broker port (0: a free one)")
    data_dir: Path | None = Field(
        None, description="keep the hub's history and the edge spool here (unset: temporary)"
    )
    timeline: Path | None = Field(
        Path("nurserycry-demo.png"), description="PNG of the night's timeline written at the end"
    )
    no_timeline: bool = Field(False, description="do not write the timeline PNG")
    model: Path | None = Field(None, description="model directory (unset: the shipped model)")
    seed: int = Field(7, ge=0, le=2**32 - 1, description="seed of the generated scene")
    log_level: LogLevel = "INFO"
