"""A bad disk never blinds the hub or stops an edge (#14 findings 8, 9 and 12).

Corrupt files are written by the tests; a full disk is a real 2 MB tmpfs where
the machine lets us mount one (root), otherwise the disk's refusal is raised
through the queue's connection (the same ``SQLITE_FULL`` SQLite gives); a hung
InfluxDB is a loopback server that accepts connections and never answers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nurserycry.edge.spool import Spool, StreamState
from nurserycry.hub.counters import Counters
from nurserycry.hub.service import Hub
from nurserycry.hub.sinks.history import History
from nurserycry.hub.sinks.influx import FLUSH_AT_STOP_S, InfluxClientWriter, InfluxSink
from nurserycry.hub.sinks.influx_buffer import PointBuffer
from nurserycry.shared.durable_queue import DurableQueue

from tests.memory_link import MemoryLink
from tests.test_hub_influx import window
from tests.test_hub_support import FakeModel, hub_settings, payload, wait_for

GARBAGE = b"this is not an SQLite database, it is what a torn SD card write leaves" * 100


def corrupt_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(GARBAGE)
    return path


def moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


# -- finding 8: a corrupt hub file ------------------------------------------------
def test_hub_starts_on_a_corrupt_history_and_influx_spool(tmp_path: Path) -> None:
    history = corrupt_file(tmp_path / "history.sqlite")
    spool = corrupt_file(tmp_path / "spool.sqlite")
    link = MemoryLink()
    written: list[str] = []

    class Writer:
        def write(self, lines: list[str]) -> None:
            written.extend(lines)

        def close(self) -> None:
            pass

    settings = hub_settings(tmp_path, "mqtt://unused:1883", history={"mode": "on"})
    hub = Hub(settings, FakeModel(), link=link, influx_writer=Writer())
    hub.start()
    try:
        for seq in range(3):
            link.deliver("nurserycry/n1/features", payload("n1", seq))
        wait_for(lambda: len(written) == 2, what="points written")
    finally:
        hub.stop()
    for path in (history, spool):
        aside = moved_aside(path)
        assert len(aside) == 1 and aside[0].read_bytes() == GARBAGE  # kept for a post-mortem
    with sqlite3.connect(history) as db:
        assert db.execute("SELECT count(*) FROM windows").fetchone()[0] == 2
    db.close()


def test_history_damaged_while_running_is_moved_aside_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    counters = Counters()
    history = History(path, counters)
    from nurserycry.hub.engine import Outputs

    history.write(Outputs(windows=[window(0)]))
    history._db.close()
    corrupt_file(path)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    history._db = sqlite3.connect(path, check_same_thread=False)  # what the process had open
    history.write(Outputs(windows=[window(1)]))  # fails, counted, moved aside
    history.write(Outputs(windows=[window(2)]))
    history.close()
    assert counters.get("history_failed") == 1 and len(moved_aside(path)) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM windows").fetchone()[0] == 1
    db.close()


# -- finding 9: an edge's corrupt spool or full disk ---------------------------------
def test_a_corrupt_edge_spool_is_moved_aside_and_capture_goes_on(tmp_path: Path) -> None:
    path = corrupt_file(tmp_path / "edge.spool")
    spool = Spool(path, 10_000)
    stream = spool.state.stream
    spool.append([(0, "t", b"a")], StreamState(stream, 1, 25, None))
    assert spool.disk_depth == 1 and len(moved_aside(path)) == 1
    spool.close()
    assert Spool(path, 10_000).state.stream == stream  # the fresh spool keeps numbering


class _Refusing:
    """The queue's connection on a full disk: writes raise SQLITE_FULL, reads work."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.full = db, True

    def execute(self, sql: str, *args: Any) -> Any:
        if self.full and sql.split(maxsplit=1)[0] in {"BEGIN", "INSERT", "DELETE"}:
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # what SQLite sets
            raise exc
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


class FullDisk:
    """``fill()`` the disk under ``folder`` until writes fail, ``free()`` it again."""

    def __init__(self, folder: Path, real: bool) -> None:
        self.folder, self.real = folder, real
        self._queues: list[tuple[DurableQueue, _Refusing]] = []

    def fill(self, *queues: DurableQueue) -> None:
        if self.real:
            # unbuffered, and ENOSPC caught outside the file: closing it flushes nothing
            with contextlib.suppress(OSError), (self.folder / "filler").open("wb", 0) as f:
                while True:
                    f.write(b"\0" * 65536)
                    os.fsync(f.fileno())
            return
        for q in queues:
            assert q._db is not None
            refusing = _Refusing(q._db)
            q._db = refusing  # type: ignore[assignment]
            self._queues.append((q, refusing))

    def free(self) -> None:
        if self.real:
            (self.folder / "filler").unlink()
        for _q, refusing in self._queues:
            refusing.full = False


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
        )
        mounted = done.returncode == 0
    yield FullDisk(folder, real=mounted)
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_an_edge_on_a_full_disk_keeps_every_message_and_recovers(full_disk: FullDisk) -> None:
    spool = Spool(full_disk.folder / "edge.spool", 10**7, retry_s=0)
    stream = spool.state.stream
    spool.append([(0, "t", b"x" * 1000)], StreamState(stream, 1, 25, None))
    assert spool.disk_depth == 1
    full_disk.fill(spool._disk)
    for seq in range(1, 200):  # capture goes on: nothing raises, nothing is lost
        spool.append([(seq, "t", b"y" * 1000)], StreamState(stream, seq + 1, 25 * seq, None))
    assert spool.degraded and spool.depth == 200 and spool.dropped == 0
    assert [m.seq for m in spool.peek(-1, 500)] == list(range(200))
    assert spool.ack([0, 1]) == 2  # acknowledged while the disk refuses even deletes
    assert spool.depth == 198 and [m.seq for m in spool.peek(-1, 2)] == [2, 3]
    full_disk.free()
    spool.append([(200, "t", b"z")], StreamState(stream, 201, 5000, None))
    assert not spool.degraded and spool.disk_depth == 199  # all of it reached the disk
    spool.close()
    again = Spool(full_disk.folder / "edge.spool", 10**7)
    assert [m.seq for m in again.peek(-1, 500)] == list(range(2, 201))
    assert again.state.next_seq == 201
    again.close()


