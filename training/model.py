"""The model: a tiny depthwise-separable CNN over one window of log-mel frames.

Input ``(window_frames, n_mels)`` float32 (``model_input``), output softmax over
the labels. At width 32 (the default): about 1.6 M multiply-adds and 37k
parameters, 66 kB as int8 TFLite, about 0.02-0.03 ms per window on one x86 core.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


def _trunk(inputs: Any, window_frames: int, n_mels: int, width: int) -> Any:
    """A 3x3 conv and four depthwise + pointwise blocks; ``width * 4`` channels out."""
    x = layers.Reshape((window_frames, n_mels, 1))(inputs)
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU(6.0)(x)
    for channels, stride in ((width * 2, 2), (width * 2, 1), (width * 4, 2), (width * 4, 1)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(channels, 1, use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU(6.0)(x)
    return x


def build_model(
    window_frames: int, n_mels: int, n_labels: int, width: int = 32, dropout: float = 0.2
) -> Any:
    """A keras ``Model``; ``width`` is the channel count of the first stage."""
    inputs = keras.Input((window_frames, n_mels), name="mel")
    x = _trunk(inputs, window_frames, n_mels, width)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="nurserycry_dscnn")


def build_student(
    window_frames: int,
    n_mels: int,
    n_labels: int,
    *,
    width: int = 32,
    dropout: float = 0.2,
    temporal: bool = False,
    embedding_size: int = 0,
    n_scores: int = 0,
) -> Any:
    """The same trunk with, optionally, a temporal stage and a teacher's heads.

    ``temporal``: after the trunk, frequency is averaged out and two 1-D
    convolutions run over the window's time steps (the rhythm of a cry and its
    in-breaths across a longer window), pooled by mean and max. ``embedding_size``
    / ``n_scores``: extra outputs ``embedding`` (linear, for a cosine loss against
    the teacher's embedding) and ``scores`` (sigmoid, against its class scores);
    :func:`inference_model` drops them for export.
    """
    inputs = keras.Input((window_frames, n_mels), name="mel")
    x = _trunk(inputs, window_frames, n_mels, width)
    if temporal:
        steps, bands = int(x.shape[1]), int(x.shape[2])
        x = layers.AveragePooling2D((1, bands))(x)
        x = layers.Reshape((steps, width * 4))(x)
        for _ in range(2):
            x = layers.Conv1D(width * 4, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU(6.0)(x)
        pooled = layers.Concatenate()(
            [layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)]
        )
    else:
        pooled = layers.GlobalAveragePooling2D()(x)
    features = layers.Dropout(dropout)(pooled)
    outputs = {
        "probabilities": layers.Dense(n_labels, activation="softmax", name="probabilities")(
            features
        )
    }
    if embedding_size:
        outputs["embedding"] = layers.Dense(embedding_size, name="embedding")(pooled)
    if n_scores:
        outputs["scores"] = layers.Dense(n_scores, activation="sigmoid", name="scores")(pooled)
    return keras.Model(inputs, outputs, name="nurserycry_student")


def inference_model(model: Any) -> Any:
    """The model the hub runs: input -> label probabilities (teacher heads dropped)."""
    if isinstance(model.output, dict):
        return keras.Model(model.input, model.output["probabilities"], name=model.name)
    return model


def ensemble_model(students: list[Any]) -> Any:
    """One graph that runs every student and averages their logits (then softmax).

    Students trained alike but from other seeds disagree most where none of them
    is sure (held-out voices and music); averaging logits, not probabilities,
    keeps a confident agreement as sharp as one member's, so the hub's 0.9
    threshold means what it did. Teacher heads are dropped.
    """
    first = inference_model(students[0])
    inputs = keras.Input(first.input.shape[1:], name="mel")
    logits = []
    for k, student in enumerate(students):
        dense = student.get_layer("probabilities")
        body = keras.Model(student.input, dense.input, name=f"member_{k}")
        head = layers.Dense(dense.units, name=f"logits_{k}")
        logits.append(head(body(inputs)))
        head.set_weights(dense.get_weights())
    mean = layers.Average(name="mean_logits")(logits) if len(logits) > 1 else logits[0]
    outputs = layers.Softmax(name="probabilities")(mean)
    return keras.Model(inputs, outputs, name="nurserycry_ensemble")
