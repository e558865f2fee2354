"""One librdkafka producer instance — so one idempotent producer id — and what it holds.

A :class:`Pipeline` lives for as long as the broker keeps its producer's state, across any number of
sessions: a broken connection, a refused port or a silent partition is librdkafka's to retry, with the same
sequence numbers, and the broker drops the copies it already has. It ends (and a new one is built) only when
its instance cannot go on: a fatal error, the broker lost the producer's state (the statistics show the
producer epoch move, which librdkafka does after UNKNOWN_PRODUCER_ID or a sequence gap), or no delivery for
``stall_timeout`` while the cluster answers. Its messages then come back to the outbox as retriable and
are produced again on the next instance.

librdkafka calls back only from inside ``poll()``. Whoever polls an instance holds its poll lock — the
user's ``poll()``/``flush()`` on their thread (so the user's callbacks of direct messages run there, as
confluent-kafka runs them), or, while the user does not poll, the pipeline's own thread — so every delivery
report is booked by one thread at a time (:class:`Batch`, :class:`~.through.DirectReports`) with no lock per
message. The user's callbacks for what our thread served are queued for the user's ``poll()``/``flush()``
(:mod:`.reports`).

The :class:`Ledger` is shared by the pipelines of one producer: which buffered message (by its outbox
sequence number) an instance holds, and how it fared. The outbox sends every unconfirmed message again on a
new session; the ledger turns that into waiting for the instance that already has it, so nothing is produced
twice by us.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import AuthenticationError, ConnectionLostError, ResilientMQError
from resilientmq.core.session import BatchResult, LossReporter

from .errors import LocalCode, translate_kafka_error
from .records import PARTITION_UA, DeliveryCallback, Outcome, envelope_of, produce_args, synthetic_message
from .reports import Event, UserEvents
from .settings import ProducerSettings
from .through import DirectReports, WriteThrough
from .verify import Verifier, Wanted

__all__ = ["Batch", "Ledger", "Pipeline"]

log = logging.getLogger("resilientmq.confluent")

_POLL = 0.05  # the polling thread's wait for an event; close() and retirement wait at most this long
_USER_DRIVES = 0.05  # while the user's poll()/flush() serve librdkafka, the polling thread looks this often
# A user's poll(0) within this long of the previous one leaves librdkafka be: what it has now waits for the
# next call (poll(0) after every produce() would otherwise cost more than the produce()).
_POLL_GAP = 0.0005
_RETIRE_HOLD = 60.0  # how long a retired instance may take to give back the direct messages it holds
_EXPEDITE = 0.05  # flush() slices while a user's flush() waits: librdkafka ships lingering batches at once
_RETIRE_GRACE = 5.0  # how long a retired instance gets to hand back what it holds
_RECENT_BATCHES = (
    64  # completed batches kept so that a message re-sent on a new session is not produced twice
)
_VERIFY_RETRY = 1.0
_EMPTY_RESULT = BatchResult()
_DOWN = re.compile(r"(\d+)/(\d+) brokers are down")
_monotonic = time.monotonic
_get_ident = threading.get_ident


class Batch:
    """The messages of one hand-over to one instance; its future resolves once each has an outcome."""

    __slots__ = (
        "done",
        "envelopes",
        "future",
        "irregular",
        "left",
        "observers",
        "outcomes",
        "pipeline",
        "seqs",
    )

    def __init__(self, pipeline: Pipeline, envelopes: Sequence[Envelope]) -> None:
        self.pipeline = pipeline
        self.envelopes = envelopes
        self.outcomes: list[Message | Outcome | None] = [None] * len(envelopes)
        self.left = len(envelopes)
        self.irregular = False  # some outcome is not a plain delivery
        self.done = False
        self.observers: list[Callable[[Batch], None]] = []
        self.future: Future[BatchResult] = Future()
        self.seqs: list[int] | None = None

    def delivered(self, i: int, error: KafkaError | None, message: Message) -> None:
        """librdkafka's delivery report for message ``i`` (on the polling thread)."""
        pipeline = self.pipeline
        if error is None:
            offset = message.offset()
            if (offset is None or pipeline.run is not None) and pipeline.suspect(self, i, message, offset):
                return  # held until the log is read
            self.outcomes[i] = message
        else:
            self.outcomes[i] = pipeline.judge(error, message)
            self.irregular = True
        self.left -= 1
        if not self.left:
            pipeline.complete(self)

    def settle(self, i: int, outcome: Message | Outcome) -> None:
        """An outcome learnt other than by a delivery report (on the polling thread)."""
        if self.outcomes[i] is not None and not _is_suspect(self.outcomes[i]):
            return
        self.outcomes[i] = outcome
        if not isinstance(outcome, Message):
            self.irregular = True
        self.left -= 1
        if not self.left:
            self.pipeline.complete(self)

    def index_of(self, seq: int) -> int | None:
        if self.seqs is None:
            self.seqs = [e.seq for e in self.envelopes]
        seqs = self.seqs
        lo, hi = 0, len(seqs)
        while lo < hi:
            mid = (lo + hi) // 2
            if seqs[mid] < seq:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(seqs) and seqs[lo] == seq else None


