"""Where the hub's results go: one :class:`Sink` per destination.

=====================  ==================================================  ==============
sink                   what it writes                                      when on
=====================  ==================================================  ==============
:mod:`.mqtt`           states, detections, events, status, HA discovery    always
:mod:`.influx`         window and episode points (:mod:`.influx_schema`),  ``influx.url``
                       buffered on disk (:mod:`.influx_buffer`)
:mod:`.history`        the same in local SQLite, for ``nurserycry report``  no InfluxDB
:mod:`.clips`          asks for a clip on each alert, stores what comes    ``clips.dir``
=====================  ==================================================  ==============

Every sink takes the engine's :class:`~nurserycry.hub.engine.Outputs` on the
processing thread (``write``) and must never raise for a failing destination:
it counts, logs (rate-limited) and goes on, so one broken output cannot stop
detection or the others. ``close`` is bounded in time.
"""

from __future__ import annotations

from typing import Protocol

from ..engine import Outputs


class Sink(Protocol):
    def start(self) -> None:
        """Begin (threads, folders); called once before the first ``write``."""

    def write(self, outputs: Outputs) -> None:
        """Hand on one batch's windows, events and states (the processing thread)."""

    def close(self, timeout: float) -> None:
        """Flush what can be flushed within ``timeout`` s, keep the rest, release files."""
