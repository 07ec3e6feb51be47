"""The evaluation harness: its folds, its night streams and their scoring (generated audio)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from tests.audio_gen import cry_like

RATE = 16_000


def _clips() -> list:
    from nurserycry.training.dataset import Clip
    from nurserycry.training.folds import FOLDS

    rows = [
        ("crying", "gveres/donateacry-corpus", 8000, "dac:a"),
        ("crying", "gveres/donateacry-corpus", 16000, "dac:b"),
        ("unverified", "gveres/donateacry-corpus", 16000, "dac:c"),
        ("unverified", "gveres/donateacry-corpus", 8000, "dac:a"),
        # a 16 kHz cry in a group that also has an 8 kHz cry: the whole group goes
        ("crying", "gveres/donateacry-corpus", 16000, "dac:d"),
        ("crying", "gveres/donateacry-corpus", 8000, "dac:d"),
        ("crying", "rynnchrs/Baby-Cry-Gender-Recognition", 48000, "ryn:1"),
        ("not_crying", "deeplyinc/Parent-Child-Vocal-Interaction-Dataset", 16000, "pc:1"),
        ("not_crying", "Alejandro-131004/AC-II", 16000, "us8k:1"),
    ]
    for fold in FOLDS.values():
        for k, src in enumerate(sorted(fold.sources)):
            rows.append(("not_crying", src, 16000, f"{fold.name}:{k}"))
    return [
        Clip(Path(f"{i}.flac"), label, "c", group, source=src, orig_sr=sr)
        for i, (label, src, sr, group) in enumerate(rows)
    ]


def test_folds_are_source_disjoint_and_never_cut_a_group() -> None:
    from nurserycry.training.folds import FOLDS, split_by_fold

    clips = _clips()
    assert set(FOLDS) == {"second_source", "wideband"}
    for fold in FOLDS.values():
        split = split_by_fold(clips, fold)
        train, val = [clips[i] for i in split.train], [clips[i] for i in split.val]
        assert sorted(split.train + split.val) == list(range(len(clips)))
        assert {c.group for c in train}.isdisjoint({c.group for c in val})
        # no held-out negative source is trained on, every one of them is scored
        assert {c.source for c in train}.isdisjoint(fold.sources)
        assert fold.sources <= {c.source for c in val}
        held_cries = [c for c in val if c.label == "crying" and c.source == fold.cry_source]
        assert held_cries
        assert not any(fold.holds_out(c) for c in train)
    wide = split_by_fold(clips, FOLDS["wideband"])
    val = [clips[i] for i in wide.val]
    assert {(c.label, c.orig_sr, c.group) for c in val if c.source.startswith("gveres")} == {
        ("crying", 16000, "dac:b"),
        ("unverified", 16000, "dac:c"),
        ("crying", 16000, "dac:d"),
        ("crying", 8000, "dac:d"),
    }
    second = split_by_fold(clips, FOLDS["second_source"])
    assert {clips[i].source for i in second.val if clips[i].label == "crying"} == {
        "rynnchrs/Baby-Cry-Gender-Recognition"
    }
    # the two folds rotate the negative groups: none is held out by both
    assert FOLDS["wideband"].sources.isdisjoint(FOLDS["second_source"].sources)


def test_fold_split_reports_sources_missing_from_the_data() -> None:
    from nurserycry.training.folds import FOLDS, split_by_fold

    clips = [c for c in _clips() if c.source != "remvze/moodist"]
    with pytest.raises(ValueError, match="moodist"):
        split_by_fold(clips, FOLDS["wideband"])


def _dry_rooms():
    from nurserycry.training.rooms import RoomBank

    dry = np.zeros(8, np.float32)
    dry[0] = 1.0
    echo = np.zeros(4000, np.float32)
    echo[0], echo[1600], echo[3200] = 1.0, 0.5, 0.25
    return RoomBank([dry], [echo])


def _band_db(wave: np.ndarray, t0: float, t1: float) -> float:
    """Level (dB) of 300-1500 Hz between t0 and t1 seconds."""
    seg = wave[int(t0 * RATE) : int(t1 * RATE)]
    spec = np.abs(np.fft.rfft(seg)) ** 2
    f = np.fft.rfftfreq(seg.size, 1 / RATE)
    return float(10 * np.log10(spec[(f > 300) & (f < 1500)].sum() / seg.size**2 + 1e-20))


def test_night_stream_puts_cries_at_known_times_and_nothing_else_near_them() -> None:
    from nurserycry.training.night import NightConfig, build_night

    rng = np.random.default_rng(0)
    cries = [cry_like(rng, 4.0) for _ in range(3)]
    # negatives without energy in the cry band (a hum below 200 Hz), so the
    # band level tells cry from non-cry
    t = np.arange(int(3 * RATE)) / RATE
    hum = (0.3 * np.sin(2 * np.pi * 90 * t)).astype(np.float32)
    background = rng.standard_normal(8 * RATE).astype(np.float32)
    cfg = NightConfig(minutes=4.0, quiet_between_s=(30.0, 40.0), negatives_per_minute=3.0)
    stream = build_night(rng, cries, [(hum, "hum")], (background, "bg"), _dry_rooms(), cfg=cfg)
    assert stream.wave.size == 4 * 60 * RATE
    assert len(stream.cries) >= 4
    quiet = _band_db(stream.wave, 0.0, 15.0)
    for cry in stream.cries:
        assert cry.end > cry.onset
        before = _band_db(stream.wave, cry.onset - 2.5, cry.onset - 0.5)
        assert abs(before - quiet) < 3  # nothing before the onset ...
        assert _band_db(stream.wave, cry.onset, cry.onset + 2.0) > quiet + 6  # ... a cry after it
        assert cry.start is not None and cry.start <= cry.onset
        for start, end, _ in stream.negatives:
            assert end < cry.start - cfg.guard_s or start > cry.end + cfg.guard_s
    assert len(stream.negatives) > 3


def test_night_score_counts_alerted_episodes_delays_and_false_alerts() -> None:
    from nurserycry.training.night import CryEvent, NightStream, score_night

    wave = np.zeros(600 * RATE, np.float32)
    cries = [CryEvent(100.0, 120.0, False, 20.0), CryEvent(300.0, 310.0, True, 5.0)]
    stream = NightStream(wave, cries, negatives=[(200.0, 203.0, "cat_meow")])
    # first cry alerted after 1.5 s, second missed, one alert on the cat, one in silence
    result = score_night([stream], [[101.5, 201.0, 450.0]])
    assert result["episodes"] == 2 and result["alerted"] == 1
    assert result["far_episodes"] == 1 and result["far_alerted"] == 0
    assert result["delay_median_s"] == pytest.approx(1.5)
    assert result["false_alerts"] == 2
    assert [f["during"] for f in result["false"]] == [["cat_meow"], ["background"]]
    hours = (600 - 30) / 3600
    assert result["false_alerts_per_hour"] == pytest.approx(2 / hours, rel=1e-3)
    # an alert just after a cry's end is still that cry's; before its onset it is not
    late = score_night([stream], [[99.0, 121.0]])
    assert late["alerted"] == 1 and late["false_alerts"] == 1
    # a cry whose audio begins 3 s before its marked onset (quieter first sounds): an alert
    # on them is the cry's, with a negative delay; one before its audio is false
    early = NightStream(wave, [CryEvent(100.0, 120.0, False, 20.0, start=97.0)])
    got = score_night([early], [[96.0, 98.5]])
    assert got["alerted"] == 1 and got["false_alerts"] == 1
    assert got["delay_median_s"] == pytest.approx(-1.5)


def test_frigate_rule_alerts_once_per_cooldown() -> None:
    from nurserycry.training.teacher import YAMNET_CHUNK, YAMNET_HOP, frigate_alerts

    scores = np.zeros(400, np.float32)
    scores[[10, 11, 50, 200]] = [0.9, 0.95, 0.85, 0.8]
    scores[300] = 0.79
    alerts = frigate_alerts(scores)
    ends = [(i * YAMNET_HOP + YAMNET_CHUNK) / RATE for i in (10, 200)]
    assert alerts == pytest.approx(ends)


def _chunk_end(i: int) -> float:
    from nurserycry.training.teacher import YAMNET_CHUNK, YAMNET_HOP

    return (i * YAMNET_HOP + YAMNET_CHUNK) / RATE


def test_frigate_cooldown_runs_from_the_last_alerted_event_like_the_hub() -> None:
    """Hot chunks 5.85 s apart (12 chunks, > the 5 s gap) are separate events: one that
    did not alert must not restart the cooldown, so one starts 60 s after the first
    alerted event's end and alerts (a chained cooldown stayed quiet all along)."""
    from nurserycry.training.teacher import YAMNET_CHUNK, frigate_alerts

    hot = list(range(0, 2000, 12))
    scores = np.zeros(2000, np.float32)
    scores[hot] = 0.9
    alerts = frigate_alerts(scores)
    chunk_s = YAMNET_CHUNK / RATE
    expected, alerted_end = [], None
    for i in hot:
        if alerted_end is None or _chunk_end(i) - chunk_s - alerted_end >= 60.0:
            expected.append(_chunk_end(i))
            alerted_end = _chunk_end(i)  # each event is one chunk: it ends where it alerts
    assert len(expected) == 16 and alerts == pytest.approx(expected)  # one per 64.35 s
    assert all(60.0 <= b - a <= 60.0 + 5.85 + chunk_s for a, b in pairwise(alerts))


