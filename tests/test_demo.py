"""``nurserycry demo``: the whole thing as a subprocess, and its parts in-process."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from nurserycry.demo.broker import EmbeddedBroker
from nurserycry.demo.cli import choose_source
from nurserycry.demo.scene import CRY_LABEL, SCENE_LABEL, generate_scene
from nurserycry.demo.settings import DemoSettings
from nurserycry.demo.view import Board, render, summary_line
from nurserycry.shared.errors import BrokerStartError, ConfigError
from nurserycry.shared.frontend import compute_features, decode_db
from nurserycry.shared.schemas import EpisodeEvent

SUMMARY = re.compile(
    r"^nursery demo: (\d+) episodes?: (\d\d):(\d\d):(\d\d)-(\d\d):(\d\d):(\d\d) "
    r"\((\d+\.\d) s, peak (\d\.\d\d)",
    re.M,
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURSERYCRY_")}
    env["PYTHONWARNINGS"] = "error::ResourceWarning"
    return env


def _demo(args: list[str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nurserycry", "demo", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- end to end -------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_demo_finds_the_cry_in_the_generated_scene(tmp_path: Path) -> None:
    png = tmp_path / "night.png"
    out = _demo(
        ["--source", "scene", "--fast", "--duration", "60", "--timeline", str(png)], tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert SCENE_LABEL in out.stderr  # the plain view says the audio is generated
    assert "ahead of the hub" not in out.stderr  # played fast, the scene ends now
    match = SUMMARY.search(out.stdout)
    assert match, out.stdout + out.stderr[-3000:]
    assert int(match.group(1)) == 1
    h1, m1, s1, h2, m2, s2 = (int(g) for g in match.groups()[1:7])
    start, end = h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2
    cry = next(s for s in generate_scene().segments if s.label == CRY_LABEL)
    assert cry.start_s - 2 <= start <= cry.start_s + 3
    assert cry.end_s - 3 <= end <= cry.end_s + 6
    assert float(match.group(9)) >= 0.6
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"timeline: {png}" in out.stdout


@pytest.mark.timeout(90)
def test_ctrl_c_stops_everything_cleanly_and_still_summarises(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurserycry", "demo", "--source", "scene", "--no-timeline"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    scoring = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "demo: quiet" in line or "demo: other" in line:  # the hub is scoring windows
                scoring.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while not scoring.wait(0.2):
            assert proc.poll() is None, "".join(seen[-30:])
        proc.send_signal(signal.SIGINT)
        assert proc.stdout is not None
        stdout = proc.stdout.read()  # until the demo closes it at exit
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == 130, "".join(seen[-30:])
    assert re.search(r"^nursery demo: (no episodes|\d+ episodes?)", stdout, re.M), stdout
    log = "".join(seen)
    assert "stopped by SIGINT" in log
    assert "Traceback" not in log
    history = re.search(r"local history in (\S+)/history\.sqlite", log)
    assert history, log
    assert not Path(history.group(1)).exists()  # the temporary data directory is gone


@pytest.mark.timeout(90)
def test_a_file_is_played_when_given(tmp_path: Path) -> None:
    soundfile = pytest.importorskip("soundfile")
    scene = generate_scene(seed=2)
    wav = tmp_path / "night.wav"
    soundfile.write(str(wav), scene.samples, scene.rate, subtype="PCM_16")
    out = _demo(["--file", str(wav), "--fast", "--no-timeline"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"audio: file {wav} (fast)" in out.stderr
    match = SUMMARY.search(out.stdout)
    assert match and int(match.group(1)) == 1, out.stdout + out.stderr[-3000:]


ASOUNDRC = """
pcm.!default {{
    type asym
    playback.pcm "null"
    capture.pcm {{ type file; file "/dev/null"; infile "{infile}"; format "raw"; slave.pcm "null" }}
}}
"""


@pytest.mark.timeout(60)
def test_the_microphone_is_used_when_one_exists(tmp_path: Path) -> None:
    """An ALSA file-plugin "microphone" as the default input device (no sound card here)."""
    pytest.importorskip("pyaudio")
    raw = tmp_path / "mic.raw"
    raw.write_bytes((generate_scene(seed=1).samples * 32767).astype("<i2").tobytes())
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(infile=raw))
    env = {**_env(), "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "nurserycry", "demo", "--duration", "3", "--no-timeline"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "audio: microphone" in out.stderr
    # this clock-less card delivers faster than real time: overruns, but windows scored
    match = re.search(
        r"^nursery demo: .*\((\d+) windows scored\)|^nursery demo: \d+ episode", out.stdout, re.M
    )
    assert match, out.stdout + out.stderr[-2000:]


@pytest.mark.timeout(60)
def test_duration_bounds_a_real_time_run(tmp_path: Path) -> None:
    out = _demo(["--source", "scene", "--duration", "3", "--no-timeline"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "--duration 3 s reached" in out.stderr
    assert re.search(r"^nursery demo: no episodes \(\d+ windows scored\)$", out.stdout, re.M)
    assert not list(tmp_path.iterdir())  # --no-timeline: nothing written


def test_bad_options_exit_2_with_a_message(tmp_path: Path) -> None:
    out = _demo(["--duration", "-3"], tmp_path)
    assert out.returncode == 2
    assert "duration" in out.stderr and "NURSERYCRY_DEMO_DURATION" in out.stderr
    out = _demo(["--file", str(tmp_path / "missing.wav")], tmp_path)
    assert out.returncode == 2
    assert "not found" in out.stderr
    out = _demo(["--source", "file"], tmp_path)
    assert out.returncode == 2
    assert "--source file needs --file PATH" in out.stderr
    (tmp_path / "not-audio.wav").write_text("not audio")
    out = _demo(["--file", str(tmp_path / "not-audio.wav")], tmp_path)
    assert out.returncode == 1
    assert "cannot start the edge agent: cannot read audio file" in out.stderr
    assert "Traceback" not in out.stderr


# -- parts ---------------------------------------------------------------------------


def test_source_choice() -> None:
    assert choose_source(DemoSettings(), has_microphone=False) == "scene"
    assert choose_source(DemoSettings(), has_microphone=True) == "microphone"
    assert choose_source(DemoSettings(file=Path(__file__)), has_microphone=True) == "file"
    assert choose_source(DemoSettings(source="scene"), has_microphone=True) == "scene"
    with pytest.raises(ConfigError, match="--file"):
        choose_source(DemoSettings(source="file"), has_microphone=False)


def test_scene_is_labelled_deterministic_and_has_a_cry() -> None:
    scene = generate_scene(seed=3)
    assert scene.label == SCENE_LABEL and "generated" in scene.label
    assert np.array_equal(scene.samples, generate_scene(seed=3).samples)
    assert scene.samples.dtype == np.float32 and np.max(np.abs(scene.samples)) <= 1.0
    bounds = [(s.start_s, s.end_s) for s in scene.segments]
    assert bounds[0][0] == 0 and bounds[-1][1] == pytest.approx(scene.duration_s)
    assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(bounds))
    labels = [s.label for s in scene.segments]
    assert labels.count(CRY_LABEL) == 1
    assert {"door", "speech-like babble", "music"} <= set(labels)
    cry = next(s for s in scene.segments if s.crying)
    assert cry.end_s - cry.start_s >= 5
    assert labels[-1] == "quiet"
    # the cry: loud, with its fundamental in 350-600 Hz, and phonations with pauses
    part = scene.samples[int(cry.start_s * scene.rate) : int(cry.end_s * scene.rate)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(part.size)))
    freqs = np.fft.rfftfreq(part.size, 1 / scene.rate)
    band = (freqs > 150) & (freqs < 1000)
    assert 350 <= freqs[band][np.argmax(spectrum[band])] <= 1200  # f0 or its 2nd harmonic
    level = decode_db(compute_features(part).level)
    assert np.median(level) > -25
    assert np.sum(level < np.max(level) - 15) >= 5  # inhalation gaps
    quiet = next(s for s in scene.segments if s.label == "quiet")
    q = scene.samples[int(quiet.start_s * scene.rate) : int(quiet.end_s * scene.rate)]
    assert np.median(decode_db(compute_features(q).level)) < -60


def test_embedded_broker_carries_messages_and_stops(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    port = broker.start()
    got: list[tuple[str, bytes]] = []
    arrived = threading.Event()

    def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
        got.append((msg.topic, bytes(msg.payload)))
        arrived.set()

    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    try:
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.subscribe("nurserycry/+/state", 1)
        assert subscribed.wait(10)
        client.publish("nurserycry/demo/state", b"x", qos=1).wait_for_publish(10)
        assert arrived.wait(10)
        assert got == [("nurserycry/demo/state", b"x")]
        with pytest.raises(BrokerStartError, match="cannot listen"):
            EmbeddedBroker(port=port).start()
    finally:
        client.disconnect()
        client.loop_stop()
        broker.stop()
    assert not any(t.name == "demo-broker" for t in threading.enumerate())
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host="0.0.0.0")


def _window(t: float, p: float, label: str, crying: bool) -> SimpleNamespace:
    return SimpleNamespace(
        nursery="demo", t=t, probability=p, label=label, level_dbfs=-20.0, crying=crying
    )


def _event(kind: str, start: float, end: float | None, peak: float) -> SimpleNamespace:
    event = EpisodeEvent(
        device="demo",
        event=kind,  # type: ignore[arg-type]
        episode_id="demo-1",
        started_at=start,
        alert_at=start + 1.5,
        ended_at=end,
        duration_s=0.0 if end is None else end - start,
        peak_probability=peak,
    )
    return SimpleNamespace(event=event)


def test_board_and_summary_line() -> None:
    t0 = 1_800_000_000.0
    board = Board(window_s=1.0)
    board.update(SimpleNamespace(windows=[_window(t0 + 1, 0.1, "quiet", False)], events=[]))
    assert summary_line(board.rows()[0]) == "nursery demo: no episodes (1 windows scored)"
    board.update(
        SimpleNamespace(
            windows=[_window(t0 + 14, 0.9, "crying", True)],
            events=[_event("started", t0 + 12, None, 0.9)],
        )
    )
    (row,) = board.rows()
    assert row.crying and row.state == "crying" and len(row.episodes) == 1
    assert summary_line(row).endswith("00:00:12-open (0.0 s, peak 0.90)")
    board.update(SimpleNamespace(windows=[], events=[_event("ended", t0 + 12, t0 + 19, 0.97)]))
    assert not board.rows()[0].crying
    assert summary_line(board.rows()[0]) == (
        "nursery demo: 1 episode: 00:00:12-00:00:19 (7.0 s, peak 0.97)"
    )
    lines = board.take_changes()
    assert any("crying episode started at 00:00:12" in line for line in lines)
    assert any("crying episode ended, 7.0 s, peak 0.97" in line for line in lines)
    assert board.take_changes() == []


# -- the live table and the timeline ------------------------------------------------


def _busy_board() -> Board:
    """A long nursery name, an open episode after four finished ones."""
    t0 = 1_800_000_000.0
    board = Board(window_s=1.0)
    window = SimpleNamespace(
        nursery="nursery-twelve", t=t0 + 1, probability=0.1, label="quiet", level_dbfs=-61.0,
        crying=False,
    )  # fmt: skip
    board.update(SimpleNamespace(windows=[window], events=[]))
    for k in range(4):
        start = t0 + 12 + 30 * k
        ended = _event("ended", start, start + 7, 0.97)
        ended.event = ended.event.model_copy(update={"device": "nursery-twelve"})
        board.update(SimpleNamespace(windows=[], events=[ended]))
    crying = SimpleNamespace(**{**vars(window), "t": t0 + 200, "probability": 0.97})
    crying.label, crying.crying, crying.level_dbfs = "crying", True, -20.0
    opened = _event("started", t0 + 199, None, 0.97)
    opened.event = opened.event.model_copy(update={"device": "nursery-twelve"})
    board.update(SimpleNamespace(windows=[crying], events=[opened]))
    return board


@pytest.mark.parametrize("width", [40, 66, 72, 80, 100, 132, 200])
def test_live_table_fits_the_terminal_and_cuts_nothing(width: int) -> None:
    from rich.console import Console

    title = f"NurseryCry demo — audio: {SCENE_LABEL}, 35 s — Ctrl-C to stop"
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    console.print(render(_busy_board(), title, "12/60 s · broker mqtt://127.0.0.1:40000"))
    text = console.export_text()
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), text
    assert "…" not in text, text  # nothing cut with an ellipsis
    flat = " ".join(" ".join(lines).split())
    assert title in flat  # wrapped, whole
    if width < 66:  # narrower than the narrowest layout: its cells wrap (not cut, above)
        return
    row = next(line for line in lines if line.startswith("nursery-twelve"))
    assert "CRYING" in row and "0.97" in row and "-20" in row and "00:03:20" in row, text
    assert " 5" in row  # episodes seen
    if width >= 132:  # room for everything: the full words and the last three episodes
        assert "CRYING (episode)" in row and "cry probability" in text
        assert "00:01:12 7s, 00:01:42 7s, 00:03:19 open" in row, text


def test_timeline_axis_counts_time_like_the_text(tmp_path: Path) -> None:
    from matplotlib import pyplot as plt

    from nurserycry.hub.engine import EpisodeRecord, WindowRecord
    from nurserycry.hub.report import timeline_figure
    from nurserycry.hub.sinks.history import History

    t0 = 1_800_000_000.0  # the scene starts here; the first 1 s window ends at t0 + 1
    windows = [
        WindowRecord("demo", t0 + 1 + 0.5 * i, p, lab, -30.0, lab == "crying", "v1")
        for i in range(70)
        for p, lab in [(0.9, "crying") if 22 <= i < 36 else (0.1, "quiet")]
    ]
    ended = _event("ended", t0 + 12, t0 + 19, 0.97).event
    history = History(tmp_path / "history.sqlite")
    history.add(windows, [EpisodeRecord(ended, "v1")])
    history.close()
    board = Board(window_s=1.0)
    board.update(SimpleNamespace(windows=windows, events=[SimpleNamespace(event=ended)]))
    assert board.origin == t0
    text = summary_line(board.rows()[0], board.origin)
    assert text == "nursery demo: 1 episode: 00:00:12-00:00:19 (7.0 s, peak 0.97)"

    fig = timeline_figure(tmp_path / "history.sqlite", origin=board.origin)
    try:
        ax = fig.axes[0]
        (span,) = [p for p in ax.patches if p.get_width() > 0]  # the episode's shading
        assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx((12, 19))
        label = ax.xaxis.get_major_formatter()
        assert label(12.0, 0) == "00:00:12" and label(19.0, 1) == "00:00:19"  # as in the text
        assert "time since the start" in fig.axes[-2].get_xlabel() + fig.axes[0].get_xlabel()
    finally:
        plt.close(fig)


def test_demo_timeline_uses_the_texts_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nurserycry.demo import cli as demo_cli

    seen: dict[str, object] = {}

    def fake_render(db: Path, out: Path, *args: object, **kwargs: object) -> Path:
        seen.update(kwargs)
        return out

    monkeypatch.setattr(demo_cli, "render_timeline", fake_render)
    board = _busy_board()
    demo_cli._finish(DemoSettings(timeline=tmp_path / "n.png"), board, tmp_path)
    assert seen["origin"] == board.origin
    assert "00:03:19-open" in capsys.readouterr().out  # the text counts from the same origin
