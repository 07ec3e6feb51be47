"""Rate-limited warnings: a flood of bad input cannot fill the disk with log lines.

The one helper every role uses (hub rejections, InfluxDB retries, clips, edge
commands, spool trouble): one WARNING per key per interval, and the next one
says how many were suppressed meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


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
