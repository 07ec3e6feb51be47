"""The hub: wiring of MQTT in, validation, detection, and MQTT / InfluxDB / history out.

Threads, on purpose (not asyncio: paho, influxdb-client's synchronous API and
the TFLite interpreter are all blocking libraries):

* paho's network thread only puts ``(topic, payload)`` into a bounded queue
  (blocking briefly when it is full: back-pressure instead of loss);
* one processing thread takes messages in batches, validates and orders
  them (:mod:`.ingest`), cuts and scores windows for all nurseries in one
  model call (:mod:`.engine`), publishes (:mod:`.publish`), and hands points
  to the InfluxDB writer (:mod:`.influx`) or the local history (:mod:`.history`);
* the InfluxDB writer thread and the model watcher thread (:mod:`.model_reload`).

``Hub(settings, model=None).start()`` / ``.stop()`` run it in-process (the demo
does); ``snapshot()`` and ``add_listener()`` let a live view watch it.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nurserycry import __version__
from nurserycry.shared.mqtt import MqttLink
from nurserycry.shared.schemas import EdgeStatus, HubStatus, NurseryState
from nurserycry.shared.throttle import RateLimitedWarnings
from nurserycry.shared.topics import OFFLINE, ONLINE, Topics

from .clips import ClipCollector
from .counters import Counters
from .edges import Edges
from .engine import Engine, HubModel, Outputs
from .history import History
from .influx import LineWriter, sink_from_settings
from .ingest import Accepted, Ingest
from .model_reload import ModelWatcher, load_watched
from .publish import Publisher
from .settings import HubSettings

log = logging.getLogger(__name__)

RELOAD_COMMAND: Final = b"reload-model"
_RECONNECTED: Final = ""  # queue marker: the link (re)connected
_BATCH_MESSAGES: Final = 512


@dataclass(frozen=True)
class HubSnapshot:
    """What a live view shows: latest state per nursery plus the hub's counters."""

    model: str
    states: dict[str, NurseryState]
    edges_online: dict[str, bool]
    edge_status: dict[str, EdgeStatus]
    counters: dict[str, int]


