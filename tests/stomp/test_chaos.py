"""Fault injection with counts: refused, reset and blackholed connections, broker kill -9, master/slave
failover, a producer killed -9 with a durable buffer, a client-ack consumer through outages.

Each test counts with an independent plain consumer and asserts lost == 0. On ActiveMQ the ledger tells
what a broken connection had committed, so it also asserts duplicates == 0 (and that the ledger is empty
after a clean close); where a fault can still duplicate (RabbitMQ, whose receipts are per message, or
ActiveMQ with ``ledger=False``) the count is reported in the run's summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stomp
from stomp_support import (
    FAST,
    BrokerTarget,
    Collector,
    Tally,
    browse,
    consume_all,
    ledger_of,
    tally,
    wait_until,
)

from resilientmq import ConnectionState
from resilientmq.stomp import ResilientActiveMQConnection
from resilientmq.testing import ActiveMQBroker, ActiveMQMasterSlave, ChaosProxy

N = 5000


def _paced_send(conn: ResilientActiveMQConnection, dest: str, bodies: list[str], seconds: float) -> None:
    """Send ``bodies`` spread over about ``seconds``, so faults land in the middle of the stream."""
    pause = threading.Event()
    burst = max(1, len(bodies) // max(1, int(seconds / 0.02)))
    for i in range(0, len(bodies), burst):
        for body in bodies[i : i + burst]:
            conn.send(dest, body)
        pause.wait(0.02)


def _faults(proxy: ChaosProxy, stop: threading.Event) -> Callable[[], None]:
    """Cycle reset / refuse / blackhole until ``stop`` (bounded: at most 30 faults)."""

    def run() -> None:
        for i in range(30):
            if stop.wait(0.4):
                return
            kind = i % 3
            if kind == 0:
                proxy.cut()
            elif kind == 1:
                proxy.down()
                stop.wait(0.5)
                proxy.up()
            else:
                proxy.blackhole()  # longer than the 0.75 s heart-beat timeout: must be detected
                stop.wait(1.2)
                proxy.heal()

    return run


def _through_faults(target: BrokerTarget, **kw: Any) -> tuple[Tally, dict[str, int], int]:
    """5,000 messages through cycling faults; (the tally, the client's stats, entries left in its ledger)."""
    conn = target.resilient(**kw)
    target.connect(conn)
    dest = target.destination("chaos")
    bodies = [f"c{i}" for i in range(N)]
    stop = threading.Event()
    chaos = threading.Thread(target=_faults(target.proxy, stop))
    chaos.start()
    try:
        _paced_send(conn, dest, bodies, seconds=6)
    finally:
        stop.set()
        chaos.join()
    target.proxy.heal()
    assert conn.flush(120) is True
    stats = conn.stats()
    conn.close()
    left = len(browse(target, ledger_of(conn))) if target.kind == "activemq" else 0
    return consume_all(target, dest, bodies), stats, left


def test_thousands_of_messages_through_resets_refusals_and_blackholes(
    target: BrokerTarget, chaos_report: Callable[..., None]
) -> None:
    t, stats, left = _through_faults(target)
    chaos_report(
        broker=target.kind, sent=t.sent, lost=t.lost, duplicates=t.duplicates,
        reconnects=stats["reconnects"], resent=stats["resent"], recovered=stats["recovered"],
    )  # fmt: skip
    assert t.lost == 0
    assert t.order_ok, "first deliveries kept the send order"
    assert stats["reconnects"] >= 3
    if target.kind == "activemq":  # RabbitMQ: per-message receipts, a lost one is a re-send
        assert t.duplicates == 0, "the ledger showed what the broker had committed"
        assert left == 0, "a clean close leaves an empty ledger"


def test_with_the_ledger_off_activemq_gets_duplicates(
    activemq: ActiveMQBroker, chaos_proxy: Any, chaos_report: Callable[..., None]
) -> None:
    target = BrokerTarget("activemq", activemq.host_and_ports[0], chaos_proxy(*activemq.host_and_ports[0]))
    t, stats, _left = _through_faults(target, ledger=False)
    chaos_report(
        broker="activemq ledger=False", sent=t.sent, lost=t.lost, duplicates=t.duplicates,
        reconnects=stats["reconnects"], resent=stats["resent"],
    )  # fmt: skip
    assert t.lost == 0 and t.order_ok
    assert stats["recovered"] == 0


def test_broker_killed_and_restarted_mid_stream(
    activemq_fresh: ActiveMQBroker, chaos_report: Callable[..., None]
) -> None:
    broker = activemq_fresh
    conn = ResilientActiveMQConnection(
        broker.host_and_ports, reconnect_policy=FAST, heartbeats=(500, 500), receipt_timeout=5
    )
    conn.connect(wait=True)
    dest = "/queue/chaos.kill9"
    bodies = [f"k{i}" for i in range(N)]
    for body in bodies[: N // 2]:
        conn.send(dest, body)
    broker.kill()  # SIGKILL: whatever was not committed is rolled back; what was, is on disk
    for body in bodies[N // 2 :]:
        conn.send(dest, body)  # buffered while the broker is dead
    assert wait_until(lambda: conn.connection_state is ConnectionState.RECONNECTING, 10)
    broker.restart()
    assert conn.flush(120) is True
    stats = conn.stats()
    conn.close()
    target = BrokerTarget("activemq", broker.host_and_ports[0])
    t = consume_all(target, dest, bodies)
    chaos_report(
        sent=t.sent, lost=t.lost, duplicates=t.duplicates, reconnects=stats["reconnects"],
        recovered=stats["recovered"],
    )  # fmt: skip
    assert t.lost == 0 and t.order_ok
    assert t.duplicates == 0, "what the killed broker had committed was not sent again"


def test_master_slave_failover_mid_stream(
    activemq_master_slave: ActiveMQMasterSlave, chaos_report: Callable[..., None]
) -> None:
    pair = activemq_master_slave
    conn = ResilientActiveMQConnection(
        pair.host_and_ports, reconnect_policy=FAST, heartbeats=(500, 500), receipt_timeout=5
    )
    conn.connect(wait=True)
    first = conn._rmq.supervisor.endpoint
    dest = "/queue/chaos.failover"
    bodies = [f"f{i}" for i in range(N)]
    for body in bodies[: N // 2]:
        conn.send(dest, body)
    pair.kill_master()
    for body in bodies[N // 2 :]:
        conn.send(dest, body)
    new_master = pair.wait_for_failover(timeout=30)
    assert conn.flush(120) is True
    assert conn._rmq.supervisor.endpoint != first  # it failed over to the other address
    stats = conn.stats()
    conn.close()
    target = BrokerTarget("activemq", new_master.host_and_ports[0])
    t = consume_all(target, dest, bodies)
    chaos_report(
        sent=t.sent, lost=t.lost, duplicates=t.duplicates, reconnects=stats["reconnects"],
        recovered=stats["recovered"],
    )  # fmt: skip
    assert t.lost == 0 and t.order_ok
    assert t.duplicates == 0, "the slave has the master's ledger (shared store)"


PRODUCER = textwrap.dedent(
    """
    import sys, threading
    from resilientmq import ReconnectPolicy
    from resilientmq.stomp import ResilientActiveMQConnection
    host, port, path, dest = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=-1)
    conn = ResilientActiveMQConnection([(host, port)], buffer_path=path, buffer_max_messages=100_000,
                                       reconnect_policy=policy, heartbeats=(500, 500), receipt_timeout=5)
    conn.connect(wait=False)
    i = 0
    pace = threading.Event()
    while True:
        conn.send(dest, f"p{i}")
        print(i, flush=True)  # printed once send() returned: the message is in the buffer file
        i += 1
        if i % 100 == 0:
            pace.wait(0.02)  # a steady stream, so some is confirmed before the broker vanishes
    """
)


def test_producer_killed_9_loses_nothing_with_a_durable_buffer(
    activemq: ActiveMQBroker, tmp_path: Path, chaos_report: Callable[..., None]
) -> None:
    proxy = ChaosProxy(*activemq.host_and_ports[0]).start()
    path = str(tmp_path / "outbox.db")
    dest = f"/queue/chaos.producer-kill.{os.getpid()}"
    child = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, "127.0.0.1", str(proxy.port), path, dest],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    acknowledged = -1
    try:
        deadline = time.monotonic() + 60
        while acknowledged < 3000 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
            if acknowledged == 1000:
                proxy.down()  # from here on the child can only buffer
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    acknowledged = max([acknowledged, *(int(x) for x in child.stdout.read().split())])
    assert acknowledged >= 3000, "the child producer did not get going"
    proxy.up()
    # The next run opens the same buffer file and delivers what the killed one left.
    survivor = ResilientActiveMQConnection([proxy.address], buffer_path=path, reconnect_policy=FAST)
    left = survivor.get_buffer_size()
    survivor.connect(wait=True)
    assert survivor.flush(120) is True
    recovered = survivor.stats()["recovered"]
    survivor.close()
    proxy.close()
    expected = [f"p{i}" for i in range(acknowledged + 1)]
    target = BrokerTarget("activemq", activemq.host_and_ports[0])
    t = consume_all(target, dest, expected)
    entries = len(browse(target, ledger_of(survivor)))  # the file's identity: the child's ledger
    chaos_report(
        acknowledged=acknowledged + 1, left_in_file=left, lost=t.lost, duplicates=t.duplicates,
        recovered=recovered, ledger_left=entries,
    )  # fmt: skip
    assert left > 0, "the kill left unconfirmed messages in the file"
    assert t.lost == 0 and t.order_ok
    assert t.duplicates == 0, "nothing ActiveMQ had committed for the killed producer was sent again"
    assert entries == 0, "the next process cleaned the ledger the killed one left"


def test_client_individual_consumer_through_outages_loses_nothing(
    target: BrokerTarget, chaos_report: Callable[..., None]
) -> None:
    dest = target.destination("consumer")
    bodies = [f"a{i}" for i in range(2000)]
    producer = target.plain()
    for body in bodies:
        producer.send(dest, body, headers={"persistent": "true"})
    producer.disconnect()

    conn = target.resilient()
    acked: list[str] = []

    work = threading.Event()  # never set: its wait() stands for the application's processing time

    def ack(frame: Any) -> None:
        work.wait(0.002)
        conn.ack(frame.headers["message-id"], frame.headers["subscription"])
        acked.append(frame.body)

    received = Collector(ack=ack)
    conn.set_listener("app", received)
    target.connect(conn)
    prefetch = {"activemq.prefetchSize": "50", "prefetch-count": "50"}  # ActiveMQ's and RabbitMQ's
    conn.subscribe(dest, id="worker", ack="client-individual", headers=prefetch)
    stop = threading.Event()
    chaos = threading.Thread(target=_faults(target.proxy, stop))
    chaos.start()
    try:
        done = received.wait_for(len(bodies), timeout=90)
    finally:
        stop.set()
        chaos.join()
    target.proxy.heal()
    assert done, f"received {len(set(received.bodies))} of {len(bodies)}"
    received.settle()
    stats = conn.stats()
    conn.close()
    t = tally(bodies, received.bodies)
    leftover = consume_all(target, dest, [])
    chaos_report(
        broker=target.kind, sent=len(bodies), lost=t.lost, redelivered=t.duplicates,
        acks_skipped=stats["acks_skipped"], left_unacked=leftover.received, reconnects=stats["reconnects"],
    )  # fmt: skip
    assert t.lost == 0
    assert stats["reconnects"] >= 1


def test_prefer_primary_moves_back_when_the_primary_returns(activemq: ActiveMQBroker) -> None:
    primary = ChaosProxy(*activemq.host_and_ports[0]).start()
    secondary = ChaosProxy(*activemq.host_and_ports[0]).start()
    try:
        primary.down()
        conn = ResilientActiveMQConnection(
            [primary.address, secondary.address],
            prefer_primary=True,
            primary_probe_interval=0.2,
            reconnect_policy=FAST,
            heartbeats=(500, 500),
        )
        conn.connect(wait=True)
        assert conn._rmq.supervisor.endpoint == secondary.address
        primary.up()
        assert wait_until(
            lambda: conn._rmq.supervisor.endpoint == primary.address and conn.is_connected(), 15
        )
        conn.send("/queue/chaos.primary", "on the primary")
        assert conn.flush(10) is True
        conn.close()
        witness = stomp.Connection(activemq.host_and_ports)
        got = Collector()
        witness.set_listener("c", got)
        witness.connect(wait=True)
        witness.subscribe("/queue/chaos.primary", id="w")
        assert got.wait_for(1, 10)
        witness.disconnect()
    finally:
        primary.close()
        secondary.close()
