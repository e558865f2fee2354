"""One kafka-python producer, kept across connections for as long as the broker keeps its state.

A :class:`Producer` wraps one ``kafka.KafkaProducer`` and the client it built. kafka-python reconnects by
itself and, with ``delivery_timeout_ms`` out of the way (see :data:`.config.NO_EXPIRY_MS`), retries a batch
through a reset, a refused port, a silent partition or a leader move with the same producer id and sequence
numbers: a batch the broker had already written is answered DUPLICATE_SEQUENCE_NUMBER, which kafka-python
takes as success. So one producer, kept, writes each record once.

It is *retired* (:meth:`Producer.retire`) only when kafka-python fails a record for a reason that ends it:
the broker lost the producer's state (unknown producer id, out-of-order sequence after a restart with memory
storage, a fenced epoch), a fatal error, a ``delivery_timeout_ms`` the caller set, or ``close()``. Retiring
force-closes its sender, which fails every record it still holds before any of them is written; the next
producer then receives every unconfirmed record again, oldest first, so per partition a later record is
only written by a producer that wrote every earlier one (the first copy of every record is in order).

Two things are not taken as they come. A record for a topic kafka-python has no metadata for yet is not
handed to ``send()`` (which would wait for it in the one sender thread) but to a
:class:`~.handover.Handover`. And a record acknowledged with offset -1 (kafka-python's success for
DUPLICATE_SEQUENCE_NUMBER, which tansu's S3 engine can give for a batch it never wrote) is confirmed only once
it is found in its partition (:mod:`.verify`); one missing goes back to the outbox and is sent again. Records
acknowledged with an offset cost nothing more.
"""

from __future__ import annotations

import logging
import selectors
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.future import Future as KafkaFuture

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchResult, LossReporter

from .errors import translate_kafka_error
from .handover import Handover
from .records import RecordFuture, send_args
from .verify import LogReader, Lookup, Wanted

__all__ = ["Producer", "ProducerCancelledError"]

log = logging.getLogger("resilientmq.kafka")

_RETIRE_TIMEOUT = 5.0  # how long a retired producer's I/O thread gets to fail its records and stop
# The answers of the batches settled last, kept to find the last offset of ours in a partition (where a
# record acknowledged without an offset must be, if it is anywhere).
_RECENT_TICKETS = 4


class ProducerCancelledError(ConnectionLostError):
    """The building or probing of a producer was cancelled (``disconnect()``/``close()``)."""


class _Build:
    """One ``KafkaProducer(...)`` under way: the clients it made, whether it was cancelled, and by whom.

    Cancelling must not touch kafka-python's event loop from another thread (it is not thread-safe:
    "Concurrent access to net.poll!"). So the builder's selector is wrapped (:class:`_CancellableSelector`,
    through kafka-python's own ``selector`` config), ``cancel()`` only sets a flag and wakes the loop with
    the client's public ``wakeup()``, and the wrapped ``select()``, in the building thread, raises: the
    constructor fails there, and that thread closes what it built.
    """

    def __init__(self, selector: Callable[[], selectors.BaseSelector]) -> None:
        self.clients: list[Any] = []
        self.cancelled = False
        self._builder = threading.get_ident()
        self._selector = selector
        self._lock = threading.Lock()

    def selector(self) -> selectors.BaseSelector:
        """kafka-python's ``selector`` config: the caller's selector, made cancellable."""
        return _CancellableSelector(self._selector(), self)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            clients = list(self.clients)
        for client in clients:
            client.wakeup()  # thread-safe: one byte into the loop's wake-up socket

    def add(self, client: Any) -> None:
        with self._lock:
            self.clients.append(client)
            cancelled = self.cancelled
        if cancelled:
            client.wakeup()

    def stop_here(self) -> None:
        """Raise in the building thread once the build was cancelled (called by its selector)."""
        if self.cancelled and threading.get_ident() == self._builder:
            self._builder = 0  # once: closing the client afterwards polls this selector again
            raise ProducerCancelledError("cancelled while connecting")


