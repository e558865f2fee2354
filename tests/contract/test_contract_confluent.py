"""The contract for ReconnectAwareConfluentProducer, on tansu (a Kafka-protocol broker).

Tansu advertises a ChaosProxy in front of it, so every connection crosses the proxy (``down()``/``up()`` is
the outage). The independent consumer is a plain confluent-kafka ``Consumer`` with ``assign()`` that counts
by consuming (tansu's end offsets are wrong).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from contract_suite import ClientContract, Refusal

from resilientmq import DestinationError
from resilientmq.confluent import ReconnectAwareConfluentProducer
from resilientmq.testing import ChaosProxy, TansuBroker, free_port

# A silent partition noticed within seconds, and librdkafka's reconnect back-off kept short.
FAST_CONFLUENT: dict[str, Any] = {"socket.timeout.ms": 3000, "reconnect.backoff.max.ms": 500}


class _Contract:
    """The producer as the contract speaks of it. confluent-kafka's ``flush()`` returns how many messages
    are left (kept for drop-in); the contract's ``flush()`` is every client's bool: ``flush_outbox()``."""

    def __init__(self, producer: ReconnectAwareConfluentProducer) -> None:
        self.producer = producer

    def flush(self, timeout: float | None = None) -> bool:
        return self.producer.flush_outbox(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.producer, name)


class TestTansu(ClientContract):
    unknown_kwarg_error = KafkaException  # an unknown keyword is a librdkafka property to confluent-kafka

    tansu: TansuBroker
    proxy: ChaosProxy

    @contextlib.contextmanager
    def broker(self, request: pytest.FixtureRequest) -> Iterator[None]:
        port = free_port()
        workdir = request.getfixturevalue("tmp_path") / "tansu"
        with contextlib.ExitStack() as stack:
            self.proxy = stack.enter_context(ChaosProxy("127.0.0.1", port))
            self.tansu = stack.enter_context(
                TansuBroker(port=port, advertised_port=self.proxy.port, workdir=workdir)
            )
            yield

    def make_client(self, **resilience: Any) -> _Contract:
        """Started means constructed: the constructor never waits for a broker."""
        config = {"bootstrap.servers": f"127.0.0.1:{self.proxy.port}", **FAST_CONFLUENT}
        return _Contract(ReconnectAwareConfluentProducer(config, **resilience))

    def send(self, client: Any, destination: str, body: Any) -> None:
        client.producer.produce(destination, body, partition=0)  # Kafka keeps order per partition: use one

    def new_destination(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}"

    def received(self, destination: str, expect: int) -> list[bytes]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.tansu.bootstrap_servers,
                "group.id": "contract",
                "enable.auto.commit": False,
            }
        )
        records: list[Any] = []
        try:
            deadline = time.monotonic() + 30.0
            partitions: list[int] = []
            while not partitions and time.monotonic() < deadline:
                found = consumer.list_topics(destination, timeout=5).topics.get(destination)
                if found is not None and found.error is None:
                    partitions = sorted(found.partitions)
            if not partitions:
                return []
            consumer.assign([TopicPartition(destination, p, 0) for p in partitions])
            while time.monotonic() < deadline:
                batch = [m for m in consumer.consume(1000, 0.3) if m.error() is None]
                records.extend(batch)
                # Then until a poll comes back empty: duplicates would be in the log by now.
                if not batch and len({r.value() for r in records}) >= expect:
                    break
        finally:
            consumer.close()
        return [r.value() for r in sorted(records, key=lambda r: (r.partition(), r.offset()))]

    def broker_down(self) -> None:
        self.proxy.down()

    def broker_up(self) -> None:
        self.proxy.up()

    def close(self, client: Any) -> None:
        client.producer.close()  # waits up to drain_timeout

    def send_refused(self, client: Any, destination: str) -> Refusal:
        body = b"nowhere"  # the topic exists, with partitions 0..3
        client.producer.produce(destination, body, partition=99)
        return Refusal(body, DestinationError, "Unknown partition")
