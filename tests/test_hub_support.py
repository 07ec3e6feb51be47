"""Helpers for the hub tests (no tests here): a fake model and generated features.

The fake model scores a window by its mel codes: loud bands (code > 0) read
as crying (p = 0.95), anything else as 0.05. Features are generated as int8
codes directly, so no audio or real model is needed where the model is not
the point.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from nurserycry.hub.settings import HubSettings
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.frontend import DEFAULT_PARAMS
from nurserycry.shared.model import ModelMetadata
from nurserycry.shared.mqtt import MqttLink
from nurserycry.shared.schemas import AudioFeatures, EdgeStatus

from tests.servers import Mosquitto
from tests.test_schemas import EXAMPLES

FRONTEND = DEFAULT_PARAMS.hash
CRY_CODE = 100  # mel code: -> 0 dB band power
QUIET_CODE = -100  # -> -100 dB
T0 = 1_790_000_000.0  # a fixed capture time (2026-09)
FRAMES_PER_MESSAGE = 25  # 0.5 s at 50 frames/s

T = TypeVar("T")


def metadata(version: str = "fake-1", window: int = 50, hop: int = 25) -> ModelMetadata:
    return ModelMetadata(
        model_version=version,
        labels=["crying", "other"],
        frontend=DEFAULT_PARAMS.to_dict(),
        frontend_hash=DEFAULT_PARAMS.hash,
        window_frames=window,
        hop_frames=hop,
        created="2026-11-29T00:00:00Z",
    )


class FakeModel:
    """Crying when the window's mean mel code is above 0."""

    def __init__(self, version: str = "fake-1") -> None:
        self.metadata = metadata(version)
        self.calls: list[int] = []

    def predict(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
        self.calls.append(len(mel_codes))
        loud = mel_codes.reshape(len(mel_codes), -1).astype(np.float32).mean(axis=1) > 0
        return np.where(loud, 0.95, 0.05).astype(np.float32)


def features(
    device: str,
    seq: int,
    *,
    crying: bool = False,
    stream: str = "abcdef01",
    frames: int = FRAMES_PER_MESSAGE,
    frontend: str = FRONTEND,
    n_mels: int = DEFAULT_PARAMS.n_mels,
    t0: float = T0,
) -> AudioFeatures:
    code = CRY_CODE if crying else QUIET_CODE
    mel = np.full((frames, n_mels), code, np.int8)
    level = np.full(frames, 40 if crying else -100, np.int8)
    return AudioFeatures.from_arrays(
        mel,
        level,
        device=device,
        stream=stream,
        seq=seq,
        frame_index=seq * frames,
        t0=t0 + seq * frames / 50.0,
        frontend=frontend,
    )


def payload(device: str, seq: int, **kw: object) -> bytes:
    return features(device, seq, **kw).encode()  # type: ignore[arg-type]


def wait_for(check: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def drain(q: queue.Queue[T]) -> list[T]:
    out: list[T] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def edge_status(device: str) -> EdgeStatus:
    """A heartbeat as an edge agent sends it (the schema test's example, renamed)."""
    example = EXAMPLES[EdgeStatus]
    assert isinstance(example, EdgeStatus)
    return example.model_copy(update={"device": device})


def hub_settings(tmp_path: Path, broker: str, **kw: Any) -> HubSettings:
    kw.setdefault("mqtt", {"broker": broker})
    kw["history"] = {"db": tmp_path / "history.sqlite", **kw.get("history", {})}
    kw["influx"] = {"spool": tmp_path / "spool.sqlite", **kw.get("influx", {})}
    return HubSettings.load(
        None,
        client_id=f"hub-{tmp_path.name[-20:]}".replace(".", "-"),
        status_interval_s=1.0,
        state_interval_s=1.0,
        **kw,
    )


class Edge:
    """Publishes generated features like an edge agent (QoS 1)."""

    def __init__(self, broker: Mosquitto, device: str) -> None:
        self.device = device
        avail = f"nurserycry/{device}/availability"
        self.link = MqttLink(
            MqttSettings(broker=broker.url),
            f"edge-{device}",
            will=(avail, "offline"),
            birth=[(avail, "online")],
            min_backoff_s=1,
            max_backoff_s=1,
        )
        self.link.start()
        assert self.link.wait_connected(10)
        self.topic = f"nurserycry/{device}/features"

    def send(self, seq: int, crying: bool = False, **kw: object) -> None:
        self.link.publish(self.topic, payload(self.device, seq, crying=crying, **kw), qos=1)
        self.link.wait_published(10)

    def raw(self, topic: str, data: bytes) -> None:
        self.link.publish(topic, data, qos=1)
        self.link.wait_published(10)

    def stop(self) -> None:
        self.link.stop()


class Watcher:
    """A plain MQTT client recording everything under the hub's and HA's prefixes."""

    def __init__(self, broker: Mosquitto, name: str = "watcher") -> None:
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.seen: list[tuple[str, bytes]] = []
        self.link = MqttLink(
            MqttSettings(broker=broker.url), name, min_backoff_s=1, max_backoff_s=1
        )
        self.link.subscribe("nurserycry/#", lambda m: self.got.put((m.topic, m.payload)))
        self.link.subscribe("homeassistant/#", lambda m: self.got.put((m.topic, m.payload)))
        self.link.start()
        assert self.link.wait_connected(10)

    def pump(self) -> list[tuple[str, bytes]]:
        while True:
            try:
                self.seen.append(self.got.get_nowait())
            except queue.Empty:
                return self.seen

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p in self.pump() if t == topic]

    def wait(self, topic: str, n: int = 1, timeout: float = 15.0) -> list[bytes]:
        def enough() -> list[bytes] | None:
            got = self.on(topic)
            return got if len(got) >= n else None

        return wait_for(enough, timeout, f"{n} message(s) on {topic}")

    def stop(self) -> None:
        self.link.stop()
