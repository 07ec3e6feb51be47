"""Counters for ``HubStatus`` and rate-limited warnings (a flood cannot fill the disk).

Counters are written by the processing thread and the InfluxDB writer thread
and read by the status publisher; ``+=`` on a dict entry under CPython's GIL
is not atomic, so :class:`Counters` takes a lock (uncontended: cheap).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

COUNTER_NAMES: Final = (
    "messages",
    "rejected_malformed",
    "rejected_oversize",
    "rejected_version",
    "rejected_shape",
    "rejected_frontend",
    "rejected_topic",
    "duplicates",
    "out_of_order",
    "reordered",
    "gaps",
    "frames_lost",
    "new_streams",
    "windows",
    "episodes",
    "dropped_queue_full",
    "influx_written",
    "influx_retries",
    "influx_buffered",
    "influx_spooled",
    "influx_dropped",
    "influx_rejected",
    "history_written",
    "history_failed",
    "model_reloads",
    "model_reload_failures",
)


class Counters:
    """Named non-negative integers, safe to bump from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._values[name] = value

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class RateLimitedWarnings:
    """At most one WARNING per key per ``interval_s``; the next one says how many were
    suppressed. Keys are e.g. ``(device, reason_kind)``; the table is bounded."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._last: dict[tuple[str, ...], tuple[float, int]] = {}

    def warn(self, key: tuple[str, ...], msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` warned recently; True when logged."""
        now = self._clock()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self._interval:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if seen is None and len(self._last) >= self._max_keys:
            self._last.clear()  # a flood of distinct keys: start over rather than grow
        suppressed = seen[1] if seen is not None else 0
        if suppressed:
            self._log.warning("%s (%d similar suppressed)", msg % args, suppressed)
        else:
            self._log.warning(msg, *args)
        self._last[key] = (now, 0)
        return True
