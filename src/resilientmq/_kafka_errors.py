"""The one place where kafka-python's errors become resilientmq's.

kafka-python marks the errors its own sender may retry with ``retriable = True``; those, and the errors that
only concern one producer session (an unknown producer id or an out-of-order sequence after a broker restart,
a producer closed under its records), are retriable for us: a new session delivers the record. Errors about
the record or the destination itself (too large, forbidden, invalid) are permanent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import kafka.errors as Errors

from .core.errors import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    InvalidMessageError,
    MessageTooLargeError,
    PermanentDeliveryError,
    ResilientMQError,
)

__all__ = ["kafka_errors", "translate_kafka_error"]

# Not retriable for kafka-python's sender, retriable for us: they end one producer session, not the record.
_SESSION_ERRORS: tuple[type[BaseException], ...] = (
    Errors.IllegalStateError,  # the producer was closed (by our fence) under the record
    Errors.OutOfOrderSequenceNumberError,  # broker lost our producer state (restart, memory storage)
    Errors.UnknownProducerIdError,
    Errors.InvalidProducerEpochError,
    Errors.BrokerNotAvailableError,
    Errors.UnknownError,
    Errors.TransactionAbortedError,
    Errors.UnrecognizedBrokerVersion,
    OSError,
)
_TOO_LARGE: tuple[type[BaseException], ...] = (
    Errors.MessageSizeTooLargeError,
    Errors.RecordListTooLargeError,
)
_DESTINATION: tuple[type[BaseException], ...] = (
    Errors.TopicAuthorizationFailedError,
    Errors.InvalidTopicError,
)
_AUTHENTICATION: tuple[type[BaseException], ...] = (
    Errors.AuthorizationError,
    Errors.SaslAuthenticationFailedError,
    Errors.UnacceptableCredentialError,
)
_CONFIGURATION: tuple[type[BaseException], ...] = (
    Errors.KafkaConfigurationError,
    Errors.UnsupportedVersionError,
    Errors.UnsupportedCodecError,
    Errors.UnsupportedForMessageFormatError,
    Errors.UnsupportedCompressionTypeError,
)


def translate_kafka_error(exc: BaseException) -> ResilientMQError:
    """The resilientmq error for a kafka-python error (or one raised on its behalf), caused by ``exc``."""
    if isinstance(exc, ResilientMQError):
        return exc
    error = _classify(exc)
    error.__cause__ = exc
    return error


def _classify(exc: BaseException) -> ResilientMQError:
    what = str(exc) or type(exc).__name__
    if isinstance(exc, _TOO_LARGE):
        return MessageTooLargeError(f"the broker refused the record as too large: {what}")
    if isinstance(exc, _DESTINATION):
        return DestinationError(f"the topic cannot be written: {what}")
    if isinstance(exc, _AUTHENTICATION):
        return AuthenticationError(f"the broker refused this client: {what}")
    if isinstance(exc, _CONFIGURATION):
        return ResilientMQError(f"kafka-python cannot work with this configuration or broker: {what}")
    if isinstance(exc, Errors.KafkaError):
        # A bare KafkaError fails the records sharing a batch with an invalid one: they are not at fault.
        if exc.retriable or isinstance(exc, _SESSION_ERRORS) or type(exc) is Errors.KafkaError:
            return ConnectionLostError(f"kafka: {what}")
        return PermanentDeliveryError(f"the broker rejected the record: {what}")
    if isinstance(exc, _SESSION_ERRORS):
        return ConnectionLostError(f"kafka connection: {what}")
    if isinstance(exc, ValueError) and "partition" in what.lower():
        return DestinationError(f"the record cannot be routed: {what}")
    if isinstance(exc, (ValueError, TypeError)):
        return InvalidMessageError(f"kafka-python refused the record: {what}")
    return PermanentDeliveryError(f"sending the record raised {type(exc).__name__}: {what}")


@contextmanager
def kafka_errors() -> Iterator[None]:
    """Re-raise whatever kafka-python raises inside the block as the matching resilientmq error."""
    try:
        yield
    except ResilientMQError:
        raise
    except Exception as exc:
        raise translate_kafka_error(exc) from exc
