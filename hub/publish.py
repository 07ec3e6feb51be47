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
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from nurserycry.shared.schemas import Detection, HubStatus
from nurserycry.shared.topics import Topics

from . import discovery
from .engine import Outputs

log = logging.getLogger(__name__)


class Link(Protocol):
    """The part of :class:`~nurserycry.shared.mqtt.MqttLink` the publisher uses."""

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
    ) -> Any: ...


class Publisher:
    def __init__(self, link: Link, topics: Topics, detections: bool = True) -> None:
        self.link, self.topics, self.detections = link, topics, detections
        self._announced: set[str] = set()

    def outputs(self, out: Outputs) -> None:
        topics, link = self.topics, self.link
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
        for nursery, state in out.states.items():
            link.publish(topics.nursery(nursery, "state"), state.encode(), qos=1, retain=True)

    def status(self, status: HubStatus) -> None:
        self.link.publish(self.topics.hub("status"), status.encode(), qos=0)

    def announce(self, nursery: str, again: bool = False) -> None:
        """Discovery for a nursery: once, or again when Home Assistant restarted."""
        if nursery in self._announced and not again:
            return
        self._announced.add(nursery)
        for topic, payload in discovery.messages(self.topics, nursery):
            self.link.publish(topic, payload, qos=1, retain=True)
        log.info("published Home Assistant discovery for %s", nursery)

    def announce_all(self) -> None:
        for nursery in sorted(self._announced):
            self.announce(nursery, again=True)
