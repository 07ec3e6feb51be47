"""Sharded hubs on a 3-node NATS cluster: aggregate windows/s and alert latency, 1/2/4 hubs.

    python -m bench.cluster --data ../shared/data [--nurseries 300] [--messages 80]
                            [--hubs 1 2 4] [--live 100]

For each hub count H: three nats-server nodes on loopback (compose/cluster's account:
users, the 32-partition mapping, JetStream R3), and H ``nurserycry hub`` processes
(the shipped model, default outputs, local history) owning 32/H partitions each.

* ``drain``: the hubs register their partition sessions and stop; every nursery's
  messages (25 random-coded frames each, as ``bench.hub_throughput``) are published
  into the cluster; then all hubs start at once and drain them. Reported: aggregate
  windows/s from the first window to the last, each hub's CPU, and the broker's own
  CPU (the three nats-server processes) while taking the messages in (publish,
  JetStream R3) and while handing them out (delivery, acks).
* ``live``: then ``--live`` nurseries stream in real time (2 messages/s each) and ten
  of them cry (frames of real cry recordings from ``--data`` that the model scores
  as crying). Alert latency: arrival of the ``started`` event minus the wall time the
  message that completed the onset rule was published (the hub's and broker's part;
  the detection rule's own delay on the capture clock is ``bench.latency``'s).

The machine has 2 cores: nats-server, the hubs and the publisher share them, so the
aggregate is bounded by the cores, and per-core figures are what carries over.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.frontend import DEFAULT_PARAMS, compute_features
from nurserycry.shared.model import CryModel
from nurserycry.shared.mqtt import MqttLink
from nurserycry.shared.schemas import AudioFeatures, EpisodeEvent

from tests.servers import CLUSTER_PASSWORDS, NatsCluster, nurserycry_cluster

FRAMES = 25
T0 = 1.7e9
ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
# compose/cluster/hub.env's reordering (it must outlast the broker's ack_wait of 10 s)
HUB_ENV = {
    k: v
    for k, _, v in (
        line.partition("=")
        for line in (ROOT / "compose/cluster/hub.env").read_text().splitlines()
        if line.startswith("NURSERYCRY_HUB_REORDER_")
    )
}
COUNTERS = ("duplicates", "reordered", "gaps", "out_of_order", "dropped_queue_full")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def broker_cpu(cluster: NatsCluster) -> float:
    return sum(cpu_s(p.pid) for p in cluster.procs if p)


def message(device: str, seq: int, mel: np.ndarray, level: np.ndarray) -> bytes:
    return AudioFeatures.from_arrays(
        mel,
        level,
        device=device,
        stream="0123abcd",
        seq=seq,
        frame_index=seq * FRAMES,
        t0=T0 + seq * FRAMES / DEFAULT_PARAMS.frames_per_second,
        frontend=DEFAULT_PARAMS.hash,
    ).encode()


def cry_frames(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames (a multiple of 25) of the first cry recordings the model scores as crying
    in at least 4 windows of 6: what an edge would send for a real cry."""
    model = CryModel.load()
    rows = [r for r in csv.DictReader((data / "manifest.csv").open()) if r["label"] == "crying"]
    import soundfile

    for row in rows:
        audio, rate = soundfile.read(str(data / row["path"]), dtype="float32", always_2d=True)
        feats = compute_features(audio.mean(axis=1), rate)
        n = feats.n_frames // FRAMES * FRAMES
        if n < 8 * FRAMES:
            continue
        windows = np.stack([feats.mel[i : i + 50] for i in range(0, n - 49, 25)])
        if int((model.predict(windows) >= 0.8).sum()) >= 4:
            return feats.mel[:n], feats.level[:n]
    raise SystemExit(f"no cry recording in {data} that the model scores as crying")


