"""The confluent-kafka adapter's Connector and Session.

librdkafka keeps its own connections and reconnects by itself, so a *session* here is not a connection: it
is one supervisor epoch's view of the current producer instance (:class:`~.pipeline.Pipeline`). Opening a
session is proving that the cluster answers (a metadata request on that instance); it ends when librdkafka
says every broker is down (``error_cb``: ``_ALL_BROKERS_DOWN``), when its instance dies, or when the outbox
hears nothing for too long. The instance outlives its sessions: :meth:`ConfluentConnector.open` builds a new
one only when the current one is dead (see :mod:`.pipeline` for when that is).

A new session on the same instance *carries* what earlier sessions handed over (:meth:`carries`): the
outbox leaves those batches in flight instead of handing them over again, and asks :meth:`delivered` which
unconfirmed messages an instance delivered meanwhile. Whatever is handed over again all the same (a batch
taken just before the outbox heard, or after an instance was replaced) goes through the
:class:`~.pipeline.Ledger` in :meth:`ConfluentSession.transmit`: a message an instance still holds is
waited for, one it delivered (or failed) recently is answered at once, and only the others are produced.
So an outage costs no copy of ours; and with one producer id, none of librdkafka's either.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from confluent_kafka import Message, Producer

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchResult, LossReporter

from .pipeline import Batch, Ledger, Pipeline
from .records import Outcome
from .settings import ProducerSettings
from .through import WriteThrough
from .verify import Verifier

__all__ = ["Bootstrap", "ConfluentConnector", "ConfluentSession"]

log = logging.getLogger("resilientmq.confluent")

Bootstrap = str
"""The one endpoint: ``bootstrap.servers`` as given (librdkafka fails over between those itself)."""

_PROBE_TIMEOUT = 5.0  # one connection attempt: how long the cluster gets to answer a metadata request
_RETIRED_JOIN = 10.0
_REPLAY_PAUSE = 0.05  # a new instance's queue is full of replayed messages: let it send some
_EPOCHS_KEPT = 64


class ConfluentConnector:
    """Opens :class:`ConfluentSession` objects on the current producer instance, building a new instance
    when the current one cannot go on. The first instance is built here, so that a configuration librdkafka
    refuses raises from the producer's constructor, as with ``confluent_kafka.Producer``."""

    def __init__(
        self, settings: ProducerSettings, ledger: Ledger, lane: WriteThrough, *, stall_timeout: float
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._ledger = ledger
        self._lane = lane
        self._stall_timeout = stall_timeout
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._numbers = itertools.count(1)
        self._retired: list[Pipeline] = []
        self._sasl: tuple[str, str] | None = None
        self._served: dict[int, Pipeline] = {}  # epoch -> the instance its session used
        self.verifier = Verifier(settings)
        self.instances = 0
        self.current = self._build()

    @property
    def producer(self) -> Producer:
        """The current librdkafka instance (for the calls that need one: metadata, cluster id)."""
        producer = self.current.producer
        if producer is None:  # retired a moment ago: the next one is being built
            raise ConnectionLostError(f"{self.name}: no producer instance at the moment")
        return producer

    def open(self, endpoint: Bootstrap, epoch: int, lost: LossReporter) -> ConfluentSession:
        """A session on the current instance (a new one if it is dead) once the cluster answers."""
        self._cancelled.clear()
        with self._lock:
            pipeline = self.current
            if pipeline.dead is not None or pipeline.retiring:
                self._retire(pipeline)
                pipeline = self.current = self._build()
        self._replay(pipeline)
        timeout = min(_PROBE_TIMEOUT, max(1.0, self._settings.socket_timeout))
        if not pipeline.answers(timeout, self._cancelled):
            if pipeline.auth_failure is not None:
                raise pipeline.auth_failure
            if self._cancelled.is_set():
                raise ConnectionLostError(f"{self.name}: connecting was cancelled")
            raise ConnectionLostError(f"{self.name}: no broker of {endpoint!r} answered within {timeout:g} s")
        pipeline.lost = lost
        # Again: what came back while the cluster was asked. Whatever comes back from now on is reported
        # through ``lost``, and the session after this one produces it.
        self._replay(pipeline)
        self._served[epoch] = pipeline
        while len(self._served) > _EPOCHS_KEPT:
            del self._served[min(self._served)]
        return ConfluentSession(self.name, pipeline, epoch, self._ledger, self._served)

    def cancel(self) -> None:
        self._cancelled.set()

    def _replay(self, pipeline: Pipeline) -> None:
        """Before anything the outbox holds: produce on ``pipeline`` what retired instances gave back of the
        messages handed to them directly (they wait for those to come back first)."""
        lane = self._lane
        for retired in self._retired:
            if not self._cancelled.is_set():
                retired.join(_RETIRED_JOIN)
        while not lane.replay(pipeline, pipeline.direct, pipeline.producer.produce):
            if pipeline.dead is not None or pipeline.retiring:
                raise ConnectionLostError(f"{self.name}: the producer instance died while producing again")
            if self._cancelled.wait(_REPLAY_PAUSE):
                raise ConnectionLostError(f"{self.name}: connecting was cancelled")

    def holds(self, seq: int) -> bool:
        """Whether the current instance holds the outbox's message ``seq`` undelivered."""
        return self.current.holds(seq)

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """For the current instance and every later one."""
        self._sasl = (username, password)
        producer = self.current.producer
        if producer is not None:
            producer.set_sasl_credentials(username, password)

    def close(self) -> None:
        """Retire every instance (what they hold stays in the outbox) and wait for their threads."""
        self._cancelled.set()
        with self._lock:
            self._retire(self.current)
            retired = list(self._retired)
        for pipeline in retired:
            pipeline.join(_RETIRED_JOIN)
        self.verifier.close()

    def stats(self) -> dict[str, int]:
        return {
            "instances": self.instances,
            "verified": self.verifier.checked,
            "verified_missing": self.verifier.missing,
        }

    def _build(self) -> Pipeline:
        pipeline = Pipeline(
            next(self._numbers),
            self._settings,
            self._ledger,
            self.verifier,
            self._lane,
            stall_timeout=self._stall_timeout,
        )
        if self._sasl is not None:
            pipeline.producer.set_sasl_credentials(*self._sasl)
        self._lane.attach(pipeline, pipeline.direct, pipeline.producer.produce)
        self.instances += 1
        return pipeline

    def _retire(self, pipeline: Pipeline) -> None:
        pipeline.retire()
        self._retired = [p for p in self._retired if not p.join(0)]
        self._retired.append(pipeline)


class ConfluentSession:
    """One supervisor epoch on one producer instance."""

    def __init__(
        self, name: str, pipeline: Pipeline, epoch: int, ledger: Ledger, served: dict[int, Pipeline]
    ) -> None:
        self.name = name
        self.pipeline = pipeline
        self._epoch = epoch
        self._ledger = ledger
        self._served = served
        self._closed = False

    @property
    def epoch(self) -> int:
        return self._epoch

    def carries(self, epoch: int) -> bool:
        """True when the batches handed over on connection ``epoch`` went to this session's instance, which
        still holds them and retries them itself (the outbox then keeps them in flight, not sending them
        again). An instance being retired hands its batches back as retriable instead."""
        pipeline = self.pipeline
        return self._served.get(epoch) is pipeline and pipeline.dead is None and not pipeline.retiring

    def delivered(self, seqs: Sequence[int]) -> list[int]:
        """Of these unconfirmed messages, those an instance of ours delivered already (its report came in
        after the outbox last looked): confirmed without being produced again."""
        wanted = set(seqs)
        known = []
        for batch in self._ledger.recent():  # one pass over what is kept, not one search per message
            if batch.done:
                for envelope, outcome in zip(batch.envelopes, batch.outcomes, strict=True):
                    if envelope.seq in wanted and isinstance(outcome, Message):
                        known.append(envelope.seq)
        return known

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        """Hand ``batch`` to the instance, or wait for the instance that already holds its messages."""
        pipeline = self.pipeline
        if self._closed or pipeline.dead is not None or pipeline.retiring:
            raise ConnectionLostError(f"{self.name}: the producer instance of session #{self._epoch} is gone")
        ledger = self._ledger
        with ledger.guard:
            if batch[0].seq > ledger.highest and not ledger.purged:
                return pipeline.send(batch).future  # the common case: all new
            try:
                return self._again(batch)
            finally:
                # Only a batch taken from the outbox before a purge() can hold purged messages: this one.
                ledger.purged.clear()

    def _again(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        """Some of ``batch`` may have been handed over before (to this or an earlier session)."""
        ledger = self._ledger
        sources: list[tuple[Batch, int] | Outcome | Message | None] = []
        fresh: list[Envelope] = []
        for envelope in batch:
            if envelope.seq in ledger.purged:
                ledger.purged.discard(envelope.seq)  # reported by purge() already
                sources.append(Outcome(Outcome.PURGED, None))
                continue
            found = ledger.find(envelope.seq) if envelope.seq <= ledger.highest else None
            source = _reusable(found, self.pipeline)
            if source is None:
                fresh.append(envelope)
            sources.append(source)
        produced = self.pipeline.send(fresh) if fresh else None
        return _Link(ledger, batch, sources, produced).future

    def close(self) -> None:
        """The epoch is over; the instance lives on (the connector decides when it ends)."""
        self._closed = True
        if self.pipeline.lost is not None and not self.pipeline.retiring:
            self.pipeline.lost = None


def _reusable(
    found: tuple[Batch, int] | None, pipeline: Pipeline
) -> tuple[Batch, int] | Outcome | Message | None:
    """What a message handed over before stands for now: its final outcome, the batch to wait for, or None
    (produce it again: never handed over, not delivered, or held by an instance that is being retired —
    waiting for that one would only bring it back later, behind messages produced meanwhile)."""
    if found is None:
        return None
    earlier, i = found
    outcome = earlier.outcomes[i]
    if earlier.done:
        if isinstance(outcome, Message):
            return outcome
        if isinstance(outcome, Outcome) and outcome.kind in (Outcome.FAILED, Outcome.PURGED):
            return outcome
        return None
    if earlier.pipeline is not pipeline or earlier.pipeline.retiring:
        return None
    return found


class _Link:
    """The outcome of a re-sent batch, assembled from the batches that hold its messages."""

    def __init__(
        self,
        ledger: Ledger,
        envelopes: Sequence[Envelope],
        sources: list[tuple[Batch, int] | Outcome | Message | None],
        produced: Batch | None,
    ) -> None:
        self._envelopes = envelopes
        self._sources = sources
        self._produced = produced
        self._index = 0  # position in ``produced`` of the next fresh message
        self._lock = threading.Lock()
        self.future: Future[BatchResult] = Future()
        waiting = {id(s[0]): s[0] for s in sources if isinstance(s, tuple)}
        if produced is not None:
            waiting[id(produced)] = produced
        self._waiting = set(waiting)
        if not waiting:
            self.future.set_result(self._result())  # every outcome is known already
        for batch in list(waiting.values()):
            if not ledger.observe(batch, self._done):
                self._done(batch)

    def _done(self, batch: Batch) -> None:
        with self._lock:
            self._waiting.discard(id(batch))
            if self._waiting or self.future.done():
                return
        self.future.set_result(self._result())

    def _result(self) -> BatchResult:
        failed: dict[int, BaseException] = {}
        retry: dict[int, BaseException] = {}
        fresh = iter(self._produced.outcomes if self._produced is not None else ())
        for envelope, source in zip(self._envelopes, self._sources, strict=True):
            outcome: Any
            if source is None:
                outcome = next(fresh)
            elif isinstance(source, tuple):
                outcome = source[0].outcomes[source[1]]
            else:
                outcome = source
            if isinstance(outcome, Outcome):
                if outcome.kind == Outcome.FAILED and outcome.error is not None:
                    failed[envelope.seq] = outcome.error
                elif outcome.kind == Outcome.RETRY and outcome.error is not None:
                    retry[envelope.seq] = outcome.error
        return BatchResult(failed, retry)
