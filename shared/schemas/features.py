"""Edge -> hub: a chunk of log-mel frames from one nursery's microphone."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from .base import Message
from .types import Count, EncodedArray, Hash, NurseryId, StreamId, UnixTime

MAX_FRAMES = 500  # 10 s at 50 frames per second


class AudioFeatures(Message):
    """``mel`` is int8 ``(n_frames, n_mels)`` and ``level`` int8 ``(n_frames,)``,
    both in the frontend's 0.5 dB code (see ``shared.frontend``)."""

    TYPE: ClassVar[str] = "features"
    VERSION: ClassVar[int] = 1
    MAX_BYTES: ClassVar[int] = 64_000

    type: Literal["features"] = "features"
    v: int = VERSION
    device: NurseryId
    stream: StreamId = Field(description="random id of the agent's stream; a new one resets order")
    seq: Count = Field(description="message number in the stream, +1 per message")
    frame_index: Count = Field(description="index of the first frame in the stream")
    t0: UnixTime = Field(description="capture time of the first frame's first sample")
    frontend: Hash = Field(description="FrontendParams.hash of the frontend that made them")
    mel: EncodedArray
    level: EncodedArray
    sample_rate_in: Annotated[int, Field(ge=1000, le=384_000)] = 16_000

    @model_validator(mode="after")
    def _shapes(self) -> Self:
        if self.mel.dtype != "int8" or self.level.dtype != "int8":
            raise ValueError("mel and level must be int8 codes")
        if len(self.mel.shape) != 2 or len(self.level.shape) != 1:
            raise ValueError("mel must be (frames, mels) and level (frames,)")
        frames, mels = self.mel.shape
        if not 1 <= frames <= MAX_FRAMES:
            raise ValueError(f"a message carries 1 to {MAX_FRAMES} frames, not {frames}")
        if not 8 <= mels <= 128:
            raise ValueError(f"unexpected number of mel bands: {mels}")
        if self.level.shape[0] != frames:
            raise ValueError("level must have one value per frame")
        return self

    @property
    def n_frames(self) -> int:
        return self.mel.shape[0]

    @classmethod
    def from_arrays(
        cls,
        mel: npt.NDArray[np.int8],
        level: npt.NDArray[np.int8],
        **fields: object,
    ) -> AudioFeatures:
        return cls(mel=EncodedArray.from_numpy(mel), level=EncodedArray.from_numpy(level), **fields)
