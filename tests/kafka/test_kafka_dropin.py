"""Drop-in exactness against kafka-python 3.0.12 (issue 13, points 6-8).

The reference is always a plain ``kafka.KafkaProducer`` built with the same kwargs against the same tansu:
what it raises, ours raises (same class, same message) at once, whether or not a broker is reachable; what
its ``config`` holds, ours holds from the start.
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
import warnings
from typing import Any

import kafka.errors as Errors
import pytest
from kafka import KafkaProducer
from kafka.net.compat import KafkaNetClient
from kafka.protocol.broker_version_data import BROKER_API_VERSIONS
from kafka.serializer import SerializeWrapper
from kafka_support import FAST_KAFKA, FAST_RECONNECT, KafkaBed, ProducerFactory, read_topic

from resilientmq import ConnectionState, ReconnectAwareKafkaProducer, ReconnectFailedError, ReconnectPolicy
from resilientmq.testing import wait_until

# What config["api_version"] reads with api_version=None before a broker told its own: the newest version
# kafka-python knows. And the adapter's batch_size (README: a documented difference).
NEWEST_API_VERSION = max(BROKER_API_VERSIONS)
DEFAULT_BATCH_SIZE = 256 * 1024


def _reference(bed: KafkaBed, kwargs: dict[str, Any]) -> KafkaProducer:
    """A plain KafkaProducer on the reachable broker (it bootstraps, then checks what needs a version)."""
    options = {"bootstrap_servers": bed.servers, **FAST_KAFKA, **kwargs}
    return KafkaProducer(**options)


def _raised(make: Any) -> BaseException:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            made = make()
        except Exception as exc:
            return exc
    made.close(timeout=0)
    raise AssertionError(f"no error raised, built {made!r}")


REFUSED = [
    {"enable_idempotence": True, "acks": 1},
    {"enable_idempotence": True, "retries": 0},
    {"enable_idempotence": True, "max_in_flight_requests_per_connection": 6},
    {"enable_idempotence": True, "api_version": (0, 10, 2)},
    {"enable_idempotence": True, "acks": 0, "retries": 0},
    {"transactional_id": "t", "acks": 1},
    {"enable_idempotence": False, "transactional_id": "t"},
    {"api_version": [2, 0]},
    {"api_version": (0, 7)},
    {"compression_type": "lz4", "api_version": (0, 8, 1)},
    {"compression_type": "zstd", "api_version": (2, 0)},
    {"compression_type": "snappy"},  # its library is not installed here
    {"compression_type": "brotli"},
    {"client_dns_lookup": "sometimes"},
    {"bootstrap_servers": "127.0.0.1:port"},
    {"bootstrap_servers": 9092},
    {"delivery_timeout_ms": 500},  # below linger_ms + request_timeout_ms
    {"no_such_option": 1, "acks": 1},
]


@pytest.mark.parametrize("kwargs", REFUSED, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_what_kafka_producer_refuses_at_construction_ours_refuses_at_once_with_the_same_error(
    bed: KafkaBed, kwargs: dict[str, Any]
) -> None:
    expected = _raised(lambda: _reference(bed, kwargs))
    for reachable in (False, True):
        if reachable:
            bed.proxy.up()
        else:
            bed.proxy.down()
        options = {"bootstrap_servers": bed.servers, **FAST_KAFKA, **FAST_RECONNECT, **kwargs}
        started = time.monotonic()
        error = _raised(lambda: ReconnectAwareKafkaProducer(**options))  # noqa: B023
        assert time.monotonic() - started < 1.0, "the check waited for the broker"
        assert (type(error), str(error)) == (type(expected), str(expected)), f"reachable={reachable}"


RESOLVED = [
    {},
    {"acks": 1},
    {"acks": 0},
    {"acks": "all"},
    {"retries": 0},
    {"max_in_flight_requests_per_connection": 6},
    {"enable_idempotence": False},
    {"api_version": (0, 10, 2)},
    {"api_version": (0, 10)},  # rounded to (0, 10, 0), as kafka-python does
    {"api_version": "2.6"},  # the deprecated string form
    {"api_version": (9, 9)},  # newer than kafka-python knows: its newest
    {"compression_type": "gzip"},
    {"value_serializer": str.encode, "key_serializer": str.encode},
    {"batch_size": 16384, "delivery_timeout_ms": 90000},
]

# By design (README): the batch size and kafka-python's expiry differ unless given; client ids are numbered.
_DESIGNED = {"client_id", "batch_size", "delivery_timeout_ms"}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k not in _DESIGNED}
    for key in ("key_serializer", "value_serializer"):
        value = out[key]
        out[key] = (type(value), value.fn) if isinstance(value, SerializeWrapper) else value
    return out


@pytest.mark.parametrize("kwargs", RESOLVED, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_config_is_kafka_producers_resolved_config_from_construction_on(
    bed: KafkaBed, make_producer: ProducerFactory, kwargs: dict[str, Any]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        reference = _reference(bed, kwargs)
    expected = dict(reference.config)
    reference.close(timeout=0)

    bed.proxy.down()  # resolved without a broker
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        producer = make_producer(**kwargs)
    config = producer.config
    KafkaProducer.max_usable_produce_magic(config["api_version"])  # no TypeError
    if "api_version" in kwargs:
        assert _comparable(config) == _comparable(expected)
    else:  # until a broker has told its version
        assert config["api_version"] == NEWEST_API_VERSION
        assert _comparable(config) == _comparable(dict(expected, api_version=NEWEST_API_VERSION))
    assert config["client_id"].startswith("kafka-python-producer-")
    assert config["batch_size"] == kwargs.get("batch_size", DEFAULT_BATCH_SIZE)

    bed.proxy.up()
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, 20, what="the connection")
    assert producer.config is config  # the same dict, brought up to date
    assert _comparable(config) == _comparable(expected)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"reconnect_interval_seconds": 0.5}, 500),  # the policy's longest wait
        ({}, 30000),  # the default policy waits up to 60 s: kafka-python's own 30 s stays
        ({"reconnect_policy": ReconnectPolicy(initial_delay=0.01, max_delay=0.02)}, 50),  # not below the base
        ({"reconnect_interval_seconds": 0.5, "reconnect_backoff_max_ms": 7000}, 7000),  # given: kept
    ],
    ids=["policy", "kafka-python's", "base", "given"],
)
def test_kafka_pythons_reconnect_backoff_is_capped_by_the_reconnect_policy_unless_given(
    bed: KafkaBed, kwargs: dict[str, Any], expected: int
) -> None:
    """So that kafka-python reconnects at least as often as the policy probes whether it has."""
    producer = ReconnectAwareKafkaProducer(bootstrap_servers=bed.servers, **kwargs)
    try:
        assert producer.config["reconnect_backoff_max_ms"] == expected
        assert producer.config["reconnect_backoff_ms"] == KafkaProducer.DEFAULT_CONFIG["reconnect_backoff_ms"]
    finally:
        producer.close(timeout=0)


def test_a_plain_serializer_is_wrapped_with_kafka_pythons_deprecation_warning(
    make_producer: ProducerFactory,
) -> None:
    with pytest.warns(DeprecationWarning, match="value_serializer does not implement") as seen:
        producer = make_producer(value_serializer=str.encode)
    assert [str(w.message) for w in seen] == [
        "value_serializer does not implement kafka.serializer.Serializer"
    ]
    assert isinstance(producer.config["value_serializer"], SerializeWrapper)
    assert producer.config["value_serializer"].fn is str.encode


def test_an_older_broker_met_at_the_first_connection_updates_the_config_in_place(
    bed: KafkaBed, make_producer: ProducerFactory
) -> None:
    """api_version=None: the broker's version decides idempotence, as in kafka-python (here a 0.10.2 broker,
    told to kafka-python by a client factory, since tansu is newer)."""

    def old_broker_client(**configs: Any) -> KafkaNetClient:
        return KafkaNetClient(**dict(configs, api_version=(0, 10, 2)))

    bed.proxy.down()
    producer = make_producer(kafka_client=old_broker_client)
    config = producer.config
    assert (config["api_version"], config["enable_idempotence"]) == (NEWEST_API_VERSION, True)
    bed.proxy.up()
    wait_until(lambda: producer.connection_state is ConnectionState.CONNECTED, 20, what="the connection")
    assert producer.config is config
    assert (config["api_version"], config["enable_idempotence"], config["acks"]) == ((0, 10, 2), False, -1)
    assert KafkaProducer.max_usable_produce_magic(config["api_version"]) == 1


def test_close_during_the_first_bootstrap_leaves_the_client_to_the_thread_that_built_it(
    bed: KafkaBed, make_producer: ProducerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """close() while kafka-python's constructor bootstraps: the bootstrap is paused inside its poll (the racy
    point), close() is called, and only then the poll goes on. The client must be closed by the opening
    thread, never from close()'s thread (kafka-python: "Concurrent access to net.poll!")."""
    in_poll, release = threading.Event(), threading.Event()
    closed_by: list[threading.Thread] = []

    class PausedSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
        def select(self, timeout: float | None = None) -> Any:
            if not release.is_set():
                in_poll.set()
                release.wait(10)
            return super().select(timeout)

    class RecordingClient(KafkaNetClient):  # type: ignore[misc]
        def close(self, node_id: Any = None) -> None:
            if node_id is None:
                closed_by.append(threading.current_thread())
            super().close(node_id)

    caplog.set_level(logging.DEBUG)
    producer = make_producer(selector=PausedSelector, kafka_client=RecordingClient)
    assert in_poll.wait(10), "the bootstrap did not start"
    closer = threading.Thread(target=producer.close, kwargs={"timeout": 0}, name="closer")
    closer.start()
    # CLOSED is set once close() has cancelled the open; the bootstrap is still paused in its poll.
    wait_until(lambda: producer.connection_state is ConnectionState.CLOSED, 10, what="close() to cancel")
    assert closed_by == []
    release.set()
    closer.join(15)
    assert not closer.is_alive()

    assert closed_by and closer not in closed_by, closed_by
    assert all(t.name.endswith("-supervisor") for t in closed_by), closed_by
    assert "Concurrent access to net.poll" not in caplog.text
    assert producer.connection_state is ConnectionState.CLOSED


