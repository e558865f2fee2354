"""An in-process simulator of an IBM MQ queue manager, reached through an ``ibmmq``-shaped module.

IBM's ``ibmmq`` (and the older ``pymqi``) need IBM's MQ C client at run time, and no queue manager runs
here. The simulator gives code written against that API something faithful to run on::

    from resilientmq.testing import mqsim

    sim = mqsim.Simulator(queue_manager_name="QM1")
    sim.define_queue("DEV.QUEUE.1")
    mqi = sim.mqi                                    # use it where you would use ``ibmmq``
    qmgr = mqi.connect("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
    q = mqi.Queue(qmgr, "DEV.QUEUE.1", mqi.CMQC.MQOO_OUTPUT | mqi.CMQC.MQOO_INPUT_SHARED)
    q.put(b"hello", mqi.MD(Persistence=mqi.CMQC.MQPER_PERSISTENT))
    sim.stop(); sim.start()                          # persistent messages survive a restart
    assert q.get() ...                               # MQMIError 2009: that connection is gone

``sim.mqi`` carries the subset of the ``ibmmq`` API that resilientmq uses, with the same signatures and
the real numeric constants: ``QueueManager``, ``Queue``, ``Topic``, ``Subscription``, ``PCFExecute``,
``MessageHandle``, the structures ``MD GMO PMO OD SD CD SCO CSP CNO SRO CMHO PD SMPO IMPO``, ``connect()``,
``CMQC``/``CMQXC``/``CMQCFC`` and ``MQMIError(comp, reason)``/``PYIFError``.

MQ semantics kept: FIFO within priority; persistent messages survive ``stop()``/``start()``, non-persistent
ones do not; syncpoint puts are invisible and syncpoint gets restorable until ``MQCMIT``/``MQBACK``; a broken
connection has its unit of work backed out (and ``MQDISC`` commits it, as on distributed platforms);
browse cursors; ``MQRC_NO_MSG_AVAILABLE`` after the wait interval; MsgId/CorrelId matching; expiry;
temporary dynamic queues that die with their connection; durable and non-durable subscriptions;
``MQCNO_RECONNECT`` connections that survive a broken network (their unit of work is backed out: the next
``MQCMIT`` warns ``MQRC_BACKED_OUT``). Controls: ``define_queue``, ``depth``, ``stop``
(``MQRC_Q_MGR_STOPPING`` to calls in flight, ``MQRC_CONNECTION_BROKEN`` to later calls on old connections,
``MQRC_Q_MGR_NOT_AVAILABLE`` to new connections until ``start``), ``quiesce`` (``MQRC_Q_MGR_QUIESCING`` to
calls that ask to fail if quiescing, and to new connections), ``break_connections``
(``MQRC_CONNECTION_BROKEN``), ``fail_next`` (inject
a reason code into the next call of a verb).

Not simulated: message groups and segments, data conversion, RFH2 headers (properties travel only through
message handles), remote queues and clustering, retained publications, PCF beyond a few queue commands,
and the wire itself (a ``connection_info`` only selects an instance when ``addresses`` is given).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import enum
import heapq
import itertools
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from resilientmq._mq.cmqc import CMQC, CMQCFC, CMQXC, reason_name

__all__ = ["MQMIError", "PYIFError", "Simulator"]

C = CMQC
_MQI_VERBS = frozenset(
    {
        "MQCONN",
        "MQDISC",
        "MQOPEN",
        "MQCLOSE",
        "MQPUT",
        "MQPUT1",
        "MQGET",
        "MQCMIT",
        "MQBACK",
        "MQINQ",
        "MQSET",
    }
    | {"MQSUB", "MQBEGIN", "PCF"}
)
# Reasons after which a connection is gone (when injected with fail_next, or met by a call).
_FATAL = frozenset({C.MQRC_CONNECTION_BROKEN, C.MQRC_Q_MGR_STOPPING, C.MQRC_RECONNECT_FAILED})


# -- errors: the same shape as ibmmq's ------------------------------------------------------------------
class Error(Exception):
    """Base of the simulated MQI exceptions (``ibmmq.Error``)."""


class MQMIError(Error):
    """An MQI call failed (or warned): ``comp`` is the completion code, ``reason`` the MQRC reason code."""

    def __init__(self, comp: int, reason: int, **kw: Any) -> None:
        super().__init__(comp, reason)
        self.comp, self.reason = comp, reason
        for k, v in kw.items():
            setattr(self, k, v)

    def __str__(self) -> str:
        return f"MQI Error. Comp {self.comp}, Reason {self.reason}: {self.error_as_string()}"

    def error_as_string(self) -> str:
        if self.comp == C.MQCC_OK:
            return "OK"
        prefix = "WARNING: " if self.comp == C.MQCC_WARNING else "FAILED: "
        return prefix + (reason_name(self.reason) or f"Error code {self.reason} not defined")

    errorAsString = error_as_string

    def get(self, k: str) -> Any:
        return getattr(self, k)


class PYIFError(Error):
    """The library (not the queue manager) refused the call, e.g. ``not connected``."""

    def __init__(self, e: str) -> None:
        super().__init__(e)
        self.error = e

    def __str__(self) -> str:
        return "PYIBMMQ Error: " + str(self.error)


def _fail(reason: int, comp: int = C.MQCC_FAILED, **kw: Any) -> MQMIError:
    return MQMIError(comp, reason, **kw)


# -- MQI structures -------------------------------------------------------------------------------------
def _b(value: Any) -> Any:
    """MQCHAR fields take str or bytes; like ibmmq, store bytes."""
    return value.encode("ascii") if isinstance(value, str) else value


class _Struct:
    """Attribute/dict access to an MQI structure's fields, as ibmmq's ``MQOpts`` (no packing)."""

    _fields: ClassVar[tuple[tuple[str, Any], ...]] = ()

    if TYPE_CHECKING:  # the fields are set per structure at run time

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

    def __init__(self, **kw: Any) -> None:
        for name, default in self._fields:
            setattr(self, name, list(default) if isinstance(default, list) else default)
        self._vs: dict[str, bytes | None] = {}
        self.set(**kw)

    def set(self, **kw: Any) -> None:
        for k, v in kw.items():
            getattr(self, k)  # unknown member: AttributeError, as in ibmmq
            setattr(self, k, _b(v))

    def __setitem__(self, key: str, value: Any) -> None:
        getattr(self, key)
        setattr(self, key, _b(value))

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _ in self._fields}

    def set_vs(
        self,
        vs_name: str,
        vs_value: Any = None,
        vs_offset: int = 0,
        vs_buffer_size: int = 0,
        vs_ccsid: int = 0,
    ) -> None:
        base = vs_name[:-5] if vs_name.endswith("VSPtr") else vs_name
        value = _b(vs_value)
        self._vs[base] = value
        self[base + "VSLength"] = 0 if value is None else len(value)
        self[base + "VSOffset"] = vs_offset
        self[base + "VSBufSize"] = vs_buffer_size
        self[base + "VSCCSID"] = vs_ccsid

    def get_vs(self, vs_name: str) -> bytes | None:
        base = vs_name[:-5] if vs_name.endswith("VSPtr") else vs_name
        return self._vs.get(base)

    def pack(self) -> bytes:
        raise NotImplementedError("mqsim structures are not packed into C structures")

    def __str__(self) -> str:
        return "\n".join(f"{name}: {getattr(self, name)}" for name, _ in self._fields)


def _vs(name: str) -> tuple[tuple[str, Any], ...]:
    return tuple((name + suffix, 0) for suffix in ("VSPtr", "VSOffset", "VSBufSize", "VSLength", "VSCCSID"))


class MD(_Struct):
    """MQMD: message descriptor."""

    _fields = (
        ("_StrucId", C.MQMD_STRUC_ID), ("Version", C.MQMD_VERSION_2), ("Report", C.MQRO_NONE),
        ("MsgType", C.MQMT_DATAGRAM), ("Expiry", C.MQEI_UNLIMITED), ("Feedback", C.MQFB_NONE),
        ("Encoding", C.MQENC_NATIVE), ("CodedCharSetId", C.MQCCSI_Q_MGR), ("Format", b""),
        ("Priority", C.MQPRI_PRIORITY_AS_Q_DEF), ("Persistence", C.MQPER_PERSISTENCE_AS_Q_DEF),
        ("MsgId", b""), ("CorrelId", b""), ("BackoutCount", 0), ("ReplyToQ", b""), ("ReplyToQMgr", b""),
        ("UserIdentifier", b""), ("AccountingToken", b""), ("ApplIdentityData", b""),
        ("PutApplType", C.MQAT_NO_CONTEXT), ("PutApplName", b""), ("PutDate", b""), ("PutTime", b""),
        ("ApplOriginData", b""), ("GroupId", b""), ("MsgSeqNumber", 1), ("Offset", 0),
        ("MsgFlags", C.MQMF_NONE), ("OriginalLength", C.MQOL_UNDEFINED),
    )  # fmt: skip


class GMO(_Struct):
    """MQGMO: get-message options."""

    _fields = (
        ("_StrucId", C.MQGMO_STRUC_ID), ("Version", C.MQGMO_VERSION_4), ("Options", C.MQGMO_NO_WAIT),
        ("WaitInterval", 0), ("Signal1", 0), ("Signal2", 0), ("ResolvedQName", b""),
        ("MatchOptions", C.MQMO_MATCH_MSG_ID + C.MQMO_MATCH_CORREL_ID), ("GroupStatus", C.MQGS_NOT_IN_GROUP),
        ("SegmentStatus", C.MQSS_NOT_A_SEGMENT), ("Segmentation", C.MQSEG_INHIBITED), ("_Reserved1", b" "),
        ("MsgToken", b""), ("ReturnedLength", C.MQRL_UNDEFINED), ("_Reserved2", 0), ("MsgHandle", 0),
    )  # fmt: skip


class PMO(_Struct):
    """MQPMO: put-message options."""

    _fields = (
        ("_StrucId", C.MQPMO_STRUC_ID), ("Version", C.MQPMO_VERSION_3), ("Options", C.MQPMO_NONE),
        ("Timeout", -1), ("Context", 0), ("KnownDestCount", 0), ("UnknownDestCount", 0),
        ("InvalidDestCount", 0), ("ResolvedQName", b""), ("ResolvedQMgrName", b""), ("RecsPresent", 0),
        ("PutMsgRecFields", 0), ("PutMsgRecOffset", 0), ("ResponseRecOffset", 0), ("PutMsgRecPtr", 0),
        ("ResponseRecPtr", 0), ("OriginalMsgHandle", 0), ("NewMsgHandle", 0), ("Action", 0), ("PubLevel", 9),
    )  # fmt: skip


class OD(_Struct):
    """MQOD: object descriptor."""

    _fields = (
        ("_StrucId", C.MQOD_STRUC_ID), ("Version", C.MQOD_VERSION_4), ("ObjectType", C.MQOT_Q),
        ("ObjectName", b""), ("ObjectQMgrName", b""), ("DynamicQName", b"AMQ.*"), ("AlternateUserId", b""),
        ("RecsPresent", 0), ("KnownDestCount", 0), ("UnknownDestCount", 0), ("InvalidDestCount", 0),
        ("ObjectRecOffset", 0), ("ResponseRecOffset", 0), ("ObjectRecPtr", 0), ("ResponseRecPtr", 0),
        ("AlternateSecurityId", b""), ("ResolvedQName", b""), ("ResolvedQMgrName", b""),
        *_vs("ObjectString"), *_vs("SelectionString"), *_vs("ResObjectString"), ("ResolvedType", -3),
    )  # fmt: skip


class SD(_Struct):
    """MQSD: subscription descriptor."""

    _fields = (
        ("_StrucId", C.MQSD_STRUC_ID), ("Version", C.MQSD_VERSION_1), ("Options", C.MQSO_NON_DURABLE),
        ("ObjectName", b""), ("AlternateUserId", b""), ("AlternateSecurityId", C.MQSID_NONE),
        ("SubExpiry", C.MQEI_UNLIMITED), *_vs("ObjectString"), *_vs("SubName"), *_vs("SubUserData"),
        ("SubCorrelId", C.MQCI_NONE), ("PubPriority", C.MQPRI_PRIORITY_AS_Q_DEF),
        ("PubAccountingToken", C.MQACT_NONE), ("PubApplIdentityData", b""), *_vs("SelectionString"),
        ("SubLevel", 1), *_vs("ResObjectString"),
    )  # fmt: skip


class SRO(_Struct):
    """MQSRO: subscription request options."""

    _fields = (("_StrucId", C.MQSRO_STRUC_ID), ("Version", C.MQSRO_VERSION_1), ("Options", 0), ("NumPubs", 0))


class CNO(_Struct):
    """MQCNO: connect options."""

    _fields = (
        ("_StrucId", C.MQCNO_STRUC_ID), ("Version", C.MQCNO_VERSION_5), ("Options", C.MQCNO_NONE),
        ("_ClientConnOffset", 0), ("_ClientConnPtr", 0), ("ConnTag", b""), ("_SSLConfigPtr", 0),
        ("_SSLConfigOffset", 0), ("ConnectionId", b""), ("_SecurityParmsOffset", 0), ("_SecurityParmsPtr", 0),
        ("CCDTUrl", 0), ("_CCDTUrlOffset", 0), ("_CCDTUrlLength", 0), ("_Reserved", 0),
        ("ApplName", b""), ("_Reserved2", 0), ("_BalanceParmsPtr", 0), ("_BalanceParmsOffset", 0),
        ("_Reserved3", 0),
    )  # fmt: skip


class CSP(_Struct):
    """MQCSP: security parameters (``CSPUserId``/``CSPPassword``)."""

    _fields = (
        ("_StrucId", C.MQCSP_STRUC_ID), ("Version", C.MQCSP_VERSION_1),
        ("AuthenticationType", C.MQCSP_AUTH_NONE),
        ("_Reserved1", 0), ("CSPUserId", 0), ("_CSPUserIdOffset", 0), ("_CSPUserIdLength", 0),
        ("_Reserved2", 0), ("CSPPassword", 0), ("_CSPPasswordOffset", 0), ("_CSPPasswordLength", 0),
        ("_Reserved3", 0), ("InitialKey", 0), ("_InitialKeyOffset", 0), ("_InitialKeyLength", 0),
        ("_Reserved4", 0), ("Token", 0), ("_TokenOffset", 0), ("_TokenLength", 0),
    )  # fmt: skip


class SCO(_Struct):
    """MQSCO: TLS configuration options."""

    _fields = (
        ("_StrucId", C.MQSCO_STRUC_ID), ("Version", C.MQSCO_VERSION_5), ("KeyRepository", b""),
        ("CryptoHardware", b""), ("AuthInfoRecCount", 0), ("AuthInfoRecOffset", 0), ("AuthInfoRecPtr", 0),
        ("KeyResetCount", 0), ("FipsRequired", 0), ("EncryptionPolicySuiteB", [1, 0, 0, 0]),
        ("CertificateValPolicy", 0), ("CertificateLabel", b""), ("KeyRepoPassword", 0),
        ("_KeyRepoPasswordOffset", 0), ("_KeyRepoPasswordLength", 0), ("HTTPSCertValidation", 0),
        ("HTTPSCertRevocation", 0), ("HTTPSKeyStore", 0), ("_HTTPSKeyStoreOffset", 0),
        ("_HTTPSKeyStoreLength", 0),
    )  # fmt: skip


class CD(_Struct):
    """MQCD: client channel definition."""

    _fields = (
        ("ChannelName", b""), ("Version", CMQXC.MQCD_VERSION_11), ("ChannelType", CMQXC.MQCHT_CLNTCONN),
        ("TransportType", CMQXC.MQXPT_TCP), ("Desc", b""), ("QMgrName", b""), ("XmitQName", b""),
        ("ShortConnectionName", b""), ("MCAName", b""), ("ModeName", b""), ("TpName", b""),
        ("BatchSize", 50), ("DiscInterval", 6000), ("ShortRetryCount", 10), ("ShortRetryInterval", 60),
        ("LongRetryCount", 999999999), ("LongRetryInterval", 1200), ("SecurityExit", b""), ("MsgExit", b""),
        ("SendExit", b""), ("ReceiveExit", b""), ("SeqNumberWrap", 999999999), ("MaxMsgLength", 4194304),
        ("PutAuthority", CMQXC.MQPA_DEFAULT), ("DataConversion", CMQXC.MQCDC_NO_SENDER_CONVERSION),
        ("SecurityUserData", b""), ("MsgUserData", b""), ("SendUserData", b""), ("ReceiveUserData", b""),
        ("UserIdentifier", b""), ("Password", b""), ("MCAUserIdentifier", b""),
        ("MCAType", CMQXC.MQMCAT_PROCESS), ("ConnectionName", b""), ("RemoteUserIdentifier", b""),
        ("RemotePassword", b""), ("MsgRetryExit", b""), ("MsgRetryUserData", b""), ("MsgRetryCount", 10),
        ("MsgRetryInterval", 1000), ("HeartbeatInterval", 300), ("BatchInterval", 0),
        ("NonPersistentMsgSpeed", CMQXC.MQNPMS_FAST), ("StrucLength", 0), ("ExitNameLength", 128),
        ("ExitDataLength", 32), ("MsgExitsDefined", 0), ("SendExitsDefined", 0), ("ReceiveExitsDefined", 0),
        ("MsgExitPtr", 0), ("MsgUserDataPtr", 0), ("SendExitPtr", 0), ("SendUserDataPtr", 0),
        ("ReceiveExitPtr", 0), ("ReceiveUserDataPtr", 0), ("ClusterPtr", 0), ("ClustersDefined", 0),
        ("NetworkPriority", 0), ("LongMCAUserIdLength", 0), ("LongRemoteUserIdLength", 0),
        ("LongMCAUserIdPtr", 0), ("LongRemoteUserIdPtr", 0), ("MCASecurityId", b""),
        ("RemoteSecurityId", b""), ("SSLCipherSpec", b""), ("SSLPeerNamePtr", 0), ("SSLPeerNameLength", 0),
        ("SSLClientAuth", 0), ("KeepAliveInterval", -1), ("LocalAddress", b""), ("BatchHeartbeat", 0),
        ("HdrCompList", [0, -1]), ("MsgCompList", [0] + 15 * [-1]), ("CLWLChannelRank", 0),
        ("CLWLChannelPriority", 0), ("CLWLChannelWeight", 50), ("ChannelMonitoring", 0),
        ("ChannelStatistics", 0), ("SharingConversations", 10), ("PropertyControl", 0),
        ("MaxInstances", 999999999), ("MaxInstancesPerClient", 999999999), ("ClientChannelWeight", 0),
        ("ConnectionAffinity", 1), ("BatchDataLimit", 5000), ("UseDLQ", 2), ("DefReconnect", 0),
        ("CertificateLabel", b""), ("SPLProtection", 0), ("QuantumSafeAlgorithm", 0),
        ("QuantumSafeRequired", 0),
    )  # fmt: skip


class CMHO(_Struct):
    """MQCMHO: create-message-handle options."""

    _fields = (
        ("_StrucId", C.MQCMHO_STRUC_ID),
        ("Version", C.MQCMHO_VERSION_1),
        ("Options", C.MQCMHO_DEFAULT_VALIDATION),
    )


class PD(_Struct):
    """MQPD: property descriptor."""

    _fields = (
        ("_StrucId", C.MQPD_STRUC_ID), ("Version", C.MQPD_VERSION_1), ("Options", C.MQPD_NONE),
        ("Support", C.MQPD_SUPPORT_OPTIONAL), ("Context", C.MQPD_NO_CONTEXT),
        ("CopyOptions", C.MQCOPY_DEFAULT),
    )  # fmt: skip


class SMPO(_Struct):
    """MQSMPO: set-message-property options."""

    _fields = (
        ("_StrucId", C.MQSMPO_STRUC_ID), ("Version", C.MQSMPO_VERSION_1), ("Options", C.MQSMPO_SET_FIRST),
        ("ValueEncoding", C.MQENC_NATIVE), ("ValueCCSID", C.MQCCSI_APPL),
    )  # fmt: skip


class IMPO(_Struct):
    """MQIMPO: inquire-message-property options."""

    _fields = (
        ("_StrucId", C.MQIMPO_STRUC_ID), ("Version", C.MQIMPO_VERSION_1), ("Options", C.MQIMPO_INQ_FIRST),
        ("RequestedEncoding", C.MQENC_NATIVE), ("RequestedCCSID", C.MQCCSI_APPL),
        ("ReturnedEncoding", C.MQENC_NATIVE), ("ReturnedCCSID", 0), ("Reserved1", 0),
    )  # fmt: skip


# MQMD fields the queue manager stores padded: character fields with blanks, byte fields with NULs.
_MD_CHAR = {
    "Format": 8, "ReplyToQ": 48, "ReplyToQMgr": 48, "UserIdentifier": 12, "ApplIdentityData": 32,
    "PutApplName": 28, "PutDate": 8, "PutTime": 8, "ApplOriginData": 4,
}  # fmt: skip
_MD_BYTES = {"MsgId": 24, "CorrelId": 24, "AccountingToken": 32, "GroupId": 24}


def _pad(value: Any, length: int, fill: bytes) -> bytes:
    raw = _b(value) or b""
    if not isinstance(raw, bytes):
        raise TypeError(f"expected bytes, got {type(raw).__name__}")
    return raw[:length].ljust(length, fill)


def _text(value: Any) -> str:
    raw = _b(value) or b""
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()


def _is_none_id(value: Any) -> bool:
    return not (_b(value) or b"").strip(b"\0")


# -- the queue manager's state ----------------------------------------------------------------------------
class _QMState(enum.Enum):
    RUNNING = "running"
    QUIESCING = "quiescing"
    STOPPED = "stopped"


@dataclass(order=True)
class _Message:
    key: tuple[int, int]  # (-priority, arrival): the queue's order, FIFO within priority
    body: bytes = field(compare=False)
    md: dict[str, Any] = field(compare=False)
    properties: dict[str, tuple[Any, int]] = field(compare=False)
    persistent: bool = field(compare=False)
    expires_at: float | None = field(compare=False)
    token: bytes = field(compare=False)
    uncommitted_put: int | None = field(default=None, compare=False)  # hconn of an uncommitted put


@dataclass
class _LocalQueue:
    name: str
    kind: str  # "local", "model", "tempdyn", "permdyn"
    max_depth: int = 5000
    max_msg_length: int = 4 * 1024 * 1024
    default_persistence: bool = False
    default_priority: int = 0
    put_inhibited: bool = False
    get_inhibited: bool = False
    model_definition: str = "tempdyn"  # what a model queue creates
    owner: int | None = None  # hconn that owns a temporary dynamic queue
    messages: list[_Message] = field(default_factory=list)
    expiring: list[tuple[float, tuple[int, int], _Message]] = field(default_factory=list)  # a heap
    exclusive: int | None = None  # hobj holding exclusive input
    input_handles: set[int] = field(default_factory=set)
    output_handles: set[int] = field(default_factory=set)

    @property
    def qtype(self) -> int:
        return int(C.MQQT_MODEL if self.kind == "model" else C.MQQT_LOCAL)


@dataclass
class _Sub:
    name: str | None
    topic: str
    durable: bool
    queue: str
    managed: bool
    correl_id: bytes
    owner: int | None  # hconn of a non-durable subscription
    hsub: int | None = None  # open handle, if any


@dataclass
class _Handle:
    hobj: int
    kind: str  # "queue", "qmgr", "topic", "sub"
    name: str  # queue name, topic string, or subscription name
    options: int
    cursor: tuple[int, int] | None = None  # browse cursor (message key)
    cursor_msg: _Message | None = None
    sub: _Sub | None = None


@dataclass
class _Conn:
    hconn: int
    client: bool
    reconnectable: bool
    user: str
    handles: dict[int, _Handle] = field(default_factory=dict)
    uow: list[tuple[str, _LocalQueue, _Message]] = field(default_factory=list)
    uow_backed_out: bool = False  # backed out underneath a reconnecting client: MQCMIT warns 2003
    dead: tuple[int, int] | None = None  # (reason for calls in flight, reason for later calls)
    reconnecting_until: float | None = None  # MQCNO_RECONNECT client waiting for the queue manager


@dataclass
class _Fault:
    verb: str
    reason: int
    comp: int
    count: int
    after: bool
    kill: bool
    skip: int


class Simulator:
    """One simulated queue manager, with an ``ibmmq``-shaped module in :attr:`mqi`.

    ``addresses`` (e.g. ``["127.0.0.1(1414)", "127.0.0.1(1415)"]``) models a multi-instance queue manager:
    client connections succeed only through the active address (the first, until :meth:`failover`); other
    addresses answer ``MQRC_HOST_NOT_AVAILABLE``. Without it every connection name is accepted.
    ``client_reconnect_timeout`` bounds how long an ``MQCNO_RECONNECT`` connection waits for a stopped queue
    manager before failing with ``MQRC_RECONNECT_FAILED`` (MQ's default is 1800 s).
    """

    def __init__(
        self,
        queue_manager_name: str = "QM1",
        *,
        max_msg_length: int = 4 * 1024 * 1024,
        addresses: list[str] | None = None,
        client_reconnect_timeout: float = 5.0,
    ) -> None:
        if not queue_manager_name or len(queue_manager_name) > 48:
            raise ValueError(f"queue manager name must be 1 to 48 characters, got {queue_manager_name!r}")
        self.queue_manager_name = queue_manager_name
        self.max_msg_length = max_msg_length
        self.client_reconnect_timeout = client_reconnect_timeout
        self._addresses = [_normalise_address(a) for a in addresses] if addresses else None
        self._active = self._addresses[0] if self._addresses else None
        self._cond = threading.Condition(threading.RLock())
        self._state = _QMState.RUNNING
        self._queues: dict[str, _LocalQueue] = {}
        self._topics: dict[str, str] = {}
        self._subs: dict[str, _Sub] = {}  # by name; unnamed non-durable ones by a generated key
        self._conns: dict[int, _Conn] = {}
        self._msg_handles: dict[int, dict[str, tuple[Any, int]]] = {}
        self._handles = itertools.count(101)
        self._arrivals = itertools.count(1)
        self._ids = itertools.count(time.time_ns() // 1000)
        self._faults: list[_Fault] = []
        self._waiting = 0
        self._credentials: tuple[str, str] | None = None
        self._denied: set[str] = set()
        self.stats: dict[str, int] = dict.fromkeys(("connects", "puts", "gets", "commits", "backouts"), 0)
        self.define_model_queue("SYSTEM.DEFAULT.MODEL.QUEUE")
        self.define_queue("SYSTEM.DEFAULT.LOCAL.QUEUE")
        self.define_queue("SYSTEM.DEAD.LETTER.QUEUE")
        self.mqi: Any = _build_module(self)

    def __repr__(self) -> str:
        return f"<mqsim.Simulator {self.queue_manager_name} {self._state.value}>"

    # -- controls ---------------------------------------------------------------------------------------
    def define_queue(
        self,
        name: str,
        *,
        max_depth: int = 5000,
        max_msg_length: int = 4 * 1024 * 1024,
        default_persistence: bool = False,
        default_priority: int = 0,
        put_inhibited: bool = False,
        get_inhibited: bool = False,
        replace: bool = False,
    ) -> None:
        """DEFINE QLOCAL. Like MQ, messages are non-persistent by default (``DEFPSIST(NO)``)."""
        name = _check_name(name)
        if max_depth < 0 or max_msg_length < 0 or not 0 <= default_priority <= 9:
            raise ValueError("max_depth and max_msg_length must be >= 0 and default_priority 0..9")
        with self._cond:
            old = self._queues.get(name)
            if old is not None and not replace:
                raise ValueError(f"queue {name!r} already exists (pass replace=True to redefine it)")
            queue = _LocalQueue(
                name, "local", max_depth, max_msg_length, default_persistence, default_priority,
                put_inhibited, get_inhibited,
            )  # fmt: skip
            if old is not None:
                queue.messages = old.messages
            self._queues[name] = queue

    def define_model_queue(self, name: str, *, permanent: bool = False) -> None:
        """DEFINE QMODEL: opening it creates a temporary (or permanent) dynamic queue."""
        name = _check_name(name)
        with self._cond:
            self._queues[name] = _LocalQueue(
                name, "model", model_definition="permdyn" if permanent else "tempdyn"
            )

    def define_topic(self, name: str, topic_string: str) -> None:
        """DEFINE TOPIC: an administrative topic object naming a topic string."""
        with self._cond:
            self._topics[_check_name(name)] = topic_string

    def delete_queue(self, name: str) -> None:
        """DELETE QLOCAL ... PURGE; handles still open on it get ``MQRC_Q_DELETED``."""
        with self._cond:
            if self._queues.pop(name, None) is None:
                raise ValueError(f"no queue {name!r}")
            self._cond.notify_all()

    def depth(self, name: str) -> int:
        """The queue's current depth, as MQ counts it (uncommitted puts in, uncommitted gets out)."""
        with self._cond:
            queue = self._queues.get(name)
            if queue is None:
                raise ValueError(f"no queue {name!r}")
            self._purge_expired(queue)
            return len(queue.messages)

    def queue_names(self) -> list[str]:
        with self._cond:
            return sorted(self._queues)

    def set_inhibited(self, name: str, *, put: bool | None = None, get: bool | None = None) -> None:
        """ALTER QLOCAL PUT(DISABLED)/GET(DISABLED)."""
        with self._cond:
            queue = self._queue_or_error(name)
            if put is not None:
                queue.put_inhibited = put
            if get is not None:
                queue.get_inhibited = get
                self._cond.notify_all()

    def deny(self, name: str) -> None:
        """Refuse every MQOPEN/MQPUT1/MQSUB of the object ``name`` with ``MQRC_NOT_AUTHORIZED``."""
        with self._cond:
            self._denied.add(name)

    def allow(self, name: str) -> None:
        with self._cond:
            self._denied.discard(name)

    def require_credentials(self, user: str | None, password: str | None = None) -> None:
        """Refuse connections without this user and password (``MQRC_NOT_AUTHORIZED``); None: accept all."""
        with self._cond:
            self._credentials = None if user is None else (user, password or "")

    def fail_next(
        self,
        verb: str,
        reason: int,
        *,
        count: int = 1,
        skip: int = 0,
        after: bool = False,
        comp: int | None = None,
        kill: bool | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``verb`` (``MQPUT``, ``MQCMIT``, ...) return ``reason``.

        ``skip`` lets that many calls of ``verb`` through first (on any connection).

        ``after=True`` performs the call first and then reports the error (a put that happened although the
        client saw the connection break; a commit whose outcome the client cannot know). ``kill`` ends the
        connection too; by default it does for ``MQRC_CONNECTION_BROKEN`` and ``MQRC_Q_MGR_STOPPING``.
        """
        if verb not in _MQI_VERBS:
            raise ValueError(f"unknown MQI verb {verb!r}; one of {sorted(_MQI_VERBS)}")
        if count < 1 or skip < 0:
            raise ValueError(f"count must be >= 1 and skip >= 0, got {count!r} and {skip!r}")
        if comp is None:
            comp = C.MQCC_WARNING if reason in (C.MQRC_BACKED_OUT, C.MQRC_NO_SUBS_MATCHED) else C.MQCC_FAILED
        with self._cond:
            kill = reason in _FATAL if kill is None else kill
            self._faults.append(_Fault(verb, reason, comp, count, after, kill, skip))

    @property
    def state(self) -> str:
        """``"running"``, ``"quiescing"`` or ``"stopped"``."""
        return self._state.value

    @property
    def connection_count(self) -> int:
        """Live connections (broken ones the application has not disconnected are not counted)."""
        with self._cond:
            return sum(1 for c in self._conns.values() if c.dead is None)

    @property
    def waiting_calls(self) -> int:
        """MQGET calls now waiting for a message (for tests that act while a get is in flight)."""
        return self._waiting

    @property
    def active_address(self) -> str | None:
        return self._active

    def stop(self) -> None:
        """endmqm -i: calls in flight get ``MQRC_Q_MGR_STOPPING``, later calls on their connections
        ``MQRC_CONNECTION_BROKEN``, new connections ``MQRC_Q_MGR_NOT_AVAILABLE`` until :meth:`start`.

        Uncommitted work is backed out; non-persistent messages, temporary dynamic queues and non-durable
        subscriptions are gone. ``MQCNO_RECONNECT`` connections wait (up to ``client_reconnect_timeout``).
        """
        with self._cond:
            self._shutdown(C.MQRC_Q_MGR_STOPPING)

    def start(self) -> None:
        """strmqm. After :meth:`quiesce` this completes the restart (as :meth:`stop` then start)."""
        with self._cond:
            if self._state is _QMState.QUIESCING:
                self._shutdown(C.MQRC_Q_MGR_QUIESCING)
            if self._state is _QMState.STOPPED:
                self._state = _QMState.RUNNING
                for conn in self._conns.values():
                    conn.reconnecting_until = None
                self._cond.notify_all()

    def quiesce(self) -> None:
        """endmqm -c: calls that ask to fail if quiescing (the ``*_FAIL_IF_QUIESCING`` options) and new
        connections get ``MQRC_Q_MGR_QUIESCING``; other calls go on until :meth:`stop` or :meth:`start`."""
        with self._cond:
            if self._state is _QMState.RUNNING:
                self._state = _QMState.QUIESCING
                self._cond.notify_all()

    def break_connections(self) -> int:
        """Break every client connection (``MQRC_CONNECTION_BROKEN``); the queue manager stays up.

        Their units of work are backed out. ``MQCNO_RECONNECT`` connections reconnect transparently (their
        handles stay valid; a unit of work in progress is backed out and the next ``MQCMIT`` warns
        ``MQRC_BACKED_OUT``). Returns how many connections broke.
        """
        with self._cond:
            broken = 0
            for conn in list(self._conns.values()):
                if conn.dead is not None:
                    continue
                if conn.reconnectable:
                    self._back_out_underneath(conn)
                else:
                    self._kill(conn, C.MQRC_CONNECTION_BROKEN, C.MQRC_CONNECTION_BROKEN)
                broken += 1
            self._cond.notify_all()
            return broken

    def failover(self, address: str) -> None:
        """Multi-instance failover: stop, make ``address`` the active instance, start."""
        address = _normalise_address(address)
        with self._cond:
            if self._addresses is None or address not in self._addresses:
                raise ValueError(
                    f"{address!r} is not one of this queue manager's addresses {self._addresses}"
                )
            self._shutdown(C.MQRC_Q_MGR_STOPPING)
            self._active = address
        self.start()

    # -- lifecycle helpers (called with the lock held) ---------------------------------------------------
    def _shutdown(self, inflight_reason: int) -> None:
        if self._state is _QMState.STOPPED:
            return
        self._state = _QMState.STOPPED
        deadline = time.monotonic() + self.client_reconnect_timeout
        for conn in list(self._conns.values()):
            if conn.dead is not None:
                continue
            if conn.reconnectable:
                self._back_out_underneath(conn)
                conn.reconnecting_until = deadline
                for handle in conn.handles.values():
                    handle.cursor, handle.cursor_msg = None, None
            else:
                self._kill(conn, inflight_reason, C.MQRC_CONNECTION_BROKEN)
        for name, queue in list(self._queues.items()):
            if queue.kind == "tempdyn" and not self._owner_reconnectable(queue):
                del self._queues[name]
                continue
            queue.messages = [m for m in queue.messages if m.persistent]
        self._cond.notify_all()

    def _owner_reconnectable(self, queue: _LocalQueue) -> bool:
        owner = self._conns.get(queue.owner) if queue.owner is not None else None
        return owner is not None and owner.reconnectable and owner.dead is None

    def _kill(self, conn: _Conn, inflight: int, later: int) -> None:
        """The connection ends without MQDISC: back out, close its objects, fail its calls."""
        self._backout(conn)
        self._close_all(conn)
        conn.dead = (inflight, later)
        self._cond.notify_all()

    def _back_out_underneath(self, conn: _Conn) -> None:
        if conn.uow:
            self._backout(conn)
            conn.uow_backed_out = True

    def _close_all(self, conn: _Conn) -> None:
        for hobj in list(conn.handles):
            self._close_handle(conn, hobj, C.MQCO_NONE)

    # -- entry checks ------------------------------------------------------------------------------------
    @contextmanager
    def _call(self, hconn: Any, verb: str, *, quiescing_fails: bool = False) -> Iterator[_Conn]:
        """Every MQI call: injected faults, a valid live connection, the quiescing rule."""
        with self._cond:
            fault = self._take_fault(verb)
            if fault is not None and not fault.after:
                self._raise_fault(fault, hconn)
            conn = self._live(hconn, quiescing_fails=quiescing_fails, in_flight=False)
            yield conn
            if fault is not None:
                self._raise_fault(fault, hconn)

    def _live(self, hconn: Any, *, quiescing_fails: bool, in_flight: bool) -> _Conn:
        conn = self._conns.get(hconn) if isinstance(hconn, int) else None
        if conn is None:
            raise _fail(C.MQRC_HCONN_ERROR)
        while conn.reconnecting_until is not None and conn.dead is None:
            remaining = conn.reconnecting_until - time.monotonic()
            if remaining <= 0:
                self._kill(conn, C.MQRC_RECONNECT_FAILED, C.MQRC_RECONNECT_FAILED)
                break
            self._cond.wait(remaining)
        if conn.dead is not None:
            raise _fail(conn.dead[0] if in_flight else conn.dead[1])
        if quiescing_fails and self._state is _QMState.QUIESCING:
            raise _fail(C.MQRC_Q_MGR_QUIESCING)
        return conn

    def _take_fault(self, verb: str) -> _Fault | None:
        for fault in self._faults:
            if fault.verb == verb:
                if fault.skip:
                    fault.skip -= 1
                    return None
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _raise_fault(self, fault: _Fault, hconn: Any) -> None:
        conn = self._conns.get(hconn) if isinstance(hconn, int) else None
        if fault.kill and conn is not None and conn.dead is None:
            self._kill(conn, fault.reason, C.MQRC_CONNECTION_BROKEN)
        raise _fail(fault.reason, fault.comp)

    def _queue_or_error(self, name: str) -> _LocalQueue:
        queue = self._queues.get(name)
        if queue is None:
            raise ValueError(f"no queue {name!r}")
        return queue

    def _new_id(self) -> bytes:
        prefix = b"AMQ " + self.queue_manager_name.encode("ascii")[:12].ljust(12)
        return prefix + next(self._ids).to_bytes(8, "big")

    # -- MQCONN / MQDISC ---------------------------------------------------------------------------------
    def _connect(
        self,
        name: Any,
        *,
        client: bool,
        channel: str = "",
        addresses: str = "",
        user: str | None = None,
        password: str | None = None,
        options: int = 0,
        cipher: str = "",
        key_repository: str = "",
    ) -> int:
        with self._cond:
            fault = self._take_fault("MQCONN")
            if fault is not None:
                raise _fail(fault.reason, fault.comp)
            wanted = _text(name)
            if wanted and wanted != self.queue_manager_name:
                raise _fail(C.MQRC_Q_MGR_NAME_ERROR)
            if client:
                if not channel:
                    raise _fail(C.MQRC_UNKNOWN_CHANNEL_NAME)
                listed = [_normalise_address(a) for a in addresses.split(",") if a.strip()]
                if not listed:
                    raise _fail(C.MQRC_HOST_NOT_AVAILABLE)
                if self._addresses is not None and self._active not in listed:
                    raise _fail(C.MQRC_HOST_NOT_AVAILABLE)
                if cipher and not key_repository:
                    raise _fail(C.MQRC_KEY_REPOSITORY_ERROR)
            if self._state is _QMState.STOPPED:
                raise _fail(C.MQRC_Q_MGR_NOT_AVAILABLE)
            if self._state is _QMState.QUIESCING:
                raise _fail(C.MQRC_Q_MGR_QUIESCING)
            if self._credentials is not None and (user or "", password or "") != self._credentials:
                raise _fail(C.MQRC_NOT_AUTHORIZED)
            reconnect = bool(options & (C.MQCNO_RECONNECT | C.MQCNO_RECONNECT_Q_MGR))
            reconnect = reconnect and client and not options & C.MQCNO_RECONNECT_DISABLED
            hconn = next(self._handles)
            self._conns[hconn] = _Conn(hconn, client, reconnect, user or "mqsim")
            self.stats["connects"] += 1
            return hconn

    def _disconnect(self, hconn: Any) -> None:
        """MQDISC commits the unit of work (distributed platforms) and closes what is open."""
        with self._cond:
            conn = self._conns.get(hconn) if isinstance(hconn, int) else None
            if conn is None:
                raise _fail(C.MQRC_HCONN_ERROR)
            if conn.dead is not None:
                del self._conns[hconn]
                raise _fail(conn.dead[1])
            self._commit_work(conn)
            self._close_all(conn)
            del self._conns[hconn]
            self._cond.notify_all()

    # -- MQOPEN / MQCLOSE --------------------------------------------------------------------------------
    def _open(self, hconn: Any, od: Any, options: int) -> int:
        with self._call(hconn, "MQOPEN", quiescing_fails=bool(options & C.MQOO_FAIL_IF_QUIESCING)) as conn:
            otype = od.ObjectType
            hobj = next(self._handles)
            if otype == C.MQOT_Q_MGR:
                conn.handles[hobj] = _Handle(hobj, "qmgr", self.queue_manager_name, options)
                return hobj
            if otype == C.MQOT_TOPIC:
                topic = self._resolve_topic(_text(od.ObjectName), od.get_vs("ObjectString"))
                if not options & C.MQOO_OUTPUT or options & (C.MQOO_INPUT_AS_Q_DEF | C.MQOO_BROWSE):
                    raise _fail(C.MQRC_OPTION_NOT_VALID_FOR_TYPE)
                conn.handles[hobj] = _Handle(hobj, "topic", topic, options)
                od.ResObjectStringVSLength = len(topic)
                return hobj
            if otype != C.MQOT_Q:
                raise _fail(C.MQRC_OBJECT_TYPE_ERROR)
            queue = self._open_queue_object(conn, od)
            self._claim_input(queue, hobj, options)
            if options & C.MQOO_OUTPUT:
                queue.output_handles.add(hobj)
            conn.handles[hobj] = _Handle(hobj, "queue", queue.name, options)
            od.ObjectName = queue.name.encode("ascii")
            od.ResolvedQName = queue.name.encode("ascii")
            od.ResolvedQMgrName = self.queue_manager_name.encode("ascii")
            return hobj

    def _open_queue_object(self, conn: _Conn, od: Any) -> _LocalQueue:
        qmgr = _text(od.ObjectQMgrName)
        if qmgr and qmgr != self.queue_manager_name:
            raise _fail(C.MQRC_UNKNOWN_REMOTE_Q_MGR)
        name = _text(od.ObjectName)
        if not name:
            raise _fail(C.MQRC_OBJECT_NAME_ERROR)
        queue = self._queues.get(name)
        if queue is None:
            raise _fail(C.MQRC_UNKNOWN_OBJECT_NAME)
        if name in self._denied:
            raise _fail(C.MQRC_NOT_AUTHORIZED)
        if queue.kind != "model":
            return queue
        pattern = _text(od.DynamicQName) or "AMQ.*"
        dyn_name = (
            pattern[:-1] + next(self._ids).to_bytes(8, "big").hex().upper()
            if pattern.endswith("*")
            else pattern
        )
        dyn_name = dyn_name[:48]
        if dyn_name in self._queues:
            raise _fail(C.MQRC_OBJECT_ALREADY_EXISTS)
        created = _LocalQueue(dyn_name, queue.model_definition)
        if created.kind == "tempdyn":
            created.owner = conn.hconn
        self._queues[dyn_name] = created
        return created

    @staticmethod
    def _claim_input(queue: _LocalQueue, hobj: int, options: int) -> None:
        wants_input = options & (C.MQOO_INPUT_AS_Q_DEF | C.MQOO_INPUT_SHARED | C.MQOO_INPUT_EXCLUSIVE)
        if not wants_input:
            return
        if queue.exclusive is not None or (options & C.MQOO_INPUT_EXCLUSIVE and queue.input_handles):
            raise _fail(C.MQRC_OBJECT_IN_USE)
        if options & C.MQOO_INPUT_EXCLUSIVE:
            queue.exclusive = hobj
        queue.input_handles.add(hobj)

    def _close(self, hconn: Any, hobj: Any, options: int) -> None:
        with self._call(hconn, "MQCLOSE") as conn:
            if hobj not in conn.handles:
                raise _fail(C.MQRC_HOBJ_ERROR)
            self._close_handle(conn, hobj, options)

    def _close_handle(self, conn: _Conn, hobj: int, options: int) -> None:
        handle = conn.handles.pop(hobj)
        if handle.kind == "sub" and handle.sub is not None:
            sub = handle.sub
            sub.hsub = None
            if options & C.MQCO_REMOVE_SUB or not sub.durable:
                self._remove_sub(sub)
            return
        if handle.kind != "queue":
            return
        queue = self._queues.get(handle.name)
        if queue is None:
            return
        queue.input_handles.discard(hobj)
        queue.output_handles.discard(hobj)
        if queue.exclusive == hobj:
            queue.exclusive = None
        # Closing a temporary dynamic queue deletes it (uncommitted work on it is lost with it).
        if (queue.kind == "tempdyn" and queue.owner == conn.hconn) or (
            queue.kind == "permdyn" and options & (C.MQCO_DELETE | C.MQCO_DELETE_PURGE)
        ):
            if queue.kind == "permdyn" and options & C.MQCO_DELETE and queue.messages:
                raise _fail(C.MQRC_Q_NOT_EMPTY, C.MQCC_WARNING)
            del self._queues[queue.name]
            self._cond.notify_all()

    # -- MQPUT / MQPUT1 ---------------------------------------------------------------------------------
    def _put(self, hconn: Any, hobj: Any, md: Any, pmo: Any, body: bytes) -> None:
        with self._call(
            hconn, "MQPUT", quiescing_fails=bool(pmo.Options & C.MQPMO_FAIL_IF_QUIESCING)
        ) as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None:
                raise _fail(C.MQRC_HOBJ_ERROR)
            if not handle.options & C.MQOO_OUTPUT:
                raise _fail(C.MQRC_NOT_OPEN_FOR_OUTPUT)
            if handle.kind == "topic":
                self._publish(conn, handle.name, md, pmo, body)
                return
            queue = self._queues.get(handle.name)
            if queue is None:
                raise _fail(C.MQRC_Q_DELETED)
            self._enqueue(conn, queue, md, pmo, body)

    def _put1(self, hconn: Any, od: Any, md: Any, pmo: Any, body: bytes) -> None:
        quiescing = bool(pmo.Options & C.MQPMO_FAIL_IF_QUIESCING)
        with self._call(hconn, "MQPUT1", quiescing_fails=quiescing) as conn:
            if od.ObjectType == C.MQOT_TOPIC:
                self._publish(
                    conn, self._resolve_topic(_text(od.ObjectName), od.get_vs("ObjectString")), md, pmo, body
                )
                return
            queue = self._open_queue_object(conn, od)
            try:
                self._enqueue(conn, queue, md, pmo, body)
            finally:
                if queue.kind == "tempdyn" and queue.owner == conn.hconn:
                    del self._queues[queue.name]

    def _check_syncpoint(self, conn: _Conn, syncpoint: bool) -> None:
        if syncpoint and conn.uow_backed_out:
            raise _fail(C.MQRC_BACKED_OUT)

    def _enqueue(self, conn: _Conn, queue: _LocalQueue, md: Any, pmo: Any, body: bytes) -> None:
        syncpoint = bool(pmo.Options & C.MQPMO_SYNCPOINT)
        self._check_syncpoint(conn, syncpoint)
        if queue.kind == "model":
            raise _fail(C.MQRC_OBJECT_TYPE_ERROR)
        if queue.put_inhibited:
            raise _fail(C.MQRC_PUT_INHIBITED)
        if len(body) > self.max_msg_length:
            raise _fail(C.MQRC_MSG_TOO_BIG_FOR_Q_MGR)
        if len(body) > queue.max_msg_length:
            raise _fail(C.MQRC_MSG_TOO_BIG_FOR_Q)
        self._purge_expired(queue)
        if len(queue.messages) >= queue.max_depth:
            raise _fail(C.MQRC_Q_FULL)
        message = self._make_message(queue, md, pmo, body)
        self._store(conn, queue, message, syncpoint)
        self._fill_put_output(md, pmo, message, queue.name)

    def _make_message(self, queue: _LocalQueue, md: Any, pmo: Any, body: bytes) -> _Message:
        if not isinstance(body, bytes):
            raise TypeError(f"message body must be bytes, got {type(body).__name__}")
        priority = md.Priority
        if priority == C.MQPRI_PRIORITY_AS_Q_DEF:
            priority = queue.default_priority
        elif not isinstance(priority, int) or priority < 0:
            raise _fail(C.MQRC_PRIORITY_ERROR)
        priority = min(priority, 9)
        persistence = md.Persistence
        if persistence == C.MQPER_PERSISTENCE_AS_Q_DEF:
            persistent = queue.default_persistence
        elif persistence in (C.MQPER_PERSISTENT, C.MQPER_NOT_PERSISTENT):
            persistent = persistence == C.MQPER_PERSISTENT
        else:
            raise _fail(C.MQRC_PERSISTENCE_ERROR)
        stored: dict[str, Any] = {}
        for name, _default in MD._fields:
            if name.startswith("_"):
                continue
            value = getattr(md, name)
            if name in _MD_CHAR:  # null-terminated or null-padded text comes back blank-padded
                value = _pad((_b(value) or b"").split(b"\0", 1)[0], _MD_CHAR[name], b" ")
            elif name in _MD_BYTES:
                value = _pad(value, _MD_BYTES[name], b"\0")
            stored[name] = value
        if pmo.Options & C.MQPMO_NEW_MSG_ID or _is_none_id(stored["MsgId"]):
            stored["MsgId"] = self._new_id()
        if pmo.Options & C.MQPMO_NEW_CORREL_ID:
            stored["CorrelId"] = self._new_id()
        now = datetime.datetime.now(datetime.timezone.utc)
        stored["PutDate"] = now.strftime("%Y%m%d").encode("ascii")
        stored["PutTime"] = (now.strftime("%H%M%S") + f"{now.microsecond // 10000:02d}").encode("ascii")
        stored["PutApplType"] = C.MQAT_UNIX
        stored["PutApplName"] = _pad(b"mqsim", 28, b" ")
        stored["UserIdentifier"] = _pad(b"mqsim", 12, b" ")
        if stored["ReplyToQ"].strip() and not stored["ReplyToQMgr"].strip():
            stored["ReplyToQMgr"] = _pad(self.queue_manager_name, 48, b" ")
        stored["Priority"] = priority
        stored["Persistence"] = C.MQPER_PERSISTENT if persistent else C.MQPER_NOT_PERSISTENT
        expiry = stored["Expiry"]
        expires_at = None if expiry in (C.MQEI_UNLIMITED, 0) or expiry < 0 else time.monotonic() + expiry / 10
        properties: dict[str, tuple[Any, int]] = {}
        if pmo.OriginalMsgHandle:
            properties = dict(self._msg_handles.get(pmo.OriginalMsgHandle, {}))
        return _Message(
            (-priority, next(self._arrivals)), body, stored, properties, persistent, expires_at,
            next(self._ids).to_bytes(16, "big"),
        )  # fmt: skip

    def _store(self, conn: _Conn, queue: _LocalQueue, message: _Message, syncpoint: bool) -> None:
        bisect.insort(queue.messages, message)
        if message.expires_at is not None:
            heapq.heappush(queue.expiring, (message.expires_at, message.key, message))
        self.stats["puts"] += 1
        if syncpoint:
            message.uncommitted_put = conn.hconn
            conn.uow.append(("put", queue, message))
        else:
            self._cond.notify_all()

    @staticmethod
    def _fill_put_output(md: Any, pmo: Any, message: _Message, resolved: str) -> None:
        for name in (
            "MsgId",
            "CorrelId",
            "PutDate",
            "PutTime",
            "PutApplType",
            "PutApplName",
            "UserIdentifier",
        ):
            setattr(md, name, message.md[name])
        if message.md["ReplyToQ"].strip():
            md.ReplyToQMgr = message.md["ReplyToQMgr"]
        pmo.ResolvedQName = resolved.encode("ascii")

    # -- publish/subscribe ------------------------------------------------------------------------------
    def _resolve_topic(self, name: str, string: bytes | None) -> str:
        base = ""
        if name:
            if name not in self._topics:
                raise _fail(C.MQRC_UNKNOWN_OBJECT_NAME)
            if name in self._denied:
                raise _fail(C.MQRC_NOT_AUTHORIZED)
            base = self._topics[name]
        extra = (string or b"").decode("utf-8")
        topic = f"{base}/{extra}" if base and extra else (base or extra)
        if not topic:
            raise _fail(C.MQRC_TOPIC_STRING_ERROR)
        return topic

    def _publish(self, conn: _Conn, topic: str, md: Any, pmo: Any, body: bytes) -> None:
        syncpoint = bool(pmo.Options & C.MQPMO_SYNCPOINT)
        self._check_syncpoint(conn, syncpoint)
        template: _Message | None = None
        matched = 0
        for sub in list(self._subs.values()):
            queue = self._queues.get(sub.queue)
            if queue is None or not _topic_matches(sub.topic, topic):
                continue
            message = self._make_message(queue, md, pmo, body)
            if template is None:
                template = message
            message.md["MsgId"] = template.md["MsgId"]
            message.md["CorrelId"] = sub.correl_id
            self._store(conn, queue, message, syncpoint)
            matched += 1
        if template is None:
            template = self._make_message(_LocalQueue("", "local"), md, pmo, body)
        self._fill_put_output(md, pmo, template, "")
        if not matched and pmo.Options & C.MQPMO_WARN_IF_NO_SUBS_MATCHED:
            raise _fail(C.MQRC_NO_SUBS_MATCHED, C.MQCC_WARNING)

    def _subscribe(self, hconn: Any, sd: Any, hobj_queue: Any) -> tuple[int, int]:
        options = sd.Options
        with self._call(hconn, "MQSUB", quiescing_fails=bool(options & C.MQSO_FAIL_IF_QUIESCING)) as conn:
            name_raw = sd.get_vs("SubName")
            name = name_raw.decode("utf-8") if name_raw else None
            durable = bool(options & C.MQSO_DURABLE)
            if durable and not name:
                raise _fail(C.MQRC_SUB_NAME_ERROR)
            existing = self._subs.get(name) if name else None
            if existing is not None and options & C.MQSO_RESUME:
                if existing.hsub is not None:
                    raise _fail(C.MQRC_SUBSCRIPTION_IN_USE)
                sub = existing
            elif options & C.MQSO_CREATE:
                if existing is not None:
                    raise _fail(C.MQRC_SUB_ALREADY_EXISTS)
                topic = self._resolve_topic(_text(sd.ObjectName), sd.get_vs("ObjectString"))
                sub = self._create_sub(conn, sd, name, topic, durable, hobj_queue)
            else:
                raise _fail(C.MQRC_NO_SUBSCRIPTION)
            if sub.managed:
                hobj = next(self._handles)
                conn.handles[hobj] = _Handle(hobj, "queue", sub.queue, C.MQOO_INPUT_AS_Q_DEF | C.MQOO_BROWSE)
                self._queues[sub.queue].input_handles.add(hobj)
            else:
                hobj = hobj_queue
            hsub = next(self._handles)
            conn.handles[hsub] = _Handle(hsub, "sub", sub.name or "", options, sub=sub)
            sub.hsub = hsub
            sd.SubCorrelId = sub.correl_id
            return hobj, hsub

    def _create_sub(
        self, conn: _Conn, sd: Any, name: str | None, topic: str, durable: bool, hobj_queue: Any
    ) -> _Sub:
        managed = bool(sd.Options & C.MQSO_MANAGED)
        if managed:
            kind = "permdyn" if durable else "tempdyn"
            prefix = "SYSTEM.MANAGED.DURABLE." if durable else "SYSTEM.MANAGED.NDURABLE."
            queue = _LocalQueue(prefix + next(self._ids).to_bytes(8, "big").hex().upper(), kind)
            queue.owner = None if durable else conn.hconn
            self._queues[queue.name] = queue
            queue_name = queue.name
        else:
            handle = conn.handles.get(hobj_queue) if isinstance(hobj_queue, int) else None
            if handle is None or handle.kind != "queue":
                raise _fail(C.MQRC_HOBJ_ERROR)
            queue_name = handle.name
        sub = _Sub(name, topic, durable, queue_name, managed, self._new_id(), None if durable else conn.hconn)
        self._subs[name if name else f"\0{next(self._ids)}"] = sub
        return sub

    def _remove_sub(self, sub: _Sub) -> None:
        for key, value in list(self._subs.items()):
            if value is sub:
                del self._subs[key]
        if sub.managed:
            self._queues.pop(sub.queue, None)

    # -- MQGET ------------------------------------------------------------------------------------------
    def _get(self, hconn: Any, hobj: Any, md: Any, gmo: Any, max_length: int | None) -> bytes:
        options = gmo.Options
        quiescing = bool(options & C.MQGMO_FAIL_IF_QUIESCING)
        with self._call(hconn, "MQGET", quiescing_fails=quiescing) as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None or handle.kind != "queue":
                raise _fail(C.MQRC_HOBJ_ERROR)
            browse = options & (C.MQGMO_BROWSE_FIRST | C.MQGMO_BROWSE_NEXT | C.MQGMO_BROWSE_MSG_UNDER_CURSOR)
            if browse and not handle.options & C.MQOO_BROWSE:
                raise _fail(C.MQRC_NOT_OPEN_FOR_BROWSE)
            inputs = C.MQOO_INPUT_AS_Q_DEF | C.MQOO_INPUT_SHARED | C.MQOO_INPUT_EXCLUSIVE
            if not browse and not handle.options & inputs:
                raise _fail(C.MQRC_NOT_OPEN_FOR_INPUT)
            if options & C.MQGMO_SYNCPOINT:
                self._check_syncpoint(conn, True)
            unlimited = gmo.WaitInterval == C.MQWI_UNLIMITED
            deadline = None if unlimited else time.monotonic() + max(gmo.WaitInterval, 0) / 1000
            waited = False
            while True:
                if waited:
                    self._live(hconn, quiescing_fails=quiescing, in_flight=True)
                    if handle.hobj not in conn.handles:
                        raise _fail(C.MQRC_HOBJ_ERROR)
                queue = self._queues.get(handle.name)
                if queue is None:
                    raise _fail(C.MQRC_Q_DELETED)
                if not browse and queue.get_inhibited:
                    raise _fail(C.MQRC_GET_INHIBITED)
                message = self._find(queue, handle, md, gmo)
                if message is not None:
                    return self._deliver(conn, queue, handle, message, md, gmo, max_length)
                remaining = None if deadline is None else deadline - time.monotonic()
                if not options & C.MQGMO_WAIT or (remaining is not None and remaining <= 0):
                    raise _fail(C.MQRC_NO_MSG_AVAILABLE)
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
                waited = True

    def _find(self, queue: _LocalQueue, handle: _Handle, md: Any, gmo: Any) -> _Message | None:
        self._purge_expired(queue)
        options = gmo.Options
        if options & (C.MQGMO_MSG_UNDER_CURSOR | C.MQGMO_BROWSE_MSG_UNDER_CURSOR):
            message = handle.cursor_msg
            if message is None or message not in queue.messages or message.uncommitted_put is not None:
                raise _fail(C.MQRC_NO_MSG_UNDER_CURSOR)
            return message
        match_id = gmo.MatchOptions & C.MQMO_MATCH_MSG_ID and not _is_none_id(md.MsgId)
        match_correl = gmo.MatchOptions & C.MQMO_MATCH_CORREL_ID and not _is_none_id(md.CorrelId)
        msg_id = _pad(md.MsgId, 24, b"\0") if match_id else None
        correl_id = _pad(md.CorrelId, 24, b"\0") if match_correl else None
        after = handle.cursor if options & C.MQGMO_BROWSE_NEXT else None
        start = 0 if after is None else bisect.bisect_right([m.key for m in queue.messages], after)
        for message in queue.messages[start:]:
            if message.uncommitted_put is not None:
                continue
            if msg_id is not None and message.md["MsgId"] != msg_id:
                continue
            if correl_id is not None and message.md["CorrelId"] != correl_id:
                continue
            return message
        return None

    def _deliver(
        self,
        conn: _Conn,
        queue: _LocalQueue,
        handle: _Handle,
        message: _Message,
        md: Any,
        gmo: Any,
        max_length: int | None,
    ) -> bytes:
        options = gmo.Options
        body = message.body
        truncated = max_length is not None and len(body) > max_length
        if truncated and not options & C.MQGMO_ACCEPT_TRUNCATED_MSG:
            self._fill_get_output(md, gmo, message, queue.name)
            raise _fail(C.MQRC_TRUNCATED_MSG_FAILED, message=b"", original_length=len(body))
        browse = options & (C.MQGMO_BROWSE_FIRST | C.MQGMO_BROWSE_NEXT | C.MQGMO_BROWSE_MSG_UNDER_CURSOR)
        if browse:
            handle.cursor, handle.cursor_msg = message.key, message
        else:
            queue.messages.remove(message)
            if handle.cursor_msg is message:
                handle.cursor_msg = None
            self.stats["gets"] += 1
            syncpoint = bool(options & C.MQGMO_SYNCPOINT) or bool(
                options & C.MQGMO_SYNCPOINT_IF_PERSISTENT and message.persistent
            )
            if syncpoint:
                conn.uow.append(("get", queue, message))
        self._fill_get_output(md, gmo, message, queue.name)
        if truncated:
            assert max_length is not None
            raise _fail(
                C.MQRC_TRUNCATED_MSG_ACCEPTED,
                C.MQCC_WARNING,
                message=body[:max_length],
                original_length=len(body),
            )
        return body

    def _fill_get_output(self, md: Any, gmo: Any, message: _Message, queue_name: str) -> None:
        for name, value in message.md.items():
            setattr(md, name, value)
        if message.expires_at is not None:
            md.Expiry = max(1, int((message.expires_at - time.monotonic()) * 10))
        gmo.ResolvedQName = _pad(queue_name, 48, b" ")
        gmo.MsgToken = message.token
        gmo.ReturnedLength = len(message.body)
        if gmo.MsgHandle and gmo.MsgHandle in self._msg_handles:
            self._msg_handles[gmo.MsgHandle] = dict(message.properties)

    def _purge_expired(self, queue: _LocalQueue) -> None:
        """Drop expired messages (MQ removes them when it meets them; nobody can get them)."""
        now = time.monotonic()
        expired = []
        while queue.expiring and queue.expiring[0][0] <= now:
            expired.append(heapq.heappop(queue.expiring)[2])
        if expired:
            gone = {id(m) for m in expired}
            queue.messages = [m for m in queue.messages if id(m) not in gone]

    # -- units of work ----------------------------------------------------------------------------------
    def _begin(self, hconn: Any) -> None:
        with self._call(hconn, "MQBEGIN") as conn:
            # A local unit of work needs no MQBEGIN; without XA resource managers MQ warns 2121, and a
            # client connection cannot coordinate one at all (2012).
            if conn.client:
                raise _fail(C.MQRC_ENVIRONMENT_ERROR)
            raise _fail(C.MQRC_NO_EXTERNAL_PARTICIPANTS, C.MQCC_WARNING)

    def _commit(self, hconn: Any) -> None:
        with self._call(hconn, "MQCMIT") as conn:
            if conn.uow_backed_out:
                conn.uow_backed_out = False
                raise _fail(C.MQRC_BACKED_OUT, C.MQCC_WARNING)
            self._commit_work(conn)

    def _commit_work(self, conn: _Conn) -> None:
        for action, _queue, message in conn.uow:
            if action == "put":
                message.uncommitted_put = None
        if conn.uow:
            self.stats["commits"] += 1
        conn.uow.clear()
        self._cond.notify_all()

    def _backout_call(self, hconn: Any) -> None:
        with self._call(hconn, "MQBACK") as conn:
            conn.uow_backed_out = False
            self._backout(conn)

    def _backout(self, conn: _Conn) -> None:
        for action, queue, message in reversed(conn.uow):
            live = self._queues.get(queue.name) is queue
            if action == "put":
                if live and message in queue.messages:
                    queue.messages.remove(message)
            elif live:
                message.md["BackoutCount"] += 1
                bisect.insort(queue.messages, message)
                if message.expires_at is not None:
                    heapq.heappush(queue.expiring, (message.expires_at, message.key, message))
        if conn.uow:
            self.stats["backouts"] += 1
        conn.uow.clear()
        self._cond.notify_all()

    # -- MQINQ / MQSET ----------------------------------------------------------------------------------
    def _inquire(self, hconn: Any, hobj: Any, selectors: list[int]) -> dict[int, Any]:
        with self._call(hconn, "MQINQ") as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None:
                raise _fail(C.MQRC_HOBJ_ERROR)
            if not handle.options & C.MQOO_INQUIRE:
                raise _fail(C.MQRC_NOT_OPEN_FOR_INQUIRE)
            if handle.kind == "qmgr":
                attrs = self._qmgr_attributes()
            else:
                queue = self._queues.get(handle.name)
                if queue is None:
                    raise _fail(C.MQRC_Q_DELETED)
                attrs = self._queue_attributes(queue)
            out = {}
            for selector in selectors:
                if selector not in attrs:
                    raise _fail(C.MQRC_SELECTOR_ERROR)
                out[selector] = attrs[selector]
            return out

    def _qmgr_attributes(self) -> dict[int, Any]:
        return {
            C.MQCA_Q_MGR_NAME: _pad(self.queue_manager_name, 48, b" "),
            C.MQCA_DEAD_LETTER_Q_NAME: _pad("SYSTEM.DEAD.LETTER.QUEUE", 48, b" "),
            C.MQIA_COMMAND_LEVEL: 940,
            C.MQIA_PLATFORM: C.MQPL_UNIX,
            C.MQIA_MAX_MSG_LENGTH: self.max_msg_length,
            C.MQIA_MAX_PRIORITY: 9,
            C.MQIA_SYNCPOINT: C.MQSP_AVAILABLE,
        }

    def _queue_attributes(self, queue: _LocalQueue) -> dict[int, Any]:
        self._purge_expired(queue)
        definition = {"tempdyn": C.MQQDT_TEMPORARY_DYNAMIC, "permdyn": C.MQQDT_PERMANENT_DYNAMIC}
        return {
            C.MQCA_Q_NAME: _pad(queue.name, 48, b" "),
            C.MQIA_Q_TYPE: queue.qtype,
            C.MQIA_CURRENT_Q_DEPTH: len(queue.messages),
            C.MQIA_MAX_Q_DEPTH: queue.max_depth,
            C.MQIA_MAX_MSG_LENGTH: queue.max_msg_length,
            C.MQIA_DEF_PERSISTENCE: C.MQPER_PERSISTENT
            if queue.default_persistence
            else C.MQPER_NOT_PERSISTENT,
            C.MQIA_DEF_PRIORITY: queue.default_priority,
            C.MQIA_INHIBIT_PUT: C.MQQA_PUT_INHIBITED if queue.put_inhibited else C.MQQA_PUT_ALLOWED,
            C.MQIA_INHIBIT_GET: C.MQQA_GET_INHIBITED if queue.get_inhibited else C.MQQA_GET_ALLOWED,
            C.MQIA_DEFINITION_TYPE: definition.get(queue.kind, C.MQQDT_PREDEFINED),
            C.MQIA_OPEN_INPUT_COUNT: len(queue.input_handles),
            C.MQIA_OPEN_OUTPUT_COUNT: len(queue.output_handles),
        }

    def _set(self, hconn: Any, hobj: Any, attrs: dict[int, Any]) -> None:
        with self._call(hconn, "MQSET") as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None:
                raise _fail(C.MQRC_HOBJ_ERROR)
            if not handle.options & C.MQOO_SET:
                raise _fail(C.MQRC_NOT_OPEN_FOR_SET)
            queue = self._queues.get(handle.name)
            if queue is None:
                raise _fail(C.MQRC_Q_DELETED)
            if any(s not in (C.MQIA_INHIBIT_PUT, C.MQIA_INHIBIT_GET) for s in attrs):
                raise _fail(C.MQRC_SELECTOR_ERROR)
            if C.MQIA_INHIBIT_PUT in attrs:
                queue.put_inhibited = attrs[C.MQIA_INHIBIT_PUT] == C.MQQA_PUT_INHIBITED
            if C.MQIA_INHIBIT_GET in attrs:
                queue.get_inhibited = attrs[C.MQIA_INHIBIT_GET] == C.MQQA_GET_INHIBITED
            self._cond.notify_all()

    # -- message handles --------------------------------------------------------------------------------
    def _create_message_handle(self, hconn: Any) -> int:
        with self._cond:
            if hconn not in (C.MQHC_UNASSOCIATED_HCONN, C.MQHO_NONE):
                self._live(hconn, quiescing_fails=False, in_flight=False)
            hmsg = next(self._handles)
            self._msg_handles[hmsg] = {}
            return hmsg

    def _properties(self, hmsg: Any) -> dict[str, tuple[Any, int]]:
        props = self._msg_handles.get(hmsg) if isinstance(hmsg, int) else None
        if props is None:
            raise _fail(C.MQRC_HMSG_ERROR)
        return props

    # -- PCF --------------------------------------------------------------------------------------------
    def _pcf(self, hconn: Any, command: str, args: dict[int, Any]) -> list[dict[int, Any]]:
        with self._call(hconn, "PCF", quiescing_fails=True):
            handler = _PCF_COMMANDS.get(command)
            if handler is None:
                raise NotImplementedError(
                    f"mqsim does not simulate the PCF command {command}; it knows {sorted(_PCF_COMMANDS)}"
                )
            return handler(self, args)

    def _pcf_queues(self, args: dict[int, Any]) -> list[_LocalQueue]:
        wanted = _text(args.get(C.MQCA_Q_NAME, b"*"))
        if wanted.endswith("*"):
            return [q for n, q in sorted(self._queues.items()) if n.startswith(wanted[:-1])]
        queue = self._queues.get(wanted)
        if queue is None:
            raise _fail(C.MQRC_UNKNOWN_OBJECT_NAME)
        return [queue]

    def _pcf_inquire_q(self, args: dict[int, Any]) -> list[dict[int, Any]]:
        return [self._queue_attributes(q) for q in self._pcf_queues(args)]

    def _pcf_inquire_q_names(self, args: dict[int, Any]) -> list[dict[int, Any]]:
        names = [_pad(q.name, 48, b" ") for q in self._pcf_queues(args)]
        return [{CMQCFC.MQCACF_Q_NAMES: names}]

    def _pcf_ping(self, args: dict[int, Any]) -> list[dict[int, Any]]:
        return []

    def _pcf_create_q(self, args: dict[int, Any]) -> list[dict[int, Any]]:
        name = _text(args.get(C.MQCA_Q_NAME, b""))
        if name in self._queues and args.get(CMQCFC.MQIACF_REPLACE) != CMQCFC.MQRP_YES:
            raise _fail(CMQCFC.MQRCCF_OBJECT_ALREADY_EXISTS)
        self.define_queue(
            name,
            max_depth=args.get(C.MQIA_MAX_Q_DEPTH, 5000),
            max_msg_length=args.get(C.MQIA_MAX_MSG_LENGTH, 4 * 1024 * 1024),
            default_persistence=args.get(C.MQIA_DEF_PERSISTENCE) == C.MQPER_PERSISTENT,
            replace=True,
        )
        return []

    def _pcf_change_q(self, args: dict[int, Any]) -> list[dict[int, Any]]:
        (queue,) = self._pcf_queues({C.MQCA_Q_NAME: args.get(C.MQCA_Q_NAME, b"")})
        if C.MQIA_MAX_Q_DEPTH in args:
            queue.max_depth = args[C.MQIA_MAX_Q_DEPTH]
        if C.MQIA_INHIBIT_PUT in args:
            queue.put_inhibited = args[C.MQIA_INHIBIT_PUT] == C.MQQA_PUT_INHIBITED
        if C.MQIA_INHIBIT_GET in args:
            queue.get_inhibited = args[C.MQIA_INHIBIT_GET] == C.MQQA_GET_INHIBITED
        self._cond.notify_all()
        return []

    def _pcf_delete_q(self, args: dict[int, Any]) -> list[dict[int, Any]]:
        (queue,) = self._pcf_queues({C.MQCA_Q_NAME: args.get(C.MQCA_Q_NAME, b"")})
        if queue.input_handles or queue.output_handles:
            raise _fail(CMQCFC.MQRCCF_OBJECT_OPEN)
        del self._queues[queue.name]
        return []

    def _pcf_clear_q(self, args: dict[int, Any]) -> list[dict[int, Any]]:
        (queue,) = self._pcf_queues({C.MQCA_Q_NAME: args.get(C.MQCA_Q_NAME, b"")})
        if queue.input_handles or queue.output_handles or any(m.uncommitted_put for m in queue.messages):
            raise _fail(C.MQRC_OBJECT_IN_USE)
        queue.messages.clear()
        return []


_PCF_COMMANDS: dict[str, Callable[[Simulator, dict[int, Any]], list[dict[int, Any]]]] = {
    "MQCMD_PING_Q_MGR": Simulator._pcf_ping,
    "MQCMD_INQUIRE_Q": Simulator._pcf_inquire_q,
    "MQCMD_INQUIRE_Q_NAMES": Simulator._pcf_inquire_q_names,
    "MQCMD_CREATE_Q": Simulator._pcf_create_q,
    "MQCMD_CHANGE_Q": Simulator._pcf_change_q,
    "MQCMD_DELETE_Q": Simulator._pcf_delete_q,
    "MQCMD_CLEAR_Q": Simulator._pcf_clear_q,
}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 48 or name != name.strip():
        raise ValueError(f"MQ object names are 1 to 48 characters without blanks, got {name!r}")
    return name


def _normalise_address(address: str) -> str:
    address = address.strip()
    return address if "(" in address else f"{address}(1414)"


def _topic_matches(pattern: str, topic: str) -> bool:
    """MQ topic wildcards: ``#`` any number of levels, ``+`` exactly one."""
    want, have = pattern.split("/"), topic.split("/")

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(have) + 1))
        if j == len(have):
            return False
        return (want[i] == "+" or want[i] == have[j]) and match(i + 1, j + 1)

    return match(0, 0)


