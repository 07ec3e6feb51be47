"""PyAudio capture for real, through an ALSA file-plugin "microphone" (no sound card).

``$HOME/.asoundrc`` defines a pcm ``nurserytest`` whose capture side reads raw
s16le samples from a file. ALSA's ``null`` slave has no clock, so this card
delivers audio as fast as it can: far faster than real time, which also makes
it an overrun test (the ring fills, blocks are dropped, counted and reported).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nurserycry.shared.frontend import compute_features

from tests.servers import Mosquitto
from tests.test_edge_helpers import Collector, edge_cmd, tone_noise, wait_exit

pyaudio = pytest.importorskip("pyaudio")

ASOUNDRC = """
pcm.nurserytest {{
    type asym
    playback.pcm "null"
    capture.pcm {{
        type file
        file "/dev/null"
        infile "{infile}"
        format "raw"
        slave.pcm "null"
    }}
    hint {{ show on description "NurseryCry test microphone" }}
}}
"""


@pytest.fixture
def alsa_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A HOME whose .asoundrc has the file microphone; yields (home, raw file)."""
    home = tmp_path / "home"
    home.mkdir()
    raw = home / "audio.raw"
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=raw))
    monkeypatch.setenv("HOME", str(home))
    return home, raw


def test_microphone_captures_the_files_samples(alsa_home: tuple[Path, Path]) -> None:
    from nurserycry.edge.microphone import MicrophoneSource, list_devices
    from nurserycry.edge.ring import Ring

    _home, raw = alsa_home
    audio = tone_noise(4.0, seed=11)
    raw.write_bytes(audio.astype("<i2").tobytes())
    assert any("nurserytest" in line for line in list_devices())
    source = MicrophoneSource("nurserytest", rate=16_000)
    ring = Ring(capacity=audio.size // 2)
    source.start(ring)
    try:
        # the clock-less card outruns everyone: the ring fills and overruns are counted
        for _ in range(200):
            if ring.overruns:
                break
            subprocess.run(["sleep", "0.05"], check=True)
    finally:
        source.stop()
    assert ring.overruns > 0 and ring.dropped_samples > 0
    assert source.start_time is not None and source.kind == "microphone"
    blocks = []
    while (block := ring.get(timeout=0)) is not None:
        blocks.append(block)
    assert blocks[0].pos == 0
    contiguous = bytearray()
    for block in blocks:
        if block.pos != len(contiguous) // 2:
            break
        assert isinstance(block.samples, bytes)
        contiguous += block.samples
    captured = np.frombuffer(bytes(contiguous), "<i2")
    assert captured.size >= audio.size // 4
    np.testing.assert_array_equal(captured, audio[: captured.size])


def test_unknown_device_is_a_clear_error(alsa_home: tuple[Path, Path]) -> None:
    from nurserycry.edge.microphone import MicrophoneSource
    from nurserycry.shared.errors import SourceError

    alsa_home[1].write_bytes(bytes(64_000))
    with pytest.raises(SourceError, match="no input device named like 'no-such-mic'"):
        MicrophoneSource("no-such-mic")


@pytest.mark.servers
def test_edge_command_with_the_file_microphone(
    alsa_home: tuple[Path, Path], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    home, raw = alsa_home
    rate = 48_000  # the card's rate: the frontend resamples to 16 kHz
    audio = tone_noise(12.0, rate=rate, seed=13)
    raw.write_bytes(audio.astype("<i2").tobytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURSERYCRY_")}
    env["HOME"] = str(home)
    listed = subprocess.run(
        [sys.executable, "-m", "nurserycry", "edge", "--list-devices"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert listed.returncode == 0 and "nurserytest" in listed.stdout
    sub = Collector(mosquitto, "nursery-mic")
    try:
        cmd = edge_cmd(mosquitto, "nursery-mic", tmp_path / "s.spool", "--device", "nurserytest")
        cmd += ["--rate", str(rate), "--status-interval-s", "0.5"]
        with (tmp_path / "edge.log").open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        try:
            assert sub.wait(lambda s: len(s.features) >= 6 and any(x.overruns for x in s.status))
        finally:
            proc.send_signal(signal.SIGTERM)
            assert wait_exit(proc, 30) == 0, (tmp_path / "edge.log").read_text()
        msgs = sorted(sub.features, key=lambda m: m.seq)[:6]
        assert [m.seq for m in msgs] == list(range(6))
        assert all(m.sample_rate_in == rate and m.n_frames == 25 for m in msgs)
        # the ring holds 10 s, so the first seconds were captured without a gap
        expected = compute_features(audio[: 8 * rate], rate).mel[:150]
        np.testing.assert_array_equal(np.concatenate([m.mel.to_numpy() for m in msgs]), expected)
        assert sub.status[-1].source == "microphone" and sub.status[-1].overruns > 0
    finally:
        sub.stop()