def test_after_the_reconnect_policy_gave_up_sending_again_connects_again(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    """A KafkaProducer has no connect(): FAILED is reported (listeners), then the next send() starts
    connecting again (as the confluent producer does), where raising would leave the producer dead."""
    bed.proxy.down()
    producer = make_producer(reconnect_tries=1, reconnect_interval_seconds=0.1, bootstrap_timeout_ms=2000)
    wait_until(lambda: producer.connection_state is ConnectionState.FAILED, 30, what="the policy to give up")
    bed.proxy.up()
    future = producer.send(topic, b"resumed", partition=0)
    assert producer.flush(30) is True
    assert future.get(timeout=0).offset == 0
    assert producer.connection_state is ConnectionState.CONNECTED
    assert read_topic(bed, topic, [b"resumed"]).values == [b"resumed"]


def test_idempotence_asked_for_on_an_older_broker_fails_the_client_at_the_first_connection(
    bed: KafkaBed, make_producer: ProducerFactory, topic: str
) -> None:
    """kafka-python can only check this once it knows the broker's version (api_version=None): its
    constructor raises; ours, constructed without a broker, fails at the first connection with that error."""

    def old_broker_client(**configs: Any) -> KafkaNetClient:
        return KafkaNetClient(**dict(configs, api_version=(0, 10, 2)))

    producer = make_producer(kafka_client=old_broker_client, enable_idempotence=True)
    wait_until(lambda: producer.connection_state is ConnectionState.FAILED, 20, what="the client to fail")
    with pytest.raises(ReconnectFailedError) as info:
        producer.send(topic, b"v")
    causes = []
    error: BaseException | None = info.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert any(
        isinstance(e, Errors.KafkaConfigurationError) and "requires broker >= 0.11" in str(e) for e in causes
    ), causes
