"""The one place STOMP ERROR frames are classified: what each kind of refusal becomes."""

from __future__ import annotations

import pytest
from stomp.utils import Frame

from resilientmq import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    MessageTooLargeError,
    PermanentDeliveryError,
)
from resilientmq._stomp.errors import classify_error_frame


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
