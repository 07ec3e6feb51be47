"""The hub, wired: MQTT in, routes, validation, detection, and the sinks out.

This module only wires and runs; what each part does lives in its own module:
:mod:`.routes` (topic -> handler), :mod:`.ingest` (validate, order), :mod:`.engine`
(windows, model, episodes), :mod:`.sinks` (MQTT, InfluxDB, history, clips),
:mod:`.model_reload` (swap the model without a restart).

Threads, on purpose (not asyncio: paho, influxdb-client's synchronous API and
the TFLite interpreter are all blocking libraries):

* the link's network thread only puts each :class:`~nurserycry.shared.mqtt.Received`
  message into a bounded queue with one FIFO per nursery, taken in turn
  (:mod:`.fair_queue`: one nursery's flood cannot delay another's alert), blocking
  briefly when it is full (back-pressure instead of loss);
* one processing thread takes messages in batches, routes them, scores the
  windows of all nurseries in one model call and hands the outputs to every sink;
* the InfluxDB writer thread and the model watcher thread.

``Hub(settings, model=None, link=None).start()`` / ``.stop()`` run it in-process
(the demo does; tests pass an in-memory link); ``snapshot()`` and
``add_listener()`` let a live view watch it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nurserycry import __version__
from nurserycry.shared.mqtt import Link, MqttLink, Received
from nurserycry.shared.schemas import EdgeStatus, HubStatus, NurseryState
from nurserycry.shared.topics import OFFLINE, ONLINE, Topics

from .counters import Counters, Rejections
from .edges import Edges
from .engine import Engine, HubModel, Outputs
from .episode_store import EpisodeStore
from .fair_queue import FairQueue
from .ingest import Ingest
from .model_reload import ModelWatcher, load_watched
from .partitions import Shard, partition_links
from .routes import RECONNECTED, HubRoutes
from .settings import HubSettings
from .sinks import Sink
from .sinks.clips import ClipCollector
from .sinks.history import History
from .sinks.influx import FLUSH_AT_STOP_S, LineWriter, sink_from_settings
from .sinks.mqtt import MqttSink

log = logging.getLogger(__name__)

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
        link: Link | None = None,
        influx_writer: LineWriter | None = None,
        loader: Callable[[Path], HubModel] | None = None,
    ) -> None:
        """``model``: use this one (no reloads); else ``loader`` (default ``CryModel.load``)
        loads ``settings.model`` (default: the shipped model) and reloads it when it changes.
        ``link``: default an :class:`MqttLink` to ``settings.mqtt``."""
        self.settings = settings
        self.topics = topics = Topics(
            settings.mqtt.topic_prefix,
            settings.mqtt.discovery_prefix,
            hub_id=settings.client_id if settings.mqtt.partitions else None,
        )
        self.counters = Counters()
        self._watcher: ModelWatcher[HubModel] | None = None
        if model is None:
            model, self._watcher = load_watched(
                settings.model, loader, self._model_loaded, self.counters, settings.model_poll_s
            )
        self.link = link or _mqtt_link(settings, topics)
        self.history = (
            History(settings.history.db, self.counters, settings.history.days)
            if settings.keep_history
            else None
        )
        self.engine = Engine(
            model,
            settings.detector_for,
            self.counters,
            settings.state_interval_s,
            crying_seconds=self.history.crying_seconds if self.history is not None else None,
            microphone_silent_s=settings.microphone_silent_s,
        )
        meta, reject = model.metadata, Rejections(self.counters, log)
        self.ingest = Ingest(
            topics,
            self.counters,
            meta.frontend_hash,
            meta.frontend_params.n_mels,
            reorder_messages=settings.reorder_messages,
            reorder_wait_s=settings.reorder_wait_s,
            hold_first=bool(settings.mqtt.owned),
            rejections=reject,
            stream_idle_s=settings.stream_idle_s,
            max_ahead_s=settings.max_clock_ahead_s,
            allowed=settings.allowed,
            max_nurseries=settings.max_nurseries,
        )
        # partitioned (sharded) hubs: one session per owned partition carries the features
        self.shard = Shard(topics, settings.mqtt, self.ingest) if settings.mqtt.owned else None
        self.partition_links = partition_links(settings.mqtt, topics, self._enqueue)
        self.edges = Edges(reject, settings.edge_offline_s)
        self.mqtt = MqttSink(self.link, topics, settings.detections)
        self.influx = sink_from_settings(settings, self.counters, influx_writer)
        self.clips = (
            ClipCollector(
                self.link,
                topics,
                settings.clips.dir,
                seconds=settings.clips.seconds,
                keep=settings.clips.keep,
                counters=self.counters,
            )
            if settings.clips.dir is not None
            else None
        )
        self.sinks: list[Sink] = [self.mqtt]
        self.sinks += [s for s in (self.influx, self.history, self.clips) if s is not None]
        self.routes = HubRoutes(
            topics,
            self.ingest,
            self.edges,
            self.mqtt,
            clips=self.clips,
            reload_model=self.reload_model,
            shard=self.shard,
        )
        self._queue: FairQueue[Received] = FairQueue(settings.queue_size)
        self._listeners: list[Callable[[Outputs], None]] = []
        self._new_model: HubModel | None = None
        self._lock = threading.Lock()
        self.episode_store = EpisodeStore(settings.episode_state_path)
        self.engine.recall(self.episode_store.load())
        for nursery in self.engine.open_recalled():
            self.edges.await_frames(nursery)
            log.info("%s had an episode open when the hub stopped: carrying it on", nursery)
        self._next_save = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-processing", daemon=True)
        self._started = self._stopped = False
        self._t_start = time.monotonic()
        self._next_status = 0.0

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        features = self.topics.all_nurseries("features")
        for sub in self.routes.table.subscriptions:
            if self.shard is None or sub.topic_filter != features:  # else partition links
                self.link.subscribe(sub.topic_filter, self._enqueue, qos=sub.qos)
        self.link.on_connect(lambda: self._enqueue(RECONNECTED))
        for sink in self.sinks:
            sink.start()
        self._t_start = time.monotonic()
        self._thread.start()
        if self._watcher is not None:
            self._watcher.start()
        self.link.start()
        for link in self.partition_links:
            link.start()
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
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        return all(
            link.wait_connected(max(0.0, deadline - time.monotonic()))
            for link in (self.link, *self.partition_links)
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Process what was received, close open episodes, say offline, flush writes
        (InfluxDB for at most :data:`~.sinks.influx.FLUSH_AT_STOP_S`; the rest stays on disk)."""
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
        for link in self.partition_links:  # what they bring now is left to the next owner
            link.stop()
        self._emit(self.engine.finish())
        self.episode_store.save(self.engine.memories())  # closed now; cooldowns kept
        self.link.stop(final=[(self.topics.hub("availability"), OFFLINE)])
        while not self._queue.empty():  # arrived while disconnecting: keep the data
            # unacknowledged partition messages go to the next owner: using them here too
            # would make their windows twice
            self._handle([m for m in self._take(block=False) if m.ack is None])
        self._close_sinks(timeout)
        log.info("hub stopped: %s", self.counters.snapshot())

    def _close_sinks(self, timeout: float) -> None:
        for sink in self.sinks:
            try:
                sink.close(min(timeout, FLUSH_AT_STOP_S))
            except Exception:
                log.exception("closing %s failed", type(sink).__name__)

    # -- observation -----------------------------------------------------
    def add_listener(self, callback: Callable[[Outputs], None]) -> None:
        """Call ``callback(outputs)`` on the processing thread after every batch."""
        self._listeners.append(callback)

    @property
    def backlog(self) -> int:
        """Messages received and not yet processed."""
        return len(self._queue)

    def snapshot(self) -> HubSnapshot:
        return HubSnapshot(
            self.engine.version,
            self.mqtt.states(),
            self.edges.online(),
            self.edges.status(),
            self.counters.snapshot(),
        )

    def status(self) -> HubStatus:
        self.counters.set("nurseries_online", sum(self.edges.online().values()))
        counters = self.counters.snapshot()
        return HubStatus(
            t=time.time(),
            software=__version__,
            model=self.engine.version[:80],
            uptime_s=time.monotonic() - self._t_start,
            nurseries=self.engine.nurseries[:1000],
            windows=counters.get("windows", 0),
            counters=counters,
            clock_skew_s=dict(list(self.ingest.clock_skew().items())[:1000]),
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
    def _enqueue(self, msg: Received) -> None:
        parts = msg.topic.rsplit("/", 2)  # {prefix}/N/kind: one share per nursery
        key = parts[-2] if len(parts) == 3 else msg.topic
        if not self._queue.put(key, msg, timeout=5.0):
            self.counters.add("dropped_queue_full")
            log.error("hub queue full for 5 s: dropped a message on %s", msg.topic)

    # -- processing thread -----------------------------------------------
    def _take(self, block: bool) -> list[Received]:
        return self._queue.take(_BATCH_MESSAGES, timeout=0.2 if block else 0.0)

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

    def _handle(self, items: list[Received]) -> None:
        for msg in items:
            self.routes.handle(msg)
        accepted = self.routes.take()
        self._swap_model()
        if accepted:
            self._emit(self.engine.process(accepted))
            if self.shard is not None:  # the outputs are written: ack what is used
                self.shard.acks.used(accepted, self.engine.retained_from)
        for nursery in self.edges.gone():  # its edge died: do not leave an episode open
            self._emit(self.engine.close(nursery))
        self._save_episodes()

    def _save_episodes(self, now: bool = False) -> None:
        """While episodes go on, at most once a second; ``now``: before their events go out,
        so no event anyone has seen is forgotten by a hub killed right after it."""
        t = time.monotonic()
        if now or t >= self._next_save:
            self._next_save = t + 1.0
            self.episode_store.save(self.engine.memories())

    def _emit(self, out: Outputs) -> None:
        if not out.windows and not out.events and not out.states:
            return
        if out.events:
            self._save_episodes(now=True)
        for sink in self.sinks:
            sink.write(out)
        for listener in self._listeners:
            try:
                listener(out)
            except Exception:
                log.exception("hub listener failed")

    def _swap_model(self) -> None:
        with self._lock:
            model, self._new_model = self._new_model, None
        if model is None:
            return
        meta = model.metadata
        self.engine.model = model
        self.ingest.expect(meta.frontend_hash, meta.frontend_params.n_mels)
        log.info("now scoring with model %s", meta.model_version)

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + self.settings.status_interval_s
            if self.link.connected:
                self.mqtt.status(self.status())


def _mqtt_link(settings: HubSettings, topics: Topics) -> MqttLink:
    availability = topics.hub("availability")
    return MqttLink(
        settings.mqtt,
        settings.client_id,
        will=(availability, OFFLINE),
        birth=[(availability, ONLINE)],
        persistent_session=True,
    )
