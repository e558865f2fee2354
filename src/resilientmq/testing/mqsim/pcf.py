"""``PCFExecute``, the PCF parameter structures (``CFST``, ``CFIN``, ``CFIL``, ``CFSL``, ``CFBS``, ...) and
filters (``Filter(selector).like(...)``, ``CFSF``/``CFIF``/``CFBF``), as ``ibmmq`` offers them.

``PCFExecute`` turns its arguments (a dict, or a list of parameter structures, and a list of filters) into
what the simulated command server (:meth:`.admin.AdminEngine.mqpcf`) takes, and runs the command on the
connection of the queue manager it was given.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .admin import AdminEngine
from .api import QueueManager
from .constants import CMQC as C
from .constants import CMQCFC
from .errors import Error, MQMIError, PYIFError
from .structures import OD, Struct, as_bytes

__all__ = [
    "CFBF", "CFBS", "CFGR", "CFH", "CFIF", "CFIL", "CFIL64", "CFIN", "CFIN64", "CFSF", "CFSL", "CFST",
    "ByteString", "ByteStringFilter", "Filter", "FilterOperator", "IntegerFilter", "PCFExecute",
    "StringFilter",
]  # fmt: skip

F = CMQCFC


def _padded(length: int) -> int:
    return length + (-length % 4)


Fields = tuple[tuple[str, Any], ...]


def _head(type_name: str, length_name: str) -> Fields:
    return (("Type", getattr(F, type_name)), ("StrucLength", getattr(F, length_name)), ("Parameter", 0))


class CFH(Struct):
    """MQCFH: the PCF header."""

    _fields: ClassVar[Fields] = (
        ("Type", F.MQCFT_COMMAND), ("StrucLength", F.MQCFH_STRUC_LENGTH), ("Version", F.MQCFH_VERSION_3),
        ("Command", F.MQCMD_NONE), ("MsgSeqNumber", 1), ("Control", F.MQCFC_LAST), ("CompCode", C.MQCC_OK),
        ("Reason", C.MQRC_NONE), ("ParameterCount", 0),
    )  # fmt: skip


class _Parameter(Struct):
    """A PCF parameter structure; :meth:`value` is what it carries."""

    def value(self) -> Any:
        raise NotImplementedError

    def _grow(self, by: int) -> None:
        self["StrucLength"] = int(self["StrucLength"]) + by


class CFIN(_Parameter):
    _fields: ClassVar[Fields] = (*_head("MQCFT_INTEGER", "MQCFIN_STRUC_LENGTH"), ("Value", 0))

    def value(self) -> Any:
        return self.Value


class CFIN64(CFIN):
    _fields: ClassVar[Fields] = (*_head("MQCFT_INTEGER64", "MQCFIN64_STRUC_LENGTH"), ("Value", 0))


class CFIL(_Parameter):
    _fields: ClassVar[Fields] = (*_head("MQCFT_INTEGER_LIST", "MQCFIL_STRUC_LENGTH_FIXED"), ("Count", 0),
                                 ("Values", []))  # fmt: skip
    _width: ClassVar[int] = 4

    def __init__(self, **kw: Any) -> None:
        values = list(kw.pop("Values", []))
        count = kw.pop("Count", len(values))
        super().__init__(**kw)
        self.Values, self.Count = values, count
        self._grow(self._width * count)

    def value(self) -> Any:
        return list(self.Values)


class CFIL64(CFIL):
    _fields: ClassVar[Fields] = (*_head("MQCFT_INTEGER64_LIST", "MQCFIL64_STRUC_LENGTH_FIXED"), ("Count", 0),
                                 ("Values", []))  # fmt: skip
    _width = 8


class CFST(_Parameter):
    _fields: ClassVar[Fields] = (*_head("MQCFT_STRING", "MQCFST_STRUC_LENGTH_FIXED"),
                                 ("CodedCharSetId", C.MQCCSI_DEFAULT), ("StringLength", 0),
                                 ("String", b""))  # fmt: skip

    def __init__(self, **kw: Any) -> None:
        string = as_bytes(kw.pop("String", b""))
        length = kw.pop("StringLength", len(string))
        super().__init__(**kw)
        self.String, self.StringLength = string, length
        self._grow(_padded(length))

    def value(self) -> Any:
        return bytes(self.String[: self.StringLength])


class CFBS(CFST):
    _fields: ClassVar[Fields] = (*_head("MQCFT_BYTE_STRING", "MQCFBS_STRUC_LENGTH_FIXED"),
                                 ("StringLength", 0), ("String", b""))  # fmt: skip


class CFSL(_Parameter):
    _fields: ClassVar[Fields] = (*_head("MQCFT_STRING_LIST", "MQCFSL_STRUC_LENGTH_FIXED"),
                                 ("CodedCharSetId", C.MQCCSI_DEFAULT), ("Count", 0), ("StringLength", 0),
                                 ("Strings", []))  # fmt: skip

    def __init__(self, **kw: Any) -> None:
        strings = [as_bytes(s) for s in kw.pop("Strings", [])]
        length = kw.pop("StringLength", max((len(s) for s in strings), default=0))
        count = kw.pop("Count", len(strings))
        super().__init__(**kw)
        self.Strings, self.Count, self.StringLength = strings, count, _padded(length) if count else 0
        self._grow(self.StringLength * count)

    def value(self) -> Any:
        return list(self.Strings)


class CFGR(_Parameter):
    _fields: ClassVar[Fields] = (*_head("MQCFT_GROUP", "MQCFGR_STRUC_LENGTH"), ("ParameterCount", 0))


class _FilterStruct(Struct):
    """A PCF filter structure: ``(Parameter, Operator, FilterValue)``."""

    def as_filter(self) -> tuple[int, int, Any]:
        return int(self.Parameter), int(self.Operator), as_bytes(self.FilterValue)


class CFIF(_FilterStruct):
    _fields: ClassVar[Fields] = (*_head("MQCFT_INTEGER_FILTER", "MQCFIF_STRUC_LENGTH"), ("Operator", 0),
                                 ("FilterValue", 0))  # fmt: skip


class CFSF(_FilterStruct):
    _fields: ClassVar[Fields] = (*_head("MQCFT_STRING_FILTER", "MQCFSF_STRUC_LENGTH_FIXED"), ("Operator", 0),
                                 ("CodedCharSetId", C.MQCCSI_DEFAULT), ("FilterValueLength", 0),
                                 ("FilterValue", b""))  # fmt: skip


class CFBF(_FilterStruct):
    _fields: ClassVar[Fields] = (*_head("MQCFT_BYTE_STRING_FILTER", "MQCFBF_STRUC_LENGTH_FIXED"),
                                 ("Operator", 0), ("FilterValueLength", 0), ("FilterValue", b""))  # fmt: skip


class ByteString:
    """A byte-string PCF value in the dict form (``{MQBACF_...: ByteString(b"...")}``)."""

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __len__(self) -> int:
        return len(self.value)


class _Filter:
    _filter_type: ClassVar[str] = ""

    def __init__(self, selector: int, value: Any, operator: int) -> None:
        self.selector = selector
        self.value = as_bytes(value)
        self.operator = operator

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.selector}:{self.value!r}:{self.operator}>"


class StringFilter(_Filter):
    _filter_type = "string"


class IntegerFilter(_Filter):
    _filter_type = "integer"


class ByteStringFilter(_Filter):
    _filter_type = "bytestring"


_OPERATORS = {
    "less": "MQCFOP_LESS", "equal": "MQCFOP_EQUAL", "greater": "MQCFOP_GREATER",
    "not_less": "MQCFOP_NOT_LESS", "not_equal": "MQCFOP_NOT_EQUAL", "not_greater": "MQCFOP_NOT_GREATER",
    "like": "MQCFOP_LIKE", "not_like": "MQCFOP_NOT_LIKE", "contains": "MQCFOP_CONTAINS",
    "excludes": "MQCFOP_EXCLUDES", "contains_gen": "MQCFOP_CONTAINS_GEN",
    "excludes_gen": "MQCFOP_EXCLUDES_GEN",
}  # fmt: skip


class FilterOperator:
    """``Filter(selector).<operator>(value)``: makes the filter of the selector's type."""

    def __init__(self, selector: int, operator_name: str) -> None:
        if C.MQIA_FIRST <= selector <= C.MQIA_LAST:
            self.filter_cls: type[_Filter] = IntegerFilter
        elif C.MQCA_FIRST <= selector <= C.MQCA_LAST:
            self.filter_cls = StringFilter
        elif C.MQBA_FIRST <= selector <= C.MQBA_LAST:
            self.filter_cls = ByteStringFilter
        else:
            raise Error(
                f"selector [{selector}] is of an unsupported type (not an integer, string or byte string)"
            )
        if operator_name not in _OPERATORS:
            raise Error(f"Operator [{operator_name}] is not supported.")
        self.selector = selector
        self.operator = int(getattr(F, _OPERATORS[operator_name]))

    def __call__(self, value: Any) -> _Filter:
        return self.filter_cls(self.selector, value, self.operator)


