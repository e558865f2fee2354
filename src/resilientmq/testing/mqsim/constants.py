"""IBM MQ constants with IBM's numeric values: the subset the simulator uses, and IBM's full tables.

The values are IBM's own (``cmqc.h``; the ``CMQC``/``CMQXC``/``CMQCFC`` modules of the ``ibmmq`` package),
listed here so the simulator works where ``ibmmq`` is not installed at all. A name outside the subset is
looked up in the installed ``ibmmq`` package's pure-Python constant files, which load without IBM's C
client, so code written against the full ``CMQC`` still runs on the simulator wherever ``ibmmq`` is there.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import runpy
from typing import Any

__all__ = ["CMQC", "CMQCFC", "CMQXC", "Constants", "reason_name"]


class Constants:
    """A module-like namespace of constants: ``CMQC.MQRC_CONNECTION_BROKEN``."""

    def __init__(self, module: str, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        self._module = module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        real = _installed_constants(self._module)
        if name in real:
            value = real[name]
            setattr(self, name, value)
            return value
        raise AttributeError(
            f"{self._module} has no constant {name!r} here: the simulator defines a subset of IBM's "
            "constants and takes the rest from an installed ibmmq package (pip install ibmmq)"
        )

    def values(self) -> dict[str, Any]:
        """Every constant defined so far (the subset, plus any looked up from ``ibmmq``)."""
        return {k: v for k, v in self.__dict__.items() if k.startswith("MQ")}

    def __repr__(self) -> str:
        return f"<constants {self._module}>"


def _platform_file() -> str:
    # The same choice ibmmq's CMQC.py makes: only a few values (encodings) differ by platform.
    system, machine = platform.system(), platform.machine()
    if system == "Linux":
        linux = {"aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppcle", "ppcle": "ppcle"}
        return "_CMQC_linux_" + linux.get(machine, "x64")
    others = {"AIX": "_CMQC_aix", "Darwin": "_CMQC_macos", "Windows": "_CMQC_windows"}
    return others.get(system, "_CMQC_linux_x64")


@functools.cache
def _installed_constants(module: str) -> dict[str, Any]:
    """The constants of an installed ``ibmmq`` package, read from its plain Python files (no C client)."""
    try:
        spec = importlib.util.find_spec("ibmmq")
    except (ImportError, ValueError):
        return {}
    if spec is None or not spec.submodule_search_locations:
        return {}
    filename = _platform_file() if module == "CMQC" else module
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, filename + ".py")
        if os.path.exists(path):
            try:
                return {k: v for k, v in runpy.run_path(path).items() if k.startswith("MQ")}
            except Exception:  # a damaged install: fall back to the subset
                return {}
    return {}


def installed_constants(module: str) -> dict[str, Any]:
    """IBM's full constant table ``module`` (``CMQC``, ``CMQXC``, ``CMQCFC``) if ``ibmmq`` is installed."""
    return dict(_installed_constants(module))


@functools.cache
def _reason_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for table in (_installed_constants("CMQC"), _installed_constants("CMQCFC"), _CMQC, _CMQCFC):
        for name, value in table.items():
            if name.startswith(("MQRC_", "MQRCCF_")) and isinstance(value, int):
                names.setdefault(value, name)
    return names


def reason_name(reason: int) -> str | None:
    """The mnemonic of an MQ reason code (``2009`` -> ``"MQRC_CONNECTION_BROKEN"``), if known."""
    return _reason_names().get(reason)


