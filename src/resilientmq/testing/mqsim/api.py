"""The ``ibmmq``-shaped classes: ``QueueManager``, ``Queue``, ``Topic``, ``Subscription``, ``MessageHandle``.

Their signatures are ``ibmmq``'s; each call goes to the simulated queue manager ``_sim`` (bound per
simulator by :func:`resilientmq.testing.mqsim.module.build_module`).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from .admin import AdminEngine
from .constants import CMQC as C
from .constants import CMQXC
from .errors import Error, MQMIError, PYIFError, fail
from .rfh2 import RFH2
from .structures import CD, CNO, CSP, GMO, MD, OD, PMO, SCO, SD, as_bytes, text

__all__ = [
    "MessageHandle", "Properties", "Queue", "QueueManager", "Subscription", "Topic", "encode_body", "make_od",
    "q_args", "str_or_none",
]  # fmt: skip


def q_args(opts: tuple[Any, ...], md_class: type, opts_classes: tuple[type, ...]) -> tuple[Any, Any]:
    """ibmmq's ``common_q_args``: (MD or None, PMO/GMO or None)."""
    if len(opts) > 3:
        raise TypeError("Too many args")
    md = opts[0] if opts else None
    pg = opts[1] if len(opts) >= 2 else None
    if md is None:
        md = md_class()
    if not isinstance(md, MD):
        raise TypeError("Message Descriptor must be an instance of MD")
    if pg and not isinstance(pg, opts_classes):
        raise TypeError("Options must be an instance of PMO or GMO")
    return md, pg


def make_od(q_desc: Any) -> Any:
    if isinstance(q_desc, (str, bytes)):
        return OD(ObjectName=as_bytes(q_desc))
    if not isinstance(q_desc, OD):
        raise TypeError("queue descriptor must be a name or an OD")
    return q_desc


def encode_body(owner: Any, msg: Any, md: Any) -> bytes:
    if isinstance(msg, bytes):
        return msg
    if isinstance(msg, str):
        md.CodedCharSetId = owner.default_ccsid
        md.Format = C.MQFMT_STRING
        return msg.encode(owner.bytes_encoding)
    raise TypeError(f"Message type is {type(msg)}. Convert to bytes.")


