"""A Kafka record on its way through the buffer: checked and serialised once at ``send()``, stored, re-sent.

The buffer stores the value as the body and the rest in JSON-safe headers with short keys, omitted when
empty so the common record (a value, maybe a key) costs little: ``k`` key (base64), ``n`` value is None,
``h`` record headers (name, base64 value), ``p`` partition, ``t`` timestamp (ms). A record without a
timestamp gets the time ``send()`` accepted it (the envelope's ``created_at``), not the time of the re-send.
"""

from __future__ import annotations

import base64
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from kafka.errors import KafkaTimeoutError
from kafka.future import Future
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.serializer import Serializer
from kafka.util import ensure_valid_topic_name

from resilientmq.core.buffer import Envelope, NewMessage
from resilientmq.core.errors import InvalidMessageError, MessageTooLargeError

__all__ = ["KafkaRecord", "RecordEncoder", "RecordFuture", "SendArgs", "send_args"]

_BYTES_TYPES = (bytes, bytearray, memoryview)
# Records this small (and below half of max_request_size) skip the exact, slower size estimate.
_SMALL_RECORD = 64 * 1024


class KafkaRecord(NamedTuple):
    """One record for ``send_batch()``, with the arguments ``send()`` takes besides the topic."""

    value: Any = None
    key: Any = None
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None
    timestamp_ms: int | None = None


SendArgs = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None, int | None, int]
"""kafka-python's ``send()`` arguments for one buffered record: topic, value, key, headers, partition, ts."""


def _serializer(serializer: Any) -> Callable[[str, list[tuple[str, bytes]], Any], Any] | None:
    if serializer is None:
        return None
    if isinstance(serializer, Serializer):
        return serializer.serialize  # type: ignore[no-any-return]
    if not callable(serializer):
        raise TypeError(f"a serializer must be callable or a kafka.serializer.Serializer, got {serializer!r}")
    return lambda _topic, _headers, data: serializer(data)


class RecordEncoder:
    """Checks and serialises records the way ``KafkaProducer.send()`` does, into buffer messages."""

    def __init__(self, key_serializer: Any, value_serializer: Any, max_request_size: int) -> None:
        self._key = _serializer(key_serializer)
        self._value = _serializer(value_serializer)
        self._max_request_size = max_request_size
        self._exact_size_above = min(_SMALL_RECORD, max_request_size // 2)
        self._topics: set[str] = set()

    def encode(
        self,
        topic: str,
        value: Any,
        key: Any,
        headers: list[tuple[str, bytes]] | None,
        partition: int | None,
        timestamp_ms: int | None,
    ) -> NewMessage:
        """Check and serialise one record; raise at once (the serializer's own error too) if it is bad."""
        if topic not in self._topics:
            self._check_topic(topic)
        if value is None and key is None:
            raise InvalidMessageError("a record needs a key or a value (both are None)")
        if headers is not None and not isinstance(headers, list):
            raise TypeError(f"headers must be a list of (str, bytes) tuples, got {type(headers).__name__}")
        hdrs: list[tuple[str, bytes]] = [] if headers is None else headers
        # Serializers may add headers (kafka-python hands them the record's list), so encode those after.
        if self._key is not None:
            key = self._key(topic, hdrs, key)
        if self._value is not None:
            value = self._value(topic, hdrs, value)
        meta: dict[str, Any] = {}
        if hdrs:
            meta["h"] = _encode_headers(hdrs)
        if key is not None:
            key = _as_bytes(key, "key")
            meta["k"] = base64.b64encode(key).decode("ascii")
        if value is None:
            meta["n"] = 1
            body = b""
        else:
            body = _as_bytes(value, "value")
        if partition is not None:
            partition = _as_int(partition, "partition")
            if partition < 0:
                raise InvalidMessageError(f"partition must be >= 0, got {partition}")
            meta["p"] = partition
        if timestamp_ms is not None:
            meta["t"] = _as_int(timestamp_ms, "timestamp_ms")
        size = len(body) + (len(key) if key is not None else 0)
        if hdrs:
            size += sum(len(k) + len(v) for k, v in hdrs)
        if size > self._exact_size_above:
            self._check_size(key, None if value is None else body, hdrs)
        return NewMessage(topic, body, meta)

    def _check_topic(self, topic: Any) -> None:
        try:
            ensure_valid_topic_name(topic)
        except TypeError as exc:
            raise TypeError(f"invalid topic {topic!r}: {exc}") from None
        except ValueError as exc:
            raise InvalidMessageError(f"invalid topic {topic!r}: {exc}") from None
        self._topics.add(topic)

    def _check_size(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size > self._max_request_size:
            raise MessageTooLargeError(
                f"the record is {size} bytes when serialized, larger than max_request_size "
                f"({self._max_request_size})"
            )


def _as_bytes(data: Any, what: str) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, _BYTES_TYPES):
        return bytes(data)
    raise TypeError(
        f"the serialized {what} must be bytes, bytearray or memoryview (or None), got {type(data).__name__}; "
        f"give a {what}_serializer to send other types"
    )


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int or None, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int or None, got {type(value).__name__}") from None


def _encode_headers(headers: list[tuple[str, bytes]]) -> list[list[str]]:
    out = []
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"every header must be a (str, bytes) tuple, got {item!r}")
        if not isinstance(item[1], bytes):
            raise TypeError(f"header {item[0]!r} must have a bytes value, got {type(item[1]).__name__}")
        out.append([item[0], base64.b64encode(item[1]).decode("ascii")])
    return out


def send_args(envelope: Envelope) -> SendArgs:
    """kafka-python's ``send()`` arguments for a buffered record."""
    meta: Mapping[str, Any] = envelope.headers
    if not meta:
        return (envelope.destination, envelope.body, None, None, None, int(envelope.created_at * 1000))
    key = meta.get("k")
    encoded_headers: Sequence[Sequence[str]] | None = meta.get("h")
    timestamp = meta.get("t")
    return (
        envelope.destination,
        None if meta.get("n") else envelope.body,
        None if key is None else base64.b64decode(key),
        None if encoded_headers is None else [(k, base64.b64decode(v)) for k, v in encoded_headers],
        meta.get("p"),
        int(envelope.created_at * 1000) if timestamp is None else timestamp,
    )


class RecordFuture(Future):  # type: ignore[misc]  # kafka-python is untyped
    """What ``send()`` returns, used like kafka-python's ``FutureRecordMetadata``.

    Resolves with the ``RecordMetadata`` of the acknowledgement that counted, also when the record was
    buffered or re-sent; fails only when the record can never be delivered (it is then in
    ``get_failed_messages()``). ``add_callback``/``add_errback`` callbacks run on kafka-python's I/O thread
    (on the read-back thread for an acknowledgement without an offset, on the thread of ``close()`` or of the
    ``send()`` whose ``drop_oldest`` evicted the record).
    """

    __slots__ = ()

    def get(self, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds for the outcome; ``KafkaTimeoutError`` (as kafka-python) if none."""
        if not self.is_done:
            done = threading.Event()
            self.add_both(lambda _outcome: done.set())
            if not done.wait(timeout):
                raise KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")
        if self.exception is not None:
            raise self.exception
        return self.value