class _CancellableSelector(selectors.BaseSelector):
    """The selector kafka-python's event loop waits in, wrapped so that a cancelled build ends there."""

    def __init__(self, inner: selectors.BaseSelector, build: _Build) -> None:
        self._inner = inner
        self._build = build

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(timeout)
        self._build.stop_here()
        return ready

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()


class Producer:
    """One ``kafka.KafkaProducer`` and the client it talks through, for as many connections as it lasts.

    ``first_epoch`` is the supervisor's connection it was built on. Losses are reported to the connection it
    currently serves (:meth:`serve`); ``futures`` are the callers' futures by message id. ``reader`` looks up
    records acknowledged without an offset (None: they are taken as confirmed, as with ``acks=0``).
    """

    def __init__(
        self,
        name: str,
        producer: Any,
        client: Any,
        first_epoch: int,
        futures: dict[str, RecordFuture],
        reader: LogReader | None = None,
    ) -> None:
        self.name = name
        self.kafka = producer
        self._client = client
        self.first_epoch = first_epoch
        self._futures = futures
        # With acks=0 every offset is -1 and nothing was confirmed anyway: nothing to look up.
        self.reader = reader if producer.config["acks"] != 0 else None
        self._lock = threading.Lock()
        self._lost: LossReporter | None = None
        self._retired = False
        self._disposed = False
        self._unsettled = 0  # batches handed over and not yet settled
        self.settled = 0  # batches settled so far: the producer's progress
        self._probes: set[threading.Event] = set()  # probes under way, woken when it is retired
        self._recent: deque[list[Any]] = deque(maxlen=_RECENT_TICKETS)  # kafka-python's futures of each
        self._verifying: dict[_Ticket, list[Lookup]] = {}  # batches waiting for look-ups
        self._handover = Handover(
            name, producer, client.cluster, producer.config["max_block_ms"] / 1000, self.report
        )

    # -- building -------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        name: str,
        configs: dict[str, Any],
        client_factory: Callable[..., Any],
        epoch: int,
        futures: dict[str, RecordFuture],
        started: Callable[[_Build], None],
        reader: LogReader | None = None,
    ) -> Producer:
        """``KafkaProducer(**configs)``; with ``api_version=None`` it bootstraps (``bootstrap_timeout_ms``).

        ``started`` receives the build in progress so that another thread can cancel it
        (:meth:`cancel_build`). Every client kafka-python made is closed here, in this thread, when the
        constructor fails or the build was cancelled.
        """
        build = _Build(configs.get("selector") or selectors.DefaultSelector)

        def make_client(**client_configs: Any) -> Any:
            client = client_factory(**client_configs)
            build.add(client)
            return client

        started(build)
        try:
            producer = KafkaProducer(**dict(configs, selector=build.selector), kafka_client=make_client)
        except Exception as exc:
            for client in build.clients:
                _quietly(client.close)  # the failed constructor leaves its selector and sockets open
            if build.cancelled:
                raise ProducerCancelledError(f"{name}: cancelled while connecting") from exc
            raise translate_kafka_error(exc) from exc
        made = cls(name, producer, build.clients[-1], epoch, futures, reader)
        if build.cancelled:
            made.retire(None)
            made.dispose()
            raise ProducerCancelledError(f"{name}: cancelled while connecting")
        return made

    @staticmethod
    def cancel_build(build: _Build) -> None:
        """Make a build running in another thread end now; it closes its own clients (see :class:`_Build`)."""
        build.cancel()

    # -- the connection it serves -------------------------------------------------------------------
    def serve(self, lost: LossReporter) -> None:
        """Report losses to ``lost`` (the connection being opened) from now on."""
        with self._lock:
            self._lost = lost

    def report(self, error: BaseException) -> None:
        """Tell the connection served that it looks lost; the producer itself stays."""
        with self._lock:
            lost = self._lost
        if lost is not None:
            lost(error)

    def probe(self, timeout: float, stop: threading.Event) -> None:
        """One metadata round trip through kafka-python's own client: proof the cluster answers it.

        Raises ``ConnectionLostError`` when no answer came within ``timeout`` s (or the translated error when
        the refresh failed), :class:`ProducerCancelledError` when ``stop`` was set. Returns at once when the
        producer is (or gets) retired: a retired producer answers nothing, and the caller builds a new one.
        """
        with self._lock:
            if self._retired:
                return
            self._probes.add(stop)
        try:
            answered = self._client.cluster.request_update()  # thread-safe: wakes kafka-python's refresh loop
            answered.add_both(lambda _outcome: stop.set())
            stop.wait(timeout)
        finally:
            with self._lock:
                self._probes.discard(stop)
        if self._retired:
            return
        if not answered.is_done:
            if stop.is_set():
                raise ProducerCancelledError(f"{self.name}: cancelled while connecting")
            raise ConnectionLostError(f"{self.name}: no metadata answer within {timeout:g} s")
        if answered.failed():
            raise translate_kafka_error(answered.exception) from answered.exception

    @property
    def pending(self) -> bool:
        """Batches handed to kafka-python and not yet settled."""
        return self._unsettled > 0

    # -- sending --------------------------------------------------------------------------------------
    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        """Hand ``batch`` to kafka-python; the future resolves when every record has an outcome."""
        if self._retired:
            raise ConnectionLostError(f"{self.name}: the kafka producer was retired")
        ticket = _Ticket(self, batch)
        send = self.kafka.send
        must_wait = self._handover.must_wait
        futures = ticket.futures
        on_failure = ticket.on_failure
        ready: set[str] = set()  # topics of this batch with metadata (kafka-python builds a set to tell)
        for envelope in batch:
            topic = envelope.destination
            if topic not in ready:
                if must_wait(topic):
                    # No metadata for it yet: send() would wait for it here, holding up everything else.
                    waiting = self._handover.defer(envelope, on_failure)
                    if waiting is not None:
                        futures.append(waiting)
                        continue
                ready.add(topic)
            try:
                future = send(*send_args(envelope))
            except Exception as exc:
                error = translate_kafka_error(exc)
                if error.retriable:
                    # Refused before kafka-python held it: this one and the rest go back to the outbox,
                    # what was handed over stays.
                    self.report(error)
                    break
                future = KafkaFuture().failure(error)
            futures.append(future)
            # Failures are watched one by one (retiring must not wait); successes only by the ticket.
            future.add_errback(on_failure)
        with self._lock:
            self._unsettled += 1
        ticket.watch()
        return ticket.future

    def resolve(self, envelope: Envelope, outcome: Any) -> None:
        """Settle the caller's future of ``envelope``, if this process still holds one."""
        future = self._futures.pop(envelope.id, None)
        if future is None:
            return
        if isinstance(outcome, BaseException):
            future.failure(outcome)
        else:
            future.success(outcome)

    def count_settled(self, ticket: _Ticket) -> None:
        """One more batch settled (every record of its ticket has its final outcome)."""
        with self._lock:
            self._unsettled -= 1
            self.settled += 1
            self._verifying.pop(ticket, None)
            self._recent.append(ticket.futures)

    # -- records acknowledged without an offset ----------------------------------------------------------
    def look_up(self, ticket: _Ticket, suspects: Sequence[int]) -> None:
        """Look the ticket's records at ``suspects`` (indices, acknowledged with offset -1) up in their
        partitions; the ticket settles on the answers (:meth:`_Ticket.found`)."""
        reader = self.reader
        assert reader is not None
        groups: dict[TopicPartition, list[int]] = {}
        for i in suspects:
            groups.setdefault(ticket.futures[i].value.topic_partition, []).append(i)
        jobs: list[Lookup] = []
        for tp, indices in groups.items():
            start = self._offset_after_last(tp, ticket, indices[0])
            wanted: list[Wanted] = []
            for i in indices:
                _topic, value, key, _headers, _partition, timestamp = send_args(ticket.batch[i])
                wanted.append((key, value, timestamp))
            log.warning(
                "%s: %d record(s) to %s [%d] were acknowledged as duplicates without an offset; reading the "
                "partition from offset %s to see whether they are there",
                self.name,
                len(indices),
                tp.topic,
                tp.partition,
                "0" if start is None else start,
            )
            jobs.append(Lookup(tp, start, wanted, partial(ticket.found, indices)))
        with self._lock:
            retired = self._retired
            if not retired:
                self._verifying[ticket] = jobs
        if retired:
            ticket.abandon()
            return
        for job in jobs:
            reader.submit(job)

    def _offset_after_last(self, tp: TopicPartition, ticket: _Ticket, index: int) -> int | None:
        """The offset after the last record this producer sent to ``tp`` before ``ticket``'s record at
        ``index`` and knows the offset of; None when it knows none (the partition is read from its start)."""
        with self._lock:
            earlier = list(self._recent)
        for futures in (ticket.futures[:index], *reversed(earlier)):
            for future in reversed(futures):
                metadata = future.value if future.succeeded() else None
                if metadata is not None and metadata.topic_partition == tp and metadata.offset >= 0:
                    return int(metadata.offset) + 1
        return None

    # -- ending ---------------------------------------------------------------------------------------
    @property
    def retired(self) -> bool:
        return self._retired

    def retire(self, error: BaseException | None) -> None:
        """Stop kafka-python from writing anything more (its records fail) and report the loss. Any thread;
        ``error`` None retires quietly (closing)."""
        with self._lock:
            if self._retired:
                return
            self._retired = True
            lost = self._lost
            probes, verifying = list(self._probes), list(self._verifying.items())
        if error is not None:
            log.warning(
                "%s: kafka producer retired (%s); unconfirmed records go to a new one", self.name, error
            )
        _force_close(self.kafka)
        self._handover.stop()  # records still waiting for their topic's metadata fail (retriable)
        for ticket, jobs in verifying:
            for job in jobs:
                job.abandoned.set()
            ticket.abandon()  # unconfirmed: the records being looked up go to the new producer
        for stop in probes:
            stop.set()
        if error is not None and lost is not None:
            lost(error)

    def dispose(self) -> None:
        """Wait (bounded) until a retired producer failed what it held, then release it. Idempotent."""
        with self._lock:
            if self._disposed or not self._retired:
                return
            self._disposed = True
        _force_close(self.kafka, wait=_RETIRE_TIMEOUT)
        try:
            self.kafka.close(timeout=0)  # its records are failed by now: this only releases the rest
        except Exception as exc:
            log.debug("%s: closing a retired kafka producer: %s", self.name, exc)


