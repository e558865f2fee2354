"""A loopback TCP proxy that injects network faults between a client and a broker.

Point the client at the proxy instead of the broker, then break the network on purpose::

    with ChaosProxy("127.0.0.1", broker_port) as proxy:
        conn = stomp.Connection([proxy.address])
        conn.connect(wait=True)
        proxy.cut()          # every open connection gets a TCP reset; new connections are still accepted
        proxy.down()         # port closed: connect() is refused, open connections are reset
        proxy.up()           # listening again on the same port
        proxy.blackhole()    # a silent partition: writes succeed, nothing arrives either way, no reset
        proxy.heal()         # forwarding again; connections that lost bytes are reset (broken stream)
        proxy.stall()        # the broker stops reading: writes pile up, then block (TCP flow control)

Each fault method has taken full effect when it returns, so a test can act on the next line. ``down``/``up``
(is the port listening) and ``blackhole``/``heal`` (are bytes delivered) are independent switches.

During a blackhole, connections accepted then are swallowed too, and a broker closing its end is not seen by
the client (its FIN or RST is swallowed as well). A connection that sat idle through the whole blackhole
loses nothing and keeps working after ``heal()``, as it would after a real partition.

When the target refuses the proxy's own connection (broker down), the client's connection is reset right
after it was accepted: the client sees a connection that opens and dies, as through a real load balancer.

Counters (``connections_accepted``, ``active_connections``, ``connections_reset``, ``bytes_to_target``,
``bytes_to_client``, ``bytes_swallowed``) are safe to read from any thread; ``wait_for()`` waits on them.

One daemon thread runs a selector loop for all connections; ``close()`` ends it.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

__all__ = ["ChaosProxy"]

_CHUNK = 65536
_MAX_PENDING = 1 << 20  # per direction; beyond it the proxy stops reading and TCP pushes back
_TICK = 0.1  # bounds every wait of the loop; commands wake it at once through a socketpair
_COMMAND_TIMEOUT = 10.0
_R = selectors.EVENT_READ
_W = selectors.EVENT_WRITE
_CLIENT = 0
_TARGET = 1
# A listening socket can be parked (shut down, port kept) and re-listened on Linux only.
_CAN_PARK_LISTENER = sys.platform.startswith("linux")

_T = TypeVar("_T", bound="ChaosProxy")


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Conn:
    __slots__ = (
        "broken",
        "client",
        "client_eof",
        "client_wr_shut",
        "closed",
        "connecting",
        "target",
        "target_eof",
        "target_wr_shut",
        "to_client",
        "to_target",
    )

    def __init__(self, client: socket.socket, target: socket.socket | None, connecting: bool) -> None:
        self.client = client
        self.target = target
        self.connecting = connecting
        self.to_target = bytearray()
        self.to_client = bytearray()
        self.client_eof = False
        self.target_eof = False
        self.client_wr_shut = False
        self.target_wr_shut = False
        # Bytes were swallowed (or the connection never had a target): the stream can never be whole again.
        self.broken = target is None
        self.closed = False


class _Wake:
    pass


class _Listener:
    pass


_WAKE = _Wake()
_LISTENER = _Listener()


class ChaosProxy:
    """TCP proxy from ``listen_host:listen_port`` (0: a free port) to ``target_host:target_port``."""

    def __init__(
        self, target_host: str, target_port: int, listen_host: str = "127.0.0.1", listen_port: int = 0
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._port = listen_port
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._commands: list[tuple[Callable[[], None], threading.Event, list[BaseException]]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._listening = False
        self._blackholed = False
        self._stalled = False
        self._conns: set[_Conn] = set()
        self._target_family = socket.AF_INET
        self._target_addr: tuple[str, int] = (target_host, target_port)
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._connections_accepted = 0
        self._connections_reset = 0
        self._bytes_to_target = 0
        self._bytes_to_client = 0
        self._bytes_swallowed = 0

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self: _T) -> _T:
        """Bind, listen and start forwarding. Returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("ChaosProxy already started")
        try:  # brokers here listen on 127.0.0.1: do not let "localhost" resolve to ::1 first
            info = socket.getaddrinfo(self.target_host, self.target_port, socket.AF_INET, socket.SOCK_STREAM)[
                0
            ]
        except socket.gaierror:
            info = socket.getaddrinfo(self.target_host, self.target_port, type=socket.SOCK_STREAM)[0]
        self._target_family = info[0]
        self._target_addr = (str(info[4][0]), int(info[4][1]))
        self._listener = self._bind_listener()
        self._listening = True
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, _R, _WAKE)
        self._sel.register(self._listener, _R, _LISTENER)
        self._thread = threading.Thread(target=self._run, name=f"ChaosProxy-{self._port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the loop thread and close every socket. Idempotent."""
        thread = self._thread
        if thread is None or self._stopping:
            return
        self._stopping = True
        self._wake()
        thread.join(timeout=_COMMAND_TIMEOUT)

    def __enter__(self: _T) -> _T:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<ChaosProxy {self.listen_host}:{self._port} -> {self.target_host}:{self.target_port}"
            f" listening={self._listening} blackholed={self._blackholed}"
            f" active={self.active_connections}>"
        )

    # -- addresses and state -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The listening port (known after ``start()`` when ``listen_port`` was 0); kept across down/up."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.listen_host, self._port)

    @property
    def target(self) -> tuple[str, int]:
        return (self.target_host, self.target_port)

    @property
    def is_listening(self) -> bool:
        return self._listening

    @property
    def is_blackholed(self) -> bool:
        return self._blackholed

    # -- faults ------------------------------------------------------------------------------------------
    def down(self) -> None:
        """Stop listening (connect() gets ECONNREFUSED) and reset every open connection."""
        self._call(self._do_down)

    def up(self) -> None:
        """Listen again on the same port."""
        self._call(self._do_up)

    def cut(self) -> None:
        """Reset every open connection; keep accepting new ones."""
        self._call(self._do_cut)

    def blackhole(self) -> None:
        """Swallow bytes both ways on every connection, existing and new, without closing anything."""
        self._call(self._do_blackhole)

    def stall(self) -> None:
        """The broker stops reading: bytes towards it pile up (1 MiB) and then the client's writes block, as
        under TCP flow control; replies still flow. ``heal()`` delivers what piled up."""
        self._call(self._do_stall)

    def heal(self) -> None:
        """Forward again; reset the connections whose bytes were swallowed; deliver what a stall held."""
        self._call(self._do_heal)

    # -- counters ----------------------------------------------------------------------------------------
    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return self._connections_accepted

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    @property
    def connections_reset(self) -> int:
        """Connections the proxy reset (``cut``, ``down``, ``heal``, an unreachable target, a peer's RST)."""
        with self._lock:
            return self._connections_reset

    @property
    def bytes_to_target(self) -> int:
        with self._lock:
            return self._bytes_to_target

    @property
    def bytes_to_client(self) -> int:
        with self._lock:
            return self._bytes_to_client

    @property
    def bytes_swallowed(self) -> int:
        with self._lock:
            return self._bytes_swallowed

    def wait_for(self, predicate: Callable[[ChaosProxy], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` is true (re-checked on every counter change); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, _TICK))
            return True

    # -- command plumbing --------------------------------------------------------------------------------
    def _call(self, fn: Callable[[], None]) -> None:
        thread = self._thread
        if thread is None or self._stopping or not thread.is_alive():
            raise RuntimeError("ChaosProxy is not running (call start() first)")
        if threading.current_thread() is thread:
            fn()
            return
        done = threading.Event()
        failure: list[BaseException] = []
        with self._lock:
            self._commands.append((fn, done, failure))
        self._wake()
        if not done.wait(_COMMAND_TIMEOUT):
            raise RuntimeError("ChaosProxy loop did not answer")
        if failure:
            raise failure[0]

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):  # a full pipe already guarantees a wake-up
                self._wake_w.send(b"\0")

    def _run_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
        for fn, done, failure in commands:
            try:
                fn()
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)
            done.set()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- the loop ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self._stopping:
                for key, mask in sel.select(timeout=_TICK):
                    data = key.data
                    if data is _WAKE:
                        self._drain_wake()
                    elif data is _LISTENER:
                        self._accept()
                    else:
                        conn, side = data
                        if not conn.closed:
                            self._service(conn, side, mask)
                self._run_commands()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for conn in list(self._conns):
            self._close_conn(conn, rst=False)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._listening = False
        # Release callers that raced with close().
        with self._lock:
            commands, self._commands = self._commands, []
        for _fn, done, failure in commands:
            failure.append(RuntimeError("ChaosProxy closed"))
            done.set()
        if self._sel is not None:
            self._sel.close()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._notify()

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._wake_r.recv(4096):
                pass

    def _bind_listener(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        last_error: OSError | None = None
        for _ in range(20):
            port = self._port
            if port == 0:
                # Bind an explicit port, not 0: Linux keeps an explicitly bound port reserved while the
                # listener is parked by down(), so up() gets the same port back.
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.bind((self.listen_host, 0))
                    port = probe.getsockname()[1]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.listen_host, port))
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or self._port != 0:
                    raise
                last_error = exc
                continue
            sock.listen(128)
            sock.setblocking(False)
            self._port = port
            return sock
        assert last_error is not None
        raise last_error

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNABORTED: the client gave up before we got to it
            client.setblocking(False)
            with contextlib.suppress(OSError):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._blackholed:
                conn = _Conn(client, None, connecting=False)
            else:
                target = socket.socket(self._target_family, socket.SOCK_STREAM)
                target.setblocking(False)
                with contextlib.suppress(OSError):
                    target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                rc = target.connect_ex(self._target_addr)
                if rc not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                    target.close()
                    _reset(client)
                    with self._lock:
                        self._connections_accepted += 1
                        self._connections_reset += 1
                    self._notify()
                    continue
                conn = _Conn(client, target, connecting=rc != 0)
            with self._lock:
                self._connections_accepted += 1
                self._conns.add(conn)
            self._notify()
            self._update(conn)

    def _service(self, conn: _Conn, side: int, mask: int) -> None:
        if side == _TARGET and conn.connecting:
            assert conn.target is not None
            err = conn.target.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._close_conn(conn, rst=True)
                return
            conn.connecting = False
        if mask & _R:
            self._read(conn, side)
        if not conn.closed and mask & _W:
            self._flush(conn, side)
        if not conn.closed:
            self._finish_half_closes(conn)
        if not conn.closed:
            self._update(conn)

    def _read(self, conn: _Conn, side: int) -> None:
        sock = conn.client if side == _CLIENT else conn.target
        assert sock is not None
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._peer_failed(conn, side)
            return
        if not data:
            self._peer_eof(conn, side)
            return
        if self._blackholed:
            conn.broken = True
            with self._lock:
                self._bytes_swallowed += len(data)
            return
        if side == _CLIENT:
            conn.to_target += data
            if not conn.connecting:
                self._flush(conn, _TARGET)
        else:
            conn.to_client += data
            self._flush(conn, _CLIENT)

    def _flush(self, conn: _Conn, dest: int) -> None:
        """Write what is pending towards ``dest`` without blocking."""
        if self._blackholed or (self._stalled and dest == _TARGET):
            return
        sock = conn.client if dest == _CLIENT else conn.target
        buf = conn.to_client if dest == _CLIENT else conn.to_target
        if sock is None or not buf:
            return
        try:
            sent = sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._peer_failed(conn, dest)
            return
        del buf[:sent]
        with self._lock:
            if dest == _CLIENT:
                self._bytes_to_client += sent
            else:
                self._bytes_to_target += sent

    def _peer_eof(self, conn: _Conn, side: int) -> None:
        if side == _CLIENT:
            conn.client_eof = True
            if self._blackholed:
                self._close_conn(conn, rst=False)  # the client is gone; the broker never hears of it
        else:
            conn.target_eof = True
            if self._blackholed:
                self._drop_target(conn)

    def _peer_failed(self, conn: _Conn, side: int) -> None:
        if side == _TARGET and self._blackholed:
            self._drop_target(conn)  # the partition hides the broker's reset from the client
        else:
            self._close_conn(conn, rst=True)

    def _drop_target(self, conn: _Conn) -> None:
        if conn.target is not None:
            self._unregister(conn.target)
            conn.target.close()
            conn.target = None
        conn.broken = True

    def _finish_half_closes(self, conn: _Conn) -> None:
        if self._blackholed:
            return
        if conn.client_eof and not conn.to_target and not conn.target_wr_shut and not conn.connecting:
            conn.target_wr_shut = True
            if conn.target is not None:
                with contextlib.suppress(OSError):
                    conn.target.shutdown(socket.SHUT_WR)
        if conn.target_eof and not conn.to_client and not conn.client_wr_shut:
            conn.client_wr_shut = True
            with contextlib.suppress(OSError):
                conn.client.shutdown(socket.SHUT_WR)
        if conn.client_wr_shut and conn.target_wr_shut:
            self._close_conn(conn, rst=False)

    def _update(self, conn: _Conn) -> None:
        """Register exactly the events this connection can act on now."""
        hole = self._blackholed
        events = 0
        if not conn.client_eof and (hole or len(conn.to_target) < _MAX_PENDING):
            events |= _R
        if conn.to_client and not hole:
            events |= _W
        self._set_events(conn.client, events, (conn, _CLIENT))
        if conn.target is not None:
            if conn.connecting:
                events = _W
            else:
                events = 0
                if not conn.target_eof and (hole or len(conn.to_client) < _MAX_PENDING):
                    events |= _R
                if conn.to_target and not hole and not self._stalled:
                    events |= _W
            self._set_events(conn.target, events, (conn, _TARGET))

    def _set_events(self, sock: socket.socket, events: int, data: object) -> None:
        sel = self._sel
        assert sel is not None
        try:
            key = sel.get_key(sock)
        except KeyError:
            if events:
                sel.register(sock, events, data)
            return
        if not events:
            sel.unregister(sock)
        elif key.events != events:
            sel.modify(sock, events, data)

    def _unregister(self, sock: socket.socket) -> None:
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(sock)

    def _close_conn(self, conn: _Conn, rst: bool) -> None:
        if conn.closed:
            return
        conn.closed = True
        for sock in (conn.client, conn.target):
            if sock is None:
                continue
            self._unregister(sock)
            if rst:
                _reset(sock)
            else:
                sock.close()
        with self._lock:
            self._conns.discard(conn)
            if rst:
                self._connections_reset += 1
        self._notify()

    # -- fault implementations (run on the loop thread) --------------------------------------------------
    def _do_down(self) -> None:
        if self._listening:
            listener = self._listener
            assert listener is not None
            self._unregister(listener)
            parked = False
            if _CAN_PARK_LISTENER:
                try:
                    # Linux: shutting a listener down stops it listening (pending connections get RST) yet
                    # keeps the port bound, so nobody can take the port before up().
                    listener.shutdown(socket.SHUT_RD)
                    parked = True
                except OSError:
                    parked = False
            if not parked:
                listener.close()
                self._listener = None
            self._listening = False
        self._do_cut()

    def _do_up(self) -> None:
        if self._listening:
            return
        listener = self._listener
        if listener is not None:
            try:
                listener.listen(128)
                if listener.getsockname()[1] != self._port:
                    raise OSError("re-listen moved to another port")
            except OSError:
                listener.close()
                listener = None
        if listener is None:
            listener = self._bind_listener()
        self._listener = listener
        assert self._sel is not None
        self._sel.register(listener, _R, _LISTENER)
        self._listening = True
        self._notify()

    def _do_cut(self) -> None:
        for conn in list(self._conns):
            self._close_conn(conn, rst=True)

    def _do_blackhole(self) -> None:
        if self._blackholed:
            return
        self._blackholed = True
        dropped = 0
        for conn in list(self._conns):
            pending = len(conn.to_target) + len(conn.to_client)
            if pending:
                conn.broken = True
                dropped += pending
                conn.to_target.clear()
                conn.to_client.clear()
            self._update(conn)
        with self._lock:
            self._bytes_swallowed += dropped
        self._notify()

    def _do_stall(self) -> None:
        self._stalled = True
        for conn in list(self._conns):
            self._update(conn)
        self._notify()

    def _do_heal(self) -> None:
        if self._stalled:
            self._stalled = False
            for conn in list(self._conns):
                self._update(conn)
                self._flush(conn, _TARGET)
        if not self._blackholed:
            self._notify()
            return
        self._blackholed = False
        for conn in list(self._conns):
            if conn.broken:
                self._close_conn(conn, rst=True)
            else:
                self._finish_half_closes(conn)
                if not conn.closed:
                    self._update(conn)
        self._notify()
