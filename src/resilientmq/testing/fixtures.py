"""pytest fixtures for tests against real brokers and injected faults.

Load them from a ``conftest.py``::

    pytest_plugins = ["resilientmq.testing.fixtures"]

Fixtures:

``activemq`` (session)
    One :class:`ActiveMQBroker` for the whole session (no authentication). Tests share it: use unique
    destination names, and do not kill it (use ``activemq_fresh`` for that).
``activemq_fresh`` (function)
    A broker of the test's own (about 1 s to start), free to kill, restart or stop.
``activemq_master_slave`` (function)
    An :class:`ActiveMQMasterSlave` pair sharing one KahaDB store (about 2.5 s to start).
``activemq_behind_proxy`` (function)
    ``(broker, proxy)``: the session broker behind a fresh :class:`ChaosProxy`; connect to ``proxy.address``.
``tansu`` (function)
    A :class:`TansuBroker` of the test's own (starts in about 0.1 s; memory storage).
``tansu_behind_proxy`` (function)
    ``(broker, proxy)``: a Tansu broker advertising a ChaosProxy in front of it. Bootstrap with
    ``f"127.0.0.1:{proxy.port}"`` and every Kafka connection crosses the proxy.
``chaos_proxy`` (function)
    A factory ``make_proxy(host, port) -> ChaosProxy`` (started); every proxy is closed at teardown.
``s3_store`` (session)
    One :class:`S3Store` (moto) for the whole session (about 1.5 s to start). Tests share it: use a bucket of
    their own (``s3_store.url(name)``; the fixtures below do), and do not kill it.
``tansu_s3`` (function)
    A :class:`TansuBroker` keeping its data in a bucket of its own in ``s3_store``: ``kill()`` and
    ``restart()`` keep every record.
``tansu_cluster`` (function)
    A :class:`TansuCluster` of three brokers sharing a bucket of its own in ``s3_store``, each behind a
    :class:`ChaosProxy`; bootstrap with ``cluster.bootstrap_servers``.

A broker that cannot start (no Java, no ActiveMQ, no Tansu) makes the fixture fail with the reason: suites
that need real brokers must not skip silently. Broker work directories live under pytest's ``tmp_path``, so
``broker.log`` stays available after a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .brokers import ActiveMQBroker, ActiveMQMasterSlave, S3Store, TansuBroker, TansuCluster, free_port
from .chaos import ChaosProxy

__all__ = [
    "activemq",
    "activemq_behind_proxy",
    "activemq_fresh",
    "activemq_master_slave",
    "chaos_proxy",
    "s3_store",
    "tansu",
    "tansu_behind_proxy",
    "tansu_cluster",
    "tansu_s3",
]

_BUCKETS = itertools.count(1)


def _bucket(kind: str) -> str:
    return f"{kind}-{os.getpid()}-{next(_BUCKETS)}"


ProxyFactory = Callable[[str, int], ChaosProxy]


@pytest.fixture(scope="session")
def activemq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActiveMQBroker]:
    """One ActiveMQ broker for the whole session; share it with unique destination names, never kill it."""
    with ActiveMQBroker(workdir=tmp_path_factory.mktemp("activemq")) as broker:
        yield broker


@pytest.fixture
def activemq_fresh(tmp_path: Path) -> Iterator[ActiveMQBroker]:
    """An ActiveMQ broker for this test alone: kill, restart or stop it freely."""
    with ActiveMQBroker(workdir=tmp_path / "activemq") as broker:
        yield broker


@pytest.fixture
def activemq_master_slave(tmp_path: Path) -> Iterator[ActiveMQMasterSlave]:
    """A shared-storage ActiveMQ master/slave pair for this test alone."""
    with ActiveMQMasterSlave(workdir=tmp_path / "activemq-pair") as pair:
        yield pair


@pytest.fixture
def chaos_proxy() -> Iterator[ProxyFactory]:
    """Factory ``make_proxy(host, port)`` returning a started ChaosProxy; all are closed at teardown."""
    proxies: list[ChaosProxy] = []

    def make_proxy(host: str, port: int) -> ChaosProxy:
        proxy = ChaosProxy(host, port).start()
        proxies.append(proxy)
        return proxy

    try:
        yield make_proxy
    finally:
        for proxy in proxies:
            proxy.close()


@pytest.fixture
def activemq_behind_proxy(
    activemq: ActiveMQBroker, chaos_proxy: ProxyFactory
) -> tuple[ActiveMQBroker, ChaosProxy]:
    """``(broker, proxy)``: the session broker behind a fresh ChaosProxy; connect to ``proxy.address``."""
    host, port = activemq.host_and_ports[0]
    return activemq, chaos_proxy(host, port)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[TansuBroker]:
    """A Tansu (Kafka-protocol) broker for this test alone; memory storage."""
    with TansuBroker(workdir=tmp_path / "tansu") as broker:
        yield broker


@pytest.fixture
def tansu_behind_proxy(tmp_path: Path, chaos_proxy: ProxyFactory) -> Iterator[tuple[TansuBroker, ChaosProxy]]:
    """``(broker, proxy)``: Tansu advertising a ChaosProxy; bootstrap via ``127.0.0.1:{proxy.port}``."""
    port = free_port()
    proxy = chaos_proxy("127.0.0.1", port)
    broker = TansuBroker(port=port, advertised_port=proxy.port, workdir=tmp_path / "tansu")
    try:
        broker.start()
        yield broker, proxy
    finally:
        broker.close()


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    """One local S3 store (moto) for the whole session; give each test a bucket of its own, never kill it."""
    with S3Store(workdir=tmp_path_factory.mktemp("s3")) as store:
        yield store


@pytest.fixture
def tansu_s3(tmp_path: Path, s3_store: S3Store) -> Iterator[TansuBroker]:
    """A Tansu broker keeping its data in ``s3_store`` (a bucket of its own): it survives kill -9."""
    with TansuBroker(workdir=tmp_path / "tansu", storage=s3_store.url(_bucket("tansu"))) as broker:
        yield broker


@pytest.fixture
def tansu_cluster(tmp_path: Path, s3_store: S3Store) -> Iterator[TansuCluster]:
    """Three Tansu brokers sharing one bucket of ``s3_store``, each behind a ChaosProxy."""
    with TansuCluster(3, store=s3_store, bucket=_bucket("cluster"), workdir=tmp_path / "cluster") as cluster:
        yield cluster
