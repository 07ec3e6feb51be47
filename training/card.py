"""Write ``MODEL_CARD.md`` from a model directory, its data, and validation results.

    python -m nurserycry.training.card MODEL_DIR --data DATA_DIR \
        --validation group=RUN_DIR:BENCH.json --validation source=RUN_DIR:BENCH.json

or, for a model judged by the harness (``--confusion`` also draws ``curves.png`` and
``confusion.png`` into MODEL_DIR)::

    python -m nurserycry.training.card MODEL_DIR --data DATA_DIR --harness harness.json \
        --confusion wideband/candidate --extra limits.md

``RUN_DIR`` is the model trained with that split (its ``report.json``), ``BENCH.json``
the output of ``bench/detection.py`` for that split and model. Every figure in the card
is copied from those files; the prose around them is in this module.
"""

# ruff: noqa: T201

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nurserycry.shared.model import ModelMetadata

from . import plots
from .dataset import load_clips, summarise

DONATE_A_CRY = (
    "Donate-a-cry corpus: Open Database License 1.0, contents under the Database Contents "
    'License 1.0, "Donate-a-cry corpus, newparentsapps.com".'
)


def _output(output: dict[str, Any]) -> str:
    """What the shipped graph outputs, when it is not the label head."""
    if output.get("head") == "embedding-probe":
        return (
            " **Output**: a logistic probe fitted on the teacher's own L2-normalised embeddings "
            f"of {output['examples']} pool examples, run on the student's embedding head "
            "(`training/probe_head.py`)."
        )
    if output.get("head") == "stacked":
        w, st = output["weights"], output["stack_set"]
        return (
            " **Output**: both heads in one: p = sigmoid("
            f"{w['label_logit']:.3f} L {w['cry_score_logit']:+.3f} T {w['bias']:+.3f}), `L` the "
            "label head's crying logit, `T` the max over YAMNet classes "
            f"{', '.join(str(c) for c in output['classes'])} of the score head's logits; "
            + (
                "the mean of `L` and the teacher-cry calibration of `T` on the pool"
                if st is None
                else f"weights fitted on {st['cries']} crying pool examples against "
                f"{st['unheard_windows']} windows of audio the student never heard"
            )
            + " (`training/stacked_head.py`)."
        )
    if output.get("head") != "teacher-cry":
        return ""
    a, b = output["calibration"]
    classes = ", ".join(str(c) for c in output["classes"])
    return (
        " **Output**: not the label head but the student's copy of the teacher's cry score "
        f"(the max over YAMNet classes {classes} of its score head's logits `z`), calibrated "
        f"on the training pool: p = sigmoid({a:.3f} z {b:+.3f}) (`training/cry_head.py`)."
    )


def _members(tc: dict[str, Any]) -> str:
    """Width and seed, or the ensemble's members and their seeds."""
    n, seed = int(tc.get("members", 1)), int(tc["seed"])
    if n == 1:
        return f"width {tc['width']}, seed {seed}, "
    return (
        f"an ensemble of {n} students of width {tc['width']} (seeds {seed}-{seed + n - 1}, one "
        "pool; their logits averaged in one graph), "
    )


def _f(value: Any, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None
        else f"{value:.{digits}f}"
        if isinstance(value, float)
        else str(value)
    )


def _sources(data: dict[str, Any]) -> list[str]:
    lines = ["| source | licence | labels | clips | minutes |", "|---|---|---|---|---|"]
    for name, s in sorted(data["sources"].items()):
        labels = ", ".join(s.get("labels", []))
        lines.append(
            f"| {name} | {s['licence'] or 'none stated'} | {labels} | {s['clips']} | "
            f"{s.get('minutes', 0):.1f} |"
        )
    return lines


