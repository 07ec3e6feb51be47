"""``nurserycry train`` end to end: data -> split -> train -> export -> evaluate -> files."""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nurserycry.shared.detector import DetectorConfig
from nurserycry.shared.frontend import SAMPLE_RATE, model_input
from nurserycry.shared.model import CryModel

from . import plots
from .audio import load_waves
from .cry_head import HEAD, export_teacher_cry
from .dataset import UNLABELLED, Clip, load_clips, summarise, unlabelled_clips
from .evaluate import evaluate_clips
from .examples import (
    VOICE_LABEL,
    VOICE_LABEL_CLASSES,
    ExampleConfig,
    ExampleMaker,
    clip_windows,
)
from .export import to_float32, to_int8
from .folds import get_fold, split_by_fold
from .metadata import build_metadata, write_metadata, write_model_dir
from .model import ensemble_model, inference_model
from .pool import build_pool, load_pools
from .rooms import room_bank
from .splits import DEFAULT_HOLDOUT_SOURCES, Split, no_split, split_by_group, split_by_source
from .synth import GENERATORS
from .teacher import Teacher, YamnetTeacher
from .trainer import TrainConfig, train, train_on_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    data_dir: Path
    out: Path
    manifest: Path | None = None
    extra_dirs: tuple[Path, ...] = ()  # more data folders (``--add-data``)
    cache_dir: Path | None = None
    split: str = "group"  # group | source | none
    val_fraction: float = 0.2
    holdout_sources: tuple[str, ...] = DEFAULT_HOLDOUT_SOURCES
    crying_label: str = "crying"
    unverified: str = "negative"  # negative (low weight) | exclude | teacher (it labels them)
    unverified_weight: float = 0.3
    fold: str = ""  # with split "fold": the harness fold held out (folds.py)
    teacher: Path | None = None  # a YAMNet .tflite to distil (training only)
    unlabelled_dirs: tuple[Path, ...] = ()  # audio without labels: the teacher labels it
    unlabelled_weight: float = 0.5
    pool_examples: int = 0  # > 0: draw this many examples once, train every epoch on them
    pool_files: tuple[Path, ...] = ()  # train on these cached pools instead (joined)
    rooms: int = 0  # simulated rooms (near and far, each) for the augment's p_room
    voice_class: bool = False  # human non-cry voice trains as its own label, "voice"
    hop_frames: int = 25
    model_version: str | None = None
    output: str = "labels"  # or "teacher-cry": ship the student's cry-score head (cry_head.py)
    save_keras: bool = False  # also write model.keras, teacher heads and all (not shipped)
    train: TrainConfig = field(default_factory=TrainConfig)
    examples: ExampleConfig = field(default_factory=ExampleConfig)


def make_split(clips: list[Clip], cfg: RunConfig) -> Split:
    if cfg.split == "group":
        return split_by_group(clips, cfg.val_fraction, cfg.train.seed)
    if cfg.split == "source":
        return split_by_source(clips, cfg.holdout_sources)
    if cfg.split == "none":
        return no_split(clips)
    if cfg.split == "fold":
        return split_by_fold(clips, get_fold(cfg.fold))
    raise ValueError(f"unknown split {cfg.split!r}: use group, source or none")


