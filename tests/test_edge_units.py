"""Edge agent parts without servers: ring, spool, feature builder, settings."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from nurserycry.edge.features import FeatureBuilder
from nurserycry.edge.ring import Block, Ring
from nurserycry.edge.settings import EdgeSettings
from nurserycry.edge.spool import Spool, StreamState
from nurserycry.shared.durable_queue import DurableQueue
from nurserycry.shared.errors import ConfigError
from nurserycry.shared.frontend import compute_features
from nurserycry.shared.schemas import AudioFeatures

from tests.memory_link import MemoryLink


def _audio(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _decode(items: list[tuple[int, str, bytes]]) -> list[AudioFeatures]:
    return [AudioFeatures.decode(p) for _, _, p in items]


# -- ring -------------------------------------------------------------------
def test_ring_counts_overruns_and_never_blocks_a_live_producer() -> None:
    ring = Ring(capacity=100)
    assert ring.offer(Block(0, np.zeros(60, np.float32), 60))
    assert not ring.offer(Block(60, np.zeros(60, np.float32), 60))  # full: dropped
    assert ring.overruns == 1 and ring.dropped_samples == 60
    got = ring.get(timeout=1)
    assert got is not None and got.pos == 0
    assert ring.offer(Block(120, np.zeros(60, np.float32), 60))


def test_ring_put_waits_for_room_and_close_drains() -> None:
    ring = Ring(capacity=10)
    ring.put(Block(0, np.zeros(10, np.float32), 10))
    done = threading.Event()

    def producer() -> None:
        ring.put(Block(10, np.zeros(10, np.float32), 10))
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.2)  # blocked: no room
    first = ring.get(timeout=1)
    assert done.wait(5) and first is not None and first.pos == 0
    ring.close()
    last = ring.get(timeout=1)
    assert last is not None and last.pos == 10
    assert ring.get(timeout=1) is None and ring.drained and ring.overruns == 0


# -- spool ------------------------------------------------------------------
def test_spool_persists_messages_and_numbering(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    spool = Spool(path, 10_000)
    stream = spool.state.stream
    assert spool.state.next_seq == 0 and spool.depth == 0
    spool.append([(0, "t", b"a"), (1, "t", b"bb")], StreamState(stream, 2, 50, 1.7e9))
    spool.ack([0])
    spool.close()
    again = Spool(path, 10_000)
    assert again.state == StreamState(stream, 2, 50, 1.7e9)
    assert [(m.seq, m.payload) for m in again.peek(-1, 10)] == [(1, b"bb")]
    assert again.depth == 1 and again.size_bytes == 2
    # WAL with synchronous=FULL: committed appends survive a crash
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_spool_write_behind_spares_the_disk_and_never_reuses_a_number(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    spool = Spool(path, 10_000, sync_s=1.0)
    stream = spool.state.stream
    for seq in range(5):
        spool.append([(seq, "t", b"x" * 10)], StreamState(stream, seq + 1, 25 * seq, None))
    assert spool.depth == 5 and spool.disk_depth == 0  # held in memory, published from there
    assert [m.seq for m in spool.peek(1, 10)] == [2, 3, 4]
    assert spool.ack([0, 1, 2]) == 3 and spool.disk_depth == 0  # acked in time: no disk write
    assert spool.sync(older_than=0) == 2 and spool.disk_depth == 2  # unacknowledged: to disk
    spool.append([(5, "t", b"y"), (6, "t", b"z")], StreamState(stream, 7, 175, None))
    # a crash now (no close): 5 and 6 were only in memory; 3 and 4 are on disk
    crashed = Spool(path, 10_000)
    assert [(m.seq, m.payload) for m in crashed.peek(-1, 10)] == [(3, b"x" * 10), (4, b"x" * 10)]
    # 5 and 6 may have reached the hub: (stream, 5) must never be used again
    assert crashed.state.stream != stream and crashed.state.next_seq == 5  # above 3 and 4
    crashed.close()
    spool._disk.close()
    again = Spool(path, 10_000)  # after a clean close: the same stream, exactly
    assert again.state == crashed.state
    again.close()


def test_spool_that_cannot_claim_its_stream_numbers_in_a_new_one(tmp_path: Path) -> None:
    """The disk refuses the first write of a run: the file still says "closed cleanly",
    so a later start will go on with that stream; this run must not number in it."""
    path = tmp_path / "s.spool"
    first = Spool(path, 10_000)
    stream = first.state.stream
    first.append([(0, "t", b"a")], StreamState(stream, 1, 25, None))
    first.close()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DurableQueue, "put", lambda *_a, **_k: False)  # a full disk
        refused = Spool(path, 10_000)
        refused_stream = refused.state.stream
        assert refused_stream != stream and refused.state.next_seq == 1
        refused.append([(1, "t", b"b")], StreamState(refused_stream, 2, 50, None))
        refused._disk.close()  # killed before the disk took a write
    later = Spool(path, 10_000)
    assert later.state.stream == stream and later.state.next_seq == 1  # never used by it
    later.close()


def test_spool_write_through(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool", 10_000, sync_s=0)
    stream = spool.state.stream
    spool.append([(0, "t", b"a")], StreamState(stream, 1, 25, None))
    assert spool.disk_depth == 1
    spool._disk.close()  # a crash: the committed message and numbering survive
    again = Spool(tmp_path / "s.spool", 10_000, sync_s=0)
    assert again.state.next_seq == 1 and [m.seq for m in again.peek(-1, 5)] == [0]
    assert again.state.stream != stream  # a disk refusing might have held more in memory
    again.close()


def test_spool_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool", max_bytes=1000)
    stream = spool.state.stream
    for seq in range(10):
        spool.append([(seq, "t", bytes(300))], StreamState(stream, seq + 1, 0, None))
    assert spool.depth == 3 and spool.dropped == 7
    assert [m.seq for m in spool.peek(-1, 100)] == [7, 8, 9]
    assert spool.ack([2, 7]) == 1  # a dropped one is ignored
    spool.close()
    assert Spool(tmp_path / "s.spool", 1000).dropped == 7


# -- feature builder -----------------------------------------------------------
def _builder(state: StreamState, rate: int = 16_000, **kw: object) -> FeatureBuilder:
    return FeatureBuilder("n1", "nurserycry/n1/features", state, rate=rate, start_time=1.8e9, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_builder_frames_equal_compute_features_for_any_chunking(rate: int) -> None:
    audio = _audio(3.3, rate)
    expected = compute_features(audio, rate)
    b = _builder(StreamState("ab" * 8, 0, 0, None), rate)
    items: list[tuple[int, str, bytes]] = []
    rng = np.random.default_rng(1)
    pos = 0
    while pos < audio.size:
        n = int(rng.integers(1, 5000))
        items += b.push(Block(pos, audio[pos : pos + n], len(audio[pos : pos + n])))
        pos += n
    items += b.finish()
    msgs = _decode(items)
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    assert all(m.n_frames == 25 for m in msgs[:-1]) and 1 <= msgs[-1].n_frames <= 25
    mel = np.concatenate([m.mel.to_numpy() for m in msgs])
    level = np.concatenate([m.level.to_numpy() for m in msgs])
    np.testing.assert_array_equal(mel, expected.mel)
    np.testing.assert_array_equal(level, expected.level)
    for m in msgs:
        assert m.t0 == pytest.approx(1.8e9 + m.frame_index * 0.02, abs=1e-6)
        assert m.sample_rate_in == rate
    assert b.state.next_seq == len(msgs) and b.state.next_frame == expected.n_frames


def test_builder_pcm_blocks_equal_int16_features() -> None:
    pcm = (_audio(1.2) * 32767).astype(np.int16)
    b = _builder(StreamState("ab" * 8, 0, 0, None))
    items = b.push(Block.from_pcm(0, pcm.tobytes())) + b.finish()
    mel = np.concatenate([m.mel.to_numpy() for m in _decode(items)])
    np.testing.assert_array_equal(mel, compute_features(pcm).mel)


def test_builder_marks_an_overrun_as_a_gap() -> None:
    audio = _audio(2.0)
    b = _builder(StreamState("ab" * 8, 0, 0, None))
    items = b.push(Block(0, audio[:16_000], 16_000))
    # 0.5 s dropped by the ring, then audio goes on
    items += b.push(Block(24_000, audio[24_000:], 8_000)) + b.finish()
    msgs = _decode(items)
    first_after = next(m for m in msgs if m.t0 >= 1.8e9 + 1.5 - 1e-6)
    before = [m for m in msgs if m.seq < first_after.seq]
    end_before = before[-1].frame_index + before[-1].n_frames
    assert first_after.frame_index >= end_before + 25  # the lost 0.5 s
    assert first_after.t0 == pytest.approx(1.8e9 + 1.5)
    assert [m.seq for m in msgs] == list(range(len(msgs))) and b.gaps == 1


def test_builder_continues_numbering_after_a_restart() -> None:
    b = _builder(StreamState("ab" * 8, 40, 1000, 1.8e9 - 2.0))
    msgs = _decode(b.push(Block(0, _audio(1.0), 16_000)))
    assert msgs[0].seq == 40 and msgs[0].stream == "ab" * 8
    assert msgs[0].frame_index == 1100  # skipped the 2 s the agent was away


def test_gain_is_applied() -> None:
    audio = _audio(1.0) * 0.1
    quiet = _decode(_builder(StreamState("ab" * 8, 0, 0, None)).push(Block(0, audio, 16_000)))
    loud = _decode(
        _builder(StreamState("ab" * 8, 0, 0, None), gain_db=20.0).push(Block(0, audio, 16_000))
    )
    diff = loud[0].level.to_numpy().astype(int) - quiet[0].level.to_numpy().astype(int)
    assert np.all(np.abs(diff - 40) <= 1)  # +20 dB in 0.5 dB codes


# -- settings -----------------------------------------------------------------
def test_settings_reject_two_sources_and_bad_names(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    with pytest.raises(ConfigError, match="choose one audio source"):
        EdgeSettings.load(nursery="n1", stdin=True, file=wav)
    with pytest.raises(ConfigError, match="NURSERYCRY_EDGE_NURSERY"):
        EdgeSettings.load(nursery="Bad Name")


def test_default_client_id_is_unique_per_host_and_process() -> None:
    """#14.1: two agents for one nursery must not share (and fight over) a client id."""
    import subprocess
    import sys

    code = (
        "from nurserycry.edge.settings import EdgeSettings;"
        "print(EdgeSettings.load(nursery='twin').mqtt_client_id)"
    )
    ids = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(ids) == 2 and all(i.startswith("nurserycry-edge-twin-") for i in ids), ids
    assert EdgeSettings.load(nursery="twin", client_id="fixed").mqtt_client_id == "fixed"


