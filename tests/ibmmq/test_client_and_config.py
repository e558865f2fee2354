"""Without IBM's MQ client; choosing the MQI module; bad configuration gets a clear error."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import time

import pytest
from mqtarget import FAST, MQTarget

from resilientmq import (
    AuthenticationError,
    BufferFullError,
    ConnectionState,
    DestinationError,
    MQClientUnavailableError,
    ResilientQueue,
    ResilientWebSphereMQQueueManager,
)
from resilientmq.testing import mqsim

BLOCKED = textwrap.dedent(
    """
    import sys

    class NoMQClient:
        # Make ibmmq and pymqi unloadable, as on a machine without IBM's MQ client.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("ibmmq", "pymqi", "ibmmqc"):
                raise ImportError(f"{name} is blocked for this test")
            return None

    sys.meta_path.insert(0, NoMQClient())
    import resilientmq
    from resilientmq import MQClientUnavailableError, ResilientWebSphereMQQueueManager
    loaded = [m for m in ("ibmmq", "pymqi") if m in sys.modules]
    try:
        ResilientWebSphereMQQueueManager("QM1", "CH", "host(1414)")
    except MQClientUnavailableError as exc:
        print("unavailable", isinstance(exc, ImportError), loaded, exc)
    """
)


def test_import_works_without_an_mq_client_and_construction_says_what_is_missing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("unavailable True [] "), out
    assert "ibmmq" in out and "pymqi" in out and "libmqm_r.so" in out and "pip install ibmmq" in out


def _ibmmq_loads() -> bool:
    try:
        importlib.import_module("ibmmq")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_ibmmq_loads(), reason="IBM's MQ client loads on this machine")
def test_the_installed_ibmmq_without_its_c_library_is_reported() -> None:
    started = time.monotonic()
    with pytest.raises(MQClientUnavailableError) as info:
        ResilientWebSphereMQQueueManager("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)", mqi="ibmmq")
    message = str(info.value)
    assert "'ibmmq' could not be loaded" in message and "libmqm_r.so" in message
    assert isinstance(info.value, ImportError)
    with pytest.raises(MQClientUnavailableError, match="pymqi"):
        ResilientWebSphereMQQueueManager("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
    assert time.monotonic() - started < 5


def test_mqi_argument_is_checked() -> None:
    with pytest.raises(ValueError, match="mqi must be one of"):
        ResilientWebSphereMQQueueManager("QM1", mqi="zmq")
    with pytest.raises(TypeError, match="lacks QueueManager"):
        ResilientWebSphereMQQueueManager("QM1", mqi=object())
    with pytest.raises(TypeError, match="needs a ResilientWebSphereMQQueueManager"):
        ResilientQueue(object(), "Q")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channel": "CH"}, "give both channel and connection_info"),
        ({"channel": "CH", "connection_info": "host:1414"}, "'host:1414' is not of the form"),
        ({"channel": "CH", "connection_info": "a(1414),,b(1414)"}, "'' is not of the form"),
        ({"channel": "X" * 21, "connection_info": "h(1)"}, "1 to 20 characters"),
        ({"channel": "CH", "connection_info": "h(1)", "user": "app"}, "a password is required"),
        ({"channel": "CH", "connection_info": "h(1)", "use_ssl": True}, "needs ssl_cipher_spec"),
        ({"channel": "CH", "connection_info": "h(1)", "ssl_cipher_spec": "ANY"}, "use_ssl is False"),
        ({"channel": "CH", "connection_info": "h(1)", "operation_timeout": 0}, "operation_timeout"),
        ({"channel": "CH", "connection_info": "h(1)", "reconnect_tries": "ten"}, "reconnect_tries"),
        ({"channel": "CH", "connection_info": "h(1)", "buffer_max_messages": 0}, "buffer_max_messages"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    sim = mqsim.Simulator("QM1")
    with pytest.raises((ValueError, TypeError), match=message):
        ResilientWebSphereMQQueueManager("QM1", mqi=sim.mqi, **kwargs)  # type: ignore[arg-type]
    assert sim.stats["connects"] == 0


def test_seed_defaults_for_reconnecting_and_buffering(sim_mq: MQTarget) -> None:
    qm = ResilientWebSphereMQQueueManager("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)", mqi=sim_mq.mqi)
    policy = qm._rmq.supervisor.policy
    assert (policy.max_attempts, policy.max_delay) == (10, 60.0)
    assert qm._rmq.buffer.max_messages == 10_000
    qm.disconnect()


def test_bindings_connection(sim_mq: MQTarget) -> None:
    queue = sim_mq.queue()
    qm = ResilientWebSphereMQQueueManager("QM1", mqi=sim_mq.mqi)  # no channel: local bindings
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT | sim_mq.C.MQOO_INPUT_SHARED)
    q.put(b"local")
    assert qm.flush(5) and q.get() == b"local"
    qm.disconnect()


def test_tls_settings_reach_the_connection(sim_mq: MQTarget) -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as info:  # a cipher without a key repository: MQ says 2381
        sim_mq.resilient(use_ssl=True, ssl_cipher_spec="ANY_TLS12_OR_HIGHER")
    assert info.value.reason == sim_mq.C.MQRC_KEY_REPOSITORY_ERROR  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5  # refused at once, not retried
    qm = sim_mq.resilient(use_ssl=True, ssl_cipher_spec="ANY_TLS12_OR_HIGHER", key_repository="/var/mqm/key")
    assert qm.is_connected


def test_wrong_queue_manager_name_fails_fast(sim_mq: MQTarget) -> None:
    with pytest.raises(DestinationError) as info:
        ResilientWebSphereMQQueueManager("QM9", "DEV.APP.SVRCONN", "127.0.0.1(1414)", mqi=sim_mq.mqi)
    assert info.value.reason == sim_mq.C.MQRC_Q_MGR_NAME_ERROR  # type: ignore[attr-defined]


def test_the_buffer_bound_holds_while_the_queue_manager_is_down(sim_mq: MQTarget) -> None:
    assert sim_mq.sim is not None
    queue = sim_mq.queue()
    qm = sim_mq.resilient(buffer_max_messages=10, buffer_overflow="raise")
    q = qm.open_queue(queue, sim_mq.C.MQOO_OUTPUT)
    sim_mq.sim.stop()
    for i in range(10):
        q.put(b"%d" % i)
    with pytest.raises(BufferFullError):
        q.put(b"one too many")
    assert qm.get_buffer_size() == 10
    sim_mq.sim.start()
    assert qm.flush(10)
    assert [body for body, _md in sim_mq.drain(queue)] == [b"%d" % i for i in range(10)]


def test_made_with_none_it_connects_when_told_to_as_ibmmq_does(sim_mq: MQTarget) -> None:
    assert sim_mq.sim is not None
    mqi, c = sim_mq.mqi, sim_mq.C
    queue = sim_mq.queue()
    qm = ResilientWebSphereMQQueueManager(None, mqi=mqi, reconnect_policy=FAST)
    assert qm.connection_state is ConnectionState.DISCONNECTED and sim_mq.sim.stats["connects"] == 0
    q = qm.open_queue(queue, c.MQOO_OUTPUT | c.MQOO_INPUT_SHARED)  # opened once connected
    with pytest.raises(mqi.PYIFError, match="not connected"):
        q.get()
    qm.connect_tcp_client("QM1", mqi.CD(), "DEV.APP.SVRCONN", "127.0.0.1(1414)")
    q.put(b"before the break")
    assert qm.flush(5)
    sim_mq.sim.break_connections()
    q.put(b"after the break")  # the supervisor reconnects with the settings given to connect_tcp_client
    assert qm.flush(5)
    assert [q.get(), q.get()] == [b"before the break", b"after the break"]
    with pytest.raises(mqi.PYIFError, match="already connected"):
        qm.connect_with_options("QM1")
    qm.disconnect()

    other = ResilientWebSphereMQQueueManager(None, mqi=mqi, reconnect_policy=FAST)
    other.connect_with_options("QM1", cd=mqi.CD(ChannelName=b"DEV.APP.SVRCONN", ConnectionName=b"h(1414)"))
    assert other.is_connected
    other.disconnect()
