"""Records for a topic kafka-python has no metadata for yet: handed to it from a thread of their own.

kafka-python's ``send()`` waits in the caller's thread (up to ``max_block_ms``, 60 s by default) until it
knows a new topic's partitions. Called from the one sender thread, that wait held up the other records of
the batch, delayed noticing an outage (nothing was handed over, so nothing went unanswered) and made
``close()`` wait for it. So the producer hands a record to ``send()`` only when its topic's metadata is
known, and leaves the others here: a :class:`Handover` asks kafka-python for the topic's metadata, without
waiting, and hands the records over, in order, once it is known. A record waits here at most
``max_block_ms`` (what ``send()`` would have waited), then fails with a retriable error;
:meth:`Handover.stop` fails every waiting record at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kafka.errors as Errors
from kafka.future import Future as KafkaFuture

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError

from .errors import translate_kafka_error
from .records import send_args

__all__ = ["Handover"]

log = logging.getLogger("resilientmq.kafka")

_RECHECK = 1.0  # the longest wait for a metadata answer before looking again (and at the deadlines)

ErrorCallback = Callable[[BaseException], Any]


@dataclass
class _Topic:
    deadline: float
    records: list[tuple[Envelope, KafkaFuture, ErrorCallback]] = field(default_factory=list)


class Handover:
    """The records of ``producer`` (a ``kafka.KafkaProducer``) whose topic has no metadata yet.

    ``cluster`` is the producer's ``ClusterMetadata``; ``report`` is told when a topic's metadata did not
    come within ``max_block`` seconds (the connection looks lost).
    """

    def __init__(
        self,
        name: str,
        producer: Any,
        cluster: Any,
        max_block: float,
        report: Callable[[BaseException], None],
    ) -> None:
        self.name = name
        self._producer = producer
        self._cluster = cluster
        self._max_block = max_block
        self._report = report
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._topics: dict[str, _Topic] = {}
        self._stopped = False
        self._thread: threading.Thread | None = None

    def must_wait(self, topic: str) -> bool:
        """True when a record for ``topic`` cannot be handed to ``send()`` now. Called by the one thread that
        defers records (only :meth:`_hand_over` removes a topic, after sending its records), so a False
        means no record of the topic is waiting, or being handed over, here."""
        return topic in self._topics or self._cluster.partitions_for_topic(topic) is None

    def defer(self, envelope: Envelope, on_failure: ErrorCallback) -> KafkaFuture | None:
        """Keep ``envelope`` until its topic's metadata is known; its future settles as kafka-python's would
        (``on_failure`` is also told of kafka-python's failures). None when it can be sent at once after
        all."""
        topic = envelope.destination
        placeholder = KafkaFuture()
        with self._lock:
            if self._stopped:
                stopped = True
            elif topic not in self._topics and self._cluster.partitions_for_topic(topic) is not None:
                return None  # handed over meanwhile: it follows the others directly
            else:
                stopped = False
                waiting = self._topics.get(topic)
                if waiting is None:
                    waiting = self._topics[topic] = _Topic(time.monotonic() + self._max_block)
                waiting.records.append((envelope, placeholder, on_failure))
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"{self.name}-handover", daemon=True
                    )
                    self._thread.start()
        if stopped:
            return placeholder.failure(ConnectionLostError(f"{self.name}: the kafka producer was retired"))
        self._wake.set()
        return placeholder

    def stop(self) -> None:
        """Fail every waiting record (retriable: nothing of it reached kafka-python) and end the thread."""
        with self._lock:
            self._stopped = True
            topics, self._topics = self._topics, {}
        self._wake.set()
        error = ConnectionLostError(
            f"{self.name}: the kafka producer was retired before the topic's metadata came"
        )
        for waiting in topics.values():
            for _envelope, placeholder, _on_failure in waiting.records:
                placeholder.failure(error)

    # -- the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.clear()
            with self._lock:
                if self._stopped:
                    return
                topics = {name: waiting.deadline for name, waiting in self._topics.items()}
            now = time.monotonic()
            deadlines = []
            for topic, deadline in topics.items():
                if self._cluster.partitions_for_topic(topic) is not None:
                    self._hand_over(topic)
                elif topic in self._cluster.unauthorized_topics:
                    self._fail(topic, Errors.TopicAuthorizationFailedError(topic))
                elif now >= deadline:
                    self._timed_out(topic)
                else:
                    _track_topic(self._producer, topic)
                    deadlines.append(deadline)
            if not deadlines:
                self._wake.wait()  # until the next deferral, or stop()
                continue
            self._cluster.request_update().add_both(lambda _outcome: self._wake.set())
            self._wake.wait(min(_RECHECK, max(0.0, min(deadlines) - time.monotonic())))

    def _hand_over(self, topic: str) -> None:
        """Send the topic's records in order, under the lock: a record deferred meanwhile queues behind."""
        failed: list[tuple[KafkaFuture, BaseException]] = []
        send = self._producer.send
        with self._lock:
            waiting = self._topics.get(topic)
            records = [] if waiting is None else waiting.records
            for i, (envelope, placeholder, on_failure) in enumerate(records):
                try:
                    future = send(*send_args(envelope))
                except Exception as exc:
                    error = translate_kafka_error(exc)
                    if error.retriable:
                        failed.extend((p, error) for _e, p, _f in records[i:])  # sent again, in order
                        self._report(error)
                        break
                    failed.append((placeholder, error))
                    continue
                future.add_callback(placeholder.success)
                future.add_errback(placeholder.failure)
                future.add_errback(on_failure)
            self._topics.pop(topic, None)
        for placeholder, reason in failed:
            placeholder.failure(reason)

    def _timed_out(self, topic: str) -> None:
        error = translate_kafka_error(
            Errors.KafkaTimeoutError(f"Failed to update metadata after {self._max_block:.1f} secs.")
        )
        log.warning("%s: no metadata for topic %r within %.1f s", self.name, topic, self._max_block)
        self._fail(topic, error)
        self._report(error)

    def _fail(self, topic: str, exc: BaseException) -> None:
        error = translate_kafka_error(exc)
        with self._lock:
            waiting = self._topics.pop(topic, None)
        for _envelope, placeholder, _on_failure in [] if waiting is None else waiting.records:
            placeholder.failure(error)


def _track_topic(producer: Any, topic: str) -> None:
    """Have kafka-python fetch metadata for ``topic``, as its ``send()`` does before it waits: through its I/O
    thread's ``add_topic()``, the thread-safe way (``ClusterMetadata.add_topic`` from another thread would
    change the set of topics while the I/O thread iterates it). The one other place that reaches into the
    producer is :func:`.producer._force_close`."""
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.add_topic(topic)
