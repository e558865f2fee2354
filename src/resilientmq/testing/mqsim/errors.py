"""The simulated MQI's exceptions, the same shape as ``ibmmq``'s."""

from __future__ import annotations

from typing import Any

from .constants import CMQC as C
from .constants import reason_name

__all__ = ["Error", "MQMIError", "PYIFError", "fail"]


class Error(Exception):
    """Base of the simulated MQI exceptions (``ibmmq.Error``)."""


class MQMIError(Error):
    """An MQI call failed (or warned): ``comp`` is the completion code, ``reason`` the MQRC reason code."""

    def __init__(self, comp: int, reason: int, **kw: Any) -> None:
        super().__init__(comp, reason)
        self.comp, self.reason = comp, reason
        for k, v in kw.items():
            setattr(self, k, v)

    def __str__(self) -> str:
        return f"MQI Error. Comp {self.comp}, Reason {self.reason}: {self.error_as_string()}"

    def error_as_string(self) -> str:
        if self.comp == C.MQCC_OK:
            return "OK"
        prefix = "WARNING: " if self.comp == C.MQCC_WARNING else "FAILED: "
        return prefix + (reason_name(self.reason) or f"Error code {self.reason} not defined")

    errorAsString = error_as_string

    def get(self, k: str) -> Any:
        return getattr(self, k)


class PYIFError(Error):
    """The library (not the queue manager) refused the call, e.g. ``not connected``."""

    def __init__(self, e: str) -> None:
        super().__init__(e)
        self.error = e

    def __str__(self) -> str:
        return "PYIBMMQ Error: " + str(self.error)


def fail(reason: int, comp: int = C.MQCC_FAILED, **kw: Any) -> MQMIError:
    return MQMIError(comp, reason, **kw)
