"""The edge agent: a source, the ring, the frontend, the spool and MQTT, wired.

Threads, on purpose (audio callbacks are threads; nothing here needs asyncio):

* the source's thread (PortAudio callback or a reader) only moves blocks into
  the :class:`Ring`; it never waits for the network or the disk;
* the processing thread (:meth:`EdgeAgent._process`) runs the shared frontend
  and appends messages to the :class:`Spool` (held in memory, written to disk
  by the run loop once unacknowledged for ``spool_sync_s``);
* the publisher thread drains the spool to MQTT, paho's thread does the I/O;
* the thread that called :meth:`EdgeAgent.run` sends the heartbeat and waits.

``run()`` returns 0 when a finite source (file, stdin, generated) has been
captured, processed and acknowledged by the broker to the last frame, or when
:meth:`stop` was called (SIGTERM): then capture stops, what can be sent within
``flush_timeout_s`` is sent and the rest stays in the spool for next time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Final

from nurserycry import __version__
from nurserycry.shared.mqtt import Link, MqttLink, Received
from nurserycry.shared.schemas import EdgeStatus
from nurserycry.shared.silence import MicrophoneWatch
from nurserycry.shared.throttle import RateLimitedWarnings
from nurserycry.shared.topics import OFFLINE, ONLINE, Topics

from .clips import ClipBuffer, ClipService, refuse
from .clock import clock_synchronised
from .features import FeatureBuilder
from .publisher import Publisher
from .ring import Block, Ring
from .settings import EdgeSettings
from .sources import Source
from .spool import Spool

log = logging.getLogger(__name__)

# The edge says so sooner than the hub's problem sensor (``microphone_silent_s``, 2 min):
# whoever sets the Pi up reads this log.
SILENT_WARNING_S: Final = 30.0


class EdgeAgent:
    def __init__(self, settings: EdgeSettings, source: Source, link: Link | None = None):
        self.settings = settings
        self.source = source
        self.topics = Topics(settings.mqtt.topic_prefix, settings.mqtt.discovery_prefix)
        nursery = settings.nursery
        self.availability = self.topics.nursery(nursery, "availability")
        self.link: Link = link or MqttLink(
            settings.mqtt,
            settings.mqtt_client_id,
            will=(self.availability, OFFLINE),
            birth=[(self.availability, ONLINE)],
            min_backoff_s=1,
            max_backoff_s=10,
        )
        self.spool = Spool(
            settings.spool_path, int(settings.spool_max_mb * 1e6), sync_s=settings.spool_sync_s
        )
        self.publisher = Publisher(self.spool, self.link, settings.inflight)
        self.link.while_away(
            lambda: (
                f"spooling features meanwhile ({self.spool.depth} message(s) waiting "
                f"in {self.spool.path})"
            )
        )
        self.ring = Ring(max(1, int(settings.ring_seconds * source.rate)))
        self.silence = MicrophoneWatch(SILENT_WARNING_S)
        self.builder: FeatureBuilder | None = None
        self.clips: ClipService | None = None
        self._warn = RateLimitedWarnings(log)
        command = self.topics.nursery(nursery, "command")
        if settings.clips:
            clip_topic = self.topics.nursery(nursery, "clip")

            def publish_clip(data: bytes) -> bool:
                return self.link.connected and self.link.publish(clip_topic, data, qos=1).sent

            buffer = ClipBuffer(source.rate, settings.clip_seconds)
            self.clips = ClipService(nursery, buffer, publish_clip, settings.clip_seconds)
            self.link.subscribe(command, self.clips.on_command)
        else:
            self.link.subscribe(command, self._clips_off)
        self.started = time.monotonic()
        self.processed = threading.Event()  # every captured frame is in the spool
        self._stopping = threading.Event()
        self._process_thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._overruns_logged = 0
        self._synced: bool | None = None  # NTP, as last seen

    # -- lifecycle -------------------------------------------------------
    def run(self) -> int:
        """Capture until the source ends (and all is acknowledged) or :meth:`stop`."""
        self.link.start()
        self.publisher.start()
        self.publisher.notify()  # a spool left from before goes out first
        next_status = time.monotonic()
        next_waiting_note = 0.0
        try:
            self.source.start(self.ring)
            self._process_thread = threading.Thread(
                target=self._process, name="process", daemon=True
            )
            self._process_thread.start()
            while not self._stopping.is_set():
                if time.monotonic() >= next_status:
                    self._heartbeat()
                    next_status += self.settings.status_interval_s
                if self.error is not None:
                    break
                if self._stalled():
                    break
                try:
                    self.spool.sync()  # what the broker has not acknowledged in time goes to disk
                except sqlite3.Error as exc:
                    log.error("cannot write the spool %s: %s", self.spool.path, exc)
                    self.error = exc
                    break
                if self.processed.is_set() and self.spool.depth == 0:
                    log.info("every frame acknowledged by the broker")
                    break
                waiting = self.processed.is_set() and not self.link.connected
                if waiting and time.monotonic() >= next_waiting_note:
                    next_waiting_note = time.monotonic() + 30.0
                    self._say_what_we_wait_for()
                self._stopping.wait(0.2)
        finally:
            self._shutdown()
        if self.error is not None or self.source.error is not None:
            return 1
        return 0

    def _say_what_we_wait_for(self) -> None:
        """The source is done; only the broker's acknowledgements are missing."""
        log.info(
            "the %s is processed; waiting for the broker %s (not connected) to acknowledge "
            "%d spooled message(s) before exiting (SIGINT/SIGTERM stops and keeps them in %s)",
            self.source.kind,
            self.settings.mqtt.broker,
            self.spool.depth,
            self.spool.path,
        )

    def _stalled(self) -> bool:
        """A live source that went quiet (card unplugged): exit 1, systemd restarts us."""
        silent = time.monotonic() - self.ring.last_block
        if not self.source.live or self.source.finished.is_set() or silent < self.settings.stall_s:
            return False
        log.error("no audio from the %s for %.0f s: giving up", self.source.kind, silent)
        self.error = RuntimeError("audio source stalled")
        return True

    def stop(self) -> None:
        """Stop capturing; ``run`` flushes (bounded) and returns. Signal-safe."""
        self._stopping.set()

    def _shutdown(self) -> None:
        self.source.stop()
        self.ring.close()
        if self._process_thread is not None:
            self._process_thread.join(max(5.0, self.settings.flush_timeout_s))
        if self.link.connected and not self.publisher.wait_idle(self.settings.flush_timeout_s):
            log.warning("leaving %d message(s) in the spool for next time", self.spool.depth)
        self.publisher.stop()
        if self.link.connected:
            self._heartbeat()
        if self.clips is not None:
            self.clips.stop()
        self.link.stop(final=[(self.availability, OFFLINE)])
        try:
            self.spool.close()
        except sqlite3.Error as exc:
            log.error("could not save the spool %s: %s", self.spool.path, exc)

    # -- the processing thread --------------------------------------------
    def _process(self) -> None:
        try:
            self._process_blocks()
        except Exception as exc:
            log.exception("processing failed")
            self.error = exc
            self._stopping.set()

    def _process_blocks(self) -> None:
        topic = self.topics.nursery(self.settings.nursery, "features")
        while True:
            block = self.ring.get(timeout=0.5)
            if block is None:
                if self.ring.drained:
                    break
                continue
            if self.builder is None:
                self.builder = FeatureBuilder(
                    self.settings.nursery,
                    topic,
                    self.spool.state,
                    rate=self.source.rate,
                    start_time=self.source.start_time or time.time(),
                    channels=self.source.channels,
                    gain_db=self.settings.gain_db,
                    frames_per_message=self.settings.frames_per_message,
                )
                if self.clips is not None:
                    self.builder.tap = self.clips.buffer.append
            items = self.builder.push(block)
            self._listen(block)
            # Whatever else is already waiting joins the same transaction.
            while self.ring.held and len(items) < 200:
                more = self.ring.get(timeout=0)
                if more is None:
                    break
                items += self.builder.push(more)
                self._listen(more)
            self._spool(items)
        if self.builder is not None:
            self._spool(self.builder.finish())
        self.processed.set()
        self.publisher.notify()

    def _listen(self, block: Block) -> None:
        """Digital zeros for ``SILENT_WARNING_S`` of audio: say what to check, once."""
        level = self.builder.level_dbfs if self.builder is not None else None
        if level is None:
            return
        rate = self.source.rate
        changed = self.silence.update(block.pos / rate, (block.pos + block.n) / rate, level)
        if changed:
            log.warning(
                "the %s has sent nothing but digital silence for %.0f s: is its capture muted "
                "or at zero (alsamixer, F4), the wrong input (--device) or the microphone "
                "unplugged? The hub shows this nursery's microphone as a problem",
                self.source.kind,
                SILENT_WARNING_S,
            )
        elif changed is False:
            log.info("the %s hears sound again", self.source.kind)

    def _spool(self, items: list[tuple[int, str, bytes]]) -> None:
        if items and self.builder is not None:
            self.spool.append(items, self.builder.state)
            self.publisher.notify()

    def _clips_off(self, msg: Received) -> None:
        refuse(
            self._warn, msg.topic, msg.payload, "clips are off (--clips / NURSERYCRY_EDGE_CLIPS)"
        )

    # -- heartbeat ---------------------------------------------------------
    def status(self) -> EdgeStatus:
        b = self.builder
        return EdgeStatus(
            device=self.settings.nursery,
            t=time.time(),
            software=f"nurserycry-edge {__version__}",
            source=self.source.kind,
            uptime_s=time.monotonic() - self.started,
            frames_captured=b.frames if b else 0,
            messages_sent=self.publisher.sent,
            overruns=self.ring.overruns,
            spool_depth=self.spool.depth,
            spool_dropped=self.spool.dropped,
            level_dbfs=b.level_dbfs if b else None,
            clock_synchronised=clock_synchronised(),
            clock_offset_s=round(b.clock_offset, 3) if b else 0.0,
        )

    def _heartbeat(self) -> None:
        status = self.status()
        synced = status.clock_synchronised
        if synced and self._synced is False and self.builder is not None:
            log.info("the system clock is synchronised (NTP): capture times step to it")
            self.builder.ntp_synchronised()
        self._synced = synced
        if status.overruns > self._overruns_logged:
            log.warning(
                "audio overruns: %d block(s) dropped so far (processing too slow)",
                status.overruns,
            )
            self._overruns_logged = status.overruns
        if not self.link.connected:
            return
        topic = self.topics.nursery(self.settings.nursery, "status")
        self.link.publish(topic, status.encode(), qos=0)
