"""What the two Kafka parts share: the fault script, the plain client's view of its health, and the
independent consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from resilientmq.testing import ChaosProxy, start_tansu_behind_proxy

from .driver import DemoClient, PartRun, Step

__all__ = ["LastOutcome", "kafka_script", "read_topic", "run_through_tansu"]

DURATION = 14.0


def run_through_tansu(
    ctx: PartRun, clients: Callable[[str], tuple[DemoClient, DemoClient]], timeout_note: str
) -> None:
    """One tansu behind a ChaosProxy; ``clients(servers)`` makes the plain producer and ours; both stream
    through the Kafka fault script and are counted by the independent consumer."""
    broker, proxy = start_tansu_behind_proxy()
    try:
        plain, mine = clients(f"127.0.0.1:{proxy.port}")
        ctx.stream([plain, mine], kafka_script(proxy, timeout_note), DURATION)
        for client in (plain, mine):
            ctx.tally(client, read_topic(broker.bootstrap_servers, client.destination))
    finally:
        proxy.close()
        broker.close()


def kafka_script(proxy: ChaosProxy, timeout_note: str) -> list[Step]:
    return [
        Step(2.0, "connection reset", proxy.cut),
        Step(4.0, "port refused 2 s", proxy.down, 2.0, proxy.up),
        Step(8.0, f"silent partition 3 s ({timeout_note})", proxy.blackhole, 3.0, proxy.heal),
    ]


class LastOutcome:
    """A plain producer's health as its application sees it: how its latest message fared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok = self._failed = 0.0

    def ok(self) -> None:
        with self._lock:
            self._ok = time.monotonic()

    def failed(self) -> None:
        with self._lock:
            self._failed = time.monotonic()

    def state(self) -> str:
        with self._lock:
            return "failing" if self._failed > self._ok else "up"


def read_topic(servers: str, topic: str) -> list[bytes]:
    """Every record of ``topic``, read with assign() (no group join), until the log is quiet."""
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    try:
        partitions = None
        deadline = time.monotonic() + 30
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                consumer.poll(200)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: list[bytes] = []
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            batch = consumer.poll(500)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                got.extend(r.value for r in records)
        return got
    finally:
        consumer.close()
