"""Kafka (tansu) advertising a ChaosProxy, so every connection crosses it: a reset, the port refused, a
silent partition longer than the producers' delivery timeout. Both producers get the same settings."""

from __future__ import annotations

import contextlib
from typing import Any

from kafka import KafkaProducer

from resilientmq import ReconnectAwareKafkaProducer

from .driver import DemoClient, PartRun, ours
from .kafka_common import LastOutcome, run_through_tansu

__all__ = ["run"]

# The same for both producers: deliveries time out before the silent partition ends, and kafka-python
# tries a refused broker again within a second (its default backs off up to 30 s).
TIMEOUTS: dict[str, Any] = {
    "delivery_timeout_ms": 2500,
    "request_timeout_ms": 1000,
    "max_block_ms": 2000,
    "reconnect_backoff_max_ms": 1000,
}


def run(ctx: PartRun) -> None:
    run_through_tansu(ctx, _clients, "delivery_timeout_ms=2500")


def _clients(servers: str) -> tuple[DemoClient, DemoClient]:
    producer: Any = ReconnectAwareKafkaProducer(
        bootstrap_servers=servers, reconnect_interval_seconds=0.5, reconnect_tries=-1, **TIMEOUTS
    )

    def finish() -> None:
        producer.flush(timeout=60)
        producer.close()

    mine = ours(
        "ReconnectAwareKafkaProducer",
        producer,
        "demo-ours",
        send=lambda i, body: producer.send("demo-ours", body, key=b"k%d" % (i % 4)),
        finish=finish,
    )
    return _plain(servers), mine


def _plain(servers: str) -> DemoClient:
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", **TIMEOUTS)
    outcome = LastOutcome()
    client: DemoClient

    def send(i: int, body: bytes) -> None:
        def delivered(_metadata: Any) -> None:
            client.mark_confirmed()
            outcome.ok()

        def failed(_error: Any) -> None:
            client.mark_failed(i)
            outcome.failed()

        future = producer.send("demo-plain", body, key=b"k%d" % (i % 4))
        future.add_callback(delivered)
        future.add_errback(failed)

    def finish() -> None:
        with contextlib.suppress(Exception):
            producer.flush(timeout=5)  # its deliveries time out after 2.5 s anyway
        with contextlib.suppress(Exception):
            producer.close(timeout=2)

    client = DemoClient(
        "kafka-python KafkaProducer (plain)",
        ours=False,
        destination="demo-plain",
        send=send,
        state=outcome.state,
        finish=finish,
        counts_confirmations=True,
    )
    return client
