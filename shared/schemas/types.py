"""Small validated types used across messages (ids, timestamps, arrays)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, Self, cast, get_args

import numpy as np
import numpy.typing as npt
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# A nursery (device) id is a single MQTT topic level: no '/', '+', '#', no
# spaces, nothing a topic filter could be tricked with.
NURSERY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
_NURSERY_RE = re.compile(NURSERY_ID_PATTERN)
# The hub's own topic level ({prefix}/hub/status ...): never a nursery.
HUB_NAME: Final = "hub"


def _nursery_id(value: str) -> str:
    if not _NURSERY_RE.match(value) or value == HUB_NAME:
        raise ValueError(
            f"{value[:60]!r} is not a usable nursery name: use lower-case letters, digits, "
            f"'-' and '_' (at most 48, starting with a letter or digit, not {HUB_NAME!r}), "
            "e.g. 'nursery-1'"
        )
    return value


NurseryId = Annotated[
    str,
    AfterValidator(_nursery_id),
    Field(description="lower-case letters, digits, '-' and '_', at most 48, e.g. 'nursery-1'"),
]
# Unix time in seconds; bounded to 2001..2100 to catch unset clocks and garbage.
UnixTime = Annotated[float, Field(ge=1e9, le=4.1e9, description="Unix time, seconds")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Decibels = Annotated[float, Field(ge=-200.0, le=50.0, description="dBFS")]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]
StreamId = Annotated[str, Field(pattern=r"^[0-9a-f]{8,32}$")]

DType = Literal["int8", "uint8", "int16", "float16", "float32"]
MAX_ARRAY_ELEMENTS = 65_536


def _bounded_shape(shape: list[int]) -> list[int]:
    if not 1 <= len(shape) <= 4:
        raise ValueError("an array has 1 to 4 dimensions")
    if any(d < 0 for d in shape):
        raise ValueError("array dimensions cannot be negative")
    if int(np.prod(shape, dtype=np.int64)) > MAX_ARRAY_ELEMENTS:
        raise ValueError(f"array larger than {MAX_ARRAY_ELEMENTS} elements")
    return shape


class EncodedArray(BaseModel):
    """A numpy array as compact binary: raw little-endian bytes (base64 in JSON)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    dtype: DType
    shape: Annotated[list[int], AfterValidator(_bounded_shape)]
    data: bytes

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        itemsize = np.dtype(self.dtype).itemsize
        expected = int(np.prod(self.shape, dtype=np.int64)) * itemsize
        if len(self.data) != expected:
            raise ValueError(
                f"data holds {len(self.data)} bytes, shape {self.shape} of {self.dtype} "
                f"needs {expected}"
            )
        if self.dtype.startswith("float") and not np.all(np.isfinite(self.to_numpy())):
            raise ValueError("array holds NaN or infinity")
        return self

    def to_numpy(self) -> npt.NDArray[Any]:
        dtype = np.dtype(self.dtype).newbyteorder("<")
        return (
            np.frombuffer(self.data, dtype=dtype)
            .reshape(self.shape)
            .astype(dtype.newbyteorder("="))
        )

    @classmethod
    def from_numpy(cls, array: npt.NDArray[Any]) -> EncodedArray:
        name = str(array.dtype)
        arr = np.ascontiguousarray(array, dtype=np.dtype(name).newbyteorder("<"))
        if name not in get_args(DType):
            raise ValueError(f"cannot send arrays of dtype {name}")
        return cls(dtype=cast(DType, name), shape=list(arr.shape), data=arr.tobytes())
