"""The queue manager's state and the MQI verbs on connections, objects, units of work and message handles.

Every verb runs under one condition (``_cond``), as one queue manager serialises its work. The verbs are the
engine's public interface, named after the MQI calls (``mqconn``, ``mqopen``, ``mqinq``, ...): the
``ibmmq``-shaped classes of :mod:`.api` call them and nothing else. The messaging verbs (put, get, publish,
subscribe) are in :mod:`.messaging`, PCF in :mod:`.admin`, the controls tests use in :mod:`.simulator`.
"""

from __future__ import annotations

import bisect
import datetime
import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .constants import CMQC as C
from .errors import fail
from .state import (
    Conn,
    Fault,
    Handle,
    LocalQueue,
    MessageHandleState,
    QMState,
    Sub,
    check_name,
    normalise_address,
)
from .structures import pad, text

__all__ = ["COMMAND_LEVEL", "VERSION", "QueueManagerEngine"]

COMMAND_LEVEL = 940
"""The MQ command level the simulator answers with (MQ 9.4)."""
VERSION = "09040000"
"""``MQCA_VERSION``: VVRRMMFF of the simulated queue manager."""

# MQCHAR attribute lengths (cmqc.h's MQ_*_LENGTH) of the character attributes MQINQ answers.
_CHAR_LENGTHS = {
    "MQCA_Q_NAME": 48, "MQCA_Q_MGR_NAME": 48, "MQCA_Q_DESC": 64, "MQCA_Q_MGR_DESC": 64,
    "MQCA_Q_MGR_IDENTIFIER": 48, "MQCA_VERSION": 8, "MQCA_CREATION_DATE": 12, "MQCA_CREATION_TIME": 8,
    "MQCA_ALTERATION_DATE": 12, "MQCA_ALTERATION_TIME": 8, "MQCA_DEAD_LETTER_Q_NAME": 48,
    "MQCA_COMMAND_INPUT_Q_NAME": 48, "MQCA_DEF_XMIT_Q_NAME": 48, "MQCA_BACKOUT_REQ_Q_NAME": 48,
}  # fmt: skip
# Property value lengths MQINQMP compares with the caller's buffer, by type (strings: their bytes).
_FIXED_LENGTHS = {
    "MQTYPE_BOOLEAN": 4, "MQTYPE_INT8": 1, "MQTYPE_INT16": 2, "MQTYPE_INT32": 4, "MQTYPE_INT64": 8,
    "MQTYPE_FLOAT32": 4, "MQTYPE_FLOAT64": 8, "MQTYPE_NULL": 0,
}  # fmt: skip
PROPERTY_FOLDERS = ("usr", "jms", "mcd", "mqext")
"""The RFH2 folders that carry message properties (a name without a folder is in ``usr``)."""


def char_attribute(name: str, value: str) -> bytes:
    """An MQCHAR attribute as MQINQ returns it: blank-padded to its length."""
    return pad(value, _CHAR_LENGTHS[name], b" ")


def property_key(name: str) -> str:
    """The name a property is stored by: ``usr.colour`` and ``colour`` are one property."""
    return name[4:] if name.startswith("usr.") else name


def value_length(value: Any, ptype: int) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes):
        return len(value)
    for name, length in _FIXED_LENGTHS.items():
        if getattr(C, name) == ptype:
            return length
    return 8


def coerce_property(value: Any, property_type: int) -> Any:
    """A property value as MQSETMP stores it for ``property_type`` (2473 for an unknown type)."""
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
    raise fail(C.MQRC_PROPERTY_TYPE_ERROR)


