"""``EdgeAgent`` used in-process (as the demo does): generated blocks, stop(), a stalled card."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from nurserycry.edge.agent import EdgeAgent
from nurserycry.edge.ring import Block, Ring
from nurserycry.edge.settings import EdgeSettings
from nurserycry.edge.sources import BlocksSource, Source, SourceKind
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.frontend import compute_features

from tests.servers import Mosquitto
from tests.test_edge_helpers import Collector, nursery_name, tone_noise, unique_in_order

pytestmark = pytest.mark.servers


def _settings(broker: Mosquitto, tmp_path: Path, nursery: str, **kw: object) -> EdgeSettings:
    return EdgeSettings(
        nursery=nursery_name(nursery),
        mqtt=MqttSettings(broker=broker.url),
        spool=tmp_path / "s.spool",
        **kw,  # type: ignore[arg-type]
    )


def test_generated_blocks_in_process(mosquitto: Mosquitto, tmp_path: Path) -> None:
    audio = tone_noise(4.0, seed=31)
    blocks = [audio[i : i + 1600] for i in range(0, audio.size, 1600)]
    sub = Collector(mosquitto, "gen")
    try:
        source = BlocksSource(blocks, 16_000, realtime=False, start_time=1.85e9)
        agent = EdgeAgent(_settings(mosquitto, tmp_path, "gen"), source)
        assert agent.run() == 0
        total = compute_features(audio).n_frames
        assert sub.wait(lambda s: sum(m.n_frames for m in s.features) >= total, 10)
        msgs = unique_in_order(sub.features)
        mel = np.concatenate([m.mel.to_numpy() for m in msgs])
        np.testing.assert_array_equal(mel, compute_features(audio).mel)
        assert msgs[0].t0 == 1.85e9
        assert agent.status().source == "generated" and agent.publisher.sent == len(msgs)
    finally:
        sub.stop()


def test_stop_from_another_thread(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sub = Collector(mosquitto, "gen2")
    try:
        endless = (np.zeros(1600, np.float32) for _ in iter(int, 1))
        agent = EdgeAgent(_settings(mosquitto, tmp_path, "gen2"), BlocksSource(endless, 16_000))
        result: list[int] = []
        runner = threading.Thread(target=lambda: result.append(agent.run()))
        runner.start()
        assert sub.wait(lambda s: len(s.features) >= 2, 20)
        agent.stop()
        runner.join(20)
        assert result == [0] and agent.spool.depth == 0
    finally:
        sub.stop()


class _DeadCard(Source):
    """A live source that delivers one block, then nothing (the USB microphone fell out)."""

    kind: SourceKind = "microphone"
    live = True

    def __init__(self) -> None:
        super().__init__(16_000)

    def start(self, ring: Ring) -> None:
        self.start_time = 1.85e9
        ring.offer(Block(0, np.zeros(1600, np.float32), 1600))

    def stop(self) -> None:
        self.finished.set()


def test_a_stalled_microphone_ends_the_run_with_an_error(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    agent = EdgeAgent(_settings(mosquitto, tmp_path, "dead", stall_s=1.0), _DeadCard())
    assert agent.run() == 1  # systemd restarts the service
    assert isinstance(agent.error, RuntimeError)


def test_digital_silence_from_the_source_is_said_once_and_its_end_too(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from nurserycry.edge.agent import SILENT_WARNING_S

    zeros = [np.zeros(1600, np.float32)] * int((SILENT_WARNING_S + 5) * 10)  # 0.1 s blocks
    sound = tone_noise(2.0, seed=5)
    blocks = zeros + [sound[i : i + 1600] for i in range(0, sound.size, 1600)]
    source = BlocksSource(blocks, 16_000, realtime=False, start_time=1.85e9)
    agent = EdgeAgent(_settings(mosquitto, tmp_path, "mute"), source)
    with caplog.at_level(logging.INFO, logger="nurserycry.edge.agent"):
        assert agent.run() == 0
    said = [r for r in caplog.records if "digital silence" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "alsamixer" in said[0].getMessage()
    assert any("hears sound again" in r.getMessage() for r in caplog.records)


def test_a_live_room_raises_no_silence_warning(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = (tone_noise(40.0, seed=6) * 10 ** (-40 / 20)).astype(np.float32)  # faint but live
    blocks = [quiet[i : i + 1600] for i in range(0, quiet.size, 1600)]
    source = BlocksSource(blocks, 16_000, realtime=False, start_time=1.85e9)
    with caplog.at_level(logging.INFO, logger="nurserycry.edge.agent"):
        assert EdgeAgent(_settings(mosquitto, tmp_path, "live"), source).run() == 0
    assert not [r for r in caplog.records if "digital silence" in r.getMessage()]
