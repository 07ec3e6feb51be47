"""Clips of what raised an alert: the edge's last seconds of audio, kept as FLAC.

Off unless ``clips.dir`` is set, and the edge answers only when its own ``clips``
setting is on: raw audio leaves the nursery only when both sides opt in.

When an episode starts with an alert, the hub sends ``clip SECONDS`` on
``{prefix}/N/command``; the edge's pre-roll buffer then holds the onset and what
came before it. The edge answers on ``{prefix}/N/clip`` with a ``RawClip``, which
is written to ``clips.dir/N/<UTC start>_<episode id>.flac``; beyond ``clips.keep``
files per nursery the oldest are deleted. A parent listens to these to see what
woke the alarm, and, sorted into ``crying/`` and ``not_crying/`` folders, they are
training data for ``nurserycry train`` (a model of their own nursery's sounds).

Threads: requests go out from the hub's processing thread (``write``, as a
sink); clips arrive through the hub's routes (:mod:`~nurserycry.hub.routes`) and
are checked and written on the processing thread too (one small file, no network).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from pathlib import Path

from nurserycry.shared.errors import MessageError
from nurserycry.shared.mqtt import Link, Received
from nurserycry.shared.schemas import RawClip
from nurserycry.shared.throttle import RateLimitedWarnings
from nurserycry.shared.topics import Topics

from ..counters import Counters
from ..engine import Outputs

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_-]")
ANSWER_S = 60.0


class ClipCollector:
    """A :class:`~nurserycry.hub.sinks.Sink`: ask for a clip on every alert, store the
    clips that come back (:meth:`on_clip`)."""

    def __init__(
        self,
        link: Link,
        topics: Topics,
        folder: Path,
        *,
        seconds: float,
        keep: int,
        counters: Counters,
    ) -> None:
        self.link, self.topics, self.folder = link, topics, folder
        self.seconds, self.keep, self.counters = seconds, keep, counters
        # nursery -> (episode id, monotonic time) of the last request; a clip that comes
        # later than ANSWER_S (an edge with clips off never answers) is not that episode's
        self._asked: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._warn = RateLimitedWarnings(log)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def close(self, timeout: float = 0.0) -> None:
        pass

    def write(self, outputs: Outputs) -> None:
        for record in outputs.events:
            event = record.event
            if event.event != "started" or not event.alert:
                continue
            with self._lock:
                self._asked[event.device] = (event.episode_id, time.monotonic())
            self.link.publish(
                self.topics.nursery(event.device, "command"),
                f"clip {self.seconds:g}".encode(),
                qos=1,
            )
            self.counters.add("clips_requested")

    def on_clip(self, msg: Received) -> None:
        topic = msg.topic
        parsed = self.topics.parse(topic)
        try:
            clip = RawClip.decode(msg.payload)
            if parsed is None or clip.device != parsed[0]:
                raise MessageError(f"device {clip.device!r} does not match the topic")
        except MessageError as exc:
            self.counters.add("clips_rejected")
            self._warn.warn(("clip", topic), "rejected clip on %s: %s", topic, exc.reason)
            return
        with self._lock:
            episode, asked_at = self._asked.pop(clip.device, ("request", -ANSWER_S))
        if time.monotonic() - asked_at > ANSWER_S:
            episode = "request"
        try:
            path = self._write(clip, episode)
        except OSError as exc:
            self.counters.add("clips_failed")
            self._warn.warn(("clip-write",), "could not store a clip: %s", exc)
            return
        self.counters.add("clips_stored")
        log.info("stored a clip from %s: %s", clip.device, path)

    def _write(self, clip: RawClip, episode: str) -> Path:
        folder = self.folder / _SAFE.sub("_", clip.device)
        folder.mkdir(parents=True, exist_ok=True)
        start = dt.datetime.fromtimestamp(clip.t0, dt.UTC).strftime("%Y%m%dT%H%M%S")
        path = folder / f"{start}_{_SAFE.sub('_', episode)}.flac"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(clip.data)
        tmp.replace(path)
        for old in sorted(folder.glob("*.flac"))[: -self.keep]:
            old.unlink(missing_ok=True)
        return path
