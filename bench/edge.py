"""The edge agent in real time: CPU share of one core, memory, bytes on the wire, disk.

    python -m bench.edge [--seconds 60]

Starts mosquitto on loopback and runs ``nurserycry edge`` streaming a
generated 16 kHz WAV at real-time pace through a counting TCP relay
(``bench.edge_measure``): every byte on the wire is counted (MQTT
headers, topics, payloads, PUBACKs, heartbeats). Once with the default
write-behind spool and once write-through (``--spool-sync-s 0``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import write
from bench.edge_measure import _wav, measure

from tests.servers import Mosquitto


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mqtt")
        broker.start()
        try:
            for spool_sync in ("1", "0"):
                extra: list[str] = []
                if spool_sync == "0":
                    wav = Path(tmp) / "w.wav"
                    extra = ["--file", str(_wav(wav, args.seconds + 35)), "--spool-sync-s", "0"]
                result = measure(broker.url, f"bench{spool_sync}", args.seconds, 5.0, extra)
                runs.append({"spool_sync_s": float(spool_sync), **result})
        finally:
            broker.stop()
    write("edge", {"target_bytes_per_s": 4096, "runs": runs})


if __name__ == "__main__":
    main()
