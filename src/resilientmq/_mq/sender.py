"""The outbox's transport for IBM MQ: buffered puts, put1s and publications, on a connection of their own.

The sender has its own connection (opened and closed with the main one, by the supervisor's connector) so
that a long ``MQGET`` wait on the main connection never holds up delivery, and so its puts are never part
of the application's unit of work. A put is confirmed when ``MQPUT`` returned OK: they are sent outside
syncpoint. A message whose ``MQPUT`` failed with a broken connection is sent again on the next connection
(MQ says a client cannot know whether it arrived: at least once, with the same MsgId).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, Protocol

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import (
    ConnectionLostError,
    InvalidMessageError,
    PermanentDeliveryError,
    ResilientMQError,
)
from resilientmq.core.session import BatchResult

from .codec import adjusted_expiry, decode_value, restore_md
from .reasons import Disposition, disposition, permanent_failure

__all__ = ["Sender", "SenderOwner"]

log = logging.getLogger("resilientmq.ibmmq")


class SenderOwner(Protocol):
    """What the sender needs from the queue manager object."""

    _rmq_mqi: ClassVar[Any]

    def _rmq_sender_connection(self) -> tuple[Any, int]: ...

    def _rmq_errors(self, what: str, generation: int) -> Any: ...


class Sender:
    """Implements :class:`resilientmq.core.outbox.Transport` for MQ (synchronously: MQPUT is synchronous)."""

    def __init__(self, owner: SenderOwner) -> None:
        self._owner = owner
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._cache_generation = -1

    def transmit(self, batch: Sequence[Envelope], epoch: int) -> Future[BatchResult]:
        qmgr, generation = self._owner._rmq_sender_connection()
        if qmgr is None:
            raise ConnectionLostError("the sender has no connection to the queue manager")
        if generation != self._cache_generation:
            self._cache.clear()  # handles of an older connection are dead
            self._cache_generation = generation
        failed: dict[int, BaseException] = {}
        retry: dict[int, BaseException] = {}
        for i, envelope in enumerate(batch):
            what = f"MQPUT to {envelope.destination}"
            try:
                with self._owner._rmq_errors(what, generation):
                    self._send(qmgr, envelope)
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
            except self._owner._rmq_mqi.MQMIError as exc:
                if disposition(int(exc.reason)) is Disposition.BACKPRESSURE:
                    log.info("%s: %s; trying again later", what, exc)
                    retry.update((e.seq, exc) for e in batch[i:])
                    break
                failed[envelope.seq] = permanent_failure(exc, what)
            except (KeyError, TypeError, ValueError) as exc:
                failed[envelope.seq] = InvalidMessageError(
                    f"{what}: the buffered message is malformed: {exc!r}"
                )
        future: Future[BatchResult] = Future()
        future.set_result(BatchResult(failed=failed, retry=retry))
        return future

    # -- one message --------------------------------------------------------------------------------------
    def _send(self, qmgr: Any, envelope: Envelope) -> None:
        mqi = self._owner._rmq_mqi
        c = mqi.CMQC
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
        handle = self._with_properties(qmgr, pmo, headers.get("props") or [])
        try:
            kind = headers["kind"]
            if kind == "put":
                self._cached(
                    ("put", envelope.destination, headers["oo"]), lambda: self._open_queue(qmgr, headers)
                ).put(envelope.body, md, pmo)
            elif kind == "put1":
                qmgr.put1(_od(mqi, headers["od"]), envelope.body, md, pmo)
            elif kind == "pub":
                self._cached(("pub", envelope.destination), lambda: self._open_topic(qmgr, headers)).pub(
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

    def _with_properties(self, qmgr: Any, pmo: Any, props: list[list[Any]]) -> Any:
        if not props:
            return None
        mqi = self._owner._rmq_mqi
        handle = mqi.MessageHandle(qmgr)
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
            del self._cache[key]

    def _open_queue(self, qmgr: Any, headers: Any) -> Any:
        mqi = self._owner._rmq_mqi
        return mqi.Queue(qmgr, _od(mqi, headers["od"]), int(headers["oo"]))

    def _open_topic(self, qmgr: Any, headers: Any) -> Any:
        mqi = self._owner._rmq_mqi
        od = headers["od"]
        topic = mqi.Topic(
            qmgr, topic_name=od.get("ObjectName") or None, topic_string=od.get("ObjectString") or None
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
