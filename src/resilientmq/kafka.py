"""``ReconnectAwareKafkaProducer``: a drop-in ``kafka.KafkaProducer`` that loses nothing through outages.

How it is built, and why
    kafka-python's constructor bootstraps (and raises ``KafkaTimeoutError`` when no broker answers), so the
    class cannot simply call ``super().__init__`` and still be constructible during an outage. It is a
    subclass of ``KafkaProducer`` — ``isinstance`` holds and every ``KafkaProducer`` kwarg is accepted and
    means what it meant — whose base state lives in a *session*: a real ``kafka.KafkaProducer`` built with
    the same kwargs by the supervisor's ``Connector.open`` (see ``_kafka_link``), one per connection. The
    public ``KafkaProducer`` methods are routed through the core: ``send()`` checks and serialises at once
    and buffers; ``flush()``/``close()`` wait on the buffer; ``partitions_for()``/``metrics()`` ask the live
    session. Deferring ``KafkaProducer.__init__`` on ``self`` instead would leave a half-initialised base
    object between connections and force re-running ``__init__`` after every loss; a separate object per
    connection is simpler to retire cleanly.

Who retries
    kafka-python retries within ``delivery_timeout_ms`` (idempotent, in order: ``retries`` and
    ``max_in_flight_requests_per_connection`` keep their meaning). A record whose kafka-python future still
    fails for a retriable reason goes back to the core (``BatchResult.retry``), which re-sends it on the next
    session; permanent failures (too large, forbidden or invalid topic) go to ``get_failed_messages()`` and
    fail the caller's future. ``_kafka_errors.translate_kafka_error`` is the one place that decides.

How a loss is noticed
    kafka-python manages its own sockets and reconnects by itself, so there is no "connection" to watch. The
    supervisor learns of a loss from the records: a retriable failure fences the session (see
    ``_kafka_link``) and reports the loss; so does the outbox when a batch stays unanswered past
    ``delivery_timeout_ms + request_timeout_ms`` (kafka-python 3.0.12 can stall for good after resetting its
    producer id). Recovery is a new session whose bootstrap (a metadata round trip) succeeded. An idle
    producer notices nothing, and has nothing at risk.

Order
    With idempotence on (the default) or ``max_in_flight_requests_per_connection=1``, kafka-python keeps one
    batch per partition in flight; fencing on the first failure means a later record of a partition is
    written only by a session in which every earlier one was acknowledged. So per partition (hence per key)
    the *first* copy of every record appears in ``send()`` order. Re-sent records whose earlier attempt
    was in fact written show up again (at least once: Kafka cannot de-duplicate an application re-send).
    Records without key and partition are placed by the partitioner again when re-sent. With idempotence
    off and several requests in flight, kafka-python itself may reorder on retries, and so may we.

Timestamps, blocking
    A record without ``timestamp_ms`` gets the time ``send()`` accepted it. ``send()`` never waits for
    metadata; it blocks only when the buffer is full, for ``buffer_block_timeout`` seconds, which defaults to
    ``max_block_ms`` (the time kafka-python's ``send()`` may block).
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

import kafka.errors as Errors
from kafka import KafkaProducer

from .core.client import ClientCore, ResilientClientMixin
from .core.options import DEFAULT_DRAIN_TIMEOUT, ResilienceOptions
from ._kafka_errors import kafka_errors
from ._kafka_link import KafkaLink
from ._kafka_records import KafkaRecord, RecordEncoder, RecordFuture
from .core.buffer import DEFAULT_MAX_MESSAGES, NewMessage, OverflowPolicy
from .core.errors import BufferFullError, ClientClosedError, ConnectionLostError, InvalidMessageError
from .core.policy import ReconnectPolicy
from .core.supervisor import ConnectionState, Endpoints

__all__ = ["KafkaRecord", "ReconnectAwareKafkaProducer", "RecordFuture"]

_UNSET: Any = object()
_BATCH = 1000  # records per batch handed to kafka-python; kafka-python splits them by batch_size
# One batch at a time: kafka-python pipelines within it, and records arriving meanwhile make the next
# batch bigger (several small batches in flight cost kafka-python a request each: a third of the rate).
_IN_FLIGHT = 1
_EXIT_FLUSH_TIMEOUT = 1.0  # what kafka-python's own exit hook gives a producer to flush
_CLIENT_IDS = itertools.count(1)
# kafka-python wakes its I/O thread for every record appended while a partition holds more than one
# batch; fed from the buffer in bursts of _BATCH records, 16 KiB batches make that every record.
_DEFAULT_BATCH_SIZE = 256 * 1024


class ReconnectAwareKafkaProducer(ResilientClientMixin, KafkaProducer):  # type: ignore[misc]
    """``kafka.KafkaProducer`` that buffers through outages, re-sends, and never silently drops a record.

    Takes every ``KafkaProducer`` kwarg, plus ``reconnect_tries`` (default 10, -1 = forever),
    ``reconnect_interval_seconds`` (default 60, or a ``ReconnectPolicy``), ``reconnect_policy``,
    ``buffer_max_messages`` (default 10,000), ``buffer_path`` (a durable SQLite buffer), ``buffer_overflow``
    (``"block"``, ``"raise"`` or ``"drop_oldest"``), ``buffer_block_timeout`` (default ``max_block_ms``),
    ``buffer_fsync`` and ``drain_timeout`` (how long ``close()`` waits by default). Transactions
    (``transactional_id``) are not supported: a record re-sent after an outage would leave its transaction.

    One default differs from ``KafkaProducer``'s: ``batch_size`` is 256 KiB, not 16 KiB. Records reach
    kafka-python in bursts from the buffer, and with small batches kafka-python wakes its I/O thread for
    every record of a burst (a third of the throughput). Pass ``batch_size`` to choose.
    """

    def __init__(
        self,
        *,
        reconnect_tries: int | None = None,
        reconnect_interval_seconds: float | ReconnectPolicy | None = None,
        reconnect_policy: ReconnectPolicy | None = None,
        buffer_max_messages: int = DEFAULT_MAX_MESSAGES,
        buffer_path: Any = None,
        buffer_overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        buffer_block_timeout: float | None = _UNSET,
        buffer_fsync: bool = False,
        drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
        **configs: Any,
    ) -> None:
        configs.setdefault("batch_size", _DEFAULT_BATCH_SIZE)
        self.config = _check_configs(configs)
        if buffer_block_timeout is _UNSET:
            buffer_block_timeout = self.config["max_block_ms"] / 1000
        options = ResilienceOptions.from_kwargs(
            reconnect_tries=reconnect_tries,
            reconnect_interval_seconds=reconnect_interval_seconds,
            reconnect_policy=reconnect_policy,
            buffer_max_messages=buffer_max_messages,
            buffer_path=buffer_path,
            buffer_overflow=buffer_overflow,
            buffer_block_timeout=buffer_block_timeout,
            buffer_fsync=buffer_fsync,
            drain_timeout=drain_timeout,
        )
        self._rmq_encoder = RecordEncoder(
            self.config["key_serializer"], self.config["value_serializer"], self.config["max_request_size"]
        )
        self._rmq_futures: dict[str, RecordFuture] = {}
        self._rmq_dropped_seen = 0
        # Serializers ran in send(); every session shares one client_id, as one producer would.
        session_configs = dict(
            configs, key_serializer=None, value_serializer=None, client_id=self.config["client_id"]
        )
        name = str(self.config["client_id"])
        self._rmq_link = KafkaLink(name, session_configs, self._rmq_futures, self._rmq_on_session)
        # kafka-python retries for delivery_timeout_ms and promises an outcome by then: only past that
        # (and a request) is a batch's silence the core's business. kafka-python 3.0.12 does stall for
        # good at times: after resetting its idempotent producer id it stays READY without one.
        confirm_timeout = (self.config["delivery_timeout_ms"] + self.config["request_timeout_ms"]) / 1000
        servers = self.config["bootstrap_servers"]
        endpoint = (servers,) if isinstance(servers, str) else tuple(servers)
        self._rmq: ClientCore[Any] = ClientCore(
            name,
            options,
            self._rmq_link,
            Endpoints([endpoint]),
            self._rmq_link,
            max_batch=_BATCH,
            max_in_flight=_IN_FLIGHT,
            confirm_timeout=confirm_timeout + 1.0,
        )
        self._rmq_link.supervisor = self._rmq.supervisor
        self._rmq_exit_hook = _exit_hook(self)
        atexit.register(self._rmq_exit_hook)
        self._rmq.supervisor.connect(wait=False)

    # -- sending ------------------------------------------------------------------------------------
    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Buffer one record for delivery; the future resolves with its ``RecordMetadata`` once acknowledged.

        Serializers run here, so a bad value raises at once (the serializer's own error; ``TypeError`` or
        ``InvalidMessageError`` for arguments ``KafkaProducer.send`` would refuse). Blocks only while the
        buffer is full.
        """
        message = self._rmq_encoder.encode(topic, value, key, headers, partition, timestamp_ms)
        future = RecordFuture()
        # Registered before the record can be sent, so its acknowledgement always finds the future.
        self._rmq_futures[message.id] = future
        try:
            self._rmq.outbox.put([message])
        except BaseException:
            del self._rmq_futures[message.id]
            raise
        if self._rmq.buffer.dropped_count != self._rmq_dropped_seen:
            self._rmq_fail_dropped()
        return future

    def send_batch(self, topic: str, values_or_records: Iterable[Any]) -> list[RecordFuture]:
        """Buffer many records at once (one durable write); all are accepted or, on a bad one, none.

        Each item is a value, or a :class:`KafkaRecord` for a key, headers, partition or timestamp.
        """
        if isinstance(values_or_records, (str, bytes, bytearray, memoryview)):
            raise TypeError("send_batch takes an iterable of values or KafkaRecords, not a single value")
        encode = self._rmq_encoder.encode
        messages: list[NewMessage] = []
        for i, item in enumerate(values_or_records):
            record = item if isinstance(item, KafkaRecord) else KafkaRecord(item)
            try:
                messages.append(encode(topic, *record))
            except InvalidMessageError as exc:
                raise InvalidMessageError(f"record {i} of the batch: {exc}") from exc
        futures = [RecordFuture() for _ in messages]
        self._rmq_futures.update(zip((m.id for m in messages), futures, strict=True))
        try:
            self._rmq.outbox.put(messages)
        except BaseException:
            for m in messages:
                self._rmq_futures.pop(m.id, None)
            raise
        if self._rmq.buffer.dropped_count != self._rmq_dropped_seen:
            self._rmq_fail_dropped()
        return futures

    # -- waiting and closing ------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted record is acknowledged (re-sending as needed) or has failed.

        Returns False on timeout, or when a record failed since the previous ``flush()``
        (see ``get_failed_messages()``), where ``KafkaProducer.flush`` would raise or stay silent.
        """
        linger = self.config["linger_ms"]
        if linger and linger > 0:
            self._rmq_expedite(timeout)
        return self._rmq.outbox.flush(timeout)

    def close(self, timeout: float | None = None, null_logger: bool = False) -> bool:
        """Flush for up to ``timeout`` seconds (default ``drain_timeout``), then stop. Idempotent.

        What is still unconfirmed stays in a durable buffer for the next producer on the same path (and is
        lost with a memory buffer). Returns True when nothing was left. ``null_logger`` is accepted for
        compatibility and ignored.
        """
        core: ClientCore[Any] | None = getattr(self, "_rmq", None)
        if core is None:  # the constructor failed
            return False
        atexit.unregister(self._rmq_exit_hook)
        if core.supervisor.closed:
            return len(core.buffer) == 0
        drained = core.close(core.options.drain_timeout if timeout is None else timeout)
        error = ClientClosedError(f"{self._rmq.name}: closed before the record was acknowledged")
        for future in list(self._rmq_futures.values()):
            # With a durable buffer the record is still delivered, by the next producer on the path.
            if not future.is_done:
                future.failure(error)
        self._rmq_futures.clear()
        return drained

    def __del__(self) -> None:
        """Nothing to do: the sender threads keep the producer alive until ``close()``."""

    # -- KafkaProducer's other methods, routed to the live session ----------------------------------
    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions, waiting up to ``max_block_ms`` for a connection and the metadata."""
        producer = self._rmq_live_producer(self.config["max_block_ms"] / 1000)
        with kafka_errors():
            partitions: set[int] = producer.partitions_for(topic)
        return partitions

    def metrics(self, raw: bool = False) -> Any:
        """kafka-python's metrics of the live session (None between sessions or with metrics off)."""
        producer = self._rmq_link.producer
        return None if producer is None else producer.metrics(raw)

    def bootstrap_connected(self) -> bool:
        producer = self._rmq_link.producer
        return False if producer is None else bool(producer.bootstrap_connected())

    def init_transactions(self) -> None:
        _no_transactions()

    def begin_transaction(self) -> None:
        _no_transactions()

    def send_offsets_to_transaction(self, offsets: Any, group_metadata: Any) -> None:
        _no_transactions()

    def commit_transaction(self) -> None:
        _no_transactions()

    def abort_transaction(self) -> None:
        _no_transactions()

    # -- helpers ------------------------------------------------------------------------------------
    def _rmq_on_session(self, producer: Any) -> None:
        # Show the negotiated settings (api_version, idempotence) but keep the caller's serializers.
        self.config = dict(
            producer.config,
            key_serializer=self.config["key_serializer"],
            value_serializer=self.config["value_serializer"],
        )
        # Stay ahead of the new session's own exit hook (atexit runs the latest first).
        atexit.unregister(self._rmq_exit_hook)
        atexit.register(self._rmq_exit_hook)

    def _rmq_live_producer(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            producer = self._rmq_link.producer
            if producer is not None:
                return producer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionLostError(
                    f"{self._rmq.name}: no connection to {self.config['bootstrap_servers']} "
                    f"within {timeout:g} s ({self.connection_state.value})"
                )
            if self._rmq.supervisor.wait_connected(remaining) is not None:
                pause.wait(0.01)  # connected, but its session was just fenced: the state follows at once

    def _rmq_expedite(self, timeout: float | None) -> None:
        """With ``linger_ms``, make what kafka-python holds sendable now, as ``KafkaProducer.flush`` does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = threading.Event()
        while len(self._rmq.outbox) > 0 and self.connection_state is ConnectionState.CONNECTED:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            producer = self._rmq_link.producer
            if producer is not None:
                try:
                    producer.flush(0.5 if remaining is None else min(remaining, 0.5))
                except Exception:
                    return  # timed out or retired: the outbox wait in flush() covers it
            # Records still in our buffer are handed to kafka-python shortly: poll for them.
            pause.wait(0.01)

    def _rmq_fail_dropped(self) -> None:
        """Fail the futures of records evicted by ``drop_oldest``: the newest drops in the failed list."""
        buffer = self._rmq.buffer
        dropped = buffer.dropped_count
        new = dropped - self._rmq_dropped_seen
        self._rmq_dropped_seen = dropped
        for record in reversed(buffer.failed()):
            if new <= 0:
                return
            if record.error_type != BufferFullError.__name__:
                continue
            new -= 1
            future = self._rmq_futures.pop(record.id, None)
            if future is not None and not future.is_done:
                future.failure(BufferFullError(record.reason))


def _check_configs(configs: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` view, refusing at construction what kafka-python would refuse at construction."""
    unknown = sorted(set(configs) - set(KafkaProducer.DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"Unrecognized configs: {unknown}")
    if configs.get("transactional_id") is not None:
        raise ValueError(
            "transactional_id is not supported by ReconnectAwareKafkaProducer: records re-sent after an "
            "outage would leave their transaction; use KafkaProducer for transactions"
        )
    config = dict(KafkaProducer.DEFAULT_CONFIG, **configs)
    if config["acks"] == "all":
        config["acks"] = -1
    if config["delivery_timeout_ms"] < config["linger_ms"] + config["request_timeout_ms"]:
        raise Errors.KafkaConfigurationError(
            "Must set delivery_timeout_ms higher than linger_ms + request_timeout_ms"
        )
    if config["compression_type"] not in KafkaProducer._COMPRESSORS:
        raise ValueError(f"Not supported codec: {config['compression_type']}")
    if config["client_id"] is None:
        config["client_id"] = f"resilientmq-producer-{next(_CLIENT_IDS)}"
    return config


def _exit_hook(producer: ReconnectAwareKafkaProducer) -> Any:
    """Like kafka-python's: at interpreter exit, give the producer a moment to flush, then close it."""
    ref = weakref.ref(producer)

    def hook() -> None:
        live = ref()
        if live is not None:
            live.close(_EXIT_FLUSH_TIMEOUT)

    return hook


def _no_transactions() -> None:
    raise Errors.IllegalStateError(
        "transactions are not supported by ReconnectAwareKafkaProducer (see its docstring)"
    )
