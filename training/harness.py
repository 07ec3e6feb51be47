"""The evaluation harness: every detector on the named held-out folds, in one run.

    nurserycry harness --data ../shared/data --yamnet ../shared/peers/yamnet.tflite \\
        --model today=hub/models/default --model new=runs/twins --out runs/harness

For each fold of :mod:`.folds` and each detector:

* **clips**: every held-out clip through the hub's detector (frontend -> windows
  -> model -> the shared episode rule); clip P/R/F1 of "did it alert", clip
  ROC-AUC of its highest window score, window ROC-AUC; false alarms per class
  and per negative group, and the clip F1 and ROC-AUC with each of the costliest
  negative classes left out (``without_class``: which sound the error is); a
  baby's non-cry voice (babble, laughter, and held-out adult laughter played 1.3x
  and 1.6x faster) on its own;
* **night streams** (:mod:`.night`) built from the fold's held-out recordings:
  episodes alerted, alert delay (median, p95), false alerts per hour.

A ``--model NAME=DIR`` whose DIR holds ``model.tflite`` is scored as it is on
every fold (say whether it saw a fold's sources); a DIR with one sub-folder per
fold (``DIR/second_source``, ``DIR/wideband``) holds twins trained without
them (``nurserycry train --split fold --fold NAME``). YAMNet runs under
Frigate's rule (max of classes 19-21 >= 0.8 in a 0.975 s chunk; hot chunks at
most 5 s apart are one event, which alerts unless it starts within the hub's
60 s cooldown after the last alerted one ended) on exactly the same audio.
Writes ``harness.json`` and ``harness.png``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr
from tqdm import tqdm

from nurserycry.shared.detector import DetectorConfig, detect
from nurserycry.shared.frontend import Features, compute_features
from nurserycry.shared.model import CryModel

from . import metrics
from .dataset import CRYING, Clip
from .evaluate import pad_to_window
from .folds import FOLDS, Fold, split_by_fold
from .night import NightConfig, NightStream, build_night, score_night
from .rooms import room_bank
from .teacher import Teacher, chunks_of, cry_score, frigate_alerts

log = logging.getLogger(__name__)

Wave = npt.NDArray[np.float32]
BABY_VOICE = frozenset({"baby_babble_coo", "baby_laugh"})
LAUGHTER = frozenset({"laughter"})
SPEEDUPS = (1.3, 1.6)
COSTLIEST = 5  # classes listed in a report's ``without_class``


@dataclass(frozen=True)
class Scored:
    scores: npt.NDArray[np.float32]  # per window (or chunk)
    alerts: list[float]  # alert times, stream seconds


class Contender:
    """One detector: a NurseryCry model (or one twin per fold), or YAMNet."""

    def __init__(self, name: str, path: Path | None = None, teacher: Teacher | None = None):
        self.name, self.teacher = name, teacher
        self.models: dict[str, CryModel] = {}
        self.twins = False
        if path is not None:
            if (path / "model.tflite").is_file():
                model = CryModel.load(path)
                self.models = dict.fromkeys(FOLDS, model)
            else:  # twins; a fold without one is not scored for this detector
                self.models = {f: CryModel.load(path / f) for f in FOLDS if (path / f).is_dir()}
                self.twins = True
                if not self.models:
                    raise FileNotFoundError(f"{path}: no model.tflite and no twin folders")

    def describe(self) -> str:
        if self.teacher is not None:
            return "YAMNet, Frigate's rule (max of classes 19-21 >= 0.8 per 0.975 s chunk)"
        if self.twins:
            return "twins: one model per fold, each trained without that fold's sources"
        model = next(iter(self.models.values()))
        return f"{model.metadata.model_version}: one model on every fold, as shipped"

    def prepare(self, fold: str, clips: Sequence[Clip], waves: Sequence[Wave]) -> None:
        """Anything to fit on the fold's training clips before scoring (nothing here)."""

    def score(self, fold: str, feats: Features, wave: Wave) -> Scored:
        if self.teacher is not None:
            s = cry_score(self.teacher.run(chunks_of(wave)).scores)
            return Scored(s, frigate_alerts(s))
        model = self.models[fold]
        cfg = DetectorConfig(
            window_frames=model.metadata.window_frames, hop_frames=model.metadata.hop_frames
        )
        res = detect([feats], model, cfg)
        return Scored(res.probabilities, [e.alert_at for e in res.episodes if e.alert])