def _validation(name: str, report: dict[str, Any], bench: dict[str, Any]) -> list[str]:
    ev = report["evaluation"]
    split = report["training"]["split"]
    ours, yam, loud = bench["nurserycry"], bench.get("yamnet"), bench["loudness"]
    w, ca, fa = ev["windows"], ev["clips_alert"], ev["false_alerts"]
    lines = [
        f"### {name.capitalize()}-disjoint validation",
        "",
        f"Split: {split['description']}. Training clips {split['train_clips']}, validation "
        f"clips {split['val_clips']} ({split['val_groups']} groups); unverified clips are not "
        f"scored. Model: `{report['model_version']}`, trained on the training part only.",
        "",
        "| detector | clip alert P / R / F1 | window (chunk) ROC-AUC | window F1 "
        "| false alerts / h |",
        "|---|---|---|---|---|",
        f"| NurseryCry int8, hub episode rule | {_f(ca['precision'])} / {_f(ca['recall'])} / "
        f"**{_f(ca['f1'])}** | **{_f(w['roc_auc'])}** | {_f(w['f1'])} (P {_f(w['precision'])}, "
        f"R {_f(w['recall'])}, at {w['threshold']}) | **{_f(fa['alerts_per_hour'])}** "
        f"({fa['alerts']} in {fa['hours']} h) |",
    ]
    if yam:
        yc, yf = yam["clips_alert"], yam["false_alerts"]
        lines.append(
            f"| YAMNet, Frigate rule (>= 0.8, classes 19-21) | {_f(yc['precision'])} / "
            f"{_f(yc['recall'])} / {_f(yc['f1'])} | {_f(yam['chunks']['roc_auc'])} | "
            f"{_f(yam['chunks']['f1'])} | {_f(yf['alerts_per_hour'])} ({yf['alerts']}) |"
        )
    lc = loud["clips"]
    lines += [
        f"| loudness (1 s RMS >= {loud['threshold_dbfs']} dBFS, threshold fit on this data) | "
        f"{_f(lc['precision'])} / {_f(lc['recall'])} / {_f(lc['f1'])} | "
        f"{_f(loud['windows']['roc_auc'])} | {_f(loud['windows']['f1'])} | n/a |",
        "",
        f"Clip ROC-AUC from the highest window score: {_f(ev['clips_max_score']['roc_auc'])}."
        + (
            f" Inference (bench, int8, 1 thread): {ours['ms_per_window_batched']} ms per "
            f"window batched, {ours['ms_per_window_single']} ms one window per call."
            if "ms_per_window_batched" in ours
            else ""
        ),
        "",
        "Wideband vs narrowband cries (mean score, share of windows over the threshold):",
        "",
    ]
    for key, v in sorted(ev["per_band"].items()):
        if key.startswith("crying@"):
            sr = key.split("@")[1]
            lines.append(
                f"- cries originally at {sr} Hz: {v['windows']} windows, mean "
                f"{_f(v['mean_score'])}, over threshold {_f(v['hot_share'])}"
            )
    probe = ev.get("band_probe") or {}
    if probe:
        lines.append(
            f"- the {probe['clips']} wideband validation cries as recorded vs through a simulated "
            f"phone channel / low-pass: mean {_f(probe['mean_score_wideband'])} vs "
            f"{_f(probe['mean_score_band_limited'])} (mean absolute change "
            f"{_f(probe['mean_abs_difference'])})"
        )
    worst = sorted(
        ((v["hot_share"], k) for k, v in ev["per_class"].items() if not v["crying"]), reverse=True
    )[:8]
    lines += [
        "",
        "Negative classes with the most windows over the threshold: "
        + ", ".join(f"{k} {_f(h, 2)}" for h, k in worst)
        + ".",
    ]
    return [*lines, ""]


