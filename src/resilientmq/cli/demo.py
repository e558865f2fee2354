"""``resilientmq demo``: messages sent through broker outages by a plain client and by ours, counted on the
other side by an independent consumer. Uses the test kit's real brokers (and the MQ simulator)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import stomp
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from resilientmq import (
    ReconnectAwareKafkaProducer,
    ReconnectPolicy,
    ResilientActiveMQConnection,
    ResilientWebSphereMQQueueManager,
)
from resilientmq.testing import ActiveMQBroker, ChaosProxy, mqsim, start_tansu_behind_proxy

__all__ = ["run"]

DemoResult = dict[str, Any]


def run(messages: int, parts: Sequence[str]) -> int:
    """Run the chosen parts of the demonstration and print the tally; 1 if ours lost anything."""
    # The plain clients' tracebacks are the expected failure, not news; keep the table readable.
    logging.basicConfig(level=logging.ERROR, format="  %(name)s: %(message)s")
    for noisy in ("stomp.py", "kafka"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    runners: dict[str, Callable[[int], DemoResult]] = {
        "stomp": _demo_stomp,
        "kafka": _demo_kafka,
        "mq": _demo_mq,
    }
    results = []
    for part in parts:
        if part not in runners:
            print(f"[{part}] not available in this build")
            continue
        print(f"[{part}] running ...", flush=True)
        results.append(runners[part](messages))
    print()
    print(f"{'client':<44}{'sent':>7}{'received':>10}{'lost':>7}{'dups':>7}{'seconds':>9}")
    for r in results:
        for row in r["rows"]:
            print(
                f"{row['client']:<44}{row['sent']:>7}{row['received']:>10}{row['lost']:>7}"
                f"{row['duplicates']:>7}{row['seconds']:>9.1f}"
            )
        print(f"  faults: {r['faults']}")
    ok = all(row["lost"] == 0 for r in results for row in r["rows"] if row.get("ours"))
    print("\nresilientmq lost nothing." if ok else "\nresilientmq LOST MESSAGES: this is a bug.")
    return 0 if ok else 1


def _demo_stomp(messages: int) -> DemoResult:
    """One ActiveMQ, behind a ChaosProxy: resets, refusals and a kill -9 of the broker mid-stream."""
    faults = "connection reset, port refused for 1 s, broker kill -9 + restart"
    rows = []
    with ActiveMQBroker() as broker, ChaosProxy(*broker.host_and_ports[0]) as proxy:

        def inject() -> None:
            pause = threading.Event()
            pause.wait(0.3)
            proxy.cut()
            pause.wait(0.3)
            proxy.down()
            pause.wait(1.0)
            proxy.up()
            pause.wait(0.3)
            broker.kill()
            broker.restart()

        for label, ours in (("stomp.py Connection (plain)", False), ("ResilientActiveMQConnection", True)):
            dest = f"/queue/demo.{'ours' if ours else 'plain'}"
            started = time.monotonic()
            sent = 0
            if ours:
                conn: Any = ResilientActiveMQConnection(
                    [proxy.address],
                    heartbeats=(1000, 1000),
                    reconnect_policy=ReconnectPolicy(initial_delay=0.1, max_delay=1.0, max_attempts=-1),
                )
            else:
                conn = stomp.Connection([proxy.address])
            conn.connect(wait=True)
            chaos = threading.Thread(target=inject)
            chaos.start()
            pace = threading.Event()
            for i in range(messages):
                try:
                    conn.send(dest, f"m{i}", headers={"persistent": "true"})
                    sent += 1
                except Exception:  # the plain client raises once its connection is gone
                    pass
                if i % 50 == 0:
                    pace.wait(0.02)
            chaos.join()
            if ours:
                conn.flush(120)
                conn.close()
            else:
                with contextlib.suppress(Exception):
                    conn.disconnect()
            received = _count_stomp(broker.host_and_ports, dest)
            rows.append(_row(label, ours, messages, received, started))
    return {"rows": rows, "faults": faults}


def _demo_kafka(messages: int) -> DemoResult:
    """tansu (Kafka protocol) advertising a ChaosProxy: a reset, 2 s refused, 3 s blackholed."""
    faults = "connection reset, port refused for 2 s, 3 s silent partition (delivery_timeout_ms=2500)"
    timeouts: dict[str, Any] = {"delivery_timeout_ms": 2500, "request_timeout_ms": 1000, "max_block_ms": 5000}
    rows = []
    broker, proxy = start_tansu_behind_proxy()
    try:
        servers = f"127.0.0.1:{proxy.port}"
        for label, ours in (
            ("kafka-python KafkaProducer (plain)", False),
            ("ReconnectAwareKafkaProducer", True),
        ):
            topic = f"demo-{'ours' if ours else 'plain'}"
            started = time.monotonic()
            if ours:
                producer: Any = ReconnectAwareKafkaProducer(
                    bootstrap_servers=servers, reconnect_interval_seconds=0.5, reconnect_tries=-1, **timeouts
                )
            else:
                producer = KafkaProducer(bootstrap_servers=servers, acks="all", **timeouts)

            def inject() -> None:
                pause = threading.Event()
                pause.wait(0.5)
                proxy.cut()
                pause.wait(0.5)
                proxy.down()
                pause.wait(2.0)
                proxy.up()
                pause.wait(0.5)
                proxy.blackhole()
                pause.wait(3.0)
                proxy.heal()

            chaos = threading.Thread(target=inject)
            chaos.start()
            pace = threading.Event()
            for i in range(messages):
                with contextlib.suppress(Exception):  # the plain producer raises once it cannot get metadata
                    producer.send(topic, b"m%d" % i, key=b"k%d" % (i % 4))
                if i % 30 == 0:
                    pace.wait(0.03)
            chaos.join()
            if ours:
                producer.flush(timeout=60)
                producer.close()
            else:
                with contextlib.suppress(Exception):
                    producer.flush(timeout=10)
                with contextlib.suppress(Exception):
                    producer.close(timeout=2)
            got = _read_kafka(broker.bootstrap_servers, topic)
            rows.append(_row(label, ours, messages, got, started))
    finally:
        proxy.close()
        broker.close()
    return {"rows": rows, "faults": faults}


def _read_kafka(servers: str, topic: str) -> list[bytes]:
    """Every record of ``topic``, read with assign() (no group join), until the log is quiet."""
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    try:
        partitions = None
        deadline = time.monotonic() + 30
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                consumer.poll(200)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: list[bytes] = []
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            batch = consumer.poll(500)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                got.extend(r.value for r in records)
        return got
    finally:
        consumer.close()


def _demo_mq(messages: int) -> DemoResult:
    """IBM MQ on the MQI simulator: the queue manager stopped and connections broken mid-stream."""
    sim = mqsim.Simulator(queue_manager_name="QM1")
    mqi, c = sim.mqi, sim.mqi.CMQC
    where = ("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
    rows = []
    for label, ours in (
        ("ibmmq QueueManager (plain, simulated)", False),
        ("ResilientWebSphereMQQueueManager", True),
    ):
        queue = f"DEMO.{'OURS' if ours else 'PLAIN'}"
        sim.define_queue(queue, max_depth=messages * 2)
        started = time.monotonic()
        policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=-1)
        qm: Any = ResilientWebSphereMQQueueManager(*where, mqi=mqi, reconnect_policy=policy) if ours else None
        q: Any = qm.open_queue(queue, c.MQOO_OUTPUT) if ours else None
        for i in range(messages):
            if i == messages // 3:
                sim.break_connections()
            elif i == messages // 2:
                sim.stop()
            elif i == 2 * messages // 3:
                sim.start()
            try:
                if q is None:
                    qm = mqi.connect(*where)
                    q = mqi.Queue(qm, queue, c.MQOO_OUTPUT)
                q.put(f"m{i}".encode(), mqi.MD(Persistence=c.MQPER_PERSISTENT))
            except mqi.MQMIError:  # the plain client: that message is gone, try a new connection next time
                if not ours:
                    q = None
        if ours:
            qm.flush(60)
            qm.disconnect()
        got = _drain_mq(mqi, where, queue)
        rows.append(_row(label, ours, messages, got, started))
    return {
        "rows": rows,
        "faults": "connections broken (2009), queue manager stopped (2162/2059) and restarted",
    }


def _drain_mq(mqi: Any, where: tuple[str, str, str], queue: str) -> list[bytes]:
    c = mqi.CMQC
    qm = mqi.connect(*where)
    q = mqi.Queue(qm, queue, c.MQOO_INPUT_SHARED)
    got = []
    try:
        while True:
            try:
                got.append(q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_NO_WAIT)))
            except mqi.MQMIError as exc:
                if exc.reason == c.MQRC_NO_MSG_AVAILABLE:
                    return got
                raise
    finally:
        q.close()
        qm.disconnect()


def _row(label: str, ours: bool, sent: int, received: Sequence[object], started: float) -> dict[str, Any]:
    """One line of the demo's table, from what the consumer received."""
    unique = len(set(received))
    return {
        "client": label,
        "ours": ours,
        "sent": sent,
        "received": unique,
        "lost": sent - unique,
        "duplicates": len(received) - unique,
        "seconds": time.monotonic() - started,
    }


def _count_stomp(host_and_ports: list[tuple[str, int]], dest: str) -> list[str]:
    got: list[str] = []
    cond = threading.Condition()

    class Count(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: Any) -> None:
            with cond:
                got.append(frame.body)
                cond.notify_all()

    conn = stomp.Connection(host_and_ports)
    conn.set_listener("count", Count())
    conn.connect(wait=True)
    conn.subscribe(dest, id="count", ack="auto")
    with cond:
        while True:
            before = len(got)
            cond.wait(1.5)
            if len(got) == before:
                break
    conn.disconnect()
    return got
