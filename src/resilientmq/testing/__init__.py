"""Test bed for code that must survive broker outages: fault-injecting proxy, real brokers, pytest fixtures.

* :class:`ChaosProxy` sits between a client and a broker and breaks the network on demand
  (``down``/``up``, ``cut``, ``blackhole``/``heal``).
* :class:`ActiveMQBroker`, :class:`ActiveMQMasterSlave` and :class:`TansuBroker` run real brokers on free
  loopback ports; ``kill()`` crashes them, ``restart()`` brings them back on the same ports.
* :class:`S3Store` runs a local S3 emulator (moto) that keeps tansu's data through broker kills
  (``TansuBroker(storage=store)``); :class:`TansuCluster` runs several tansu brokers sharing one store.
* :mod:`resilientmq.testing.mqsim` simulates an IBM MQ queue manager (the ``ibmmq`` API), for suites that
  cannot reach a real one.
* :func:`wait_until` polls a condition with a deadline.
* ``resilientmq.testing.fixtures`` is a pytest plugin with ready-made fixtures
  (``pytest_plugins = ["resilientmq.testing.fixtures"]``).

Example::

    from resilientmq.testing import ActiveMQBroker, ChaosProxy

    with ActiveMQBroker() as amq, ChaosProxy(*amq.host_and_ports[0]) as proxy:
        conn = stomp.Connection([proxy.address])
        ...
        proxy.blackhole()
"""

from .brokers import (
    ANY_USER,
    MEMORY_STORAGE,
    ActiveMQBroker,
    ActiveMQMasterSlave,
    BrokerStartError,
    S3Location,
    S3Store,
    TansuBroker,
    TansuCluster,
    free_port,
    start_tansu_behind_proxy,
    wait_for_port,
)
from .chaos import ChaosProxy
from .poll import wait_until

__all__ = [
    "ANY_USER",
    "MEMORY_STORAGE",
    "ActiveMQBroker",
    "ActiveMQMasterSlave",
    "BrokerStartError",
    "ChaosProxy",
    "S3Location",
    "S3Store",
    "TansuBroker",
    "TansuCluster",
    "free_port",
    "start_tansu_behind_proxy",
    "wait_for_port",
    "wait_until",
]
