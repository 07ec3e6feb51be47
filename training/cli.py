"""``nurserycry train`` and ``nurserycry evaluate`` (argparse front ends).

They print their results (T201), and import TensorFlow only once the arguments
are parsed, so ``--help`` is instant (PLC0415).
"""

# ruff: noqa: T201, PLC0415

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .splits import DEFAULT_HOLDOUT_SOURCES

log = logging.getLogger(__name__)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folders of labelled audio")
    parser.add_argument(
        "--manifest",
        type=Path,
        help="CSV with path,label[,cls,group,...] (default: DATA_DIR/manifest.csv if present)",
    )
    parser.add_argument(
        "--add-data",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another folder of labelled audio (label folders or a manifest.csv), e.g. your "
        "nursery's clips of alerts sorted into crying/ and not_crying/ (repeatable)",
    )
    parser.add_argument("--cache", type=Path, help="folder to cache decoded audio in")
    parser.add_argument(
        "--split",
        choices=["group", "source", "fold", "none"],
        default="group",
        help="validation: random groups, held-out sources, a harness fold (--fold), or none "
        "(train on all)",
    )
    parser.add_argument(
        "--fold",
        default="",
        help="with --split fold: the harness fold to hold out (second_source, wideband)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of groups held out")
    parser.add_argument(
        "--holdout-source",
        action="append",
        metavar="REPO",
        help="source held out by --split source (repeatable; default: a built-in list)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true")


def _missing_input(args: argparse.Namespace, command: str) -> str | None:
    """Checked before TensorFlow is imported (25 s): a mistyped folder fails at once."""
    model_dir = getattr(args, "model_dir", None)
    for what, path in [
        ("model directory", model_dir),
        ("data folder", args.data_dir),
        ("manifest", args.manifest),
        *(("--add-data folder", extra) for extra in args.add_data),
    ]:
        if path is not None and not path.exists():
            return f"nurserycry {command}: no such {what}: {path}"
    return None


