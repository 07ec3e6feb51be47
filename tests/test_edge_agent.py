"""The edge agent end to end against a real mosquitto, run as ``nurserycry edge``."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from nurserycry.shared.frontend import DEFAULT_PARAMS, compute_features
from nurserycry.shared.schemas import AudioFeatures

from tests.servers import Mosquitto
from tests.test_edge_helpers import (
    Collector,
    durable_broker,
    edge_cmd,
    edge_env,
    start_edge,
    tone_noise,
    unique_in_order,
    wait_exit,
    write_wav,
)

pytestmark = pytest.mark.servers


def _check_stream(msgs: list[AudioFeatures], audio: np.ndarray, rate: int = 16_000) -> None:
    """Consecutive seq and frame_index from 0, frames equal to the one-shot frontend."""
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    assert len({m.stream for m in msgs}) == 1
    index = 0
    for m in msgs:
        assert m.frame_index == index
        assert m.t0 == pytest.approx(msgs[0].t0 + index * 0.02, abs=1e-6)
        assert m.frontend == DEFAULT_PARAMS.hash
        index += m.n_frames
    expected = compute_features(audio, rate)
    mel = np.concatenate([m.mel.to_numpy() for m in msgs])
    np.testing.assert_array_equal(mel, expected.mel)
    np.testing.assert_array_equal(
        np.concatenate([m.level.to_numpy() for m in msgs]), expected.level
    )


def _spool_query(path: Path, sql: str) -> int:
    """One integer from the agent's spool (0 while it does not exist yet)."""
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path, timeout=10)) as db:
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('messages', 'meta')")
        if tables.fetchone()[0] < 2:  # created but not all tables yet
            return 0
        row = db.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _spool_depth(path: Path) -> int:
    return _spool_query(path, "SELECT COUNT(*) FROM messages")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_file_streams_every_frame_once_in_order(
    mosquitto: Mosquitto, tmp_path: Path, protocol: str
) -> None:
    audio = tone_noise(7.3)
    wav = write_wav(tmp_path / "night.wav", audio)
    sub = Collector(mosquitto, "nursery-1")
    try:
        cmd = edge_cmd(mosquitto, "nursery-1", tmp_path / "s.spool", "--file", str(wav), "--fast")
        cmd += ["--start-time", "1800000000", "--mqtt-protocol", protocol]
        proc = start_edge(cmd, tmp_path / "edge.log")
        assert wait_exit(proc, 60) == 0, (tmp_path / "edge.log").read_text()
        # exit 0 means every message was acknowledged: all of them reached the subscriber
        n_frames = compute_features(audio).n_frames
        assert sub.wait(lambda s: sum(m.n_frames for m in s.features) >= n_frames, 10)
        assert sub.wait(lambda s: "offline" in s.availability, 10)
        msgs = list(sub.features)
        assert len(msgs) == len({m.seq for m in msgs})  # once: no outage, no redelivery
        _check_stream(msgs, audio)
        assert msgs[0].t0 == 1_800_000_000.0
        assert sub.availability[:1] == ["online"] and sub.availability[-1] == "offline"
        assert sub.status and sub.status[-1].frames_captured == n_frames
        assert sub.status[-1].messages_sent == len(msgs) and sub.status[-1].source == "file"
        assert _spool_depth(tmp_path / "s.spool") == 0
    finally:
        sub.stop()


def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path) -> None:
    broker = durable_broker(tmp_path / "mq")
    broker.start()
    audio = tone_noise(8.0, seed=3)
    wav = write_wav(tmp_path / "a.wav", audio)
    sub = Collector(broker, "nursery-2", persistent=True)
    proc = None
    try:
        cmd = edge_cmd(broker, "nursery-2", tmp_path / "s.spool", "--file", str(wav))
        proc = start_edge(cmd, tmp_path / "edge.log")  # real-time pace
        assert sub.wait(lambda s: len(s.features) >= 3, 20)
        broker.stop()
        # the agent keeps capturing into the spool while the broker is away
        assert proc.poll() is None
        proc_spool = tmp_path / "s.spool"
        for _ in range(100):
            if _spool_depth(proc_spool) >= 3:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert _spool_depth(proc_spool) >= 3
        broker.start()
        assert wait_exit(proc, 60) == 0, (tmp_path / "edge.log").read_text()
        total = compute_features(audio).n_frames
        assert sub.wait(lambda s: sum(m.n_frames for m in unique_in_order(s.features)) >= total)
        _check_stream(unique_in_order(sub.features), audio)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.stop()
        broker.stop()


