"""Counters for ``HubStatus``.

Counters are written by the processing thread and the InfluxDB writer thread
and read by the status publisher; ``+=`` on a dict entry under CPython's GIL
is not atomic, so :class:`Counters` takes a lock (uncontended: cheap).
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from nurserycry.shared.throttle import RateLimitedWarnings

COUNTER_NAMES: Final = (
    "messages",
    "rejected_malformed",
    "rejected_oversize",
    "rejected_version",
    "rejected_shape",
    "rejected_frontend",
    "rejected_topic",
    "rejected_nursery",
    "retained_ignored",
    "duplicates",
    "out_of_order",
    "reordered",
    "gaps",
    "frames_lost",
    "new_streams",
    "other_stream",
    "clock_clamped",
    "windows",
    "episodes",
    "microphone_silent",
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


class Rejections:
    """Count a rejected message and say so in one WARNING line (nursery, topic, reason),
    at most once per nursery and reason a minute: shared by everything that checks input."""

    def __init__(self, counters: Counters, logger: logging.Logger) -> None:
        self.counters = counters
        self.warnings = RateLimitedWarnings(logger)

    def __call__(self, counter: str, nursery: str, topic: str, reason: str) -> None:
        self.counters.add(counter)
        self.warnings.warn(
            (nursery, counter), "rejected message from %s on %s: %s", nursery, topic, reason
        )
