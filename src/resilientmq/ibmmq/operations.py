"""What queues and subscriptions need from their queue manager: :class:`Operations`, made by the facade and
handed to every object, so no object reaches into the queue manager.

It runs a call on a live connection (waiting out outages through the supervisor), joins the unit of work,
checks arguments as ``ibmmq`` does, puts at once while connected or hands the message to the outbox
(:meth:`Operations.send`), and keeps the registry of objects to reopen and the adapter's counters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from resilientmq.core.buffer import NewMessage
from resilientmq.core.client import ClientCore
from resilientmq.core.errors import (
    ClientClosedError,
    ConnectionLostError,
    InvalidMessageError,
    OutcomeUnknownError,
    ResilientMQError,
    TransactionRolledBackError,
)

from . import codec
from .errors import Disposition, disposition, mq_error
from .session import MQSession, Registry, Restorable

__all__ = ["COUNTERS", "Counters", "Operations", "forget_handle"]

log = logging.getLogger("resilientmq.ibmmq")

# MQCMIT of a unit of work that was backed out: MQCC_WARNING with MQRC_BACKED_OUT (IBM's reason code 2003).
_MQCC_WARNING = 1
_MQRC_BACKED_OUT = 2003

T = TypeVar("T")

COUNTERS = (
    "puts_direct",
    "uow_commits",
    "uow_rolled_back",
    "uow_outcome_unknown",
    "batch_replays",
    "operation_retries",
    "objects_reopened",
    "dynamic_queues_recreated",
    "requests_resent",
)
"""The counters the MQ adapter adds to ``stats()`` (``puts_direct``: puts done at once while connected, also
counted in ``accepted``, ``sent`` and ``confirmed``)."""


class Counters:
    """The adapter's own counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTERS, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


@dataclass
class _UnitOfWork:
    session: MQSession | None = None  # the connection the unit of work lives on
    operations: int = 0
    broken: BaseException | None = None


