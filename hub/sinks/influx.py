"""Windows and episodes to InfluxDB: line protocol, batching, retries, no loss.

Threads, on purpose: influxdb-client's *synchronous* write API is called from
this module's own writer thread, so a slow or dead database never stalls the
processing thread. The processing thread only formats line-protocol strings
and appends them to a :class:`~.influx_buffer.PointBuffer`; the writer
takes up to ``batch`` of the oldest, writes them, and acknowledges them only
after the database said yes. A failure keeps them and retries with
exponential backoff (0.5 s doubling to 30 s). Timestamps are deterministic
(capture times, see :mod:`.influx_schema`), so a write repeated after an
ambiguous failure overwrites the same points instead of doubling them.

Shutdown is bounded (:data:`FLUSH_AT_STOP_S`): a database that hangs cannot
hold the hub past it. What is not written by then goes to the disk buffer and
is written after the next start; a write still hanging in its HTTP call is
abandoned (the thread is a daemon and closes the client when it returns).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final, Protocol

from nurserycry.shared.throttle import RateLimitedWarnings

from ..counters import Counters
from ..engine import EpisodeRecord, Outputs, WindowRecord
from ..settings import HubSettings
from .influx_buffer import PointBuffer
from .influx_schema import episode_line, window_line

log = logging.getLogger(__name__)

# HTTP statuses that mean "this data is invalid" (not "try later"): field type
# conflicts, unparsable lines. Auth (401/403) and missing bucket (404) are retried:
# they are fixed by configuration, and the points should survive until then.
REJECTED_STATUS: Final = frozenset({400, 422})
FLUSH_AT_STOP_S: Final = 4.0  # longest a stopping hub waits for InfluxDB


class LineWriter(Protocol):
    """The database edge: write a batch or raise."""

    def write(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


class InfluxClientWriter:
    """:class:`LineWriter` over influxdb-client's synchronous write API."""

    def __init__(
        self, url: str, org: str, bucket: str, token: str | None, timeout_s: float = 10.0
    ) -> None:
        # imported here so a hub without InfluxDB never loads the client
        from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: PLC0415
        from influxdb_client.client.write_api import SYNCHRONOUS  # noqa: PLC0415
        from influxdb_client.domain.write_precision import WritePrecision  # noqa: PLC0415

        self._precision: Any = WritePrecision.NS
        self._org, self._bucket = org, bucket
        self._client = InfluxDBClient(
            url=url, token=token or "", org=org, timeout=int(timeout_s * 1000), retries=False
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        self._api.write(
            bucket=self._bucket, org=self._org, record=lines, write_precision=self._precision
        )

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


class InfluxSink:
    """A :class:`~nurserycry.hub.sinks.Sink`: buffers points, writes them from its own thread."""

    def __init__(
        self,
        writer: LineWriter,
        buffer: PointBuffer,
        counters: Counters,
        *,
        batch: int = 500,
        flush_s: float = 1.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.writer, self.buffer, self.counters = writer, buffer, counters
        self.batch, self.flush_s = batch, flush_s
        self.min_backoff_s, self.max_backoff_s = min_backoff_s, max_backoff_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._writer_lock = threading.Lock()
        self._writer_closed = False
        self._warn = RateLimitedWarnings(log, interval_s=30.0)
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._update_counters()

    # -- producer side (processing thread) ------------------------------
    def write(self, outputs: Outputs) -> None:
        self.add_windows(outputs.windows)
        self.add_episodes(outputs.events)

    def add_windows(self, windows: list[WindowRecord]) -> None:
        if windows:
            self._add([window_line(w) for w in windows])

    def add_episodes(self, records: list[EpisodeRecord]) -> None:
        lines = [episode_line(r) for r in records if r.event.event == "ended"]
        if lines:
            self._add(lines)

    def _add(self, lines: list[str]) -> None:
        self.buffer.append(lines)
        if len(self.buffer) >= self.batch:
            self._wake.set()

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = FLUSH_AT_STOP_S) -> None:
        """Write what is buffered for at most ``timeout`` s (capped at
        :data:`FLUSH_AT_STOP_S`), keep the rest on disk, close."""
        timeout = min(timeout, FLUSH_AT_STOP_S)
        self._deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.buffer.close()  # what is still unwritten (or being written) goes to disk
        self._update_counters()
        if self._thread.is_alive():
            log.warning(
                "InfluxDB did not answer within %.0f s of stopping: %d points kept in %s",
                timeout,
                self.counters.get("influx_spooled"),
                self.buffer.spool_path,
            )
        else:
            self._close_writer()

    def _close_writer(self) -> None:
        with self._writer_lock:
            if not self._writer_closed:
                self._writer_closed = True
                self.writer.close()

    # -- writer thread ---------------------------------------------------
    def _reject(self, lines: list[str], exc: Exception) -> None:
        """The database refused the data itself (400/422): retrying cannot help, and
        would block every later point; drop this batch, count it, say so."""
        self.buffer.ack(len(lines))
        self.counters.add("influx_rejected", len(lines))
        self._update_counters()
        log.error(
            "InfluxDB rejected %d points (%s), dropped them; first: %s",
            len(lines),
            str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
            lines[0][:200],
        )

    def _update_counters(self) -> None:
        self.counters.set("influx_buffered", len(self.buffer))
        self.counters.set("influx_spooled", self.buffer.spilled)
        self.counters.set("influx_dropped", self.buffer.dropped)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self._stopping.is_set() and time.monotonic() > self._deadline:
                self._close_writer()  # abandoned by close(): release the client now

    def _loop(self) -> None:
        backoff = self.min_backoff_s
        while True:
            if not self._stopping.is_set() and len(self.buffer) < self.batch:
                self._wake.wait(self.flush_s)
                self._wake.clear()
            lines = self.buffer.peek(self.batch)
            if not lines:
                self._update_counters()
                if self._stopping.is_set():
                    return
                continue
            try:
                self.writer.write(lines)
            except Exception as exc:
                if getattr(exc, "status", None) in REJECTED_STATUS:
                    self._reject(lines, exc)
                    continue
                self.counters.add("influx_retries")
                self._update_counters()
                self._warn.warn(
                    ("write",),
                    "InfluxDB write of %d points failed (%s: %s); %d buffered, retrying in %.1f s",
                    len(lines),
                    type(exc).__name__,
                    exc,
                    len(self.buffer),
                    backoff,
                )
                if self._stopping.is_set() and time.monotonic() + backoff > self._deadline:
                    return
                if self._stopping.is_set():
                    time.sleep(backoff)
                else:
                    self._stopping.wait(backoff)
                if self.buffer.closed:
                    return
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self.buffer.ack(len(lines))
            self.counters.add("influx_written", len(lines))
            self._update_counters()
            if self.buffer.closed:
                return
            if backoff > self.min_backoff_s:
                log.info("InfluxDB writes succeed again; %d points buffered", len(self.buffer))
            backoff = self.min_backoff_s
            if self._stopping.is_set() and time.monotonic() > self._deadline:
                return


def sink_from_settings(
    settings: HubSettings, counters: Counters, writer: LineWriter | None = None
) -> InfluxSink | None:
    """The configured sink (``writer`` replaces the real client, e.g. in tests), or None."""
    influx = settings.influx
    if writer is None:
        if influx.url is None:
            return None
        token = influx.token.get_secret_value() if influx.token else None
        writer = InfluxClientWriter(influx.url, influx.org, influx.bucket, token, influx.timeout_s)
    buffer = PointBuffer(influx.spool, influx.memory_points, influx.spool_points)
    return InfluxSink(writer, buffer, counters, batch=influx.batch, flush_s=influx.flush_s)
