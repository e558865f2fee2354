"""Puts behave as MQ's while the queue manager is reachable: put(), put1() and publish() outside syncpoint
return once MQPUT completed, with MQ's output fields, and raise what MQ refuses. Only during an outage (or
while older buffered messages wait, or the queue cannot take them now) are they buffered; ``async_puts=True``
keeps the pipelined behaviour. Closing a queue releases every handle it caused.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mqtarget import MQTarget

from resilientmq import ConnectionState, DestinationError, MessageTooLargeError
from resilientmq.ibmmq.sender import Sender
from resilientmq.testing import wait_until


def bodies(messages: list[tuple[bytes, Any]]) -> list[bytes]:
    return [body for body, _md in messages]


def get_now(mq: MQTarget, queue: str) -> bytes:
    """One message got at once (no wait) by a plain connection: MQMIError 2033 when there is none."""
    mqi, c = mq.mqi, mq.C
    q = mqi.Queue(mq.plain(), queue, c.MQOO_INPUT_SHARED)
    try:
        return q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_NO_WAIT))  # type: ignore[no-any-return]
    finally:
        q.close()


class SenderGate:
    """A pause injected into the sender thread: it waits at ``transmit`` until ``release()``."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def paused_sender(monkeypatch: pytest.MonkeyPatch) -> Iterator[SenderGate]:
    pause = SenderGate()
    original = Sender.transmit

    def transmit(self: Sender, batch: Any, errors: Any) -> Any:
        pause.entered.set()
        assert pause.gate.wait(30), "the test never released the sender"
        return original(self, batch, errors)

    monkeypatch.setattr(Sender, "transmit", transmit)
    try:
        yield pause
    finally:
        pause.release()


def test_a_put_while_connected_is_done_when_put_returns(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    queue = mq.queue()
    qm = mq.resilient()
    q = qm.open_queue(queue, c.MQOO_OUTPUT)
    md, pmo = mqi.MD(), mqi.PMO()
    q.put(b"put", md, pmo)
    assert get_now(mq, queue) == b"put"  # plain ibmmq's put-then-get: the message is there (not 2033)
    assert len(md.PutDate.strip()) == 8 and len(md.PutTime.strip()) == 8  # MQ's output fields, as ibmmq's
    assert md.PutApplType != c.MQAT_NO_CONTEXT
    assert pmo.ResolvedQName.strip(b" \0").decode() == queue
    md1, pmo1 = mqi.MD(), mqi.PMO()
    qm.put1(queue, b"put1", md1, pmo1)
    assert get_now(mq, queue) == b"put1"
    assert md1.PutDate.strip() and pmo1.ResolvedQName.strip(b" \0").decode() == queue
    assert qm.get_buffer_size() == 0
    stats = qm.stats()
    assert stats["puts_direct"] == 2 and stats["accepted"] == stats["confirmed"] == 2


def test_a_publication_while_connected_is_delivered_when_publish_returns(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    topic = f"dev/resilientmq/{uuid.uuid4().hex[:8]}"
    qm = mq.resilient()
    with mq.authorized(f"subscribe to {topic}"):
        sub = qm.subscribe(topic)
    try:
        md = mqi.MD()
        qm.publish(topic, b"news", md, properties={"edition": 1})
        handle = mqi.MessageHandle(qm)
        got = sub.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_NO_WAIT, MsgHandle=handle.msg_handle))
        assert got == b"news" and handle.properties.get("edition") == 1
        assert md.PutDate.strip() and qm.get_buffer_size() == 0
    finally:
        sub.close()


def test_a_put_refused_while_connected_raises_what_ibmmq_raises(sim_mq: MQTarget) -> None:
    c = sim_mq.C
    queue = sim_mq.queue(max_msg_length=10)
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, c.MQOO_OUTPUT)
    with pytest.raises(sim_mq.mqi.MQMIError) as info:  # code written for ibmmq catches MQMIError
        q.put(b"x" * 11)
    assert info.value.reason == c.MQRC_MSG_TOO_BIG_FOR_Q and isinstance(info.value, MessageTooLargeError)
    with pytest.raises(DestinationError) as unknown:
        qm.put1("RMQ.NO.SUCH.QUEUE", b"x")
    assert unknown.value.reason == c.MQRC_UNKNOWN_OBJECT_NAME  # type: ignore[attr-defined]
    assert qm.get_buffer_size() == 0 and qm.get_failed_messages() == []  # raised, so not accepted
    q.put(b"fits")
    assert bodies(sim_mq.drain(queue)) == [b"fits"]


def test_a_put_the_queue_cannot_take_now_is_buffered_and_retried(sim_mq: MQTarget) -> None:
    assert sim_mq.sim is not None
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sim_mq.sim.set_inhibited(queue, put=True)
    q.put(b"one")  # MQRC_PUT_INHIBITED: buffered, as during an outage
    q.put(b"two")  # older messages wait: buffered behind them
    assert qm.get_buffer_size() == 2 and sim_mq.sim.depth(queue) == 0
    sim_mq.sim.set_inhibited(queue, put=False)
    assert qm.flush(10) is True
    assert bodies(sim_mq.drain(queue)) == [b"one", b"two"]


