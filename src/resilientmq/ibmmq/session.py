"""One connection's life with an IBM MQ queue manager: :class:`MQConnector` opens :class:`MQSession` objects.

A session holds two connections to one endpoint: the application's (the queue manager object the user
holds is itself an MQI ``QueueManager``, reconnected in place: the session is handed that object's base
calls as :class:`AppConnection`) and the sender's own, with the handles the sender keeps open (only for
queues an open :class:`~resilientmq.ibmmq.ResilientQueue` still puts to). Before ``open()`` returns, the
queues and subscriptions in the :class:`Registry` are reopened on it, each tagged with the session's epoch
(the supervisor numbers every connection attempt anew). When a call finds the connection gone the session
marks itself broken and tells the supervisor (its ``lost``, bound to the epoch), which closes it and opens
the next.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchResult, LossReporter, completed

from .errors import mqi_errors, translate
from .sender import Sender
from .settings import Settings, connect_arguments

__all__ = ["AppConnection", "MQConnector", "MQSession", "Registry", "Restorable"]

log = logging.getLogger("resilientmq.ibmmq")


class Restorable(Protocol):
    """A queue or subscription that lives on across connections."""

    def reopen(self, session: MQSession) -> bool:
        """Open again on ``session`` (a new connection); False when there was nothing to reopen."""

    def output_destination(self) -> str | None:
        """The queue this object puts to while it is open (the sender keeps a handle for it), or None."""


class Registry:
    """The objects to reopen on every new connection, weakly held, in the order they were made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._ids = itertools.count()

    def add(self, obj: Restorable) -> None:
        with self._lock:
            if obj not in self._objects.values():
                self._objects[next(self._ids)] = obj

    def discard(self, obj: Restorable) -> None:
        with self._lock:
            for key, value in list(self._objects.items()):
                if value is obj:
                    self._objects.pop(key, None)

    def objects(self) -> list[Restorable]:
        with self._lock:
            return list(self._objects.values())

    def holds_output(self, destination: str) -> bool:
        """True while an object that is open (and not collected) puts to ``destination``."""
        return any(obj.output_destination() == destination for obj in self.objects())


@dataclass(frozen=True)
class AppConnection:
    """The application's connection: the base ``QueueManager`` calls, bound to the user's object."""

    connect_with_options: Callable[..., None]
    backout: Callable[[], None]
    disconnect: Callable[[], None]
    get_handle: Callable[[], Any]


class MQConnector:
    """The supervisor's connector: both connections up and everything reopened, or an error.

    ``settings`` may be replaced (``connect*()`` on a queue manager made with ``None``); the next
    ``open()`` uses them. ``count(name)`` is told of every object reopened.
    """

    def __init__(
        self,
        mqi: Any,
        app: AppConnection,
        settings: Settings,
        registry: Registry,
        *,
        count: Callable[[str], None],
        name: str,
    ) -> None:
        self.settings = settings
        self._mqi = mqi
        self._app = app
        self._registry = registry
        self._count = count
        self._name = name
        self._lock = threading.Lock()
        self._holder: MQSession | None = None  # the session the application's connection belongs to

    def open(self, endpoint: str, epoch: int, lost: LossReporter) -> MQSession:
        session = MQSession(self._mqi, epoch, lost, release=self._release, wanted=self._registry.holds_output)
        self._take(session)
        try:
            session.connect(self._app, self.settings, endpoint)
            self._restore(session)
        except BaseException:
            session.close()
            raise
        return session

    def cancel(self) -> None:
        """Nothing to abort: MQCONN cannot be interrupted. An ``open()`` under way finishes, and the
        supervisor closes the session it returns when it is no longer wanted."""

    def _take(self, session: MQSession) -> None:
        """Hand the application's connection to ``session``, dropping what an earlier one left on it."""
        with self._lock:
            self._holder = session
            self._drop_app()

    def _release(self, session: MQSession) -> None:
        with self._lock:
            if self._holder is not session:
                return  # a later session holds it now
            self._holder = None
            self._drop_app()

    def _drop_app(self) -> None:
        # MQDISC commits an open unit of work (distributed platforms): back it out first, as a broken
        # connection would, so commit() can say for sure that it did not happen.
        for call in (self._app.backout, self._app.disconnect):
            with contextlib.suppress(Exception):
                self._app.get_handle()  # not connected: nothing to drop
                call()

    def _restore(self, session: MQSession) -> None:
        """Reopen queues and resume subscriptions on the new connection (before buffered puts flow)."""
        mqi = self._mqi
        for obj in self._registry.objects():
            try:
                if obj.reopen(session):
                    self._count("objects_reopened")
            except (mqi.MQMIError, mqi.PYIFError) as exc:
                err = translate(exc, mqi, f"reopening {obj!r}", after_break=True)
                if isinstance(err, ConnectionLostError):
                    raise err from exc
                # Not fatal to the connection: the object's next operation tries again and reports it.
                log.error("%s: could not reopen %r: %s", self._name, obj, err)


