"""resilientmq: drop-in messaging clients that survive broker outages without losing a message."""

from __future__ import annotations

from .core.buffer import Envelope, FailedMessage, MemoryBuffer, OverflowPolicy, SqliteBuffer
from .core.errors import (
    AuthenticationError,
    BufferCorruptError,
    BufferFullError,
    BufferInUseError,
    ClientClosedError,
    ConnectionLostError,
    DestinationError,
    InvalidMessageError,
    MessageTooLargeError,
    MQClientUnavailableError,
    OutcomeUnknownError,
    PermanentDeliveryError,
    ReconnectFailedError,
    ResilientMQError,
    TransactionRolledBackError,
)
from .ibmmq import ResilientQueue, ResilientSubscription, ResilientWebSphereMQQueueManager
from .kafka import ReconnectAwareKafkaProducer
from .core.policy import FOREVER, ReconnectPolicy
from .stomp import DeduplicatingListener, ResilientActiveMQConnection
from .core.supervisor import ConnectionState, ReconnectListener

__version__ = "0.1.0"

__all__ = [
    "FOREVER",
    "AuthenticationError",
    "BufferCorruptError",
    "BufferFullError",
    "BufferInUseError",
    "ClientClosedError",
    "ConnectionLostError",
    "ConnectionState",
    "DeduplicatingListener",
    "DestinationError",
    "Envelope",
    "FailedMessage",
    "InvalidMessageError",
    "MQClientUnavailableError",
    "MemoryBuffer",
    "MessageTooLargeError",
    "OutcomeUnknownError",
    "OverflowPolicy",
    "PermanentDeliveryError",
    "ReconnectAwareKafkaProducer",
    "ReconnectFailedError",
    "ReconnectListener",
    "ReconnectPolicy",
    "ResilientActiveMQConnection",
    "ResilientMQError",
    "ResilientQueue",
    "ResilientSubscription",
    "ResilientWebSphereMQQueueManager",
    "SqliteBuffer",
    "TransactionRolledBackError",
    "__version__",
]
