"""The per-simulator ``ibmmq``-shaped module (``Simulator.mqi``): what ``ibmmq`` offers at its top.

Besides the classes bound to one simulator, it carries ``ibmmq``'s build attributes (``__version__``,
``__cmdlevel__``, ...), the lower-case aliases of the structures (``md``, ``gmo``, ...), the PCF structures
and filters, ``RFH2``, ``CMQSTRC`` and the small helpers (``to_string``, ``common_q_args``, ...). Not
offered (not simulated): callbacks (``CBD``, ``CBC``, ``CTLO``), ``MQSTAT`` (``STS``), OpenTelemetry,
the binary headers other than RFH2 (``DLH``, ``MDE``, ``TM``, ``TMC2``, ``XQH``, ``CIH``, ``IIH``) and
``MQOpts``/``MQObject``, the base classes of ibmmq's own implementation.
"""

from __future__ import annotations

import types
from typing import Any

from . import pcf
from .admin import AdminEngine
from .api import MessageHandle, Queue, QueueManager, Subscription, Topic, q_args
from .constants import CMQC, CMQCFC, CMQXC
from .engine import COMMAND_LEVEL
from .errors import Error, MQMIError, PYIFError
from .rfh2 import RFH2
from .structures import BNO, CD, CMHO, CNO, CSP, DMHO, DMPO, GMO, IMPO, MD, OD, PD, PMO, SCO, SD, SMPO, SRO

__all__ = ["IBMMQ_VERSION", "build_module"]

IBMMQ_VERSION = "2.1.2"
"""The ``ibmmq`` release whose API the simulated module follows."""


class EncodingDefault:
    """``ibmmq.EncodingDefault``: how strings become bytes."""

    ccsid = 1208
    bytes_encoding = "utf8"
    mqi_encoding = "ascii"


def padded_count(count: int, boundary: int = 4) -> int:
    """``count`` rounded up to a multiple of ``boundary``."""
    return count + (-count % boundary)


def is_unicode(s: Any) -> bool:
    return isinstance(s, str)


def ensure_not_unicode(value: Any) -> None:
    if isinstance(value, str):
        raise TypeError("Python 3 style string found but not allowed here: use bytes")


def ensure_strings_are_bytes(s: Any, encoding: str = EncodingDefault.mqi_encoding) -> Any:
    """str -> bytes (also inside lists); anything else unchanged."""
    if isinstance(s, str):
        return s.encode(encoding)
    if isinstance(s, list):
        return [ensure_strings_are_bytes(x, encoding) for x in s]
    return s


def to_string(v: Any, encoding: str = EncodingDefault.bytes_encoding) -> Any:
    """An MQCHAR field as a str, without trailing NULs and blanks; anything else unchanged."""
    if isinstance(v, bytes):
        try:
            return v.split(b"\0", 1)[0].decode(encoding).strip()
        except UnicodeError:
            return v
    return v


def common_q_args(*opts: Any) -> tuple[Any, Any]:
    """``ibmmq.common_q_args``: (MD, PMO/GMO or None) from put/get arguments."""
    return q_args(opts, MD, (PMO, GMO))


def _strings_table() -> types.ModuleType:
    """``CMQSTRC``: for each prefix, ``MQRC_DICT`` style maps from a value to its name."""
    table = types.ModuleType("CMQSTRC", "value -> name maps of the simulator's constants")
    for constants in (CMQC, CMQXC, CMQCFC):
        for name, value in constants.values().items():
            if isinstance(value, int) and "_" in name:
                table.__dict__.setdefault(name.split("_", 1)[0] + "_DICT", {}).setdefault(value, name)
    return table


def build_module(sim: AdminEngine) -> types.ModuleType:
    """The per-simulator ``ibmmq``: classes bound to ``sim`` so ``isinstance`` works as with the real one."""
    mod = types.ModuleType(f"mqsim.{sim.queue_manager_name}", f"The MQI of {sim!r}")
    bound = {"_sim": sim, "__module__": "resilientmq.testing.mqsim"}
    qm_class = type("QueueManager", (QueueManager,), dict(bound))
    classes: dict[str, Any] = {
        "QueueManager": qm_class,
        "Queue": type("Queue", (Queue,), dict(bound)),
        "Topic": type("Topic", (Topic,), dict(bound)),
        "Subscription": type("Subscription", (Subscription,), dict(bound)),
        "MessageHandle": type("MessageHandle", (MessageHandle,), dict(bound)),
        "PCFExecute": type("PCFExecute", (pcf.PCFExecute, qm_class), dict(bound)),
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
        "CD": CD, "CMHO": CMHO, "PD": PD, "SMPO": SMPO, "IMPO": IMPO, "DMHO": DMHO, "DMPO": DMPO, "BNO": BNO,
        "RFH2": RFH2, "md": MD, "gmo": GMO, "pmo": PMO, "od": OD, "cd": CD, "sco": SCO,
    }  # fmt: skip
    admin = {name: getattr(pcf, name) for name in pcf.__all__ if name != "PCFExecute"}
    helpers = {
        "to_string": to_string, "common_q_args": common_q_args, "commonQArgs": common_q_args,
        "ensure_bytes": ensure_strings_are_bytes, "ensure_strings_are_bytes": ensure_strings_are_bytes,
        "ensure_not_unicode": ensure_not_unicode, "is_unicode": is_unicode, "padded_count": padded_count,
        "EncodingDefault": EncodingDefault, "MQLONG_TYPE": "i", "INTEGER64_TYPE": "q",
        "get_versions": lambda: {"module": IBMMQ_VERSION, "MQ": COMMAND_LEVEL},
    }  # fmt: skip
    mod.__dict__.update(classes)
    mod.__dict__.update(structures)
    mod.__dict__.update(admin)
    mod.__dict__.update(helpers)
    mod.__dict__.update(
        connect=connect, CMQC=CMQC, CMQXC=CMQXC, CMQCFC=CMQCFC, CMQSTRC=_strings_table(), MQMIError=MQMIError,
        PYIFError=PYIFError, Error=Error, simulator=sim, __version__=IBMMQ_VERSION,
        __py_version__=IBMMQ_VERSION, __c_version__=IBMMQ_VERSION, __cmdlevel__=COMMAND_LEVEL,
        __mqbuild__="mqsim",
    )  # fmt: skip
    return mod
