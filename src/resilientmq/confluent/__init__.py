"""``ReconnectAwareConfluentProducer``: a drop-in ``confluent_kafka.Producer`` that loses nothing in outages.

How it is built
    librdkafka keeps its queue in memory and gives up on it: after ``message.timeout.ms`` (300 s), when its
    queue is full (``BufferError``), and with the whole instance on a fatal error. While connected with
    nothing waiting in the outbox, ``produce()`` hands the message straight to a librdkafka instance of ours
    (:mod:`.through`; with ``buffer_path`` after committing a copy to the file), keeping the bound and what
    is needed to produce it again; otherwise it puts the message in the outbox, whose sender hands batches
    to that instance (:mod:`.pipeline`) and forgets a message only once librdkafka reported it delivered.
    The class is a subclass of ``confluent_kafka.Producer`` — ``isinstance`` holds and
    the configuration dict means what it meant — whose own base instance stays unused: the work is done by
    instances built from the same configuration, one at a time, each for as long as it can go on
    (:mod:`.session`), so that a fatal error replaces the instance without the user's object noticing.

Who retries, and with which producer id
    One instance keeps one idempotent producer id for as long as the broker keeps its state: librdkafka
    retries through resets, refusals and silent partitions with the same sequence numbers
    (``message.timeout.ms`` is infinite unless set), and the broker drops the copies it has. A new instance
    (a new producer id) is built only when the broker lost the producer's state or a fatal error killed it.

Callbacks
    librdkafka calls back only from ``poll()``/``flush()``. The user's ``poll()``/``flush()`` serve the
    instance on the caller's thread, as confluent-kafka's do; while the user does not poll, a thread of ours
    serves it for our bookkeeping, and what the user is owed — each message's delivery report (once, with
    the final outcome), ``error_cb``, ``stats_cb``, ``throttle_cb`` — is queued for the user's next
    ``poll()``/``flush()`` (:mod:`.reports`).

The package: this facade (the drop-in API only), ``session`` (the connector and a session per supervisor
epoch), ``pipeline`` (one instance and its bookkeeping), ``through`` (the write-through), ``verify``
(reading back what a broker acknowledged as a duplicate), ``records`` (arguments to and from the outbox),
``reports`` (the user's callbacks), ``settings`` (the configuration dict), ``errors`` (the one error table).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NoReturn

from confluent_kafka import KafkaError, KafkaException, Producer

from resilientmq.core.buffer import NewMessage, OverflowPolicy, new_message_id
from resilientmq.core.client import ClientCore, ResilientClientMixin, close_at_exit
from resilientmq.core.errors import BufferFullError, ClientClosedError, ReconnectFailedError
from resilientmq.core.options import ResilienceOptions
from resilientmq.core.supervisor import ConnectionState, Endpoints

from .errors import LocalCode
from .pipeline import Ledger
from .records import PARTITION_UA, DeliveryCallback, RecordEncoder, synthetic_message
from .reports import UserEvents, deadline_of
from .session import Bootstrap, ConfluentConnector, ConfluentSession
from .settings import ProducerSettings
from .through import WriteThrough

__all__ = ["ProducerBufferFullError", "ProducerClosedError", "ReconnectAwareConfluentProducer"]

log = logging.getLogger("resilientmq.confluent")

_MAX_BATCH = 2000  # messages per hand-over; librdkafka batches them again per partition
_MAX_IN_FLIGHT = 8
_WAIT_SLICE = 0.1
_ROOM_SLICE = 0.01  # a produce() waiting for room serves librdkafka's reports this long at a time
_EXIT_DRAIN = 1.0
_monotonic = time.monotonic
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
        self._rmq_lane = WriteThrough(
            events=self._rmq_events,
            encoder=self._rmq_encoder,
            default_callback=settings.on_delivery,
            only_errors=settings.only_errors,
        )
        # A stall longer than librdkafka's own time to notice a silent partition and give up a connection,
        # while the cluster answers, means a stuck instance. The outbox's own limit only backs both up.
        stall = settings.stall_timeout
        # Builds the first librdkafka instance: a configuration it refuses raises here, as with Producer.
        self._rmq_connector = ConfluentConnector(
            settings, self._rmq_ledger, self._rmq_lane, stall_timeout=stall
        )
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
        self._rmq_lane.bind(self._rmq.outbox, self._rmq.supervisor, options)
        # Bound once: produce() runs per message.
        self._rmq_put = self._rmq.outbox.put
        self._rmq_put_one = self._rmq.outbox.put_one
        self._rmq_buffer = self._rmq.buffer
        self._rmq_callbacks = self._rmq_ledger.callbacks
        self._rmq.supervisor.add_listener(_WakeFlushes(self._rmq_events, self._rmq_lane))
        self._rmq_exit_hook = close_at_exit(self, _EXIT_DRAIN)
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
        """Accept one message; it is delivered at least once (or reported failed).

        While connected with nothing waiting in the outbox it goes straight to librdkafka (memory mode);
        otherwise into the outbox (durably with ``buffer_path``). ``callback``/``on_delivery`` (or the
        configuration's ``on_delivery``) is called once, from ``poll()``/``flush()``, with the final
        outcome. Never raises ``BufferError`` for an outage; when the outbox is full the overflow policy
        decides (:class:`ProducerBufferFullError` is a ``BufferError``).
        """
        report = callback if callback is not None else on_delivery
        if report is not None and not callable(report):
            raise TypeError("on_delivery requires a callable object")
        lane = self._rmq_lane
        with lane.lock:
            if lane.open and (lane.credit or lane.refill()):
                try:
                    if lane.durable:
                        lane.produce_kept(topic, value, key, partition, report, timestamp, headers)
                    else:
                        # Positional: librdkafka's produce() parses them faster than keywords.
                        lane.produce(
                            topic,
                            value,
                            key,
                            partition,
                            lane.default if report is None else partial(lane.user, report),
                            None,
                            timestamp,
                            headers,
                        )
                except (BufferError, KafkaException):
                    pass  # the slow path below says what to do
                else:
                    lane.credit -= 1  # which counts it as handed over
                    return
        self._rmq_produce_slowly(topic, value, key, partition, report, timestamp, headers)

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
        self._rmq_lane.close()  # through the outbox, behind what went straight to librdkafka
        default = callback if callback is not None else on_delivery
        accepted: list[NewMessage] = []
        reports: dict[str, DeliveryCallback] = {}
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
                reports[message.id] = report
            accepted.append(message)
        # Registered only once every item was encoded: a TypeError part-way through leaves none behind.
        self._rmq_ledger.callbacks.update(reports)
        self._rmq_accept(accepted)
        return len(accepted)

    # -- serving callbacks, waiting -----------------------------------------------------------------
    def poll(self, timeout: float | None = -1) -> int:
        """Run the callbacks owed (delivery reports, ``error_cb``, ...) on this thread, waiting up to
        ``timeout`` seconds for one (None or negative: for ever); returns how many events were served."""
        events = self._rmq_events
        if timeout == 0:  # poll(0) after every produce(): keep it cheap
            pipeline = self._rmq_lane.current
            owed = events.queue or events.silent
            if not owed and _monotonic() < pipeline.quiet_until:
                return 0  # polled librdkafka a moment ago: what it has now waits for the next call
            served = events.serve() if owed else 0
            n = pipeline.drive_poll(0)
            if events.queue or events.silent:
                served += events.serve()
            return served + n if n > 0 else served
        served = events.serve() if events.queue or events.silent else 0
        deadline = deadline_of(timeout)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            wait = _WAIT_SLICE if remaining is None else max(0.0, min(remaining, _WAIT_SLICE))
            n = self._rmq_lane.current.drive_poll(wait)
            if n > 0:
                served += n
            if events.queue or events.silent:
                served += events.serve()
            if served or (remaining is not None and remaining <= 0):
                return served
            if n < 0 and events.wait(wait):  # another thread serves librdkafka: it queues what we owe
                served += events.serve()

    def flush(self, timeout: float | None = -1) -> int:  # type: ignore[override]  # confluent's int
        """Wait until every accepted message is delivered (or failed for good), running the callbacks owed
        on this thread meanwhile; returns how many are left, as ``confluent_kafka.Producer.flush`` does.

        A message that failed is not left: its callback said so (see also ``get_failed_messages()``).
        During an outage it waits (up to ``timeout``) for the broker to come back.
        """
        core = self._rmq
        events = self._rmq_events
        lane = self._rmq_lane
        deadline = deadline_of(timeout)
        core.supervisor.resume()
        while True:
            if events.queue or events.silent:
                events.serve()
            if len(core.outbox) == 0 and not lane.outstanding() and len(events) == 0:
                return 0
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or core.supervisor.state in _STUCK:
                return len(self)
            wait = _WAIT_SLICE if remaining is None else min(remaining, _WAIT_SLICE)
            pipeline = lane.current
            left = pipeline.drive_flush(wait)  # the reports run here, lingering batches go out at once
            if left < 0 or (left == 0 and len(core.outbox)):
                # Another thread serves librdkafka, or the outbox's messages are not with it yet.
                pipeline.expedite()
                events.wait(wait)

    def flush_outbox(self, timeout: float | None = None) -> bool:
        """The resilientmq clients' ``flush()``: True once every accepted message is confirmed, False on
        timeout or when a message failed since the previous call. Runs no callbacks (any thread may)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._rmq_wait_direct(deadline, run_callbacks=False):
            return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return ResilientClientMixin.flush(self, remaining)

    def get_buffer_size(self) -> int:
        """Messages accepted but not yet confirmed by the broker (librdkafka's queue included)."""
        return len(self._rmq.outbox) + self._rmq_lane.outstanding()

    def __len__(self) -> int:
        """Messages not yet delivered (the outbox and librdkafka's queue) plus delivery reports not yet
        served."""
        return len(self._rmq.outbox) + self._rmq_lane.outstanding() + len(self._rmq_events)

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
                self._rmq_lane.purge_carried(KafkaError(LocalCode.PURGE_QUEUE, "Local: Purged in queue"))
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
        drain = core.options.drain_timeout if timeout is None else timeout
        deadline = None if drain is None else time.monotonic() + drain
        lane = self._rmq_lane
        lane.disable()  # from now on through the outbox, which close() then drains and refuses
        held = not self._rmq_wait_direct(deadline, run_callbacks=True)
        if held:
            where = "kept in the durable buffer" if lane.durable else "lost with this process"
            log.warning(
                "%s: closed with %d message(s) librdkafka still held, %s",
                core.name,
                lane.outstanding(),
                where,
            )
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        drained = core.close(remaining)
        self._rmq_connector.close()
        self._rmq_events.serve()
        return drained and not held

    def __enter__(self) -> ReconnectAwareConfluentProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """The counters of every client, plus ``instances`` (librdkafka instances built), ``verified`` and
        ``verified_missing`` (messages acknowledged as duplicates, looked up in the log, and not found), and
        ``produced_direct`` (messages handed straight to librdkafka, which count as accepted, sent and, once
        delivered, confirmed too)."""
        out = {**super().stats(), **self._rmq_connector.stats()}
        lane = self._rmq_lane
        direct = lane.stats()
        for name in ("sent", "confirmed", "resent"):
            out[name] += direct[name]
        out["accepted"] += direct["produced_direct"]
        out["buffered"] += lane.outstanding()
        out["produced_direct"] = direct["produced_direct"]
        return out

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
    def _rmq_produce_slowly(
        self,
        topic: Any,
        value: Any,
        key: Any,
        partition: Any,
        report: DeliveryCallback | None,
        timestamp: Any,
        headers: Any,
    ) -> None:
        """``produce()`` past the write-through's first try: straight to librdkafka once there is room (the
        overflow policy decides how long to wait), else into the outbox."""
        lane = self._rmq_lane
        args = (topic, value, key, partition, timestamp, headers)
        if (lane.open or lane.try_open()) and self._rmq_direct(report, args):
            return
        lane.close()  # the outbox takes it: nothing may overtake it
        body, meta = self._rmq_encoder.fields(topic, value, key, partition, timestamp, headers)
        message_id = new_message_id()
        if report is not None:
            self._rmq_callbacks[message_id] = report
        try:
            self._rmq_put_one(topic, body, meta, message_id)
        except BaseException as exc:
            self._rmq_retry_put((NewMessage(topic, body, meta, message_id),), exc)
        if self._rmq_buffer.dropped_count != self._rmq_dropped_seen:
            self._rmq_report_dropped()

    def _rmq_direct(self, report: DeliveryCallback | None, args: tuple[Any, Any, Any, Any, Any, Any]) -> bool:
        """The write-through, waiting for room by the overflow policy: True once librdkafka took the message
        (or refused it for good, which is reported), False when the outbox is to take it."""
        lane = self._rmq_lane
        topic, value, key, partition, timestamp, headers = args
        deadline: float | None = None
        while True:
            with lane.lock:
                if not lane.open:
                    return False
                if lane.credit or lane.refill():
                    try:
                        if lane.durable:
                            lane.produce_kept(topic, value, key, partition, report, timestamp, headers)
                        else:
                            callback = lane.default if report is None else partial(lane.user, report)
                            lane.produce(topic, value, key, partition, callback, None, timestamp, headers)
                    except BufferError:
                        why = "librdkafka's queue is full (queue.buffering.max.messages/kbytes)"
                    except KafkaException as exc:
                        return lane.refused(exc, report, args)
                    else:
                        lane.credit -= 1
                        return True
                elif len(self._rmq_buffer):
                    return False  # the outbox holds messages: this one goes behind them
                else:
                    bound = self._rmq_buffer.max_messages
                    why = f"buffer full: {bound} of {bound} messages pending, no room for a message"
            deadline = self._rmq_wait_for_room(why, deadline)

    def _rmq_wait_for_room(self, why: str, deadline: float | None) -> float | None:
        """The bound is reached by what librdkafka holds: raise, or wait a little for its reports (served
        here, the user's callbacks queued for their poll()), by the overflow policy. The deadline."""
        options = self._rmq.options
        if options.buffer_overflow is OverflowPolicy.RAISE:
            raise ProducerBufferFullError(why)
        if self._rmq_lane.current.driver == threading.get_ident():
            # produce() from a delivery callback: the reports that would make room wait for that callback.
            raise ProducerBufferFullError(f"{why} (produce() from a delivery callback cannot wait for room)")
        now = time.monotonic()
        if deadline is None:
            wait = options.buffer_block_timeout
            deadline = float("inf") if wait is None else now + wait
        elif now >= deadline:
            waited = options.buffer_block_timeout or 0.0
            raise ProducerBufferFullError(f"{why} (waited {waited:g} s for room)")
        if not self._rmq_lane.current.serve(_ROOM_SLICE):
            self._rmq_buffer.wait_for_space(_ROOM_SLICE)  # another thread serves: it gives room back
        return deadline

    def _rmq_wait_direct(self, deadline: float | None, *, run_callbacks: bool) -> bool:
        """Wait until librdkafka reported every message handed to it directly; False on the deadline."""
        lane = self._rmq_lane
        while lane.outstanding():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self._rmq.supervisor.state in _STUCK:
                return False
            wait = _WAIT_SLICE if remaining is None else min(remaining, _WAIT_SLICE)
            pipeline = lane.current
            served = pipeline.drive_flush(wait) >= 0 if run_callbacks else pipeline.serve(wait)
            if not served:
                self._rmq_buffer.wait_for_space(wait)  # another thread serves: woken as room comes back
        return True

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
        if isinstance(exc, ReconnectFailedError) and self._rmq.supervisor.resume():
            try:
                self._rmq_put(messages)
                return
            except BaseException as again:
                exc = again
        self._rmq_refused(messages, exc)

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
    """Supervisor listener: a state change wakes a waiting ``flush()`` (it may have to give up), and a
    connection that is no longer up ends the write-through (the outbox takes over)."""

    def __init__(self, events: UserEvents, lane: WriteThrough) -> None:
        self._events = events
        self._lane = lane

    def on_state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        if new is not ConnectionState.CONNECTED:
            self._lane.close()
        self._events.wake()


def _no_transactions() -> None:
    raise KafkaException(
        KafkaError(
            LocalCode.NOT_CONFIGURED,
            "The Transactional API requires transactional.id to be configured "
            "(ReconnectAwareConfluentProducer does not support transactions)",
        )
    )
