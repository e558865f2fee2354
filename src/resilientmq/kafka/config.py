"""``KafkaProducer``'s configuration, resolved and checked as kafka-python 3.0.12's constructor does it.

:func:`resolve_config` gives the ``config`` that ``KafkaProducer(**configs)`` would have and raises what that
constructor would raise for the same kwargs, with the same exception, before any broker is reached. It calls
kafka-python where kafka-python has a function for the step (``collect_hosts`` parses the servers,
``BrokerVersionData`` checks and rounds ``api_version``) and keeps the other checks in one table,
:data:`CHECKS`, in kafka-python's order.

What kafka-python decides only with a broker (``api_version=None``: the broker's version, and with it
idempotence on a broker older than 0.11 and lz4/zstd on old brokers) is decided by kafka-python itself when
the adapter builds its producer; :data:`BROKER_DECIDES` names the keys the facade then copies into the same
dict. Until then ``api_version`` reads :data:`NEWEST_API_VERSION`.

Three of the adapter's defaults differ from kafka-python's (:func:`adapter_defaults`); ``config`` shows them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import kafka.errors as Errors
from kafka import KafkaProducer
from kafka.cluster import collect_hosts
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from kafka.producer.kafka import PRODUCER_CLIENT_ID_SEQUENCE
from kafka.protocol.broker_version_data import BROKER_API_VERSIONS, BrokerVersionData
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.serializer import Serializer, SerializeWrapper

__all__ = [
    "BROKER_DECIDES",
    "CHECKS",
    "DEFAULT_BATCH_SIZE",
    "NEWEST_API_VERSION",
    "NO_EXPIRY_MS",
    "Check",
    "ResolvedConfig",
    "adapter_defaults",
    "resolve_config",
]

log = logging.getLogger("resilientmq.kafka")

NEWEST_API_VERSION: tuple[int, ...] = max(BROKER_API_VERSIONS)
"""What ``config['api_version']`` reads with ``api_version=None`` until a broker has told its own version."""

BROKER_DECIDES = ("api_version", "enable_idempotence", "acks")
"""The keys a broker's version can change (copied from kafka-python's producer when one is built)."""

# kafka-python wakes its I/O thread for every record appended while a partition holds more than one
# batch; fed from the buffer in bursts, 16 KiB batches make that every record (a third of the rate).
DEFAULT_BATCH_SIZE = 256 * 1024

NO_EXPIRY_MS = 2**31 - 1
"""kafka-python's ``delivery_timeout_ms`` when the caller sets none: it never expires a record on its own.

