"""Outages against a real tansu broker behind a ChaosProxy: nothing accepted by send() may be lost, and what
a kept producer carries through a reset, a refusal or a silent partition is written once.

Every count comes from an independent consumer reading the broker (``assign()``, no group). Faults that can
still write a record twice (a new producer id: the broker lost the producer's state, a ``delivery_timeout_ms``
the caller set ran out, the producer process was killed) report how many, and the README says why.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kafka.errors as Errors
import pytest
from kafka import KafkaProducer
from kafka_support import (
    FAST_KAFKA,
    FAST_RECONNECT,
    SHORT_DELIVERY,
    AnswerDropper,
    KafkaBed,
    Pacer,
    ProducerFactory,
    at,
    read_topic,
)

from resilientmq import ClientClosedError, ConnectionState, ReconnectAwareKafkaProducer
from resilientmq.testing import TansuBroker, free_port, wait_until

HERE = Path(__file__).parent


def _chaos(bed: KafkaBed, pacer: Pacer) -> None:
    """Refuse, reset and blackhole every connection while ``pacer`` sends (about 9 s)."""
    start = time.monotonic()
    pacer.start()
    at(start, 1.0)
    bed.proxy.cut()  # reset: every open connection gets an RST
    at(start, 2.0)
    bed.proxy.down()  # refuse: nothing listens, open connections are reset
    at(start, 4.5)
    bed.proxy.up()
    at(start, 5.5)
    bed.proxy.blackhole()  # a silent partition, longer than delivery_timeout_ms
    at(start, 8.0)
    bed.proxy.heal()
    at(start, 8.5)
    bed.proxy.cut()
    pacer.join(60)


N_CHAOS = 3000


def _value(i: int) -> bytes:
    return b"%d" % i


def test_chaos_loses_nothing_writes_nothing_twice_and_keeps_the_order_per_key(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    chaos_report: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = make_producer()
    pacer = Pacer(lambda i: producer.send(topic, _value(i), key=b"k%d" % (i % 8)), N_CHAOS, 0.003)
    _chaos(bed, pacer)

    assert pacer.errors == []
    assert producer.flush(timeout=60) is True
    stats = producer.stats()
    # The refusal and the silent partition outlast confirm_timeout: the supervisor saw them, and recovered.
    assert stats["connection_losses"] >= 1 and stats["reconnects"] >= 1, f"the chaos did not bite: {stats}"
    assert all(f.succeeded() for f in pacer.futures)
    tally = read_topic(bed, topic, [_value(i) for i in range(N_CHAOS)])
    chaos_report(sent=N_CHAOS, lost=len(tally.lost), duplicates=tally.duplicates, resent=stats["resent"],
                 connection_losses=stats["connection_losses"])  # fmt: skip
    assert tally.lost == []
    assert tally.keys_out_of_order(int) == []
    assert tally.duplicates == 0 and stats["resent"] == 0  # kafka-python retried; we sent nothing twice
    assert _retirements(caplog) == []


def test_bursts_in_flight_during_faults_keep_their_order_and_are_written_once(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    chaos_report: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As fast as send() goes: thousands of records sit inside kafka-python when each fault strikes."""
    n = 20_000
    producer = make_producer()
    pacer = Pacer(lambda i: producer.send(topic, _value(i), key=b"k%d" % (i % 8)), n, 0.0)
    start = time.monotonic()
    pacer.start()
    wait_until(lambda: producer.stats()["confirmed"] >= 2000, 30, what="records flowing")
    bed.proxy.blackhole()
    at(start, time.monotonic() - start + 3.5)
    bed.proxy.heal()
    wait_until(lambda: producer.stats()["confirmed"] >= 8000, 60, what="records flowing again")
    bed.proxy.down()  # refused for longer than delivery_timeout_ms, with a burst in flight
    at(start, time.monotonic() - start + 3.5)
    bed.proxy.up()
    pacer.join(60)

    assert pacer.errors == []
    assert producer.flush(timeout=60) is True
    stats = producer.stats()
    assert stats["connection_losses"] >= 2 and stats["reconnects"] >= 2, f"the faults did not bite: {stats}"
    tally = read_topic(bed, topic, [_value(i) for i in range(n)])
    chaos_report(sent=n, lost=len(tally.lost), duplicates=tally.duplicates, resent=stats["resent"],
                 connection_losses=stats["connection_losses"])  # fmt: skip
    assert tally.lost == []
    assert tally.keys_out_of_order(int) == []
    assert tally.duplicates == 0 and stats["resent"] == 0
    assert _retirements(caplog) == []


