"""Score labelled clips with a model through the hub's own detector; build the report.

Every clip goes through :func:`nurserycry.shared.detector.detect` (frontend frames ->
windows -> model -> episode logic), so these figures are what the hub would do.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from nurserycry.shared.detector import DetectorConfig, Scorer, StreamResult, detect
from nurserycry.shared.frontend import DEFAULT_PARAMS, compute_features

from . import metrics
from .augment import band_limit
from .dataset import CRYING, Clip
from .examples import window_samples

log = logging.getLogger(__name__)

Wave = npt.NDArray[np.float32]
NOT_SCORED = frozenset({"unverified", "unlabelled"})


def pad_to_window(wave: Wave, window_frames: int) -> Wave:
    """``wave``, or a clip shorter than one window centred in digital silence."""
    need = window_samples(window_frames, DEFAULT_PARAMS)
    if wave.size >= need:
        return wave
    padded = np.zeros(need, np.float32)
    padded[(need - wave.size) // 2 :][: wave.size] = wave
    return padded


def run_clip(wave: Wave, model: Scorer, config: DetectorConfig) -> StreamResult:
    """One clip as a stream (a clip shorter than a window is centred in silence)."""
    return detect([compute_features(pad_to_window(wave, config.window_frames))], model, config)


def alerts_per_hour(
    waves: Sequence[Wave],
    model: Scorer,
    config: DetectorConfig,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Alerts the hub would raise over all ``waves`` played back to back; with
    ``names`` (one per wave, e.g. its class), which of them each alert fired in."""
    if not waves:
        return {"hours": 0.0, "alerts": 0, "alerts_per_hour": None}
    audio = np.concatenate(list(waves))
    hours = audio.size / DEFAULT_PARAMS.sample_rate / 3600
    result = detect([compute_features(audio)], model, config)
    alerts = [e for e in result.episodes if e.alert]
    out: dict[str, Any] = {
        "hours": round(hours, 3),
        "alerts": len(alerts),
        "episodes": len(result.episodes),
        "alerts_per_hour": round(len(alerts) / hours, 3),
    }
    if names is not None:
        ends = np.cumsum([w.size for w in waves]) / DEFAULT_PARAMS.sample_rate
        fired = [names[min(int(np.searchsorted(ends, e.alert_at)), len(names) - 1)] for e in alerts]
        out["alerts_in"] = dict(Counter(fired).most_common())
    return out


def evaluate_clips(
    clips: Sequence[Clip],
    waves: Sequence[Wave],
    model: Scorer,
    *,
    config: DetectorConfig | None = None,
    crying_label: str = CRYING,
    band_probe: bool = True,
) -> dict[str, Any]:
    """The full evaluation report (JSON-ready) of ``model`` on labelled clips."""
    cfg = config or DetectorConfig()
    thr = cfg.episodes.on_threshold
    rows = [(c, w) for c, w in zip(clips, waves, strict=True) if c.label not in NOT_SCORED]
    y_w: list[bool] = []
    s_w: list[float] = []
    cls_w: list[str] = []
    grp_w: list[str] = []
    band_w: list[str] = []
    y_c, max_c, alert_c = [], [], []
    for clip, wave in tqdm(rows, desc="evaluating", unit="clip", leave=False):
        res = run_clip(wave, model, cfg)
        pos = clip.label == crying_label
        n = res.probabilities.size
        y_w += [pos] * n
        s_w += res.probabilities.tolist()
        cls_w += [clip.cls] * n
        grp_w += [clip.group] * n
        band_w += [f"{clip.label}@{clip.orig_sr or 'unknown'}"] * n
        y_c.append(pos)
        max_c.append(float(res.probabilities.max()))
        alert_c.append(1.0 if res.alert else 0.0)
    report: dict[str, Any] = {
        "threshold": thr,
        "detector": cfg.model_dump(),
        "windows": metrics.binary(y_w, s_w, thr),
        "clips_max_score": metrics.binary(y_c, max_c, thr),
        "clips_alert": metrics.binary(y_c, alert_c, 0.5),
        "per_class": metrics.per_key(cls_w, y_w, s_w, thr),
        "per_group": metrics.per_key(grp_w, y_w, s_w, thr),
        "per_band": metrics.per_key(band_w, y_w, s_w, thr),
        "curves": metrics.curves(y_w, s_w),
    }
    negatives = [w for c, w in rows if c.label != crying_label]
    neg_names = [c.cls for c, _ in rows if c.label != crying_label]
    report["false_alerts"] = alerts_per_hour(negatives, model, cfg, neg_names)
    unl = [(c, w) for c, w in zip(clips, waves, strict=True) if c.label in NOT_SCORED]
    if unl:
        alerts = [run_clip(w, model, cfg).alert for _, w in unl]
        report["unverified_alert_share"] = round(float(np.mean(alerts)), 4)
    if band_probe:
        report["band_probe"] = _band_probe(rows, model, cfg, crying_label)
    return report


def _band_probe(
    rows: Sequence[tuple[Clip, Wave]], model: Scorer, cfg: DetectorConfig, crying_label: str
) -> dict[str, Any]:
    """Wideband cries scored as recorded and through a simulated phone channel."""
    rng = np.random.default_rng(0)
    wide = [w for c, w in rows if c.label == crying_label and c.orig_sr != 8000]
    if not wide:
        return {}
    orig, narrow = [], []
    for w in wide:
        orig.append(float(run_clip(w, model, cfg).probabilities.mean()))
        narrow.append(float(run_clip(band_limit(w, rng, 16_000), model, cfg).probabilities.mean()))
    return {
        "clips": len(wide),
        "mean_score_wideband": round(float(np.mean(orig)), 4),
        "mean_score_band_limited": round(float(np.mean(narrow)), 4),
        "mean_abs_difference": round(float(np.mean(np.abs(np.subtract(orig, narrow)))), 4),
    }
