"""The Kafka Connector and Session on their own, against a real tansu: epochs, settling, one producer kept
across connections, retiring, probing, cancel."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.future import Future as KafkaFuture
from kafka.net.compat import KafkaNetClient
from kafka.producer.future import RecordMetadata
from kafka_support import FAST_KAFKA, AnswerDropper, KafkaBed, read_topic

from resilientmq import ConnectionLostError, ResilientMQError
from resilientmq.core.buffer import Envelope
from resilientmq.kafka import producer as producer_module
from resilientmq.kafka.records import RecordFuture
from resilientmq.kafka.session import KafkaConnector, KafkaSession
from resilientmq.testing import TansuBroker, free_port

PROBE_TIMEOUT = 3.0


def _envelopes(topic: str, n: int, first: int = 1) -> list[Envelope]:
    now = time.time()
    return [Envelope(first + i, uuid.uuid4().hex, topic, b"%d" % i, {"p": 0}, now) for i in range(n)]


@pytest.fixture
def connectors() -> Iterator[list[KafkaConnector]]:
    made: list[KafkaConnector] = []
    try:
        yield made
    finally:
        for connector in made:
            connector.close()


def _connector(
    connectors: list[KafkaConnector], servers: str, futures: dict[str, RecordFuture] | None = None, **kw: Any
) -> KafkaConnector:
    configs = dict(bootstrap_servers=servers, **FAST_KAFKA, **kw.pop("configs", {}))
    connector = KafkaConnector(
        "session", configs, {} if futures is None else futures, probe_timeout=PROBE_TIMEOUT, **kw
    )
    connectors.append(connector)
    return connector


def test_a_session_serves_the_epoch_it_is_given_and_settles_each_record(
    bed: KafkaBed, topic: str, connectors: list[KafkaConnector]
) -> None:
    batch = _envelopes(topic, 5)
    futures = {e.id: RecordFuture() for e in batch}
    callers = dict(futures)
    told: list[Any] = []
    losses: list[BaseException | None] = []
    connector = _connector(connectors, bed.servers, futures, on_build=told.append)
    session = connector.open((bed.servers,), 7, losses.append)

    assert session.epoch == 7
    assert told == [session.producer] and session.producer is not None
    result = session.transmit(batch).result(timeout=20)

    assert (dict(result.failed), dict(result.retry)) == ({}, {})
    assert [callers[e.id].get(timeout=1).offset for e in batch] == [0, 1, 2, 3, 4]
    assert isinstance(callers[batch[0].id].value, RecordMetadata)
    assert futures == {}  # settled futures are handed back, not kept
    assert session.partitions_for(topic) == {0, 1, 2, 3}
    assert losses == []


def test_the_next_connection_keeps_the_producer_and_carries_what_it_holds(
    bed: KafkaBed, topic: str, connectors: list[KafkaConnector]
) -> None:
    told: list[Any] = []
    connector = _connector(connectors, bed.servers, on_build=told.append)
    first = connector.open((bed.servers,), 1, lambda _error: None)
    first.partitions_for(topic)  # the topic's metadata is known: records are sent at once
    bed.proxy.blackhole()  # nothing is answered: the records stay in flight inside kafka-python
    batch = _envelopes(topic, 20)
    pending = first.transmit(batch)
    first.close()  # the supervisor drops the connection; the producer stays

    started = time.monotonic()
    with pytest.raises(ConnectionLostError):  # the probe through the kept producer gets no answer
        connector.open((bed.servers,), 2, lambda _error: None)
    assert time.monotonic() - started < PROBE_TIMEOUT + 2
    assert not pending.done()
    bed.proxy.heal()
    second = connector.open((bed.servers,), 2, lambda _error: None)

    assert second.producer is first.producer and len(told) == 1
    assert second.carries(1) and second.carries(2) and not second.carries(3)
    result = pending.result(timeout=20)  # kafka-python retried them itself
    assert (dict(result.failed), dict(result.retry)) == ({}, {})
    tally = read_topic(bed, topic, [e.body for e in batch])
    assert tally.lost == [] and tally.duplicates == 0


def test_retiring_reports_the_loss_once_and_the_next_connection_gets_a_new_producer(
    bed: KafkaBed, topic: str, connectors: list[KafkaConnector]
) -> None:
    losses: list[BaseException | None] = []
    told: list[Any] = []
    connector = _connector(connectors, bed.servers, on_build=told.append)
    session = connector.open((bed.servers,), 1, losses.append)
    session.partitions_for(topic)
    bed.proxy.blackhole()
    batch = _envelopes(topic, 20)
    pending = session.transmit(batch)
    assert not pending.done()

    error = ConnectionLostError("retired by the test")
    session.fence(error)
    session.fence(ConnectionLostError("again"))

    result = pending.result(timeout=10)
    assert set(result.retry) == {e.seq for e in batch} and dict(result.failed) == {}
    assert losses == [error]
    assert session.producer is None and not session.carries(1)
    with pytest.raises(ConnectionLostError, match="retired"):
        session.transmit(batch)
    with pytest.raises(ConnectionLostError, match="retired"):
        session.partitions_for(topic)
    session.close()
    session.close()  # idempotent, and a closed session reports nothing more
    assert losses == [error]

    bed.proxy.heal()
    fresh = connector.open((bed.servers,), 2, losses.append)
    assert len(told) == 2 and fresh.producer is told[1] and not fresh.carries(1)


def test_cancel_ends_a_bootstrap_in_progress_at_once(bed: KafkaBed, connectors: list[KafkaConnector]) -> None:
    bed.proxy.down()
    created = threading.Event()

    def client(**configs: Any) -> Any:
        made = KafkaNetClient(**configs)
        created.set()
        return made

    connector = _connector(
        connectors, bed.servers, configs={"kafka_client": client, "bootstrap_timeout_ms": 60000}
    )
    outcome: list[BaseException] = []

    def open_session() -> None:
        try:
            connector.open((bed.servers,), 1, lambda _error: None).close()
        except BaseException as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_session)
    opener.start()
    assert created.wait(10), "the bootstrap did not start"
    started = time.monotonic()
    connector.cancel()
    opener.join(20)
    assert not opener.is_alive()
    assert time.monotonic() - started < 10, (
        "cancel() did not end the bootstrap (bootstrap_timeout_ms is 60 s)"
    )
    (error,) = outcome
    assert isinstance(error, ConnectionLostError) and "cancelled while connecting" in str(error)


def test_cancel_ends_a_probe_in_progress_at_once(
    bed: KafkaBed, topic: str, connectors: list[KafkaConnector]
) -> None:
    connector = KafkaConnector(
        "session", dict(bootstrap_servers=bed.servers, **FAST_KAFKA), {}, probe_timeout=60
    )
    connectors.append(connector)
    connector.open((bed.servers,), 1, lambda _error: None)
    bed.proxy.blackhole()
    outcome: list[BaseException] = []

    def open_session() -> None:
        try:
            connector.open((bed.servers,), 2, lambda _error: None)
        except BaseException as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_session)
    opener.start()
    opener.join(0.5)
    assert opener.is_alive(), "the probe should wait for an answer"
    started = time.monotonic()
    connector.cancel()
    opener.join(10)
    assert not opener.is_alive() and time.monotonic() - started < 5
    (error,) = outcome
    assert isinstance(error, ResilientMQError) and "cancelled while connecting" in str(error)


def test_a_probe_ends_when_its_producer_is_retired_and_the_same_attempt_builds_a_new_one(
    bed: KafkaBed, connectors: list[KafkaConnector]
) -> None:
    """A retired producer answers no probe (or fails it): the probe ends at once and the same attempt builds
    a new producer. (Waiting out the probe's timeout there, request_timeout_ms + reconnect_backoff_max_ms +
    1 s, made a 2 s refusal a 32 s outage: test_after_a_short_refusal_... in test_kafka_chaos.py.)"""
    told: list[Any] = []
    connector = KafkaConnector(
        "session",
        dict(bootstrap_servers=bed.servers, **FAST_KAFKA),
        {},
        probe_timeout=60,
        on_build=told.append,
    )
    connectors.append(connector)
    first = connector.open((bed.servers,), 1, lambda _error: None)
    bed.proxy.blackhole()  # no probe is answered
    outcome: list[Any] = []

    def open_session() -> None:
        try:
            outcome.append(connector.open((bed.servers,), 2, lambda _error: None))
        except BaseException as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_session)
    opener.start()
    opener.join(0.5)
    assert opener.is_alive(), "the probe should wait for an answer"
    first.fence(ConnectionLostError("retired by the test"))  # as a delivery timeout would, mid-probe
    bed.proxy.heal()  # the new producer bootstraps once the broker answers
    started = time.monotonic()
    opener.join(20)
    assert not opener.is_alive() and time.monotonic() - started < 10
    (second,) = outcome
    assert isinstance(second, KafkaSession) and second.epoch == 2
    assert len(told) == 2 and second.producer is told[1]


@pytest.fixture
def dropper(tmp_path: Path) -> Iterator[tuple[TansuBroker, AnswerDropper]]:
    port = free_port()
    relay = AnswerDropper(port)
    broker = TansuBroker(port=port, advertised_port=relay.port, workdir=tmp_path / "tansu")
    try:
        broker.start()
        yield broker, relay
    finally:
        broker.close()
        relay.close()


def test_a_producer_that_answers_probes_but_settles_nothing_is_retired_after_three_connections(
    dropper: tuple[TansuBroker, AnswerDropper], topic: str, connectors: list[KafkaConnector]
) -> None:
    """Every produce answer is lost (kafka-python retries for ever) while metadata answers come through:
    from the outside, a stuck producer. The third connection on which that holds gets a new producer."""
    _broker, relay = dropper
    servers = f"127.0.0.1:{relay.port}"
    told: list[Any] = []
    connector = _connector(connectors, servers, on_build=told.append)

    def open_once_probed(epoch: int) -> KafkaSession:
        # Each lost answer resets the connection, and with it a probe under way: the supervisor would
        # try again, and so does this (failed probes do not count, answered ones do).
        for _attempt in range(20):
            try:
                return connector.open((servers,), epoch, lambda _error: None)
            except ConnectionLostError:
                continue
        raise AssertionError("no probe was answered")

    session = open_once_probed(1)
    session.partitions_for(topic)
    relay.drop_produce_answers(10_000)
    pending = session.transmit(_envelopes(topic, 3))
    kept = [open_once_probed(epoch) for epoch in (2, 3)]
    assert [s.producer for s in kept] == [told[0], told[0]]
    assert not pending.done()

    fresh = open_once_probed(4)
    assert len(told) == 2 and fresh.producer is told[1] and not fresh.carries(3)
    result = pending.result(timeout=10)  # the retired producer failed what it held: sent again by the new one
    assert len(result.retry) == 3


class _ClaimsDuplicates(KafkaProducer):  # type: ignore[misc]
    """kafka-python's producer, with the broker's answer for chosen values replaced by what tansu's S3 engine
    can give after a kill: DUPLICATE_SEQUENCE_NUMBER, which kafka-python reports as offset -1. A value in
    ``written`` is really written first (a true duplicate answer); one in ``phantom`` never is."""

    written: frozenset[bytes] = frozenset()
    phantom: frozenset[bytes] = frozenset()

    def send(self, topic: str, value: Any = None, *args: Any, **kwargs: Any) -> Any:
        if value not in self.written | self.phantom:
            return super().send(topic, value, *args, **kwargs)
        if value in self.written:
            metadata = super().send(topic, value, *args, **kwargs).get(timeout=10)
        else:
            tp = TopicPartition(topic, kwargs.get("partition", args[2] if len(args) > 2 else 0))
            metadata = RecordMetadata(topic, tp.partition, tp, 0, kwargs.get("timestamp_ms"), None, -1, 1, -1)
        return KafkaFuture().success(metadata._replace(offset=-1))


def test_records_acknowledged_without_an_offset_are_confirmed_only_once_found_in_the_partition(
    bed: KafkaBed, topic: str, connectors: list[KafkaConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic: the records' answers are replaced, the broker and the look-up are real."""
    monkeypatch.setattr(_ClaimsDuplicates, "written", frozenset({b"3"}))
    monkeypatch.setattr(_ClaimsDuplicates, "phantom", frozenset({b"0"}))
    monkeypatch.setattr(producer_module, "KafkaProducer", _ClaimsDuplicates)
    batch = _envelopes(topic, 5)  # values b"0".."4", partition 0; b"0" first: no offset of ours before it
    futures = {e.id: RecordFuture() for e in batch}
    callers = dict(futures)
    connector = _connector(connectors, bed.servers, futures)
    session = connector.open((bed.servers,), 1, lambda _error: None)

    result = session.transmit(batch).result(timeout=30)

    assert dict(result.failed) == {} and set(result.retry) == {batch[0].seq}  # missing: sent again
    assert not callers[batch[0].id].is_done  # its caller learns the outcome of the re-send
    offsets = [callers[e.id].get(timeout=1).offset for e in batch[1:]]
    tally = read_topic(bed, topic, [b"1", b"2", b"3", b"4"])
    assert offsets == [r.offset for r in sorted(tally.records, key=lambda r: r.offset)]  # b"3": its real one
    assert b"0" not in tally.values
    assert connector.stats() == {"verified": 2, "verified_missing": 1}

    now = time.time()  # records acknowledged with an offset are not looked up
    normal = [Envelope(6 + i, uuid.uuid4().hex, topic, b"n%d" % i, {"p": 0}, now) for i in range(3)]
    assert session.transmit(normal).result(timeout=20).retry == {}
    assert connector.stats() == {"verified": 2, "verified_missing": 1}
