"""A PyAudio microphone as a :class:`~.sources.Source`.

Threads: PortAudio calls :meth:`MicrophoneSource._callback` on its own audio
thread. The callback only wraps the bytes it was given in a block and offers
it to the ring (no waiting, no conversion, no logging): a full ring is an
overrun, counted by the ring and reported in the heartbeat.

The device is chosen by index or by (part of) its name; the stream opens at
``rate`` if given, else 16 kHz if the card offers it, else the card's default
rate (the shared frontend resamples).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from nurserycry.shared.errors import SourceError
from nurserycry.shared.extras import install_command

from .ring import Block, Ring
from .sources import Source, SourceKind

log = logging.getLogger(__name__)

PREFERRED_RATE = 16_000


def _pyaudio() -> Any:
    try:
        return importlib.import_module("pyaudio")
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SourceError(
            "PyAudio is not installed: apt-get install portaudio19-dev gcc python3-dev, "
            f"then {install_command('edge')}"
        ) from exc


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """ALSA and JACK print probing noise on fd 2 while PortAudio starts; hide it."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _portaudio() -> Any:
    with quiet_stderr():
        return _pyaudio().PyAudio()


def input_devices(pa: Any) -> list[dict[str, Any]]:
    found = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if int(info.get("maxInputChannels", 0)) > 0:
            found.append(info)
    return found


def list_devices() -> list[str]:
    """One line per input device: index, name, channels, default rate."""
    pa = _portaudio()
    try:
        default = None
        with contextlib.suppress(OSError):
            default = int(pa.get_default_input_device_info()["index"])
        return [
            f"{'*' if int(d['index']) == default else ' '} {int(d['index']):3d}  {d['name']}  "
            f"({int(d['maxInputChannels'])} ch, default {int(d['defaultSampleRate'])} Hz)"
            for d in input_devices(pa)
        ]
    finally:
        pa.terminate()


def find_device(pa: Any, wanted: str | None) -> dict[str, Any]:
    """The input device by index or case-insensitive name part (None: the default)."""
    devices = input_devices(pa)
    if not devices:
        raise SourceError("no audio input device found (is the microphone plugged in?)")
    if wanted is None:
        try:
            return dict(pa.get_default_input_device_info())
        except OSError:
            return devices[0]
    if wanted.strip().isdigit():
        for d in devices:
            if int(d["index"]) == int(wanted):
                return d
        raise SourceError(f"no input device with index {wanted}; see --list-devices")
    matches = [d for d in devices if wanted.lower() in str(d["name"]).lower()]
    exact = [d for d in matches if str(d["name"]).lower() == wanted.lower()]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SourceError(f"no input device named like {wanted!r}; see --list-devices")
    names = ", ".join(repr(d["name"]) for d in matches)
    raise SourceError(f"{wanted!r} matches several input devices ({names}); use an index")


class MicrophoneSource(Source):
    kind: SourceKind = "microphone"
    live = True

    def __init__(
        self,
        device: str | None = None,
        rate: int | None = None,
        channels: int = 1,
        block_ms: int = 100,
    ) -> None:
        self._pa = _portaudio()
        try:
            self.device = find_device(self._pa, device)
            index = int(self.device["index"])
            chosen = rate or self._pick_rate(index, channels)
        except BaseException:
            self._pa.terminate()
            raise
        super().__init__(chosen, channels)
        self.block = max(1, chosen * block_ms // 1000)
        self._stream: Any = None
        self._pos = 0
        self._ring: Ring | None = None
        self.card_overflows = 0

    def _pick_rate(self, index: int, channels: int) -> int:
        pyaudio = _pyaudio()
        try:
            ok = self._pa.is_format_supported(
                PREFERRED_RATE,
                input_device=index,
                input_channels=channels,
                input_format=pyaudio.paInt16,
            )
        except ValueError:
            ok = False
        return PREFERRED_RATE if ok else int(self.device["defaultSampleRate"])

    def start(self, ring: Ring) -> None:
        pyaudio = _pyaudio()
        self._ring = ring
        try:
            self._stream = self._pa.open(
                format=pyaudio.paInt16,
                channels=self.channels,
                rate=self.rate,
                input=True,
                input_device_index=int(self.device["index"]),
                frames_per_buffer=self.block,
                stream_callback=self._callback,
            )
        except (OSError, ValueError) as exc:
            raise SourceError(
                f"cannot open {self.device['name']!r} at {self.rate} Hz, "
                f"{self.channels} channel(s): {exc} (try another --rate or --channels)"
            ) from None
        log.info(
            "capturing from %r (index %s) at %d Hz",
            self.device["name"],
            self.device["index"],
            self.rate,
        )

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: dict[str, float], status: int
    ) -> tuple[None, int]:
        pyaudio = _pyaudio()
        latency = time_info.get("current_time", 0.0) - time_info.get("input_buffer_adc_time", 0.0)
        if not 0.0 <= latency < 2.0:
            latency = frame_count / self.rate
        captured = time.time() - latency  # wall time of this block's first sample
        if self.start_time is None:
            self.start_time = captured
        if status & pyaudio.paInputOverflow:
            self.card_overflows += 1
        if in_data is not None and self._ring is not None:
            self._ring.offer(Block(self._pos, in_data, frame_count, captured))
        self._pos += frame_count
        return None, pyaudio.paContinue

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop_stream()
                self._stream.close()
            except OSError:
                log.warning("closing the audio stream failed", exc_info=True)
            self._stream = None
        self._pa.terminate()
        self.finished.set()
        if self._ring is not None:
            self._ring.close()
