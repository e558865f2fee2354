"""PCF: the administration commands the simulated command server answers (``mqpcf``).

Parameters arrive as ``{parameter: value}`` (strings as bytes, lists for MQCFIL/MQCFSL) and filters as
``(parameter, operator, value)``; :mod:`.pcf` turns ``PCFExecute``'s dict and list forms into these.
Answers are MQ's: a list of response dicts, or ``MQMIError`` with the reason the command server would put
in its response (``MQRC_UNKNOWN_OBJECT_NAME`` for an inquiry that matches nothing, ``MQRCCF_*``, ...). A
command the simulator does not implement answers ``MQRC_FUNCTION_NOT_SUPPORTED``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from .constants import CMQC as C
from .constants import CMQCFC as F
from .errors import fail
from .messaging import MessagingEngine
from .state import LocalQueue, Sub
from .structures import pad, text

__all__ = ["AdminEngine"]

_QUEUE_TYPES = {
    "local": "MQQT_LOCAL",
    "tempdyn": "MQQT_LOCAL",
    "permdyn": "MQQT_LOCAL",
    "model": "MQQT_MODEL",
}


def _generic(pattern: str) -> Callable[[str], bool]:
    """MQ's generic names: a trailing ``*`` matches any rest; otherwise the name itself."""
    if pattern.endswith("*"):
        return lambda name: name.startswith(pattern[:-1])
    return lambda name: name == pattern


def _passes(value: Any, operator: int, wanted: Any) -> bool:
    """One PCF filter (MQCFIF/MQCFSF/MQCFBF) applied to an attribute value."""
    if isinstance(value, bytes):
        value = value.rstrip(b" \0")
        wanted = (wanted or b"").rstrip(b" \0") if isinstance(wanted, bytes) else wanted
        if operator in (F.MQCFOP_LIKE, F.MQCFOP_NOT_LIKE):
            like = fnmatch.fnmatchcase(value.decode("latin-1"), wanted.decode("latin-1"))
            return like if operator == F.MQCFOP_LIKE else not like
    if isinstance(value, list):
        inside = wanted in value
        if operator in (F.MQCFOP_CONTAINS, F.MQCFOP_EXCLUDES):
            return inside if operator == F.MQCFOP_CONTAINS else not inside
        raise fail(F.MQRCCF_FILTER_ERROR)
    comparisons: dict[int, Callable[[Any, Any], bool]] = {
        F.MQCFOP_LESS: lambda a, b: a < b, F.MQCFOP_NOT_LESS: lambda a, b: a >= b,
        F.MQCFOP_GREATER: lambda a, b: a > b, F.MQCFOP_NOT_GREATER: lambda a, b: a <= b,
        F.MQCFOP_EQUAL: lambda a, b: a == b, F.MQCFOP_NOT_EQUAL: lambda a, b: a != b,
    }  # fmt: skip
    compare = comparisons.get(operator)
    if compare is None:
        raise fail(F.MQRCCF_FILTER_ERROR)
    try:
        return compare(value, wanted)
    except TypeError:
        raise fail(F.MQRCCF_FILTER_ERROR) from None


def _selected(attrs: dict[int, Any], wanted: Any, always: tuple[int, ...]) -> dict[int, Any]:
    """The attributes an ``MQIACF_*_ATTRS`` list asks for (all by default, or with MQIACF_ALL)."""
    if wanted is None:
        return attrs
    wanted = wanted if isinstance(wanted, list) else [wanted]
    if F.MQIACF_ALL in wanted:
        return attrs
    return {k: v for k, v in attrs.items() if k in wanted or k in always}


# Inquiries: the parameter that selects the attributes returned, and those returned whatever it says.
_SELECTION = {
    "MQCMD_INQUIRE_Q_MGR": (F.MQIACF_Q_MGR_ATTRS, (C.MQCA_Q_MGR_NAME,)),
    "MQCMD_INQUIRE_Q": (F.MQIACF_Q_ATTRS, (C.MQCA_Q_NAME, C.MQIA_Q_TYPE)),
    "MQCMD_INQUIRE_SUBSCRIPTION": (F.MQIACF_SUB_ATTRS, (F.MQCACF_SUB_NAME, F.MQBACF_SUB_ID)),
}


