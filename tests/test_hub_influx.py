"""InfluxDB path: line protocol, the durable buffer, retries, and a real outage
(victoria-metrics speaks the InfluxDB write protocol) with every point present once."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest

from nurserycry.hub.counters import Counters
from nurserycry.hub.engine import EpisodeRecord, WindowRecord
from nurserycry.hub.sinks.influx import InfluxClientWriter, InfluxSink
from nurserycry.hub.sinks.influx_buffer import PointBuffer
from nurserycry.hub.sinks.influx_schema import EPISODE, WINDOW, episode_line, window_line
from nurserycry.shared.schemas import EpisodeEvent

from tests.servers import VictoriaMetrics
from tests.test_hub_support import T0, wait_for


def window(i: int, nursery: str = "n1") -> WindowRecord:
    return WindowRecord(nursery, T0 + i * 0.5, 0.25, "other", -42.5, False, "m 1")


def test_line_protocol_matches_the_schema() -> None:
    """Names come from the schema (written once); values and formatting are checked here."""
    w_tags, w_fields = WINDOW.tags, WINDOW.field_names
    assert window_line(window(2)) == (
        f"{WINDOW.name},{w_tags[0]}=n1,{w_tags[1]}=other,{w_tags[2]}=m\\ 1 "
        f"{w_fields[0]}=0.25,{w_fields[1]}=-42.5,{w_fields[2]}=0i 1790000001000000000"
    )
    event = EpisodeEvent(
        device="n1",
        event="ended",
        episode_id="n1-1",
        started_at=T0,
        alert_at=T0 + 1.5,
        ended_at=T0 + 30,
        duration_s=30.0,
        peak_probability=0.9,
        alert=False,
    )
    e_tags, e_fields = EPISODE.tags, EPISODE.field_names
    assert episode_line(EpisodeRecord(event, "v1")) == (
        f"{EPISODE.name},{e_tags[0]}=n1,{e_tags[1]}=v1,{e_tags[2]}=false "
        f"{e_fields[0]}=30.0,{e_fields[1]}=0.9,{e_fields[2]}=1.5 1790000000000000000"
    )
    with pytest.raises(ValueError, match="does not match the schema"):
        WINDOW.line({"nursery": "n1"}, {"cry_probability": 0.5}, T0)


def test_buffer_spills_to_disk_in_order_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    buf = PointBuffer(path, memory_max=100, spool_max=10_000)
    lines = [f"p{i}" for i in range(1000)]
    for i in range(0, 1000, 7):
        buf.append(lines[i : i + 7])
    assert len(buf) == 1000
    assert buf.spooled > 0
    got = buf.peek(300)
    buf.ack(300)
    buf.append(["late"])  # may spill while 300 were being written
    buf.close()  # the rest goes to disk
    again = PointBuffer(path, memory_max=100, spool_max=10_000)
    assert len(again) == 701
    while len(again):
        batch = again.peek(128)
        got += batch
        again.ack(len(batch))
    again.close()
    assert got == [*lines, "late"]


def test_buffer_reads_a_spool_left_by_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with sqlite3.connect(path) as db:  # the layout before the durable queue
        db.execute("CREATE TABLE points (id INTEGER PRIMARY KEY, line TEXT)")
        db.executemany("INSERT INTO points (line) VALUES (?)", [(f"old{i}",) for i in range(5)])
    db.close()
    buf = PointBuffer(path)
    buf.append(["new"])
    assert len(buf) == 6 and buf.peek(10) == [f"old{i}" for i in range(5)]
    buf.ack(5)
    assert buf.peek(10) == ["new"]
    buf.close()


def test_buffer_drops_oldest_only_beyond_the_disk_bound(tmp_path: Path) -> None:
    buf = PointBuffer(tmp_path / "s.sqlite", memory_max=100, spool_max=1000)
    buf.append([f"p{i}" for i in range(2000)])
    assert buf.dropped == 900  # 1000 fit on disk, 100 in memory
    remaining = buf.peek(5000)
    assert remaining == [f"p{i}" for i in range(900, 1900)]  # disk first, oldest dropped
    assert len(buf) == 1100
    buf.close()


class FlakyWriter:
    """Fails while ``down`` is set; records every accepted line."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.written: list[str] = []
        self.failures = 0
        self.closed = False

    def write(self, lines: list[str]) -> None:
        if self.down.is_set():
            self.failures += 1
            raise ConnectionError("database down")
        self.written += lines

    def close(self) -> None:
        self.closed = True


def test_sink_retries_and_loses_nothing(tmp_path: Path) -> None:
    writer = FlakyWriter()
    counters = Counters()
    sink = InfluxSink(
        writer,
        PointBuffer(tmp_path / "s.sqlite", memory_max=200),
        counters,
        batch=50,
        flush_s=0.05,
        min_backoff_s=0.05,
        max_backoff_s=0.2,
    )
    sink.start()
    records = [window(i) for i in range(2000)]
    sink.add_windows(records[:500])
    writer.down.set()
    sink.add_windows(records[500:1500])
    wait_for(lambda: writer.failures >= 3, what="failed writes")
    assert counters.get("influx_buffered") > 0
    writer.down.clear()
    sink.add_windows(records[1500:])
    wait_for(lambda: len(writer.written) >= 2000, what="all points written")
    sink.close(timeout=5)
    assert writer.written == [window_line(r) for r in records]
    assert counters.get("influx_written") == 2000
    assert counters.get("influx_retries") >= 3
    assert counters.get("influx_buffered") == 0
    assert writer.closed


