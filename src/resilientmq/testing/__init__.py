"""Test bed for code that must survive broker outages: fault-injecting proxy, real brokers, pytest fixtures.

* :class:`ChaosProxy` sits between a client and a broker and breaks the network on demand
  (``down``/``up``, ``cut``, ``blackhole``/``heal``).
* :class:`ActiveMQBroker`, :class:`ActiveMQMasterSlave` and :class:`TansuBroker` run real brokers on free
  loopback ports; ``kill()`` crashes them, ``restart()`` brings them back on the same ports.
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
    ActiveMQBroker,
    ActiveMQMasterSlave,
    BrokerStartError,
    TansuBroker,
    free_port,
    start_tansu_behind_proxy,
    wait_for_port,
)
from .chaos import ChaosProxy
from .poll import wait_until

__all__ = [
    "ANY_USER",
    "ActiveMQBroker",
    "ActiveMQMasterSlave",
    "BrokerStartError",
    "ChaosProxy",
    "TansuBroker",
    "free_port",
    "start_tansu_behind_proxy",
    "wait_for_port",
    "wait_until",
]