def test_flags_env_and_file_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nurserycry.edge.cli import load_settings, parser
    from nurserycry.shared.settings_model import kind_of, settings_of

    config = tmp_path / "edge.yaml"
    config.write_text("nursery: from-file\nmqtt: {broker: 'mqtt://file:1883', username: f}\n")
    monkeypatch.setenv("NURSERYCRY_EDGE_MQTT__USERNAME", "from-env")
    monkeypatch.setenv("NURSERYCRY_EDGE_GAIN_DB", "6")
    args = parser().parse_args(["--config", str(config), "--broker", "mqtt://flag:1884", "--stdin"])
    s = load_settings(args)
    assert s.nursery == "from-file" and s.mqtt.host == "flag" and s.mqtt.port == 1884
    assert s.mqtt.username == "from-env" and s.gain_db == 6.0
    assert s.stdin and s.rate == 16_000 and s.source_kind == "stdin"
    # every flag names its environment variable, and that variable is a real setting
    help_text = parser().format_help()
    for setting in settings_of(EdgeSettings):
        assert kind_of(EdgeSettings, setting.path) == "leaf"
        assert setting.env.startswith("NURSERYCRY_EDGE_") and setting.env in help_text
        assert all(flag in help_text for flag in setting.flags)


@pytest.mark.parametrize("ppm", [-500.0, 300.0])
def test_builder_follows_a_drifting_card_clock_monotonically(ppm: float) -> None:
    """Blocks stamped by a wall clock the card's sample clock drifts from."""
    b = _builder(StreamState("ab" * 8, 0, 0, None))
    block, seconds = 1600, 200
    items = []
    rng = np.random.default_rng(4)
    zeros = np.zeros(block, np.float32)
    for pos in range(0, seconds * 16_000, block):
        wall = 1.8e9 + pos / 16_000 * (1 + ppm * 1e-6) + rng.uniform(0, 0.005)  # + jitter
        items += b.push(Block(pos, zeros, block, wall))
    msgs = _decode(items)
    t0 = np.array([m.t0 for m in msgs])
    assert np.all(np.diff(t0) > 0.49)
    last = msgs[-1]
    true_t0 = 1.8e9 + last.frame_index * 0.02 * (1 + ppm * 1e-6)
    # the card drifted 60-100 ms from the wall clock; t0 followed it to within 30 ms
    assert abs(ppm * 1e-6 * seconds) > 0.05 and abs(last.t0 - true_t0) < 0.03
    assert [m.frame_index for m in msgs] == [25 * i for i in range(len(msgs))]


