"""Outages against a real tansu broker behind a ChaosProxy: nothing accepted by produce() may be lost.

Every count comes from an independent consumer reading the broker (``assign()``, no group). Where one
producer instance (one idempotent producer id) lives through a fault, no duplicate is allowed either: resets,
refusals and silent partitions. Where the broker loses the producer's state (a broker with memory storage
killed and restarted) or the producer process dies, the duplicates are counted and reported.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_support import FAST_CONFLUENT, Deliveries, KafkaBed, Pacer, ProducerFactory, at, read_topic

from resilientmq import ConnectionState
from resilientmq.testing import wait_until

HERE = Path(__file__).parent
N_CHAOS = 3000
TIMEOUT = 60.0


def _value(i: int) -> bytes:
    return b"%d" % i


def _chaos(bed: KafkaBed, pacer: Pacer) -> None:
    """Reset, refuse and blackhole every connection while ``pacer`` produces (about 9 s)."""
    start = time.monotonic()
    pacer.start()
    at(start, 1.0)
    bed.proxy.cut()  # reset: every open connection gets an RST
    at(start, 2.0)
    bed.proxy.down()  # refuse: nothing listens, open connections are reset
    at(start, 4.5)
    bed.proxy.up()
    at(start, 5.5)
    bed.proxy.blackhole()  # a silent partition, longer than socket.timeout.ms
    at(start, 8.0)
    bed.proxy.heal()
    at(start, 8.5)
    bed.proxy.cut()
    pacer.join(TIMEOUT)


def test_chaos_loses_nothing_duplicates_nothing_and_keeps_the_order_per_key(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, chaos_report: Callable[..., None]
) -> None:
    producer = make_producer()
    reports = Deliveries()

    def send(i: int) -> None:
        producer.produce(topic, _value(i), key=b"k%d" % (i % 8), on_delivery=reports)
        producer.poll(0)

    _chaos(bed, Pacer(send, N_CHAOS, 0.003))
    assert producer.flush(TIMEOUT) == 0
    stats = producer.stats()
    assert stats["connection_losses"] >= 1, f"the chaos did not bite: {stats}"
    tally = read_topic(bed.servers, topic, [_value(i) for i in range(N_CHAOS)])
    chaos_report(sent=N_CHAOS, lost=len(tally.lost), duplicates=tally.duplicates, resent=stats["resent"],
                 connection_losses=stats["connection_losses"], instances=stats["instances"])  # fmt: skip
    assert tally.lost == []
    assert stats["instances"] == 1  # one producer id through every fault...
    assert tally.duplicates == 0  # ...so the broker dropped every copy it had
    assert tally.keys_out_of_order(int) == []
    assert len(reports.reports) == N_CHAOS and reports.errors() == []  # each reported once, delivered


def test_bursts_in_flight_during_faults_lose_nothing_and_duplicate_nothing(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, chaos_report: Callable[..., None]
) -> None:
    """As fast as produce() goes: thousands of messages sit inside librdkafka when each fault strikes."""
    n = 20_000
    producer = make_producer()

    def send(i: int) -> None:
        producer.produce(topic, _value(i), key=b"k%d" % (i % 8))
        producer.poll(0)

    pacer = Pacer(send, n, 0.0)
    start = time.monotonic()
    pacer.start()
    wait_until(lambda: producer.stats()["confirmed"] >= 2000, TIMEOUT, what="messages flowing")
    bed.proxy.blackhole()
    at(start, time.monotonic() - start + 3.5)
    bed.proxy.heal()
    wait_until(lambda: producer.stats()["confirmed"] >= 8000, TIMEOUT, what="messages flowing again")
    bed.proxy.down()
    at(start, time.monotonic() - start + 3.5)
    bed.proxy.up()
    pacer.join(TIMEOUT)

    assert pacer.errors == []
    assert producer.flush(TIMEOUT) == 0
    stats = producer.stats()
    assert stats["connection_losses"] >= 1, f"the faults did not bite: {stats}"
    tally = read_topic(bed.servers, topic, [_value(i) for i in range(n)])
    chaos_report(sent=n, lost=len(tally.lost), duplicates=tally.duplicates, resent=stats["resent"],
                 connection_losses=stats["connection_losses"], instances=stats["instances"],
                 looked_up=stats["verified"], not_in_log=stats["verified_missing"])  # fmt: skip
    assert tally.lost == []
    assert stats["instances"] == 1 and tally.duplicates == 0
    assert tally.keys_out_of_order(int) == []


def test_evidence_plain_confluent_producer_loses_messages_in_the_same_chaos(
    bed: KafkaBed, topic: str, chaos_report: Callable[..., None]
) -> None:
    """Not a claim about librdkafka's exact losses: with message.timeout.ms shorter than the outage (as
    300 s is shorter than a real one), it fails what it holds. The figures are printed and recorded."""
    producer = Producer({"bootstrap.servers": bed.servers, **FAST_CONFLUENT, "message.timeout.ms": 2000})
    reports = Deliveries()
    full = 0

    def send(i: int) -> None:
        nonlocal full
        try:
            producer.produce(topic, _value(i), key=b"k%d" % (i % 8), on_delivery=reports)
        except BufferError:
            full += 1
        producer.poll(0)

    _chaos(bed, Pacer(send, N_CHAOS, 0.003))
    producer.flush(10)
    delivered = [m.value() for e, m, _ in reports.reports if e is None]
    failed = len(reports.errors())
    tally = read_topic(bed.servers, topic, delivered)
    lost = N_CHAOS - len(set(tally.values))
    chaos_report(client="plain confluent_kafka.Producer", sent=N_CHAOS, lost=lost, reported_failed=failed)
    assert tally.lost == []  # what librdkafka did report delivered is there: the counting is sound


def test_broker_killed_and_restarted_delivers_what_was_buffered_and_what_came_after(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, chaos_report: Callable[..., None]
) -> None:
    producer = make_producer()
    for i in range(200):
        producer.produce(topic, b"before-%d" % i, key=b"k")
    assert producer.flush(TIMEOUT) == 0

    bed.broker.kill()  # memory storage: every record written so far, and our producer's state, are gone
    for i in range(300):
        producer.produce(topic, b"during-%d" % i, key=b"k")
    wait_until(
        lambda: producer.connection_state is not ConnectionState.CONNECTED, 15, what="the loss noticed"
    )
    bed.broker.restart()
    for i in range(200):
        producer.produce(topic, b"after-%d" % i, key=b"k")
    assert producer.flush(TIMEOUT) == 0

    expected = [b"during-%d" % i for i in range(300)] + [b"after-%d" % i for i in range(200)]
    tally = read_topic(bed.servers, topic, expected)
    survivors = sum(1 for v in tally.values if v is not None and v.startswith(b"before-"))
    stats = producer.stats()
    chaos_report(sent=len(expected), lost=len(tally.lost), duplicates=tally.duplicates,
                 pre_kill_survivors=survivors, instances=stats["instances"])  # fmt: skip
    assert tally.lost == []
    assert survivors == 0  # the broker really lost its data: what is there came from us again
    assert tally.keys_out_of_order(expected.index) == []


@pytest.mark.parametrize("stats_interval_ms", [1000, 60_000], ids=["epoch-watch", "stall-watch"])
def test_a_broker_that_lost_the_producer_state_gets_a_new_instance_and_everything_after(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    stats_interval_ms: int,
    chaos_report: Callable[..., None],
) -> None:
    """A memory-storage broker restarted under a stream of messages forgets the producer id: librdkafka
    bumps its epoch, again and again against tansu, delivering nothing. The producer notices — from the
    statistics (the epoch moved), or, with statistics rare, from no delivery for socket.timeout.ms +
    socket.connection.setup.timeout.ms while the cluster answers — replaces the instance and re-sends what
    was unconfirmed."""
    errors: list[KafkaError] = []
    # Short connection set-up: the stall watch acts after socket.timeout.ms + this (3 s + 3 s).
    config = {"error_cb": errors.append, "statistics.interval.ms": stats_interval_ms}
    producer = make_producer({**config, "socket.connection.setup.timeout.ms": 3000})
    n = 6000
    at_kill: list[int] = []

    def send(i: int) -> None:
        producer.produce(topic, _value(i), key=b"k%d" % (i % 4))
        producer.poll(0)

    pacer = Pacer(send, n, 0.0005).start()
    wait_until(lambda: producer.stats()["confirmed"] >= 1000, TIMEOUT, what="messages flowing")
    at_kill.append(producer.stats()["accepted"])
    bed.broker.kill()
    bed.broker.restart()
    pacer.join(TIMEOUT)
    assert producer.flush(TIMEOUT) == 0
    stats = producer.stats()
    after = [_value(i) for i in range(at_kill[0], n)]  # accepted after the kill: none was confirmed before it
    tally = read_topic(bed.servers, topic, after)
    chaos_report(sent=n, after_kill=len(after), lost=len(tally.lost), duplicates=tally.duplicates,
                 instances=stats["instances"])  # fmt: skip
    assert tally.lost == []
    assert stats["instances"] >= 2  # a new producer id, as the broker forgot the old one
    assert tally.keys_out_of_order(int) == []
    assert all(not e.fatal() for e in errors)


def test_a_fatal_error_replaces_the_instance_and_the_users_object_goes_on(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str, chaos_report: Callable[..., None]
) -> None:
    """Deterministic: requests in flight during a silent partition are retried after it to a broker that
    restarted meanwhile (memory storage). UNKNOWN_PRODUCER_ID for a retried batch is fatal for librdkafka
    ("unable to retry without risking duplication/reordering"): the instance is dead."""
    errors: list[KafkaError] = []
    producer = make_producer({"error_cb": errors.append, "statistics.interval.ms": 60_000})
    reports = Deliveries()
    for i in range(100):
        producer.produce(topic, b"confirmed-%d" % i, partition=0)
    assert producer.flush(TIMEOUT) == 0
    bed.proxy.blackhole()
    for i in range(100):
        producer.produce(topic, b"in-flight-%d" % i, partition=0, on_delivery=reports)
    wait_until(lambda: producer.stats()["sent"] >= 200, TIMEOUT, what="the messages handed to librdkafka")
    bed.broker.kill()
    bed.broker.restart()
    bed.proxy.heal()
    assert producer.flush(TIMEOUT) == 0
    stats = producer.stats()
    expected = [b"in-flight-%d" % i for i in range(100)]
    tally = read_topic(bed.servers, topic, expected)
    replaced = [e for e in errors if "replaced the producer instance" in e.str()]
    chaos_report(in_flight=100, lost=len(tally.lost), duplicates=tally.duplicates,
                 instances=stats["instances"], fatal_reported=len(replaced))  # fmt: skip
    assert tally.lost == [] and tally.values == expected  # in order, once: the broker had none of them
    assert stats["instances"] == 2
    assert replaced and not any(e.fatal() for e in errors)  # told, as a non-fatal error
    assert sorted(reports.values()) == sorted(expected) and reports.errors() == []
    producer.produce(topic, b"later", partition=0)
    assert producer.flush(TIMEOUT) == 0
    assert read_topic(bed.servers, topic, [*expected, b"later"]).values == [*expected, b"later"]


def test_kill_9_of_the_producer_process_loses_nothing_with_buffer_path(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    tmp_path: Path,
    chaos_report: Callable[..., None],
) -> None:
    path = tmp_path / "outbox.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen(
        [sys.executable, str(HERE / "confluent_child.py"), bed.servers, topic, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    accepted: queue.Queue[int] = queue.Queue()

    def read_stdout() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            accepted.put(int(line))

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        wait_until(lambda: accepted.qsize() >= 300, 30, what="the child to produce 300 messages")
        bed.proxy.blackhole()  # messages stay unconfirmed in flight and pile up in the file
        seen = accepted.qsize()
        wait_until(lambda: accepted.qsize() >= seen + 300, 30, what="300 more messages")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    reader.join(10)
    numbers = sorted(accepted.queue)
    assert numbers == list(range(len(numbers)))
    bed.proxy.heal()

    successor = make_producer(buffer_path=str(path))
    left = successor.get_buffer_size()
    assert left >= 300  # the messages accepted during the blackhole were never confirmed
    assert successor.flush(TIMEOUT) == 0
    tally = read_topic(bed.servers, topic, [_value(i) for i in numbers])
    chaos_report(accepted=len(numbers), left_in_file=left, lost=len(tally.lost), duplicates=tally.duplicates)
    assert tally.lost == []
    assert tally.keys_out_of_order(int) == []
