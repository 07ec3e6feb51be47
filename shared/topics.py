"""Every MQTT topic in one place.

Per nursery ``N`` under a configurable prefix (default ``nurserycry``):

=====================================  ======  ========  =========================
topic                                  from    retained  payload
=====================================  ======  ========  =========================
``{prefix}/N/features``                edge    no        ``AudioFeatures`` (QoS 1)
``{prefix}/N/availability``            edge    yes       ``online`` / ``offline`` (last will)
``{prefix}/N/status``                  edge    no        ``EdgeStatus`` heartbeat
``{prefix}/N/clip``                    edge    no        ``RawClip`` (opt-in only)
``{prefix}/N/command``                 hub     no        ``clip`` request to the edge
``{prefix}/N/state``                   hub     yes       ``NurseryState``
``{prefix}/N/detection``               hub     no        ``Detection`` per window
``{prefix}/N/event``                   hub     no        ``EpisodeEvent`` (QoS 1)
``{prefix}/hub/availability``          hub     yes       ``online`` / ``offline`` (last will)
``{prefix}/hub/status``                hub     no        ``HubStatus`` heartbeat
``{prefix}/hub/command``               anyone  no        ``reload-model``
``homeassistant/<component>/…/config`` hub     yes       Home Assistant discovery
``homeassistant/status``               HA      yes       ``online`` -> hub republishes
=====================================  ======  ========  =========================

``hub`` is reserved and cannot be a nursery name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from .errors import TopicError
from .schemas.types import NURSERY_ID_PATTERN

NurseryTopic = Literal[
    "features", "availability", "status", "clip", "command", "state", "detection", "event"
]
HubTopic = Literal["availability", "status", "command"]

DEFAULT_PREFIX: Final = "nurserycry"
DEFAULT_DISCOVERY_PREFIX: Final = "homeassistant"
HUB_NAME: Final = "hub"
ONLINE: Final = "online"
OFFLINE: Final = "offline"

_NURSERY_RE = re.compile(NURSERY_ID_PATTERN)
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def check_nursery(name: str) -> str:
    if not _NURSERY_RE.match(name) or name == HUB_NAME:
        raise TopicError(
            f"invalid nursery name {name!r}: use lower-case letters, digits, '-' and '_' "
            f"(at most 48, not 'hub'), e.g. 'nursery-1'"
        )
    return name


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise TopicError(f"invalid topic prefix {prefix!r}: letters, digits, '-', '_' and '/'")
    return prefix


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_prefix(self.discovery_prefix)

    def nursery(self, nursery: str, kind: NurseryTopic) -> str:
        return f"{self.prefix}/{check_nursery(nursery)}/{kind}"

    def all_nurseries(self, kind: NurseryTopic) -> str:
        """Subscription filter for one kind of topic from every nursery."""
        return f"{self.prefix}/+/{kind}"

    def hub(self, kind: HubTopic) -> str:
        return f"{self.prefix}/{HUB_NAME}/{kind}"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``(nursery, kind)`` for a nursery topic under this prefix, else None."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 2 or parts[0] == HUB_NAME or not _NURSERY_RE.match(parts[0]):
            return None
        return parts[0], parts[1]

    def discovery(self, component: str, nursery: str, object_id: str) -> str:
        node = f"nurserycry_{check_nursery(nursery)}"
        return f"{self.discovery_prefix}/{component}/{node}/{object_id}/config"

    def hub_discovery(self, component: str, object_id: str) -> str:
        """The hub's own entities (no nursery can be called ``hub``)."""
        return f"{self.discovery_prefix}/{component}/nurserycry_{HUB_NAME}/{object_id}/config"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"