def test_frigate_event_holds_through_gaps_of_at_most_5_s() -> None:
    """Hot chunks 4.875 s apart (10 chunks) are one event, however long: one alert, and
    the cooldown runs from its end. An event is judged where it starts, like an episode."""
    from nurserycry.training.teacher import YAMNET_CHUNK, frigate_alerts

    chunk_s = YAMNET_CHUNK / RATE
    scores = np.zeros(3000, np.float32)
    scores[0:1000:10] = 0.85  # chunks 0..990: one ~483 s event
    assert frigate_alerts(scores) == pytest.approx([_chunk_end(0)])
    end = _chunk_end(990)
    soon = next(i for i in range(1000, 3000) if _chunk_end(i) - chunk_s - end >= 57.0)
    late = soon + 10  # starts 61.9 s after that end
    scores[late] = 0.85
    assert frigate_alerts(scores) == pytest.approx([_chunk_end(0), _chunk_end(late)])
    scores[soon] = 0.85  # late is now part of an event that began within the cooldown
    assert frigate_alerts(scores) == pytest.approx([_chunk_end(0)])


class _CryTeacher:
    """A stand-in for YAMNet: a chunk is a cry when 300-1500 Hz hold a sixth of its energy."""

    chunk_samples, embedding_size, n_scores, name = 15_600, 4, 521, "fake"

    def run(self, chunks):  # type: ignore[no-untyped-def]
        from nurserycry.training.teacher import TeacherOutput

        scores = np.zeros((len(chunks), 521), np.float32)
        for i, c in enumerate(chunks):
            total = 10 * np.log10(np.mean(np.square(c, dtype=np.float64)) + 1e-20)
            in_band = _band_db(c, 0.0, c.size / RATE) - total  # share of 300-1500 Hz, dB
            scores[i, 20] = 0.95 if in_band > -8 else 0.0
        return TeacherOutput(np.zeros((len(chunks), 4), np.float32), scores)


