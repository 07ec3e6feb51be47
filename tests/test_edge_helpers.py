"""Edge test helpers (no tests here): generated audio, the agent as a subprocess, a subscriber."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink, Received
from nurserycry.shared.schemas import AudioFeatures, EdgeStatus

from tests.servers import Mosquitto

# Per test process: another engineer's test run on this machine (same nursery names,
# brokers restarted on reused ports) can never feed or read this run's topics.
RUN = secrets.token_hex(3)


def nursery_name(base: str) -> str:
    return f"{base}-{RUN}"


def tone_noise(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """int16 audio: a swelling 440 Hz tone over noise (something for every mel band)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
    x += 0.02 * rng.standard_normal(t.size)
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray, rate: int = 16_000) -> Path:
    soundfile.write(str(path), audio, rate, subtype="PCM_16")
    return path


def durable_broker(workdir: Path) -> Mosquitto:
    """A mosquitto that keeps sessions across a restart (persistence on)."""
    broker = Mosquitto(workdir)
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n"
        # as root, mosquitto would drop to user mosquitto, who cannot write here
        + ("user root\n" if os.geteuid() == 0 else "")
        + f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
    )
    return broker


def edge_cmd(broker: Mosquitto, nursery: str, spool: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "nurserycry",
        "edge",
        "--broker",
        broker.url,
        "--nursery",
        nursery_name(nursery),
        "--spool",
        str(spool),
        *args,
    ]


def edge_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURSERYCRY_")}
    env.update(extra)
    return env


def start_edge(cmd: list[str], log: Path, **popen: object) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=out, env=edge_env(), **popen)  # type: ignore[call-overload, no-any-return]


class Collector:
    """Subscribes to one nursery's topics and keeps what arrives (thread-safe)."""

    def __init__(self, broker: Mosquitto, nursery: str, *, persistent: bool = False) -> None:
        self.features: list[AudioFeatures] = []
        self.status: list[EdgeStatus] = []
        self.availability: list[str] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.raw_bytes = 0
        self.link = MqttLink(
            MqttSettings(broker=broker.url),
            f"collector-{nursery_name(nursery)}",
            persistent_session=persistent,
            min_backoff_s=1,
            max_backoff_s=1,
        )
        base = f"nurserycry/{nursery_name(nursery)}"
        self.link.subscribe(f"{base}/features", self._on_features)
        self.link.subscribe(f"{base}/status", self._on_status)
        self.link.subscribe(f"{base}/availability", self._on_availability)
        self.link.start()
        if not self.link.wait_connected(10):
            raise TimeoutError("collector could not connect")

    def _on_features(self, received: Received) -> None:
        msg = AudioFeatures.decode(received.payload)
        with self._changed:
            self.features.append(msg)
            self.raw_bytes += len(received.payload) + len(received.topic)
            self._changed.notify_all()

    def _on_status(self, received: Received) -> None:
        with self._changed:
            self.status.append(EdgeStatus.decode(received.payload))
            self._changed.notify_all()

    def _on_availability(self, received: Received) -> None:
        with self._changed:
            self.availability.append(received.payload.decode())
            self._changed.notify_all()

    def wait(self, predicate: Callable[[Collector], bool], timeout: float = 20.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def seqs(self) -> set[int]:
        with self._lock:
            return {m.seq for m in self.features}

    def stop(self) -> None:
        self.link.stop()


def unique_in_order(msgs: list[AudioFeatures]) -> list[AudioFeatures]:
    """One message per (stream, seq), sorted by seq (QoS 1 may deliver twice)."""
    seen: dict[tuple[str, int], AudioFeatures] = {}
    for m in msgs:
        seen.setdefault((m.stream, m.seq), m)
    return [seen[k] for k in sorted(seen, key=lambda k: k[1])]


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