def run(cfg: RunConfig, teacher: Teacher | None = None) -> dict[str, Any]:
    """Train, export and evaluate; returns the report also written to ``out/report.json``.
    The teacher is ``cfg.teacher`` (YAMNet) or, for tests, any :class:`Teacher` given."""
    started = time.time()
    no_teacher = cfg.teacher is None and teacher is None and not cfg.pool_files
    if cfg.output == HEAD and (no_teacher or cfg.train.members > 1):
        raise ValueError(f"--output {HEAD} needs --teacher and one student (no --ensemble)")
    clips = load_clips(cfg.data_dir, cfg.manifest, cfg.extra_dirs)
    for folder in cfg.unlabelled_dirs:
        clips += unlabelled_clips(folder)
    if cfg.unverified == "exclude":
        clips = [c for c in clips if c.label != "unverified"]
    waves = load_waves(clips, cfg.cache_dir)
    clips = [  # folders, unlike a manifest, do not say how long their clips are
        c if c.duration_s else replace(c, duration_s=round(w.size / SAMPLE_RATE, 3))
        for c, w in zip(clips, waves, strict=True)
    ]
    split = make_split(clips, cfg)
    log.info("split %s: %s", split.name, split.summary(clips))
    label_map = {"unverified": "not_crying"} if cfg.unverified == "negative" else {}
    class_map = dict.fromkeys(sorted(VOICE_LABEL_CLASSES), VOICE_LABEL) if cfg.voice_class else {}
    teacher_labels = {UNLABELLED} | ({"unverified"} if cfg.unverified == "teacher" else set())
    ex_cfg = ExampleConfig(
        **{
            **asdict(cfg.examples),
            "augment": cfg.examples.augment,
            "label_map": label_map,
            "class_map": class_map,
            "label_weights": {
                "unverified": cfg.unverified_weight,
                UNLABELLED: cfg.unlabelled_weight,
            },
            "teacher_labels": frozenset(teacher_labels),
        }
    )
    labels = sorted({ex_cfg.label_of(c) for c in clips if not ex_cfg.teacher_labelled(c)})
    tr_clips = [clips[i] for i in split.train]
    tr_waves = [waves[i] for i in split.train]
    rooms = room_bank(cfg.rooms, cfg.train.seed, cfg.cache_dir) if cfg.rooms else None
    maker = ExampleMaker(
        tr_clips, tr_waves, labels, crying_label=cfg.crying_label, config=ex_cfg, rooms=rooms
    )
    scored = [i for i in split.val if clips[i].label not in ("unverified", UNLABELLED)]
    val_clips = [clips[i] for i in scored]
    val_waves = [waves[i] for i in scored]
    validation = None
    if val_clips:
        wins = [clip_windows(w, ex_cfg.window_frames, cfg.hop_frames) for w in val_waves]
        vx = model_input(np.concatenate(wins))
        vy = np.concatenate(
            [
                np.full(len(w), labels.index(ex_cfg.label_of(c)))
                for c, w in zip(val_clips, wins, strict=True)
            ]
        ).astype(np.int64)
        validation = (vx, vy)
    pool_summary: dict[str, Any] = {}
    if teacher is None and cfg.teacher is not None:
        teacher = YamnetTeacher(cfg.teacher)
    if maker.needs_teacher and teacher is None and not cfg.pool_files:
        raise ValueError(
            "clips without labels (--unlabelled, --unverified teacher) and generated voices "
            "(--synthetic-voices) need --teacher"
        )
    pool = None
    if cfg.pool_files:
        pool = load_pools(list(cfg.pool_files))
        pool_summary = {"files": [p.name for p in cfg.pool_files], **pool.summary(labels)}
    elif cfg.pool_examples or teacher is not None:
        count = cfg.pool_examples or 4 * cfg.train.examples_per_epoch
        key = "|".join([*(c.key for c in tr_clips), ex_cfg.fingerprint(), str(cfg.rooms)])
        pool = build_pool(
            maker,
            count,
            cfg.train.seed,
            teacher=teacher,
            cache_dir=cfg.cache_dir,
            cache_key=key,
        )
        pool_summary = pool.summary(labels)
    if pool is not None:
        log.info("pool: %s", pool_summary)
    members = []
    for k in range(cfg.train.members):  # one pool, a seed per member
        member_cfg = replace(cfg.train, seed=cfg.train.seed + k)
        if cfg.train.members > 1:
            log.info("ensemble member %d/%d (seed %d)", k + 1, cfg.train.members, member_cfg.seed)
        members.append(
            train_on_pool(pool, maker, member_cfg, validation)
            if pool is not None
            else train(maker, member_cfg, validation)
        )
    model, history = (
        members[0]
        if len(members) == 1
        else (ensemble_model([m for m, _ in members]), members[0][1])
    )
    student, model = model, inference_model(model)
    output: dict[str, Any] = {"head": "labels"}
    if cfg.output == HEAD:
        if pool is None or pool.scores is None or len(members) > 1:
            raise ValueError(f"--output {HEAD} needs --teacher and one student (no --ensemble)")
        model, float32, int8, output = export_teacher_cry(
            student, pool.codes, pool.labels, labels, cfg.crying_label, seed=cfg.train.seed
        )
    else:
        rep_x, _, _ = maker.batch(400, np.random.default_rng([cfg.train.seed, 10_000]))
        float32, int8 = to_float32(model), to_int8(model, rep_x)
    training: dict[str, Any] = {
        "data": summarise(clips),
        "split": split.summary(clips),
        "unverified": f"{cfg.unverified} (loss weight {cfg.unverified_weight})",
        "train_config": asdict(cfg.train),
        "examples": {
            k: sorted(v) if isinstance(v, frozenset) else v
            for k, v in asdict(ex_cfg).items()
            if k not in ("augment", "class_map")
        },
        "class_map": class_map,
        "augment": asdict(ex_cfg.augment),
        "generated_negatives": sorted(GENERATORS),
        "teacher": (
            {"model": teacher.name, "unlabelled": [str(d) for d in cfg.unlabelled_dirs]}
            if teacher is not None
            else None
        ),
        "pool": pool_summary,
        "rooms": cfg.rooms,
        "output": output,
        "seconds": round(time.time() - started),
    }
    meta = build_metadata(
        labels=labels,
        crying_label=cfg.crying_label,
        window_frames=ex_cfg.window_frames,
        hop_frames=cfg.hop_frames,
        training=training,
        model_version=cfg.model_version,
    )
    write_model_dir(cfg.out, float32, int8, meta)
    if cfg.save_keras:  # with the teacher's heads, if it had them
        with warnings.catch_warnings():  # Keras saving TF optimizer variables under numpy 2
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            student.save(cfg.out / "model.keras")
    plots.training_curves(history, cfg.out / "curves.png")
    report: dict[str, Any] = {
        "model_version": meta.model_version,
        "training": training,
        "history": history,
    }
    if len(members) > 1:
        report["member_histories"] = [h for _, h in members[1:]]
    if val_clips:
        report.update(
            evaluate_model_dir(cfg.out, val_clips, val_waves, title=f"{split.name} validation")
        )
        meta.metrics = {
            k: report["evaluation"][k] for k in ("windows", "clips_alert", "false_alerts")
        }
        meta.metrics["split"] = split.name
        write_metadata(cfg.out, meta)
    (cfg.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    log.info("model written to %s in %.0f s", cfg.out, time.time() - started)
    return report


def evaluate_model_dir(
    model_dir: Path,
    clips: list[Clip],
    waves: list[Any],
    *,
    title: str,
    variant: str = "int8",
    figures: Path | None = None,
) -> dict[str, Any]:
    """Evaluate the exported model as the hub runs it; writes confusion.png and pr.png
    into ``figures`` (default: the model directory)."""
    figures = figures or model_dir
    figures.mkdir(parents=True, exist_ok=True)
    model = CryModel.load(model_dir, variant=variant)
    config = DetectorConfig(
        window_frames=model.metadata.window_frames, hop_frames=model.metadata.hop_frames
    )
    evaluation = evaluate_clips(
        clips, waves, model, config=config, crying_label=model.metadata.crying_label
    )
    w = evaluation["windows"]
    plots.confusion(
        w["confusion"], f"{title}: windows, threshold {w['threshold']}", figures / "confusion.png"
    )
    plots.pr_roc(evaluation["curves"], title, figures / "pr.png")
    return {"evaluation": evaluation, "variant": variant}
