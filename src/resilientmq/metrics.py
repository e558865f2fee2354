"""Prometheus metrics for every resilientmq client in the process (``pip install resilientmq[metrics]``).

::

    from prometheus_client import start_http_server
    from resilientmq.metrics import register_collector

    register_collector()          # once per process, into prometheus_client's default registry
    start_http_server(9108)       # or however the application already serves /metrics

Clients register themselves while they are open; the collector reads them at each scrape, so a client
created after ``register_collector()`` is reported too, and a closed one no longer is. Every series is
labelled ``client`` (the client's name, made unique in the process: ``stomp``, ``stomp#2``) and ``broker``
(``stomp``, ``kafka``, ``confluent``, ``ibmmq``).

Counters: ``resilientmq_messages_accepted_total``, ``_sent_total`` (handed to the broker, re-sends
included), ``_resent_total``, ``_confirmed_total``, ``_failed_total``, ``_dropped_total``,
``resilientmq_reconnects_total``. Gauges: ``resilientmq_buffered_messages``, ``resilientmq_buffered_bytes``
(message bodies), ``resilientmq_connection_state{state=...}`` (1 for the current state, 0 for the others),
``resilientmq_seconds_since_last_confirmation`` (since the client started, until its first confirmation).

An alert on a stuck outbox, for example: ``resilientmq_buffered_messages > 0 and
resilientmq_seconds_since_last_confirmation > 60``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator

from resilientmq.core import telemetry
from resilientmq.core.supervisor import ConnectionState

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "resilientmq.metrics needs prometheus-client: pip install 'resilientmq[metrics]'"
    ) from exc

__all__ = ["ResilientMQCollector", "iter_samples", "register_collector"]

_LABELS = ("client", "broker")

# (metric name, the outbox stats() key, help)
_COUNTERS = (
    ("resilientmq_messages_accepted", "accepted", "Messages accepted by send()/put()."),
    ("resilientmq_messages_sent", "sent", "Messages handed to the broker, re-sends included."),
    ("resilientmq_messages_resent", "resent", "Messages handed to the broker again after a break."),
    ("resilientmq_messages_confirmed", "confirmed", "Messages the broker confirmed (left the outbox)."),
    ("resilientmq_messages_failed", "failed", "Messages that failed for good (see get_failed_messages())."),
    ("resilientmq_messages_dropped", "dropped", "Messages dropped by the drop_oldest overflow policy."),
    ("resilientmq_reconnects", "reconnects", "Connections made again after a loss."),
)


class ResilientMQCollector(Collector):
    """A Prometheus collector over every open resilientmq client (see the module docstring)."""

    def describe(self) -> Iterable[Metric]:
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        f = _Families()
        for snap in telemetry.snapshots():
            labels = [snap.client, snap.broker]
            for family, (_name, key, _help) in zip(f.counters, _COUNTERS, strict=True):
                family.add_metric(labels, snap.counters.get(key, 0))
            f.buffered.add_metric(labels, snap.counters.get("buffered", 0))
            f.buffered_bytes.add_metric(labels, snap.buffered_bytes)
            for s in ConnectionState:
                f.state.add_metric([*labels, s.value], 1.0 if s.value == snap.state else 0.0)
            f.since.add_metric(labels, snap.seconds_since_confirmation)
        return f.all()


class _Families:
    """One scrape's metric families, empty."""

    def __init__(self) -> None:
        self.counters = [CounterMetricFamily(n, h, labels=_LABELS) for n, _k, h in _COUNTERS]
        self.buffered = GaugeMetricFamily(
            "resilientmq_buffered_messages", "Messages accepted, not yet confirmed.", labels=_LABELS
        )
        self.buffered_bytes = GaugeMetricFamily(
            "resilientmq_buffered_bytes", "Body bytes of the buffered messages.", labels=_LABELS
        )
        self.state = GaugeMetricFamily(
            "resilientmq_connection_state",
            "1 for the client's current connection state, 0 for the others.",
            labels=(*_LABELS, "state"),
        )
        self.since = GaugeMetricFamily(
            "resilientmq_seconds_since_last_confirmation",
            "Seconds since the broker last confirmed a message (since the start before the first).",
            labels=_LABELS,
        )

    def all(self) -> list[Metric]:
        return [*self.counters, self.buffered, self.buffered_bytes, self.state, self.since]


_lock = threading.Lock()
_registered: weakref.WeakKeyDictionary[CollectorRegistry, ResilientMQCollector] = weakref.WeakKeyDictionary()


def register_collector(registry: CollectorRegistry | None = None) -> ResilientMQCollector:
    """Register the collector in ``registry`` (default: prometheus_client's ``REGISTRY``); once per
    registry, later calls return the same collector."""
    target = REGISTRY if registry is None else registry
    with _lock:
        collector = _registered.get(target)
        if collector is None:
            collector = _registered[target] = ResilientMQCollector()
            target.register(collector)
        return collector


def iter_samples() -> Iterator[tuple[str, dict[str, str], float]]:
    """Every sample the collector would expose now, as (name, labels, value): handy for a quick look."""
    for family in ResilientMQCollector().collect():
        for sample in family.samples:
            yield sample.name, dict(sample.labels), sample.value
