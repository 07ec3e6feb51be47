"""A bounded buffer of audio blocks between capture and processing.

Threads: the producer is the sound card's callback thread (PyAudio) or a
source's reader thread; the consumer is the agent's processing thread. A live
source calls :meth:`Ring.offer`, which never blocks: when the ring is full the
block is dropped and counted as an overrun (the processing thread sees the
jump in sample position and marks a gap). A file or pipe calls :meth:`put`,
which waits for room instead (back-pressure loses nothing).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Block:
    """``samples``: mono float32 (or raw s16le bytes, converted later) from ``pos`` on."""

    pos: int  # index of the first sample at the source's rate
    samples: npt.NDArray[np.float32] | bytes
    n: int  # number of (mono) samples
    t: float | None = None  # wall-clock capture time of the first sample (live sources)

    @staticmethod
    def from_pcm(pos: int, data: bytes, channels: int = 1) -> Block:
        return Block(pos, data, len(data) // (2 * channels))


class Ring:
    """At most ``capacity`` samples in flight; overruns counted, never silent."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("ring capacity must be positive")
        self.capacity = capacity
        self._blocks: deque[Block] = deque()
        self._held = 0
        self._cond = threading.Condition()
        self._closed = False
        self.overruns = 0  # blocks dropped
        self.last_block = time.monotonic()  # when the source last delivered (stall check)
        self.dropped_samples = 0

    @property
    def held(self) -> int:
        return self._held

    def offer(self, block: Block) -> bool:
        """Add without waiting; a full ring drops ``block`` (an overrun)."""
        self.last_block = time.monotonic()
        with self._cond:
            if self._held + block.n > self.capacity or self._closed:
                self.overruns += 1
                self.dropped_samples += block.n
                return False
            self._blocks.append(block)
            self._held += block.n
            self._cond.notify()
            return True

    def put(self, block: Block, timeout: float | None = None) -> bool:
        """Add, waiting for room (back-pressure); False if closed or timed out."""
        self.last_block = time.monotonic()
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._closed or self._held + block.n <= max(self.capacity, block.n),
                timeout,
            )
            if not ok or self._closed:
                return False
            self._blocks.append(block)
            self._held += block.n
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Block | None:
        """The oldest block, or None on timeout or once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._blocks or self._closed, timeout):
                return None
            if not self._blocks:
                return None
            block = self._blocks.popleft()
            self._held -= block.n
            self._cond.notify_all()
            return block

    def close(self) -> None:
        """No more blocks: :meth:`get` drains what is held, then returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._blocks
