"""PCF: the administration commands the simulator answers, and ``PCFExecute`` to send them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .api import QueueManager
from .constants import CMQC as C
from .constants import CMQCFC
from .engine import QueueManagerEngine
from .errors import MQMIError, PYIFError, fail
from .state import LocalQueue
from .structures import OD, pad, text

__all__ = ["COMMANDS", "PCFExecute", "run_command"]


def run_command(
    qm: QueueManagerEngine, hconn: Any, command: str, args: dict[int, Any]
) -> list[dict[int, Any]]:
    """Run one PCF command on connection ``hconn`` (its faults and the quiescing rule apply)."""
    with qm._call(hconn, "PCF", quiescing_fails=True):
        handler = COMMANDS.get(command)
        if handler is None:
            raise NotImplementedError(
                f"mqsim does not simulate the PCF command {command}; it knows {sorted(COMMANDS)}"
            )
        return handler(qm, args)


def _queues(qm: QueueManagerEngine, args: dict[int, Any]) -> list[LocalQueue]:
    wanted = text(args.get(C.MQCA_Q_NAME, b"*"))
    if wanted.endswith("*"):
        return [q for n, q in sorted(qm._queues.items()) if n.startswith(wanted[:-1])]
    queue = qm._queues.get(wanted)
    if queue is None:
        raise fail(C.MQRC_UNKNOWN_OBJECT_NAME)
    return [queue]


def _inquire_q(qm: QueueManagerEngine, args: dict[int, Any]) -> list[dict[int, Any]]:
    return [qm._queue_attributes(q) for q in _queues(qm, args)]


def _inquire_q_names(qm: QueueManagerEngine, args: dict[int, Any]) -> list[dict[int, Any]]:
    names = [pad(q.name, 48, b" ") for q in _queues(qm, args)]
    return [{CMQCFC.MQCACF_Q_NAMES: names}]


def _ping(qm: QueueManagerEngine, args: dict[int, Any]) -> list[dict[int, Any]]:
    return []


def _create_q(qm: QueueManagerEngine, args: dict[int, Any]) -> list[dict[int, Any]]:
    name = text(args.get(C.MQCA_Q_NAME, b""))
    if name in qm._queues and args.get(CMQCFC.MQIACF_REPLACE) != CMQCFC.MQRP_YES:
        raise fail(CMQCFC.MQRCCF_OBJECT_ALREADY_EXISTS)
    qm.define_queue(
        name,
        max_depth=args.get(C.MQIA_MAX_Q_DEPTH, 5000),
        max_msg_length=args.get(C.MQIA_MAX_MSG_LENGTH, 4 * 1024 * 1024),
        default_persistence=args.get(C.MQIA_DEF_PERSISTENCE) == C.MQPER_PERSISTENT,
        replace=True,
    )
    return []


def _change_q(qm: QueueManagerEngine, args: dict[int, Any]) -> list[dict[int, Any]]:
    (queue,) = _queues(qm, {C.MQCA_Q_NAME: args.get(C.MQCA_Q_NAME, b"")})
    if C.MQIA_MAX_Q_DEPTH in args:
        queue.max_depth = args[C.MQIA_MAX_Q_DEPTH]
    if C.MQIA_INHIBIT_PUT in args:
        queue.put_inhibited = args[C.MQIA_INHIBIT_PUT] == C.MQQA_PUT_INHIBITED
    if C.MQIA_INHIBIT_GET in args:
        queue.get_inhibited = args[C.MQIA_INHIBIT_GET] == C.MQQA_GET_INHIBITED
    qm._cond.notify_all()
    return []


def _delete_q(qm: QueueManagerEngine, args: dict[int, Any]) -> list[dict[int, Any]]:
    (queue,) = _queues(qm, {C.MQCA_Q_NAME: args.get(C.MQCA_Q_NAME, b"")})
    if queue.input_handles or queue.output_handles:
        raise fail(CMQCFC.MQRCCF_OBJECT_OPEN)
    del qm._queues[queue.name]
    return []


def _clear_q(qm: QueueManagerEngine, args: dict[int, Any]) -> list[dict[int, Any]]:
    (queue,) = _queues(qm, {C.MQCA_Q_NAME: args.get(C.MQCA_Q_NAME, b"")})
    if queue.input_handles or queue.output_handles or any(m.uncommitted_put for m in queue.messages):
        raise fail(C.MQRC_OBJECT_IN_USE)
    queue.messages.clear()
    return []


COMMANDS: dict[str, Callable[[QueueManagerEngine, dict[int, Any]], list[dict[int, Any]]]] = {
    "MQCMD_PING_Q_MGR": _ping,
    "MQCMD_INQUIRE_Q": _inquire_q,
    "MQCMD_INQUIRE_Q_NAMES": _inquire_q_names,
    "MQCMD_CREATE_Q": _create_q,
    "MQCMD_CHANGE_Q": _change_q,
    "MQCMD_DELETE_Q": _delete_q,
    "MQCMD_CLEAR_Q": _clear_q,
}


class PCFExecute(QueueManager):
    """``ibmmq.PCFExecute`` on a simulator: ``pcf.MQCMD_INQUIRE_Q({CMQC.MQCA_Q_NAME: b"*"})``.

    Commands run against the simulator's state on the connection they are given (its faults apply); only
    a few queue commands are simulated, others raise ``NotImplementedError``.
    """

    def __init__(
        self,
        name: Any = None,
        model_queue_name: Any = b"SYSTEM.DEFAULT.MODEL.QUEUE",
        reply_queue_name: Any = None,
        reply_queue_open_options: int = C.MQOO_INPUT_EXCLUSIVE,
        dynamic_queue_name: Any = b"PYMQPCF.*",
        command_queue_name: Any = b"SYSTEM.ADMIN.COMMAND.QUEUE",
        command_queue: Any = None,
        response_wait_interval: int = 5000,
        command_timeout: int = 0,
        max_length: int | None = None,
        convert: bool = True,
    ) -> None:
        if model_queue_name and reply_queue_name:
            raise PYIFError("Do not specify both a model_queue_name and a reply_queue_name")
        self._command_queue_name = command_queue_name
        self._response_wait_interval = 3600 * 1000 if response_wait_interval < 0 else response_wait_interval
        if isinstance(name, QueueManager):
            self.qm: Any = name
            super().__init__(None)
        else:
            super().__init__(name)
            self.qm = self
        od = OD(ObjectName=reply_queue_name or model_queue_name, DynamicQName=dynamic_queue_name)
        inputs = C.MQOO_INPUT_EXCLUSIVE | C.MQOO_INPUT_AS_Q_DEF | C.MQOO_INPUT_SHARED
        if not reply_queue_open_options & inputs:
            reply_queue_open_options |= C.MQOO_INPUT_EXCLUSIVE
        self._reply_queue: Any = self._sim.mqi.Queue(self.qm, od, reply_queue_open_options)
        self._reply_queue_name = od.ObjectName.strip()

    @property
    def reply_queue(self) -> Any:
        return self._reply_queue

    @property
    def reply_queue_name(self) -> Any:
        return self._reply_queue_name

    @property
    def response_wait_interval(self) -> int:
        return self._response_wait_interval

    @property
    def command_queue_name(self) -> Any:
        return self._command_queue_name

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("MQCMD_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> list[dict[int, Any]]:
            if len(args) > 2:
                raise TypeError("PCF commands take (args_dict, filters)")
            if len(args) == 2 and args[1]:
                raise NotImplementedError("mqsim does not simulate PCF filters")
            args_dict = args[0] if args else {}
            if not isinstance(args_dict, dict):
                raise NotImplementedError("mqsim simulates PCF parameters given as a dict only")
            return run_command(self._sim, self.qm.getHandle(), name, args_dict)

        return call

    @staticmethod
    def stringify_keys(raw_dict: dict[int, Any]) -> dict[Any, Any]:
        names = {v: k for k, v in C.values().items() if k.startswith(("MQIA_", "MQCA_"))}
        return {names.get(k, k): v for k, v in raw_dict.items()}

    stringifyKeys = stringify_keys

    def disconnect(self) -> None:
        """Closes the reply queue (the connection belongs to the QueueManager given)."""
        try:
            if self._reply_queue is not None and self._reply_queue.get_handle():
                self._reply_queue.close()
        except MQMIError:
            pass
        finally:
            self._reply_queue = None
            self._reply_queue_name = None
        if self.qm is self and self._handle:
            super().disconnect()