class Filter:
    """``Filter(CMQC.MQCA_Q_DESC).like(b"IBM MQ*")``, ``Filter(CMQC.MQIA_CURRENT_Q_DEPTH).greater(0)``."""

    def __init__(self, selector: int) -> None:
        self.selector = selector

    def __getattribute__(self, name: str) -> Any:
        if name == "selector" or name.startswith("__"):
            return object.__getattribute__(self, name)
        return FilterOperator(object.__getattribute__(self, "selector"), name)


def _parameters(args: Any, encoding: str) -> dict[int, Any]:
    """The dict form or the list form (parameter structures) of PCF arguments, as the engine takes them."""
    if not args:
        return {}
    out: dict[int, Any] = {}
    if isinstance(args, dict):
        for key, given in args.items():
            value = given
            if isinstance(given, str):
                value = given.encode(encoding)
            elif isinstance(given, ByteString):
                value = given.value
            elif isinstance(given, list):
                value = [v.encode(encoding) if isinstance(v, str) else v for v in given]
            out[int(key)] = value
        return out
    if isinstance(args, list):
        for parameter in args:
            if not isinstance(parameter, _Parameter):
                raise TypeError(
                    f"PCF list arguments are CFST, CFIN, CFIL, CFSL, CFBS, ...; got {parameter!r}"
                )
            out[int(parameter.Parameter)] = parameter.value()
        return out
    raise TypeError(f"PCF arguments are a dict or a list of parameter structures, got {type(args).__name__}")


