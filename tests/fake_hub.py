"""``python -m tests.fake_hub SETTINGS.json``: a real hub process scoring with the fake
model, for tests that kill it (``kill -9``) where the shipped model is not the point.
Prints ``ready`` once connected; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

from nurserycry.hub.service import Hub
from nurserycry.hub.settings import HubSettings

from tests.test_hub_support import FakeModel


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = HubSettings.load(None, **json.loads(Path(sys.argv[1]).read_text()))
    hub = Hub(settings, FakeModel())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_a: stop.set())
    hub.start()
    if not hub.wait_connected(20):
        return 1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stop.wait()
    hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
