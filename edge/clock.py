"""Is the system clock synchronised (NTP)? Linux's ``adjtimex(2)``, read-only.

A Raspberry Pi has no real-time clock: until NTP (systemd-timesyncd, chrony)
has synchronised, the time is whatever was saved at the last shutdown. The
kernel knows: ``adjtimex`` with no modes returns ``TIME_ERROR`` while the clock
is unsynchronised (the ``STA_UNSYNC`` status bit), which is what ``timedatectl``
shows as "System clock synchronized". The edge reports it in its heartbeat.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from typing import Final

log = logging.getLogger(__name__)

TIME_ERROR: Final = 5
_TIMEX_BYTES: Final = 512  # larger than struct timex on every Linux ABI


def clock_synchronised() -> bool | None:
    """True once NTP has synchronised the clock, False before; None where unknown."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(_TIMEX_BYTES)  # modes = 0: only read
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError) as exc:
        log.debug("adjtimex unavailable: %s", exc)
        return None
    if state < 0:
        return None
    return state != TIME_ERROR