class _Ticket:
    """The outcome of one batch, collected from kafka-python's per-record futures (and, for records
    acknowledged without an offset, from looking them up)."""

    __slots__ = (
        "_failed",
        "_lock",
        "_next",
        "_producer",
        "_retry",
        "_suspects",
        "batch",
        "future",
        "futures",
    )

    def __init__(self, producer: Producer, batch: Sequence[Envelope]) -> None:
        self._producer = producer
        self.batch = batch
        self.futures: list[Any] = []  # kafka-python's futures, one per record handed over, in batch order
        self._next = 0  # futures before this index are known to be done; -1 once settled
        self._lock = threading.Lock()
        self.future: Future[BatchResult] = Future()
        self._failed: dict[int, BaseException] = {}
        self._retry: dict[int, BaseException] = {}
        self._suspects: set[int] | None = None  # indices still being looked up; None when none are

    def on_failure(self, exc: BaseException) -> None:
        """kafka-python's errback, on its I/O thread."""
        error = translate_kafka_error(exc)
        if error.retriable:
            # At once, not when the batch completes: later records must not be written before this one.
            self._producer.retire(error)

    def watch(self, _outcome: Any = None) -> None:
        """Settle when every record has an outcome; else wait on the first one still pending.

        Records complete roughly together, so this runs a few times per batch instead of once per record.
        """
        with self._lock:
            futures = self.futures
            i = self._next
            if i < 0:
                return  # settled already
            while i < len(futures) and futures[i].is_done:
                i += 1
            pending = futures[i] if i < len(futures) else None
            self._next = i if pending is not None else -1
        if pending is None:
            self._collect()
        else:
            pending.add_both(self.watch)  # may run at once, here, if it completed meanwhile

    def _collect(self) -> None:
        """Every record has kafka-python's outcome: settle, or first look up those without an offset."""
        failed, retry = self._failed, self._retry
        suspects: list[int] = []
        check = self._producer.reader is not None
        resolve = self._producer.resolve
        # The batch is longer than the futures when the hand-over stopped: those go back below.
        for i, (envelope, future) in enumerate(zip(self.batch, self.futures, strict=False)):
            error = future.exception
            if error is None:
                if check and future.value.offset < 0:
                    suspects.append(i)  # a DUPLICATE_SEQUENCE_NUMBER answer: is it really there?
                else:
                    resolve(envelope, future.value)
                continue
            error = translate_kafka_error(error)
            if error.retriable:
                retry[envelope.seq] = error
            else:
                failed[envelope.seq] = error
                resolve(envelope, error)
        lost = ConnectionLostError(f"{self._producer.name}: not handed to the kafka producer")
        for envelope in self.batch[len(self.futures) :]:
            retry[envelope.seq] = lost
        if suspects:
            with self._lock:
                self._suspects = set(suspects)
            self._producer.look_up(self, suspects)
        else:
            self._settle()

    def found(self, indices: Sequence[int], offsets: Sequence[int | None]) -> None:
        """A look-up's answer: the offset in the log of the records at ``indices``, None where missing."""
        confirmed: list[tuple[Envelope, Any]] = []
        missing = 0
        with self._lock:
            suspects = self._suspects
            if suspects is None:
                return  # abandoned: those records went back to the outbox
            for i, offset in zip(indices, offsets, strict=True):
                if i not in suspects:
                    continue
                suspects.discard(i)
                envelope = self.batch[i]
                if offset is None:
                    missing += 1
                    self._retry[envelope.seq] = ConnectionLostError(
                        "acknowledged as a duplicate without an offset, but not in the partition"
                    )
                else:
                    confirmed.append((envelope, self.futures[i].value._replace(offset=offset)))
            done = not suspects
            if done:
                self._suspects = None
        if missing:
            log.warning(
                "%s: %d of %d record(s) acknowledged as duplicates were not in the partition: sending them "
                "again",
                self._producer.name,
                missing,
                len(indices),
            )
        for envelope, metadata in confirmed:
            self._producer.resolve(envelope, metadata)
        if done:
            self._settle()

    def abandon(self) -> None:
        """The producer was retired during the look-up: the records not yet found are sent again."""
        with self._lock:
            suspects, self._suspects = self._suspects, None
        if suspects is None:
            return
        error = ConnectionLostError(f"{self._producer.name}: retired while looking records up")
        for i in suspects:
            self._retry[self.batch[i].seq] = error
        self._settle()

    def _settle(self) -> None:
        self._producer.count_settled(self)
        self.future.set_result(BatchResult(self._failed, self._retry))


def _force_close(producer: Any, wait: float = 0.0) -> None:
    """Make ``producer`` fail every record it holds instead of sending it; wait up to ``wait`` s for that.

    kafka-python's public ``close(timeout)`` first waits for those records (and raises when it times out),
    so this is the one place that reaches into it: its I/O thread's own ``force_close()`` (any thread,
    non-blocking) and ``join()``.
    """
    sender = getattr(producer, "_sender", None)
    if sender is None:
        return
    sender.force_close()
    if wait > 0 and sender is not threading.current_thread():
        sender.join(wait)


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as exc:
        log.debug("ignored while closing a kafka client: %s", exc)