def test_memory_is_bounded_while_the_disk_refuses(full_disk: FullDisk) -> None:
    spool = Spool(full_disk.folder / "edge.spool", 10**7, memory_max_bytes=50_000, retry_s=0)
    stream = spool.state.stream
    spool.append([(0, "t", b"x")], StreamState(stream, 1, 0, None))
    full_disk.fill(spool._disk)
    for seq in range(1, 101):
        spool.append([(seq, "t", b"y" * 1000)], StreamState(stream, seq + 1, 0, None))
    assert spool.dropped == 50 and spool.depth == 51  # the oldest held ones went, counted
    assert [m.seq for m in spool.peek(-1, 100)] == [0, *range(51, 101)]
    full_disk.free()
    spool.close()


def test_the_hubs_influx_buffer_on_a_full_disk(full_disk: FullDisk) -> None:
    buf = PointBuffer(full_disk.folder / "spool.sqlite", memory_max=100, spool_max=10_000)
    buf.append([f"p{i}" for i in range(150)])  # spills 100 to disk
    assert buf.spooled > 0
    assert buf._disk is not None
    buf._disk.retry_s = 0
    full_disk.fill(buf._disk)
    buf.append([f"q{i}" for i in range(300)])  # cannot spill: memory holds the newest 100
    assert buf.spooled == 50 and len(buf) == 150 and buf.dropped == 300
    got = buf.peek(1000)
    assert got == [f"p{i}" for i in range(50)]
    buf.ack(len(got))  # written; the disk cannot delete them yet: skipped, not rewritten
    assert buf.peek(1) == ["q200"] and len(buf) == 100
    full_disk.free()
    buf.append(["late"])  # spills again
    rest: list[str] = []
    while batch := buf.peek(64):
        rest += batch
        buf.ack(len(batch))
    assert rest == [*(f"q{i}" for i in range(200, 300)), "late"]
    buf.close()


# -- finding 12: a hung InfluxDB ------------------------------------------------------
class HungServer:
    """Accepts TCP connections and never answers (an InfluxDB stuck in a GC pause)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    server = HungServer()
    yield server
    server.close()


def test_a_hung_influxdb_cannot_hold_the_hubs_shutdown(tmp_path: Path, hung: HungServer) -> None:
    url = f"http://127.0.0.1:{hung.port}"
    settings = hub_settings(tmp_path, "mqtt://unused:1883", influx={"url": url, "timeout_s": 30})
    link = MemoryLink()
    hub = Hub(settings, FakeModel(), link=link)
    hub.start()
    for seq in range(21):
        link.deliver("nurserycry/n1/features", payload("n1", seq))
    wait_for(lambda: hub.counters.get("windows") == 20, what="windows")
    wait_for(lambda: hung.conns, what="a write hanging in InfluxDB")
    t0 = time.monotonic()
    hub.stop()
    took = time.monotonic() - t0
    assert took < FLUSH_AT_STOP_S + 1.5, took
    assert link.final == [("nurserycry/hub/availability", "offline")]
    hung.close()  # the abandoned write fails now and its thread ends
    kept = PointBuffer(settings.influx.spool)
    assert len(kept) == 20  # every point kept for the next start
    kept.close()


def test_a_hung_write_finishing_after_close_changes_nothing(
    tmp_path: Path, hung: HungServer
) -> None:
    writer = InfluxClientWriter(f"http://127.0.0.1:{hung.port}", "o", "b", None, timeout_s=30)
    sink = InfluxSink(writer, PointBuffer(tmp_path / "s.sqlite"), Counters(), flush_s=0.05)
    sink.start()
    sink.add_windows([window(i) for i in range(10)])
    wait_for(lambda: hung.conns, what="a write hanging")
    t0 = time.monotonic()
    sink.close(timeout=1.0)
    assert time.monotonic() - t0 < 2.5
    hung.close()
    sink._thread.join(10)
    assert not sink._thread.is_alive()
    kept = PointBuffer(tmp_path / "s.sqlite")
    assert len(kept) == 10
    kept.close()
