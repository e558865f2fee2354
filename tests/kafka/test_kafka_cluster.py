"""ReconnectAwareKafkaProducer on three tansu brokers sharing one S3 store: kill the broker it is using.

The same test as tests/confluent/test_confluent_cluster.py, for the kafka-python adapter: it must carry on
through another broker and lose nothing. Counted by consuming (``assign()``): tansu's end offsets are wrong.
(A plain kafka-python producer stays on the dead broker: see tests/integration/test_testbed_s3.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from resilientmq import ReconnectAwareKafkaProducer
from resilientmq.testing import TansuCluster, wait_until

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
