"""The Kafka adapter's Connector and Transport: one kafka-python producer per supervised connection.

A *session* is one ``kafka.KafkaProducer``, built by :meth:`KafkaLink.open` (its bootstrap, a metadata
round trip, proves the cluster is reachable) and retired by :meth:`KafkaLink.close`. The outbox hands each
batch to the session's ``send()``; kafka-python batches, pipelines and retries within its
``delivery_timeout_ms``. A record whose kafka-python future fails for a retriable reason *fences* the
session: its sender is force-closed at once, which fails every record it still holds before any of them is
written, and the supervisor is told the connection is lost. The next session then receives every unconfirmed
record again, oldest first. That is what keeps the order per partition: a later record of a partition can
only be written by a session in which every earlier one succeeded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from kafka import KafkaProducer
from kafka.future import Future as KafkaFuture
from kafka.net.compat import KafkaNetClient

from ._kafka_errors import translate_kafka_error
from ._kafka_records import RecordFuture, send_args
from .core.buffer import Envelope
from .core.errors import ClientClosedError, ConnectionLostError
from .core.outbox import BatchResult
from .core.supervisor import Supervisor

__all__ = ["KafkaLink"]

log = logging.getLogger("resilientmq.kafka")

_RETIRE_TIMEOUT = 5.0  # how long a retired session's I/O thread gets to fail its records and stop


class _Session:
    """One kafka-python producer, serving exactly one supervisor epoch."""

    __slots__ = ("epoch", "fenced", "producer")

    def __init__(self, producer: Any, epoch: int) -> None:
        self.producer = producer
        self.epoch = epoch
        self.fenced = False


class KafkaLink:
    """Connector (open/close a session) and Transport (hand batches to it) of one Kafka producer."""

    def __init__(
        self,
        name: str,
        configs: dict[str, Any],
        futures: dict[str, RecordFuture],
        on_session: Callable[[Any], None] | None = None,
    ) -> None:
        self.name = name
        self._configs = configs
        self._client_factory = configs.pop("kafka_client", None) or KafkaNetClient
        self._futures = futures
        self._on_session = on_session
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._opening: list[Any] = []  # kafka-python clients of a session being built
        self.supervisor: Supervisor[Any] | None = None

    @property
    def producer(self) -> Any:
        """The live session's kafka-python producer, or None."""
        session = self._session
        return None if session is None or session.fenced else session.producer

    # -- Connector ----------------------------------------------------------------------------------
    def open(self, endpoint: Any) -> None:
        """Build a kafka-python producer; its bootstrap (bounded by ``bootstrap_timeout_ms``) must succeed."""
        supervisor = self.supervisor
        if supervisor is None:
            raise ClientClosedError(f"{self.name}: not wired to a supervisor")
        clients: list[Any] = []

        def capture_client(**configs: Any) -> Any:
            client = self._client_factory(**configs)
            clients.append(client)
            return client

        with self._lock:
            self._opening = clients
        try:
            producer = KafkaProducer(**self._configs, kafka_client=capture_client)
        except Exception as exc:
            for client in clients:
                _quietly(client.close)  # the failed constructor leaves its selector and sockets open
            raise translate_kafka_error(exc) from exc
        finally:
            with self._lock:
                self._opening = []
        # The supervisor numbers the connection only after open() returns: it will be the next epoch.
        session = _Session(producer, supervisor.epoch + 1)
        with self._lock:
            self._session = session
        if self._on_session is not None:
            self._on_session(producer)

    def close(self) -> None:
        """Retire the current session (its unconfirmed records fail and are sent again); stop a bootstrap."""
        with self._lock:
            session, self._session = self._session, None
            opening = list(self._opening)
        for client in opening:
            # Closing the client ends a bootstrap in progress at once; the constructor then raises.
            _quietly(client.close)
        if session is not None:
            self._retire(session)

    # -- Transport ----------------------------------------------------------------------------------
    def transmit(self, batch: Sequence[Envelope], epoch: int) -> Future[BatchResult]:
        """Hand ``batch`` to ``epoch``'s session; the future resolves when every record has an outcome."""
        session = self._session
        if session is None or session.fenced or session.epoch != epoch:
            raise ConnectionLostError(f"{self.name}: no live kafka producer for connection #{epoch}")
        ticket = _Ticket(self, session, batch)
        send = session.producer.send
        futures = ticket.futures
        on_failure = ticket.on_failure
        for envelope in batch:
            try:
                future = send(*send_args(envelope))
            except Exception as exc:
                error = translate_kafka_error(exc)
                if error.retriable:
                    self.fence(session, error)
                    break
                future = KafkaFuture().failure(error)
            futures.append(future)
            # Failures are watched one by one (the fence must not wait); successes only by the ticket.
            future.add_errback(on_failure)
        ticket.watch()
        return ticket.future

    # -- fencing ------------------------------------------------------------------------------------
    def fence(self, session: _Session, error: BaseException) -> None:
        """Stop ``session`` from writing anything more and report the connection lost. Any thread."""
        with self._lock:
            if session.fenced:
                return
            session.fenced = True
        log.warning(
            "%s: kafka delivery failed (%s); re-sending from the oldest unconfirmed record", self.name, error
        )
        _force_close(session.producer)
        supervisor = self.supervisor
        if supervisor is not None:
            supervisor.report_lost(error, session.epoch)

    def _retire(self, session: _Session) -> None:
        session.fenced = True
        producer = session.producer
        _force_close(producer, wait=_RETIRE_TIMEOUT)
        try:
            producer.close(timeout=0)  # its records are failed by now: this only releases the rest
        except Exception as exc:
            log.debug("%s: closing a retired kafka producer: %s", self.name, exc)

    def resolve(self, envelope: Envelope, outcome: Any) -> None:
        """Settle the caller's future of ``envelope``, if this process still holds one."""
        future = self._futures.pop(envelope.id, None)
        if future is None:
            return
        if isinstance(outcome, BaseException):
            future.failure(outcome)
        else:
            future.success(outcome)


