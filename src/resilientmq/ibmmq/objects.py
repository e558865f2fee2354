"""Queues and subscriptions that outlive their connection: reopened (or resumed) after a reconnect.

``ResilientQueue`` and ``ResilientSubscription`` are public through :mod:`resilientmq.ibmmq`. They reach
their queue manager only through its :class:`~resilientmq.ibmmq.operations.Operations` (the queue
manager's public ``operations``); the session reopens them through :meth:`reopen`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from resilientmq.core.errors import ConnectionLostError

from .codec import od_fields
from .loader import concrete_class
from .operations import Operations, forget_handle
from .session import MQSession
from .settings import copy_struct, text

__all__ = ["ResilientQueue", "ResilientSubscription"]

log = logging.getLogger("resilientmq.ibmmq")

_MATCH_FIELDS = ("MsgId", "CorrelId", "GroupId", "MsgSeqNumber", "Offset", "Encoding", "CodedCharSetId")


def operations_of(qmgr: Any, what: str) -> Operations:
    """The :class:`Operations` of a resilient queue manager; a TypeError for anything else."""
    ops = getattr(qmgr, "operations", None)
    if not isinstance(ops, Operations):
        raise TypeError(f"{what} needs a ResilientWebSphereMQQueueManager, got {type(qmgr).__name__}")
    return ops


class _ResilientObject:
    """What queues and subscriptions share: their get with retry, browse-cursor recovery and reopen state."""

    _rmq_ops: Operations
    _rmq_opened: int | None  # the epoch of the session (connection) it is open on
    _rmq_seen: set[bytes]
    _rmq_cursor: int | None  # the epoch of the session its browse cursor lives on
    _rmq_closed: bool

    def _rmq_ensure_open(self, session: MQSession, default_options: int) -> None:
        raise NotImplementedError

    def _rmq_base_get(self, max_length: int | None, md: Any, gmo: Any, kwargs: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _rmq_get(self, max_length: int | None, opts: Sequence[Any], kwargs: dict[str, Any]) -> bytes:
        ops = self._rmq_ops
        mqi = ops.mqi
        c = mqi.CMQC
        md, gmo = ops.q_args(opts, put=False)
        if gmo is None:
            gmo = mqi.GMO()
        options = int(gmo.Options)
        browse = options & (c.MQGMO_BROWSE_FIRST | c.MQGMO_BROWSE_NEXT | c.MQGMO_BROWSE_MSG_UNDER_CURSOR)
        default_open = c.MQOO_BROWSE if browse else c.MQOO_INPUT_AS_Q_DEF
        match = {name: getattr(md, name) for name in _MATCH_FIELDS if hasattr(md, name)}
        wait_deadline = None
        if options & c.MQGMO_WAIT and gmo.WaitInterval != c.MQWI_UNLIMITED:
            wait_deadline = time.monotonic() + max(int(gmo.WaitInterval), 0) / 1000

        def once(session: MQSession) -> bytes:
            self._rmq_ensure_open(session, default_open)
            original_wait = gmo.WaitInterval
            if wait_deadline is not None:
                # Time spent waiting for a reconnection counts against the wait interval.
                gmo.WaitInterval = max(0, int((wait_deadline - time.monotonic()) * 1000))
            try:
                return self._rmq_get_positioned(max_length, md, gmo, kwargs, options, match)
            finally:
                gmo.WaitInterval = original_wait
                gmo.Options = options

        if options & (c.MQGMO_SYNCPOINT | c.MQGMO_SYNCPOINT_IF_PERSISTENT):
            return ops.in_uow("MQGET", once)
        return ops.run("MQGET", once)

    def _rmq_get_positioned(
        self,
        max_length: int | None,
        md: Any,
        gmo: Any,
        kwargs: dict[str, Any],
        options: int,
        match: dict[str, Any],
    ) -> bytes:
        c = self._rmq_ops.mqi.CMQC
        if options & c.MQGMO_BROWSE_FIRST:
            self._rmq_seen = set()
        lost_cursor = (
            options & c.MQGMO_BROWSE_NEXT
            and self._rmq_cursor is not None
            and self._rmq_cursor != self._rmq_opened
        )
        if lost_cursor:
            # The cursor died with the old connection: browse again from the first message, skipping the
            # MsgIds already seen.
            gmo.Options = (options & ~c.MQGMO_BROWSE_NEXT) | c.MQGMO_BROWSE_FIRST
        while True:
            for name, value in match.items():
                setattr(md, name, value)
            body = self._rmq_base_get(max_length, md, gmo, kwargs)
            if not options & (c.MQGMO_BROWSE_FIRST | c.MQGMO_BROWSE_NEXT):
                return body
            self._rmq_cursor = self._rmq_opened
            gmo.Options = options
            msg_id = bytes(md.MsgId)
            if not lost_cursor or msg_id not in self._rmq_seen:
                self._rmq_seen.add(msg_id)
                return body


class ResilientQueue(_ResilientObject):
    """An MQI ``Queue`` that remembers how it was opened and reopens after a reconnect.

    ``ResilientQueue(qmgr, q_desc=None, open_options=None)`` like ``Queue``; ``qmgr`` must be a
    :class:`ResilientWebSphereMQQueueManager`. ``put()`` outside syncpoint is synchronous while connected
    and buffered during outages (see the package docs); ``get()``/browse/``inquire()``/``set()`` wait out
    outages; ``close()`` releases every handle it caused. A temporary dynamic queue (opened
    through a model queue) is created anew after a reconnect, under a new name: ``get_name()`` tells it, and
    ``on_recreated(old, new)`` is called.

    Beyond ``Queue``'s API, :meth:`reopen`, :meth:`output_destination`, :meth:`open_on` and :meth:`put_on`
    are the hooks the session, subscriptions and the queue manager use; applications do not need them.
    """

    _rmq_mqi: ClassVar[Any] = None
    _rmq_base: ClassVar[Any] = None

    def __new__(cls, qmgr: Any, *args: Any, **kwargs: Any) -> ResilientQueue:
        if cls._rmq_base is not None:
            return object.__new__(cls)
        ops = operations_of(qmgr, "ResilientQueue")
        concrete: type[ResilientQueue] = concrete_class(cls, "Queue", ops.mqi)
        return object.__new__(concrete)

    def __init__(
        self,
        qmgr: Any,
        *opts: Any,
        on_recreated: Callable[[str, str], None] | None = None,
    ) -> None:
        if len(opts) > 2:
            raise TypeError("Too many args")
        ops = self._rmq_ops = operations_of(qmgr, "ResilientQueue")
        self._rmq_base.__init__(self, qmgr)  # deferred: nothing opened by the base constructor
        self._rmq_template: Any = ops.od(opts[0]) if opts else None
        self._rmq_template_name = (
            text(self._rmq_template.ObjectName) if self._rmq_template is not None else ""
        )
        self._rmq_open_options: int | None = opts[1] if len(opts) == 2 else None
        self._rmq_opened = None
        self._rmq_name = self._rmq_template_name
        self._rmq_dynamic = False
        self._rmq_on_recreated = on_recreated
        self._rmq_seen = set()
        self._rmq_cursor = None
        self._rmq_closed = False
        self._rmq_fields: tuple[str, Any, dict[str, str]] | None = None
        self._rmq_lock = threading.Lock()
        ops.register(self)
        if self._rmq_open_options is not None:
            self._rmq_open_if_connected()

    def __repr__(self) -> str:
        return f"<ResilientQueue {self._rmq_name or '?'}>"

    def __del__(self) -> None:
        # The registry holds it weakly, so it is gone from there already; the base closes an open handle.
        with contextlib.suppress(Exception):
            self._rmq_base.__del__(self)

    # -- Queue's API -------------------------------------------------------------------------------------
    def open(self, q_desc: Any, *opts: Any) -> None:
        """Remember ``q_desc`` and (if given) the open options; open now if connected."""
        if len(opts) > 1:
            raise TypeError("Too many args")
        if self._rmq_opened is not None and not self._rmq_closed:
            raise self._rmq_mqi.PYIFError("The Queue is already open")
        self._rmq_template = self._rmq_ops.od(q_desc)
        self._rmq_template_name = self._rmq_name = text(self._rmq_template.ObjectName)
        self._rmq_closed = False
        self._rmq_ops.register(self)
        if opts:
            self._rmq_open_options = opts[0]
            self._rmq_open_if_connected()

    def put(self, msg: Any, *opts: Any, properties: Mapping[str, Any] | None = None) -> None:
        """MQPUT. Outside syncpoint: at once while connected (as ``Queue.put``), else buffered and sent in
        order (see the package docs); in syncpoint: part of the unit of work.

        ``properties`` (``{"name": value}`` or ``{"name": (value, MQTYPE_*)}``) become message properties, as
        do those of a message handle in ``PMO.OriginalMsgHandle``.
        """
        ops = self._rmq_ops
        mqi = self._rmq_mqi
        c = mqi.CMQC
        md, pmo = ops.q_args(opts, put=True)
        body = ops.body(msg, md)
        self._rmq_check_usable()
        if self._rmq_open_options is None:
            self._rmq_open_options = c.MQOO_OUTPUT  # deferred open, as Queue.put does
        elif not self._rmq_open_options & c.MQOO_OUTPUT:
            raise mqi.MQMIError(c.MQCC_FAILED, c.MQRC_NOT_OPEN_FOR_OUTPUT)
        if pmo is not None and pmo.Options & c.MQPMO_SYNCPOINT:
            ops.in_uow("MQPUT", lambda session: self.put_on(session, body, md, pmo, properties))
            return
        self._rmq_open_if_connected()
        strip = (
            c.MQOO_INPUT_AS_Q_DEF | c.MQOO_INPUT_SHARED | c.MQOO_INPUT_EXCLUSIVE | c.MQOO_BROWSE
            | c.MQOO_INQUIRE | c.MQOO_SET | c.MQOO_SAVE_ALL_CONTEXT
        )  # fmt: skip
        sender_options = (self._rmq_open_options & ~strip) | c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING
        fields = self._rmq_put_fields()

        def now(session: MQSession, put_pmo: Any) -> None:
            self.put_on(session, body, md, put_pmo, properties)

        ops.send(f"MQPUT to {self._rmq_name}", "put", fields, sender_options, body, md, pmo, properties, now)

    def get(self, maxLength: int | None = None, *opts: Any, **kwargs: Any) -> bytes:
        """MQGET, waiting out outages. A wait interval keeps counting while reconnecting; after a reconnect
        the get runs once more with what is left of it (at least once). Syncpoint gets join the unit of
        work."""
        self._rmq_check_usable()
        return self._rmq_get(maxLength, opts, kwargs)

    def get_no_jms(self, max_length: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        mqi = self._rmq_mqi
        md, gmo = self._rmq_ops.q_args(args, put=False)
        gmo = gmo if gmo is not None else mqi.GMO()
        gmo.Options |= mqi.CMQC.MQGMO_NO_PROPERTIES | mqi.CMQC.MQGMO_FAIL_IF_QUIESCING
        return self.get(max_length, md, gmo, **kwargs)

    get_no_rfh2 = get_no_jms

    def inquire(self, selectors: Any) -> Any:
        """MQINQ, again on the new connection if the connection breaks."""
        self._rmq_check_usable()
        c = self._rmq_mqi.CMQC

        def run(session: MQSession) -> Any:
            self._rmq_ensure_open(session, c.MQOO_INQUIRE)
            return self._rmq_base.inquire(self, selectors)

        return self._rmq_ops.run("MQINQ", run)

    inq = inquire

    def set(self, *args: Any) -> None:
        """MQSET, again on the new connection if the connection breaks."""
        self._rmq_check_usable()
        c = self._rmq_mqi.CMQC

        def run(session: MQSession) -> None:
            self._rmq_ensure_open(session, c.MQOO_SET)
            self._rmq_base.set(self, *args)

        self._rmq_ops.run("MQSET", run)

    def close(self, options: int | None = None) -> None:
        """MQCLOSE; the queue is not reopened any more. Closing after its connection broke just forgets it.

        Every handle it caused is released: its own and the sender's output handle (messages still
        buffered for it are delivered on a handle opened and closed for them), so the queue can be deleted.
        """
        c = self._rmq_mqi.CMQC
        self._rmq_closed = True
        self._rmq_ops.unregister(self)
        session = self._rmq_ops.live_session()
        with self._rmq_lock:
            opened, self._rmq_opened = self._rmq_opened, None
            if session is not None and opened == session.epoch and self._rmq_base.get_handle(self):
                with contextlib.suppress(ConnectionLostError), session.errors("MQCLOSE"):
                    self._rmq_base.close(self, c.MQCO_NONE if options is None else options)
            self._rmq_base.set_handle(self, None)
        self._rmq_ops.release_output()

    def get_name(self) -> str:
        """The queue's name (for a temporary dynamic queue: the one it has on the current connection)."""
        return self._rmq_name

    # -- the resilience hooks ----------------------------------------------------------------------------
    def output_destination(self) -> str | None:
        """The queue's name while it is open for output (the sender may keep a handle for it)."""
        options = self._rmq_open_options
        if self._rmq_closed or options is None or not options & self._rmq_mqi.CMQC.MQOO_OUTPUT:
            return None
        return self._rmq_name

    def reopen(self, session: MQSession) -> bool:
        """Open again on a new connection, as it was opened; False when it was not open."""
        if self._rmq_closed or self._rmq_open_options is None or self._rmq_opened is None:
            return False
        self._rmq_open(session)
        return True

    def open_on(self, session: MQSession, default_options: int) -> None:
        """Make sure the queue is open on ``session`` (with ``default_options`` if none were given)."""
        self._rmq_ensure_open(session, default_options)

    def put_on(
        self, session: MQSession, body: bytes, md: Any, pmo: Any, properties: Mapping[str, Any] | None
    ) -> None:
        """MQPUT on the application's connection now, not through the outbox."""
        self._rmq_ensure_open(session, self._rmq_mqi.CMQC.MQOO_OUTPUT)
        if not properties:
            self._rmq_base.put(self, body, md, pmo)
            return
        with self._rmq_ops.property_handle(pmo, properties):
            self._rmq_base.put(self, body, md, pmo)

    # -- resilience --------------------------------------------------------------------------------------
    def _rmq_put_fields(self) -> dict[str, str]:
        """The OD fields a buffered put is sent with (made once per name; never changed afterwards)."""
        cached = self._rmq_fields
        if cached is None or cached[0] != self._rmq_name or cached[1] is not self._rmq_template:
            fields = od_fields(self._rmq_template)
            fields["ObjectName"] = self._rmq_name or fields.get("ObjectName", "")
            cached = self._rmq_fields = (self._rmq_name, self._rmq_template, fields)
        return cached[2]

    def _rmq_check_usable(self) -> None:
        if self._rmq_closed:
            raise self._rmq_mqi.PYIFError("not open")
        if self._rmq_template is None:
            raise self._rmq_mqi.PYIFError("The Queue Descriptor has not been set.")

    def _rmq_open_if_connected(self) -> None:
        """Open now when connected, so unknown or forbidden queues fail at once; otherwise on reconnect."""
        session = self._rmq_ops.live_session()
        if session is None or self._rmq_opened == session.epoch:
            return
        with contextlib.suppress(ConnectionLostError), session.errors(f"MQOPEN {self._rmq_name}"):
            self._rmq_ensure_open(session, self._rmq_open_options or 0)

    def _rmq_ensure_open(self, session: MQSession, default_options: int) -> None:
        if self._rmq_opened == session.epoch:
            return
        self._rmq_check_usable()
        if self._rmq_open_options is None:
            self._rmq_open_options = default_options
        self._rmq_open(session)

    def _rmq_open(self, session: MQSession) -> None:
        with self._rmq_lock:
            if self._rmq_opened == session.epoch:
                return
            od = self._rmq_ops.od(copy_struct(self._rmq_mqi.OD, self._rmq_template))
            self._rmq_base.set_handle(self, None)  # the handle of an older connection is dead
            self._rmq_base.open(self, od, self._rmq_open_options)
            self._rmq_opened = session.epoch
            new_name = text(od.ObjectName)
        old_name = self._rmq_name
        if od.ObjectType == self._rmq_mqi.CMQC.MQOT_Q and new_name != self._rmq_template_name:
            was_dynamic, self._rmq_dynamic = self._rmq_dynamic, True
            self._rmq_name = new_name
            if was_dynamic and new_name != old_name:
                log.warning("temporary dynamic queue %s was re-created as %s", old_name, new_name)
                self._rmq_ops.count("dynamic_queues_recreated")
                if self._rmq_on_recreated is not None:
                    try:
                        self._rmq_on_recreated(old_name, new_name)
                    except Exception:
                        log.exception("on_recreated callback raised")

    def _rmq_base_get(self, max_length: int | None, md: Any, gmo: Any, kwargs: dict[str, Any]) -> bytes:
        return self._rmq_base.get(self, max_length, md, gmo, **kwargs)  # type: ignore[no-any-return]


