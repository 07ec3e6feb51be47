"""The cry model at inference time: load a model directory and score windows.

A model directory holds ``model.tflite`` (full-integer int8, the default),
``model_float32.tflite`` and ``metadata.json`` (:class:`ModelMetadata`). The
package ships one in ``nurserycry/hub/models/default`` (package data of the hub,
which runs it; training writes such directories, classify and the hub load them).

:class:`CryModel` takes windows of int8 wire codes, exactly what the edge
sends, applies :func:`nurserycry.shared.frontend.model_input` itself and runs
the TFLite interpreter on one thread. It never imports TensorFlow unless no
lighter TFLite runtime is installed.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import logging
import re
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from .detector import DetectorConfig
from .errors import ModelMismatchError
from .extras import install_command
from .frontend import FrontendParams, model_input
from .native_stderr import drop_native_lines

log = logging.getLogger(__name__)

METADATA_FILE: Final = "metadata.json"
VARIANT_FILES: Final = {"int8": "model.tflite", "float32": "model_float32.tflite"}
# Interpreters are kept for these batch sizes; a batch of n is split greedily
# into them, so no call pays for padding or for reallocating tensors. (Batches
# above 64 windows were slower here: their activations spill out of the cache.)
_BATCH_SIZES: Final = (64, 16, 4, 1)
_RUNTIME_NOISE: Final = re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate")


class ModelMetadata(BaseModel):
    """``metadata.json``: what a model expects and how it was made."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    model_version: str = Field(max_length=80)
    labels: list[str] = Field(min_length=2)
    crying_label: str = "crying"
    frontend: dict[str, float | int]
    frontend_hash: str
    window_frames: int = Field(ge=1)
    hop_frames: int = Field(ge=1)
    created: str = Field(description="ISO 8601 UTC time of export")
    training: dict[str, Any] = Field(default_factory=dict, description="data and settings summary")
    metrics: dict[str, Any] = Field(default_factory=dict, description="validation figures")

    @property
    def crying_index(self) -> int:
        return self.labels.index(self.crying_label)

    @property
    def frontend_params(self) -> FrontendParams:
        return FrontendParams.from_dict(self.frontend)

    def detector_config(self, base: DetectorConfig | None = None) -> DetectorConfig:
        """``base`` (default settings if None) with this model's window and hop."""
        fields = (base or DetectorConfig()).model_dump()
        fields.update(window_frames=self.window_frames, hop_frames=self.hop_frames)
        return DetectorConfig.model_validate(fields)

    def check(self) -> None:
        """Raise ``ValueError`` if the metadata contradicts itself."""
        if self.crying_label not in self.labels:
            raise ValueError(f"crying_label {self.crying_label!r} is not one of {self.labels}")
        actual = self.frontend_params.hash
        if actual != self.frontend_hash:
            raise ValueError(
                f"frontend_hash {self.frontend_hash} does not match its frontend parameters "
                f"(which hash to {actual})"
            )

    @classmethod
    def read(cls, model_dir: Path) -> ModelMetadata:
        meta = cls.model_validate(json.loads((model_dir / METADATA_FILE).read_text()))
        meta.check()
        return meta


def default_model_dir() -> Path:
    """The model shipped inside the package."""
    return Path(str(importlib.resources.files("nurserycry.hub") / "models" / "default"))


def _interpreter_class() -> Any:
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        try:
            return importlib.import_module(module).Interpreter
        except ImportError:
            continue
    raise ModuleNotFoundError(
        f"no TFLite runtime: install the hub extra ({install_command('hub')})",
        name="ai_edge_litert",
    )


class _Runner:
    """One interpreter with its input resized to a fixed batch size."""

    def __init__(self, model_content: bytes, batch: int) -> None:
        self.interpreter = _interpreter_class()(model_content=model_content, num_threads=1)
        inp = self.interpreter.get_input_details()[0]
        shape = list(inp["shape"])
        if shape[0] != batch:
            self.interpreter.resize_tensor_input(inp["index"], [batch, *shape[1:]], strict=False)
        with drop_native_lines(_RUNTIME_NOISE):  # the runtime's INFO line on every start
            self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        self.batch = batch
        self.in_index, self.out_index = int(inp["index"]), int(out["index"])
        self.in_dtype = np.dtype(inp["dtype"])
        self.in_scale, self.in_zero = (float(v) for v in inp["quantization"])
        self.out_dtype = np.dtype(out["dtype"])
        self.out_scale, self.out_zero = (float(v) for v in out["quantization"])
        self.in_shape = tuple(int(v) for v in inp["shape"])

    def run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self.in_dtype == np.int8:
            q = np.rint(x / self.in_scale + self.in_zero)
            data: npt.NDArray[Any] = np.clip(q, -128, 127).astype(np.int8)
        else:
            data = x
        self.interpreter.set_tensor(self.in_index, data.reshape(self.in_shape))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.out_index)
        if self.out_dtype == np.int8:
            probs: npt.NDArray[np.float32] = (raw.astype(np.float32) - self.out_zero) * np.float32(
                self.out_scale
            )
            return probs
        return np.asarray(raw, dtype=np.float32)