class Operations:
    """The narrow interface between a queue manager and its queues and subscriptions."""

    def __init__(
        self,
        qmgr: Any,
        mqi: Any,
        core: ClientCore[str, MQSession],
        registry: Registry,
        counters: Counters,
        *,
        operation_timeout: float | None,
        async_puts: bool = False,
    ) -> None:
        self.qmgr = qmgr
        """The queue manager object (an MQI ``QueueManager``): what queues and message handles are made on."""
        self.mqi = mqi
        self.name = core.name
        self.operation_timeout = operation_timeout
        self.async_puts = async_puts
        """True: non-syncpoint puts always go through the outbox (pipelined), also while connected."""
        self.closed = False
        """Set by ``disconnect()``: every later call raises :class:`ClientClosedError`."""
        self._core = core
        self._registry = registry
        self._counters = counters
        self._uow_lock = threading.Lock()
        self._uow = _UnitOfWork()
        self._validated: tuple[int, set[tuple[str, str, int]]] = (-1, set())
        self._pcf: tuple[int, Any] = (-1, None)

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        self._counters.add(name, n)

    def register(self, obj: Restorable) -> None:
        """Reopen ``obj`` on every new connection (until :meth:`unregister`)."""
        self._registry.add(obj)

    def unregister(self, obj: Restorable) -> None:
        self._registry.discard(obj)

    # -- running on a live connection ----------------------------------------------------------------------
    def live_session(self) -> MQSession | None:
        """The current connection, unless it is known to be broken; never waits."""
        session = self._core.supervisor.session()
        return None if session is None or session.broken else session

    def run(
        self,
        what: str,
        fn: Callable[[MQSession], T],
        *,
        retry: bool | Callable[[BaseException], bool] = True,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> T:
        """Run ``fn(session)`` on a live connection; after a broken connection, again on the next one.

        Waits out outages by the reconnect policy, bounded by ``operation_timeout``. Before the first
        connection (a queue manager made with ``None``) it raises the MQI's ``PYIFError("not connected")``.
        """
        if self.closed:
            raise ClientClosedError(f"{what}: the queue manager connection was disconnected")
        own: list[BaseException] = []

        def attempt(session: MQSession) -> T:
            try:
                with session.errors(what):
                    return fn(session)
            except ConnectionLostError as exc:
                own.append(exc)
                raise

        timeout = self.operation_timeout
        try:
            return self._core.supervisor.run(
                what,
                attempt,
                timeout=timeout,
                retry=retry,
                disconnected=lambda: self.mqi.PYIFError("not connected"),
                on_retry=on_retry or (lambda _exc: self.count("operation_retries")),
            )
        except ConnectionLostError as exc:
            if (own and exc is own[-1]) or timeout is None:
                raise
            raise ConnectionLostError(
                f"{what}: the queue manager was not reachable within operation_timeout={timeout:g} s"
            ) from exc

    # -- units of work -------------------------------------------------------------------------------------
    def begin(self) -> None:
        with self._uow_lock:
            if self._uow.operations or self._uow.broken is not None:
                raise RuntimeError(
                    "a unit of work is already in progress on this connection: commit() or backout()"
                )
            self._uow = _UnitOfWork()

    def in_uow(self, what: str, fn: Callable[[MQSession], T]) -> T:
        """A syncpoint call: part of the unit of work, never moved to another connection once work is done."""
        with self._uow_lock:
            uow = self._uow
            if uow.broken is not None:
                raise self.rolled_back(what, uow.broken, count=False) from uow.broken
            bound = uow.session
        if bound is not None and bound is not self.live_session():
            if uow.operations:
                raise self._break(uow, what, None)
            bound = None  # nothing was done in it yet: it moves to the next connection
        if uow.operations and bound is not None:
            return self._join(uow, what, fn, bound)
        return self.run(what, lambda session: self._join(uow, what, fn, session))

    def _join(self, uow: _UnitOfWork, what: str, fn: Callable[[MQSession], T], session: MQSession) -> T:
        with self._uow_lock:
            uow.session = session
        try:
            with session.errors(what):
                result = fn(session)
        except ConnectionLostError as exc:
            if uow.operations:
                raise self._break(uow, what, exc) from exc
            with self._uow_lock:
                uow.session = None  # nothing was in it yet: carry on on the next connection
            raise
        except TransactionRolledBackError as exc:  # MQRC_BACKED_OUT: MQ's client reconnect backed it out
            with self._uow_lock:
                uow.broken = exc
            self.count("uow_rolled_back")
            raise
        with self._uow_lock:
            uow.operations += 1
        return result

    def commit(self, base_commit: Callable[[], None]) -> None:
        """MQCMIT through ``base_commit``, unless the connection the work was done on broke."""
        with self._uow_lock:
            uow, self._uow = self._uow, _UnitOfWork()
        if uow.broken is not None:
            raise self.rolled_back("MQCMIT", uow.broken, count=False) from uow.broken
        live = self.live_session()
        session = uow.session
        if session is None:
            if live is None:
                return  # nothing was done under syncpoint through this object, and there is no connection
            session = live
        elif session is not live:
            if not uow.operations:
                return  # nothing was done in it
            raise self.rolled_back("MQCMIT", None)
        try:
            with session.errors("MQCMIT", committing=True):
                base_commit()
        except TransactionRolledBackError:
            self.count("uow_rolled_back")
            raise
        except OutcomeUnknownError:
            self.count("uow_outcome_unknown")
            raise
        if uow.operations:
            self.count("uow_commits")

    def backout(self, base_backout: Callable[[], None]) -> None:
        """MQBACK through ``base_backout``; a unit of work whose connection broke is backed out already."""
        with self._uow_lock:
            uow, self._uow = self._uow, _UnitOfWork()
        live = self.live_session()
        if live is None or (uow.session is not None and uow.session is not live):
            return
        with contextlib.suppress(ConnectionLostError), live.errors("MQBACK"):
            base_backout()

    def replaying(
        self,
        what: str,
        unit_of_work: Callable[[], None],
        *,
        max_replays: int,
        on_replay: Callable[[BaseException], None],
    ) -> int:
        """Run ``unit_of_work`` (it begins and commits), again each time it is rolled back, up to
        ``max_replays`` times; returns the replays.

        A replay runs on whatever connection is live: after a break its first call waits for the next one
        (by the reconnect policy); after an ``MQRC_BACKED_OUT`` with the connection still up (MQ's own
        client reconnect backed the work out) it runs again at once, without reconnecting.
        """
        if self.closed:
            raise ClientClosedError(f"{what}: the queue manager connection was disconnected")
        replays = 0
        while True:
            try:
                unit_of_work()
                return replays
            except TransactionRolledBackError as exc:
                if replays >= max_replays:
                    raise
                replays += 1
                self.count("batch_replays")
                on_replay(exc)

    def _break(self, uow: _UnitOfWork, what: str, cause: BaseException | None) -> TransactionRolledBackError:
        err = self.rolled_back(what, cause)
        with self._uow_lock:
            uow.broken = err
        return err

    def rolled_back(
        self, what: str, cause: BaseException | None, *, count: bool = True
    ) -> TransactionRolledBackError:
        """The error for a unit of work the queue manager backed out (with MQ's reason, if it gave one)."""
        if count:
            self.count("uow_rolled_back")
        if isinstance(cause, TransactionRolledBackError):
            return cause
        message = (
            f"{what}: the connection broke inside the unit of work, so the queue manager backed the unit of "
            "work out; nothing of it was committed: back out and do it again"
        )
        reason, comp = getattr(cause, "reason", None), getattr(cause, "comp", None)
        if cause is None:  # found out by us, not by an MQI call: answer as MQCMIT of a backed-out unit does
            comp, reason = _MQCC_WARNING, _MQRC_BACKED_OUT
        if isinstance(reason, int) and isinstance(comp, int):
            return mq_error(TransactionRolledBackError, self.mqi, message, comp, reason)  # type: ignore[return-value]
        return TransactionRolledBackError(message)

    # -- arguments, as ibmmq checks them -------------------------------------------------------------------
    def q_args(self, opts: Sequence[Any], *, put: bool) -> tuple[Any, Any]:
        """ibmmq's rules for the ``(MD, PMO|GMO)`` arguments."""
        mqi = self.mqi
        if len(opts) > 3:
            raise TypeError("Too many args")
        md = opts[0] if opts and opts[0] is not None else mqi.MD()
        pg = opts[1] if len(opts) >= 2 else None
        if not isinstance(md, mqi.MD):
            raise TypeError("Message Descriptor must be an instance of MD")
        if pg is not None and not isinstance(pg, mqi.PMO if put else mqi.GMO):
            raise TypeError(f"Options must be an instance of {'PMO' if put else 'GMO'}")
        return md, pg

    def body(self, msg: Any, md: Any) -> bytes:
        if isinstance(msg, bytes):
            return msg
        if isinstance(msg, str):
            md.CodedCharSetId = self.qmgr.default_ccsid
            md.Format = self.mqi.CMQC.MQFMT_STRING
            return msg.encode(self.qmgr.bytes_encoding)
        raise TypeError(f"Message type is {type(msg)}. Convert to bytes.")

    def od(self, q_desc: Any) -> Any:
        mqi = self.mqi
        if isinstance(q_desc, (str, bytes)):
            return mqi.OD(ObjectName=q_desc.encode("utf-8") if isinstance(q_desc, str) else q_desc)
        if not isinstance(q_desc, mqi.OD):
            raise TypeError(f"a queue is named by str, bytes or OD, got {type(q_desc).__name__}")
        return q_desc

    # -- puts outside syncpoint ------------------------------------------------------------------------------
    def send(
        self,
        what: str,
        kind: str,
        od_fields: dict[str, str],
        open_options: int,
        body: bytes,
        md: Any,
        pmo: Any,
        properties: Mapping[str, Any] | None,
        direct: Callable[[MQSession, Any], None],
        *,
        object_type: int | None = None,
    ) -> None:
        """A put outside syncpoint.

        While connected and with nothing older waiting in the outbox (so that order holds),
        ``direct(session, pmo)`` puts it at once on the application's connection, as plain ``ibmmq`` does:
        the call returns once MQPUT completed, MQ's output fields are in ``md`` and ``pmo``, and a refusal
        raises (a resilientmq error that is also the ``MQMIError`` with MQ's reason). Otherwise
        (unreachable, older messages waiting, ``async_puts``, the connection breaking during the put, or a
        queue that is full or put-inhibited) the message goes to the outbox and this returns at once.
        ``object_type`` (put1, publish): check the destination exists before buffering while connected, so
        it fails at once.
        """
        c = self.mqi.CMQC
        options = int(pmo.Options) if pmo is not None else 0
        if codec.is_none_id(md.MsgId) and not options & c.MQPMO_NEW_MSG_ID:
            md.MsgId = codec.new_msg_id()  # before the put: a copy sent again after a break carries it too
        asked = md.get()  # as asked for, before MQ fills in its output fields (encoded only if buffered)
        if not self.async_puts and self._put_now(what, pmo if pmo is not None else self.mqi.PMO(), direct):
            return
        if object_type is not None:
            self.check_destination(od_fields, object_type)
        fields = codec.encode_fields(asked, type(md))
        self.accept(kind, od_fields, open_options, body, fields, pmo, properties)

    def _put_now(self, what: str, pmo: Any, direct: Callable[[MQSession, Any], None]) -> bool:
        """Put on the live connection now; False when the message is to be buffered instead."""
        session = self.live_session()
        if session is None or len(self._core.outbox):
            return False
        try:
            with session.errors(what):
                direct(session, pmo)
        except ConnectionLostError:
            return False  # MQ may have it or not: buffered and sent again (at least once, same MsgId)
        except ResilientMQError:
            raise  # refused for good, as ibmmq raises it
        except self.mqi.MQMIError as exc:
            if disposition(int(exc.reason)) is not Disposition.BACKPRESSURE:
                raise  # MQ's own answer (an option error, a warning), unchanged
            return False  # the queue cannot take it now: buffered and retried, as in an outage
        self.count("puts_direct")
        return True

    def accept(
        self,
        kind: str,
        od_fields: dict[str, str],
        open_options: int,
        body: bytes,
        md_fields: dict[str, Any],
        pmo: Any,
        properties: Mapping[str, Any] | None,
    ) -> None:
        """Hand one message to the outbox; message properties are read now (a handle dies with its
        connection)."""
        mqi = self.mqi
        c = mqi.CMQC
        options = int(pmo.Options) if pmo is not None else 0
        props = codec.properties_from_mapping(mqi, properties) if properties else []
        handle = int(pmo.OriginalMsgHandle or 0) if pmo is not None else 0
        if handle not in (0, c.MQHM_NONE, c.MQHM_UNUSABLE_HMSG):
            props = self._handle_properties(handle) + props
        headers = {
            "kind": kind,
            "od": od_fields,
            "oo": open_options,
            "md": md_fields,
            "pmo": options,
            "props": props,
        }
        destination = od_fields.get("ObjectName") or od_fields.get("ObjectString") or ""
        msg_id = codec.decode_value(md_fields.get("MsgId")) or b""
        key = bytes(msg_id).hex() if not codec.is_none_id(msg_id) else os.urandom(16).hex()
        self._core.outbox.put([NewMessage(destination, body, headers, key)])

    def _handle_properties(self, hmsg: int) -> list[list[Any]]:
        mqi = self.mqi
        try:
            hconn = self.qmgr.get_handle()
        except mqi.PYIFError:
            hconn = mqi.CMQC.MQHC_UNASSOCIATED_HCONN
        try:
            return codec.read_handle_properties(mqi, hconn, hmsg)
        except (mqi.MQMIError, mqi.PYIFError) as exc:
            raise InvalidMessageError(
                f"could not read the properties of message handle {hmsg} ({exc}); pass properties= instead"
            ) from exc

    @contextlib.contextmanager
    def property_handle(self, pmo: Any, properties: Mapping[str, Any] | None) -> Iterator[None]:
        """For a put with ``properties=``: a message handle on the application's connection (with the
        properties of the PMO's own handle too), in the PMO for the call, deleted afterwards."""
        if not properties:
            yield
            return
        mqi = self.mqi
        c = mqi.CMQC
        own = int(pmo.OriginalMsgHandle or 0)
        props = codec.properties_from_mapping(mqi, properties)
        if own not in (0, c.MQHM_NONE, c.MQHM_UNUSABLE_HMSG):
            props = self._handle_properties(own) + props
        handle = mqi.MessageHandle(self.qmgr)
        try:
            for name, value, ptype in props:
                handle.properties.set(name, codec.decode_value(value), property_type=ptype)
            pmo.OriginalMsgHandle = handle.msg_handle
            yield
        finally:
            pmo.OriginalMsgHandle = own
            with contextlib.suppress(Exception):
                handle.dlt()

    def release_output(self) -> None:
        """A queue object was closed: the sender closes the handles nothing open needs any more."""
        session = self.live_session()
        if session is not None:
            session.release_unwanted()

    def check_destination(self, fields: dict[str, str], object_type: int) -> None:
        """While connected, make sure a put1/publish destination exists and may be used (once per connection),
        so unknown or forbidden destinations fail at once rather than in the failed list."""
        session = self.live_session()
        if session is None:
            return
        key = (fields.get("ObjectName", ""), fields.get("ObjectQMgrName", ""), object_type)
        seen_key, seen = self._validated
        if seen_key == session.epoch and key in seen:
            return
        mqi = self.mqi
        c = mqi.CMQC
        od = mqi.OD(
            ObjectType=object_type, ObjectName=key[0].encode("utf-8"), ObjectQMgrName=key[1].encode("utf-8")
        )
        if object_type == c.MQOT_TOPIC and fields.get("ObjectString"):
            od.Version = c.MQOD_VERSION_4
            od.set_vs("ObjectString", fields["ObjectString"].encode("utf-8"))
        try:
            with session.errors(f"MQOPEN {key[0]}"):
                opened = mqi.Queue(self.qmgr, od, c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING)
                opened.close()
        except ConnectionLostError:
            return  # buffered; the sender meets it on the next connection
        if seen_key != session.epoch:
            seen = set()
        seen.add(key)
        self._validated = (session.epoch, seen)

    def pcf(self, session: MQSession) -> Any:
        """The MQI module's ``PCFExecute`` for ``session`` (one per connection: its reply queue dies)."""
        cached_key, pcf = self._pcf
        if cached_key != session.epoch or pcf is None:
            if pcf is not None:
                forget_handle(getattr(pcf, "reply_queue", None))
            pcf = self.mqi.PCFExecute(self.qmgr)
            self._pcf = (session.epoch, pcf)
        return pcf


def forget_handle(queue: Any) -> None:
    """Make a queue object of a connection that is gone forget its handle, so nothing closes it later on
    another connection (where the same number may name another object)."""
    if queue is not None:
        with contextlib.suppress(Exception):
            queue.set_handle(None)
