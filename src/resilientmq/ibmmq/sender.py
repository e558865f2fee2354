"""What a session transmits with: buffered puts, put1s and publications, on the sender's own connection.

The sender has a connection of its own (opened and closed with the application's, by the session) so that
a long ``MQGET`` wait on the application's connection never holds up delivery, and so its puts are never
part of the application's unit of work. A put is confirmed when ``MQPUT`` returned OK: they are sent outside
syncpoint. A message whose ``MQPUT`` failed with a broken connection is sent again on the next connection
(MQ says a client cannot know whether it arrived: at least once, with the same MsgId). A put that fails
with anything but an MQ answer (a bug here, a missing constant, ...) is never taken for delivered: the
message fails with that reason and the rest of the batch goes on.

Output handles are kept for reuse only while an open ``ResilientQueue`` still puts to their queue
(``wanted``); the others are closed after each batch, so closing a queue lets it be deleted, as with plain
``ibmmq``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import (
    ConnectionLostError,
    InvalidMessageError,
    PermanentDeliveryError,
    ResilientMQError,
)
from resilientmq.core.session import BatchResult

from .codec import adjusted_expiry, decode_value, restore_md
from .errors import Disposition, disposition, permanent_failure

__all__ = ["Sender"]

log = logging.getLogger("resilientmq.ibmmq")

ErrorScope = Callable[[str], AbstractContextManager[None]]
"""The session's error translation for one call (``errors(what)``)."""


class Sender:
    """Puts buffered messages on one connection (``qmgr``), keeping the handles it opened for reuse while
    ``wanted(queue)`` says an open queue object still puts there.

    Handles live at most as long as the connection: a new session makes a new sender.
    """

    def __init__(self, mqi: Any, qmgr: Any, *, wanted: Callable[[str], bool]) -> None:
        self._mqi = mqi
        self.qmgr = qmgr
        self._wanted = wanted
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()  # transmit (the outbox's thread) against trim (a queue's close())

    def transmit(self, batch: Sequence[Envelope], errors: ErrorScope) -> BatchResult:
        """Put ``batch`` in order; how each message fared (MQPUT is synchronous)."""
        with self._lock:
            try:
                return self._transmit(batch, errors)
            finally:
                self._trim()

    def trim(self) -> None:
        """Close the output handles of queues no open queue object puts to."""
        with self._lock:
            self._trim()

    def _transmit(self, batch: Sequence[Envelope], errors: ErrorScope) -> BatchResult:
        failed: dict[int, BaseException] = {}
        retry: dict[int, BaseException] = {}
        for i, envelope in enumerate(batch):
            what = f"MQPUT to {envelope.destination}"
            try:
                with errors(what):
                    self._send(envelope)
            except ConnectionLostError as exc:
                # This one and the rest go again, in order, on the next connection.
                retry.update((e.seq, exc) for e in batch[i:])
                break
            except ResilientMQError as exc:
                if exc.retriable:
                    retry.update((e.seq, exc) for e in batch[i:])
                    break
                self._forget(envelope)
                failed[envelope.seq] = exc
            except self._mqi.MQMIError as exc:
                if disposition(int(exc.reason)) is Disposition.BACKPRESSURE:
                    log.info("%s: %s; trying again later", what, exc)
                    retry.update((e.seq, exc) for e in batch[i:])
                    break
                failed[envelope.seq] = permanent_failure(exc, what, self._mqi)
            except (KeyError, TypeError, ValueError) as exc:
                failed[envelope.seq] = InvalidMessageError(
                    f"{what}: the buffered message is malformed: {exc!r}"
                )
            except Exception as exc:  # a bug must never pass for a delivery, nor stop the others
                log.exception("%s: unexpected error; the message is failed, not delivered", what)
                self._forget(envelope)
                failed[envelope.seq] = PermanentDeliveryError(
                    f"{what}: not put: the sender met an unexpected {type(exc).__name__}: {exc}"
                )
        return BatchResult(failed=failed, retry=retry)

    # -- one message --------------------------------------------------------------------------------------
    def _send(self, envelope: Envelope) -> None:
        mqi = self._mqi
        c = mqi.CMQC
        qmgr = self.qmgr
        headers = envelope.headers
        md = restore_md(mqi, headers["md"])
        expiry = adjusted_expiry(int(md.Expiry), envelope.created_at)
        if expiry is None:
            raise PermanentDeliveryError(
                f"MQPUT to {envelope.destination}: the message expired (Expiry {md.Expiry} tenths of a "
                "second) while it waited in the buffer; MQ would have discarded it"
            )
        md.Expiry = expiry
        options = int(headers.get("pmo", 0)) & ~c.MQPMO_SYNCPOINT
        pmo = mqi.PMO(Options=options | c.MQPMO_NO_SYNCPOINT | c.MQPMO_FAIL_IF_QUIESCING)
        handle = self._with_properties(pmo, headers.get("props") or [])
        try:
            kind = headers["kind"]
            if kind == "put":
                self._cached(
                    ("put", envelope.destination, headers["oo"]), lambda: self._open_queue(headers)
                ).put(envelope.body, md, pmo)
            elif kind == "put1":
                qmgr.put1(_od(mqi, headers["od"]), envelope.body, md, pmo)
            elif kind == "pub":
                self._cached(("pub", envelope.destination), lambda: self._open_topic(headers)).pub(
                    envelope.body, md, pmo
                )
            else:
                raise ValueError(f"unknown message kind {kind!r}")
        finally:
            if handle is not None:
                try:
                    handle.dlt()
                except Exception:  # the connection may be gone; the handle goes with it
                    log.debug("deleting a message handle failed", exc_info=True)

    def _with_properties(self, pmo: Any, props: list[list[Any]]) -> Any:
        if not props:
            return None
        handle = self._mqi.MessageHandle(self.qmgr)
        for name, value, ptype in props:
            handle.properties.set(name, decode_value(value), property_type=ptype)
        pmo.OriginalMsgHandle = handle.msg_handle
        return handle

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = make()
        return found

    def _forget(self, envelope: Envelope) -> None:
        for key in [k for k in self._cache if k[1] == envelope.destination]:
            self._drop(key)

    def _trim(self) -> None:
        for key in [k for k in self._cache if k[0] == "put" and not self._wanted(k[1])]:
            self._drop(key)

    def _drop(self, key: tuple[Any, ...]) -> None:
        opened = self._cache.pop(key)
        with contextlib.suppress(Exception):  # the connection may be gone; its handles went with it
            opened.close()

    def _open_queue(self, headers: Any) -> Any:
        mqi = self._mqi
        return mqi.Queue(self.qmgr, _od(mqi, headers["od"]), int(headers["oo"]))

    def _open_topic(self, headers: Any) -> Any:
        mqi = self._mqi
        od = headers["od"]
        topic = mqi.Topic(
            self.qmgr, topic_name=od.get("ObjectName") or None, topic_string=od.get("ObjectString") or None
        )
        topic.open(open_opts=mqi.CMQC.MQOO_OUTPUT | mqi.CMQC.MQOO_FAIL_IF_QUIESCING)
        return topic


def _od(mqi: Any, fields: Any) -> Any:
    od = mqi.OD()
    for name in ("ObjectName", "ObjectQMgrName", "AlternateUserId"):
        value = fields.get(name)
        if value:
            setattr(od, name, value.encode("utf-8"))
    return od
