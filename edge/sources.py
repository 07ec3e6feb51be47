"""Audio sources behind one small interface: they push :class:`Block` s into a ring.

* :class:`MicrophoneSource`: PyAudio input (device by index or name), in the
  card's own rate; the callback thread only copies bytes into the ring.
* :class:`FileSource`: WAV/FLAC via soundfile, at real-time pace or ``fast``.
* :class:`StdinSource`: raw s16le PCM from a pipe (``arecord ... |``).
* :class:`BlocksSource`: any iterable of sample blocks (the demo's generated
  scenes).

Threads: the microphone uses PyAudio's callback thread (never blocks: a
full ring drops the block and counts an overrun); the others run one reader
thread that waits for room in the ring (a file or a pipe can wait; nothing is
lost). Capture times: each source fixes ``start_time``, the wall-clock time
of its sample 0, once; the agent advances from it by sample count.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt
import soundfile

from nurserycry.shared.errors import SourceError

from .ring import Block, Ring

log = logging.getLogger(__name__)

SourceKind = Literal["microphone", "file", "stdin", "generated"]


def to_mono(samples: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    arr = np.asarray(samples, dtype=np.float32)
    out: npt.NDArray[np.float32] = arr.mean(axis=1, dtype=np.float32) if arr.ndim == 2 else arr
    return out


class Source(ABC):
    """Call :meth:`start` with a ring; ``finished`` is set after the last block."""

    kind: SourceKind
    live: bool = True

    def __init__(self, rate: int, channels: int = 1) -> None:
        self.rate = rate
        self.channels = channels
        self.start_time: float | None = None
        self.finished = threading.Event()
        self.error: BaseException | None = None

    @abstractmethod
    def start(self, ring: Ring) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...


class _ThreadedSource(Source):
    """A reader thread pushing blocks into the ring with back-pressure."""

    live = False

    def __init__(self, rate: int, channels: int = 1) -> None:
        super().__init__(rate, channels)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ring: Ring) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(ring,), name=f"source-{self.kind}", daemon=True
        )
        self._thread.start()

    def _run(self, ring: Ring) -> None:
        try:
            self.produce(ring)
        except Exception as exc:
            log.exception("%s source failed", self.kind)
            self.error = exc
        finally:
            self.finished.set()
            ring.close()

    def push(self, ring: Ring, block: Block) -> bool:
        while not self._stop.is_set():
            if ring.put(block, timeout=0.2):
                return True
            if ring.closed:
                return False
        return False

    @abstractmethod
    def produce(self, ring: Ring) -> None: ...

    join_s = 5.0  # how long stop() waits for the reader

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.join_s)


class BlocksSource(_ThreadedSource):
    """Blocks of mono samples (float in [-1, 1] or int16) from any iterable."""

    kind: SourceKind = "generated"

    def __init__(
        self,
        blocks: Iterable[npt.NDArray[Any]],
        rate: int,
        *,
        realtime: bool = True,
        start_time: float | None = None,
    ) -> None:
        super().__init__(rate)
        self._blocks = blocks
        self.realtime = realtime
        self._given_start = start_time

    def produce(self, ring: Ring) -> None:
        blocks = iter(self._blocks)
        try:
            self._produce(ring, blocks)
        finally:
            close = getattr(blocks, "close", None)  # a generator: close its file now
            if close is not None:
                close()

    def _produce(self, ring: Ring, blocks: Iterator[npt.NDArray[Any]]) -> None:
        pos = 0
        began = time.monotonic()
        self.start_time = self._given_start if self._given_start is not None else time.time()
        for raw in blocks:
            arr = np.asarray(raw)
            samples = (
                arr.astype(np.float32) / 32768.0 if arr.dtype == np.int16 else to_mono(arr)
            ).astype(np.float32)
            if self.realtime:
                # Pace: a block is "captured" once its last sample has been played.
                due = began + (pos + samples.size) / self.rate
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
            if not self.push(ring, Block(pos, samples, samples.size)):
                return
            pos += samples.size


class FileSource(BlocksSource):
    """A WAV/FLAC file; capture time of sample 0 is ``start_time`` (default: now, or
    with ``fast`` the file's length before now)."""

    kind: SourceKind = "file"

    def __init__(
        self,
        path: Path,
        *,
        fast: bool = False,
        start_time: float | None = None,
        block_ms: int = 100,
    ) -> None:
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError(RuntimeError)
            raise SourceError(f"cannot read audio file {path}: {exc}") from None
        self.path = path
        block = max(1, info.samplerate * block_ms // 1000)
        super().__init__(self._read(path, block), info.samplerate, realtime=not fast)
        self._given_start = start_time
        # as fast as possible: the file *ends* now, so no capture time lies in the
        # future (a hub moves those to its own clock, #14.6)
        self._ends_now_s = info.frames / info.samplerate if fast and start_time is None else 0.0
        self.channels = info.channels

    def _produce(self, ring: Ring, blocks: Iterator[npt.NDArray[Any]]) -> None:
        if self._ends_now_s:
            self._given_start = time.time() - self._ends_now_s
        super()._produce(ring, blocks)

    @staticmethod
    def _read(path: Path, block: int) -> Iterable[npt.NDArray[np.float32]]:
        with soundfile.SoundFile(str(path)) as f:
            for chunk in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                yield to_mono(chunk)


class StdinSource(_ThreadedSource):
    """Raw signed 16-bit little-endian PCM from a stream (default: standard input)."""

    kind: SourceKind = "stdin"
    join_s = 0.5  # the reader may sit in read() until the writer goes away

    def __init__(
        self, rate: int, channels: int = 1, stream: IO[bytes] | None = None, block_ms: int = 100
    ) -> None:
        super().__init__(rate, channels)
        self._stream = stream
        self._frame_bytes = 2 * channels
        self._block_bytes = max(1, rate * block_ms // 1000) * self._frame_bytes

    def produce(self, ring: Ring) -> None:
        reader: Callable[[int], bytes]
        if self._stream is None:
            # os.read on the descriptor, not sys.stdin.buffer: a daemon thread blocked
            # inside a BufferedReader aborts the interpreter at exit.
            fd = sys.stdin.fileno()

            def read_fd(n: int) -> bytes:
                return os.read(fd, n)

            reader = read_fd
        else:
            reader = getattr(self._stream, "read1", self._stream.read)
        pos = 0
        carry = b""
        while not self._stop.is_set():
            data = reader(self._block_bytes)
            if not data:
                break
            if self.start_time is None:
                # The first bytes were captured one block's time before they arrived.
                self.start_time = time.time() - len(data) / self._frame_bytes / self.rate
            data = carry + data
            usable = len(data) - len(data) % self._frame_bytes
            carry = data[usable:]
            if not usable:
                continue
            samples = pcm_to_float(data[:usable], self.channels)
            if not self.push(ring, Block(pos, samples, samples.size)):
                return
            pos += samples.size
        if carry:
            log.warning("stdin ended inside a sample frame: %d byte(s) ignored", len(carry))


def pcm_to_float(data: bytes, channels: int = 1) -> npt.NDArray[np.float32]:
    """s16le interleaved PCM -> mono float32 in [-1, 1)."""
    pcm = np.frombuffer(data, dtype="<i2")
    if channels > 1:
        mixed: npt.NDArray[np.float32] = pcm.reshape(-1, channels).mean(axis=1, dtype=np.float32)
        return (mixed / np.float32(32768.0)).astype(np.float32)
    return (pcm.astype(np.float32) / np.float32(32768.0)).astype(np.float32)
