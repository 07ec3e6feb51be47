"""SQLite files that a bad disk cannot turn into a crash loop.

Every SQLite file NurseryCry keeps (the edge spool, the hub's InfluxDB buffer
and local history) is optional next to detection: losing one loses history,
stopping on one loses every nursery. So:

* a **corrupt** file (``SQLITE_CORRUPT`` / ``SQLITE_NOTADB``: a torn SD card
  write, a truncated copy) is renamed aside with a timestamp
  (``history.sqlite.corrupt-20261201T210455``, kept for a post-mortem), a
  WARNING says so, and a fresh file starts;
* **disk trouble** (full, I/O error, read-only, cannot open) is told apart by
  :func:`disk_trouble`, so a caller can keep data in memory and try again.

Errors are told apart by SQLite's result code (``sqlite_errorcode``), never by
their text.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import sqlite3
from pathlib import Path
from typing import Final, Literal

log = logging.getLogger(__name__)

_CORRUPT: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_DISK: Final = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    }
)
_FAILING: Final = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY})
_SIDE_FILES: Final = ("-wal", "-shm", "-journal")

Synchronous = Literal["OFF", "NORMAL", "FULL"]


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None  # the primary result code


def corrupt(exc: BaseException) -> bool:
    """The file itself is damaged (or not a database): only moving it aside helps."""
    return _code(exc) in _CORRUPT


def disk_trouble(exc: BaseException) -> bool:
    """The disk refused (full, I/O, read-only, locked): worth trying again later."""
    return isinstance(exc, OSError) or _code(exc) in _DISK


def disk_failing(exc: BaseException) -> bool:
    """The disk is full or failing (not a wrong path or missing permission)."""
    if isinstance(exc, OSError):
        return exc.errno in {errno.ENOSPC, errno.EIO, errno.EROFS}
    return _code(exc) in _FAILING


def move_aside(path: Path, why: str) -> Path | None:
    """Rename ``path`` (and its WAL/SHM files) to ``<name>.corrupt-<UTC time>``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    free = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while free.exists():
        free = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    target: Path | None = free
    try:
        path.replace(free)
    except OSError as exc:
        log.error("cannot move the damaged %s aside (%s); deleting it", path, exc)
        path.unlink(missing_ok=True)
        target = None
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            if target is not None:
                side.replace(target.with_name(target.name + suffix))
            else:
                side.unlink(missing_ok=True)
    log.warning(
        "%s is damaged (%s): moved it aside to %s and started a fresh one", path, why, target
    )
    return target


def connect(
    path: Path,
    schema: str,
    *,
    synchronous: Synchronous = "NORMAL",
    autocommit: bool = False,
    check: str | None = None,
) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with ``schema`` applied and ``check`` (a query that reads
    the data, e.g. a count) run once; a corrupt file is moved aside and a fresh one made.
    Disk trouble is raised (``sqlite3.OperationalError`` / ``OSError``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        db = sqlite3.connect(path, check_same_thread=False)
        if autocommit:
            db.isolation_level = None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.executescript(schema)
            if check is not None:
                db.execute(check).fetchall()
        except sqlite3.DatabaseError as exc:
            db.close()
            if attempt == 2 or not corrupt(exc):
                raise
            move_aside(path, f"{type(exc).__name__}: {exc}")
            continue
        return db
    raise AssertionError("unreachable")  # pragma: no cover
