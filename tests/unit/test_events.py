"""Structured events: the reconnect listener's events and the outbox's decisions as log records of one
logger per client, their fields in ``extra``, shipped as JSON lines by a JSON formatter."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from resilientmq import BufferFullError, ConnectionLostError, PermanentDeliveryError, ReconnectPolicy
from resilientmq.core.buffer import Envelope, NewMessage
from resilientmq.core.client import ClientCore
from resilientmq.core.options import ResilienceOptions
from resilientmq.core.session import BatchRejectedError, BatchResult, LossReporter
from resilientmq.core.supervisor import Endpoints
from resilientmq.core.telemetry import LOGGER_PREFIX, JsonFormatter
from resilientmq.testing import wait_until

FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=-1, jitter=0)


class Shipped:
    """A JSON-lines handler on ``resilientmq.client``: what a log shipper would receive."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.lock = threading.Lock()

    def records(self, client: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            lines = self.stream.getvalue().splitlines()
        out = [json.loads(line) for line in lines]
        return [r for r in out if client is None or r["client"] == client]

    def events(self, client: str) -> list[str]:
        return [r["event"] for r in self.records(client)]

    def first(self, client: str, event: str) -> dict[str, Any]:
        return next(r for r in self.records(client) if r["event"] == event)


@pytest.fixture
def shipped() -> Iterator[Shipped]:
    s = Shipped()
    logger = logging.getLogger(LOGGER_PREFIX)
    saved = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(s.handler)
    yield s
    logger.removeHandler(s.handler)
    logger.setLevel(saved)


class Session:
    def __init__(self, broker: Broker, epoch: int) -> None:
        self.broker = broker
        self.epoch = epoch

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        return self.broker.transmit(batch)

    def close(self) -> None:
        pass


class Broker:
    """A scripted broker: refuses connections while ``down``, rejects ``reject`` bodies, and leaves batches
    unanswered while ``silent``."""

    def __init__(self) -> None:
        self.down_for = 0  # refuse this many connection attempts
        self.reject: set[bytes] = set()
        self.silent = False
        self.lost: LossReporter | None = None
        self.delivered: list[bytes] = []

    def open(self, endpoint: str, epoch: int, lost: LossReporter) -> Session:
        if self.down_for:
            self.down_for -= 1
            raise ConnectionLostError(f"{endpoint}: connection refused")
        self.lost = lost
        return Session(self, epoch)

    def cancel(self) -> None:
        pass

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        future: Future[BatchResult] = Future()
        if self.silent:
            return future  # a silent partition: never answered
        bad = [e for e in batch if e.body in self.reject]
        if bad and len(batch) > 1:
            future.set_exception(BatchRejectedError("ERROR frame naming no message"))
        elif bad:
            future.set_exception(BatchRejectedError("rejected", PermanentDeliveryError("forbidden")))
        else:
            self.delivered.extend(e.body for e in batch)
            future.set_result(BatchResult())
        return future


def core(broker: Broker, name: str, **kw: Any) -> ClientCore[str, Session]:
    confirm_timeout = kw.pop("confirm_timeout", 30.0)
    options = ResilienceOptions.from_kwargs({"reconnect_policy": FAST, **kw})
    return ClientCore(name, options, broker, Endpoints(["broker-a"]), confirm_timeout=confirm_timeout)


def put(c: ClientCore[str, Session], *bodies: bytes) -> None:
    c.outbox.put([NewMessage("/queue/q", b) for b in bodies])


def test_reconnect_events_go_out_as_json_with_their_fields_in_order(shipped: Shipped) -> None:
    broker = Broker()
    c = core(broker, "orders-events")
    try:
        c.supervisor.connect()
        broker.down_for = 1  # the first reconnect attempt is refused, the second gets through
        assert broker.lost is not None
        broker.lost(ConnectionLostError("reset by peer"))
        wait_until(lambda: "reconnected" in shipped.events(c.label), what="the reconnected event")
    finally:
        c.close(0)
    events = [e for e in shipped.events(c.label) if e != "state_changed"]
    assert events[:6] == [
        "connected",
        "connection_lost",
        "reconnecting",
        "attempt_failed",
        "reconnecting",
        "reconnected",
    ]
    records = shipped.records(c.label)
    assert {r["logger"] for r in records} == {f"{LOGGER_PREFIX}.{c.label}"}
    assert all(r["broker"] == "test_events" for r in records)  # the connector's own package
    lost = shipped.first(c.label, "connection_lost")
    assert lost["level"] == "WARNING" and lost["reason"] == "reset by peer"
    assert lost["error_type"] == "ConnectionLostError"
    failed = shipped.first(c.label, "attempt_failed")
    assert (failed["attempt"], failed["endpoint"]) == (1, "broker-a")
    assert failed["reason"] == "broker-a: connection refused"
    second = [r for r in records if r["event"] == "reconnecting"][1]
    assert second["attempt"] == 2 and second["delay"] > 0
    assert shipped.first(c.label, "reconnected")["endpoint"] == "broker-a"
    states = [(r["old_state"], r["state"]) for r in records if r["event"] == "state_changed"]
    assert ("connected", "reconnecting") in states and ("reconnecting", "connected") in states


def test_the_outbox_s_decisions_go_out_as_json(shipped: Shipped) -> None:
    broker = Broker()
    broker.reject = {b"bad"}
    c = core(broker, "outbox-events")
    try:
        c.supervisor.connect()
        put(c, b"a", b"bad", b"c")
        assert c.outbox.flush(5) is False  # one failed
        wait_until(lambda: "failed" in shipped.events(c.label), what="the failed event")
    finally:
        c.close(0)
    isolating = shipped.first(c.label, "isolating")
    assert isolating["level"] == "WARNING" and isolating["first_seq"] == 1 and isolating["last_seq"] == 3
    failed = shipped.first(c.label, "failed")
    (record,) = c.buffer.failed()
    assert failed["level"] == "ERROR"
    assert (failed["id"], failed["seq"], failed["destination"]) == (record.id, 2, "/queue/q")
    assert (failed["reason"], failed["error_type"]) == ("forbidden", "PermanentDeliveryError")


def test_unanswered_batches_are_resent_and_both_decisions_are_told(shipped: Shipped) -> None:
    broker = Broker()
    broker.silent = True
    c = core(broker, "silent-events", confirm_timeout=0.2)
    try:
        c.supervisor.connect()
        put(c, b"x", b"y")
        wait_until(lambda: "unanswered" in shipped.events(c.label), what="the unanswered event")
        broker.silent = False
        assert c.outbox.flush(5) is True
    finally:
        c.close(0)
    unanswered = shipped.first(c.label, "unanswered")
    assert unanswered["count"] == 2 and unanswered["timeout"] == 0.2
    resending = shipped.first(c.label, "resending")
    assert (resending["first_seq"], resending["last_seq"]) == (1, 2)
    assert resending["reason"].startswith("new connection #")
    assert broker.delivered == [b"x", b"y"]


def test_buffer_overflow_decisions_are_told(shipped: Shipped) -> None:
    broker = Broker()
    dropping = core(broker, "drop-events", buffer_max_messages=2, buffer_overflow="drop_oldest")
    raising = core(broker, "full-events", buffer_max_messages=1, buffer_overflow="raise")
    try:  # never connected: everything stays in the outbox
        put(dropping, b"1", b"2")
        put(dropping, b"3")
        put(raising, b"1")
        with pytest.raises(BufferFullError):
            put(raising, b"2")
    finally:
        dropping.close(0)
        raising.close(0)
    dropped = shipped.first(dropping.label, "dropped")
    assert dropped["count"] == 1 and dropped["level"] == "WARNING"
    full = shipped.first(raising.label, "buffer_full")
    assert full["count"] == 1 and "buffer full" in full["reason"]
    closed = shipped.first(dropping.label, "closed_unconfirmed")
    assert closed["count"] == 2 and closed["reason"] == "lost with this process"


def test_clients_with_one_name_log_under_distinct_labels(shipped: Shipped) -> None:
    broker = Broker()
    first, second = core(broker, "twin"), core(broker, "twin")
    try:
        assert (first.label, second.label) == ("twin", "twin#2")
        first.supervisor.connect()
        second.supervisor.connect()
        wait_until(lambda: "connected" in shipped.events("twin#2"), what="the second client's event")
    finally:
        first.close(0)
        second.close(0)
    assert shipped.first("twin#2", "connected")["logger"] == f"{LOGGER_PREFIX}.twin#2"
    third = core(broker, "twin")  # the name is free again once its client is closed
    third.close(0)
    assert third.label == "twin"


def test_a_real_client_s_events_through_a_cut_connection(
    shipped: Shipped, activemq_behind_proxy: tuple[Any, Any]
) -> None:
    from resilientmq import ResilientActiveMQConnection  # noqa: PLC0415

    _broker, proxy = activemq_behind_proxy
    conn = ResilientActiveMQConnection(
        [proxy.address], name="events-stomp", heartbeats=(0, 0), reconnect_policy=FAST
    )
    try:
        conn.connect(wait=True)
        conn.send("/queue/events.cut", "before")
        assert conn.flush(10)
        proxy.cut()
        conn.send("/queue/events.cut", "after")
        assert conn.flush(20)
        wait_until(lambda: "reconnected" in shipped.events("events-stomp"), what="reconnected")
    finally:
        conn.disconnect()
    events = [e for e in shipped.events("events-stomp") if e != "state_changed"]
    assert events[:2] == ["connected", "connection_lost"]
    assert "reconnected" in events
    endpoint = f"('127.0.0.1', {proxy.port})"
    assert shipped.first("events-stomp", "connected")["endpoint"] == endpoint
    assert shipped.first("events-stomp", "reconnected")["endpoint"] == endpoint
    assert all(r["broker"] == "stomp" for r in shipped.records("events-stomp"))
