"""The demo's parts: one entry each. A part is a module with a ``run(ctx)`` function (see
:mod:`.driver`: it builds its broker and two clients, streams and tallies); ``requires`` names the public
class it shows, and a part whose class this build does not have is listed as unavailable rather than
failing."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["PARTS", "Part", "default_parts"]


@dataclass(frozen=True)
class Part:
    key: str
    """The name ``--only`` takes."""
    title: str
    module: str
    """The module with the part's ``run``: relative to this package (``.part_stomp``) or absolute."""
    requires: str
    """The ``resilientmq`` name the part demonstrates."""

    def missing(self) -> str | None:
        """Why this part cannot run in this build, or None."""
        try:
            getattr(importlib.import_module("resilientmq"), self.requires)
        except (ImportError, AttributeError) as exc:
            return f"{self.requires} is not available ({exc})"
        return None


PARTS: dict[str, Part] = {
    p.key: p
    for p in (
        Part("stomp", "STOMP · ActiveMQ", ".part_stomp", "ResilientActiveMQConnection"),
        Part("kafka", "Kafka · kafka-python", ".part_kafka", "ReconnectAwareKafkaProducer"),
        Part("confluent", "Kafka · confluent-kafka", ".part_confluent", "ReconnectAwareConfluentProducer"),
        Part("mq", "IBM MQ · simulated queue manager", ".part_mq", "ResilientWebSphereMQQueueManager"),
    )
}


def default_parts() -> list[str]:
    """Every part this build can run, in catalog order."""
    return [key for key, part in PARTS.items() if part.missing() is None]
