"""The queue manager's messaging verbs: MQPUT, MQPUT1, publish, MQSUB and MQGET (with browse, match,
truncation, and message properties delivered in a message handle or in an MQRFH2 header)."""

from __future__ import annotations

import bisect
import datetime
import heapq
import time
from typing import Any

from .constants import CMQC as C
from .engine import PROPERTY_FOLDERS, QueueManagerEngine
from .errors import fail
from .rfh2 import properties_from_rfh2, rfh2_from_properties
from .state import Conn, Handle, LocalQueue, Message, Sub, topic_matches
from .structures import MD, MD_BYTES, MD_CHAR, as_bytes, is_none_id, pad, text

__all__ = ["MessagingEngine"]


class MessagingEngine(QueueManagerEngine):
    """Messages in and out of queues, and publications to subscriptions."""

    # -- MQPUT / MQPUT1 ---------------------------------------------------------------------------------
    def mqput(self, hconn: Any, hobj: Any, md: Any, pmo: Any, body: bytes) -> None:
        """MQPUT on a queue or topic handle; fills the MD's and PMO's output fields."""
        with self._call(
            hconn, "MQPUT", quiescing_fails=bool(pmo.Options & C.MQPMO_FAIL_IF_QUIESCING)
        ) as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None:
                raise fail(C.MQRC_HOBJ_ERROR)
            if not handle.options & C.MQOO_OUTPUT:
                raise fail(C.MQRC_NOT_OPEN_FOR_OUTPUT)
            if handle.kind == "topic":
                self._publish(conn, handle.name, md, pmo, body)
                return
            queue = self._queues.get(handle.name)
            if queue is None:
                raise fail(C.MQRC_Q_DELETED)
            self._enqueue(conn, queue, md, pmo, body)

    def mqput1(self, hconn: Any, od: Any, md: Any, pmo: Any, body: bytes) -> None:
        """MQPUT1 to a queue or a topic."""
        quiescing = bool(pmo.Options & C.MQPMO_FAIL_IF_QUIESCING)
        with self._call(hconn, "MQPUT1", quiescing_fails=quiescing) as conn:
            if od.ObjectType == C.MQOT_TOPIC:
                self._publish(
                    conn, self._resolve_topic(text(od.ObjectName), od.get_vs("ObjectString")), md, pmo, body
                )
                return
            queue = self._open_queue_object(conn, od)
            try:
                self._enqueue(conn, queue, md, pmo, body)
            finally:
                if queue.kind == "tempdyn" and queue.owner == conn.hconn:
                    del self._queues[queue.name]

    def _check_syncpoint(self, conn: Conn, syncpoint: bool) -> None:
        if syncpoint and conn.uow_backed_out:
            raise fail(C.MQRC_BACKED_OUT)

    def _enqueue(self, conn: Conn, queue: LocalQueue, md: Any, pmo: Any, body: bytes) -> None:
        syncpoint = bool(pmo.Options & C.MQPMO_SYNCPOINT)
        self._check_syncpoint(conn, syncpoint)
        if queue.kind == "model":
            raise fail(C.MQRC_OBJECT_TYPE_ERROR)
        if queue.put_inhibited:
            raise fail(C.MQRC_PUT_INHIBITED)
        if len(body) > self.max_msg_length:
            raise fail(C.MQRC_MSG_TOO_BIG_FOR_Q_MGR)
        if len(body) > queue.max_msg_length:
            raise fail(C.MQRC_MSG_TOO_BIG_FOR_Q)
        self._purge_expired(queue)
        if len(queue.messages) >= queue.max_depth:
            raise fail(C.MQRC_Q_FULL)
        message = self._make_message(queue, md, pmo, body)
        self._store(conn, queue, message, syncpoint)
        self._fill_put_output(md, pmo, message, queue.name)

    def _make_message(self, queue: LocalQueue, md: Any, pmo: Any, body: bytes) -> Message:
        if not isinstance(body, bytes):
            raise TypeError(f"message body must be bytes, got {type(body).__name__}")
        priority = md.Priority
        if priority == C.MQPRI_PRIORITY_AS_Q_DEF:
            priority = queue.default_priority
        elif not isinstance(priority, int) or priority < 0:
            raise fail(C.MQRC_PRIORITY_ERROR)
        priority = min(priority, 9)
        persistence = md.Persistence
        if persistence == C.MQPER_PERSISTENCE_AS_Q_DEF:
            persistent = queue.default_persistence
        elif persistence in (C.MQPER_PERSISTENT, C.MQPER_NOT_PERSISTENT):
            persistent = persistence == C.MQPER_PERSISTENT
        else:
            raise fail(C.MQRC_PERSISTENCE_ERROR)
        stored: dict[str, Any] = {}
        for name in MD.field_names():
            value = getattr(md, name)
            if name in MD_CHAR:  # null-terminated or null-padded text comes back blank-padded
                value = pad((as_bytes(value) or b"").split(b"\0", 1)[0], MD_CHAR[name], b" ")
            elif name in MD_BYTES:
                value = pad(value, MD_BYTES[name], b"\0")
            stored[name] = value
        if pmo.Options & C.MQPMO_NEW_MSG_ID or is_none_id(stored["MsgId"]):
            stored["MsgId"] = self._new_id()
        if pmo.Options & C.MQPMO_NEW_CORREL_ID:
            stored["CorrelId"] = self._new_id()
        now = datetime.datetime.now(datetime.timezone.utc)
        stored["PutDate"] = now.strftime("%Y%m%d").encode("ascii")
        stored["PutTime"] = (now.strftime("%H%M%S") + f"{now.microsecond // 10000:02d}").encode("ascii")
        stored["PutApplType"] = C.MQAT_UNIX
        stored["PutApplName"] = pad(b"mqsim", 28, b" ")
        stored["UserIdentifier"] = pad(b"mqsim", 12, b" ")
        if stored["ReplyToQ"].strip() and not stored["ReplyToQMgr"].strip():
            stored["ReplyToQMgr"] = pad(self.queue_manager_name, 48, b" ")
        stored["Priority"] = priority
        stored["Persistence"] = C.MQPER_PERSISTENT if persistent else C.MQPER_NOT_PERSISTENT
        expiry = stored["Expiry"]
        expires_at = None if expiry in (C.MQEI_UNLIMITED, 0) or expiry < 0 else time.monotonic() + expiry / 10
        properties: dict[str, tuple[Any, int]] = {}
        if pmo.OriginalMsgHandle:
            properties = self.handle_properties(pmo.OriginalMsgHandle)
        return Message(
            (-priority, next(self._arrivals)), body, stored, properties, persistent, expires_at,
            next(self._ids).to_bytes(16, "big"),
        )  # fmt: skip

    def _store(self, conn: Conn, queue: LocalQueue, message: Message, syncpoint: bool) -> None:
        bisect.insort(queue.messages, message)
        if message.expires_at is not None:
            heapq.heappush(queue.expiring, (message.expires_at, message.key, message))
        self.stats["puts"] += 1
        if syncpoint:
            message.uncommitted_put = conn.hconn
            conn.uow.append(("put", queue, message))
        else:
            self._cond.notify_all()

    def _fill_put_output(self, md: Any, pmo: Any, message: Message, resolved: str) -> None:
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
        pmo.ResolvedQMgrName = self.queue_manager_name.encode("ascii") if resolved else b""

    def _publish(self, conn: Conn, topic: str, md: Any, pmo: Any, body: bytes) -> None:
        syncpoint = bool(pmo.Options & C.MQPMO_SYNCPOINT)
        self._check_syncpoint(conn, syncpoint)
        template: Message | None = None
        matched = 0
        for sub in list(self._subs.values()):
            queue = self._queues.get(sub.queue)
            if queue is None or not topic_matches(sub.topic, topic):
                continue
            message = self._make_message(queue, md, pmo, body)
            if template is None:
                template = message
            message.md["MsgId"] = template.md["MsgId"]
            message.md["CorrelId"] = sub.correl_id
            self._store(conn, queue, message, syncpoint)
            matched += 1
        if template is None:
            template = self._make_message(LocalQueue("", "local"), md, pmo, body)
        self._fill_put_output(md, pmo, template, "")
        if not matched and pmo.Options & C.MQPMO_WARN_IF_NO_SUBS_MATCHED:
            raise fail(C.MQRC_NO_SUBS_MATCHED, C.MQCC_WARNING)

    def mqsub(self, hconn: Any, sd: Any, hobj_queue: Any) -> tuple[int, int]:
        """MQSUB: (the queue handle publications arrive on, the subscription handle)."""
        options = sd.Options
        with self._call(hconn, "MQSUB", quiescing_fails=bool(options & C.MQSO_FAIL_IF_QUIESCING)) as conn:
            name_raw = sd.get_vs("SubName")
            name = name_raw.decode("utf-8") if name_raw else None
            durable = bool(options & C.MQSO_DURABLE)
            if durable and not name:
                raise fail(C.MQRC_SUB_NAME_ERROR)
            existing = self._subs.get(name) if name else None
            if existing is not None and options & C.MQSO_RESUME:
                if existing.hsub is not None:
                    raise fail(C.MQRC_SUBSCRIPTION_IN_USE)
                sub = existing
            elif options & C.MQSO_CREATE:
                if existing is not None:
                    raise fail(C.MQRC_SUB_ALREADY_EXISTS)
                topic = self._resolve_topic(text(sd.ObjectName), sd.get_vs("ObjectString"))
                sub = self._create_sub(conn, sd, name, topic, durable, hobj_queue)
            else:
                raise fail(C.MQRC_NO_SUBSCRIPTION)
            if sub.managed:
                hobj = next(self._handles)
                conn.handles[hobj] = Handle(hobj, "queue", sub.queue, C.MQOO_INPUT_AS_Q_DEF | C.MQOO_BROWSE)
                self._queues[sub.queue].input_handles.add(hobj)
            else:
                hobj = hobj_queue
            hsub = next(self._handles)
            conn.handles[hsub] = Handle(hsub, "sub", sub.name or "", options, sub=sub)
            sub.hsub = hsub
            sd.SubCorrelId = sub.correl_id
            return hobj, hsub

    def _create_sub(
        self, conn: Conn, sd: Any, name: str | None, topic: str, durable: bool, hobj_queue: Any
    ) -> Sub:
        managed = bool(sd.Options & C.MQSO_MANAGED)
        if managed:
            kind = "permdyn" if durable else "tempdyn"
            prefix = "SYSTEM.MANAGED.DURABLE." if durable else "SYSTEM.MANAGED.NDURABLE."
            queue = LocalQueue(prefix + next(self._ids).to_bytes(8, "big").hex().upper(), kind)
            queue.owner = None if durable else conn.hconn
            self._queues[queue.name] = queue
            queue_name = queue.name
        else:
            handle = conn.handles.get(hobj_queue) if isinstance(hobj_queue, int) else None
            if handle is None or handle.kind != "queue":
                raise fail(C.MQRC_HOBJ_ERROR)
            queue_name = handle.name
        sub = Sub(name, topic, durable, queue_name, managed, self._new_id(), None if durable else conn.hconn)
        self._subs[name if name else f"\0{next(self._ids)}"] = sub
        return sub

    # -- MQGET ------------------------------------------------------------------------------------------
    def mqget(self, hconn: Any, hobj: Any, md: Any, gmo: Any, max_length: int | None) -> bytes:
        """MQGET (``max_length`` None: a buffer as large as the message)."""
        options = gmo.Options
        quiescing = bool(options & C.MQGMO_FAIL_IF_QUIESCING)
        with self._call(hconn, "MQGET", quiescing_fails=quiescing) as conn:
            handle = conn.handles.get(hobj) if isinstance(hobj, int) else None
            if handle is None or handle.kind != "queue":
                raise fail(C.MQRC_HOBJ_ERROR)
            browse = options & (C.MQGMO_BROWSE_FIRST | C.MQGMO_BROWSE_NEXT | C.MQGMO_BROWSE_MSG_UNDER_CURSOR)
            if browse and not handle.options & C.MQOO_BROWSE:
                raise fail(C.MQRC_NOT_OPEN_FOR_BROWSE)
            inputs = C.MQOO_INPUT_AS_Q_DEF | C.MQOO_INPUT_SHARED | C.MQOO_INPUT_EXCLUSIVE
            if not browse and not handle.options & inputs:
                raise fail(C.MQRC_NOT_OPEN_FOR_INPUT)
            if options & C.MQGMO_SYNCPOINT:
                self._check_syncpoint(conn, True)
            unlimited = gmo.WaitInterval == C.MQWI_UNLIMITED
            deadline = None if unlimited else time.monotonic() + max(gmo.WaitInterval, 0) / 1000
            waited = False
            while True:
                if waited:
                    self._live(hconn, quiescing_fails=quiescing, in_flight=True)
                    if handle.hobj not in conn.handles:
                        raise fail(C.MQRC_HOBJ_ERROR)
                queue = self._queues.get(handle.name)
                if queue is None:
                    raise fail(C.MQRC_Q_DELETED)
                if not browse and queue.get_inhibited:
                    raise fail(C.MQRC_GET_INHIBITED)
                message = self._find(queue, handle, md, gmo)
                if message is not None:
                    return self._deliver(conn, queue, handle, message, md, gmo, max_length)
                remaining = None if deadline is None else deadline - time.monotonic()
                if not options & C.MQGMO_WAIT or (remaining is not None and remaining <= 0):
                    raise fail(C.MQRC_NO_MSG_AVAILABLE)
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
                waited = True

    def _find(self, queue: LocalQueue, handle: Handle, md: Any, gmo: Any) -> Message | None:
        self._purge_expired(queue)
        options = gmo.Options
        if options & (C.MQGMO_MSG_UNDER_CURSOR | C.MQGMO_BROWSE_MSG_UNDER_CURSOR):
            message = handle.cursor_msg
            if message is None or message not in queue.messages or message.uncommitted_put is not None:
                raise fail(C.MQRC_NO_MSG_UNDER_CURSOR)
            return message
        match_id = gmo.MatchOptions & C.MQMO_MATCH_MSG_ID and not is_none_id(md.MsgId)
        match_correl = gmo.MatchOptions & C.MQMO_MATCH_CORREL_ID and not is_none_id(md.CorrelId)
        msg_id = pad(md.MsgId, 24, b"\0") if match_id else None
        correl_id = pad(md.CorrelId, 24, b"\0") if match_correl else None
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
        conn: Conn,
        queue: LocalQueue,
        handle: Handle,
        message: Message,
        md: Any,
        gmo: Any,
        max_length: int | None,
    ) -> bytes:
        options = gmo.Options
        browse = options & (C.MQGMO_BROWSE_FIRST | C.MQGMO_BROWSE_NEXT | C.MQGMO_BROWSE_MSG_UNDER_CURSOR)
        body, descriptor, properties = self._as_delivered(message, gmo)
        truncated = max_length is not None and len(body) > max_length
        if truncated and not options & C.MQGMO_ACCEPT_TRUNCATED_MSG:
            # 2080: the message stays where it is (a browse cursor too, or before the first message for
            # BROWSE_FIRST); the buffer holds what fits and the MQMD is filled in.
            assert max_length is not None
            if options & C.MQGMO_BROWSE_FIRST:
                handle.cursor, handle.cursor_msg = None, None
            self._fill_get_output(md, gmo, message, descriptor, queue.name, len(body), None)
            raise fail(
                C.MQRC_TRUNCATED_MSG_FAILED,
                C.MQCC_WARNING,
                message=body[:max_length],
                original_length=len(body),
            )
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
        self._fill_get_output(md, gmo, message, descriptor, queue.name, len(body), properties)
        if truncated:
            # 2079: taken (or the cursor moved to it); the buffer holds what fits.
            assert max_length is not None
            raise fail(
                C.MQRC_TRUNCATED_MSG_ACCEPTED,
                C.MQCC_WARNING,
                message=body[:max_length],
                original_length=len(body),
            )
        return body

    def _as_delivered(
        self, message: Message, gmo: Any
    ) -> tuple[bytes, dict[str, Any], dict[str, tuple[Any, int]] | None]:
        """The data, MQMD and properties a getter receives.

        With a message handle: the properties in it, and an MQRFH2 holding only property folders is taken
        off the data. Without one (PROPCTL(COMPAT), the default, or MQGMO_PROPERTIES_FORCE_MQRFH2): the
        properties travel in an MQRFH2 in front of the data. MQGMO_NO_PROPERTIES: none at all.
        """
        options = gmo.Options
        body, descriptor, props = message.body, dict(message.md), dict(message.properties)
        if options & C.MQGMO_NO_PROPERTIES:
            return body, descriptor, None
        if gmo.MsgHandle and gmo.MsgHandle in self._msg_handles:
            if descriptor["Format"] == C.MQFMT_RF_HEADER_2:
                parsed = properties_from_rfh2(body, descriptor["Encoding"], PROPERTY_FOLDERS)
                if parsed is not None:
                    found, rfh2, body = parsed
                    props = {**found, **props}
                    descriptor.update(Format=rfh2["Format"], Encoding=rfh2["Encoding"])
                    descriptor["CodedCharSetId"] = rfh2["CodedCharSetId"]
            return body, descriptor, props
        if props and not options & C.MQGMO_PROPERTIES_IN_HANDLE:
            header = rfh2_from_properties(
                props,
                PROPERTY_FOLDERS,
                descriptor["Format"],
                descriptor["Encoding"],
                descriptor["CodedCharSetId"],
            )
            descriptor.update(Format=C.MQFMT_RF_HEADER_2, Encoding=C.MQENC_NATIVE, CodedCharSetId=1208)
            return header + body, descriptor, None
        return body, descriptor, None

    def _fill_get_output(
        self,
        md: Any,
        gmo: Any,
        message: Message,
        descriptor: dict[str, Any],
        queue_name: str,
        length: int,
        properties: dict[str, tuple[Any, int]] | None,
    ) -> None:
        for name, value in descriptor.items():
            setattr(md, name, value)
        if message.expires_at is not None:
            md.Expiry = max(1, int((message.expires_at - time.monotonic()) * 10))
        gmo.ResolvedQName = pad(queue_name, 48, b" ")
        gmo.MsgToken = message.token
        gmo.ReturnedLength = length
        if properties is not None and gmo.MsgHandle in self._msg_handles:
            state = self._msg_handles[gmo.MsgHandle]
            state.properties, state.cursor = dict(properties), None