def _filters(filters: Any) -> list[tuple[int, int, Any]]:
    out = []
    for item in filters or []:
        if isinstance(item, _Filter):
            out.append((item.selector, item.operator, item.value))
        elif isinstance(item, _FilterStruct):
            out.append(item.as_filter())
        else:
            raise TypeError(f"PCF filters are Filter(...) objects or CFIF/CFSF/CFBF; got {item!r}")
    return out


class PCFExecute(QueueManager):
    """``ibmmq.PCFExecute`` on a simulator: ``pcf.MQCMD_INQUIRE_Q({CMQC.MQCA_Q_NAME: b"*"})``.

    Commands run against the simulator's state on the connection they are given (its faults apply). A
    command it does not simulate answers ``MQRC_FUNCTION_NOT_SUPPORTED``; a name that is no MQCMD_*
    command raises ``KeyError``, as ``ibmmq`` does.
    """

    _sim: ClassVar[AdminEngine]

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
        self._command_timeout = command_timeout
        self._max_length = max_length
        self._convert = convert
        if isinstance(name, QueueManager):
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

    @property
    def command_timeout(self) -> int:
        return self._command_timeout

    @property
    def max_length(self) -> int | None:
        return self._max_length

    @property
    def convert(self) -> bool:
        return self._convert

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("MQCMD_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> list[Any]:
            if len(args) > 2:
                raise TypeError("PCF commands take (arguments, filters)")
            try:
                code = getattr(F, name)
            except AttributeError:
                raise KeyError(name) from None
            parameters = _parameters(args[0] if args else None, self.qm.bytes_encoding)
            filters = _filters(args[1] if len(args) == 2 else None)
            responses = kwargs.get("responses")
            if responses is not None and not isinstance(responses, list):
                raise TypeError("responses must be a list")
            result = self._sim.mqpcf(self.qm.getHandle(), name, parameters, filters)
            if responses is None:
                return result
            del responses[:]
            header = {"Type": F.MQCFT_RESPONSE, "Command": code}
            responses.extend((r, CFH(**header, MsgSeqNumber=i + 1)) for i, r in enumerate(result))
            return responses

        return call

    @staticmethod
    def stringify_keys(raw_dict: dict[int, Any]) -> dict[Any, Any]:
        names = {v: k for k, v in C.values().items() if k.startswith(("MQIA_", "MQCA_"))}
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
