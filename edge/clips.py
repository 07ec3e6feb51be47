"""Opt-in raw clips for labelling: the last seconds of audio as FLAC, on request.

Off by default: raw audio never leaves the nursery unless ``clips`` is on.
When on, the processing thread copies every block into a bounded pre-roll
buffer (``clip_seconds`` at the source rate, int16) and the agent listens on
``{prefix}/N/command`` for ``clip`` or ``clip SECONDS`` (the hub or a person
sends it, e.g. when an episode ends; the broker ACL lets an edge read only its
own command topic). The clip is resampled to 16 kHz, encoded as FLAC and
published once as a ``RawClip`` (QoS 1, not spooled: a clip requested while
the broker is away is dropped with a warning).

Threads: ``append`` runs on the processing thread, ``request`` on paho's
thread (it only queues), encoding and publishing on the clip thread.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import soundfile

from nurserycry.shared.frontend import SAMPLE_RATE, resample
from nurserycry.shared.mqtt import Received
from nurserycry.shared.schemas import RawClip
from nurserycry.shared.throttle import RateLimitedWarnings

log = logging.getLogger(__name__)

MAX_CLIP_SECONDS = 60.0


class ClipBuffer:
    """The last ``seconds`` of mono audio at ``rate``, with the capture time of its end."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate = rate
        self._buf = np.zeros(max(1, int(rate * seconds)), np.int16)
        self._filled = 0
        self._head = 0  # next write index
        self._end_time: float | None = None
        self._lock = threading.Lock()

    def append(self, samples: npt.NDArray[np.float32], end_time: float) -> None:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        size = self._buf.size
        if pcm.size >= size:
            pcm = pcm[-size:]
        with self._lock:
            first = min(pcm.size, size - self._head)
            self._buf[self._head : self._head + first] = pcm[:first]
            self._buf[: pcm.size - first] = pcm[first:]
            self._head = (self._head + pcm.size) % size
            self._filled = min(size, self._filled + pcm.size)
            self._end_time = end_time

    def last(self, seconds: float) -> tuple[float, npt.NDArray[np.int16]] | None:
        """``(t0, samples)`` of the last ``seconds`` held (fewer if not yet captured)."""
        with self._lock:
            if self._end_time is None or not self._filled:
                return None
            n = min(self._filled, int(seconds * self.rate))
            idx = (self._head - n + np.arange(n)) % self._buf.size
            return self._end_time - n / self.rate, self._buf[idx].copy()


def parse_command(payload: bytes, default_s: float) -> float | None:
    """Seconds asked for by ``clip`` / ``clip SECONDS``; None for anything else."""
    words = payload.decode("utf-8", "replace").split()
    if not words or words[0] != "clip" or len(words) > 2:
        return None
    if len(words) == 1:
        return default_s
    try:
        seconds = float(words[1])
    except ValueError:
        return None
    return seconds if 0 < seconds <= MAX_CLIP_SECONDS else None


def encode_clip(device: str, t0: float, pcm: npt.NDArray[np.int16], rate: int) -> RawClip:
    audio = resample(pcm, rate)  # float32 at 16 kHz
    out = io.BytesIO()
    soundfile.write(out, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return RawClip(device=device, t0=t0, sample_rate=SAMPLE_RATE, data=out.getvalue())


def refuse(warn: RateLimitedWarnings, topic: str, payload: bytes, why: str) -> None:
    """Log an ignored command: one warning per topic and reason a minute (a flood stays quiet)."""
    warn.warn(("ignored", topic, why), "ignored %r on %s: %s", payload[:40], topic, why)


class ClipService:
    """Queue requests (from paho's thread) and answer them on its own thread."""

    def __init__(
        self,
        device: str,
        buffer: ClipBuffer,
        publish: Callable[[bytes], bool],
        default_s: float,
    ) -> None:
        self.device = device
        self.buffer = buffer
        self._publish = publish
        self.default_s = default_s
        self.sent = 0
        self._warn = RateLimitedWarnings(log)
        self._requests: queue.Queue[float | None] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, name="clips", daemon=True)
        self._thread.start()

    def on_command(self, msg: Received) -> None:  # paho's thread
        seconds = parse_command(msg.payload, self.default_s)
        if seconds is None:
            refuse(self._warn, msg.topic, msg.payload, "not 'clip' or 'clip SECONDS' (up to 60)")
            return
        try:
            self._requests.put_nowait(seconds)
        except queue.Full:
            refuse(self._warn, msg.topic, msg.payload, "clip requests already waiting")

    def _run(self) -> None:
        while (seconds := self._requests.get()) is not None:
            snap = self.buffer.last(seconds)
            if snap is None:
                log.warning("clip requested before any audio was captured")
                continue
            try:
                clip = encode_clip(self.device, snap[0], snap[1], self.buffer.rate)
                if self._publish(clip.encode()):
                    self.sent += 1
                    log.info("sent a %.1f s clip (%d bytes)", seconds, len(clip.data))
                else:
                    log.warning("clip dropped: not connected to the broker")
            except Exception:
                log.exception("clip failed")

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self._requests.put(None, timeout=1)
        self._thread.join(10)
