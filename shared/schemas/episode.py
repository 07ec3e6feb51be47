"""Hub -> world: a crying episode started or ended."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from .base import Message
from .types import NurseryId, Probability, UnixTime


class EpisodeEvent(Message):
    TYPE: ClassVar[str] = "episode"
    VERSION: ClassVar[int] = 1

    type: Literal["episode"] = "episode"
    v: int = VERSION
    device: NurseryId
    event: Literal["started", "ended"]
    episode_id: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,100}$")]
    started_at: UnixTime = Field(description="start of the first crying window")
    alert_at: UnixTime = Field(description="when the onset rule fired (causal)")
    ended_at: UnixTime | None = None
    duration_s: Annotated[float, Field(ge=0)]
    peak_probability: Probability
    alert: bool = Field(
        True, description="False when it began within the cooldown after the last alerted crying"
    )

    @model_validator(mode="after")
    def _ended_has_end(self) -> Self:
        if (self.event == "ended") != (self.ended_at is not None):
            raise ValueError("ended_at is set exactly when event is 'ended'")
        if self.alert_at < self.started_at:
            raise ValueError("alert_at cannot be before started_at")
        return self
