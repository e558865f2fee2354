"""confluent-kafka (librdkafka) against tansu behind a ChaosProxy: the Kafka part's faults. Both producers
get the same configuration, with ``message.timeout.ms`` shorter than the silent partition."""

from __future__ import annotations

import threading
from typing import Any

import confluent_kafka

import resilientmq

from .driver import DemoClient, PartRun, ours
from .kafka_common import LastOutcome, run_through_tansu

__all__ = ["run"]


def _config(servers: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": servers,
        "acks": "all",
        "message.timeout.ms": 2500,
        "socket.timeout.ms": 1000,
        "log_level": 0,  # the plain producer's complaints are the expected failure, not news
    }


def run(ctx: PartRun) -> None:
    run_through_tansu(ctx, _clients, "message.timeout.ms=2500")


def _clients(servers: str) -> tuple[DemoClient, DemoClient]:
    producer: Any = resilientmq.ReconnectAwareConfluentProducer(
        _config(servers), reconnect_interval_seconds=0.5, reconnect_tries=-1
    )
    stop = threading.Event()

    def poll_loop() -> None:  # an application's poll thread: serves the delivery callbacks
        while not stop.is_set():
            producer.poll(0.1)

    poller = threading.Thread(target=poll_loop, daemon=True)
    poller.start()

    def finish() -> None:
        stop.set()
        poller.join()
        producer.flush(60)
        close = getattr(producer, "close", None)
        if close is not None:
            close()

    mine = ours(
        "ReconnectAwareConfluentProducer",
        producer,
        "demo-confluent-ours",
        send=lambda i, body: producer.produce("demo-confluent-ours", body, key=b"k%d" % (i % 4)),
        finish=finish,
    )
    return _plain(servers), mine


def _plain(servers: str) -> DemoClient:
    producer = confluent_kafka.Producer(_config(servers))
    outcome = LastOutcome()
    client: DemoClient

    def send(i: int, body: bytes) -> None:
        def delivered(err: Any, _msg: Any) -> None:
            if err is None:
                client.mark_confirmed()
                outcome.ok()
            else:
                client.mark_failed(i)
                outcome.failed()

        producer.produce("demo-confluent-plain", body, key=b"k%d" % (i % 4), on_delivery=delivered)
        producer.poll(0)

    client = DemoClient(
        "confluent_kafka Producer (plain)",
        ours=False,
        destination="demo-confluent-plain",
        send=send,
        state=outcome.state,
        finish=lambda: producer.flush(5),
        counts_confirmations=True,
    )
    return client