An expired record's fate is unknown (the broker may have written it), and sending it again costs a duplicate;
kafka-python retrying the same batch, with the same sequence numbers, costs none.
"""

_KAFKA_DEFAULTS = KafkaProducer.DEFAULT_CONFIG


def adapter_defaults(configs: Mapping[str, Any], policy_max_delay: float) -> dict[str, Any]:
    """``configs`` with the adapter's own defaults for what the caller did not set.

    ``batch_size`` is :data:`DEFAULT_BATCH_SIZE` and ``delivery_timeout_ms`` :data:`NO_EXPIRY_MS` (see there).
    ``reconnect_backoff_max_ms`` is the reconnect policy's longest wait (``policy_max_delay`` seconds), when
    that is shorter than kafka-python's 30 s, but not below ``reconnect_backoff_ms``: the policy decides how
    often the client probes a broker that went away, and a probe is answered only once kafka-python has
    reconnected, which its backoff (50 ms doubling up to 30 s, for connections and metadata refreshes alike)
    may hold back long after the broker is back. So kafka-python tries at least as often as the policy probes.
    ``retry_backoff_ms`` (100 ms between metadata refreshes and produce retries) is left as it is: shorter
    than any wait the policy makes but its first.
    """
    defaults: dict[str, Any] = {"batch_size": DEFAULT_BATCH_SIZE, "delivery_timeout_ms": NO_EXPIRY_MS}
    base = configs.get("reconnect_backoff_ms", _KAFKA_DEFAULTS["reconnect_backoff_ms"])
    if isinstance(base, (int, float)) and not isinstance(base, bool):
        cap = min(_KAFKA_DEFAULTS["reconnect_backoff_max_ms"], round(policy_max_delay * 1000))
        defaults["reconnect_backoff_max_ms"] = max(base, cap)
    return {**defaults, **configs}


class ResolvedConfig(NamedTuple):
    """The ``config`` view, and what the caller passed (kafka-python treats both differently)."""

    config: dict[str, Any]
    given: frozenset[str]


class Check(NamedTuple):
    """One of kafka-python's construction checks: ``fails(config)`` means ``error(config)`` is raised.

    ``needs_version`` rows are skipped while ``api_version`` is unknown (kafka-python checks them after it
    bootstrapped, which the adapter's producer does too).
    """

    fails: Callable[[Mapping[str, Any]], bool]
    error: Callable[[Mapping[str, Any]], Exception]
    needs_version: bool = False


# kafka-python 3.0.12's KafkaProducer._COMPRESSORS and KafkaConnectionManager._VALID_DNS_LOOKUP_MODES, from
# its public names (its own tables are private): codec -> (library present?, compression_attrs).
_CODECS: dict[str | None, tuple[Callable[[], bool], int]] = {
    "gzip": (has_gzip, LegacyRecordBatchBuilder.CODEC_GZIP),
    "snappy": (has_snappy, LegacyRecordBatchBuilder.CODEC_SNAPPY),
    "lz4": (has_lz4, LegacyRecordBatchBuilder.CODEC_LZ4),
    "zstd": (has_zstd, DefaultRecordBatchBuilder.CODEC_ZSTD),
    None: (lambda: True, LegacyRecordBatchBuilder.CODEC_NONE),
}
_DNS_MODES = ("use_all_dns_ips", "resolve_canonical_bootstrap_servers_only")


def _codec_missing(config: Mapping[str, Any]) -> bool:
    return not _CODECS[config["compression_type"]][0]()


# The checks kafka-python's constructor makes without a function of its own to call, in its order.
CHECKS: tuple[Check, ...] = (
    Check(  # KafkaConnectionManager.__init__ (kafka-python builds its client before the checks below)
        lambda c: c["client_dns_lookup"] not in _DNS_MODES,
        lambda c: ValueError(
            f"client_dns_lookup must be one of {_DNS_MODES}; got {c['client_dns_lookup']!r}"
        ),
    ),
    Check(
        lambda c: c["compression_type"] == "lz4" and c["api_version"] < (0, 8, 2),
        lambda c: ValueError("LZ4 Requires >= Kafka 0.8.2 Brokers"),
        needs_version=True,
    ),
    Check(
        lambda c: c["compression_type"] == "zstd" and c["api_version"] < (2, 1),
        lambda c: ValueError("Zstd Requires >= Kafka 2.1 Brokers"),
        needs_version=True,
    ),
    Check(
        lambda c: c["compression_type"] not in _CODECS,
        lambda c: ValueError(f"Not supported codec: {c['compression_type']}"),
    ),
    Check(
        _codec_missing,
        lambda c: RuntimeError(f"Libraries for {c['compression_type']} compression codec not found"),
    ),
)

# RecordAccumulator.__init__, the last check kafka-python makes.
_DELIVERY_CHECK = Check(
    lambda c: c["delivery_timeout_ms"] < c["linger_ms"] + c["request_timeout_ms"],
    lambda c: Errors.KafkaConfigurationError(
        "Must set delivery_timeout_ms higher than linger_ms + request_timeout_ms"
    ),
)


def resolve_config(configs: Mapping[str, Any], *, warn_stacklevel: int = 3) -> ResolvedConfig:
    """What ``KafkaProducer(**configs).config`` would be, raising what its constructor would raise.

    Also warns and logs what it warns and logs (a serializer that is not a ``Serializer``, idempotence turned
    off by a conflicting setting). ``warn_stacklevel`` points the ``DeprecationWarning`` at the caller's line.
    """
    given = frozenset(configs)
    unknown = {key: value for key, value in configs.items() if key not in KafkaProducer.DEFAULT_CONFIG}
    if unknown:
        raise ValueError(f"Unrecognized configs: {unknown}")
    config = dict(KafkaProducer.DEFAULT_CONFIG, **configs)
    for key in ("key_serializer", "value_serializer"):
        if config[key] is not None and not isinstance(config[key], Serializer):
            warnings.warn(
                f"{key} does not implement kafka.serializer.Serializer",
                category=DeprecationWarning,
                stacklevel=warn_stacklevel,
            )
            config[key] = SerializeWrapper(config[key])
    if config["client_id"] is None:
        config["client_id"] = f"kafka-python-producer-{PRODUCER_CLIENT_ID_SEQUENCE.increment()}"
    if config["acks"] == "all":
        config["acks"] = -1
    if isinstance(config["api_version"], str):
        text = config["api_version"]
        config["api_version"] = None if text == "auto" else tuple(map(int, text.split(".")))
        log.warning('use api_version=%s [tuple] -- "%s" as str is deprecated', config["api_version"], text)
    _run(CHECKS[:1], config)
    collect_hosts(config["bootstrap_servers"])  # how kafka-python's client parses them, raising as it does
    if config["api_version"] is not None:
        # kafka-python's own check and rounding: (0, 10) is (0, 10, 0), a newer version the newest it knows.
        config["api_version"] = BrokerVersionData(config["api_version"]).broker_version
    _run(CHECKS[1:], config)
    config["compression_attrs"] = _CODECS[config["compression_type"]][1]
    _resolve_idempotence(config, given)
    _run((_DELIVERY_CHECK,), config)
    if config["api_version"] is None:
        config["api_version"] = NEWEST_API_VERSION
    return ResolvedConfig(config, given)


def _run(checks: tuple[Check, ...], config: Mapping[str, Any]) -> None:
    for check in checks:
        if check.needs_version and config["api_version"] is None:
            continue
        if check.fails(config):
            raise check.error(config)


def _resolve_idempotence(config: dict[str, Any], given: frozenset[str]) -> None:
    """kafka-python's rule: a conflicting setting turns idempotence off, unless it was asked for (raise)."""
    asked = "enable_idempotence" in given
    if asked and not config["enable_idempotence"] and config["transactional_id"]:
        raise Errors.KafkaConfigurationError("Cannot set transactional_id without enable_idempotence.")
    if config["transactional_id"]:
        config["enable_idempotence"] = asked = True
    if config["enable_idempotence"]:
        conflicts = []
        if "acks" in given and config["acks"] != -1:
            conflicts.append(("acks", config["acks"]))
        if "retries" in given and config["retries"] == 0:
            conflicts.append(("retries", 0))
        inflight = config["max_in_flight_requests_per_connection"]
        if "max_in_flight_requests_per_connection" in given and inflight > 5:
            conflicts.append(("max_in_flight_requests_per_connection", inflight))
        if conflicts:
            conflict_str = ", ".join(f"{key}={value!r}" for key, value in conflicts)
            if asked:
                raise Errors.KafkaConfigurationError(
                    f"enable_idempotence=True is incompatible with user-provided {conflict_str}"
                )
            log.warning(
                "Idempotence will be disabled because user-provided config conflicts with"
                " idempotent defaults: %s",
                conflict_str,
            )
            config["enable_idempotence"] = False
    version = config["api_version"]
    if config["enable_idempotence"] and version is not None and version < (0, 11):
        if asked:
            raise Errors.KafkaConfigurationError(
                f"Idempotent/Transactional producer requires broker >= 0.11 (got api_version={version})"
            )
        log.warning("Idempotence will be disabled because broker api_version %s < (0, 11)", version)
        config["enable_idempotence"] = False
    if config["enable_idempotence"] and "acks" not in given:
        config["acks"] = -1
