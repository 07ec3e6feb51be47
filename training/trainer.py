"""The training loop: fresh augmented examples every epoch, seeded end to end."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from .examples import ExampleMaker
from .model import build_model

log = logging.getLogger(__name__)


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
    return model, history
