"""Keras model -> float32 and full-integer int8 ``.tflite`` flatbuffers."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf

log = logging.getLogger(__name__)


def _converter(model: Any) -> Any:
    return tf.lite.TFLiteConverter.from_keras_model(model)


def to_float32(model: Any) -> bytes:
    content: bytes = _converter(model).convert()
    return content


def to_int8(model: Any, representative: npt.NDArray[np.float32]) -> bytes:
    """Full-integer quantisation: int8 weights, activations, input and output.

    ``representative`` holds model inputs (a few hundred windows of training
    data) that set the activation ranges.
    """

    def examples() -> Iterator[list[npt.NDArray[np.float32]]]:
        for row in representative:
            yield [row[None].astype(np.float32)]

    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = examples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # Raised for every int8-input model; the representative dataset sets the ranges.
        warnings.filterwarnings(
            "ignore", message="Statistics for quantized inputs were expected", category=UserWarning
        )
        content: bytes = converter.convert()
    log.info("int8 model: %d bytes", len(content))
    return content
