"""The model card and its figures, written from the shipped model and its harness run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.audio_gen import make_dataset

pytestmark = pytest.mark.train
DEFAULT = Path(__file__).resolve().parents[1] / "hub" / "models" / "default"


def test_card_quotes_the_harness_and_draws_its_figures(tmp_path: Path) -> None:
    from nurserycry.training import card

    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.tflite", "model_float32.tflite", "metadata.json", "report.json"):
        shutil.copy(DEFAULT / name, model / name)
    harness = json.loads((DEFAULT / "harness.json").read_text())
    fold, name = "wideband", next(iter(harness["folds"]["wideband"]["detectors"]))
    d = harness["folds"][fold]["detectors"][name]
    (tmp_path / "extra.md").write_text("## Limits\n\nNot a medical device.\n")
    args = [str(model), "--data", str(make_dataset(tmp_path / "data")), "--harness"]
    args += [str(DEFAULT / "harness.json"), "--extra", str(tmp_path / "extra.md")]
    assert card.main([*args, "--confusion", f"{fold}/{name}"]) == 0
    text = (model / "MODEL_CARD.md").read_text()
    version = json.loads((model / "metadata.json").read_text())["model_version"]
    assert text.startswith(f"# NurseryCry default model `{version}`")
    assert f"| {name} | " in text and f"**{d['clip_f1']:.3f}**" in text
    assert f"{harness['streams_per_fold']} night streams" in text
    assert text.rstrip().endswith("Not a medical device.")
    for png in ("confusion.png", "curves.png"):
        assert (model / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no such fold/detector"):
        card.main([*args, "--confusion", "wideband/nobody"])


def test_card_names_the_costliest_class_of_each_detector() -> None:
    from nurserycry.training.card import harness_tables

    harness = json.loads((DEFAULT / "harness.json").read_text())
    fold = harness["folds"]["wideband"]
    name = next(iter(fold["detectors"]))
    fold["detectors"][name]["without_class"] = [
        {"cls": "cat_meow", "clips": 147, "clip_f1": 0.8621, "clip_roc_auc": 0.9911}
    ]
    lines = [x for x in harness_tables(harness) if x.startswith(f"- wideband, {name}:")]
    assert lines and lines[0].endswith(
        "; without cat_meow (147 clips): clip F1 0.862, ROC-AUC 0.991"
    )
    assert any(x.endswith("costliest negative class left out:") for x in harness_tables(harness))
    plain = json.loads((DEFAULT / "harness.json").read_text())  # a run before the field
    assert "False alarms per negative group (clips that alerted / clips):" in harness_tables(plain)
    others = [x for x in harness_tables(harness) if x.startswith("- second_source")]
    assert others and not any("without" in x for x in others)  # runs without the field
