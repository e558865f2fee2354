"""The write-through: while connected with nothing waiting in the outbox, produce() hands a message straight
to librdkafka, and every promise keeps its meaning (the bound, the reports, order, a durable file's copy)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_support import Deliveries, KafkaBed, ProducerFactory, read_topic

from resilientmq import ConnectionState
from resilientmq.confluent import ProducerBufferFullError, ReconnectAwareConfluentProducer
from resilientmq.core.buffer import FileVerdict, read_buffer_file
from resilientmq.testing import wait_until

TIMEOUT = 30.0


def _connected(producer: ReconnectAwareConfluentProducer) -> None:
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, TIMEOUT, what="connected")


def test_while_connected_messages_go_straight_to_librdkafka_reported_from_the_users_poll(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    _connected(producer)
    reports = Deliveries()
    values = [b"%03d" % i for i in range(300)]
    for value in values:
        producer.produce(topic, value, partition=0, on_delivery=reports)
        producer.poll(0)
    assert producer.flush(TIMEOUT) == 0
    stats = producer.stats()
    assert stats["produced_direct"] == 300 and len(producer.get_failed_messages()) == 0
    assert stats["accepted"] == stats["sent"] == stats["confirmed"] == 300 and stats["buffered"] == 0
    assert reports.values() == values and reports.errors() == []  # once each, in order
    assert [m.offset() for _, m, _ in reports.reports] == list(range(300))
    assert reports.threads() == {threading.current_thread().name}
    assert read_topic(bed.servers, topic, values).values == values


def test_an_outage_hands_over_to_the_outbox_and_the_write_through_resumes_after_it(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    _connected(producer)
    values = [b"%03d" % i for i in range(150)]
    for value in values[:50]:
        producer.produce(topic, value, partition=0)
    assert producer.stats()["produced_direct"] == 50
    bed.proxy.down()
    wait_until(lambda: producer.connection_state is not ConnectionState.CONNECTED, TIMEOUT, what="the outage")
    for value in values[50:100]:
        producer.produce(topic, value, partition=0)  # behind what librdkafka holds: through the outbox
    assert producer.stats()["produced_direct"] == 50
    assert producer.get_buffer_size() == len(producer) >= 50
    bed.proxy.up()
    assert producer.flush(TIMEOUT) == 0
    for value in values[100:]:
        producer.produce(topic, value, partition=0)  # the outbox is empty again: straight through
    assert producer.flush(TIMEOUT) == 0
    assert producer.stats()["produced_direct"] == 100
    tally = read_topic(bed.servers, topic, values)
    assert tally.values == values  # in order, once


@pytest.mark.parametrize("overflow", ["raise", "block"])
def test_the_bound_counts_what_librdkafka_holds(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, overflow: str
) -> None:
    producer = make_producer(buffer_max_messages=20, buffer_overflow=overflow, buffer_block_timeout=0.3)
    _connected(producer)
    bed.proxy.blackhole()  # librdkafka holds what it was handed; the connection still looks up
    for i in range(20):
        producer.produce(topic, b"%02d" % i, partition=0)
    assert producer.stats()["produced_direct"] == 20
    started = time.monotonic()
    with pytest.raises(ProducerBufferFullError, match="buffer full"):
        producer.produce(topic, b"one too many", partition=0)
    if overflow == "block":
        assert time.monotonic() - started >= 0.25  # it waited for room first
    assert producer.get_buffer_size() == 20
    bed.proxy.heal()
    assert producer.flush(TIMEOUT) == 0
    assert sorted(read_topic(bed.servers, topic, [b"%02d" % i for i in range(20)]).values) == [
        b"%02d" % i for i in range(20)
    ]


def test_a_durable_outbox_keeps_a_copy_of_each_direct_message_until_it_is_delivered(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    producer = make_producer(buffer_path=str(path))
    _connected(producer)
    for i in range(30):
        producer.produce(topic, b"delivered-%d" % i, partition=0)
    assert producer.flush(TIMEOUT) == 0
    bed.proxy.blackhole()
    for i in range(10):
        producer.produce(topic, b"held-%d" % i, partition=0)
    assert producer.stats()["produced_direct"] == 40
    assert producer.close(0) is False  # librdkafka still holds ten: their copies stay in the file
    found = read_buffer_file(path)
    assert found.verdict is FileVerdict.OK
    assert [e.body for e in found.pending] == [b"held-%d" % i for i in range(10)]  # only those, in order
    bed.proxy.heal()
    successor = make_producer(buffer_path=str(path))
    assert successor.get_buffer_size() == 10
    assert successor.flush(TIMEOUT) == 0
    successor.close()
    assert read_buffer_file(path).pending == []
    expected = [b"delivered-%d" % i for i in range(30)] + [b"held-%d" % i for i in range(10)]
    assert read_topic(bed.servers, topic, expected).lost == []


@pytest.mark.parametrize(
    "resilience",
    [{"buffer_overflow": "drop_oldest"}, {"buffer_max_bytes": 1 << 20}, {"buffer_fsync": True}],
    ids=["drop-oldest", "max-bytes", "fsync"],
)
def test_the_write_through_is_off_where_the_outbox_must_hold_every_message(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, tmp_path: Path, resilience: dict[str, object]
) -> None:
    """drop_oldest must find the oldest message in the outbox, librdkafka's bytes are not counted, and with
    fsync the outbox shares its syncs among appenders (group commit)."""
    if resilience.get("buffer_fsync"):
        resilience = {**resilience, "buffer_path": str(tmp_path / "outbox.db")}
    producer = make_producer(**resilience)
    _connected(producer)
    for i in range(20):
        producer.produce(topic, b"%02d" % i, partition=0)
    assert producer.flush(TIMEOUT) == 0
    assert producer.stats()["produced_direct"] == 0
    assert read_topic(bed.servers, topic, [b"%02d" % i for i in range(20)]).values == [
        b"%02d" % i for i in range(20)
    ]
