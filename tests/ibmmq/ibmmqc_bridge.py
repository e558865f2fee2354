"""A stand-in for IBM's ``ibmmqc`` C extension that runs IBM's own ``ibmmq`` Python layer on the simulator.

``install(sim)`` registers a module named ``ibmmqc`` before ``ibmmq`` is imported: ``ibmmq``'s
``from . import ibmmqc`` fails here (no ``libmqm_r.so``) and falls back to ``import ibmmqc``, which finds
this one. Each MQI verb unpacks the C structures IBM's classes packed (``MD().pack()``...), reads the
strings behind their pointers, runs the simulator's verb, and packs the results back in the tuple shapes
``ibmmq`` expects. So code under test uses the genuine ``ibmmq.QueueManager``, ``Queue``, ``MD``... and
only the queue manager is simulated. Use it in a separate process: importing ``ibmmq`` changes
``sys.path`` and ``sys.modules`` for good.
"""

from __future__ import annotations

import ctypes
import sys
import types
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from resilientmq.testing import mqsim
from resilientmq.testing.mqsim import structures
from resilientmq.testing.mqsim.api import Properties

_state: dict[str, Any] = {}
_VS = ("ObjectString", "SubName", "SelectionString", "SubUserData")


def install(sim: mqsim.Simulator) -> types.ModuleType:
    """Register the fake ``ibmmqc`` for ``sim``; import ``ibmmq`` afterwards."""
    if "ibmmq" in sys.modules:
        raise RuntimeError("install the bridge before ibmmq is imported")
    module = types.ModuleType("ibmmqc", "IBM's C layer, simulated")
    module.__dict__.update(
        __version__=version("ibmmq"),
        __cmdlevel__=940,
        __mqbuild__="mqsim",
        __strucversions__={"gmo": 4, "pmo": 3, "od": 4, "cd": 11, "cno": 8, "csp": 3, "sco": 7, "sts": 2},
        MQCBINIT=lambda fn: None,
        MQLOGCF=lambda *a: None,
    )
    for name, fn in _VERBS.items():
        setattr(module, name, fn)
    sys.modules["ibmmqc"] = module
    _state["sim"] = sim
    _state["props"] = {}
    return module


def _sim() -> mqsim.Simulator:
    return _state["sim"]  # type: ignore[no-any-return]


def _ibmmq() -> Any:
    return sys.modules["ibmmq"]


def _string_at(ptr: int, length: int) -> bytes | None:
    return ctypes.string_at(ptr, length) if ptr and length > 0 else None


def _unpack(cls_name: str, packed: bytes | None) -> Any:
    if packed is None:
        return None
    return getattr(_ibmmq(), cls_name)().unpack(packed)


def _to_sim(real: Any, sim_cls: type) -> Any:
    """IBM's structure (unpacked) as the simulator's, with the strings its pointers point at."""
    out = sim_cls()
    fields = real.get()
    for name, value in fields.items():
        if not name.startswith("_") and not name.endswith("Ptr") and hasattr(out, name):
            setattr(out, name, value)
    for vs in _VS:
        if vs + "VSPtr" in fields:
            text = _string_at(fields[vs + "VSPtr"], fields[vs + "VSLength"])
            if text is not None:
                out.set_vs(vs, text)
    return out


def _back(sim_struct: Any, real: Any) -> bytes:
    """Copy the simulator's output fields into IBM's structure and pack it."""
    for name, value in sim_struct.get().items():
        if name.startswith("_") or name.endswith(("Ptr", "VSOffset", "VSBufSize", "VSLength", "VSCCSID")):
            continue
        if hasattr(real, name):
            setattr(real, name, value)
    return real.pack()  # type: ignore[no-any-return]


def _status(fn: Callable[[], object]) -> Callable[[], tuple[Any, ...]]:
    """For verbs whose C function returns only (comp, reason)."""

    def run() -> tuple[Any, ...]:
        fn()
        return 0, 0

    return run


def _call(
    fn: Callable[[], tuple[Any, ...]], failure: Callable[[int, int], tuple[Any, ...]]
) -> tuple[Any, ...]:
    try:
        return fn()
    except mqsim.MQMIError as exc:
        return failure(exc.comp, exc.reason)


