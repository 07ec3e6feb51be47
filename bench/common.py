"""What every benchmark shares: machine description, timing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy as np

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "kernel": platform.release(),
        "load_average_1m_at_end": os.getloadavg()[0],
    }


def timeit(fn: Callable[[], object], repeat: int = 7, number: int = 100) -> dict[str, float]:
    """Median and spread of seconds per call over ``repeat`` rounds of ``number`` calls."""
    fn()  # warm up
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return {
        "median_s": statistics.median(rounds),
        "min_s": min(rounds),
        "max_s": max(rounds),
        "repeat": repeat,
        "number": number,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``result`` (plus machine and command) as JSON; print it too."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", "-m", f"bench.{name}", *sys.argv[1:]]),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return path