# -- the ibmmq-shaped classes -----------------------------------------------------------------------------
def _q_args(opts: tuple[Any, ...], md_class: type, opts_classes: tuple[type, ...]) -> tuple[Any, Any]:
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


def _make_od(q_desc: Any) -> Any:
    if isinstance(q_desc, (str, bytes)):
        return OD(ObjectName=_b(q_desc))
    if not isinstance(q_desc, OD):
        raise TypeError("queue descriptor must be a name or an OD")
    return q_desc


def _encode_body(owner: Any, msg: Any, md: Any) -> bytes:
    if isinstance(msg, bytes):
        return msg
    if isinstance(msg, str):
        md.CodedCharSetId = owner.default_ccsid
        md.Format = C.MQFMT_STRING
        return msg.encode(owner.bytes_encoding)
    raise TypeError(f"Message type is {type(msg)}. Convert to bytes.")


class _QueueManager:
    """``ibmmq.QueueManager`` on a simulator."""

    _sim: ClassVar[Simulator]

    def __init__(
        self,
        name: Any = "",
        disconnect_on_exit: bool = True,
        bytes_encoding: str = "utf8",
        default_ccsid: int = 1208,
    ) -> None:
        self._handle: int | None = None
        self._name = _b(name)
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
        self._handle = self._sim._connect(name, client=False)
        self._name = _b(name)

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
        self._handle = self._sim._connect(
            name,
            client=client,
            channel=_text(cd.ChannelName) if cd is not None else "",
            addresses=_text(cd.ConnectionName) if cd is not None else "",
            user=_str_or_none(user),
            password=_str_or_none(password),
            options=options,
            cipher=_text(cd.SSLCipherSpec) if cd is not None else "",
            key_repository=_text(sco.KeyRepository) if sco is not None else "",
        )
        self._name = _b(name)

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
        cd.ChannelName = _b(channel)
        cd.ConnectionName = _b(conn_name)
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
        self._sim._disconnect(handle)

    def get_handle(self) -> int:
        if self._handle:
            return self._handle
        raise PYIFError("not connected")

    getHandle = get_handle

    def get_name(self) -> str:
        if self._name:
            return _text(self._name)
        raise PYIFError("not connected")

    def begin(self) -> None:
        self._sim._begin(self._handle)

    def commit(self) -> None:
        self._sim._commit(self._handle)

    def backout(self) -> None:
        self._sim._backout_call(self._handle)

    def put1(self, q_desc: Any, msg: Any, *opts: Any) -> None:
        md, pmo = _q_args(opts, MD, (PMO, GMO))
        body = _encode_body(self, msg, md)
        self._sim._put1(self._handle, _make_od(q_desc), md, pmo if pmo is not None else PMO(), body)

    def inquire(self, selectors: Any) -> Any:
        if self._qmobj is None:
            self._qmobj = self._sim._open(self._handle, OD(ObjectType=C.MQOT_Q_MGR), C.MQOO_INQUIRE)
        wanted = selectors if isinstance(selectors, list) else [selectors]
        attrs = self._sim._inquire(self._handle, self._qmobj, wanted)
        return attrs if isinstance(selectors, list) else attrs[selectors]

    inq = inquire

    @property
    def is_connected(self) -> bool:
        try:
            self.inquire(C.MQCA_Q_MGR_NAME)
            return True
        except MQMIError:
            return False


