"""The ledger on ActiveMQ: what a broken connection had committed is learned, not sent again.

The racy point made deterministic: the broker commits a batch, and its receipts are then dropped on the
way to the client (a filter on that connection's links), so the client cannot know; only after the
witness sees the committed messages is the connection cut. With the ledger nothing is sent twice; with
``ledger=False`` (and on RabbitMQ, whose receipts are per message) the whole batch is, and the test
shows it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stomp
from stomp_support import FAST, BrokerTarget, Collector, browse, ledger_of, tally, wait_until

from resilientmq.stomp import ResilientActiveMQConnection
from resilientmq.stomp.link import Link
from resilientmq.testing import ActiveMQBroker, ChaosProxy

N = 50


class _ReceiptsOf:
    """From ``drop(conn)`` on: once a link of that connection writes what asks for the confirmation (a
    COMMIT, or a SEND with a receipt of its own outside a transaction), the receipts that reach that link
    are dropped. What the broker then commits, the client cannot hear of."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.epoch: int | None = None
        self.blind: set[int] = set()
        self.dropped = 0
        write, on_receipt = Link.write, Link.on_receipt

        def blinding_write(link: Link, frames: list[bytes]) -> None:
            if link.epoch == self.epoch and any(_confirming(f) for f in frames):
                self.blind.add(id(link))  # before the write: its answer may come at once
            write(link, frames)

        def dropping_on_receipt(link: Link, frame: Any) -> None:
            if id(link) in self.blind:
                self.dropped += 1
                return
            on_receipt(link, frame)

        monkeypatch.setattr(Link, "write", blinding_write)
        monkeypatch.setattr(Link, "on_receipt", dropping_on_receipt)

    def drop(self, conn: ResilientActiveMQConnection) -> None:
        self.epoch = conn._rmq.supervisor.epoch


def _confirming(frame: bytes) -> bool:
    head = frame.split(b"\n\n", 1)[0]
    return head.startswith(b"COMMIT\n") or (head.startswith(b"SEND\n") and b"\ntransaction:" not in head)


@pytest.fixture
def lost_receipts(monkeypatch: pytest.MonkeyPatch) -> _ReceiptsOf:
    return _ReceiptsOf(monkeypatch)


@pytest.fixture
def witness(target: BrokerTarget) -> Iterator[Callable[[str], Collector]]:
    """``witness(destination)``: a plain consumer straight to the broker, counting from now on."""
    conns: list[stomp.Connection] = []

    def start(destination: str) -> Collector:
        got = Collector()
        conn = target.plain()
        conn.set_listener("witness", got)
        conn.subscribe(destination, id="witness", ack="auto")
        conns.append(conn)
        return got

    yield start
    for conn in conns:
        conn.disconnect()


@pytest.mark.parametrize(
    ("target", "ledger"),
    [
        pytest.param("activemq", True, id="activemq"),
        pytest.param("activemq", False, id="activemq-ledger-off"),
        pytest.param("rabbitmq", True, id="rabbitmq", marks=pytest.mark.rabbitmq),
    ],
    indirect=["target"],
)
def test_a_batch_committed_whose_receipt_is_lost_is_not_sent_again(
    target: BrokerTarget,
    ledger: bool,
    lost_receipts: _ReceiptsOf,
    witness: Callable[[str], Collector],
    chaos_report: Callable[..., None],
) -> None:
    conn = target.resilient(ledger=ledger)
    target.connect(conn)
    dest = target.destination("lost-receipt")
    got = witness(dest)
    bodies = [f"r{i}" for i in range(N)]
    lost_receipts.drop(conn)
    conn.send_batch(dest, bodies)  # one batch: its COMMIT (or receipts) the client will never hear of
    assert got.wait_for(N, 15), "the broker did not commit the batch"
    assert conn.get_buffer_size() == N  # committed, and the client does not know
    # RabbitMQ answers after its publisher confirms, which may come after the messages reach a consumer:
    # cut only once an answer was there to be lost.
    wait_until(lambda: lost_receipts.dropped > 0, 15, what="the broker's answer (dropped)")
    assert target.proxy is not None
    target.proxy.cut()
    assert conn.flush(30) is True
    stats = conn.stats()
    conn.close()
    got.settle(quiet=0.5)
    t = tally(bodies, got.bodies)
    chaos_report(broker=target.kind, ledger=ledger, duplicates=t.duplicates, recovered=stats["recovered"])
    assert t.lost == 0 and lost_receipts.dropped > 0
    if target.kind == "activemq" and ledger:
        assert t.duplicates == 0
        assert stats["recovered"] == N and stats["resent"] == 0
        assert browse(target, ledger_of(conn)) == [], "the entry was removed once used"
    else:  # the fate of the batch is unknown: sent again, every message of it a duplicate
        assert t.duplicates == N
        assert stats["recovered"] == 0


