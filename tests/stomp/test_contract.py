"""The STOMP contract, run against ActiveMQ and RabbitMQ's STOMP plugin (real brokers, through a ChaosProxy).

Every count comes from an independent plain stomp.py consumer, not from the client's own counters.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import stomp
from stomp_support import BrokerTarget, Collector, consume_all, wait_until

from resilientmq import (
    ClientClosedError,
    ConnectionState,
    InvalidMessageError,
    ReconnectFailedError,
    ReconnectPolicy,
    TransactionRolledBackError,
)
from resilientmq.stomp import (
    MESSAGE_ID_HEADER,
    DeduplicatingListener,
    ResilientActiveMQConnection,
    StompAuthenticationError,
    StompConnectFailedError,
)
from resilientmq.stomp.session import StompSession


def test_is_a_drop_in_stomp_connection(target: BrokerTarget) -> None:
    conn = target.resilient()
    assert isinstance(conn, stomp.Connection)
    collector = Collector()
    conn.set_listener("app", collector)  # the stomp.py way
    target.connect(conn)
    assert conn.is_connected()
    dest = target.destination()
    conn.subscribe(dest, id="1", ack="client-individual")
    conn.send(dest, "hello", headers={"app-header": "x"})
    assert collector.wait_for(1, 10)
    frame = collector.frames[0]
    assert frame.body == "hello" and frame.headers["app-header"] == "x"
    assert len(frame.headers[MESSAGE_ID_HEADER]) == 32
    conn.ack(frame.headers["message-id"], "1")
    conn.disconnect()
    assert conn.connection_state is ConnectionState.DISCONNECTED
    conn.close()


def test_messages_are_confirmed_in_order_and_counted_by_an_independent_consumer(target: BrokerTarget) -> None:
    conn = target.resilient()
    target.connect(conn)
    dest = target.destination()
    bodies = [f"m{i}" for i in range(3000)]
    for body in bodies[:1000]:
        conn.send(dest, body)
    conn.send_batch(dest, bodies[1000:])
    assert conn.flush(60) is True
    assert conn.get_buffer_size() == 0
    stats = conn.stats()
    assert stats["confirmed"] == 3000 and stats["failed"] == 0
    conn.close()
    t = consume_all(target, dest, bodies)
    assert (t.lost, t.duplicates, t.order_ok) == (0, 0, True)


def test_sends_before_the_broker_is_reachable_are_buffered_then_delivered(target: BrokerTarget) -> None:
    target.proxy.down()
    conn = target.resilient()
    conn.connect(target.user, target.password, wait=False)  # returns at once; connects in the background
    dest = target.destination()
    bodies = [f"early{i}" for i in range(200)]
    for body in bodies:
        conn.send(dest, body)
    assert conn.get_buffer_size() == 200
    assert conn.flush(0.5) is False
    target.proxy.up()
    assert conn.flush(30) is True
    conn.close()
    t = consume_all(target, dest, bodies)
    assert (t.lost, t.duplicates, t.order_ok) == (0, 0, True)


def test_connect_gives_up_after_the_initial_attempts_with_a_stomp_compatible_error(
    target: BrokerTarget,
) -> None:
    target.proxy.down()
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.1, initial_connect_attempts=2)
    conn = target.resilient(reconnect_policy=policy)
    with pytest.raises(StompConnectFailedError, match="in 2 attempt") as info:
        target.connect(conn)
    assert isinstance(info.value, ReconnectFailedError)
    assert isinstance(info.value, stomp.exception.ConnectFailedException)
    assert conn.connection_state is ConnectionState.FAILED
    with pytest.raises(ReconnectFailedError, match="connect again to resume"):
        conn.send(target.destination(), "refused while FAILED")
    target.proxy.up()
    target.connect(conn)  # connecting again after FAILED works
    assert conn.is_connected()
    conn.close()


def test_wrong_credentials_fail_fast_without_retrying(target: BrokerTarget, activemq_auth: Any) -> None:
    if target.kind == "activemq":
        address, user = activemq_auth.host_and_ports[0], "alice"
    else:
        address, user = target.address, "guest"
    conn = ResilientActiveMQConnection(
        [address], reconnect_policy=ReconnectPolicy(initial_delay=5, initial_connect_attempts=5)
    )
    with pytest.raises(StompAuthenticationError) as info:
        conn.connect(user, "not-the-password", wait=True)
    assert isinstance(info.value, stomp.exception.ConnectFailedException)
    assert "password" in str(info.value).lower() or "access refused" in str(info.value).lower()
    assert conn.stats()["connect_attempts"] == 1  # no retry loop (and no 5 s wait)
    conn.close()


def test_reconnects_after_a_reset_and_restores_the_subscription(target: BrokerTarget) -> None:
    conn = target.resilient()
    received = Collector()
    conn.set_listener("app", received)
    reconnected = threading.Event()

    class Told(stomp.ConnectionListener):  # type: ignore[misc]
        def on_reconnected(self, endpoint: Any) -> None:
            reconnected.set()

    conn.set_listener("told", Told())
    target.connect(conn)
    dest = target.destination()
    conn.subscribe(dest, id="sub-1", ack="auto")
    conn.send(dest, "before")
    assert received.wait_for(1, 10)
    target.proxy.cut()
    assert reconnected.wait(15), "the user's listener was told of the reconnection"
    # A plain producer publishes after the reconnection: only a restored subscription can see it.
    producer = target.plain()
    producer.send(dest, "after")
    producer.disconnect()
    assert received.wait_for(2, 15)
    assert set(received.bodies) == {"before", "after"}
    assert conn.stats()["reconnects"] >= 1
    conn.close()


def test_unsubscribed_destinations_are_not_restored(target: BrokerTarget) -> None:
    conn = target.resilient()
    received = Collector()
    conn.set_listener("app", received)
    target.connect(conn)
    dest = target.destination()
    conn.subscribe(dest, id="gone", ack="auto")
    conn.unsubscribe("gone")
    target.proxy.cut()
    assert wait_until(lambda: conn.stats()["reconnects"] >= 1 and conn.is_connected(), 15)
    producer = target.plain()
    producer.send(dest, "nobody listens")
    producer.disconnect()
    assert not received.wait_for(1, 1.0)
    conn.close()
    consume_all(target, dest, ["nobody listens"])  # leave the queue empty


def test_bad_input_is_refused_clearly_and_nothing_else_is_lost(target: BrokerTarget) -> None:
    conn = target.resilient()
    target.connect(conn)
    dest = target.destination()
    conn.send(dest, "good-1")
    with pytest.raises(InvalidMessageError, match="destination is required"):
        conn.send(None, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="body must be str or bytes, got int"):
        conn.send(dest, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="body must be str or bytes, got dict"):
        conn.send_batch(dest, ["fine", {"not": "a body"}])  # type: ignore[list-item]
    with pytest.raises(InvalidMessageError, match="unknown destination prefix in '/foo/bar'"):
        conn.send("/foo/bar", "x")
    with pytest.raises(InvalidMessageError, match="must not be empty"):
        conn.send("  ", "x")
    conn.send(dest, b"good-2")
    assert conn.flush(30) is True
    assert conn.get_failed_messages() == []
    conn.close()
    t = consume_all(target, dest, ["good-1", "good-2"])
    assert (t.lost, t.duplicates) == (0, 0)  # "fine" from the refused batch was not sent either


def _one_unacked_delivery(
    target: BrokerTarget,
) -> tuple[str, ResilientActiveMQConnection, Collector]:
    """A persistent message delivered to a client-individual subscription ``s`` and not acked yet."""
    dest = target.destination()
    producer = target.plain()
    producer.send(dest, "needs-ack", headers={"persistent": "true"})
    producer.disconnect()
    conn = target.resilient()
    received = Collector()
    conn.set_listener("app", received)
    target.connect(conn)
    conn.subscribe(dest, id="s", ack="client-individual")
    assert received.wait_for(1, 10)
    return dest, conn, received


def test_ack_for_a_message_of_a_dead_connection_is_skipped_and_the_message_redelivered(
    target: BrokerTarget,
) -> None:
    dest, conn, received = _one_unacked_delivery(target)
    old = received.frames[0]
    target.proxy.down()
    assert wait_until(lambda: conn.connection_state is ConnectionState.RECONNECTING, 15)
    conn.ack(old.headers["message-id"], "s")  # its connection is dead: not sent, no exception
    assert conn.stats()["acks_skipped"] == 1
    target.proxy.up()
    # The broker redelivers on the restored subscription; ack that one properly.
    assert wait_until(lambda: len(received.frames) >= 2, 15)
    fresh = received.frames[-1]
    assert fresh.body == "needs-ack"
    conn.ack(fresh.headers["message-id"], "s")
    conn.close()
    t = consume_all(target, dest, [])
    assert t.received == 0  # acked: nothing left


def test_ack_for_a_message_delivered_while_the_connection_is_still_being_set_up_is_sent(
    target: BrokerTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restored subscriptions deliver before the new connection is declared live (the sending links and
    the ledger come after them): an ack then belongs on that connection, not skipped. The set-up is held
    right after the subscriptions are restored, so the ack lands in that window every time."""
    dest, conn, received = _one_unacked_delivery(target)  # the broker redelivers it on the next connection

    restored, release = threading.Event(), threading.Event()
    restore = StompSession._restore_subscriptions

    def held(session: StompSession, link: Any) -> None:
        restore(session, link)
        restored.set()
        release.wait(15)

    monkeypatch.setattr(StompSession, "_restore_subscriptions", held)
    assert target.proxy is not None
    target.proxy.cut()
    try:
        assert restored.wait(15), "the reconnection did not restore the subscription"
        assert wait_until(lambda: len(received.frames) >= 2, 15), "not redelivered during the set-up"
        assert conn.connection_state is not ConnectionState.CONNECTED  # still being set up
        conn.ack(received.frames[-1].headers["message-id"], "s")
        assert conn.stats()["acks_skipped"] == 0
    finally:
        release.set()
    assert wait_until(lambda: conn.connection_state is ConnectionState.CONNECTED, 15)
    conn.close()
    assert consume_all(target, dest, []).received == 0  # acked on the connection that delivered it


