"""The hub with an in-memory link (no broker): routing, reload and model swap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nurserycry.hub import discovery
from nurserycry.hub.service import Hub
from nurserycry.shared.frontend import DEFAULT_PARAMS, FrontendParams
from nurserycry.shared.schemas import Detection, NurseryState

from tests.memory_link import MemoryLink
from tests.test_hub_reload_report import load_fake, write_model
from tests.test_hub_support import FakeModel, edge_status, hub_settings, payload, wait_for


@pytest.fixture
def link() -> MemoryLink:
    return MemoryLink()


def started(hub: Hub) -> Hub:
    hub.start()
    assert hub.wait_connected(1)
    return hub


@pytest.fixture
def hub(tmp_path: Path, link: MemoryLink) -> Iterator[Hub]:
    h = started(Hub(hub_settings(tmp_path, "mqtt://unused:1883"), FakeModel(), link=link))
    yield h
    h.stop()


def test_every_topic_reaches_its_handler(hub: Hub, link: MemoryLink) -> None:
    subscribed = {s.topic_filter for s in hub.routes.table.subscriptions}
    assert {"nurserycry/+/features", "nurserycry/+/availability", "nurserycry/+/status"} <= (
        subscribed
    )
    assert {"nurserycry/hub/command", "homeassistant/status"} <= subscribed
    for seq in range(4):
        assert link.deliver("nurserycry/n1/features", payload("n1", seq, crying=True)) == 1
    link.deliver("nurserycry/n1/availability", "online")
    link.deliver("nurserycry/n1/status", edge_status("n1").encode())
    link.deliver("nurserycry/n2/status", edge_status("n1").encode())  # speaks for another nursery
    link.deliver("nurserycry/hub/status", b"the hub's own status")  # matched by +/status
    wait_for(lambda: hub.counters.get("windows") == 3, what="windows of n1")
    wait_for(lambda: hub.snapshot().edge_status.get("n1") is not None, what="heartbeat")
    snap = hub.snapshot()
    assert snap.edges_online == {"n1": True}
    assert snap.states["n1"].device == "n1"
    assert hub.counters.get("rejected_topic") == 1  # n2's forged heartbeat; not our own status
    detections = [Detection.decode(p) for p in link.on("nurserycry/n1/detection")]
    assert len(detections) == 3 and detections[-1].model == "fake-1"
    configs = [t for t in link.topics() if t.startswith("homeassistant/")]
    # the nursery's entities and the hub device's
    assert len(configs) == len(discovery.ENTITIES) + len(discovery.HUB_ENTITIES)

    # Home Assistant restarted: discovery and the last state again, retained
    before = len(link.published)
    link.deliver("homeassistant/status", "online")
    wait_for(lambda: len(link.published) >= before + 11, what="republished")
    again = link.published[before:]
    assert sum(s.topic.startswith("homeassistant/") for s in again) == len(configs)
    states = [s for s in again if s.topic == "nurserycry/n1/state"]
    assert states and states[-1].retain
    assert NurseryState.decode(states[-1].payload) == hub.snapshot().states["n1"]

    # the link reconnected (the broker may have lost retained messages): the same again
    before = len(link.published)
    link.connect()
    wait_for(lambda: len(link.published) >= before + 11, what="republished on reconnect")

    link.deliver("nurserycry/hub/command", "reload-model")  # no model directory: refused
    link.deliver("nurserycry/hub/command", "format-disk")  # unknown: logged
    link.deliver("nurserycry/hub/command", "reload-model")
    wait_for(lambda: hub.counters.get("messages") >= 4, what="features counted")
    assert hub.counters.get("model_reloads") == 0


def test_stop_says_offline_and_ends_open_episodes(tmp_path: Path, link: MemoryLink) -> None:
    hub = started(Hub(hub_settings(tmp_path, "mqtt://unused:1883"), FakeModel(), link=link))
    for seq in range(8):
        link.deliver("nurserycry/n1/features", payload("n1", seq, crying=True))
    wait_for(lambda: len(link.on("nurserycry/n1/event")) == 1, what="started")
    hub.stop()
    events = [json.loads(p)["event"] for p in link.on("nurserycry/n1/event")]
    assert events == ["started", "ended"]
    assert link.final == [("nurserycry/hub/availability", "offline")] and link.stopped


def test_reload_command_swaps_the_model_between_batches(tmp_path: Path, link: MemoryLink) -> None:
    directory = tmp_path / "model"
    write_model(directory, "v1")
    settings = hub_settings(tmp_path, "mqtt://unused:1883", model=directory, model_poll_s=3600)
    hub = started(Hub(settings, loader=load_fake, link=link))
    try:
        link.deliver("nurserycry/n1/features", payload("n1", 0))
        link.deliver("nurserycry/n1/features", payload("n1", 1))
        wait_for(lambda: hub.counters.get("windows") == 1, what="a window")
        write_model(directory, "v2")
        link.deliver("nurserycry/hub/command", "reload-model")
        wait_for(lambda: hub.counters.get("model_reloads") == 1, what="reload")
        wait_for(lambda: hub.engine.version == "v2", what="swapped between batches")
        link.deliver("nurserycry/n1/features", payload("n1", 2))
        wait_for(lambda: hub.counters.get("windows") == 2, what="a window with v2")
        models = [Detection.decode(p).model for p in link.on("nurserycry/n1/detection")]
        assert models == ["v1", "v2"]
        write_model(directory, "broken")
        link.deliver("nurserycry/hub/command", "reload-model")
        wait_for(lambda: hub.counters.get("model_reload_failures") == 1, what="failed reload")
        link.deliver("nurserycry/n1/features", payload("n1", 3))
        wait_for(lambda: hub.counters.get("windows") == 3, what="scoring goes on")
        assert hub.engine.version == "v2"
    finally:
        hub.stop()


class OtherFrontendModel(FakeModel):
    """A model trained on 40 mel bands: features of the default frontend no longer fit."""

    def __init__(self) -> None:
        super().__init__("mels-40")
        params = FrontendParams(n_mels=40)
        self.metadata = self.metadata.model_copy(
            update={"frontend": params.to_dict(), "frontend_hash": params.hash}
        )


def test_a_swapped_model_brings_its_frontend(tmp_path: Path, link: MemoryLink) -> None:
    directory = tmp_path / "model"
    write_model(directory, "v1")
    settings = hub_settings(tmp_path, "mqtt://unused:1883", model=directory, model_poll_s=3600)

    def load(path: Path) -> FakeModel:
        if json.loads((path / "metadata.json").read_text())["version"] == "mels-40":
            return OtherFrontendModel()
        return load_fake(path)

    hub = started(Hub(settings, loader=load, link=link))
    try:
        link.deliver("nurserycry/n1/features", payload("n1", 0))
        wait_for(lambda: hub.counters.get("messages") == 1, what="accepted")
        write_model(directory, "mels-40")
        link.deliver("nurserycry/hub/command", "reload-model")
        wait_for(lambda: hub.engine.version == "mels-40", what="swapped")
        link.deliver("nurserycry/n1/features", payload("n1", 1))  # old frontend: refused
        wait_for(lambda: hub.counters.get("rejected_frontend") == 1, what="refused")
        new = FrontendParams(n_mels=40)
        link.deliver("nurserycry/n1/features", payload("n1", 2, frontend=new.hash, n_mels=40))
        wait_for(lambda: hub.counters.get("messages") == 3, what="new frontend accepted")
        assert hub.counters.get("rejected_shape") == 0
        assert hub.counters.get("rejected_frontend") == 1
        assert DEFAULT_PARAMS.hash != new.hash
    finally:
        hub.stop()
