"""The MQI simulator's own semantics, through its ibmmq-shaped API only (no adapter)."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mqtarget import ibmmq_installed

from resilientmq.testing import mqsim, wait_until
from resilientmq.testing.mqsim.constants import CMQC, CMQCFC, CMQXC, installed_constants


@pytest.fixture
def sim() -> mqsim.Simulator:
    s = mqsim.Simulator(queue_manager_name="QM1")
    s.define_queue("Q")
    return s


@pytest.fixture
def conn(sim: mqsim.Simulator) -> Iterator[Any]:
    qm = sim.mqi.connect("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
    yield qm
    with contextlib.suppress(sim.mqi.Error):
        qm.disconnect()


def client(sim: mqsim.Simulator, **kw: Any) -> Any:
    return sim.mqi.connect("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)", **kw)


def open_q(sim: mqsim.Simulator, qm: Any, name: str = "Q", extra: int = 0) -> Any:
    c = sim.mqi.CMQC
    return sim.mqi.Queue(
        qm, name, c.MQOO_OUTPUT | c.MQOO_INPUT_SHARED | c.MQOO_BROWSE | c.MQOO_INQUIRE | extra
    )


def put(sim: mqsim.Simulator, q: Any, body: bytes, **md: Any) -> Any:
    syncpoint = md.pop("syncpoint", False)
    c = sim.mqi.CMQC
    m = sim.mqi.MD(**md)
    q.put(body, m, sim.mqi.PMO(Options=c.MQPMO_SYNCPOINT if syncpoint else c.MQPMO_NO_SYNCPOINT))
    return m


def get(sim: mqsim.Simulator, q: Any, options: int = 0, wait_ms: int = 0, md: Any = None) -> bytes:
    c = sim.mqi.CMQC
    gmo = sim.mqi.GMO(Options=options | (c.MQGMO_WAIT if wait_ms else c.MQGMO_NO_WAIT), WaitInterval=wait_ms)
    return q.get(None, md if md is not None else sim.mqi.MD(), gmo)  # type: ignore[no-any-return]


def reason_of(sim: mqsim.Simulator, fn: Any) -> int:
    with pytest.raises(sim.mqi.MQMIError) as info:
        fn()
    return int(info.value.reason)


def drain(sim: mqsim.Simulator, q: Any) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(get(sim, q))
        except sim.mqi.MQMIError as exc:
            assert exc.reason == CMQC.MQRC_NO_MSG_AVAILABLE
            return out


def test_fifo_within_priority(sim: mqsim.Simulator, conn: Any) -> None:
    q = open_q(sim, conn)
    for body, prio in [(b"a0", 0), (b"b5", 5), (b"c0", 0), (b"d9", 9), (b"e5", 5), (b"f0", 0)]:
        put(sim, q, body, Priority=prio)
    assert drain(sim, q) == [b"d9", b"b5", b"e5", b"a0", b"c0", b"f0"]


def test_persistent_messages_survive_a_restart_and_non_persistent_ones_do_not(sim: mqsim.Simulator) -> None:
    c = sim.mqi.CMQC
    sim.define_queue("PQ", default_persistence=True)
    qm = client(sim)
    q, pq = open_q(sim, qm), open_q(sim, qm, "PQ")
    put(sim, q, b"persistent", Persistence=c.MQPER_PERSISTENT)
    put(sim, q, b"not", Persistence=c.MQPER_NOT_PERSISTENT)
    put(sim, q, b"as-q-def")  # DEFPSIST(NO), as MQ's default
    put(sim, pq, b"as-q-def-yes")
    sim.stop()
    assert reason_of(sim, lambda: get(sim, q)) == c.MQRC_CONNECTION_BROKEN
    assert reason_of(sim, lambda: client(sim)) == c.MQRC_Q_MGR_NOT_AVAILABLE
    sim.start()
    qm2 = client(sim)
    assert drain(sim, open_q(sim, qm2)) == [b"persistent"]
    got_md = sim.mqi.MD()
    assert get(sim, open_q(sim, qm2, "PQ"), md=got_md) == b"as-q-def-yes"
    assert got_md.Persistence == c.MQPER_PERSISTENT


def test_syncpoint_puts_are_invisible_until_commit_and_gone_after_backout(sim: mqsim.Simulator) -> None:
    c = sim.mqi.CMQC
    producer, consumer = client(sim), client(sim)
    pq, cq = open_q(sim, producer), open_q(sim, consumer)
    put(sim, pq, b"one", syncpoint=True)
    assert sim.depth("Q") == 1  # MQ counts uncommitted puts in CURDEPTH
    assert reason_of(sim, lambda: get(sim, cq)) == c.MQRC_NO_MSG_AVAILABLE
    assert reason_of(sim, lambda: get(sim, cq, c.MQGMO_BROWSE_FIRST)) == c.MQRC_NO_MSG_AVAILABLE
    producer.commit()
    assert get(sim, cq) == b"one"
    put(sim, pq, b"two", syncpoint=True)
    producer.backout()
    assert sim.depth("Q") == 0
    assert reason_of(sim, lambda: get(sim, cq)) == c.MQRC_NO_MSG_AVAILABLE


def test_syncpoint_get_is_restored_by_backout_with_its_backout_count(sim: mqsim.Simulator, conn: Any) -> None:
    c = sim.mqi.CMQC
    q = open_q(sim, conn)
    put(sim, q, b"m")
    assert get(sim, q, c.MQGMO_SYNCPOINT) == b"m"
    assert sim.depth("Q") == 0
    conn.backout()
    md = sim.mqi.MD()
    assert get(sim, q, md=md) == b"m"
    assert md.BackoutCount == 1


def test_a_broken_connection_backs_out_its_unit_of_work(sim: mqsim.Simulator) -> None:
    c = sim.mqi.CMQC
    qm = client(sim)
    q = open_q(sim, qm)
    put(sim, q, b"committed")
    put(sim, q, b"uncommitted put", syncpoint=True)
    assert get(sim, q, c.MQGMO_SYNCPOINT) == b"committed"
    assert sim.break_connections() == 1
    assert reason_of(sim, qm.commit) == c.MQRC_CONNECTION_BROKEN
    assert reason_of(sim, qm.disconnect) == c.MQRC_CONNECTION_BROKEN
    other = client(sim)
    assert drain(sim, open_q(sim, other)) == [b"committed"]  # the got message is back, the put is gone


def test_disconnect_commits_the_unit_of_work_as_on_distributed_platforms(sim: mqsim.Simulator) -> None:
    qm = client(sim)
    put(sim, open_q(sim, qm), b"x", syncpoint=True)
    qm.disconnect()
    assert drain(sim, open_q(sim, client(sim))) == [b"x"]


def test_browse_cursor_and_get_under_cursor(sim: mqsim.Simulator, conn: Any) -> None:
    c = sim.mqi.CMQC
    q = open_q(sim, conn)
    for body in (b"1", b"2", b"3"):
        put(sim, q, body)
    assert get(sim, q, c.MQGMO_BROWSE_FIRST) == b"1"
    assert get(sim, q, c.MQGMO_BROWSE_NEXT) == b"2"
    assert get(sim, q, c.MQGMO_MSG_UNDER_CURSOR) == b"2"  # destructive get of the browsed message
    assert get(sim, q, c.MQGMO_BROWSE_NEXT) == b"3"
    assert reason_of(sim, lambda: get(sim, q, c.MQGMO_BROWSE_NEXT)) == c.MQRC_NO_MSG_AVAILABLE
    assert sim.depth("Q") == 2
    get(sim, q)  # takes "1"
    get(sim, q)  # takes "3", the message under the cursor
    assert reason_of(sim, lambda: get(sim, q, c.MQGMO_MSG_UNDER_CURSOR)) == c.MQRC_NO_MSG_UNDER_CURSOR


def test_wait_interval_ends_with_no_msg_available(sim: mqsim.Simulator, conn: Any) -> None:
    c = sim.mqi.CMQC
    q = open_q(sim, conn)
    started = time.monotonic()
    assert reason_of(sim, lambda: get(sim, q, wait_ms=300)) == c.MQRC_NO_MSG_AVAILABLE
    waited = time.monotonic() - started
    assert 0.29 <= waited < 2.0


def test_a_waiting_get_receives_a_message_put_meanwhile(sim: mqsim.Simulator, conn: Any) -> None:
    q = open_q(sim, conn)
    result: list[bytes] = []
    waiting = threading.Thread(target=lambda: result.append(get(sim, q, wait_ms=10_000)))
    waiting.start()
    other = client(sim)
    put(sim, open_q(sim, other), b"late")
    waiting.join(5)
    assert result == [b"late"]


def test_msgid_and_correlid_matching(sim: mqsim.Simulator, conn: Any) -> None:
    c = sim.mqi.CMQC
    q = open_q(sim, conn)
    put(sim, q, b"a", CorrelId=b"red")
    wanted = put(sim, q, b"b", CorrelId=b"blue")
    put(sim, q, b"c", CorrelId=b"red")
    assert len(wanted.MsgId) == 24
    by_correl = sim.mqi.MD(CorrelId=b"red")
    gmo = sim.mqi.GMO(MatchOptions=c.MQMO_MATCH_CORREL_ID)
    assert q.get(None, by_correl, gmo) == b"a"
    assert by_correl.CorrelId == b"red".ljust(24, b"\0")
    assert q.get(None, sim.mqi.MD(MsgId=wanted.MsgId), sim.mqi.GMO()) == b"b"
    assert reason_of(sim, lambda: q.get(None, sim.mqi.MD(CorrelId=b"blue"), sim.mqi.GMO())) == 2033
    assert drain(sim, q) == [b"c"]


def test_stop_fails_calls_in_flight_with_q_mgr_stopping(sim: mqsim.Simulator, conn: Any) -> None:
    c = sim.mqi.CMQC
    q = open_q(sim, conn)
    errors: list[int] = []

    def wait_for_message() -> None:
        try:
            get(sim, q, wait_ms=10_000)
        except sim.mqi.MQMIError as exc:
            errors.append(exc.reason)

    waiting = threading.Thread(target=wait_for_message)
    waiting.start()
    assert wait_until(lambda: sim.waiting_calls == 1)
    sim.stop()
    waiting.join(5)
    assert errors == [c.MQRC_Q_MGR_STOPPING]
    assert reason_of(sim, lambda: get(sim, q)) == c.MQRC_CONNECTION_BROKEN


def test_quiesce_fails_only_calls_that_ask_to_fail_if_quiescing(sim: mqsim.Simulator, conn: Any) -> None:
    c = sim.mqi.CMQC
    q = open_q(sim, conn)
    sim.quiesce()
    assert reason_of(sim, lambda: get(sim, q, c.MQGMO_FAIL_IF_QUIESCING)) == c.MQRC_Q_MGR_QUIESCING
    assert reason_of(sim, lambda: get(sim, q)) == c.MQRC_NO_MSG_AVAILABLE  # still served
    assert reason_of(sim, lambda: client(sim)) == c.MQRC_Q_MGR_QUIESCING
    sim.start()  # completes the restart
    assert reason_of(sim, lambda: get(sim, q)) == c.MQRC_CONNECTION_BROKEN
    assert drain(sim, open_q(sim, client(sim))) == []  # running again


def test_temporary_dynamic_queue_is_named_by_pattern_and_dies_with_its_connection(
    sim: mqsim.Simulator,
) -> None:
    c = sim.mqi.CMQC
    qm = client(sim)
    od = sim.mqi.OD(ObjectName="SYSTEM.DEFAULT.MODEL.QUEUE", DynamicQName="APP.REPLY.*")
    tq = sim.mqi.Queue(qm, od, c.MQOO_INPUT_EXCLUSIVE | c.MQOO_OUTPUT)
    name = tq.get_name()
    assert name.startswith("APP.REPLY.") and name in sim.queue_names()
    put(sim, tq, b"x")
    sim.break_connections()
    assert name not in sim.queue_names()


def test_reconnectable_connection_survives_a_break_but_its_unit_of_work_does_not(
    sim: mqsim.Simulator,
) -> None:
    c = sim.mqi.CMQC
    qm = client(sim, cno=sim.mqi.CNO(Options=c.MQCNO_RECONNECT))
    q = open_q(sim, qm)
    put(sim, q, b"in uow", syncpoint=True)
    sim.break_connections()
    put(sim, q, b"after")  # the handle still works
    with pytest.raises(sim.mqi.MQMIError) as info:
        qm.commit()
    assert (info.value.comp, info.value.reason) == (c.MQCC_WARNING, c.MQRC_BACKED_OUT)
    assert drain(sim, q) == [b"after"]


def test_reconnectable_connection_waits_for_a_restart(sim: mqsim.Simulator) -> None:
    c = sim.mqi.CMQC
    qm = client(sim, cno=sim.mqi.CNO(Options=c.MQCNO_RECONNECT))
    q = open_q(sim, qm)
    put(sim, q, b"p", Persistence=c.MQPER_PERSISTENT)
    sim.stop()
    restart = threading.Timer(0.2, sim.start)
    restart.start()
    assert get(sim, q) == b"p"  # blocked until the queue manager was back
    restart.join()
    sim.client_reconnect_timeout = 0.1
    sim.stop()
    assert reason_of(sim, lambda: get(sim, q)) == c.MQRC_RECONNECT_FAILED


def test_permanent_reasons(sim: mqsim.Simulator, conn: Any) -> None:
    c, mqi = sim.mqi.CMQC, sim.mqi
    sim.define_queue("SMALL", max_msg_length=10, max_depth=1)
    small = mqi.Queue(conn, "SMALL", c.MQOO_OUTPUT)
    assert reason_of(sim, lambda: small.put(b"x" * 11)) == c.MQRC_MSG_TOO_BIG_FOR_Q
    assert reason_of(sim, lambda: small.put(b"x" * (sim.max_msg_length + 1))) == c.MQRC_MSG_TOO_BIG_FOR_Q_MGR
    small.put(b"ok")
    assert reason_of(sim, lambda: small.put(b"full")) == c.MQRC_Q_FULL
    assert reason_of(sim, lambda: mqi.Queue(conn, "NOPE", c.MQOO_OUTPUT)) == c.MQRC_UNKNOWN_OBJECT_NAME
    sim.deny("SMALL")
    assert reason_of(sim, lambda: mqi.Queue(conn, "SMALL", c.MQOO_OUTPUT)) == c.MQRC_NOT_AUTHORIZED
    sim.require_credentials("app", "secret")
    assert reason_of(sim, lambda: client(sim)) == c.MQRC_NOT_AUTHORIZED
    assert client(sim, user="app", password="secret").is_connected
    assert reason_of(sim, lambda: mqi.connect("QM2", "CH", "h(1)")) == c.MQRC_Q_MGR_NAME_ERROR


def test_expired_messages_are_not_delivered(sim: mqsim.Simulator, conn: Any) -> None:
    q = open_q(sim, conn)
    put(sim, q, b"short-lived", Expiry=1)  # a tenth of a second
    put(sim, q, b"kept")
    assert wait_until(lambda: sim.depth("Q") == 1)
    assert drain(sim, q) == [b"kept"]


def test_fail_next_injects_reason_codes_before_or_after_the_call(sim: mqsim.Simulator, conn: Any) -> None:
    c = sim.mqi.CMQC
    q = open_q(sim, conn)
    sim.fail_next("MQPUT", c.MQRC_Q_FULL, skip=1)
    put(sim, q, b"first passes")
    assert reason_of(sim, lambda: put(sim, q, b"second fails")) == c.MQRC_Q_FULL
    put(sim, q, b"in uow", syncpoint=True)
    sim.fail_next("MQCMIT", c.MQRC_CALL_INTERRUPTED, after=True)
    assert reason_of(sim, conn.commit) == c.MQRC_CALL_INTERRUPTED
    assert drain(sim, q) == [b"first passes", b"in uow"]  # the commit happened
    with pytest.raises(ValueError, match="unknown MQI verb"):
        sim.fail_next("MQFLY", 2009)


def test_publish_subscribe_durable_and_wildcards(sim: mqsim.Simulator) -> None:
    c, mqi = sim.mqi.CMQC, sim.mqi
    qm = client(sim)
    sd = mqi.SD(Options=c.MQSO_CREATE | c.MQSO_DURABLE | c.MQSO_MANAGED)
    sd.set_vs("SubName", "S1")
    sd.set_vs("ObjectString", "price/#")
    durable = mqi.Subscription(qm)
    durable.sub(sub_desc=sd)
    loose = mqi.Subscription(qm, topic_string="price/+")
    loose.sub()
    pub = client(sim)
    topic = mqi.Topic(pub, topic_string="price/fruit/apple")
    topic.pub(b"deep", mqi.MD(Persistence=c.MQPER_PERSISTENT))
    mqi.Topic(pub, topic_string="price/fruit").pub(b"shallow", mqi.MD(Persistence=c.MQPER_PERSISTENT))
    assert get(sim, durable.sub_queue) == b"deep"
    assert get(sim, loose.sub_queue) == b"shallow"
    sim.break_connections()
    topic2 = mqi.Topic(client(sim), topic_string="price/x")
    topic2.pub(b"while away", mqi.MD(Persistence=c.MQPER_PERSISTENT))
    again = client(sim)
    resume = mqi.SD(Options=c.MQSO_RESUME | c.MQSO_DURABLE | c.MQSO_MANAGED)
    resume.set_vs("SubName", "S1")
    sub = mqi.Subscription(again)
    sub.sub(sub_desc=resume)
    assert drain(sim, sub.sub_queue) == [b"shallow", b"while away"]


def test_message_properties_travel_through_message_handles(sim: mqsim.Simulator, conn: Any) -> None:
    c, mqi = sim.mqi.CMQC, sim.mqi
    q = open_q(sim, conn)
    out = mqi.MessageHandle(conn)
    out.properties.set("colour", "red")
    out.properties.set("count", 7, property_type=c.MQTYPE_INT64)
    q.put(b"m", mqi.MD(), mqi.PMO(OriginalMsgHandle=out.msg_handle))
    inbox = mqi.MessageHandle(conn)
    assert q.get(None, mqi.MD(), mqi.GMO(MsgHandle=inbox.msg_handle)) == b"m"
    assert inbox.properties.get("colour") == "red"
    assert inbox.properties.get("count") == 7
    names = [inbox.properties.get("%", impo_options=c.MQIMPO_INQ_FIRST)[1]]
    names.append(inbox.properties.get("%", impo_options=c.MQIMPO_INQ_NEXT)[1])
    assert sorted(names) == [b"colour", b"count"]
    assert reason_of(sim, lambda: inbox.properties.get("%", impo_options=c.MQIMPO_INQ_NEXT)) == (
        c.MQRC_PROPERTY_NOT_AVAILABLE
    )


def test_pcf_commands(sim: mqsim.Simulator, conn: Any) -> None:
    c, f = sim.mqi.CMQC, sim.mqi.CMQCFC
    pcf = sim.mqi.PCFExecute(conn)
    pcf.MQCMD_CREATE_Q({c.MQCA_Q_NAME: b"APP.NEW", c.MQIA_Q_TYPE: c.MQQT_LOCAL})
    put(sim, open_q(sim, conn, "APP.NEW"), b"x")
    (found,) = pcf.MQCMD_INQUIRE_Q({c.MQCA_Q_NAME: b"APP.*"})
    assert found[c.MQCA_Q_NAME].strip() == b"APP.NEW" and found[c.MQIA_CURRENT_Q_DEPTH] == 1
    assert reason_of(sim, lambda: pcf.MQCMD_CREATE_Q({c.MQCA_Q_NAME: b"APP.NEW"})) == (
        f.MQRCCF_OBJECT_ALREADY_EXISTS
    )
    assert reason_of(sim, lambda: pcf.MQCMD_INQUIRE_Q({c.MQCA_Q_NAME: b"NONE"})) == c.MQRC_UNKNOWN_OBJECT_NAME
    # Not simulated: an MQ reason code, as every answer of a command server (issue 11: never
    # NotImplementedError).
    assert reason_of(sim, lambda: pcf.MQCMD_START_CHANNEL({})) == c.MQRC_FUNCTION_NOT_SUPPORTED


# -- faithfulness to IBM's ibmmq package ----------------------------------------------------------------
def _ibmmq_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("ibmmq") if ibmmq_installed() else None
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the ibmmq package is not installed: nothing to compare with")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def test_constants_have_ibms_values() -> None:
    _ibmmq_dir()
    for ours, module in ((CMQC, "CMQC"), (CMQXC, "CMQXC"), (CMQCFC, "CMQCFC")):
        real = installed_constants(module)
        subset = {k: v for k, v in vars(ours).items() if k.startswith("MQ")}
        assert subset, module
        wrong = {k: (v, real.get(k)) for k, v in subset.items() if real.get(k) != v}
        assert wrong == {}, f"{module} values differ from IBM's: {wrong}"


def _methods(source: pathlib.Path, class_name: str) -> dict[str, list[str]]:
    tree = ast.parse(source.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            out = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    out[item.name] = [a.arg for a in item.args.args + item.args.kwonlyargs]
            return out
    raise AssertionError(f"{class_name} not in {source}")


@pytest.mark.parametrize(
    ("file", "class_name", "ours"),
    [
        ("mqqmgr.py", "QueueManager", "QueueManager"),
        ("mqqueue.py", "Queue", "Queue"),
        ("mqtopic.py", "Topic", "Topic"),
        ("mqsub.py", "Subscription", "Subscription"),
    ],
)
def test_methods_have_ibmmqs_parameters(file: str, class_name: str, ours: str) -> None:
    real = _methods(_ibmmq_dir() / file, class_name)
    sim_class = getattr(mqsim.Simulator().mqi, ours)
    for name, params in real.items():
        if not hasattr(sim_class, name):
            continue  # not simulated (callbacks, stat, ...)
        sig = inspect.signature(getattr(sim_class, name))
        ours_params = [
            p.name for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        assert ours_params == params, f"{ours}.{name}: {ours_params} != ibmmq's {params}"
    for essential in (
        "put",
        "get",
        "close",
        "inquire",
        "put1",
        "commit",
        "backout",
        "connect_with_options",
        "pub",
    ):
        if essential in real:
            assert hasattr(sim_class, essential), f"{ours}.{essential} missing"


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("mqmd.py", "MD"),
        ("mqgmo.py", "GMO"),
        ("mqpmo.py", "PMO"),
        ("mqod.py", "OD"),
        ("mqsd.py", "SD"),
        ("mqcno.py", "CNO"),
        ("mqcsp.py", "CSP"),
        ("mqsco.py", "SCO"),
        ("mqcd.py", "CD"),
    ],
)
def test_structures_have_ibmmqs_fields(file: str, name: str) -> None:
    tree = ast.parse((_ibmmq_dir() / file).read_text())
    real = {
        node.elts[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.List)
        and len(node.elts) >= 3
        and isinstance(node.elts[0], ast.Constant)
        and isinstance(node.elts[0].value, str)
    }
    real = {f for f in real if not f.startswith("_") and f != "pad"}
    ours = set(getattr(mqsim, name)().get())
    assert real - ours == set(), f"{name} lacks ibmmq's fields {sorted(real - ours)}"


ALONE = textwrap.dedent(
    """
    import sys
    from resilientmq.testing import mqsim

    sim = mqsim.Simulator("QM1")
    sim.define_queue("Q")
    mqi = sim.mqi
    qm = mqi.connect("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
    q = mqi.Queue(qm, "Q", mqi.CMQC.MQOO_OUTPUT | mqi.CMQC.MQOO_INPUT_SHARED)
    q.put(b"alone")
    print(q.get(), sorted(m for m in sys.modules if m.startswith(("resilientmq.ibmmq", "resilientmq.stomp",
          "resilientmq.kafka")) or m in ("ibmmq", "pymqi")))
    """
)


def test_the_simulator_runs_without_any_adapter_or_ibmmq_loaded() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ALONE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["b'alone'", "[]"]