class QueueManagerEngine:
    """One queue manager's state (queues, messages, connections, handles, subscriptions) and its verbs."""

    def __init__(
        self,
        queue_manager_name: str,
        *,
        max_msg_length: int,
        addresses: list[str] | None,
        client_reconnect_timeout: float,
    ) -> None:
        if not queue_manager_name or len(queue_manager_name) > 48:
            raise ValueError(f"queue manager name must be 1 to 48 characters, got {queue_manager_name!r}")
        self.queue_manager_name = queue_manager_name
        self.max_msg_length = max_msg_length
        self.client_reconnect_timeout = client_reconnect_timeout
        self._addresses = [normalise_address(a) for a in addresses] if addresses else None
        self._active = self._addresses[0] if self._addresses else None
        self._cond = threading.Condition(threading.RLock())
        self._state = QMState.RUNNING
        self._created = datetime.datetime.now()
        self._queues: dict[str, LocalQueue] = {}
        self._topics: dict[str, str] = {}
        self._subs: dict[str, Sub] = {}  # by name; unnamed non-durable ones by a generated key
        self._conns: dict[int, Conn] = {}
        self._msg_handles: dict[int, MessageHandleState] = {}
        self._handles = itertools.count(101)
        self._arrivals = itertools.count(1)
        self._ids = itertools.count(time.time_ns() // 1000)
        self._faults: list[Fault] = []
        self._waiting = 0
        self._credentials: tuple[str, str] | None = None
        self._denied: set[str] = set()
        self.stats: dict[str, int] = dict.fromkeys(("connects", "puts", "gets", "commits", "backouts"), 0)
        self.mqi: Any = None  # the ibmmq-shaped module, set by the Simulator

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
        description: str = "",
        replace: bool = False,
    ) -> None:
        """DEFINE QLOCAL. Like MQ, messages are non-persistent by default (``DEFPSIST(NO)``).

        ``replace=True`` (``DEFINE ... REPLACE``) changes the attributes of a queue that exists in place:
        its messages, open handles and units of work stay.
        """
        name = check_name(name)
        if max_depth < 0 or max_msg_length < 0 or not 0 <= default_priority <= 9:
            raise ValueError("max_depth and max_msg_length must be >= 0 and default_priority 0..9")
        with self._cond:
            old = self._queues.get(name)
            if old is not None and not replace:
                raise ValueError(f"queue {name!r} already exists (pass replace=True to redefine it)")
            queue = old if old is not None and old.kind == "local" else LocalQueue(name, "local")
            queue.max_depth, queue.max_msg_length = max_depth, max_msg_length
            queue.default_persistence, queue.default_priority = default_persistence, default_priority
            queue.put_inhibited, queue.get_inhibited = put_inhibited, get_inhibited
            queue.description = description
            self._queues[name] = queue
            self._cond.notify_all()

    def define_model_queue(self, name: str, *, permanent: bool = False) -> None:
        """DEFINE QMODEL: opening it creates a temporary (or permanent) dynamic queue."""
        name = check_name(name)
        with self._cond:
            self._queues[name] = LocalQueue(
                name, "model", model_definition="permdyn" if permanent else "tempdyn"
            )

    def define_topic(self, name: str, topic_string: str) -> None:
        """DEFINE TOPIC: an administrative topic object naming a topic string."""
        with self._cond:
            self._topics[check_name(name)] = topic_string

    # -- lifecycle helpers (called with the lock held) ---------------------------------------------------
    def _shutdown(self, inflight_reason: int) -> None:
        if self._state is QMState.STOPPED:
            return
        self._state = QMState.STOPPED
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

    def _owner_reconnectable(self, queue: LocalQueue) -> bool:
        owner = self._conns.get(queue.owner) if queue.owner is not None else None
        return owner is not None and owner.reconnectable and owner.dead is None

    def _kill(self, conn: Conn, inflight: int, later: int) -> None:
        """The connection ends without MQDISC: back out, close its objects, fail its calls."""
        self._backout(conn)
        self._close_all(conn)
        conn.dead = (inflight, later)
        self._cond.notify_all()

    def _back_out_underneath(self, conn: Conn) -> None:
        if conn.uow:
            self._backout(conn)
            conn.uow_backed_out = True

    def _close_all(self, conn: Conn) -> None:
        for hobj in list(conn.handles):
            self._close_handle(conn, hobj, C.MQCO_NONE)

    # -- entry checks ------------------------------------------------------------------------------------
    @contextmanager
    def _call(self, hconn: Any, verb: str, *, quiescing_fails: bool = False) -> Iterator[Conn]:
        """Every MQI call: injected faults, a valid live connection, the quiescing rule."""
        with self._cond:
            fault = self._take_fault(verb)
            if fault is not None and not fault.after:
                self._raise_fault(fault, hconn)
            conn = self._live(hconn, quiescing_fails=quiescing_fails, in_flight=False)
            yield conn
            if fault is not None:
                self._raise_fault(fault, hconn)

    def _live(self, hconn: Any, *, quiescing_fails: bool, in_flight: bool) -> Conn:
        conn = self._conns.get(hconn) if isinstance(hconn, int) else None
        if conn is None:
            raise fail(C.MQRC_HCONN_ERROR)
        while conn.reconnecting_until is not None and conn.dead is None:
            remaining = conn.reconnecting_until - time.monotonic()
            if remaining <= 0:
                self._kill(conn, C.MQRC_RECONNECT_FAILED, C.MQRC_RECONNECT_FAILED)
                break
            self._cond.wait(remaining)
        if conn.dead is not None:
            raise fail(conn.dead[0] if in_flight else conn.dead[1])
        if quiescing_fails and self._state is QMState.QUIESCING:
            raise fail(C.MQRC_Q_MGR_QUIESCING)
        return conn

    def _take_fault(self, verb: str) -> Fault | None:
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

    def _raise_fault(self, fault: Fault, hconn: Any) -> None:
        conn = self._conns.get(hconn) if isinstance(hconn, int) else None
        if fault.kill and conn is not None and conn.dead is None:
            self._kill(conn, fault.reason, C.MQRC_CONNECTION_BROKEN)
        elif fault.verb == "MQCMIT" and fault.reason == C.MQRC_BACKED_OUT and conn is not None:
            self._backout(conn)  # MQ's word: the unit of work was backed out
        raise fail(fault.reason, fault.comp)

    def _queue_or_error(self, name: str) -> LocalQueue:
        queue = self._queues.get(name)
        if queue is None:
            raise ValueError(f"no queue {name!r}")
        return queue

    def _new_id(self) -> bytes:
        prefix = b"AMQ " + self.queue_manager_name.encode("ascii")[:12].ljust(12)
        return prefix + next(self._ids).to_bytes(8, "big")

    # -- MQCONN / MQDISC ---------------------------------------------------------------------------------
    def mqconn(
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
        """MQCONN/MQCONNX: a new connection handle."""
        with self._cond:
            fault = self._take_fault("MQCONN")
            if fault is not None:
                raise fail(fault.reason, fault.comp)
            wanted = text(name)
            if wanted and wanted != self.queue_manager_name:
                raise fail(C.MQRC_Q_MGR_NAME_ERROR)
            if client:
                if not channel:
                    raise fail(C.MQRC_UNKNOWN_CHANNEL_NAME)
                listed = [normalise_address(a) for a in addresses.split(",") if a.strip()]
                if not listed:
                    raise fail(C.MQRC_HOST_NOT_AVAILABLE)
                if self._addresses is not None and self._active not in listed:
                    raise fail(C.MQRC_HOST_NOT_AVAILABLE)
                if cipher and not key_repository:
                    raise fail(C.MQRC_KEY_REPOSITORY_ERROR)
            if self._state is QMState.STOPPED:
                raise fail(C.MQRC_Q_MGR_NOT_AVAILABLE)
            if self._state is QMState.QUIESCING:
                raise fail(C.MQRC_Q_MGR_QUIESCING)
            if self._credentials is not None and (user or "", password or "") != self._credentials:
                raise fail(C.MQRC_NOT_AUTHORIZED)
            reconnect = bool(options & (C.MQCNO_RECONNECT | C.MQCNO_RECONNECT_Q_MGR))
            reconnect = reconnect and client and not options & C.MQCNO_RECONNECT_DISABLED
            hconn = next(self._handles)
            self._conns[hconn] = Conn(hconn, client, reconnect, user or "mqsim")
            self.stats["connects"] += 1
            return hconn

    def mqdisc(self, hconn: Any) -> None:
        """MQDISC commits the unit of work (distributed platforms) and closes what is open."""
        with self._cond:
            conn = self._conns.get(hconn) if isinstance(hconn, int) else None
            if conn is None:
                raise fail(C.MQRC_HCONN_ERROR)
            if conn.dead is not None:
                del self._conns[hconn]
                raise fail(conn.dead[1])
            self._commit_work(conn)
            self._close_all(conn)
            del self._conns[hconn]
            self._cond.notify_all()

    # -- MQOPEN / MQCLOSE --------------------------------------------------------------------------------
    def mqopen(self, hconn: Any, od: Any, options: int) -> int:
        """MQOPEN of a queue, the queue manager or a topic; fills the OD's output fields."""
        with self._call(hconn, "MQOPEN", quiescing_fails=bool(options & C.MQOO_FAIL_IF_QUIESCING)) as conn:
            otype = od.ObjectType
            hobj = next(self._handles)
            if otype == C.MQOT_Q_MGR:
                conn.handles[hobj] = Handle(hobj, "qmgr", self.queue_manager_name, options)
                return hobj
            if otype == C.MQOT_TOPIC:
                topic = self._resolve_topic(text(od.ObjectName), od.get_vs("ObjectString"))
                if not options & C.MQOO_OUTPUT or options & (C.MQOO_INPUT_AS_Q_DEF | C.MQOO_BROWSE):
                    raise fail(C.MQRC_OPTION_NOT_VALID_FOR_TYPE)
                conn.handles[hobj] = Handle(hobj, "topic", topic, options)
                od.ResObjectStringVSLength = len(topic)
                return hobj
            if otype != C.MQOT_Q:
                raise fail(C.MQRC_OBJECT_TYPE_ERROR)
            queue = self._open_queue_object(conn, od)
            self._claim_input(queue, hobj, options)
            if options & C.MQOO_OUTPUT:
                queue.output_handles.add(hobj)
            conn.handles[hobj] = Handle(hobj, "queue", queue.name, options)
            od.ObjectName = queue.name.encode("ascii")
            od.ResolvedQName = queue.name.encode("ascii")
            od.ResolvedQMgrName = self.queue_manager_name.encode("ascii")
            return hobj

    def _open_queue_object(self, conn: Conn, od: Any) -> LocalQueue:
        qmgr = text(od.ObjectQMgrName)
        if qmgr and qmgr != self.queue_manager_name:
            raise fail(C.MQRC_UNKNOWN_REMOTE_Q_MGR)
        name = text(od.ObjectName)
        if not name:
            raise fail(C.MQRC_OBJECT_NAME_ERROR)
        queue = self._queues.get(name)
        if queue is None:
            raise fail(C.MQRC_UNKNOWN_OBJECT_NAME)
        if name in self._denied:
            raise fail(C.MQRC_NOT_AUTHORIZED)
        if queue.kind != "model":
            return queue
        pattern = text(od.DynamicQName) or "AMQ.*"
        dyn_name = (
            pattern[:-1] + next(self._ids).to_bytes(8, "big").hex().upper()
            if pattern.endswith("*")
            else pattern
        )
        dyn_name = dyn_name[:48]
        if dyn_name in self._queues:
            raise fail(C.MQRC_OBJECT_ALREADY_EXISTS)
        created = LocalQueue(dyn_name, queue.model_definition)
        if created.kind == "tempdyn":
            created.owner = conn.hconn
        self._queues[dyn_name] = created
        return created

    @staticmethod
    def _claim_input(queue: LocalQueue, hobj: int, options: int) -> None:
        wants_input = options & (C.MQOO_INPUT_AS_Q_DEF | C.MQOO_INPUT_SHARED | C.MQOO_INPUT_EXCLUSIVE)
        if not wants_input:
            return
        if queue.exclusive is not None or (options & C.MQOO_INPUT_EXCLUSIVE and queue.input_handles):
            raise fail(C.MQRC_OBJECT_IN_USE)
        if options & C.MQOO_INPUT_EXCLUSIVE:
            queue.exclusive = hobj
        queue.input_handles.add(hobj)

    def mqclose(self, hconn: Any, hobj: Any, options: int) -> None:
        """MQCLOSE of an object or subscription handle."""
        with self._call(hconn, "MQCLOSE") as conn:
            if hobj not in conn.handles:
                raise fail(C.MQRC_HOBJ_ERROR)
            self._close_handle(conn, hobj, options)

    def _close_handle(self, conn: Conn, hobj: int, options: int) -> None:
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
                raise fail(C.MQRC_Q_NOT_EMPTY, C.MQCC_WARNING)
            del self._queues[queue.name]
            self._cond.notify_all()

    # -- publish/subscribe ------------------------------------------------------------------------------
    def _resolve_topic(self, name: str, string: bytes | None) -> str:
        base = ""
        if name:
            if name not in self._topics:
                raise fail(C.MQRC_UNKNOWN_OBJECT_NAME)
            if name in self._denied:
                raise fail(C.MQRC_NOT_AUTHORIZED)
            base = self._topics[name]
        extra = (string or b"").decode("utf-8")
        topic = f"{base}/{extra}" if base and extra else (base or extra)
        if not topic:
            raise fail(C.MQRC_TOPIC_STRING_ERROR)
        return topic

    def _remove_sub(self, sub: Sub) -> None:
        for key, value in list(self._subs.items()):
            if value is sub:
                del self._subs[key]
        if sub.managed:
            self._queues.pop(sub.queue, None)

    def _purge_expired(self, queue: LocalQueue) -> None:
        """Drop expired messages (MQ removes them when it meets them; nobody can get them)."""
        now = time.monotonic()
        expired = []
        while queue.expiring and queue.expiring[0][0] <= now:
            expired.append(heapq.heappop(queue.expiring)[2])
        if expired:
            gone = {id(m) for m in expired}
            queue.messages = [m for m in queue.messages if id(m) not in gone]

    # -- units of work ----------------------------------------------------------------------------------
    def mqbegin(self, hconn: Any) -> None:
        """MQBEGIN. A local unit of work needs none; without XA resource managers MQ warns 2121, and a
        client connection cannot coordinate one at all (2012)."""
        with self._call(hconn, "MQBEGIN") as conn:
            if conn.client:
                raise fail(C.MQRC_ENVIRONMENT_ERROR)
            raise fail(C.MQRC_NO_EXTERNAL_PARTICIPANTS, C.MQCC_WARNING)

    def mqcmit(self, hconn: Any) -> None:
        """MQCMIT; a unit of work backed out underneath a reconnecting client warns 2003."""
        with self._call(hconn, "MQCMIT") as conn:
            if conn.uow_backed_out:
                conn.uow_backed_out = False
                raise fail(C.MQRC_BACKED_OUT, C.MQCC_WARNING)
            self._commit_work(conn)

    def _commit_work(self, conn: Conn) -> None:
        for action, _queue, message in conn.uow:
            if action == "put":
                message.uncommitted_put = None
        if conn.uow:
            self.stats["commits"] += 1
        conn.uow.clear()
        self._cond.notify_all()

    def mqback(self, hconn: Any) -> None:
        """MQBACK."""
        with self._call(hconn, "MQBACK") as conn:
            conn.uow_backed_out = False
            self._backout(conn)

    def _backout(self, conn: Conn) -> None:
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
    def mqinq(self, hconn: Any, hobj: Any, selectors: list[int]) -> dict[int, Any]:
        """MQINQ: the attributes asked for; 2068 for one of another object type, 2067 for an unknown one."""
        with self._call(hconn, "MQINQ") as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None:
                raise fail(C.MQRC_HOBJ_ERROR)
            if not handle.options & C.MQOO_INQUIRE:
                raise fail(C.MQRC_NOT_OPEN_FOR_INQUIRE)
            if handle.kind == "qmgr":
                attrs, others = self.qmgr_attributes(), self._queue_selectors()
            else:
                queue = self._queues.get(handle.name)
                if queue is None:
                    raise fail(C.MQRC_Q_DELETED)
                attrs, others = self.queue_attributes(queue), set(self.qmgr_attributes())
            out = {}
            for selector in selectors:
                if selector in attrs:
                    out[selector] = attrs[selector]
                elif selector in others:
                    raise fail(C.MQRC_SELECTOR_NOT_FOR_TYPE, C.MQCC_WARNING)
                else:
                    raise fail(C.MQRC_SELECTOR_ERROR)
            return out

    def qmgr_attributes(self) -> dict[int, Any]:
        """The queue manager's attributes, as MQINQ and PCF inquire them."""
        created = self._created
        identifier = f"{self.queue_manager_name}_{created:%Y-%m-%d_%H.%M.%S}"
        chars = {
            "MQCA_Q_MGR_NAME": self.queue_manager_name, "MQCA_Q_MGR_DESC": "", "MQCA_VERSION": VERSION,
            "MQCA_Q_MGR_IDENTIFIER": identifier, "MQCA_DEAD_LETTER_Q_NAME": "SYSTEM.DEAD.LETTER.QUEUE",
            "MQCA_COMMAND_INPUT_Q_NAME": "SYSTEM.ADMIN.COMMAND.QUEUE", "MQCA_DEF_XMIT_Q_NAME": "",
            "MQCA_CREATION_DATE": f"{created:%Y-%m-%d}", "MQCA_CREATION_TIME": f"{created:%H.%M.%S}",
            "MQCA_ALTERATION_DATE": f"{created:%Y-%m-%d}", "MQCA_ALTERATION_TIME": f"{created:%H.%M.%S}",
        }  # fmt: skip
        out: dict[int, Any] = {getattr(C, k): char_attribute(k, v) for k, v in chars.items()}
        out.update({
            C.MQIA_COMMAND_LEVEL: COMMAND_LEVEL, C.MQIA_PLATFORM: C.MQPL_UNIX, C.MQIA_CODED_CHAR_SET_ID: 1208,
            C.MQIA_MAX_MSG_LENGTH: self.max_msg_length, C.MQIA_MAX_PRIORITY: 9,
            C.MQIA_SYNCPOINT: C.MQSP_AVAILABLE, C.MQIA_MAX_HANDLES: 256, C.MQIA_MAX_UNCOMMITTED_MSGS: 10000,
            C.MQIA_DIST_LISTS: C.MQDL_SUPPORTED, C.MQIA_TRIGGER_INTERVAL: 999999999,
            C.MQIA_MAX_PROPERTIES_LENGTH: C.MQPROP_UNRESTRICTED_LENGTH,
        })  # fmt: skip
        return out

    def _queue_selectors(self) -> set[int]:
        return set(self.queue_attributes(LocalQueue("", "local")))

    def queue_attributes(self, queue: LocalQueue) -> dict[int, Any]:
        """A queue's attributes, as MQINQ and PCF inquire them."""
        self._purge_expired(queue)
        definition = {"tempdyn": C.MQQDT_TEMPORARY_DYNAMIC, "permdyn": C.MQQDT_PERMANENT_DYNAMIC}
        created = self._created
        return {
            C.MQCA_Q_NAME: char_attribute("MQCA_Q_NAME", queue.name),
            C.MQCA_Q_DESC: char_attribute("MQCA_Q_DESC", queue.description),
            C.MQCA_BACKOUT_REQ_Q_NAME: char_attribute("MQCA_BACKOUT_REQ_Q_NAME", ""),
            C.MQCA_CREATION_DATE: char_attribute("MQCA_CREATION_DATE", f"{created:%Y-%m-%d}"),
            C.MQCA_CREATION_TIME: char_attribute("MQCA_CREATION_TIME", f"{created:%H.%M.%S}"),
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
            C.MQIA_BACKOUT_THRESHOLD: 0,
            C.MQIA_SHAREABILITY: C.MQQA_SHAREABLE,
            C.MQIA_DEF_INPUT_OPEN_OPTION: C.MQOO_INPUT_SHARED,
            C.MQIA_MSG_DELIVERY_SEQUENCE: C.MQMDS_PRIORITY,
            C.MQIA_USAGE: C.MQUS_NORMAL,
        }

    def mqset(self, hconn: Any, hobj: Any, attrs: dict[int, Any]) -> None:
        """MQSET of a queue's INHIBIT_PUT/INHIBIT_GET."""
        with self._call(hconn, "MQSET") as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None:
                raise fail(C.MQRC_HOBJ_ERROR)
            if not handle.options & C.MQOO_SET:
                raise fail(C.MQRC_NOT_OPEN_FOR_SET)
            queue = self._queues.get(handle.name)
            if queue is None:
                raise fail(C.MQRC_Q_DELETED)
            if any(s not in (C.MQIA_INHIBIT_PUT, C.MQIA_INHIBIT_GET) for s in attrs):
                raise fail(C.MQRC_SELECTOR_ERROR)
            if C.MQIA_INHIBIT_PUT in attrs:
                queue.put_inhibited = attrs[C.MQIA_INHIBIT_PUT] == C.MQQA_PUT_INHIBITED
            if C.MQIA_INHIBIT_GET in attrs:
                queue.get_inhibited = attrs[C.MQIA_INHIBIT_GET] == C.MQQA_GET_INHIBITED
            self._cond.notify_all()

    # -- message handles and properties -----------------------------------------------------------------
    def mqcrtmh(self, hconn: Any) -> int:
        """MQCRTMH: a message handle (on a connection, or unassociated)."""
        with self._cond:
            if hconn not in (C.MQHC_UNASSOCIATED_HCONN, C.MQHO_NONE):
                self._live(hconn, quiescing_fails=False, in_flight=False)
            hmsg = next(self._handles)
            self._msg_handles[hmsg] = MessageHandleState()
            return hmsg

    def mqdltmh(self, hmsg: Any) -> None:
        """MQDLTMH."""
        with self._cond:
            if self._msg_handles.pop(hmsg, None) is None:
                raise fail(C.MQRC_HMSG_ERROR)

    def _handle_state(self, hmsg: Any) -> MessageHandleState:
        state = self._msg_handles.get(hmsg) if isinstance(hmsg, int) else None
        if state is None:
            raise fail(C.MQRC_HMSG_ERROR)
        return state

    def mqsetmp(self, hmsg: Any, name: str, value: Any, property_type: int) -> None:
        """MQSETMP."""
        if not name or "%" in name:
            raise fail(C.MQRC_PROPERTY_NAME_ERROR)
        with self._cond:
            props = self._handle_state(hmsg).properties
            props[property_key(name)] = (coerce_property(value, property_type), property_type)

    def mqinqmp(self, hmsg: Any, name: str, options: int, max_length: int) -> tuple[Any, str]:
        """MQINQMP: ``(value, name)``. A name may be ``%`` or ``folder.%`` (in turn with MQIMPO_INQ_NEXT).

        A value longer than ``max_length`` fails with 2469 (its length in ``data_length``), and the property
        cursor is on that property, so MQIMPO_INQ_PROP_UNDER_CURSOR can ask for it again with room.
        """
        with self._cond:
            state = self._handle_state(hmsg)
            props = state.properties
            if options & C.MQIMPO_INQ_PROP_UNDER_CURSOR:
                found = state.cursor if state.cursor in props else None
            elif name == "%" or name.endswith(".%"):
                names = self._wildcard(props, name[:-1])
                cursor = state.cursor
                at = names.index(cursor) + 1 if options & C.MQIMPO_INQ_NEXT and cursor in names else 0
                found = names[at] if at < len(names) else None
            else:
                key = property_key(name)
                found = key if key in props else None
            if found is None:
                raise fail(C.MQRC_PROPERTY_NOT_AVAILABLE, data_length=0)
            state.cursor = found
            value, ptype = props[found]
            length = value_length(value, ptype)
            if length > max_length:
                raise fail(C.MQRC_PROPERTY_VALUE_TOO_BIG, data_length=length)
            return value, found

    @staticmethod
    def _wildcard(props: dict[str, tuple[Any, int]], folder: str) -> list[str]:
        if not folder:
            return list(props)
        if folder == "usr.":
            known = tuple(f + "." for f in PROPERTY_FOLDERS)
            return [n for n in props if not n.startswith(known)]
        return [n for n in props if n.startswith(folder)]

    def mqdltmp(self, hmsg: Any, name: str) -> None:
        """MQDLTMP."""
        with self._cond:
            props = self._handle_state(hmsg).properties
            if props.pop(property_key(name), None) is None:
                raise fail(C.MQRC_PROPERTY_NOT_AVAILABLE)

    def handle_properties(self, hmsg: Any) -> dict[str, tuple[Any, int]]:
        """A copy of a message handle's properties (what a put with it carries)."""
        with self._cond:
            state = self._msg_handles.get(hmsg) if isinstance(hmsg, int) else None
            return dict(state.properties) if state is not None else {}
