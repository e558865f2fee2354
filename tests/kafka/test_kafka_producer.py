"""ReconnectAwareKafkaProducer against a real tansu broker: the KafkaProducer API, bad input, the buffer."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import kafka.errors as Errors
import pytest
from kafka import KafkaProducer
from kafka.producer.future import RecordMetadata
from kafka_support import KafkaBed, ProducerFactory, read_topic

from resilientmq import (
    BufferFullError,
    ClientClosedError,
    ConnectionLostError,
    ConnectionState,
    DestinationError,
    InvalidMessageError,
    MessageTooLargeError,
    ReconnectAwareKafkaProducer,
)
from resilientmq.kafka import KafkaRecord
from resilientmq.testing import wait_until


def test_is_a_kafka_producer_and_resolves_record_metadata(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer(acks="all", client_id="drop-in")
    assert isinstance(producer, KafkaProducer)
    assert str(producer) == "<KafkaProducer client_id=drop-in transactional_id=None>"
    seen: list[Any] = []
    future = producer.send(
        topic, b"v1", key=b"k1", headers=[("h", b"\x00\xff")], partition=1, timestamp_ms=1_700_000_000_123
    )
    future.add_callback(seen.append).add_errback(seen.append)
    metadata = future.get(timeout=20)

    assert isinstance(metadata, RecordMetadata)
    assert (metadata.topic, metadata.partition, metadata.offset) == (topic, 1, 0)
    wait_until(lambda: seen == [metadata], 5, what="the callback")
    assert producer.config["acks"] == -1 and producer.config["api_version"] >= (0, 11)
    assert producer.config["enable_idempotence"] is True
    assert producer.partitions_for(topic) == {0, 1, 2, 3}
    assert producer.metrics() is not None

    (record,) = read_topic(bed, topic, [b"v1"]).records
    assert (record.key, record.value, record.partition, record.timestamp) == (
        b"k1",
        b"v1",
        1,
        1_700_000_000_123,
    )
    assert record.headers == [("h", b"\x00\xff")]


def test_partitions_for_waits_up_to_max_block_ms_for_a_connection(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    producer = make_producer(max_block_ms=300)
    started = time.monotonic()
    with pytest.raises(
        ConnectionLostError, match=r"partitions_for.*no connection within 0\.3 s \(connecting\)"
    ):
        producer.partitions_for(topic)
    assert 0.25 <= time.monotonic() - started < 10
    assert producer.metrics() is None and producer.bootstrap_connected() is False
    bed.proxy.up()
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, 20, what="the connection")
    assert producer.metrics() is not None


def test_record_without_timestamp_gets_the_time_send_accepted_it(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    producer = make_producer()
    before = int(time.time() * 1000)
    future = producer.send(topic, b"late", partition=0)
    after = int(time.time() * 1000)
    # Let the clock move on while the record waits, so a re-send's time could not pass for send()'s.
    wait_until(lambda: time.time() * 1000 > after + 200, 5, what="the clock to move on")
    assert producer.connection_state is not ConnectionState.CONNECTED
    bed.proxy.up()
    assert before <= future.get(timeout=30).timestamp <= after
    (record,) = read_topic(bed, topic, [b"late"]).records
    assert before <= record.timestamp <= after


def test_serializers_run_once_at_send_and_a_bad_value_fails_the_call(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    calls: list[Any] = []

    def to_json(value: Any) -> bytes:
        calls.append(value)
        return json.dumps(value).encode()

    producer = make_producer(value_serializer=to_json, key_serializer=str.encode)
    producer.send(topic, {"n": 1}, key="a").get(timeout=20)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        producer.send(topic, {"bad": {1, 2}}, key="a")
    with pytest.raises(TypeError, match="descriptor 'encode' for 'str' objects doesn't apply"):
        producer.send(topic, {"n": 2}, key=7)
    producer.send(topic, {"n": 3}, key="a")
    assert producer.flush(timeout=20) is True

    # Once each, never again in the background; the key is serialized first, as kafka-python does.
    assert calls == [{"n": 1}, {"bad": {1, 2}}, {"n": 3}]
    tally = read_topic(bed, topic, [b'{"n": 1}', b'{"n": 3}'])
    assert tally.values == [b'{"n": 1}', b'{"n": 3}'] and not tally.lost
    assert producer.get_failed_messages() == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"topic": "bad topic!", "value": b"v"}, InvalidMessageError, "contains a character other than"),
        ({"topic": "", "value": b"v"}, InvalidMessageError, "must be non-empty"),
        ({"topic": None, "value": b"v"}, TypeError, "must not be None"),
        ({"value": None}, InvalidMessageError, "needs a key or a value"),
        ({"value": "text"}, TypeError, "serialized value must be bytes.*give a value_serializer"),
        ({"value": b"v", "key": 12}, TypeError, "serialized key must be bytes"),
        ({"value": b"v", "headers": {"h": b"x"}}, TypeError, "headers must be a list"),
        ({"value": b"v", "headers": [("h", "x")]}, TypeError, "header 'h' must have a bytes value"),
        ({"value": b"v", "headers": [(1, b"x")]}, TypeError, "every header must be a"),
        ({"value": b"v", "partition": -1}, InvalidMessageError, "partition must be >= 0"),
        ({"value": b"v", "partition": "1"}, TypeError, "partition must be an int"),
        ({"value": b"v", "timestamp_ms": 1.5}, TypeError, "timestamp_ms must be an int"),
        ({"value": b"x" * 2000}, MessageTooLargeError, "larger than max_request_size"),
    ],
)
def test_bad_input_is_refused_at_once_and_nothing_else_is_affected(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    bed.proxy.down()  # refusal must not depend on the broker
    producer = make_producer(max_request_size=1500)
    good = producer.send(topic, b"good")
    call = {"topic": topic, **kwargs}
    with pytest.raises(error, match=message):
        producer.send(**call)
    assert producer.get_buffer_size() == 1
    bed.proxy.up()
    assert good.get(timeout=30).topic == topic
    assert producer.flush(timeout=20) is True
    assert producer.get_failed_messages() == []
    assert read_topic(bed, topic, [b"good"]).values == [b"good"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"no_such_option": 1}, ValueError, "Unrecognized configs: {.no_such_option.: 1}"),
        ({"transactional_id": "t"}, ValueError, "transactional_id is not supported"),
        ({"delivery_timeout_ms": 1000, "request_timeout_ms": 2000}, Errors.KafkaConfigurationError, "higher"),
        ({"compression_type": "brotli"}, ValueError, "Not supported codec: brotli"),
        ({"buffer_overflow": "sometimes"}, ValueError, "overflow policy must be one of"),
        ({"buffer_max_messages": 0}, ValueError, "buffer_max_messages must be a positive int"),
        ({"reconnect_tries": "3"}, TypeError, "reconnect_tries must be an int"),
    ],
)
def test_bad_configuration_is_refused_by_the_constructor(
    bed: KafkaBed, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ReconnectAwareKafkaProducer(bootstrap_servers=bed.servers, **kwargs)


def test_transactions_are_refused_clearly(make_producer: ProducerFactory) -> None:
    producer = make_producer()
    for call in (producer.init_transactions, producer.begin_transaction, producer.commit_transaction):
        with pytest.raises(Errors.IllegalStateError, match="transactions are not supported"):
            call()


def test_a_record_the_broker_cannot_route_fails_for_good_and_others_are_delivered(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    producer.send(topic, b"first").get(timeout=20)  # the topic exists, with partitions 0..3
    errors: list[BaseException] = []
    bad = producer.send(topic, b"nowhere", partition=99).add_errback(errors.append)
    after = producer.send(topic, b"after")

    with pytest.raises(DestinationError, match="Unrecognized partition 99"):
        bad.get(timeout=20)
    assert [type(e) for e in errors] == [DestinationError]
    assert after.get(timeout=20).topic == topic
    assert producer.flush(timeout=20) is False  # a record failed since the last flush
    assert producer.flush(timeout=20) is True
    (failed,) = producer.get_failed_messages()
    assert failed.body == b"nowhere" and failed.error_type == "DestinationError"
    assert "Unrecognized partition 99" in failed.reason
    assert producer.stats()["failed"] == 1
    tally = read_topic(bed, topic, [b"first", b"after"])
    assert sorted(tally.values) == [b"after", b"first"]


def test_send_batch_takes_values_and_records_all_or_nothing(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer(value_serializer=str.encode)
    futures = producer.send_batch(
        topic, ["a", "b", KafkaRecord("c", key=b"k", partition=2, headers=[("x", b"1")])]
    )
    metadata = [f.get(timeout=20) for f in futures]
    assert metadata[2].partition == 2
    with pytest.raises(TypeError, match="descriptor 'encode'"):
        producer.send_batch(topic, ["d", 5, "e"])
    with pytest.raises(InvalidMessageError, match="record 1 of the batch: partition must be >= 0"):
        producer.send_batch(topic, ["d", KafkaRecord("x", partition=-3)])
    with pytest.raises(TypeError, match="not a single value"):
        producer.send_batch(topic, "abc")
    assert producer.flush(timeout=20) is True
    assert producer.get_buffer_size() == 0 and producer.stats()["accepted"] == 3
    tally = read_topic(bed, topic, [b"a", b"b", b"c"])
    assert sorted(tally.values) == [b"a", b"b", b"c"]
    (c,) = [r for r in tally.records if r.value == b"c"]
    assert (c.key, c.partition, c.headers) == (b"k", 2, [("x", b"1")])


def test_flush_reports_and_close_stops_accepting(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    producer = make_producer()
    futures = [producer.send(topic, b"%d" % i) for i in range(20)]
    assert producer.get_buffer_size() == 20
    assert producer.flush(timeout=0.3) is False
    assert not any(f.is_done for f in futures)
    bed.proxy.up()
    assert producer.flush(timeout=30) is True
    assert producer.get_buffer_size() == 0 and all(f.succeeded() for f in futures)
    stats = producer.stats()
    assert stats["accepted"] == stats["confirmed"] == 20
    assert producer.close() is True
    with pytest.raises(ClientClosedError):
        producer.send(topic, b"late")
    assert producer.close() is True  # idempotent
    assert len(read_topic(bed, topic, [b"%d" % i for i in range(20)]).values) == 20


def test_flush_expedites_records_lingering_in_kafka_python(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    # linger_ms far above the bound below, so a noisy machine cannot blur a flush that waited for it.
    producer = make_producer(linger_ms=30000, delivery_timeout_ms=90000)
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, 10, what="the connection")
    futures = [producer.send(topic, b"%d" % i) for i in range(10)]
    started = time.monotonic()
    assert producer.flush(timeout=20) is True
    assert time.monotonic() - started < 10.0, "flush() waited for linger_ms"
    assert all(f.succeeded() for f in futures)


def test_close_leaves_unconfirmed_records_in_the_durable_buffer(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    bed.proxy.down()
    producer = make_producer(buffer_path=path)
    futures = [producer.send(topic, b"%d" % i, key=b"k") for i in range(200)]
    assert producer.close(timeout=0.2) is False
    with pytest.raises(ClientClosedError, match="closed before the record was acknowledged"):
        futures[0].get(timeout=1)

    bed.proxy.up()
    successor = make_producer(buffer_path=path)
    assert successor.get_buffer_size() == 200
    assert successor.flush(timeout=30) is True
    tally = read_topic(bed, topic, [b"%d" % i for i in range(200)])
    assert tally.lost == [] and tally.duplicates == 0
    assert tally.keys_out_of_order(int) == []


def test_overflow_policies_bound_memory(bed: KafkaBed, make_producer: ProducerFactory, topic: str) -> None:
    bed.proxy.down()
    refusing = make_producer(buffer_max_messages=5, buffer_overflow="raise")
    for i in range(5):
        refusing.send(topic, b"r%d" % i)
    with pytest.raises(BufferFullError, match="buffer full: 5 of 5"):
        refusing.send(topic, b"r5")

    blocking = make_producer(buffer_max_messages=3, max_block_ms=300)  # send() blocks up to max_block_ms
    for i in range(3):
        blocking.send(topic, b"b%d" % i)
    started = time.monotonic()
    with pytest.raises(BufferFullError, match=r"waited 0\.3 s"):
        blocking.send(topic, b"b3")
    assert 0.25 <= time.monotonic() - started < 10  # max_block_ms, not the buffer's 30 s default

    dropping = make_producer(buffer_max_messages=3, buffer_overflow="drop_oldest")
    futures = [dropping.send(topic, b"d%d" % i) for i in range(5)]
    with pytest.raises(BufferFullError, match="drop_oldest"):
        futures[0].get(timeout=1)
    assert futures[1].failed()
    assert [m.body for m in dropping.get_failed_messages()] == [b"d0", b"d1"]
    assert dropping.stats()["dropped"] == 2 and dropping.get_buffer_size() == 3

    bed.proxy.up()
    assert dropping.flush(timeout=30) is False  # two were dropped since the last flush
    assert [f.get(timeout=1).topic for f in futures[2:]] == [topic] * 3


def test_concurrent_senders_lose_nothing_and_keep_their_order(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    per_thread, threads = 500, 4

    def sender(t: int) -> None:
        for i in range(per_thread):
            producer.send(topic, b"%d:%d" % (t, i), key=b"thread-%d" % t)

    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert producer.flush(timeout=30) is True
    expected = [b"%d:%d" % (t, i) for t in range(threads) for i in range(per_thread)]
    tally = read_topic(bed, topic, expected)
    assert tally.lost == [] and tally.duplicates == 0
    assert tally.keys_out_of_order(lambda v: int(v.split(b":")[1])) == []
