"""Golden and property tests of the one audio frontend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurserycry.shared.frontend import (
    DEFAULT_PARAMS,
    FrontendParams,
    StreamingFrontend,
    compute_features,
    decode_db,
    encode_db,
    mel_filterbank,
    model_input,
)

SR = DEFAULT_PARAMS.sample_rate


def tone(freq: float, amp: float = 0.5, seconds: float = 1.0, rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def band_centres() -> np.ndarray:
    bank = mel_filterbank(DEFAULT_PARAMS)
    freqs = np.fft.rfftfreq(DEFAULT_PARAMS.n_fft, 1 / SR)
    return freqs[np.argmax(bank, axis=1)]


def test_output_dtype_shape_and_causal_framing() -> None:
    feats = compute_features(np.zeros(SR, np.float32))
    p = DEFAULT_PARAMS
    assert feats.mel.dtype == np.int8 and feats.level.dtype == np.int8
    assert feats.mel.shape == (1 + (SR - p.win_length) // p.hop_length, p.n_mels)
    assert feats.level.shape == (feats.mel.shape[0],)
    assert compute_features(np.zeros(p.win_length - 1, np.float32)).n_frames == 0
    assert compute_features(np.zeros(p.win_length, np.float32)).n_frames == 1


@pytest.mark.parametrize("freq", [300.0, 500.0, 1000.0, 2000.0, 3000.0])
def test_tone_lands_in_its_mel_band_at_its_power(freq: float) -> None:
    feats = compute_features(tone(freq, amp=0.5))
    mel_db = decode_db(feats.mel[5:-5]).mean(axis=0)
    band = int(np.argmax(mel_db))
    centres = band_centres()
    assert band == int(np.argmin(np.abs(centres - freq)))
    # amplitude 0.5 -> mean-square 0.125 -> -9.03 dB, within the filter's shape
    assert -11.5 < mel_db[band] < -8.0
    assert decode_db(feats.level[5:-5]).mean() == pytest.approx(-9.03, abs=0.3)


def test_band_stops_below_4khz() -> None:
    assert DEFAULT_PARAMS.fmax <= 4000
    for freq in (4500.0, 6000.0, 7500.0):
        mel_db = decode_db(compute_features(tone(freq, amp=0.9)).mel[5:-5])
        assert mel_db.max() < -60, f"{freq} Hz leaks into the mel bands"


def test_silence_reads_the_floor() -> None:
    feats = compute_features(np.zeros(SR, np.float32))
    assert np.all(decode_db(feats.mel) == DEFAULT_PARAMS.db_floor)
    assert np.all(decode_db(feats.level) == DEFAULT_PARAMS.db_floor)


def test_full_scale_noise_reads_its_band_power() -> None:
    rng = np.random.default_rng(7)
    noise = rng.uniform(-1, 1, 4 * SR).astype(np.float32)  # mean square 1/3
    feats = compute_features(noise)
    assert decode_db(feats.level).mean() == pytest.approx(10 * np.log10(1 / 3), abs=0.2)
    # white noise: power per Hz is (1/3) / (SR/2); a band reads that times its
    # filter's equivalent bandwidth (the triangle's area in Hz)
    bank = mel_filterbank(DEFAULT_PARAMS).astype(np.float64)
    hz_per_bin = SR / DEFAULT_PARAMS.n_fft
    expected = 10 * np.log10((1 / 3) / (SR / 2) * bank.sum(axis=1) * hz_per_bin)
    # average power, not decibels (the log of a noisy estimate is biased low)
    measured = 10 * np.log10(np.mean(10 ** (decode_db(feats.mel) / 10), axis=0))
    np.testing.assert_allclose(measured, expected, atol=0.75)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_resampling_keeps_a_tone_in_its_band(rate: int) -> None:
    ref = compute_features(tone(1000.0))
    other = compute_features(tone(1000.0, rate=rate), rate=rate)
    assert other.n_frames == pytest.approx(ref.n_frames, abs=2)
    assert np.argmax(other.mel[10]) == np.argmax(ref.mel[10])
    np.testing.assert_allclose(decode_db(other.mel[10:40]), decode_db(ref.mel[10:40]), atol=1.5)


@settings(max_examples=25, deadline=None)
@given(
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    cuts=st.lists(st.integers(1, 9000), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
)
def test_streaming_equals_one_shot_for_any_chunking(rate: int, cuts: list[int], seed: int) -> None:
    audio = (np.random.default_rng(seed).standard_normal(int(rate * 1.5)) * 0.1).astype(np.float32)
    one = compute_features(audio, rate)
    stream = StreamingFrontend(rate)
    mel, level = [], []
    pos = 0
    for cut in [*cuts, audio.size]:
        chunk = audio[pos : pos + cut]
        pos += chunk.size
        out = stream.process(chunk, last=pos >= audio.size)
        mel.append(out.mel)
        level.append(out.level)
        if pos >= audio.size:
            break
    np.testing.assert_array_equal(np.concatenate(mel), one.mel)
    np.testing.assert_array_equal(np.concatenate(level), one.level)


def test_int16_input_equals_float_input() -> None:
    pcm = (tone(700.0) * 32767).astype(np.int16)
    np.testing.assert_array_equal(
        compute_features(pcm).mel, compute_features(pcm.astype(np.float32) / 32768).mel
    )


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="mono"):
        compute_features(np.zeros((100, 2), np.float32))
    with pytest.raises(TypeError):
        compute_features(np.zeros(100, np.int32))
    with pytest.raises(ValueError, match="fmax"):
        FrontendParams(fmax=9000)


def test_quantisation_round_trip_and_model_input_ignores_gain() -> None:
    db = np.array([-114.0, -100.0, -37.5, 0.0, 13.5], np.float32)
    np.testing.assert_array_equal(decode_db(encode_db(db)), db)
    noise = np.random.default_rng(3).standard_normal(SR).astype(np.float32) * 0.05
    sound = tone(900.0, amp=0.5) + noise
    a = compute_features(sound).mel[:50]
    b = compute_features(sound * 0.1).mel[:50]  # 20 dB quieter
    np.testing.assert_allclose(model_input(a), model_input(b), atol=0.05)


def test_params_hash_is_stable_and_sensitive() -> None:
    assert FrontendParams().hash == DEFAULT_PARAMS.hash
    assert FrontendParams(n_mels=40).hash != DEFAULT_PARAMS.hash
    assert FrontendParams.from_dict(DEFAULT_PARAMS.to_dict()) == DEFAULT_PARAMS
