"""``ReconnectAwareKafkaProducer``: a drop-in ``kafka.KafkaProducer`` that loses nothing through outages.

How it is built, and why
    kafka-python's constructor bootstraps (and raises ``KafkaTimeoutError`` when no broker answers), so the
    class cannot simply call ``super().__init__`` and still be constructible during an outage. It is a
    subclass of ``KafkaProducer`` — ``isinstance`` holds and every ``KafkaProducer`` kwarg is accepted and
    means what it meant — whose base state lives in a real ``kafka.KafkaProducer`` built with the same kwargs
    by the supervisor's ``KafkaConnector.open`` (see :mod:`.session`) and kept across connections (see
    :mod:`.producer`). What kafka-python checks at construction is checked here at construction, with the
    same exceptions (:mod:`.config`). The public ``KafkaProducer`` methods are routed through the core:
    ``send()`` checks and serialises at once and buffers; ``flush()``/``close()`` wait on the buffer;
    ``partitions_for()``/``metrics()`` ask the live producer.

Who retries
    kafka-python retries every batch it holds, through any outage, with its idempotent producer id and
    sequence numbers, so the broker refuses a second copy: this adapter hands it ``delivery_timeout_ms`` of
    :data:`.config.NO_EXPIRY_MS` unless the caller sets one. A record kafka-python fails for a retriable
    reason (the broker lost the producer's state, or a ``delivery_timeout_ms`` the caller set ran out) ends
    that producer: its unconfirmed records go back to the core (``BatchResult.retry``) and a new producer
    sends them again. Permanent failures (too large, forbidden or invalid topic) go to
    ``get_failed_messages()`` and fail the caller's future. The table in :mod:`.errors` decides.

    kafka-python also reconnects by itself, backing off up to ``reconnect_backoff_max_ms``; our reconnect
    policy only probes whether it has. So that the two do not multiply, ``reconnect_backoff_max_ms``
    defaults to the policy's longest wait when that is shorter than kafka-python's 30 s
    (:func:`.config.adapter_defaults`), and a probe ends when kafka-python's metadata answer comes, or at
    once when its producer was retired: after an outage the client is CONNECTED, and delivering, within
    about the policy's delay of the broker's return.

Order
    With idempotence on (the default) or ``max_in_flight_requests_per_connection=1``, kafka-python keeps one
    batch per partition in flight and retries it in place; a new producer only sends once the old one has
    failed everything it held. So per partition (hence per key) the *first* copy of every record appears in
    ``send()`` order. Records without key and partition are placed by the partitioner again when re-sent.
    With idempotence off and several requests in flight, kafka-python itself may reorder on retries.

Timestamps, blocking
    A record without ``timestamp_ms`` gets the time ``send()`` accepted it. ``send()`` never waits for
    metadata; it blocks only when the buffer is full, for ``buffer_block_timeout`` seconds, which defaults to
    ``max_block_ms`` (the time kafka-python's ``send()`` may block). Nor does the sender thread wait for a new
    topic's metadata (see :mod:`.handover`), so ``close()`` during an outage takes ``drain_timeout``, not
    ``max_block_ms``.

Acknowledgements without an offset
    A record kafka-python reports with offset -1 (its success for a DUPLICATE_SEQUENCE_NUMBER answer) is
    looked up in its partition before it counts as confirmed (:mod:`.verify`): found, its future resolves with
    the real offset; missing, it is sent again. ``stats()`` counts them (``verified``, ``verified_missing``).
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterable
from typing import Any

import kafka.errors as Errors
from kafka import KafkaProducer

from resilientmq.core.buffer import NewMessage
from resilientmq.core.client import ClientCore, ResilientClientMixin, close_at_exit
from resilientmq.core.errors import (
    BufferFullError,
    ClientClosedError,
    InvalidMessageError,
    ReconnectFailedError,
)
from resilientmq.core.options import ResilienceOptions
from resilientmq.core.supervisor import Endpoints

from .config import BROKER_DECIDES, adapter_defaults, resolve_config
from .errors import kafka_errors
from .records import KafkaRecord, RecordEncoder, RecordFuture
from .session import Bootstrap, KafkaConnector, KafkaSession, liveness

__all__ = ["KafkaRecord", "ReconnectAwareKafkaProducer", "RecordFuture"]

_BATCH = 1000  # records per batch handed to kafka-python; kafka-python splits them by batch_size
# One batch at a time: kafka-python pipelines within it, and records arriving meanwhile make the next
# batch bigger (several small batches in flight cost kafka-python a request each: a third of the rate).
_IN_FLIGHT = 1
_EXIT_FLUSH_TIMEOUT = 1.0  # what kafka-python's own exit hook gives a producer to flush


class ReconnectAwareKafkaProducer(ResilientClientMixin, KafkaProducer):  # type: ignore[misc]
    """``kafka.KafkaProducer`` that buffers through outages, re-sends, and never silently drops a record.

    Takes every ``KafkaProducer`` kwarg, plus the resilience kwargs of every resilientmq client
    (:class:`~resilientmq.core.options.ResilienceKwargs`: ``reconnect_tries``, ``reconnect_interval_seconds``,
    ``reconnect_policy``, ``buffer_max_messages``, ``buffer_path``, ``buffer_overflow``, ``buffer_fsync``,
    ``drain_timeout``, ...), of which ``buffer_block_timeout`` defaults to ``max_block_ms`` here.
    Transactions (``transactional_id``) are not supported: a record re-sent after an outage would leave its
    transaction.

    Three defaults differ from ``KafkaProducer``'s. ``batch_size`` is 256 KiB, not 16 KiB: records reach
    kafka-python in bursts from the buffer, and with small batches kafka-python wakes its I/O thread for
    every record of a burst (a third of the throughput). ``delivery_timeout_ms`` is
    :data:`~.config.NO_EXPIRY_MS`, not two minutes: kafka-python retries a record, as the same batch, for
    as long as an outage lasts, so no copy is written twice; the reconnect policy decides when to give up.
    ``reconnect_backoff_max_ms`` is the reconnect policy's longest wait, if under 30 s (see "Who retries").
    Set any to choose; a ``delivery_timeout_ms`` you set keeps kafka-python's meaning (how long one
    producer may hold a record), after which the record goes to a new producer and may be written twice.

    ``config`` is what ``KafkaProducer.config`` would be, resolved at construction (``acks='all'`` is -1,
    idempotence resolved, ``api_version`` checked and rounded as kafka-python does). With
    ``api_version=None`` it reads :data:`~.config.NEWEST_API_VERSION` until the first connection, which
    sets the broker's version and, from it, ``enable_idempotence`` (off for a broker older than 0.11 unless
    asked for: then the client fails with kafka-python's ``KafkaConfigurationError``). Those keys
    (:data:`~.config.BROKER_DECIDES`) are updated in place, when a producer is built; no other key changes.
    """

    def __init__(self, **configs: Any) -> None:
        max_block_ms = configs.get("max_block_ms", KafkaProducer.DEFAULT_CONFIG["max_block_ms"])
        options, configs = ResilienceOptions.split(
            configs, owner=type(self).__name__, defaults={"buffer_block_timeout": max_block_ms / 1000}
        )
        # The adapter's own defaults (see the class docstring), then kafka-python's checks on the result.
        configs = adapter_defaults(configs, options.reconnect_policy.max_delay)
        self.config = resolve_config(configs, warn_stacklevel=3).config
        if self.config["transactional_id"] is not None:
            raise ValueError(
                "transactional_id is not supported by ReconnectAwareKafkaProducer: records re-sent after an "
                "outage would leave their transaction; use KafkaProducer for transactions"
            )
        self._rmq_encoder = RecordEncoder(
            self.config["key_serializer"], self.config["value_serializer"], self.config["max_request_size"]
        )
        self._rmq_futures: dict[str, RecordFuture] = {}
        self._rmq_dropped_seen = 0
        # Serializers ran in send(); every producer shares one client_id, as one producer would.
        producer_configs = dict(
            configs, key_serializer=None, value_serializer=None, client_id=self.config["client_id"]
        )
        name = str(self.config["client_id"])
        timeouts = liveness(self.config)
        self._rmq_connector = KafkaConnector(
            name,
            producer_configs,
            self._rmq_futures,
            probe_timeout=timeouts.probe_timeout,
            on_build=self._rmq_on_build,
        )
        servers = self.config["bootstrap_servers"]
        endpoint: Bootstrap = (servers,) if isinstance(servers, str) else tuple(servers)
        self._rmq: ClientCore[Bootstrap, KafkaSession] = ClientCore(
            name,
            options,
            self._rmq_connector,
            Endpoints([endpoint]),
            max_batch=_BATCH,
            max_in_flight=_IN_FLIGHT,
            confirm_timeout=timeouts.confirm_timeout,
        )
        self._rmq_exit_hook = close_at_exit(self, _EXIT_FLUSH_TIMEOUT)
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
        (future,) = self._rmq_accept([message])
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
        return self._rmq_accept(messages)

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
        core: ClientCore[Bootstrap, KafkaSession] | None = getattr(self, "_rmq", None)
        if core is None:  # the constructor failed
            return False
        atexit.unregister(self._rmq_exit_hook)
        if core.supervisor.closed:
            return len(core.buffer) == 0
        drained = core.close(core.options.drain_timeout if timeout is None else timeout)
        self._rmq_connector.close()  # what kafka-python still holds fails: it must not be written later
        error = ClientClosedError(f"{core.name}: closed before the record was acknowledged")
        for future in list(self._rmq_futures.values()):
            # With a durable buffer the record is still delivered, by the next producer on the path.
            if not future.is_done:
                future.failure(error)
        self._rmq_futures.clear()
        return drained

    def stats(self) -> dict[str, int]:
        """The counters of every client, plus ``verified`` (records acknowledged without an offset and looked
        up in their partition) and ``verified_missing`` (of which it did not hold: they were sent again)."""
        return {**super().stats(), **self._rmq_connector.stats()}

    def __del__(self) -> None:
        """Nothing to do: the sender threads keep the producer alive until ``close()``."""

    # -- KafkaProducer's other methods: the live session, or the producer kept between sessions -----
    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions, waiting up to ``max_block_ms`` for a connection and the metadata."""
        what = f"{self._rmq.name} ({self.config['bootstrap_servers']}): partitions_for({topic!r})"
        with kafka_errors():
            return self._rmq.supervisor.run(
                what,
                lambda session: session.partitions_for(topic),
                timeout=self.config["max_block_ms"] / 1000,
            )

    def metrics(self, raw: bool = False) -> Any:
        """kafka-python's metrics of the producer (None before the first connection or with metrics off);
        one producer serves many connections, so they add up across outages, and start from zero when
        a new producer replaces it (the broker lost its state)."""
        producer = self._rmq_connector.producer
        return None if producer is None else producer.metrics(raw)

    def bootstrap_connected(self) -> bool:
        """kafka-python's answer for the producer it keeps (False before the first connection)."""
        producer = self._rmq_connector.producer
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
    def _rmq_on_build(self, producer: Any) -> None:
        """A new kafka-python producer: take what its broker decided (``api_version=None`` resolved, and
        idempotence with it) into ``config``, in place; nothing else in ``config`` ever changes."""
        for key in BROKER_DECIDES:
            if self.config[key] != producer.config[key]:
                self.config[key] = producer.config[key]
        # Stay ahead of the new producer's own exit hook (atexit runs the latest first).
        atexit.unregister(self._rmq_exit_hook)
        atexit.register(self._rmq_exit_hook)

    def _rmq_expedite(self, timeout: float | None) -> None:
        """With ``linger_ms``, make what kafka-python holds sendable now, as ``KafkaProducer.flush`` does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = threading.Event()
        while len(self._rmq.outbox) > 0:
            session = self._rmq.supervisor.session()
            remaining = None if deadline is None else deadline - time.monotonic()
            if session is None or (remaining is not None and remaining <= 0):
                return  # not connected, or out of time: the outbox wait in flush() covers it
            if not session.expedite(0.5 if remaining is None else min(remaining, 0.5)):
                return
            # Records still in our buffer are handed to kafka-python shortly: poll for them.
            pause.wait(0.01)

    def _rmq_accept(self, messages: list[NewMessage]) -> list[RecordFuture]:
        """Buffer encoded records; one future each, registered before a record can be sent, so that its
        acknowledgement always finds it."""
        futures = [RecordFuture() for _ in messages]
        self._rmq_futures.update(zip((m.id for m in messages), futures, strict=True))
        try:
            try:
                self._rmq.outbox.put(messages)
            except ReconnectFailedError:
                # The policy gave up: a KafkaProducer has no connect(), so sending again is the next try.
                if not self._rmq.supervisor.resume():
                    raise
                self._rmq.outbox.put(messages)
        except BaseException:
            for m in messages:
                self._rmq_futures.pop(m.id, None)
            raise
        if self._rmq.buffer.dropped_count != self._rmq_dropped_seen:
            self._rmq_fail_dropped()
        return futures

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


def _no_transactions() -> None:
    raise Errors.IllegalStateError(
        "transactions are not supported by ReconnectAwareKafkaProducer (see its docstring)"
    )