def _fold_clips() -> tuple[list, list]:
    """Three generated cries from each fold's cry source and a hum from each of its
    negative sources (a fan for its backgrounds)."""
    from nurserycry.training.dataset import Clip
    from nurserycry.training.folds import FOLDS

    rng = np.random.default_rng(4)
    t = np.arange(3 * RATE) / RATE
    clips, waves = [], []
    for fold in FOLDS.values():
        for k in range(3):
            clips.append(
                Clip(
                    Path(f"{fold.name}c{k}"),
                    "crying",
                    "infant_cry",
                    f"{fold.name}:c{k}",
                    source=fold.cry_source,
                    orig_sr=16_000,
                )
            )
            waves.append(cry_like(rng, 3.0) * 0.3)
        for k, src in enumerate(sorted(fold.sources)):
            cls = "ambient_fan" if src in fold.background else ("laughter" if k == 0 else "hum")
            clips.append(
                Clip(
                    Path(f"{fold.name}n{k}"),
                    "not_crying",
                    cls,
                    f"{fold.name}:n{k}",
                    source=src,
                    orig_sr=16_000,
                )
            )
            hum = 0.1 * np.sin(2 * np.pi * 90 * t) + 1e-3 * rng.standard_normal(t.size)
            waves.append(hum.astype(np.float32))
    return clips, waves


