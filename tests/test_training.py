"""The training pipeline on a tiny generated dataset (no real audio needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nurserycry.shared.frontend import DEFAULT_PARAMS, compute_features

from tests.audio_gen import cry_like, make_dataset

MELS = DEFAULT_PARAMS.n_mels


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def test_discover_folders_labels_classes_groups(dataset: Path) -> None:
    from nurserycry.training.dataset import discover_folders

    clips = discover_folders(dataset)
    assert len(clips) == 12
    assert {c.label for c in clips} == {"crying", "not_crying"}
    assert {c.cls for c in clips if c.label == "not_crying"} == {"noise", "tones"}
    assert {c.cls for c in clips if c.label == "crying"} == {"crying"}
    assert {c.group for c in clips if c.label == "crying"} == {
        f"crying/crying/baby{i}" for i in range(6)
    }


def test_added_data_folders_keep_their_own_groups_and_source(dataset: Path, tmp_path: Path) -> None:
    from nurserycry.training.dataset import load_clips
    from nurserycry.training.splits import split_by_source

    mine = make_dataset(tmp_path / "my-nursery", per_label=2, seed=3)
    clips = load_clips(dataset, extra_dirs=[mine])
    added = [c for c in clips if c.source == "my-nursery"]
    assert len(clips) == 16 and len(added) == 4
    assert all(c.group.startswith("my-nursery:") for c in added)
    assert {c.group for c in added}.isdisjoint({c.group for c in clips if c not in added})
    assert len({c.key for c in clips}) == 16
    split = split_by_source(clips, ("my-nursery",), positive_orig_sr=None)
    assert sorted(split.val) == sorted(clips.index(c) for c in added)


def test_manifest_keeps_groups_and_splits_never_cut_them(tmp_path: Path) -> None:
    from nurserycry.training.dataset import read_manifest
    from nurserycry.training.splits import split_by_group, split_by_source

    rows = ["path,label,cls,group,source_repo,orig_sr"]
    for i in range(40):
        label = "crying" if i % 4 == 0 else "not_crying"
        src = "cries/x" if label == "crying" else f"src{i % 3}"
        sr = 16000 if i % 8 == 0 else 8000
        rows.append(f"a/{i}.wav,{label},c{i % 5},g{i // 2},{src},{sr}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    clips = read_manifest(manifest)
    assert clips[0].path == tmp_path / "a/0.wav"
    for sp in (split_by_group(clips, 0.25, seed=3), split_by_source(clips, ["src1"])):
        train_groups = {clips[i].group for i in sp.train}
        val_groups = {clips[i].group for i in sp.val}
        assert sp.val and sp.train
        assert not train_groups & val_groups
        assert sorted(sp.train + sp.val) == list(range(len(clips)))
    by_source = split_by_source(clips, ["src1"])
    assert all(clips[i].source != "src1" for i in by_source.train)
    assert all(
        not (clips[i].label == "crying" and clips[i].orig_sr == 16000) for i in by_source.train
    )
    with pytest.raises(ValueError, match="not in the data"):
        split_by_source(clips, ["nowhere"])


def test_augmentations_keep_length_and_band_limit_removes_the_top_band() -> None:
    from nurserycry.training import augment as aug
    from nurserycry.training.synth import GENERATORS

    rng = np.random.default_rng(1)
    n = 16_320
    assert aug.crop(np.ones(100, np.float32), n, rng).sum() == pytest.approx(100)
    assert aug.crop(np.arange(50_000, dtype=np.float32), n, rng).size == n
    x = rng.standard_normal(n).astype(np.float32)
    assert aug.rms_db(aug.set_level(x, -40.0)) == pytest.approx(-40.0, abs=1e-3)
    mixed = aug.mix(x, rng.standard_normal(n).astype(np.float32), snr_db=10.0)
    assert aug.rms_db(mixed - x) == pytest.approx(aug.rms_db(x) - 10.0, abs=1e-3)
    assert aug.reverb(x, rng, 16_000, (0.2, 0.4)).shape == x.shape
    before = compute_features(x).mel.mean(axis=0)
    drops = []
    for _ in range(8):
        limited = aug.band_limit(x, rng, 16_000)
        assert limited.shape == x.shape
        after = compute_features(limited).mel.mean(axis=0)
        assert abs(after[10] - before[10]) < 4  # ~1 kHz: within 2 dB
        assert after[-1] <= before[-1] + 1
        drops.append(before[-1] - after[-1])
    # The phone channel (3.2-3.5 kHz) takes the top band down by > 4 dB, about
    # what the data's 8 kHz cries show against its 16 kHz ones (5-9 dB).
    assert max(drops) > 8
    masked = np.ones((50, 32), np.float32)
    cfg = aug.AugmentConfig(p_time_mask=1.0, p_freq_mask=1.0)
    aug.spec_mask(masked, rng, cfg)
    assert (masked == 0).any(axis=1).all() and (masked == 0).all(axis=1).any()
    for name, gen in GENERATORS.items():
        wave = gen(rng, n, 16_000)
        assert wave.shape == (n,) and wave.dtype == np.float32, name
        assert np.isfinite(wave).all() and 0.1 < np.abs(wave).max() <= 0.5 + 1e-6, name


def test_speed_up_raises_pitch_and_keeps_length() -> None:
    from nurserycry.training import augment as aug

    rate, n = 16_000, 16_320
    tone = np.sin(2 * np.pi * 200 * np.arange(3 * rate) / rate).astype(np.float32)
    fast = aug.speed_up(tone, n, np.random.default_rng(0), 2.0)
    assert fast.shape == (n,) and fast.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(fast[1000:-1000]))
    peak_hz = np.argmax(spectrum) * rate / (n - 2000)
    assert peak_hz == pytest.approx(400, abs=5)


def test_voice_classes_train_as_their_own_label(dataset: Path) -> None:
    from nurserycry.training.dataset import discover_folders
    from nurserycry.training.examples import ExampleConfig, ExampleMaker

    clips = discover_folders(dataset)
    config = ExampleConfig(class_map={"tones": "voice"}, synthetic_share=0.5)
    labels = sorted({config.label_of(c) for c in clips})
    assert labels == ["crying", "not_crying", "voice"]
    assert {config.label_of(c) for c in clips if c.cls == "noise"} == {"not_crying"}
    waves = [np.zeros(16_000, np.float32) + 0.01 for _ in clips]
    maker = ExampleMaker(clips, waves, labels, crying_label="crying", config=config)
    assert labels[maker.other] == "not_crying"  # generated sounds are never "voice"
    assert [labels[i] for i in maker.clip_label] == [config.label_of(c) for c in clips]


def test_clip_windows_match_the_frontend() -> None:
    from nurserycry.training.examples import clip_windows, window_samples

    assert window_samples(50) == 16_320
    wave = cry_like(np.random.default_rng(2), 3.0)
    wins = clip_windows(wave, 50, 25)
    mel = compute_features(wave).mel
    assert wins.dtype == np.int8 and wins.shape == (1 + (mel.shape[0] - 50) // 25, 50, MELS)
    np.testing.assert_array_equal(wins[1], mel[25:75])
    assert clip_windows(wave[:4000], 50, 25).shape == (1, 50, MELS)


@pytest.mark.train
def test_tiny_training_exports_tflite_matching_keras(dataset: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from nurserycry.training.audio import load_waves
    from nurserycry.training.dataset import discover_folders
    from nurserycry.training.examples import ExampleConfig, ExampleMaker
    from nurserycry.training.export import to_float32, to_int8
    from nurserycry.training.trainer import TrainConfig, train

    clips = discover_folders(dataset)
    waves = load_waves(clips)
    maker = ExampleMaker(
        clips, waves, ["crying", "not_crying"], crying_label="crying", config=ExampleConfig()
    )
    config = TrainConfig(epochs=2, examples_per_epoch=128, batch_size=32, width=8, verbose=0)
    model, history = train(maker, config)
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))
    x, _, _ = maker.batch(64, np.random.default_rng(9))
    expected = model.predict(x, verbose=0)

    def run(content: bytes) -> np.ndarray:
        interp = Interpreter(model_content=content, num_threads=1)
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.resize_tensor_input(inp["index"], [len(x), 50, MELS])
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            data = np.clip(np.rint(x / scale + zero), -128, 127).astype(np.int8)
        else:
            data = x
        interp.set_tensor(inp["index"], data)
        interp.invoke()
        raw = interp.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            return np.asarray((raw.astype(np.float32) - zero) * scale, np.float32)
        return np.asarray(raw, np.float32)

    np.testing.assert_allclose(run(to_float32(model)), expected, atol=1e-5)
    int8 = run(to_int8(model, x))
    # Stated tolerance for full-integer int8: within 0.06 of the Keras probability,
    # 0.02 on average (output steps are 1/256; activations add the rest).
    assert np.abs(int8 - expected).max() < 0.06
    assert np.abs(int8 - expected).mean() < 0.02


@pytest.mark.train
def test_train_command_writes_a_loadable_model_dir(dataset: Path, tmp_path: Path) -> None:
    from nurserycry.cli import main
    from nurserycry.shared.model import CryModel

    out = tmp_path / "model"
    argv = [
        "train",
        str(dataset),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--examples-per-epoch",
        "64",
        "--batch-size",
        "32",
        "--width",
        "8",
        "--val-fraction",
        "0.34",
        "--add-data",
        str(make_dataset(tmp_path / "mine", per_label=1, seed=4)),
        "--quiet",
    ]
    assert main(argv) == 0
    names = {
        "model.tflite",
        "model_float32.tflite",
        "metadata.json",
        "curves.png",
        "confusion.png",
        "pr.png",
        "report.json",
    }
    assert names <= {p.name for p in out.iterdir()}
    for png in ("curves.png", "confusion.png", "pr.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["split"]["name"] == "group"
    assert report["training"]["data"]["clips"] == 14  # 12 + 2 added
    assert report["training"]["data"]["sources"]["mine"]["clips"] == 2
    assert report["training"]["data"]["sources"]["mine"]["minutes"] == 0.1  # 2 x 3 s
    assert set(report["evaluation"]["windows"]) >= {"precision", "recall", "f1", "roc_auc"}
    model = CryModel.load(out)
    assert model.metadata.labels == ["crying", "not_crying"]
    assert model.metadata.frontend_hash == DEFAULT_PARAMS.hash
    assert model.metadata.metrics["split"] == "group"
    p = model.predict(np.zeros((3, 50, MELS), np.int8))
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    assert main(["evaluate", str(out), str(dataset), "--out", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert ev["evaluation"]["windows"]["positives"] > 0
    assert "noise" in ev["evaluation"]["per_class"] and ev["evaluation"]["per_group"]


@pytest.mark.train
def test_a_run_is_reproducible_from_its_seed(dataset: Path) -> None:
    from nurserycry.training.audio import load_waves
    from nurserycry.training.dataset import discover_folders
    from nurserycry.training.examples import ExampleConfig, ExampleMaker
    from nurserycry.training.trainer import TrainConfig, train

    clips = discover_folders(dataset)
    waves = load_waves(clips)
    config = ExampleConfig(voice_speedup=0.5)

    def weights(seed: int) -> list[np.ndarray]:
        maker = ExampleMaker(
            clips, waves, ["crying", "not_crying"], crying_label="crying", config=config
        )
        cfg = TrainConfig(
            epochs=2, examples_per_epoch=96, batch_size=32, width=8, verbose=0, seed=seed
        )
        model, _ = train(maker, cfg)
        return [np.array(w) for w in model.get_weights()]

    first, again, other = weights(3), weights(3), weights(4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))
