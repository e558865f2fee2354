"""An in-process simulator of an IBM MQ queue manager, reached through an ``ibmmq``-shaped module.

IBM's ``ibmmq`` (and the older ``pymqi``) need IBM's MQ C client at run time, and no queue manager runs
here. The simulator gives code written against that API something faithful to run on::

    from resilientmq.testing import mqsim

    sim = mqsim.Simulator(queue_manager_name="QM1")
    sim.define_queue("DEV.QUEUE.1")
    mqi = sim.mqi                                    # use it where you would use ``ibmmq``
    qmgr = mqi.connect("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
    q = mqi.Queue(qmgr, "DEV.QUEUE.1", mqi.CMQC.MQOO_OUTPUT | mqi.CMQC.MQOO_INPUT_SHARED)
    q.put(b"hello", mqi.MD(Persistence=mqi.CMQC.MQPER_PERSISTENT))
    sim.stop(); sim.start()                          # persistent messages survive a restart
    assert q.get() ...                               # MQMIError 2009: that connection is gone

``sim.mqi`` carries the subset of the ``ibmmq`` API that resilientmq uses, with the same signatures and
the real numeric constants: ``QueueManager``, ``Queue``, ``Topic``, ``Subscription``, ``PCFExecute``,
``MessageHandle``, the structures ``MD GMO PMO OD SD CD SCO CSP CNO SRO CMHO PD SMPO IMPO``, ``connect()``,
``CMQC``/``CMQXC``/``CMQCFC`` and ``MQMIError(comp, reason)``/``PYIFError``.

MQ semantics kept: FIFO within priority; persistent messages survive ``stop()``/``start()``, non-persistent
ones do not; syncpoint puts are invisible and syncpoint gets restorable until ``MQCMIT``/``MQBACK``; a broken
connection has its unit of work backed out (and ``MQDISC`` commits it, as on distributed platforms);
browse cursors; ``MQRC_NO_MSG_AVAILABLE`` after the wait interval; MsgId/CorrelId matching; expiry;
temporary dynamic queues that die with their connection; durable and non-durable subscriptions;
``MQCNO_RECONNECT`` connections that survive a broken network (their unit of work is backed out: the next
``MQCMIT`` warns ``MQRC_BACKED_OUT``). Controls: ``define_queue``, ``depth``, ``stop``
(``MQRC_Q_MGR_STOPPING`` to calls in flight, ``MQRC_CONNECTION_BROKEN`` to later calls on old connections,
``MQRC_Q_MGR_NOT_AVAILABLE`` to new connections until ``start``), ``quiesce`` (``MQRC_Q_MGR_QUIESCING`` to
calls that ask to fail if quiescing, and to new connections), ``break_connections``
(``MQRC_CONNECTION_BROKEN``), ``fail_next`` (inject
a reason code into the next call of a verb).

Not simulated: message groups and segments, data conversion, RFH2 headers (properties travel only through
message handles), remote queues and clustering, retained publications, PCF beyond a few queue commands,
and the wire itself (a ``connection_info`` only selects an instance when ``addresses`` is given).

The package: :mod:`.constants` (IBM's values), :mod:`.errors`, :mod:`.structures`, :mod:`.state`, the queue
manager's verbs in :mod:`.engine` and :mod:`.messaging`, :mod:`.pcf`, the ``ibmmq``-shaped classes in
:mod:`.api` and :mod:`.module`, and :mod:`.simulator` with the controls. It needs nothing but itself.
"""

from __future__ import annotations

from .constants import CMQC, CMQCFC, CMQXC, installed_constants, reason_name
from .errors import Error, MQMIError, PYIFError
from .simulator import Simulator
from .structures import CD, CMHO, CNO, CSP, GMO, IMPO, MD, OD, PD, PMO, SCO, SD, SMPO, SRO

__all__ = [
    "CD", "CMHO", "CMQC", "CMQCFC", "CMQXC", "CNO", "CSP", "GMO", "IMPO", "MD", "OD", "PD", "PMO", "SCO",
    "SD", "SMPO", "SRO", "Error", "MQMIError", "PYIFError", "Simulator", "installed_constants", "reason_name",
]  # fmt: skip
