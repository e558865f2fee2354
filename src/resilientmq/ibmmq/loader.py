"""Which MQI module to use (``ibmmq``, ``pymqi``, or a module object such as the simulator's), and the
per-module subclasses that make the resilient classes real subclasses of that module's classes."""

from __future__ import annotations

import importlib
import threading
import weakref
from types import ModuleType
from typing import Any, TypeVar

from resilientmq.core.errors import MQClientUnavailableError

__all__ = ["concrete_class", "load_mqi"]

T = TypeVar("T")

_MODULES = ("ibmmq", "pymqi")
_REQUIRED = ("QueueManager", "Queue", "MD", "PMO", "GMO", "OD", "CD", "CNO", "MQMIError", "PYIFError", "CMQC")
_HINT = (
    "install IBM's MQ C client (the MQ redistributable client, which provides libmqm_r.so) and "
    "`pip install ibmmq` (or the older pymqi)"
)


def load_mqi(mqi: str | ModuleType | Any | None) -> Any:
    """The MQI module: by default ``ibmmq`` and else ``pymqi``; a name; or a module-like object."""
    if mqi is None:
        failures = []
        for name in _MODULES:
            try:
                return importlib.import_module(name)
            except ImportError as exc:
                failures.append(f"{name}: {_why(exc)}")
        raise MQClientUnavailableError(
            "no IBM MQ client could be loaded (" + "; ".join(failures) + f"); {_HINT}"
        ) from None
    if isinstance(mqi, str):
        if mqi not in _MODULES:
            raise ValueError(f"mqi must be one of {_MODULES}, a module object, or None; got {mqi!r}")
        try:
            return importlib.import_module(mqi)
        except ImportError as exc:
            raise MQClientUnavailableError(
                f"the IBM MQ client module {mqi!r} could not be loaded ({_why(exc)}); {_HINT}"
            ) from exc
    missing = [name for name in _REQUIRED if not hasattr(mqi, name)]
    if missing:
        raise TypeError(f"mqi {mqi!r} does not look like an MQI module: it lacks {', '.join(missing)}")
    return mqi


def _why(exc: BaseException) -> str:
    """The import error and what caused it (ibmmq hides a missing libmqm_r.so behind a second import)."""
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(parts) < 3:
        parts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return ", after ".join(parts)


_lock = threading.Lock()
_classes: weakref.WeakValueDictionary[tuple[type, str, int], type] = weakref.WeakValueDictionary()


def concrete_class(cls: type[T], base_name: str, mqi: Any) -> type[T]:
    """``cls`` combined with ``mqi.<base_name>``: one class per (class, module), kept while in use.

    The result subclasses both, so ``isinstance(obj, cls)`` and ``isinstance(obj, mqi.<base_name>)`` hold.
    """
    base = getattr(mqi, base_name)
    key = (cls, base_name, id(mqi))
    with _lock:
        found = _classes.get(key)
        if found is not None and getattr(found, "_rmq_mqi", None) is mqi:
            return found
        made = type(
            cls.__name__, (cls, base), {"_rmq_mqi": mqi, "_rmq_base": base, "__module__": cls.__module__}
        )
        made.__qualname__ = cls.__qualname__
        _classes[key] = made
        return made
