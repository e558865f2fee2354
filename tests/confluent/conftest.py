"""Fixtures for the confluent-kafka suite: tansu behind a ChaosProxy, producers closed at teardown, topics."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_support import FAST_CONFLUENT, FAST_RECONNECT, KafkaBed, ProducerFactory

from resilientmq.confluent import ReconnectAwareConfluentProducer
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
    """``make_producer(config=None, **resilience)``: a producer bootstrapping through the proxy."""
    made: list[ReconnectAwareConfluentProducer] = []

    def make(config: dict[str, Any] | None = None, **kwargs: Any) -> ReconnectAwareConfluentProducer:
        settings = {"bootstrap.servers": bed.servers, **FAST_CONFLUENT, **(config or {})}
        producer = ReconnectAwareConfluentProducer(settings, **{**FAST_RECONNECT, **kwargs})
        made.append(producer)
        return producer

    try:
        yield make
    finally:
        for producer in made:
            producer.close(0)
