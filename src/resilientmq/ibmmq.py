"""IBM MQ that survives queue manager outages: ``ResilientWebSphereMQQueueManager`` and ``ResilientQueue``.

Drop-in for IBM's ``ibmmq`` (or the older ``pymqi``)::

    from resilientmq import ResilientWebSphereMQQueueManager
    from ibmmq import CMQC, MD, GMO

    qmgr = ResilientWebSphereMQQueueManager(
        "QM1", "DEV.APP.SVRCONN", "mq1(1414),mq2(1414)", "app", "secret", buffer_path="/var/lib/app/mq.db"
    )
    q = qmgr.open_queue("DEV.QUEUE.1", CMQC.MQOO_OUTPUT | CMQC.MQOO_INPUT_SHARED)
    q.put(b"order 1", MD(Persistence=CMQC.MQPER_PERSISTENT))   # buffered while MQ is unreachable
    body = q.get(None, MD(), GMO(Options=CMQC.MQGMO_WAIT, WaitInterval=5000))  # waits out outages
    qmgr.disconnect()                                           # flushes, then disconnects

The queue manager object *is* an instance of the MQI module's ``QueueManager`` (and a queue of its
``Queue``): the module is chosen at run time (``mqi=``), so each class is combined with that module's class
when first constructed (one subclass per module, reused). Code written for ``ibmmq.QueueManager`` keeps
working; what changes:

* ``put()``/``put1()``/``publish()`` outside syncpoint go through the outbox: they return once the message
  is accepted (durably, with ``buffer_path``) and a sender thread puts it, in order, on a connection of its
  own; a put counts as delivered when MQPUT returned OK. The caller's MD gets its ``MsgId`` at once (one is
  assigned unless ``MQPMO_NEW_MSG_ID`` asks MQ to); other output fields (``PutDate``, ...) are not filled in.
  The MD and the PMO's options are kept as given; message properties are read from the PMO's
  ``OriginalMsgHandle`` (or ``properties=``) at once, since a handle dies with its connection. An ``Expiry``
  keeps counting while the message waits. Unknown or forbidden destinations fail at once while connected;
  failures met later end in ``get_failed_messages()`` with the reason code; ``flush()`` waits.
* ``get()``, browse, ``inquire()``, ``set()``, PCF and opens wait for the connection to come back (bounded by
  ``operation_timeout`` and the reconnect policy) and run again; queues and subscriptions are reopened.
  A non-syncpoint destructive get whose connection breaks may lose that message (MQ's own rule for client
  connections): consume under syncpoint and ``commit()`` when that matters.
* Units of work never retry silently: a break inside one makes ``commit()`` raise
  :class:`~resilientmq.TransactionRolledBackError` (MQ backed it out), ``MQRC_CALL_INTERRUPTED`` on commit
  :class:`~resilientmq.OutcomeUnknownError`. :meth:`ResilientWebSphereMQQueueManager.put_batch` replays a
  rolled-back batch. A connection that breaks *during* MQCMIT is reported as rolled back too: MQ backs out
  the unit of work of a connection that ends, and a client cannot see whether the commit got there first;
  in that rare case a replay duplicates (at least once), it never loses.
* Errors: reason codes in :data:`resilientmq._mq.reasons.REASONS` become resilientmq errors that are also
  ``MQMIError`` instances (``.comp``, ``.reason``); other reasons pass through unchanged.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .core.client import ClientCore, ResilientClientMixin
from .core.options import DEFAULT_DRAIN_TIMEOUT, ResilienceOptions
from ._mq import codec
from ._mq.connection import BINDINGS, Connector, copy_struct, make_settings, str_or_none, text
from ._mq.loader import concrete_class, load_mqi
from ._mq.objects import ResilientQueue, ResilientSubscription, forget_handle, od_fields, property_handle
from ._mq.reasons import Disposition, disposition, mq_error, translate
from ._mq.sender import Sender
from .core.buffer import DEFAULT_BLOCK_TIMEOUT, DEFAULT_MAX_MESSAGES, NewMessage, OverflowPolicy
from .core.errors import (
    ClientClosedError,
    ConnectionLostError,
    InvalidMessageError,
    OutcomeUnknownError,
    ReconnectFailedError,
    TransactionRolledBackError,
)
from .core.policy import ReconnectPolicy
from .core.supervisor import ConnectionState, Endpoints

__all__ = ["ResilientQueue", "ResilientSubscription", "ResilientWebSphereMQQueueManager"]

# Defined in a private module, documented and imported from here.
ResilientQueue.__module__ = ResilientSubscription.__module__ = __name__

log = logging.getLogger("resilientmq.ibmmq")

T = TypeVar("T")


@dataclass
class _UnitOfWork:
    generation: int | None = None  # the connection the unit of work lives on
    operations: int = 0
    broken: BaseException | None = None


class ResilientWebSphereMQQueueManager(ResilientClientMixin):
    """An MQI ``QueueManager`` that reconnects, buffers puts and reopens what was open.

    ``queue_manager_name``, ``channel``, ``connection_info`` (``'host(port)'``, or a comma list for a
    multi-instance queue manager: the supervisor fails over between them), ``user``, ``password`` as in
    ``ibmmq.connect()``; without ``channel``/``connection_info`` the connection is local (bindings).
    ``use_ssl`` with ``ssl_cipher_spec`` (and ``key_repository``, unless ``MQSSLKEYR`` is set) for TLS.
    ``mq_client_reconnect=True`` (or an ``MQCNO_RECONNECT*`` option) also turns on MQ's own automatic client
    reconnection; this class still reconnects when MQ's gives up.

    Resilience: ``reconnect_tries`` (default 10, -1 forever), ``reconnect_interval_seconds`` (default 60:
    the longest wait between attempts) or a ``reconnect_policy``; ``buffer_max_messages`` (10,000),
    ``buffer_path`` (durable buffer), ``buffer_overflow``, ``buffer_block_timeout``, ``buffer_fsync``,
    ``drain_timeout`` (how long ``disconnect()`` flushes). ``operation_timeout``: how long a get, inquire,
    open or PCF command waits for a reconnection (None: until the policy gives up).
    ``background_connect=True`` returns at once and connects in the background (puts are buffered).
    ``mqi``: ``"ibmmq"`` (the default, falling back to ``"pymqi"``) or a module object such as
    ``resilientmq.testing.mqsim.Simulator().mqi``. ``cd``/``cno``/``sco``/``csp``: MQI structures whose
    fields are copied into every connection (the channel fields above win).
    """

    _rmq_mqi: ClassVar[Any] = None
    _rmq_base: ClassVar[Any] = None
    bytes_encoding: str
    default_ccsid: int

    def __new__(cls, *args: Any, **kwargs: Any) -> ResilientWebSphereMQQueueManager:
        if cls._rmq_base is not None:
            return object.__new__(cls)
        mqi = load_mqi(kwargs.get("mqi"))
        concrete: type[ResilientWebSphereMQQueueManager] = concrete_class(cls, "QueueManager", mqi)
        return object.__new__(concrete)

    def __init__(
        self,
        queue_manager_name: str | bytes | None = None,
        channel: str | None = None,
        connection_info: str | None = None,
        user: str | None = None,
        password: str | None = None,
        *,
        use_ssl: bool = False,
        ssl_cipher_spec: str | None = None,
        key_repository: str | None = None,
        reconnect_tries: int | None = None,
        reconnect_interval_seconds: float | ReconnectPolicy | None = None,
        reconnect_policy: ReconnectPolicy | None = None,
        buffer_max_messages: int = DEFAULT_MAX_MESSAGES,
        buffer_path: str | os.PathLike[str] | None = None,
        buffer_overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        buffer_block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
        buffer_fsync: bool = False,
        drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
        mq_client_reconnect: bool | int = False,
        operation_timeout: float | None = None,
        background_connect: bool = False,
        mqi: Any = None,
        cd: Any = None,
        cno: Any = None,
        sco: Any = None,
        csp: Any = None,
        bytes_encoding: str = "utf8",
        default_ccsid: int = 1208,
        name: str | None = None,
    ) -> None:
        # As with QueueManager(None): nothing named, nothing to connect to until connect*() is called.
        deferred = queue_manager_name is None and channel is None and connection_info is None and cd is None
        settings, endpoints = make_settings(
            self._rmq_mqi, queue_manager_name, channel, connection_info, user, password, use_ssl,
            ssl_cipher_spec, key_repository, mq_client_reconnect, cd, cno, sco, csp, operation_timeout,
        )  # fmt: skip
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
        # No name: the connection is made by the supervisor, not by the base constructor.
        self._rmq_base.__init__(self, None, True, bytes_encoding=bytes_encoding, default_ccsid=default_ccsid)
        self._rmq_settings = settings
        self._rmq_cond = threading.Condition(threading.RLock())
        self._rmq_generation = 0  # bumped by every new connection
        self._rmq_epoch = 0  # the supervisor epoch of the current generation
        self._rmq_broken = -1  # a generation known to have broken
        self._rmq_sender_qm: Any = None
        self._rmq_objects: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._rmq_object_ids = itertools.count()
        self._rmq_uow_lock = threading.Lock()
        self._rmq_uow = _UnitOfWork()
        self._rmq_validated: tuple[int, set[tuple[str, str, int]]] = (-1, set())
        self._rmq_helpers: dict[str, Any] = {}
        self._rmq_pcf: tuple[int, Any] = (-1, None)
        self._rmq_counts_lock = threading.Lock()
        self._rmq_counts = dict.fromkeys(
            ("uow_commits", "uow_rolled_back", "uow_outcome_unknown", "batch_replays", "operation_retries",
             "objects_reopened", "dynamic_queues_recreated", "requests_resent"),
            0,
        )  # fmt: skip
        self._rmq_closed = False
        client_name = name or f"ibmmq:{settings.queue_manager_name or 'default'}"
        self._rmq = ClientCore(
            client_name, options, Connector(self), Endpoints(endpoints), Sender(self), max_in_flight=1
        )
        if deferred:
            return
        try:
            self._rmq.supervisor.connect(wait=not background_connect)
        except BaseException:
            self._rmq_closed = True
            self._rmq.close(0)
            raise

    def __del__(self) -> None:
        # The base class disconnects on garbage collection; the supervisor owns the connections here.
        pass

    def __enter__(self) -> ResilientWebSphereMQQueueManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._rmq.name} {self.connection_state.value}>"

    # -- QueueManager's connect calls, routed through the supervisor --------------------------------------
    def connect(self, name: Any) -> None:
        """MQCONN, for code that made the queue manager with ``None``: a local (bindings) connection."""
        self._rmq_start(name, {})

    def connect_with_options(self, name: Any, *args: Any, **kwargs: Any) -> None:
        """MQCONNX with ``user``, ``password``, ``opts``, ``cno``, ``cd``, ``sco``, ``csp``, as in ibmmq: the
        settings are kept and the supervisor connects (and later reconnects) with them."""
        if len(args) > 2:
            raise TypeError("Too many positional args provided")
        if args:
            kwargs["cd"] = args[0]
        if len(args) == 2:
            kwargs["sco"] = args[1]
        self._rmq_start(name, kwargs)

    connectWithOptions = connect_with_options

    def connect_tcp_client(
        self,
        name: Any,
        cd: Any,
        channel: Any,
        conn_name: Any,
        user: Any = None,
        password: Any = None,
        cno: Any = None,
        csp: Any = None,
        sco: Any = None,
        bno: Any = None,
    ) -> None:
        """A client connection, as ``ibmmq``'s: through the supervisor."""
        cd = copy_struct(self._rmq_mqi.CD, cd)
        cd.ChannelName = text(channel).encode("ascii")
        cd.ConnectionName = text(conn_name).encode("ascii")
        self._rmq_start(
            name, {"cd": cd, "user": user, "password": password, "cno": cno, "csp": csp, "sco": sco}
        )

    connectTCPClient = connect_tcp_client

    def _rmq_start(self, name: Any, kwargs: dict[str, Any]) -> None:
        mqi = self._rmq_mqi
        if self._rmq_closed:
            raise ClientClosedError("this queue manager connection was disconnected for good")
        if self._rmq.supervisor.state is not ConnectionState.DISCONNECTED:
            raise mqi.PYIFError("already connected (the connection is supervised: no second connect)")
        cd, sco, cno = kwargs.get("cd"), kwargs.get("sco"), kwargs.get("cno")
        if cno is None and kwargs.get("opts"):
            cno = mqi.CNO(Options=kwargs["opts"])
        cipher = text(cd.SSLCipherSpec) if cd is not None else ""
        settings, endpoints = make_settings(
            mqi,
            name,
            text(cd.ChannelName) if cd is not None else None,
            text(cd.ConnectionName) if cd is not None else None,
            str_or_none(kwargs.get("user")),
            str_or_none(kwargs.get("password")),
            bool(cipher),
            cipher or None,
            (text(sco.KeyRepository) or None) if sco is not None else None,
            self._rmq_settings.cno_options or False,
            cd,
            cno,
            sco,
            kwargs.get("csp"),
            self._rmq_settings.operation_timeout,
        )
        self._rmq_settings = settings
        self._rmq.supervisor.endpoints = Endpoints(endpoints)
        self._rmq.supervisor.connect(wait=True)

    # -- the public API beyond QueueManager ------------------------------------------------------------
    def open_queue(
        self,
        name: str | bytes | Any,
        open_options: int | None = None,
        *,
        on_recreated: Callable[[str, str], None] | None = None,
    ) -> ResilientQueue:
        """A :class:`ResilientQueue` for ``name`` (or an ``OD``), opened now with ``open_options`` if given.

        ``on_recreated(old_name, new_name)`` is called when a temporary dynamic queue is created anew after
        a reconnect.
        """
        if open_options is None:
            return ResilientQueue(self, name, on_recreated=on_recreated)
        return ResilientQueue(self, name, open_options, on_recreated=on_recreated)

    def put1(self, q_desc: Any, msg: Any, *opts: Any, properties: Mapping[str, Any] | None = None) -> None:
        """MQPUT1. Outside syncpoint the message is buffered and sent in order (see the module docs)."""
        md, pmo = self._rmq_q_args(opts, put=True)
        body = self._rmq_body(msg, md)
        od = self._rmq_od(q_desc)
        c = self._rmq_mqi.CMQC
        if pmo is not None and pmo.Options & c.MQPMO_SYNCPOINT:
            self._rmq_in_uow("MQPUT1", lambda generation: self._rmq_put1_now(body, md, pmo, od, properties))
            return
        fields = od_fields(od)
        self._rmq_check_destination(fields, c.MQOT_Q)
        self._rmq_accept("put1", fields, 0, body, md, pmo, properties)

    def publish(
        self,
        topic_string: str | None,
        msg: Any,
        *opts: Any,
        topic_name: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish on a topic (a topic string and/or an administrative topic object); buffered like puts."""
        if not topic_string and not topic_name:
            raise ValueError("publish needs a topic_string or a topic_name")
        md, pmo = self._rmq_q_args(opts, put=True)
        body = self._rmq_body(msg, md)
        if pmo is not None and pmo.Options & self._rmq_mqi.CMQC.MQPMO_SYNCPOINT:
            raise InvalidMessageError(
                "publish() sends outside syncpoint; use a Topic on this queue manager for that"
            )
        fields = {"ObjectName": topic_name or "", "ObjectString": topic_string or ""}
        if topic_name:
            self._rmq_check_destination(fields, self._rmq_mqi.CMQC.MQOT_TOPIC)
        self._rmq_accept("pub", fields, 0, body, md, pmo, properties)

    def subscribe(
        self,
        topic_string: str | None = None,
        *,
        topic_name: str | None = None,
        sub_name: str | None = None,
        durable: bool = False,
        queue: str | ResilientQueue | None = None,
    ) -> ResilientSubscription:
        """Subscribe; after a reconnect a durable subscription is resumed (MQSO_RESUME), a non-durable one
        made again (what was published meanwhile is lost, as MQ promises for non-durable subscriptions).

        Publications go to a managed queue, or to ``queue`` when given.
        """
        return ResilientSubscription(
            self,
            topic_string=topic_string,
            topic_name=topic_name,
            sub_name=sub_name,
            durable=durable,
            queue=queue,
        )

    def begin(self) -> None:
        """Start a unit of work: the following syncpoint puts and gets belong to it until commit/backout.

        Local units of work need no MQBEGIN (client connections refuse it), so none is issued; syncpoint
        calls without ``begin()`` form a unit of work too, as in MQ.
        """
        with self._rmq_uow_lock:
            if self._rmq_uow.operations or self._rmq_uow.broken is not None:
                raise RuntimeError(
                    "a unit of work is already in progress on this connection: commit() or backout()"
                )
            self._rmq_uow = _UnitOfWork()

    def commit(self) -> None:
        """MQCMIT. Raises :class:`TransactionRolledBackError` when the connection broke inside the unit of
        work (the queue manager backed it out: do it again), :class:`OutcomeUnknownError` when MQ cannot say
        (``MQRC_CALL_INTERRUPTED``): never retried here."""
        with self._rmq_uow_lock:
            uow, self._rmq_uow = self._rmq_uow, _UnitOfWork()
        if uow.broken is not None:
            raise self._rmq_rolled_back("MQCMIT", uow.broken, count=False) from uow.broken
        generation = uow.generation
        if generation is None:
            if self._rmq_connected_generation() is None:
                return  # nothing was done under syncpoint through this object, and there is no connection
            generation = self._rmq_generation
        elif generation != self._rmq_connected_generation():
            if not uow.operations:
                return  # nothing was done in it
            raise self._rmq_rolled_back("MQCMIT", None)
        try:
            with self._rmq_errors("MQCMIT", generation, committing=True):
                self._rmq_base.commit(self)
        except TransactionRolledBackError:
            self._rmq_count("uow_rolled_back")
            raise
        except OutcomeUnknownError:
            self._rmq_count("uow_outcome_unknown")
            raise
        if uow.operations:
            self._rmq_count("uow_commits")

    def backout(self) -> None:
        """MQBACK. A unit of work whose connection broke is already backed out: nothing to do then."""
        with self._rmq_uow_lock:
            uow, self._rmq_uow = self._rmq_uow, _UnitOfWork()
        generation = self._rmq_connected_generation()
        if generation is None or (uow.generation is not None and uow.generation != generation):
            return
        with contextlib.suppress(ConnectionLostError), self._rmq_errors("MQBACK", generation):
            self._rmq_base.backout(self)

    def put_batch(
        self,
        queue: str | ResilientQueue,
        messages: Iterable[Any],
        *,
        max_replays: int = 3,
    ) -> int:
        """Put ``messages`` (bytes/str, or ``(body, MD)``) in one unit of work, all or none.

        If the unit of work is rolled back (the connection broke), the whole batch is put again once the
        connection is back, up to ``max_replays`` times; returns how many replays it took. Every message keeps
        the MsgId of its first attempt. An :class:`OutcomeUnknownError` is raised, not replayed.
        """
        if max_replays < 0:
            raise ValueError(f"max_replays must be >= 0, got {max_replays!r}")
        target = queue if isinstance(queue, ResilientQueue) else self._rmq_helper_queue("out:" + queue, queue)
        mqi = self._rmq_mqi
        c = mqi.CMQC
        batch = []
        for item in messages:
            body, md = item if isinstance(item, tuple) else (item, None)
            md = codec.restore_md(mqi, codec.md_fields(md)) if md is not None else mqi.MD()
            data = self._rmq_body(body, md)
            if codec.is_none_id(md.MsgId):
                md.MsgId = codec.new_msg_id()
            batch.append((data, codec.md_fields(md)))
        replays = 0
        while True:
            self.begin()
            try:
                for data, fields in batch:
                    pmo = mqi.PMO(Options=c.MQPMO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING)
                    target.put(data, codec.restore_md(mqi, fields), pmo)
                self.commit()
                return replays
            except TransactionRolledBackError as exc:
                self.backout()
                if replays >= max_replays:
                    raise
                replays += 1
                self._rmq_count("batch_replays")
                log.warning(
                    "%s: batch of %d rolled back (%s); putting it again", self._rmq.name, len(batch), exc
                )
            except BaseException:
                self.backout()
                raise

    def request(
        self,
        queue: str | ResilientQueue,
        msg: Any,
        md: Any = None,
        *,
        timeout: float = 30.0,
        reply_md: Any = None,
        reply_queue: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> bytes:
        """Send a request and wait for the reply whose CorrelId is the request's MsgId (or its CorrelId with
        ``MQRO_PASS_CORREL_ID``). Returns the reply body; ``reply_md`` receives its MD.

        Replies go to a temporary dynamic queue of this connection unless ``reply_queue`` names one. If a
        reconnect recreates the temporary queue, the request is sent again (the responder may see it twice).
        Raises :class:`TimeoutError` when no reply came within ``timeout`` seconds.
        """
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        mqi = self._rmq_mqi
        c = mqi.CMQC
        deadline = time.monotonic() + timeout
        target = queue if isinstance(queue, ResilientQueue) else self._rmq_helper_queue("out:" + queue, queue)
        replies = self._rmq_reply_queue(reply_queue)
        request_md = codec.restore_md(mqi, codec.md_fields(md)) if md is not None else mqi.MD()
        body = self._rmq_body(msg, request_md)
        request_md.MsgType = c.MQMT_REQUEST
        pass_correl = bool(request_md.Report & c.MQRO_PASS_CORREL_ID)
        reply_generation: int | None = None
        while True:
            if reply_generation is None:
                reply_generation = self._rmq_send_request(target, replies, body, request_md, properties)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no reply on {replies.get_name()} within {timeout:g} s "
                    f"(request MsgId {bytes(request_md.MsgId).hex()})"
                )
            got = reply_md if reply_md is not None else mqi.MD()
            got.MsgId = b""
            got.CorrelId = request_md.CorrelId if pass_correl else request_md.MsgId
            gmo = mqi.GMO(
                Options=c.MQGMO_WAIT | c.MQGMO_NO_SYNCPOINT | c.MQGMO_FAIL_IF_QUIESCING,
                WaitInterval=int(min(remaining, 1.0) * 1000),
                MatchOptions=c.MQMO_MATCH_CORREL_ID,
            )
            try:
                return replies.get(None, got, gmo)
            except mqi.MQMIError as exc:
                if exc.reason != c.MQRC_NO_MSG_AVAILABLE:
                    raise
            if replies._rmq_dynamic and replies._rmq_opened_gen != reply_generation:
                log.warning(
                    "%s: reply queue re-created as %s; sending the request again",
                    self._rmq.name,
                    replies.get_name(),
                )
                self._rmq_count("requests_resent")
                reply_generation = None

    def reply(
        self, request_md: Any, msg: Any, md: Any = None, *, properties: Mapping[str, Any] | None = None
    ) -> None:
        """Answer a request: put to its ReplyToQ with the CorrelId its Report options ask for (buffered)."""
        mqi = self._rmq_mqi
        c = mqi.CMQC
        reply_to = text(request_md.ReplyToQ)
        if not reply_to:
            raise InvalidMessageError("the request has no ReplyToQ to answer to")
        out = codec.restore_md(mqi, codec.md_fields(md)) if md is not None else mqi.MD()
        out.MsgType = c.MQMT_REPLY
        report = request_md.Report
        out.CorrelId = request_md.CorrelId if report & c.MQRO_PASS_CORREL_ID else request_md.MsgId
        if report & c.MQRO_PASS_MSG_ID:
            out.MsgId = request_md.MsgId
        od = mqi.OD(
            ObjectName=reply_to.encode("utf-8"), ObjectQMgrName=text(request_md.ReplyToQMgr).encode("utf-8")
        )
        self.put1(od, msg, out, mqi.PMO(), properties=properties)

    def pcf(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Run a PCF command (``qmgr.pcf("MQCMD_INQUIRE_Q", {CMQC.MQCA_Q_NAME: b"APP.*"})``) through the MQI
        module's ``PCFExecute``, again on the new connection if the connection breaks.

        A command that changes something may then run twice (MQ may have run it before the break).
        """
        if not isinstance(command, str) or not command.startswith("MQCMD_"):
            raise ValueError(f"command must be an MQCMD_* name, got {command!r}")

        def run(generation: int) -> Any:
            cached_generation, pcf = self._rmq_pcf
            if cached_generation != generation or pcf is None:
                if pcf is not None:
                    forget_handle(getattr(pcf, "reply_queue", None))
                pcf = self._rmq_mqi.PCFExecute(self)
                self._rmq_pcf = (generation, pcf)
            return getattr(pcf, command)(*args, **kwargs)

        return self._rmq_run(f"PCF {command}", run)

    def inquire(self, selectors: Any) -> Any:
        """MQINQ on the queue manager, again on the new connection if the connection breaks."""
        c = self._rmq_mqi.CMQC
        target = self._rmq_helper_queue("qmgr", self._rmq_mqi.OD(ObjectType=c.MQOT_Q_MGR), c.MQOO_INQUIRE)
        return target.inquire(selectors)

    inq = inquire

    @property
    def is_connected(self) -> bool:
        """True while the supervisor holds a live connection (no MQ call is made)."""
        return self._rmq.supervisor.state is ConnectionState.CONNECTED

    def disconnect(self) -> None:
        """Flush (up to ``drain_timeout``), then disconnect for good (leftovers stay in a durable buffer)."""
        if self._rmq_closed:
            return
        self._rmq_closed = True
        drained = self._rmq.close(self._rmq.options.drain_timeout)
        if not drained:
            log.warning(
                "%s: disconnected with %d message(s) unconfirmed", self._rmq.name, self.get_buffer_size()
            )

    def stats(self) -> dict[str, int]:
        """The outbox and supervisor counters, plus units of work, retries and reopened objects."""
        out = super().stats()
        with self._rmq_counts_lock:
            out.update(self._rmq_counts)
        return out

    # -- connections (called by _Connector with the condition held) -------------------------------------
    def _rmq_connect(self, qmgr: Any, endpoint: str) -> None:
        mqi = self._rmq_mqi
        c = mqi.CMQC
        s = self._rmq_settings
        cno = copy_struct(mqi.CNO, s.cno)
        cno.Options |= s.cno_options
        kwargs: dict[str, Any] = {"cno": cno}
        if endpoint != BINDINGS:
            cd = copy_struct(mqi.CD, s.cd)
            cd.ChannelName = (s.channel or "").encode("ascii")
            cd.ConnectionName = endpoint.encode("ascii")
            cd.ChannelType = mqi.CMQXC.MQCHT_CLNTCONN
            cd.TransportType = mqi.CMQXC.MQXPT_TCP
            if s.cipher_spec:
                cd.SSLCipherSpec = s.cipher_spec.encode("ascii")
            kwargs["cd"] = cd
            cno.Options |= c.MQCNO_CLIENT_BINDING
            if s.key_repository or s.sco is not None:
                sco = copy_struct(mqi.SCO, s.sco)
                if s.key_repository:
                    sco.KeyRepository = s.key_repository.encode("utf-8")
                kwargs["sco"] = sco
        if s.csp is not None:
            kwargs["csp"] = s.csp
        elif s.user is not None:
            kwargs["user"], kwargs["password"] = s.user, s.password
        self._rmq_base.connect_with_options(qmgr, s.queue_manager_name, **kwargs)

    def _rmq_restore(self, generation: int) -> None:
        """Reopen queues and resume subscriptions on a new connection (before buffered puts flow)."""
        mqi = self._rmq_mqi
        for obj in list(self._rmq_objects.values()):
            try:
                if obj._rmq_reopen(generation):
                    self._rmq_count("objects_reopened")
            except (mqi.MQMIError, mqi.PYIFError) as exc:
                err = translate(exc, mqi, f"reopening {obj!r}", after_break=True)
                if isinstance(err, ConnectionLostError):
                    raise err from exc
                # Not fatal to the connection: the object's next operation tries again and reports it.
                log.error("%s: could not reopen %r: %s", self._rmq.name, obj, err)

    def _rmq_register(self, obj: Any) -> None:
        self._rmq_objects[next(self._rmq_object_ids)] = obj

    def _rmq_unregister(self, obj: Any) -> None:
        for key, value in list(self._rmq_objects.items()):
            if value is obj:
                self._rmq_objects.pop(key, None)

    def _rmq_sender_connection(self) -> tuple[Any, int]:
        with self._rmq_cond:
            return self._rmq_sender_qm, self._rmq_generation

    # -- the one resilience path ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _rmq_errors(self, what: str, generation: int, *, committing: bool = False) -> Iterator[None]:
        """Translate MQI errors met on connection ``generation`` (the one place); report broken ones."""
        mqi = self._rmq_mqi
        try:
            yield
        except (mqi.MQMIError, mqi.PYIFError) as exc:
            after_break = self._rmq_after_break(generation)
            err = translate(exc, mqi, what, after_break=after_break, committing=committing)
            if err is exc:
                raise
            reason = getattr(exc, "reason", None)
            lost = isinstance(err, ConnectionLostError) or (
                isinstance(reason, int)
                and disposition(reason, after_break=after_break) is Disposition.RECONNECT
            )
            if lost:
                self._rmq_lost(err, generation)
            raise err from exc

    def _rmq_after_break(self, generation: int) -> bool:
        return (
            generation != self._rmq_generation
            or generation == self._rmq_broken
            or self._rmq.supervisor.state is not ConnectionState.CONNECTED
        )

    def _rmq_lost(self, error: BaseException, generation: int) -> None:
        with self._rmq_cond:
            if generation != self._rmq_generation:
                return  # news about a connection already replaced
            self._rmq_broken = generation
            epoch = self._rmq_epoch
        self._rmq.supervisor.report_lost(error, epoch)

    def _rmq_connected_generation(self) -> int | None:
        if self._rmq.supervisor.state is not ConnectionState.CONNECTED:
            return None
        generation = self._rmq_generation
        return None if generation == self._rmq_broken else generation

    def _rmq_wait(self, what: str, deadline: float | None, avoid: int | None = None) -> int:
        """Block until connected (to another connection than ``avoid``, for up to 1 s); the generation."""
        sup = self._rmq.supervisor
        since = time.monotonic()
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise ConnectionLostError(
                    f"{what}: the queue manager was not reachable within operation_timeout="
                    f"{self._rmq_settings.operation_timeout:g} s"
                )
            epoch = sup.wait_connected(0.5 if remaining is None else min(remaining, 0.5))
            if epoch is None:
                if sup.state is ConnectionState.DISCONNECTED:  # made with None and never connected
                    raise self._rmq_mqi.PYIFError("not connected")
                if sup.state is ConnectionState.FAILED:
                    raise ReconnectFailedError(
                        f"{what}: the connection failed for good: {sup.failure}"
                    ) from sup.failure
                continue
            with self._rmq_cond:
                generation = self._rmq_generation
                if generation != avoid or time.monotonic() - since > 1.0:
                    return generation
                # Reported lost, not yet seen by the supervisor: wait for the new connection.
                self._rmq_cond.wait(0.1)

    def _rmq_run(self, what: str, fn: Callable[[int], T]) -> T:
        """Run ``fn(generation)``; after a broken connection wait for the next one and run it again."""
        timeout = self._rmq_settings.operation_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        failed: int | None = None
        while True:
            if self._rmq_closed:
                raise ClientClosedError(f"{what}: the queue manager connection was disconnected")
            generation = self._rmq_wait(what, deadline, avoid=failed)
            try:
                with self._rmq_errors(what, generation):
                    return fn(generation)
            except ConnectionLostError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                failed = generation
                self._rmq_count("operation_retries")

    def _rmq_in_uow(self, what: str, fn: Callable[[int], T]) -> T:
        """A syncpoint call: part of the unit of work, never moved to another connection once work is done."""
        timeout = self._rmq_settings.operation_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        failed: int | None = None
        while True:
            with self._rmq_uow_lock:
                uow = self._rmq_uow
                if uow.broken is not None:
                    raise self._rmq_rolled_back(what, uow.broken, count=False) from uow.broken
                bound = uow.generation
            if bound is not None and bound != self._rmq_connected_generation():
                if uow.operations:
                    raise self._rmq_break_uow(uow, what, None)
                bound = None  # nothing was done in it yet: it moves to the next connection
            generation = self._rmq_wait(what, deadline, avoid=failed) if bound is None else bound
            with self._rmq_uow_lock:
                uow.generation = generation
            try:
                with self._rmq_errors(what, generation):
                    result = fn(generation)
            except ConnectionLostError as exc:
                if uow.operations:
                    raise self._rmq_break_uow(uow, what, exc) from exc
                with self._rmq_uow_lock:
                    uow.generation = None  # nothing was in it yet: carry on on the next connection
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                failed = generation
                self._rmq_count("operation_retries")
                continue
            except TransactionRolledBackError as exc:  # MQRC_BACKED_OUT: MQ's client reconnect backed it out
                with self._rmq_uow_lock:
                    uow.broken = exc
                self._rmq_count("uow_rolled_back")
                raise
            with self._rmq_uow_lock:
                uow.operations += 1
            return result

    def _rmq_break_uow(
        self, uow: _UnitOfWork, what: str, cause: BaseException | None
    ) -> TransactionRolledBackError:
        err = self._rmq_rolled_back(what, cause)
        with self._rmq_uow_lock:
            uow.broken = err
        return err

    def _rmq_rolled_back(
        self, what: str, cause: BaseException | None, *, count: bool = True
    ) -> TransactionRolledBackError:
        """The error for a unit of work the queue manager backed out (with MQ's reason, if it gave one)."""
        if count:
            self._rmq_count("uow_rolled_back")
        if isinstance(cause, TransactionRolledBackError):
            return cause
        message = (
            f"{what}: the connection broke inside the unit of work, so the queue manager backed the unit of "
            "work out; nothing of it was committed: back out and do it again"
        )
        reason, comp = getattr(cause, "reason", None), getattr(cause, "comp", None)
        if isinstance(reason, int) and isinstance(comp, int):
            return mq_error(TransactionRolledBackError, self._rmq_mqi, message, comp, reason)  # type: ignore[return-value]
        return TransactionRolledBackError(message)

    def _rmq_count(self, name: str, n: int = 1) -> None:
        with self._rmq_counts_lock:
            self._rmq_counts[name] += n

    # -- puts ------------------------------------------------------------------------------------------
    def _rmq_q_args(self, opts: Sequence[Any], *, put: bool) -> tuple[Any, Any]:
        """ibmmq's rules for the ``(MD, PMO|GMO)`` arguments."""
        mqi = self._rmq_mqi
        if len(opts) > 3:
            raise TypeError("Too many args")
        md = opts[0] if opts and opts[0] is not None else mqi.MD()
        pg = opts[1] if len(opts) >= 2 else None
        if not isinstance(md, mqi.MD):
            raise TypeError("Message Descriptor must be an instance of MD")
        if pg is not None and not isinstance(pg, mqi.PMO if put else mqi.GMO):
            raise TypeError(f"Options must be an instance of {'PMO' if put else 'GMO'}")
        return md, pg

    def _rmq_body(self, msg: Any, md: Any) -> bytes:
        if isinstance(msg, bytes):
            return msg
        if isinstance(msg, str):
            md.CodedCharSetId = self.default_ccsid
            md.Format = self._rmq_mqi.CMQC.MQFMT_STRING
            return msg.encode(self.bytes_encoding)
        raise TypeError(f"Message type is {type(msg)}. Convert to bytes.")

    def _rmq_od(self, q_desc: Any) -> Any:
        mqi = self._rmq_mqi
        if isinstance(q_desc, (str, bytes)):
            return mqi.OD(ObjectName=q_desc.encode("utf-8") if isinstance(q_desc, str) else q_desc)
        if not isinstance(q_desc, mqi.OD):
            raise TypeError(f"a queue is named by str, bytes or OD, got {type(q_desc).__name__}")
        return q_desc

    def _rmq_accept(
        self,
        kind: str,
        od_fields: dict[str, str],
        open_options: int,
        body: bytes,
        md: Any,
        pmo: Any,
        properties: Mapping[str, Any] | None,
    ) -> None:
        """Hand one message to the outbox (the MD gets its MsgId now)."""
        mqi = self._rmq_mqi
        c = mqi.CMQC
        options = int(pmo.Options) if pmo is not None else 0
        if codec.is_none_id(md.MsgId) and not options & c.MQPMO_NEW_MSG_ID:
            md.MsgId = codec.new_msg_id()
        props = codec.properties_from_mapping(mqi, properties) if properties else []
        handle = int(pmo.OriginalMsgHandle or 0) if pmo is not None else 0
        if handle not in (0, c.MQHM_NONE, c.MQHM_UNUSABLE_HMSG):
            props = self._rmq_handle_properties(handle) + props
        headers = {
            "kind": kind,
            "od": od_fields,
            "oo": open_options,
            "md": codec.md_fields(md),
            "pmo": options,
            "props": props,
        }
        destination = od_fields.get("ObjectName") or od_fields.get("ObjectString") or ""
        msg_id = bytes(md.MsgId).hex() if not codec.is_none_id(md.MsgId) else os.urandom(16).hex()
        self._rmq.outbox.put([NewMessage(destination, body, headers, msg_id)])

    def _rmq_handle_properties(self, hmsg: int) -> list[list[Any]]:
        mqi = self._rmq_mqi
        try:
            hconn = self._rmq_base.get_handle(self)
        except mqi.PYIFError:
            hconn = mqi.CMQC.MQHC_UNASSOCIATED_HCONN
        try:
            return codec.read_handle_properties(mqi, hconn, hmsg)
        except (mqi.MQMIError, mqi.PYIFError) as exc:
            raise InvalidMessageError(
                f"could not read the properties of message handle {hmsg} ({exc}); pass properties= instead"
            ) from exc

    def _rmq_put1_now(
        self, body: bytes, md: Any, pmo: Any, od: Any, properties: Mapping[str, Any] | None
    ) -> None:
        with property_handle(self, pmo, properties):
            self._rmq_base.put1(self, od, body, md, pmo)

    def _rmq_check_destination(self, fields: dict[str, str], object_type: int) -> None:
        """While connected, make sure a put1/publish destination exists and may be used (once per connection),
        so unknown or forbidden destinations fail at once rather than in the failed list."""
        generation = self._rmq_connected_generation()
        if generation is None:
            return
        key = (fields.get("ObjectName", ""), fields.get("ObjectQMgrName", ""), object_type)
        seen_generation, seen = self._rmq_validated
        if seen_generation == generation and key in seen:
            return
        mqi = self._rmq_mqi
        c = mqi.CMQC
        od = mqi.OD(
            ObjectType=object_type, ObjectName=key[0].encode("utf-8"), ObjectQMgrName=key[1].encode("utf-8")
        )
        if object_type == c.MQOT_TOPIC and fields.get("ObjectString"):
            od.Version = c.MQOD_VERSION_4
            od.set_vs("ObjectString", fields["ObjectString"].encode("utf-8"))
        try:
            with self._rmq_errors(f"MQOPEN {key[0]}", generation):
                opened = mqi.Queue(self, od, c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING)
                opened.close()
        except ConnectionLostError:
            return  # buffered; the sender meets it on the next connection
        if seen_generation != generation:
            seen = set()
        seen.add(key)
        self._rmq_validated = (generation, seen)

    def _rmq_helper_queue(self, key: str, q_desc: Any, open_options: int | None = None) -> ResilientQueue:
        c = self._rmq_mqi.CMQC
        found = self._rmq_helpers.get(key)
        if found is None:
            options = c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING if open_options is None else open_options
            found = self._rmq_helpers[key] = ResilientQueue(self, q_desc, options)
        return found

    def _rmq_reply_queue(self, name: str | None) -> ResilientQueue:
        c = self._rmq_mqi.CMQC
        if name:
            return self._rmq_helper_queue(
                "reply:" + name, name, c.MQOO_INPUT_SHARED | c.MQOO_FAIL_IF_QUIESCING
            )
        od = self._rmq_mqi.OD(ObjectName=b"SYSTEM.DEFAULT.MODEL.QUEUE", DynamicQName=b"RMQ.REPLY.*")
        return self._rmq_helper_queue("reply:", od, c.MQOO_INPUT_EXCLUSIVE | c.MQOO_FAIL_IF_QUIESCING)

    def _rmq_send_request(
        self,
        target: ResilientQueue,
        replies: ResilientQueue,
        body: bytes,
        md: Any,
        properties: Mapping[str, Any] | None,
    ) -> int:
        """Put the request now (it waits for its reply anyway); returns the reply queue's generation."""
        mqi = self._rmq_mqi
        c = mqi.CMQC

        def send(generation: int) -> int:
            replies._rmq_ensure_open(generation, c.MQOO_INPUT_EXCLUSIVE)
            md.ReplyToQ = replies.get_name().encode("utf-8")
            md.ReplyToQMgr = b""
            md.MsgId = codec.new_msg_id()
            pmo = mqi.PMO(Options=c.MQPMO_NO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING)
            target._rmq_put_now(generation, body, md, pmo, properties)
            return generation

        return self._rmq_run("MQPUT request", send)
