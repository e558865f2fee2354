"""The contract for ResilientActiveMQConnection: on ActiveMQ, and on RabbitMQ's STOMP plugin.

Each broker sits behind a ChaosProxy (``down()``/``up()`` is the outage); the independent consumer is a
plain stomp.py connection straight to the broker.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import stomp
from contract_suite import ClientContract, Refusal

from resilientmq import DestinationError, MessageTooLargeError, ResilientActiveMQConnection
from resilientmq.testing import ActiveMQBroker, ChaosProxy

RABBIT_ADDRESS = ("127.0.0.1", 61613)
FRAME_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def contract_activemq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActiveMQBroker]:
    """ActiveMQ with a 64 KiB frame limit: something it refuses for good without needing credentials."""
    workdir = tmp_path_factory.mktemp("contract-activemq")
    with ActiveMQBroker(workdir=workdir, max_frame_size=FRAME_LIMIT) as broker:
        yield broker


class _Bodies(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.bodies: list[bytes] = []

    def on_message(self, frame: Any) -> None:
        with self.cond:
            self.bodies.append(frame.body)
            self.cond.notify_all()


class StompContract(ClientContract):
    """The STOMP hooks; subclasses say which broker, where, and as whom."""

    address: tuple[str, int]
    user: str | None = None
    password: str | None = None
    proxy: ChaosProxy

    def find_broker(self, request: pytest.FixtureRequest) -> tuple[str, int]:
        raise NotImplementedError

    @contextlib.contextmanager
    def broker(self, request: pytest.FixtureRequest) -> Iterator[None]:
        self.address = self.find_broker(request)
        with ChaosProxy(*self.address) as self.proxy:
            yield

    def make_client(self, **resilience: Any) -> ResilientActiveMQConnection:
        """Started means ``connect(wait=False)``: it returns at once and connects in the background."""
        options: dict[str, Any] = {"heartbeats": (500, 500), "receipt_timeout": 5.0, "connect_timeout": 3.0}
        conn = ResilientActiveMQConnection([self.proxy.address], **options, **resilience)
        conn.connect(self.user, self.password, wait=False)
        return conn

    def send(self, client: Any, destination: str, body: Any) -> None:
        client.send(destination, body)

    def new_destination(self) -> str:
        return f"/queue/rmq-test.contract.{uuid.uuid4().hex[:12]}"

    def received(self, destination: str, expect: int) -> list[bytes]:
        listener = _Bodies()
        conn = stomp.Connection([self.address], auto_decode=False)
        conn.set_listener("witness", listener)
        conn.connect(self.user, self.password, wait=True)
        conn.subscribe(destination, id="witness", ack="auto")
        try:
            with listener.cond:
                listener.cond.wait_for(lambda: len(set(listener.bodies)) >= expect, 30.0)
                # Then until nothing more comes for a moment: duplicates would follow right behind.
                deadline = time.monotonic() + 10.0
                while time.monotonic() < deadline:
                    before = len(listener.bodies)
                    listener.cond.wait(0.3)
                    if len(listener.bodies) == before:
                        break
                return list(listener.bodies)
        finally:
            conn.disconnect()

    def broker_down(self) -> None:
        self.proxy.down()

    def broker_up(self) -> None:
        self.proxy.up()

    def close(self, client: Any) -> None:
        client.close()  # disconnect() first: drains, bounded by drain_timeout


class TestActiveMQ(StompContract):
    def find_broker(self, request: pytest.FixtureRequest) -> tuple[str, int]:
        broker: ActiveMQBroker = request.getfixturevalue("contract_activemq")
        return broker.host_and_ports[0]

    def send_refused(self, client: Any, destination: str) -> Refusal:
        body = b"x" * (3 * FRAME_LIMIT)  # ActiveMQ answers an ERROR and closes the connection
        client.send(destination, body)
        return Refusal(body, MessageTooLargeError, "maximum frame size")


@pytest.mark.rabbitmq
class TestRabbitMQ(StompContract):
    user = password = "guest"

    def find_broker(self, request: pytest.FixtureRequest) -> tuple[str, int]:
        try:
            socket.create_connection(RABBIT_ADDRESS, timeout=2.0).close()
        except OSError as exc:
            pytest.fail(f"RabbitMQ's STOMP plugin does not answer on {RABBIT_ADDRESS}: {exc}")
        return RABBIT_ADDRESS

    def send_refused(self, client: Any, destination: str) -> Refusal:
        body = b"lost in space"  # RabbitMQ answers an ERROR naming no frame, and closes the connection
        client.send("/exchange/rmq-test-no-such-exchange/key", body)
        return Refusal(body, DestinationError, "no exchange")