@pytest.fixture
def activemq_target(activemq: ActiveMQBroker) -> Iterator[BrokerTarget]:
    proxy = ChaosProxy(*activemq.host_and_ports[0]).start()
    yield BrokerTarget("activemq", activemq.host_and_ports[0], proxy)
    proxy.close()


def test_the_users_receipt_of_a_recovered_message_is_answered_once_and_ledger_frames_stay_hidden(
    activemq_target: BrokerTarget, lost_receipts: _ReceiptsOf
) -> None:
    target = activemq_target
    conn = target.resilient()
    frames: list[tuple[str, Any]] = []
    lock = threading.Lock()

    class Everything(stomp.ConnectionListener):  # type: ignore[misc]
        def on_receipt(self, frame: Any) -> None:
            with lock:
                frames.append(("receipt", frame))

        def on_message(self, frame: Any) -> None:
            with lock:
                frames.append(("message", frame))

        def on_error(self, frame: Any) -> None:
            with lock:
                frames.append(("error", frame))

    conn.set_listener("app", Everything())
    target.connect(conn)
    inbox, dest = target.destination("inbox"), target.destination("lone")
    conn.subscribe(inbox, id="in", ack="auto")
    lost_receipts.drop(conn)
    conn.send(dest, "lone", receipt="mine")  # a lone message: its own transaction, with its entry
    assert wait_until(lambda: len(browse(target, dest)) == 1, 15)
    assert target.proxy is not None
    target.proxy.cut()
    assert conn.flush(30) is True
    assert wait_until(lambda: any(kind == "receipt" for kind, _ in frames), 10)
    producer = target.plain()
    producer.send(inbox, "for the app")  # the user's subscription was restored; the ledger's was not
    producer.disconnect()
    assert wait_until(lambda: any(kind == "message" for kind, _ in frames), 10)
    stats = conn.stats()
    with lock:  # before close(): its DISCONNECT receipt is the user's to see, as with stomp.py
        seen = [(kind, f.headers.get("receipt-id") or f.body) for kind, f in frames]
    conn.close()
    assert seen == [("receipt", "mine"), ("message", "for the app")]
    assert stats["recovered"] == 1 and stats["resent"] == 0
    assert [f.body for f in browse(target, dest)] == ["lone"]


def test_a_broker_that_refuses_the_ledger_queue_still_gets_everything(activemq_auth: ActiveMQBroker) -> None:
    # bob may write to app.> and rmq-test.> only: the ledger's first entry is refused, the batch goes
    # again at once without it, and the client goes on as without a ledger.
    conn = ResilientActiveMQConnection(
        activemq_auth.host_and_ports, reconnect_policy=FAST, heartbeats=(500, 500)
    )
    conn.connect("bob", "b-secret", wait=True)
    target = BrokerTarget("activemq", activemq_auth.host_and_ports[0], None, "bob", "b-secret")
    dest = target.destination("no-ledger")
    bodies = [f"n{i}" for i in range(300)]
    for body in bodies:
        conn.send(dest, body)
    conn.send(dest, "lone")  # after the refusal: a lone message goes as before, with its own receipt
    assert conn.flush(30) is True
    stats = conn.stats()
    conn.close()
    assert stats["ledger_refused"] >= 1 and stats["failed"] == 0  # once per batch already in flight
    got = browse(target, dest)
    assert [f.body for f in got] == [*bodies, "lone"]
