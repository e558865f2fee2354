"""The error hierarchy.

Every error resilientmq raises derives from :class:`ResilientMQError`. Whether retrying can help is a
property of the class (``retriable``), decided once here and read by the resilience core; the adapters
translate their client library's errors into these classes in one place each.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "BufferCorruptError",
    "BufferFullError",
    "BufferInUseError",
    "ClientClosedError",
    "ConnectionLostError",
    "DestinationError",
    "InvalidMessageError",
    "MQClientUnavailableError",
    "MessageTooLargeError",
    "OutcomeUnknownError",
    "PermanentDeliveryError",
    "ReconnectFailedError",
    "ResilientMQError",
    "TransactionRolledBackError",
    "is_retriable",
]


class ResilientMQError(Exception):
    """Root of every error raised by resilientmq."""

    retriable: ClassVar[bool] = False


class ConnectionLostError(ResilientMQError):
    """The connection to the broker broke or could not be made; reconnecting may help."""

    retriable = True


class ReconnectFailedError(ResilientMQError):
    """Every connection attempt allowed by the reconnect policy failed.

    The last underlying error is chained as ``__cause__``.
    """


class AuthenticationError(ResilientMQError):
    """The broker refused the credentials; retrying with the same ones cannot succeed."""


class PermanentDeliveryError(ResilientMQError):
    """The broker rejected a message for a reason retrying cannot fix."""


class DestinationError(PermanentDeliveryError):
    """The destination is unknown, malformed or forbidden to this user."""


class MessageTooLargeError(PermanentDeliveryError):
    """The message is larger than the broker (or the configured limit) accepts."""


class InvalidMessageError(ResilientMQError, ValueError):
    """The caller passed a message or destination that cannot be sent (bad input)."""


class BufferFullError(ResilientMQError):
    """The outbox is full and the overflow policy refused the message."""

    retriable = True


class BufferCorruptError(ResilientMQError):
    """A durable buffer file is corrupt, or is not a resilientmq buffer."""


class BufferInUseError(ResilientMQError):
    """Another live process (or client) holds this durable buffer file."""


class ClientClosedError(ResilientMQError):
    """The client was closed; it accepts no more messages."""


class TransactionRolledBackError(ResilientMQError):
    """The connection broke inside a unit of work, so the broker backed it out."""


class OutcomeUnknownError(ResilientMQError):
    """A commit was sent but its outcome is unknown (it may or may not have happened)."""


class MQClientUnavailableError(ResilientMQError, ImportError):
    """No IBM MQ client library (``ibmmq`` or ``pymqi`` with IBM's C client) could be loaded."""


def is_retriable(exc: BaseException) -> bool:
    """True when retrying the operation that raised ``exc`` may succeed."""
    return isinstance(exc, ResilientMQError) and exc.retriable
