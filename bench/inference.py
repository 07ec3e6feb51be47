"""Per-window inference latency of the shipped model (one thread), and YAMNet's for scale.

    python -m bench.inference [--model DIR] [--yamnet ../shared/peers/yamnet.tflite]

Windows are int8 wire codes (1 s, 50 x 32) as the hub receives them; the
figure includes ``model_input`` (decode + mean removal) and quantisation, i.e.
everything ``CryModel.predict`` does. Batch 1 is one nursery's latency; larger
batches are what the hub runs when many nurseries are busy. YAMNet (the model
Frigate uses) is timed on its own 0.975 s input in the same run, so the ratio
is fair on this noisy machine. It is never loaded by NurseryCry itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import timeit, write
from nurserycry.shared.model import VARIANT_FILES, CryModel, default_model_dir


def _model(variant: str, model_dir: Path | None) -> dict[str, Any]:
    model = CryModel.load(model_dir, variant=variant)
    meta = model.metadata
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {
        "variant": variant,
        "model_version": meta.model_version,
        "file_bytes": ((model_dir or default_model_dir()) / VARIANT_FILES[variant]).stat().st_size,
    }
    for batch in (1, 64, 256):
        windows = rng.integers(-110, 0, (batch, meta.window_frames, 32)).astype(np.int8)
        t = timeit(lambda w=windows: model.predict(w), repeat=7, number=max(1, 2000 // batch))
        out[f"batch{batch}_ms_per_window"] = t["median_s"] / batch * 1e3
    return out


def _yamnet(path: Path) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    inp = interp.get_input_details()[0]
    shape = [int(d) for d in inp["shape"]]
    if len(shape) != 1:  # some exports take (1, 15600)
        shape = [1, 15_600]
    interp.resize_tensor_input(inp["index"], shape)
    interp.allocate_tensors()
    x = (np.random.default_rng(0).standard_normal(shape) * 0.1).astype(np.float32)

    def run() -> None:
        interp.set_tensor(inp["index"], x)
        interp.invoke()

    return {"ms_per_chunk": timeit(run, repeat=5, number=50)["median_s"] * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: shipped)")
    parser.add_argument("--yamnet", type=Path, default=None, help="yamnet.tflite for comparison")
    args = parser.parse_args()
    result: dict[str, Any] = {"models": [_model(v, args.model) for v in ("int8", "float32")]}
    if args.yamnet is not None:
        result["yamnet"] = _yamnet(args.yamnet)
        ours = result["models"][0]["batch1_ms_per_window"]
        result["yamnet_over_ours_batch1"] = result["yamnet"]["ms_per_chunk"] / ours
    write("inference", result)


if __name__ == "__main__":
    main()
