"""librdkafka's errors become resilientmq's here: one table, one translation, one context manager.

A delivery report that fails reaches this table only once librdkafka gave up on its own: with
``message.timeout.ms`` infinite (our default) it retries every retriable broker error itself, so what is
left is either about the message or its destination (too large, forbidden, no such topic or partition:
permanent, reported to the user's callback and kept in ``get_failed_messages()``), or about one producer
*instance* or one attempt (timed out, purged by us, killed by a fatal error, state lost on the broker:
retriable for us, the message is produced again and never reported). Whatever the table does not name is
permanent, so that a message never loops for ever on an error nobody understood.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException

from resilientmq.core.errors import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    InvalidMessageError,
    MessageTooLargeError,
    PermanentDeliveryError,
    ResilientMQError,
)

__all__ = [
    "ERRORS",
    "ErrorRule",
    "LocalCode",
    "confluent_errors",
    "kafka_error_of",
    "translate_kafka_error",
]


def _local(name: str) -> int:
    """librdkafka's client-side error code ``name``. confluent-kafka publishes these as ``KafkaError._NAME``:
    public constants whose names happen to begin with an underscore, read here once, by name."""
    return int(getattr(KafkaError, f"_{name}"))


class LocalCode:
    """librdkafka's client-side error codes (see :func:`_local`)."""

    ALL_BROKERS_DOWN: int = _local("ALL_BROKERS_DOWN")
    AUTHENTICATION: int = _local("AUTHENTICATION")
    BAD_MSG: int = _local("BAD_MSG")
    DESTROY: int = _local("DESTROY")
    FATAL: int = _local("FATAL")
    GAPLESS_GUARANTEE: int = _local("GAPLESS_GUARANTEE")
    INVALID_ARG: int = _local("INVALID_ARG")
    INVALID_TYPE: int = _local("INVALID_TYPE")
    MSG_TIMED_OUT: int = _local("MSG_TIMED_OUT")
    NOT_CONFIGURED: int = _local("NOT_CONFIGURED")
    PARTITION_EOF: int = _local("PARTITION_EOF")
    PURGE_INFLIGHT: int = _local("PURGE_INFLIGHT")
    PURGE_QUEUE: int = _local("PURGE_QUEUE")
    QUEUE_FULL: int = _local("QUEUE_FULL")
    RESOLVE: int = _local("RESOLVE")
    SSL: int = _local("SSL")
    STATE: int = _local("STATE")
    TIMED_OUT: int = _local("TIMED_OUT")
    TRANSPORT: int = _local("TRANSPORT")
    UNKNOWN_PARTITION: int = _local("UNKNOWN_PARTITION")
    UNKNOWN_TOPIC: int = _local("UNKNOWN_TOPIC")


class ErrorRule(NamedTuple):
    """One row of :data:`ERRORS`: a ``KafkaError`` with one of ``codes`` becomes ``ours``."""

    codes: frozenset[int]
    ours: type[ResilientMQError]
    says: str


# The one table; the first row that names the code decides. Whatever matches none is a permanent failure.
ERRORS: tuple[ErrorRule, ...] = (
    ErrorRule(
        frozenset(
            {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}
        ),
        MessageTooLargeError,
        "the message is too large",
    ),
    ErrorRule(
        frozenset(
            {
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.TOPIC_EXCEPTION,  # an invalid topic name
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError.INVALID_PARTITIONS,
                KafkaError.POLICY_VIOLATION,
                LocalCode.UNKNOWN_TOPIC,
                LocalCode.UNKNOWN_PARTITION,
            }
        ),
        DestinationError,
        "the topic or partition cannot be written",
    ),
    ErrorRule(
        frozenset(
            {
                KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                KafkaError.SASL_AUTHENTICATION_FAILED,
                KafkaError.ILLEGAL_SASL_STATE,
                KafkaError.UNSUPPORTED_SASL_MECHANISM,
                LocalCode.AUTHENTICATION,
                LocalCode.SSL,
            }
        ),
        AuthenticationError,
        "the broker refused this client",
    ),
    ErrorRule(
        frozenset({LocalCode.INVALID_ARG, LocalCode.INVALID_TYPE, LocalCode.BAD_MSG}),
        InvalidMessageError,
        "librdkafka refused the message",
    ),
    # Not about the message: they end one attempt or one producer instance. The message is produced again.
    ErrorRule(
        frozenset(
            {
                LocalCode.MSG_TIMED_OUT,  # only with an explicit message.timeout.ms: one attempt's limit
                LocalCode.TIMED_OUT,
                LocalCode.TRANSPORT,
                LocalCode.ALL_BROKERS_DOWN,
                LocalCode.RESOLVE,
                LocalCode.PURGE_QUEUE,  # purged by us when an instance is replaced (a user purge is final)
                LocalCode.PURGE_INFLIGHT,
                LocalCode.FATAL,
                LocalCode.GAPLESS_GUARANTEE,
                LocalCode.DESTROY,
                LocalCode.STATE,
                LocalCode.QUEUE_FULL,
                KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,  # the broker lost this producer's state
                KafkaError.UNKNOWN_PRODUCER_ID,
                KafkaError.INVALID_PRODUCER_EPOCH,
                KafkaError.PRODUCER_FENCED,
                KafkaError.NOT_ENOUGH_REPLICAS,
                KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.REQUEST_TIMED_OUT,
                KafkaError.NETWORK_EXCEPTION,
                KafkaError.BROKER_NOT_AVAILABLE,
                KafkaError.KAFKA_STORAGE_ERROR,
                KafkaError.UNKNOWN,
            }
        ),
        ConnectionLostError,
        "kafka",
    ),
)

_BY_CODE: dict[int, ErrorRule] = {}
for _rule in reversed(ERRORS):
    for _code in _rule.codes:
        _BY_CODE[_code] = _rule


def kafka_error_of(exc: BaseException | KafkaError) -> KafkaError | None:
    """The ``KafkaError`` a ``KafkaException`` carries (or ``exc`` itself), else None."""
    if isinstance(exc, KafkaError):
        return exc
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def translate_kafka_error(error: KafkaError | BaseException) -> ResilientMQError:
    """The resilientmq error for a librdkafka error (a ``KafkaError`` or the ``KafkaException`` carrying
    one); the ``KafkaException`` is its cause, so the original code stays reachable."""
    if isinstance(error, ResilientMQError):
        return error
    kafka_error = kafka_error_of(error)
    if kafka_error is None:
        ours: ResilientMQError = PermanentDeliveryError(f"producing raised {type(error).__name__}: {error}")
        ours.__cause__ = error if isinstance(error, BaseException) else None
        return ours
    rule = _BY_CODE.get(kafka_error.code())
    what = f"{kafka_error.name()}: {kafka_error.str()}"
    if rule is None:
        ours = (
            ConnectionLostError(f"kafka: {what}")
            if kafka_error.retriable()
            else PermanentDeliveryError(f"the broker rejected the message: {what}")
        )
    else:
        ours = rule.ours(f"{rule.says}: {what}")
    ours.__cause__ = error if isinstance(error, BaseException) else KafkaException(kafka_error)
    return ours


@contextmanager
def confluent_errors() -> Iterator[None]:
    """Re-raise a ``KafkaException`` raised inside the block as the matching resilientmq error."""
    try:
        yield
    except ResilientMQError:
        raise
    except KafkaException as exc:
        raise translate_kafka_error(exc) from exc