class _Doubt(Batch):
    """A direct message acknowledged as a duplicate without an offset, held as a batch of one (what the
    look-up in the log works on) until the log says whether it is there."""

    __slots__ = ("_callback", "_message", "_reports", "_seq")

    def __init__(
        self,
        pipeline: Pipeline,
        reports: DirectReports,
        message: Message,
        callback: DeliveryCallback | None,
        seq: int,
    ) -> None:
        super().__init__(pipeline, [envelope_of(message)])
        self._reports = reports
        self._message = message
        self._callback = callback
        self._seq = seq

    def settle(self, i: int, outcome: Message | Outcome) -> None:
        if self.done:
            return
        self.done = True
        self.pipeline.forget(self)
        found = outcome if isinstance(outcome, Message) else None
        self._reports.resolved(found, self._message, self._callback, self._seq)


def _is_suspect(outcome: Message | Outcome | None) -> bool:
    return isinstance(outcome, Outcome) and outcome.kind == Outcome.SUSPECT


class Ledger:
    """What the instances of one producer hold, by outbox sequence number; shared by its pipelines.

    ``guard`` is held for a whole hand-over and a whole ``purge()``, so a purge never misses a message
    being handed over. ``callbacks`` maps message ids to the user's per-message delivery callbacks.
    """

    def __init__(self, settings: ProducerSettings, events: UserEvents) -> None:
        self.settings = settings
        self.events = events
        self.callbacks: dict[str, DeliveryCallback] = {}
        self.default_callback: DeliveryCallback | None = settings.on_delivery
        self.settled_ids: set[str] = set()  # reported already (dropped by drop_oldest): never again
        self.purged: set[int] = set()  # removed from the outbox by purge(): never handed over
        self.guard = threading.RLock()
        self._lock = threading.Lock()
        self._batches: deque[Batch] = deque()  # live and recently completed, oldest first
        self.highest = 0  # the highest sequence number ever handed over

    def add(self, batch: Batch) -> None:
        with self._lock:
            self._batches.append(batch)
            last = batch.envelopes[-1].seq
            self.highest = max(self.highest, last)

    def completed(self, batch: Batch) -> list[Callable[[Batch], None]]:
        """Mark ``batch`` done; returns who was waiting for it."""
        with self._lock:
            batch.done = True
            observers, batch.observers = batch.observers, []
            batches = self._batches
            while len(batches) > _RECENT_BATCHES and batches[0].done:
                batches.popleft()
            return observers

    def find(self, seq: int) -> tuple[Batch, int] | None:
        """The newest batch holding ``seq`` (live, or completed recently), and its index there."""
        with self._lock:
            for batch in reversed(self._batches):
                envelopes = batch.envelopes
                if envelopes[0].seq <= seq <= envelopes[-1].seq:
                    i = batch.index_of(seq)
                    if i is not None:
                        return batch, i
        return None

    def observe(self, batch: Batch, observer: Callable[[Batch], None]) -> bool:
        """Call ``observer`` when ``batch`` completes; False (and no call) if it has already."""
        with self._lock:
            if batch.done:
                return False
            batch.observers.append(observer)
            return True

    def recent(self) -> list[Batch]:
        with self._lock:
            return list(self._batches)

    def report(self, batch: Batch) -> BatchResult:
        """The user's delivery reports for a completed batch (queued for their ``poll()``), and the outbox's
        result."""
        callbacks = self.callbacks
        default = self.default_callback
        if not batch.irregular and not callbacks and default is None:
            self.events.reports([], 0 if self.settings.only_errors else len(batch.envelopes))
            return _EMPTY_RESULT
        events: list[Event] = []
        silent = 0
        failed: dict[int, BaseException] = {}
        retry: dict[int, BaseException] = {}
        only_errors = self.settings.only_errors
        settled = self.settled_ids
        for envelope, outcome in zip(batch.envelopes, batch.outcomes, strict=True):
            error: KafkaError | None = None
            message = outcome
            if isinstance(outcome, Outcome):
                if outcome.kind == Outcome.RETRY:
                    assert outcome.error is not None
                    retry[envelope.seq] = outcome.error
                    continue
                if outcome.kind == Outcome.FAILED:
                    assert outcome.error is not None
                    failed[envelope.seq] = outcome.error
                error, message = outcome.kafka_error, outcome.message
            if settled and envelope.id in settled:
                settled.discard(envelope.id)
                continue
            callback = callbacks.pop(envelope.id, default) if (callbacks or default is not None) else None
            if error is None and only_errors:
                continue
            if callback is None:
                silent += 1
            else:
                events.append((callback, (error, message), 1))
        self.events.reports(events, silent)
        return BatchResult(failed, retry) if failed or retry else _EMPTY_RESULT


