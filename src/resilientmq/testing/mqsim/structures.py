"""The MQI structures (``MD``, ``GMO``, ``PMO``, ``OD``, ...) with ``ibmmq``'s field names and defaults, and
the padding rules the queue manager applies to MQMD fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .constants import CMQC as C
from .constants import CMQXC

__all__ = [
    "BNO", "CD", "CMHO", "CNO", "CSP", "DMHO", "DMPO", "GMO", "IMPO", "MD", "MD_BYTES", "MD_CHAR", "OD", "PD",
    "PMO", "SCO", "SD", "SMPO", "SRO", "Struct", "as_bytes", "is_none_id", "pad", "text",
]  # fmt: skip


def as_bytes(value: Any) -> Any:
    """MQCHAR fields take str or bytes; like ibmmq, store bytes."""
    return value.encode("ascii") if isinstance(value, str) else value


class Struct:
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
            setattr(self, k, as_bytes(v))

    def __setitem__(self, key: str, value: Any) -> None:
        getattr(self, key)
        setattr(self, key, as_bytes(value))

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _ in self._fields}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The structure's fields an application sets (not its bookkeeping fields such as ``_StrucId``)."""
        names = cls.__dict__.get("_names")
        if names is None:
            names = tuple(name for name, _ in cls._fields if not name.startswith("_"))
            type.__setattr__(cls, "_names", names)
        return names

    def set_vs(
        self,
        vs_name: str,
        vs_value: Any = None,
        vs_offset: int = 0,
        vs_buffer_size: int = 0,
        vs_ccsid: int = 0,
    ) -> None:
        base = vs_name[:-5] if vs_name.endswith("VSPtr") else vs_name
        value = as_bytes(vs_value)
        self._vs[base] = value
        self[base + "VSLength"] = 0 if value is None else len(value)
        self[base + "VSOffset"] = vs_offset
        self[base + "VSBufSize"] = vs_buffer_size
        self[base + "VSCCSID"] = vs_ccsid

    def get_vs(self, vs_name: str) -> bytes | None:
        base = vs_name[:-5] if vs_name.endswith("VSPtr") else vs_name
        return self._vs.get(base)

    def pack(self) -> bytes:
        raise NotImplementedError("mqsim structures are not packed into C structures (RFH2 is)")

    def __str__(self) -> str:
        return "\n".join(f"{name}: {getattr(self, name)}" for name, _ in self._fields)


def _vs(name: str) -> tuple[tuple[str, Any], ...]:
    return tuple((name + suffix, 0) for suffix in ("VSPtr", "VSOffset", "VSBufSize", "VSLength", "VSCCSID"))


class MD(Struct):
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


class GMO(Struct):
    """MQGMO: get-message options."""

    _fields = (
        ("_StrucId", C.MQGMO_STRUC_ID), ("Version", C.MQGMO_VERSION_4), ("Options", C.MQGMO_NO_WAIT),
        ("WaitInterval", 0), ("Signal1", 0), ("Signal2", 0), ("ResolvedQName", b""),
        ("MatchOptions", C.MQMO_MATCH_MSG_ID + C.MQMO_MATCH_CORREL_ID), ("GroupStatus", C.MQGS_NOT_IN_GROUP),
        ("SegmentStatus", C.MQSS_NOT_A_SEGMENT), ("Segmentation", C.MQSEG_INHIBITED), ("_Reserved1", b" "),
        ("MsgToken", b""), ("ReturnedLength", C.MQRL_UNDEFINED), ("_Reserved2", 0), ("MsgHandle", 0),
    )  # fmt: skip


class PMO(Struct):
    """MQPMO: put-message options."""

    _fields = (
        ("_StrucId", C.MQPMO_STRUC_ID), ("Version", C.MQPMO_VERSION_3), ("Options", C.MQPMO_NONE),
        ("Timeout", -1), ("Context", 0), ("KnownDestCount", 0), ("UnknownDestCount", 0),
        ("InvalidDestCount", 0), ("ResolvedQName", b""), ("ResolvedQMgrName", b""), ("RecsPresent", 0),
        ("PutMsgRecFields", 0), ("PutMsgRecOffset", 0), ("ResponseRecOffset", 0), ("PutMsgRecPtr", 0),
        ("ResponseRecPtr", 0), ("OriginalMsgHandle", 0), ("NewMsgHandle", 0), ("Action", 0), ("PubLevel", 9),
    )  # fmt: skip


