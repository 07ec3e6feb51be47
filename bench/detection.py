"""Detection benchmark: the NurseryCry model vs YAMNet (Frigate's rule) vs loudness.

All three see the same validation clips (a group- or source-disjoint split of a
labelled data folder) and are scored per clip (does it alert?) and per window,
and over all non-cry validation audio played back to back (false alerts per hour).

    python bench/detection.py --data ../shared/data --model nurserycry/hub/models/default \
        --yamnet ../shared/peers/yamnet.tflite --split source --out bench/detection.json

* NurseryCry: the int8 model through the hub's detector (frontend -> windows ->
  episode logic), as in ``nurserycry evaluate``.
* YAMNet: 0.975 s chunks (15,600 samples at 16 kHz) every 0.4875 s; a chunk is hot
  when max(class 19, 20, 21) >= 0.8 (Frigate); a clip alerts when any chunk is hot.
  False alerts: Frigate's events (hot chunks at most 5 s apart) that alert under the
  hub's cooldown, 60 s from the end of the last alerted event (``frigate_alerts``, as in
  the harness; ``bench_*.json`` of the shipped model predate it: each hot chunk at least
  60 s after the previous hot chunk alerted).
* Loudness: the RMS level of 1 s windows (dBFS); clip score = loudest window. Its
  threshold is chosen on this same data (best F1), so its figures are optimistic.

YAMNet is loaded from the path given, never shipped or downloaded by the product.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nurserycry.shared.detector import DetectorConfig, StreamResult, detect
from nurserycry.shared.episodes import EpisodeConfig, EpisodeTracker
from nurserycry.shared.frontend import compute_features
from nurserycry.shared.model import CryModel
from nurserycry.training import metrics
from nurserycry.training.audio import load_waves
from nurserycry.training.dataset import CRYING, load_clips
from nurserycry.training.evaluate import evaluate_clips, run_clip
from nurserycry.training.splits import split_by_group, split_by_source
from nurserycry.training.teacher import FRIGATE_THRESHOLD, frigate_alerts

log = logging.getLogger("bench.detection")
Wave = npt.NDArray[np.float32]
YAMNET_CHUNK = 15_600
YAMNET_HOP = 7_800
YAMNET_CRY_CLASSES = (19, 20, 21)


class Yamnet:
    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=1)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]
        self.seconds = 0.0
        self.chunks = 0

    def scores(self, wave: Wave) -> npt.NDArray[np.float32]:
        """max(crying classes) for every chunk of ``wave``."""
        if wave.size < YAMNET_CHUNK:
            wave = np.pad(wave, ((YAMNET_CHUNK - wave.size) // 2, YAMNET_CHUNK))[:YAMNET_CHUNK]
        out = []
        for start in range(0, wave.size - YAMNET_CHUNK + 1, YAMNET_HOP):
            t0 = time.perf_counter()
            self.interp.set_tensor(self.inp, wave[None, start : start + YAMNET_CHUNK])
            self.interp.invoke()
            s = self.interp.get_tensor(self.out)[0]
            self.seconds += time.perf_counter() - t0
            self.chunks += 1
            out.append(float(s[list(YAMNET_CRY_CLASSES)].max()))
        return np.array(out, np.float32)


def yamnet_report(
    yam: Yamnet, ys: list[bool], waves: Sequence[Wave], negatives: Sequence[Wave]
) -> dict[str, Any]:
    chunk_y: list[bool] = []
    chunk_s: list[float] = []
    clip_s: list[float] = []
    for y, w in zip(ys, waves, strict=True):
        s = yam.scores(w)
        chunk_y += [y] * s.size
        chunk_s += s.tolist()
        clip_s.append(float(s.max()))
    neg = yam.scores(np.concatenate(list(negatives))) if negatives else np.zeros(0, np.float32)
    alerts = len(frigate_alerts(neg, hop=YAMNET_HOP))
    hours = sum(w.size for w in negatives) / 16_000 / 3600
    return {
        "rule": "max(classes 19,20,21) >= 0.8 in any 0.975 s chunk (Frigate)",
        "chunks": metrics.binary(chunk_y, chunk_s, FRIGATE_THRESHOLD),
        "clips_alert": metrics.binary(ys, clip_s, FRIGATE_THRESHOLD),
        "false_alerts": {
            "hours": round(hours, 3),
            "alerts": alerts,
            "alerts_per_hour": round(alerts / hours, 3) if hours else None,
        },
        "ms_per_chunk_1_thread": round(1000 * yam.seconds / max(yam.chunks, 1), 3),
    }


def loudness_report(ys: list[bool], waves: Sequence[Wave]) -> dict[str, Any]:
    win_y: list[bool] = []
    win_s: list[float] = []
    clip_s: list[float] = []
    for y, w in zip(ys, waves, strict=True):
        frames = w[: w.size - w.size % 16_000].reshape(-1, 16_000) if w.size >= 16_000 else w[None]
        db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        win_y += [y] * db.size
        win_s += db.tolist()
        clip_s.append(float(db.max()))
    best = max(np.unique(np.round(clip_s, 1)), key=lambda t: metrics.binary(ys, clip_s, t)["f1"])
    return {
        "rule": "loudest 1 s RMS level >= threshold (threshold chosen for best F1 on this data)",
        "threshold_dbfs": float(best),
        "clips": metrics.binary(ys, clip_s, float(best)),
        "windows": metrics.binary(win_y, win_s, float(best)),
    }


def _alerts(res: StreamResult, window_s: float, cfg: EpisodeConfig) -> int:
    """Replay one stream's window scores through the shared episode logic."""
    tracker = EpisodeTracker(cfg)
    changes = []
    for t_end, p in zip(res.t_end, res.probabilities, strict=True):
        changes += tracker.update(float(t_end) - window_s, float(t_end), float(p))
    changes += tracker.finish()
    return sum(1 for c in changes if c.kind == "started" and c.episode.alert)