class Hub:
    def __init__(
        self,
        settings: HubSettings,
        model: HubModel | None = None,
        *,
        influx_writer: LineWriter | None = None,
        loader: Callable[[Path], HubModel] | None = None,
    ) -> None:
        """``model``: use this one (no reloads); else ``loader`` (default ``CryModel.load``)
        loads ``settings.model`` (default: the shipped model) and reloads it when it changes."""
        self.settings = settings
        self.topics = Topics(settings.mqtt.topic_prefix, settings.mqtt.discovery_prefix)
        self._hub_prefix = self.topics.hub("status").rsplit("/", 1)[0] + "/"
        self.counters = Counters()
        self._watcher: ModelWatcher[HubModel] | None = None
        if model is None:
            model, self._watcher = load_watched(
                settings.model, loader, self._model_loaded, self.counters, settings.model_poll_s
            )
        meta = model.metadata
        self.engine = Engine(model, settings.detector_for, self.counters, settings.state_interval_s)
        self.ingest = Ingest(
            self.topics,
            self.counters,
            meta.frontend_hash,
            meta.frontend_params.n_mels,
            reorder_messages=settings.reorder_messages,
            reorder_wait_s=settings.reorder_wait_s,
        )
        availability = self.topics.hub("availability")
        self.link = MqttLink(
            settings.mqtt,
            settings.client_id,
            will=(availability, OFFLINE),
            birth=[(availability, ONLINE)],
            persistent_session=True,
        )
        self.publisher = Publisher(self.link, self.topics, settings.detections)
        self.influx = sink_from_settings(settings, self.counters, influx_writer)
        self.history = History(settings.history.db) if settings.keep_history else None
        if self.history is not None:
            self.engine.crying_seconds = self.history.crying_seconds
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(settings.queue_size)
        self._listeners: list[Callable[[Outputs], None]] = []
        self.clips: ClipCollector | None = None
        if settings.clips.dir is not None:
            self.clips = ClipCollector(
                self.link,
                self.topics,
                settings.clips.dir,
                seconds=settings.clips.seconds,
                keep=settings.clips.keep,
                counters=self.counters,
            )
            self._listeners.append(self.clips.on_outputs)
        self._new_model: HubModel | None = None
        self._lock = threading.Lock()
        self._states: dict[str, NurseryState] = {}
        self.edges = Edges(self.ingest, settings.edge_offline_s)
        self._warn = RateLimitedWarnings(log)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-processing", daemon=True)
        self._started = self._stopped = False
        self._t_start = time.monotonic()
        self._next_status = self._next_prune = 0.0

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        topics, enqueue = self.topics, self._enqueue
        self.link.subscribe(topics.all_nurseries("features"), enqueue, qos=1)
        self.link.subscribe(topics.all_nurseries("availability"), enqueue, qos=1)
        self.link.subscribe(topics.all_nurseries("status"), enqueue, qos=0)
        self.link.subscribe(topics.hub("command"), enqueue, qos=1)
        self.link.subscribe(topics.ha_status, enqueue, qos=1)
        self.link.on_connect(lambda: self._enqueue(_RECONNECTED, b""))
        if self.clips is not None:
            self.clips.start()
        self._t_start = time.monotonic()
        self._thread.start()
        if self.influx is not None:
            self.influx.start()
        if self._watcher is not None:
            self._watcher.start()
        self.link.start()
        self._started = True
        log.info(
            "hub started: broker %s, model %s, %s",
            self.settings.mqtt.broker,
            self.engine.version,
            f"InfluxDB {self.settings.influx.url}"
            if self.influx
            else f"history {self.settings.history.db}",
        )

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self.link.wait_connected(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Process what was received, close open episodes, say offline, flush writes."""
        if self._stopped:
            return
        self._stopped = True
        if not self._started:  # constructed but never started: just close the files
            self._close_sinks(timeout)
            return
        self._stop.set()
        self._thread.join(timeout)
        if self._watcher is not None:
            self._watcher.stop()
        self._handle(self._take(block=False))  # the processing thread has exited
        self._emit(self.engine.finish())
        self.link.stop(final=[(self.topics.hub("availability"), OFFLINE)])
        while not self._queue.empty():  # arrived while disconnecting: keep the data
            self._handle(self._take(block=False))
        self._close_sinks(timeout)
        log.info("hub stopped: %s", self.counters.snapshot())

    def _close_sinks(self, timeout: float) -> None:
        if self.influx is not None:
            self.influx.stop(timeout)
        if self.history is not None:
            self.history.close()

    # -- observation -----------------------------------------------------
    def add_listener(self, callback: Callable[[Outputs], None]) -> None:
        """Call ``callback(outputs)`` on the processing thread after every batch."""
        self._listeners.append(callback)

    def snapshot(self) -> HubSnapshot:
        with self._lock:
            return HubSnapshot(
                self.engine.version,
                dict(self._states),
                self.edges.online(),
                self.edges.status(),
                self.counters.snapshot(),
            )

    def status(self) -> HubStatus:
        counters = self.counters.snapshot()
        return HubStatus(
            t=time.time(),
            software=__version__,
            model=self.engine.version[:80],
            uptime_s=time.monotonic() - self._t_start,
            nurseries=self.engine.nurseries[:1000],
            windows=counters.get("windows", 0),
            counters=counters,
        )

    def reload_model(self) -> bool:
        """Reload from the model directory now; False if it failed or there is none."""
        if self._watcher is None:
            log.warning("reload-model: this hub was given its model in-process; nothing to reload")
            return False
        self._watcher.request()
        return True

    def _model_loaded(self, model: HubModel) -> None:  # watcher thread
        with self._lock:
            self._new_model = model

    # -- network thread --------------------------------------------------
    def _enqueue(self, topic: str, payload: bytes) -> None:
        try:
            self._queue.put((topic, payload), timeout=5.0)
        except queue.Full:
            self.counters.add("dropped_queue_full")
            log.error("hub queue full for 5 s: dropped a message on %s", topic)

    # -- processing thread -----------------------------------------------
    def _take(self, block: bool) -> list[tuple[str, bytes]]:
        items: list[tuple[str, bytes]] = []
        if block:
            try:
                items.append(self._queue.get(timeout=0.2))
            except queue.Empty:
                return items
        while len(items) < _BATCH_MESSAGES:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _run(self) -> None:
        while True:
            items = self._take(block=True)
            try:
                self._handle(items)
                self._tick()
            except Exception:  # never let one bad batch stop the hub
                log.exception("hub processing failed on a batch of %d messages", len(items))
            if self._stop.is_set() and self._queue.empty():
                return

    def _handle(self, items: list[tuple[str, bytes]]) -> None:
        accepted: list[Accepted] = []
        topics = self.topics
        for topic, payload in items:
            parsed = topics.parse(topic)
            if parsed is not None and parsed[1] == "features":
                accepted += self.ingest.feed(topic, payload)
            elif parsed is not None and parsed[1] == "availability":
                self.edges.availability(parsed[0], payload)
            elif parsed is not None and parsed[1] == "status":
                self.edges.heartbeat(parsed[0], topic, payload)
            elif topic == topics.ha_status:
                if payload.strip() == ONLINE.encode():
                    log.info("Home Assistant is online: republishing discovery")
                    self.publisher.announce_all()
                    self._republish_states()
            elif topic == topics.hub("command"):
                self._command(payload)
            elif topic.startswith(self._hub_prefix):
                pass  # our own availability (matched by the +/availability filter)
            elif topic == _RECONNECTED:
                self.publisher.announce_all()  # the broker may have lost retained messages
                self._republish_states()
            else:
                accepted += self.ingest.feed(topic, payload)  # counts and logs the rejection
        accepted += self.ingest.expire()
        self._swap_model()
        if accepted:
            for nursery in {a.nursery for a in accepted}:
                self.publisher.announce(nursery)
                self.edges.heard(nursery)
            self._emit(self.engine.process(accepted))
        for nursery in self.edges.gone():  # its edge died: do not leave an episode open
            self._emit(self.engine.close(nursery))

    def _emit(self, out: Outputs) -> None:
        if not out.windows and not out.events and not out.states:
            return
        self.publisher.outputs(out)
        if self.influx is not None:
            self.influx.add_windows(out.windows)
            self.influx.add_episodes(out.events)
        if self.history is not None:
            try:
                self.history.add(out.windows, out.events)
            except sqlite3.Error as exc:  # e.g. disk full: MQTT and InfluxDB go on
                self.counters.add("history_failed", len(out.windows))
                self._warn.warn(("history",), "local history write failed: %s", exc)
            self.counters.set("history_written", self.history.written)
        if out.windows:
            with self._lock:
                for name in {w.nursery for w in out.windows}:
                    state = self.engine.state(name)
                    if state is not None:
                        self._states[name] = state
        for listener in self._listeners:
            try:
                listener(out)
            except Exception:
                log.exception("hub listener failed")

    def _republish_states(self) -> None:
        with self._lock:
            states = list(self._states.values())
        for state in states:
            self.link.publish(
                self.topics.nursery(state.device, "state"), state.encode(), qos=1, retain=True
            )

    def _command(self, payload: bytes) -> None:
        command = payload.strip()
        if command == RELOAD_COMMAND:
            log.info("reload-model requested")
            self.reload_model()
        else:
            log.warning("unknown hub command %r (known: reload-model)", command[:40])

    def _swap_model(self) -> None:
        with self._lock:
            model, self._new_model = self._new_model, None
        if model is None:
            return
        meta = model.metadata
        self.engine.model = model
        self.ingest.frontend_hash = meta.frontend_hash
        self.ingest.n_mels = meta.frontend_params.n_mels
        log.info("now scoring with model %s", meta.model_version)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.history is not None and now >= self._next_prune:
            self._next_prune = now + 3600
            self.history.prune(time.time() - self.settings.history.days * 86400)
        if now >= self._next_status:
            self._next_status = now + self.settings.status_interval_s
            if self.link.connected:
                self.publisher.status(self.status())
