"""ReconnectAwareKafkaProducer on tansu brokers that keep their data (the S3 engine on a local S3).

Three brokers sharing one store: kill the broker it is using; the same test as
tests/confluent/test_confluent_cluster.py, for the kafka-python adapter: it must carry on through another
broker and lose nothing (a plain kafka-python producer stays on the dead broker: see
tests/integration/test_testbed_s3.py). And one broker killed with SIGKILL mid-stream and restarted: it can
acknowledge as a duplicate (offset -1) a batch it never wrote, which must not be taken as delivered. Counted
by consuming (``assign()``): tansu's end offsets are wrong.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from resilientmq import ReconnectAwareKafkaProducer
from resilientmq.testing import TansuBroker, TansuCluster, wait_until

N = 6000
TIMEOUT = 60.0
FAST: dict[str, Any] = {
    "delivery_timeout_ms": 2500,
    "request_timeout_ms": 1000,
    "reconnect_backoff_max_ms": 500,
    "max_block_ms": 5000,
    "reconnect_interval_seconds": 0.5,
    "reconnect_tries": -1,
}


def _read(servers: list[str], topic: str, expected: set[bytes], timeout: float = 30.0) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, request_timeout_ms=5000)
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                consumer.poll(200)
        if partitions is None:
            return values
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        missing = set(expected)
        quiet = 0
        while time.monotonic() < deadline and (missing or quiet < 3):
            batch = consumer.poll(300)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                values.extend(r.value for r in records)
                missing.difference_update(r.value for r in records)
    finally:
        consumer.close()
    return values


def test_killing_the_broker_a_producer_uses_it_carries_on_through_another(
    tansu_cluster: TansuCluster, chaos_report: Callable[..., None]
) -> None:
    topic = f"kafka-cluster-kill-{time.monotonic_ns()}"
    producer = ReconnectAwareKafkaProducer(bootstrap_servers=tansu_cluster.addresses, **FAST)
    errors: list[BaseException] = []
    try:

        def run() -> None:
            pause = threading.Event()
            for i in range(N):
                try:
                    producer.send(topic, b"%d" % i, key=b"k%d" % (i % 4))
                except Exception as exc:
                    errors.append(exc)
                pause.wait(0.0005)  # pacing, not synchronisation

        sender = threading.Thread(target=run, daemon=True)
        sender.start()
        wait_until(lambda: producer.stats()["confirmed"] >= 1500, TIMEOUT, what="records flowing")
        victim = tansu_cluster.serving()
        tansu_cluster.kill(victim)
        sender.join(TIMEOUT)
        flushed = producer.flush(timeout=TIMEOUT)
        stats = producer.stats()
    finally:
        producer.close(timeout=0)
    survivors = [a for i, a in enumerate(tansu_cluster.addresses) if i in tansu_cluster.running()]
    expected = {b"%d" % i for i in range(N)}
    values = _read(survivors, topic, expected)
    lost = len(expected - set(values))
    chaos_report(sent=N, killed=victim, flushed=flushed, lost=lost, duplicates=len(values) - len(set(values)),
                 connection_losses=stats["connection_losses"])  # fmt: skip
    assert errors == []
    assert flushed is True
    assert lost == 0


def test_a_broker_with_s3_storage_killed_mid_stream_and_restarted_loses_nothing(
    tansu_s3: TansuBroker, chaos_report: Callable[..., None]
) -> None:
    """The kept producer retries its batches with their sequence numbers on the restarted broker, which kept
    the producer's state: for a batch whose numbers it had recorded but whose records it had not written, it
    answers DUPLICATE_SEQUENCE_NUMBER, and kafka-python reports those records delivered with offset -1 (seen
    here without the look-up: 0 to 30 of 6,000 lost per kill). They are looked up and sent again."""
    topic = f"kafka-s3-kill-{time.monotonic_ns()}"
    fast = {k: v for k, v in FAST.items() if k != "delivery_timeout_ms"}  # the adapter's: no expiry
    producer = ReconnectAwareKafkaProducer(bootstrap_servers=tansu_s3.bootstrap_servers, **fast)
    errors: list[BaseException] = []
    try:

        def run() -> None:
            pause = threading.Event()
            for i in range(N):
                try:
                    producer.send(topic, b"%d" % i, key=b"k%d" % (i % 4))
                except Exception as exc:
                    errors.append(exc)
                pause.wait(0.0005)  # pacing, not synchronisation

        sender = threading.Thread(target=run, daemon=True)
        sender.start()
        wait_until(lambda: producer.stats()["confirmed"] >= 1500, TIMEOUT, what="records flowing")
        tansu_s3.kill()
        tansu_s3.restart()  # the same store: every record it wrote is still there
        sender.join(TIMEOUT)
        flushed = producer.flush(timeout=TIMEOUT)
        stats = producer.stats()
    finally:
        producer.close(timeout=0)
    expected = {b"%d" % i for i in range(N)}
    values = _read([tansu_s3.bootstrap_servers], topic, expected)
    lost = len(expected - set(values))
    chaos_report(sent=N, flushed=flushed, lost=lost, duplicates=len(values) - len(set(values)),
                 looked_up=stats.get("verified"), not_in_log=stats.get("verified_missing"),
                 resent=stats["resent"])  # fmt: skip
    assert errors == []
    assert flushed is True
    assert lost == 0