@pytest.mark.slow
def test_harness_run_scores_every_detector_on_every_fold(tmp_path: Path) -> None:
    from nurserycry.training import plots
    from nurserycry.training.card import harness_tables
    from nurserycry.training.folds import FOLDS
    from nurserycry.training.harness import Contender, run_harness
    from nurserycry.training.night import NightConfig

    clips, waves = _fold_clips()
    contenders = [Contender("fake_yamnet", teacher=_CryTeacher())]
    night = NightConfig(minutes=3.5, quiet_between_s=(62.0, 66.0), episode_s=(6.0, 8.0))
    report = run_harness(clips, waves, contenders, streams=1, night=night, cache_dir=tmp_path)
    assert set(report["folds"]) == set(FOLDS)
    for entry in report["folds"].values():
        det = entry["detectors"]["fake_yamnet"]
        assert det["cries"] == 3 and det["clip_recall"] == 1.0 and det["clip_precision"] == 1.0
        assert det["clip_roc_auc"] == 1.0 and det["without_class"] == []  # nothing to gain
        night_rep = det["night"]
        assert night_rep["episodes"] >= 2
        assert night_rep["alerted"] == night_rep["episodes"]  # the fake hears every cry ...
        assert night_rep["false_alerts"] == 0  # ... and nothing else
        assert 0 < night_rep["delay_median_s"] < 3
    assert (
        "laughter_x1.6"
        in report["folds"]["second_source"]["detectors"]["fake_yamnet"]["baby_voice"]
    )
    text = "\n".join(harness_tables(report))
    assert "| second_source" in text and "fake_yamnet" in text
    plots.harness_summary(report, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


class _BandEmbeddingTeacher(_CryTeacher):
    """Like :class:`_CryTeacher`, with an embedding that points one way for energy at
    300-1500 Hz and another for the rest: a probe can learn crying from it."""

    def run(self, chunks):  # type: ignore[no-untyped-def]
        from nurserycry.training.teacher import TeacherOutput

        out = super().run(chunks)
        emb = np.zeros((len(chunks), 4), np.float32)
        for i, c in enumerate(chunks):
            total = np.mean(np.square(c, dtype=np.float64)) + 1e-20
            share = 10 ** ((_band_db(c, 0.0, c.size / RATE) - 10 * np.log10(total)) / 10)
            emb[i] = [share, 1 - share, 0.05, 0.0]
        return TeacherOutput(emb, out.scores)


def test_the_hub_rule_over_teacher_chunks_alerts_once_per_cooldown() -> None:
    from nurserycry.training.ceiling import rule_alerts

    scores = np.zeros(200, np.float32)
    assert rule_alerts(scores) == []
    scores[10:20] = 0.99  # ~5 s of crying: one alert, on its second hot chunk
    first = rule_alerts(scores)
    assert len(first) == 1 and 5.0 < first[0] < 6.5
    scores[40:50] = 0.99  # 15 s later: inside the 60 s cooldown
    assert rule_alerts(scores) == first
    scores[180:190] = 0.99  # ~80 s after the first: a new alert
    assert len(rule_alerts(scores)) == 2


@pytest.mark.slow
def test_yamnet_probe_is_fitted_on_each_fold_training_clips(tmp_path: Path) -> None:
    from nurserycry.training.ceiling import TeacherProbe
    from nurserycry.training.folds import FOLDS
    from nurserycry.training.harness import run_harness
    from nurserycry.training.night import NightConfig

    clips, waves = _fold_clips()
    probe = TeacherProbe("yamnet_probe", _BandEmbeddingTeacher(), c=1e4)  # a few chunks
    night = NightConfig(minutes=2.5, quiet_between_s=(62.0, 66.0), episode_s=(6.0, 8.0))
    report = run_harness(clips, waves, [probe], streams=1, night=night, cache_dir=tmp_path)
    assert set(probe.probes) == set(FOLDS)
    for entry in report["folds"].values():
        det = entry["detectors"]["yamnet_probe"]
        assert det["clip_recall"] == 1.0 and det["clip_precision"] == 1.0
        assert det["clip_roc_auc"] == 1.0
        assert det["night"]["alerted"] >= 1
    w, _ = probe.probes["second_source"]
    assert w[0] > w[1]  # the band share points to crying
    assert "cannot ship" in report["detectors"]["yamnet_probe"]


def test_harness_cli_wants_yamnet_for_the_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nurserycry.training.cli import harness

    assert harness(["--data", str(tmp_path), "--yamnet-probe"]) == 2
    assert "--yamnet-probe needs --yamnet PATH" in capsys.readouterr().err


def test_costliest_classes_name_the_sound_that_the_error_is() -> None:
    from nurserycry.training.harness import costliest_classes

    # 4 cries; cats outrank two of them and alert twice; dogs sit below every cry
    ys = [True] * 4 + [False] * 6
    top = [0.9, 0.8, 0.5, 0.4, 0.95, 0.85, 0.6, 0.1, 0.2, 0.3]
    alert = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    classes = ["cry"] * 4 + ["cat", "cat", "cat", "dog", "dog", "door"]
    rows = costliest_classes(ys, alert, top, classes)
    assert [r["cls"] for r in rows] == ["cat"]  # leaving out dogs or the door changes nothing
    (cat,) = rows
    assert cat["clips"] == 3 and cat["clip_roc_auc"] == 1.0
    assert cat["clip_f1"] == pytest.approx(2 / 3, abs=1e-4)  # P 1, R 0.5
    assert costliest_classes([True, False], [1.0, 0.0], [0.9, 0.1], ["cry", "dog"]) == []


def test_skipped_clips_are_not_scored_and_a_wrong_path_is_refused(tmp_path: Path) -> None:
    from nurserycry.training.harness import Contender, read_skip, run_harness
    from nurserycry.training.night import NightConfig

    clips, waves = _fold_clips()
    hums = [c for c in clips if c.cls == "hum"]
    night = NightConfig(minutes=3.5, quiet_between_s=(62.0, 66.0), episode_s=(6.0, 8.0))
    args = {"streams": 1, "night": night, "cache_dir": tmp_path, "folds": ["wideband"]}
    teacher = [Contender("fake_yamnet", teacher=_CryTeacher())]
    full = run_harness(clips, waves, teacher, **args)["folds"]["wideband"]
    listed = tmp_path / "skip.txt"
    listed.write_text(f"# trained on\n{hums[-1].key}\n\n")
    skip = read_skip(listed, clips)
    report = run_harness(clips, waves, teacher, skip=skip, **args)
    part = report["folds"]["wideband"]
    assert report["skipped_clips"] == 1
    group = next(g for g, n in full["held_out"].items() if part["held_out"].get(g) != n)
    assert part["held_out"][group] == full["held_out"][group] - 1
    listed.write_text("audio/not_crying/nowhere.flac\n")
    with pytest.raises(ValueError, match="no clip of the data"):
        read_skip(listed, clips)
