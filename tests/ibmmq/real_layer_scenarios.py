"""Scenarios for the adapter on IBM's real ``ibmmq`` Python layer, its C layer bridged to the simulator.

Run as a script in a process of its own (``test_real_ibmmq_layer.py`` does): it installs the bridge,
imports the genuine ``ibmmq``, and prints ``OK <scenario>`` for each scenario that passed. Counting is
done through plain ``ibmmq`` connections.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import ibmmqc_bridge

from resilientmq import (
    FOREVER,
    DestinationError,
    ReconnectPolicy,
    ResilientQueue,
    ResilientWebSphereMQQueueManager,
    TransactionRolledBackError,
)
from resilientmq.testing import mqsim

sim = mqsim.Simulator("QM1")
ibmmqc_bridge.install(sim)
import ibmmq  # noqa: E402

C = ibmmq.CMQC
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=FOREVER)
ARGS = ("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
SCENARIOS: list[Callable[[], None]] = []


def scenario(fn: Callable[[], None]) -> Callable[[], None]:
    SCENARIOS.append(fn)
    return fn


def resilient(**kw: Any) -> ResilientWebSphereMQQueueManager:
    return ResilientWebSphereMQQueueManager(*ARGS, reconnect_policy=FAST, drain_timeout=5, **kw)


def drain(queue: str) -> list[tuple[bytes, Any, Any]]:
    """Every message on ``queue`` through a plain ibmmq connection: (body, MD, properties)."""
    qm = ibmmq.connect(*ARGS)
    q = ibmmq.Queue(qm, queue, C.MQOO_INPUT_SHARED)
    out = []
    while True:
        handle = ibmmq.MessageHandle(qm)
        md = ibmmq.MD()
        try:
            body = q.get(None, md, ibmmq.GMO(Options=C.MQGMO_NO_WAIT, MsgHandle=handle.msg_handle))
        except ibmmq.MQMIError as exc:
            assert exc.reason == C.MQRC_NO_MSG_AVAILABLE, exc
            break
        props = {}
        with contextlib.suppress(ibmmq.MQMIError):
            props["seq"] = handle.properties.get("seq")
        out.append((body, md, props))
    q.close()
    qm.disconnect()
    return out


@scenario
def drop_in_types() -> None:
    sim.define_queue("T.TYPES")
    qm = resilient(mqi="ibmmq")
    q = qm.open_queue("T.TYPES", C.MQOO_OUTPUT)
    assert isinstance(qm, ibmmq.QueueManager) and isinstance(q, ibmmq.Queue) and isinstance(q, ResilientQueue)
    qm.disconnect()


@scenario
def puts_across_outages() -> None:
    sim.define_queue("T.PUTS")
    qm = resilient()
    q = qm.open_queue("T.PUTS", C.MQOO_OUTPUT)
    for i in range(600):
        md = ibmmq.MD(Persistence=C.MQPER_PERSISTENT, CorrelId=b"c%d" % i)
        q.put(b"m%04d" % i, md, properties={"seq": i})
        if i == 100:
            sim.break_connections()
        elif i == 250:
            sim.stop()
        elif i == 400:
            sim.start()
    assert qm.flush(20)
    got = drain("T.PUTS")
    assert [b for b, _md, _p in got] == [b"m%04d" % i for i in range(600)]
    assert all(md.CorrelId.rstrip(b"\0") == b"c%d" % i for i, (_b, md, _p) in enumerate(got))
    assert all(p == {"seq": i} for i, (_b, _md, p) in enumerate(got))
    assert qm.stats()["reconnects"] >= 1
    qm.disconnect()


@scenario
def gets_across_a_break() -> None:
    sim.define_queue("T.GETS")
    writer = ibmmq.connect(*ARGS)
    ibmmq.Queue(writer, "T.GETS", C.MQOO_OUTPUT).put(b"one")
    qm = resilient()
    q = qm.open_queue("T.GETS", C.MQOO_INPUT_SHARED | C.MQOO_BROWSE)
    assert q.get(None, ibmmq.MD(), ibmmq.GMO(Options=C.MQGMO_BROWSE_FIRST)) == b"one"
    sim.break_connections()
    writer = ibmmq.connect(*ARGS)
    ibmmq.Queue(writer, "T.GETS", C.MQOO_OUTPUT).put(b"two")
    gmo = ibmmq.GMO(Options=C.MQGMO_BROWSE_NEXT)
    assert q.get(None, ibmmq.MD(), gmo) == b"two"  # the browse restarted and skipped "one"
    assert [q.get(), q.get()] == [b"one", b"two"]
    qm.disconnect()


@scenario
def unit_of_work_and_batch_replay() -> None:
    sim.define_queue("T.UOW")
    qm = resilient()
    q = qm.open_queue("T.UOW", C.MQOO_OUTPUT)
    qm.begin()
    q.put(b"lost", ibmmq.MD(), ibmmq.PMO(Options=C.MQPMO_SYNCPOINT))
    sim.break_connections()
    try:
        qm.commit()
        raise AssertionError("commit after a break must raise")
    except TransactionRolledBackError as exc:
        assert isinstance(exc, TransactionRolledBackError)
    sim.fail_next("MQPUT", C.MQRC_CONNECTION_BROKEN, skip=1)
    assert qm.put_batch("T.UOW", [b"a", b"b", b"c"]) == 1
    assert [b for b, _md, _p in drain("T.UOW")] == [b"a", b"b", b"c"]
    qm.disconnect()


@scenario
def permanent_errors_are_mqmierrors_too() -> None:
    qm = resilient()
    try:
        qm.open_queue("T.NOPE", C.MQOO_OUTPUT)
        raise AssertionError("unknown queue must raise")
    except DestinationError as exc:
        assert isinstance(exc, ibmmq.MQMIError) and exc.reason == C.MQRC_UNKNOWN_OBJECT_NAME
    qm.disconnect()


@scenario
def dynamic_queue_and_request_reply() -> None:
    sim.define_queue("T.REQ")
    requester, responder = resilient(), resilient()
    requests = responder.open_queue("T.REQ", C.MQOO_INPUT_SHARED)

    def serve() -> None:
        md = ibmmq.MD()
        body = requests.get(None, md, ibmmq.GMO(Options=C.MQGMO_WAIT, WaitInterval=10_000))
        responder.reply(md, b"re:" + body)
        responder.flush(10)

    server = threading.Thread(target=serve)
    server.start()
    assert requester.request("T.REQ", b"hi", timeout=10) == b"re:hi"
    server.join(10)
    od = ibmmq.OD(ObjectName=b"SYSTEM.DEFAULT.MODEL.QUEUE", DynamicQName=b"T.DYN.*")
    q = requester.open_queue(od, C.MQOO_INPUT_EXCLUSIVE)
    first = q.get_name()
    sim.break_connections()
    try:
        q.get()
    except ibmmq.MQMIError as exc:
        assert exc.reason == C.MQRC_NO_MSG_AVAILABLE
    assert q.get_name() != first and q.get_name().startswith("T.DYN.")
    requester.disconnect()
    responder.disconnect()


@scenario
def durable_subscription_resumes() -> None:
    qm = resilient()
    sub = qm.subscribe("t/prices", sub_name="T.SUB", durable=True)
    sim.stop()
    sim.start()
    publisher = ibmmq.connect(*ARGS)
    ibmmq.Topic(publisher, topic_string="t/prices").pub(b"p1", ibmmq.MD(Persistence=C.MQPER_PERSISTENT))
    assert sub.get(None, ibmmq.MD(), ibmmq.GMO(Options=C.MQGMO_WAIT, WaitInterval=5000)) == b"p1"
    qm.publish("t/prices", b"p2")
    assert sub.get(None, ibmmq.MD(), ibmmq.GMO(Options=C.MQGMO_WAIT, WaitInterval=5000)) == b"p2"
    sub.close(remove=True)
    qm.disconnect()


@scenario
def synchronous_puts_fill_the_md() -> None:
    sim.define_queue("T.SYNC")
    qm = resilient()
    q = qm.open_queue("T.SYNC", C.MQOO_OUTPUT)
    md, pmo = ibmmq.MD(), ibmmq.PMO()
    q.put(b"now", md, pmo)  # IBM's MD.pack()/unpack() round trip carries MQ's output fields back
    assert md.PutDate.strip() and md.PutTime.strip() and pmo.ResolvedQName.strip().startswith(b"T.SYNC")
    assert [b for b, _md, _p in drain("T.SYNC")] == [b"now"]  # there when put() returned
    q.close()
    # Nothing left open (IBM's PCFExecute needs a command server; the simulator's own PCF answers here).
    sim.mqi.PCFExecute(sim.mqi.connect(*ARGS)).MQCMD_DELETE_Q({C.MQCA_Q_NAME: b"T.SYNC"})
    qm.disconnect()


@scenario
def rfh2_matches_ibmmqs_class() -> None:
    sim.define_queue("T.RFH2")
    qm = ibmmq.connect(*ARGS)
    q = ibmmq.Queue(qm, "T.RFH2", C.MQOO_OUTPUT | C.MQOO_INPUT_SHARED)
    theirs = ibmmq.RFH2(Format=C.MQFMT_STRING, CodedCharSetId=1208, NameValueCCSID=1208)
    theirs.add_folder(b"<mcd><Msd>jms_text</Msd></mcd>")
    theirs.add_folder(b"<usr><colour>red</colour></usr>")
    md = ibmmq.MD(Format=C.MQFMT_RF_HEADER_2, Encoding=273)
    q.put_rfh2(b"payload", md, ibmmq.PMO(), [theirs])  # IBM's packing, big-endian
    ours = mqsim.RFH2()
    raw = ibmmq.Queue(qm, "T.RFH2", C.MQOO_BROWSE).get(
        None, ibmmq.MD(), ibmmq.GMO(Options=C.MQGMO_BROWSE_FIRST)
    )
    ours.unpack(raw, 273)
    assert ours.get() == theirs.get() and raw[ours["StrucLength"] :] == b"payload"
    mine, fresh = (
        cls(Format=C.MQFMT_STRING, CodedCharSetId=1208, NameValueCCSID=1208)
        for cls in (mqsim.RFH2, ibmmq.RFH2)
    )
    for folder in (b"<mcd><Msd>jms_text</Msd></mcd>", b"<usr><colour>red</colour></usr>"):
        mine.add_folder(folder)
        fresh.add_folder(folder)
    assert mine.pack() == fresh.pack() and mine.pack(273) == fresh.pack(273)  # byte for byte
    read = ibmmq.RFH2()
    read.unpack(mine.pack(273), 273)
    assert read.get() == mine.get()
    handle = ibmmq.MessageHandle(qm)
    handle.properties.set("colour", "blue")
    q.put(b"props", ibmmq.MD(Format=C.MQFMT_STRING), ibmmq.PMO(OriginalMsgHandle=handle.msg_handle))
    q.get()  # the RFH2 message put above
    got_md, headers = ibmmq.MD(), []
    assert q.get_rfh2(None, got_md, ibmmq.GMO(), headers) == b"props"  # the simulator's RFH2, IBM's parser
    assert headers[0].get_folders() == ["usr"] and b"<colour>blue</colour>" in headers[0]["usr"]
    q.close()
    qm.disconnect()


if __name__ == "__main__":
    wanted = set(sys.argv[1:])
    for fn in SCENARIOS:
        if not wanted or fn.__name__ in wanted:
            fn()
            print("OK", fn.__name__, flush=True)
