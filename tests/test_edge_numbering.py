"""An edge killed while its disk was full never reuses a number (the hub would drop the
new audio as duplicates of the old: a blind nursery until the numbers pass the old ones).

The real edge agent (a subprocess) and the hub (in-process, real MQTT); the disk is a
real 2 MB tmpfs filled up (needs root: the test skips without it, fails under CI).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from nurserycry.hub.service import Hub
from nurserycry.shared.frontend import compute_features

from tests import test_edge_helpers as agent
from tests.servers import Mosquitto, ServerMissing
from tests.test_hub_support import FakeModel, hub_settings, metadata, wait_for
from tests.test_storage_faults import FullDisk, full_disk  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.servers, pytest.mark.slow, pytest.mark.timeout(300)]
RATE = 16_000
MESSAGES_PER_S = 2  # 25 frames a message at 50 frames/s
WINDOW, HOP = metadata().window_frames, metadata().hop_frames  # the fake model's


def _feed(proc: subprocess.Popen[bytes], seconds: float, seed: int) -> None:
    assert proc.stdin is not None
    proc.stdin.write(agent.tone_noise(seconds, RATE, seed).tobytes())
    proc.stdin.flush()


def test_a_kill_while_the_disk_is_full_then_a_restart_is_heard_not_dropped(
    mosquitto: Mosquitto,
    full_disk: FullDisk,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The disk fills while the edge streams; it numbers 700 s of audio in memory (far
    past the last numbering its spool could write: the 1200 it reserved then), is killed,
    and restarts with space back and its clock an hour behind (a Pi has no real-time
    clock: after a power cut it boots with the time saved before, until NTP answers).
    Every window of the new audio must be used. Before: the restart numbered from the
    stale reservation again, and the hub dropped its audio as duplicates of the old
    (0 windows used, 20 messages dropped)."""
    if not full_disk.real:
        raise ServerMissing("a real full disk needs a tmpfs mount (run as root)")
    hub = Hub(hub_settings(tmp_path, mosquitto.url, detections=False), FakeModel())
    hub.start()
    assert hub.wait_connected(10)
    spool = full_disk.folder / "edge.spool"
    began = time.time()
    cmd = agent.edge_cmd(mosquitto, "full", spool, "--stdin", "--rate", str(RATE))
    first = agent.start_edge(cmd, tmp_path / "edge1.log", stdin=subprocess.PIPE)
    messages = hub.counters.get

    def all_in(n: int) -> bool:
        return hub.backlog == 0 and messages("messages") >= n

    try:
        _feed(first, 2.0, seed=1)
        wait_for(lambda: all_in(3), 30, "the first messages")
        full_disk.fill()
        disk = os.statvfs(full_disk.folder)
        assert disk.f_bavail * disk.f_frsize < 65536  # full: the spool cannot write
        _feed(first, 700.0, seed=2)
        sent = 702 * MESSAGES_PER_S - 2  # the last ones wait for more audio
        wait_for(lambda: all_in(sent), 180, "700 s of audio from memory")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert first.stdin is not None
        first.stdin.close()
        full_disk.free()
        before = messages("windows"), messages("duplicates")
        audio = agent.tone_noise(10.0, RATE, seed=3)
        wav = agent.write_wav(tmp_path / "night.wav", audio)
        cmd = agent.edge_cmd(mosquitto, "full", spool, "--file", str(wav), "--fast")
        cmd += ["--start-time", f"{began - 3600:.3f}"]
        second = agent.start_edge(cmd, tmp_path / "edge2.log")
        assert agent.wait_exit(second, 60) == 0, (tmp_path / "edge2.log").read_text()[-3000:]
        wait_for(lambda: all_in(sent + 10 * MESSAGES_PER_S), 30, "the restart's messages")
        time.sleep(0.5)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if first.stdin is not None:
            first.stdin.close()
        hub.stop()
    used = messages("windows") - before[0]
    dropped = messages("duplicates") - before[1]
    figures = f"after the restart: {used} windows used, {dropped} dropped as duplicates"
    assert dropped == 0, figures
    frames = compute_features(audio, RATE).n_frames
    assert used == (frames - WINDOW) // HOP + 1, figures  # every window of the new audio


