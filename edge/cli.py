"""``nurserycry edge``: capture audio, publish features, until the file ends or SIGTERM.

    nurserycry edge --broker mqtt://HOST:PORT --nursery NAME [--username U --password P]
        (--device NAME_OR_INDEX | --file PATH [--fast] | --stdin [--rate HZ])

The flags are generated from :class:`~.settings.EdgeSettings`; each has an
environment form (``NURSERYCRY_EDGE_...``, shown in ``--help``) and a
config-file form (``--config edge.yaml``); flags win over env, env over the
file, the file over defaults (``--validate-config`` prints the effective
settings and exits 0). Exit status: 0 when the file
or stdin was sent to the last acknowledged frame, or after SIGTERM/SIGINT;
2 for a bad configuration (the message names the setting); 1 when the audio
source cannot be opened or fails.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
from collections.abc import Sequence
from types import FrameType

from nurserycry.shared.errors import SourceError
from nurserycry.shared.settings_cli import build_parser, load_args, settings_or_exit_code

from .agent import EdgeAgent
from .microphone import MicrophoneSource, list_devices
from .settings import EdgeSettings
from .sources import FileSource, Source, StdinSource

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = build_parser(
        EdgeSettings,
        "nurserycry edge",
        "Capture audio continuously, compute log-mel features with the shared frontend and "
        "publish them over MQTT (QoS 1, spooled on disk while the broker is away).",
        "On a Raspberry Pi, 'nurserycry edge install-service' writes the systemd "
        "unit and /etc/nurserycry/edge.env (see its --help).",
    )
    p.add_argument(
        "--list-devices", action="store_true", help="list the audio input devices and exit"
    )
    return p


def load_settings(args: argparse.Namespace) -> EdgeSettings:
    return load_args(EdgeSettings, args)


def make_source(settings: EdgeSettings) -> Source:
    """The audio source the settings name (raises SourceError)."""
    if settings.file is not None:
        return FileSource(
            settings.file,
            fast=settings.fast,
            start_time=settings.start_time,
            block_ms=settings.block_ms,
        )
    if settings.stdin:
        return StdinSource(settings.rate or 16_000, settings.channels, block_ms=settings.block_ms)
    return MicrophoneSource(settings.device, settings.rate, settings.channels, settings.block_ms)


def main(argv: Sequence[str]) -> int:
    try:
        args = parser().parse_args(list(argv))
    except SystemExit as exc:  # --help, or a flag argparse refused (it printed why)
        return int(exc.code or 0)
    if args.list_devices:
        try:
            lines = list_devices()
        except SourceError as exc:
            sys.stderr.write(f"nurserycry edge: {exc}\n")
            return 1
        sys.stdout.write(("\n".join(lines) if lines else "no audio input devices found") + "\n")
        return 0
    settings = settings_or_exit_code(EdgeSettings, args, "nurserycry edge")
    if isinstance(settings, int):
        return settings
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        source = make_source(settings)
        agent = EdgeAgent(settings, source)
    except (SourceError, OSError, sqlite3.Error) as exc:
        sys.stderr.write(f"nurserycry edge: cannot start: {exc}\n")
        return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        agent.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return agent.run()
    except SourceError as exc:
        sys.stderr.write(f"nurserycry edge: {exc}\n")
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
