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

``sim.mqi`` carries what ``ibmmq`` offers at its top, with the same signatures and the real numeric
constants: ``QueueManager``, ``Queue`` (with ``put_rfh2``/``get_rfh2``), ``Topic``, ``Subscription``,
``PCFExecute`` (dict and list arguments, filters), ``MessageHandle``, ``RFH2``, the structures
``MD GMO PMO OD SD CD SCO CSP CNO SRO CMHO PD SMPO IMPO DMHO DMPO BNO`` (and ``md``, ``gmo``, ...), the PCF
structures ``CFH CFST CFIN CFIN64 CFIL CFIL64 CFSL CFBS CFGR CFIF CFSF CFBF`` and ``Filter``, ``connect()``,
``CMQC``/``CMQXC``/``CMQCFC``/``CMQSTRC``, ``MQMIError(comp, reason)``/``PYIFError`` and the build attributes.

MQ semantics kept: FIFO within priority; persistent messages survive ``stop()``/``start()``, non-persistent
ones do not; syncpoint puts are invisible and syncpoint gets restorable until ``MQCMIT``/``MQBACK``; a broken
connection has its unit of work backed out (and ``MQDISC`` commits it, as on distributed platforms);
browse cursors; ``MQRC_NO_MSG_AVAILABLE`` after the wait interval; MsgId/CorrelId matching; truncation
(2079 takes the message, 2080 leaves it, both with the data that fits); expiry; temporary dynamic queues that
die with their connection; durable and non-durable subscriptions, and subscriptions defined by PCF; message
properties in message handles (2469 for a value longer than the buffer) or, for a getter without one, in an
MQRFH2 header (``PROPCTL(COMPAT)``), and an RFH2's property folders read into a getter's handle; open-handle
facts (open counts, exclusive input 2042, a redefinition keeps handles, PCF refuses to delete an open queue);
MQINQ of the queue manager and queues; ``MQCNO_RECONNECT`` connections that survive a broken network (their
unit of work is backed out: the next ``MQCMIT`` warns ``MQRC_BACKED_OUT``). Controls: ``define_queue``,
``depth``, ``stop`` (``MQRC_Q_MGR_STOPPING`` to calls in flight, ``MQRC_CONNECTION_BROKEN`` to later calls on
old connections, ``MQRC_Q_MGR_NOT_AVAILABLE`` to new connections until ``start``), ``quiesce``
(``MQRC_Q_MGR_QUIESCING`` to calls that ask to fail if quiescing, and to new connections),
``break_connections`` (``MQRC_CONNECTION_BROKEN``), ``fail_next`` (inject a reason code into the next call of
a verb).

Not simulated: message groups and segments, data conversion (``MQGMO_CONVERT`` is accepted, nothing is
converted), alias, remote and cluster queues, channels, retained publications, selectors, MQSTAT, callbacks
(MQCB), report messages, the dead-letter queue, triggering, context options, PCF beyond queue, queue
manager and subscription commands (others answer ``MQRC_FUNCTION_NOT_SUPPORTED``) and a command server on
``SYSTEM.ADMIN.COMMAND.QUEUE``, packing structures into C bytes (only ``RFH2`` packs), and the wire itself
(a ``connection_info`` only selects an instance when ``addresses`` is given).

The package: :mod:`.constants` (IBM's values), :mod:`.errors`, :mod:`.structures`, :mod:`.rfh2`,
:mod:`.state`, the queue manager's verbs in :mod:`.engine`, :mod:`.messaging` and :mod:`.admin` (its public
interface, named after the MQI calls), the ``ibmmq``-shaped classes in :mod:`.api`, :mod:`.pcf` and
:mod:`.module`, and :mod:`.simulator` with the controls. It needs nothing but itself.
"""

from __future__ import annotations

from .constants import CMQC, CMQCFC, CMQXC, installed_constants, reason_name
from .errors import Error, MQMIError, PYIFError
from .rfh2 import RFH2
from .simulator import Simulator
from .structures import BNO, CD, CMHO, CNO, CSP, DMHO, DMPO, GMO, IMPO, MD, OD, PD, PMO, SCO, SD, SMPO, SRO

__all__ = [
    "BNO", "CD", "CMHO", "CMQC", "CMQCFC", "CMQXC", "CNO", "CSP", "DMHO", "DMPO", "GMO", "IMPO", "MD", "OD",
    "PD", "PMO", "RFH2", "SCO", "SD", "SMPO", "SRO", "Error", "MQMIError", "PYIFError", "Simulator",
    "installed_constants", "reason_name",
]  # fmt: skip
