"""What the demo shows: a live board per nursery, plain log lines, and the final summary.

:class:`Board` is fed by the hub's listener (``Hub.add_listener``), which runs
on the hub's processing thread; it only copies numbers under a lock. The
terminal view reads :meth:`Board.rows` from the main thread: with a TTY a
``rich`` live table redrawn a few times a second (log lines scroll above it),
otherwise only log lines: one per state change and per episode.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType
from rich.live import Live
from rich.logging import RichHandler
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from nurserycry.hub.report import elapsed_clock as clock

log = logging.getLogger(__name__)


class _Window(Protocol):
    @property
    def nursery(self) -> str: ...
    @property
    def t(self) -> float: ...
    @property
    def probability(self) -> float: ...
    @property
    def label(self) -> str: ...
    @property
    def level_dbfs(self) -> float: ...
    @property
    def crying(self) -> bool: ...


@dataclass(frozen=True)
class EpisodeSummary:
    started_at: float  # Unix seconds
    ended_at: float | None
    peak: float
    alert: bool

    @property
    def duration_s(self) -> float:
        return 0.0 if self.ended_at is None else self.ended_at - self.started_at


@dataclass
class NurseryRow:
    nursery: str
    state: str = "waiting"
    probability: float = 0.0
    level_dbfs: float = -100.0
    crying: bool = False
    windows: int = 0
    last_t: float = 0.0
    first_t: float | None = None
    episodes: list[EpisodeSummary] = field(default_factory=list)


class Board:
    """Thread-safe latest numbers per nursery plus every episode seen."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        # where every time shown is counted from (text, summary and timeline PNG alike):
        # the start of the first window heard
        self.origin: float | None = None
        self._rows: dict[str, NurseryRow] = {}
        self._lock = threading.Lock()
        self.changes: list[str] = []  # plain-view lines not yet printed

    def _row(self, nursery: str) -> NurseryRow:
        row = self._rows.get(nursery)
        if row is None:
            row = self._rows[nursery] = NurseryRow(nursery)
        return row

    def update(self, outputs: Any) -> None:
        """Hub listener: ``outputs`` has ``.windows`` and ``.events`` (hub.engine.Outputs)."""
        with self._lock:
            for w in outputs.windows:
                self._window(w)
            for record in outputs.events:
                self._event(record.event)

    def _window(self, w: _Window) -> None:
        row = self._row(w.nursery)
        if row.first_t is None:
            row.first_t = w.t - self.window_s
        if self.origin is None:
            self.origin = row.first_t
        if w.label != row.state:
            self.changes.append(
                f"{w.nursery}: {w.label} (p={w.probability:.2f}, {w.level_dbfs:.0f} dBFS) "
                f"at {clock(w.t - self.origin)}"
            )
        row.state, row.probability, row.level_dbfs = w.label, w.probability, w.level_dbfs
        row.crying, row.last_t = w.crying, w.t
        row.windows += 1

    def _event(self, event: Any) -> None:
        row = self._row(event.device)
        origin = self.origin if self.origin is not None else event.started_at
        episode = EpisodeSummary(
            event.started_at, event.ended_at, event.peak_probability, event.alert
        )
        if event.event == "started":
            row.episodes.append(episode)
            self.changes.append(
                f"{event.device}: crying episode started at {clock(event.started_at - origin)} "
                f"(alert after {event.alert_at - event.started_at:.1f} s)"
            )
            return
        row.crying = False
        open_ = [i for i, e in enumerate(row.episodes) if e.started_at == event.started_at]
        if open_:
            row.episodes[open_[-1]] = episode
        else:
            row.episodes.append(episode)
        self.changes.append(
            f"{event.device}: crying episode ended, {episode.duration_s:.1f} s, "
            f"peak {episode.peak:.2f}"
        )

    def rows(self) -> list[NurseryRow]:
        with self._lock:
            return [replace(r, episodes=list(r.episodes)) for r in self._rows.values()]

    def take_changes(self) -> list[str]:
        with self._lock:
            lines, self.changes = self.changes, []
            return lines


