"""Generated voices (training/voices.py): voiced at their style's pitch, labelled by the teacher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.audio_gen import make_dataset

RATE = 16_000


def _pitch(x: npt.NDArray[np.float32]) -> float:
    """Median fundamental (Hz) of the louder 50 ms frames, by autocorrelation (60-1000 Hz)."""
    frame = RATE // 20
    frames = x[: x.size // frame * frame].reshape(-1, frame).astype(np.float64)
    energy = (frames**2).mean(axis=1)
    f0 = []
    for raw in frames[energy > 0.3 * energy.max()]:
        f = raw - raw.mean()
        ac = np.correlate(f, f, "full")[frame - 1 :]
        lo, hi = RATE // 1000, RATE // 60
        f0.append(RATE / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0))


@pytest.mark.parametrize(
    ("style", "lo", "hi"),
    [("speech", 70, 330), ("child_speech", 180, 560), ("babble", 200, 720), ("moan", 70, 560)],
)
def test_each_style_is_voiced_at_its_own_pitch(style: str, lo: float, hi: float) -> None:
    from nurserycry.training.voices import voice

    for seed in range(4):
        x = voice(np.random.default_rng(seed), 2 * RATE, RATE, style)
        assert x.dtype == np.float32 and x.shape == (2 * RATE,)
        assert np.all(np.isfinite(x)) and 0.45 < np.abs(x).max() <= 0.5
        assert lo <= _pitch(x) <= hi, (style, seed, _pitch(x))


def test_voices_are_seeded_harmonic_and_not_noise() -> None:
    from nurserycry.training.voices import voice

    a = voice(np.random.default_rng(7), RATE, RATE, "song")
    np.testing.assert_array_equal(a, voice(np.random.default_rng(7), RATE, RATE, "song"))
    assert not np.array_equal(a, voice(np.random.default_rng(8), RATE, RATE, "song"))
    # harmonic: most of the energy sits in a few narrow spectral peaks, unlike noise
    spec = np.abs(np.fft.rfft(a)) ** 2
    top = np.sort(spec)[::-1]
    assert top[: spec.size // 50].sum() > 0.8 * spec.sum()
    noise = np.random.default_rng(0).standard_normal(RATE)
    nspec = np.sort(np.abs(np.fft.rfft(noise)) ** 2)[::-1]
    assert nspec[: nspec.size // 50].sum() < 0.2 * nspec.sum()


class _Teacher:
    chunk_samples, embedding_size, n_scores, name = 15_600, 4, 521, "fixed"

    def __init__(self, cry: float) -> None:
        self.cry = cry

    def run(self, chunks):  # type: ignore[no-untyped-def]
        from nurserycry.training.teacher import TeacherOutput

        scores = np.zeros((len(chunks), 521), np.float32)
        scores[:, 20] = self.cry
        return TeacherOutput(np.zeros((len(chunks), 4), np.float32), scores)


@pytest.mark.train
def test_generated_voices_take_the_teachers_label_and_need_one(tmp_path: Path) -> None:
    from nurserycry.training.audio import load_waves
    from nurserycry.training.dataset import discover_folders
    from nurserycry.training.examples import TEACHER_DECIDES, ExampleConfig, ExampleMaker
    from nurserycry.training.pool import build_pool

    clips = discover_folders(make_dataset(tmp_path / "data"))
    waves = load_waves(clips)

    def maker(share: float) -> ExampleMaker:
        cfg = ExampleConfig(synthetic_voice_share=share)
        return ExampleMaker(
            clips, waves, ["crying", "not_crying"], crying_label="crying", config=cfg
        )

    every = maker(1.0)
    assert every.needs_teacher and not maker(0.0).needs_teacher
    labels = [every.one_wave(np.random.default_rng(k))[1] for k in range(5)]
    assert labels == [TEACHER_DECIDES] * 5
    with pytest.raises(ValueError, match="generated voices"):
        build_pool(every, 4, seed=0)
    heard_cry = build_pool(every, 6, seed=0, teacher=_Teacher(cry=0.9))
    heard_speech = build_pool(every, 6, seed=0, teacher=_Teacher(cry=0.0))
    assert heard_cry.labels.tolist() == [every.cry] * 6
    assert heard_speech.labels.tolist() == [every.other] * 6
    assert heard_speech.teacher_labelled is not None and set(heard_speech.teacher_labelled) == {3}