def train(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="nurserycry train", description="Train a cry model.")
    _data_args(parser)
    parser.add_argument(
        "--out", type=Path, default=Path("runs/model"), help="model directory to write"
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--examples-per-epoch", type=int, default=16_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=32, help="channels of the first conv layer")
    parser.add_argument(
        "--ensemble",
        type=int,
        default=1,
        metavar="N",
        help="train N students (seeds SEED..SEED+N-1, one pool) and ship them as one model "
        "that averages their logits",
    )
    parser.add_argument(
        "--window-frames",
        type=int,
        default=50,
        help="model input length in 20 ms frames (50 = 1.02 s); the hub follows the model",
    )
    parser.add_argument(
        "--unverified",
        choices=["negative", "exclude", "teacher"],
        default="negative",
        help="use 'unverified' clips as low-weight negatives, leave them out, or let the "
        "teacher label them (needs --teacher)",
    )
    parser.add_argument("--unverified-weight", type=float, default=0.3)
    parser.add_argument(
        "--voice-class",
        action="store_true",
        help="train human non-cry voice (speech, song, laughter, cough...) as its own label "
        "(a third output; measured no better than two labels, so off by default)",
    )
    parser.add_argument(
        "--voice-speedup",
        type=float,
        default=0.0,
        help="share of speech/laughter negatives sped up 1.3-2x into baby-like voice "
        "(0.3 lowers laughter's scores but costs recall on unseen cries; off by default)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="a teacher model (YAMNet .tflite): the student also learns its 1024-d embedding "
        "and 521 scores of every augmented example (training only; never shipped)",
    )
    parser.add_argument(
        "--unlabelled",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of audio without labels; the teacher labels its examples (repeatable)",
    )
    parser.add_argument("--unlabelled-weight", type=float, default=0.5)
    parser.add_argument(
        "--unlabelled-share",
        type=float,
        default=0.15,
        metavar="SHARE",
        help="share of examples drawn from teacher-labelled clips (--unlabelled, --unverified "
        "teacher), a clip at a time",
    )
    parser.add_argument(
        "--synthetic-voices",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of examples that are generated voices (speech, song, moans, babble) the "
        "teacher labels (needs --teacher; off by default)",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=0,
        metavar="N",
        help="draw N augmented examples once (cached with --cache) and train every epoch on "
        "them (default with --teacher: 4 x --examples-per-epoch)",
    )
    parser.add_argument(
        "--pool-files",
        type=Path,
        nargs="+",
        default=[],
        metavar="NPZ",
        help="train on these cached pools (joined) instead of drawing one, e.g. the two "
        "harness twins' pools for a model trained on everything",
    )
    parser.add_argument(
        "--rooms", type=int, default=0, help="simulated rooms, near and far each (0: none)"
    )
    parser.add_argument("--p-room", type=float, default=0.4, help="share of sounds put in a room")
    parser.add_argument("--p-mic", type=float, default=0.0, help="share through a cheap mic")
    parser.add_argument("--p-mp3", type=float, default=0.0, help="share through an MP3 codec")
    parser.add_argument(
        "--p-onset", type=float, default=0.0, help="share of cry examples starting in the window"
    )
    parser.add_argument(
        "--mix-snr",
        type=float,
        nargs=2,
        default=(0.0, 20.0),
        metavar=("LOW", "HIGH"),
        help="dB of a cry over its background when mixed",
    )
    parser.add_argument(
        "--temporal", action="store_true", help="a temporal stage over the window (model.py)"
    )
    parser.add_argument(
        "--labelled-cry-score",
        action="store_true",
        help="train the teacher's 'Baby cry' score as 1 on every crying example (for "
        "--output teacher-cry: the teacher misses many phone cries)",
    )
    parser.add_argument("--embedding-weight", type=float, default=1.0)
    parser.add_argument("--scores-weight", type=float, default=1.0)
    parser.add_argument(
        "--output",
        choices=["labels", "teacher-cry"],
        default="labels",
        help="what the shipped model outputs: its label head, or (with --teacher) its copy of "
        "the teacher's cry score, calibrated on the pool (training/cry_head.py)",
    )
    parser.add_argument("--model-version", help="version string stored in the metadata")
    parser.add_argument("--save-keras", action="store_true", help="also write model.keras")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if (missing := _missing_input(args, "train")) is not None:
        print(missing, file=sys.stderr)
        return 2
    _setup_logging(args.verbose)

    from .augment import AugmentConfig
    from .examples import ExampleConfig
    from .pipeline import RunConfig, run
    from .trainer import TrainConfig

    augment = AugmentConfig(
        p_room=args.p_room if args.rooms else 0.0,
        p_mic=args.p_mic,
        p_mp3=args.p_mp3,
        p_onset=args.p_onset,
        mix_snr_db=tuple(args.mix_snr),
    )

    config = RunConfig(
        data_dir=args.data_dir,
        out=args.out,
        manifest=args.manifest,
        extra_dirs=tuple(args.add_data),
        cache_dir=args.cache,
        split=args.split,
        val_fraction=args.val_fraction,
        holdout_sources=tuple(args.holdout_source or DEFAULT_HOLDOUT_SOURCES),
        unverified=args.unverified,
        unverified_weight=args.unverified_weight,
        fold=args.fold,
        teacher=args.teacher,
        unlabelled_dirs=tuple(args.unlabelled),
        unlabelled_weight=args.unlabelled_weight,
        pool_examples=args.pool,
        pool_files=tuple(args.pool_files),
        rooms=args.rooms,
        voice_class=args.voice_class,
        examples=ExampleConfig(
            window_frames=args.window_frames,
            voice_speedup=args.voice_speedup,
            synthetic_voice_share=args.synthetic_voices,
            teacher_share=args.unlabelled_share,
            augment=augment,
        ),
        model_version=args.model_version,
        output=args.output,
        save_keras=args.save_keras,
        train=TrainConfig(
            epochs=args.epochs,
            examples_per_epoch=args.examples_per_epoch,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            width=args.width,
            members=args.ensemble,
            seed=args.seed,
            verbose=0 if args.quiet else 1,
            temporal=args.temporal,
            embedding_weight=args.embedding_weight,
            scores_weight=args.scores_weight,
            labelled_cry_score=args.labelled_cry_score,
        ),
    )
    try:
        report = run(config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"nurserycry train: {exc}", file=sys.stderr)
        return 2
    if "evaluation" in report:
        _print_summary(report["evaluation"])
    print(f"model written to {args.out}")
    return 0


def _print_summary(ev: dict[str, object]) -> None:
    for key in ("windows", "clips_alert", "clips_max_score", "false_alerts", "band_probe"):
        if key in ev:
            value = ev[key]
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k != "confusion"}
            print(f"{key}: {json.dumps(value)}")