class Hubs:
    """H hub processes; each loads its model, then starts when ``go`` exists."""

    def __init__(self, cluster: NatsCluster, tmp: Path, count: int) -> None:
        self.tmp, self.count = tmp, count
        self.go = tmp / "go"
        size = 32 // count
        self.args = [
            [
                sys.executable,
                "-m",
                "bench.cluster",
                "--hub-process",
                str(tmp / f"hub{h}.jsonl"),
                str(self.go),
                "--broker",
                ",".join(cluster.mqtt_urls[h % 3 :] + cluster.mqtt_urls[: h % 3]),
                "--username",
                "hub",
                "--password",
                CLUSTER_PASSWORDS["hub"],
                "--partitions",
                f"{h * size}-{h * size + size - 1}",
                "--client-id",
                f"bench-hub-{h}",
                "--history-db",
                str(tmp / f"history{h}.sqlite"),
                "--influx-spool",
                str(tmp / f"spool{h}.sqlite"),
                "--log-level",
                "WARNING",
            ]
            for h in range(count)
        ]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.go.unlink(missing_ok=True)
        for h, args in enumerate(self.args):
            (self.tmp / f"hub{h}.jsonl").unlink(missing_ok=True)
            with (self.tmp / f"hub{h}.log").open("ab") as log:
                env = {**os.environ, **HUB_ENV}
                self.procs.append(subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log, env=env))
        self._wait("loaded")
        self.go.touch()
        self._wait("ready")

    def _wait(self, key: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not all(any(key in r for r in self.records(h)) for h in range(self.count)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"hubs not {key}: see {self.tmp}/hub*.log")
            time.sleep(0.05)

    def records(self, h: int) -> list[dict[str, Any]]:
        path = self.tmp / f"hub{h}.jsonl"
        text = path.read_text() if path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def windows(self) -> int:
        return sum(self.latest(h).get("windows", 0) for h in range(self.count))

    def latest(self, h: int) -> dict[str, Any]:
        progress = [r for r in self.records(h) if "windows" in r]
        return progress[-1] if progress else {}

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(60)
        self.procs = []


def publish(cluster: NatsCluster, items: list[tuple[int, str, bytes]]) -> float:
    """Publish ``(link, topic, payload)`` items (QoS 1, one connection per node; one
    nursery always on the same one, so its messages stay in order, as an edge's do);
    seconds until all are acknowledged."""
    links = []
    for i in range(3):
        settings = MqttSettings(
            broker=cluster.mqtt_urls[i], username="edge", password=CLUSTER_PASSWORDS["edge"]
        )
        link = MqttLink(settings, f"bench-edges-{i}")
        link.start()
        link.wait_connected(15)
        links.append(link)
    start = time.perf_counter()
    for k, topic, data in items:
        links[k].publish(topic, data, qos=1)
    for link in links:
        link.wait_published(600)
    elapsed = time.perf_counter() - start
    for link in links:
        link.stop()
    return elapsed


def drain(cluster: NatsCluster, hubs: Hubs, nurseries: int, messages: int) -> dict[str, Any]:
    hubs.start()  # register the partition sessions
    hubs.stop()
    rng = np.random.default_rng(0)
    items = []
    for seq in range(messages):
        for n in range(nurseries):
            mel = rng.integers(-110, -20, (FRAMES, 32)).astype(np.int8)
            level = np.full(FRAMES, -40, np.int8)
            items.append((n % 3, f"nurserycry/n{n}/features", message(f"n{n}", seq, mel, level)))
    idle0, t_idle = broker_cpu(cluster), time.perf_counter()
    time.sleep(5)
    idle = (broker_cpu(cluster) - idle0) / (time.perf_counter() - t_idle)  # cores, at rest
    broker0, t0 = broker_cpu(cluster), time.perf_counter()
    publish_s = publish(cluster, items)
    broker1, t1 = broker_cpu(cluster), time.perf_counter()
    hubs.start()
    expected = nurseries * (messages - 1)
    deadline = time.monotonic() + 300
    while hubs.windows() < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    broker2, t2 = broker_cpu(cluster), time.perf_counter()
    per_hub = []
    for h in range(hubs.count):
        progress = [r for r in hubs.records(h) if "windows" in r]
        busy = [r for r in progress if r["windows"] > 0]
        first, last = busy[0], busy[-1]
        per_hub.append(
            {
                "windows": last["windows"],
                "seconds": last["t"] - first["t"],
                "cpu_s": last["cpu"] - first["cpu"],
                "first_t": first["t"],
                "last_t": last["t"],
                **{k: last[k] for k in COUNTERS},
            }
        )
    span = max(p["last_t"] for p in per_hub) - min(p["first_t"] for p in per_hub)
    done = sum(p["windows"] for p in per_hub)
    hub_cpu = sum(p["cpu_s"] for p in per_hub)
    delivered = sum(p["windows"] for p in per_hub) + nurseries  # first message has no window
    return {
        "messages": len(items),
        "windows_expected": expected,
        "windows_processed": done,
        "seconds": span,
        "windows_per_s": done / span,
        "hub_cpu_s": hub_cpu,
        "windows_per_hub_cpu_s": done / hub_cpu,
        "per_hub": per_hub,
        "publish_s": publish_s,
        "broker_idle_cores": idle,
        "broker_cpu_s_publish": broker1 - broker0,
        "broker_cpu_ms_per_message_in": 1000 * (broker1 - broker0 - idle * (t1 - t0)) / len(items),
        "broker_cpu_s_drain": broker2 - broker1,
        "broker_cpu_ms_per_message_out": 1000 * (broker2 - broker1 - idle * (t2 - t1)) / delivered,
    }


def live(
    cluster: NatsCluster, nurseries: int, cry: tuple[np.ndarray, np.ndarray], first_seq: int
) -> dict[str, Any]:
    """Real-time streams; ten nurseries cry; latency of each ``started`` event."""
    events: queue.Queue[tuple[float, EpisodeEvent]] = queue.Queue()
    sub = MqttLink(
        MqttSettings(
            broker=cluster.mqtt_urls[2],
            username="homeassistant",
            password=CLUSTER_PASSWORDS["homeassistant"],
        ),
        "bench-ha",
    )
    sub.subscribe(
        "nurserycry/+/event", lambda m: events.put((time.time(), EpisodeEvent.decode(m.payload)))
    )
    sub.start()
    sub.wait_connected(15)
    link = MqttLink(
        MqttSettings(
            broker=cluster.mqtt_urls[0], username="edge", password=CLUSTER_PASSWORDS["edge"]
        ),
        "bench-live",
    )
    link.start()
    link.wait_connected(15)
    cry_mel, cry_level = cry
    cry_msgs = cry_mel.shape[0] // FRAMES
    quiet_mel = np.full((FRAMES, 32), -100, np.int8)
    quiet_level = np.full(FRAMES, -100, np.int8)
    criers = {f"n{k}": 4 + 2 * k for k in range(10)}  # live step at which each starts
    steps = 4 + 2 * 10 + cry_msgs + 12
    sent: dict[tuple[str, int], float] = {}
    start = time.monotonic()
    for step in range(steps):
        seq = first_seq + step
        for n in range(nurseries):
            name = f"n{n}"
            k = step - criers.get(name, steps)
            if 0 <= k < cry_msgs:
                mel = cry_mel[k * FRAMES : (k + 1) * FRAMES]
                level = cry_level[k * FRAMES : (k + 1) * FRAMES]
            else:
                mel, level = quiet_mel, quiet_level
            link.publish(f"nurserycry/{name}/features", message(name, seq, mel, level), qos=1)
            sent[(name, seq)] = time.time()
        time.sleep(max(0.0, start + (step + 1) * 0.5 - time.monotonic()))
    time.sleep(5)
    link.stop()
    sub.stop()
    latencies = []
    while not events.empty():
        arrived, ev = events.get()
        if ev.event != "started" or ev.device not in criers:
            continue
        seq = round((ev.alert_at - T0) / 0.5) - 1  # the message whose end the alert is at
        if (ev.device, seq) in sent:
            latencies.append(arrived - sent[(ev.device, seq)])
    latencies.sort()
    return {
        "nurseries": nurseries,
        "criers": len(criers),
        "alerts": len(latencies),
        "alert_latency_median_s": statistics.median(latencies) if latencies else None,
        "alert_latency_max_s": latencies[-1] if latencies else None,
        "alert_latencies_s": [round(x, 3) for x in latencies],
    }


def run(
    hubs_n: int, args: argparse.Namespace, cry: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = nurserycry_cluster(Path(tmp) / "nats", ack_wait="10s")
        cluster.start()
        try:
            cluster.wait_ready()
            hubs = Hubs(cluster, Path(tmp), hubs_n)
            try:
                result = {
                    "hubs": hubs_n,
                    "drain": drain(cluster, hubs, args.nurseries, args.messages),
                }
                result["live"] = live(cluster, args.live, cry, args.messages)
            finally:
                hubs.stop()
        finally:
            cluster.stop()
    return result


def hub_process(out_path: str, go: str, flags: list[str]) -> None:
    """One hub (``nurserycry hub``'s flags) reporting progress to ``out_path``."""
    from nurserycry.hub import cli
    from nurserycry.hub.service import Hub

    settings = cli.load_settings(cli.parser().parse_args(flags))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open(out_path, "a") as out:
        hub = Hub(settings)
        out.write('{"loaded": true}\n')
        out.flush()
        while not Path(go).exists():
            time.sleep(0.01)
        hub.start()
        hub.wait_connected(60)
        out.write('{"ready": true}\n')
        while not stop.wait(0.1):
            c = hub.counters
            line = {"t": time.time(), "windows": c.get("windows"), "cpu": time.process_time()}
            out.write(json.dumps(line | {k: c.get(k) for k in COUNTERS}) + "\n")
            out.flush()
        hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--data", type=Path, help="the data set (manifest.csv), for cries")
    parser.add_argument("--nurseries", type=int, default=300)
    parser.add_argument("--messages", type=int, default=80, help="per nursery (drain)")
    parser.add_argument("--hubs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--live", type=int, default=100, help="nurseries streaming live")
    parser.add_argument("--hub-process", nargs=2, metavar=("OUT", "GO"), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.hub_process:
        hub_process(args.hub_process[0], args.hub_process[1], rest)
        return
    if args.data is None:
        parser.error("--data is required (e.g. ../shared/data)")
    cry = cry_frames(args.data)
    load = os.getloadavg()
    runs = [run(h, args, cry) for h in args.hubs]
    write("cluster", {"load_average_at_start": load, "nice": os.nice(0), "runs": runs})


if __name__ == "__main__":
    main()