# -- the verbs, in ibmmqc's calling conventions -----------------------------------------------------------
def MQCONN(name: bytes) -> tuple[Any, ...]:
    return _call(lambda: (_sim().mqconn(name, client=False), 0, 0), lambda c, r: (None, c, r))


def MQCONNX(name: bytes, cno: bytes, cd: bytes, csp: bytes, sco: bytes, bno: bytes) -> tuple[Any, ...]:
    real_cno, real_cd = _unpack("CNO", cno), _unpack("CD", cd)
    real_csp, real_sco = _unpack("CSP", csp), _unpack("SCO", sco)
    user = password = None
    if real_csp is not None:
        user = _string_at(real_csp.CSPUserId, real_csp._CSPUserIdLength)
        password = _string_at(real_csp.CSPPassword, real_csp._CSPPasswordLength)

    def text(value: bytes | None) -> str | None:
        return None if value is None else value.decode()

    def connect() -> tuple[Any, ...]:
        hconn = _sim().mqconn(
            name,
            client=real_cd is not None,
            channel=structures.text(real_cd.ChannelName) if real_cd is not None else "",
            addresses=structures.text(real_cd.ConnectionName) if real_cd is not None else "",
            user=text(user),
            password=text(password),
            options=real_cno.Options if real_cno is not None else 0,
            cipher=structures.text(real_cd.SSLCipherSpec) if real_cd is not None else "",
            key_repository=structures.text(real_sco.KeyRepository) if real_sco is not None else "",
        )
        return hconn, 0, 0

    return _call(connect, lambda c, r: (None, c, r))


def MQDISC(hconn: int) -> tuple[Any, ...]:
    return _call(_status(lambda: _sim().mqdisc(hconn)), lambda c, r: (c, r))


def MQOPEN(hconn: int, od: bytes, options: int) -> tuple[Any, ...]:
    real = _unpack("OD", od)
    ours = _to_sim(real, mqsim.OD)

    def run() -> tuple[Any, ...]:
        hobj = _sim().mqopen(hconn, ours, options)
        return hobj, _back(ours, real), 0, 0

    return _call(run, lambda c, r: (None, od, c, r))


def MQCLOSE(hconn: int, hobj: int, options: int) -> tuple[Any, ...]:
    return _call(_status(lambda: _sim().mqclose(hconn, hobj, options)), lambda c, r: (c, r))


def _put(verb: Callable[[Any, Any], None], md: bytes, pmo: bytes) -> tuple[Any, ...]:
    real_md, real_pmo = _unpack("MD", md), _unpack("PMO", pmo)
    sim_md, sim_pmo = _to_sim(real_md, mqsim.MD), _to_sim(real_pmo, mqsim.PMO)

    def run() -> tuple[Any, ...]:
        verb(sim_md, sim_pmo)
        return _back(sim_md, real_md), _back(sim_pmo, real_pmo), 0, 0

    return _call(run, lambda c, r: (md, pmo, c, r))


def MQPUT(hconn: int, hobj: int, md: bytes, pmo: bytes, msg: bytes) -> tuple[Any, ...]:
    return _put(lambda m, p: _sim().mqput(hconn, hobj, m, p, msg), md, pmo)


def MQPUT1(hconn: int, od: bytes, md: bytes, pmo: bytes, msg: bytes) -> tuple[Any, ...]:
    sim_od = _to_sim(_unpack("OD", od), mqsim.OD)
    return _put(lambda m, p: _sim().mqput1(hconn, sim_od, m, p, msg), md, pmo)


def MQGET(hconn: int, hobj: int, md: bytes, gmo: bytes, length: int) -> tuple[Any, ...]:
    real_md, real_gmo = _unpack("MD", md), _unpack("GMO", gmo)
    sim_md, sim_gmo = _to_sim(real_md, mqsim.MD), _to_sim(real_gmo, mqsim.GMO)
    try:
        body = _sim().mqget(hconn, hobj, sim_md, sim_gmo, length)
    except mqsim.MQMIError as exc:
        message = getattr(exc, "message", b"")
        original = getattr(exc, "original_length", 0)
        return message, _back(sim_md, real_md), _back(sim_gmo, real_gmo), original, exc.comp, exc.reason
    return body, _back(sim_md, real_md), _back(sim_gmo, real_gmo), len(body), 0, 0


