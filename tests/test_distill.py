"""Teacher-student training: a tiny teacher written here, the pool, --unlabelled, no teacher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.audio_gen import cry_like, make_dataset, write

pytestmark = pytest.mark.train
EMBEDDING = "yamnet_frames/global_average_pooling2d/Mean"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A TFLite graph shaped like YAMNet's interface: 15,600 samples in, 521 scores out,
    and a tensor named like YAMNet's embedding (here 16-d: mean of ReLU(frames @ W))."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = rng.standard_normal((240, 16)).astype(np.float32) * 0.1
    w2 = rng.standard_normal((16, 521)).astype(np.float32)

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 15_600], tf.float32)])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            feats = tf.nn.relu(tf.matmul(tf.reshape(x, [1, 65, 240]), w))
            with tf.name_scope("yamnet_frames"), tf.name_scope("global_average_pooling2d"):
                emb = tf.reduce_mean(feats, axis=1, name="Mean")
            return tf.sigmoid(tf.matmul(emb, w2))

    module = Tiny()
    fn = module.__call__.get_concrete_function()
    path = tmp_path_factory.mktemp("teacher") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([fn], module).convert())
    return path, w


def test_teacher_reads_the_embedding_tensor_fast_and_exactly_alike(tiny_teacher) -> None:
    from nurserycry.training.teacher import YamnetTeacher

    path, w = tiny_teacher
    chunks = np.random.default_rng(1).standard_normal((3, 15_600)).astype(np.float32) * 0.1
    fast, exact = YamnetTeacher(path), YamnetTeacher(path, exact=True)
    assert (fast.chunk_samples, fast.embedding_size, fast.n_scores) == (15_600, 16, 521)
    a, b = fast.run(chunks), exact.run(chunks)
    expected = np.maximum(chunks.reshape(3, 65, 240) @ w, 0).mean(axis=1)
    np.testing.assert_allclose(a.embedding, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.embedding, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    with pytest.raises(FileNotFoundError):
        YamnetTeacher(path.with_name("missing.tflite"))


class RecordingTeacher:
    """Remembers every chunk it heard; calls everything a cry (class 20) when ``cry``."""

    chunk_samples, embedding_size, n_scores, name = 15_600, 8, 521, "recording"

    def __init__(self, cry: bool = False) -> None:
        self.heard: list[npt.NDArray[np.float32]] = []
        self.cry = cry

    def run(self, chunks: npt.NDArray[np.float32]):  # type: ignore[no-untyped-def]
        from nurserycry.training.teacher import TeacherOutput

        self.heard.append(np.array(chunks))
        emb = np.stack([c[:8] * 100 for c in chunks]).astype(np.float32)
        scores = np.zeros((len(chunks), 521), np.float32)
        scores[:, 20] = 0.9 if self.cry else 0.0
        return TeacherOutput(emb, scores)


def _maker(dataset: Path, **config):  # type: ignore[no-untyped-def]
    from nurserycry.training.audio import load_waves
    from nurserycry.training.dataset import discover_folders
    from nurserycry.training.examples import ExampleConfig, ExampleMaker

    clips = discover_folders(dataset)
    cfg = ExampleConfig(**config)
    return ExampleMaker(
        clips, load_waves(clips), ["crying", "not_crying"], crying_label="crying", config=cfg
    )


def test_teacher_targets_come_from_the_very_mixture_the_student_sees(dataset: Path) -> None:
    from nurserycry.shared.frontend import compute_features
    from nurserycry.training.augment import AugmentConfig
    from nurserycry.training.pool import build_pool

    # mixing, rooms off but every other augmentation on, so each example is a new mixture
    maker = _maker(dataset, augment=AugmentConfig(p_mix=1.0, p_mic=0.5, p_mp3=0.2, p_onset=0.5))
    teacher = RecordingTeacher()
    pool = build_pool(maker, 12, seed=5, teacher=teacher)
    assert len(teacher.heard) == 12 and pool.embedding is not None
    n = maker.n  # 16,320 samples: chunks at 0 and at n - 15,600
    for k, chunks in enumerate(teacher.heard):
        assert chunks.shape == (2, 15_600)
        heard = np.concatenate([chunks[0], chunks[1][-(n - 15_600) :]])
        np.testing.assert_array_equal(compute_features(heard).mel, pool.codes[k])
        expected = np.mean([c[:8] * 100 for c in chunks], axis=0)
        np.testing.assert_allclose(pool.embedding[k], expected, rtol=2e-3, atol=2e-3)


def test_cached_pools_are_reused_and_join(dataset: Path, tmp_path: Path) -> None:
    from nurserycry.training.pool import build_pool, load_pools

    maker = _maker(dataset)
    teacher = RecordingTeacher()
    a = build_pool(maker, 6, seed=1, teacher=teacher, cache_dir=tmp_path, cache_key="a")
    again = build_pool(maker, 6, seed=1, teacher=teacher, cache_dir=tmp_path, cache_key="a")
    assert len(teacher.heard) == 6  # the second call read the cache: no teacher run
    np.testing.assert_array_equal(a.codes, again.codes)
    build_pool(maker, 4, seed=2, teacher=teacher, cache_dir=tmp_path, cache_key="b")
    plain = build_pool(maker, 3, seed=3, cache_dir=tmp_path / "plain", cache_key="c")
    files = sorted(tmp_path.glob("pool-*.npz"))
    joined = load_pools(files)
    assert joined.labels.size == 10 and joined.embedding is not None
    assert joined.embedding.shape == (10, 8)
    assert plain.embedding is None
    with pytest.raises(ValueError, match="teacher outputs"):
        load_pools([files[0], *sorted((tmp_path / "plain").glob("pool-*.npz"))])


def test_unlabelled_folders_join_as_teacher_labelled_data(dataset: Path, tmp_path: Path) -> None:
    from nurserycry.training.pipeline import RunConfig, run
    from nurserycry.training.trainer import TrainConfig

    rng = np.random.default_rng(2)
    unl = tmp_path / "nursery-night"
    for i in range(4):
        write(unl / f"night{i}-x.wav", cry_like(rng, 3.0))
    cfg = RunConfig(
        data_dir=dataset,
        out=tmp_path / "model",
        split="none",
        unlabelled_dirs=(unl,),
        pool_examples=200,
        train=TrainConfig(epochs=1, batch_size=32, width=8, verbose=0),
    )
    with pytest.raises(ValueError, match="need --teacher"):
        run(cfg)
    teacher = RecordingTeacher(cry=True)
    report = run(cfg, teacher=teacher)
    pool = report["training"]["pool"]
    # every example the teacher labelled came from the unlabelled folder, and it said "cry"
    assert pool["teacher_labelled"]["crying"] > 10
    assert pool["teacher_labelled"]["other"] == pool["teacher_labelled"]["baby_voice"] == 0
    assert report["training"]["data"]["sources"]["nursery-night"]["clips"] == 4
    assert report["training"]["data"]["per_label"]["unlabelled"] == 4
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert meta["labels"] == ["crying", "not_crying"]


def test_training_on_a_pool_without_teacher_and_a_longer_temporal_window(
    dataset: Path, tmp_path: Path
) -> None:
    from nurserycry.shared.frontend import DEFAULT_PARAMS
    from nurserycry.shared.model import CryModel
    from nurserycry.training.examples import ExampleConfig
    from nurserycry.training.pipeline import RunConfig, run
    from nurserycry.training.trainer import TrainConfig

    cfg = RunConfig(
        data_dir=dataset,
        out=tmp_path / "model",
        split="group",
        val_fraction=0.34,
        pool_examples=128,
        examples=ExampleConfig(window_frames=75),
        train=TrainConfig(epochs=2, batch_size=32, width=8, verbose=0, temporal=True),
    )
    report = run(cfg)
    assert report["training"]["teacher"] is None
    assert report["training"]["pool"]["examples"] == 128
    assert len(report["history"]["loss"]) == 2
    model = CryModel.load(tmp_path / "model")
    assert model.metadata.window_frames == 75
    p = model.predict(np.zeros((2, 75, DEFAULT_PARAMS.n_mels), np.int8))
    assert p.shape == (2,)


def test_hub_and_classify_never_import_the_teacher() -> None:
    code = (
        "import sys, nurserycry.hub.classify, nurserycry.hub.engine, nurserycry.hub.service\n"
        "bad = [m for m in sys.modules if m.startswith(('nurserycry.training', 'tensorflow'))]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_pool_cache_key_is_the_same_on_every_run() -> None:
    """The key of a cached pool once held ``repr`` of a frozenset, whose order changes with
    PYTHONHASHSEED: a rerun drew the same 128,000-example pool again (9 minutes)."""
    code = (
        "from nurserycry.training.examples import ExampleConfig\n"
        "print(ExampleConfig(teacher_labels=frozenset({'unlabelled', 'unverified'})).fingerprint())"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert len(keys) == 1
    assert '"teacher_labels": ["unlabelled", "unverified"]' in keys.pop()