def sweep(
    model: CryModel, ys: list[bool], waves: Sequence[Wave], thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    """Clip alert P/R/F1 and false alerts per hour for other ``on_threshold`` values
    (the rest of the episode rule at its defaults; ``off_threshold`` capped at it)."""
    config = DetectorConfig(window_frames=model.window_frames, hop_frames=model.metadata.hop_frames)
    window_s = model.window_frames / 50
    clips = [run_clip(w, model, config) for w in waves]
    negatives = [w for w, y in zip(waves, ys, strict=True) if not y]
    stream = detect([compute_features(np.concatenate(negatives))], model, config)
    hours = sum(w.size for w in negatives) / 16_000 / 3600
    rows = []
    for thr in thresholds:
        default = EpisodeConfig()
        cfg = EpisodeConfig(on_threshold=thr, off_threshold=min(default.off_threshold, thr))
        alerts = [1.0 if _alerts(r, window_s, cfg) else 0.0 for r in clips]
        false = _alerts(stream, window_s, cfg)
        row = metrics.binary(ys, alerts, 0.5)
        rows.append(
            {
                "on_threshold": thr,
                "precision": row["precision"],
                "recall": row["recall"],
                "f1": row["f1"],
                "false_alerts_per_hour": round(false / hours, 3),
            }
        )
    return rows


def timing(model: CryModel, n: int = 5_000) -> dict[str, float]:
    """Per-window inference time of ``model`` (1 thread), batched and one by one."""
    codes = np.random.default_rng(0).integers(-60, 60, (n, model.window_frames, 32)).astype(np.int8)
    model.predict(codes[:300])
    t0 = time.perf_counter()
    model.predict(codes)
    batched = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(1_000):
        model.predict(codes[i : i + 1])
    single = (time.perf_counter() - t0) / 1_000
    return {
        "ms_per_window_batched": round(batched * 1e3, 4),
        "ms_per_window_single": round(single * 1e3, 4),
        "windows_per_s_batched": round(1 / batched),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="labelled data folder (manifest.csv)"
    )
    parser.add_argument("--model", type=Path, help="NurseryCry model directory (default: shipped)")
    parser.add_argument("--yamnet", type=Path, help="yamnet.tflite (skipped if not given)")
    parser.add_argument("--split", choices=["group", "source", "all"], default="source")
    parser.add_argument("--seed", type=int, default=0, help="seed of the group split")
    parser.add_argument("--cache", type=Path, help="decoded-audio cache folder")
    parser.add_argument("--out", type=Path, help="JSON output (default: stdout only)")
    parser.add_argument("--sweep", help="comma-separated on_threshold values to also report")
    parser.add_argument("--no-timing", action="store_true", help="skip the inference timing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    clips = load_clips(args.data)
    if args.split == "all":
        idx = list(range(len(clips)))
    else:
        split = (
            split_by_source(clips)
            if args.split == "source"
            else split_by_group(clips, 0.2, args.seed)
        )
        idx = split.val
    chosen = [clips[i] for i in idx if clips[i].label != "unverified"]
    waves = load_waves(chosen, args.cache)
    ys = [c.label == CRYING for c in chosen]
    negatives = [w for w, y in zip(waves, ys, strict=True) if not y]
    model = CryModel.load(args.model)
    config = DetectorConfig(
        window_frames=model.metadata.window_frames, hop_frames=model.metadata.hop_frames
    )
    ours = evaluate_clips(chosen, waves, model, config=config)
    result: dict[str, Any] = {
        "split": args.split,
        "clips": {"crying": sum(ys), "not_crying": len(ys) - sum(ys)},
        "nurserycry": {
            "model_version": model.metadata.model_version,
            **{
                k: ours[k]
                for k in (
                    "windows",
                    "clips_alert",
                    "clips_max_score",
                    "false_alerts",
                    "per_band",
                    "band_probe",
                )
            },
            **({} if args.no_timing else timing(model)),
        },
        "loudness": loudness_report(ys, waves),
    }
    if args.sweep:
        values = [float(v) for v in args.sweep.split(",")]
        result["nurserycry"]["sweep"] = sweep(model, ys, waves, values)
    if args.yamnet is not None:
        result["yamnet"] = yamnet_report(Yamnet(args.yamnet), ys, waves, negatives)
    text = json.dumps(result, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
