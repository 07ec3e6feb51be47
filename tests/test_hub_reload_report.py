"""Model hot swap (file change, command topic, failed load keeps the old model) and the
``report`` PNG timeline drawn from a generated history."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from nurserycry.hub.counters import Counters
from nurserycry.hub.engine import EpisodeRecord, WindowRecord
from nurserycry.hub.model_reload import ModelWatcher
from nurserycry.hub.report import main as report_main
from nurserycry.hub.report import render_timeline
from nurserycry.hub.service import Hub
from nurserycry.hub.sinks.history import History
from nurserycry.shared.schemas import EpisodeEvent

from tests.servers import Mosquitto
from tests.test_hub_support import T0, Edge, FakeModel, hub_settings, wait_for


def write_model(directory: Path, version: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "metadata.json").write_text(json.dumps({"version": version}))


def load_fake(directory: Path) -> FakeModel:
    """A loader that reads the version from the directory; 'broken' fails like a bad file."""
    version = json.loads((directory / "metadata.json").read_text())["version"]
    if version == "broken":
        raise ValueError("model file is corrupt")
    return FakeModel(version)


def test_watcher_reloads_on_change_and_keeps_old_on_failure(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    write_model(directory, "v1")
    loaded: list[str] = []
    done = threading.Event()

    def on_loaded(model: FakeModel) -> None:
        loaded.append(model.metadata.model_version)
        done.set()

    counters = Counters()
    watcher = ModelWatcher(directory, load_fake, on_loaded, counters, poll_s=0.2, settle_s=0.05)
    watcher.start()
    try:
        write_model(directory, "v2")
        os.utime(directory / "metadata.json", ns=(1, 10**18))
        assert done.wait(10)
        assert loaded == ["v2"]
        write_model(directory, "broken")
        os.utime(directory / "metadata.json", ns=(1, 2 * 10**18))
        wait_for(lambda: counters.get("model_reload_failures") == 1, what="failed reload")
        assert loaded == ["v2"]
        done.clear()
        write_model(directory, "v3")
        watcher.request()
        assert done.wait(10)
        assert loaded[-1] == "v3"
    finally:
        watcher.stop()


@pytest.mark.servers
def test_reload_model_command_swaps_the_model(mosquitto: Mosquitto, tmp_path: Path) -> None:
    directory = tmp_path / "model"
    write_model(directory, "v1")
    settings = hub_settings(tmp_path, mosquitto.url, model=directory, model_poll_s=3600)
    hub = Hub(settings, loader=load_fake)
    hub.start()
    edge = Edge(mosquitto, "n1")
    try:
        assert hub.wait_connected(10)
        edge.send(0)
        edge.send(1)
        wait_for(lambda: hub.counters.get("windows") == 1, what="a window")
        assert hub.engine.version == "v1"
        write_model(directory, "v2")
        edge.raw("nurserycry/hub/command", b"reload-model")
        wait_for(lambda: hub.counters.get("model_reloads") == 1, what="reload")
        edge.send(2)
        wait_for(lambda: hub.engine.version == "v2", what="swap")
        write_model(directory, "broken")
        edge.raw("nurserycry/hub/command", b"reload-model")
        wait_for(lambda: hub.counters.get("model_reload_failures") == 1, what="failed reload")
        edge.send(3)
        wait_for(lambda: hub.counters.get("windows") == 3, what="scoring goes on")
        assert hub.engine.version == "v2"
    finally:
        edge.stop()
        hub.stop()


def test_report_draws_a_night(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    history = History(db)
    windows = []
    for i in range(2000):  # ~17 minutes, one crying bout
        crying = 600 <= i < 900
        windows.append(
            WindowRecord(
                "n1" if i % 2 else "n2",
                T0 + i * 0.5,
                0.9 if crying else 0.1,
                "crying" if crying else "quiet",
                -30.0 if crying else -70.0,
                crying,
                "v1",
            )
        )
    event = EpisodeEvent(
        device="n1",
        event="ended",
        episode_id="n1-1",
        started_at=T0 + 300,
        alert_at=T0 + 301,
        ended_at=T0 + 450,
        duration_s=150.0,
        peak_probability=0.9,
    )
    history.add(windows, [EpisodeRecord(event, "v1")])
    history.add(windows[:10], [EpisodeRecord(event, "v1")])  # replayed: not doubled
    assert history.crying_seconds("n1", T0, T0 + 3600) == 150.0
    assert history.crying_seconds("n2", T0, T0 + 3600) == 0.0
    history.close()
    out = render_timeline(db, tmp_path / "night.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
    assert report_main(["--db", str(db), "--nursery", "n1", "--out", str(tmp_path / "n1.png")]) == 0
    assert (tmp_path / "n1.png").is_file()
    assert report_main(["--db", str(tmp_path / "missing.sqlite"), "--out", "x.png"]) == 1
