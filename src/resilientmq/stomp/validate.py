"""Checks of what the user hands to the STOMP client: clear errors before anything is buffered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import stomp.utils

from resilientmq.core.errors import InvalidMessageError

__all__ = ["DEFAULT_DESTINATION_PREFIXES", "HostAndPort", "body_bytes", "check_destination", "ordered_hosts"]

HostAndPort = tuple[str, int]

DEFAULT_DESTINATION_PREFIXES: tuple[str, ...] = (
    "/queue/",
    "/topic/",
    "/temp-queue/",
    "/temp-topic/",
    "/remote-temp-queue/",
    "/remote-temp-topic/",
    "/exchange/",
    "/amq/queue/",
    "/reply-queue/",
)
"""Prefixes ActiveMQ and RabbitMQ understand; a destination starting with ``/`` must use one."""


def ordered_hosts(
    host_and_ports: Sequence[HostAndPort] | None, prefer_localhost: bool, try_loopback_connect: bool
) -> list[HostAndPort]:
    """stomp.py's host ordering, made explicit so the supervisor can fail over one endpoint at a time."""
    hosts: list[Any] = list(host_and_ports or [("localhost", 61613)])
    if not hosts or any(not isinstance(hp, (tuple, list)) or len(hp) != 2 for hp in hosts):
        raise ValueError(f"host_and_ports must be a list of (host, port) tuples, got {host_and_ports!r}")
    ordered: list[HostAndPort] = [(str(h), int(p)) for h, p in hosts]
    if prefer_localhost:
        ordered.sort(key=stomp.utils.is_localhost)
    if try_loopback_connect:
        loopback = [
            ("127.0.0.1", port)
            for host, port in ordered
            if stomp.utils.is_localhost((host, port)) == 1
            and ("127.0.0.1", port) not in ordered
            and ("localhost", port) not in ordered
        ]
        ordered = loopback + ordered
    return ordered


def check_destination(destination: Any, prefixes: tuple[str, ...] | None) -> None:
    if destination is None:
        raise InvalidMessageError("destination is required, got None")
    if not isinstance(destination, str):
        raise TypeError(f"destination must be a str, got {type(destination).__name__}")
    if not destination.strip():
        raise InvalidMessageError("destination must not be empty")
    if any(c in destination for c in "\n\r\x00"):
        raise InvalidMessageError(f"destination {destination!r} contains a newline or NUL")
    if prefixes is not None and destination.startswith("/") and not destination.startswith(prefixes):
        raise InvalidMessageError(
            f"unknown destination prefix in {destination!r}: expected one of {', '.join(prefixes)} "
            "(pass destination_prefixes=None to allow any)"
        )


def body_bytes(body: Any) -> bytes:
    """The bytes stomp.py 9 writes for ``body``: a str in UTF-8 with unencodable characters replaced by
    ``?`` (its ``encoding=`` argument is stored but never used), bytes as they are."""
    if isinstance(body, str):
        return stomp.utils.encode(body)  # type: ignore[no-any-return]
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"message body must be str or bytes, got {type(body).__name__}")
