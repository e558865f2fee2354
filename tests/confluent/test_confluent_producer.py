"""ReconnectAwareConfluentProducer as a drop-in for confluent_kafka.Producer, on a real tansu broker.

Counts come from an independent confluent-kafka consumer (``assign()``); where the base class is the
measure, the same call is made on a plain ``confluent_kafka.Producer`` and the two answers compared.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_support import FAST_CONFLUENT, Deliveries, KafkaBed, ProducerFactory, read_topic

from resilientmq import BufferFullError, ClientClosedError, ConnectionState, DestinationError
from resilientmq.confluent import ProducerBufferFullError, ReconnectAwareConfluentProducer
from resilientmq.testing import wait_until

TIMEOUT = 30.0


def test_a_confluent_producer_built_from_the_same_config(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    assert isinstance(producer, Producer)
    assert len(producer) == 0 and bool(producer) is True  # truthy while empty, as Producer is
    assert producer.produce(topic, b"one") is None
    assert producer.produce(topic, "two", key="k") is None  # str is encoded, as confluent-kafka does
    assert producer.flush(TIMEOUT) == 0
    assert len(producer) == 0
    assert sorted(read_topic(bed.servers, topic, [b"one", b"two"]).values) == [b"one", b"two"]


def test_constructed_while_every_broker_is_down_it_buffers_then_delivers(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    started = time.monotonic()
    producer = make_producer()
    reports = Deliveries()
    for i in range(100):
        producer.produce(topic, b"%03d" % i, partition=0, on_delivery=reports)
    assert time.monotonic() - started < 5.0, "construction or produce() waited for a broker"
    assert producer.connection_state is not ConnectionState.CONNECTED
    assert len(producer) == 100
    assert producer.flush(0.5) == 100  # confluent-kafka's answer: how many are left
    assert reports.reports == []
    bed.proxy.up()
    assert producer.flush(TIMEOUT) == 0
    assert [m.offset() for _, m, _ in reports.reports] == list(range(100))
    assert reports.errors() == []
    tally = read_topic(bed.servers, topic, [b"%03d" % i for i in range(100)])
    assert tally.lost == [] and tally.duplicates == 0


def test_poll_returns_the_events_it_served_and_waits_up_to_its_timeout(
    make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    started = time.monotonic()
    assert producer.poll(0.3) == 0  # nothing owed: waits the whole timeout
    assert time.monotonic() - started >= 0.25
    reports = Deliveries()
    producer.produce(topic, b"x", on_delivery=reports)
    served = 0
    deadline = time.monotonic() + TIMEOUT
    while not reports.reports and time.monotonic() < deadline:
        served += producer.poll(0.5)
    assert served >= 1 and len(reports.reports) == 1
    assert producer.poll(0) == 0


def test_configuration_errors_are_confluent_kafkas(bed: KafkaBed) -> None:
    base = {"bootstrap.servers": bed.servers}
    for bad in ({"no.such.property": 1}, {"acks": "sometimes"}, {"enable.idempotence": True, "acks": 1}):
        with pytest.raises(KafkaException) as plain:
            Producer({**base, **bad})
        with pytest.raises(KafkaException) as ours:
            ReconnectAwareConfluentProducer({**base, **bad})
        assert ours.value.args[0].code() == plain.value.args[0].code() == KafkaError._INVALID_ARG
    with pytest.raises(TypeError, match="expected configuration dict"):
        ReconnectAwareConfluentProducer()
    with pytest.raises(KafkaException, match="reconect_tries"):
        ReconnectAwareConfluentProducer(base, reconect_tries=3)  # not ours: a librdkafka property, unknown
    with pytest.raises(ValueError, match=r"transactional\.id is not supported"):
        ReconnectAwareConfluentProducer({**base, "transactional.id": "t-1"})


def test_acks_1_without_idempotence_is_accepted_as_by_confluent_kafka(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    """Idempotence is on by default, but not where the configuration rules it out (librdkafka refuses)."""
    producer = make_producer({"acks": 1})
    producer.produce(topic, b"a")
    assert producer.flush(TIMEOUT) == 0
    assert read_topic(bed.servers, topic, [b"a"]).lost == []


def test_the_transactional_api_says_it_is_not_configured(make_producer: ProducerFactory) -> None:
    producer = make_producer()
    for call in (
        producer.init_transactions,
        producer.begin_transaction,
        producer.commit_transaction,
        producer.abort_transaction,
        lambda: producer.send_offsets_to_transaction([], None),
    ):
        with pytest.raises(KafkaException) as raised:
            call()
        assert raised.value.args[0].code() == KafkaError._NOT_CONFIGURED


BAD_INPUT: list[tuple[str, dict[str, Any]]] = [
    ("topic None", {"topic": None, "value": b"x"}),
    ("value int", {"topic": "t", "value": 42}),
    ("value dict", {"topic": "t", "value": {"a": 1}}),
    ("key int", {"topic": "t", "value": b"x", "key": 5}),
    ("partition str", {"topic": "t", "value": b"x", "partition": "a"}),
    ("timestamp str", {"topic": "t", "value": b"x", "timestamp": "a"}),
    ("timestamp float", {"topic": "t", "value": b"x", "timestamp": 1.5}),
    ("headers int", {"topic": "t", "value": b"x", "headers": 5}),
    ("header value int", {"topic": "t", "value": b"x", "headers": [("a", 5)]}),
    ("too large", {"topic": "t", "value": b"x" * 1_000_001}),
]


@pytest.mark.parametrize(("case", "kwargs"), BAD_INPUT, ids=[c for c, _ in BAD_INPUT])
def test_bad_input_raises_what_confluent_kafka_raises(
    bed: KafkaBed, make_producer: ProducerFactory, case: str, kwargs: dict[str, Any]
) -> None:
    plain = Producer({"bootstrap.servers": bed.servers})
    with pytest.raises(Exception) as theirs:
        plain.produce(**kwargs)
    producer = make_producer()
    with pytest.raises(type(theirs.value)) as ours:
        producer.produce(**kwargs)
    if isinstance(theirs.value, KafkaException):
        assert ours.value.args[0].code() == theirs.value.args[0].code()
    assert len(producer) == 0 and producer.get_buffer_size() == 0
    plain.flush(0)


def test_a_refused_message_is_reported_once_with_its_error_and_kept_in_the_failed_list(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    producer.produce(topic, b"before", partition=0)
    assert producer.flush(TIMEOUT) == 0  # the topic exists now, with partitions 0..3
    reports = Deliveries()
    producer.produce(topic, b"nowhere", partition=99, on_delivery=reports)
    producer.produce(topic, b"after", partition=0, on_delivery=reports)
    assert producer.flush(TIMEOUT) == 0  # what failed is not left over
    assert producer.poll(0.2) == 0  # and reported once only
    assert sorted(reports.values()) == [b"after", b"nowhere"]
    (error,) = reports.errors()
    assert error.code() == KafkaError._UNKNOWN_PARTITION
    (failed,) = producer.get_failed_messages()
    assert failed.body == b"nowhere" and failed.error_type == DestinationError.__name__
    assert producer.stats()["failed"] == 1
    assert read_topic(bed.servers, topic, [b"before", b"after"]).values == [b"before", b"after"]


def test_a_full_outbox_raises_a_buffer_error_as_a_full_librdkafka_queue_does(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    producer = make_producer(buffer_max_messages=3, buffer_overflow="raise")
    for i in range(3):
        producer.produce(topic, b"%d" % i)
    with pytest.raises(BufferError) as raised:
        producer.produce(topic, b"3")
    assert isinstance(raised.value, BufferFullError) and isinstance(raised.value, ProducerBufferFullError)
    assert len(producer) == 3
    bed.proxy.up()
    assert producer.flush(TIMEOUT) == 0
    assert sorted(read_topic(bed.servers, topic, [b"0", b"1", b"2"]).values) == [b"0", b"1", b"2"]


def test_drop_oldest_reports_each_dropped_message_to_its_callback(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    producer = make_producer(buffer_max_messages=5, buffer_overflow="drop_oldest")
    reports = Deliveries()
    for i in range(8):
        producer.produce(topic, b"%d" % i, partition=0, on_delivery=reports)
    producer.poll(0)
    dropped = [(m.value(), e.code()) for e, m, _ in reports.reports]
    assert dropped == [
        (b"0", KafkaError._QUEUE_FULL),
        (b"1", KafkaError._QUEUE_FULL),
        (b"2", KafkaError._QUEUE_FULL),
    ]
    bed.proxy.up()
    assert producer.flush(TIMEOUT) == 0
    delivered = [m.value() for e, m, _ in reports.reports if e is None]
    assert delivered == [b"3", b"4", b"5", b"6", b"7"]
    assert len(producer.get_failed_messages()) == 3


def test_purge_forgets_what_waits_and_reports_it_purged(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, TIMEOUT, what="connected")
    bed.proxy.down()
    reports = Deliveries()
    for i in range(50):
        producer.produce(topic, b"purged-%d" % i, partition=0, on_delivery=reports)
    producer.purge()
    wait_until(lambda: producer.get_buffer_size() == 0, TIMEOUT, what="the outbox emptied")
    assert len(producer) == 50  # the reports are owed until poll() serves them
    producer.poll(0)
    assert sorted(reports.values()) == sorted(b"purged-%d" % i for i in range(50))
    assert {e.code() for e in reports.errors()} <= {KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT}
    assert len(reports.errors()) == 50 and producer.get_failed_messages() == []
    assert len(producer) == 0
    bed.proxy.up()
    producer.produce(topic, b"kept", partition=0, on_delivery=reports)
    assert producer.flush(TIMEOUT) == 0
    assert read_topic(bed.servers, topic, [b"kept"]).values == [b"kept"]


def test_purge_in_flight_only_keeps_the_outbox(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    producer = make_producer()
    for i in range(20):
        producer.produce(topic, b"%d" % i, partition=0)
    producer.purge(in_queue=False)  # nothing is in flight while every broker is down
    producer.poll(0)
    assert producer.get_buffer_size() == 20
    bed.proxy.up()
    assert producer.flush(TIMEOUT) == 0
    assert len(read_topic(bed.servers, topic, [b"%d" % i for i in range(20)]).values) == 20


def test_keys_headers_partitions_and_timestamps_arrive_as_produced(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, tmp_path: Any
) -> None:
    producer = make_producer(buffer_path=str(tmp_path / "outbox.db"))
    ts = int(time.time() * 1000) - 60_000
    producer.produce(topic, b"v1", key=b"\x00\xffkey", partition=2, timestamp=ts, headers={"h": b"\x01\x02"})
    producer.produce(topic, None, key="tombstone", partition=2, headers=[("a", "text"), ("b", None)])
    assert producer.flush(TIMEOUT) == 0
    tally = read_topic(bed.servers, topic, [b"v1"])
    first, second = sorted(tally.records, key=lambda m: m.offset())
    assert (first.key(), first.value(), first.partition(), first.timestamp()[1]) == (
        b"\x00\xffkey",
        b"v1",
        2,
        ts,
    )
    assert first.headers() == [("h", b"\x01\x02")]
    assert (second.key(), second.value()) == (b"tombstone", None)
    assert second.headers() == [("a", b"text"), ("b", None)]


def test_produce_batch_accepts_the_good_and_marks_the_bad(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    reports = Deliveries()
    messages: list[dict[str, Any]] = [
        {"value": b"a", "partition": 0},
        {"value": b"x" * 1_000_001},
        {"value": b"b", "key": b"k", "partition": 0, "callback": reports},
    ]
    assert producer.produce_batch(topic, messages, on_delivery=reports) == 2
    assert messages[1]["_error"].code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert producer.flush(TIMEOUT) == 0
    assert reports.values() == [b"a", b"b"]
    assert read_topic(bed.servers, topic, [b"a", b"b"]).values == [b"a", b"b"]


def test_list_topics_and_cluster_id_answer_through_the_live_instance(
    make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    producer.produce(topic, b"x")
    assert producer.flush(TIMEOUT) == 0
    metadata = producer.list_topics(topic, timeout=10)
    assert topic in metadata.topics and len(metadata.topics[topic].partitions) >= 1
    assert producer.cluster_id(timeout=10)


def test_close_delivers_runs_the_callbacks_owed_and_then_refuses(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    reports = Deliveries()
    for i in range(10):
        producer.produce(topic, b"%d" % i, on_delivery=reports)
    assert producer.close() is True
    assert len(reports.reports) == 10 and reports.threads() == {threading.current_thread().name}
    with pytest.raises(RuntimeError) as raised:
        producer.produce(topic, b"late")
    assert isinstance(raised.value, ClientClosedError)
    assert producer.close() is True  # idempotent


def test_a_closed_producer_still_referenced_keeps_no_librdkafka_instance(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    """A kept reference to a closed producer must not keep a librdkafka instance reconnecting for ever."""

    def instances() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if type(o) is Producer}

    before = instances()
    producer = make_producer()
    producer.produce(topic, b"direct")  # connected: through the live instance's own produce()
    assert producer.flush(TIMEOUT) == 0
    assert producer.close() is True
    assert wait_until(lambda: not instances() - before, timeout=10, interval=0.2), "the instance was kept"
    assert producer.connection_state is ConnectionState.CLOSED


def test_the_context_manager_closes(bed: KafkaBed, topic: str) -> None:
    with ReconnectAwareConfluentProducer({"bootstrap.servers": bed.servers, **FAST_CONFLUENT}) as producer:
        producer.produce(topic, b"ctx")
    assert producer.connection_state is ConnectionState.CLOSED
    assert read_topic(bed.servers, topic, [b"ctx"]).values == [b"ctx"]


def test_after_the_reconnect_policy_gave_up_producing_again_connects_again(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    """A confluent-kafka producer has no connect(): FAILED is reported (listeners), then the next produce()
    starts connecting again, as librdkafka itself never stops trying."""
    bed.proxy.down()
    producer = make_producer(reconnect_tries=1, reconnect_interval_seconds=0.1, reconnect_policy=None)
    wait_until(
        lambda: producer.connection_state is ConnectionState.FAILED, TIMEOUT, what="the policy to give up"
    )
    bed.proxy.up()
    producer.produce(topic, b"resumed", partition=0)
    assert producer.flush(TIMEOUT) == 0
    assert producer.connection_state is ConnectionState.CONNECTED
    assert read_topic(bed.servers, topic, [b"resumed"]).values == [b"resumed"]
