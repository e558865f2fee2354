"""A message on its way through the outbox: checked once at ``produce()`` the way confluent-kafka checks it,
stored, and handed to librdkafka (again, after an outage) with the arguments it was produced with.

The buffer stores the value as the body and the rest in JSON-safe headers with short keys, omitted when
empty so the common message (a value, maybe a key) costs nothing extra: ``k`` key, ``n`` value is None,
``h`` headers (name, value or None), ``p`` partition, ``t`` timestamp (ms). Bytes are kept as latin-1
strings (an exact, cheap round trip that JSON can hold). A message without a timestamp gets the time
``produce()`` accepted it (the envelope's ``created_at``), not the time of a re-send.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_INVALID, TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message

from resilientmq.core.buffer import Envelope, NewMessage

__all__ = [
    "DeliveryCallback",
    "Outcome",
    "ProduceArgs",
    "RecordEncoder",
    "envelope_of",
    "produce_args",
    "synthetic_message",
]

DeliveryCallback = Callable[[KafkaError | None, Message], Any]

PARTITION_UA = -1  # librdkafka's "unassigned": its partitioner decides
_NO_META: Mapping[str, Any] = {}  # shared by every plain message; the buffer copies what it keeps


class ProduceArgs(NamedTuple):
    """librdkafka's ``produce()`` arguments for one buffered message."""

    topic: str
    value: bytes | None
    key: bytes | None
    partition: int
    timestamp: int
    headers: list[tuple[str, str | bytes | None]] | None


def _as_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    # confluent-kafka's own words for the same mistake
    raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}' ({what})")


def _as_int(value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None


def _headers(headers: Any) -> list[list[str | None]]:
    if isinstance(headers, Mapping):
        items = list(headers.items())
    elif isinstance(headers, list):
        items = headers
    else:
        raise TypeError(
            f"expected headers to be dict or list of (key, value) tuples, not {type(headers).__name__}"
        )
    out: list[list[str | None]] = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"expected headers to be dict or list of (key, value) tuples, not {item!r}")
        name, value = item
        if value is not None and not isinstance(value, (bytes, str)):
            raise TypeError(
                f"expected header value to be None, binary, or unicode string, not {type(value).__name__}"
            )
        raw = None if value is None else (value.encode() if isinstance(value, str) else value)
        out.append([str(name), None if raw is None else raw.decode("latin-1")])
    return out


class RecordEncoder:
    """Checks produce() arguments as confluent-kafka does and turns them into buffer messages."""

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes

    def encode(
        self,
        topic: Any,
        value: Any = None,
        key: Any = None,
        partition: Any = PARTITION_UA,
        timestamp: Any = 0,
        headers: Any = None,
    ) -> NewMessage:
        """One message, or the exception ``Producer.produce()`` raises for these arguments."""
        body, meta = self.fields(topic, value, key, partition, timestamp, headers)
        return NewMessage(topic, body, meta)

    def fields(
        self, topic: Any, value: Any, key: Any, partition: Any, timestamp: Any, headers: Any
    ) -> tuple[bytes, Mapping[str, Any]]:
        """The body and headers the outbox stores for these arguments (see :meth:`encode`)."""
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        if (
            type(value) is bytes
            and key is None
            and partition == PARTITION_UA
            and timestamp == 0
            and headers is None
            and len(value) <= self._max
        ):
            return value, _NO_META  # the common case, checked in one go
        meta: dict[str, Any] = {}
        size = 0
        if value is None:
            meta["n"] = 1
            body = b""
        else:
            body = _as_bytes(value, "value")
            size += len(body)
        if key is not None:
            raw_key = _as_bytes(key, "key")
            meta["k"] = raw_key.decode("latin-1")
            size += len(raw_key)
        if partition != PARTITION_UA:
            meta["p"] = _as_int(partition)
        if timestamp != 0:
            meta["t"] = _as_int(timestamp)
        if headers is not None:
            encoded = _headers(headers)
            if encoded:
                meta["h"] = encoded
                size += sum(len(k or "") + len(v or "") for k, v in encoded)
        if size > self._max:
            # librdkafka refuses it in produce(), before it is queued: so do we.
            raise KafkaException(
                KafkaError(
                    KafkaError.MSG_SIZE_TOO_LARGE, "Unable to produce message: Broker: Message size too large"
                )
            )
        return body, meta


def produce_args(envelope: Envelope) -> ProduceArgs:
    """librdkafka's ``produce()`` arguments for a buffered message."""
    meta: Mapping[str, Any] = envelope.headers
    if not meta:
        return ProduceArgs(
            envelope.destination, envelope.body, None, PARTITION_UA, int(envelope.created_at * 1000), None
        )
    key = meta.get("k")
    encoded: Sequence[Sequence[str | None]] | None = meta.get("h")
    timestamp = meta.get("t")
    return ProduceArgs(
        envelope.destination,
        None if meta.get("n") else envelope.body,
        None if key is None else key.encode("latin-1"),
        meta.get("p", PARTITION_UA),
        int(envelope.created_at * 1000) if timestamp is None else timestamp,
        None
        if encoded is None
        else [(str(k), None if v is None else v.encode("latin-1")) for k, v in encoded],
    )


def envelope_of(message: Message) -> Envelope:
    """A delivery report's message in the outbox's form (what a look-up in the log matches it by: key,
    value, CreateTime), for a message the outbox never held."""
    kind, timestamp = message.timestamp()
    value, key = message.value(), message.key()
    meta: dict[str, Any] = {}
    if value is None:
        meta["n"] = 1
    if key is not None:
        meta["k"] = key.decode("latin-1")
    if kind != TIMESTAMP_NOT_AVAILABLE:
        meta["t"] = timestamp
    return Envelope(0, "", message.topic() or "", value or b"", meta, time.time())


def synthetic_message(envelope: Envelope, error: KafkaError | None, offset: int | None = None) -> Message:
    """A delivery-report ``Message`` for a message librdkafka never reported on (purged from the outbox,
    dropped by ``drop_oldest``, refused before it was handed over), shaped like librdkafka's."""
    args = produce_args(envelope)
    return Message(
        topic=args.topic,
        partition=args.partition,
        offset=OFFSET_INVALID if offset is None else offset,
        key=args.key,
        value=args.value,
        error=error,
        timestamp=(1, args.timestamp),  # TIMESTAMP_CREATE_TIME
    )


class Outcome:
    """How one message fared, when it is not a plain delivery (that is librdkafka's ``Message``)."""

    RETRY = "retry"  # not delivered by this instance: produced again, never reported
    FAILED = "failed"  # can never be delivered: reported and kept in the failed list
    PURGED = "purged"  # purged by the user: reported with librdkafka's purge error, then forgotten
    SUSPECT = "suspect"  # acknowledged as a duplicate without an offset: being looked up in the log

    __slots__ = ("error", "kafka_error", "kind", "message")

    def __init__(
        self,
        kind: str,
        error: BaseException | None,
        kafka_error: KafkaError | None = None,
        message: Message | None = None,
    ) -> None:
        self.kind = kind
        self.error = error
        self.kafka_error = kafka_error
        self.message = message
