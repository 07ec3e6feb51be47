"""Write a model directory: the two ``.tflite`` files and ``metadata.json``."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

from nurserycry import __version__
from nurserycry.shared.frontend import DEFAULT_PARAMS, FrontendParams
from nurserycry.shared.model import METADATA_FILE, VARIANT_FILES, ModelMetadata


def build_metadata(
    *,
    labels: list[str],
    crying_label: str,
    window_frames: int,
    hop_frames: int,
    training: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    model_version: str | None = None,
    params: FrontendParams = DEFAULT_PARAMS,
) -> ModelMetadata:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    meta = ModelMetadata(
        model_version=model_version or f"nurserycry-{now:%Y%m%d-%H%M%S}",
        labels=labels,
        crying_label=crying_label,
        frontend=params.to_dict(),
        frontend_hash=params.hash,
        window_frames=window_frames,
        hop_frames=hop_frames,
        created=now.isoformat(),
        training={**training, "package_version": __version__, "python": platform.python_version()},
        metrics=metrics or {},
    )
    meta.check()
    return meta


def write_metadata(out: Path, meta: ModelMetadata) -> None:
    (out / METADATA_FILE).write_text(json.dumps(meta.model_dump(mode="json"), indent=2) + "\n")


def write_model_dir(out: Path, float32: bytes, int8: bytes, meta: ModelMetadata) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / VARIANT_FILES["float32"]).write_bytes(float32)
    (out / VARIANT_FILES["int8"]).write_bytes(int8)
    write_metadata(out, meta)
