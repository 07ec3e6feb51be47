"""The demo's local edge agent: a real :class:`~nurserycry.edge.agent.EdgeAgent` in-process.

Its audio is the microphone, a file, or the generated scene fed through the
edge's generic :class:`~nurserycry.edge.sources.BlocksSource` (reported as
source ``generated`` in its heartbeats). ``EdgeAgent.run`` blocks, so it runs
in one thread of its own; the agent's own threads (source, processing,
publisher, paho) are as the edge module made them.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nurserycry.edge import sources
from nurserycry.edge.agent import EdgeAgent
from nurserycry.edge.microphone import MicrophoneSource, quiet_stderr
from nurserycry.edge.settings import EdgeSettings
from nurserycry.shared.config import MqttSettings

from .scene import Scene

log = logging.getLogger(__name__)

BLOCK_S = 0.1


def microphone_available() -> bool:
    """PyAudio importable and at least one input device with a default input."""
    try:
        pyaudio = importlib.import_module("pyaudio")
    except ImportError:
        return False
    with quiet_stderr():
        pa = pyaudio.PyAudio()
        try:
            has_input = any(
                int(pa.get_device_info_by_index(i).get("maxInputChannels", 0)) > 0
                for i in range(pa.get_device_count())
            )
            if has_input:
                pa.get_default_input_device_info()
        except OSError:
            has_input = False
        finally:
            pa.terminate()
    return has_input


def scene_blocks(scene: Scene) -> Iterator[npt.NDArray[np.float32]]:
    step = int(scene.rate * BLOCK_S)
    for start in range(0, len(scene.samples), step):
        yield scene.samples[start : start + step]


class DemoEdge:
    """``start()`` runs the agent in a thread; ``finished`` once a file/scene is all sent."""

    def __init__(
        self,
        nursery: str,
        broker_url: str,
        data_dir: Path,
        *,
        kind: str,
        file: Path | None,
        scene: Scene | None,
        fast: bool,
    ) -> None:
        settings = EdgeSettings(
            nursery=nursery,
            mqtt=MqttSettings(broker=broker_url),
            client_id=f"nurserycry-demo-edge-{nursery}"[:64],
            device=None,
            file=file if kind == "file" else None,
            fast=fast if kind == "file" else False,
            stdin=False,
            spool=data_dir / f"edge-{nursery}.spool",
            status_interval_s=2.0,
        )
        self.agent = EdgeAgent(settings, self._source(kind, file, scene, fast))
        self._thread = threading.Thread(target=self._run, name="demo-edge", daemon=True)
        self.exit_code: int | None = None

    @staticmethod
    def _source(kind: str, file: Path | None, scene: Scene | None, fast: bool) -> Any:
        if kind == "scene":
            assert scene is not None
            # played fast, the scene *ends* now, as a file does with ``--fast``: no capture
            # time lies ahead of the hub's clock (the hub would warn about NTP)
            ends_now = time.time() - scene.duration_s if fast else None
            return sources.BlocksSource(
                scene_blocks(scene), scene.rate, realtime=not fast, start_time=ends_now
            )
        if kind == "file":
            assert file is not None
            return sources.FileSource(file, fast=fast)
        with quiet_stderr():
            return MicrophoneSource()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.exit_code = self.agent.run()
        except Exception:
            log.exception("the demo's edge agent failed")
            self.exit_code = 1

    @property
    def finished(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    @property
    def sent(self) -> int:
        return int(self.agent.publisher.sent)

    def stop(self, timeout: float = 15.0) -> None:
        self.agent.stop()
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def wait_delivered(self, hub: Any, timeout: float) -> bool:
        """Wait until the hub has taken in every message the broker acknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if hub.counters.snapshot().get("messages", 0) >= self.sent:
                return True
            time.sleep(0.05)
        log.warning(
            "the hub received %d of %d messages",
            hub.counters.snapshot().get("messages", 0),
            self.sent,
        )
        return False
