"""Fixtures for the Kafka suite: tansu behind a ChaosProxy, producers closed at teardown, fresh topics."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka_support import FAST_KAFKA, FAST_RECONNECT, KafkaBed, ProducerFactory

from resilientmq import ReconnectAwareKafkaProducer
from resilientmq.testing import ChaosProxy, TansuBroker


@pytest.fixture
def bed(tansu_behind_proxy: tuple[TansuBroker, ChaosProxy]) -> KafkaBed:
    broker, proxy = tansu_behind_proxy
    return KafkaBed(broker, proxy)


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)[:80]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_producer(bed: KafkaBed) -> Iterator[ProducerFactory]:
    """``make_producer(**kwargs)``: a producer bootstrapping through the proxy, with short timeouts."""
    made: list[ReconnectAwareKafkaProducer] = []

    def make(**kwargs: Any) -> ReconnectAwareKafkaProducer:
        options = {"bootstrap_servers": bed.servers, **FAST_KAFKA, **FAST_RECONNECT, **kwargs}
        producer = ReconnectAwareKafkaProducer(**options)
        made.append(producer)
        return producer

    try:
        yield make
    finally:
        for producer in made:
            producer.close(timeout=0)