def speed_up_clip(wave: Wave, factor: float) -> Wave:
    """The whole clip ``factor`` times faster (pitch and tempo up by that ratio)."""
    out: Wave = soxr.resample(wave, int(16_000 * factor), 16_000).astype(np.float32)
    return out


def read_skip(path: Path, clips: Sequence[Clip]) -> frozenset[str]:
    """Clip keys (manifest paths), one a line (``#`` comments), each one of ``clips``."""
    keys = {ln.split("#")[0].strip() for ln in path.read_text().splitlines()} - {""}
    unknown = sorted(keys - {c.key for c in clips})
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} paths are no clip of the data, e.g. {unknown[0]}")
    return frozenset(keys)


def _rows(
    fold: Fold, clips: Sequence[Clip], waves: Sequence[Wave], skip: frozenset[str] = frozenset()
) -> list[tuple[Clip, Wave, str]]:
    split = split_by_fold(clips, fold)
    return [
        (clips[i], waves[i], fold.group_of(clips[i]))
        for i in split.val
        if clips[i].label != "unverified" and clips[i].key not in skip
    ]


def costliest_classes(
    ys: Sequence[bool], alert: Sequence[float], top: Sequence[float], classes: Sequence[str]
) -> list[dict[str, Any]]:
    """Clip F1 (alerts) and ROC-AUC (top scores) with one negative class left out, for
    the classes whose absence would raise either, most AUC gained first: which sound
    the error is, and how much of it."""
    y, cls = np.asarray(ys, bool), np.asarray(classes)
    base_f1 = metrics.binary(y, alert, 0.5)["f1"]
    base_auc = metrics.binary(y, top, 0.5)["roc_auc"]
    out = []
    for name in sorted(set(cls[~y])):
        keep = y | (cls != name)
        f1 = metrics.binary(y[keep], np.asarray(alert)[keep], 0.5)["f1"]
        auc = metrics.binary(y[keep], np.asarray(top)[keep], 0.5)["roc_auc"]
        if f1 > base_f1 or (auc is not None and base_auc is not None and auc > base_auc):
            clips = int(np.sum(cls[~y] == name))
            out.append({"cls": name, "clips": clips, "clip_f1": f1, "clip_roc_auc": auc})
    return sorted(out, key=lambda r: (-(r["clip_roc_auc"] or 0.0), -r["clip_f1"]))[:COSTLIEST]


def _clip_report(
    rows: list[tuple[Clip, Wave, str]], scored: list[Scored], fold: Fold
) -> dict[str, Any]:
    ys = [c.label == CRYING for c, _, _ in rows]
    alert = [1.0 if s.alerts else 0.0 for s in scored]
    top = [float(s.scores.max()) if s.scores.size else 0.0 for s in scored]
    win_y = [y for y, s in zip(ys, scored, strict=True) for _ in range(s.scores.size)]
    win_s = np.concatenate([s.scores for s in scored]).tolist()
    per_class: dict[str, dict[str, Any]] = {}
    per_group: dict[str, dict[str, int]] = {}
    for (clip, _, group), a, y in zip(rows, alert, ys, strict=True):
        if y:
            continue
        row = per_class.setdefault(clip.cls, {"group": group, "clips": 0, "alerts": 0})
        row["clips"] += 1
        row["alerts"] += int(a)
        g = per_group.setdefault(group, {"clips": 0, "alerts": 0})
        g["clips"] += 1
        g["alerts"] += int(a)
    ranked = sorted(per_class.items(), key=lambda kv: -kv[1]["alerts"] / kv[1]["clips"])
    clip_alert = metrics.binary(ys, alert, 0.5)
    by_score = metrics.binary(ys, top, 0.5)
    return {
        "cry_source": fold.cry_source,
        "cries": sum(ys),
        "negatives": len(ys) - sum(ys),
        "clip_precision": clip_alert["precision"],
        "clip_recall": clip_alert["recall"],
        "clip_f1": clip_alert["f1"],
        "clip_confusion": clip_alert["confusion"],
        "clip_roc_auc": by_score["roc_auc"],
        "clip_average_precision": by_score.get("average_precision"),
        "window_roc_auc": metrics.binary(win_y, win_s, 0.5)["roc_auc"],
        "false_alarms_per_group": per_group,
        "false_alarms_per_class": {
            k: {**v, "share": round(v["alerts"] / v["clips"], 4)} for k, v in ranked
        },
        "without_class": costliest_classes(ys, alert, top, [c.cls for c, _, _ in rows]),
        "roc": metrics.curves(ys, top),
    }