class OD(Struct):
    """MQOD: object descriptor."""

    _fields = (
        ("_StrucId", C.MQOD_STRUC_ID), ("Version", C.MQOD_VERSION_4), ("ObjectType", C.MQOT_Q),
        ("ObjectName", b""), ("ObjectQMgrName", b""), ("DynamicQName", b"AMQ.*"), ("AlternateUserId", b""),
        ("RecsPresent", 0), ("KnownDestCount", 0), ("UnknownDestCount", 0), ("InvalidDestCount", 0),
        ("ObjectRecOffset", 0), ("ResponseRecOffset", 0), ("ObjectRecPtr", 0), ("ResponseRecPtr", 0),
        ("AlternateSecurityId", b""), ("ResolvedQName", b""), ("ResolvedQMgrName", b""),
        *_vs("ObjectString"), *_vs("SelectionString"), *_vs("ResObjectString"), ("ResolvedType", -3),
    )  # fmt: skip


class SD(Struct):
    """MQSD: subscription descriptor."""

    _fields = (
        ("_StrucId", C.MQSD_STRUC_ID), ("Version", C.MQSD_VERSION_1), ("Options", C.MQSO_NON_DURABLE),
        ("ObjectName", b""), ("AlternateUserId", b""), ("AlternateSecurityId", C.MQSID_NONE),
        ("SubExpiry", C.MQEI_UNLIMITED), *_vs("ObjectString"), *_vs("SubName"), *_vs("SubUserData"),
        ("SubCorrelId", C.MQCI_NONE), ("PubPriority", C.MQPRI_PRIORITY_AS_Q_DEF),
        ("PubAccountingToken", C.MQACT_NONE), ("PubApplIdentityData", b""), *_vs("SelectionString"),
        ("SubLevel", 1), *_vs("ResObjectString"),
    )  # fmt: skip


class SRO(Struct):
    """MQSRO: subscription request options."""

    _fields = (("_StrucId", C.MQSRO_STRUC_ID), ("Version", C.MQSRO_VERSION_1), ("Options", 0), ("NumPubs", 0))


class CNO(Struct):
    """MQCNO: connect options."""

    _fields = (
        ("_StrucId", C.MQCNO_STRUC_ID), ("Version", C.MQCNO_VERSION_5), ("Options", C.MQCNO_NONE),
        ("_ClientConnOffset", 0), ("_ClientConnPtr", 0), ("ConnTag", b""), ("_SSLConfigPtr", 0),
        ("_SSLConfigOffset", 0), ("ConnectionId", b""), ("_SecurityParmsOffset", 0), ("_SecurityParmsPtr", 0),
        ("CCDTUrl", 0), ("_CCDTUrlOffset", 0), ("_CCDTUrlLength", 0), ("_Reserved", 0),
        ("ApplName", b""), ("_Reserved2", 0), ("_BalanceParmsPtr", 0), ("_BalanceParmsOffset", 0),
        ("_Reserved3", 0),
    )  # fmt: skip


class CSP(Struct):
    """MQCSP: security parameters (``CSPUserId``/``CSPPassword``)."""

    _fields = (
        ("_StrucId", C.MQCSP_STRUC_ID), ("Version", C.MQCSP_VERSION_1),
        ("AuthenticationType", C.MQCSP_AUTH_NONE),
        ("_Reserved1", 0), ("CSPUserId", 0), ("_CSPUserIdOffset", 0), ("_CSPUserIdLength", 0),
        ("_Reserved2", 0), ("CSPPassword", 0), ("_CSPPasswordOffset", 0), ("_CSPPasswordLength", 0),
        ("_Reserved3", 0), ("InitialKey", 0), ("_InitialKeyOffset", 0), ("_InitialKeyLength", 0),
        ("_Reserved4", 0), ("Token", 0), ("_TokenOffset", 0), ("_TokenLength", 0),
    )  # fmt: skip