class _Queue:
    """``ibmmq.Queue`` on a simulator."""

    _sim: ClassVar[Simulator]

    def __init__(self, qmgr: Any, *opts: Any) -> None:
        self._q_mgr = qmgr
        self._q_handle: int | None = None
        self._q_desc: Any = None
        self._open_opts: int | None = None
        if len(opts) > 2:
            raise TypeError("Too many args")
        if opts:
            self._q_desc = _make_od(opts[0])
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
        self._q_handle = self._sim._open(self._q_mgr.get_handle(), self._q_desc, self._open_opts or 0)

    def open(self, q_desc: Any, *opts: Any) -> None:
        if len(opts) > 1:
            raise TypeError("Too many args")
        if self._q_handle:
            raise PYIFError("The Queue is already open")
        self._q_desc = _make_od(q_desc)
        if opts:
            self._open_opts = opts[0]
            self._real_open()

    def put(self, msg: Any, *opts: Any) -> None:
        md, pmo = _q_args(opts, MD, (PMO, GMO))
        body = _encode_body(self._q_mgr, msg, md)
        if not self._q_handle:
            self._open_opts = C.MQOO_OUTPUT
            self._real_open()
        self._sim._put(self._q_mgr.get_handle(), self._q_handle, md, pmo if pmo is not None else PMO(), body)

    def get(self, maxLength: int | None = None, *opts: Any, **kwargs: Any) -> bytes:
        md, gmo = _q_args(opts, MD, (PMO, GMO))
        if gmo is None:
            gmo = GMO()
        if not self._q_handle:
            self._open_opts = C.MQOO_INPUT_AS_Q_DEF
            self._real_open()
        return self._sim._get(self._q_mgr.get_handle(), self._q_handle, md, gmo, maxLength)

    def get_no_jms(self, max_length: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        md, gmo = _q_args(args, MD, (PMO, GMO))
        gmo = gmo if gmo is not None else GMO()
        gmo.Options |= C.MQGMO_NO_PROPERTIES | C.MQGMO_FAIL_IF_QUIESCING
        return self.get(max_length, md, gmo)

    get_no_rfh2 = get_no_jms

    def close(self, options: int = C.MQCO_NONE) -> None:
        if not self._q_handle:
            raise PYIFError("not open")
        self._sim._close(self._q_mgr.get_handle(), self._q_handle, options)
        self._q_handle = self._q_desc = self._open_opts = None

    def inquire(self, selectors: Any) -> Any:
        if not self._q_handle:
            self._open_opts = C.MQOO_INQUIRE
            self._real_open()
        wanted = selectors if isinstance(selectors, list) else [selectors]
        attrs = self._sim._inquire(self._q_mgr.get_handle(), self._q_handle, wanted)
        return attrs if isinstance(selectors, list) else attrs[selectors]

    inq = inquire

    def set(self, *args: Any) -> None:
        if not self._q_handle:
            self._open_opts = C.MQOO_SET
            self._real_open()
        attrs = args[0] if len(args) == 1 and isinstance(args[0], dict) else {args[0]: args[1]}
        self._sim._set(self._q_mgr.get_handle(), self._q_handle, attrs)

    def set_handle(self, queue_handle: Any) -> None:
        self._q_handle = queue_handle

    def get_handle(self) -> Any:
        return self._q_handle

    def get_name(self) -> str:
        return _text(self._q_desc.ObjectName) if self._q_desc is not None else ""

    def get_queue_manager(self) -> Any:
        return self._q_mgr


class _Topic:
    """``ibmmq.Topic`` on a simulator: open for output and publish."""

    _sim: ClassVar[Simulator]

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
        self.topic_name = _b(topic_name)
        self.topic_string = _b(topic_string)
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
            od.ObjectName = _b(topic_name)
        if topic_string:
            od.set_vs("ObjectString", topic_string, 0, 0, 0)
        return od

    def __del__(self) -> None:
        if getattr(self, "_topic_handle", None):
            with contextlib.suppress(Error):
                self.close()

    def _real_open(self) -> None:
        self._topic_handle = self._sim._open(
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
            self.topic_name = _b(topic_name)
        if topic_string:
            self.topic_string = _b(topic_string)
        self._topic_desc = topic_desc or self._create_topic_desc(self.topic_name, self.topic_string)
        if open_opts:
            self._open_opts = open_opts
            self._real_open()

    def pub(self, msg: Any, *opts: Any) -> None:
        md, pmo = _q_args(opts, MD, (PMO, GMO))
        body = _encode_body(self._queue_manager, msg, md)
        if not self._topic_handle:
            self._open_opts = C.MQOO_OUTPUT
            self._real_open()
        self._sim._put(self._queue_manager.getHandle(), self._topic_handle, md, pmo or PMO(), body)

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
        self._sim._close(self._queue_manager.getHandle(), self._topic_handle, options)
        self._topic_handle = None


class _Subscription:
    """``ibmmq.Subscription`` on a simulator."""

    _sim: ClassVar[Simulator]

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
        self.sub_name = _b(sub_name)
        self.sub_opts = sub_opts
        self.topic_name = _b(topic_name)
        self.topic_string = _b(topic_string)
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
            self.topic_name = _b(topic_name)
        if topic_string:
            self.topic_string = _b(topic_string)
        if sub_name:
            self.sub_name = _b(sub_name)
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
            queue_handle = sub_queue.get_handle() if isinstance(sub_queue, _Queue) else sub_queue
        hobj, hsub = self._sim._subscribe(self._queue_manager.getHandle(), sub_desc, queue_handle)
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
        self._sim._close(self._queue_manager.getHandle(), self._sub_handle, sub_close_options)
        self._sub_handle = None
        self._sub_desc = None
        if close_sub_queue:
            self.sub_queue.close(close_sub_queue_options)


class _Properties:
    """``MessageHandle.properties``: MQSETMP/MQINQMP/MQDLTMP on a simulator."""

    def __init__(self, sim: Simulator, conn_handle: Any, msg_handle: Any) -> None:
        self._sim = sim
        self.conn_handle = conn_handle
        self.msg_handle = msg_handle
        self.default_value_length = 64
        self._cursor = -1

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
        options = impo.Options if impo is not None else impo_options
        wanted = _b(name).decode("utf-8")
        with self._sim._cond:
            props = self._sim._properties(self.msg_handle)
            if wanted == "%" or wanted.endswith(".%"):
                folder = wanted[:-1]
                names = [n for n in props if n.startswith(folder)]
                self._cursor = (
                    0 if options & C.MQIMPO_INQ_FIRST or not options & C.MQIMPO_INQ_NEXT else self._cursor + 1
                )
                if self._cursor >= len(names):
                    raise _fail(C.MQRC_PROPERTY_NOT_AVAILABLE, value=default, data_length=0)
                found = names[self._cursor]
                return props[found][0], found.encode("utf-8")
            if wanted not in props:
                raise _fail(C.MQRC_PROPERTY_NOT_AVAILABLE, value=default, data_length=0)
            return props[wanted][0]

    def set(
        self,
        name: Any,
        value: Any,
        property_type: int = C.MQTYPE_STRING,
        value_length: int = C.MQVL_NULL_TERMINATED,
        pd: Any = None,
        smpo: Any = None,
    ) -> None:
        key = _b(name).decode("utf-8")
        if not key or "%" in key:
            raise _fail(C.MQRC_PROPERTY_NAME_ERROR)
        with self._sim._cond:
            self._sim._properties(self.msg_handle)[key] = (
                _coerce_property(value, property_type),
                property_type,
            )

    def dlt(self, name: Any, dmpo: Any = None) -> None:
        key = _b(name).decode("utf-8")
        with self._sim._cond:
            props = self._sim._properties(self.msg_handle)
            if key not in props:
                raise _fail(C.MQRC_PROPERTY_NOT_AVAILABLE)
            del props[key]


def _coerce_property(value: Any, property_type: int) -> Any:
    if property_type == C.MQTYPE_STRING:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    if property_type == C.MQTYPE_BOOLEAN:
        return bool(value)
    if property_type in (C.MQTYPE_INT8, C.MQTYPE_INT16, C.MQTYPE_INT32, C.MQTYPE_INT64):
        return int(value)
    if property_type in (C.MQTYPE_FLOAT32, C.MQTYPE_FLOAT64):
        return float(value)
    if property_type == C.MQTYPE_BYTE_STRING:
        return bytes(value)
    if property_type == C.MQTYPE_NULL:
        return None
    raise _fail(C.MQRC_PROPERTY_TYPE_ERROR)


class _MessageHandle:
    """``ibmmq.MessageHandle`` on a simulator: properties live in the handle, as in the MQ client."""

    _sim: ClassVar[Simulator]

    def __init__(self, qmgr: Any = None, cmho: Any = None, dup_handle: int | None = None) -> None:
        self.conn_handle = qmgr.get_handle() if qmgr is not None else C.MQHO_NONE
        self.duplicated = dup_handle is not None
        self.msg_handle = (
            dup_handle if dup_handle is not None else self._sim._create_message_handle(self.conn_handle)
        )
        self.properties = _Properties(self._sim, self.conn_handle, self.msg_handle)

    def get_handle(self) -> int:
        return self.msg_handle

    def get_queue_manager(self) -> Any:
        return self.conn_handle

    def dlt(self, dmho: Any = None) -> None:
        if self.duplicated:
            raise _fail(C.MQRC_HMSG_ERROR)
        with self._sim._cond:
            if self._sim._msg_handles.pop(self.msg_handle, None) is None:
                raise _fail(C.MQRC_HMSG_ERROR)
        self.properties = _Properties(self._sim, C.MQHC_UNUSABLE_HCONN, C.MQHM_NONE)


class _PCFExecute(_QueueManager):
    """``ibmmq.PCFExecute`` on a simulator: ``pcf.MQCMD_INQUIRE_Q({CMQC.MQCA_Q_NAME: b"*"})``.

    Commands run against the simulator's state on the connection they are given (its faults apply); only
    a few queue commands are simulated, others raise ``NotImplementedError``.
    """

    def __init__(
        self,
        name: Any = None,
        model_queue_name: Any = b"SYSTEM.DEFAULT.MODEL.QUEUE",
        reply_queue_name: Any = None,
        reply_queue_open_options: int = C.MQOO_INPUT_EXCLUSIVE,
        dynamic_queue_name: Any = b"PYMQPCF.*",
        command_queue_name: Any = b"SYSTEM.ADMIN.COMMAND.QUEUE",
        command_queue: Any = None,
        response_wait_interval: int = 5000,
        command_timeout: int = 0,
        max_length: int | None = None,
        convert: bool = True,
    ) -> None:
        if model_queue_name and reply_queue_name:
            raise PYIFError("Do not specify both a model_queue_name and a reply_queue_name")
        self._command_queue_name = command_queue_name
        self._response_wait_interval = 3600 * 1000 if response_wait_interval < 0 else response_wait_interval
        if isinstance(name, _QueueManager):
            self.qm: Any = name
            super().__init__(None)
        else:
            super().__init__(name)
            self.qm = self
        od = OD(ObjectName=reply_queue_name or model_queue_name, DynamicQName=dynamic_queue_name)
        inputs = C.MQOO_INPUT_EXCLUSIVE | C.MQOO_INPUT_AS_Q_DEF | C.MQOO_INPUT_SHARED
        if not reply_queue_open_options & inputs:
            reply_queue_open_options |= C.MQOO_INPUT_EXCLUSIVE
        self._reply_queue: Any = self._sim.mqi.Queue(self.qm, od, reply_queue_open_options)
        self._reply_queue_name = od.ObjectName.strip()

    @property
    def reply_queue(self) -> Any:
        return self._reply_queue

    @property
    def reply_queue_name(self) -> Any:
        return self._reply_queue_name

    @property
    def response_wait_interval(self) -> int:
        return self._response_wait_interval

    @property
    def command_queue_name(self) -> Any:
        return self._command_queue_name

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("MQCMD_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> list[dict[int, Any]]:
            if len(args) > 2:
                raise TypeError("PCF commands take (args_dict, filters)")
            if len(args) == 2 and args[1]:
                raise NotImplementedError("mqsim does not simulate PCF filters")
            args_dict = args[0] if args else {}
            if not isinstance(args_dict, dict):
                raise NotImplementedError("mqsim simulates PCF parameters given as a dict only")
            return self._sim._pcf(self.qm.getHandle(), name, args_dict)

        return call

    @staticmethod
    def stringify_keys(raw_dict: dict[int, Any]) -> dict[Any, Any]:
        names = {v: k for k, v in CMQC.values().items() if k.startswith(("MQIA_", "MQCA_"))}
        return {names.get(k, k): v for k, v in raw_dict.items()}

    stringifyKeys = stringify_keys

    def disconnect(self) -> None:
        """Closes the reply queue (the connection belongs to the QueueManager given)."""
        try:
            if self._reply_queue is not None and self._reply_queue.get_handle():
                self._reply_queue.close()
        except MQMIError:
            pass
        finally:
            self._reply_queue = None
            self._reply_queue_name = None
        if self.qm is self and self._handle:
            super().disconnect()


def _str_or_none(value: Any) -> str | None:
    if value is None or value == 0:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _build_module(sim: Simulator) -> types.ModuleType:
    """The per-simulator ``ibmmq``: classes bound to ``sim`` so ``isinstance`` works as with the real one."""
    mod = types.ModuleType(f"mqsim.{sim.queue_manager_name}", f"The MQI of {sim!r}")
    bound = {"_sim": sim, "__module__": __name__}
    qm_class = type("QueueManager", (_QueueManager,), dict(bound))
    classes: dict[str, Any] = {
        "QueueManager": qm_class,
        "Queue": type("Queue", (_Queue,), dict(bound)),
        "Topic": type("Topic", (_Topic,), dict(bound)),
        "Subscription": type("Subscription", (_Subscription,), dict(bound)),
        "MessageHandle": type("MessageHandle", (_MessageHandle,), dict(bound)),
        "PCFExecute": type("PCFExecute", (_PCFExecute, qm_class), dict(bound)),
    }

    def connect(
        queue_manager: Any,
        channel: Any = None,
        conn_info: Any = None,
        user: Any = None,
        password: Any = None,
        disconnect_on_exit: bool = True,
        bytes_encoding: str = "utf8",
        default_ccsid: int = 1208,
        cd: Any = None,
        cno: Any = None,
        csp: Any = None,
        sco: Any = None,
        bno: Any = None,
    ) -> Any:
        qmgr = qm_class(None, disconnect_on_exit, bytes_encoding=bytes_encoding, default_ccsid=default_ccsid)
        if channel and conn_info:
            qmgr.connect_tcp_client(
                queue_manager or "", cd or CD(), channel, conn_info, user, password, cno=cno, csp=csp, sco=sco
            )
        elif queue_manager:
            qmgr.connect_with_options(
                queue_manager, user=user, password=password, cno=cno, csp=csp, sco=sco, cd=cd
            )
        else:
            raise TypeError(f"Invalid arguments: {[queue_manager, channel, conn_info, user, password]!r}")
        return qmgr

    structures = {
        "MD": MD, "GMO": GMO, "PMO": PMO, "OD": OD, "SD": SD, "SRO": SRO, "CNO": CNO, "CSP": CSP, "SCO": SCO,
        "CD": CD, "CMHO": CMHO, "PD": PD, "SMPO": SMPO, "IMPO": IMPO,
    }  # fmt: skip
    mod.__dict__.update(classes)
    mod.__dict__.update(structures)
    mod.__dict__.update(
        connect=connect, CMQC=CMQC, CMQXC=CMQXC, CMQCFC=CMQCFC, MQMIError=MQMIError, PYIFError=PYIFError,
        Error=Error, simulator=sim, __version__="mqsim",
    )  # fmt: skip
    return mod
