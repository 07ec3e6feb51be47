"""Edge -> hub, only when the user turned it on: raw audio around an episode."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from .base import Message
from .types import NurseryId, UnixTime


class RawClip(Message):
    TYPE: ClassVar[str] = "clip"
    VERSION: ClassVar[int] = 1
    MAX_BYTES: ClassVar[int] = 4_000_000

    type: Literal["clip"] = "clip"
    v: int = VERSION
    device: NurseryId
    t0: UnixTime
    sample_rate: Annotated[int, Field(ge=8000, le=48_000)]
    encoding: Literal["flac"] = "flac"
    reason: Annotated[str, Field(max_length=64)] = "request"
    episode_id: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,100}$")] | None = None
    data: Annotated[bytes, Field(max_length=2_900_000)]

    @model_validator(mode="after")
    def _is_flac(self) -> Self:
        if not self.data.startswith(b"fLaC"):
            raise ValueError("data is not a FLAC stream")
        return self