class BadRequestError(Exception):
    status = 400


def test_points_the_database_rejects_are_dropped_and_counted(tmp_path: Path) -> None:
    class Refusing(FlakyWriter):
        def write(self, lines: list[str]) -> None:
            if any("nursery=bad" in x for x in lines):
                raise BadRequestError("field type conflict")
            super().write(lines)

    writer = Refusing()
    counters = Counters()
    sink = InfluxSink(writer, PointBuffer(tmp_path / "s.sqlite"), counters, batch=10, flush_s=0.05)
    sink.start()
    sink.add_windows([window(i, "bad") for i in range(10)])
    sink.add_windows([window(i) for i in range(10, 30)])
    wait_for(lambda: len(writer.written) == 20, what="later points written")
    sink.close()
    assert counters.get("influx_rejected") == 10
    assert counters.get("influx_retries") == 0


def test_stop_with_database_down_keeps_points_for_next_start(tmp_path: Path) -> None:
    writer = FlakyWriter()
    writer.down.set()
    path = tmp_path / "s.sqlite"
    sink = InfluxSink(writer, PointBuffer(path), Counters(), batch=10, flush_s=0.05)
    sink.start()
    sink.add_windows([window(i) for i in range(25)])
    sink.close(timeout=0.5)
    writer2 = FlakyWriter()
    sink2 = InfluxSink(writer2, PointBuffer(path), Counters(), batch=10, flush_s=0.05)
    sink2.start()
    wait_for(lambda: len(writer2.written) == 25, what="spooled points written after restart")
    sink2.close()
    assert writer2.written == [window_line(window(i)) for i in range(25)]


def exported(vm: VictoriaMetrics, name: str) -> dict[int, float]:
    """timestamp (ms) -> value of one field series, over all tag sets."""
    out: dict[int, float] = {}
    for series in vm.export(f'{{__name__="{name}"}}'):
        values = series["values"]
        stamps = series["timestamps"]
        assert isinstance(values, list)
        assert isinstance(stamps, list)
        for ts, v in zip(stamps, values, strict=True):
            assert ts not in out, f"point at {ts} stored twice"
            out[ts] = v
    return out


@pytest.mark.servers
def test_influx_outage_mid_stream_every_point_once(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    counters = Counters()
    writer = InfluxClientWriter(victoria.url, "org", "bucket", None, timeout_s=2.0)
    sink = InfluxSink(
        writer,
        PointBuffer(tmp_path / "spool.sqlite", memory_max=300),
        counters,
        batch=100,
        flush_s=0.1,
        min_backoff_s=0.1,
        max_backoff_s=0.5,
    )
    sink.start()
    records = [window(i, "n1" if i % 2 else "n2") for i in range(3000)]
    sink.add_windows(records[:1000])
    wait_for(lambda: counters.get("influx_written") == 1000, what="first points written")
    victoria.stop()
    sink.add_windows(records[1000:2000])  # more than memory holds: spills to disk
    wait_for(lambda: counters.get("influx_retries") >= 2, what="failed writes")
    assert counters.get("influx_spooled") > 0
    victoria.start()
    sink.add_windows(records[2000:])
    wait_for(lambda: counters.get("influx_written") >= 3000, timeout=30, what="all written")
    sink.close()
    stored = exported(victoria, "nurserycry_window_cry_probability")
    expected = {round(r.t * 1000) for r in records}
    assert set(stored) == expected
    assert len(exported(victoria, "nurserycry_window_level_dbfs")) == 3000
    assert counters.get("influx_dropped") == 0


HOSTILE_MODELS = [
    "v1\nnurserycry_window,nursery=forged,label=crying,model=x cry_probability=1 1",
    "v1\\",
    "a\\,b=c d\r\te\x7f",
]


def test_tags_cannot_break_out_of_their_line() -> None:
    """#14.13: a model_version with a newline injected a line of its own."""
    for model in HOSTILE_MODELS:
        rec = WindowRecord("n1", T0, 0.25, "other", -42.5, False, model)
        line = window_line(rec)
        assert "\n" not in line and "\r" not in line
        tags = line.split(" cry_probability=")[0]
        # every ',', '=' and ' ' inside the model tag is escaped by one backslash
        model_tag = tags.split(",model=", 1)[1]
        assert not re.search(r"(?<!\\)(\\\\)*[ ,=]", model_tag), model_tag


@pytest.mark.servers
def test_a_hostile_model_version_writes_one_point_and_nothing_forged(
    victoria: VictoriaMetrics,
) -> None:
    writer = InfluxClientWriter(victoria.url, "org", "bucket", None, timeout_s=5.0)
    lines = [
        window_line(WindowRecord("n1", T0 + i, 0.25, "other", -42.5, False, m))
        for i, m in enumerate(HOSTILE_MODELS)
    ]
    writer.write(lines)
    writer.close()

    def stored() -> list[dict[str, object]]:
        return victoria.export('{__name__="nurserycry_window_cry_probability"}')

    series = wait_for(lambda: len(stored()) >= len(HOSTILE_MODELS) and stored(), 20, "points")
    assert {s["metric"]["nursery"] for s in series} == {"n1"}  # type: ignore[index]
    assert sum(len(s["timestamps"]) for s in series) == len(HOSTILE_MODELS)  # type: ignore[arg-type]
