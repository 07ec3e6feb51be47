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

A sharded hub (``Topics.hub_id``, its client id) says its availability and status on
``{prefix}/hub/<hub_id>/availability`` and ``…/status``, so that one hub's last will does
not mark the nurseries of another unavailable.

``hub`` is reserved and cannot be a nursery name.

Partitioned hubs (a NATS cluster, ``compose/cluster/``): the broker maps each
nursery's features to ``hubs/K/{prefix}/N/features`` with
``K = fnv1a_32(N) % partition_count`` (NATS's ``{{partition(count,1)}}``), and a
hub that owns partition K subscribes ``hubs/K/{prefix}/+/features`` with one
persistent session per partition (:meth:`Topics.partition_client_id`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from .errors import TopicError
from .schemas.types import HUB_NAME as _HUB_NAME
from .schemas.types import NURSERY_ID_PATTERN

NurseryTopic = Literal[
    "features", "availability", "status", "clip", "command", "state", "detection", "event"
]
HubTopic = Literal["availability", "status", "command"]

DEFAULT_PREFIX: Final = "nurserycry"
DEFAULT_DISCOVERY_PREFIX: Final = "homeassistant"
HUB_NAME: Final = _HUB_NAME  # the hub's own topic level, never a nursery name
ONLINE: Final = "online"
OFFLINE: Final = "offline"

PARTITION_ROOT: Final = "hubs"
MAX_PARTITIONS: Final = 1024

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


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a, the hash NATS's ``partition()`` subject mapping uses."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def partition(nursery: str, count: int) -> int:
    """The partition of ``nursery``, as NATS's ``{{partition(count,1)}}`` computes it."""
    return fnv1a_32(nursery.encode()) % count


def parse_partitions(spec: str, count: int) -> tuple[int, ...]:
    """``"0-7,12"`` -> ``(0, 1, ..., 7, 12)``; every one below ``count``."""
    out: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise TopicError(f"invalid partitions {spec!r}: use e.g. '0-7' or '0,2,5-9'")
        first, last = int(lo), int(hi) if sep else int(lo)
        if first > last or last >= count:
            raise TopicError(
                f"invalid partitions {spec!r}: ranges go up and stay below the partition "
                f"count {count} (0-{count - 1})"
            )
        out.update(range(first, last + 1))
    return tuple(sorted(out))


_HUB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    # sharded hubs: each says its own availability and status under its id, so that one
    # hub's last will marks only its own nurseries unavailable (None: the one hub)
    hub_id: str | None = None

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_prefix(self.discovery_prefix)
        if self.hub_id is not None and not _HUB_ID_RE.match(self.hub_id):
            raise TopicError(f"invalid hub id {self.hub_id!r}: letters, digits, '-' and '_'")

    def nursery(self, nursery: str, kind: NurseryTopic) -> str:
        return f"{self.prefix}/{check_nursery(nursery)}/{kind}"

    def all_nurseries(self, kind: NurseryTopic) -> str:
        """Subscription filter for one kind of topic from every nursery."""
        return f"{self.prefix}/+/{kind}"

    def hub(self, kind: HubTopic) -> str:
        """The hub's topics; a sharded hub's availability and status carry its id
        (``{prefix}/hub/{hub_id}/availability``), its commands are every hub's."""
        if self.hub_id is not None and kind != "command":
            return f"{self.prefix}/{HUB_NAME}/{self.hub_id}/{kind}"
        return f"{self.prefix}/{HUB_NAME}/{kind}"

    def partition_features(self, k: int) -> str:
        """Subscription filter for the features of every nursery in partition ``k``."""
        return f"{PARTITION_ROOT}/{k}/{self.prefix}/+/features"

    def partition_client_id(self, k: int) -> str:
        """The one MQTT session of partition ``k``: the same for whichever hub owns it,
        so a second owner takes the session over instead of sharing the messages."""
        return f"{self.prefix.replace('/', '-')}-partition-{k}"

    def partition_of(self, topic: str) -> int | None:
        """K of ``hubs/K/...``; None for a topic outside the partition layout."""
        root, _, rest = topic.partition("/")
        k, _, _ = rest.partition("/")
        if root != PARTITION_ROOT or not k.isdigit() or len(k) > 4:
            return None
        return int(k)

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``(nursery, kind)`` for a nursery topic under this prefix (or its partitioned
        form ``hubs/K/{prefix}/N/features``), else None."""
        partitioned = self.partition_of(topic) is not None
        if partitioned:
            topic = topic.split("/", 2)[2]
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 2 or parts[0] == HUB_NAME or not _NURSERY_RE.match(parts[0]):
            return None
        if partitioned and parts[1] != "features":
            return None
        return parts[0], parts[1]

    def discovery(self, component: str, nursery: str, object_id: str) -> str:
        node = f"nurserycry_{check_nursery(nursery)}"
        return f"{self.discovery_prefix}/{component}/{node}/{object_id}/config"

    def hub_discovery(self, component: str, object_id: str) -> str:
        """The hub's own entities (no nursery can be called ``hub``)."""
        return f"{self.discovery_prefix}/{component}/{self.hub_device_id}/{object_id}/config"

    @property
    def hub_device_id(self) -> str:
        """The hub's device in Home Assistant: one per sharded hub."""
        base = f"nurserycry_{HUB_NAME}"
        return base if self.hub_id is None else f"{base}_{self.hub_id.replace('-', '_')}"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"
