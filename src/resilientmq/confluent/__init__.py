"""``ReconnectAwareConfluentProducer``: a drop-in ``confluent_kafka.Producer`` that loses nothing in outages.

How it is built
    librdkafka keeps its queue in memory and gives up on it: after ``message.timeout.ms`` (300 s), when its
    queue is full (``BufferError``), and with the whole instance on a fatal error. So ``produce()`` puts the
    message in the outbox (memory, or a file with ``buffer_path``) and returns; the outbox's sender hands
    batches to a librdkafka instance of ours (:mod:`.pipeline`), and forgets a message only once librdkafka
    reported it delivered. The class is a subclass of ``confluent_kafka.Producer`` — ``isinstance`` holds and
    the configuration dict means what it meant — whose own base instance stays unused: the work is done by
    instances built from the same configuration, one at a time, each for as long as it can go on
    (:mod:`.session`), so that a fatal error replaces the instance without the user's object noticing.

Who retries, and with which producer id
    One instance keeps one idempotent producer id for as long as the broker keeps its state: librdkafka
    retries through resets, refusals and silent partitions with the same sequence numbers
    (``message.timeout.ms`` is infinite unless set), and the broker drops the copies it has. A new instance
    (a new producer id) is built only when the broker lost the producer's state or a fatal error killed it.

Callbacks
    librdkafka calls back only from ``poll()``/``flush()``. Our instances are polled by threads of their
    own, for our bookkeeping; what the user is owed — each message's delivery report (once, with the final
    outcome), ``error_cb``, ``stats_cb``, ``throttle_cb`` — is queued and run by the user's own
    ``poll()``/``flush()`` on the caller's thread (:mod:`.reports`).

The package: this facade (the drop-in API only), ``session`` (the connector and a session per supervisor
epoch), ``pipeline`` (one instance and its bookkeeping), ``verify`` (reading back what a broker acknowledged
as a duplicate), ``records`` (arguments to and from the outbox), ``reports`` (the user's callbacks),
``settings`` (the configuration dict), ``errors`` (the one error table).
"""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from confluent_kafka import KafkaError, KafkaException, Producer

from resilientmq.core.buffer import NewMessage
from resilientmq.core.client import ClientCore, ResilientClientMixin
from resilientmq.core.errors import BufferFullError, ClientClosedError, ReconnectFailedError
from resilientmq.core.options import ResilienceOptions
from resilientmq.core.supervisor import ConnectionState, Endpoints

from .errors import LocalCode
from .pipeline import Ledger
from .records import PARTITION_UA, DeliveryCallback, RecordEncoder, synthetic_message
from .reports import UserEvents, deadline_of
from .session import Bootstrap, ConfluentConnector, ConfluentSession
from .settings import ProducerSettings

__all__ = ["ProducerBufferFullError", "ProducerClosedError", "ReconnectAwareConfluentProducer"]

_MAX_BATCH = 2000  # messages per hand-over; librdkafka batches them again per partition
_MAX_IN_FLIGHT = 8
_WAIT_SLICE = 0.1
_EXIT_DRAIN = 1.0
_STUCK = (ConnectionState.FAILED, ConnectionState.DISCONNECTED, ConnectionState.CLOSED)


class ProducerBufferFullError(BufferFullError, BufferError):
    """The outbox is full and the overflow policy refused the message. Also a ``BufferError``, which is what
    ``confluent_kafka.Producer.produce()`` raises when its queue is full, so that code catching that keeps
    working (it polls, then produces again)."""


class ProducerClosedError(ClientClosedError, RuntimeError):
    """The producer was closed. Also the ``RuntimeError`` ``confluent_kafka.Producer`` raises then."""


