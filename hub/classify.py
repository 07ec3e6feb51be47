"""``nurserycry classify [--model M] PATH...``: audio files through the hub's detector.

Each file is read with soundfile, turned into frames by the edge's
:class:`~nurserycry.shared.frontend.StreamingFrontend`, cut into windows and
tracked into episodes by :class:`~nurserycry.shared.detector.NurseryDetector`
(the hub's own logic) and scored by :class:`~nurserycry.hub.inference.CryModel`.
One JSON line per file goes to stdout::

    {"path": "...", "duration_s": 7.0, "windows": 13, "cry_probability_max": 0.98,
     "cry_probability_mean": 0.71, "alert": true,
     "episodes": [{"start_s": 0.5, "end_s": 6.5, "alert_at_s": 2.0, "peak": 0.98,
                   "alert": true}]}

Times are seconds of stream time from the start of the file; ``alert_at_s`` is
when the hub would fire, computed only from audio up to that moment.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

# ruff: noqa: T201  (a command: its output is printed)
import soundfile as sf

from nurserycry.shared.detector import DetectorConfig, NurseryDetector
from nurserycry.shared.episodes import Episode, EpisodeChange
from nurserycry.shared.frontend import Features, StreamingFrontend

from .inference import CryModel, Scorer

log = logging.getLogger(__name__)

AUDIO_SUFFIXES: Final = {".wav", ".flac", ".ogg"}
_CHUNK_S: Final = 0.5  # stream the file in half-second chunks, like the edge


@dataclass
class StreamResult:
    """Window scores and episodes of one stream."""

    t_end: npt.NDArray[np.float64]
    probabilities: npt.NDArray[np.float32]
    episodes: list[Episode] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        return any(e.alert for e in self.episodes)


def detect(
    chunks: Iterable[Features], model: Scorer, config: DetectorConfig | None = None
) -> StreamResult:
    """Run frames (in any chunking) through the hub's detector and ``model``."""
    detector = NurseryDetector(config)
    frame_s = detector.assembler.params.hop_length / detector.assembler.params.sample_rate
    ends: list[float] = []
    probs: list[float] = []
    episodes: dict[int, Episode] = {}

    def record(changes: list[EpisodeChange]) -> None:
        for change in changes:
            episodes[change.episode.index] = change.episode

    index = 0
    for feats in chunks:
        if feats.n_frames == 0:
            continue
        windows, changes = detector.push(feats.mel, feats.level, index * frame_s, index)
        record(changes)
        index += feats.n_frames
        if not windows:
            continue
        p = model.predict(np.stack([w.mel for w in windows]))
        for window, prob in zip(windows, p, strict=True):
            record(detector.score(window, float(prob)).changes)
            ends.append(window.t_end)
            probs.append(float(prob))
    record(detector.finish())
    return StreamResult(
        np.array(ends, np.float64),
        np.array(probs, np.float32),
        [episodes[k] for k in sorted(episodes)],
    )


def stream_file(path: Path, chunk_s: float = _CHUNK_S) -> Iterator[Features]:
    """A file's frames, computed chunk by chunk by the edge's streaming frontend."""
    with sf.SoundFile(str(path)) as fh:
        frontend = StreamingFrontend(int(fh.samplerate))
        block = max(1, int(fh.samplerate * chunk_s))
        while True:
            data = fh.read(block, dtype="float32", always_2d=True)
            last = data.shape[0] < block
            yield frontend.process(np.ascontiguousarray(data.mean(axis=1)), last=last)
            if last:
                return


def classify_file(
    path: Path, model: Scorer, config: DetectorConfig | None = None
) -> dict[str, Any]:
    """The JSON record for one file."""
    result = detect(stream_file(path), model, config)
    p = result.probabilities
    duration = float(sf.info(str(path)).duration)
    return {
        "path": str(path),
        "duration_s": round(duration, 3),
        "windows": int(p.size),
        "cry_probability_max": round(float(p.max()), 4) if p.size else 0.0,
        "cry_probability_mean": round(float(p.mean()), 4) if p.size else 0.0,
        "alert": result.alert,
        "episodes": [
            {
                "start_s": round(e.start, 3),
                "end_s": round(e.end if e.end is not None else duration, 3),
                "alert_at_s": round(e.alert_at, 3),
                "peak": round(e.peak, 4),
                "alert": e.alert,
            }
            for e in result.episodes
        ],
    }


def audio_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and every WAV/FLAC/OGG under the given folders (sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nurserycry classify",
        description="Run audio files through the hub's frontend, model and episode logic; "
        "print one JSON line per file.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio file or folder")
    parser.add_argument(
        "--model", type=Path, default=None, help="model directory (default: shipped)"
    )
    parser.add_argument("--variant", choices=["int8", "float32"], default="int8")
    args = parser.parse_args(argv)
    try:
        files = audio_files(args.paths)
        model = CryModel.load(args.model, variant=args.variant)
    except (FileNotFoundError, ValueError) as exc:
        print(f"nurserycry classify: {exc}", file=sys.stderr)
        return 2
    config = DetectorConfig(
        window_frames=model.metadata.window_frames, hop_frames=model.metadata.hop_frames
    )
    status = 0
    for path in files:
        try:
            record = classify_file(path, model, config)
        except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError (RuntimeError)
            print(f"nurserycry classify: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps(record), flush=True)
    return status