def test_evidence_plain_kafka_producer_loses_records_in_the_same_chaos(
    bed: KafkaBed, topic: str, chaos_report: Callable[..., None]
) -> None:
    """Not a claim about kafka-python's exact losses (they vary): the figures are printed and recorded.

    Besides failing futures, kafka-python 3.0.12 can stall for good after resetting its producer id: those
    records neither fail nor succeed ("stuck" below) and close() cannot flush them.
    """
    producer = KafkaProducer(bootstrap_servers=bed.servers, **FAST_KAFKA, **SHORT_DELIVERY)
    try:
        pacer = Pacer(lambda i: producer.send(topic, _value(i), key=b"k%d" % (i % 8)), N_CHAOS, 0.003)
        _chaos(bed, pacer)
        with contextlib.suppress(Errors.KafkaTimeoutError):
            producer.flush(timeout=5)
        acknowledged = [i for i, f in enumerate(pacer.futures) if f.succeeded()]
        failed = sum(1 for f in pacer.futures if f.failed())
        stuck = sum(1 for f in pacer.futures if not f.is_done)
    finally:
        with contextlib.suppress(Errors.KafkaTimeoutError):
            producer.close(timeout=2)
        if not producer._closed:  # stalled: its own close() cannot finish, so abandon its records
            producer._sender.force_close()
            producer._sender.join(5)
            producer.close(timeout=0)
    tally = read_topic(bed, topic, [_value(i) for i in acknowledged])
    lost = N_CHAOS - len(set(tally.values))
    chaos_report(client="plain KafkaProducer", sent=N_CHAOS, lost=lost, futures_failed=failed, stuck=stuck)
    assert tally.lost == []  # what kafka-python did acknowledge is there: the counting is sound