class ResilientSubscription(_ResilientObject):
    """A subscription that is resumed (durable) or made again (non-durable) after a reconnect.

    ``get()`` has :meth:`ResilientQueue.get`'s semantics; ``close(remove=True)`` deletes a durable
    subscription, ``close()`` keeps it for a later resume.
    """

    def __init__(
        self,
        qmgr: Any,
        *,
        topic_string: str | None,
        topic_name: str | None,
        sub_name: str | None,
        durable: bool,
        queue: str | ResilientQueue | None,
    ) -> None:
        if not topic_string and not topic_name:
            raise ValueError("subscribe needs a topic_string or a topic_name")
        if durable and not sub_name:
            raise ValueError("a durable subscription needs a sub_name")
        ops = self._rmq_ops = operations_of(qmgr, "ResilientSubscription")
        self.topic_string = topic_string
        self.topic_name = topic_name
        self.sub_name = sub_name
        self.durable = durable
        c = ops.mqi.CMQC
        if isinstance(queue, str):
            queue = ResilientQueue(qmgr, queue, c.MQOO_INPUT_AS_Q_DEF | c.MQOO_FAIL_IF_QUIESCING)
        self._rmq_queue = queue
        self._rmq_sub: Any = None
        self._rmq_opened = None
        self._rmq_seen = set()
        self._rmq_cursor = None
        self._rmq_closed = False
        self._rmq_lock = threading.Lock()
        ops.register(self)
        try:
            ops.run("MQSUB", self._rmq_subscribe)
        except BaseException:
            ops.unregister(self)
            raise

    def __repr__(self) -> str:
        return f"<ResilientSubscription {self.sub_name or ''} on {self.topic_string or self.topic_name}>"

    @property
    def queue_name(self) -> str:
        """The queue publications arrive on (a managed queue unless one was given)."""
        if self._rmq_queue is not None:
            return self._rmq_queue.get_name()
        return "" if self._rmq_sub is None else text(self._rmq_sub.sub_queue.get_name() or "")

    def get(self, max_length: int | None = None, *opts: Any, **kwargs: Any) -> bytes:
        if self._rmq_closed:
            raise self._rmq_ops.mqi.PYIFError("Subscription not open.")
        return self._rmq_get(max_length, opts, kwargs)

    def close(self, remove: bool = False) -> None:
        """Close; ``remove=True`` also deletes a durable subscription (MQCO_REMOVE_SUB)."""
        ops = self._rmq_ops
        c = ops.mqi.CMQC
        self._rmq_closed = True
        ops.unregister(self)
        session = ops.live_session()
        with self._rmq_lock:
            sub, opened, self._rmq_sub, self._rmq_opened = self._rmq_sub, self._rmq_opened, None, None
        if sub is not None and session is not None and opened == session.epoch:
            with contextlib.suppress(ConnectionLostError), session.errors("MQCLOSE subscription"):
                sub.close(
                    sub_close_options=c.MQCO_REMOVE_SUB if remove else c.MQCO_NONE,
                    close_sub_queue=self._rmq_queue is None,
                )
        if self._rmq_queue is not None:
            self._rmq_queue.close()

    # -- the resilience hooks ----------------------------------------------------------------------------
    def output_destination(self) -> str | None:
        """Subscriptions put nothing."""
        return None

    def reopen(self, session: MQSession) -> bool:
        """Resume (durable) or make again (non-durable) on a new connection; False once closed."""
        if self._rmq_closed:
            return False
        self._rmq_subscribe(session)
        return True

    # -- resilience --------------------------------------------------------------------------------------
    def _rmq_subscribe(self, session: MQSession) -> None:
        ops = self._rmq_ops
        mqi = ops.mqi
        c = mqi.CMQC
        with self._rmq_lock:
            if self._rmq_opened == session.epoch:
                return
            options = c.MQSO_CREATE | c.MQSO_FAIL_IF_QUIESCING
            options |= c.MQSO_DURABLE | c.MQSO_RESUME if self.durable else c.MQSO_NON_DURABLE
            if self._rmq_queue is None:
                options |= c.MQSO_MANAGED
            sd = mqi.SD(Options=options)
            if self.sub_name:
                sd.set_vs("SubName", self.sub_name.encode("utf-8"))
            if self.topic_name:
                sd.ObjectName = self.topic_name.encode("utf-8")
            if self.topic_string:
                sd.set_vs("ObjectString", self.topic_string.encode("utf-8"))
            if self._rmq_sub is not None:
                self._rmq_sub.forget()
            subscription_class: Any = concrete_class(_QuietSubscription, "Subscription", mqi)
            sub = subscription_class(ops.qmgr)
            if self._rmq_queue is not None:
                self._rmq_queue.open_on(session, c.MQOO_INPUT_AS_Q_DEF)
                sub.sub(sub_desc=sd, sub_queue=self._rmq_queue)
            else:
                sub.sub(sub_desc=sd)
            self._rmq_sub, self._rmq_opened = sub, session.epoch

    def _rmq_ensure_open(self, session: MQSession, default_options: int) -> None:
        self._rmq_subscribe(session)

    def _rmq_base_get(self, max_length: int | None, md: Any, gmo: Any, kwargs: dict[str, Any]) -> bytes:
        # The MQI's Subscription gets through a plain Queue on the subscription's queue handle (the given
        # queue's own handle when one was given).
        return self._rmq_sub.sub_queue.get(max_length, md, gmo, **kwargs)  # type: ignore[no-any-return]


class _QuietSubscription:
    """The MQI ``Subscription`` with a safe finalizer.

    ibmmq's finalizer closes the subscription handle on the queue manager object's *current* connection;
    after a reconnect that handle belongs to a connection that is gone, and MQ reuses handle numbers per
    connection, so it could close an unrelated live handle. A forgotten subscription closes nothing.
    """

    _rmq_base: ClassVar[Any] = None
    _rmq_forgotten = False

    def forget(self) -> None:
        """This subscription's connection is gone: close nothing of it, ever."""
        self._rmq_forgotten = True
        forget_handle(getattr(self, "sub_queue", None))

    def __del__(self) -> None:
        if self._rmq_forgotten:
            return
        with contextlib.suppress(Exception):
            self._rmq_base.__del__(self)
