"""Helpers for the confluent-kafka suite: an independent consumer that counts what the broker really holds."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from resilientmq import ReconnectPolicy
from resilientmq.confluent import ReconnectAwareConfluentProducer
from resilientmq.testing import ChaosProxy, TansuBroker

# Short librdkafka timeouts, so that a silent partition is noticed within seconds (the default is 60 s).
FAST_CONFLUENT: dict[str, Any] = {
    "socket.timeout.ms": 3000,
    "reconnect.backoff.max.ms": 500,
    "linger.ms": 5,
}
FAST_RECONNECT: dict[str, Any] = {
    "reconnect_policy": ReconnectPolicy(
        initial_delay=0.05,
        multiplier=2.0,
        max_delay=0.5,
        jitter=0.1,
        max_attempts=-1,
        initial_connect_attempts=-1,
    )
}

ProducerFactory = Callable[..., ReconnectAwareConfluentProducer]


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

    records: list[Message]
    expected: list[bytes]
    values: list[bytes | None] = field(init=False)

    def __post_init__(self) -> None:
        self.values = [r.value() for r in self.records]

    @property
    def lost(self) -> list[bytes]:
        held = set(self.values)
        return [v for v in self.expected if v not in held]

    @property
    def duplicates(self) -> int:
        return len(self.values) - len(set(self.values))

    def keys_out_of_order(self, position: Callable[[bytes], int]) -> list[Any]:
        """Keys whose records' first copies are not in produce order (``position`` maps a value to it)."""
        by_key: dict[Any, list[int]] = collections.defaultdict(list)
        for r in sorted(self.records, key=lambda r: (r.partition(), r.offset())):
            value = r.value()
            assert value is not None
            by_key[r.key()].append(position(value))
        bad = []
        for key, positions in by_key.items():
            firsts = list(dict.fromkeys(positions))  # first copy of each record, in log order
            if firsts != sorted(firsts):
                bad.append(key)
        return bad


def read_topic(servers: str, topic: str, expected: Iterable[bytes], timeout: float = 30.0) -> Tally:
    """Read the whole topic with a plain confluent-kafka consumer (``assign()``: no group join) until every
    expected value has been seen (or ``timeout``) and then until the log is quiet, so duplicates count too."""
    want = list(expected)
    missing = set(want)
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "resilientmq-tests-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    records: list[Message] = []
    try:
        deadline = time.monotonic() + timeout
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            try:
                metadata = consumer.list_topics(topic, timeout=5)
                found = metadata.topics.get(topic)
                if found is not None and found.error is None:
                    partitions = sorted(found.partitions)
            except Exception:
                threading.Event().wait(0.2)
        if not partitions:
            return Tally(records, want)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        quiet = 0
        while time.monotonic() < deadline and (missing or quiet < 3):
            batch = [m for m in consumer.consume(5000, 0.3) if _is_record(m)]
            quiet = 0 if batch else quiet + 1
            records.extend(batch)
            missing.difference_update(m.value() for m in batch)
        return Tally(records, want)
    finally:
        consumer.close()


def _is_record(message: Message) -> bool:
    return message.error() is None


class Pacer:
    """Calls ``send(i)`` ``n`` times from a thread at a steady pace, so faults land while messages fly."""

    def __init__(self, send: Callable[[int], Any], n: int, interval: float) -> None:
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
                    self._send(i)
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


class Deliveries:
    """A delivery callback that records every report, and the thread it ran on."""

    def __init__(self) -> None:
        self.reports: list[tuple[KafkaError | None, Message, str]] = []
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            self.reports.append((error, message, threading.current_thread().name))

    def values(self) -> list[bytes | None]:
        return [m.value() for _, m, _ in self.reports]

    def errors(self) -> list[KafkaError]:
        return [e for e, _, _ in self.reports if e is not None]

    def threads(self) -> set[str]:
        return {t for _, _, t in self.reports}
