"""How to connect to IBM MQ: the validated settings, the endpoints, and the MQCONNX arguments they make."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BINDINGS",
    "Settings",
    "connect_arguments",
    "copy_struct",
    "make_settings",
    "str_or_none",
    "text",
]

BINDINGS = "bindings"
"""The endpoint of a local (bindings) connection."""

_CONN_NAME = re.compile(r"^[^\s(),]+(\(\d{1,5}\))?$")
_HOST_COLON_PORT = re.compile(r"^[^:]+:\d+$")  # "host:1414" (URL habit); IPv6 addresses have more colons


@dataclass(frozen=True)
class Settings:
    """How to connect, validated once (by :func:`make_settings`)."""

    queue_manager_name: str
    channel: str | None
    user: str | None
    password: str | None
    cipher_spec: str | None
    key_repository: str | None
    cno_options: int
    cd: Any
    cno: Any
    sco: Any
    csp: Any
    operation_timeout: float | None


def _parse_connection_info(connection_info: str) -> list[str]:
    if not isinstance(connection_info, str) or not connection_info.strip():
        raise ValueError(
            f"connection_info must be 'host(port)' or a comma list of them, got {connection_info!r}"
        )
    names = [part.strip() for part in connection_info.split(",")]
    for name in names:
        if not _CONN_NAME.match(name) or _HOST_COLON_PORT.match(name):
            raise ValueError(f"connection_info entry {name!r} is not of the form 'host(port)'")
    return names


def make_settings(
    mqi: Any,
    queue_manager_name: Any,
    channel: str | None,
    connection_info: str | None,
    user: str | None,
    password: str | None,
    use_ssl: bool,
    ssl_cipher_spec: str | None,
    key_repository: str | None,
    mq_client_reconnect: bool | int,
    cd: Any,
    cno: Any,
    sco: Any,
    csp: Any,
    operation_timeout: float | None,
) -> tuple[Settings, list[str]]:
    """Validated connection settings and the endpoints to try; bad input gets a ValueError naming it."""
    qm_name = text(queue_manager_name)
    if len(qm_name) > 48:
        raise ValueError(f"queue_manager_name is at most 48 characters, got {qm_name!r}")
    if (channel is None) != (connection_info is None):
        raise ValueError(
            "give both channel and connection_info for a client connection, or neither for bindings"
        )
    endpoints = [BINDINGS] if connection_info is None else _parse_connection_info(connection_info)
    if channel is not None and not (isinstance(channel, str) and 0 < len(channel) <= 20):
        raise ValueError(f"channel must be a name of 1 to 20 characters, got {channel!r}")
    if user is not None and password is None:
        raise ValueError("a password is required with user")
    if ssl_cipher_spec and not use_ssl:
        raise ValueError("ssl_cipher_spec is given but use_ssl is False")
    if use_ssl and not ssl_cipher_spec:
        raise ValueError("use_ssl needs ssl_cipher_spec (e.g. 'ANY_TLS12_OR_HIGHER')")
    if use_ssl and channel is None:
        raise ValueError("TLS (use_ssl) needs a client connection: give channel and connection_info")
    if operation_timeout is not None and operation_timeout <= 0:
        raise ValueError(f"operation_timeout must be > 0 or None, got {operation_timeout!r}")
    reconnect_option = 0
    if mq_client_reconnect is True:
        reconnect_option = int(mqi.CMQC.MQCNO_RECONNECT)
    elif mq_client_reconnect and not isinstance(mq_client_reconnect, bool):
        reconnect_option = int(mq_client_reconnect)
    cipher = ssl_cipher_spec if use_ssl else None
    settings = Settings(
        qm_name, channel, user, password, cipher, key_repository, reconnect_option, cd, cno, sco, csp,
        operation_timeout,
    )  # fmt: skip
    return settings, endpoints


def str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def text(value: Any) -> str:
    raw = value.encode("ascii") if isinstance(value, str) else (value or b"")
    return str(raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip())


def copy_struct(cls: Any, source: Any) -> Any:
    """A new ``cls`` structure with the fields of ``source`` (None: defaults)."""
    made = cls()
    if source is not None:
        for name, value in source.get().items():
            # Pointer fields point into the source's own buffers: strings go through set_vs instead.
            if not name.startswith("_") and not name.endswith("Ptr") and hasattr(made, name):
                setattr(made, name, value)
        get_vs = getattr(source, "get_vs", None)
        if get_vs is not None:
            for vs in ("ObjectString", "SelectionString", "SubName"):
                with contextlib.suppress(Exception):
                    value = get_vs(vs)
                    if value:
                        made.set_vs(vs, value)
    return made


def connect_arguments(mqi: Any, settings: Settings, endpoint: str) -> dict[str, Any]:
    """The keyword arguments of ``QueueManager.connect_with_options`` for one connection to ``endpoint``
    (``BINDINGS`` for a local one): the channel fields from the settings win over a given ``cd``."""
    c = mqi.CMQC
    s = settings
    cno = copy_struct(mqi.CNO, s.cno)
    cno.Options |= s.cno_options
    kwargs: dict[str, Any] = {"cno": cno}
    if endpoint != BINDINGS:
        cd = copy_struct(mqi.CD, s.cd)
        cd.ChannelName = (s.channel or "").encode("ascii")
        cd.ConnectionName = endpoint.encode("ascii")
        cd.ChannelType = mqi.CMQXC.MQCHT_CLNTCONN
        cd.TransportType = mqi.CMQXC.MQXPT_TCP
        if s.cipher_spec:
            cd.SSLCipherSpec = s.cipher_spec.encode("ascii")
        kwargs["cd"] = cd
        cno.Options |= c.MQCNO_CLIENT_BINDING
        if s.key_repository or s.sco is not None:
            sco = copy_struct(mqi.SCO, s.sco)
            if s.key_repository:
                sco.KeyRepository = s.key_repository.encode("utf-8")
            kwargs["sco"] = sco
    if s.csp is not None:
        kwargs["csp"] = s.csp
    elif s.user is not None:
        kwargs["user"], kwargs["password"] = s.user, s.password
    return kwargs
