"""An in-memory :class:`~nurserycry.shared.mqtt.Link` (no broker): tests of routing,
reload and model swap, and of anything that publishes.

``deliver(topic, payload)`` plays a message from the broker (on the caller's
thread, as paho's network thread would); ``published`` lists what was sent;
retained messages are kept per topic and replayed to a later subscription with
``retain=True``, as a broker does. ``connect()`` / ``disconnect()`` play the
connection coming and going (hooks run on connect). QoS 1 publishes are
acknowledged at once (``on_published``) while connected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

from nurserycry.shared.mqtt import Handler, Published, PublishedCallback, Received


@dataclass(frozen=True)
class Sent:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class MemoryLink:
    def __init__(self, auto_ack: bool = True) -> None:
        """``auto_ack``: acknowledge QoS 1 publishes at once (else call :meth:`ack`)."""
        self.auto_ack = auto_ack
        self.published: list[Sent] = []
        self.retained: dict[str, bytes] = {}
        self.final: list[tuple[str, str]] = []
        self._subs: list[tuple[str, Handler]] = []
        self._hooks: list[Callable[[], None]] = []
        self._acked: PublishedCallback | None = None
        self.away_note: Callable[[], str] | None = None
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._mid = 0
        self.started = self.stopped = False

    # -- Link ------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self.started = True
        self.connect()

    def wait_published(self, timeout: float | None = None) -> bool:
        return True

    def stop(self, final: list[tuple[str, str]] | None = None, timeout: float = 5.0) -> None:
        for topic, payload in final or []:
            self.publish(topic, payload, qos=1, retain=True)
        self.final = list(final or [])
        self.stopped = True
        self._connected.clear()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def on_connect(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def on_published(self, callback: PublishedCallback) -> None:
        self._acked = callback

    def while_away(self, note: Callable[[], str]) -> None:
        self.away_note = note

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        self._subs.append((topic_filter, handler))
        for topic, payload in list(self.retained.items()):
            if topic_matches_sub(topic_filter, topic):
                handler(Received(topic, payload, retain=True))

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> Published:
        data = payload.encode() if isinstance(payload, str) else payload
        with self._lock:
            self._mid += 1
            mid = self._mid
            self.published.append(Sent(topic, data, qos, retain))
            if retain:
                self.retained[topic] = data
        if self.connected and qos > 0 and self.auto_ack:
            self.ack(mid)
        return Published(mid, self.connected)

    def ack(self, mid: int) -> None:
        """The broker's PUBACK for message ``mid``."""
        if self._acked is not None:
            self._acked(mid)

    # -- playing the broker ----------------------------------------------
    def connect(self) -> None:
        self._connected.set()
        for hook in self._hooks:
            hook()

    def disconnect(self) -> None:
        self._connected.clear()

    def deliver(self, topic: str, payload: bytes | str, retain: bool = False) -> int:
        """Hand a message to every matching subscription; returns how many took it."""
        data = payload.encode() if isinstance(payload, str) else payload
        handlers = [h for f, h in self._subs if topic_matches_sub(f, topic)]
        for handler in handlers:
            handler(Received(topic, data, retain))
        return len(handlers)

    def on(self, topic: str) -> list[bytes]:
        """Payloads published on ``topic`` so far, in order."""
        with self._lock:
            return [s.payload for s in self.published if s.topic == topic]

    def topics(self) -> list[str]:
        with self._lock:
            return [s.topic for s in self.published]
