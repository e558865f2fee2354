"""resilientmq.metrics: a Prometheus collector over every client in the process, scraped over HTTP while
a real broker behind a ChaosProxy goes away and comes back."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from resilientmq import ReconnectPolicy, ResilientActiveMQConnection
from resilientmq.metrics import ResilientMQCollector, iter_samples, register_collector
from resilientmq.testing import free_port, wait_until

FAST = ReconnectPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=-1)
Labels = tuple[tuple[str, str], ...]


class Scraper:
    """An HTTP /metrics endpoint of its own registry, on a free loopback port, and a way to read it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.collector = register_collector(self.registry)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def scrape(self) -> dict[tuple[str, Labels], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            text = response.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def value(self, name: str, client: str, **labels: str) -> float | None:
        key = tuple(sorted({"client": client, "broker": "stomp", **labels}.items()))
        return self.scrape().get((name, key))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def scraper() -> Iterator[Scraper]:
    s = Scraper()
    yield s
    s.close()


def test_a_scrape_follows_a_client_through_an_outage(
    scraper: Scraper, activemq_behind_proxy: tuple[Any, Any]
) -> None:
    _broker, proxy = activemq_behind_proxy
    conn = ResilientActiveMQConnection(
        [proxy.address], name="metrics-stomp", heartbeats=(0, 0), reconnect_policy=FAST
    )
    v = scraper.value
    try:
        conn.connect(wait=True)
        for i in range(5):
            conn.send("/queue/metrics.outage", f"before-{i}")
        assert conn.flush(10)
        assert v("resilientmq_messages_accepted_total", "metrics-stomp") == 5
        assert v("resilientmq_messages_confirmed_total", "metrics-stomp") == 5
        assert v("resilientmq_buffered_messages", "metrics-stomp") == 0
        assert v("resilientmq_connection_state", "metrics-stomp", state="connected") == 1
        assert v("resilientmq_connection_state", "metrics-stomp", state="reconnecting") == 0

        proxy.down()  # refused, and every open connection reset
        for i in range(7):
            conn.send("/queue/metrics.outage", f"during-{i}-" + "x" * 100)
        wait_until(
            lambda: v("resilientmq_connection_state", "metrics-stomp", state="reconnecting") == 1,
            what="the scrape to show the outage",
        )
        assert v("resilientmq_buffered_messages", "metrics-stomp") == 7
        assert v("resilientmq_buffered_bytes", "metrics-stomp") == 7 * len("during-0-" + "x" * 100)
        assert v("resilientmq_messages_confirmed_total", "metrics-stomp") == 5
        silence = v("resilientmq_seconds_since_last_confirmation", "metrics-stomp")
        assert silence is not None
        wait_until(
            lambda: (v("resilientmq_seconds_since_last_confirmation", "metrics-stomp") or 0) > silence + 0.2,
            what="the time since the last confirmation to grow during the outage",
        )

        proxy.up()
        assert conn.flush(20)
        assert v("resilientmq_messages_confirmed_total", "metrics-stomp") == 12
        assert v("resilientmq_buffered_messages", "metrics-stomp") == 0
        assert v("resilientmq_buffered_bytes", "metrics-stomp") == 0
        assert (v("resilientmq_reconnects_total", "metrics-stomp") or 0) >= 1
        assert v("resilientmq_connection_state", "metrics-stomp", state="connected") == 1
        assert (v("resilientmq_seconds_since_last_confirmation", "metrics-stomp") or 99) < silence + 5
        conn.disconnect()  # may connect again: still reported
        assert v("resilientmq_connection_state", "metrics-stomp", state="disconnected") == 1
    finally:
        conn.close()
    assert v("resilientmq_messages_accepted_total", "metrics-stomp") is None  # a closed client is gone


def test_every_client_in_the_process_is_reported_with_its_own_labels(scraper: Scraper) -> None:
    # Never connected (nothing listens there): both buffer, and both are reported.
    dead = [("127.0.0.1", free_port())]
    a = ResilientActiveMQConnection(dead, name="metrics-twin", reconnect_policy=FAST)
    b = ResilientActiveMQConnection(dead, name="metrics-twin", reconnect_policy=FAST)
    try:
        a.send("/queue/q", "one")
        b.send("/queue/q", "one")
        b.send("/queue/q", "two")
        assert scraper.value("resilientmq_buffered_messages", "metrics-twin") == 1
        assert scraper.value("resilientmq_buffered_messages", "metrics-twin#2") == 2
        assert scraper.value("resilientmq_connection_state", "metrics-twin", state="disconnected") == 1
        names = {name for name, _labels, _value in iter_samples()}
        assert {
            "resilientmq_messages_accepted_total",
            "resilientmq_messages_sent_total",
            "resilientmq_messages_resent_total",
            "resilientmq_messages_confirmed_total",
            "resilientmq_messages_failed_total",
            "resilientmq_messages_dropped_total",
            "resilientmq_reconnects_total",
            "resilientmq_buffered_messages",
            "resilientmq_buffered_bytes",
            "resilientmq_connection_state",
            "resilientmq_seconds_since_last_confirmation",
        } <= names
    finally:
        a.close()
        b.close()


def test_the_collector_registers_once_per_registry() -> None:
    registry = CollectorRegistry()
    first = register_collector(registry)
    assert register_collector(registry) is first
    assert isinstance(first, ResilientMQCollector)
    assert register_collector(CollectorRegistry()) is not first