# fmt: off
_CMQC = {
    'MQACT_NONE': bytes(32),
    'MQAT_NO_CONTEXT': 0,
    'MQAT_UNIX': 6,
    'MQCA_DEAD_LETTER_Q_NAME': 2006,
    'MQCA_Q_MGR_NAME': 2015,
    'MQCA_Q_NAME': 2016,
    'MQCCSI_APPL': -3,
    'MQCCSI_Q_MGR': 0,
    'MQCC_FAILED': 2,
    'MQCC_OK': 0,
    'MQCC_WARNING': 1,
    'MQCI_NONE': bytes(24),
    'MQCMHO_DEFAULT_VALIDATION': 0,
    'MQCMHO_STRUC_ID': b'CMHO',
    'MQCMHO_VERSION_1': 1,
    'MQCNO_CLIENT_BINDING': 2048,
    'MQCNO_LOCAL_BINDING': 1024,
    'MQCNO_NONE': 0,
    'MQCNO_RECONNECT': 16777216,
    'MQCNO_RECONNECT_DISABLED': 33554432,
    'MQCNO_RECONNECT_Q_MGR': 67108864,
    'MQCNO_STRUC_ID': b'CNO ',
    'MQCNO_VERSION_5': 5,
    'MQCOPY_DEFAULT': 22,
    'MQCO_DELETE': 1,
    'MQCO_DELETE_PURGE': 2,
    'MQCO_NONE': 0,
    'MQCO_REMOVE_SUB': 8,
    'MQCSP_AUTH_NONE': 0,
    'MQCSP_STRUC_ID': b'CSP ',
    'MQCSP_VERSION_1': 1,
    'MQEI_UNLIMITED': -1,
    'MQENC_NATIVE': 546,
    'MQFB_NONE': 0,
    'MQFMT_STRING': b'MQSTR   ',
    'MQGMO_ACCEPT_TRUNCATED_MSG': 64,
    'MQGMO_BROWSE_FIRST': 16,
    'MQGMO_BROWSE_MSG_UNDER_CURSOR': 2048,
    'MQGMO_BROWSE_NEXT': 32,
    'MQGMO_FAIL_IF_QUIESCING': 8192,
    'MQGMO_MSG_UNDER_CURSOR': 256,
    'MQGMO_NO_PROPERTIES': 67108864,
    'MQGMO_NO_WAIT': 0,
    'MQGMO_STRUC_ID': b'GMO ',
    'MQGMO_SYNCPOINT': 2,
    'MQGMO_SYNCPOINT_IF_PERSISTENT': 4096,
    'MQGMO_VERSION_4': 4,
    'MQGMO_WAIT': 1,
    'MQGS_NOT_IN_GROUP': 32,
    'MQHC_UNASSOCIATED_HCONN': -3,
    'MQHC_UNUSABLE_HCONN': -1,
    'MQHM_NONE': 0,
    'MQHO_NONE': 0,
    'MQIA_COMMAND_LEVEL': 31,
    'MQIA_CURRENT_Q_DEPTH': 3,
    'MQIA_DEFINITION_TYPE': 7,
    'MQIA_DEF_PERSISTENCE': 5,
    'MQIA_DEF_PRIORITY': 6,
    'MQIA_INHIBIT_GET': 9,
    'MQIA_INHIBIT_PUT': 10,
    'MQIA_MAX_MSG_LENGTH': 13,
    'MQIA_MAX_PRIORITY': 14,
    'MQIA_MAX_Q_DEPTH': 15,
    'MQIA_OPEN_INPUT_COUNT': 17,
    'MQIA_OPEN_OUTPUT_COUNT': 18,
    'MQIA_PLATFORM': 32,
    'MQIA_Q_TYPE': 20,
    'MQIA_SYNCPOINT': 30,
    'MQIMPO_INQ_FIRST': 0,
    'MQIMPO_INQ_NEXT': 8,
    'MQIMPO_INQ_PROP_UNDER_CURSOR': 16,
    'MQIMPO_STRUC_ID': b'IMPO',
    'MQIMPO_VERSION_1': 1,
    'MQMD_STRUC_ID': b'MD  ',
    'MQMD_VERSION_2': 2,
    'MQMF_NONE': 0,
    'MQMO_MATCH_CORREL_ID': 2,
    'MQMO_MATCH_MSG_ID': 1,
    'MQMT_DATAGRAM': 8,
    'MQOD_STRUC_ID': b'OD  ',
    'MQOD_VERSION_4': 4,
    'MQOL_UNDEFINED': -1,
    'MQOO_BROWSE': 8,
    'MQOO_FAIL_IF_QUIESCING': 8192,
    'MQOO_INPUT_AS_Q_DEF': 1,
    'MQOO_INPUT_EXCLUSIVE': 4,
    'MQOO_INPUT_SHARED': 2,
    'MQOO_INQUIRE': 32,
    'MQOO_OUTPUT': 16,
    'MQOO_SET': 64,
    'MQOT_Q': 1,
    'MQOT_Q_MGR': 5,
    'MQOT_TOPIC': 8,
    'MQPD_NONE': 0,
    'MQPD_NO_CONTEXT': 0,
    'MQPD_STRUC_ID': b'PD  ',
    'MQPD_SUPPORT_OPTIONAL': 1,
    'MQPD_VERSION_1': 1,
    'MQPER_NOT_PERSISTENT': 0,
    'MQPER_PERSISTENCE_AS_Q_DEF': 2,
    'MQPER_PERSISTENT': 1,
    'MQPL_UNIX': 3,
    'MQPMO_FAIL_IF_QUIESCING': 8192,
    'MQPMO_NEW_CORREL_ID': 128,
    'MQPMO_NEW_MSG_ID': 64,
    'MQPMO_NONE': 0,
    'MQPMO_STRUC_ID': b'PMO ',
    'MQPMO_SYNCPOINT': 2,
    'MQPMO_VERSION_3': 3,
    'MQPMO_WARN_IF_NO_SUBS_MATCHED': 524288,
    'MQPRI_PRIORITY_AS_Q_DEF': -1,
    'MQQA_GET_ALLOWED': 0,
    'MQQA_GET_INHIBITED': 1,
    'MQQA_PUT_ALLOWED': 0,
    'MQQA_PUT_INHIBITED': 1,
    'MQQDT_PERMANENT_DYNAMIC': 2,
    'MQQDT_PREDEFINED': 1,
    'MQQDT_TEMPORARY_DYNAMIC': 3,
    'MQQT_LOCAL': 1,
    'MQQT_MODEL': 2,
    'MQRC_ALIAS_BASE_Q_TYPE_ERROR': 2001,
    'MQRC_BACKED_OUT': 2003,
    'MQRC_CALL_INTERRUPTED': 2549,
    'MQRC_CHANNEL_CONFIG_ERROR': 2539,
    'MQRC_CHANNEL_NOT_AVAILABLE': 2537,
    'MQRC_CIPHER_SPEC_NOT_SUITE_B': 2591,
    'MQRC_CONNECTION_BROKEN': 2009,
    'MQRC_CONNECTION_ERROR': 2273,
    'MQRC_CONNECTION_NOT_AVAILABLE': 2568,
    'MQRC_CONNECTION_QUIESCING': 2202,
    'MQRC_CONNECTION_STOPPING': 2203,
    'MQRC_ENVIRONMENT_ERROR': 2012,
    'MQRC_GET_INHIBITED': 2016,
    'MQRC_HCONN_ERROR': 2018,
    'MQRC_HMSG_ERROR': 2460,
    'MQRC_HOBJ_ERROR': 2019,
    'MQRC_HOST_NOT_AVAILABLE': 2538,
    'MQRC_KEY_REPOSITORY_ERROR': 2381,
    'MQRC_MSG_TOO_BIG_FOR_CHANNEL': 2218,
    'MQRC_MSG_TOO_BIG_FOR_Q': 2030,
    'MQRC_MSG_TOO_BIG_FOR_Q_MGR': 2031,
    'MQRC_NONE': 0,
    'MQRC_NOT_AUTHORIZED': 2035,
    'MQRC_NOT_OPEN_FOR_BROWSE': 2036,
    'MQRC_NOT_OPEN_FOR_INPUT': 2037,
    'MQRC_NOT_OPEN_FOR_INQUIRE': 2038,
    'MQRC_NOT_OPEN_FOR_OUTPUT': 2039,
    'MQRC_NOT_OPEN_FOR_SET': 2040,
    'MQRC_NO_EXTERNAL_PARTICIPANTS': 2121,
    'MQRC_NO_MSG_AVAILABLE': 2033,
    'MQRC_NO_MSG_UNDER_CURSOR': 2034,
    'MQRC_NO_SUBSCRIPTION': 2428,
    'MQRC_NO_SUBS_MATCHED': 2550,
    'MQRC_OBJECT_ALREADY_EXISTS': 2100,
    'MQRC_OBJECT_IN_USE': 2042,
    'MQRC_OBJECT_NAME_ERROR': 2152,
    'MQRC_OBJECT_TYPE_ERROR': 2043,
    'MQRC_OPTION_NOT_VALID_FOR_TYPE': 2045,
    'MQRC_OUTCOME_MIXED': 2123,
    'MQRC_OUTCOME_PENDING': 2124,
    'MQRC_PERSISTENCE_ERROR': 2047,
    'MQRC_PRIORITY_ERROR': 2050,
    'MQRC_PROPERTY_NAME_ERROR': 2442,
    'MQRC_PROPERTY_NOT_AVAILABLE': 2471,
    'MQRC_PROPERTY_TYPE_ERROR': 2473,
    'MQRC_PROPERTY_VALUE_TOO_BIG': 2469,
    'MQRC_PUT_INHIBITED': 2051,
    'MQRC_Q_DELETED': 2052,
    'MQRC_Q_FULL': 2053,
    'MQRC_Q_MGR_NAME_ERROR': 2058,
    'MQRC_Q_MGR_NOT_ACTIVE': 2223,
    'MQRC_Q_MGR_NOT_AVAILABLE': 2059,
    'MQRC_Q_MGR_QUIESCING': 2161,
    'MQRC_Q_MGR_STOPPING': 2162,
    'MQRC_Q_NOT_EMPTY': 2055,
    'MQRC_RECONNECT_FAILED': 2548,
    'MQRC_RECONNECT_TIMED_OUT': 2556,
    'MQRC_RESOURCE_PROBLEM': 2102,
    'MQRC_SECURITY_ERROR': 2063,
    'MQRC_SELECTOR_ERROR': 2067,
    'MQRC_SSL_INITIALIZATION_ERROR': 2393,
    'MQRC_SSL_PEER_NAME_MISMATCH': 2398,
    'MQRC_STANDBY_Q_MGR': 2543,
    'MQRC_STORAGE_MEDIUM_FULL': 2192,
    'MQRC_STORAGE_NOT_AVAILABLE': 2071,
    'MQRC_SUBSCRIPTION_IN_USE': 2429,
    'MQRC_SUB_ALREADY_EXISTS': 2432,
    'MQRC_SUB_NAME_ERROR': 2440,
    'MQRC_TOPIC_STRING_ERROR': 2425,
    'MQRC_TRUNCATED_MSG_ACCEPTED': 2079,
    'MQRC_TRUNCATED_MSG_FAILED': 2080,
    'MQRC_UNEXPECTED_ERROR': 2195,
    'MQRC_UNKNOWN_ALIAS_BASE_Q': 2082,
    'MQRC_UNKNOWN_CHANNEL_NAME': 2540,
    'MQRC_UNKNOWN_DEF_XMIT_Q': 2197,
    'MQRC_UNKNOWN_OBJECT_NAME': 2085,
    'MQRC_UNKNOWN_OBJECT_Q_MGR': 2086,
    'MQRC_UNKNOWN_REMOTE_Q_MGR': 2087,
    'MQRC_UNKNOWN_XMIT_Q': 2196,
    'MQRC_UNSUPPORTED_CIPHER_SUITE': 2400,
    'MQRL_UNDEFINED': -1,
    'MQRO_NONE': 0,
    'MQSCO_STRUC_ID': b'SCO ',
    'MQSCO_VERSION_5': 5,
    'MQSD_STRUC_ID': b'SD  ',
    'MQSD_VERSION_1': 1,
    'MQSEG_INHIBITED': 32,
    'MQSID_NONE': bytes(40),
    'MQSMPO_SET_FIRST': 0,
    'MQSMPO_STRUC_ID': b'SMPO',
    'MQSMPO_VERSION_1': 1,
    'MQSO_CREATE': 2,
    'MQSO_DURABLE': 8,
    'MQSO_FAIL_IF_QUIESCING': 8192,
    'MQSO_MANAGED': 32,
    'MQSO_NON_DURABLE': 0,
    'MQSO_RESUME': 4,
    'MQSP_AVAILABLE': 1,
    'MQSRO_STRUC_ID': b'SRO ',
    'MQSRO_VERSION_1': 1,
    'MQSS_NOT_A_SEGMENT': 32,
    'MQTYPE_AS_SET': 0,
    'MQTYPE_BOOLEAN': 4,
    'MQTYPE_BYTE_STRING': 8,
    'MQTYPE_FLOAT32': 256,
    'MQTYPE_FLOAT64': 512,
    'MQTYPE_INT16': 32,
    'MQTYPE_INT32': 64,
    'MQTYPE_INT64': 128,
    'MQTYPE_INT8': 16,
    'MQTYPE_NULL': 2,
    'MQTYPE_STRING': 1024,
    'MQVL_NULL_TERMINATED': -1,
    'MQWI_UNLIMITED': -1,
}

_CMQXC = {
    'MQCDC_NO_SENDER_CONVERSION': 0,
    'MQCD_VERSION_11': 11,
    'MQCHT_CLNTCONN': 6,
    'MQMCAT_PROCESS': 1,
    'MQNPMS_FAST': 2,
    'MQPA_DEFAULT': 1,
    'MQXPT_TCP': 2,
}

_CMQCFC = {
    'MQCACF_Q_NAMES': 3011,
    'MQIACF_REPLACE': 1006,
    'MQRCCF_OBJECT_ALREADY_EXISTS': 4001,
    'MQRCCF_OBJECT_OPEN': 4004,
    'MQRP_YES': 1,
}

# fmt: on

CMQC = Constants("CMQC", _CMQC)
CMQXC = Constants("CMQXC", _CMQXC)
CMQCFC = Constants("CMQCFC", _CMQCFC)