class QueueManager:
    """``ibmmq.QueueManager`` on a simulator."""

    _sim: ClassVar[AdminEngine]

    def __init__(
        self,
        name: Any = "",
        disconnect_on_exit: bool = True,
        bytes_encoding: str = "utf8",
        default_ccsid: int = 1208,
    ) -> None:
        self._handle: int | None = None
        self._name = as_bytes(name)
        self._disconnect_on_exit = disconnect_on_exit
        self.bytes_encoding = bytes_encoding
        self.default_ccsid = default_ccsid
        self._qmobj: Any = None
        if name is not None:
            self.connect(name)

    def __del__(self) -> None:
        if getattr(self, "_handle", None) and getattr(self, "_disconnect_on_exit", False):
            with contextlib.suppress(Error):
                self.disconnect()

    def connect(self, name: Any) -> None:
        """MQCONN: a local (bindings) connection."""
        self._handle = self._sim.mqconn(name, client=False)
        self._name = as_bytes(name)

    def connect_with_options(self, name: Any, *args: Any, **kwargs: Any) -> None:
        """MQCONNX with the optional ``user``, ``password``, ``opts``, ``cno``, ``cd``, ``sco``, ``csp``."""
        if len(args) > 2:
            raise TypeError("Too many positional args provided")
        if args:
            kwargs["cd"] = args[0]
        if len(args) == 2:
            kwargs["sco"] = args[1]
        cno, cd, sco, csp = kwargs.get("cno"), kwargs.get("cd"), kwargs.get("sco"), kwargs.get("csp")
        for value, cls, label in ((cno, CNO, "cno"), (cd, CD, "cd"), (sco, SCO, "sco"), (csp, CSP, "csp")):
            if value is not None and not isinstance(value, cls):
                raise TypeError(f"{label} must be an instance of {cls.__name__}")
        options = cno.Options if cno is not None else kwargs.get("opts", C.MQCNO_NONE)
        user, password = kwargs.get("user"), kwargs.get("password")
        if csp is not None:
            user, password = csp.CSPUserId or None, csp.CSPPassword or None
        if user and password is None:
            raise ValueError("Password must not be None if user is provided")
        client = cd is not None and not options & C.MQCNO_LOCAL_BINDING
        self._handle = self._sim.mqconn(
            name,
            client=client,
            channel=text(cd.ChannelName) if cd is not None else "",
            addresses=text(cd.ConnectionName) if cd is not None else "",
            user=str_or_none(user),
            password=str_or_none(password),
            options=options,
            cipher=text(cd.SSLCipherSpec) if cd is not None else "",
            key_repository=text(sco.KeyRepository) if sco is not None else "",
        )
        self._name = as_bytes(name)

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
        cd.ChannelName = as_bytes(channel)
        cd.ConnectionName = as_bytes(conn_name)
        cd.ChannelType = CMQXC.MQCHT_CLNTCONN
        cd.TransportType = CMQXC.MQXPT_TCP
        kwargs: dict[str, Any] = {
            "user": user,
            "password": password,
            "opts": C.MQCNO_CLIENT_BINDING,
            "cd": cd,
        }
        if cno is not None:
            cno.Options |= C.MQCNO_CLIENT_BINDING
            kwargs["cno"] = cno
        if csp is not None:
            kwargs["csp"] = csp
        if sco is not None:
            kwargs["sco"] = sco
        self.connect_with_options(name, **kwargs)

    connectTCPClient = connect_tcp_client

    def disconnect(self) -> None:
        if not self._handle:
            raise PYIFError("not connected")
        handle, self._handle, self._qmobj = self._handle, None, None
        self._sim.mqdisc(handle)

    def get_handle(self) -> int:
        if self._handle:
            return self._handle
        raise PYIFError("not connected")

    getHandle = get_handle

    def get_name(self) -> str:
        if self._name:
            return text(self._name)
        raise PYIFError("not connected")

    def begin(self) -> None:
        self._sim.mqbegin(self._handle)

    def commit(self) -> None:
        self._sim.mqcmit(self._handle)

    def backout(self) -> None:
        self._sim.mqback(self._handle)

    def put1(self, q_desc: Any, msg: Any, *opts: Any) -> None:
        md, pmo = q_args(opts, MD, (PMO, GMO))
        body = encode_body(self, msg, md)
        self._sim.mqput1(self._handle, make_od(q_desc), md, pmo if pmo is not None else PMO(), body)

    def inquire(self, selectors: Any) -> Any:
        if self._qmobj is None:
            self._qmobj = self._sim.mqopen(self._handle, OD(ObjectType=C.MQOT_Q_MGR), C.MQOO_INQUIRE)
        wanted = selectors if isinstance(selectors, list) else [selectors]
        attrs = self._sim.mqinq(self._handle, self._qmobj, wanted)
        return attrs if isinstance(selectors, list) else attrs[selectors]

    inq = inquire

    @property
    def is_connected(self) -> bool:
        try:
            self.inquire(C.MQCA_Q_MGR_NAME)
            return True
        except MQMIError:
            return False