def test_deduplicating_listener_drops_resends(target: BrokerTarget) -> None:
    conn = target.resilient()
    collector = Collector()
    dedup = DeduplicatingListener(collector, connection=conn)
    conn.set_listener("app", dedup)
    target.connect(conn)
    dest = target.destination()
    conn.subscribe(dest, id="d", ack="auto")
    producer = target.plain()
    for _ in range(3):
        producer.send(dest, "same", headers={MESSAGE_ID_HEADER: "fixed-id"})
    producer.send(dest, "other")
    producer.disconnect()
    assert collector.wait_for(2, 10)
    assert wait_until(lambda: dedup.duplicates == 2, 10)
    assert collector.bodies == ["same", "other"]
    conn.close()


def test_user_transaction_is_rolled_back_by_a_reconnect(target: BrokerTarget) -> None:
    conn = target.resilient()
    target.connect(conn)
    dest = target.destination()
    tx = conn.begin()
    conn.send(dest, "in-tx", transaction=tx)
    target.proxy.cut()
    assert wait_until(lambda: conn.stats()["reconnects"] >= 1 and conn.is_connected(), 15)
    with pytest.raises(TransactionRolledBackError, match="rolled it back"):
        conn.commit(tx)
    tx2 = conn.begin()
    conn.send(dest, "committed", transaction=tx2)
    conn.commit(tx2)
    conn.close()
    t = consume_all(target, dest, ["committed"])
    assert (t.lost, t.received) == (0, 1)  # "in-tx" never reached the queue


