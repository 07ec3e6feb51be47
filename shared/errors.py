"""Every error NurseryCry raises on purpose, under one root.

Catch :class:`NurseryCryError` for "anything we raised on purpose", or a
subclass for one kind; tell kinds apart by class, never by message text. The
built-in base beside each (``ValueError``, ``RuntimeError``) is kept so that
pydantic validators can raise them and older ``except`` clauses still match.

::

    NurseryCryError
    ├── ConfigError            a setting a person must fix (str() says how)
    ├── TopicError             a bad nursery name or topic prefix
    ├── MessageError           a payload that is not a valid message (.reason)
    │   └── UnsupportedVersionError  a schema version this build does not speak
    ├── ModelMismatchError     features from a frontend the model was not trained on
    ├── SourceError            the audio source cannot be opened
    └── BrokerStartError       the embedded broker could not listen
"""

from __future__ import annotations


class NurseryCryError(Exception):
    """The root of every error NurseryCry raises on purpose."""


class ConfigError(NurseryCryError):
    """Invalid configuration; ``str()`` is a message a person can act on."""


class TopicError(NurseryCryError, ValueError):
    """An invalid nursery name or topic prefix."""


class MessageError(NurseryCryError, ValueError):
    """A payload that is not a valid message; ``reason`` is one short line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedVersionError(MessageError):
    """A well-formed message of a schema version this build does not speak."""


class ModelMismatchError(NurseryCryError, RuntimeError):
    """The features were computed by a frontend the model was not trained on."""


class SourceError(NurseryCryError, RuntimeError):
    """The source cannot be opened (no such device, unreadable file ...)."""


class BrokerStartError(NurseryCryError, RuntimeError):
    """The embedded broker could not listen (port taken, amqtt missing ...)."""
