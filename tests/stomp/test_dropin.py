"""stomp.py drop-in exactness (issue 13): the events and receipts a listener is owed, the bytes a str body
becomes, and ``conn.transport``, each next to plain ``stomp.Connection`` doing the same. The races get a
pause injected at the racy point: a listener that blocks on an Event the test releases."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import stomp
from stomp_support import BrokerTarget, Collector, consume_all, wait_until

from resilientmq.stomp import ResilientActiveMQConnection
from resilientmq.testing import ChaosProxy

Event = tuple[str, Any]


class Recorder(stomp.ConnectionListener):  # type: ignore[misc]
    """Records the callbacks stomp.py promises; optionally blocks once in ``pause_on`` until released."""

    def __init__(self, pause_on: str | None = None) -> None:
        self.log: list[tuple[str, Any, threading.Thread]] = []  # each event, with the thread it came on
        self.lock = threading.Lock()
        self.pause_on = pause_on
        self.reached = threading.Event()
        self.release = threading.Event()

    def _record(self, name: str, detail: Any = None) -> None:
        with self.lock:
            self.log.append((name, detail, threading.current_thread()))
        if name == self.pause_on and not self.reached.is_set():
            self.reached.set()
            self.release.wait(15)

    def on_connecting(self, host_and_port: Any) -> None:
        self._record("connecting")

    def on_connected(self, frame: Any) -> None:
        self._record("connected")

    def on_message(self, frame: Any) -> None:
        self._record("message", frame.body)

    def on_receipt(self, frame: Any) -> None:
        self._record("receipt", frame.headers["receipt-id"])

    def on_error(self, frame: Any) -> None:
        self._record("error", frame.headers.get("message"))

    def on_heartbeat_timeout(self) -> None:
        self._record("heartbeat_timeout")

    def on_disconnected(self) -> None:
        self._record("disconnected")

    @property
    def events(self) -> list[Event]:
        with self.lock:
            return [(name, detail) for name, detail, _ in self.log]

    def named(self, *names: str) -> list[Event]:
        return [e for e in self.events if e[0] in names]

    def of_first_connection(self, *names: str) -> list[Event]:
        """Like :meth:`named`, only what came from the first connection's receiver and heart-beat threads
        (the adapter's next attempts may start while that connection's last callbacks still run)."""
        with self.lock:
            io = next(t for name, _, t in self.log if name == "connected")
            beat = [t for name, _, t in self.log if name == "heartbeat_timeout"]
            mine = {io, *beat[:1]}
            return [(name, d) for name, d, t in self.log if name in names and t in mine]

    def has(self, event: Event) -> Callable[[], bool]:
        return lambda: event in self.named(event[0])

    def counted(self, name: str, n: int) -> Callable[[], bool]:
        return lambda: len(self.named(name)) == n


def _once(events: list[Event]) -> list[Event]:
    """``events`` with repeats in a row collapsed."""
    return [e for i, e in enumerate(events) if i == 0 or events[i - 1] != e]


def _plain(address: tuple[str, int], **kw: Any) -> stomp.Connection:
    return stomp.Connection([address], **kw)


# -- point 1: a receipt given to subscribe() --------------------------------------------------------------
def test_a_subscribe_receipt_is_answered_once_and_not_again_after_a_reconnect(target: BrokerTarget) -> None:
    dest, early_dest = target.destination("sub"), target.destination("early")
    plain, plain_seen = _plain(target.address), Recorder()
    plain.set_listener("app", plain_seen)
    target.connect(plain)
    plain.subscribe(dest, id="s1", ack="auto", receipt="sub-1")
    assert wait_until(plain_seen.has(("receipt", "sub-1")), 10), "stomp.py itself got no receipt"
    plain.disconnect()

    conn, seen = target.resilient(), Recorder()
    conn.set_listener("app", seen)
    # Before connect(): the first connection's SUBSCRIBE carries it.
    conn.subscribe(early_dest, id="early", ack="auto", receipt="sub-early")
    target.connect(conn)
    conn.subscribe(dest, id="s1", ack="auto", receipt="sub-1")  # answered by the broker, as with stomp.py
    assert wait_until(lambda: len(seen.named("receipt")) == 2, 10), seen.events
    assert seen.named("receipt") == [("receipt", "sub-early"), ("receipt", "sub-1")]

    # The same subscription again (the classic re-subscribe in on_connected): it is in place; answered.
    conn.subscribe(dest, id="s1", ack="auto", receipt="sub-again")
    assert wait_until(seen.has(("receipt", "sub-again")), 10), seen.events

    # Replayed after a reconnect: with the adapter's own receipt, so the user's is not answered again.
    assert target.proxy is not None
    reconnects = conn.stats()["reconnects"]
    target.proxy.cut()
    assert wait_until(lambda: conn.stats()["reconnects"] > reconnects and conn.is_connected(), 15)
    conn.send(dest, "after the reconnect")
    assert wait_until(seen.has(("message", "after the reconnect")), 10), "the subscription was not replayed"
    assert seen.named("receipt") == [("receipt", "sub-early"), ("receipt", "sub-1"), ("receipt", "sub-again")]
    conn.close()


# -- point 2: disconnect(receipt=...) ---------------------------------------------------------------------
def test_the_disconnect_receipt_comes_after_on_disconnected_even_when_the_listener_is_slow(
    target: BrokerTarget,
) -> None:
    # stomp.py fires on_disconnected while it handles the DISCONNECT receipt, then delivers the receipt.
    plain, plain_seen = _plain(target.address), Recorder()
    plain.set_listener("app", plain_seen)
    target.connect(plain)
    plain.disconnect(receipt="bye")
    assert wait_until(plain_seen.has(("receipt", "bye")), 10)
    expected = plain_seen.named("disconnected", "receipt")
    assert expected == [("disconnected", None), ("receipt", "bye")]

    # Ours, with stomp.py's thread held between the two until disconnect() has returned.
    conn, seen = target.resilient(), Recorder(pause_on="disconnected")
    conn.set_listener("app", seen)
    target.connect(conn)
    conn.disconnect(receipt="bye")
    assert seen.reached.wait(10), "no on_disconnected"
    seen.release.set()
    assert wait_until(seen.has(("receipt", "bye")), 5), f"the DISCONNECT receipt never came: {seen.events}"
    assert seen.named("disconnected", "receipt") == expected
    conn.close()
    assert seen.named("disconnected", "receipt") == expected  # close() after disconnect() adds nothing


def test_disconnect_without_a_receipt_shows_stomp_pys_generated_one_after_earlier_receipts(
    target: BrokerTarget,
) -> None:
    dest = f"/topic/rmq-test.receipts.{uuid.uuid4().hex[:10]}"  # nobody listens: only the receipt counts
    for conn in (_plain(target.address), target.resilient()):
        seen = Recorder()
        conn.set_listener("app", seen)
        target.connect(conn)
        conn.send(dest, "last words", receipt="last")
        if isinstance(conn, ResilientActiveMQConnection):
            assert conn.flush(10) is True
        else:
            assert wait_until(seen.has(("receipt", "last")), 10)
        conn.disconnect()
        assert wait_until(seen.counted("receipt", 2), 10), (type(conn).__name__, seen.events)
        events = seen.named("disconnected", "receipt")
        assert events[0] == ("receipt", "last") and [e[0] for e in events[1:]] == ["disconnected", "receipt"]
        if isinstance(conn, ResilientActiveMQConnection):
            conn.close()


# -- point 3: on_heartbeat_timeout -----------------------------------------------------------------------
def test_every_listener_gets_on_heartbeat_timeout_while_the_adapter_reconnects(target: BrokerTarget) -> None:
    expected = [("disconnected", None), ("heartbeat_timeout", None)]
    assert target.proxy is not None
    proxy = ChaosProxy(*target.address).start()  # plain stomp.py's own, partitioned at the same time
    try:
        plain = _plain(proxy.address, heartbeats=(500, 500))
        plain_a, plain_b = Recorder(), Recorder()
        plain.set_listener("a", plain_a)
        plain.set_listener("b", plain_b)
        target.connect(plain)
        # Ours: "a" holds stomp.py's heart-beat thread inside its loop over the listeners until the adapter
        # has replaced the dead connection (and a listener was added meanwhile); "b" comes next in that loop.
        conn = target.resilient()  # heart-beats of 500 ms
        first, second = Recorder(pause_on="heartbeat_timeout"), Recorder()
        conn.set_listener("a", first)
        conn.set_listener("b", second)
        target.connect(conn)
        proxy.blackhole()
        target.proxy.blackhole()
        assert first.reached.wait(10), f"no on_heartbeat_timeout: {first.events}"
        target.proxy.heal()
        assert wait_until(lambda: conn.stats()["reconnects"] >= 1 and conn.is_connected(), 15)
        conn.set_listener("c", Recorder())
        first.release.set()
        assert wait_until(second.has(("heartbeat_timeout", None)), 5), f"'b' missed it: {second.events}"
        assert wait_until(plain_b.has(("heartbeat_timeout", None)), 10), plain_b.events
    finally:
        proxy.close()
    # stomp.py's heart-beat and receiver threads may both report the end: once or twice, then the timeout.
    assert _once(plain_a.named("disconnected", "heartbeat_timeout")) == expected
    assert _once(plain_b.named("disconnected", "heartbeat_timeout")) == expected
    # Ours: once, from that connection's threads (the next connection's callbacks interleave).
    assert first.of_first_connection("disconnected", "heartbeat_timeout") == expected
    assert second.of_first_connection("disconnected", "heartbeat_timeout") == expected
    assert len(first.named("heartbeat_timeout")) == len(second.named("heartbeat_timeout")) == 1
    conn.close()


# -- point 4: str bodies and encoding= -----------------------------------------------------------------
def test_a_str_body_is_the_same_bytes_as_stomp_pys_and_reads_back(target: BrokerTarget) -> None:
    texts = ["héllo wörld ✓", "lone \udc80 surrogate"]
    wire, back = (
        target.destination("wire"),
        {"plain": target.destination("p"), "ours": target.destination("o")},
    )
    read_back: dict[str, list[str]] = {}
    for kind in ("plain", "ours"):
        if kind == "plain":
            conn = _plain(target.address, encoding="utf-16")
            target.connect(conn)
        else:
            conn = target.resilient(encoding="utf-16")
            target.connect(conn)
        mine = Collector()
        conn.set_listener("app", mine)
        conn.subscribe(back[kind], id="back", ack="auto")
        for text in texts:
            conn.send(wire, text)
            conn.send(back[kind], text)
        assert mine.wait_for(len(texts), 10), kind
        read_back[kind] = list(mine.bodies)
        if kind == "ours":
            assert conn.flush(10) is True
            conn.close()
        else:
            conn.disconnect()

    raw = stomp.Connection([target.address], auto_decode=False)
    collector = Collector()
    raw.set_listener("raw", collector)
    target.connect(raw)
    raw.subscribe(wire, id="raw", ack="auto")
    assert collector.wait_for(len(texts), 15)
    assert wait_until(lambda: len(collector.frames) == 2 * len(texts), 10)
    raw.disconnect()
    frames = [(f.body, f.headers.get("content-length")) for f in collector.frames]
    plain_bytes, our_bytes = frames[: len(texts)], frames[len(texts) :]
    assert our_bytes == plain_bytes  # what stomp.py 9 writes: UTF-8 whatever encoding= says
    assert [b for b, _ in our_bytes] == [t.encode("utf-8", errors="replace") for t in texts]
    assert read_back["ours"] == read_back["plain"] == ["héllo wörld ✓", "lone ? surrogate"]


# -- point 5: conn.transport ----------------------------------------------------------------------------
def _write_through(transport: Any, destination: str, body: str) -> None:
    transport.transmit(stomp.utils.Frame("SEND", {"destination": destination, "persistent": "true"}, body))


def test_conn_transport_is_the_live_connections_transport_and_changes_on_reconnect(
    target: BrokerTarget,
) -> None:
    dest = target.destination()
    plain = _plain(target.address)
    target.connect(plain)
    _write_through(plain.transport, dest, "through stomp.py's transport")
    plain.disconnect()

    assert target.proxy is not None
    conn = target.resilient()
    placeholder = conn.transport
    target.proxy.down()
    conn.connect(target.user, target.password, wait=False)
    assert wait_until(lambda: conn.stats()["connect_attempts"] >= 3, 10)
    assert conn.transport is placeholder  # no connection yet: failed attempts do not show through
    target.proxy.up()
    assert wait_until(conn.is_connected, 15)
    first = conn.transport
    assert first is not placeholder and first.is_connected()
    _write_through(first, dest, "through the first transport")

    attempts = conn.stats()["connect_attempts"]
    target.proxy.down()
    assert wait_until(lambda: conn.stats()["connect_attempts"] >= attempts + 2, 10)
    assert conn.transport is first and not first.is_connected()  # the last live one, until a new one is up
    target.proxy.up()
    assert wait_until(conn.is_connected, 15)
    second = conn.transport
    assert second is not first and second.is_connected()
    _write_through(second, dest, "through the second transport")
    conn.close()
    expected = ["through stomp.py's transport", "through the first transport", "through the second transport"]
    assert consume_all(target, dest, expected).lost == 0


# -- listeners added after connecting --------------------------------------------------------------------
def test_a_listener_set_after_connecting_sees_no_receipts_of_the_adapter(target: BrokerTarget) -> None:
    conn = target.resilient()
    target.connect(conn)
    late = Recorder()
    conn.set_listener("late", late)
    dest = target.destination()
    conn.subscribe(dest, id="1", ack="auto")
    conn.send_batch(dest, [f"m{i}" for i in range(50)])
    conn.send(dest, "with a receipt", receipt="user-receipt-1")
    assert conn.flush(15) is True
    assert wait_until(lambda: len(late.named("message")) == 51, 10)
    assert wait_until(late.has(("receipt", "user-receipt-1")), 5)
    assert late.named("receipt") == [("receipt", "user-receipt-1")]

    # Removed, it hears nothing more; removing it again raises KeyError, as with stomp.py.
    conn.remove_listener("late")
    with pytest.raises(KeyError):
        _plain(target.address).remove_listener("late")
    with pytest.raises(KeyError):
        conn.remove_listener("late")
    witness = Recorder()
    conn.set_listener("witness", witness)
    conn.send(dest, "after the removal")
    assert wait_until(witness.has(("message", "after the removal")), 10)
    assert ("message", "after the removal") not in late.events
    conn.close()
