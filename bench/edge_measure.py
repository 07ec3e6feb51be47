"""Measure the edge agent: bytes on the wire, CPU share of one core, memory.

    python -m bench.edge_measure --broker mqtt://HOST:PORT [--seconds 60] \\
        [-- AGENT ARGS e.g. --device 1]

Runs ``nurserycry edge`` as a child process whose MQTT connection goes
through a counting TCP relay on 127.0.0.1 (so every byte the agent sends and
receives is counted: MQTT headers, topics, payloads, PUBACKs, heartbeats),
samples ``/proc/PID/stat`` and ``/proc/PID/status`` once a second, and prints
the averages. Without agent arguments it streams a generated 16 kHz WAV at
real-time pace. Linux only (``/proc``).

Threads: one relay thread per direction plus the accept thread; the main
thread samples ``/proc``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from nurserycry.shared.config import MqttSettings


class CountingRelay:
    """Forwards one TCP port to the broker and counts the bytes each way."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = 0  # agent -> broker
        self.down = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()
        for s in self._open:
            s.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _disk_writes(pid: int) -> int:
    """Bytes the process caused to be written to storage (``write_bytes``), or -1."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _rss_kib(pid: int) -> tuple[int, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def _wav(path: Path, seconds: float) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16_000)) / 16_000
    x = 0.2 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.3 * t)) / 2
    x += 0.02 * rng.standard_normal(t.size)
    soundfile.write(str(path), x.astype(np.float32), 16_000, subtype="PCM_16")
    return path


def measure(
    broker_url: str, nursery: str, seconds: float, warmup: float, extra: Sequence[str] = ()
) -> dict[str, float]:
    """Run the agent through the relay for ``seconds`` after ``warmup``; the figures."""
    broker = MqttSettings(broker=broker_url)
    relay = CountingRelay(broker.host, broker.port)
    with tempfile.TemporaryDirectory() as tmp:
        args = list(extra) or ["--file", str(_wav(Path(tmp) / "m.wav", warmup + seconds + 30))]
        cmd = [sys.executable, "-m", "nurserycry", "edge", "--broker"]
        cmd += [f"mqtt://127.0.0.1:{relay.port}", "--nursery", nursery]
        cmd += ["--spool", str(Path(tmp) / "spool"), "--log-level", "WARNING", *args]
        proc = subprocess.Popen(cmd)
        try:
            time.sleep(warmup)
            cpu0, up0, down0, t0 = _cpu_seconds(proc.pid), relay.up, relay.down, time.monotonic()
            disk0 = _disk_writes(proc.pid)
            rss_samples = []
            while time.monotonic() - t0 < seconds and proc.poll() is None:
                time.sleep(1.0)
                rss_samples.append(_rss_kib(proc.pid))
            elapsed = time.monotonic() - t0
            cpu = _cpu_seconds(proc.pid) - cpu0
            disk = _disk_writes(proc.pid) - disk0 if disk0 >= 0 else -1
            up, down = relay.up - up0, relay.down - down0
        finally:
            proc.terminate()
            proc.wait(30)
            relay.close()
    rss = [r for r, _ in rss_samples] or [0]
    hwm = max((h for _, h in rss_samples), default=0)
    return {
        "seconds": elapsed,
        "cpu_core_share": cpu / elapsed,
        "rss_mib_mean": float(np.mean(rss)) / 1024,
        "rss_mib_peak": hwm / 1024,
        "up_bytes_per_s": up / elapsed,
        "down_bytes_per_s": down / elapsed,
        "disk_kib_per_s": disk / elapsed / 1024,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, extra = args_in[:cut], args_in[cut + 1 :]
    p = argparse.ArgumentParser(prog="python -m bench.edge_measure", description=__doc__)
    p.add_argument("--broker", required=True, help="mqtt://HOST:PORT (no TLS)")
    p.add_argument("--nursery", default="measure")
    p.add_argument("--seconds", type=float, default=60.0, help="measurement length")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds ignored at the start")
    args = p.parse_args(args_in)
    r = measure(args.broker, args.nursery, args.seconds, args.warmup, extra)
    sys.stdout.write(
        f"over {r['seconds']:.1f} s: CPU {100 * r['cpu_core_share']:.1f} % of one core; "
        f"RSS mean {r['rss_mib_mean']:.1f} MiB, peak {r['rss_mib_peak']:.1f} MiB; "
        f"agent->broker {r['up_bytes_per_s']:.0f} B/s, "
        f"broker->agent {r['down_bytes_per_s']:.0f} B/s "
        f"(TCP payload bytes: MQTT headers, topics, payloads, acks, heartbeats); "
        f"disk writes {r['disk_kib_per_s']:.1f} KiB/s (spool)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
