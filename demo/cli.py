"""``nurserycry demo``: broker, hub and edge agent in one process, on a live terminal view.

Nothing needs to be installed or running: an embedded amqtt broker listens on
loopback (:mod:`.broker`), the real :class:`~nurserycry.hub.service.Hub`
runs with the shipped model and a SQLite history in a temporary directory, and
a real :class:`~nurserycry.edge.agent.EdgeAgent` publishes features from:

1. ``--file PATH`` if given;
2. else the microphone, if PyAudio is importable and has an input device;
3. else a generated scene (:mod:`.scene`), labelled as generated everywhere.

``--source`` forces one. A file or the scene plays at real time unless
``--fast``; ``--duration`` bounds the run (wall-clock seconds). Ctrl-C or
SIGTERM stops everything cleanly. At the end the night's timeline PNG is
written and one summary line per nursery names the episodes found, e.g.
``nursery demo: 1 episode: 00:00:17-00:00:25 (8.0 s, peak 0.97)``.

Threads, on purpose: the broker's asyncio loop in its own thread, paho's loops,
the hub's processing thread and the edge agent's threads as they are; the
main thread only redraws the view (:mod:`.view`) and decides when to stop.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from rich.console import Console

from nurserycry.hub.report import render_timeline
from nurserycry.hub.service import Hub
from nurserycry.hub.settings import HistorySettings, HubSettings, InfluxSettings
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.errors import BrokerStartError, ConfigError
from nurserycry.shared.settings_cli import build_parser, settings_or_exit_code

from .broker import EmbeddedBroker
from .edge import DemoEdge, microphone_available
from .scene import generate_scene
from .settings import DemoSettings
from .view import Board, LiveView, setup_logging, summary_line

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    return build_parser(
        DemoSettings,
        "nurserycry demo",
        "An embedded broker, the hub with the shipped model and a local edge agent in one "
        "process, on a live terminal view. Needs no broker, database or sound card.",
    )


def choose_source(
    settings: DemoSettings, has_microphone: bool
) -> Literal["microphone", "file", "scene"]:
    if settings.source != "auto":
        if settings.source == "file" and settings.file is None:
            raise ConfigError(
                "--source file needs --file PATH "
                "(NURSERYCRY_DEMO_SOURCE=file needs NURSERYCRY_DEMO_FILE)"
            )
        return settings.source
    if settings.file is not None:
        return "file"
    return "microphone" if has_microphone else "scene"


class _Stop:
    """Set by Ctrl-C / SIGTERM, checked by the main loop."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.reason = signal.Signals(signum).name
        self.event.set()


def main(argv: Sequence[str]) -> int:
    try:
        args = parser().parse_args(list(argv))
    except SystemExit as exc:  # --help, or a malformed option (argparse printed why)
        return exc.code if isinstance(exc.code, int) else 2
    settings = settings_or_exit_code(DemoSettings, args, "nurserycry demo")
    if isinstance(settings, int):
        return settings
    try:
        probe = settings.source == "auto" and settings.file is None
        kind = choose_source(settings, probe and microphone_available())
    except ConfigError as exc:
        sys.stderr.write(f"nurserycry demo: {exc}\n")
        return 2
    console = setup_logging(settings.log_level, tty=sys.stdout.isatty())
    if settings.log_level != "DEBUG":
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    temp = None
    if settings.data_dir is None:
        temp = tempfile.mkdtemp(prefix="nurserycry-demo-")
    data_dir = settings.data_dir or Path(temp or ".")
    try:
        return _run(settings, kind, data_dir, console)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _hub_settings(settings: DemoSettings, url: str, data_dir: Path) -> HubSettings:
    return HubSettings(
        mqtt=MqttSettings(broker=url),
        client_id="nurserycry-demo-hub",
        model=settings.model,
        influx=InfluxSettings(url=None, spool=data_dir / "influx-spool.sqlite"),
        history=HistorySettings(mode="on", db=data_dir / "history.sqlite"),
        state_interval_s=1.0,
    )