class AdminEngine(MessagingEngine):
    """The queue manager's command server."""

    def mqpcf(
        self, hconn: Any, command: str, parameters: dict[int, Any], filters: list[tuple[int, int, Any]]
    ) -> list[dict[int, Any]]:
        """Run one PCF command on connection ``hconn`` (its faults and the quiescing rule apply)."""
        with self._call(hconn, "PCF", quiescing_fails=True):
            handler = getattr(self, "_pcf_" + command.removeprefix("MQCMD_").lower(), None)
            if handler is None:
                raise fail(C.MQRC_FUNCTION_NOT_SUPPORTED)
            if len(filters) > 1:
                raise fail(F.MQRCCF_TOO_MANY_FILTERS)
            result: list[dict[int, Any]] = handler(parameters)
            for parameter, operator, value in filters:  # on every attribute, before the selection
                result = [r for r in result if parameter in r and _passes(r[parameter], operator, value)]
                if not result:
                    raise fail(C.MQRC_UNKNOWN_OBJECT_NAME)
            selector, always = _SELECTION.get(command, (None, ()))
            if selector is None:
                return result
            return [_selected(r, parameters.get(selector), always) for r in result]

    # -- the queue manager ------------------------------------------------------------------------------
    def _pcf_ping_q_mgr(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        return []

    def _pcf_inquire_q_mgr(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        return [self.qmgr_attributes()]

    # -- queues -------------------------------------------------------------------------------------------
    def _matching_queues(self, p: dict[int, Any]) -> list[LocalQueue]:
        if C.MQCA_Q_NAME not in p:
            raise fail(F.MQRCCF_PARM_MISSING)
        matches = _generic(text(p[C.MQCA_Q_NAME]))
        qtype = p.get(C.MQIA_Q_TYPE, C.MQQT_ALL)
        return [
            q
            for name, q in sorted(self._queues.items())
            if matches(name) and qtype in (C.MQQT_ALL, getattr(C, _QUEUE_TYPES[q.kind]))
        ]

    def _one_queue(self, p: dict[int, Any]) -> LocalQueue:
        name = text(p.get(C.MQCA_Q_NAME, b""))
        queue = self._queues.get(name)
        if queue is None:
            raise fail(C.MQRC_UNKNOWN_OBJECT_NAME)
        return queue

    def _pcf_inquire_q(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        queues = self._matching_queues(p)
        if not queues:
            raise fail(C.MQRC_UNKNOWN_OBJECT_NAME)  # as MQ answers a (generic) name that matches nothing
        return [self.queue_attributes(q) for q in queues]

    def _pcf_inquire_q_names(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        queues = self._matching_queues(p)  # zero or more names: none is not an error here
        return [
            {
                F.MQCACF_Q_NAMES: [pad(q.name, 48, b" ") for q in queues],
                F.MQIACF_Q_TYPES: [getattr(C, _QUEUE_TYPES[q.kind]) for q in queues],
            }
        ]

    def _pcf_create_q(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        name = text(p.get(C.MQCA_Q_NAME, b""))
        if not name:
            raise fail(F.MQRCCF_PARM_MISSING)
        old = self._queues.get(name)
        if old is not None and p.get(F.MQIACF_REPLACE) != F.MQRP_YES:
            raise fail(F.MQRCCF_OBJECT_ALREADY_EXISTS)
        qtype = p.get(C.MQIA_Q_TYPE, C.MQQT_LOCAL)
        if qtype == C.MQQT_MODEL:
            self.define_model_queue(
                name, permanent=p.get(C.MQIA_DEFINITION_TYPE) == C.MQQDT_PERMANENT_DYNAMIC
            )
            return []
        if qtype != C.MQQT_LOCAL or (old is not None and old.kind != "local"):
            raise fail(F.MQRCCF_Q_TYPE_ERROR)
        self.define_queue(
            name,
            max_depth=p.get(C.MQIA_MAX_Q_DEPTH, 5000),
            max_msg_length=p.get(C.MQIA_MAX_MSG_LENGTH, 4 * 1024 * 1024),
            default_persistence=p.get(C.MQIA_DEF_PERSISTENCE) == C.MQPER_PERSISTENT,
            default_priority=p.get(C.MQIA_DEF_PRIORITY, 0),
            put_inhibited=p.get(C.MQIA_INHIBIT_PUT) == C.MQQA_PUT_INHIBITED,
            get_inhibited=p.get(C.MQIA_INHIBIT_GET) == C.MQQA_GET_INHIBITED,
            description=text(p.get(C.MQCA_Q_DESC, b"")),
            replace=True,  # in place: messages and open handles stay, as on MQ
        )
        return []

    def _pcf_change_q(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        queue = self._one_queue(p)
        if C.MQIA_MAX_Q_DEPTH in p:
            queue.max_depth = p[C.MQIA_MAX_Q_DEPTH]
        if C.MQIA_MAX_MSG_LENGTH in p:
            queue.max_msg_length = p[C.MQIA_MAX_MSG_LENGTH]
        if C.MQIA_DEF_PRIORITY in p:
            queue.default_priority = p[C.MQIA_DEF_PRIORITY]
        if C.MQIA_DEF_PERSISTENCE in p:
            queue.default_persistence = p[C.MQIA_DEF_PERSISTENCE] == C.MQPER_PERSISTENT
        if C.MQCA_Q_DESC in p:
            queue.description = text(p[C.MQCA_Q_DESC])
        if C.MQIA_INHIBIT_PUT in p:
            queue.put_inhibited = p[C.MQIA_INHIBIT_PUT] == C.MQQA_PUT_INHIBITED
        if C.MQIA_INHIBIT_GET in p:
            queue.get_inhibited = p[C.MQIA_INHIBIT_GET] == C.MQQA_GET_INHIBITED
        self._cond.notify_all()
        return []

    def _pcf_delete_q(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        queue = self._one_queue(p)
        if queue.input_handles or queue.output_handles:
            raise fail(F.MQRCCF_OBJECT_OPEN)
        if queue.messages and p.get(F.MQIACF_PURGE) != F.MQPO_YES:
            raise fail(C.MQRC_Q_NOT_EMPTY)
        del self._queues[queue.name]
        self._cond.notify_all()
        return []

    def _pcf_clear_q(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        queue = self._one_queue(p)
        if queue.input_handles or queue.output_handles or any(m.uncommitted_put for m in queue.messages):
            raise fail(C.MQRC_OBJECT_IN_USE)
        queue.messages.clear()
        return []

    # -- subscriptions defined by administration -----------------------------------------------------------
    def _named_subs(self, p: dict[int, Any], *, generic: bool) -> list[Sub]:
        raw = p.get(F.MQCACF_SUB_NAME)
        if raw is None:
            raise fail(F.MQRCCF_PARM_MISSING)
        name = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        matches = _generic(name.rstrip()) if generic else (lambda n: n == name.rstrip())
        found = [s for key, s in sorted(self._subs.items()) if s.name and s.durable and matches(key)]
        if not found:
            raise fail(C.MQRC_NO_SUBSCRIPTION)
        return found

    def _pcf_create_subscription(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        raw = p.get(F.MQCACF_SUB_NAME)
        if not raw or not (p.get(C.MQCA_TOPIC_STRING) or p.get(C.MQCA_TOPIC_NAME)):
            raise fail(F.MQRCCF_PARM_MISSING)
        name = (raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)).rstrip()
        existing = self._subs.get(name)
        if existing is not None and p.get(F.MQIACF_REPLACE) != F.MQRP_YES:
            raise fail(F.MQRCCF_SUB_ALREADY_EXISTS)
        topic = self._resolve_topic(text(p.get(C.MQCA_TOPIC_NAME, b"")), p.get(C.MQCA_TOPIC_STRING))
        managed = p.get(F.MQIACF_DESTINATION_CLASS, C.MQDC_PROVIDED) == C.MQDC_MANAGED
        if managed:
            queue = LocalQueue(
                "SYSTEM.MANAGED.DURABLE." + next(self._ids).to_bytes(8, "big").hex().upper(), "permdyn"
            )
            self._queues[queue.name] = queue
            destination = queue.name
        else:
            destination = text(p.get(F.MQCACF_DESTINATION, b""))
            if not destination:
                raise fail(F.MQRCCF_DEST_NAME_ERROR)
            if destination not in self._queues:
                raise fail(C.MQRC_UNKNOWN_OBJECT_NAME)
        if existing is not None:
            self._remove_sub(existing)
        sub = Sub(name, topic, True, destination, managed, self._new_id(), None, admin=True)
        self._subs[name] = sub
        return []

    def _pcf_inquire_subscription(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        out = []
        for sub in self._named_subs(p, generic=True):
            attrs: dict[int, Any] = {
                F.MQCACF_SUB_NAME: (sub.name or "").encode("utf-8"),
                F.MQBACF_SUB_ID: sub.correl_id,
                C.MQCA_TOPIC_STRING: sub.topic.encode("utf-8"),
                F.MQCACF_DESTINATION: pad(sub.queue, 48, b" "),
                F.MQCACF_DESTINATION_Q_MGR: pad(self.queue_manager_name, 48, b" "),
                F.MQIACF_DESTINATION_CLASS: C.MQDC_MANAGED if sub.managed else C.MQDC_PROVIDED,
                F.MQIACF_DURABLE_SUBSCRIPTION: C.MQSUB_DURABLE_YES if sub.durable else C.MQSUB_DURABLE_NO,
                F.MQIACF_SUB_TYPE: F.MQSUBTYPE_ADMIN if sub.admin else F.MQSUBTYPE_API,
            }
            out.append(attrs)
        return out

    def _pcf_delete_subscription(self, p: dict[int, Any]) -> list[dict[int, Any]]:
        (sub,) = self._named_subs(p, generic=False)
        if sub.hsub is not None:
            raise fail(F.MQRCCF_SUBSCRIPTION_IN_USE)
        self._remove_sub(sub)
        return []
