"""Fixtures for the STOMP suite: the same contract runs against ActiveMQ and RabbitMQ's STOMP plugin."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from stomp_support import RABBIT_ADDRESS, BrokerTarget

from resilientmq.testing import ANY_USER, ActiveMQBroker, ChaosProxy, wait_for_port
from resilientmq.testing.brokers import _port_open


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what needs the machine's RabbitMQ (``-m "not rabbitmq"`` leaves it out)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and "rabbitmq_stomp" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rabbitmq)


@pytest.fixture(scope="session")
def rabbitmq_stomp() -> tuple[str, int]:
    """The machine's RabbitMQ with its STOMP plugin (enabled here if the set-up script has not)."""
    host, port = RABBIT_ADDRESS
    if not _port_open(host, port):
        tool = shutil.which("rabbitmq-plugins")
        if tool is None:
            pytest.fail("RabbitMQ's STOMP port 61613 is closed and rabbitmq-plugins is not installed")
        subprocess.run([tool, "enable", "rabbitmq_stomp"], check=True, capture_output=True, timeout=60)
        try:
            wait_for_port(host, port, timeout=30)
        except TimeoutError:
            pytest.fail("enabled rabbitmq_stomp but nothing listens on 127.0.0.1:61613")
    return RABBIT_ADDRESS


@pytest.fixture(scope="session")
def activemq_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActiveMQBroker]:
    """ActiveMQ with users, a forbidden destination and a 64 KiB frame limit."""
    broker = ActiveMQBroker(
        workdir=tmp_path_factory.mktemp("activemq-auth"),
        users={"alice": "a-secret", "bob": "b-secret"},
        authorization={
            "/queue/app.>": [ANY_USER],
            "/queue/rmq-test.>": [ANY_USER],
            "/queue/restricted.>": ["alice"],
        },
        max_frame_size=64 * 1024,
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture(params=["activemq", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def target(
    request: pytest.FixtureRequest, activemq: ActiveMQBroker, chaos_proxy: object
) -> Iterator[BrokerTarget]:
    """A broker for the contract suite, with a ChaosProxy in front of it."""
    if request.param == "activemq":
        address = activemq.host_and_ports[0]
        user, password = None, None
    else:
        address = request.getfixturevalue("rabbitmq_stomp")
        user, password = "guest", "guest"
    proxy = ChaosProxy(*address).start()
    try:
        yield BrokerTarget(request.param, address, proxy, user, password)
    finally:
        proxy.close()