# -- sources -------------------------------------------------------------------
def _drain(ring: Ring) -> list[Block]:
    blocks = []
    while (block := ring.get(timeout=10)) is not None:
        blocks.append(block)
    return blocks


def test_file_source_reads_stereo_flac_as_mono_with_its_start_time(tmp_path: Path) -> None:
    import soundfile

    from nurserycry.edge.sources import FileSource

    left = _audio(1.3, 44_100)
    stereo = np.stack([left, -0.5 * left], axis=1)
    soundfile.write(str(tmp_path / "a.flac"), stereo, 44_100, subtype="PCM_16")
    source = FileSource(tmp_path / "a.flac", fast=True, start_time=1.9e9)
    ring = Ring(capacity=10_000)  # smaller than the file: the reader waits, nothing drops
    source.start(ring)
    blocks = _drain(ring)
    source.stop()
    assert source.rate == 44_100 and source.start_time == 1.9e9 and source.finished.is_set()
    assert [b.pos for b in blocks] == list(np.cumsum([0] + [b.n for b in blocks[:-1]]))
    got = np.concatenate([b.samples for b in blocks if isinstance(b.samples, np.ndarray)])
    expected = soundfile.read(str(tmp_path / "a.flac"), dtype="float32")[0].mean(axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert ring.overruns == 0


def test_stdin_source_reassembles_samples_split_across_reads() -> None:
    from nurserycry.edge.sources import StdinSource, pcm_to_float

    pcm = (_audio(0.5) * 32767).astype("<i2").tobytes()

    class Trickle:
        """A pipe that hands out odd-sized pieces (samples split between reads)."""

        def __init__(self, data: bytes) -> None:
            self.data, self.sizes = data, [1, 7, 333, 2, 4096]

        def read(self, n: int) -> bytes:
            size = min(n, self.sizes[len(self.data) % len(self.sizes)])
            out, self.data = self.data[:size], self.data[size:]
            return out

    source = StdinSource(16_000, stream=Trickle(pcm))  # type: ignore[arg-type]
    ring = Ring(capacity=100_000)
    source.start(ring)
    blocks = _drain(ring)
    source.stop()
    got = np.concatenate([b.samples for b in blocks if isinstance(b.samples, np.ndarray)])
    np.testing.assert_array_equal(got, pcm_to_float(pcm))
    assert source.start_time is not None and source.kind == "stdin"


# -- publisher -----------------------------------------------------------------
def test_publisher_window_order_and_delete_after_puback(tmp_path: Path) -> None:
    from nurserycry.edge.publisher import Publisher

    spool = Spool(tmp_path / "s.spool", 10**6)
    stream = spool.state.stream
    spool.append([(s, "t", b"m%d" % s) for s in range(10)], StreamState(stream, 10, 0, None))
    link = MemoryLink(auto_ack=False)  # the test plays the broker's PUBACKs
    pub = Publisher(spool, link, window=4)
    pub.step()
    assert link.published == []  # nothing handed over while disconnected
    link.connect()
    pub.step()
    sent = link.on("t")
    assert sent == [b"m0", b"m1", b"m2", b"m3"] and pub.inflight == 4
    pub.step()
    assert len(link.on("t")) == 4  # the window is full until PUBACKs arrive
    link.ack(2)  # PUBACK for m1 (out of order is fine)
    link.ack(999)  # a PUBACK for something else (a clip, the birth message)
    pub.step()
    assert spool.depth == 9 and [m.seq for m in spool.peek(-1, 20)][:2] == [0, 2]
    assert link.on("t")[4:] == [b"m4"] and pub.sent == 1
    for mid in range(1, 20):
        link.ack(mid)
        pub.step()
    assert spool.depth == 0 and pub.wait_idle(0) and pub.sent == 10
    assert link.on("t") == [b"m%d" % s for s in range(10)]  # in order, once
    spool.close()


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
@pytest.mark.parametrize("told", [True, False])
def test_builder_steps_its_clock_mapping_when_ntp_sets_the_clock(jump: float, told: bool) -> None:
    """#14.7: a Pi booted with a stale clock; NTP steps it an hour at 10 s. Slewing at
    0.1 % would take six weeks; the mapping steps, with a break the hub can see: at once
    when the agent saw NTP synchronise (``told``), else once the error held for 5 s."""
    b = _builder(StreamState("ab" * 8, 0, 0, None))
    block, zeros = 1600, np.zeros(1600, np.float32)
    items = []
    for pos in range(0, 25 * 16_000, block):
        wall = 1.8e9 + pos / 16_000 + (jump if pos >= 10 * 16_000 else 0.0)
        if told and pos == 10 * 16_000:
            b.ntp_synchronised()
        items += b.push(Block(pos, zeros, block, wall))
    msgs = _decode(items)
    split = next(i for i, m in enumerate(msgs) if abs(m.t0 - 1.8e9) > 1000)
    before, after = msgs[:split], msgs[split:]
    stepped_at = 10.0 if told else 15.0
    assert b.clock_steps == 1 and b.clock_offset == pytest.approx(jump, abs=0.05)
    assert after[0].frame_index > before[-1].frame_index + before[-1].n_frames  # a break
    assert after[0].t0 == pytest.approx(1.8e9 + stepped_at + jump, abs=0.6)  # the new clock
    assert all(abs(m.t0 - (1.8e9 + m.frame_index * 0.02)) < 0.1 for m in before)


def test_a_stalled_callback_is_not_taken_for_a_clock_step() -> None:
    """The system stalls 2 s, then the callbacks catch up: slew, no break."""
    b = _builder(StreamState("ab" * 8, 0, 0, None))
    block, zeros = 1600, np.zeros(1600, np.float32)
    items = []
    for pos in range(0, 20 * 16_000, block):
        late = 2.0 if 8 * 16_000 <= pos < 9 * 16_000 else 0.0  # stamped late, then on time
        items += b.push(Block(pos, zeros, block, 1.8e9 + pos / 16_000 + late))
    msgs = _decode(items)
    assert b.clock_steps == 0
    assert [m.frame_index for m in msgs] == [25 * i for i in range(len(msgs))]


@pytest.mark.parametrize(("state", "expected"), [(0, True), (1, True), (5, False), (-1, None)])
def test_clock_synchronisation_is_read_from_the_kernel(
    monkeypatch: pytest.MonkeyPatch, state: int, expected: bool | None
) -> None:
    """adjtimex(2) returns TIME_ERROR (5) while the clock is unsynchronised, -1 if refused."""
    import ctypes

    from nurserycry.edge import clock

    class Libc:
        def adjtimex(self, _buf: object) -> int:
            return state

    monkeypatch.setattr(clock.sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda *_a, **_k: Libc())
    assert clock.clock_synchronised() is expected


def test_a_fast_file_ends_now_so_no_capture_time_is_in_the_future(tmp_path: Path) -> None:
    import time

    import soundfile

    from nurserycry.edge.sources import FileSource

    soundfile.write(str(tmp_path / "a.wav"), _audio(30.0, 16_000), 16_000)
    source = FileSource(tmp_path / "a.wav", fast=True)
    source.start(Ring(capacity=16_000 * 40))
    assert source.finished.wait(10)
    source.stop()
    assert source.start_time is not None
    assert source.start_time + 30.0 == pytest.approx(time.time(), abs=5.0)