class _Ticket:
    """The outcome of one batch, collected from kafka-python's per-record futures."""

    __slots__ = ("_batch", "_link", "_lock", "_next", "_session", "future", "futures")

    def __init__(self, link: KafkaLink, session: _Session, batch: Sequence[Envelope]) -> None:
        self._link = link
        self._session = session
        self._batch = batch
        self.futures: list[Any] = []  # kafka-python's futures, one per record handed over, in batch order
        self._next = 0  # futures before this index are known to be done; -1 once settled
        self._lock = threading.Lock()
        self.future: Future[BatchResult] = Future()

    def on_failure(self, exc: BaseException) -> None:
        """kafka-python's errback, on its I/O thread."""
        error = translate_kafka_error(exc)
        if error.retriable:
            # At once, not when the batch completes: later records must not be written before this one.
            self._link.fence(self._session, error)

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
            self.future.set_result(self._result())
        else:
            pending.add_both(self.watch)  # may run at once, here, if it completed meanwhile

    def _result(self) -> BatchResult:
        failed: dict[int, BaseException] = {}
        retry: dict[int, BaseException] = {}
        resolve = self._link.resolve
        # The batch is longer than the futures when a fence stopped the hand-over: those go back below.
        for envelope, future in zip(self._batch, self.futures, strict=False):
            error = future.exception
            if error is None:
                resolve(envelope, future.value)
                continue
            error = translate_kafka_error(error)
            if error.retriable:
                retry[envelope.seq] = error
            else:
                failed[envelope.seq] = error
                resolve(envelope, error)
        lost = ConnectionLostError(f"{self._link.name}: the kafka producer was retired before sending it")
        for envelope in self._batch[len(self.futures) :]:
            retry[envelope.seq] = lost
        return BatchResult(failed, retry)


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
    except Exception as exc:  # closing from another thread may race kafka-python's own poll
        log.debug("ignored while closing a kafka client: %s", exc)
