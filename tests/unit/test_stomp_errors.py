"""The one place STOMP ERROR frames are classified: what each kind of refusal becomes."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from stomp.utils import Frame

from resilientmq import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    MessageTooLargeError,
    PermanentDeliveryError,
)
from resilientmq.core.session import BatchRejectedError, BatchResult
from resilientmq.stomp.errors import classify_error_frame
from resilientmq.stomp.link import Deliveries, Link


@pytest.mark.parametrize(
    ("message", "body", "connecting", "expected"),
    [
        ("User name [bob] or password is invalid.", "", True, AuthenticationError),
        ("Bad CONNECT", "Access refused for user 'guest'", True, AuthenticationError),
        ("Broker is shutting down", "", True, ConnectionLostError),
        ("User bob is not authorized to write to: queue://restricted.x", "", False, DestinationError),
        ("not_found", "NOT_FOUND - no exchange 'x' in vhost '/'", False, DestinationError),
        ("The maximum frame size was exceeded", "", False, MessageTooLargeError),
        ("Usage Manager Store is Full", "", False, ConnectionLostError),
        ("Something unexpected", "", False, PermanentDeliveryError),
        # A destination's name must not change the meaning of the refusal.
        ("User bob is not authorized to write to: queue://restricted.timeout", "", False, DestinationError),
        ("not_found", "NOT_FOUND - no exchange 'try again later' in vhost '/'", False, DestinationError),
    ],
)
def test_classification(message: str, body: str, connecting: bool, expected: type) -> None:
    error = classify_error_frame(Frame("ERROR", {"message": message}, body), connecting=connecting)
    assert type(error) is expected
    assert message in str(error)


def _link_with(*receipts: str) -> tuple[Link, list[Future[BatchResult]]]:
    link = Link(1, ("127.0.0.1", 1), lambda _link, _reason: None, Deliveries())
    link.on_connected(Frame("CONNECTED", {"server": "RabbitMQ/3"}, ""))
    return link, [link.expect({r: i}) for i, r in enumerate(receipts)]


def _refusal() -> Frame:
    return Frame("ERROR", {"message": "not_found"}, "NOT_FOUND - no exchange 'x' in vhost '/'")


@pytest.mark.parametrize(("awaited", "exact"), [(("r1",), True), (("r1", "r2"), False)])
def test_an_error_naming_no_frame_is_blamed_exactly_only_when_one_frame_was_awaited(
    awaited: tuple[str, ...], exact: bool
) -> None:
    link, futures = _link_with(*awaited)
    link.on_error(_refusal())  # no receipt-id: RabbitMQ's answer to a SEND to a missing exchange
    link.on_disconnected()  # ...after which it closes the connection
    blamed = futures[0].exception()
    assert isinstance(blamed, BatchRejectedError)
    assert blamed.exact is exact
    assert isinstance(blamed.cause, DestinationError)
    for other in futures[1:]:
        assert isinstance(other.exception(), ConnectionLostError)


@pytest.mark.parametrize(("awaited", "refused"), [(("sub",), True), (("sub", "send"), False)])
def test_an_error_before_a_receipt_refuses_that_frame_only_when_it_was_the_only_one_awaited(
    awaited: tuple[str, ...], refused: bool
) -> None:
    # RabbitMQ refuses a SUBSCRIBE with ERROR, then RECEIPT, then a close; a SEND's ERROR can come the same
    # way while that SUBSCRIBE waits, and must not cost the user an innocent subscription.
    link, futures = _link_with(*awaited)
    link.on_error(_refusal())
    link.on_receipt(Frame("RECEIPT", {"receipt-id": "sub"}, ""))
    assert futures[0].result() == BatchResult()
    assert (link.error_before("sub") is not None) is refused
