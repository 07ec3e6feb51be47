"""Local history in SQLite (when no InfluxDB is configured): what ``report`` draws.

Tables::

    windows(nursery, t, probability, label, level_dbfs, crying, model)   -- per window
    episodes(nursery, episode_id, started_at, alert_at, ended_at, duration_s,
             peak_probability, alert, model)                              -- per finished one

``(nursery, t)`` and ``episode_id`` are primary keys, so replaying the same
frames replaces rows instead of doubling them. Writes happen on the
processing thread in one transaction per batch (SQLite in WAL mode keeps this
well under a millisecond per batch); readers (``report``, the demo) open
their own connection.

The file is optional next to detection: a corrupt one is moved aside (with a
timestamp) and a fresh one started, at start-up or when a write finds the
damage; a failing disk costs the rows of that batch (``history_failed``, a
WARNING a minute), never the hub.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nurserycry.shared.sqlite_file import connect as connect_file
from nurserycry.shared.sqlite_file import corrupt, move_aside
from nurserycry.shared.throttle import RateLimitedWarnings

from ..counters import Counters
from ..engine import EpisodeRecord, Outputs, WindowRecord

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    nursery TEXT NOT NULL, t REAL NOT NULL, probability REAL NOT NULL, label TEXT NOT NULL,
    level_dbfs REAL NOT NULL, crying INTEGER NOT NULL, model TEXT NOT NULL,
    PRIMARY KEY (nursery, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS episodes (
    episode_id TEXT PRIMARY KEY, nursery TEXT NOT NULL, started_at REAL NOT NULL,
    alert_at REAL NOT NULL, ended_at REAL NOT NULL, duration_s REAL NOT NULL,
    peak_probability REAL NOT NULL, alert INTEGER NOT NULL, model TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS episodes_time ON episodes (nursery, started_at);
"""
_CHECK: Final = "SELECT count(*) FROM episodes"
PRUNE_EVERY_S: Final = 3600.0


def connect(path: Path) -> sqlite3.Connection:
    return connect_file(path, SCHEMA, synchronous="NORMAL", check=_CHECK)


class History:
    """A :class:`~nurserycry.hub.sinks.Sink`: windows and finished episodes, one
    transaction per batch; rows older than ``keep_days`` are pruned hourly."""

    def __init__(
        self, path: Path, counters: Counters | None = None, keep_days: float | None = None
    ) -> None:
        self.path = path
        self.counters = counters or Counters()
        self.keep_days = keep_days
        self._db = connect(path)
        self.written = 0
        self._warn = RateLimitedWarnings(log)
        self._next_prune = 0.0
        log.info("local history in %s", path)

    def start(self) -> None:
        pass

    def write(self, outputs: Outputs) -> None:
        """``add`` that never raises: a failed write is counted and logged."""
        self._prune_hourly()
        try:
            self.add(outputs.windows, outputs.events)
        except sqlite3.Error as exc:  # e.g. disk full: MQTT and InfluxDB go on
            self.counters.add("history_failed", len(outputs.windows))
            self._warn.warn(("history",), "local history write failed: %s", exc)
            if corrupt(exc):
                self._db.close()
                move_aside(self.path, f"{type(exc).__name__}: {exc}")
                self._db = connect(self.path)
        self.counters.set("history_written", self.written)

    def _prune_hourly(self) -> None:
        now = time.monotonic()
        if self.keep_days is None or now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        try:
            self.prune(time.time() - self.keep_days * 86400)
        except sqlite3.Error as exc:
            self._warn.warn(("history-prune",), "local history prune failed: %s", exc)

    def add(self, windows: list[WindowRecord], episodes: list[EpisodeRecord]) -> None:
        ended = [r for r in episodes if r.event.event == "ended" and r.event.ended_at]
        if not windows and not ended:
            return
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (w.nursery, w.t, w.probability, w.label, w.level_dbfs, int(w.crying), w.model)
                    for w in windows
                ],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.event.episode_id,
                        e.event.device,
                        e.event.started_at,
                        e.event.alert_at,
                        e.event.ended_at,
                        e.event.duration_s,
                        e.event.peak_probability,
                        int(e.event.alert),
                        e.model,
                    )
                    for e in ended
                ],
            )
        self.written += len(windows)

    def crying_seconds(self, nursery: str, since: float, until: float) -> float:
        """Total length of the nursery's episodes that ended in ``[since, until)``."""
        row = self._db.execute(
            "SELECT coalesce(sum(duration_s), 0) FROM episodes "
            "WHERE nursery = ? AND ended_at >= ? AND ended_at < ?",
            (nursery, since, until),
        ).fetchone()
        return float(row[0])

    def prune(self, before: float) -> int:
        """Delete windows and episodes older than ``before`` (Unix s); returns rows deleted."""
        with self._db:
            n = self._db.execute("DELETE FROM windows WHERE t < ?", (before,)).rowcount
            n += self._db.execute("DELETE FROM episodes WHERE ended_at < ?", (before,)).rowcount
        if n:
            log.info("local history: deleted %d rows older than the retention", n)
        return n

    def close(self, timeout: float = 0.0) -> None:
        self._db.close()


@dataclass(frozen=True)
class Night:
    """What ``report`` draws: arrays of one nursery's windows and episodes."""

    nursery: str
    t: list[float]
    probability: list[float]
    level_dbfs: list[float]
    episodes: list[tuple[float, float, float, bool]]  # start, end, peak, alert


def nurseries(path: Path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT DISTINCT nursery FROM windows ORDER BY 1")]
    finally:
        db.close()


def read_night(path: Path, nursery: str, since: float, until: float) -> Night:
    """One nursery's windows and episodes in ``[since, until)`` (Unix seconds)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT t, probability, level_dbfs FROM windows "
            "WHERE nursery = ? AND t >= ? AND t < ? ORDER BY t",
            (nursery, since, until),
        ).fetchall()
        eps = db.execute(
            "SELECT started_at, ended_at, peak_probability, alert FROM episodes "
            "WHERE nursery = ? AND ended_at >= ? AND started_at < ? ORDER BY started_at",
            (nursery, since, until),
        ).fetchall()
    finally:
        db.close()
    return Night(
        nursery,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [(e[0], e[1], e[2], bool(e[3])) for e in eps],
    )
