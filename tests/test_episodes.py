"""The shared episode rule and window assembly (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from nurserycry.shared.detector import DetectorConfig, NurseryDetector, WindowAssembler
from nurserycry.shared.episodes import EpisodeChange, EpisodeConfig, EpisodeTracker


def run(
    probs: list[float], cfg: EpisodeConfig | None = None, hop: float = 0.5
) -> list[EpisodeChange]:
    tracker = EpisodeTracker(cfg)
    out: list[EpisodeChange] = []
    for i, p in enumerate(probs):
        out += tracker.update(i * hop, i * hop + 1.0, p)
    return out + tracker.finish()


def test_single_hot_window_is_not_an_episode() -> None:
    assert run([0.1] * 5 + [0.99] + [0.1] * 20) == []


def test_onset_is_causal_n_of_m_and_ends_after_release() -> None:
    probs = [0.1] * 4 + [0.9, 0.2, 0.9, 0.9] + [0.5] * 3 + [0.1] * 30
    changes = run(probs)
    assert [c.kind for c in changes] == ["started", "ended"]
    started = changes[0].episode
    assert started.start == 2.0  # first hot window starts at 4 * 0.5
    assert started.alert_at == 4.0  # window 6 (starting 3.0) completes 2 of 3
    ended = changes[1].episode
    assert ended.end == 6.0  # last window >= off_threshold: index 10, ends 5.0 + 1.0
    assert ended.peak == pytest.approx(0.9)
    assert ended.duration == pytest.approx(4.0)


def test_hysteresis_holds_through_short_dips() -> None:
    cfg = EpisodeConfig(release_s=3.0)
    probs = [0.9] * 6 + [0.1] * 4 + [0.9] * 6 + [0.0] * 20  # 2 s dip < 3 s release
    assert [c.kind for c in run(probs, cfg)] == ["started", "ended"]
    probs = [0.9] * 6 + [0.1] * 12 + [0.9] * 6 + [0.0] * 20  # 6 s dip > release
    assert [c.kind for c in run(probs, cfg)] == ["started", "ended", "started", "ended"]


def test_cooldown_marks_second_alert() -> None:
    cfg = EpisodeConfig(release_s=1.0, cooldown_s=30.0)
    probs = [0.9] * 6 + [0.0] * 10 + [0.9] * 6 + [0.0] * 100 + [0.9] * 6 + [0.0] * 10
    starts = [c.episode for c in run(probs, cfg) if c.kind == "started"]
    assert [e.alert for e in starts] == [True, False, True]


def test_min_episode_length_delays_alert() -> None:
    cfg = EpisodeConfig(onset_n=1, onset_m=1, min_episode_s=2.0)
    changes = run([0.0, 0.9, 0.9, 0.9, 0.9] + [0.0] * 20, cfg)
    assert changes[0].episode.alert_at - changes[0].episode.start == pytest.approx(2.0)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="onset_n"):
        EpisodeConfig(onset_n=4, onset_m=3)
    with pytest.raises(ValueError, match="off_threshold"):
        EpisodeConfig(on_threshold=0.4, off_threshold=0.5)


def frames(n: int, value: int = -40) -> tuple[np.ndarray, np.ndarray]:
    mel = (np.arange(n * 32) % 100 - 90).astype(np.int8).reshape(n, 32)
    return mel, np.full(n, value, np.int8)


def test_assembler_cuts_windows_every_hop_with_times() -> None:
    asm = WindowAssembler(window=50, hop=25)
    got = []
    for k in range(8):  # 8 messages of 25 frames = 4 s
        mel, level = frames(25)
        windows, gap = asm.push(mel, level, 1e9 + k * 0.5, k * 25)
        assert not gap
        got += windows
    assert len(got) == 7
    assert [round(w.t_start - 1e9, 3) for w in got] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert all(w.mel.shape == (50, 32) for w in got)
    assert got[0].t_end - got[0].t_start == pytest.approx(1.0)
    assert got[0].level_dbfs == pytest.approx(-70.0)  # code -40 -> -70 dB


def test_assembler_drops_partial_window_on_gap() -> None:
    asm = WindowAssembler(window=50, hop=25)
    mel, level = frames(25)
    asm.push(mel, level, 1e9, 0)
    windows, gap = asm.push(mel, level, 1e9 + 1.0, 50)  # frames 25..49 lost
    assert gap and windows == []
    windows, gap = asm.push(mel, level, 1e9 + 1.5, 75)
    assert not gap and len(windows) == 1 and windows[0].t_start == pytest.approx(1e9 + 1.0)


def test_detector_labels() -> None:
    det = NurseryDetector(DetectorConfig(quiet_dbfs=-60))
    assert det.label(0.95, -30) == "crying"
    assert det.label(0.1, -30) == "other"
    assert det.label(0.1, -75) == "quiet"


def test_silent_windows_are_never_crying() -> None:
    det = NurseryDetector(DetectorConfig(silence_dbfs=-75))
    mel, level = frames(50, value=-100)  # code -100 -> -100 dBFS: digital silence
    windows = det.push(mel, level, 1e9, 0)
    result = det.score(windows[0], 0.99)
    assert result.cry_probability == 0.0
    assert result.label == "quiet"
    loud_mel, loud_level = frames(50, value=40)  # -30 dBFS
    windows = det.push(loud_mel, loud_level, 1e9 + 1, 50)
    assert det.score(windows[0], 0.99).cry_probability == 0.99


@pytest.mark.parametrize("jump", [600.0, -600.0])
def test_a_hole_or_a_step_back_in_time_ends_the_episode(jump: float) -> None:
    """#14.5: windows 10 minutes apart (or going back) are two stretches, not one episode."""
    tracker = EpisodeTracker(EpisodeConfig(cooldown_s=60.0))
    out: list[EpisodeChange] = []
    for i in range(8):
        out += tracker.update(i * 0.5, i * 0.5 + 1.0, 0.95)
    for i in range(8):
        t = 4.0 + jump + i * 0.5
        out += tracker.update(t, t + 1.0, 0.95)
    out += tracker.finish()
    assert [c.kind for c in out] == ["started", "ended", "started", "ended"]
    first, second = out[1].episode, out[3].episode
    assert first.duration < 5 and second.duration < 5
    assert second.alert is (jump > 0)  # going back in time is within the cooldown