class Pipeline:
    """One librdkafka producer instance, polled by a thread of its own."""

    def __init__(
        self,
        number: int,
        settings: ProducerSettings,
        ledger: Ledger,
        verifier: Verifier,
        lane: WriteThrough,
        *,
        stall_timeout: float,
    ) -> None:
        self.number = number
        self.name = f"{settings.name}#{number}"
        self._settings = settings
        self._ledger = ledger
        self._events = ledger.events
        self._verifier = verifier
        self._stall_timeout = stall_timeout
        self.lost: LossReporter | None = None  # the live session's: how this instance reports an outage
        self.dead: ResilientMQError | None = None  # why this instance can go on no longer
        self.auth_failure: AuthenticationError | None = None
        self.run: list[int] | None = None  # [partition, next bogus offset] of a duplicate acknowledged
        self.retiring = False
        self._expedite_until = 0.0  # while a user's flush() waits, librdkafka ships what lingers at once
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._suspects: list[tuple[Batch, int, Message]] = []
        self._live: set[Batch] = set()
        self._live_lock = threading.Lock()
        self._identity: tuple[int, int] | None = None  # (producer id, epoch) once assigned
        self._progress_at = time.monotonic()
        self._pending_seen = 0
        self._stopped = threading.Event()
        self._wake = threading.Event()  # never set: the polling thread's pause while the user polls
        self._lane = lane
        self._doubts: set[_Doubt] = set()
        # Whoever serves librdkafka's callbacks (the user's poll()/flush(), or our thread) holds this lock:
        # every report is booked by one thread at a time, and the user's callbacks keep their order.
        self.poll_lock = threading.Lock()
        self.user_until = 0.0  # the user's poll()/flush() serve librdkafka (time.monotonic()) until then
        self.quiet_until = 0.0  # a user's poll(0) before then leaves librdkafka be (see _POLL_GAP)
        self.driver = 0  # the thread serving librdkafka for the user (inside a delivery callback, maybe)
        self.producer = Producer(
            settings.instance_config(
                error_cb=self._on_error, stats_cb=self._on_stats, throttle_cb=self._on_throttle
            )
        )
        self.direct = DirectReports(lane, self)
        self._acquire, self._release = self.poll_lock.acquire, self.poll_lock.release
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-poll", daemon=True)
        self._thread.start()

    # -- handing over (the outbox's sender thread) ---------------------------------------------------
    def send(self, envelopes: Sequence[Envelope]) -> Batch:
        """Produce ``envelopes`` in order; the batch's future resolves when each has an outcome."""
        producer = self.producer
        if producer is None or self.retiring:
            raise ConnectionLostError(f"{self.name}: the producer instance was retired")
        batch = Batch(self, envelopes)
        with self._live_lock:
            self._live.add(batch)
        self._ledger.add(batch)
        produce = producer.produce
        report = batch.delivered
        for i, envelope in enumerate(envelopes):
            if self.dead is not None:
                self.call_soon(partial(batch.settle, i, Outcome(Outcome.RETRY, self.dead)))
                continue
            while True:
                try:
                    # Positional: librdkafka's produce(topic, value, key, partition, callback, on_delivery,
                    # timestamp, headers) parses them faster than keywords, and this runs per message.
                    if envelope.headers:
                        a = produce_args(envelope)
                        produce(
                            a.topic,
                            a.value,
                            a.key,
                            a.partition,
                            partial(report, i),
                            None,
                            a.timestamp,
                            a.headers,
                        )
                    else:
                        produce(
                            envelope.destination,
                            envelope.body,
                            None,
                            PARTITION_UA,
                            partial(report, i),
                            None,
                            int(envelope.created_at * 1000),
                        )
                    break
                except BufferError:
                    # librdkafka's own queue is full (a small queue.buffering.max.*): wait for reports.
                    if self._stopped.wait(_POLL) or self.dead is not None:
                        self.call_soon(
                            partial(batch.settle, i, Outcome(Outcome.RETRY, ConnectionLostError("retired")))
                        )
                        break
                except KafkaException as exc:
                    self._refused(batch, i, exc)
                    break
        return batch

    def _refused(self, batch: Batch, i: int, exc: KafkaException) -> None:
        """``produce()`` raised: the message is refused for good, or the instance is dead."""
        error = (
            exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(LocalCode.FATAL)
        )
        outcome = self.judge(error, None, envelope=batch.envelopes[i])
        if error.code() == LocalCode.FATAL or error.fatal():
            self.die(translate_kafka_error(exc))
        self.call_soon(partial(batch.settle, i, outcome))

    # -- judging outcomes (the polling thread) -------------------------------------------------------
    def judge(self, error: KafkaError, message: Message | None, envelope: Envelope | None = None) -> Outcome:
        """The outcome of a failed delivery report (or a refused ``produce()``)."""
        code = error.code()
        if code in (LocalCode.PURGE_QUEUE, LocalCode.PURGE_INFLIGHT) and not self.retiring:
            return Outcome(Outcome.PURGED, None, error, message)  # the user's purge(): final
        ours = translate_kafka_error(error)
        if ours.retriable:
            return Outcome(Outcome.RETRY, ours)
        if message is None and envelope is not None:
            message = synthetic_message(envelope, error)
        log.error(
            "%s: message to %s failed for good: %s", self.name, message.topic() if message else "?", ours
        )
        return Outcome(Outcome.FAILED, ours, error, message)

    def suspect(self, batch: Batch, i: int, message: Message, offset: int | None) -> bool:
        """A delivery without an offset, or one in the run that follows it: the broker answered a retried
        batch as a duplicate. True when the message is held for a look-up in the log."""
        partition = message.partition()
        run = self.run
        if offset is None:
            self.run = [partition if partition is not None else -1, 0]
        elif run is not None and run[0] == partition and run[1] == offset:
            run[1] += 1
        else:
            self.run = None
            self.direct.doubting = False
            return False
        self.direct.doubting = True
        batch.outcomes[i] = Outcome(Outcome.SUSPECT, None, None, message)
        batch.irregular = True
        self._suspects.append((batch, i, message))
        return True

    def doubt(
        self, reports: DirectReports, message: Message, callback: DeliveryCallback | None, seq: int
    ) -> bool:
        """A direct message's delivery that :meth:`suspect` may hold for a look-up in the log."""
        held = _Doubt(self, reports, message, callback, seq)
        if not self.suspect(held, 0, message, message.offset()):
            return False
        self._doubts.add(held)
        return True

    def gave_back(self) -> None:
        """A direct message came back undelivered (it is carried): unless this instance is being replaced
        anyway, the connection starts again, and the next session produces it before anything else."""
        if not self.retiring and self.dead is None:
            self._report(
                ConnectionLostError(f"{self.name}: messages came back undelivered; producing them again")
            )

    def forget(self, doubt: _Doubt) -> None:
        self._doubts.discard(doubt)

    def complete(self, batch: Batch) -> None:
        with self._live_lock:
            self._live.discard(batch)
        result = self._ledger.report(batch)
        observers = self._ledger.completed(batch)
        batch.future.set_result(result)
        for observer in observers:
            try:
                observer(batch)
            except Exception:
                log.exception("%s: a batch observer raised", self.name)

    # -- librdkafka's callbacks (the polling thread) -------------------------------------------------
    def _on_error(self, error: KafkaError) -> None:
        code = error.code()
        if error.fatal():
            self.die(translate_kafka_error(error))
            # The user's object goes on (on a new instance): tell them, but not that it is fatal.
            error = KafkaError(
                code, f"{error.str()} (resilientmq replaced the producer instance)", fatal=False
            )
        elif code == LocalCode.ALL_BROKERS_DOWN and _all_down(error.str()):
            self._report(ConnectionLostError(f"kafka: {error.str()}"))
        elif code in (LocalCode.AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            failure = translate_kafka_error(error)
            if isinstance(failure, AuthenticationError):
                self.auth_failure = failure
            self._report(failure)
        if self._settings.error_cb is not None:
            self._events.call(self._settings.error_cb, error)

    def _on_stats(self, stats: str) -> None:
        try:
            eos = json.loads(stats).get("eos") or {}
        except ValueError:
            eos = {}
        if self._settings.idempotent and eos.get("idemp_state") == "Assigned":
            identity = (int(eos.get("producer_id", -1)), int(eos.get("producer_epoch", -1)))
            if self._identity is None:
                self._identity = identity
            elif identity != self._identity and not self.retiring:
                self.die(
                    ConnectionLostError(
                        f"the broker lost this producer's state (producer id/epoch {self._identity} "
                        f"became {identity})"
                    )
                )
        if self._settings.forward_stats and self._settings.stats_cb is not None:
            self._events.call(self._settings.stats_cb, stats)

    def _on_throttle(self, event: Any) -> None:
        if self._settings.throttle_cb is not None:
            self._events.call(self._settings.throttle_cb, event)

    # -- the polling thread --------------------------------------------------------------------------
    def _run(self) -> None:
        producer = self.producer
        direct = self.direct
        retire_by: float | None = None
        while True:
            if time.monotonic() < self.user_until + _USER_DRIVES and not self.retiring:
                # The user's poll()/flush() serve librdkafka on their own thread (as with confluent-kafka):
                # keep off the GIL (and off the lock, which a thread waiting for the GIL would hold).
                self._wake.wait(_USER_DRIVES)
                if not self._tasks.empty() or self._suspects or direct.kept:
                    with self.poll_lock:
                        direct.account()  # recovery copies of what was delivered: no longer than this
                        self._upkeep()
                elif not self.retiring:
                    self._watch()
                continue
            with self.poll_lock:
                direct.ours = True
                try:
                    self._serve(producer)
                finally:
                    direct.ours = False
                direct.account()
                self._upkeep()
                if self.retiring:
                    retire_by = retire_by or time.monotonic() + _RETIRE_GRACE
                    if self._retired(producer, retire_by):
                        self._abandon()
                        direct.account()
                        break
        self._stopped.set()
        self.producer = None  # type: ignore[assignment]  # the instance is destroyed with its last reference
        del producer

    def _serve(self, producer: Producer) -> None:
        try:
            if self._expedite_until > time.monotonic() and not self.retiring:
                producer.flush(_EXPEDITE)
            else:
                producer.poll(_POLL)
        except KafkaException as exc:
            self._raised(exc)
        except Exception:
            log.exception("%s: serving librdkafka's callbacks raised", self.name)

    def _raised(self, exc: KafkaException) -> None:
        # confluent-kafka raises a fatal error from poll() rather than handing it to error_cb.
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.fatal():
            self._on_error(error)
        else:
            log.error("%s: serving librdkafka's callbacks raised %s", self.name, exc)

    def _upkeep(self) -> None:
        self._run_tasks()
        if self._suspects:
            self._verify(self._suspects)
            self._suspects = []
        if not self.retiring:
            self._watch()

    def _retired(self, producer: Producer, retire_by: float) -> bool:
        """Whether a retired instance has given back what it held (or has had time enough)."""
        if not self._live_batches() and not self._doubts and len(producer) == 0:
            return True
        now = time.monotonic()
        if self._lane.held(self.direct) and now < retire_by + _RETIRE_HOLD:
            return False  # direct messages live nowhere else: wait for librdkafka to give them back
        return now > retire_by

    # -- the user's thread ---------------------------------------------------------------------------
    def drive_poll(self, timeout: float) -> int:
        """The user's ``poll()``: serve librdkafka's callbacks on this thread for up to ``timeout`` s, so that
        the user's callbacks of direct messages run right here, as confluent-kafka runs them. Returns how
        many events it served for the user; -1 when another thread is serving (the user's callbacks are
        queued for them then)."""
        now = _monotonic()
        self.user_until = now + timeout
        self.quiet_until = now + _POLL_GAP
        producer = self.producer
        if producer is None or not self._acquire(False):
            return -1
        direct = self.direct
        self.driver = _get_ident()
        try:
            before = direct.done
            try:
                served = producer.poll(timeout)
            except KafkaException as exc:
                self._raised(exc)
                served = 0
            if direct.done == before:
                return 0
            direct.account(batch=True)
            return served
        finally:
            self.driver = 0
            self._release()

    def drive_flush(self, timeout: float) -> int:
        """The user's ``flush()``: as :meth:`drive_poll`, with librdkafka's flush (lingering batches go out
        at once). Returns what librdkafka still holds, or -1 when another thread is serving."""
        self.user_until = _monotonic() + timeout
        producer = self.producer
        if producer is None or not self._acquire(False):
            return -1
        self.driver = _get_ident()
        try:
            try:
                return int(producer.flush(timeout))
            except KafkaException as exc:
                self._raised(exc)
                return len(producer)
            finally:
                self.direct.account()
        finally:
            self.driver = 0
            self._release()

    def serve(self, timeout: float) -> bool:
        """Serve librdkafka's callbacks on this thread, queueing the user's (for a ``produce()`` that waits
        for room, which must not run them); False when another thread is serving."""
        producer = self.producer
        if producer is None or not self._acquire(False):
            return False
        direct = self.direct
        try:
            direct.ours = True
            try:
                producer.poll(timeout)
            except KafkaException as exc:
                self._raised(exc)
            finally:
                direct.ours = False
            direct.account()
            return True
        finally:
            self._release()

    def _run_tasks(self) -> None:
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return
            try:
                task()
            except Exception:
                log.exception("%s: a bookkeeping task raised", self.name)

    def call_soon(self, task: Callable[[], None]) -> None:
        """Run ``task`` on the polling thread (where every batch is booked)."""
        self._tasks.put(task)

    def _live_batches(self) -> list[Batch]:
        with self._live_lock:
            return list(self._live)

    def _watch(self) -> None:
        """No delivery for ``stall_timeout`` while messages wait: an outage, or a stuck instance."""
        live = self._live_batches()
        now = time.monotonic()
        pending = sum(b.left for b in live) + self._lane.held(self.direct)
        if pending != self._pending_seen or not pending:
            self._pending_seen = pending
            self._progress_at = now
            return
        if now - self._progress_at < self._stall_timeout or self.dead is not None:
            return
        self._progress_at = now  # look again one stall_timeout later
        if self.answers(min(5.0, self._stall_timeout)):
            self.die(
                ConnectionLostError(
                    f"no delivery for {self._stall_timeout:g} s while the cluster answers: "
                    "replacing the producer instance"
                )
            )
        else:
            self._report(
                ConnectionLostError(f"no delivery for {self._stall_timeout:g} s and no broker answers")
            )

    def _abandon(self) -> None:
        """The end of a retired instance: whatever it still holds is produced again elsewhere."""
        reason = self.dead or ConnectionLostError(f"{self.name}: the producer instance was retired")
        for doubt in list(self._doubts):
            doubt.settle(0, Outcome(Outcome.RETRY, reason))
        for batch in self._live_batches():
            for i, outcome in enumerate(batch.outcomes):
                if outcome is None or _is_suspect(outcome):
                    batch.settle(i, Outcome(Outcome.RETRY, reason))

    # -- looking up duplicates acknowledged without an offset -----------------------------------------
    def _verify(self, suspects: list[tuple[Batch, int, Message]]) -> None:
        groups: dict[tuple[str, int], list[tuple[Batch, int, Message]]] = {}
        for item in suspects:
            message = item[2]
            groups.setdefault((message.topic() or "", message.partition() or 0), []).append(item)
        for (topic, partition), items in groups.items():
            start = self._last_offset(partition, topic, items[0][0], items[0][1])
            wanted: list[Wanted] = []
            for batch, i, _ in items:
                args = produce_args(batch.envelopes[i])
                wanted.append((args.key, args.value, args.timestamp))
            log.warning(
                "%s: %d message(s) to %s [%d] were acknowledged as duplicates without an offset; reading the "
                "log from offset %s to see whether they are there",
                self.name,
                len(items),
                topic,
                partition,
                start,
            )
            self._verifier.submit(topic, partition, start, wanted, partial(self._verdict_soon, items, topic))

    def _verdict_soon(
        self, items: list[tuple[Batch, int, Message]], topic: str, found: list[Message | None] | None
    ) -> None:
        self.call_soon(partial(self._verdict, items, topic, found))

    def _verdict(
        self, items: list[tuple[Batch, int, Message]], topic: str, found: list[Message | None] | None
    ) -> None:
        if found is None:
            if self.retiring:
                return  # _abandon() settles them
            # The log could not be read (an outage): ask again shortly, from the polling thread.
            timer = threading.Timer(_VERIFY_RETRY, self.call_soon, (partial(self._verify, items),))
            timer.daemon = True
            timer.start()
            return
        missing = 0
        for (batch, i, _), message in zip(items, found, strict=True):
            if message is None:
                missing += 1
                batch.settle(
                    i,
                    Outcome(
                        Outcome.RETRY,
                        ConnectionLostError("acknowledged as a duplicate, but not in the partition's log"),
                    ),
                )
            else:
                batch.settle(i, message)
        if missing:
            log.warning(
                "%s: %d of %d message(s) to %s acknowledged as duplicates were not in the log: producing "
                "them again",
                self.name,
                missing,
                len(items),
                topic,
            )

    def _last_offset(self, partition: int, topic: str, batch: Batch, index: int) -> int | None:
        """The offset after the last message of ours known to be in this partition before ``batch[index]``:
        where a message acknowledged as a duplicate must be, if it is anywhere."""
        # Only messages produced before it count: later ones may have been reported already, further on.
        recent = self._ledger.recent()
        earlier = recent[: recent.index(batch)] if batch in recent else []
        for outcomes in (batch.outcomes[:index], *(b.outcomes for b in reversed(earlier))):
            for outcome in reversed(outcomes):
                offset = _offset_in(outcome, topic, partition)
                if offset is not None:
                    return offset + 1
        return None

    def expedite(self) -> None:
        """A user's ``flush()`` is waiting: for a moment, poll with librdkafka's flush (which sends batches
        held back by ``linger.ms`` at once)."""
        self._expedite_until = time.monotonic() + 2 * _POLL

    def holds(self, seq: int) -> bool:
        """Whether this (live) instance holds the outbox's message ``seq`` and has no outcome for it yet."""
        found = self._ledger.find(seq)
        if found is None or self.retiring:
            return False
        batch, i = found
        return batch.pipeline is self and not batch.done and batch.outcomes[i] is None

    # -- the instance's health ------------------------------------------------------------------------
    def answers(self, timeout: float, cancelled: threading.Event | None = None) -> bool:
        """Whether the cluster answers a metadata request within ``timeout`` (in slices, so that
        ``cancelled`` ends the wait early)."""
        deadline = time.monotonic() + timeout
        producer = self.producer
        pause = cancelled or threading.Event()
        while producer is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or pause.is_set():
                return False
            started = time.monotonic()
            try:
                producer.list_topics(timeout=min(remaining, 0.5))
                return True
            except KafkaException:
                # Refused at once (no broker known): do not ask again before the slice is over.
                pause.wait(max(0.0, min(0.5, remaining) - (time.monotonic() - started)))
        return False

    def die(self, reason: ResilientMQError) -> None:
        """This instance can go on no longer: report the loss; it is retired and replaced."""
        if self.dead is not None:
            return
        self.dead = reason
        log.warning("%s: %s", self.name, reason)
        self._lane.close()  # before it is purged: nothing more goes straight to it
        self._report(reason)
        self.call_soon(self.retire)  # on the polling thread, outside librdkafka's callbacks

    def retire(self) -> None:
        """Stop producing: hand back what it holds (as retriable), then end the polling thread."""
        if self.retiring:
            return
        self.retiring = True
        producer = self.producer
        if producer is not None:
            try:
                producer.purge(True, True, False)
            except Exception as exc:  # a dead instance may refuse
                log.debug("%s: purging a retired instance: %s", self.name, exc)

    def join(self, timeout: float) -> bool:
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _report(self, error: BaseException) -> None:
        self._lane.close()  # an outage: the outbox takes new messages until it is over
        lost = self.lost
        if lost is not None:
            lost(error)


def _offset_in(outcome: Message | Outcome | None, topic: str, partition: int) -> int | None:
    if isinstance(outcome, Message) and outcome.partition() == partition and outcome.topic() == topic:
        return outcome.offset()
    return None


def _all_down(text: str) -> bool:
    """librdkafka also says "0/2 brokers are down" under this code, when it retires bootstrap brokers."""
    match = _DOWN.search(text)
    return match is None or int(match.group(1)) >= int(match.group(2))
