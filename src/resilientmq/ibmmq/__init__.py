"""IBM MQ that survives queue manager outages: ``ResilientWebSphereMQQueueManager`` and ``ResilientQueue``.

Drop-in for IBM's ``ibmmq`` (or the older ``pymqi``)::

    from resilientmq import ResilientWebSphereMQQueueManager
    from ibmmq import CMQC, MD, GMO

    qmgr = ResilientWebSphereMQQueueManager(
        "QM1", "DEV.APP.SVRCONN", "mq1(1414),mq2(1414)", "app", "secret", buffer_path="/var/lib/app/mq.lmdb"
    )
    q = qmgr.open_queue("DEV.QUEUE.1", CMQC.MQOO_OUTPUT | CMQC.MQOO_INPUT_SHARED)
    q.put(b"order 1", MD(Persistence=CMQC.MQPER_PERSISTENT))   # buffered while MQ is unreachable
    body = q.get(None, MD(), GMO(Options=CMQC.MQGMO_WAIT, WaitInterval=5000))  # waits out outages
    qmgr.disconnect()                                           # flushes, then disconnects

The queue manager object *is* an instance of the MQI module's ``QueueManager`` (and a queue of its
``Queue``): the module is chosen at run time (``mqi=``), so each class is combined with that module's class
when first constructed (one subclass per module, reused, :mod:`.loader`). Code written for
``ibmmq.QueueManager`` keeps working; what changes:

* ``put()``/``put1()``/``publish()`` outside syncpoint are synchronous while the queue manager is reachable,
  as in ``ibmmq``: they return once MQPUT completed, with MQ's output fields in the caller's MD and PMO
  (``PutDate``, ``PutTime``, ``ResolvedQName``, ...), and a put MQ refuses for good raises (a resilientmq
  error that is also the MQI's ``MQMIError`` with MQ's reason). Only while it is unreachable (or while older
  buffered messages still wait, so that order holds; or the queue is full or put-inhibited) is the message
  buffered (durably, with ``buffer_path``) and the call returns at once; a sender thread then puts it, in
  order, on a connection of its own, and it counts as delivered when MQPUT returned OK. ``async_puts=True``
  buffers every put (pipelined, for throughput). A ``MsgId`` is assigned before the put unless the MD has one
  or ``MQPMO_NEW_MSG_ID`` asks MQ to, so a copy sent again after a break carries the same one. Buffered
  messages keep the MD and the PMO's options as given; their properties are read from the PMO's
  ``OriginalMsgHandle`` (or ``properties=``) at once, since a handle dies with its connection; an ``Expiry``
  keeps counting while they wait; failures met later end in ``get_failed_messages()`` with the reason code.
* ``get()``, browse, ``inquire()``, ``set()``, PCF and opens wait for the connection to come back (bounded by
  ``operation_timeout`` and the reconnect policy) and run again; queues and subscriptions are reopened.
  A non-syncpoint destructive get whose connection breaks may lose that message (MQ's own rule for client
  connections): consume under syncpoint and ``commit()`` when that matters.
* Units of work never retry silently: a break inside one makes ``commit()`` raise
  :class:`~resilientmq.TransactionRolledBackError` (MQ backed it out), ``MQRC_CALL_INTERRUPTED`` on commit
  :class:`~resilientmq.OutcomeUnknownError`. :meth:`ResilientWebSphereMQQueueManager.put_batch` replays a
  rolled-back batch: on the next connection after a break (by the reconnect policy), at once after
  ``MQRC_BACKED_OUT`` on a connection that is still up (MQ's own client reconnect backed it out). A
  connection that breaks *during* MQCMIT is reported as rolled back too: MQ backs out the unit of work of
  a connection that ends, and a client cannot see whether the commit got there first; in that rare case a
  replay duplicates (at least once), it never loses.
* Errors: reason codes in :data:`resilientmq.ibmmq.errors.REASONS` become resilientmq errors that are also
  ``MQMIError`` instances (``.comp``, ``.reason``); other reasons pass through unchanged.

The package: this facade; :mod:`.session` (one connection's life: the application's connection, the
sender's, reopening what was open); :mod:`.operations` (what queues and subscriptions use of the queue
manager); :mod:`.objects` (the queues and subscriptions); :mod:`.sender`, :mod:`.errors`, :mod:`.codec`,
:mod:`.settings`, :mod:`.loader`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from resilientmq.core.client import ClientCore, ResilientClientMixin
from resilientmq.core.errors import ClientClosedError, InvalidMessageError
from resilientmq.core.options import ResilienceOptions
from resilientmq.core.supervisor import ConnectionState, Endpoints

from . import codec
from .loader import concrete_class, load_mqi
from .objects import ResilientQueue, ResilientSubscription
from .operations import Counters, Operations
from .session import AppConnection, MQConnector, MQSession, Registry
from .settings import copy_struct, make_settings, str_or_none, text

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from resilientmq.core.options import ResilienceKwargs

__all__ = ["ResilientQueue", "ResilientSubscription", "ResilientWebSphereMQQueueManager"]

# Defined in a module of the package, documented and imported from here.
ResilientQueue.__module__ = ResilientSubscription.__module__ = __name__

log = logging.getLogger("resilientmq.ibmmq")

_REPLY_MODEL = b"SYSTEM.DEFAULT.MODEL.QUEUE"


class ResilientWebSphereMQQueueManager(ResilientClientMixin):
    """An MQI ``QueueManager`` that reconnects, buffers puts and reopens what was open.

    ``queue_manager_name``, ``channel``, ``connection_info`` (``'host(port)'``, or a comma list for a
    multi-instance queue manager: the supervisor fails over between them), ``user``, ``password`` as in
    ``ibmmq.connect()``; without ``channel``/``connection_info`` the connection is local (bindings).
    ``use_ssl`` with ``ssl_cipher_spec`` (and ``key_repository``, unless ``MQSSLKEYR`` is set) for TLS.
    ``mq_client_reconnect=True`` (or an ``MQCNO_RECONNECT*`` option) also turns on MQ's own automatic client
    reconnection; this class still reconnects when MQ's gives up.

    Resilience: the :class:`~resilientmq.core.options.ResilienceKwargs` (``reconnect_tries``,
    ``reconnect_interval_seconds`` or ``reconnect_policy``, ``buffer_*``, ``drain_timeout``: how long
    ``disconnect()`` flushes). MQ's own: ``operation_timeout``: how long a get, inquire, open or PCF command
    waits for a reconnection (None: until the policy gives up). ``background_connect=True`` returns at once
    and connects in the background (puts are buffered). ``async_puts=True``: every put outside syncpoint goes
    through the outbox (it returns once accepted; pipelined), instead of being synchronous while connected.
    ``mqi``: ``"ibmmq"`` (the default, falling back to
    ``"pymqi"``) or a module object such as ``resilientmq.testing.mqsim.Simulator().mqi``.
    ``cd``/``cno``/``sco``/``csp``: MQI structures whose fields are copied into every connection (the
    channel fields above win).
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
        mq_client_reconnect: bool | int = False,
        operation_timeout: float | None = None,
        background_connect: bool = False,
        async_puts: bool = False,
        mqi: Any = None,
        cd: Any = None,
        cno: Any = None,
        sco: Any = None,
        csp: Any = None,
        bytes_encoding: str = "utf8",
        default_ccsid: int = 1208,
        name: str | None = None,
        **resilience: Unpack[ResilienceKwargs],
    ) -> None:
        # As with QueueManager(None): nothing named, nothing to connect to until connect*() is called.
        deferred = queue_manager_name is None and channel is None and connection_info is None and cd is None
        settings, endpoints = make_settings(
            self._rmq_mqi, queue_manager_name, channel, connection_info, user, password, use_ssl,
            ssl_cipher_spec, key_repository, mq_client_reconnect, cd, cno, sco, csp, operation_timeout,
        )  # fmt: skip
        options = ResilienceOptions.from_kwargs(resilience, owner=type(self).__name__)
        # No name: the connection is made by the supervisor, not by the base constructor.
        self._rmq_base.__init__(self, None, True, bytes_encoding=bytes_encoding, default_ccsid=default_ccsid)
        self._rmq_closed = False
        self._rmq_helpers: dict[str, ResilientQueue] = {}
        self._rmq_recreated: dict[str, int] = {}  # helper queue -> times it was created anew
        counters = self._rmq_counters = Counters()
        registry = Registry()
        client_name = name or f"ibmmq:{settings.queue_manager_name or 'default'}"
        self._rmq_connector = MQConnector(
            self._rmq_mqi, self._rmq_app(), settings, registry, count=counters.add, name=client_name
        )
        self._rmq: ClientCore[str, MQSession] = ClientCore(
            client_name, options, self._rmq_connector, Endpoints(endpoints), max_in_flight=1
        )
        self._rmq_ops = Operations(
            self, self._rmq_mqi, self._rmq, registry, counters, operation_timeout=settings.operation_timeout,
            async_puts=async_puts,
        )  # fmt: skip
        if deferred:
            return
        try:
            self._rmq.supervisor.connect(wait=not background_connect)
        except BaseException:
            self._rmq_closed = self._rmq_ops.closed = True
            self._rmq.close(0)
            raise

    def _rmq_app(self) -> AppConnection:
        """This object's own MQI connection calls (the base class's, not the overrides below)."""
        base = self._rmq_base
        return AppConnection(
            connect_with_options=functools.partial(base.connect_with_options, self),
            backout=functools.partial(base.backout, self),
            disconnect=functools.partial(base.disconnect, self),
            get_handle=functools.partial(base.get_handle, self),
        )

    def __del__(self) -> None:
        # The base class disconnects on garbage collection; the supervisor owns the connections here.
        pass

    def __enter__(self) -> ResilientWebSphereMQQueueManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._rmq.name} {self.connection_state.value}>"

    @property
    def operations(self) -> Operations:
        """What :class:`ResilientQueue` and :class:`ResilientSubscription` use of this queue manager (run on a
        live connection, join the unit of work, the outbox); applications do not need it."""
        return self._rmq_ops

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
        old = self._rmq_connector.settings
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
            old.cno_options or False,
            cd,
            cno,
            sco,
            kwargs.get("csp"),
            old.operation_timeout,
        )
        self._rmq_connector.settings = settings
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
        """MQPUT1. Outside syncpoint: at once while connected, else buffered (see the package docs)."""
        ops = self._rmq_ops
        md, pmo = ops.q_args(opts, put=True)
        body = ops.body(msg, md)
        od = ops.od(q_desc)
        c = self._rmq_mqi.CMQC

        def now(session: MQSession, put_pmo: Any) -> None:
            with ops.property_handle(put_pmo, properties):
                self._rmq_base.put1(self, od, body, md, put_pmo)

        if pmo is not None and pmo.Options & c.MQPMO_SYNCPOINT:
            ops.in_uow("MQPUT1", lambda session: now(session, pmo))
            return
        fields = codec.od_fields(od)
        ops.send(f"MQPUT1 to {fields['ObjectName']}", "put1", fields, 0, body, md, pmo, properties, now,
                 object_type=c.MQOT_Q)  # fmt: skip

    def publish(
        self,
        topic_string: str | None,
        msg: Any,
        *opts: Any,
        topic_name: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish on a topic (a topic string and/or an administrative topic object): at once while connected
        (an MQPUT1 to the topic), else buffered like puts."""
        if not topic_string and not topic_name:
            raise ValueError("publish needs a topic_string or a topic_name")
        ops = self._rmq_ops
        mqi = self._rmq_mqi
        c = mqi.CMQC
        md, pmo = ops.q_args(opts, put=True)
        body = ops.body(msg, md)
        if pmo is not None and pmo.Options & c.MQPMO_SYNCPOINT:
            raise InvalidMessageError(
                "publish() sends outside syncpoint; use a Topic on this queue manager for that"
            )
        fields = {"ObjectName": topic_name or "", "ObjectString": topic_string or ""}
        od = mqi.OD(ObjectType=c.MQOT_TOPIC, Version=c.MQOD_VERSION_4, ObjectName=(topic_name or "").encode())
        if topic_string:
            od.set_vs("ObjectString", topic_string.encode("utf-8"))

        def now(session: MQSession, put_pmo: Any) -> None:
            with ops.property_handle(put_pmo, properties):
                self._rmq_base.put1(self, od, body, md, put_pmo)

        ops.send(f"MQPUT1 to topic {topic_string or topic_name}", "pub", fields, 0, body, md, pmo, properties,
                 now, object_type=c.MQOT_TOPIC if topic_name else None)  # fmt: skip

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
        self._rmq_ops.begin()

    def commit(self) -> None:
        """MQCMIT. Raises :class:`TransactionRolledBackError` when the connection broke inside the unit of
        work (the queue manager backed it out: do it again), :class:`OutcomeUnknownError` when MQ cannot say
        (``MQRC_CALL_INTERRUPTED``): never retried here."""
        self._rmq_ops.commit(functools.partial(self._rmq_base.commit, self))

    def backout(self) -> None:
        """MQBACK. A unit of work whose connection broke is already backed out: nothing to do then."""
        self._rmq_ops.backout(functools.partial(self._rmq_base.backout, self))

    def put_batch(
        self,
        queue: str | ResilientQueue,
        messages: Iterable[Any],
        *,
        max_replays: int = 3,
    ) -> int:
        """Put ``messages`` (bytes/str, or ``(body, MD)``) in one unit of work, all or none.

        If the unit of work is rolled back (the connection broke), the whole batch is put again once the
        connection is back (waiting by the reconnect policy), up to ``max_replays`` times; returns how many
        replays it took. Every message keeps the MsgId of its first attempt. An
        :class:`OutcomeUnknownError` is raised, not replayed.
        """
        if max_replays < 0:
            raise ValueError(f"max_replays must be >= 0, got {max_replays!r}")
        mqi = self._rmq_mqi
        c = mqi.CMQC
        batch = []
        for item in messages:
            body, md = item if isinstance(item, tuple) else (item, None)
            md = codec.restore_md(mqi, codec.md_fields(md)) if md is not None else mqi.MD()
            data = self._rmq_ops.body(body, md)
            if codec.is_none_id(md.MsgId):
                md.MsgId = codec.new_msg_id()
            batch.append((data, codec.md_fields(md)))

        def unit_of_work() -> None:
            self.begin()
            try:
                for data, fields in batch:
                    pmo = mqi.PMO(Options=c.MQPMO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING)
                    target.put(data, codec.restore_md(mqi, fields), pmo)
                self.commit()
            except BaseException:
                self.backout()
                raise

        def replaying(exc: BaseException) -> None:
            log.warning("%s: batch of %d rolled back (%s); putting it again", self._rmq.name, len(batch), exc)

        # A queue named here is opened for the batch and closed after it: nothing stays open on it.
        target = (
            queue
            if isinstance(queue, ResilientQueue)
            else self.open_queue(queue, c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING)
        )
        try:
            return self._rmq_ops.replaying(
                f"put_batch to {target.get_name()}",
                unit_of_work,
                max_replays=max_replays,
                on_replay=replaying,
            )
        finally:
            if target is not queue:
                target.close()

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
        target = queue if isinstance(queue, ResilientQueue) else self._rmq_mqi.OD(ObjectName=queue.encode())
        key, replies = self._rmq_reply_queue(reply_queue)
        request_md = codec.restore_md(mqi, codec.md_fields(md)) if md is not None else mqi.MD()
        body = self._rmq_ops.body(msg, request_md)
        request_md.MsgType = c.MQMT_REQUEST
        pass_correl = bool(request_md.Report & c.MQRO_PASS_CORREL_ID)
        sent: int | None = None  # how often the reply queue had been created anew when the request went
        while True:
            if sent is None:
                sent = self._rmq_send_request(target, key, replies, body, request_md, properties)
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
            if self._rmq_recreated.get(key, 0) != sent:
                log.warning(
                    "%s: reply queue re-created as %s; sending the request again",
                    self._rmq.name,
                    replies.get_name(),
                )
                self._rmq_counters.add("requests_resent")
                sent = None

    def reply(
        self, request_md: Any, msg: Any, md: Any = None, *, properties: Mapping[str, Any] | None = None
    ) -> None:
        """Answer a request: put to its ReplyToQ with the CorrelId its Report options ask for (as put1)."""
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
        ops = self._rmq_ops
        return ops.run(f"PCF {command}", lambda session: getattr(ops.pcf(session), command)(*args, **kwargs))

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
        self._rmq_closed = self._rmq_ops.closed = True
        drained = self._rmq.close(self._rmq.options.drain_timeout)
        if not drained:
            log.warning(
                "%s: disconnected with %d message(s) unconfirmed", self._rmq.name, self.get_buffer_size()
            )

    def stats(self) -> dict[str, int]:
        """The outbox and supervisor counters, plus units of work, retries and reopened objects.

        Puts done at once while connected (``puts_direct``) count as accepted, sent and confirmed too.
        """
        out = super().stats()
        ours = self._rmq_counters.snapshot()
        out.update(ours)
        for name in ("accepted", "sent", "confirmed"):
            out[name] = out.get(name, 0) + ours["puts_direct"]
        return out

    # -- helpers ---------------------------------------------------------------------------------------
    def _rmq_helper_queue(
        self,
        key: str,
        q_desc: Any,
        open_options: int | None = None,
        on_recreated: Callable[[str, str], None] | None = None,
    ) -> ResilientQueue:
        c = self._rmq_mqi.CMQC
        found = self._rmq_helpers.get(key)
        if found is None:
            options = c.MQOO_OUTPUT | c.MQOO_FAIL_IF_QUIESCING if open_options is None else open_options
            found = ResilientQueue(self, q_desc, options, on_recreated=on_recreated)
            self._rmq_helpers[key] = found
        return found

    def _rmq_reply_queue(self, name: str | None) -> tuple[str, ResilientQueue]:
        c = self._rmq_mqi.CMQC
        if name:
            key = "reply:" + name
            return key, self._rmq_helper_queue(key, name, c.MQOO_INPUT_SHARED | c.MQOO_FAIL_IF_QUIESCING)
        key = "reply:"
        od = self._rmq_mqi.OD(ObjectName=_REPLY_MODEL, DynamicQName=b"RMQ.REPLY.*")
        options = c.MQOO_INPUT_EXCLUSIVE | c.MQOO_FAIL_IF_QUIESCING

        def recreated(_old: str, _new: str) -> None:
            self._rmq_recreated[key] = self._rmq_recreated.get(key, 0) + 1

        return key, self._rmq_helper_queue(key, od, options, on_recreated=recreated)

    def _rmq_send_request(
        self,
        target: ResilientQueue | Any,
        key: str,
        replies: ResilientQueue,
        body: bytes,
        md: Any,
        properties: Mapping[str, Any] | None,
    ) -> int:
        """Put the request now (it waits for its reply anyway) to ``target`` (a queue, or an OD for MQPUT1);
        returns how often the reply queue had been created anew by then."""
        mqi = self._rmq_mqi
        c = mqi.CMQC
        ops = self._rmq_ops

        def send(session: MQSession) -> int:
            replies.open_on(session, c.MQOO_INPUT_EXCLUSIVE)
            recreated = self._rmq_recreated.get(key, 0)
            md.ReplyToQ = replies.get_name().encode("utf-8")
            md.ReplyToQMgr = b""
            md.MsgId = codec.new_msg_id()
            pmo = mqi.PMO(Options=c.MQPMO_NO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING)
            if isinstance(target, ResilientQueue):
                target.put_on(session, body, md, pmo, properties)
            else:
                with ops.property_handle(pmo, properties):
                    self._rmq_base.put1(self, target, body, md, pmo)
            return recreated

        return ops.run("MQPUT request", send)