def _on_disk(spool: Path) -> int:
    """Messages in the killed agent's spool file."""
    if not spool.exists():
        return 0
    with closing(sqlite3.connect(spool, timeout=10)) as db:
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'messages'")
        if not tables.fetchone()[0]:
            return 0
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def _windows(frames: int) -> int:
    return max(0, (frames - WINDOW) // HOP + 1)


def test_a_restart_drains_the_killed_runs_backlog_then_is_heard_in_its_new_stream(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The broker goes away, the edge spools to disk and is killed; restarted (the broker
    back), it sends the killed run's backlog in its old stream, then new audio in a new
    stream. The hub's old run is still in use while the backlog drains, and the new one
    takes over right after it: every window of both is used, none given up."""
    hub = Hub(hub_settings(tmp_path, mosquitto.url, detections=False), FakeModel())
    hub.start()
    assert hub.wait_connected(10)
    seen = agent.Collector(mosquitto, "drain")
    spool = tmp_path / "edge.spool"
    cmd = agent.edge_cmd(mosquitto, "drain", spool, "--stdin", "--rate", str(RATE))
    first = agent.start_edge(cmd, tmp_path / "edge1.log", stdin=subprocess.PIPE)
    try:
        _feed(first, 4.0, seed=4)
        wait_for(lambda: hub.backlog == 0 and hub.counters.get("messages") >= 7, 30, "live")
        mosquitto.stop()
        _feed(first, 6.0, seed=5)
        wait_for(lambda: _on_disk(spool) >= 11, 30, "the backlog on disk")
        time.sleep(1.5)  # what is still held in memory reaches the disk too (write-behind)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert first.stdin is not None
        first.stdin.close()
        backlog = _on_disk(spool)
        mosquitto.start()
        wait_for(lambda: hub.wait_connected(0.1) and seen.link.wait_connected(0.1), 20, "back")
        audio = agent.tone_noise(10.0, RATE, seed=6)
        cmd = agent.edge_cmd(
            mosquitto, "drain", spool, "--file", str(agent.write_wav(tmp_path / "b.wav", audio))
        )
        second = agent.start_edge([*cmd, "--fast"], tmp_path / "edge2.log")
        assert agent.wait_exit(second, 60) == 0, (tmp_path / "edge2.log").read_text()[-3000:]
        new_frames = compute_features(audio, RATE).n_frames

        def restart_heard(s: agent.Collector) -> bool:
            newer = [m for m in s.features if m.stream != s.features[0].stream]
            return sum(m.n_frames for m in newer) >= new_frames

        wait_for(lambda: seen.wait(restart_heard, 0) and hub.backlog == 0, 30, "the restart")
        time.sleep(0.5)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        seen.stop()
        hub.stop()
    msgs = agent.unique_in_order(seen.features)
    streams = list(dict.fromkeys(m.stream for m in msgs))
    assert len(streams) == 2, streams  # the killed run's, then the restart's
    old = [m for m in msgs if m.stream == streams[0]]
    new = [m for m in msgs if m.stream == streams[1]]
    assert len(old) >= 7 + backlog - 1  # the backlog arrived (a live one may be in it)
    assert sum(m.n_frames for m in new) == new_frames
    c = hub.counters
    expected = _windows(sum(m.n_frames for m in old)) + _windows(new_frames)
    assert c.get("windows") == expected, c.snapshot()
    assert c.get("other_stream") == c.get("gaps") == c.get("out_of_order") == 0
    assert hub.ingest.stream_in_use(agent.nursery_name("drain")) == streams[1]
