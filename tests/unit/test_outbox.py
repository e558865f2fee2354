"""The outbox's sender with a scripted transport: confirmation, re-send on a new connection, rejection."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from resilientmq import (
    ClientClosedError,
    ConnectionLostError,
    LmdbBuffer,
    MemoryBuffer,
    PermanentDeliveryError,
    ReconnectPolicy,
)
from resilientmq.core.buffer import Envelope, NewMessage
from resilientmq.core.outbox import Outbox
from resilientmq.core.session import BatchRejectedError, BatchResult, LossReporter
from resilientmq.core.supervisor import Endpoints, Supervisor
from resilientmq.testing import wait_until


class Session:
    """One scripted connection: hands batches to the transport, tagged with its epoch."""

    def __init__(self, transport: Transport, epoch: int) -> None:
        self.transport = transport
        self.epoch = epoch

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        return self.transport.transmit(batch, self.epoch)

    def close(self) -> None:
        pass


class RecoveringSession(Session):
    """A session that knows what the broker already holds (as the STOMP ledger finds out)."""

    def delivered(self, seqs: Sequence[int]) -> set[int]:
        self.transport.asked.append(list(seqs))
        return set(seqs) & self.transport.broker_has


class Connector:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.recovering = False

    def open(self, endpoint: str, epoch: int, lost: LossReporter) -> Session:
        return (RecoveringSession if self.recovering else Session)(self.transport, epoch)

    def cancel(self) -> None:
        pass


class Transport:
    """A scripted broker-side: records deliveries; the test decides what each batch's future does."""

    def __init__(self, auto: bool = True) -> None:
        self.auto = auto
        self.delivered: list[bytes] = []
        self.batches: list[tuple[int, list[bytes]]] = []
        self.pending: list[tuple[Sequence[Envelope], Future[BatchResult]]] = []
        self.reject: set[bytes] = set()
        self.broker_has: set[int] = set()  # seqs a recovering session says the broker holds
        self.asked: list[list[int]] = []
        self.connector: Connector | None = None
        self.cond = threading.Condition()

    def transmit(self, batch: Sequence[Envelope], epoch: int) -> Future[BatchResult]:
        fut: Future[BatchResult] = Future()
        with self.cond:
            self.batches.append((epoch, [e.body for e in batch]))
            bad = [e for e in batch if e.body in self.reject]
            if bad and len(batch) > 1:
                fut.set_exception(BatchRejectedError("ERROR frame without a receipt id"))
            elif bad:
                fut.set_exception(BatchRejectedError("rejected", PermanentDeliveryError("forbidden")))
            elif self.auto:
                self.delivered.extend(e.body for e in batch)
                fut.set_result(BatchResult())
            else:
                self.pending.append((batch, fut))
            self.cond.notify_all()
        return fut

    def wait_batches(self, n: int, timeout: float = 5) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.batches) >= n, timeout), self.batches


@pytest.fixture
def rig() -> Iterator[tuple[Supervisor[str, Session], Transport, Any]]:
    made: list[Outbox] = []
    transport = Transport()
    connector = Connector(transport)
    transport.connector = connector
    sup: Supervisor[str, Session] = Supervisor(
        connector, Endpoints(["a"]), ReconnectPolicy(initial_delay=0.01, max_delay=0.05)
    )

    def outbox(**kw: Any) -> Outbox:
        ob = Outbox(kw.pop("buffer", MemoryBuffer(1000)), sup, **kw)
        made.append(ob)
        return ob

    yield sup, transport, outbox
    for ob in made:
        ob.close()
    sup.close()


def msgs(*names: str) -> list[NewMessage]:
    return [NewMessage("/queue/q", n.encode()) for n in names]


