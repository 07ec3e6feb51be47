"""The training loop: fresh augmented examples every epoch, seeded end to end."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from nurserycry.shared.frontend import model_input

from . import augment as aug
from .examples import ExampleMaker
from .model import build_model, build_student
from .pool import Pool

log = logging.getLogger(__name__)

LABELLED_CRY_CLASS = 20  # YAMNet's "Baby cry, infant cry"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    examples_per_epoch: int = 16_000
    batch_size: int = 64
    learning_rate: float = 3e-3
    width: int = 32
    dropout: float = 0.2
    seed: int = 0
    verbose: int = 1  # keras progress bar: 0 silent, 1 bar, 2 one line per epoch
    temporal: bool = False  # a temporal stage over the window's time steps (model.py)
    embedding_weight: float = 1.0  # loss weight of the teacher's embedding (cosine)
    scores_weight: float = 1.0  # loss weight of the teacher's class scores (cross-entropy)
    # the teacher's "Baby cry, infant cry" score set to 1 on every crying example (its
    # cry score misses many phone cries; cry_head.py ships that head)
    labelled_cry_score: bool = False
    members: int = 1  # students trained with seeds seed, seed+1, ...; exported as one ensemble


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train(
    maker: ExampleMaker,
    config: TrainConfig,
    validation: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Train a new model; returns it and its per-epoch history."""
    seed_everything(config.seed)
    model = build_model(
        maker.cfg.window_frames,
        maker.params.n_mels,
        len(maker.labels),
        config.width,
        config.dropout,
    )
    steps = max(1, config.examples_per_epoch // config.batch_size) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history: dict[str, list[float]] = {}
    for epoch in range(config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        x, y, w = maker.batch(config.examples_per_epoch, rng)
        log.info(
            "epoch %d/%d: %d examples (%.0f%% crying)",
            epoch + 1,
            config.epochs,
            len(y),
            100 * np.mean(y == maker.cry),
        )
        _fit_epoch(model, (x, y, w), config, epoch, validation=validation, history=history)
    return model, history


def _fit_epoch(
    model: Any,
    data: tuple[Any, Any, Any],
    config: TrainConfig,
    epoch: int,
    *,
    validation: Any,
    history: dict[str, list[float]],
) -> None:
    """One epoch of ``model.fit`` on ``(x, y, sample_weight)``; appends to ``history``."""
    x, y, w = data
    result = model.fit(
        x,
        y,
        sample_weight=w,
        batch_size=config.batch_size,
        epochs=epoch + 1,
        initial_epoch=epoch,
        validation_data=validation,
        shuffle=True,
        verbose=config.verbose,
    )
    for key, values in result.history.items():
        history.setdefault(key, []).extend(float(v) for v in values)


def train_on_pool(
    pool: Pool,
    maker: ExampleMaker,
    config: TrainConfig,
    validation: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Train on a drawn-once pool for ``config.epochs`` epochs (fresh spectrogram masks
    each epoch); with teacher targets in the pool, the student also learns the
    teacher's embedding (cosine) and scores (cross-entropy) of every example."""
    seed_everything(config.seed)
    teacher = pool.embedding is not None and pool.scores is not None
    model = build_student(
        maker.cfg.window_frames,
        maker.params.n_mels,
        len(maker.labels),
        width=config.width,
        dropout=config.dropout,
        temporal=config.temporal,
        embedding_size=pool.embedding.shape[1] if pool.embedding is not None else 0,
        n_scores=pool.scores.shape[1] if pool.scores is not None else 0,
    )
    steps = max(1, pool.labels.size // config.batch_size) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.02)
    losses: dict[str, Any] = {"probabilities": "sparse_categorical_crossentropy"}
    weights = {"probabilities": 1.0}
    targets: dict[str, Any] = {"probabilities": pool.labels}
    if teacher and pool.embedding is not None and pool.scores is not None:
        losses |= {"embedding": keras.losses.CosineSimilarity(), "scores": "binary_crossentropy"}
        weights |= {"embedding": config.embedding_weight, "scores": config.scores_weight}
        scores = pool.scores.astype(np.float32)
        if config.labelled_cry_score:  # the labels overrule the teacher on what is a cry
            scores[pool.labels == maker.cry, LABELLED_CRY_CLASS] = 1.0
        targets |= {"embedding": pool.embedding.astype(np.float32), "scores": scores}
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=losses,
        loss_weights=weights,
        metrics={"probabilities": ["accuracy"]},
    )
    ones = np.ones(pool.labels.size, np.float32)
    sample_weight = {k: (pool.weights if k == "probabilities" else ones) for k in targets}
    val = None
    if validation is not None:
        vx, vy = validation
        val = (vx, {"probabilities": vy}) if not teacher else None
    base = model_input(pool.codes, maker.params)
    history: dict[str, list[float]] = {}
    for epoch in range(config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        x = base.copy()
        for k in range(x.shape[0]):
            aug.spec_mask(x[k], rng, maker.cfg.augment)
        log.info("epoch %d/%d on a pool of %d examples", epoch + 1, config.epochs, x.shape[0])
        _fit_epoch(
            model, (x, targets, sample_weight), config, epoch, validation=val, history=history
        )
    return model, history
