"""Learning whether records acknowledged without an offset are in their partition, by reading it.

kafka-python takes a DUPLICATE_SEQUENCE_NUMBER answer (error 46) for a success and reports the batch's records
with offset -1. On Kafka that answer is true: the broker wrote the batch before. tansu's S3 engine, killed
between recording a batch's sequence numbers and writing the batch, gives the same answer to the retry of a
batch it never wrote (seen here: up to 30 of 6,000 records lost per kill by a plain idempotent producer).
So such records are looked up instead of trusted: a consumer of our own (``assign()``, no group, no commits)
reads the partition from the offset after the last record of ours known there up to the high watermark of its
fetch answers (tansu's ``end_offsets()`` is wrong, its high watermark is not), and each record is matched by
key, value and timestamp (a CreateTime timestamp is the producer's; with LogAppendTime, by key and value).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

__all__ = ["LogReader", "Lookup", "Wanted", "consumer_configs"]

log = logging.getLogger("resilientmq.kafka")

Wanted = tuple[bytes | None, bytes | None, int]
"""What identifies a record in the log: (key, value, timestamp in ms)."""

_READ_TIMEOUT = 30.0  # one look-up: from the consumer's construction to the end of the log
_RETRY_AFTER = 1.0  # a look-up that could not read the log is tried again after this long
_CREATE_TIME = 0  # ConsumerRecord.timestamp_type of a CreateTime timestamp

# Producer settings a consumer takes too, but which are the producer's own or would change the broker's state.
_PRODUCER_ONLY = frozenset(
    {
        "client_id",
        "kafka_client",
        "selector",
        "metric_reporters",
        "metrics_enabled",
        "metrics_num_samples",
        "metrics_sample_window_ms",
        "max_in_flight_requests_per_connection",
        "allow_auto_create_topics",
    }
)


def consumer_configs(producer_configs: Mapping[str, Any], client_id: str) -> dict[str, Any]:
    """A ``KafkaConsumer``'s kwargs that reach the brokers the way the producer does (servers, security,
    timeouts), reading without a group, never creating a topic."""
    shared = {
        key: value
        for key, value in producer_configs.items()
        if key in KafkaConsumer.DEFAULT_CONFIG and key not in _PRODUCER_ONLY
    }
    return dict(
        shared,
        client_id=f"{client_id}-verify",
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )


@dataclass
class Lookup:
    """One look-up: ``wanted`` records in ``tp``, from offset ``start`` (None: from the log's first record).

    ``reply`` gets, per wanted record, its offset in the log or None when it is not there. It is called once,
    on the reader's thread, unless the look-up was ``abandoned`` first; a look-up that cannot read the log is
    tried again until it can.
    """

    tp: TopicPartition
    start: int | None
    wanted: Sequence[Wanted]
    reply: Callable[[list[int | None]], None]
    abandoned: threading.Event = field(default_factory=threading.Event)


class LogReader:
    """Runs :class:`Lookup` jobs one at a time on a thread of its own (started by the first)."""

    def __init__(self, name: str, configs: Mapping[str, Any]) -> None:
        self.name = name
        self._configs = dict(configs)
        self._jobs: queue.SimpleQueue[Lookup | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.checked = 0  # records looked up
        self.missing = 0  # of which the log did not hold

    def submit(self, job: Lookup) -> None:
        with self._lock:
            if self._closed.is_set():
                return  # whoever abandons it settles it
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"{self.name}-verify", daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def close(self, timeout: float = 1.0) -> None:
        """Stop; a look-up under way ends at its next read (its job is the abandoner's to settle). Waits
        up to ``timeout`` for the thread (it may be inside a consumer's bootstrap: it ends by itself)."""
        with self._lock:
            self._closed.set()
            thread = self._thread
        self._jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            while not (job.abandoned.is_set() or self._closed.is_set()):
                try:
                    found = self.lookup(job.tp, job.start, job.wanted, stop=job.abandoned)
                except Exception as exc:
                    log.warning(
                        "%s: could not read %s [%d] back: %s", self.name, job.tp.topic, job.tp.partition, exc
                    )
                    found = None
                if found is not None:
                    self.checked += len(found)
                    self.missing += sum(1 for offset in found if offset is None)
                    if not job.abandoned.is_set():
                        _guarded(job.reply, found)
                    break
                self._closed.wait(_RETRY_AFTER)

    def lookup(
        self,
        tp: TopicPartition,
        start: int | None,
        wanted: Sequence[Wanted],
        timeout: float = _READ_TIMEOUT,
        stop: threading.Event | None = None,
    ) -> list[int | None] | None:
        """The offset of each wanted record in ``tp``, read from ``start`` to the end of the log (None for
        a record not there); None when the end could not be reached within ``timeout`` seconds, or ``stop``
        (or :meth:`close`) came first."""
        stop = stop or self._closed
        deadline = time.monotonic() + timeout
        exact: dict[Wanted, list[int]] = defaultdict(list)  # identity -> indices still unmatched
        loose: dict[tuple[bytes | None, bytes | None], list[int]] = defaultdict(list)
        for i, (key, value, timestamp) in enumerate(wanted):
            exact[(key, value, timestamp)].append(i)
            loose[(key, value)].append(i)
        found: list[int | None] = [None] * len(wanted)
        left = len(wanted)
        consumer = KafkaConsumer(**self._configs)
        try:
            consumer.assign([tp])
            if start is None or start < 0:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
            while left and time.monotonic() < deadline and not (stop.is_set() or self._closed.is_set()):
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        match = _match(record, exact, loose, found)
                        if match is not None:
                            found[match] = record.offset
                            left -= 1
                end = consumer.highwater(tp)  # from the fetch answers: known once one came
                if end is not None and consumer.position(tp) >= end:
                    return found
            return found if not left else None
        finally:
            consumer.close()


def _match(
    record: Any,
    exact: dict[Wanted, list[int]],
    loose: dict[tuple[bytes | None, bytes | None], list[int]],
    found: list[int | None],
) -> int | None:
    """The index of the first unmatched wanted record ``record`` is, if any."""
    if record.timestamp_type == _CREATE_TIME:
        candidates = exact.get((record.key, record.value, record.timestamp))
    else:  # LogAppendTime: the timestamp is the broker's
        candidates = loose.get((record.key, record.value))
    while candidates:
        i = candidates.pop(0)
        if found[i] is None:
            return i
    return None


def _guarded(reply: Callable[[list[int | None]], None], found: list[int | None]) -> None:
    try:
        reply(found)
    except Exception:
        log.exception("a look-up's reply raised")