class SCO(Struct):
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


class CD(Struct):
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


class CMHO(Struct):
    """MQCMHO: create-message-handle options."""

    _fields = (
        ("_StrucId", C.MQCMHO_STRUC_ID),
        ("Version", C.MQCMHO_VERSION_1),
        ("Options", C.MQCMHO_DEFAULT_VALIDATION),
    )


class PD(Struct):
    """MQPD: property descriptor."""

    _fields = (
        ("_StrucId", C.MQPD_STRUC_ID), ("Version", C.MQPD_VERSION_1), ("Options", C.MQPD_NONE),
        ("Support", C.MQPD_SUPPORT_OPTIONAL), ("Context", C.MQPD_NO_CONTEXT),
        ("CopyOptions", C.MQCOPY_DEFAULT),
    )  # fmt: skip


class SMPO(Struct):
    """MQSMPO: set-message-property options."""

    _fields = (
        ("_StrucId", C.MQSMPO_STRUC_ID), ("Version", C.MQSMPO_VERSION_1), ("Options", C.MQSMPO_SET_FIRST),
        ("ValueEncoding", C.MQENC_NATIVE), ("ValueCCSID", C.MQCCSI_APPL),
    )  # fmt: skip


class IMPO(Struct):
    """MQIMPO: inquire-message-property options."""

    _fields = (
        ("_StrucId", C.MQIMPO_STRUC_ID), ("Version", C.MQIMPO_VERSION_1), ("Options", C.MQIMPO_INQ_FIRST),
        ("RequestedEncoding", C.MQENC_NATIVE), ("RequestedCCSID", C.MQCCSI_APPL),
        ("ReturnedEncoding", C.MQENC_NATIVE), ("ReturnedCCSID", 0), ("Reserved1", 0),
    )  # fmt: skip


class DMHO(Struct):
    """MQDMHO: delete-message-handle options."""

    _fields = (("_StrucId", C.MQDMHO_STRUC_ID), ("Version", C.MQDMHO_VERSION_1), ("Options", C.MQDMHO_NONE))


class DMPO(Struct):
    """MQDMPO: delete-message-property options."""

    _fields = (
        ("_StrucId", C.MQDMPO_STRUC_ID),
        ("Version", C.MQDMPO_VERSION_1),
        ("Options", C.MQDMPO_DEL_FIRST),
    )


class BNO(Struct):
    """MQBNO: balancing options (accepted by connect; the simulator has one instance to balance over)."""

    _fields = (
        ("_StrucId", C.MQBNO_STRUC_ID), ("Version", C.MQBNO_VERSION_1), ("ApplType", C.MQBNO_BALTYPE_SIMPLE),
        ("Timeout", C.MQBNO_TIMEOUT_AS_DEFAULT), ("Options", C.MQBNO_OPTIONS_NONE),
    )  # fmt: skip


# MQMD fields the queue manager stores padded: character fields with blanks, byte fields with NULs.
MD_CHAR = {
    "Format": 8, "ReplyToQ": 48, "ReplyToQMgr": 48, "UserIdentifier": 12, "ApplIdentityData": 32,
    "PutApplName": 28, "PutDate": 8, "PutTime": 8, "ApplOriginData": 4,
}  # fmt: skip
MD_BYTES = {"MsgId": 24, "CorrelId": 24, "AccountingToken": 32, "GroupId": 24}


def pad(value: Any, length: int, fill: bytes) -> bytes:
    raw = as_bytes(value) or b""
    if not isinstance(raw, bytes):
        raise TypeError(f"expected bytes, got {type(raw).__name__}")
    return raw[:length].ljust(length, fill)


def text(value: Any) -> str:
    raw = as_bytes(value) or b""
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()


def is_none_id(value: Any) -> bool:
    return not (as_bytes(value) or b"").strip(b"\0")
