"""The write-through: while it can, ``produce()`` hands a message straight to the live librdkafka instance.

librdkafka's own queue is a memory buffer as good as the outbox, and with ``message.timeout.ms`` infinite it
keeps retrying what it holds through outages. So while the cluster answers and nothing waits in the outbox
(so that order holds), ``produce()`` calls librdkafka's ``produce()`` on the caller's thread, as
``confluent_kafka.Producer`` does, and in memory keeps nothing of the message: what librdkafka gives back
undelivered comes with everything needed to produce it again. A durable outbox first commits a recovery
copy of the message to its file (never peeked by its sender; deleted once delivered; what the next process
finds after a crash). The outbox takes over during outages and backlogs, as it does for the IBM MQ
adapter's synchronous puts.

Every promise holds across both paths:

- The bound: room for direct messages is held in the outbox buffer (``hold_outside``, a few dozen at a
  time), so ``buffer_max_messages`` counts everything accepted and unconfirmed; when it is reached,
  ``produce()`` waits (or raises) by the overflow policy. Not with ``drop_oldest`` (the oldest message must
  be in the outbox to be dropped), ``buffer_max_bytes`` (librdkafka's bytes are not counted) or
  ``buffer_fsync`` (appends through the outbox share their syncs): those always go through the outbox.
- Reports: every direct message carries a delivery callback of ours (:class:`DirectReports`, one per
  instance). A delivery gives its room back; a permanent failure lands in the failed list; a purge by the
  user is final; a duplicate acknowledged without an offset is looked up in the log first (as for the
  outbox's batches). The user's callback runs once, from the user's ``poll()``/``flush()``.
- Given back undelivered (a retriable error: the instance is being replaced, or an explicit
  ``message.timeout.ms`` ran out): the message is *carried*, the connection starts again, and the next
  session produces what is carried before anything the outbox holds, so that order holds (in produce order
  per partition: librdkafka reports what it purges from its queue before what comes back from requests).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple, Protocol

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message

from resilientmq.core.buffer import BoundedBuffer, Envelope, LmdbBuffer, NewMessage, OverflowPolicy
from resilientmq.core.options import ResilienceOptions
from resilientmq.core.outbox import Outbox
from resilientmq.core.supervisor import ConnectionState, Supervisor

from .errors import LocalCode, translate_kafka_error
from .records import PARTITION_UA, DeliveryCallback, Outcome, RecordEncoder, synthetic_message
from .reports import UserEvents

__all__ = ["Copies", "DirectReports", "Instance", "Returned", "WriteThrough"]

_HOLD = 64  # room held in the outbox buffer at a time: one call there (and one lock) per 64 messages
_FORGET_BATCH = 512  # recovery copies deleted in one transaction while a stream goes on


class Returned(NamedTuple):
    """A direct message as librdkafka reported it back: enough to produce it again, or to keep it."""

    topic: str
    value: bytes | None
    key: bytes | None
    partition: int
    timestamp: int
    headers: Any  # what Message.headers() gives: a list of (name, value), or None
    callback: DeliveryCallback | None
    queued: bool = False
    """Purged from librdkafka's queue, not from a request in flight: younger than every message of its
    partition that comes back from a request (whose reports librdkafka gives after the queue's)."""
    seq: int = 0
    """Its recovery copy in a durable outbox (0: none)."""

    @classmethod
    def of(
        cls, message: Message, callback: DeliveryCallback | None, error: KafkaError | None, seq: int
    ) -> Returned:
        kind, timestamp = message.timestamp()
        partition = message.partition()
        return cls(
            message.topic() or "",
            message.value(),
            message.key(),
            PARTITION_UA if partition is None else partition,
            0 if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
            message.headers(),
            callback,
            error is not None and error.code() == LocalCode.PURGE_QUEUE,
            seq,
        )


class Copies(Protocol):
    """A durable outbox's file, where each direct message's recovery copy is kept until it is delivered
    (``LmdbBuffer``)."""

    def keep_outside(
        self, destination: str, body: bytes, headers: Mapping[str, Any], now: float, id: str | None = None
    ) -> int: ...

    def forget_outside(self, seqs: Sequence[int], *, release: bool = True) -> None: ...


class Instance(Protocol):
    """What the reports of direct messages need of their librdkafka instance (a ``Pipeline``)."""

    retiring: bool
    run: list[int] | None
    """Set while the reports of a duplicate acknowledged without an offset come in (see ``doubt``)."""

    def judge(self, error: KafkaError, message: Message | None) -> Outcome:
        """The outcome of a failed delivery report."""

    def doubt(
        self, reports: DirectReports, message: Message, callback: DeliveryCallback | None, seq: int
    ) -> bool:
        """A delivery that may be a false duplicate acknowledgement: True when it is held for a look-up
        in the log (its outcome then comes through :meth:`DirectReports.resolved`)."""

    def gave_back(self) -> None:
        """A direct message came back undelivered: the connection is to start again (a new session
        produces what is carried first)."""


class DirectReports:
    """The delivery reports of the messages handed straight to one instance.

    librdkafka calls :meth:`plain` (a message without a callback) or :meth:`user` (with the user's) from
    whichever thread polls that instance, one at a time (the instance's poll lock): the user's own
    ``poll()``/``flush()``, where the user's callback runs at once, as confluent-kafka runs it, or one of
    ours (``ours`` set), where it is queued for the user's next ``poll()``. Only counters are kept (and,
    for a durable outbox, the seqs of the recovery copies to delete: ``plain_kept``/``user_kept``); the
    poller gives back the room of what was delivered with :meth:`account` after each poll.
    """

    __slots__ = (
        "_instance",
        "_lane",
        "_only_errors",
        "_queue",
        "accounted",
        "default",
        "done",
        "doubting",
        "handed",
        "kept",
        "moved",
        "ours",
        "undelivered",
    )

    def __init__(self, lane: WriteThrough, instance: Instance) -> None:
        self._lane = lane
        self._instance = instance
        self._only_errors = lane.only_errors
        self._queue = lane.events.report
        self.done = 0  # reports served (and looked-up doubts resolved)
        self.undelivered = 0  # of those, the messages purged, failed or given back
        self.moved = 0  # of those, messages given back or failed: their room went with them
        self.accounted = 0  # room given back so far
        self.kept: list[int] = []  # recovery copies of delivered (or purged) messages, to delete
        self.handed = -1  # how many were handed to this instance; -1 while it is the current one
        self.ours = False
        self.doubting = False  # the reports of a duplicate acknowledged without an offset are coming in
        default = lane.default_callback
        self.default: DeliveryCallback = self.plain if default is None else partial(self.user, default)

    @property
    def delivered(self) -> int:
        return self.done - self.undelivered

    def plain(self, error: KafkaError | None, message: Message) -> None:
        """The report of a direct message with no callback at all."""
        if error is None and not self.doubting and message.offset() is not None:
            self.done += 1
            return
        self._irregular(error, message, None, 0)

    def user(self, callback: DeliveryCallback, error: KafkaError | None, message: Message) -> None:
        """The report of a direct message with the user's ``callback``."""
        if error is not None or self.doubting or message.offset() is None:
            self._irregular(error, message, callback, 0)
            return
        self.done += 1
        if self._only_errors:
            return
        if self.ours:
            self._queue(callback, None, message)
        else:
            callback(None, message)

    def plain_kept(self, seq: int, error: KafkaError | None, message: Message) -> None:
        """:meth:`plain`, for a message whose recovery copy is ``seq`` in a durable outbox."""
        if error is None and not self.doubting and message.offset() is not None:
            self.done += 1
            self.kept.append(seq)
            return
        self._irregular(error, message, None, seq)

    def user_kept(
        self, seq: int, callback: DeliveryCallback, error: KafkaError | None, message: Message
    ) -> None:
        """:meth:`user`, for a message whose recovery copy is ``seq`` in a durable outbox."""
        if error is not None or self.doubting or message.offset() is None:
            self._irregular(error, message, callback, seq)
            return
        self.done += 1
        self.kept.append(seq)
        if not self._only_errors:
            self._tell(callback, None, message)

    def account(self, *, batch: bool = False) -> None:
        """Give back the room of the messages delivered or purged since the last call, deleting their
        recovery copies if they have any (by the poller). With ``batch`` the copies wait until there are
        enough for one transaction to be worth it (a crash meanwhile sends them again: at least once)."""
        if self.kept and (not batch or len(self.kept) >= _FORGET_BATCH):
            seqs, self.kept = self.kept, []
            self.accounted += len(seqs)
            self._lane.forget(seqs)
        n = self.done - self.moved - self.accounted
        if n > 0:
            self.accounted += n
            self._lane.release(n)

    def resolved(
        self, message: Message | None, doubted: Message, callback: DeliveryCallback | None, seq: int
    ) -> None:
        """The log was read for a doubted delivery: ``message`` as found there, or None (not there: it is
        produced again). On the instance's polling thread."""
        if message is None:
            self._irregular(None, doubted, callback, seq, lost=True)
            return
        self.done += 1
        if seq:
            self.kept.append(seq)
        if callback is not None and not self._only_errors:
            self._queue(callback, None, message)

    def _irregular(
        self,
        error: KafkaError | None,
        message: Message,
        callback: DeliveryCallback | None,
        seq: int,
        *,
        lost: bool = False,
    ) -> None:
        instance = self._instance
        if error is None and not lost:
            if instance.doubt(self, message, callback, seq):
                return  # an offset-less duplicate acknowledgement: settled once the log was read
            self.done += 1
            if seq:
                self.kept.append(seq)
            if callback is not None and not self._only_errors:
                self._tell(callback, None, message)
            return
        self.done += 1
        self.undelivered += 1
        outcome = (
            Outcome(Outcome.RETRY, None) if error is None else instance.judge(error, message)
        )  # lost: acknowledged as a duplicate, but not in the log
        if outcome.kind == Outcome.RETRY:
            self.moved += 1
            self._lane.given_back(Returned.of(message, callback, error, seq))
            instance.gave_back()
            return
        if outcome.kind == Outcome.FAILED and outcome.error is not None:
            self.moved += 1
            self._lane.failed(Returned.of(message, callback, error, seq), outcome.error)
        elif seq:
            self.kept.append(seq)  # purged by the user: its copy goes too
        if callback is not None:
            self._tell(callback, error, message)

    def _tell(self, callback: DeliveryCallback, error: KafkaError | None, message: Message) -> None:
        if self.ours:
            self._queue(callback, error, message)
        else:
            callback(error, message)


def _closed(*args: Any) -> None:
    raise ConnectionError("the write-through is closed")  # never called: produce() checks ``open`` first


class WriteThrough:
    """The direct path of one producer, shared by its instances in turn (see the module docstring).

    ``produce()`` reads ``open`` without the lock and then, under ``lock``, ``credit`` (room held and not
    used yet), ``produce`` (the current instance's), ``default`` and ``user`` (its report callbacks). They
    change only under ``lock``. ``current`` is the instance the user's ``poll()`` serves.
    """

    def __init__(
        self,
        *,
        events: UserEvents,
        encoder: RecordEncoder,
        default_callback: DeliveryCallback | None,
        only_errors: bool,
    ) -> None:
        self.lock = threading.Lock()
        self.events = events
        self.default_callback = default_callback
        self.only_errors = only_errors
        self.enabled = False  # until bound to an outbox
        self.durable = False  # direct messages are kept in the outbox's file too (produce_kept)
        self.open = False
        self.credit = 0
        self.replayed = 0
        self._held = 0  # room held for direct messages, ever: each of them takes one, as do refusals
        self._refusals = 0
        self.given = 0  # messages given back undelivered (counted as re-sent)
        self.produce: Callable[..., None] = _closed
        self.default: DeliveryCallback = _closed
        self.user: Callable[..., None] = _closed
        self.current: Any = None  # the current instance (a Pipeline)
        self.carry: deque[Returned] = deque()
        self._buffer: BoundedBuffer | None = None
        self._outbox: Outbox | None = None
        self._supervisor: Supervisor[Any, Any] | None = None
        self._encoder = encoder
        self._copies: Copies | None = None  # a durable outbox's file: each direct message's copy first
        self._reports: DirectReports | None = None
        self._produce_of: Callable[..., None] = _closed
        self._base = 0  # ``handed`` when the current instance was attached
        self._earlier: list[DirectReports] = []  # earlier instances' reports, while they owe some

    def bind(self, outbox: Outbox, supervisor: Supervisor[Any, Any], options: ResilienceOptions) -> None:
        """The outbox whose room direct messages take, once the client is built (closed until then).

        Not with ``drop_oldest`` (the oldest message must be in the outbox to be dropped), nor
        ``buffer_max_bytes`` (the bytes librdkafka holds are not counted), nor ``buffer_fsync`` (appends
        through the outbox share their syncs: group commit). A durable outbox's file keeps a recovery copy
        of each direct message (:meth:`produce_kept`)."""
        self._buffer, self._outbox, self._supervisor = outbox.buffer, outbox, supervisor
        self._copies = outbox.buffer if isinstance(outbox.buffer, LmdbBuffer) else None
        self.durable = self._copies is not None
        self.enabled = (
            options.buffer_overflow is not OverflowPolicy.DROP_OLDEST
            and options.buffer_max_bytes is None
            and not options.buffer_fsync
        )

    # -- the instance ---------------------------------------------------------------------------------
    def attach(self, instance: Any, reports: DirectReports, produce: Callable[..., None]) -> None:
        """``instance`` is the current one now (the lane stays closed until :meth:`try_open`)."""
        with self.lock:
            self._close_locked()
            previous = self._reports
            if previous is not None:
                previous.handed = self.handed - self._base
                self._earlier.append(previous)
            self._reports = reports
            self._produce_of = produce
            self._base = self.handed
            self.current = instance

    def try_open(self) -> bool:
        """Open the lane if the current instance may take messages directly: connected, with nothing in the
        outbox nor carried (so that none is overtaken)."""
        buffer, supervisor = self._buffer, self._supervisor
        if not self.enabled or self.carry or buffer is None or len(buffer) or supervisor is None:
            return False
        if supervisor.state is not ConnectionState.CONNECTED:
            return False
        with self.lock:
            instance, reports = self.current, self._reports
            if self.open:
                return True
            if reports is None or instance.dead is not None or instance.retiring:
                return False
            if not self.enabled or self.carry or len(buffer):
                return False
            self.produce, self.default, self.user = self._produce_of, reports.default, reports.user
            self.open = True
            return True

    def close(self) -> None:
        """Stop producing directly (the outbox takes over); the room held and not used is given back."""
        if self.open or self.credit:
            with self.lock:
                self._close_locked()

    def disable(self) -> None:
        """For good (the producer is closing). Lets go of the instance's ``produce``: a closed producer
        that the application still references must not keep a librdkafka instance (and its threads) alive."""
        with self.lock:
            self.enabled = False
            self._close_locked()
            self.produce = self._produce_of = _closed

    @property
    def handed(self) -> int:
        """Messages handed to an instance directly (replays of carried ones included): each took one of the
        room held (so ``produce()`` counts nothing but ``credit``)."""
        return self._held - self.credit - self._refusals + self.replayed

    def _close_locked(self) -> None:
        self.open = False
        if self.credit and self._buffer is not None:
            self._buffer.release_outside(self.credit)
        self._held -= self.credit
        self.credit = 0

    def refill(self) -> bool:
        """Hold more room (under ``lock``, while open); False when the outbox holds messages or is full."""
        if self._buffer is None:
            return False
        self.credit = self._buffer.hold_outside(_HOLD)
        self._held += self.credit
        return self.credit > 0

    def release(self, n: int) -> None:
        """Give back the room of ``n`` direct messages that were delivered or purged."""
        if self._buffer is not None:
            self._buffer.release_outside(n)

    def forget(self, seqs: list[int]) -> None:
        """Delete the recovery copies of direct messages delivered or purged, giving back their room."""
        if self._copies is not None:
            self._copies.forget_outside(seqs)

    def produce_kept(
        self,
        topic: Any,
        value: Any,
        key: Any,
        partition: Any,
        report: DeliveryCallback | None,
        timestamp: Any,
        headers: Any,
    ) -> None:
        """A durable outbox's write-through (under ``lock``, while open): the message's recovery copy is
        committed to the file, then the message goes to librdkafka, with the copy's timestamp (so that a
        copy produced again after a crash is the same record to a look-up in the log)."""
        copies, reports = self._copies, self._reports
        assert copies is not None and reports is not None
        body, meta = self._encoder.fields(topic, value, key, partition, timestamp, headers)
        now = time.time()
        seq = copies.keep_outside(topic, body, meta, now)
        if report is None:
            report = self.default_callback
        callback = (
            partial(reports.plain_kept, seq) if report is None else partial(reports.user_kept, seq, report)
        )
        try:
            self.produce(topic, value, key, partition, callback, None, timestamp or int(now * 1000), headers)
        except BaseException:
            copies.forget_outside([seq], release=False)  # not handed over: the room stays held, unused
            raise

    # -- counting -----------------------------------------------------------------------------------
    def held(self, reports: DirectReports) -> int:
        """Direct messages handed to the instance of ``reports`` and not yet reported."""
        handed = self.handed - self._base if reports is self._reports else reports.handed
        return max(0, handed - reports.done)

    def outstanding(self) -> int:
        """Direct messages accepted and not yet settled (held by an instance, or carried)."""
        with self.lock:
            reports = self._reports
            held = 0 if reports is None else self.handed - self._base - reports.done
            if self._earlier:
                self._earlier = [r for r in self._earlier if r.handed > r.done]
                held += sum(r.handed - r.done for r in self._earlier)
            return held + len(self.carry)

    def stats(self) -> dict[str, int]:
        """What the outbox's counters do not see: accepted, sent, confirmed and re-sent directly."""
        with self.lock:
            every = [*self._earlier, *([self._reports] if self._reports else [])]
        delivered = sum(r.delivered for r in every)
        return {
            "produced_direct": self.handed - self.replayed,
            "sent": self.handed,
            "confirmed": delivered,
            "resent": self.given,
        }

    # -- what comes back ----------------------------------------------------------------------------
    def given_back(self, returned: Returned) -> None:
        """A direct message came back undelivered (retriable): it is carried, and the next session produces
        it again before anything the outbox holds (on the polling thread)."""
        with self.lock:
            self._close_locked()  # nothing may overtake it
            self.given += 1
            self.carry.append(returned)

    def failed(self, returned: Returned, error: BaseException) -> None:
        """A direct message can never be delivered: into the failed list (its callback is told apart)."""
        seqs = [returned.seq] if returned.seq else None  # a durable outbox's copy moves to the failed list
        self._store().fail_outside([(self._message(returned), error)], seqs)

    def refused(
        self,
        exc: KafkaException,
        report: DeliveryCallback | None,
        args: tuple[Any, Any, Any, Any, Any, Any],
    ) -> bool:
        """librdkafka's ``produce()`` refused a direct message (under ``lock``). True when that is final
        (failed and reported, as the outbox path does); False when the outbox is to take it; raises what
        ``confluent_kafka.Producer.produce()`` raises for a message that is too large."""
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is None or error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            raise exc
        ours = translate_kafka_error(exc)
        if error.fatal() or error.code() == LocalCode.FATAL or ours.retriable:
            self._close_locked()
            if error.fatal() or error.code() == LocalCode.FATAL:
                self.current.die(ours)
            return False
        topic, value, key, partition, timestamp, headers = args
        message = self._encoder.encode(topic, value, key, partition, timestamp, headers)
        self.credit -= 1  # the room it takes, given back with it
        self._refusals += 1
        self._store().fail_outside([(message, ours)])
        callback = report if report is not None else self.default_callback
        if callback is not None:
            self.events.report(callback, error, synthetic_message(_envelope_of(message), error))
        return True

    def replay(self, instance: Any, reports: DirectReports, produce: Callable[..., None]) -> bool:
        """Produce what was given back on ``instance`` (a new session's), before anything else. True once
        nothing is left; False when librdkafka refuses for now (its queue is full, or the instance died):
        the caller waits a little and replays the rest."""
        with self.lock:
            # In produce order per partition: what came back from requests in flight before what was purged
            # from the queue (librdkafka reports the queue's first).
            carry = self.carry = deque(sorted(self.carry, key=_from_queue))
            while carry:
                r = carry[0]
                callback = _callback_for(reports, r)
                try:
                    produce(r.topic, r.value, r.key, r.partition, callback, None, r.timestamp, r.headers)
                except BufferError:
                    return False
                except KafkaException as exc:
                    if not self._refused_replay(exc, r):
                        return False
                    carry.popleft()
                    continue
                carry.popleft()
                self.replayed += 1
            return True

    def purge_carried(self, error: KafkaError) -> int:
        """``purge()``: forget what is carried, reporting it purged; how many."""
        with self.lock:
            gone = list(self.carry)
            self.carry.clear()
        for r in gone:
            callback = r.callback if r.callback is not None else self.default_callback
            if callback is not None:
                message = self._message(r)
                self.events.report(callback, error, synthetic_message(_envelope_of(message), error))
        kept = [r.seq for r in gone if r.seq]
        if kept:
            self.forget(kept)
        if len(gone) > len(kept):
            self.release(len(gone) - len(kept))
        return len(gone)

    def _refused_replay(self, exc: KafkaException, r: Returned) -> bool:
        """librdkafka refused a carried message: True when that is final (failed and reported)."""
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        ours = translate_kafka_error(exc)
        if error is None or ours.retriable:
            return False
        self._store().fail_outside([(self._message(r), ours)], [r.seq] if r.seq else None)
        callback = r.callback if r.callback is not None else self.default_callback
        if callback is not None:
            message = self._message(r)
            self.events.report(callback, error, synthetic_message(_envelope_of(message), error))
        return True

    def _store(self) -> Outbox:
        if self._outbox is None:  # a lane that never opens holds no direct message to give back
            raise RuntimeError("a write-through without an outbox")
        return self._outbox

    def _message(self, r: Returned) -> NewMessage:
        """The outbox's form of a message given back (for the failed list, or a synthetic report)."""
        return self._encoder.encode(r.topic, r.value, r.key, r.partition, r.timestamp, r.headers)


def _callback_for(reports: DirectReports, r: Returned) -> DeliveryCallback:
    """The report callback of a carried message on the instance of ``reports``."""
    if r.seq:
        if r.callback is None:
            return partial(reports.plain_kept, r.seq)
        return partial(reports.user_kept, r.seq, r.callback)
    return reports.default if r.callback is None else partial(reports.user, r.callback)


def _from_queue(r: Returned) -> bool:
    return r.queued


def _envelope_of(message: NewMessage) -> Envelope:
    """A stand-in envelope, for the synthetic delivery report of a message the outbox never held."""
    return Envelope(0, message.id, message.destination, message.body, message.headers, time.time())
