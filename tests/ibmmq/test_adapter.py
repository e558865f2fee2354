"""ResilientWebSphereMQQueueManager and ResilientQueue on a healthy queue manager: the simulator, and a real
one when configured. Messages are counted by a separate plain MQI connection."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from mqtarget import MQTarget

from resilientmq import (
    AuthenticationError,
    DestinationError,
    MessageTooLargeError,
    ResilientQueue,
    ResilientWebSphereMQQueueManager,
)


def sync(mq: MQTarget) -> Any:
    return mq.mqi.PMO(Options=mq.C.MQPMO_SYNCPOINT)


def bodies(messages: list[tuple[bytes, Any]]) -> list[bytes]:
    return [body for body, _md in messages]


def test_the_classes_are_the_mqi_modules_classes(mq: MQTarget) -> None:
    queue = mq.queue()
    qm = mq.resilient()
    q = qm.open_queue(queue, mq.C.MQOO_OUTPUT)
    assert isinstance(qm, mq.mqi.QueueManager) and isinstance(qm, ResilientWebSphereMQQueueManager)
    assert isinstance(q, mq.mqi.Queue) and isinstance(q, ResilientQueue)
    assert type(mq.resilient()) is type(qm)  # one subclass per MQI module, reused
    # Code written for ibmmq keeps working on the resilient queue manager: a plain Queue on it.
    plain = mq.mqi.Queue(qm, queue, mq.C.MQOO_OUTPUT)
    plain.put(b"through a plain Queue")
    plain.close()
    q.put(b"through ResilientQueue")
    assert qm.flush(10)
    assert bodies(mq.drain(queue)) == [b"through a plain Queue", b"through ResilientQueue"]


def test_puts_arrive_in_order_with_their_descriptor_and_properties(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    queue = mq.queue()
    qm = mq.resilient()
    q = qm.open_queue(queue, c.MQOO_OUTPUT)
    sent = []
    for i in range(50):
        md = mqi.MD(
            Persistence=c.MQPER_PERSISTENT,
            Priority=4,
            CorrelId=b"corr-%d" % i,
            ReplyToQ=b"REPLY.Q",
            Format=c.MQFMT_STRING,
            MsgType=c.MQMT_DATAGRAM,
        )
        q.put(b"body %d" % i, md, properties={"colour": "red", "n": i, "flag": True})
        assert len(md.MsgId) == 24  # assigned when the put returned, before delivery
        sent.append(bytes(md.MsgId))
    assert qm.flush(10) is True
    assert qm.get_buffer_size() == 0 and qm.get_failed_messages() == []

    reader = mq.plain()
    rq = mqi.Queue(reader, queue, c.MQOO_INPUT_SHARED)
    for i in range(50):
        handle = mqi.MessageHandle(reader)
        md = mqi.MD()
        body = rq.get(None, md, mqi.GMO(Options=c.MQGMO_NO_WAIT, MsgHandle=handle.msg_handle))
        assert body == b"body %d" % i
        assert bytes(md.MsgId) == sent[i]
        assert md.CorrelId == (b"corr-%d" % i).ljust(24, b"\0")
        assert (md.Persistence, md.Priority, md.MsgType) == (c.MQPER_PERSISTENT, 4, c.MQMT_DATAGRAM)
        assert md.ReplyToQ.strip() == b"REPLY.Q" and md.Format.strip() == c.MQFMT_STRING.strip()
        assert handle.properties.get("colour") == "red"
        assert handle.properties.get("n") == i
        assert handle.properties.get("flag") is True
        handle.dlt()


def test_properties_of_a_message_handle_are_kept(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    queue = mq.queue()
    qm = mq.resilient()
    handle = mqi.MessageHandle(qm)
    handle.properties.set("region", "emea")
    handle.properties.set("attempt", 3, property_type=c.MQTYPE_INT64)
    q = qm.open_queue(queue, c.MQOO_OUTPUT)
    q.put(b"with handle", mqi.MD(), mqi.PMO(OriginalMsgHandle=handle.msg_handle))
    assert qm.flush(10)
    reader = mq.plain()
    inbox = mqi.MessageHandle(reader)
    rq = mqi.Queue(reader, queue, c.MQOO_INPUT_SHARED)
    assert rq.get(None, mqi.MD(), mqi.GMO(MsgHandle=inbox.msg_handle)) == b"with handle"
    assert (inbox.properties.get("region"), inbox.properties.get("attempt")) == ("emea", 3)


def test_get_browse_inquire_on_a_resilient_queue(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    queue = mq.queue()
    writer = mqi.Queue(mq.plain(), queue, c.MQOO_OUTPUT)
    for body in (b"one", b"two", b"three"):
        writer.put(body)
    qm = mq.resilient()
    q = qm.open_queue(queue, c.MQOO_INPUT_SHARED | c.MQOO_BROWSE | c.MQOO_INQUIRE)
    assert q.inquire(c.MQIA_CURRENT_Q_DEPTH) == 3
    assert q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_BROWSE_FIRST)) == b"one"
    assert q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_BROWSE_NEXT)) == b"two"
    assert [q.get() for _ in range(3)] == [b"one", b"two", b"three"]
    with pytest.raises(mqi.MQMIError) as info:  # the MQI's own answer, unchanged
        q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=100))
    assert info.value.reason == c.MQRC_NO_MSG_AVAILABLE
    assert qm.inquire(c.MQCA_Q_MGR_NAME).strip().decode() == mq.qmgr


def test_unit_of_work_commit_and_backout(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    queue = mq.queue()
    qm = mq.resilient()
    q = qm.open_queue(queue, c.MQOO_OUTPUT | c.MQOO_INPUT_SHARED)
    qm.begin()
    q.put(b"a", mqi.MD(), sync(mq))
    q.put(b"b", mqi.MD(), sync(mq))
    assert mq.drain(queue) == []  # not visible before commit
    qm.commit()
    assert bodies(mq.drain(queue)) == [b"a", b"b"]
    qm.begin()
    q.put(b"c", mqi.MD(), sync(mq))
    qm.backout()
    assert mq.drain(queue) == []
    mqi.Queue(mq.plain(), queue, c.MQOO_OUTPUT).put(b"x")
    assert q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_SYNCPOINT)) == b"x"
    qm.backout()
    ((body, md),) = mq.drain(queue)
    assert body == b"x" and md.BackoutCount == 1
    assert qm.stats()["uow_commits"] == 1


def test_put_batch_puts_all_in_one_unit_of_work(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    queue = mq.queue()
    qm = mq.resilient()
    batch = [b"b%d" % i for i in range(20)] + [(b"with md", mqi.MD(CorrelId=b"X"))]
    assert qm.put_batch(queue, batch) == 0
    got = mq.drain(queue)
    assert bodies(got) == [*batch[:-1], b"with md"]
    assert got[-1][1].CorrelId == b"X".ljust(24, b"\0")
    with pytest.raises(TypeError):
        qm.put_batch(queue, [object()])
    assert mq.drain(queue) == []  # a bad batch puts nothing
    assert c.MQPMO_SYNCPOINT  # (the helper uses syncpoint puts)


def test_request_and_reply(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    queue = mq.queue()
    requester = mq.resilient()
    responder = mq.resilient()
    requests = responder.open_queue(queue, c.MQOO_INPUT_SHARED)
    served = threading.Event()

    def serve() -> None:
        md = mqi.MD()
        body = requests.get(None, md, mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=10_000))
        responder.reply(md, b"pong:" + body)
        responder.flush(10)
        served.set()

    server = threading.Thread(target=serve)
    server.start()
    reply_md = mqi.MD()
    with mq.authorized("open the model queue SYSTEM.DEFAULT.MODEL.QUEUE"):
        assert requester.request(queue, b"ping", timeout=10, reply_md=reply_md) == b"pong:ping"
    assert reply_md.MsgType == c.MQMT_REPLY
    server.join(10)
    assert served.is_set()


def test_publish_and_durable_subscription(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    topic = f"dev/resilientmq/{uuid.uuid4().hex[:8]}"  # dev/: what a developer queue manager lets apps use
    qm = mq.resilient()
    with mq.authorized(f"subscribe to {topic}"):
        sub = qm.subscribe(topic, sub_name=f"RMQ.{uuid.uuid4().hex[:12]}", durable=True)
    try:
        for i in range(5):
            qm.publish(topic, b"pub %d" % i, mqi.MD(Persistence=c.MQPER_PERSISTENT))
        assert qm.flush(10)
        got = [sub.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=5000)) for _ in range(5)]
        assert got == [b"pub %d" % i for i in range(5)]
    finally:
        sub.close(remove=True)


def test_pcf_command(mq: MQTarget) -> None:
    c = mq.C
    queue = mq.queue()
    mq.mqi.Queue(mq.plain(), queue, c.MQOO_OUTPUT).put(b"one")
    qm = mq.resilient()
    with mq.authorized("run PCF commands"):
        (found,) = qm.pcf("MQCMD_INQUIRE_Q", {c.MQCA_Q_NAME: queue.encode()})
    assert found[c.MQIA_CURRENT_Q_DEPTH] == 1
    with pytest.raises(ValueError, match="MQCMD_"):
        qm.pcf("INQUIRE_Q")


def test_temporary_dynamic_queue(mq: MQTarget) -> None:
    mqi, c = mq.mqi, mq.C
    qm = mq.resilient()
    od = mqi.OD(ObjectName=b"SYSTEM.DEFAULT.MODEL.QUEUE", DynamicQName=b"RMQ.TEST.*")
    with mq.authorized("open the model queue SYSTEM.DEFAULT.MODEL.QUEUE"):
        q = qm.open_queue(od, c.MQOO_INPUT_EXCLUSIVE | c.MQOO_OUTPUT)
    assert q.get_name().startswith("RMQ.TEST.")
    q.put(b"to myself")
    assert q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=5000)) == b"to myself"


def test_unknown_queue_fails_fast_with_its_reason_code(mq: MQTarget) -> None:
    c = mq.C
    qm = mq.resilient()
    started = time.monotonic()
    with pytest.raises(DestinationError) as info:
        qm.open_queue("RMQ.NO.SUCH.QUEUE", c.MQOO_OUTPUT)
    assert info.value.reason == c.MQRC_UNKNOWN_OBJECT_NAME  # type: ignore[attr-defined]
    assert isinstance(info.value, mq.mqi.MQMIError)  # code catching MQMIError keeps working
    assert "2085" in str(info.value) and "MQRC_UNKNOWN_OBJECT_NAME" in str(info.value)
    with pytest.raises(DestinationError):
        qm.put1("RMQ.NO.SUCH.QUEUE", b"x")
    assert time.monotonic() - started < 5  # at once, not retried (a wide bound: CI machines are noisy)
    assert qm.stats()["connection_losses"] == 0 and qm.get_buffer_size() == 0


def test_message_too_big_ends_in_the_failed_list_without_retrying(sim_mq: MQTarget) -> None:
    queue = sim_mq.queue(max_msg_length=100)
    # Pipelined puts: a refusal is met by the sender (a synchronous put raises it: test_sync_puts.py).
    qm = sim_mq.resilient(async_puts=True)
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    started = time.monotonic()
    q.put(b"x" * 200)
    q.put(b"small")
    assert qm.flush(5) is False  # a message failed since the last flush
    assert time.monotonic() - started < 5  # at once, not retried (a wide bound: CI machines are noisy)
    (failed,) = qm.get_failed_messages()
    assert failed.error_type == "MessageTooLargeError" and "2030" in failed.reason
    assert failed.body == b"x" * 200
    assert bodies(sim_mq.drain(queue)) == [b"small"]
    with pytest.raises(MessageTooLargeError) as info:  # under syncpoint it raises at once
        q.put(b"y" * 200, sim_mq.mqi.MD(), sync(sim_mq))
    assert info.value.reason == sim_mq.C.MQRC_MSG_TOO_BIG_FOR_Q  # type: ignore[attr-defined]
    qm.backout()


def test_bad_credentials_fail_fast(sim_mq: MQTarget) -> None:
    assert sim_mq.sim is not None
    sim_mq.sim.require_credentials("app", "secret")
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        sim_mq.resilient(user="app", password="wrong")
    assert info.value.reason == sim_mq.C.MQRC_NOT_AUTHORIZED  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5  # at once, not retried (a wide bound: CI machines are noisy)
    assert sim_mq.sim.stats["connects"] == 0
    assert sim_mq.resilient(user="app", password="secret").is_connected
