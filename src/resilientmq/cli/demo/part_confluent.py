"""confluent-kafka (librdkafka) against tansu behind a ChaosProxy: the Kafka part's faults. Both producers
get the same configuration, with ``message.timeout.ms`` shorter than the silent partition."""

from __future__ import annotations

import threading
from typing import Any

import confluent_kafka

import resilientmq

from .driver import DemoClient, PartRun, Step, ours
from .kafka_common import LastOutcome, kafka_script, read_topic

__all__ = ["run"]

DURATION = 14.0


def _config(servers: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": servers,
        "acks": "all",
        "message.timeout.ms": 2500,
        "socket.timeout.ms": 1000,
        "log_level": 0,  # the plain producer's complaints are the expected failure, not news
    }


def run(ctx: PartRun) -> None:
    from resilientmq.testing import start_tansu_behind_proxy  # noqa: PLC0415

    broker, proxy = start_tansu_behind_proxy()
    try:
        servers = f"127.0.0.1:{proxy.port}"
        plain = _plain(servers)
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
        steps: list[Step] = kafka_script(proxy, "message.timeout.ms=2500")
        ctx.stream([plain, mine], steps, DURATION)
        for client in (plain, mine):
            ctx.tally(client, read_topic(broker.bootstrap_servers, client.destination))
    finally:
        proxy.close()
        broker.close()


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
