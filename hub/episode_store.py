"""The episode tracker's memory on disk, so ``kill -9`` of the hub mid-episode neither
loses the episode nor alerts twice (#14.11).

One small JSON file (``episode_state``), replaced atomically (write, fsync, rename)
before an episode's started or ended event goes out and at most once a second while
one is open. On start the hub reads it back: the open episode goes on if the
nursery's next windows follow within ``release_s``, else it ends at its last crying
window (an ``ended`` event and row); a new episode within ``cooldown_s`` of the end of
the last alerted one raises no alert. A file that cannot be read is moved aside with a
WARNING: the hub starts without it (that only risks one repeated alert).

Version 2 keeps ``last_alert_end``, the end of the last episode that alerted. A version 1
file (before the cooldown ran from alerted episodes only) kept ``last_end``, the end of the
last episode alerted or not; it loads as the cooldown's start, which holds an alert back at
most ``cooldown_s`` after that end, as any cooldown may.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nurserycry.shared.episodes import Episode, TrackerMemory

log = logging.getLogger(__name__)

VERSION = 2
_READS = (1, 2)  # version 1: ``last_end`` instead of ``last_alert_end``


class EpisodeStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: dict[str, TrackerMemory] | None = None

    def load(self) -> dict[str, TrackerMemory]:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read the episode state %s: %s; starting without it", self.path, exc)
            return {}
        try:
            body = json.loads(raw)
            version = body.get("v")
            if version not in _READS:
                raise ValueError(f"unknown version {version!r}")
            out = {str(name): _memory(m, version) for name, m in body["nurseries"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self.path.with_name(self.path.name + ".unreadable")
            os.replace(self.path, aside)
            log.warning(
                "the episode state %s is unreadable (%s): moved to %s, starting without it",
                self.path,
                exc,
                aside,
            )
            return {}
        self._saved = out
        return out

    def save(self, memories: dict[str, TrackerMemory]) -> bool:
        """Write ``memories`` if they changed; False if the disk refused (logged)."""
        if memories == self._saved:
            return True
        body = {"v": VERSION, "nurseries": {n: asdict(m) for n, m in memories.items()}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w") as f:
                json.dump(body, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save the episode state %s: %s", self.path, exc)
            return False
        self._saved = dict(memories)
        return True


def _memory(m: dict[str, Any], version: int) -> TrackerMemory:
    ep = m["open"]
    episode = None
    if ep is not None:
        episode = Episode(
            int(ep["index"]),
            float(ep["start"]),
            float(ep["alert_at"]),
            None,
            float(ep["peak"]),
            bool(ep["alert"]),
        )
    last_end = m["last_end" if version == 1 else "last_alert_end"]
    prev_end = m["prev_end"]
    return TrackerMemory(
        episode,
        float(m["last_alive"]),
        None if last_end is None else float(last_end),
        None if prev_end is None else float(prev_end),
    )
