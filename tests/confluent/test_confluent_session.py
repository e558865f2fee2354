"""The adapter's session layer on a real tansu, step by step: the orderings the outbox can produce are made
here deterministically (two sessions on one instance, an instance retired with messages in it, a duplicate
acknowledged without an offset) instead of being hoped for in a chaos run."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_INVALID, Message, Producer
from confluent_support import FAST_CONFLUENT, KafkaBed, read_topic

from resilientmq.confluent.pipeline import Batch, Ledger
from resilientmq.confluent.records import RecordEncoder
from resilientmq.confluent.reports import UserEvents
from resilientmq.confluent.session import ConfluentConnector
from resilientmq.confluent.settings import ProducerSettings
from resilientmq.confluent.through import WriteThrough
from resilientmq.core.buffer import Envelope, MemoryBuffer, NewMessage
from resilientmq.core.errors import ConnectionLostError

TIMEOUT = 30.0


@pytest.fixture
def connector(bed: KafkaBed) -> Iterator[ConfluentConnector]:
    settings = ProducerSettings.from_config({"bootstrap.servers": bed.servers, **FAST_CONFLUENT})
    events = UserEvents()
    ledger = Ledger(settings, events)
    lane = WriteThrough(  # never bound to an outbox: it stays closed, as these tests drive batches only
        events=events,
        encoder=RecordEncoder(settings.max_message_bytes),
        default_callback=None,
        only_errors=False,
    )
    connector = ConfluentConnector(settings, ledger, lane, stall_timeout=60.0)
    try:
        yield connector
    finally:
        connector.close()


def _envelopes(topic: str, n: int, prefix: bytes = b"m") -> list[Envelope]:
    buffer = MemoryBuffer(10_000)
    return buffer.extend([NewMessage(topic, b"%s-%d" % (prefix, i), {"p": 0}) for i in range(n)])


def _no_loss(error: BaseException | None) -> None:
    raise AssertionError(f"unexpected loss report: {error}")


def test_a_message_still_held_is_waited_for_by_the_next_session_not_produced_again(
    bed: KafkaBed, connector: ConfluentConnector, topic: str
) -> None:
    first = connector.open(bed.servers, 1, _no_loss)
    second = connector.open(bed.servers, 2, _no_loss)  # the same instance: one producer id
    envelopes = _envelopes(topic, 50)
    bed.proxy.blackhole()  # handed to librdkafka, unanswered
    held = first.transmit(envelopes)
    again = second.transmit(envelopes)  # what the outbox does on a new session
    assert not held.done() and not again.done()
    bed.proxy.heal()
    assert held.result(TIMEOUT).failed == {} and held.result().retry == {}
    assert again.result(TIMEOUT).failed == {} and again.result().retry == {}
    tally = read_topic(bed.servers, topic, [e.body for e in envelopes])
    assert tally.values == [e.body for e in envelopes]  # once each, in order
    assert connector.instances == 1


def test_a_message_delivered_before_the_outbox_heard_is_answered_at_once(
    bed: KafkaBed, connector: ConfluentConnector, topic: str
) -> None:
    first = connector.open(bed.servers, 1, _no_loss)
    envelopes = _envelopes(topic, 20)
    assert first.transmit(envelopes).result(TIMEOUT).retry == {}
    second = connector.open(bed.servers, 2, _no_loss)
    again = second.transmit(envelopes)  # the outbox had not removed them yet when it moved on
    assert again.done() and again.result().failed == {} and again.result().retry == {}
    assert read_topic(bed.servers, topic, [e.body for e in envelopes]).values == [e.body for e in envelopes]


def test_what_a_retired_instance_held_is_produced_on_the_next_one_and_comes_back_retriable(
    bed: KafkaBed, connector: ConfluentConnector, topic: str
) -> None:
    first = connector.open(bed.servers, 1, lambda error: None)
    envelopes = _envelopes(topic, 30)
    bed.proxy.blackhole()
    held = first.transmit(envelopes)
    first.pipeline.die(ConnectionLostError("retired by the test"))  # as after a fatal error
    assert set(held.result(TIMEOUT).retry) == {e.seq for e in envelopes}  # back to the outbox, all of them
    with pytest.raises(ConnectionLostError):
        first.transmit(envelopes)
    bed.proxy.heal()
    second = connector.open(bed.servers, 2, _no_loss)
    assert second.pipeline is not first.pipeline and connector.instances == 2
    assert second.transmit(envelopes).result(TIMEOUT).retry == {}
    assert read_topic(bed.servers, topic, [e.body for e in envelopes]).values == [e.body for e in envelopes]


def test_a_duplicate_acknowledged_without_an_offset_is_looked_up_in_the_log(
    bed: KafkaBed, connector: ConfluentConnector, topic: str
) -> None:
    """What librdkafka reports after DUPLICATE_SEQUENCE_NUMBER (offsets None, 0, 1, ...), fed to a batch:
    the two messages the log holds are confirmed with their real offsets, the third is produced again."""
    created = time.time() - 5
    ts = int(created * 1000)
    plain = Producer({"bootstrap.servers": bed.servers})
    for i in range(3):
        plain.produce(topic, b"other-%d" % i, partition=0)
    for i in range(2):
        plain.produce(topic, b"dup-%d" % i, key=b"k", partition=0, timestamp=ts)
    assert plain.flush(TIMEOUT) == 0
    session = connector.open(bed.servers, 1, _no_loss)
    pipeline = session.pipeline
    headers = {"p": 0, "k": "k", "t": ts}
    envelopes = [
        Envelope(
            seq=1000 + i,
            id=f"dup-{i}",
            destination=topic,
            body=b"dup-%d" % i,
            headers=headers,
            created_at=created,
        )
        for i in range(3)
    ]
    batch = Batch(pipeline, envelopes)

    def acknowledged_as_duplicates() -> None:
        for i, offset in enumerate((OFFSET_INVALID, 0, 1)):  # librdkafka: base offset -1, plus the index
            batch.delivered(
                i, None, Message(topic=topic, partition=0, offset=offset, key=b"k", value=b"dup-%d" % i)
            )

    pipeline.call_soon(acknowledged_as_duplicates)  # on the polling thread, as librdkafka's reports are
    result = batch.future.result(TIMEOUT)
    assert set(result.retry) == {1002}  # dup-2 never reached the log: produce it again
    assert [outcome.offset() for outcome in batch.outcomes[:2]] == [3, 4]  # type: ignore[union-attr]
    assert connector.stats()["verified"] == 3 and connector.stats()["verified_missing"] == 1


def test_a_session_carries_what_its_instance_holds_and_knows_what_it_delivered(
    bed: KafkaBed, connector: ConfluentConnector, topic: str
) -> None:
    """What the outbox asks a new session: does it carry the old connection's batches (same instance: yes;
    a new instance after a fatal error: no), and which unconfirmed messages were delivered already."""
    first = connector.open(bed.servers, 1, lambda error: None)
    second = connector.open(bed.servers, 2, lambda error: None)
    assert second.carries(1) and second.carries(2)
    envelopes = _envelopes(topic, 10)
    assert first.transmit(envelopes).result(TIMEOUT).retry == {}
    assert sorted(second.delivered([e.seq for e in envelopes] + [999])) == [e.seq for e in envelopes]
    first.pipeline.die(ConnectionLostError("retired by the test"))
    third = connector.open(bed.servers, 3, _no_loss)
    assert not third.carries(1) and not third.carries(2) and third.carries(3)
    assert sorted(third.delivered([e.seq for e in envelopes])) == [e.seq for e in envelopes]  # still known
