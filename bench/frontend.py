"""Edge DSP cost: seconds of CPU per second of audio through the shared frontend.

    python -m bench.frontend [--seconds 60]

Streams generated audio in 1024-sample blocks (what PyAudio hands the edge)
at 16 kHz and 48 kHz (the latter includes soxr resampling), and reports the
share of one core the frontend needs in real time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import write
from nurserycry.shared.frontend import StreamingFrontend


def run(rate: int, seconds: float, block: int = 1024) -> dict[str, float]:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(rate * seconds)) * 0.1).astype(np.float32)
    front = StreamingFrontend(rate)
    start = time.process_time()
    frames = 0
    for pos in range(0, audio.size, block):
        frames += front.process(audio[pos : pos + block]).n_frames
    cpu = time.process_time() - start
    return {
        "rate_hz": rate,
        "audio_s": seconds,
        "cpu_s": cpu,
        "core_share_realtime": cpu / seconds,
        "frames": frames,
        "us_per_frame": cpu / frames * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    results = [run(rate, args.seconds) for rate in (16_000, 48_000)]
    write("frontend", {"results": results})


if __name__ == "__main__":
    main()
