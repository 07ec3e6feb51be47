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
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .engine import EpisodeRecord, WindowRecord

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


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class History:
    """Append windows and finished episodes; one transaction per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path)
        self.written = 0
        log.info("local history in %s", path)

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

    def close(self) -> None:
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
