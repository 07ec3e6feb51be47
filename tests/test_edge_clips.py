"""Opt-in raw clips: the pre-roll buffer, the command, and FLAC over a real broker."""

from __future__ import annotations

import io
import queue
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nurserycry.edge.clips import ClipBuffer, parse_command
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.mqtt import MqttLink
from nurserycry.shared.schemas import RawClip

from tests.servers import Mosquitto
from tests.test_edge_helpers import (
    Collector,
    edge_cmd,
    nursery_name,
    start_edge,
    tone_noise,
    wait_exit,
    write_wav,
)


def test_clip_buffer_keeps_the_last_seconds_with_their_time() -> None:
    buf = ClipBuffer(rate=100, seconds=2.0)
    assert buf.last(1.0) is None
    audio = (np.arange(350) % 200 - 100).astype(np.float32) / 200
    for i in range(0, 350, 30):
        buf.append(audio[i : i + 30], end_time=1000.0 + min(i + 30, 350) / 100)
    t0, pcm = buf.last(5.0) or (0.0, np.zeros(0, np.int16))
    assert pcm.size == 200 and t0 == pytest.approx(1000.0 + 1.5)
    expected = (np.clip(audio[150:], -1, 1) * 32767).astype(np.int16)
    np.testing.assert_array_equal(pcm, expected)
    t0, pcm = buf.last(0.5) or (0.0, np.zeros(0, np.int16))
    assert pcm.size == 50 and t0 == pytest.approx(1003.0)


@pytest.mark.parametrize(
    ("payload", "seconds"),
    [(b"clip", 30.0), (b"clip 5", 5.0), (b"clip 0", None), (b"clip 600", None), (b"rm -rf", None)],
)
def test_clip_command(payload: bytes, seconds: float | None) -> None:
    assert parse_command(payload, 30.0) == seconds


@pytest.mark.servers
@pytest.mark.parametrize("enabled", [True, False])
def test_clip_on_request_only_when_turned_on(
    mosquitto: Mosquitto, tmp_path: Path, enabled: bool
) -> None:
    audio = tone_noise(30.0, seed=21)
    wav = write_wav(tmp_path / "a.wav", audio)
    sub = Collector(mosquitto, "nursery-7")
    clips: queue.Queue[bytes] = queue.Queue()
    sub.link.subscribe(
        f"nurserycry/{nursery_name('nursery-7')}/clip", lambda m: clips.put(m.payload)
    )
    hub = MqttLink(MqttSettings(broker=mosquitto.url), "clip-requester")
    hub.start()
    assert hub.wait_connected(10)
    try:
        cmd = edge_cmd(mosquitto, "nursery-7", tmp_path / "s.spool", "--file", str(wav))
        cmd += ["--start-time", "1800000000"]
        cmd += ["--clips", "--clip-seconds", "10"] if enabled else []
        proc = start_edge(cmd, tmp_path / "edge.log")
        try:
            assert sub.wait(lambda s: len(s.features) >= 4, 20)  # 2 s captured
            command = f"nurserycry/{nursery_name('nursery-7')}/command"
            hub.publish(command, "clip 1.5", qos=1)
            hub.wait_published(5)
            if enabled:
                clip = RawClip.decode(clips.get(timeout=15))
            else:
                with pytest.raises(queue.Empty):
                    clips.get(timeout=2)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert wait_exit(proc, 20) == 0
        if not enabled:
            assert "clips are off" in (tmp_path / "edge.log").read_text()
            return
        assert clip.device == nursery_name("nursery-7") and clip.sample_rate == 16_000
        samples, rate = soundfile.read(io.BytesIO(clip.data), dtype="int16")
        assert rate == 16_000 and samples.size == 24_000
        start = round((clip.t0 - 1_800_000_000) * 16_000)
        assert 0 <= start <= audio.size - samples.size
        np.testing.assert_allclose(samples, audio[start : start + samples.size], atol=1)
    finally:
        hub.stop()
        sub.stop()
