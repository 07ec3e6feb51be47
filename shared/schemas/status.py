"""Heartbeats: what an edge agent and the hub say about themselves."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .base import Message
from .types import Count, Decibels, NurseryId, UnixTime

Source = Literal["microphone", "file", "stdin", "generated"]


class EdgeStatus(Message):
    TYPE: ClassVar[str] = "edge_status"
    VERSION: ClassVar[int] = 2  # 2: clock_synchronised, clock_offset_s

    type: Literal["edge_status"] = "edge_status"
    v: int = VERSION
    device: NurseryId
    t: UnixTime
    software: Annotated[str, Field(max_length=40)]
    source: Source
    uptime_s: Annotated[float, Field(ge=0)]
    frames_captured: Count
    messages_sent: Count
    overruns: Count = Field(description="audio blocks dropped because the buffer was full")
    spool_depth: Count = Field(description="messages waiting on disk for the broker")
    spool_dropped: Count = Field(description="oldest messages dropped because the spool was full")
    level_dbfs: Decibels | None = None
    clock_synchronised: bool | None = Field(
        None, description="the Pi's clock is synchronised by NTP (None: cannot tell)"
    )
    clock_offset_s: Annotated[float, Field(ge=-1e10, le=1e10)] = Field(
        0.0, description="correction of capture times against the sound card's clock, steps in"
    )


class HubStatus(Message):
    TYPE: ClassVar[str] = "hub_status"
    VERSION: ClassVar[int] = 2  # 2: clock_skew_s
    MAX_BYTES: ClassVar[int] = 65_536

    type: Literal["hub_status"] = "hub_status"
    v: int = VERSION
    t: UnixTime
    software: Annotated[str, Field(max_length=40)]
    model: Annotated[str, Field(max_length=80)]
    uptime_s: Annotated[float, Field(ge=0)]
    nurseries: Annotated[list[NurseryId], Field(max_length=1000)]
    windows: Count
    counters: Annotated[
        dict[Annotated[str, Field(max_length=64)], Count],
        Field(description="e.g. rejected_malformed, duplicates, gaps", max_length=64),
    ]
    clock_skew_s: Annotated[
        dict[NurseryId, Annotated[float, Field(ge=-1e10, le=1e10)]],
        Field(
            default_factory=dict,
            max_length=1000,
            description="per nursery: capture time minus the hub's clock on arrival (its "
            "least delayed recent message); > 0: its clock is ahead, < 0: behind or a backlog",
        ),
    ]
