"""Base of every message on the wire: a type tag, a schema version, strict fields.

Every message is a frozen pydantic model that rejects unknown fields, NaN and
infinity, and any version other than the one this build speaks. ``decode``
adds a size limit and turns every failure into one :class:`MessageError` with
a short, loggable reason (:class:`UnsupportedVersionError` for a version this build
does not speak).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from ..errors import MessageError, UnsupportedVersionError

_UNSUPPORTED: Final = "unsupported_version"  # the pydantic error type of a bad ``v``


class Message(BaseModel):
    """A versioned wire message. Subclasses set ``TYPE``, ``VERSION`` and ``MAX_BYTES``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        ser_json_bytes="base64",
        val_json_bytes="base64",
        ser_json_inf_nan="strings",
    )

    TYPE: ClassVar[str] = "message"
    VERSION: ClassVar[int] = 1
    MAX_BYTES: ClassVar[int] = 16_384

    type: str
    v: int

    def __init__(self, **data: Any) -> None:
        data.setdefault("type", self.TYPE)
        data.setdefault("v", self.VERSION)
        super().__init__(**data)

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        if value != cls.TYPE:
            raise ValueError(f"expected message type {cls.TYPE!r}, got {value!r}")
        return value

    @field_validator("v")
    @classmethod
    def _check_version(cls, value: int) -> int:
        if value != cls.VERSION:
            raise PydanticCustomError(
                _UNSUPPORTED,
                "unsupported schema version {v} for {type!r} (this build speaks version {speaks})",
                {"v": value, "type": cls.TYPE, "speaks": cls.VERSION},
            )
        return value

    def encode(self) -> bytes:
        """The JSON payload for MQTT."""
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, payload: bytes | str) -> Self:
        """Validate a payload; any problem raises :class:`MessageError`."""
        size = len(payload)
        if size > cls.MAX_BYTES:
            raise MessageError(f"payload of {size} bytes exceeds {cls.MAX_BYTES} for {cls.TYPE!r}")
        try:
            return cls.model_validate_json(payload)
        except ValidationError as exc:
            unsupported = any(e["type"] == _UNSUPPORTED for e in exc.errors(include_url=False))
            raise (UnsupportedVersionError if unsupported else MessageError)(
                summarise(exc)
            ) from None


def summarise(exc: ValidationError, limit: int = 3) -> str:
    """One line naming the failing fields, e.g. ``seq: Input should be >= 0``."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)
