"""The one reason-code table and its translation: what each MQ reason becomes."""

from __future__ import annotations

import pytest

from resilientmq import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    MessageTooLargeError,
    OutcomeUnknownError,
    TransactionRolledBackError,
)
from resilientmq.ibmmq.errors import REASONS, Disposition, disposition, translate
from resilientmq.testing import mqsim

mqi = mqsim.Simulator().mqi

RECONNECT = [2009, 2059, 2161, 2162, 2202, 2203, 2537, 2538, 2543, 2568]


def error(reason: int, comp: int = 2) -> mqsim.MQMIError:
    return mqi.MQMIError(comp, reason)  # type: ignore[no-any-return]


@pytest.mark.parametrize("reason", RECONNECT)
def test_connection_reasons_mean_reconnect(reason: int) -> None:
    assert disposition(reason) is Disposition.RECONNECT
    err = translate(error(reason), mqi, "MQPUT")
    assert isinstance(err, ConnectionLostError) and err.retriable
    assert isinstance(err, mqi.MQMIError) and err.reason == reason
    committed = translate(error(reason), mqi, "MQCMIT", committing=True)
    assert isinstance(committed, TransactionRolledBackError)


@pytest.mark.parametrize("reason", [2018, 2019])
def test_stale_handles_reconnect_only_after_a_break(reason: int) -> None:
    original = error(reason)
    assert translate(original, mqi, "MQGET") is original  # without a break it is a bug: passed through
    assert isinstance(translate(error(reason), mqi, "MQGET", after_break=True), ConnectionLostError)


@pytest.mark.parametrize(
    ("reason", "connecting", "expected"),
    [
        (2035, True, AuthenticationError),
        (2035, False, DestinationError),
        (2085, False, DestinationError),
        (2058, True, DestinationError),
        (2540, True, DestinationError),
        (2381, True, AuthenticationError),
        (2030, False, MessageTooLargeError),
        (2031, False, MessageTooLargeError),
    ],
)
def test_permanent_reasons_fail_fast(reason: int, connecting: bool, expected: type) -> None:
    err = translate(error(reason), mqi, "MQOPEN Q", connecting=connecting)
    assert type(err).__mro__[1] is expected and not err.retriable  # type: ignore[attr-defined]
    assert str(reason) in str(err) and isinstance(err, mqi.MQMIError)


def test_unit_of_work_outcomes() -> None:
    assert isinstance(translate(error(2549), mqi, "MQCMIT", committing=True), OutcomeUnknownError)
    backed_out = translate(error(2003, comp=1), mqi, "MQCMIT", committing=True)
    assert isinstance(backed_out, TransactionRolledBackError) and backed_out.comp == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("reason", [2033, 2080, 2046, 2053, 2051])
def test_other_reasons_are_the_mqi_modules_own_answers(reason: int) -> None:
    original = error(reason)
    assert translate(original, mqi, "MQGET") is original


def test_not_connected_from_the_library_means_reconnect() -> None:
    assert isinstance(translate(mqi.PYIFError("not connected"), mqi, "MQPUT"), ConnectionLostError)
    other = ValueError("x")
    assert translate(other, mqi, "MQPUT") is other


def test_every_reason_in_the_table_is_named_in_messages() -> None:
    for reason in REASONS:
        assert "MQRC_" in str(translate(error(reason), mqi, "X", after_break=True)) or disposition(
            reason
        ) in (Disposition.BACKPRESSURE,)