class CryModel:
    """A loaded model: ``predict`` maps int8 windows to cry probabilities.

    Not thread-safe (TFLite interpreters are not): use one instance per thread.
    An empty batch ``(0, window_frames, n_mels)`` returns an empty result.
    """

    def __init__(self, model_content: bytes, metadata: ModelMetadata, variant: str) -> None:
        metadata.check()
        self.metadata = metadata
        self.variant = variant
        self.params = metadata.frontend_params
        self._content = model_content
        self._runners: dict[int, _Runner] = {}
        self._cry = metadata.crying_index
        probe = self._runner(1)
        n_labels = int(np.prod(probe.interpreter.get_output_details()[0]["shape"][1:]))
        if n_labels != len(metadata.labels):
            raise ValueError(f"model has {n_labels} outputs but metadata lists {metadata.labels}")
        expected = (1, metadata.window_frames, self.params.n_mels)
        if probe.in_shape[:3] != expected:
            raise ValueError(f"model input {probe.in_shape} does not fit windows {expected}")

    @classmethod
    def load(cls, model_dir: Path | None = None, *, variant: str = "int8") -> CryModel:
        """Load ``model_dir`` (default: the model shipped with the package)."""
        if variant not in VARIANT_FILES:
            raise ValueError(f"variant must be one of {sorted(VARIANT_FILES)}, not {variant!r}")
        directory = Path(model_dir) if model_dir is not None else default_model_dir()
        path = directory / VARIANT_FILES[variant]
        if not path.is_file():
            raise FileNotFoundError(f"no {VARIANT_FILES[variant]} in model directory {directory}")
        metadata = ModelMetadata.read(directory)
        model = cls(path.read_bytes(), metadata, variant)  # the runtime may be missing
        log.info("loaded model %s (%s) from %s", metadata.model_version, variant, directory)
        return model

    @property
    def window_frames(self) -> int:
        return self.metadata.window_frames

    def check_frontend(self, frontend_hash: str) -> None:
        """Raise :class:`ModelMismatchError` unless features come from our frontend."""
        if frontend_hash != self.metadata.frontend_hash:
            raise ModelMismatchError(
                f"features were computed with frontend {frontend_hash}, but model "
                f"{self.metadata.model_version} was trained on frontend "
                f"{self.metadata.frontend_hash}: update the edge agent or the model"
            )

    def _runner(self, batch: int) -> _Runner:
        runner = self._runners.get(batch)
        if runner is None:
            runner = self._runners[batch] = _Runner(self._content, batch)
        return runner

    def predict_proba(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
        """``(n, window_frames, n_mels)`` int8 codes -> ``(n, n_labels)`` probabilities."""
        codes = np.asarray(mel_codes)
        if codes.ndim == 2:
            codes = codes[None]
        if (
            codes.dtype != np.int8
            or codes.ndim != 3
            or codes.shape[1:]
            != (
                self.metadata.window_frames,
                self.params.n_mels,
            )
        ):
            raise ValueError(
                f"expected int8 windows (n, {self.metadata.window_frames}, {self.params.n_mels}), "
                f"got {codes.dtype} {codes.shape}"
            )
        x = model_input(codes, self.params)
        n = x.shape[0]
        out = np.empty((n, len(self.metadata.labels)), np.float32)
        start = 0
        while start < n:
            size = next(s for s in _BATCH_SIZES if s <= n - start)
            out[start : start + size] = self._runner(size).run(x[start : start + size])
            start += size
        return out

    def predict(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
        """``(n, window_frames, n_mels)`` int8 codes -> ``(n,)`` cry probability."""
        return np.ascontiguousarray(self.predict_proba(mel_codes)[:, self._cry])
