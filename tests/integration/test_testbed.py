"""The test bed itself: ChaosProxy fault modes, broker launchers and fixtures, seen from plain clients.

Everything here talks to real brokers (ActiveMQ over STOMP with stomp.py, Tansu over the Kafka protocol with
kafka-python) except the first group, which runs ChaosProxy against a tiny local echo server.
"""

from __future__ import annotations

import os
import socket
import socketserver
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import stomp
import stomp.exception
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError, RequestTimedOutError
from stomp.utils import Frame

from resilientmq.testing import (
    ANY_USER,
    ActiveMQBroker,
    ActiveMQMasterSlave,
    BrokerStartError,
    ChaosProxy,
    TansuBroker,
    free_port,
    wait_for_port,
)

ProxyFactory = Callable[[str, int], ChaosProxy]
DEADLINE = 10.0  # generous upper bound for things that normally take milliseconds


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass  # resets are what these tests inject


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()


def _connect(proxy: ChaosProxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=DEADLINE)
    return sock


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _recv_times_out(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(DEADLINE)
    return False


class Probe(stomp.ConnectionListener):
    """Records what a stomp.py connection reports, and lets a test wait on it with a deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.connected = 0
        self.disconnected = 0
        self.heartbeat_timeouts = 0
        self.receipts: set[str] = set()
        self.errors: list[Frame] = []
        self.messages: list[Frame] = []

    def _record(self, update: Callable[[], None]) -> None:
        with self._cond:
            update()
            self._cond.notify_all()

    def on_connected(self, frame: Frame) -> None:
        self._record(lambda: setattr(self, "connected", self.connected + 1))

    def on_disconnected(self) -> None:
        self._record(lambda: setattr(self, "disconnected", self.disconnected + 1))

    def on_heartbeat_timeout(self) -> None:
        self._record(lambda: setattr(self, "heartbeat_timeouts", self.heartbeat_timeouts + 1))

    def on_receipt(self, frame: Frame) -> None:
        self._record(lambda: self.receipts.add(frame.headers["receipt-id"]))

    def on_error(self, frame: Frame) -> None:
        self._record(lambda: self.errors.append(frame))

    def on_message(self, frame: Frame) -> None:
        self._record(lambda: self.messages.append(frame))

    def wait(self, predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)


def _stomp(
    host_and_ports: list[tuple[str, int]],
    *,
    heartbeats: tuple[int, int] = (0, 0),
    login: tuple[str, str] | None = None,
    expect_connected: bool = True,
) -> tuple[stomp.Connection, Probe]:
    """Open a plain stomp.py connection; never block without a deadline (connect(wait=True) has none)."""
    conn = stomp.Connection(
        host_and_ports,
        heartbeats=heartbeats,
        reconnect_attempts_max=1,
        reconnect_sleep_initial=0.05,
        timeout=5,
    )
    probe = Probe()
    conn.set_listener("probe", probe)
    user, password = login if login else (None, None)
    conn.connect(user, password, wait=False)
    if expect_connected:
        assert probe.wait(lambda: probe.connected > 0), "no CONNECTED frame"
    return conn, probe


def _close(conn: stomp.Connection) -> None:
    """Disconnect politely if possible; always end the receiver thread (whatever state the socket is in)."""
    if conn.is_connected():
        conn.disconnect()
    conn.transport.disconnect_socket()


def _send_confirmed(conn: stomp.Connection, probe: Probe, dest: str, bodies: list[str]) -> None:
    for i, body in enumerate(bodies):
        receipt = f"r-{uuid.uuid4()}-{i}"
        conn.send(dest, body, receipt=receipt, persistent="true")
        assert probe.wait(partial(probe.receipts.__contains__, receipt)), f"no RECEIPT for message {i}"


def _drain(conn: stomp.Connection, probe: Probe, dest: str) -> list[str]:
    """Consume ``dest`` up to a marker sent last: everything queued before it has arrived by then."""
    marker = f"END-{uuid.uuid4()}"
    conn.subscribe(dest, id=str(uuid.uuid4()), ack="auto")
    conn.send(dest, marker, receipt=marker)
    assert probe.wait(lambda: any(m.body == marker for m in probe.messages)), "marker never arrived"
    bodies = [m.body for m in probe.messages]
    return bodies[: bodies.index(marker)]


def _dest() -> str:
    return f"/queue/testbed.{uuid.uuid4().hex}"


# ---------------------------------------------------------------------------------------------------------
# ChaosProxy against an echo server
# ---------------------------------------------------------------------------------------------------------


def test_proxy_forwards_both_ways_and_counts(echo: tuple[str, int]) -> None:
    with ChaosProxy(*echo) as proxy:
        assert proxy.address == ("127.0.0.1", proxy.port)
        with _connect(proxy) as sock:
            payload = os.urandom(3_000_000)  # far above one pending buffer: exercises back-pressure
            sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
            sender.start()
            got = bytearray()
            while len(got) < len(payload):
                got += sock.recv(1 << 20)
            sender.join(DEADLINE)
            assert bytes(got) == payload
        assert proxy.connections_accepted == 1
        # The proxy counts a chunk once its write returned, which can be after the peer has read it.
        n = len(payload)
        assert proxy.wait_for(lambda p: p.bytes_to_target == n and p.bytes_to_client == n, DEADLINE), (
            proxy.bytes_to_target,
            proxy.bytes_to_client,
        )
        assert (proxy.bytes_to_target, proxy.bytes_to_client) == (n, n)
        assert proxy.wait_for(lambda p: p.active_connections == 0)


def test_proxy_relays_half_close(echo: tuple[str, int]) -> None:
    with ChaosProxy(*echo) as proxy, _connect(proxy) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(100):
            received += chunk
        assert received == b"last words"  # then EOF: the server saw our FIN and closed
        assert proxy.wait_for(lambda p: p.active_connections == 0)


def test_proxy_down_refuses_and_resets_then_up_reuses_port(echo: tuple[str, int]) -> None:
    with ChaosProxy(*echo) as proxy:
        port = proxy.port
        sock = _connect(proxy)
        assert _roundtrip(sock, b"ping") == b"ping"
        proxy.down()
        assert not proxy.is_listening
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(proxy.address, timeout=DEADLINE)
        proxy.up()
        assert proxy.port == port
        with _connect(proxy) as again:
            assert _roundtrip(again, b"pong") == b"pong"
        sock.close()


def test_proxy_cut_resets_open_connections_only(echo: tuple[str, int]) -> None:
    with ChaosProxy(*echo) as proxy:
        sock = _connect(proxy)
        assert _roundtrip(sock, b"a") == b"a"
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        sock.close()
        with _connect(proxy) as fresh:
            assert _roundtrip(fresh, b"b") == b"b"
        assert proxy.connections_reset == 1


def test_proxy_blackhole_swallows_then_heal_resets_broken_streams(echo: tuple[str, int]) -> None:
    with ChaosProxy(*echo) as proxy:
        busy = _connect(proxy)
        idle = _connect(proxy)
        assert _roundtrip(busy, b"1") == b"1"
        assert _roundtrip(idle, b"2") == b"2"
        proxy.blackhole()
        busy.sendall(b"x" * 200_000)  # writes succeed...
        assert _recv_times_out(busy, 0.3)  # ...but nothing comes back, and no reset either
        late = _connect(proxy)  # accepted during the blackhole, and swallowed too
        late.sendall(b"hello?")
        assert _recv_times_out(late, 0.3)
        assert proxy.wait_for(lambda p: p.bytes_swallowed >= 200_000 + 6)
        proxy.heal()
        for broken in (busy, late):
            with pytest.raises(ConnectionResetError):
                broken.recv(10)
            broken.close()
        assert _roundtrip(idle, b"still here") == b"still here"  # lost nothing, so it lives on
        idle.close()


def test_proxy_resets_client_when_target_refuses() -> None:
    with ChaosProxy("127.0.0.1", free_port()) as proxy:
        # The reset may even beat connect()'s own completion check: either way the client sees a reset.
        with pytest.raises(ConnectionResetError), _connect(proxy) as sock:
            sock.recv(10)
        assert proxy.connections_accepted == 1
        assert proxy.wait_for(lambda p: p.connections_reset == 1)


def test_proxy_close_ends_its_thread(echo: tuple[str, int]) -> None:
    proxy = ChaosProxy(*echo).start()
    sock = _connect(proxy)
    assert _roundtrip(sock, b"x") == b"x"
    proxy.close()
    assert sock.recv(10) == b""
    sock.close()
    assert not [t for t in threading.enumerate() if t.name == f"ChaosProxy-{proxy.port}"]
    with pytest.raises(RuntimeError):
        proxy.cut()
    assert not proxy.wait_for(lambda p: p.connections_accepted > 5, timeout=0.1)


def test_wait_for_port_times_out_on_a_closed_port() -> None:
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", free_port(), timeout=0.3)


# ---------------------------------------------------------------------------------------------------------
# Launchers: start failures are loud
# ---------------------------------------------------------------------------------------------------------


def test_start_error_carries_the_log_when_the_broker_dies(tmp_path: Path) -> None:
    broker = ActiveMQBroker(workdir=tmp_path, heap="not-a-size")
    with pytest.raises(BrokerStartError, match="exited with code") as info:
        broker.start()
    assert "Invalid maximum heap size" in str(info.value)
    assert not broker.is_running()


def test_start_error_when_the_port_never_opens(tmp_path: Path) -> None:
    fake = tmp_path / "fake-broker"
    fake.write_text("#!/bin/sh\necho pretending to start\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    broker = TansuBroker(binary=str(fake), workdir=tmp_path, start_timeout=0.5)
    with pytest.raises(BrokerStartError, match="did not open port") as info:
        broker.start()
    assert "pretending to start" in str(info.value)
    assert not broker.is_running()  # killed by pid, not left behind


def test_start_error_when_java_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BrokerStartError, match="not found on PATH"):
        ActiveMQBroker(workdir=tmp_path, java="no-such-java-binary").start()


# ---------------------------------------------------------------------------------------------------------
# ActiveMQ through the proxy, with stomp.py
# ---------------------------------------------------------------------------------------------------------


def test_stomp_roundtrip_through_proxy(activemq_behind_proxy: tuple[ActiveMQBroker, ChaosProxy]) -> None:
    _, proxy = activemq_behind_proxy
    conn, probe = _stomp([proxy.address])
    dest = _dest()
    _send_confirmed(conn, probe, dest, ["one", "two"])
    assert _drain(conn, probe, dest) == ["one", "two"]
    _close(conn)
    assert proxy.bytes_to_target > 0
    assert proxy.bytes_to_client > 0


def test_stomp_proxy_down_refuses_connect_then_up(
    activemq_behind_proxy: tuple[ActiveMQBroker, ChaosProxy],
) -> None:
    _, proxy = activemq_behind_proxy
    proxy.down()
    with pytest.raises(stomp.exception.ConnectFailedException):
        _stomp([proxy.address])
    assert proxy.connections_accepted == 0
    proxy.up()
    conn, probe = _stomp([proxy.address])
    _send_confirmed(conn, probe, _dest(), ["back"])
    _close(conn)


def test_stomp_cut_disconnects_client(activemq_behind_proxy: tuple[ActiveMQBroker, ChaosProxy]) -> None:
    _, proxy = activemq_behind_proxy
    conn, probe = _stomp([proxy.address])
    proxy.cut()
    assert probe.wait(lambda: probe.disconnected > 0), "on_disconnected did not fire"
    assert not conn.is_connected()
    conn, probe = _stomp([proxy.address])  # new connections are still accepted
    _send_confirmed(conn, probe, _dest(), ["after cut"])
    _close(conn)


def test_stomp_blackhole_silences_connection_then_heal(
    activemq_behind_proxy: tuple[ActiveMQBroker, ChaosProxy],
) -> None:
    _, proxy = activemq_behind_proxy
    conn, probe = _stomp([proxy.address], heartbeats=(200, 200))
    proxy.blackhole()
    conn.send(_dest(), "into the void", receipt="lost")  # the write itself succeeds
    assert not probe.wait(lambda: "lost" in probe.receipts, timeout=1.0)
    assert probe.wait(lambda: probe.heartbeat_timeouts > 0), "heartbeats did not time out"
    assert probe.errors == []  # silence, not an error
    _late, late_probe = _stomp([proxy.address], expect_connected=False)
    assert not late_probe.wait(lambda: late_probe.connected > 0, timeout=0.5)
    proxy.heal()
    conn, probe = _stomp([proxy.address])
    _send_confirmed(conn, probe, _dest(), ["healed"])
    _close(conn)
    _close(_late)


# ---------------------------------------------------------------------------------------------------------
# ActiveMQ crash, restart and failover
# ---------------------------------------------------------------------------------------------------------


def test_activemq_kill_restart_keeps_persistent_messages(activemq_fresh: ActiveMQBroker) -> None:
    broker = activemq_fresh
    port, first_pid = broker.stomp_port, broker.pid
    conn, probe = _stomp(broker.host_and_ports)
    dest = _dest()
    sent = [f"m{i}" for i in range(50)]
    _send_confirmed(conn, probe, dest, sent)
    broker.kill()
    assert not broker.is_running()
    assert probe.wait(lambda: probe.disconnected > 0)
    broker.restart()
    assert broker.stomp_port == port and broker.pid != first_pid
    conn, probe = _stomp(broker.host_and_ports)
    assert _drain(conn, probe, dest) == sent
    _close(conn)


def test_activemq_master_slave_failover_keeps_persistent_messages(
    activemq_master_slave: ActiveMQMasterSlave,
) -> None:
    pair = activemq_master_slave
    first = pair.master
    assert pair.slave.is_running()
    conn, probe = _stomp(pair.host_and_ports)
    dest = _dest()
    sent = [f"m{i}" for i in range(20)]
    _send_confirmed(conn, probe, dest, sent)
    started = time.monotonic()
    pair.kill_master()
    new_master = pair.wait_for_failover(timeout=30)
    took = time.monotonic() - started
    assert new_master is not first and pair.master is new_master
    assert probe.wait(lambda: probe.disconnected > 0)
    conn, probe = _stomp(pair.host_and_ports)
    assert _drain(conn, probe, dest) == sent
    _close(conn)
    assert took < 10, f"failover took {took:.1f}s"


# ---------------------------------------------------------------------------------------------------------
# ActiveMQ refusals: credentials, authorization, frame size
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActiveMQBroker]:
    with ActiveMQBroker(
        workdir=tmp_path_factory.mktemp("secured"),
        users={"alice": "alice-pw", "bob": "bob-pw"},
        authorization={"/queue/app.>": [ANY_USER], "/queue/restricted.>": ["alice"]},
        max_frame_size=4096,
    ) as broker:
        yield broker


@pytest.mark.parametrize("login", [None, ("bob", "wrong")], ids=["anonymous", "bad-password"])
def test_activemq_refuses_bad_credentials_with_error_frame(
    secured: ActiveMQBroker, login: tuple[str, str] | None
) -> None:
    conn, probe = _stomp(secured.host_and_ports, login=login, expect_connected=False)
    assert probe.wait(lambda: bool(probe.errors))
    assert "password is invalid" in probe.errors[0].headers["message"]
    assert probe.connected == 0
    _close(conn)


def test_activemq_refuses_forbidden_write_with_error_frame(secured: ActiveMQBroker) -> None:
    conn, probe = _stomp(secured.host_and_ports, login=("bob", "bob-pw"))
    conn.send("/queue/restricted.orders", "nope", receipt="forbidden")
    assert probe.wait(lambda: bool(probe.errors))
    error = probe.errors[0]
    assert error.headers["receipt-id"] == "forbidden"
    assert "not authorized to write" in error.headers["message"]
    _send_confirmed(conn, probe, "/queue/app.orders", ["allowed"])  # the connection survives
    _close(conn)
    conn, probe = _stomp(secured.host_and_ports, login=("alice", "alice-pw"))
    _send_confirmed(conn, probe, "/queue/restricted.orders", ["alice may"])
    _close(conn)


def test_activemq_refuses_oversized_frame(secured: ActiveMQBroker) -> None:
    conn, probe = _stomp(secured.host_and_ports, login=("bob", "bob-pw"))
    _send_confirmed(conn, probe, "/queue/app.sizes", ["x" * 1000])
    conn.send("/queue/app.sizes", "x" * 10_000, receipt="too-big")
    assert probe.wait(lambda: bool(probe.errors))
    assert "maximum frame size" in probe.errors[0].headers["message"]
    assert probe.wait(lambda: probe.disconnected > 0)  # and the broker closes the connection
    assert "too-big" not in probe.receipts


# ---------------------------------------------------------------------------------------------------------
# Tansu (Kafka protocol) through the proxy, with kafka-python
# ---------------------------------------------------------------------------------------------------------


def _producer(bootstrap: str, **config: object) -> KafkaProducer:
    settings: dict[str, object] = {"linger_ms": 0, "bootstrap_timeout_ms": 5000, **config}
    return KafkaProducer(bootstrap_servers=bootstrap, **settings)


def _records(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        values: list[bytes] = []
        deadline = time.monotonic() + DEADLINE
        while len(values) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                values += [record.value for record in batch]
        return values
    finally:
        consumer.close()


def test_kafka_traffic_crosses_the_advertised_proxy(
    tansu_behind_proxy: tuple[TansuBroker, ChaosProxy],
) -> None:
    broker, proxy = tansu_behind_proxy
    producer = _producer(broker.bootstrap_servers)  # bootstrap direct: only the metadata says "proxy"
    for i in range(5):
        producer.send("direct", f"v{i}".encode(), partition=0).get(timeout=DEADLINE)
    producer.close(timeout=5)
    assert proxy.connections_accepted >= 1
    assert proxy.bytes_to_target > 0 and proxy.bytes_to_client > 0
    assert _records(f"127.0.0.1:{proxy.port}", "direct", 5) == [f"v{i}".encode() for i in range(5)]


def test_kafka_proxy_down_refuses_bootstrap_then_up(
    tansu_behind_proxy: tuple[TansuBroker, ChaosProxy],
) -> None:
    _, proxy = tansu_behind_proxy
    bootstrap = f"127.0.0.1:{proxy.port}"
    proxy.down()
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        _producer(bootstrap, bootstrap_timeout_ms=1000)
    assert proxy.connections_accepted == 0
    proxy.up()
    producer = _producer(bootstrap)
    producer.send("updown", b"up again", partition=0).get(timeout=DEADLINE)
    producer.close(timeout=5)


def test_kafka_cut_forces_a_reconnect(tansu_behind_proxy: tuple[TansuBroker, ChaosProxy]) -> None:
    _, proxy = tansu_behind_proxy
    bootstrap = f"127.0.0.1:{proxy.port}"
    producer = _producer(bootstrap)
    producer.send("cut", b"before", partition=0).get(timeout=DEADLINE)
    accepted = proxy.connections_accepted
    proxy.cut()
    assert proxy.connections_reset >= 1 and proxy.active_connections == 0
    producer.send("cut", b"after", partition=0).get(timeout=DEADLINE)  # kafka-python reconnects by itself
    assert proxy.connections_accepted > accepted
    producer.close(timeout=5)
    assert _records(bootstrap, "cut", 2) == [b"before", b"after"]


def test_kafka_blackhole_times_out_then_heal(tansu_behind_proxy: tuple[TansuBroker, ChaosProxy]) -> None:
    _, proxy = tansu_behind_proxy
    bootstrap = f"127.0.0.1:{proxy.port}"
    producer = _producer(bootstrap, request_timeout_ms=1000, retries=0)
    producer.send("hole", b"before", partition=0).get(timeout=DEADLINE)
    proxy.blackhole()
    with pytest.raises(RequestTimedOutError):
        producer.send("hole", b"lost", partition=0).get(timeout=DEADLINE)
    proxy.heal()
    producer.send("hole", b"after", partition=0).get(timeout=DEADLINE)
    producer.close(timeout=5)
    assert _records(bootstrap, "hole", 2) == [b"before", b"after"]


def test_tansu_restart_keeps_port_and_loses_data(tansu: TansuBroker) -> None:
    port, first_pid = tansu.port, tansu.pid
    producer = _producer(tansu.bootstrap_servers)
    producer.send("gone", b"x", partition=0).get(timeout=DEADLINE)
    producer.close(timeout=5)
    tansu.kill()
    assert not tansu.is_running()
    tansu.restart()
    assert tansu.port == port and tansu.pid != first_pid
    producer = _producer(tansu.bootstrap_servers)
    producer.send("gone", b"y", partition=0).get(timeout=DEADLINE)
    producer.close(timeout=5)
    assert _records(tansu.bootstrap_servers, "gone", 1) == [b"y"]  # memory storage: "x" died with the broker