def test_many_threads_send_through_an_outage(target: BrokerTarget) -> None:
    conn = target.resilient()
    target.connect(conn)
    dest = target.destination()
    per_thread, threads = 300, 6
    started = threading.Barrier(threads + 1)

    def producer(t: int) -> None:
        started.wait()
        for i in range(per_thread):
            conn.send(dest, f"t{t}-{i}")

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    target.proxy.down()
    started.wait()
    for w in workers:
        w.join()
    target.proxy.up()
    assert conn.flush(60) is True
    conn.close()
    expected = [f"t{t}-{i}" for t in range(threads) for i in range(per_thread)]
    t = consume_all(target, dest, expected)
    assert t.lost == 0


def test_disconnect_flushes_and_close_refuses_further_sends(target: BrokerTarget) -> None:
    conn = target.resilient(drain_timeout=30)
    target.connect(conn)
    dest = target.destination()
    bodies = [f"d{i}" for i in range(500)]
    for body in bodies:
        conn.send(dest, body)
    conn.disconnect()  # waits for every confirmation first
    assert conn.get_buffer_size() == 0
    conn.close()
    with pytest.raises(ClientClosedError):
        conn.send(dest, "late")
    t = consume_all(target, dest, bodies)
    assert (t.lost, t.duplicates) == (0, 0)