def _baby_voice(
    rows: list[tuple[Clip, Wave, str]], contender: Contender, fold: str, window: int
) -> dict[str, Any]:
    """Alerts on a baby's own non-cry voice and on adult laughter made baby-like."""
    sets: dict[str, list[Wave]] = {}
    for clip, wave, _ in rows:
        if clip.cls in BABY_VOICE:
            sets.setdefault(clip.cls, []).append(wave)
        if clip.cls in LAUGHTER:
            sets.setdefault("laughter", []).append(wave)
            for f in SPEEDUPS:
                sets.setdefault(f"laughter_x{f}", []).append(speed_up_clip(wave, f))
    out: dict[str, Any] = {}
    for name, waves in sorted(sets.items()):
        alerts = 0
        for w in waves:
            padded = pad_to_window(w, window)
            alerts += bool(contender.score(fold, compute_features(padded), padded).alerts)
        out[name] = {"clips": len(waves), "alerts": alerts, "share": round(alerts / len(waves), 4)}
    return out


def night_streams(
    fold: Fold,
    rows: list[tuple[Clip, Wave, str]],
    *,
    count: int,
    cfg: NightConfig,
    seed: int,
    cache_dir: Path | None,
) -> list[NightStream]:
    cries = [w for c, w, _ in rows if c.label == CRYING]
    backgrounds = [(w, c.cls) for c, w, _ in rows if fold.is_background(c)]
    negatives = [(w, c.cls) for c, w, g in rows if c.label != CRYING and g != "background"]
    if not backgrounds:
        raise ValueError(f"fold {fold.name} holds out no room background")
    rooms = room_bank(24, 1_000 + seed, cache_dir)
    rng = np.random.default_rng([seed, 31, len(fold.name)])
    out = []
    for _ in range(count):
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        out.append(build_night(rng, cries, negatives, bg, rooms, cfg=cfg))
    return out


def run_harness(
    clips: Sequence[Clip],
    waves: Sequence[Wave],
    contenders: Sequence[Contender],
    *,
    streams: int = 6,
    night: NightConfig | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    folds: Sequence[str] = tuple(FOLDS),
    skip: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Every contender on every fold of ``folds``; held-out clips whose key is in ``skip``
    (a model trained on them: an oracle, not a twin) are neither scored nor in a night."""
    night = night or NightConfig()
    window = max([m.metadata.window_frames for c in contenders for m in c.models.values()] or [50])
    report: dict[str, Any] = {
        "episode_rule": DetectorConfig().episodes.model_dump(),
        "night_config": night.__dict__,
        "streams_per_fold": streams,
        "seed": seed,
        "detectors": {c.name: c.describe() for c in contenders},
        "skipped_clips": len(skip),
        "folds": {},
    }
    for name in folds:
        fold = FOLDS[name]
        rows = _rows(fold, clips, waves, skip)
        log.info("fold %s: %d held-out clips", name, len(rows))
        padded = [pad_to_window(w, window) for _, w, _ in rows]
        feats = [compute_features(w) for w in tqdm(padded, desc=f"{name}: frontend", leave=False)]
        nights = night_streams(fold, rows, count=streams, cfg=night, seed=seed, cache_dir=cache_dir)
        night_feats = [compute_features(s.wave) for s in nights]
        entry: dict[str, Any] = {
            "description": fold.description,
            "held_out": dict(Counter(g for _, _, g in rows)),
            "held_out_sources": sorted(fold.sources | {fold.cry_source}),
            "night_streams": [
                {
                    "background": s.background,
                    "minutes": round(s.wave.size / 16_000 / 60, 2),
                    "cries": len(s.cries),
                    "far_cries": sum(c.far for c in s.cries),
                    "negatives": len(s.negatives),
                }
                for s in nights
            ],
            "detectors": {},
        }
        for contender in contenders:
            if contender.teacher is None and name not in contender.models:
                continue
            contender.prepare(name, clips, waves)
            scored = [
                contender.score(name, f, w)
                for f, w in tqdm(
                    zip(feats, padded, strict=True), total=len(rows), desc=contender.name
                )
            ]
            clip_rep = _clip_report(rows, scored, fold)
            alerts = [
                contender.score(name, f, s.wave).alerts
                for f, s in zip(night_feats, nights, strict=True)
            ]
            entry["detectors"][contender.name] = {
                **clip_rep,
                "baby_voice": _baby_voice(rows, contender, name, window),
                "night": score_night(nights, alerts),
            }
        report["folds"][name] = entry
    return report
