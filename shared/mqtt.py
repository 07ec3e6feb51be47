"""The MQTT edge of the program: a small interface over paho-mqtt 2.

Threads, on purpose: paho runs its network loop in its own thread
(``loop_start``) and reconnects there with exponential backoff; callbacks run
on that thread and must return quickly (hand work to a queue). Everything
else in NurseryCry talks to the :class:`Link` protocol only (plain values in and
out: a :class:`Received` message, a :class:`Published` receipt; nothing of paho's),
so tests replace :class:`MqttLink` with an in-memory link and need no broker.

MQTT 3.1.1 is the default (the embedded amqtt broker speaks nothing newer);
``protocol: "5"`` turns on MQTT 5 where the broker has it.

A broker list (``mqtt://a:1883,mqtt://b:1883``: the nodes of one cluster) is
tried in turn: after a lost or failed connection the link reconnects to the
next one. A subscription the broker refuses (SUBACK failure, e.g. while a
NATS cluster elects a new leader) is retried with backoff, and the link is not
*connected* until every subscription is granted. With ``manual_ack`` a QoS 1
message is acknowledged only when its :attr:`Received.ack` is called (what the
program has not used yet is sent again to the session's next connection).
"""

from __future__ import annotations

import itertools
import logging
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .config import MqttSettings

log = logging.getLogger(__name__)

_UNACKED_PRUNE: Final = 1000
_RETRY_MIN_S, _RETRY_MAX_S = 0.5, 30.0


class Ack:
    """Acknowledges one received QoS 1 message (a no-op once acknowledged, after a
    reconnection, or for QoS 0); only links with ``manual_ack`` hand these out."""

    __slots__ = ("_link", "_mid", "_serial")

    def __init__(self, link: MqttLink, mid: int, serial: int) -> None:
        self._link, self._mid, self._serial = link, mid, serial

    def __call__(self) -> None:
        self._link._ack(self._mid, self._serial)


