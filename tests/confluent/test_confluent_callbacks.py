"""The user's callbacks: called once per message with the final outcome, from the user's own poll()/flush(),
on the caller's thread — never for a retriable failure, and never from one of our threads."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError
from confluent_support import Deliveries, KafkaBed, ProducerFactory, read_topic

from resilientmq import ConnectionState
from resilientmq.testing import wait_until

TIMEOUT = 30.0


def test_each_message_is_reported_once_on_the_thread_that_polls(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    producer = make_producer()
    reports = Deliveries()
    n = 2000

    def produce_from_a_thread(offset: int) -> None:
        for i in range(offset, n, 4):
            producer.produce(topic, b"%d" % i, on_delivery=reports)

    producers = [threading.Thread(target=produce_from_a_thread, args=(k,), name=f"app-{k}") for k in range(4)]
    for t in producers:
        t.start()
    for t in producers:
        t.join(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while len(reports.reports) < n and time.monotonic() < deadline:
        producer.poll(0.1)
    assert producer.flush(TIMEOUT) == 0
    assert sorted(reports.values()) == sorted(b"%d" % i for i in range(n))  # each once
    assert reports.threads() == {threading.current_thread().name}
    assert reports.errors() == []
    assert all(m.offset() is not None and m.offset() >= 0 for _, m, _ in reports.reports)


def test_the_callback_argument_wins_over_on_delivery_and_the_configured_default(
    make_producer: ProducerFactory, topic: str
) -> None:
    default, own, alias = Deliveries(), Deliveries(), Deliveries()
    producer = make_producer({"on_delivery": default})
    producer.produce(topic, b"default")
    producer.produce(topic, b"own", on_delivery=own)
    producer.produce(topic, b"callback", callback=own, on_delivery=alias)
    assert producer.flush(TIMEOUT) == 0
    assert default.values() == [b"default"]
    assert sorted(own.values()) == [b"callback", b"own"]
    assert alias.values() == []


def test_delivery_report_only_error_reports_only_failures(make_producer: ProducerFactory, topic: str) -> None:
    reports = Deliveries()
    producer = make_producer({"delivery.report.only.error": True, "on_delivery": reports})
    producer.produce(topic, b"ok", partition=0)
    assert producer.flush(TIMEOUT) == 0
    producer.produce(topic, b"refused", partition=99)
    assert producer.flush(TIMEOUT) == 0
    assert reports.values() == [b"refused"]
    assert reports.errors()[0].code() == KafkaError._UNKNOWN_PARTITION


def test_error_cb_runs_from_the_users_poll_on_the_callers_thread(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    errors: list[tuple[KafkaError, str]] = []
    producer = make_producer({"error_cb": lambda e: errors.append((e, threading.current_thread().name))})
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, TIMEOUT, what="connected")
    bed.proxy.down()
    wait_until(lambda: producer.connection_state is not ConnectionState.CONNECTED, TIMEOUT, what="the outage")
    assert errors == []  # nothing is called behind the user's back
    deadline = time.monotonic() + TIMEOUT
    while not errors and time.monotonic() < deadline:
        producer.poll(0.1)
    assert errors and {name for _, name in errors} == {threading.current_thread().name}
    assert {e.code() for e, _ in errors} & {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT}
    bed.proxy.up()
    producer.produce(topic, b"after")
    assert producer.flush(TIMEOUT) == 0


@pytest.mark.parametrize("asked", [True, False], ids=["interval-set", "no-interval"])
def test_stats_cb_is_called_only_when_statistics_are_asked_for(
    make_producer: ProducerFactory, asked: bool
) -> None:
    stats: list[str] = []
    config: dict[str, object] = {"stats_cb": stats.append}
    if asked:
        config["statistics.interval.ms"] = 200
    producer = make_producer(config)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        producer.poll(0.1)
    assert bool(stats) is asked
    if asked:
        assert '"type": "producer"' in stats[0] or '"type":"producer"' in stats[0]


def test_a_message_that_times_out_is_produced_again_not_reported(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    """An explicit message.timeout.ms bounds one attempt: librdkafka fails the message with _MSG_TIMED_OUT,
    the producer hands it over again, and the user hears of it once, delivered."""
    producer = make_producer({"message.timeout.ms": 1000})
    reports = Deliveries()
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, TIMEOUT, what="connected")
    bed.proxy.blackhole()  # handed over, then unanswered: librdkafka gives up on them after 1 s
    for i in range(30):
        producer.produce(topic, b"%02d" % i, partition=0, on_delivery=reports)
    wait_until(lambda: producer.stats()["resent"] > 0, TIMEOUT, what="a message timed out and was sent again")
    producer.poll(0.2)
    assert reports.reports == []  # the timeouts were not reported
    bed.proxy.heal()
    assert producer.flush(TIMEOUT) == 0
    assert sorted(reports.values()) == [b"%02d" % i for i in range(30)]
    assert reports.errors() == []
    tally = read_topic(bed.servers, topic, [b"%02d" % i for i in range(30)])
    assert tally.lost == []


def test_a_raising_callback_surfaces_from_poll_and_the_rest_are_served_later(
    make_producer: ProducerFactory, topic: str
) -> None:
    seen: list[bytes | None] = []

    def callback(error: KafkaError | None, message: object) -> None:
        value = message.value()  # type: ignore[attr-defined]
        seen.append(value)
        if value == b"boom":
            raise RuntimeError("the application's bug")

    producer = make_producer()
    for value in (b"a", b"boom", b"c"):
        producer.produce(topic, value, partition=0, on_delivery=callback)
    wait_until(lambda: producer.get_buffer_size() == 0, TIMEOUT, what="delivery")
    with pytest.raises(RuntimeError, match="the application's bug"):
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < 3 and time.monotonic() < deadline:
            producer.poll(0.1)
    assert producer.flush(TIMEOUT) == 0
    assert seen == [b"a", b"boom", b"c"]


def test_a_callback_may_produce_again(bed: KafkaBed, make_producer: ProducerFactory, topic: str) -> None:
    producer = make_producer()
    chained: list[bytes] = []

    def callback(error: KafkaError | None, message: object) -> None:
        if len(chained) < 5:
            chained.append(b"next-%d" % len(chained))
            producer.produce(topic, chained[-1], partition=0, on_delivery=callback)

    producer.produce(topic, b"first", partition=0, on_delivery=callback)
    deadline = time.monotonic() + TIMEOUT
    while len(chained) < 5 and time.monotonic() < deadline:
        producer.poll(0.1)
    assert producer.flush(TIMEOUT) == 0
    assert read_topic(bed.servers, topic, [b"first", *chained]).values == [b"first", *chained]