def _run(settings: DemoSettings, kind: str, data_dir: Path, console: Console | None) -> int:
    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    broker = EmbeddedBroker(port=settings.port)
    hub: Hub | None = None
    edge: DemoEdge | None = None
    board = Board()
    try:
        try:
            url = f"mqtt://127.0.0.1:{broker.start()}"
        except BrokerStartError as exc:
            sys.stderr.write(f"nurserycry demo: {exc}\n")
            return 1
        try:
            hub = Hub(_hub_settings(settings, url, data_dir))
        except (OSError, ValueError, RuntimeError, ImportError) as exc:  # model, dir, runtime
            sys.stderr.write(f"nurserycry demo: cannot start the hub: {exc}\n")
            return 1
        meta = hub.engine.model.metadata
        board.window_s = meta.window_frames / meta.frontend_params.frames_per_second
        hub.add_listener(board.update)
        hub.start()
        if not hub.wait_connected(10):
            sys.stderr.write("nurserycry demo: the hub could not reach the embedded broker\n")
            return 1
        scene = generate_scene(seed=settings.seed) if kind == "scene" else None
        try:
            edge = DemoEdge(
                settings.nursery,
                url,
                data_dir,
                kind=kind,
                file=settings.file,
                scene=scene,
                fast=settings.fast,
            )
        except (OSError, ValueError, RuntimeError) as exc:  # no microphone, unreadable file
            sys.stderr.write(f"nurserycry demo: cannot start the edge agent: {exc}\n")
            return 1
        title = _title(kind, settings, scene)
        edge.start()
        started = time.monotonic()
        with LiveView(board, title, console) as view:
            while not stop.event.is_set():
                elapsed = time.monotonic() - started
                view.refresh(_footer(elapsed, settings.duration, url, hub))
                if settings.duration is not None and elapsed >= settings.duration:
                    log.info("--duration %.0f s reached", settings.duration)
                    break
                if edge.finished:
                    log.info("the %s has been played to the end", kind)
                    break
                stop.event.wait(0.25)
            edge.stop()
            edge.wait_delivered(hub, timeout=15.0)
            hub.stop()
            hub = None
            view.refresh("stopped")
    finally:
        if edge is not None:
            edge.stop()
        if hub is not None:
            hub.stop()
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _finish(settings, board, data_dir)
    if stop.event.is_set():
        log.info("stopped by %s", stop.reason)
        return 130 if stop.reason == "SIGINT" else 0
    return 0


def _title(kind: str, settings: DemoSettings, scene: Any) -> str:
    if scene is not None:
        what = f"{scene.label}, {scene.duration_s:.0f} s"
    elif kind == "file":
        what = f"file {settings.file}"
    else:
        what = "microphone"
    pace = " (fast)" if settings.fast and kind != "microphone" else ""
    return f"NurseryCry demo — audio: {what}{pace} — Ctrl-C to stop"


def _footer(elapsed: float, duration: float | None, url: str, hub: Any) -> str:
    counters = hub.counters.snapshot()
    bound = f"/{duration:.0f}" if duration is not None else ""
    return (
        f"{elapsed:.0f}{bound} s · broker {url} · windows {counters.get('windows', 0)} · "
        f"messages {counters.get('messages', 0)}"
    )


def _finish(settings: DemoSettings, board: Board, data_dir: Path) -> None:
    rows = board.rows()
    if settings.timeline is not None and not settings.no_timeline and rows:
        try:
            since = min(r.first_t or r.last_t for r in rows) - 1.0
            until = max(r.last_t for r in rows) + 1.0
            # its axis counts from the same origin as the text (the scene's start)
            out = render_timeline(
                data_dir / "history.sqlite",
                settings.timeline,
                None,
                since,
                until,
                origin=board.origin,
            )
            sys.stdout.write(f"timeline: {out}\n")
        except (OSError, ValueError) as exc:
            log.warning("could not write the timeline PNG: %s", exc)
    if not rows:
        sys.stdout.write(f"nursery {settings.nursery}: no audio scored\n")
    for row in rows:
        sys.stdout.write(summary_line(row, board.origin) + "\n")
    sys.stdout.flush()
