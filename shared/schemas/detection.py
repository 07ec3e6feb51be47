"""Hub -> world: what the model heard in one window, and each nursery's state."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .base import Message
from .types import Decibels, NurseryId, Probability, UnixTime

Label = Literal["crying", "quiet", "other"]


class Detection(Message):
    """One model window (about 1 s), published as it is scored."""

    TYPE: ClassVar[str] = "detection"
    VERSION: ClassVar[int] = 1

    type: Literal["detection"] = "detection"
    v: int = VERSION
    device: NurseryId
    t: UnixTime = Field(description="capture time of the window's end")
    label: Label
    cry_probability: Probability
    level_dbfs: Decibels
    model: Annotated[str, Field(max_length=80)]


class NurseryState(Message):
    """The retained state of a nursery: what Home Assistant shows."""

    TYPE: ClassVar[str] = "state"
    VERSION: ClassVar[int] = 2  # 2: ``microphone``

    type: Literal["state"] = "state"
    v: int = VERSION
    device: NurseryId
    t: UnixTime
    state: Label = Field(description="crying while an episode is open, else the window label")
    crying: bool
    cry_probability: Probability
    level_dbfs: Decibels
    episode_started_at: UnixTime | None = None
    last_episode_s: Annotated[float, Field(ge=0)] | None = None
    crying_minutes_today: Annotated[float, Field(ge=0)] = 0.0
    microphone: Literal["ok", "silent"] = Field(
        "ok",
        description="silent: nothing but digital zeros for a while (muted capture, wrong "
        "input, dead channel); this nursery hears nothing, whatever its state says",
    )