def test_while_older_messages_wait_a_put_is_buffered_behind_them(
    sim_mq: MQTarget, paused_sender: SenderGate
) -> None:
    sim = sim_mq.sim
    assert sim is not None
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sim.stop()
    q.put(b"during 1")  # meets the outage: buffered
    q.put(b"during 2")
    sim.start()
    assert wait_until(lambda: qm.connection_state is ConnectionState.CONNECTED, what="the reconnection")
    assert paused_sender.entered.wait(10)  # the sender holds the two, paused before MQPUT
    q.put(b"after")  # connected, but older messages still wait: buffered behind them, not put first
    assert qm.get_buffer_size() == 3 and sim.depth(queue) == 0
    paused_sender.release()
    assert qm.flush(10) is True
    assert bodies(sim_mq.drain(queue)) == [b"during 1", b"during 2", b"after"]
    q.put(b"then")  # nothing waits any more: at once again
    assert get_now(sim_mq, queue) == b"then"


def test_async_puts_keeps_the_pipelined_puts(sim_mq: MQTarget, paused_sender: SenderGate) -> None:
    sim = sim_mq.sim
    assert sim is not None
    queue = sim_mq.queue()
    qm = sim_mq.resilient(async_puts=True)
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    md = sim_mq.mqi.MD()
    q.put(b"pipelined", md)  # returns once accepted; the sender thread puts it
    assert len(md.MsgId) == 24 and qm.get_buffer_size() == 1 and sim.depth(queue) == 0
    paused_sender.release()
    assert qm.flush(10) is True
    assert bodies(sim_mq.drain(queue)) == [b"pipelined"]
    assert qm.stats()["puts_direct"] == 0 and qm.stats()["confirmed"] == 1


def _delete(mq: MQTarget, queue: str) -> None:
    mq.mqi.PCFExecute(mq.plain()).MQCMD_DELETE_Q({mq.C.MQCA_Q_NAME: queue.encode()})


@pytest.mark.parametrize("how", ["sync", "async_puts", "buffered during an outage", "put_batch"])
def test_closing_a_queue_releases_every_handle_so_it_can_be_deleted(sim_mq: MQTarget, how: str) -> None:
    sim = sim_mq.sim
    assert sim is not None
    c = sim_mq.C
    plain_queue = sim_mq.queue()
    plain = sim_mq.mqi.Queue(sim_mq.plain(), plain_queue, c.MQOO_OUTPUT)  # what plain ibmmq does
    plain.put(b"x")
    plain.close()
    sim_mq.drain(plain_queue)
    _delete(sim_mq, plain_queue)
    assert plain_queue not in sim.queue_names()

    queue = sim_mq.queue()
    qm = sim_mq.resilient(async_puts=how == "async_puts")
    if how == "put_batch":
        qm.put_batch(queue, [b"a", b"b"])
    else:
        q = qm.open_queue(queue, c.MQOO_OUTPUT)
        if how == "buffered during an outage":
            sim.stop()
        q.put(b"a")
        q.put(b"b")
        sim.start()
        assert qm.flush(10) is True  # delivered on the sender's connection (for all but "sync")
        q.close()
    assert bodies(sim_mq.drain(queue)) == [b"a", b"b"]
    _delete(sim_mq, queue)  # MQRCCF_OBJECT_OPEN (4004) while any handle of ours is left
    assert queue not in sim.queue_names()


def test_a_programming_error_in_the_sender_is_never_a_delivery(
    sim_mq: MQTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    original: Callable[..., None] = Sender._send

    def send(self: Sender, envelope: Any) -> None:
        if envelope.body == b"poison":
            raise AttributeError("CMQC has no such constant")  # a bug, not an MQ answer
        original(self, envelope)

    monkeypatch.setattr(Sender, "_send", send)
    assert sim_mq.sim is not None
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sim_mq.sim.stop()  # so that the three are buffered and go through the sender, in one batch
    for body in (b"before", b"poison", b"after"):
        q.put(body)
    sim_mq.sim.start()
    assert qm.flush(10) is False  # not True: a message failed
    (failed,) = qm.get_failed_messages()
    assert failed.body == b"poison" and "AttributeError" in failed.reason
    assert bodies(sim_mq.drain(queue)) == [b"before", b"after"]  # each once; the rest went on
    assert qm.stats()["confirmed"] == 2


def test_a_backed_out_batch_is_replayed_without_a_reconnect(sim_mq: MQTarget) -> None:
    assert sim_mq.sim is not None
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    # MQ's own client reconnect backed the unit of work out; the connection itself is fine.
    sim_mq.sim.fail_next("MQCMIT", sim_mq.C.MQRC_BACKED_OUT)
    assert qm.put_batch(queue, [b"x", b"y"]) == 1
    assert bodies(sim_mq.drain(queue)) == [b"x", b"y"]
    stats = qm.stats()
    assert (stats["connection_losses"], stats["reconnects"], stats["batch_replays"]) == (0, 0, 1)


def test_a_long_property_of_a_handle_is_kept_when_the_put_is_buffered(sim_mq: MQTarget) -> None:
    sim = sim_mq.sim
    assert sim is not None
    mqi, c = sim_mq.mqi, sim_mq.C
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, c.MQOO_OUTPUT)
    handle = mqi.MessageHandle(qm)
    handle.properties.set("note", "n" * 300)  # longer than a property buffer's default 64 bytes: 2469
    handle.properties.set("after", "read too")
    sim.stop()
    q.put(b"buffered", mqi.MD(), mqi.PMO(OriginalMsgHandle=handle.msg_handle))  # its properties read now
    sim.start()
    assert qm.flush(10) is True
    reader = sim_mq.plain()
    inbox = mqi.MessageHandle(reader)
    rq = mqi.Queue(reader, queue, c.MQOO_INPUT_SHARED)
    assert rq.get(None, mqi.MD(), mqi.GMO(MsgHandle=inbox.msg_handle)) == b"buffered"
    assert inbox.properties.get("note", max_value_length=300) == "n" * 300
    assert inbox.properties.get("after") == "read too"
