"""The per-simulator ``ibmmq``-shaped module (``Simulator.mqi``)."""

from __future__ import annotations

import types
from typing import Any

from .api import MessageHandle, Queue, QueueManager, Subscription, Topic
from .constants import CMQC, CMQCFC, CMQXC
from .errors import Error, MQMIError, PYIFError
from .messaging import MessagingEngine
from .pcf import PCFExecute
from .structures import CD, CMHO, CNO, CSP, GMO, IMPO, MD, OD, PD, PMO, SCO, SD, SMPO, SRO

__all__ = ["build_module"]


def build_module(sim: MessagingEngine) -> types.ModuleType:
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
        "PCFExecute": type("PCFExecute", (PCFExecute, qm_class), dict(bound)),
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
