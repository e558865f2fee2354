"""Learning whether messages are in a partition's log, by reading it, instead of guessing.

A broker that answers a retried batch with DUPLICATE_SEQUENCE_NUMBER says "I have it already"; librdkafka
then reports the messages delivered, without an offset (the first one's is None, the others count up from
0). On Kafka that answer is true. On a broker whose store is not atomic it can be false: tansu's S3 engine,
killed between recording a batch's sequence numbers and writing the batch, answers the retry as a duplicate
of a batch that was never written (seen here: 10 to 38 messages lost per kill). Trusting it loses them;
re-sending every such message duplicates the ones that were written. So those messages are looked up: a
consumer of our own (``assign()``, no group) reads the partition from the last offset we know to the end,
and each message is matched by key, value and timestamp (its CreateTime is ours).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, Message, TopicPartition

from .errors import LocalCode
from .settings import ProducerSettings

__all__ = ["Verifier", "Wanted"]

log = logging.getLogger("resilientmq.confluent")

_READ_TIMEOUT = 30.0
_CHUNK = 1000

Wanted = tuple[bytes | None, bytes | None, int]
"""What identifies a message in the log: (key, value, CreateTime in ms)."""


@dataclass
class _Job:
    topic: str
    partition: int
    start: int | None
    wanted: Sequence[Wanted]
    reply: Callable[[list[Message | None] | None], None]


class Verifier:
    """Looks messages up in their partition, one job at a time, on a thread of its own (started on the
    first job). A job's reply gets, per wanted message, the consumed ``Message`` or None when it is not in
    the log; or None as a whole when the log could not be read (the caller asks again later)."""

    def __init__(self, settings: ProducerSettings) -> None:
        self._settings = settings
        self._group = f"resilientmq-verify-{uuid.uuid4().hex[:12]}"
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.checked = 0  # messages looked up
        self.missing = 0  # of which the log did not have

    def submit(
        self,
        topic: str,
        partition: int,
        start: int | None,
        wanted: Sequence[Wanted],
        reply: Callable[[list[Message | None] | None], None],
    ) -> None:
        with self._lock:
            if self._closed:
                reply(None)
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"{self._settings.name}-verify", daemon=True
                )
                self._thread.start()
        self._jobs.put(_Job(topic, partition, start, wanted, reply))

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                found = self.lookup(job.topic, job.partition, job.start, job.wanted)
            except Exception as exc:
                log.warning(
                    "%s: could not read %s [%d] back: %s", self._settings.name, job.topic, job.partition, exc
                )
                found = None
            if found is not None:
                self.checked += len(found)
                self.missing += sum(1 for m in found if m is None)
            try:
                job.reply(found)
            except Exception:
                log.exception("%s: a verification reply raised", self._settings.name)

    def lookup(
        self,
        topic: str,
        partition: int,
        start: int | None,
        wanted: Sequence[Wanted],
        timeout: float = _READ_TIMEOUT,
    ) -> list[Message | None] | None:
        """Read ``topic [partition]`` from ``start`` (None: from its first record) to its end and find each
        wanted message; None if the end could not be reached within ``timeout`` seconds."""
        consumer = Consumer(self._settings.consumer_config(self._group))
        try:
            begin = OFFSET_BEGINNING if start is None or start < 0 else start
            consumer.assign([TopicPartition(topic, partition, begin)])
            remaining = Counter(_identity_keys(wanted))
            seen: dict[tuple[Any, ...], list[Message]] = {}
            deadline = time.monotonic() + timeout
            while remaining and time.monotonic() < deadline:
                ended = False
                for message in consumer.consume(_CHUNK, 0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == LocalCode.PARTITION_EOF:
                            ended = True
                            continue
                        raise RuntimeError(f"reading {topic} [{partition}]: {error}")
                    for key in _keys_of(message):
                        if remaining[key] > 0:
                            remaining[key] -= 1
                            seen.setdefault(key, []).append(message)
                            break
                if ended:
                    break
            else:
                if remaining:
                    return None  # out of time before the end of the log
            return [_take(seen, w) for w in wanted]
        finally:
            consumer.close()


def _identity_keys(wanted: Sequence[Wanted]) -> list[tuple[Any, ...]]:
    return [("c", key, value, ts) for key, value, ts in wanted]


def _keys_of(message: Message) -> list[tuple[Any, ...]]:
    kind, ts = message.timestamp()
    if kind == TIMESTAMP_CREATE_TIME:
        return [("c", message.key(), message.value(), ts)]
    return []  # a topic with LogAppendTime: the timestamp is not ours, nothing can be matched for sure


def _take(seen: dict[tuple[Any, ...], list[Message]], wanted: Wanted) -> Message | None:
    found = seen.get(("c", *wanted))
    return found.pop(0) if found else None