class ReconnectAwareConfluentProducer(ResilientClientMixin, Producer):
    """``confluent_kafka.Producer`` that buffers through outages, re-sends, and never silently drops.

    Built from the same configuration dict (and keyword arguments merged into it), plus the resilience
    keyword arguments of every resilientmq client (:class:`~resilientmq.core.options.ResilienceKwargs`:
    ``reconnect_tries``, ``reconnect_interval_seconds``, ``buffer_max_messages``, ``buffer_path``,
    ``buffer_overflow``, ``drain_timeout``, ...). Construction never waits for a broker. ``transactional.id``
    is refused (``ValueError``): a message re-sent after an outage would leave its transaction. The README
    lists every difference from ``confluent_kafka.Producer``.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        options, extra = ResilienceOptions.split(kwargs, owner=type(self).__name__)
        if config is None and not extra:
            raise TypeError("expected configuration dict")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError("expected configuration dict")
        settings = ProducerSettings.from_config({**(config or {}), **extra})
        self._rmq_settings = settings
        self._rmq_events = UserEvents()
        self._rmq_ledger = Ledger(settings, self._rmq_events)
        self._rmq_encoder = RecordEncoder(settings.max_message_bytes)
        self._rmq_dropped_seen = 0
        # A stall longer than librdkafka's own time to notice a silent partition and give up a connection,
        # while the cluster answers, means a stuck instance. The outbox's own limit only backs both up.
        stall = settings.stall_timeout
        # Builds the first librdkafka instance: a configuration it refuses raises here, as with Producer.
        self._rmq_connector = ConfluentConnector(settings, self._rmq_ledger, stall_timeout=stall)
        window = max(1, min(_MAX_BATCH, settings.queue_max_messages // (2 * _MAX_IN_FLIGHT)))
        try:
            self._rmq: ClientCore[Bootstrap, ConfluentSession] = ClientCore(
                settings.name,
                options,
                self._rmq_connector,
                Endpoints([settings.bootstrap]),
                max_batch=window,
                max_in_flight=_MAX_IN_FLIGHT,
                confirm_timeout=stall + 10.0,
            )
        except BaseException:
            self._rmq_connector.close()
            raise
        # Bound once: produce() runs per message.
        self._rmq_put = self._rmq.outbox.put
        self._rmq_buffer = self._rmq.buffer
        self._rmq_encode = self._rmq_encoder.encode
        self._rmq_callbacks = self._rmq_ledger.callbacks
        self._rmq.supervisor.add_listener(_WakeFlushes(self._rmq_events))
        self._rmq_exit_hook = _exit_hook(self)
        atexit.register(self._rmq_exit_hook)
        self._rmq.supervisor.connect(wait=False)

    # -- producing ----------------------------------------------------------------------------------
    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = PARTITION_UA,
        callback: DeliveryCallback | None = None,
        on_delivery: DeliveryCallback | None = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        """Accept one message into the outbox (durably with ``buffer_path``); it is delivered at least once.

        ``callback``/``on_delivery`` (or the configuration's ``on_delivery``) is called once, from
        ``poll()``/``flush()``, with the final outcome. Never raises ``BufferError`` for an outage; when the
        outbox is full the overflow policy decides (:class:`ProducerBufferFullError` is a ``BufferError``).
        """
        message = self._rmq_encode(topic, value, key, partition, timestamp, headers)
        report = callback if callback is not None else on_delivery
        if report is not None:
            if not callable(report):
                raise TypeError("on_delivery requires a callable object")
            self._rmq_callbacks[message.id] = report
        try:
            self._rmq_put((message,))
        except BaseException as exc:
            self._rmq_retry_put((message,), exc)
        if self._rmq_buffer.dropped_count != self._rmq_dropped_seen:
            self._rmq_report_dropped()

    def produce_batch(
        self,
        topic: str,
        messages: list[dict[str, Any]],
        partition: int = PARTITION_UA,
        callback: DeliveryCallback | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> int:
        """Accept many messages at once (one write to the outbox); returns how many were accepted.

        Each dict may hold ``value``, ``key``, ``partition``, ``timestamp``, ``headers`` and its own
        ``callback``; one that cannot be produced gets an ``_error`` entry and is left out, as with
        ``confluent_kafka.Producer.produce_batch``.
        """
        if not isinstance(messages, list):
            raise TypeError("messages must be a list")
        default = callback if callback is not None else on_delivery
        accepted: list[NewMessage] = []
        callbacks = self._rmq_ledger.callbacks
        for item in messages:
            if not isinstance(item, dict):
                raise TypeError("each message must be a dict")
            try:
                message = self._rmq_encoder.encode(
                    topic,
                    item.get("value"),
                    item.get("key"),
                    item.get("partition", partition),
                    item.get("timestamp", 0),
                    item.get("headers"),
                )
            except KafkaException as exc:
                item["_error"] = exc.args[0]
                continue
            report = item.get("callback", default)
            if report is not None:
                callbacks[message.id] = report
            accepted.append(message)
        self._rmq_accept(accepted)
        return len(accepted)

    # -- serving callbacks, waiting -----------------------------------------------------------------
    def poll(self, timeout: float | None = -1) -> int:
        """Run the callbacks owed (delivery reports, ``error_cb``, ...) on this thread, waiting up to
        ``timeout`` seconds for one (None or negative: for ever); returns how many events were served."""
        events = self._rmq_events
        served = events.serve()
        if served or timeout == 0:  # poll(0) after every produce(): keep it cheap
            return served
        deadline = deadline_of(timeout)
        while not served:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return 0
            if events.wait(_WAIT_SLICE if remaining is None else min(remaining, _WAIT_SLICE)):
                served = events.serve()
        return served

    def flush(self, timeout: float | None = -1) -> int:  # type: ignore[override]  # confluent's int
        """Wait until every accepted message is delivered (or failed for good), running the callbacks owed
        on this thread meanwhile; returns how many are left, as ``confluent_kafka.Producer.flush`` does.

        A message that failed is not left: its callback said so (see also ``get_failed_messages()``).
        During an outage it waits (up to ``timeout``) for the broker to come back.
        """
        core = self._rmq
        events = self._rmq_events
        deadline = deadline_of(timeout)
        self._rmq_resume()
        while True:
            events.serve()
            if len(core.outbox) == 0 and len(events) == 0:
                return 0
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or core.supervisor.state in _STUCK:
                return len(self)
            # librdkafka ships what lingers (linger.ms) at once while someone flushes, as its flush() does.
            self._rmq_connector.current.expedite()
            events.wait(_WAIT_SLICE if remaining is None else min(remaining, _WAIT_SLICE))

    def flush_outbox(self, timeout: float | None = None) -> bool:
        """The resilientmq clients' ``flush()``: True once every accepted message is confirmed, False on
        timeout or when a message failed since the previous call. Runs no callbacks (any thread may)."""
        return ResilientClientMixin.flush(self, timeout)

    def __len__(self) -> int:
        """Messages not yet delivered (the outbox included) plus delivery reports not yet served."""
        return len(self._rmq.outbox) + len(self._rmq_events)

    def __bool__(self) -> bool:
        return True  # a producer with nothing queued is still a producer (``__len__`` would say False)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        """Forget messages not yet delivered: with ``in_queue`` those waiting (in the outbox or librdkafka's
        queue), with ``in_flight`` those sent but not acknowledged. Their callbacks get librdkafka's
        ``_PURGE_QUEUE``/``_PURGE_INFLIGHT`` from the next ``poll()``/``flush()``; they are not failures."""
        ledger = self._rmq_ledger
        with ledger.guard:  # no hand-over meanwhile: each message is purged by us or by librdkafka
            if in_queue:
                self._rmq_purge_outbox()
            producer = self._rmq_connector.current.producer
            if producer is not None and (in_queue or in_flight):
                producer.purge(in_queue, in_flight, blocking)

    # -- the rest of the Producer API -----------------------------------------------------------------
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        """Metadata from the cluster, through the current producer instance (raises ``KafkaException``
        on timeout, as ``confluent_kafka.Producer.list_topics`` does)."""
        return self._rmq_connector.producer.list_topics(topic, timeout)

    def cluster_id(self, timeout: float = -1) -> str:
        return self._rmq_connector.producer.cluster_id(timeout)

    def set_sasl_credentials(self, username: str, password: str) -> None:
        self._rmq_connector.set_sasl_credentials(username, password)

    def close(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (default ``drain_timeout``) for delivery, stop, and run the
        callbacks still owed. Idempotent.

        What is still undelivered stays in a durable outbox for the next producer on the same path (and is
        lost with a memory outbox). True when nothing was left.
        """
        core: ClientCore[Bootstrap, ConfluentSession] | None = getattr(self, "_rmq", None)
        if core is None:  # the constructor failed
            return False
        atexit.unregister(self._rmq_exit_hook)
        if core.supervisor.closed:
            return len(core.buffer) == 0
        drained = core.close(core.options.drain_timeout if timeout is None else timeout)
        self._rmq_connector.close()
        self._rmq_events.serve()
        return drained

    def __enter__(self) -> ReconnectAwareConfluentProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """The counters of every client, plus ``instances`` (librdkafka instances built), ``verified`` and
        ``verified_missing`` (messages acknowledged as duplicates, looked up in the log, and not found)."""
        return {**super().stats(), **self._rmq_connector.stats()}

    def init_transactions(self, timeout: float = -1) -> None:
        _no_transactions()

    def begin_transaction(self) -> None:
        _no_transactions()

    def commit_transaction(self, timeout: float = -1) -> None:
        _no_transactions()

    def abort_transaction(self, timeout: float = -1) -> None:
        _no_transactions()

    def send_offsets_to_transaction(self, positions: Any, group_metadata: Any, timeout: float = -1) -> None:
        _no_transactions()

    # -- helpers ------------------------------------------------------------------------------------
    def _rmq_accept(self, messages: list[NewMessage]) -> None:
        """Put encoded messages into the outbox; their callbacks are registered already."""
        if not messages:
            return
        try:
            self._rmq_put(messages)
        except BaseException as exc:
            self._rmq_retry_put(messages, exc)
        if self._rmq_buffer.dropped_count != self._rmq_dropped_seen:
            self._rmq_report_dropped()

    def _rmq_retry_put(self, messages: Sequence[NewMessage], exc: BaseException) -> None:
        """The outbox refused: once more if only because the reconnect policy had given up, else raise."""
        if isinstance(exc, ReconnectFailedError) and self._rmq_resume():
            try:
                self._rmq_put(messages)
                return
            except BaseException as again:
                exc = again
        self._rmq_refused(messages, exc)

    def _rmq_resume(self) -> bool:
        """After the reconnect policy gave up (FAILED, listeners told), producing again connects again:
        a confluent-kafka producer has no ``connect()``, and librdkafka itself never stops trying."""
        supervisor = self._rmq.supervisor
        if supervisor.state is not ConnectionState.FAILED:
            return False
        supervisor.connect(wait=False)
        return True

    def _rmq_refused(self, messages: Sequence[NewMessage], exc: BaseException) -> NoReturn:
        """The outbox refused ``messages``: forget their callbacks, raise what Producer code expects."""
        for m in messages:
            self._rmq_callbacks.pop(m.id, None)
        if isinstance(exc, BufferFullError) and not isinstance(exc, ProducerBufferFullError):
            raise ProducerBufferFullError(str(exc)) from exc
        if isinstance(exc, ClientClosedError) and not isinstance(exc, ProducerClosedError):
            raise ProducerClosedError(str(exc)) from exc
        raise exc

    def _rmq_report_dropped(self) -> None:
        """Messages evicted by ``drop_oldest`` get their callback now, with ``_QUEUE_FULL``."""
        buffer = self._rmq.buffer
        dropped = buffer.dropped_count
        new, self._rmq_dropped_seen = dropped - self._rmq_dropped_seen, dropped
        ledger = self._rmq_ledger
        for record in reversed(buffer.failed()):
            if new <= 0:
                return
            if record.error_type != BufferFullError.__name__:
                continue
            new -= 1
            report = ledger.callbacks.pop(record.id, ledger.default_callback)
            ledger.settled_ids.add(record.id)  # if librdkafka delivers it after all, that is not reported
            if report is not None:
                error = KafkaError(LocalCode.QUEUE_FULL, record.reason)
                self._rmq_events.report(report, error, synthetic_message(record.envelope, error))

    def _rmq_purge_outbox(self) -> None:
        """Remove from the outbox what no instance holds; librdkafka purges the rest."""
        ledger = self._rmq_ledger
        buffer = self._rmq.buffer
        error = KafkaError(LocalCode.PURGE_QUEUE, "Local: Purged in queue")
        gone: list[int] = []
        after = 0
        while True:
            chunk = buffer.peek(after, 1000)
            if not chunk:
                break
            after = chunk[-1].seq
            for envelope in chunk:
                if self._rmq_connector.holds(envelope.seq):
                    continue
                gone.append(envelope.seq)
                report = ledger.callbacks.pop(envelope.id, ledger.default_callback)
                if report is not None:
                    self._rmq_events.report(report, error, synthetic_message(envelope, error))
        ledger.purged.update(gone)
        buffer.remove(gone)


class _WakeFlushes:
    """Supervisor listener: a state change wakes a waiting ``flush()`` (it may have to give up)."""

    def __init__(self, events: UserEvents) -> None:
        self._events = events

    def on_state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        self._events.wake()


def _exit_hook(producer: ReconnectAwareConfluentProducer) -> Any:
    """At interpreter exit, stop the threads before librdkafka's instances are torn down under them."""
    ref = weakref.ref(producer)

    def hook() -> None:
        live = ref()
        if live is not None:
            live.close(_EXIT_DRAIN)

    return hook


def _no_transactions() -> None:
    raise KafkaException(
        KafkaError(
            LocalCode.NOT_CONFIGURED,
            "The Transactional API requires transactional.id to be configured "
            "(ReconnectAwareConfluentProducer does not support transactions)",
        )
    )