def test_constructed_while_the_broker_is_unreachable_it_buffers_then_delivers(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    bed.proxy.down()
    started = time.monotonic()
    producer = make_producer(max_block_ms=60000)  # what a blocking send() would wait: far above the bound
    futures = [producer.send(topic, _value(i), key=b"k") for i in range(500)]
    assert time.monotonic() - started < 10.0, "construction or send() waited for the broker"
    assert producer.connection_state is ConnectionState.CONNECTING
    assert producer.get_buffer_size() == 500 and not any(f.is_done for f in futures)

    bed.proxy.up()
    assert producer.flush(timeout=30) is True
    assert [f.get(timeout=1).offset for f in futures] == list(range(500))
    tally = read_topic(bed, topic, [_value(i) for i in range(500)])
    assert tally.lost == [] and tally.duplicates == 0


def test_broker_killed_and_restarted_delivers_what_was_buffered_and_what_came_after(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    chaos_report: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Memory storage: the restarted broker lost the records and the producer's state (its id). Duplicates are
    possible in general (a new producer id re-sends what the old one had written unanswered) and counted;
    with memory storage what was written is gone, so here the count is the broker's, not ours."""
    producer = make_producer()
    before = [producer.send(topic, b"before-%d" % i, key=b"k") for i in range(200)]
    assert producer.flush(timeout=20) is True

    bed.broker.kill()  # memory storage: every record written so far is gone with it
    during = [producer.send(topic, b"during-%d" % i, key=b"k") for i in range(300)]
    wait_until(
        lambda: producer.connection_state is not ConnectionState.CONNECTED, 15, what="the loss noticed"
    )
    assert not any(f.is_done for f in during)
    bed.broker.restart()
    after = [producer.send(topic, b"after-%d" % i, key=b"k") for i in range(200)]
    assert producer.flush(timeout=60) is True

    assert all(f.succeeded() for f in before + during + after)
    expected = [b"during-%d" % i for i in range(300)] + [b"after-%d" % i for i in range(200)]
    tally = read_topic(bed, topic, expected)
    survivors = sum(1 for v in tally.values if v.startswith(b"before-"))
    chaos_report(
        sent=len(expected), lost=len(tally.lost), duplicates=tally.duplicates, pre_kill_survivors=survivors
    )
    assert tally.lost == []
    assert survivors == 0  # confirms the broker really lost its data: the records above came from us
    assert tally.keys_out_of_order(expected.index) == []
    # The restarted broker no longer knows the producer id: that producer is retired, a new one sends.
    assert any("UnknownProducerId" in line for line in _retirements(caplog)), _retirements(caplog)


@pytest.mark.parametrize("while_", ["blackholed", "flowing"])
def test_kill_9_of_the_producer_process_loses_nothing_with_buffer_path(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    tmp_path: Path,
    chaos_report: Callable[..., None],
    while_: str,
) -> None:
    """The next process is a new producer id: it sends again everything unconfirmed. Of that, the batch that
    was in flight when the answers stopped coming (one, of up to 1,000 records) may have been written, and
    then appears twice: counted, at most one batch."""
    path = tmp_path / "outbox.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen(
        [sys.executable, str(HERE / "kafka_child.py"), bed.servers, topic, str(path)],
        stdout=subprocess.PIPE,
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
        wait_until(lambda: accepted.qsize() >= 300, 30, what="the child to send 300 records")
        if while_ == "blackholed":
            bed.proxy.blackhole()  # records stay unconfirmed in flight and pile up in the file
        seen = accepted.qsize()
        wait_until(lambda: accepted.qsize() >= seen + 300, 30, what="300 more records")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    reader.join(10)
    numbers = sorted(accepted.queue)
    assert numbers == list(range(len(numbers)))
    bed.proxy.heal()

    successor = make_producer(buffer_path=path)
    left = successor.get_buffer_size()
    if while_ == "blackholed":
        assert left >= 300  # the records accepted during the blackhole were never confirmed
    assert successor.flush(timeout=60) is True
    tally = read_topic(bed, topic, [_value(i) for i in numbers])
    chaos_report(killed=while_, accepted=len(numbers), left_in_file=left, lost=len(tally.lost),
                 duplicates=tally.duplicates)  # fmt: skip
    assert tally.lost == []
    assert tally.keys_out_of_order(int) == []
    assert tally.duplicates <= 1000


def _retirements(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The adapter's log lines for retired kafka-python producers (each one meant a new producer id)."""
    return [r.getMessage() for r in caplog.records if "kafka producer retired" in r.getMessage()]


class _States:
    def __init__(self) -> None:
        self.seen: list[ConnectionState] = []

    def on_state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        self.seen.append(new)


def _fault(bed: KafkaBed, kind: str) -> None:
    """One fault with records in flight: three resets, or a refusal / silent partition of 3.5 s (longer than
    the 2 s confirm_timeout of FAST_KAFKA, so the supervisor must notice it)."""
    pause = threading.Event()
    if kind == "reset":
        for _ in range(3):
            bed.proxy.cut()
            pause.wait(0.4)  # pacing: resets land on connections that kafka-python has just rebuilt
        return
    start, end = (
        (bed.proxy.down, bed.proxy.up) if kind == "refusal" else (bed.proxy.blackhole, bed.proxy.heal)
    )
    start()
    pause.wait(3.5)  # the length of the outage
    end()


@pytest.mark.parametrize("kind", ["reset", "refusal", "silent partition"])
def test_one_producer_rides_out_a_fault_and_writes_every_record_once(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    chaos_report: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    producer = make_producer()
    states = _States()
    producer.add_reconnect_listener(states)
    n = 1500
    pacer = Pacer(lambda i: producer.send(topic, _value(i), key=b"k%d" % (i % 8)), n, 0.003).start()
    wait_until(lambda: producer.stats()["confirmed"] >= 200, 30, what="records flowing")
    _fault(bed, kind)
    pacer.join(60)

    assert pacer.errors == []
    assert producer.flush(timeout=60) is True
    stats = producer.stats()
    tally = read_topic(bed, topic, [_value(i) for i in range(n)])
    chaos_report(fault=kind, sent=n, lost=len(tally.lost), duplicates=tally.duplicates,
                 resent=stats["resent"], connection_losses=stats["connection_losses"])  # fmt: skip
    assert tally.lost == [] and tally.duplicates == 0
    assert tally.keys_out_of_order(int) == []
    assert stats["resent"] == 0 and _retirements(caplog) == []  # one producer, one producer id throughout
    if kind != "reset":  # kafka-python reconnects through a reset by itself; an outage is the client's news
        assert ConnectionState.RECONNECTING in states.seen, states.seen
        assert stats["reconnects"] >= 1 and producer.connection_state is ConnectionState.CONNECTED


@pytest.mark.parametrize("backoff", [{}, {"reconnect_backoff_max_ms": 30000}], ids=["default", "30s-given"])
def test_after_a_short_refusal_it_is_connected_and_delivering_again_within_the_policys_pace(
    bed: KafkaBed, topic: str, chaos_report: Callable[..., None], backoff: dict[str, int]
) -> None:
    """kafka-python's reconnect and metadata settings at their defaults and only our policy (0.5 s); request
    and delivery timeouts short, as the demo has them, so that a refusal of about 2 s is an outage to the
    client at all (with kafka-python's 30 s request timeout it passes unnoticed: kafka-python reconnects
    within about a second by itself). Was about 32 s: kafka-python's backoff (up to 30 s) kept it away until
    the delivery timeout retired the producer during the probe, which then waited out request_timeout_ms +
    reconnect_backoff_max_ms + 1 s. Now the backoff follows the policy, and with a 30 s backoff given, the
    probe ends when its producer is retired and the same attempt builds a new one."""
    producer = ReconnectAwareKafkaProducer(
        bootstrap_servers=bed.servers, request_timeout_ms=1000, **SHORT_DELIVERY, **FAST_RECONNECT, **backoff
    )
    try:
        n = 600
        pacer = Pacer(lambda i: producer.send(topic, _value(i), key=b"k%d" % (i % 8)), n, 0.005).start()
        wait_until(lambda: producer.stats()["confirmed"] >= 100, 30, what="records flowing")
        bed.proxy.down()
        down = time.monotonic()
        wait_until(lambda: producer.connection_state is ConnectionState.RECONNECTING, 10, what="the loss")
        at(down, 2.0)  # the refusal lasts 2 s, or until the loss was noticed
        bed.proxy.up()
        up = time.monotonic()
        after = producer.send(topic, b"after", key=b"k0")
        wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, 60, what="CONNECTED")
        connected = time.monotonic() - up
        after.get(timeout=60)
        delivering = time.monotonic() - up
        pacer.join(60)
        assert producer.flush(timeout=30) is True
    finally:
        producer.close(timeout=0)
    chaos_report(refused=f"{up - down:.1f}s", connected_after=f"{connected:.1f}s",
                 delivering_after=f"{delivering:.1f}s")  # fmt: skip
    assert connected < 10 and delivering < 10
    tally = read_topic(bed, topic, [_value(i) for i in range(n)] + [b"after"])
    assert tally.lost == []


def test_close_during_an_outage_does_not_wait_for_a_new_topics_metadata(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    """kafka-python's send() waits up to max_block_ms (here its 60 s default) for a new topic's metadata. The
    one sender thread must not wait there: the outage is noticed by the unanswered batch (request_timeout_ms
    + 1 s), records for known topics go on being handed over, and close() takes drain_timeout."""
    producer = make_producer(max_block_ms=60000, drain_timeout=0)
    producer.send(topic, b"known", partition=0).get(timeout=20)
    bed.proxy.down()
    new_topic = f"{topic}-new"
    new = [producer.send(new_topic, b"new-%d" % i, partition=0) for i in range(50)]
    known = producer.send(topic, b"known-too", partition=0)
    wait_until(lambda: producer.connection_state is ConnectionState.RECONNECTING, 10, what="the loss")
    assert producer.stats()["sent"] == 52  # the record for the known topic was handed over too

    started = time.monotonic()
    assert producer.close() is False  # 51 records left, lost with the memory buffer
    assert time.monotonic() - started < 2.0
    assert all(isinstance(f.exception, ClientClosedError) for f in [*new, known])


@pytest.fixture
def dropper(tmp_path: Path) -> Iterator[tuple[TansuBroker, AnswerDropper]]:
    """tansu advertising an AnswerDropper: every connection crosses it."""
    port = free_port()
    relay = AnswerDropper(port)
    broker = TansuBroker(port=port, advertised_port=relay.port, workdir=tmp_path / "tansu")
    try:
        broker.start()
        yield broker, relay
    finally:
        broker.close()
        relay.close()


def _duplicate_answers(caplog: pytest.LogCaptureFixture) -> int:
    return sum("DUPLICATE_SEQUENCE_NUMBER" in r.getMessage() for r in caplog.records)


def test_a_lost_answer_is_retried_as_the_same_batch_and_tansu_refuses_the_copy_as_a_success(
    dropper: tuple[TansuBroker, AnswerDropper], topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python 3.0.12 on tansu, no adapter: a batch written whose answer was lost is sent again with its
    sequence number; tansu answers DUPLICATE_SEQUENCE_NUMBER (46) and kafka-python counts that a success."""
    broker, relay = dropper
    caplog.set_level(logging.DEBUG, logger="kafka.producer.sender")
    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{relay.port}", **FAST_KAFKA)
    try:
        first = producer.send(topic, b"first", partition=0).get(timeout=20)
        relay.drop_produce_answers(1)
        second = producer.send(topic, b"second", partition=0).get(timeout=20)
    finally:
        producer.close(timeout=5)
    assert relay.dropped == 1
    assert _duplicate_answers(caplog) == 1
    # tansu's answer to the copy carries no offset, and kafka-python hands that on: -1.
    assert first.offset == 0 and second.offset in (-1, 1)
    tally = read_topic(broker, topic, [b"first", b"second"])
    assert [(r.offset, r.value) for r in tally.records] == [(0, b"first"), (1, b"second")]


def test_ours_writes_a_batch_whose_answer_was_lost_once(
    dropper: tuple[TansuBroker, AnswerDropper], topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker, relay = dropper
    caplog.set_level(logging.DEBUG, logger="kafka.producer.sender")
    servers = f"127.0.0.1:{relay.port}"
    producer = ReconnectAwareKafkaProducer(bootstrap_servers=servers, **FAST_KAFKA, reconnect_tries=-1)
    try:
        producer.send(topic, b"warm-up", partition=0).get(timeout=20)
        relay.drop_produce_answers(1)
        futures = producer.send_batch(topic, [b"%d" % i for i in range(100)])
        assert producer.flush(timeout=30) is True
        stats = producer.stats()
    finally:
        producer.close(timeout=5)
    assert relay.dropped == 1 and _duplicate_answers(caplog) >= 1
    assert all(f.succeeded() for f in futures) and stats["resent"] == 0
    tally = read_topic(broker, topic, [b"%d" % i for i in range(100)])
    assert tally.lost == [] and tally.duplicates == 0
    # tansu answers the copy without an offset (-1): the records of the batch whose answer was lost (as many
    # as kafka-python had put in it) were looked up in the partition, found there, and every future
    # resolved with the record's real offset.
    assert stats["verified"] >= 1 and stats["verified_missing"] == 0
    offsets = {r.value: r.offset for r in tally.records}
    assert [f.get(timeout=1).offset for f in futures] == [offsets[b"%d" % i] for i in range(100)]


def test_a_delivery_timeout_you_set_keeps_its_meaning_and_nothing_is_lost(
    bed: KafkaBed,
    make_producer: ProducerFactory,
    topic: str,
    chaos_report: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """delivery_timeout_ms=2500 and a 4 s silent partition: kafka-python gives the records up (as it would),
    that producer is retired and a new one sends them again. Nothing is lost; what the old producer had
    written unanswered is written twice (counted, the README says so)."""
    producer = make_producer(**SHORT_DELIVERY)
    n = 1500
    pacer = Pacer(lambda i: producer.send(topic, _value(i), key=b"k%d" % (i % 8)), n, 0.003).start()
    wait_until(lambda: producer.stats()["confirmed"] >= 200, 30, what="records flowing")
    bed.proxy.blackhole()
    threading.Event().wait(4.0)  # the length of the outage: longer than delivery_timeout_ms
    bed.proxy.heal()
    pacer.join(60)

    assert pacer.errors == []
    assert producer.flush(timeout=60) is True
    stats = producer.stats()
    tally = read_topic(bed, topic, [_value(i) for i in range(n)])
    chaos_report(sent=n, lost=len(tally.lost), duplicates=tally.duplicates, resent=stats["resent"])
    assert tally.lost == []
    assert tally.keys_out_of_order(int) == []
    assert any("Expiring" in line for line in _retirements(caplog)), _retirements(caplog)
    assert stats["resent"] > 0


@pytest.mark.soak
def test_soak_repeated_chaos(bed: KafkaBed, make_producer: ProducerFactory, topic: str) -> None:
    """Five rounds of the chaos above on one producer (about a minute)."""
    producer = make_producer()
    total = 0
    for _ in range(5):
        base = total
        pacer = Pacer(
            lambda i, b=base: producer.send(topic, _value(b + i), key=b"k%d" % (i % 8)), N_CHAOS, 0.003
        )
        _chaos(bed, pacer)
        total += N_CHAOS
    assert producer.flush(timeout=120) is True
    tally = read_topic(bed, topic, [_value(i) for i in range(total)], timeout=60)
    assert tally.lost == []
    assert tally.keys_out_of_order(int) == []
