"""kafka-python's errors become resilientmq's here: one table, one translation, one context manager.

kafka-python marks the errors its own sender may retry with ``retriable = True``; those (once kafka-python
gave up on them: a ``delivery_timeout_ms`` or ``retries`` the caller set), and the errors that end one
kafka-python producer (an unknown producer id or an out-of-order sequence after a broker restart, a producer
closed under its records), are retriable for us: a new producer delivers the record. Errors about the record
or the destination itself (too large, forbidden, invalid) are permanent. Whether an error is retried is the
``retriable`` of the class it becomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import kafka.errors as Errors

from resilientmq.core.errors import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    InvalidMessageError,
    MessageTooLargeError,
    PermanentDeliveryError,
    ResilientMQError,
)

__all__ = ["ERRORS", "ErrorRule", "kafka_errors", "translate_kafka_error"]


def _retriable_or_bare(exc: BaseException) -> bool:
    # kafka-python's own retriable errors (once its delivery_timeout_ms has run out), and a bare KafkaError:
    # it fails the records sharing a batch with an invalid one, which are not at fault.
    return bool(getattr(exc, "retriable", False)) or type(exc) is Errors.KafkaError


def _names_a_partition(exc: BaseException) -> bool:
    return "partition" in _what(exc).lower()


class ErrorRule(NamedTuple):
    """One row of :data:`ERRORS`: an error of one of ``kinds`` (for which ``when`` holds) becomes ``ours``."""

    kinds: tuple[type[BaseException], ...]
    ours: type[ResilientMQError]
    says: str
    when: Callable[[BaseException], bool] | None = None


# The one table; the first row that matches decides. Whatever matches none is a permanent failure.
ERRORS: tuple[ErrorRule, ...] = (
    ErrorRule(
        (Errors.MessageSizeTooLargeError, Errors.RecordListTooLargeError),
        MessageTooLargeError,
        "the broker refused the record as too large",
    ),
    ErrorRule(
        (Errors.TopicAuthorizationFailedError, Errors.InvalidTopicError),
        DestinationError,
        "the topic cannot be written",
    ),
    ErrorRule(
        (Errors.AuthorizationError, Errors.SaslAuthenticationFailedError, Errors.UnacceptableCredentialError),
        AuthenticationError,
        "the broker refused this client",
    ),
    ErrorRule(
        (
            Errors.KafkaConfigurationError,
            Errors.UnsupportedVersionError,
            Errors.UnsupportedCodecError,
            Errors.UnsupportedForMessageFormatError,
            Errors.UnsupportedCompressionTypeError,
        ),
        ResilientMQError,
        "kafka-python cannot work with this configuration or broker",
    ),
    # Not retriable for kafka-python's sender, retriable for us: they end a producer, not a record.
    ErrorRule(
        (
            Errors.IllegalStateError,  # the producer was closed (retired) under the record
            Errors.OutOfOrderSequenceNumberError,  # broker lost our producer state (restart, memory storage)
            Errors.UnknownProducerIdError,
            Errors.InvalidProducerEpochError,
            Errors.BrokerNotAvailableError,
            Errors.UnknownError,
            Errors.TransactionAbortedError,
            Errors.UnrecognizedBrokerVersion,
        ),
        ConnectionLostError,
        "kafka",
    ),
    ErrorRule((Errors.KafkaError,), ConnectionLostError, "kafka", when=_retriable_or_bare),
    ErrorRule((Errors.KafkaError,), PermanentDeliveryError, "the broker rejected the record"),
    ErrorRule((OSError,), ConnectionLostError, "kafka connection"),
    ErrorRule((ValueError,), DestinationError, "the record cannot be routed", when=_names_a_partition),
    ErrorRule((ValueError, TypeError), InvalidMessageError, "kafka-python refused the record"),
)


def translate_kafka_error(exc: BaseException) -> ResilientMQError:
    """The resilientmq error for a kafka-python error (or one raised on its behalf), caused by ``exc``."""
    if isinstance(exc, ResilientMQError):
        return exc
    what = _what(exc)
    for rule in ERRORS:
        if isinstance(exc, rule.kinds) and (rule.when is None or rule.when(exc)):
            error = rule.ours(f"{rule.says}: {what}")
            break
    else:
        error = PermanentDeliveryError(f"sending the record raised {type(exc).__name__}: {what}")
    error.__cause__ = exc
    return error


@contextmanager
def kafka_errors() -> Iterator[None]:
    """Re-raise whatever kafka-python raises inside the block as the matching resilientmq error."""
    try:
        yield
    except ResilientMQError:
        raise
    except Exception as exc:
        raise translate_kafka_error(exc) from exc


def _what(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
