"""What the hub does with each message it receives: one table from topic to handler.

======================================  ===  ==========================================
topic                                   QoS  handler
======================================  ===  ==========================================
``{prefix}/N/features``                 1    validate and order (:mod:`.ingest`)
``hubs/K/{prefix}/N/features``          1    the same, per owned partition K (:mod:`.partitions`)
``{prefix}/N/availability``             1    the edge's last will (:mod:`.edges`)
``{prefix}/N/status``                   0    the edge's heartbeat (:mod:`.edges`)
``{prefix}/N/clip``                     1    a clip of an alert (:mod:`.sinks.clips`), if on
``{prefix}/hub/command``                1    ``reload-model``
``homeassistant/status``                1    ``online``: discovery and states again
(the link reconnected)                       discovery and states again
anything else                                counted and logged as ``rejected_topic``
======================================  ===  ==========================================

A *retained* features message is ignored (counted ``retained_ignored``): edges never
retain features, so one is old or forged and would pose as the stream at every
subscription. :meth:`HubRoutes.handle` runs on the processing thread, one message at a
time; feature messages that may be used now collect until :meth:`HubRoutes.take`.
Adding a topic is one row in the table :class:`HubRoutes` builds (and the handler).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from nurserycry.shared.mqtt import Received
from nurserycry.shared.topics import HUB_NAME, ONLINE, NurseryTopic, Topics

from .edges import Edges
from .ingest import Accepted, Ingest
from .partitions import Shard
from .sinks.clips import ClipCollector
from .sinks.mqtt import MqttSink

log = logging.getLogger(__name__)

RELOAD_COMMAND: Final = b"reload-model"
RECONNECTED: Final = Received("", b"")  # queued by the hub when the link (re)connects

Handler = Callable[[Received], None]
NurseryHandler = Callable[[str, Received], None]  # (nursery, message)


@dataclass(frozen=True)
class Subscription:
    topic_filter: str
    qos: int


class Routes:
    """Exact topics first, then nursery topics by kind (``{prefix}/N/<kind>``)."""

    def __init__(
        self,
        topics: Topics,
        exact: dict[str, tuple[int | None, Handler]],
        nursery: dict[NurseryTopic, tuple[int, NurseryHandler]],
        otherwise: Handler,
    ) -> None:
        self.topics = topics
        self._exact = {topic: handler for topic, (_q, handler) in exact.items()}
        self._nursery: dict[str, NurseryHandler] = {k: h for k, (_q, h) in nursery.items()}
        self._otherwise = otherwise
        self.subscriptions = [
            Subscription(topic, qos) for topic, (qos, _h) in exact.items() if qos is not None
        ]
        for kind, (qos, _h) in nursery.items():
            self.subscriptions.append(Subscription(topics.all_nurseries(kind), qos))

    def handle(self, msg: Received) -> None:
        handler = self._exact.get(msg.topic)
        if handler is not None:
            handler(msg)
            return
        parsed = self.topics.parse(msg.topic)
        if parsed is not None and parsed[1] in self._nursery:
            self._nursery[parsed[1]](parsed[0], msg)
            return
        self._otherwise(msg)


class HubRoutes:
    """The hub's handlers, and the table that routes to them."""

    def __init__(
        self,
        topics: Topics,
        ingest: Ingest,
        edges: Edges,
        mqtt: MqttSink,
        *,
        clips: ClipCollector | None,
        reload_model: Callable[[], object],
        shard: Shard | None = None,
    ) -> None:
        self.ingest, self.edges, self.mqtt = ingest, edges, mqtt
        self.shard = shard  # partitioned hubs: features per partition, only own nurseries
        self._reload_model = reload_model
        self._accepted: list[Accepted] = []
        self._own = f"{topics.prefix}/{HUB_NAME}/"
        nursery: dict[NurseryTopic, tuple[int, NurseryHandler]] = {
            "features": (1, self.features),
            "availability": (1, self.availability),
            "status": (0, self.edge_status),
        }
        if clips is not None:
            nursery["clip"] = (1, lambda _n, msg: clips.on_clip(msg))
        self.table = Routes(
            topics,
            exact={
                topics.hub("command"): (1, self.command),
                topics.ha_status: (1, self.home_assistant),
                RECONNECTED.topic: (None, self.reconnected),
            },
            nursery=nursery,
            otherwise=self.unrouted,
        )

    def handle(self, msg: Received) -> None:
        self.table.handle(msg)

    def take(self) -> list[Accepted]:
        """The feature messages usable now (with those whose wait for a gap ran out);
        their nurseries are announced to Home Assistant and marked as heard."""
        accepted, self._accepted = self._accepted + self.ingest.expire(), []
        for nursery in {a.nursery for a in accepted}:
            self.mqtt.announce(nursery)
            self.edges.heard(nursery)
        return accepted

    # -- handlers ------------------------------------------------------------
    def features(self, nursery: str, msg: Received) -> None:
        if msg.retain:  # an edge never retains features: old or forged, replayed (#14.3)
            self.ingest.counters.add("retained_ignored")
            self.ingest.reject.warnings.warn(
                (msg.topic, "retained"),
                "ignored a RETAINED features message on %s (edges never retain features); "
                "clear it with: mosquitto_pub -r -n -t %s (as that nursery's user)",
                msg.topic,
                msg.topic,
            )
            if msg.ack is not None:
                msg.ack()  # of no use: not to come again
            return
        if self.shard is not None:  # partitioned: acknowledged once its frames are used
            self._accepted += self.shard.features(nursery, msg)
        else:
            self._accepted += self.ingest.feed(msg.topic, msg.payload)

    def availability(self, nursery: str, msg: Received) -> None:
        if self._admits(nursery):
            self.edges.availability(nursery, msg.payload)

    def edge_status(self, nursery: str, msg: Received) -> None:
        if self._admits(nursery):
            self.edges.heartbeat(nursery, msg.topic, msg.payload)

    def _admits(self, nursery: str) -> bool:
        """Not allowed, or one too many: not tracked at all (counted); another hub's
        nursery (partitioned hubs): ignored."""
        if self.shard is not None and not self.shard.owns(nursery):
            return False
        if self.ingest.admits(nursery):
            return True
        self.ingest.counters.add("rejected_nursery")
        return False

    def command(self, msg: Received) -> None:
        command = msg.payload.strip()
        if command == RELOAD_COMMAND:
            log.info("reload-model requested")
            self._reload_model()
        else:
            log.warning("unknown hub command %r (known: reload-model)", command[:40])

    def home_assistant(self, msg: Received) -> None:
        if msg.payload.strip() == ONLINE.encode():
            log.info("Home Assistant is online: republishing discovery")
            self.mqtt.republish()

    def reconnected(self, _msg: Received) -> None:
        self.mqtt.republish()  # the broker may have lost retained messages

    def unrouted(self, msg: Received) -> None:
        if not msg.topic.startswith(self._own):  # our own status and will match +/...
            self._accepted += self.ingest.feed(msg.topic, msg.payload)  # counts the rejection