class MQSession:
    """One connection's life: the application's connection, the sender's, and whether they broke."""

    def __init__(
        self,
        mqi: Any,
        epoch: int,
        lost: LossReporter,
        *,
        release: Callable[[MQSession], None],
        wanted: Callable[[str], bool],
    ) -> None:
        self.mqi = mqi
        self._epoch = epoch
        self._lost = lost
        self._release = release
        self._wanted = wanted
        self._lock = threading.Lock()
        self._sender: Sender | None = None
        self._broken = False
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "broken" if self._broken else "live"
        return f"<MQSession #{self._epoch} {state}>"

    @property
    def epoch(self) -> int:
        """The supervisor's number for this connection attempt: what objects opened on it are tagged with."""
        return self._epoch

    @property
    def broken(self) -> bool:
        """True once this connection is known to be gone (or closed)."""
        return self._broken

    def connect(self, app: AppConnection, settings: Settings, endpoint: str) -> None:
        """Make both connections (raises the translated MQCONN error)."""
        mqi = self.mqi
        try:
            app.connect_with_options(
                settings.queue_manager_name, **connect_arguments(mqi, settings, endpoint)
            )
            sender = mqi.QueueManager(None)
            sender.connect_with_options(
                settings.queue_manager_name, **connect_arguments(mqi, settings, endpoint)
            )
        except (mqi.MQMIError, mqi.PYIFError) as exc:
            where = f"MQCONN to {settings.queue_manager_name or 'QM'} at {endpoint}"
            err = translate(exc, mqi, where, connecting=True)
            if err is exc:
                raise
            raise err from exc
        with self._lock:
            self._sender = Sender(mqi, sender, wanted=self._wanted)

    @contextlib.contextmanager
    def errors(self, what: str, *, committing: bool = False) -> Iterator[None]:
        """Translate the MQI errors of a call on this connection; a broken connection is reported."""
        with mqi_errors(
            self.mqi, what, after_break=lambda: self._broken, committing=committing, lost=self.report_lost
        ):
            yield

    def report_lost(self, error: BaseException | None = None) -> None:
        """This connection is gone: mark it, and tell the supervisor."""
        self._broken = True
        self._lost(error)

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        with self._lock:
            sender = None if self._closed else self._sender
        if sender is None:
            raise ConnectionLostError("the sender has no connection to the queue manager")
        return completed(sender.transmit(batch, self.errors))

    def release_unwanted(self) -> None:
        """Close the sender's handles for queues nothing open puts to any more (after a queue's close())."""
        with self._lock:
            sender = None if self._closed else self._sender
        if sender is not None:
            with contextlib.suppress(Exception):  # a broken connection takes its handles with it
                sender.trim()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = self._broken = True
            sender, self._sender = self._sender, None
        self._release(self)
        if sender is not None:
            with contextlib.suppress(Exception):
                sender.qmgr.disconnect()