def summary_line(row: NurseryRow, origin: float | None = None) -> str:
    """``nursery demo: 1 episode: 00:00:12-00:00:19 (7.0 s, peak 0.97)``, times counted
    from ``origin`` (default: the row's first window)."""
    if origin is None:
        origin = row.first_t if row.first_t is not None else 0.0
    if not row.episodes:
        heard = f"{row.windows} windows scored" if row.windows else "no audio scored"
        return f"nursery {row.nursery}: no episodes ({heard})"
    parts = []
    for e in row.episodes:
        end = clock(e.ended_at - origin) if e.ended_at is not None else "open"
        parts.append(
            f"{clock(e.started_at - origin)}-{end} ({e.duration_s:.1f} s, peak {e.peak:.2f}"
            + ("" if e.alert else ", no alert: cooldown")
            + ")"
        )
    n = len(row.episodes)
    return f"nursery {row.nursery}: {n} episode{'s' if n > 1 else ''}: " + ", ".join(parts)


def _bar(p: float, width: int = 20) -> str:
    full = round(max(0.0, min(1.0, p)) * width)
    return "█" * full + "·" * (width - full)


# (bar width, episodes listed, short words), widest first: the first that fits is drawn
_LAYOUTS = (
    (20, 3, False),
    (20, 2, False),
    (15, 2, False),
    (12, 1, False),
    (10, 1, False),
    (8, 1, False),
    (8, 0, False),
    (8, 0, True),
    (5, 0, True),
)
_COLOURS = {"crying": "bold red", "other": "yellow", "quiet": "green"}


class BoardView:
    """The live view: title, one table row per nursery, footer. Laid out at every
    redraw for the terminal's width (a narrower bar, fewer episodes listed), so no
    column is cut; the title and footer wrap."""

    def __init__(self, board: Board, title: str, footer: str) -> None:
        self.board, self.title, self.footer = board, title, footer

    def table(self, bar: int, listed: int, short: bool) -> Table:
        rows, origin = self.board.rows(), self.board.origin
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
        for name in ("nursery", "state", "cry probability" if bar >= 10 else "cry p."):
            table.add_column(name, no_wrap=True)
        for name in ("level", "episodes", "at"):
            table.add_column(name, no_wrap=True)
        for row in rows:
            start = origin if origin is not None else row.first_t or row.last_t
            eps = ", ".join(
                clock(e.started_at - start) + (f" {e.duration_s:.0f}s" if e.ended_at else " open")
                for e in (row.episodes[-listed:] if listed else [])
            )
            table.add_row(
                row.nursery,
                f"[{_COLOURS.get(row.state, 'white')}]"
                + (("CRYING" if short else "CRYING (episode)") if row.crying else row.state)
                + "[/]",
                f"{_bar(row.probability, bar)} {row.probability:.2f}",
                f"{row.level_dbfs:.0f} dBFS" if short else f"{row.level_dbfs:.1f} dBFS",
                f"{len(row.episodes)}" + (f": {eps}" if eps else ""),
                clock(row.last_t - start) if row.windows else "-",
            )
        return table

    def fitted(self, console: Console, width: int) -> Table:
        unbounded = console.options.update_width(100_000)  # the width it wants
        for layout in _LAYOUTS:
            table = self.table(*layout)
            if Measurement.get(console, unbounded, table).maximum <= width:
                return table
        for column in table.columns:  # narrower than the narrowest layout: wrap, never cut
            column.no_wrap, column.overflow = False, "fold"
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        yield Text(self.title, style="bold")
        yield self.fitted(console, options.max_width)
        yield Text(self.footer, style="dim")


def render(board: Board, title: str, footer: str) -> RenderableType:
    """A rich renderable of the board that fits the console it is drawn on."""
    return BoardView(board, title, footer)


def setup_logging(level: str, tty: bool) -> Console | None:
    """Log lines to stderr; on a TTY through rich, above the live table. Returns its console."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if not tty:
        logging.basicConfig(level=level, format=fmt)
        return None
    console = Console()
    handler = RichHandler(console=console, show_path=False, log_time_format="%H:%M:%S")
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler])
    return console


class LiveView:
    """A rich live table when given a console, else log lines only.

    Changes (state, episodes) are logged in both cases; on a TTY they scroll
    above the table. Call :meth:`refresh` from the main thread.
    """

    def __init__(self, board: Board, title: str, console: Console | None) -> None:
        self.board, self.title = board, title
        self._live: Live | None = None
        if console is not None:
            self._live = Live(
                render(board, title, ""), console=console, refresh_per_second=4, transient=False
            )

    def __enter__(self) -> LiveView:
        log.info("%s", self.title)
        if self._live is not None:
            self._live.__enter__()
        return self

    def refresh(self, footer: str) -> None:
        for line in self.board.take_changes():
            log.info("%s", line)
        if self._live is not None:
            self._live.update(render(self.board, self.title, footer))

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
