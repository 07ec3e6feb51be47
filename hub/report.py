"""``nurserycry report``: a night's "misery meter" as a PNG, from the hub's local history.

For each nursery: cry probability over time (filled), crying episodes shaded
(hatched when they came within the cooldown and raised no alert), the sound
level on a second axis, and the night's crying minutes and episode count in
the title. Times are shown in the machine's local time zone, or (``origin``) as
time since a start, the way the demo's text counts them.

``render_timeline(db_path, out_png, nursery=None, since=None, until=None, origin=None)``
is the function the demo calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .settings import DATA_DIR
from .sinks.history import Night, nurseries, read_night

NIGHT_START_HOUR = 18  # a night runs 18:00 .. 10:00 the next day (local time)
NIGHT_HOURS = 16


def night_bounds(day: dt.date) -> tuple[float, float]:
    start = dt.datetime.combine(day, dt.time(NIGHT_START_HOUR)).astimezone()
    return start.timestamp(), (start + dt.timedelta(hours=NIGHT_HOURS)).timestamp()


def _latest(db_path: Path) -> float | None:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT max(t) FROM windows").fetchone()
    finally:
        db.close()
    return float(row[0]) if row and row[0] is not None else None


def elapsed_clock(seconds: float) -> str:
    """``HH:MM:SS`` of a time counted from some start (the demo's scene, a file)."""
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


_ELAPSED_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800)


def render_timeline(
    db_path: Path,
    out_png: Path,
    nursery: str | None = None,
    since: float | None = None,
    until: float | None = None,
    *,
    origin: float | None = None,
) -> Path:
    """Draw the timeline of ``[since, until)`` (default: the last 16 h of data) to ``out_png``.

    The time axis is the local wall clock, or with ``origin`` (Unix seconds) the time
    since then as ``HH:MM:SS``, as the demo's text counts it."""
    out_png = Path(out_png)
    fig = timeline_figure(Path(db_path), nursery, since, until, origin=origin)
    import matplotlib.pyplot as plt  # noqa: PLC0415 (the Agg backend is chosen by now)

    try:
        fig.tight_layout()
        out_png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=100)
    finally:
        plt.close(fig)
    return out_png


def timeline_figure(
    db_path: Path,
    nursery: str | None = None,
    since: float | None = None,
    until: float | None = None,
    *,
    origin: float | None = None,
) -> Any:
    """The matplotlib figure :func:`render_timeline` saves (close it with ``plt.close``)."""
    import matplotlib  # noqa: PLC0415 (only the report needs matplotlib)

    matplotlib.use("Agg")
    import matplotlib.dates as mdates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import FuncFormatter, MultipleLocator  # noqa: PLC0415

    if not db_path.is_file():
        raise FileNotFoundError(f"no history database at {db_path}")
    if until is None:
        until = (_latest(db_path) or dt.datetime.now().timestamp()) + 1.0
    if since is None:
        since = until - NIGHT_HOURS * 3600
    names = [nursery] if nursery else nurseries(db_path)
    if not names:
        raise ValueError(f"{db_path} holds no windows yet")
    nights = [read_night(db_path, name, since, until) for name in names]

    tz = dt.datetime.now().astimezone().tzinfo
    first = min((n.t[0] for n in nights if n.t), default=since)
    last = max((n.t[-1] for n in nights if n.t), default=until)
    start, end = max(since, first), min(until, last)

    def x(t: float) -> Any:
        if origin is not None:
            return t - origin
        return dt.datetime.fromtimestamp(t, tz)

    fig, axes = plt.subplots(
        len(nights), 1, figsize=(12, 3.2 * len(nights)), sharex=True, squeeze=False
    )
    for ax, night in zip(axes[:, 0], nights, strict=True):
        _draw(ax, night, x)
    bottom = axes[-1, 0]
    bottom.set_xlim(x(start), x(end))
    if origin is None:
        # ticks that fit the span: seconds for a demo, hours for a night
        locator = mdates.AutoDateLocator(tz=tz)  # type: ignore[no-untyped-call]
        formatter = mdates.ConciseDateFormatter(locator, tz=tz)  # type: ignore[no-untyped-call]
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(formatter)
        bottom.set_xlabel("local time")
        span = f"{x(start):%Y-%m-%d %H:%M} to {x(end):%Y-%m-%d %H:%M}"
    else:
        step = next((s for s in _ELAPSED_STEPS if (end - start) / s <= 10), _ELAPSED_STEPS[-1])
        bottom.xaxis.set_major_locator(MultipleLocator(step))
        bottom.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: elapsed_clock(v)))
        bottom.set_xlabel("time since the start (HH:MM:SS)")
        began = dt.datetime.fromtimestamp(origin, tz)
        span = (
            f"{elapsed_clock(start - origin)} to {elapsed_clock(end - origin)} "
            f"after {began:%Y-%m-%d %H:%M:%S}"
        )
    fig.suptitle(f"NurseryCry misery meter, {span}")
    return fig


def _draw(a: Any, night: Night, x: Any) -> None:
    times = [x(t) for t in night.t]
    minutes = sum(end - start for start, end, _p, _a in night.episodes) / 60.0
    a.set_title(
        f"{night.nursery}: {minutes:.1f} crying minutes in {len(night.episodes)} episode(s)",
        loc="left",
    )
    for start, end, _peak, alert in night.episodes:
        a.axvspan(
            x(start),
            x(end),
            color="tab:red",
            alpha=0.25 if alert else 0.12,
            hatch=None if alert else "//",
            lw=0,
        )
    if times:
        a.fill_between(times, night.probability, color="tab:red", alpha=0.6, lw=0.6)
    a.set_ylim(0, 1)
    a.set_ylabel("cry probability")
    level = a.twinx()
    if times:
        level.plot(times, night.level_dbfs, color="tab:blue", lw=0.5, alpha=0.45)
    level.set_ylabel("level (dBFS)", color="tab:blue")
    a.set_zorder(level.get_zorder() + 1)  # probability in front of the level
    a.patch.set_visible(False)
    if not times:
        a.text(0.5, 0.5, "no data", transform=a.transAxes, ha="center", va="center")


def _timestamp(text: str) -> float:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.astimezone()
    return value.timestamp()


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="nurserycry report", description="Draw a night's cry timeline from the local history."
    )
    p.add_argument(
        "--db",
        type=Path,
        default=DATA_DIR / "history.sqlite",
        help="the hub's history database (default: %(default)s, the hub's default history.db)",
    )
    p.add_argument("--nursery", help="only this nursery (default: all)")
    p.add_argument("--night", type=dt.date.fromisoformat, help="YYYY-MM-DD: 18:00 to 10:00")
    p.add_argument("--since", type=_timestamp, help="ISO time, e.g. 2026-11-28T20:00")
    p.add_argument("--until", type=_timestamp, help="ISO time")
    p.add_argument("--out", type=Path, default=Path("night.png"), help="PNG to write (%(default)s)")
    args = p.parse_args(list(argv))
    since, until = args.since, args.until
    if args.night is not None:
        since, until = night_bounds(args.night)
    try:
        out = render_timeline(args.db, args.out, args.nursery, since, until)
    except sqlite3.DatabaseError as exc:  # not SQLite, or not the hub's history
        sys.stderr.write(
            f"nurserycry report: {args.db} is not a NurseryCry history database ({exc}); "
            f"the hub keeps its history in {DATA_DIR / 'history.sqlite'} unless told otherwise\n"
        )
        return 1
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"nurserycry report: {exc}\n")
        return 1
    sys.stdout.write(f"wrote {out}\n")
    return 0
