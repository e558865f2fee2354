"""The one translation of kafka-python errors: retriable ones go back to the buffer, others fail for good."""

from __future__ import annotations

import kafka.errors as Errors
import pytest

from resilientmq import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    InvalidMessageError,
    MessageTooLargeError,
    PermanentDeliveryError,
    ResilientMQError,
)
from resilientmq.kafka.errors import kafka_errors, translate_kafka_error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # kafka-python's own retriable errors, once its delivery_timeout_ms has run out
        (Errors.KafkaTimeoutError("Expiring 3 record(s)"), ConnectionLostError),
        (Errors.KafkaConnectionError("reset"), ConnectionLostError),
        (Errors.NotLeaderForPartitionError(), ConnectionLostError),
        (Errors.RequestTimedOutError(), ConnectionLostError),
        (Errors.NotEnoughReplicasError(), ConnectionLostError),
        # errors of one producer session: a new session delivers the record
        (Errors.IllegalStateError("Producer is closed forcefully."), ConnectionLostError),
        (Errors.OutOfOrderSequenceNumberError(), ConnectionLostError),
        (Errors.UnknownProducerIdError(), ConnectionLostError),
        (Errors.KafkaError("part of a batch which had one more more invalid records"), ConnectionLostError),
        (ConnectionResetError(104, "reset"), ConnectionLostError),
        # the record or the destination itself
        (Errors.MessageSizeTooLargeError(), MessageTooLargeError),
        (Errors.RecordListTooLargeError(), MessageTooLargeError),
        (Errors.TopicAuthorizationFailedError("t"), DestinationError),
        (Errors.InvalidTopicError(), DestinationError),
        (ValueError("Unrecognized partition 9 for topic t"), DestinationError),
        (Errors.ClusterAuthorizationFailedError(), AuthenticationError),
        (Errors.SaslAuthenticationFailedError(), AuthenticationError),
        (Errors.InvalidRecordError("bad"), PermanentDeliveryError),
        (Errors.CorruptRecordError(), PermanentDeliveryError),
        (TypeError("not bytes"), InvalidMessageError),
        (Errors.KafkaConfigurationError("acks"), ResilientMQError),
    ],
)
def test_translation_decides_who_retries(error: BaseException, expected: type[ResilientMQError]) -> None:
    translated = translate_kafka_error(error)
    assert type(translated) is expected
    assert translated.retriable is (expected is ConnectionLostError)
    assert translated.__cause__ is error
    assert str(error) in str(translated)


def test_ours_pass_through_and_the_context_manager_chains() -> None:
    ours = DestinationError("x")
    assert translate_kafka_error(ours) is ours
    with pytest.raises(ConnectionLostError, match="Unable to bootstrap") as info, kafka_errors():
        raise Errors.KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")
    assert isinstance(info.value.__cause__, Errors.KafkaTimeoutError)
