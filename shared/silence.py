"""Does a nursery's microphone hear anything at all? (pure)

A live microphone always hears something: a quiet bedroom through a USB microphone sits
around -80 to -55 dBFS, and the converter's own noise is above -95 dBFS. Windows at the
frontend's floor (``DB_FLOOR``, -100 dBFS: digital zeros) for ``silent_s`` seconds mean
a muted capture control, the wrong input or a dead channel. The model rightly scores such
windows as quiet, so without this watch the monitor would show "quiet" while it hears
nothing, the worst failure a baby monitor has. The hub publishes the verdict
(``NurseryState.microphone``, a Home Assistant *problem* sensor) and logs it once per
outage; the edge agent logs it sooner, for whoever is setting the Raspberry Pi up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from nurserycry.shared.frontend import DB_FLOOR

# Below this a window is digital silence: the floor, plus room for int8 rounding.
SILENT_DBFS: Final = DB_FLOOR + 1.0


@dataclass
class MicrophoneWatch:
    """Feed every window of one nursery; ``silent`` is the verdict."""

    silent_s: float
    silent: bool = False
    since: float | None = None  # start of the current run of silent windows

    def update(self, t_start: float, t_end: float, level_dbfs: float) -> bool | None:
        """One window; the new verdict when it changed, else ``None``."""
        if level_dbfs >= SILENT_DBFS:
            self.since = None
            if self.silent:
                self.silent = False
                return False
            return None
        if self.since is None or t_start < self.since:  # a clock set back starts again
            self.since = t_start
        if not self.silent and t_end - self.since >= self.silent_s:
            self.silent = True
            return True
        return None
