"""A hub process for tests/test_cluster.py: ``nurserycry hub``'s own flags and Hub, with
the fake model (windows with loud codes are crying), recording what it made.

    python -m tests.cluster_hub OUT.jsonl [nurserycry hub flags...]

Every window (``{"w": [nursery, t]}``) and episode event (``{"e": [nursery, event,
alert, started_at]}``) is appended to OUT as it is made, before the hub acknowledges
the messages; ``{"ready": true}`` once every partition session is connected, and
``{"counters": {...}}`` after a clean stop (SIGTERM).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from nurserycry.hub import cli
from nurserycry.hub.engine import Outputs
from nurserycry.hub.service import Hub

from tests.test_hub_support import FakeModel


def _record(out: IO[str]) -> Callable[[Outputs], None]:
    def listener(outputs: Outputs) -> None:
        for w in outputs.windows:
            out.write(json.dumps({"w": [w.nursery, w.t]}) + "\n")
        for e in outputs.events:
            ev = e.event
            out.write(json.dumps({"e": [ev.device, ev.event, ev.alert, ev.started_at]}) + "\n")
        out.flush()

    return listener


def main(argv: list[str]) -> int:
    path, flags = Path(argv[0]), argv[1:]
    settings = cli.load_settings(cli.parser().parse_args(flags))
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with path.open("a") as out:
        hub = Hub(settings, FakeModel())
        hub.add_listener(_record(out))
        hub.start()
        if hub.wait_connected(60):
            out.write(json.dumps({"ready": True}) + "\n")
            out.flush()
        stop.wait()
        hub.stop()
        out.write(json.dumps({"counters": hub.counters.snapshot()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