def test_messages_flow_in_order_and_leave_only_when_confirmed(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    ob = outbox()
    sup.connect()
    ob.put(msgs("a", "b", "c"))
    transport.wait_batches(1)
    assert len(ob) == 3  # sent, not yet confirmed
    assert ob.flush(0.2) is False
    for _batch, fut in transport.pending:
        fut.set_result(BatchResult())
    assert ob.flush(5) is True
    assert len(ob) == 0
    s = ob.stats()
    assert (s["accepted"], s["confirmed"], s["buffered"]) == (3, 3, 0)


def test_buffered_while_disconnected_then_delivered(rig: Any) -> None:
    sup, transport, outbox = rig
    ob = outbox()
    ob.put(msgs(*"abcde"))
    assert ob.flush(0.1) is False and transport.batches == []
    sup.connect()
    assert ob.flush(5) is True
    assert transport.delivered == [b"a", b"b", b"c", b"d", b"e"]


def test_new_connection_resends_every_unconfirmed_message_in_order(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    ob = outbox(max_batch=2)
    sup.connect()
    ob.put(msgs("1", "2", "3", "4"))
    transport.wait_batches(2)
    first, second = transport.pending
    first[1].set_result(BatchResult())  # 1, 2 confirmed on the old connection
    transport.auto = True
    # The connection dies with 3, 4 unconfirmed: their future fails and a reconnect follows.
    second[1].set_exception(ConnectionLostError("reset"))
    assert ob.flush(5) is True
    assert transport.delivered == [b"3", b"4"]
    assert transport.batches[-1][0] == 2  # sent again on epoch 2
    assert ob.stats()["resent"] == 2 and ob.stats()["reconnects"] == 1


def test_late_success_from_a_dead_connection_still_counts(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    ob = outbox()
    sup.connect()
    ob.put(msgs("x"))
    transport.wait_batches(1)
    ((_, old),) = transport.pending
    sup.report_lost(ConnectionLostError("cut"), sup.epoch)
    transport.wait_batches(2)  # re-sent on the new connection
    old.set_result(BatchResult())  # ...but the old one made it after all
    assert ob.flush(5) is True


def test_rejected_batch_is_isolated_and_only_the_culprit_fails(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.reject = {b"bad"}
    ob = outbox(max_batch=10)
    sup.connect()
    ob.put(msgs("a", "bad", "c"))
    assert ob.flush(5) is False  # one message failed
    assert transport.delivered == [b"a", b"c"]
    (failed,) = ob.failed()
    assert failed.body == b"bad" and failed.reason == "forbidden"
    assert failed.error_type == "PermanentDeliveryError"
    ob.put(msgs("d"))
    assert ob.flush(5) is True  # no new failure since the previous flush


def test_per_message_permanent_failures_and_retries(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    ob = outbox()
    sup.connect()
    ob.put(msgs("ok", "toobig", "later"))
    transport.wait_batches(1)
    batch, fut = transport.pending[0]
    seq = {e.body: e.seq for e in batch}
    transport.auto = True
    fut.set_result(
        BatchResult(
            failed={seq[b"toobig"]: PermanentDeliveryError("too big")},
            retry={seq[b"later"]: ConnectionLostError("leader moved")},
        )
    )
    assert ob.flush(5) is False
    assert transport.delivered == [b"later"]
    assert [f.body for f in ob.failed()] == [b"toobig"]


def test_close_keeps_what_is_left_and_refuses_more(rig: Any, tmp_path: Any) -> None:
    _sup, _transport, outbox = rig
    ob = outbox(buffer=LmdbBuffer(tmp_path / "left.db"))
    ob.put(msgs("p", "q"))  # never connected: nothing can be confirmed
    assert ob.close(drain_timeout=0.1) is False
    with pytest.raises(ClientClosedError):
        ob.put(msgs("r"))
    again = LmdbBuffer(tmp_path / "left.db")
    assert [e.body for e in again.peek()] == [b"p", b"q"]
    again.close()


def test_many_threads_put_concurrently_without_loss(rig: Any) -> None:
    sup, transport, outbox = rig
    ob = outbox(buffer=MemoryBuffer(100_000))
    sup.connect()

    def producer(t: int) -> None:
        for i in range(500):
            ob.put(msgs(f"{t}-{i}"))

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ob.flush(10) is True
    assert len(transport.delivered) == 4000 and len(set(transport.delivered)) == 4000
    for t in range(8):  # each producer's order is kept
        mine = [d for d in transport.delivered if d.startswith(f"{t}-".encode())]
        assert mine == [f"{t}-{i}".encode() for i in range(500)]


def test_a_batch_never_answered_is_sent_again_on_a_new_connection(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    ob = outbox(confirm_timeout=0.3)
    sup.connect()
    ob.put(msgs("silent"))
    transport.wait_batches(1)
    transport.auto = True  # the first batch is swallowed (a partition); the re-send is answered
    assert ob.flush(5) is True
    assert transport.batches[-1] == (2, [b"silent"])
    assert ob.stats()["connection_losses"] == 1


def test_a_rejection_reported_by_a_dead_connection_still_fails_the_message(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    ob = outbox()
    sup.connect()
    ob.put(msgs("ok", "forbidden"))
    transport.wait_batches(1)
    ((batch, old),) = transport.pending
    seq = {e.body: e.seq for e in batch}
    sup.report_lost(ConnectionLostError("cut"), sup.epoch)
    transport.wait_batches(2)  # sent again on the new connection; that copy stays unanswered
    # The dead connection's answer arrives late: "forbidden" was refused, "ok" unanswered.
    old.set_result(
        BatchResult(
            failed={seq[b"forbidden"]: PermanentDeliveryError("forbidden")},
            retry={seq[b"ok"]: ConnectionLostError("cut")},
        )
    )
    assert wait_until(lambda: [f.body for f in ob.failed()] == [b"forbidden"])
    assert len(ob) == 1  # "ok" is still owed: neither confirmed nor failed
    assert ob.stats()["confirmed"] == 0


def test_an_inferred_rejection_never_fails_a_lone_message_and_isolation_waits_for_each_answer(
    rig: Any,
) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    ob = outbox(max_batch=1, max_in_flight=4)
    sup.connect()
    ob.put(msgs("innocent", "culprit", "after"))
    transport.wait_batches(3)  # pipelined: three single-message batches in flight
    f1, f2, f3 = (fut for _batch, fut in transport.pending)
    # An ERROR naming no frame came while all three were unanswered; the transport guesses the oldest.
    f1.set_exception(BatchRejectedError("guessed", PermanentDeliveryError("no exchange"), exact=False))
    f2.set_exception(ConnectionLostError("closed"))
    f3.set_exception(ConnectionLostError("closed"))
    # Sent again one at a time: the next is written only once the previous one is answered.
    transport.wait_batches(4)
    with transport.cond:
        assert transport.cond.wait_for(lambda: len(transport.pending) == 4, 5), transport.batches
        assert len(transport.batches) == 4
    assert transport.batches[3][1] == [b"innocent"]
    transport.pending[3][1].set_result(BatchResult())
    transport.wait_batches(5)
    assert transport.batches[4][1] == [b"culprit"]
    transport.pending[4][1].set_exception(BatchRejectedError("it", PermanentDeliveryError("no exchange")))
    transport.auto = True
    assert ob.flush(5) is False
    assert [f.body for f in ob.failed()] == [b"culprit"]
    assert b"after" in transport.delivered
    assert ob.stats()["confirmed"] == 2


def test_what_the_broker_already_holds_is_confirmed_not_sent_again(rig: Any) -> None:
    sup, transport, outbox = rig
    transport.auto = False
    assert transport.connector is not None
    transport.connector.recovering = True
    ob = outbox(max_batch=2)
    sup.connect()
    ob.put(msgs("1", "2", "3", "4"))
    transport.wait_batches(2)
    assert transport.asked == []  # nothing had been sent before the first connection
    # Both batches reached the broker, but only the first one's answer is heard before the reset.
    transport.broker_has = {1, 2, 3, 4}
    transport.pending[0][1].set_result(BatchResult())
    transport.broker_has = {3, 4}
    transport.auto = True
    transport.pending[1][1].set_exception(ConnectionLostError("reset before the receipt"))
    assert ob.flush(5) is True
    assert transport.asked == [[3, 4]]  # asked about what was unanswered, before sending anything
    assert transport.delivered == [] and len(transport.batches) == 2  # nothing sent twice
    stats = ob.stats()
    assert (stats["confirmed"], stats["recovered"], stats["resent"]) == (4, 2, 0)


def test_what_an_earlier_process_left_is_asked_about_on_the_first_connection(rig: Any, tmp_path: Any) -> None:
    sup, transport, outbox = rig
    left = LmdbBuffer(tmp_path / "left.rmq")
    left.extend(msgs("a", "b", "c"))
    left.close()  # the earlier process died with a, b, c unconfirmed; it had committed a and b
    assert transport.connector is not None
    transport.connector.recovering = True
    transport.broker_has = {1, 2}
    ob = outbox(buffer=LmdbBuffer(tmp_path / "left.rmq"))
    sup.connect()
    assert ob.flush(5) is True
    assert transport.asked == [[1, 2, 3]]
    assert transport.delivered == [b"c"]
    assert ob.stats()["recovered"] == 2


def test_put_one_takes_its_place_in_order_and_is_counted(rig: Any) -> None:
    sup, transport, outbox = rig
    ob = outbox()
    ob.put(msgs("a"))
    envelope = ob.put_one("/queue/q", b"b", {"h": 1}, id="id-b")
    ob.put(msgs("c"))
    assert (envelope.id, envelope.headers) == ("id-b", {"h": 1})
    sup.connect()
    assert ob.flush(5) is True
    assert transport.delivered == [b"a", b"b", b"c"]
    assert ob.stats()["accepted"] == 3


class PausingBuffer(MemoryBuffer):
    """Pauses the sender just after it found nothing to send, before it waits: the racy point of a
    wake-up that put() skips while the sender is busy."""

    def __init__(self) -> None:
        super().__init__(100)
        self.armed = threading.Event()
        self.paused = threading.Event()
        self.go = threading.Event()

    def peek(self, after_seq: int = 0, limit: int = 1000) -> list[Envelope]:
        found = super().peek(after_seq, limit)
        if not found and self.armed.is_set():
            self.armed.clear()
            self.paused.set()
            self.go.wait(5)
        return found


def test_a_put_just_after_the_sender_found_nothing_wakes_it_at_once(rig: Any) -> None:
    sup, transport, outbox = rig
    buffer = PausingBuffer()
    ob = outbox(buffer=buffer)
    sup.connect()
    ob.put(msgs("first"))
    assert ob.flush(5) is True
    buffer.armed.set()
    assert buffer.paused.wait(5)  # the sender looked, found nothing, and is about to wait
    ob.put_one("/queue/q", b"second")
    buffer.go.set()
    # Woken by the put, not by its 0.25 s wait running out.
    wait_until(lambda: transport.delivered == [b"first", b"second"], 0.2, what="the put to wake the sender")


def test_messages_failed_outside_the_buffer_are_counted_kept_and_told_once(rig: Any) -> None:
    sup, _transport, outbox = rig
    ob = outbox()
    sup.connect()
    assert ob.buffer.hold_outside(1) == 1  # an adapter handed a message over itself...
    (record,) = ob.fail_outside([(NewMessage("/queue/q", b"gone"), PermanentDeliveryError("refused"))])
    assert (record.body, record.reason, record.error_type) == (b"gone", "refused", "PermanentDeliveryError")
    assert ob.buffer.outside == 0 and len(ob) == 0  # ...and its room came back with the failure
    assert ob.stats()["failed"] == 1 and [f.body for f in ob.failed()] == [b"gone"]
    assert ob.flush(5) is False  # a message failed since the previous flush()...
    assert ob.flush(5) is True  # ...said once
