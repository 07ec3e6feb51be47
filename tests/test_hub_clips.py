"""The hub's clip collector without a broker: file names, the answer window, bad clips."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from nurserycry.edge.clips import encode_clip
from nurserycry.hub.counters import Counters
from nurserycry.hub.engine import EpisodeRecord, Outputs
from nurserycry.hub.sinks.clips import ANSWER_S, ClipCollector
from nurserycry.shared.mqtt import Received
from nurserycry.shared.schemas import EpisodeEvent
from nurserycry.shared.topics import Topics

from tests.memory_link import MemoryLink
from tests.test_hub_support import T0


def _started(device: str, alert: bool) -> Outputs:
    event = EpisodeEvent(
        device=device,
        event="started",
        episode_id="ep-1",
        started_at=T0,
        alert_at=T0 + 1,
        duration_s=1.0,
        peak_probability=0.9,
        alert=alert,
    )
    return Outputs(events=[EpisodeRecord(event, "fake-1")])


def test_requests_only_on_alerts_and_late_clips_are_not_the_episodes(tmp_path: Path) -> None:
    link, counters = MemoryLink(), Counters()
    clips = ClipCollector(
        link,
        Topics("nurserycry", "homeassistant"),
        tmp_path,
        seconds=12,
        keep=5,
        counters=counters,
    )
    clips.start()
    clips.write(_started("n1", alert=False))  # within the cooldown: no clip
    assert link.published == []
    clips.write(_started("n1", alert=True))
    assert [(s.topic, s.payload) for s in link.published] == [("nurserycry/n1/command", b"clip 12")]
    pcm = np.zeros(16_000, np.int16)
    clips._asked["n1"] = ("ep-1", time.monotonic() - ANSWER_S - 1)  # never answered in time
    clips.on_clip(Received("nurserycry/n1/clip", encode_clip("n1", T0, pcm, 16_000).encode()))
    assert [p.name for p in (tmp_path / "n1").iterdir()] == ["20260921T141320_request.flac"]
    clips.on_clip(Received("nurserycry/n1/clip", b'{"type": "clip"}'))
    foreign = encode_clip("n2", T0, pcm, 16_000).encode()  # another nursery's clip
    clips.on_clip(Received("nurserycry/n1/clip", foreign))
    assert counters.get("clips_rejected") == 2 and counters.get("clips_stored") == 1
