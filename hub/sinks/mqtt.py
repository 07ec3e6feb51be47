"""Hub outputs on MQTT: state, detections, episode events, status, discovery.

============================  ===  ======  ====================================
topic                         QoS  retain  when
============================  ===  ======  ====================================
``{prefix}/N/state``          1    yes     state change, else every few seconds
``{prefix}/N/detection``      0    no      every window (``detections: false`` off)
``{prefix}/N/event``          1    no      episode started / ended
``{prefix}/hub/status``       0    no      every ``status_interval_s``
discovery config topics       1    yes     nursery first seen; HA says online
============================  ===  ======  ====================================

QoS 1 messages published while the broker is away are queued by paho and
sent after it reconnects, so an alert is late rather than lost; QoS 0 ones
(detections, status) are dropped while disconnected.

The sink also keeps each nursery's latest state (what a live view shows, and
what is published again when Home Assistant or the broker comes back: the
broker may have lost its retained messages).
"""

from __future__ import annotations

import logging
import threading

from nurserycry.shared.mqtt import Link
from nurserycry.shared.schemas import Detection, HubStatus, NurseryState
from nurserycry.shared.topics import Topics

from .. import discovery
from ..engine import Outputs

log = logging.getLogger(__name__)


class MqttSink:
    """A :class:`~nurserycry.hub.sinks.Sink` onto the hub's MQTT link."""

    def __init__(self, link: Link, topics: Topics, detections: bool = True) -> None:
        self.link, self.topics, self.detections = link, topics, detections
        self._announced: set[str] = set()
        self._states: dict[str, NurseryState] = {}
        self._lock = threading.Lock()  # states are read by snapshot() from any thread
        self._entity_owner: dict[str, str] = {}  # HA entity id -> the nursery that has it
        self._refused: set[str] = set()

    def start(self) -> None:
        pass

    def close(self, timeout: float = 0.0) -> None:
        pass  # the hub stops the link itself, after its last words (``offline``)

    def states(self) -> dict[str, NurseryState]:
        with self._lock:
            return dict(self._states)

    def write(self, outputs: Outputs) -> None:
        out, topics, link = outputs, self.topics, self.link
        if out.latest:
            with self._lock:
                self._states.update(out.latest)
        if self.detections:
            for w in out.windows:
                det = Detection(
                    device=w.nursery,
                    t=w.t,
                    label=w.label,
                    cry_probability=w.probability,
                    level_dbfs=w.level_dbfs,
                    model=w.model,
                )
                link.publish(topics.nursery(w.nursery, "detection"), det.encode(), qos=0)
        for rec in out.events:
            link.publish(topics.nursery(rec.event.device, "event"), rec.event.encode(), qos=1)
        for state in [*out.transitions, *out.states.values()]:
            link.publish(topics.nursery(state.device, "state"), state.encode(), qos=1, retain=True)

    def status(self, status: HubStatus) -> None:
        self.link.publish(self.topics.hub("status"), status.encode(), qos=0)

    def announce(self, nursery: str, again: bool = False) -> None:
        """Discovery for a nursery: once, or again when Home Assistant restarted."""
        if nursery in self._announced and not again:
            return
        entity = discovery.config(self.topics, nursery, "crying")["default_entity_id"]
        owner = self._entity_owner.setdefault(entity, nursery)
        if owner != nursery:  # a-b and a_b: Home Assistant would mix up the two rooms
            if nursery not in self._refused:
                self._refused.add(nursery)
                log.error(
                    "NOT announcing nursery %s to Home Assistant: its entity ids (%s ...) are "
                    "those of nursery %s ('-' and '_' look the same there); rename one of "
                    "them. Its state and events are still published on MQTT.",
                    nursery,
                    entity,
                    owner,
                )
            return
        self._announced.add(nursery)
        for topic, payload in discovery.messages(self.topics, nursery):
            self.link.publish(topic, payload, qos=1, retain=True)
        log.info("published Home Assistant discovery for %s", nursery)

    def announce_all(self) -> None:
        """Everything again (Home Assistant restarted, or we reconnected), the hub first."""
        for topic, payload in discovery.hub_messages(self.topics):
            self.link.publish(topic, payload, qos=1, retain=True)
        for nursery in sorted(self._announced):
            self.announce(nursery, again=True)

    def republish(self) -> None:
        """Discovery and the last states again (Home Assistant or the broker restarted)."""
        self.announce_all()
        for state in self.states().values():
            self.link.publish(
                self.topics.nursery(state.device, "state"), state.encode(), qos=1, retain=True
            )