def harness_tables(report: dict[str, Any]) -> list[str]:
    """Markdown tables of a harness run (``harness.json``): clips, baby voice, nights."""
    lines = [
        "| fold (held-out cry source) | detector | clip P / R / F1 | clip ROC-AUC | window "
        "ROC-AUC | night: episodes alerted | alert delay median / p95 | false alerts / h |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fold, entry in report["folds"].items():
        for name, d in entry["detectors"].items():
            n = d["night"]
            lines.append(
                f"| {fold} ({d['cry_source']}, {d['cries']} cries, {d['negatives']} non-cries) "
                f"| {name} | {_f(d['clip_precision'])} / {_f(d['clip_recall'])} / "
                f"**{_f(d['clip_f1'])}** | **{_f(d['clip_roc_auc'])}** | "
                f"{_f(d['window_roc_auc'])} | {n['alerted']}/{n['episodes']} (far "
                f"{n['far_alerted']}/{n['far_episodes']}) | {_f(n['delay_median_s'], 2)} / "
                f"{_f(n['delay_p95_s'], 2)} s | **{_f(n['false_alerts_per_hour'], 1)}** "
                f"({n['false_alerts']} in {n['hours']:.2f} h) |"
            )
    keys = sorted(
        {
            k
            for e in report["folds"].values()
            for d in e["detectors"].values()
            for k in d["baby_voice"]
        }
    )
    lines += [
        "",
        "A baby's non-cry voice and adult laughter made baby-like (alerts / clips):",
        "",
        "| fold | detector | " + " | ".join(keys) + " |",
    ]
    lines.append("|---|---|" + "---|" * len(keys))
    for fold, entry in report["folds"].items():
        for name, d in entry["detectors"].items():
            cells = [
                f"{d['baby_voice'][k]['alerts']}/{d['baby_voice'][k]['clips']}"
                if k in d["baby_voice"]
                else "-"
                for k in keys
            ]
            lines.append(f"| {fold} | {name} | " + " | ".join(cells) + " |")
    costs = any(
        d.get("without_class") for e in report["folds"].values() for d in e["detectors"].values()
    )
    tail = ", and the clip figures with the costliest negative class left out" if costs else ""
    lines += ["", f"False alarms per negative group (clips that alerted / clips){tail}:", ""]
    for fold, entry in report["folds"].items():
        for name, d in entry["detectors"].items():
            groups = ", ".join(
                f"{g} {v['alerts']}/{v['clips']}" for g, v in d["false_alarms_per_group"].items()
            )
            worst = ", ".join(
                f"{c} {v['alerts']}/{v['clips']}"
                for c, v in list(d["false_alarms_per_class"].items())[:5]
                if v["alerts"]
            )
            cost = d.get("without_class") or []  # absent from runs before it was added
            without = (
                f"; without {cost[0]['cls']} ({cost[0]['clips']} clips): clip F1 "
                f"{_f(cost[0]['clip_f1'])}, ROC-AUC {_f(cost[0]['clip_roc_auc'])}"
                if cost
                else ""
            )
            lines.append(f"- {fold}, {name}: {groups}; most: {worst or 'none'}{without}")
    return [*lines, ""]


def render(
    model_dir: Path,
    data: dict[str, Any],
    validations: list[tuple[str, dict[str, Any], dict[str, Any]]],
    harness: dict[str, Any] | None = None,
) -> str:
    meta = ModelMetadata.read(model_dir)
    report = json.loads((model_dir / "report.json").read_text())
    tr = report["training"]
    size_int8 = (model_dir / "model.tflite").stat().st_size
    size_f32 = (model_dir / "model_float32.tflite").stat().st_size
    lines = [
        f"# NurseryCry default model `{meta.model_version}`",
        "",
        f"A {len(meta.labels)}-label classifier ({', '.join(meta.labels)}) of one "
        f"{meta.window_frames / 50:g} s window ({meta.window_frames} frames x "
        f"{meta.frontend['n_mels']} log-mel bands, {meta.frontend['fmin']:g}-"
        f"{meta.frontend['fmax']:g} Hz, frontend hash `{meta.frontend_hash}`), scored every "
        f"{meta.hop_frames / 50:g} s by the hub. `model.tflite`: full-integer int8, "
        f"{size_int8 / 1000:.0f} kB; `model_float32.tflite`: {size_f32 / 1000:.0f} kB. "
        f"Created {meta.created}.",
        "",
        "## How this model was made",
        "",
        f"Shipped model: split `{tr['split']['name']}` ({tr['split']['description']}), "
        + (
            f"{tr['train_config']['epochs']} epochs over a pool of "
            f"{tr['pool']['examples']} augmented examples drawn once "
            f"({', '.join(tr['pool'].get('files', [])) or 'drawn for this run'}), "
            if tr.get("pool")
            else f"{tr['train_config']['epochs']} epochs x "
            f"{tr['train_config']['examples_per_epoch']} augmented examples, "
        )
        + _members(tr["train_config"])
        + f"{tr['seconds']} s on 2 CPU cores. Unverified uploads: "
        f"{tr['unverified']}. Augmentation and generated hard negatives "
        f"({', '.join(tr['generated_negatives'])}): see `training/README.md`."
        + _output(tr.get("output", {})),
        "",
    ]
    if harness is not None:
        lines += [
            "## The harness (`nurserycry harness`)",
            "",
            f"One run, seed {harness['seed']}, {harness['streams_per_fold']} night streams of "
            f"{harness['night_config']['minutes']:g} min per fold (`harness.json`); detectors:",
            "",
            *(f"- `{k}`: {v}" for k, v in harness["detectors"].items()),
            "",
            *harness_tables(harness),
        ]
    return (
        "\n".join([*lines, ""])
        + "\n".join(
            line for name, rep, bench in validations for line in _validation(name, rep, bench)
        )
        + "\n## Training data\n\n"
        + "\n".join(_sources(data))
        + f"\n\n{DONATE_A_CRY}\n"
    )


def draw_figures(model_dir: Path, harness: dict[str, Any], which: str) -> None:
    """``curves.png`` from the model's training history, ``confusion.png`` from the clip
    alerts of ``FOLD/DETECTOR`` in a harness run."""
    fold, _, name = which.partition("/")
    try:
        detector = harness["folds"][fold]["detectors"][name]
    except KeyError:
        raise SystemExit(f"--confusion {which}: no such fold/detector in the harness run") from None
    report = json.loads((model_dir / "report.json").read_text())
    version = ModelMetadata.read(model_dir).model_version
    plots.training_curves(report["history"], model_dir / "curves.png")
    plots.confusion(
        detector["clip_confusion"],
        f"{version}: clip alerts, fold {fold}\n{detector['cries']} cries, "
        f"{detector['negatives']} non-cries ('{name}')",
        model_dir / "confusion.png",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--validation", action="append", default=[], metavar="NAME=RUN_DIR:BENCH")
    parser.add_argument("--harness", type=Path, help="harness.json of a harness run")
    parser.add_argument(
        "--extra", type=Path, help="markdown appended verbatim (limits, retraining)"
    )
    parser.add_argument(
        "--confusion",
        metavar="FOLD/DETECTOR",
        help="also draw confusion.png (that detector's clip alerts in the harness run) and "
        "curves.png (the training history in report.json)",
    )
    args = parser.parse_args(argv)
    vals = []
    for spec in args.validation:
        name, rest = spec.split("=", 1)
        run_dir, bench = rest.split(":", 1)
        vals.append(
            (
                name,
                json.loads((Path(run_dir) / "report.json").read_text()),
                json.loads(Path(bench).read_text()),
            )
        )
    data = summarise(load_clips(args.data))
    harness = json.loads(args.harness.read_text()) if args.harness is not None else None
    text = render(args.model_dir, data, vals, harness)
    if args.extra is not None:
        text += "\n" + args.extra.read_text()
    (args.model_dir / "MODEL_CARD.md").write_text(text)
    if args.confusion is not None:
        if harness is None:
            parser.error("--confusion needs --harness")
        draw_figures(args.model_dir, harness, args.confusion)
    print(f"wrote {args.model_dir / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
