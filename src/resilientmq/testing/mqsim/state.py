"""The queue manager's state: queues and their messages, subscriptions, connections and their handles."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .constants import CMQC as C

__all__ = [
    "FATAL", "MQI_VERBS", "Conn", "Fault", "Handle", "LocalQueue", "Message", "MessageHandleState", "QMState",
    "Sub", "check_name", "normalise_address", "topic_matches",
]  # fmt: skip

MQI_VERBS = frozenset(
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
FATAL = frozenset({C.MQRC_CONNECTION_BROKEN, C.MQRC_Q_MGR_STOPPING, C.MQRC_RECONNECT_FAILED})


class QMState(enum.Enum):
    RUNNING = "running"
    QUIESCING = "quiescing"
    STOPPED = "stopped"


@dataclass(order=True)
class Message:
    key: tuple[int, int]  # (-priority, arrival): the queue's order, FIFO within priority
    body: bytes = field(compare=False)
    md: dict[str, Any] = field(compare=False)
    properties: dict[str, tuple[Any, int]] = field(compare=False)
    persistent: bool = field(compare=False)
    expires_at: float | None = field(compare=False)
    token: bytes = field(compare=False)
    uncommitted_put: int | None = field(default=None, compare=False)  # hconn of an uncommitted put


@dataclass
class LocalQueue:
    name: str
    kind: str  # "local", "model", "tempdyn", "permdyn"
    max_depth: int = 5000
    max_msg_length: int = 4 * 1024 * 1024
    default_persistence: bool = False
    default_priority: int = 0
    put_inhibited: bool = False
    get_inhibited: bool = False
    description: str = ""
    model_definition: str = "tempdyn"  # what a model queue creates
    owner: int | None = None  # hconn that owns a temporary dynamic queue
    messages: list[Message] = field(default_factory=list)
    expiring: list[tuple[float, tuple[int, int], Message]] = field(default_factory=list)  # a heap
    exclusive: int | None = None  # hobj holding exclusive input
    input_handles: set[int] = field(default_factory=set)
    output_handles: set[int] = field(default_factory=set)

    @property
    def qtype(self) -> int:
        return int(C.MQQT_MODEL if self.kind == "model" else C.MQQT_LOCAL)


@dataclass
class Sub:
    name: str | None
    topic: str
    durable: bool
    queue: str
    managed: bool
    correl_id: bytes
    owner: int | None  # hconn of a non-durable subscription
    hsub: int | None = None  # open handle, if any
    admin: bool = False  # defined by administration (DEFINE SUB / PCF), not by an application's MQSUB


@dataclass
class Handle:
    hobj: int
    kind: str  # "queue", "qmgr", "topic", "sub"
    name: str  # queue name, topic string, or subscription name
    options: int
    cursor: tuple[int, int] | None = None  # browse cursor (message key)
    cursor_msg: Message | None = None
    sub: Sub | None = None


@dataclass
class Conn:
    hconn: int
    client: bool
    reconnectable: bool
    user: str
    handles: dict[int, Handle] = field(default_factory=dict)
    uow: list[tuple[str, LocalQueue, Message]] = field(default_factory=list)
    uow_backed_out: bool = False  # backed out underneath a reconnecting client: MQCMIT warns 2003
    dead: tuple[int, int] | None = None  # (reason for calls in flight, reason for later calls)
    reconnecting_until: float | None = None  # MQCNO_RECONNECT client waiting for the queue manager


@dataclass
class MessageHandleState:
    """A message handle's properties (name -> (value, MQTYPE)) and its MQINQMP property cursor."""

    properties: dict[str, tuple[Any, int]] = field(default_factory=dict)
    cursor: str | None = None  # the property the last MQINQMP returned (or failed on with 2469)


@dataclass
class Fault:
    verb: str
    reason: int
    comp: int
    count: int
    after: bool
    kill: bool
    skip: int


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 48 or name != name.strip():
        raise ValueError(f"MQ object names are 1 to 48 characters without blanks, got {name!r}")
    return name


def normalise_address(address: str) -> str:
    address = address.strip()
    return address if "(" in address else f"{address}(1414)"


def topic_matches(pattern: str, topic: str) -> bool:
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