def test_sigkill_while_connected_then_restart_loses_nothing(tmp_path: Path) -> None:
    """Killed mid-stream with messages in flight: they are resent (QoS 1), none lost.

    Write-through (``--spool-sync-s 0``): every message is on disk before it is sent.
    (The write-behind default is covered by the full-spool test below.)"""
    broker = durable_broker(tmp_path / "mq")
    broker.start()
    audio = tone_noise(6.0, seed=23)
    wav = write_wav(tmp_path / "a.wav", audio)
    spool = tmp_path / "s.spool"
    sub = Collector(broker, "nursery-10")
    first = start_edge(
        edge_cmd(broker, "nursery-10", spool, "--file", str(wav), "--spool-sync-s", "0"),
        tmp_path / "1.log",
    )
    try:
        assert sub.wait(lambda s: len(s.features) >= 4, 20)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        before = max(sub.seqs())
        cmd = edge_cmd(
            broker, "nursery-10", spool, "--file", str(wav), "--fast", "--spool-sync-s", "0"
        )
        second = start_edge(cmd, tmp_path / "2.log")
        assert wait_exit(second, 60) == 0, (tmp_path / "2.log").read_text()
        per_run = -(-compute_features(audio).n_frames // 25)
        assert sub.wait(lambda s: max(s.seqs()) >= before + per_run, 20)
        seqs = sub.seqs()
        # no hole: whatever was in flight at the kill was sent again (under its stream)
        assert seqs == set(range(max(seqs) + 1)) and max(seqs) >= before + per_run
        # a killed run's numbering cannot be proven intact: the restart is a new stream
        first_stream = sub.features[0].stream
        killed = {m.seq for m in sub.features if m.stream == first_stream}
        assert killed == set(range(len(killed))) and len(killed) >= before + 1
        assert len({m.stream for m in sub.features}) == 2
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        sub.stop()
        broker.stop()


@pytest.mark.parametrize("sync_s", ["0", "1"])
def test_sigkill_with_a_full_spool_then_restart_loses_nothing(tmp_path: Path, sync_s: str) -> None:
    """Everything on disk at the SIGKILL arrives after the restart; no seq is reused.

    Write-through (``--spool-sync-s 0``): that is every message, so the numbering is
    contiguous. Write-behind (1 s): the last second was only in memory and is lost
    with the process. The spooled messages keep the killed run's stream; the restart
    numbers in a new one (it cannot know what the killed run numbered in memory).
    """
    broker = durable_broker(tmp_path / "mq")
    audio = tone_noise(3.0, seed=5)
    wav = write_wav(tmp_path / "a.wav", audio)
    spool = tmp_path / "s.spool"
    # broker not running yet: everything goes to the spool
    cmd = edge_cmd(broker, "nursery-3", spool, "--file", str(wav), "--spool-sync-s", sync_s)
    first = start_edge(cmd, tmp_path / "1.log")
    try:
        for _ in range(200):
            if _spool_depth(spool) >= 4:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        spooled = _spool_depth(spool)
        assert spooled >= 4
        broker.start()
        sub = Collector(broker, "nursery-3")
        try:
            cmd = edge_cmd(broker, "nursery-3", spool, "--file", str(wav), "--fast")
            second = start_edge(cmd, tmp_path / "2.log")
            assert wait_exit(second, 60) == 0, (tmp_path / "2.log").read_text()
            per_run = -(-compute_features(audio).n_frames // 25)
            assert sub.wait(lambda s: len(s.seqs()) >= spooled + per_run)
            msgs = unique_in_order(sub.features)
            # the killed run's spooled messages, then the second run, in a new stream
            assert [m.seq for m in msgs[:spooled]] == list(range(spooled))
            restart = msgs[spooled].seq
            assert [m.seq for m in msgs[spooled:]] == list(range(restart, restart + per_run))
            assert restart == spooled if sync_s == "0" else restart >= spooled
            assert len({m.stream for m in msgs[:spooled]}) == 1
            assert len({m.stream for m in msgs[spooled:]}) == 1
            assert msgs[0].stream != msgs[spooled].stream
            first_run = msgs[:spooled]
            mel = np.concatenate([m.mel.to_numpy() for m in first_run])
            np.testing.assert_array_equal(mel, compute_features(audio).mel[: mel.shape[0]])
            second_run = msgs[spooled:]
            assert second_run[0].frame_index > first_run[-1].frame_index + first_run[-1].n_frames
            mel2 = np.concatenate([m.mel.to_numpy() for m in second_run])
            np.testing.assert_array_equal(mel2, compute_features(audio).mel)
            assert _spool_depth(spool) == 0
        finally:
            sub.stop()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        broker.stop()


def test_stdin_pcm_at_another_rate(mosquitto: Mosquitto, tmp_path: Path) -> None:
    audio = tone_noise(2.5, rate=22_050, seed=7)
    sub = Collector(mosquitto, "nursery-4")
    try:
        cmd = edge_cmd(mosquitto, "nursery-4", tmp_path / "s.spool", "--stdin", "--rate", "22050")
        out = subprocess.run(
            cmd,
            input=audio.astype("<i2").tobytes(),
            capture_output=True,
            timeout=60,
            env=edge_env(),
        )
        assert out.returncode == 0, out.stderr.decode()
        total = compute_features(audio, 22_050).n_frames
        assert sub.wait(lambda s: sum(m.n_frames for m in s.features) >= total, 10)
        msgs = unique_in_order(sub.features)
        _check_stream(msgs, audio, 22_050)
        assert all(m.sample_rate_in == 22_050 for m in msgs)
    finally:
        sub.stop()


def test_sigterm_flushes_and_says_offline(mosquitto: Mosquitto, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "long.wav", tone_noise(60.0))
    sub = Collector(mosquitto, "nursery-5")
    try:
        cmd = edge_cmd(mosquitto, "nursery-5", tmp_path / "s.spool", "--file", str(wav))
        proc = start_edge([*cmd, "--status-interval-s", "0.5"], tmp_path / "edge.log")
        assert sub.wait(lambda s: len(s.features) >= 2 and len(s.status) >= 2, 20)
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc, 20) == 0, (tmp_path / "edge.log").read_text()
        assert sub.wait(lambda s: s.availability[-1:] == ["offline"], 10)
        assert _spool_depth(tmp_path / "s.spool") == 0  # flushed
        msgs = unique_in_order(sub.features)
        assert [m.seq for m in msgs] == list(range(len(msgs)))
        assert sub.status[-1].uptime_s > 0 and sub.status[-1].overruns == 0
    finally:
        sub.stop()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--nursery", "Bad Name"], "NURSERYCRY_EDGE_NURSERY"),
        (["--nursery", "hub"], "NURSERYCRY_EDGE_NURSERY"),  # the hub's topic level
        (["--nursery", "n1", "--broker", "http://x"], "--broker"),
        (["--nursery", "n1", "--file", "/nonexistent.wav"], "audio file not found"),
        (["--nursery", "n1", "--stdin", "--rate", "5"], "NURSERYCRY_EDGE_RATE"),
        ([], "nursery"),
    ],
)
def test_bad_config_exits_nonzero_with_a_readable_message(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    cmd = [sys.executable, "-m", "nurserycry", "edge", "--spool", str(tmp_path / "s"), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=edge_env())
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr and "Traceback" not in out.stderr


def test_wire_bytes_per_second_of_audio_within_budget(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Everything the agent sends (MQTT framing included) per second of audio: <= 4 KB."""
    from bench.edge_measure import CountingRelay

    seconds = 20.0
    wav = write_wav(tmp_path / "a.wav", tone_noise(seconds, seed=9))
    relay = CountingRelay("127.0.0.1", mosquitto.port)
    try:
        cmd = edge_cmd(mosquitto, "nursery-6", tmp_path / "s.spool", "--file", str(wav), "--fast")
        cmd[cmd.index("--broker") + 1] = f"mqtt://127.0.0.1:{relay.port}"
        proc = start_edge(cmd, tmp_path / "edge.log")
        assert wait_exit(proc, 60) == 0, (tmp_path / "edge.log").read_text()
        per_second = relay.up / seconds
    finally:
        relay.close()
    print(f"wire bytes per second of audio: {per_second:.0f}")
    assert 2000 < per_second <= 4000, per_second


def test_full_spool_drops_the_oldest_and_reports_it(tmp_path: Path) -> None:
    broker = durable_broker(tmp_path / "mq")
    broker.start()
    sub = Collector(broker, "nursery-8", persistent=True)  # a session the broker keeps
    broker.stop()
    audio = tone_noise(6.0, seed=17)
    wav = write_wav(tmp_path / "a.wav", audio)
    spool = tmp_path / "s.spool"
    cmd = edge_cmd(broker, "nursery-8", spool, "--file", str(wav), "--fast")
    proc = start_edge([*cmd, "--spool-max-mb", "0.01"], tmp_path / "edge.log")  # ~7 messages
    try:
        total = -(-compute_features(audio).n_frames // 25)
        for _ in range(400):  # until the whole file went through the (small) spool
            if _spool_query(spool, "SELECT value FROM meta WHERE key = 'next_seq'") == total:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        kept = _spool_depth(spool)
        assert 0 < kept < total
        broker.start()
        assert wait_exit(proc, 60) == 0, (tmp_path / "edge.log").read_text()
        assert sub.wait(lambda s: total - 1 in s.seqs() and bool(s.status), 20)
        seqs = [m.seq for m in unique_in_order(sub.features)]
        # The newest survive, without a hole. How many exactly is not read from the spool
        # above: with the write-behind spool a few may still have been in memory then.
        first = total - len(seqs)
        assert 0 < len(seqs) < total and seqs == list(range(first, total)), (kept, seqs)
        assert sub.status[-1].spool_dropped == first
        assert "dropped the" in (tmp_path / "edge.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.stop()
        broker.stop()


def test_unusable_spool_or_audio_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"RIFF nonsense")
    for args in (["--stdin", "--spool", "/proc/none/s.spool"], ["--file", str(bad)]):
        cmd = [sys.executable, "-m", "nurserycry", "edge", "--nursery", "n1", *args]
        if "--spool" not in args:
            cmd += ["--spool", str(tmp_path / "s.spool")]
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=60,
            env=edge_env(),
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 1, out.stderr
        assert "cannot start" in out.stderr and "Traceback" not in out.stderr


def test_sigterm_while_stdin_is_still_open(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """arecord still writing (the pipe open): SIGTERM ends the agent cleanly, exit 0."""
    sub = Collector(mosquitto, "nursery-9")
    try:
        cmd = edge_cmd(mosquitto, "nursery-9", tmp_path / "s.spool", "--stdin")
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=edge_env())
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(tone_noise(1.0).astype("<i2").tobytes())
        proc.stdin.flush()
        assert sub.wait(lambda s: len(s.features) >= 1, 20)
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc, 20) == 0
        err = proc.stderr.read().decode()
        assert "Fatal Python error" not in err and "Traceback" not in err, err
        proc.stdin.close()
        proc.stderr.close()
        assert sub.wait(lambda s: s.availability[-1:] == ["offline"], 10)
    finally:
        sub.stop()
