"""A microphone that sends only digital zeros is reported, not shown as a quiet room."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from nurserycry.hub.counters import Counters
from nurserycry.hub.engine import Engine
from nurserycry.hub.ingest import Accepted
from nurserycry.shared.detector import DetectorConfig
from nurserycry.shared.frontend import compute_features, decode_db
from nurserycry.shared.silence import MicrophoneWatch

from tests.test_hub_engine import Scripted
from tests.test_hub_support import T0, features


def test_the_frontend_floor_is_what_digital_zeros_give_and_a_live_floor_is_above_it() -> None:
    from nurserycry.shared.silence import SILENT_DBFS

    zeros = compute_features(np.zeros(16_000, np.float32))
    assert float(decode_db(zeros.level).max()) < SILENT_DBFS
    one_lsb = np.random.default_rng(0).integers(-1, 2, 16_000) / 32_768  # a converter's noise
    assert float(decode_db(compute_features(one_lsb.astype(np.float32)).level).min()) > SILENT_DBFS


def test_watch_turns_silent_after_the_run_lasts_and_back_on_one_sound() -> None:
    watch = MicrophoneWatch(silent_s=10.0)
    changes = [watch.update(t, t + 1.0, -100.0) for t in np.arange(0.0, 12.0, 0.5)]
    assert changes.index(True) == 18  # the window ending at 10 s: 10 s of zeros
    assert changes.count(True) == 1 and False not in changes and watch.silent
    assert watch.update(12.0, 13.0, -85.0) is False and not watch.silent
    assert watch.update(12.5, 13.5, -85.0) is None
    # a run interrupted by one sound starts again
    for t in np.arange(13.5, 22.0, 0.5):
        assert watch.update(t, t + 1.0, -100.0) is None
    assert watch.update(22.0, 23.0, -60.0) is None and watch.since is None
    # the clock set back inside a run restarts it rather than counting backwards
    watch.update(100.0, 101.0, -100.0)
    assert watch.update(50.0, 51.0, -100.0) is None and watch.since == 50.0


def _window_plan(engine: Engine, codes: list[int]) -> list[tuple[float, str, str]]:
    """Feed 0.5 s messages at a constant level code each (2 codes = 1 dB, 0 = -50 dBFS);
    (time, microphone, state) of every state handed out."""
    got = []
    for seq, code in enumerate(codes):
        msg = features("n1", seq, crying=False)
        level = np.full(len(msg.level.to_numpy()), code, np.int8)
        out = engine.process([Accepted("n1", msg, msg.mel.to_numpy(), level)])
        got += [(s.t - T0, s.microphone, s.state) for s in out.states.values()]
    return got


def test_engine_reports_a_silent_microphone_at_once_and_its_return(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters = Counters()
    engine = Engine(
        Scripted([0.0] * 200), lambda _n: DetectorConfig(), counters, microphone_silent_s=20.0
    )
    with caplog.at_level(logging.INFO, logger="nurserycry.hub.engine"):
        got = _window_plan(engine, [-100] * 60 + [0] * 10)  # 30 s of zeros, then a room
    mic = [(t, m) for t, m, _ in got]
    silent = [t for t, m in mic if m == "silent"]
    assert silent and 20.0 <= silent[0] <= 21.0  # handed out as soon as it is known
    assert all(m == "ok" for t, m in mic if t < silent[0])
    back = [t for t, m in mic if m == "ok" and t > silent[0]]
    assert back and 30.0 <= back[0] <= 31.5
    assert counters.get("microphone_silent") == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "n1" in warnings[0].getMessage()
    assert "microphone muted" in warnings[0].getMessage()
    assert any("hears sound again" in r.getMessage() for r in caplog.records)


def test_a_very_quiet_live_room_is_not_a_silent_microphone() -> None:
    engine = Engine(
        Scripted([0.0] * 200), lambda _n: DetectorConfig(), Counters(), microphone_silent_s=5.0
    )
    got = _window_plan(engine, [-84] * 60)  # -92 dBFS: one bit of converter noise
    assert got and all(m == "ok" for _, m, _ in got)
    assert {s for _, _, s in got} == {"quiet"}


def test_silence_found_inside_one_batch_still_shows_the_state_before_it() -> None:
    engine = Engine(
        Scripted([0.0] * 200), lambda _n: DetectorConfig(), Counters(), microphone_silent_s=5.0
    )
    batch = []
    for seq in range(16):  # 8 s of zeros arriving at once (a backlog, a busy hub)
        msg = features("n1", seq, crying=False)
        batch.append(Accepted("n1", msg, msg.mel.to_numpy(), msg.level.to_numpy()))
    out = engine.process(batch)
    shown = [s.microphone for s in out.transitions] + [out.states["n1"].microphone]
    assert shown == ["ok", "silent"]
