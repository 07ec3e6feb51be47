"""``nurserycry hub``: run the hub until SIGTERM/SIGINT, then stop cleanly and flush.

The flags are generated from :class:`~.settings.HubSettings`: every setting has
one, and an environment form (``NURSERYCRY_HUB_...``, shown in ``--help``) and a
config-file form (``--config hub.yaml``); flags win over env, env over the file,
the file over defaults. A bad configuration exits with status 2 and a message
naming the setting, its flag and its variable; ``--validate-config`` prints the
effective settings and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from nurserycry.shared.settings_cli import build_parser, load_args, settings_or_exit_code

from .settings import HubSettings

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    return build_parser(
        HubSettings,
        "nurserycry hub",
        "Run the cry model on every nursery's features; publish states, events and Home "
        "Assistant discovery; write InfluxDB or a local history.",
    )


def load_settings(args: argparse.Namespace) -> HubSettings:
    return load_args(HubSettings, args)


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    settings = settings_or_exit_code(HubSettings, args, "nurserycry hub")
    if isinstance(settings, int):
        return settings
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from .service import Hub  # noqa: PLC0415 (TFLite only once the config is good)

    try:
        hub = Hub(settings)
    except (OSError, ValueError, ImportError) as exc:
        sys.stderr.write(f"nurserycry hub: cannot start: {exc}\n")
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        hub.start()
        while not stop.wait(1.0):
            pass
    finally:
        hub.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
