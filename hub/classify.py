"""``nurserycry classify [--model M] PATH...``: audio files through the hub's detector.

Each file is read with soundfile, turned into frames by the edge's
:class:`~nurserycry.shared.frontend.StreamingFrontend`, cut into windows and
tracked into episodes by :class:`~nurserycry.shared.detector.NurseryDetector`
(the hub's own logic) and scored by :class:`~nurserycry.shared.model.CryModel`.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

# ruff: noqa: T201  (a command: its output is printed)
import soundfile as sf

from nurserycry.shared.detector import DetectorConfig, detect, stream_file
from nurserycry.shared.frontend import FrontendParams
from nurserycry.shared.model import CryModel

log = logging.getLogger(__name__)

AUDIO_SUFFIXES: Final = {".wav", ".flac", ".ogg"}


def classify_file(
    path: Path, model: CryModel, config: DetectorConfig | None = None
) -> dict[str, Any]:
    """The JSON record for one file, its frames computed with the model's own frontend."""
    result = detect(stream_file(path, model.params), model, config, model.params)
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
    parser.add_argument(
        "--variant",
        choices=["int8", "float32"],
        default="int8",
        help="which of the model's files to run (default: int8, what the hub runs)",
    )
    args = parser.parse_args(argv)
    try:
        files = audio_files(args.paths)
        if not files:
            raise FileNotFoundError(
                f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in "
                + ", ".join(str(p) for p in args.paths)
            )
        model = CryModel.load(args.model, variant=args.variant)
    except (FileNotFoundError, ValueError) as exc:
        print(f"nurserycry classify: {exc}", file=sys.stderr)
        return 2
    config = model.metadata.detector_config()
    status = 0
    for path in files:
        try:
            record = classify_file(path, model, config)
        except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError (RuntimeError)
            print(f"nurserycry classify: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        if record["windows"] == 0:
            print(
                f"nurserycry classify: {path}: {record['duration_s']} s is shorter than one "
                f"window of the model ({config.window_frames} frames, "
                f"{_window_seconds(config, model.params):.2f} s): nothing was scored",
                file=sys.stderr,
            )
        print(json.dumps(record), flush=True)
    return status


def _window_seconds(config: DetectorConfig, p: FrontendParams) -> float:
    """The shortest audio that gives one window (the frontend's first frame included)."""
    return ((config.window_frames - 1) * p.hop_length + p.win_length) / p.sample_rate
