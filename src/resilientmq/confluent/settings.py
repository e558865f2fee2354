"""The user's configuration dict, read once: what each librdkafka instance gets, and what stays ours.

confluent-kafka takes a librdkafka configuration dict (plus keyword arguments merged into it). Most of it is
handed to every producer instance unchanged, so every property keeps its meaning. What is decided here:

- The Python callbacks (``on_delivery``, ``error_cb``, ``stats_cb``, ``throttle_cb``) are the *user's*: they
  are called from the user's ``poll()``/``flush()``; the instances get ours. ``logger`` and ``oauth_cb`` are
  handed over as they are (librdkafka needs their answers at once; they run on our polling thread).
- ``enable.idempotence`` is on unless the configuration says otherwise or cannot have it (``acks`` other
  than ``all``, more than 5 requests in flight, ``retries=0``), where librdkafka would refuse it.
- ``message.timeout.ms`` is 0 (infinite) unless given: one instance then retries with the same producer id
  and sequence numbers for as long as it lives, and the broker drops the copies it already has. An explicit
  value keeps its meaning for one attempt: a message that times out is produced again, not reported.
- ``delivery.report.only.error`` applies to the user's callbacks only: we need every report.
- ``statistics.interval.ms`` is the user's when set, else 1 s: the statistics tell us when the broker lost
  this producer's state (its producer epoch moves), and are passed on only if the user asked for them.
- ``transactional.id`` is refused: a message re-sent after an outage would leave its transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ProducerSettings"]

_NAMES = itertools.count(1)
_DEFAULT_STATS_INTERVAL_MS = 1000
_DEFAULT_SOCKET_TIMEOUT_MS = 60_000
_DEFAULT_SETUP_TIMEOUT_MS = 30_000
_DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
_DEFAULT_QUEUE_MESSAGES = 100_000
# The connection and security properties a verifying consumer shares with the producer.
_SHARED_PREFIXES = (
    "bootstrap.servers",
    "metadata.broker.list",
    "security.",
    "ssl.",
    "sasl.",
    "socket.",
    "broker.",
    "api.version",
    "client.dns.lookup",
    "client.rack",
    "reconnect.backoff",
    "connections.max.idle.ms",
    "resolve_cb",
    "logger",
    "oauth_cb",
)
_OURS = ("on_delivery", "error_cb", "stats_cb", "throttle_cb", "delivery.report.only.error")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default  # librdkafka refuses it when the instance is built, with its own words


@dataclass(frozen=True)
class ProducerSettings:
    """One producer's configuration, split into what librdkafka gets and what we keep."""

    config: Mapping[str, Any]
    """The user's configuration without the callbacks we route (see the module docstring)."""
    name: str
    bootstrap: str
    on_delivery: Callable[..., Any] | None
    error_cb: Callable[..., Any] | None
    stats_cb: Callable[..., Any] | None
    throttle_cb: Callable[..., Any] | None
    only_errors: bool
    forward_stats: bool
    stats_interval_ms: int
    idempotent: bool
    socket_timeout: float
    setup_timeout: float
    max_message_bytes: int
    queue_max_messages: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ProducerSettings:
        """Read the merged configuration; ``ValueError`` for what this producer cannot do."""
        if config.get("transactional.id") is not None:
            raise ValueError(
                "transactional.id is not supported by ReconnectAwareConfluentProducer: a message re-sent "
                "after an outage would leave its transaction; use confluent_kafka.Producer for transactions"
            )
        topic_config: Mapping[str, Any] = config.get("default.topic.config") or {}
        rest = {k: v for k, v in config.items() if k not in _OURS}
        if not any(
            k in c for c in (config, topic_config) for k in ("message.timeout.ms", "delivery.timeout.ms")
        ):
            rest["message.timeout.ms"] = 0
        idempotent = (
            _truthy(config["enable.idempotence"])
            if "enable.idempotence" in config
            else _can_idempotent(config, topic_config)
        )
        rest["enable.idempotence"] = idempotent
        user_interval = _int(config.get("statistics.interval.ms", 0), 0)
        stats_cb = config.get("stats_cb")
        rest["statistics.interval.ms"] = user_interval if user_interval > 0 else _DEFAULT_STATS_INTERVAL_MS
        bootstrap = str(config.get("bootstrap.servers") or config.get("metadata.broker.list") or "")
        return cls(
            config=rest,
            name=str(config.get("client.id") or f"confluent-producer-{next(_NAMES)}"),
            bootstrap=bootstrap,
            on_delivery=config.get("on_delivery"),
            error_cb=config.get("error_cb"),
            stats_cb=stats_cb,
            throttle_cb=config.get("throttle_cb"),
            only_errors=_truthy(config.get("delivery.report.only.error", False)),
            forward_stats=stats_cb is not None and user_interval > 0,
            stats_interval_ms=rest["statistics.interval.ms"],
            idempotent=idempotent,
            socket_timeout=_int(config.get("socket.timeout.ms"), _DEFAULT_SOCKET_TIMEOUT_MS) / 1000,
            setup_timeout=_int(config.get("socket.connection.setup.timeout.ms"), _DEFAULT_SETUP_TIMEOUT_MS)
            / 1000,
            max_message_bytes=_int(config.get("message.max.bytes"), _DEFAULT_MAX_MESSAGE_BYTES),
            queue_max_messages=_int(config.get("queue.buffering.max.messages"), _DEFAULT_QUEUE_MESSAGES),
        )

    @property
    def stall_timeout(self) -> float:
        """How long librdkafka may deliver nothing, while messages wait and the cluster answers metadata
        requests, before its instance is taken for stuck: longer than a silent partition takes to notice
        (``socket.timeout.ms``) plus a new connection to give up (``socket.connection.setup.timeout.ms``)."""
        return max(self.socket_timeout + self.setup_timeout, 2 * self.socket_timeout, 5.0)

    def instance_config(self, **callbacks: Callable[..., Any]) -> dict[str, Any]:
        """The configuration of one librdkafka instance, with our callbacks."""
        return {**self.config, **callbacks}

    def consumer_config(self, group: str) -> dict[str, Any]:
        """A consumer that reads back what this producer wrote (same brokers and security), never
        joining a group (it only uses ``assign()``), committing nothing and seeing every record."""
        shared = {k: v for k, v in self.config.items() if k.startswith(_SHARED_PREFIXES)}
        return {
            **shared,
            "group.id": group,
            "client.id": f"{self.name}-verify",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
        }


def _can_idempotent(config: Mapping[str, Any], topic_config: Mapping[str, Any]) -> bool:
    """Whether librdkafka accepts idempotence with the rest of this configuration."""
    acks = config.get("acks", config.get("request.required.acks", topic_config.get("acks", "all")))
    acks = topic_config.get("request.required.acks", acks)
    if str(acks).strip().lower() not in ("all", "-1"):
        return False
    in_flight = config.get("max.in.flight", config.get("max.in.flight.requests.per.connection", 5))
    retries = config.get("retries", config.get("message.send.max.retries", 1))
    return _int(in_flight, 5) <= 5 and _int(retries, 1) > 0