def evaluate(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="nurserycry evaluate",
        description="Evaluate a model directory on labelled audio (all clips, or one split's "
        "validation part with --split group|source and the training seed).",
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    _data_args(parser)
    parser.set_defaults(split="none")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write evaluation.json and PNGs (default: MODEL_DIR/evaluation)",
    )
    parser.add_argument("--variant", choices=["int8", "float32"], default="int8")
    args = parser.parse_args(argv)
    if (missing := _missing_input(args, "evaluate")) is not None:
        print(missing, file=sys.stderr)
        return 2
    _setup_logging(args.verbose)

    from .audio import load_waves
    from .dataset import load_clips
    from .pipeline import RunConfig, evaluate_model_dir, make_split
    from .trainer import TrainConfig

    out = args.out or args.model_dir / "evaluation"
    try:
        clips = load_clips(args.data_dir, args.manifest, args.add_data)
        cfg = RunConfig(
            data_dir=args.data_dir,
            out=out,
            split=args.split,
            fold=args.fold,
            val_fraction=args.val_fraction,
            train=TrainConfig(seed=args.seed),
            holdout_sources=tuple(args.holdout_source or DEFAULT_HOLDOUT_SOURCES),
        )
        split = make_split(clips, cfg)
        chosen = [clips[i] for i in (split.val if split.val else split.train)]
        waves = load_waves(chosen, args.cache)
        result = evaluate_model_dir(
            args.model_dir,
            chosen,
            waves,
            title=f"{split.name} split" if split.val else "all clips",
            variant=args.variant,
            figures=out,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"nurserycry evaluate: {exc}", file=sys.stderr)
        return 2
    result["split"] = split.summary(clips)
    (out / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n")
    _print_summary(result["evaluation"])
    print(f"written to {out}/evaluation.json, confusion.png, pr.png")
    return 0


def harness(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="nurserycry harness",
        description="Score detectors on the named source-disjoint folds and on night streams "
        "built from held-out recordings; writes harness.json and harness.png.",
    )
    parser.add_argument("--data", type=Path, required=True, help="the data folder (manifest.csv)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a model directory (scored as it is on every fold) or a folder of twins, one "
        "sub-folder per fold (repeatable)",
    )
    parser.add_argument("--yamnet", type=Path, help="yamnet.tflite: also score Frigate's rule")
    parser.add_argument(
        "--yamnet-probe",
        action="store_true",
        help="with --yamnet: also YAMNet's embedding + a probe fitted on each fold's training "
        "clips, the ceiling of distillation (training/ceiling.py; cannot ship)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/harness"))
    parser.add_argument(
        "--streams", type=int, default=6, help="night streams per fold (6 x 20 min: 2 h)"
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="length of a night stream")
    parser.add_argument("--fold", action="append", help="only these folds (default: all)")
    parser.add_argument("--cache", type=Path, help="decoded audio and simulated rooms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-clips",
        type=Path,
        help="a text file of clip paths (as in manifest.csv, one a line) not to score, for "
        "a model that trained on them (an oracle); every detector skips them alike",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)

    from . import plots
    from .audio import load_waves
    from .ceiling import TeacherProbe
    from .dataset import load_clips
    from .folds import FOLDS
    from .harness import Contender, read_skip, run_harness
    from .night import NightConfig
    from .teacher import YamnetTeacher

    try:
        contenders = []
        for spec in args.model:
            name, sep, path = spec.partition("=")
            if not sep:
                raise ValueError(f"--model wants NAME=DIR, not {spec!r}")
            contenders.append(Contender(name, Path(path)))
        if args.yamnet is not None:
            yamnet = YamnetTeacher(args.yamnet)
            contenders.append(Contender("yamnet_frigate", teacher=yamnet))
            if args.yamnet_probe:
                contenders.append(TeacherProbe("yamnet_probe", yamnet))
        elif args.yamnet_probe:
            raise ValueError("--yamnet-probe needs --yamnet PATH")
        if not contenders:
            raise ValueError("nothing to score: give --model and/or --yamnet")
        folds = args.fold or list(FOLDS)
        clips = load_clips(args.data)
        skip = read_skip(args.skip_clips, clips) if args.skip_clips else frozenset()
        waves = load_waves(clips, args.cache)
        report = run_harness(
            clips,
            waves,
            contenders,
            streams=args.streams,
            night=NightConfig(minutes=args.minutes),
            seed=args.seed,
            cache_dir=args.cache,
            folds=folds,
            skip=skip,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"nurserycry harness: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "harness.json").write_text(json.dumps(report, indent=1) + "\n")
    plots.harness_summary(report, args.out / "harness.png")
    for fold, entry in report["folds"].items():
        for name, det in entry["detectors"].items():
            night = det["night"]
            print(
                f"{fold:14s} {name:16s} clip P/R/F1 {det['clip_precision']:.3f}/"
                f"{det['clip_recall']:.3f}/{det['clip_f1']:.3f} clip ROC-AUC "
                f"{det['clip_roc_auc']:.3f} night {night['alerted']}/{night['episodes']} "
                f"alerted, delay {night['delay_median_s']} s (p95 {night['delay_p95_s']}), "
                f"{night['false_alerts_per_hour']} false/h"
            )
    print(f"written to {args.out}/harness.json, harness.png")
    return 0
