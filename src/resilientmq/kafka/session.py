"""The Kafka adapter's Connector and Session: connections come and go, the kafka-python producer stays.

The supervisor opens one :class:`KafkaSession` per connection (epoch). :meth:`KafkaConnector.open` gives it
the :class:`~.producer.Producer` already built when that one still stands, once a metadata round trip
through it shows the cluster answers again, and builds a new producer only for the first connection or
after the last one was retired. A session *carries* the batches transmitted on the earlier connections of
its producer (:meth:`KafkaSession.carries`): kafka-python still holds and retries them with their sequence
numbers, so the outbox waits for their answer instead of sending them again (which would write them twice).

How losses and recoveries are noticed (kafka-python reconnects silently, so there is no socket to watch):
the outbox declares the connection lost when a batch stays unanswered past ``confirm_timeout``, which
:func:`liveness` puts just past ``request_timeout_ms + linger_ms`` (kafka-python has timed a request out by
then), and the producer reports a record that kafka-python refused to take (no metadata). The next ``open()``
probes; while probes fail, the client is RECONNECTING and the reconnect policy paces them, without polling
in between. An idle producer notices nothing, and has nothing at risk.

How fast it comes back: a probe is answered as soon as kafka-python's own client reconnects and refreshes its
metadata, which it does after its reconnect backoff (``reconnect_backoff_ms`` doubling up to
``reconnect_backoff_max_ms``; metadata refreshes back off the same way, at least ``retry_backoff_ms`` apart).
The facade caps ``reconnect_backoff_max_ms``, unless the caller sets it, at the reconnect policy's longest
wait (:func:`.config.adapter_defaults`), so kafka-python tries at least as often as the policy probes, and
the client is CONNECTED within about the policy's delay of the broker coming back. A probe ends at once when
its producer is retired meanwhile (a retired producer answers nothing): the same attempt builds a new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

from kafka.net.compat import KafkaNetClient

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchResult, LossReporter

from .producer import Producer
from .records import RecordFuture
from .verify import LogReader, consumer_configs

__all__ = ["Bootstrap", "KafkaConnector", "KafkaSession", "Liveness", "liveness"]

log = logging.getLogger("resilientmq.kafka")

Bootstrap = tuple[str, ...]
"""The one endpoint: the bootstrap servers as given (the producer's configs carry them too)."""

# A producer that answers probes yet settles no batch through this many connections in a row is stuck
# (kafka-python 3.0.12 can stay without a producer id after resetting it): it is retired.
_STALLED_AFTER = 3


class Liveness(NamedTuple):
    """How long silence may last: a batch's answer (``confirm_timeout``) and a probe's (``probe_timeout``)."""

    confirm_timeout: float
    probe_timeout: float


def liveness(config: Mapping[str, Any]) -> Liveness:
    """The timeouts for a producer with ``config``, in seconds.

    A batch may linger ``linger_ms``, and kafka-python answers or times out a request within
    ``request_timeout_ms``; one second past both, the connection is taken for lost. A probe is one metadata
    request, which kafka-python may hold back for up to ``reconnect_backoff_max_ms`` after failures (at most
    the reconnect policy's longest wait, unless the caller set it).
    """
    request = config["request_timeout_ms"] / 1000
    confirm = request + config["linger_ms"] / 1000 + 1.0
    return Liveness(confirm, request + config["reconnect_backoff_max_ms"] / 1000 + 1.0)


class KafkaConnector:
    """Opens :class:`KafkaSession` objects on one kept kafka-python producer.

    ``configs`` are ``KafkaProducer``'s (serializers already applied at ``send()``), ``futures`` the callers'
    futures by message id, and ``on_build`` is told of every new kafka-python producer before it serves. Its
    :class:`~.verify.LogReader` (reaching the brokers with the same settings) looks up records acknowledged
    without an offset, for every producer.
    """

    def __init__(
        self,
        name: str,
        configs: dict[str, Any],
        futures: dict[str, RecordFuture],
        *,
        probe_timeout: float,
        on_build: Callable[[Any], None] | None = None,
    ) -> None:
        self.name = name
        self._configs = dict(configs)
        self._client_factory = self._configs.pop("kafka_client", None) or KafkaNetClient
        self._futures = futures
        self._probe_timeout = probe_timeout
        self._on_build = on_build
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._opening: _Opening | None = None  # the open() in progress, for cancel()
        self._settled_at_open = 0
        self._silent_opens = 0
        self._reader = LogReader(name, consumer_configs(self._configs, name))

    def open(self, endpoint: Bootstrap, epoch: int, lost: LossReporter) -> KafkaSession:
        """A session on the kept producer once a probe through it is answered, or on a new one."""
        with self._lock:
            self._opening = _Opening()
        try:
            return self._open(epoch, lost)
        finally:
            with self._lock:
                self._opening = None

    def _open(self, epoch: int, lost: LossReporter) -> KafkaSession:
        producer = self._producer
        if producer is not None and not producer.retired:
            producer.serve(lost)
            self._probe(producer)  # raises while the cluster does not answer; the producer stays
            if producer.retired:
                pass  # retired meanwhile (the broker lost its state, a delivery timeout): the probe ended
            elif self._stalled(producer):
                log.warning(
                    "%s: the kafka producer settled nothing through %d connections; building a new one",
                    self.name,
                    _STALLED_AFTER,
                )
                producer.retire(None)
            else:
                return KafkaSession(self.name, producer, epoch)
        if producer is not None:
            producer.dispose()  # its records have failed before the new producer sends them again
        producer = self._build(epoch)
        producer.serve(lost)
        self._probe(producer)
        if producer.retired:  # already: the next attempt builds another
            raise ConnectionLostError(f"{self.name}: the new kafka producer was retired while probing")
        return KafkaSession(self.name, producer, epoch)

    @property
    def producer(self) -> Any:
        """The kafka-python producer kept for the next connection (also between connections), or None."""
        producer = self._producer
        return None if producer is None or producer.retired else producer.kafka

    def cancel(self) -> None:
        """End the open() running in another thread (its build or its probe); it then raises. Closes
        nothing itself: kafka-python's loop belongs to the thread that built it."""
        with self._lock:
            opening = self._opening
            if opening is None:
                return
            opening.cancelled = True
            building, probing = opening.building, opening.probing
        if building is not None:
            Producer.cancel_build(building)
        probing.set()

    def close(self) -> None:
        """Retire the producer for good: what it still holds fails (and stays in a durable buffer)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.retire(None)
            producer.dispose()
        self._reader.close()

    def stats(self) -> dict[str, int]:
        """``verified``: records acknowledged without an offset and looked up; ``verified_missing``: of which
        the partition did not hold (they were sent again)."""
        return {"verified": self._reader.checked, "verified_missing": self._reader.missing}

    # -- helpers ------------------------------------------------------------------------------------
    def _build(self, epoch: int) -> Producer:
        def started(build: Any) -> None:
            with self._lock:
                opening = self._opening
                if opening is None:
                    return
                opening.building = build
                cancelled = opening.cancelled
            if cancelled:  # cancel() came before there was a build to cancel
                Producer.cancel_build(build)

        producer = Producer.build(
            self.name, self._configs, self._client_factory, epoch, self._futures, started, self._reader
        )
        self._producer = producer
        self._settled_at_open, self._silent_opens = 0, 0
        if self._on_build is not None:
            self._on_build(producer.kafka)
        return producer

    def _probe(self, producer: Producer) -> None:
        stop = threading.Event()  # set by the answer, or by cancel()
        with self._lock:
            if self._opening is not None:
                self._opening.probing = stop
                if self._opening.cancelled:
                    stop.set()
        producer.probe(self._probe_timeout, stop)

    def _stalled(self, producer: Producer) -> bool:
        """True when the producer held batches through ``_STALLED_AFTER`` answered probes without settling
        one (between two probes it had a whole ``confirm_timeout`` on a cluster that answers)."""
        settled = producer.settled
        quiet = producer.pending and settled == self._settled_at_open
        self._silent_opens = self._silent_opens + 1 if quiet else 0
        self._settled_at_open = settled
        return self._silent_opens >= _STALLED_AFTER


class _Opening:
    """One ``open()`` under way, as ``cancel()`` sees it (every field is guarded by the connector's lock)."""

    def __init__(self) -> None:
        self.cancelled = False
        self.building: Any = None
        self.probing = threading.Event()


class KafkaSession:
    """One supervisor connection (epoch) served by a kept :class:`~.producer.Producer`."""

    def __init__(self, name: str, producer: Producer, epoch: int) -> None:
        self.name = name
        self._producer = producer
        self._epoch = epoch

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def producer(self) -> Any:
        """The kafka-python producer, or None once it was retired."""
        return None if self._producer.retired else self._producer.kafka

    def carries(self, epoch: int) -> bool:
        """True when the batches transmitted on connection ``epoch`` are still held (and retried) by this
        session's kafka-python producer: they must not be sent again."""
        return not self._producer.retired and self._producer.first_epoch <= epoch <= self._epoch

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        """Hand ``batch`` to the producer; the future resolves when every record has an outcome."""
        return self._producer.transmit(batch)

    def partitions_for(self, topic: str) -> set[int]:
        """kafka-python's ``partitions_for``; its errors are raised as they are, for the caller to translate
        (a metadata timeout says nothing of the connection)."""
        producer = self.producer
        if producer is None:
            raise ConnectionLostError(
                f"{self.name}: the kafka producer of connection #{self._epoch} is retired"
            )
        partitions: set[int] = producer.partitions_for(topic)
        return partitions

    def expedite(self, timeout: float) -> bool:
        """Make what kafka-python holds back for ``linger_ms`` sendable now (its ``flush``), waiting up to
        ``timeout`` s. False when that flush raised (timed out, or the producer was retired under it)."""
        producer = self.producer
        if producer is None:
            return True  # retired: its records come back to the outbox, nothing lingers
        try:
            producer.flush(timeout)
        except Exception:
            return False
        return True

    def fence(self, error: BaseException) -> None:
        """Retire the producer now (its records fail and are sent again by a new one); reports the loss."""
        self._producer.retire(error)

    def close(self) -> None:
        """End this connection's share. The producer stays for the next connection unless it was retired."""
        if self._producer.retired:
            self._producer.dispose()
