"""What an adapter implements: a :class:`Connector` that opens :class:`Session` objects, and the words a
session uses to tell the outbox how a batch fared.

A session is one connection's life: opened on one endpoint for the epoch the supervisor gives it (so late
news about an older connection can be told apart), it restores what lived on the old connection, sends
batches, reports its own end through the ``lost`` function it was handed, and is closed by the supervisor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from .buffer import Envelope
from .errors import ResilientMQError

__all__ = [
    "BatchAbortedError",
    "BatchRejectedError",
    "BatchResult",
    "CarryingSession",
    "Connector",
    "LossReporter",
    "RecoveringSession",
    "Session",
    "already_delivered",
    "carries",
    "completed",
]

LossReporter = Callable[[BaseException | None], None]
"""What a session calls when its connection breaks (any thread, any number of times)."""


class BatchRejectedError(ResilientMQError):
    """The broker rejected a batch without saying which message was at fault.

    The outbox then sends that range one message at a time, waiting for each answer; a message rejected on
    its own fails for good with ``cause``. ``exact`` is False when the session only inferred which batch
    the broker meant (an ERROR naming no frame while other frames were unanswered): such a rejection never
    fails a message, it only makes the outbox send it again on its own.
    """

    def __init__(self, message: str, cause: BaseException | None = None, *, exact: bool = True) -> None:
        super().__init__(message)
        self.cause = cause
        self.exact = exact


class BatchAbortedError(ResilientMQError):
    """The session withdrew a batch because an earlier one failed (so that order is kept).

    Its messages were not delivered; the outbox sends them again, without backing off.
    """

    retriable = True


@dataclass(frozen=True)
class BatchResult:
    """How a confirmed batch fared. Messages in neither mapping were confirmed."""

    failed: Mapping[int, BaseException] = field(default_factory=dict)
    """seq -> permanent error: these can never be delivered."""
    retry: Mapping[int, BaseException] = field(default_factory=dict)
    """seq -> retriable error: not delivered this time; they are sent again."""


def completed(result: BatchResult) -> Future[BatchResult]:
    """A future already resolved with ``result`` (for sessions whose sends are synchronous)."""
    future: Future[BatchResult] = Future()
    future.set_result(result)
    return future


class Session(Protocol):
    """One connection's life: opened by a :class:`Connector` for one epoch, closed by the supervisor."""

    @property
    def epoch(self) -> int:
        """The supervisor's number for this connection."""

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        """Send ``batch`` in order; the future resolves when the broker has answered for the whole batch.

        The future fails with a retriable error (typically ``ConnectionLostError``) when the batch's fate
        is unknown, and with :class:`BatchRejectedError` when the broker refused it as a whole. May raise
        ``ConnectionLostError`` at once. Every future of a connection that died must resolve.
        """

    def close(self) -> None:
        """Drop the connection and settle what it still owed. Idempotent; must not raise."""


class CarryingSession(Session, Protocol):
    """A session whose client library holds and retries what was handed to it across reconnections (an
    idempotent Kafka producer kept from one connection to the next)."""

    def carries(self, epoch: int) -> bool:
        """True when this session's client still holds the batches transmitted on connection ``epoch`` and
        will settle their futures itself: sending them again would deliver them twice."""


def carries(session: Session, epoch: int) -> bool:
    """Whether ``session`` carries the batches of connection ``epoch``; False for a plain :class:`Session`."""
    method = getattr(session, "carries", None)
    return bool(method(epoch)) if method is not None else False


class RecoveringSession(Session, Protocol):
    """A session that can learn the outcome of what an earlier connection (or an earlier process on the
    same durable outbox) sent and never heard back about (a STOMP ledger on ActiveMQ)."""

    def delivered(self, seqs: Sequence[int]) -> Collection[int]:
        """Of these unconfirmed messages, the seqs the broker is known to hold already: they are confirmed
        without being sent again. Runs on the sender thread before anything is sent on this connection;
        raises ``ConnectionLostError`` if the connection breaks meanwhile."""


def already_delivered(session: Session, seqs: Sequence[int]) -> Collection[int]:
    """What ``session`` knows the broker holds of ``seqs``; nothing for a plain :class:`Session`."""
    method = getattr(session, "delivered", None)
    return method(seqs) if method is not None and seqs else ()


E_contra = TypeVar("E_contra", contravariant=True)
S_co = TypeVar("S_co", bound=Session, covariant=True)


class Connector(Protocol[E_contra, S_co]):
    """What an adapter gives the supervisor: a way to open sessions."""

    def open(self, endpoint: E_contra, epoch: int, lost: LossReporter) -> S_co:
        """Connect to ``endpoint`` and restore what lived on the old connection (subscriptions, open
        objects) before returning; raise a translated error on failure. ``lost`` reports this
        connection's end, also while it is being opened."""

    def cancel(self) -> None:
        """Abort an ``open()`` running in another thread (it then raises). Must not raise."""
