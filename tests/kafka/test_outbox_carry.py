"""The core's side of issue 14 for clients that retry by themselves: a session that *carries* the batches of
earlier connections (``CarryingSession.carries``) makes the outbox wait for their answer instead of sending
them again. Scripted sessions, as in tests/unit/test_outbox.py (where these belong once merged).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from resilientmq import MemoryBuffer, ReconnectPolicy
from resilientmq.core.buffer import Envelope, NewMessage
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.outbox import Outbox
from resilientmq.core.session import BatchResult, LossReporter
from resilientmq.core.supervisor import ConnectionState, Endpoints, Supervisor
from resilientmq.testing import wait_until


class Client:
    """A client library that holds what it was handed across connections until ``forget()``."""

    def __init__(self) -> None:
        self.first_epoch = 1
        self.sent: list[tuple[int, list[bytes]]] = []
        self.pending: list[Future[BatchResult]] = []
        self.lock = threading.Lock()

    def forget(self, epoch: int) -> None:
        """A new client from connection ``epoch`` on: what the old one held is no longer carried."""
        self.first_epoch = epoch


class CarryingSession:
    def __init__(self, client: Client, epoch: int) -> None:
        self.client = client
        self.epoch = epoch

    def carries(self, epoch: int) -> bool:
        return self.client.first_epoch <= epoch <= self.epoch

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        future: Future[BatchResult] = Future()
        with self.client.lock:
            self.client.sent.append((self.epoch, [e.body for e in batch]))
            self.client.pending.append(future)
        return future

    def close(self) -> None:
        pass


class Connector:
    def __init__(self, client: Client) -> None:
        self.client = client

    def open(self, endpoint: str, epoch: int, lost: LossReporter) -> CarryingSession:
        return CarryingSession(self.client, epoch)

    def cancel(self) -> None:
        pass


@pytest.fixture
def rig() -> Iterator[tuple[Supervisor[str, CarryingSession], Client, Any]]:
    client = Client()
    sup: Supervisor[str, CarryingSession] = Supervisor(
        Connector(client), Endpoints(["a"]), ReconnectPolicy(initial_delay=0.01, max_delay=0.05)
    )
    made: list[Outbox] = []

    def outbox(**kw: Any) -> Outbox:
        ob = Outbox(MemoryBuffer(1000), sup, **kw)
        made.append(ob)
        return ob

    yield sup, client, outbox
    for ob in made:
        ob.close()
    sup.close()


def _msgs(*names: str) -> list[NewMessage]:
    return [NewMessage("t", n.encode()) for n in names]


def _reconnected(sup: Supervisor[str, CarryingSession], epoch: int) -> None:
    sup.report_lost(ConnectionLostError("broken"), epoch)
    wait_until(lambda: sup.state is ConnectionState.CONNECTED and sup.epoch > epoch, 5, what="a reconnect")


def test_a_batch_the_next_connection_carries_is_awaited_not_sent_again(rig: Any) -> None:
    sup, client, outbox = rig
    ob = outbox()
    sup.connect()
    ob.put(_msgs("a", "b", "c"))
    wait_until(lambda: len(client.sent) == 1, 5, what="the batch")
    _reconnected(sup, 1)
    ob.put(_msgs("d"))
    assert ob.flush(0.3) is False  # "d" waits behind the carried batch (max_in_flight 1 is not the point)
    client.pending[0].set_result(BatchResult())  # the client delivered it after the reconnect
    wait_until(lambda: len(client.sent) == 2, 5, what="the next batch")
    client.pending[1].set_result(BatchResult())
    assert ob.flush(5) is True
    assert client.sent == [(1, [b"a", b"b", b"c"]), (2, [b"d"])]
    assert ob.stats()["resent"] == 0


def test_a_confirm_timeout_on_a_carrying_session_reports_the_loss_and_sends_nothing_again(rig: Any) -> None:
    sup, client, outbox = rig
    ob = outbox(confirm_timeout=0.2, max_in_flight=1)
    sup.connect()
    ob.put(_msgs("a"))
    wait_until(lambda: sup.connection_losses >= 2, 5, what="two silent timeouts, each a loss")
    assert client.sent == [(1, [b"a"])]
    client.pending[0].set_result(BatchResult())
    assert ob.flush(5) is True and ob.stats()["resent"] == 0


def test_a_connection_that_does_not_carry_them_gets_every_unconfirmed_batch_again(rig: Any) -> None:
    sup, client, outbox = rig
    ob = outbox()
    sup.connect()
    ob.put(_msgs("a", "b"))
    wait_until(lambda: len(client.sent) == 1, 5, what="the batch")
    client.forget(2)  # the next connection is a new client: the old one's batches are not carried
    _reconnected(sup, 1)
    wait_until(lambda: len(client.sent) == 2, 5, what="the batch sent again")
    client.pending[1].set_result(BatchResult())
    assert ob.flush(5) is True
    assert client.sent == [(1, [b"a", b"b"]), (2, [b"a", b"b"])]
