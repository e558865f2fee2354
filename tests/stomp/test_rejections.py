"""Messages the broker refuses: they end in get_failed_messages() with the reason; nothing else is lost."""

from __future__ import annotations

from typing import Any

import pytest
from stomp_support import FAST, BrokerTarget, consume_all

from resilientmq import DestinationError, MessageTooLargeError, ReconnectPolicy
from resilientmq.stomp import ResilientActiveMQConnection
from resilientmq.testing import ActiveMQBroker, ChaosProxy


@pytest.fixture
def auth_target(activemq_auth: ActiveMQBroker) -> Any:
    proxy = ChaosProxy(*activemq_auth.host_and_ports[0]).start()
    yield BrokerTarget("activemq", activemq_auth.host_and_ports[0], proxy, "bob", "b-secret")
    proxy.close()


def _resilient(address: tuple[str, int], **kw: Any) -> ResilientActiveMQConnection:
    return ResilientActiveMQConnection([address], reconnect_policy=FAST, heartbeats=(500, 500), **kw)


def test_forbidden_destination_fails_that_message_only(auth_target: BrokerTarget) -> None:
    conn = _resilient(auth_target.proxy.address)
    auth_target.connect(conn)
    ok = auth_target.destination("ok")
    # Interleaved: the forbidden message sits inside batches of good ones.
    expected = []
    for i in range(300):
        conn.send(ok, f"ok{i}")
        expected.append(f"ok{i}")
        if i == 150:
            conn.send("/queue/restricted.secrets", "forbidden")
    assert conn.flush(60) is False  # something failed since the last flush
    failed = conn.get_failed_messages()
    assert [(f.destination, f.body) for f in failed] == [("/queue/restricted.secrets", b"forbidden")]
    assert failed[0].error_type == "DestinationError"
    assert "not authorized to write" in failed[0].reason
    assert conn.stats()["failed"] == 1
    assert conn.flush(5) is True  # nothing new failed since
    conn.close()
    t = consume_all(auth_target, ok, expected)
    assert t.lost == 0


def test_oversized_frame_fails_that_message_and_the_connection_recovers(auth_target: BrokerTarget) -> None:
    conn = _resilient(auth_target.proxy.address)
    auth_target.connect(conn)
    dest = auth_target.destination("big")
    conn.send(dest, "small-1")
    conn.send(dest, "x" * (200 * 1024))  # over the broker's 64 KiB frame limit: it closes the connection
    conn.send(dest, "small-2")
    assert conn.flush(60) is False
    (failed,) = conn.get_failed_messages()
    assert failed.error_type == MessageTooLargeError.__name__
    assert "maximum frame size" in failed.reason
    assert len(failed.body) == 200 * 1024
    conn.send(dest, "small-3")
    assert conn.flush(30) is True
    conn.close()
    t = consume_all(auth_target, dest, ["small-1", "small-2", "small-3"])
    assert t.lost == 0


def test_client_side_frame_limit_refuses_at_send() -> None:
    conn = ResilientActiveMQConnection([("127.0.0.1", 1)], max_frame_bytes=10)
    with pytest.raises(MessageTooLargeError, match="11 bytes exceeds max_frame_bytes=10"):
        conn.send("/queue/a", "x" * 11)
    assert conn.get_buffer_size() == 0
    conn.close()


def test_rabbitmq_unknown_exchange_fails_that_message_only(rabbitmq_stomp: tuple[str, int]) -> None:
    proxy = ChaosProxy(*rabbitmq_stomp).start()
    target = BrokerTarget("rabbitmq", rabbitmq_stomp, proxy, "guest", "guest")
    try:
        conn = _resilient(proxy.address)
        target.connect(conn)
        ok = target.destination("ok")
        # RabbitMQ answers the bad SEND with an ERROR naming no frame, then closes, while the receipts of
        # earlier SENDs still wait for publisher confirms: the blame must not land on one of those.
        expected = [f"before-{i}" for i in range(200)] + [f"after-{i}" for i in range(200)]
        for body in expected[:200]:
            conn.send(ok, body)
        conn.send("/exchange/rmq-test-no-such-exchange/key", "lost in space")
        for body in expected[200:]:
            conn.send(ok, body)
        assert conn.flush(60) is False
        (failed,) = conn.get_failed_messages()
        assert failed.error_type == DestinationError.__name__
        assert "no exchange" in failed.reason
        assert failed.body == b"lost in space"
        conn.close()
        t = consume_all(target, ok, expected)
        assert t.lost == 0
    finally:
        proxy.close()


def test_unknown_user_transaction_is_a_clear_error() -> None:
    conn = ResilientActiveMQConnection([("127.0.0.1", 1)], reconnect_policy=ReconnectPolicy(max_attempts=0))
    with pytest.raises(Exception, match="unknown transaction 'nope'"):
        conn.commit("nope")
    conn.close()