@dataclass(frozen=True)
class Received:
    """A message the link hands to a subscriber."""

    topic: str
    payload: bytes
    retain: bool = False  # the broker kept it: sent because we subscribed, not just now
    # manual_ack links: call it once the message is used (else it comes again)
    ack: Callable[[], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Published:
    """What :meth:`Link.publish` says about a message it took."""

    mid: int  # message id; ``on_published`` reports it once the broker has it (QoS 1)
    sent: bool  # handed to the network now (False: not connected; QoS 1 goes on reconnect)


Handler = Callable[[Received], None]
PublishedCallback = Callable[[int], None]


class Link(Protocol):
    """One MQTT connection as every role uses it (:class:`MqttLink`, or a test's double)."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, final: list[tuple[str, str]] | None = None, timeout: float = 5.0) -> None: ...

    def wait_connected(self, timeout: float | None = None) -> bool: ...

    def on_connect(self, hook: Callable[[], None]) -> None: ...

    def on_published(self, callback: PublishedCallback) -> None: ...

    def while_away(self, note: Callable[[], str]) -> None: ...

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None: ...

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> Published: ...


class MqttLink:
    """One connection: last will, retained birth messages, resubscribe on reconnect."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        will: tuple[str, str] | None = None,
        birth: list[tuple[str, str]] | None = None,
        persistent_session: bool = False,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        manual_ack: bool = False,
    ) -> None:
        self.settings = settings
        self._subs: dict[str, tuple[int, Handler]] = {}
        self._birth = list(birth or [])
        self._connected = threading.Event()
        self._stopping = False
        self._awaiting_suback: dict[int, str] = {}
        self._sub_lock = threading.RLock()  # a retry subscribes from a timer thread
        self._retry_s: dict[str, float] = {}
        self._timers: set[threading.Timer] = set()
        self._addresses = settings.addresses
        self._address = 0
        self._manual_ack = manual_ack
        self._ack_lock = threading.Lock()
        self._outstanding: dict[int, int] = {}  # mid -> serial of its latest delivery
        self._serials = itertools.count(1)
        self._on_connect_hooks: list[Callable[[], None]] = []
        self._on_published: PublishedCallback | None = None
        self._away_note: Callable[[], str] | None = None
        self._failures = 0  # failed attempts since the last good connection
        self._delays_taken = 0  # paho's reconnect delays used up since then
        self._first_attempt = True
        self._session_up = False  # the broker accepted us (CONNACK), not yet disconnected
        self._backoff = (max(1, int(min_backoff_s)), int(max_backoff_s))
        self._unacked: dict[int, paho.MQTTMessageInfo] = {}  # QoS 1, for wait_published
        self._unacked_lock = threading.Lock()
        self._prune_at = _UNACKED_PRUNE
        v5 = settings.protocol == "5"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else not persistent_session,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=True,
            manual_ack=manual_ack,
        )
        self._v5 = v5
        self._persistent = persistent_session
        self._client.reconnect_delay_set(min_delay=self._backoff[0], max_delay=self._backoff[1])
        self._client.max_inflight_messages_set(100)
        self._client.max_queued_messages_set(0)
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else None
            self._client.username_pw_set(settings.username, password)
        if settings.tls:
            ca = str(settings.tls_ca_file) if settings.tls_ca_file else None
            self._client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
            self._client.tls_insecure_set(settings.tls_insecure)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.on_connect = self._handle_connect
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_publish = self._handle_publish
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_message = self._handle_unmatched

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; retries until :meth:`stop`."""
        self._connect_async()
        self._client.loop_start()

    def _connect_async(self) -> None:
        """Point paho at the current broker; its network loop (re)connects there."""
        props = None
        if self._v5 and self._persistent:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 24 * 3600
        host, port = self._addresses[self._address]
        self._client.connect_async(
            host,
            port,
            keepalive=self.settings.keepalive,
            clean_start=not self._persistent if self._v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )

    def stop(self, final: list[tuple[str, str]] | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` retained messages (e.g. ``offline``), then disconnect."""
        if self._connected.is_set():
            for topic, payload in final or []:
                info = self._client.publish(topic, payload, qos=1, retain=True)
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError):
                    log.warning("could not publish %s before disconnecting", topic)
        self._stopping = True
        for timer in list(self._timers):
            timer.cancel()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until connected with every subscription acknowledged by the broker."""
        return self._connected.wait(timeout)

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` (on the network thread) after every (re)connection."""
        self._on_connect_hooks.append(hook)

    def while_away(self, note: Callable[[], str]) -> None:
        """Add ``note()`` (what happens meanwhile, e.g. spooling) to each failed attempt's log."""
        self._away_note = note

    def on_published(self, callback: PublishedCallback) -> None:
        """Call ``callback(mid)`` when the broker acknowledged a QoS 1 publish."""
        self._on_published = callback

    @property
    def address(self) -> str:
        """``host:port`` of the broker in use (or tried next)."""
        host, port = self._addresses[self._address]
        return f"{host}:{port}"

    # -- traffic ---------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        self._subs[topic_filter] = (qos, handler)
        self._client.message_callback_add(topic_filter, self._wrap(handler))
        if self.connected:
            self._client.subscribe(topic_filter, qos)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> Published:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0:
            with self._unacked_lock:
                self._unacked[info.mid] = info
                if len(self._unacked) > self._prune_at:
                    self._prune()
        return Published(info.mid, info.rc == paho.MQTT_ERR_SUCCESS)

    def wait_published(self, timeout: float | None = None) -> bool:
        """Wait until the broker acknowledged every QoS 1 message published so far."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._unacked_lock:
            infos = list(self._unacked.values())
        for info in infos:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                info.wait_for_publish(left)
            except (RuntimeError, ValueError):  # not connected, or paho's queue was full
                return False
            if not info.is_published():
                return False
        with self._unacked_lock:
            self._prune()
        return True

    def _prune(self) -> None:
        """Forget acknowledged messages (lock held). The next prune waits until the dict
        has doubled, so a long unacknowledged backlog costs O(1) per publish, not O(n)."""
        self._unacked = {m: i for m, i in self._unacked.items() if not _acknowledged(i)}
        self._prune_at = max(_UNACKED_PRUNE, 2 * len(self._unacked))

    def _ack(self, mid: int, serial: int) -> None:
        with self._ack_lock:
            if self._outstanding.get(mid) != serial:
                return  # acknowledged already, or from a connection since lost
            del self._outstanding[mid]
        self._client.ack(mid, 1)

    # -- paho callbacks (network thread) ---------------------------------
    def _wrap(self, handler: Handler) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
        def call(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            ack = None
            if self._manual_ack and msg.qos > 0:
                serial = next(self._serials)
                with self._ack_lock:
                    self._outstanding[msg.mid] = serial
                ack = Ack(self, msg.mid, serial)
            try:
                handler(Received(msg.topic, bytes(msg.payload), bool(msg.retain), ack))
            except Exception:
                log.exception("handler for %s failed", msg.topic)

        return call

    def _handle_unmatched(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        log.debug("message on %s matched no handler", msg.topic)

    def _handle_connect(
        self,
        client: paho.Client,
        _u: Any,
        flags: paho.ConnectFlags,
        rc: ReasonCode,
        _p: Properties | None,
    ) -> None:
        if rc.is_failure:
            self._log_failure(f"the broker refused the connection: {rc}")
            return
        self._failures = self._delays_taken = 0
        self._first_attempt, self._session_up = False, True
        log.info("connected to %s (session present: %s)", self.address, flags.session_present)
        with self._ack_lock:
            self._outstanding.clear()  # packet ids of the lost connection mean nothing now
        self._awaiting_suback.clear()
        for topic_filter in self._subs:
            self._send_subscribe(topic_filter)
        if not self._awaiting_suback:
            self._ready()

    def _send_subscribe(self, topic_filter: str) -> None:
        with self._sub_lock:  # the SUBACK may be handled before subscribe() returns
            _rc, mid = self._client.subscribe(topic_filter, self._subs[topic_filter][0])
            if mid is not None:
                self._awaiting_suback[mid] = topic_filter

    def _handle_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        # paho calls this inside its ``except OSError`` around the connection attempt
        exc = sys.exc_info()[1]
        # a first attempt that fails this way is retried by paho's main loop only
        # after its first-connection loop waited too: two delays
        delays = 2 if self._first_attempt else 1
        self._log_failure(f"cannot connect: {exc}" if exc else "cannot connect", delays)
        self._fail_over()

    def _fail_over(self) -> None:
        """Reconnect to the next broker of the list (paho keeps its backoff)."""
        if len(self._addresses) < 2 or self._stopping:
            return
        self._address = (self._address + 1) % len(self._addresses)
        self._connect_async()  # paho's loop reconnects there after its delay

    def _log_failure(self, why: str, delays: int = 1) -> None:
        """One line per failed attempt, with the wait paho applies before the next one
        (its delay doubles at each wait, from ``min_backoff_s`` up to ``max_backoff_s``)."""
        self._first_attempt = False
        if self._stopping:
            return
        self._failures += 1
        low, high = self._backoff
        taken = self._delays_taken
        wait = sum(min(low * 2**k, high) for k in range(taken, taken + delays))
        self._delays_taken += delays
        note = ""
        if self._away_note is not None:
            try:
                note = f"; {self._away_note()}"
            except Exception:
                log.exception("while-away note failed")
        log.warning(
            "broker %s: %s (attempt %d); retrying the connection in %d s%s",
            self.settings.broker,
            why,
            self._failures,
            wait,
            note,
        )

    def _handle_subscribe(
        self, _c: paho.Client, _u: Any, mid: int, rcs: list[ReasonCode], _p: Properties | None
    ) -> None:
        with self._sub_lock:
            topic_filter = self._awaiting_suback.pop(mid, None)
        if topic_filter is None:
            return
        if any(rc.is_failure for rc in rcs):
            delay = self._retry_s.get(topic_filter, _RETRY_MIN_S)
            self._retry_s[topic_filter] = min(_RETRY_MAX_S, delay * 2)
            log.warning(
                "broker %s refused the subscription to %s (%s); retrying in %.1f s",
                self.address,
                topic_filter,
                ", ".join(str(rc) for rc in rcs),
                delay,
            )
            self._awaiting_suback[-mid] = topic_filter  # not ready until it is granted
            timer = threading.Timer(delay, self._retry, (topic_filter, -mid))
            timer.daemon = True
            self._timers.add(timer)
            timer.start()
            return
        self._retry_s.pop(topic_filter, None)
        if not self._awaiting_suback:
            self._ready()

    def _retry(self, topic_filter: str, placeholder: int) -> None:  # timer thread
        self._timers = {t for t in self._timers if t.is_alive()}
        with self._sub_lock:
            if self._stopping or self._awaiting_suback.pop(placeholder, None) is None:
                return  # stopped, or reconnected meanwhile (which subscribed again)
            self._send_subscribe(topic_filter)

    def _ready(self) -> None:
        """Connected and every subscription acknowledged: nothing sent to us is missed.
        Only now say ``online`` (the birth messages), so "online" means "listening"."""
        for topic, payload in self._birth:
            self._client.publish(topic, payload, qos=1, retain=True)
        self._connected.set()
        for hook in self._on_connect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")

    def _handle_disconnect(
        self,
        _c: paho.Client,
        _u: Any,
        _f: paho.DisconnectFlags,
        rc: ReasonCode,
        _p: Properties | None,
    ) -> None:
        if self._connected.is_set() and not self._stopping:
            low = self._backoff[0]
            log.warning(
                "disconnected from %s: %s; reconnecting in %d s", self.settings.broker, rc, low
            )
        if self._session_up:  # paho waits its shortest delay before the next attempt
            self._session_up, self._delays_taken = False, 1
        self._connected.clear()
        self._fail_over()

    def _handle_publish(
        self, _c: paho.Client, _u: Any, mid: int, _rc: ReasonCode, _p: Properties | None
    ) -> None:
        with self._unacked_lock:
            self._unacked.pop(mid, None)
        if self._on_published is not None:
            self._on_published(mid)


def _acknowledged(info: paho.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # published while disconnected: paho sends it on
        return False  # reconnecting, and its PUBACK removes it (``_handle_publish``)
