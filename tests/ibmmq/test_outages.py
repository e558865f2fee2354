"""The adapter across queue manager outages, on the simulator (stop/start, quiesce, broken connections,
injected reason codes). Every count comes from a separate plain MQI connection to the simulator."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from mqtarget import MQTarget

from resilientmq import (
    FOREVER,
    ConnectionLostError,
    ConnectionState,
    DestinationError,
    OutcomeUnknownError,
    ReconnectFailedError,
    ReconnectPolicy,
    ResilientWebSphereMQQueueManager,
    TransactionRolledBackError,
)
from resilientmq.testing import mqsim, wait_until


def bodies(messages: list[tuple[bytes, Any]]) -> list[bytes]:
    return [body for body, _md in messages]


def persistent(mq: MQTarget) -> Any:
    return mq.mqi.MD(Persistence=mq.C.MQPER_PERSISTENT)


def sync(mq: MQTarget) -> Any:
    return mq.mqi.PMO(Options=mq.C.MQPMO_SYNCPOINT)


def sim_of(mq: MQTarget) -> mqsim.Simulator:
    assert mq.sim is not None
    return mq.sim


# -- puts -----------------------------------------------------------------------------------------------
def test_thousands_of_puts_across_restarts_and_broken_connections_lose_nothing(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient(buffer_max_messages=5000)
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sent = [b"msg-%05d" % i for i in range(3000)]
    held_while_down = []

    def reconnected(before: int) -> Callable[[], bool]:
        return lambda: qm.stats()["reconnects"] > before and qm.connection_state is ConnectionState.CONNECTED

    for i, body in enumerate(sent):
        q.put(body, persistent(sim_mq))
        phase = i % 500
        if phase == 100:
            before = qm.stats()["reconnects"]
            sim.break_connections()
        elif phase == 101:  # a put after the break: the sender meets the broken connection and reconnects
            assert wait_until(reconnected(before), what="the reconnection after the break")
        elif phase == 250:
            before = qm.stats()["reconnects"]
            sim.stop()
        elif phase == 251:
            assert wait_until(lambda: qm.connection_state is not ConnectionState.CONNECTED, what="the stop")
        elif phase == 400:
            held_while_down.append(qm.get_buffer_size())  # nothing put since the stop could be delivered
            sim.start()
        elif phase == 401:
            assert wait_until(reconnected(before), what="the reconnection after the restart")
    assert qm.flush(30) is True
    got = bodies(sim_mq.drain(queue))
    lost = set(sent) - set(got)
    assert lost == set()
    assert got == sent  # exactly once, and in the order put
    assert all(held >= 150 for held in held_while_down), held_while_down
    stats = qm.stats()
    assert stats["reconnects"] == stats["connection_losses"] == 12
    assert stats["confirmed"] == 3000 and stats["buffered"] == 0
    assert stats["failed"] == 0 and qm.get_failed_messages() == []


def test_many_threads_put_while_connections_break_at_random(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient(buffer_max_messages=5000)
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    producers, per_producer = 3, 1000
    stop_chaos = threading.Event()
    rng = random.Random(7)

    def chaos() -> None:
        while not stop_chaos.wait(rng.uniform(0.002, 0.02)):
            if rng.random() < 0.2:
                sim.stop()
                stop_chaos.wait(0.02)
                sim.start()
            else:
                sim.break_connections()

    def produce(p: int) -> None:
        for i in range(per_producer):
            q.put(b"p%d-%04d" % (p, i), persistent(sim_mq))

    chaos_thread = threading.Thread(target=chaos)
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    chaos_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop_chaos.set()
    chaos_thread.join(10)
    sim.start()
    assert qm.flush(30) is True
    got = bodies(sim_mq.drain(queue))
    for p in range(producers):
        mine = [b for b in got if b.startswith(b"p%d-" % p)]
        assert mine == [b"p%d-%04d" % (p, i) for i in range(per_producer)]  # all, once, in order
    assert len(got) == producers * per_producer
    assert qm.stats()["connection_losses"] >= 1


def test_put_reported_broken_after_it_happened_is_sent_again_at_least_once(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    # MQ: "for client applications, the call may have completed although 2009 was returned".
    sim.fail_next("MQPUT", sim_mq.C.MQRC_CONNECTION_BROKEN, after=True)
    md = persistent(sim_mq)
    q.put(b"maybe twice", md)
    q.put(b"after")
    assert qm.flush(10)
    got = sim_mq.drain(queue)
    assert bodies(got) == [b"maybe twice", b"maybe twice", b"after"]
    assert got[0][1].MsgId == got[1][1].MsgId == md.MsgId  # a duplicate a consumer can recognise


def test_puts_buffer_while_unreachable_and_disconnect_flushes(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sim.stop()
    for i in range(100):
        q.put(b"%d" % i, persistent(sim_mq))
    assert qm.flush(0.2) is False and qm.get_buffer_size() == 100
    threading.Timer(0.2, sim.start).start()
    qm.disconnect()  # flushes (drain_timeout) before disconnecting
    assert bodies(sim_mq.drain(queue)) == [b"%d" % i for i in range(100)]


def test_quiesce_then_restart_loses_nothing(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    for i in range(200):
        q.put(b"%03d" % i, persistent(sim_mq))
        if i == 50:
            sim.quiesce()  # the sender's puts ask to fail if quiescing: 2161, then reconnect attempts
        if i == 150:
            sim.start()
    assert qm.flush(10)
    assert bodies(sim_mq.drain(queue)) == [b"%03d" % i for i in range(200)]


def test_failover_between_instances_of_a_multi_instance_queue_manager(sim_mq: MQTarget) -> None:
    sim = mqsim.Simulator("QM1", addresses=["10.0.0.1(1414)", "10.0.0.2(1414)"])
    sim.define_queue("HA.Q")
    mq = MQTarget(sim.mqi, sim, "QM1", "DEV.APP.SVRCONN", "10.0.0.1(1414)")
    try:
        qm = ResilientWebSphereMQQueueManager(
            "QM1", "DEV.APP.SVRCONN", "10.0.0.1(1414),10.0.0.2(1414)", mqi=sim.mqi, reconnect_policy=mq_fast()
        )
        q = qm.open_queue("HA.Q", sim.mqi.CMQC.MQOO_OUTPUT)
        for i in range(100):
            q.put(b"%d" % i, persistent(mq))
            if i == 40:
                sim.failover("10.0.0.2(1414)")
        assert qm.flush(10)
        assert qm._rmq.supervisor.endpoint == "10.0.0.2(1414)"
        mq.conn = "10.0.0.2(1414)"
        assert bodies(mq.drain("HA.Q")) == [b"%d" % i for i in range(100)]
        qm.disconnect()
    finally:
        mq.close()


def mq_fast() -> ReconnectPolicy:
    return ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=FOREVER)


def test_queue_full_is_retried_until_there_is_room(sim_mq: MQTarget) -> None:
    queue = sim_mq.queue(max_depth=5)
    qm = sim_mq.resilient(reconnect_policy=ReconnectPolicy(initial_delay=0.01, max_delay=0.02))
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    for i in range(12):
        q.put(b"%02d" % i)
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(got) < 12 and time.monotonic() < deadline:
        got += bodies(sim_mq.drain(queue, wait_ms=50))
    assert got == [b"%02d" % i for i in range(12)]
    assert qm.flush(5) and qm.get_failed_messages() == []


def test_a_message_that_expires_while_buffered_is_not_delivered(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sim.stop()
    q.put(b"expires", sim_mq.mqi.MD(Expiry=1))  # a tenth of a second
    q.put(b"lasts", persistent(sim_mq))
    assert wait_until(
        lambda: time.time() - qm._rmq.buffer.peek(0, 1)[0].created_at > 0.2, what="the expiry to pass"
    )
    sim.start()
    assert qm.flush(10) is False  # one message failed
    (failed,) = qm.get_failed_messages()
    assert failed.body == b"expires" and "expired" in failed.reason
    assert bodies(sim_mq.drain(queue)) == [b"lasts"]


def test_queue_deleted_during_an_outage_fails_its_messages_and_others_go_on(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    doomed, fine = sim_mq.queue(), sim_mq.queue()
    qm = sim_mq.resilient()
    qd, qf = qm.open_queue(doomed, sim_mq.C.MQOO_OUTPUT), qm.open_queue(fine, sim_mq.C.MQOO_OUTPUT)
    sim.stop()
    qd.put(b"lost cause", persistent(sim_mq))
    qf.put(b"gets through", persistent(sim_mq))
    sim.delete_queue(doomed)
    sim.start()
    assert qm.flush(10) is False
    (failed,) = qm.get_failed_messages()
    assert failed.error_type == "DestinationError" and "2085" in failed.reason
    assert bodies(sim_mq.drain(fine)) == [b"gets through"]
    with pytest.raises(DestinationError):  # the next put fails at once: the queue is gone
        qd.put(b"again")


# -- gets -----------------------------------------------------------------------------------------------
def test_a_consumer_gets_every_message_across_outages_exactly_once(sim_mq: MQTarget) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    sim = sim_of(sim_mq)
    queue = sim_mq.queue(default_persistence=True)
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, c.MQOO_INPUT_SHARED)
    total = 600
    received: list[bytes] = []
    rolled_back = 0
    failures: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        try:
            get_all()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        done.set()

    def get_all() -> None:
        nonlocal rolled_back
        while len(received) < total:
            try:
                body = q.get(
                    None, mqi.MD(), mqi.GMO(Options=c.MQGMO_WAIT | c.MQGMO_SYNCPOINT, WaitInterval=200)
                )
                qm.commit()
            except TransactionRolledBackError:
                rolled_back += 1  # backed out: the message is on the queue again, and comes back
                continue
            except mqi.MQMIError as exc:
                if exc.reason == c.MQRC_NO_MSG_AVAILABLE:
                    continue
                raise
            received.append(body)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for chunk in range(6):
        writer = mqi.Queue(sim_mq.plain(), queue, c.MQOO_OUTPUT)
        for i in range(100):
            writer.put(b"%d-%03d" % (chunk, i))
        if chunk == 5:
            break  # the consumer may finish now: an outage nobody uses the connection during goes unseen
        wanted = 50 + chunk * 100

        def got_going(wanted: int = wanted) -> bool:
            return len(received) >= wanted

        assert wait_until(got_going, what="the consumer to get going")
        if chunk % 2:
            sim.stop()
            assert wait_until(lambda: qm.connection_state is not ConnectionState.CONNECTED, what="the loss")
            sim.start()
        else:
            sim.break_connections()
    assert done.wait(30), f"received {len(received)} of {total}"
    consumer.join(5)
    assert failures == []
    expected = [b"%d-%03d" % (chunk, i) for chunk in range(6) for i in range(100)]
    assert sorted(received) == expected  # every message, none twice
    assert sim_mq.drain(queue) == []
    assert qm.stats()["reconnects"] >= 5


def test_a_waiting_get_survives_a_restart(sim_mq: MQTarget) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, c.MQOO_INPUT_SHARED)
    result: list[bytes] = []
    getter = threading.Thread(
        target=lambda: result.append(
            q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=20_000))
        )
    )
    started = time.monotonic()
    getter.start()
    assert wait_until(lambda: sim.waiting_calls == 1, what="the get to wait")
    sim.stop()
    assert wait_until(lambda: qm.connection_state is not ConnectionState.CONNECTED, what="the loss")
    sim.start()
    assert wait_until(lambda: sim.waiting_calls == 1, what="the get to wait on the new connection")
    mqi.Queue(sim_mq.plain(), queue, c.MQOO_OUTPUT).put(b"after the restart")
    getter.join(10)
    assert result == [b"after the restart"]
    assert time.monotonic() - started < 10
    assert qm.stats()["operation_retries"] >= 1 and qm.stats()["objects_reopened"] >= 1


def test_browse_restarts_from_the_first_message_skipping_those_seen(sim_mq: MQTarget) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    writer = mqi.Queue(sim_mq.plain(), queue, c.MQOO_OUTPUT)
    for i in range(6):
        writer.put(b"m%d" % i)
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, c.MQOO_BROWSE)

    def browse(option: int) -> bytes:
        return q.get(None, mqi.MD(), mqi.GMO(Options=option))

    seen = [browse(c.MQGMO_BROWSE_FIRST), browse(c.MQGMO_BROWSE_NEXT), browse(c.MQGMO_BROWSE_NEXT)]
    sim.break_connections()
    seen += [browse(c.MQGMO_BROWSE_NEXT) for _ in range(3)]
    assert seen == [b"m%d" % i for i in range(6)]
    with pytest.raises(mqi.MQMIError) as info:
        browse(c.MQGMO_BROWSE_NEXT)
    assert info.value.reason == c.MQRC_NO_MSG_AVAILABLE
    assert sim.depth(queue) == 6  # browsing took nothing


def test_operation_timeout_bounds_the_wait_for_a_reconnection(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient(operation_timeout=0.3)
    q = qm.open_queue(queue, sim_mq.C.MQOO_INPUT_SHARED)
    sim.stop()
    started = time.monotonic()
    with pytest.raises(ConnectionLostError, match="operation_timeout"):
        q.get()
    assert 0.25 < time.monotonic() - started < 10  # bounded by operation_timeout, not the reconnect policy


def test_calls_fail_once_the_reconnect_policy_gives_up(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient(
        reconnect_policy=ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3)
    )
    q = qm.open_queue(queue, sim_mq.C.MQOO_INPUT_SHARED | sim_mq.C.MQOO_OUTPUT)
    sim.stop()
    with pytest.raises(ReconnectFailedError):
        q.get()
    assert qm.connection_state is ConnectionState.FAILED
    with pytest.raises(ReconnectFailedError):
        q.put(b"refused: the client failed for good")


# -- units of work --------------------------------------------------------------------------------------
def test_commit_after_a_break_raises_rolled_back_and_nothing_was_committed(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    qm.begin()
    q.put(b"a", sim_mq.mqi.MD(), sync(sim_mq))
    q.put(b"b", sim_mq.mqi.MD(), sync(sim_mq))
    sim.break_connections()
    with pytest.raises(TransactionRolledBackError, match="backed the unit of work out") as info:
        qm.commit()
    assert isinstance(info.value, sim_mq.mqi.MQMIError)  # MQCMIT on the broken connection: 2009
    assert info.value.reason == sim_mq.C.MQRC_CONNECTION_BROKEN  # type: ignore[attr-defined]
    assert sim_mq.drain(queue) == []
    qm.begin()  # the next unit of work runs on the new connection
    q.put(b"c", sim_mq.mqi.MD(), sync(sim_mq))
    qm.commit()
    assert bodies(sim_mq.drain(queue)) == [b"c"]
    assert qm.stats()["uow_rolled_back"] == 1 and qm.stats()["uow_commits"] == 1


def test_commit_after_a_reconnect_no_call_of_the_unit_saw_is_mqs_backed_out(sim_mq: MQTarget) -> None:
    """The break was met outside the unit of work and the client reconnected: the unit of work is gone,
    and ``except MQMIError`` code sees what MQCMIT answers for a backed-out unit (warning, 2003)."""
    sim = sim_of(sim_mq)
    queue, other = sim_mq.queue(), sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    outside = qm.open_queue(other, sim_mq.C.MQOO_OUTPUT)
    qm.begin()
    q.put(b"a", sim_mq.mqi.MD(), sync(sim_mq))
    sim.break_connections()
    outside.put(b"outside the unit of work")  # meets the break: the client reconnects
    wait_until(lambda: qm.stats()["reconnects"] == 1, 10, what="the reconnection")
    with pytest.raises(TransactionRolledBackError, match="backed the unit of work out") as info:
        qm.commit()
    assert isinstance(info.value, sim_mq.mqi.MQMIError)
    assert (info.value.comp, info.value.reason) == (  # type: ignore[attr-defined]
        sim_mq.C.MQCC_WARNING,
        sim_mq.C.MQRC_BACKED_OUT,
    )
    assert sim_mq.drain(queue) == []
    assert qm.flush(10) is True
    assert bodies(sim_mq.drain(other)) == [b"outside the unit of work"]


def test_a_syncpoint_put_after_a_break_raises_at_once(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    qm.begin()
    q.put(b"a", sim_mq.mqi.MD(), sync(sim_mq))
    sim.break_connections()
    with pytest.raises(TransactionRolledBackError) as info:
        q.put(b"b", sim_mq.mqi.MD(), sync(sim_mq))
    assert info.value.reason == sim_mq.C.MQRC_CONNECTION_BROKEN  # type: ignore[attr-defined]
    with pytest.raises(TransactionRolledBackError):
        qm.commit()
    assert sim_mq.drain(queue) == []


def test_the_first_syncpoint_call_of_a_unit_of_work_waits_out_an_outage(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sim.break_connections()
    qm.begin()
    q.put(b"first of its unit of work", sim_mq.mqi.MD(), sync(sim_mq))  # nothing to lose yet: carries on
    qm.commit()
    assert bodies(sim_mq.drain(queue)) == [b"first of its unit of work"]


def test_put_batch_replays_a_batch_broken_mid_way_exactly_once(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    batch = [b"item-%d" % i for i in range(5)]
    sim.fail_next("MQPUT", sim_mq.C.MQRC_CONNECTION_BROKEN, skip=2)  # the third put breaks the connection
    assert qm.put_batch(queue, batch) == 1
    got = sim_mq.drain(queue)
    assert bodies(got) == batch  # each exactly once: the first attempt was backed out whole
    assert all(bytes(md.MsgId).startswith(b"RMQ") for _body, md in got)
    stats = qm.stats()
    assert (stats["batch_replays"], stats["uow_rolled_back"], stats["uow_commits"]) == (1, 1, 1)


def test_put_batch_replays_when_the_commit_meets_a_broken_connection(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    sim.fail_next("MQCMIT", sim_mq.C.MQRC_CONNECTION_BROKEN)
    assert qm.put_batch(queue, [b"x", b"y"]) == 1
    assert bodies(sim_mq.drain(queue)) == [b"x", b"y"]


def test_an_interrupted_commit_raises_outcome_unknown_and_is_not_replayed(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    c = sim_mq.C
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    sim.fail_next("MQCMIT", c.MQRC_CALL_INTERRUPTED, after=True)  # committed, but the client cannot know
    with pytest.raises(OutcomeUnknownError) as info:
        qm.put_batch(queue, [b"x", b"y"])
    assert info.value.reason == c.MQRC_CALL_INTERRUPTED  # type: ignore[attr-defined]
    assert isinstance(info.value, sim_mq.mqi.MQMIError)
    assert bodies(sim_mq.drain(queue)) == [b"x", b"y"]  # once: a replay would have doubled them
    assert qm.stats()["uow_outcome_unknown"] == 1 and qm.stats()["batch_replays"] == 0


def test_mq_client_reconnect_backs_out_the_unit_of_work_and_commit_says_so(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient(mq_client_reconnect=True)
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    qm.begin()
    q.put(b"in the unit of work", sim_mq.mqi.MD(), sync(sim_mq))
    sim.break_connections()  # MQ's own client reconnect hides the break...
    with pytest.raises(TransactionRolledBackError) as info:  # ...but not the backed-out unit of work
        qm.commit()
    assert info.value.reason == sim_mq.C.MQRC_BACKED_OUT  # type: ignore[attr-defined]
    q.put(b"outside")
    assert qm.flush(5)
    assert bodies(sim_mq.drain(queue)) == [b"outside"]
    assert qm.stats()["reconnects"] == 0  # MQ reconnected; the supervisor did not need to


# -- objects restored after a reconnect ------------------------------------------------------------------
def test_durable_subscription_resumes_and_gets_what_was_published_meanwhile(sim_mq: MQTarget) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    sim = sim_of(sim_mq)
    qm = sim_mq.resilient()
    sub = qm.subscribe("orders/eu", sub_name="ORDERS.EU", durable=True)
    sim.stop()
    sim.start()
    publisher = mqi.Topic(sim_mq.plain(), topic_string="orders/eu")
    for i in range(3):
        publisher.pub(b"order %d" % i, persistent(sim_mq))
    gmo = mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=5000)
    assert [sub.get(None, mqi.MD(), gmo) for _ in range(3)] == [b"order %d" % i for i in range(3)]
    qm.publish("orders/eu", b"own publication", persistent(sim_mq))
    sim.break_connections()
    assert sub.get(None, mqi.MD(), gmo) == b"own publication"
    sub.close(remove=True)


def test_a_reconnect_that_breaks_while_reopening_reopens_everything_on_the_next_attempt(
    sim_mq: MQTarget,
) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, c.MQOO_INPUT_SHARED)  # reopened first on a new connection...
    sub = qm.subscribe("rmq/reopen")  # ...then this one
    sim.fail_next("MQSUB", c.MQRC_CONNECTION_BROKEN)  # the first reconnection dies while resubscribing
    sim.break_connections()
    mqi.Queue(sim_mq.plain(), queue, c.MQOO_OUTPUT).put(b"after two attempts")
    gmo = mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=5000)
    assert q.get(None, mqi.MD(), gmo) == b"after two attempts"  # the queue is open on the live connection
    qm.publish("rmq/reopen", b"published")
    assert sub.get(None, mqi.MD(), gmo) == b"published"
    assert qm.stats()["reconnects"] == 1 and qm.stats()["connect_attempts"] >= 3


def test_temporary_dynamic_queue_is_recreated_under_a_new_name(sim_mq: MQTarget) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    sim = sim_of(sim_mq)
    qm = sim_mq.resilient()
    renamed: list[tuple[str, str]] = []
    od = mqi.OD(ObjectName=b"SYSTEM.DEFAULT.MODEL.QUEUE", DynamicQName=b"APP.TEMP.*")
    q = qm.open_queue(od, c.MQOO_INPUT_EXCLUSIVE, on_recreated=lambda old, new: renamed.append((old, new)))
    first = q.get_name()
    sim.break_connections()
    with pytest.raises(mqi.MQMIError) as info:
        q.get()  # reconnects, re-creates the queue (empty), and answers for the new one
    assert info.value.reason == c.MQRC_NO_MSG_AVAILABLE
    second = q.get_name()
    assert second != first and second.startswith("APP.TEMP.")
    assert renamed == [(first, second)] and second in sim.queue_names() and first not in sim.queue_names()
    assert qm.stats()["dynamic_queues_recreated"] == 1


def test_request_is_sent_again_when_a_reconnect_recreates_the_reply_queue(sim_mq: MQTarget) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    requester = sim_mq.resilient()
    responder = sim_mq.resilient()
    requests = responder.open_queue(queue, c.MQOO_INPUT_SHARED)
    seen: list[bytes] = []

    def serve() -> None:
        while len(seen) < 2:
            md = mqi.MD()
            body = requests.get(None, md, mqi.GMO(Options=c.MQGMO_WAIT, WaitInterval=10_000))
            seen.append(bytes(md.ReplyToQ).strip())
            if len(seen) == 1:
                sim.break_connections()  # the first reply queue dies before an answer is sent
            else:
                responder.reply(md, b"pong:" + body)
                responder.flush(10)

    server = threading.Thread(target=serve)
    server.start()
    assert requester.request(queue, b"ping", timeout=10) == b"pong:ping"
    server.join(10)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert requester.stats()["requests_resent"] == 1


def test_pcf_inquire_and_set_are_retried_after_a_break(sim_mq: MQTarget) -> None:
    c = sim_mq.C
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    qm = sim_mq.resilient()
    q = qm.open_queue(queue, c.MQOO_INQUIRE | c.MQOO_SET)
    assert qm.pcf("MQCMD_PING_Q_MGR") == []
    sim.break_connections()
    (found,) = qm.pcf("MQCMD_INQUIRE_Q", {c.MQCA_Q_NAME: queue.encode()})
    assert found[c.MQIA_CURRENT_Q_DEPTH] == 0
    sim.break_connections()
    q.set(c.MQIA_INHIBIT_PUT, c.MQQA_PUT_INHIBITED)
    sim.break_connections()
    assert q.inquire(c.MQIA_INHIBIT_PUT) == c.MQQA_PUT_INHIBITED
    sim.break_connections()
    assert qm.inquire(c.MQCA_Q_MGR_NAME).strip() == b"QM1"
    assert qm.stats()["reconnects"] >= 4 and qm.stats()["operation_retries"] >= 3


def test_connect_in_the_background_while_the_queue_manager_is_down(sim_mq: MQTarget) -> None:
    sim = sim_of(sim_mq)
    queue = sim_mq.queue()
    sim.stop()
    with pytest.raises(ReconnectFailedError):  # connecting in the constructor gives up after its attempts
        sim_mq.resilient()
    qm = sim_mq.resilient(background_connect=True)
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)  # opened once connected
    q.put(b"early", persistent(sim_mq))
    sim.start()
    assert qm.flush(10)
    assert bodies(sim_mq.drain(queue)) == [b"early"]
