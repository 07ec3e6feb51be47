"""Hub throughput end to end: N simulated nurseries -> real mosquitto -> hub.

    python -m bench.hub_throughput [--nurseries 100] [--seconds 30]

The hub runs in this process pinned to CPU 0 (one core), with the shipped
model and its default outputs (state, detection per window, local history).
Two modes, both reported:

* ``live``: a publisher subprocess pinned to CPU 1 replays pre-encoded
  feature messages (25 frames = one new window each) for every nursery as
  fast as the broker takes them (QoS 1) while the hub consumes; mosquitto
  shares CPU 1, so on two cores this is bounded by the publisher as much as
  by the hub (see ``hub_core_share``).
* ``drain``: the same messages are queued in the broker for the hub's
  persistent session while it is away; the hub then starts and drains them.
  This is the hub's own capacity on one core.

Also reported: messages dropped (must be 0) and the hub's resident memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write
from nurserycry.hub.service import Hub
from nurserycry.hub.settings import HubSettings
from nurserycry.shared.config import MqttSettings
from nurserycry.shared.frontend import DEFAULT_PARAMS
from nurserycry.shared.mqtt import MqttLink
from nurserycry.shared.schemas import AudioFeatures

from tests.servers import Mosquitto

FRAMES = 25


def payloads(nurseries: int, messages: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    out = []
    for seq in range(messages):
        for n in range(nurseries):
            mel = rng.integers(-110, -20, (FRAMES, 32)).astype(np.int8)
            msg = AudioFeatures.from_arrays(
                mel,
                np.full(FRAMES, -40, np.int8),
                device=f"n{n}",
                stream="0123abcd",
                seq=seq,
                frame_index=seq * FRAMES,
                t0=1.7e9 + seq * FRAMES / DEFAULT_PARAMS.frames_per_second,
                frontend=DEFAULT_PARAMS.hash,
            )
            out.append((f"nurserycry/n{n}/features", msg.encode()))
    return out


def publisher(url: str, nurseries: int, messages: int) -> None:
    os.sched_setaffinity(0, {1})
    items = payloads(nurseries, messages)
    link = MqttLink(MqttSettings(broker=url), "bench-publisher")
    link.start()
    link.wait_connected(10)
    for t, p in items:
        link.publish(t, p, qos=1)
    link.wait_published(60)
    link.stop()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _publish(url: str, nurseries: int, messages: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.hub_throughput",
            "--publisher",
            url,
            "--nurseries",
            str(nurseries),
            "--messages",
            str(messages),
        ],
        cwd=Path(__file__).resolve().parents[1],
    )


def run(mode: str, nurseries: int, messages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(
            Path(tmp) / "mqtt",
            "allow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n",
        )
        broker.start()
        os.sched_setaffinity(broker.proc.pid, {1})  # type: ignore[union-attr]
        os.sched_setaffinity(0, {0})
        settings = HubSettings.load(
            None,
            mqtt={"broker": broker.url},
            client_id="bench-hub",
            history={"db": Path(tmp) / "history.sqlite"},
            influx={"spool": Path(tmp) / "spool.sqlite"},
        )
        expected = nurseries * (messages - 1)
        if mode == "drain":  # register the persistent session, then go away
            hub = Hub(settings)
            hub.start()
            hub.wait_connected(10)
            hub.stop()
            _publish(broker.url, nurseries, messages).wait(600)
        hub = Hub(settings)
        rss_before = rss_mb()
        hub.start()
        hub.wait_connected(10)
        proc = _publish(broker.url, nurseries, messages) if mode == "live" else None
        while hub.counters.get("windows") == 0:
            time.sleep(0.001)
        start = time.perf_counter()
        cpu0 = time.process_time()
        deadline = start + 600
        while hub.counters.get("windows") < expected and time.perf_counter() < deadline:
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        done = hub.counters.get("windows")
        if proc is not None:
            proc.wait(60)
        counters = hub.status().counters
        rss_peak = rss_mb()
        hub.stop()
        broker.stop()
    return {
        "mode": mode,
        "nurseries": nurseries,
        "messages_per_nursery": messages,
        "windows_expected": expected,
        "windows_processed": done,
        "seconds": elapsed,
        "windows_per_s": done / elapsed,
        "hub_cpu_s": cpu,
        "hub_core_share": cpu / elapsed,
        "hub_rss_mb_start": rss_before,
        "hub_rss_mb_end": rss_peak,
        "dropped_queue_full": counters.get("dropped_queue_full", 0),
        "rejected": {k: v for k, v in counters.items() if k.startswith("rejected") and v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nurseries", type=int, default=100)
    parser.add_argument("--messages", type=int, default=300, help="per nursery")
    parser.add_argument("--publisher", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        publisher(args.publisher, args.nurseries, args.messages)
        return
    runs = [run(mode, args.nurseries, args.messages) for mode in ("drain", "live")]
    write("hub_throughput", {"runs": runs})


if __name__ == "__main__":
    main()
