"""``nurserycry edge``: capture audio, publish features, until the file ends or SIGTERM.

    nurserycry edge --broker mqtt://HOST:PORT --nursery NAME [--username U --password P]
        (--device NAME_OR_INDEX | --file PATH [--fast] | --stdin [--rate HZ])

Every flag has an environment form (``NURSERYCRY_EDGE_...``, shown in
``--help``) and a config-file form (``--config edge.yaml``); flags win over
env, env over the file, the file over defaults. Exit status: 0 when the file
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
from pathlib import Path
from types import FrameType
from typing import Any

from nurserycry.shared.config import ConfigError, flag_overrides

from .agent import EdgeAgent
from .microphone import MicrophoneSource, list_devices
from .settings import EdgeSettings
from .sources import FileSource, Source, SourceError, StdinSource

log = logging.getLogger(__name__)

_E = "NURSERYCRY_EDGE_"
# flag -> (settings path, help, argparse extras)
FLAGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "--broker": ("mqtt.broker", "mqtt://HOST:PORT or mqtts://HOST:PORT", {}),
    "--username": ("mqtt.username", "broker user name (= the nursery name with the ACL)", {}),
    "--password": ("mqtt.password", "broker password", {}),
    "--tls-ca-file": ("mqtt.tls_ca_file", "CA bundle for mqtts://", {}),
    "--mqtt-protocol": ("mqtt.protocol", "3.1.1 (default) or 5", {}),
    "--topic-prefix": ("mqtt.topic_prefix", "MQTT topic prefix", {}),
    "--client-id": ("client_id", "MQTT client id", {}),
    "--nursery": ("nursery", "this nursery's name, e.g. nursery-1", {}),
    "--device": ("device", "microphone: PyAudio input index or part of its name", {}),
    "--file": ("file", "stream a WAV/FLAC file instead of a microphone", {}),
    "--fast": ("fast", "with --file: as fast as possible", {"action": "store_true"}),
    "--start-time": ("start_time", "with --file: Unix time of its first sample", {}),
    "--stdin": ("stdin", "read raw s16le PCM from stdin", {"action": "store_true"}),
    "--rate": ("rate", "sample rate of --stdin PCM or of the microphone, Hz", {}),
    "--channels": ("channels", "channels of --stdin PCM / the microphone (mixed)", {}),
    "--gain-db": ("gain_db", "gain before the frontend, dB", {}),
    "--frames-per-message": ("frames_per_message", "frames per message (25 = 0.5 s)", {}),
    "--spool": ("spool", "spool file (kept across restarts)", {}),
    "--spool-max-mb": ("spool_max_mb", "spool bound in MB; beyond it the oldest go", {}),
    "--spool-sync-s": ("spool_sync_s", "write to disk once unacknowledged this long, s", {}),
    "--status-interval-s": ("status_interval_s", "heartbeat period, s", {}),
    "--flush-timeout-s": ("flush_timeout_s", "on SIGTERM: longest wait to send", {}),
    "--clips": ("clips", "allow raw FLAC clips on request (off)", {"action": "store_true"}),
    "--clip-seconds": ("clip_seconds", "audio kept for a clip, s", {}),
    "--log-level": ("log_level", "DEBUG, INFO, WARNING, ERROR", {}),
}


def env_name(path: str) -> str:
    return _E + path.upper().replace(".", "__")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nurserycry edge",
        description="Capture audio continuously, compute log-mel features with the shared "
        "frontend and publish them over MQTT (QoS 1, spooled on disk while the broker is away).",
        epilog="Every option can also come from its environment variable or from --config "
        "(YAML/TOML, same names as the settings, e.g. 'mqtt: {broker: ...}').",
    )
    p.add_argument("--config", type=Path, help="YAML or TOML settings file")
    p.add_argument(
        "--list-devices", action="store_true", help="list the audio input devices and exit"
    )
    for flag, (path, text, extra) in FLAGS.items():
        kw: dict[str, Any] = {"default": None, **extra}
        p.add_argument(
            flag, dest=flag[2:].replace("-", "_"), help=f"{text} [env {env_name(path)}]", **kw
        )
    return p


def load_settings(args: argparse.Namespace) -> EdgeSettings:
    values = {
        path: getattr(args, flag[2:].replace("-", "_")) for flag, (path, _t, _e) in FLAGS.items()
    }
    overrides = flag_overrides(values)
    return EdgeSettings.load(args.config, **overrides)


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
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        sys.stderr.write(f"nurserycry edge: {exc}\n")
        return 2
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
