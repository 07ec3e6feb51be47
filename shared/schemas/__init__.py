"""Every message on the wire, one module per family (features, status,
detection, episode, clip). Each is versioned and strict; see ``base``."""

from ..errors import MessageError, UnsupportedVersionError
from .base import Message, summarise
from .clip import RawClip
from .detection import Detection, Label, NurseryState
from .episode import EpisodeEvent
from .features import AudioFeatures
from .status import EdgeStatus, HubStatus
from .types import NURSERY_ID_PATTERN, EncodedArray, NurseryId


def all_messages() -> list[type[Message]]:
    """Every concrete message class (found by reflection, for tests and docs)."""
    found: list[type[Message]] = []
    stack = list(Message.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.TYPE)


__all__ = [
    "NURSERY_ID_PATTERN",
    "AudioFeatures",
    "Detection",
    "EdgeStatus",
    "EncodedArray",
    "EpisodeEvent",
    "HubStatus",
    "Label",
    "Message",
    "MessageError",
    "NurseryId",
    "NurseryState",
    "RawClip",
    "UnsupportedVersionError",
    "all_messages",
    "summarise",
]
