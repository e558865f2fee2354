"""A broker that keeps its data (tansu's S3 engine on a local S3), and three of them sharing one store.

Killed with SIGKILL mid-stream, such a broker can acknowledge as duplicates batches it never wrote (it records
a batch's sequence numbers and writes the batch separately); the producer looks such messages up in the log
and produces again only those that are missing, so nothing is lost. What the kill still duplicates (batches
written but not acknowledged, then re-sent) is counted and reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Producer
from confluent_support import FAST_CONFLUENT, FAST_RECONNECT, Deliveries, Pacer, read_topic

from resilientmq.confluent import ReconnectAwareConfluentProducer
from resilientmq.testing import TansuBroker, TansuCluster, wait_until

TIMEOUT = 60.0
N = 6000


def _value(i: int) -> bytes:
    return b"%d" % i


def _producer(servers: str) -> ReconnectAwareConfluentProducer:
    return ReconnectAwareConfluentProducer({"bootstrap.servers": servers, **FAST_CONFLUENT}, **FAST_RECONNECT)


def test_a_broker_with_s3_storage_killed_mid_stream_and_restarted_loses_nothing(
    tansu_s3: TansuBroker, chaos_report: Callable[..., None]
) -> None:
    topic = f"s3-kill-{time.monotonic_ns()}"
    producer = _producer(tansu_s3.bootstrap_servers)
    try:
        pacer = Pacer(
            lambda i: (producer.produce(topic, _value(i), key=b"k%d" % (i % 4)), producer.poll(0)), N, 0.0005
        )
        pacer.start()
        wait_until(lambda: producer.stats()["confirmed"] >= 1500, TIMEOUT, what="messages flowing")
        tansu_s3.kill()
        tansu_s3.restart()  # same store: every record it wrote is still there
        pacer.join(TIMEOUT)
        assert producer.flush(TIMEOUT) == 0
        stats = producer.stats()
    finally:
        producer.close(0)
    tally = read_topic(tansu_s3.bootstrap_servers, topic, [_value(i) for i in range(N)])
    chaos_report(sent=N, lost=len(tally.lost), duplicates=tally.duplicates, instances=stats["instances"],
                 looked_up=stats["verified"], not_in_log=stats["verified_missing"])  # fmt: skip
    assert tally.lost == []


def test_killing_the_broker_a_producer_uses_it_carries_on_through_another(
    tansu_cluster: TansuCluster, chaos_report: Callable[..., None]
) -> None:
    topic = f"cluster-kill-{time.monotonic_ns()}"
    producer = _producer(tansu_cluster.bootstrap_servers)
    reports = Deliveries()
    try:

        def send(i: int) -> None:
            producer.produce(topic, _value(i), key=b"k%d" % (i % 4), on_delivery=reports)
            producer.poll(0)

        pacer = Pacer(send, N, 0.0005).start()
        wait_until(lambda: producer.stats()["confirmed"] >= 1500, TIMEOUT, what="messages flowing")
        victim = tansu_cluster.serving()
        tansu_cluster.kill(victim)
        pacer.join(TIMEOUT)
        assert producer.flush(TIMEOUT) == 0
        stats = producer.stats()
        moved_to = tansu_cluster.serving()
    finally:
        producer.close(0)
    survivor = tansu_cluster.addresses[moved_to]
    tally = read_topic(survivor, topic, [_value(i) for i in range(N)])
    chaos_report(sent=N, killed=victim, moved_to=moved_to, lost=len(tally.lost), duplicates=tally.duplicates,
                 instances=stats["instances"], looked_up=stats["verified"],
                 not_in_log=stats["verified_missing"])  # fmt: skip
    assert moved_to != victim
    assert tally.lost == []
    assert len(reports.reports) == N and reports.errors() == []  # each reported once, delivered


def test_evidence_a_plain_confluent_producer_moves_over_but_trusts_what_the_dead_broker_lost(
    tansu_cluster: TansuCluster, chaos_report: Callable[..., None]
) -> None:
    """Not a claim about how many: librdkafka moves to another broker and keeps its producer id; the
    other broker answers re-sent batches the dead one recorded but never wrote as duplicates, and librdkafka
    reports them delivered. The figures are printed and recorded."""
    topic = f"cluster-plain-{time.monotonic_ns()}"
    producer = Producer({"bootstrap.servers": tansu_cluster.bootstrap_servers, **FAST_CONFLUENT})
    reports = Deliveries()

    def send(i: int) -> None:
        while True:
            try:
                producer.produce(topic, _value(i), key=b"k%d" % (i % 4), on_delivery=reports)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)

    def flowing() -> bool:
        # Delivery reports come only from poll(): once the pacer has produced everything, nothing else
        # polls, and reports still owed would never be served.
        producer.poll(0.05)
        return len(reports.reports) >= 1500

    pacer = Pacer(send, N, 0.0005).start()
    wait_until(flowing, TIMEOUT, what="messages flowing")
    victim = tansu_cluster.serving()
    tansu_cluster.kill(victim)
    pacer.join(TIMEOUT)
    producer.flush(TIMEOUT)
    delivered = [m.value() for e, m, _ in reports.reports if e is None]
    survivor = tansu_cluster.addresses[next(i for i in tansu_cluster.running())]
    tally = read_topic(survivor, topic, delivered, timeout=15)
    chaos_report(client="plain confluent_kafka.Producer", sent=N, reported_delivered=len(delivered),
                 delivered_but_missing=len(tally.lost))  # fmt: skip
    assert len(delivered) == N  # librdkafka moved over and reported every message delivered
