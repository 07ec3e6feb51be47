"""End to end: from a cry's onset in a streamed recording to the crying alert on MQTT.

    python -m bench.latency --data ../shared/data [--nurseries 8] [--cries 2]

Each simulated nursery streams, in real time, real recordings from the data
set: a non-cry clip, a cry, a long non-cry stretch, another cry ... through an
in-process edge agent (shared frontend, spool, QoS 1) -> mosquitto -> the hub
with the shipped model. A subscriber notes when each ``started`` episode
event arrives. The onset of each cry is where its level first reaches 10 dB
below its loud part. Reported per cry: stream latency (``alert_at`` minus
onset, from capture time: what the model and the episode rule need) and wall
latency (arrival of the event minus the wall time the onset was captured:
adds the pipeline). Median and 95th percentile; cries never alerted are
counted as missed (they are also not in the percentiles).
"""

from __future__ import annotations

import argparse
import csv
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from bench.common import write
from nurserycry.edge.agent import EdgeAgent
from nurserycry.edge.settings import EdgeSettings
from nurserycry.edge.sources import BlocksSource
from nurserycry.hub.service import Hub
from nurserycry.hub.settings import HubSettings
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.frontend import resample
from nurserycry.shared.mqtt import MqttLink
from nurserycry.shared.schemas import EpisodeEvent

from tests.servers import Mosquitto

SR = 16_000


def load(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate)


def onset(cry: np.ndarray) -> float:
    hop = SR // 50
    rms = np.sqrt(np.mean(cry[: cry.size // hop * hop].reshape(-1, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    loud = np.percentile(db, 90)
    return float(np.argmax(db >= loud - 10) * hop / SR)


def scenes(
    data: Path, nurseries: int, cries: int, seed: int
) -> list[tuple[np.ndarray, list[float]]]:
    rows = list(csv.DictReader((data / "manifest.csv").open()))
    rng = np.random.default_rng(seed)
    cry_rows = [r for r in rows if r["label"] == "crying"]
    neg_rows = [r for r in rows if r["label"] == "not_crying" and float(r["duration_s"]) >= 4]
    out = []
    for _ in range(nurseries):
        parts, onsets, t = [], [], 0.0
        for k in range(cries):
            gap = 8.0 if k == 0 else 16.0
            while gap >= 0.1:  # non-cry audio, several clips if need be
                neg = load(data / rng.choice(neg_rows)["path"])[: int(gap * SR)]
                neg = neg * (10 ** (rng.uniform(-15, 0) / 20)) / max(1e-3, np.abs(neg).max())
                parts.append(neg)
                t += neg.size / SR
                gap -= neg.size / SR
            cry = load(data / rng.choice(cry_rows)["path"])
            cry = cry * (10 ** (rng.uniform(-15, 0) / 20)) / max(1e-3, np.abs(cry).max())
            onsets.append(t + onset(cry))
            parts.append(cry)
            t += cry.size / SR
        parts.append(np.zeros(8 * SR, np.float32))
        out.append((np.concatenate(parts).astype(np.float32), onsets))
    return out


def run(data: Path, nurseries: int, cries: int, seed: int) -> dict[str, Any]:
    streams = scenes(data, nurseries, cries, seed)
    events: queue.Queue[tuple[float, EpisodeEvent]] = queue.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mqtt")
        broker.start()
        hub = Hub(
            HubSettings.load(
                None,
                mqtt={"broker": broker.url},
                client_id="bench-hub",
                history={"db": Path(tmp) / "h.sqlite"},
                influx={"spool": Path(tmp) / "s.sqlite"},
            )
        )
        hub.start()
        hub.wait_connected(10)
        sub = MqttLink(MqttSettings(broker=broker.url), "bench-sub")
        sub.subscribe(
            "nurserycry/+/event",
            lambda m: events.put((time.time(), EpisodeEvent.decode(m.payload))),
        )
        sub.start()
        sub.wait_connected(10)
        agents, threads = [], []
        for i, (audio, _) in enumerate(streams):
            settings = EdgeSettings.load(
                None,
                nursery=f"n{i}",
                mqtt={"broker": broker.url},
                spool=Path(tmp) / f"spool{i}.sqlite",
            )
            blocks = (audio[p : p + 1600] for p in range(0, audio.size, 1600))
            agent = EdgeAgent(settings, BlocksSource(blocks, SR, realtime=True))
            agents.append(agent)
            threads.append(threading.Thread(target=agent.run, daemon=True))
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=max(a.size for a, _ in streams) / SR + 60)
        time.sleep(2.0)
        sub.stop()
        hub.stop()
        broker.stop()
    started = [(w, e) for w, e in iter_queue(events) if e.event == "started"]
    stream_lat, wall_lat, missed = [], [], 0
    for i, (_, onsets) in enumerate(streams):
        start = agents[i].source.start_time  # wall time of sample 0, set when capture began
        assert start is not None
        for on in onsets:
            t_on = start + on
            hits = [
                (w, e)
                for w, e in started
                if e.device == f"n{i}" and t_on - 1.5 <= e.alert_at <= t_on + 10
            ]
            if not hits:
                missed += 1
                continue
            w, e = min(hits, key=lambda h: h[1].alert_at)
            stream_lat.append(e.alert_at - t_on)
            wall_lat.append(w - t_on)
    false_alerts = len(started) - len(stream_lat)

    def pct(xs: list[float], q: float) -> float | None:
        return float(np.percentile(xs, q)) if xs else None

    return {
        "nurseries": nurseries,
        "cries": nurseries * cries,
        "alerted": len(stream_lat),
        "missed": missed,
        "other_alerts": false_alerts,
        "stream_latency_s": {"median": pct(stream_lat, 50), "p95": pct(stream_lat, 95)},
        "wall_latency_s": {"median": pct(wall_lat, 50), "p95": pct(wall_lat, 95)},
        "stream_latencies": [round(x, 3) for x in stream_lat],
    }


def iter_queue(q: queue.Queue[tuple[float, EpisodeEvent]]) -> list[tuple[float, EpisodeEvent]]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--nurseries", type=int, default=8)
    parser.add_argument("--cries", type=int, default=2, help="per nursery")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write("latency", run(args.data, args.nurseries, args.cries, args.seed))


if __name__ == "__main__":
    main()
