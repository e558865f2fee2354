"""Regressions found in review: listener re-entrancy, heart-beats across reconnects, refused subscriptions,
order after a rejected batch. Real brokers throughout."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import stomp
from stomp_support import FAST, BrokerTarget, consume_all, wait_until

from resilientmq import BufferFullError, ClientClosedError, ConnectionLostError, ConnectionState
from resilientmq.stomp import ResilientActiveMQConnection
from resilientmq.testing import ActiveMQBroker, ChaosProxy


def test_disconnect_from_the_listener_that_got_the_receipt_returns(target: BrokerTarget) -> None:
    conn = target.resilient()
    finished = threading.Event()

    class DisconnectOnReceipt(stomp.ConnectionListener):  # type: ignore[misc]
        def on_receipt(self, frame: Any) -> None:
            if frame.headers["receipt-id"] == "mine":
                conn.disconnect()  # the classic "send with a receipt, then disconnect"
                finished.set()

    conn.set_listener("app", DisconnectOnReceipt())
    target.connect(conn)
    dest = target.destination()
    conn.send(dest, "last words", receipt="mine")
    assert finished.wait(15), "disconnect() from on_receipt hung"
    assert conn.connection_state is ConnectionState.DISCONNECTED
    conn.close()
    assert consume_all(target, dest, ["last words"]).lost == 0


def test_listener_reconnecting_from_on_disconnected_does_not_deadlock(target: BrokerTarget) -> None:
    conn = target.resilient()

    class ClassicReconnect(stomp.ConnectionListener):  # type: ignore[misc]
        def on_disconnected(self) -> None:
            conn.connect(target.user, target.password, wait=True)  # stomp.py's usual recipe

    conn.set_listener("app", ClassicReconnect())
    target.connect(conn)
    assert target.proxy is not None
    proxy = target.proxy
    for fault in ("cut", "blackhole"):
        reconnects, losses = conn.stats()["reconnects"], conn.stats()["connection_losses"]
        getattr(proxy, fault)()
        assert wait_until(lambda n=losses: conn.stats()["connection_losses"] > n, 10), fault
        proxy.heal()
        assert wait_until(lambda n=reconnects: conn.stats()["reconnects"] > n and conn.is_connected(), 20), (
            fault
        )
    dest = target.destination()
    conn.send(dest, "still works")
    assert conn.flush(15) is True
    conn.close()
    consume_all(target, dest, ["still works"])


def test_every_partition_of_an_idle_client_is_noticed(target: BrokerTarget) -> None:
    conn = target.resilient()  # heart-beats 500 ms: a silent partition is noticed in about 0.75 s
    target.connect(conn)
    assert target.proxy is not None
    for cycle in range(4):
        before = conn.stats()["connection_losses"]
        target.proxy.blackhole()
        noticed = wait_until(lambda n=before: conn.stats()["connection_losses"] > n, 10)  # type: ignore[misc]
        assert noticed, f"partition {cycle} unnoticed"
        target.proxy.heal()
        assert wait_until(conn.is_connected, 15)
    assert conn.stats()["connection_losses"] == 4  # one loss per partition, not two
    conn.close()


def test_own_receipts_are_not_shown_to_user_listeners(target: BrokerTarget) -> None:
    conn = target.resilient()
    seen: list[str] = []

    class Receipts(stomp.ConnectionListener):  # type: ignore[misc]
        def on_receipt(self, frame: Any) -> None:
            seen.append(frame.headers["receipt-id"])

    conn.set_listener("app", Receipts())
    target.connect(conn)
    dest = target.destination()
    conn.send_batch(dest, [f"m{i}" for i in range(50)])
    conn.send(dest, "with a receipt", receipt="user-receipt-1")
    assert conn.flush(15) is True
    assert wait_until(lambda: seen == ["user-receipt-1"], 5), seen
    conn.close()
    consume_all(target, dest, [f"m{i}" for i in range(50)] + ["with a receipt"])


def test_begin_right_after_a_background_connect(target: BrokerTarget) -> None:
    conn = target.resilient()
    conn.connect(target.user, target.password, wait=False)  # stomp.py's default
    tx = conn.begin()  # stomp.py would send at once; we give the connection its set-up time
    dest = target.destination()
    conn.send(dest, "in a transaction", transaction=tx)
    conn.commit(tx)
    conn.close()
    assert consume_all(target, dest, ["in a transaction"]).lost == 0


def test_send_from_on_message_with_a_full_buffer_fails_at_once(target: BrokerTarget) -> None:
    conn = target.resilient(buffer_max_messages=1, buffer_block_timeout=30)
    errors: list[BaseException] = []
    forwarded = threading.Event()
    inbox, outbox = target.destination("inbox"), target.destination("outbox")

    class Forward(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: Any) -> None:
            # The first send takes the only slot; its receipt can only be read by this very thread, so
            # the second would wait for room for ever (30 s here). It must fail at once instead.
            try:
                for i in range(3):
                    conn.send(outbox, f"{frame.body}-{i}")
            except BufferFullError as exc:
                errors.append(exc)
            forwarded.set()

    conn.set_listener("app", Forward())
    target.connect(conn)
    conn.subscribe(inbox, id="in", ack="auto")
    producer = target.plain()
    producer.send(inbox, "trigger")
    producer.disconnect()
    assert forwarded.wait(10), "the listener was stuck in send()"
    assert len(errors) == 1 and "cannot wait for room" in str(errors[0])
    assert conn.flush(10) is True
    conn.close()
    assert consume_all(target, outbox, ["trigger-0"]).lost == 0


def test_refused_subscription_is_dropped_and_fails_no_message(rabbitmq_stomp: tuple[str, int]) -> None:
    proxy = ChaosProxy(*rabbitmq_stomp).start()
    target = BrokerTarget("rabbitmq", rabbitmq_stomp, proxy, "guest", "guest")
    try:
        conn = target.resilient()
        target.connect(conn)
        ok = target.destination("ok")
        # RabbitMQ answers with an ERROR without receipt-id and closes the connection.
        conn.subscribe("/exchange/rmq-test-no-such-exchange/k", id="bad", ack="auto")
        bodies = [f"m{i}" for i in range(300)]
        for body in bodies:
            conn.send(ok, body)
        assert conn.flush(60) is True
        stats = conn.stats()
        assert conn.get_failed_messages() == []
        assert stats["subscriptions_refused"] == 1
        assert stats["reconnects"] <= 3  # not a reconnect loop
        conn.close()
        assert consume_all(target, ok, bodies).lost == 0
    finally:
        proxy.close()


@pytest.fixture
def auth(activemq_auth: ActiveMQBroker) -> Any:
    return activemq_auth


def test_order_is_kept_around_a_rejected_batch(auth: ActiveMQBroker) -> None:
    conn = ResilientActiveMQConnection(
        auth.host_and_ports, reconnect_policy=FAST, heartbeats=(500, 500), max_batch=50, max_in_flight=4
    )
    conn.connect("bob", "b-secret", wait=True)
    target = BrokerTarget("activemq", auth.host_and_ports[0], None, "bob", "b-secret")
    dest = target.destination("order")
    expected = []
    for i in range(400):
        conn.send(dest, f"o{i}")
        expected.append(f"o{i}")
        if i in (20, 230):
            conn.send("/queue/restricted.x", "forbidden")
    assert conn.flush(60) is False
    assert [f.body for f in conn.get_failed_messages()] == [b"forbidden", b"forbidden"]
    conn.close()
    t = consume_all(target, dest, expected)
    assert t.lost == 0 and t.order_ok, "a later batch overtook the rejected one"


def test_a_broker_that_stops_reading_is_a_lost_connection_not_a_hang(target: BrokerTarget) -> None:
    # No heart-beats, so neither side notices by silence, and one batch far larger than what the proxy
    # and the kernel buffer: the sender blocks inside the socket write, where only a deadline on writes
    # (not the receipt timeout, which the blocked sender itself checks) can notice.
    conn = target.resilient(receipt_timeout=2.0, heartbeats=(0, 0), max_batch=400)
    target.connect(conn)
    assert target.proxy is not None
    dest = target.destination("stall")
    bodies = [f"{i:06d}" + "x" * 64_000 for i in range(400)]  # one ~26 MB batch
    target.proxy.stall()
    conn.send_batch(dest, bodies)
    assert wait_until(lambda: conn.stats()["connection_losses"] >= 1, 20), "a blocked write hung the sender"
    target.proxy.heal()
    assert conn.flush(60) is True
    started = time.monotonic()
    conn.close()
    assert time.monotonic() - started < 15
    assert consume_all(target, dest, bodies).lost == 0


def test_close_while_connecting_to_a_silent_broker_ends_the_connect_at_once(
    activemq_behind_proxy: tuple[ActiveMQBroker, ChaosProxy],
) -> None:
    _broker, proxy = activemq_behind_proxy
    proxy.blackhole()  # TCP connects, the CONNECT frame is swallowed: no CONNECTED for a minute
    conn = ResilientActiveMQConnection([proxy.address], reconnect_policy=FAST, connect_timeout=60.0)
    outcome: list[BaseException] = []

    def connect() -> None:
        try:
            conn.connect(wait=True)
        except BaseException as exc:
            outcome.append(exc)

    connecting = threading.Thread(target=connect)
    connecting.start()
    # The CONNECT went out: the connection being opened now waits for an answer that never comes.
    assert proxy.wait_for(lambda p: p.bytes_swallowed > 0, 10)
    conn.close()
    connecting.join(10)
    assert not connecting.is_alive(), "connect() kept waiting for the connection close() dropped"
    assert len(outcome) == 1 and isinstance(outcome[0], (ConnectionLostError, ClientClosedError))
    assert conn.connection_state is ConnectionState.CLOSED
