"""Partitioned hubs: one persistent MQTT session per owned partition, acks held until used.

On a NATS cluster (``compose/cluster/``) the broker maps ``{prefix}/N/features``
to ``hubs/K/{prefix}/N/features`` (``K = partition(N, count)``, see
:mod:`nurserycry.shared.topics`). A hub given ``partitions`` opens, per owned
K, a session whose client id comes from K alone: a second hub started for the
same K takes the session over (the broker closes the first), so two hubs never
share, and split, one nursery's messages.

A feature message is acknowledged only once the hub no longer needs it: when
every window its frames belong to has been scored and written (or when it was
a duplicate or rejected). What a stopped hub had not finished is therefore
redelivered to the next owner, which starts exactly where the windows stopped:
no window lost, none made twice. The redelivery comes after the broker's
``ack_wait`` and behind newer messages, so these hubs hold a nursery's first
messages (``Ingest(hold_first=True)``) for ``reorder_wait_s``; set it above
the broker's ``ack_wait``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from nurserycry.shared.mqtt import Handler, MqttLink, Received
from nurserycry.shared.topics import Topics, partition

from .ingest import Accepted, Ingest
from .settings import HubMqttSettings


def partition_links(settings: HubMqttSettings, topics: Topics, handler: Handler) -> list[MqttLink]:
    """One link per owned partition, subscribed to its features with manual acks."""
    links = []
    for k in settings.owned:
        link = MqttLink(
            settings, topics.partition_client_id(k), persistent_session=True, manual_ack=True
        )
        link.subscribe(topics.partition_features(k), handler, qos=1)
        links.append(link)
    return links


def misrouted(topics: Topics, topic: str, nursery: str, count: int) -> str | None:
    """Why a partitioned features topic does not belong where it came from, else None."""
    k = topics.partition_of(topic)
    if k is None:
        return None
    expected = partition(nursery, count)
    if k == expected:
        return None
    return (
        f"arrived on partition {k}, but with {count} partitions {nursery} is in partition "
        f"{expected}: the broker's mapping {{{{partition(N,1)}}}} and the hub's "
        "partition_count must be the same number"
    )


class Shard:
    """What a partitioned hub does differently with a message (processing thread)."""

    def __init__(self, topics: Topics, settings: HubMqttSettings, ingest: Ingest) -> None:
        self.topics, self.ingest = topics, ingest
        self.count = settings.partition_count
        self.owned = frozenset(settings.owned)
        self.acks = AckLedger()

    def owns(self, nursery: str) -> bool:
        return partition(nursery, self.count) in self.owned

    def features(self, nursery: str, msg: Received) -> list[Accepted]:
        """Feed a partition's features message; acknowledge it at once if it is of no use."""
        ack = msg.ack
        if ack is None:  # not from a partition session (e.g. a direct publish): as usual
            return self.ingest.feed(msg.topic, msg.payload)
        wrong = misrouted(self.topics, msg.topic, nursery, self.count)
        if wrong is not None:
            self.ingest.reject("rejected_topic", nursery, msg.topic, wrong)
            ack()
            return []
        got = self.ingest.feed(msg.topic, msg.payload, ack)
        self.acks.fed(ack, got, self.ingest.holds(nursery, ack))
        return got


class AckLedger:
    """Acknowledges each message once its frames are used (processing thread only)."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[tuple[str, int, Callable[[], None]]]] = {}

    def fed(self, ack: Callable[[], None], accepted: list[Accepted], held: bool) -> None:
        """After ``Ingest.feed``: neither accepted nor held means dropped (a duplicate, a
        rejection): nothing will come of it, so acknowledge it now."""
        if not held and not any(a.token is ack for a in accepted):
            ack()

    def used(self, accepted: list[Accepted], retained_from: Callable[[str], int | None]) -> None:
        """After the engine processed ``accepted`` and the outputs were written: ack every
        message whose frames no window needs any more (``retained_from``: the first frame
        index still waiting, per nursery)."""
        current: dict[str, str] = {}
        for a in accepted:
            current[a.nursery] = a.msg.stream
            if callable(a.token):  # an ack: held until the frames are used
                end = a.msg.frame_index + a.msg.n_frames
                self._waiting.setdefault(a.nursery, deque()).append((a.msg.stream, end, a.token))
        for nursery, stream in current.items():
            waiting = self._waiting.get(nursery)
            start = retained_from(nursery)
            while waiting and (start is None or waiting[0][0] != stream or waiting[0][1] <= start):
                waiting.popleft()[2]()

    @property
    def waiting(self) -> int:
        """Messages used but not yet acknowledged (their frames wait for a window)."""
        return sum(len(q) for q in self._waiting.values())