class Queue:
    """``ibmmq.Queue`` on a simulator."""

    _sim: ClassVar[AdminEngine]

    def __init__(self, qmgr: Any, *opts: Any) -> None:
        self._q_mgr = qmgr
        self._q_handle: int | None = None
        self._q_desc: Any = None
        self._open_opts: int | None = None
        if len(opts) > 2:
            raise TypeError("Too many args")
        if opts:
            self._q_desc = make_od(opts[0])
        if len(opts) == 2:
            self._open_opts = opts[1]
            self._real_open()

    def __del__(self) -> None:
        if getattr(self, "_q_handle", None):
            with contextlib.suppress(Error):
                self.close()

    def _real_open(self) -> None:
        if self._q_desc is None:
            raise PYIFError("The Queue Descriptor has not been set.")
        self._q_handle = self._sim.mqopen(self._q_mgr.get_handle(), self._q_desc, self._open_opts or 0)

    def open(self, q_desc: Any, *opts: Any) -> None:
        if len(opts) > 1:
            raise TypeError("Too many args")
        if self._q_handle:
            raise PYIFError("The Queue is already open")
        self._q_desc = make_od(q_desc)
        if opts:
            self._open_opts = opts[0]
            self._real_open()

    def put(self, msg: Any, *opts: Any) -> None:
        md, pmo = q_args(opts, MD, (PMO, GMO))
        body = encode_body(self._q_mgr, msg, md)
        if not self._q_handle:
            self._open_opts = C.MQOO_OUTPUT
            self._real_open()
        self._sim.mqput(self._q_mgr.get_handle(), self._q_handle, md, pmo if pmo is not None else PMO(), body)

    def get(self, maxLength: int | None = None, *opts: Any, **kwargs: Any) -> bytes:
        """MQGET. ``maxLength=None``: the whole message, however large (ibmmq gets it again with a buffer
        of its length after 2080) — but with MQGMO_ACCEPT_TRUNCATED_MSG a buffer of 0 bytes, as ibmmq."""
        md, gmo = q_args(opts, MD, (PMO, GMO))
        if gmo is None:
            gmo = GMO()
        if not self._q_handle:
            self._open_opts = C.MQOO_INPUT_AS_Q_DEF
            self._real_open()
        length = maxLength
        if length is None and gmo.Options & C.MQGMO_ACCEPT_TRUNCATED_MSG:
            length = 0
        return self._sim.mqget(self._q_mgr.get_handle(), self._q_handle, md, gmo, length)

    def put_rfh2(self, msg: bytes, *opts: Any) -> None:
        """Put ``msg`` behind the RFH2 headers in ``opts[2]`` (a list), packed in the MQMD's encoding."""
        if not isinstance(msg, bytes):
            raise TypeError("put_rfh2 takes bytes")
        if len(opts) >= 3 and opts[2] is not None:
            if not isinstance(opts[2], list):
                raise TypeError("Third item of opts should be a list.")
            encoding = opts[0].Encoding if opts[0] is not None else C.MQENC_NATIVE
            headers = b""
            for header in opts[2]:
                if header is not None:
                    headers += header.pack(encoding)
                    encoding = header["Encoding"]
            self.put(headers + msg, *opts[0:2])
        else:
            self.put(msg, *opts)

    def get_rfh2(self, max_length: int | None = None, *opts: Any, **kwargs: Any) -> bytes:
        """Get a message and parse the RFH2 headers in front of its data into ``opts[2]`` (a list)."""
        if len(opts) < 3:
            return self.get(max_length, *opts)
        if opts[2] is None:
            raise AttributeError("get_opts cannot be None if passed.")
        if not isinstance(opts[2], list):
            raise TypeError("Third item of opts should be a list.")
        msg = self.get(max_length, *opts[0:2])
        md = opts[0]
        fmt, encoding = md["Format"], md["Encoding"]
        while fmt == C.MQFMT_RF_HEADER_2:
            header = RFH2().unpack(msg, encoding)
            opts[2].append(header)
            msg = msg[header["StrucLength"] :]
            fmt, encoding = header["Format"], header["Encoding"]
        return msg

    def get_no_jms(self, max_length: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        md, gmo = q_args(args, MD, (PMO, GMO))
        gmo = gmo if gmo is not None else GMO()
        gmo.Options |= C.MQGMO_NO_PROPERTIES | C.MQGMO_FAIL_IF_QUIESCING
        return self.get(max_length, md, gmo)

    get_no_rfh2 = get_no_jms

    def close(self, options: int = C.MQCO_NONE) -> None:
        if not self._q_handle:
            raise PYIFError("not open")
        self._sim.mqclose(self._q_mgr.get_handle(), self._q_handle, options)
        self._q_handle = self._q_desc = self._open_opts = None

    def inquire(self, selectors: Any) -> Any:
        if not self._q_handle:
            self._open_opts = C.MQOO_INQUIRE
            self._real_open()
        wanted = selectors if isinstance(selectors, list) else [selectors]
        attrs = self._sim.mqinq(self._q_mgr.get_handle(), self._q_handle, wanted)
        return attrs if isinstance(selectors, list) else attrs[selectors]

    inq = inquire

    def set(self, *args: Any) -> None:
        if not self._q_handle:
            self._open_opts = C.MQOO_SET
            self._real_open()
        attrs = args[0] if len(args) == 1 and isinstance(args[0], dict) else {args[0]: args[1]}
        self._sim.mqset(self._q_mgr.get_handle(), self._q_handle, attrs)

    def set_handle(self, queue_handle: Any) -> None:
        self._q_handle = queue_handle

    def get_handle(self) -> Any:
        return self._q_handle

    def get_name(self) -> str:
        return text(self._q_desc.ObjectName) if self._q_desc is not None else ""

    def get_queue_manager(self) -> Any:
        return self._q_mgr


class Topic:
    """``ibmmq.Topic`` on a simulator: open for output and publish."""

    _sim: ClassVar[AdminEngine]

    def __init__(
        self,
        queue_manager: Any,
        topic_name: Any = None,
        topic_string: Any = None,
        topic_desc: Any = None,
        open_opts: int | None = None,
    ) -> None:
        self._queue_manager = queue_manager
        self._topic_handle: int | None = None
        self.topic_name = as_bytes(topic_name)
        self.topic_string = as_bytes(topic_string)
        if topic_desc is not None and topic_desc.ObjectType != C.MQOT_TOPIC:
            raise PYIFError("The Topic Descriptor ObjectType is not MQOT_TOPIC.")
        self._topic_desc = topic_desc or self._create_topic_desc(self.topic_name, self.topic_string)
        self._open_opts = open_opts
        if open_opts:
            self._real_open()

    @staticmethod
    def _create_topic_desc(topic_name: Any, topic_string: Any) -> Any:
        od = OD(ObjectType=C.MQOT_TOPIC, Version=C.MQOD_VERSION_4)
        if topic_name:
            od.ObjectName = as_bytes(topic_name)
        if topic_string:
            od.set_vs("ObjectString", topic_string, 0, 0, 0)
        return od

    def __del__(self) -> None:
        if getattr(self, "_topic_handle", None):
            with contextlib.suppress(Error):
                self.close()

    def _real_open(self) -> None:
        self._topic_handle = self._sim.mqopen(
            self._queue_manager.getHandle(), self._topic_desc, self._open_opts or C.MQOO_OUTPUT
        )

    def open(
        self,
        topic_name: Any = None,
        topic_string: Any = None,
        topic_desc: Any = None,
        open_opts: int | None = None,
    ) -> None:
        if self._topic_handle:
            raise PYIFError("The Topic is already open.")
        if topic_name:
            self.topic_name = as_bytes(topic_name)
        if topic_string:
            self.topic_string = as_bytes(topic_string)
        self._topic_desc = topic_desc or self._create_topic_desc(self.topic_name, self.topic_string)
        if open_opts:
            self._open_opts = open_opts
            self._real_open()

    def pub(self, msg: Any, *opts: Any) -> None:
        md, pmo = q_args(opts, MD, (PMO, GMO))
        body = encode_body(self._queue_manager, msg, md)
        if not self._topic_handle:
            self._open_opts = C.MQOO_OUTPUT
            self._real_open()
        self._sim.mqput(self._queue_manager.getHandle(), self._topic_handle, md, pmo or PMO(), body)

    put = pub

    def sub(self, *opts: Any) -> Any:
        sub = self._sim.mqi.Subscription(self._queue_manager)
        sub.sub(
            sub_desc=opts[0] if opts else None,
            sub_queue=opts[1] if len(opts) > 1 else None,
            topic_name=self.topic_name,
            topic_string=self.topic_string,
        )
        return sub

    def close(self, options: int = C.MQCO_NONE) -> None:
        if not self._topic_handle:
            raise PYIFError("Topic not open.")
        self._sim.mqclose(self._queue_manager.getHandle(), self._topic_handle, options)
        self._topic_handle = None


class Subscription:
    """``ibmmq.Subscription`` on a simulator."""

    _sim: ClassVar[AdminEngine]

    def __init__(
        self,
        queue_manager: Any,
        sub_desc: Any = None,
        sub_name: Any = None,
        sub_queue: Any = None,
        sub_opts: int | None = None,
        topic_name: Any = None,
        topic_string: Any = None,
    ) -> None:
        self._queue_manager = queue_manager
        self.sub_queue = sub_queue
        self.sub_name = as_bytes(sub_name)
        self.sub_opts = sub_opts
        self.topic_name = as_bytes(topic_name)
        self.topic_string = as_bytes(topic_string)
        self._sub_handle: int | None = None
        self._sub_desc = sub_desc
        if sub_desc:
            self.sub(sub_desc=sub_desc)

    def __del__(self) -> None:
        if getattr(self, "_sub_handle", None):
            with contextlib.suppress(Error):
                self.close()

    def get_handle(self) -> Any:
        return self._sub_handle

    def get_queue_manager(self) -> Any:
        return self._queue_manager

    def get_sub_queue(self) -> Any:
        return self.sub_queue

    def get(self, max_length: int | None = None, *opts: Any) -> bytes:
        return self.sub_queue.get(max_length, *opts)  # type: ignore[no-any-return]

    def sub(
        self,
        sub_desc: Any = None,
        sub_queue: Any = None,
        sub_name: Any = None,
        sub_opts: int | None = None,
        topic_name: Any = None,
        topic_string: Any = None,
    ) -> None:
        if topic_name:
            self.topic_name = as_bytes(topic_name)
        if topic_string:
            self.topic_string = as_bytes(topic_string)
        if sub_name:
            self.sub_name = as_bytes(sub_name)
        if sub_desc is not None:
            if not isinstance(sub_desc, SD):
                raise TypeError("sub_desc must be a SD(sub descriptor) object.")
        else:
            sub_desc = SD(Options=sub_opts or (C.MQSO_CREATE + C.MQSO_NON_DURABLE + C.MQSO_MANAGED))
            if self.sub_name:
                sub_desc.set_vs("SubName", self.sub_name)
            if self.topic_name:
                sub_desc.ObjectName = self.topic_name
            if self.topic_string:
                sub_desc.set_vs("ObjectString", self.topic_string)
        queue_handle: Any = C.MQHO_NONE
        if sub_queue is not None:
            queue_handle = sub_queue.get_handle() if isinstance(sub_queue, Queue) else sub_queue
        hobj, hsub = self._sim.mqsub(self._queue_manager.getHandle(), sub_desc, queue_handle)
        self._sub_desc = sub_desc
        self.sub_queue = self._sim.mqi.Queue(self._queue_manager)
        self.sub_queue.set_handle(hobj)
        self._sub_handle = hsub

    def close(
        self,
        sub_close_options: int = C.MQCO_NONE,
        close_sub_queue: bool = False,
        close_sub_queue_options: int = C.MQCO_NONE,
    ) -> None:
        if not self._sub_handle:
            raise PYIFError("Subscription not open.")
        self._sim.mqclose(self._queue_manager.getHandle(), self._sub_handle, sub_close_options)
        self._sub_handle = None
        self._sub_desc = None
        if close_sub_queue:
            self.sub_queue.close(close_sub_queue_options)


class Properties:
    """``MessageHandle.properties``: MQSETMP/MQINQMP/MQDLTMP on a simulator."""

    def __init__(self, sim: AdminEngine, conn_handle: Any, msg_handle: Any) -> None:
        self._sim = sim
        self.conn_handle = conn_handle
        self.msg_handle = msg_handle
        self.default_value_length = 64

    def __getitem__(self, name: Any) -> Any:
        value = self.get(name)
        if not value:
            raise KeyError(f"No such property [{name}]")
        return value

    def __setitem__(self, name: Any, value: Any) -> None:
        self.set(name, value)

    def get(
        self,
        name: Any,
        default: Any = None,
        max_value_length: int | None = None,
        impo_options: int = C.MQIMPO_INQ_FIRST,
        impo: Any = None,
        pd: Any = None,
        property_type: int = C.MQTYPE_AS_SET,
    ) -> Any:
        """The value (and, for a ``%`` name, ``(value, name)``). A value longer than ``max_value_length``
        (default ``default_value_length``, 64) raises 2469 with ``data_length``, as ibmmq."""
        options = impo.Options if impo is not None else impo_options
        wanted = as_bytes(name).decode("utf-8")
        length = max_value_length or self.default_value_length
        try:
            value, found = self._sim.mqinqmp(self.msg_handle, wanted, options, length)
        except MQMIError as exc:
            raise MQMIError(
                exc.comp, exc.reason, value=default, data_length=getattr(exc, "data_length", 0)
            ) from None
        if wanted == "%" or wanted.endswith(".%"):
            return value, found.encode("utf-8")
        return value

    def set(
        self,
        name: Any,
        value: Any,
        property_type: int = C.MQTYPE_STRING,
        value_length: int = C.MQVL_NULL_TERMINATED,
        pd: Any = None,
        smpo: Any = None,
    ) -> None:
        self._sim.mqsetmp(self.msg_handle, as_bytes(name).decode("utf-8"), value, property_type)

    def dlt(self, name: Any, dmpo: Any = None) -> None:
        self._sim.mqdltmp(self.msg_handle, as_bytes(name).decode("utf-8"))


class MessageHandle:
    """``ibmmq.MessageHandle`` on a simulator: properties live in the handle, as in the MQ client."""

    _sim: ClassVar[AdminEngine]

    def __init__(self, qmgr: Any = None, cmho: Any = None, dup_handle: int | None = None) -> None:
        self.conn_handle = qmgr.get_handle() if qmgr is not None else C.MQHO_NONE
        self.duplicated = dup_handle is not None
        self.msg_handle = dup_handle if dup_handle is not None else self._sim.mqcrtmh(self.conn_handle)
        self.properties = Properties(self._sim, self.conn_handle, self.msg_handle)

    def get_handle(self) -> int:
        return self.msg_handle

    def get_queue_manager(self) -> Any:
        return self.conn_handle

    def dlt(self, dmho: Any = None) -> None:
        if self.duplicated:
            raise fail(C.MQRC_HMSG_ERROR)
        self._sim.mqdltmh(self.msg_handle)
        self.properties = Properties(self._sim, C.MQHC_UNUSABLE_HCONN, C.MQHM_NONE)


def str_or_none(value: Any) -> str | None:
    if value is None or value == 0:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
