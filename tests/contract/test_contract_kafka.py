"""The contract for ReconnectAwareKafkaProducer, on tansu (a Kafka-protocol broker).

Tansu advertises a ChaosProxy in front of it, so every connection crosses the proxy (``down()``/``up()`` is
the outage). The independent consumer is a plain kafka-python ``KafkaConsumer`` with ``assign()`` that counts
by consuming (tansu's ``end_offsets()`` is wrong).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from contract_suite import ClientContract, Refusal
from kafka import KafkaConsumer, TopicPartition

from resilientmq import DestinationError, ReconnectAwareKafkaProducer
from resilientmq.testing import ChaosProxy, TansuBroker, free_port

# Short kafka-python timeouts, so that its own retries and waits end within an outage of a second or two.
FAST_KAFKA: dict[str, Any] = {
    "delivery_timeout_ms": 2500,
    "request_timeout_ms": 1000,
    "reconnect_backoff_max_ms": 500,
}


class TestTansu(ClientContract):
    unknown_kwarg_error = ValueError  # KafkaProducer's own answer to an unknown config; kept for drop-in

    tansu: TansuBroker
    proxy: ChaosProxy

    @contextlib.contextmanager
    def broker(self, request: pytest.FixtureRequest) -> Iterator[None]:
        port = free_port()
        workdir = request.getfixturevalue("tmp_path") / "tansu"
        with contextlib.ExitStack() as stack:
            self.proxy = stack.enter_context(ChaosProxy("127.0.0.1", port))  # its port is known once started
            self.tansu = stack.enter_context(
                TansuBroker(port=port, advertised_port=self.proxy.port, workdir=workdir)
            )
            yield

    def make_client(self, **resilience: Any) -> ReconnectAwareKafkaProducer:
        """Started means constructed: the constructor never waits for a broker."""
        servers = f"127.0.0.1:{self.proxy.port}"
        return ReconnectAwareKafkaProducer(bootstrap_servers=servers, **FAST_KAFKA, **resilience)

    def send(self, client: Any, destination: str, body: Any) -> None:
        client.send(destination, body, partition=0)  # Kafka keeps order per partition: use one

    def new_destination(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}"

    def received(self, destination: str, expect: int) -> list[bytes]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.tansu.bootstrap_servers, enable_auto_commit=False, request_timeout_ms=5000
        )
        records: list[Any] = []
        try:
            deadline = time.monotonic() + 30.0
            partitions = consumer.partitions_for_topic(destination)
            while partitions is None and time.monotonic() < deadline:
                consumer.poll(200)  # drives the metadata refresh
                partitions = consumer.partitions_for_topic(destination)
            if partitions is None:
                return []
            tps = [TopicPartition(destination, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            while time.monotonic() < deadline:
                batch = consumer.poll(300)
                for rs in batch.values():
                    records.extend(rs)
                # Then until a poll comes back empty: duplicates would be in the log by now.
                if not batch and len({r.value for r in records}) >= expect:
                    break
        finally:
            consumer.close()
        return [r.value for r in sorted(records, key=lambda r: (r.partition, r.offset))]

    def broker_down(self) -> None:
        self.proxy.down()

    def broker_up(self) -> None:
        self.proxy.up()

    def close(self, client: Any) -> None:
        client.close()  # waits up to drain_timeout

    def send_refused(self, client: Any, destination: str) -> Refusal:
        body = b"nowhere"  # the topic exists, with partitions 0..3
        client.send(destination, body, partition=99)
        return Refusal(body, DestinationError, "Unrecognized partition 99")
