"""Helpers for the Kafka suite: an independent consumer that counts what the broker really holds."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from resilientmq import ReconnectAwareKafkaProducer
from resilientmq.testing import ChaosProxy, TansuBroker

# Short kafka-python timeouts so that outages of a few seconds outlast its own retries (the case).
FAST_KAFKA: dict[str, Any] = {
    "delivery_timeout_ms": 2500,
    "request_timeout_ms": 1000,
    "reconnect_backoff_max_ms": 500,
    "max_block_ms": 5000,
}
FAST_RECONNECT: dict[str, Any] = {"reconnect_interval_seconds": 0.5, "reconnect_tries": -1}

ProducerFactory = Callable[..., ReconnectAwareKafkaProducer]


@dataclass
class KafkaBed:
    """A tansu broker whose advertised listener is a ChaosProxy: every connection crosses the proxy."""

    broker: TansuBroker
    proxy: ChaosProxy

    @property
    def servers(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"


@dataclass
class Tally:
    """What the broker holds for a topic, compared with what was sent."""

    records: list[Any]
    expected: list[bytes]
    values: list[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.values = [r.value for r in self.records]

    @property
    def lost(self) -> list[bytes]:
        held = set(self.values)
        return [v for v in self.expected if v not in held]

    @property
    def duplicates(self) -> int:
        return len(self.values) - len(set(self.values))

    def keys_out_of_order(self, position: Callable[[bytes], int]) -> list[Any]:
        """Keys whose records' first copies are not in send order (``position`` maps a value to it)."""
        by_key: dict[Any, list[int]] = collections.defaultdict(list)
        for r in sorted(self.records, key=lambda r: (r.partition, r.offset)):
            by_key[r.key].append(position(r.value))
        bad = []
        for key, positions in by_key.items():
            firsts = list(dict.fromkeys(positions))  # first copy of each record, in log order
            if firsts != sorted(firsts):
                bad.append(key)
        return bad


def read_topic(bed: KafkaBed, topic: str, expected: Iterable[bytes], timeout: float = 30.0) -> Tally:
    """Read the whole topic with a plain consumer (``assign()``: no group join), until every expected value
    has been seen (or ``timeout``) and then until the log is quiet, so duplicates are counted too."""
    want = list(expected)
    missing = set(want)
    consumer = KafkaConsumer(
        bootstrap_servers=bed.broker.bootstrap_servers, enable_auto_commit=False, request_timeout_ms=5000
    )
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                consumer.poll(200)  # drives the metadata refresh
        if partitions is None:
            return Tally(records, want)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        quiet = 0
        while time.monotonic() < deadline and (missing or quiet < 3):
            batch = consumer.poll(300)
            quiet = 0 if batch else quiet + 1
            for rs in batch.values():
                records.extend(rs)
                missing.difference_update(r.value for r in rs)
        return Tally(records, want)
    finally:
        consumer.close()


class Pacer:
    """Sends ``n`` records from a thread at a steady pace, so faults land while records are in flight."""

    def __init__(self, send: Callable[[int], Any], n: int, interval: float) -> None:
        self.futures: list[Any] = []
        self.errors: list[BaseException] = []
        self._send = send
        self._n = n
        self._interval = interval
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pacer", daemon=True)

    def start(self) -> Pacer:
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        pause = threading.Event()
        try:
            for i in range(self._n):
                try:
                    self.futures.append(self._send(i))
                except Exception as exc:
                    self.errors.append(exc)
                lag = start + (i + 1) * self._interval - time.monotonic()
                if lag > 0:
                    pause.wait(lag)  # pacing, not synchronisation
        finally:
            self.done.set()

    def join(self, timeout: float) -> None:
        assert self.done.wait(timeout), "the sending thread did not finish"


def at(start: float, offset: float) -> None:
    """Wait until ``offset`` seconds after ``start`` (a fault schedule; pacing, not synchronisation)."""
    delay = start + offset - time.monotonic()
    if delay > 0:
        threading.Event().wait(delay)
