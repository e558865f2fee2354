"""resilientmq: drop-in messaging clients that survive broker outages without losing a message.

The clients load on first use (PEP 562), so ``import resilientmq`` does not import stomp.py, kafka-python
and the MQ client at once, and an application pays only for the brokers it talks to.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.buffer import Envelope, FailedMessage, LmdbBuffer, MemoryBuffer, OverflowPolicy
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
from .core.policy import FOREVER, ReconnectPolicy
from .core.supervisor import ConnectionState, ReconnectListener

if TYPE_CHECKING:
    from .confluent import ReconnectAwareConfluentProducer
    from .ibmmq import ResilientQueue, ResilientSubscription, ResilientWebSphereMQQueueManager
    from .kafka import ReconnectAwareKafkaProducer
    from .stomp import DeduplicatingListener, ResilientActiveMQConnection

_CLIENTS = {
    "DeduplicatingListener": "resilientmq.stomp",
    "ResilientActiveMQConnection": "resilientmq.stomp",
    "ReconnectAwareConfluentProducer": "resilientmq.confluent",
    "ReconnectAwareKafkaProducer": "resilientmq.kafka",
    "ResilientQueue": "resilientmq.ibmmq",
    "ResilientSubscription": "resilientmq.ibmmq",
    "ResilientWebSphereMQQueueManager": "resilientmq.ibmmq",
}


def __getattr__(name: str) -> Any:
    module = _CLIENTS.get(name)
    if module is None:
        raise AttributeError(f"module 'resilientmq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "LmdbBuffer",
    "MQClientUnavailableError",
    "MemoryBuffer",
    "MessageTooLargeError",
    "OutcomeUnknownError",
    "OverflowPolicy",
    "PermanentDeliveryError",
    "ReconnectAwareConfluentProducer",
    "ReconnectAwareKafkaProducer",
    "ReconnectFailedError",
    "ReconnectListener",
    "ReconnectPolicy",
    "ResilientActiveMQConnection",
    "ResilientMQError",
    "ResilientQueue",
    "ResilientSubscription",
    "ResilientWebSphereMQQueueManager",
    "TransactionRolledBackError",
    "__version__",
]
