"""Helpers for the Kafka suite: an independent consumer that counts what the broker really holds, a pacer, and
a relay that loses a chosen answer of the broker."""

from __future__ import annotations

import collections
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from resilientmq import ReconnectAwareKafkaProducer
from resilientmq.testing import ChaosProxy, TansuBroker

# Short kafka-python timeouts, so that outages of a few seconds outlast a request and a confirm_timeout (the
# producer's own delivery_timeout_ms is left to the adapter: kafka-python then retries for as long as an
# outage lasts). A plain KafkaProducer gets SHORT_DELIVERY too: then its retries end within an outage.
FAST_KAFKA: dict[str, Any] = {
    "request_timeout_ms": 1000,
    "reconnect_backoff_max_ms": 500,
    "max_block_ms": 5000,
}
SHORT_DELIVERY: dict[str, Any] = {"delivery_timeout_ms": 2500}
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


def read_topic(
    source: KafkaBed | TansuBroker, topic: str, expected: Iterable[bytes], timeout: float = 30.0
) -> Tally:
    """Read the whole topic with a plain consumer (``assign()``: no group join), straight from the broker,
    until every expected value has been seen (or ``timeout``) and then until the log is quiet, so duplicates
    are counted too."""
    want = list(expected)
    missing = set(want)
    broker = source.broker if isinstance(source, KafkaBed) else source
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False, request_timeout_ms=5000
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


class AnswerDropper:
    """A TCP relay to a Kafka broker that loses the broker's answer to the next Produce request(s), then
    resets that connection: the broker has written the batch, the client never hears so.

    Kafka frames are length-prefixed both ways (a request header starts with api_key, api_version and
    correlation id; a response header with the correlation id), so the relay forwards whole frames and knows
    which answer belongs to a Produce request (api_key 0). ``drop_produce_answers(n)`` arms it.
    """

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed = 0
        self.dropped = 0
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="answer-dropper", daemon=True).start()

    def drop_produce_answers(self, n: int = 1) -> None:
        with self._lock:
            self._armed += n

    def close(self) -> None:
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                target = socket.create_connection(self._target)
            except OSError:
                return
            self._sockets += [client, target]
            doomed: set[int] = set()  # correlation ids whose answer is lost
            threading.Thread(target=self._requests, args=(client, target, doomed), daemon=True).start()
            threading.Thread(target=self._answers, args=(target, client, doomed), daemon=True).start()

    def _requests(self, client: socket.socket, target: socket.socket, doomed: set[int]) -> None:
        for frame in _frames(client):
            api_key, _version, correlation = struct.unpack(">hhi", frame[4:12])
            with self._lock:
                if api_key == 0 and self._armed > 0:
                    self._armed -= 1
                    doomed.add(correlation)
            with contextlib.suppress(OSError):
                target.sendall(frame)

    def _answers(self, target: socket.socket, client: socket.socket, doomed: set[int]) -> None:
        for frame in _frames(target):
            (correlation,) = struct.unpack(">i", frame[4:8])
            if correlation in doomed:
                with self._lock:
                    self.dropped += 1
                for sock in (client, target):  # a reset, as a broken network would
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        sock.close()
                return
            with contextlib.suppress(OSError):
                client.sendall(frame)


def _frames(sock: socket.socket) -> Iterator[bytes]:
    """Whole Kafka frames (size prefix included) read from ``sock`` until it closes."""
    pending = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        pending += chunk
        while len(pending) >= 4:
            (size,) = struct.unpack(">i", pending[:4])
            if len(pending) < 4 + size:
                break
            yield pending[: 4 + size]
            pending = pending[4 + size :]