def _simple(verb: Callable[[int], None]) -> Callable[[int], tuple[Any, ...]]:
    return lambda hconn: _call(_status(lambda: verb(hconn)), lambda c, r: (c, r))


def MQINQ(
    hconn: int,
    hobj: int,
    selectors: list[int],
    int_attrs: Any,
    int_count: int,
    char_count: int,
    char_len: int,
) -> tuple[Any, ...]:
    mqinq = sys.modules["mqinq"]
    c = _ibmmq().CMQC

    def run() -> tuple[Any, ...]:
        attrs = _sim().mqinq(hconn, hobj, selectors)
        ints = [attrs[s] for s in selectors if c.MQIA_FIRST <= s <= c.MQIA_LAST]
        chars = b"".join(
            structures.pad(attrs[s], mqinq.get_attr_length(s), b" ")
            for s in selectors
            if not c.MQIA_FIRST <= s <= c.MQIA_LAST
        )
        return ints, chars, 0, 0

    return _call(run, lambda cc, r: ([], b"", cc, r))


def MQSET(
    hconn: int, hobj: int, selectors: list[int], int_attrs: list[int], char_attrs: bytes
) -> tuple[Any, ...]:
    return _call(
        _status(lambda: _sim().mqset(hconn, hobj, dict(zip(selectors, int_attrs, strict=True)))),
        lambda c, r: (c, r),
    )


def MQSUB(hconn: int, sd: bytes, hobj: int) -> tuple[Any, ...]:
    real = _unpack("SD", sd)
    ours = _to_sim(real, mqsim.SD)

    def run() -> tuple[Any, ...]:
        queue_handle, hsub = _sim().mqsub(hconn, ours, hobj)
        return _back(ours, real), queue_handle, hsub, 0, 0

    return _call(run, lambda c, r: (sd, None, None, c, r))


def MQCRTMH(hconn: int, cmho: bytes) -> tuple[Any, ...]:
    return _call(lambda: (_sim().mqcrtmh(hconn), 0, 0), lambda c, r: (None, c, r))


def _properties(hconn: int, hmsg: int) -> Any:
    key = hmsg
    found = _state["props"].get(key)
    if found is None:
        found = _state["props"][key] = Properties(_sim(), hconn, hmsg)
    return found


def MQSETMP(
    hconn: int, hmsg: int, smpo: bytes, name: bytes, pd: bytes, ptype: int, value: Any, length: int
) -> tuple[Any, ...]:
    return _call(_status(lambda: _properties(hconn, hmsg).set(name, value, ptype)), lambda c, r: (c, r))


def MQINQMP(
    hconn: int, hmsg: int, impo: bytes, name: bytes, pd: bytes, ptype: int, max_length: int
) -> tuple[Any, ...]:
    options = _unpack("IMPO", impo).Options
    try:
        got = _properties(hconn, hmsg).get(name, impo_options=options, max_value_length=max_length)
    except mqsim.MQMIError as exc:
        return None, getattr(exc, "data_length", 0), b"", exc.comp, exc.reason
    if isinstance(got, tuple):
        return got[0], 0, got[1], 0, 0
    return got, 0, b"", 0, 0


def MQDLTMH(hconn: int, hmsg: int, dmho: bytes) -> tuple[Any, ...]:
    def run() -> tuple[Any, ...]:
        _sim().mqdltmh(hmsg)
        _state["props"].pop(hmsg, None)
        return 0, 0

    return _call(run, lambda c, r: (c, r))


_VERBS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "MQCONN": MQCONN,
    "MQCONNX": MQCONNX,
    "MQDISC": MQDISC,
    "MQOPEN": MQOPEN,
    "MQCLOSE": MQCLOSE,
    "MQPUT": MQPUT,
    "MQPUT1": MQPUT1,
    "MQGET": MQGET,
    "MQBEGIN": _simple(lambda h: _sim().mqbegin(h)),
    "MQCMIT": _simple(lambda h: _sim().mqcmit(h)),
    "MQBACK": _simple(lambda h: _sim().mqback(h)),
    "MQINQ": MQINQ,
    "MQSET": MQSET,
    "MQSUB": MQSUB,
    "MQCRTMH": MQCRTMH,
    "MQSETMP": MQSETMP,
    "MQINQMP": MQINQMP,
    "MQDLTMH": MQDLTMH,
}
