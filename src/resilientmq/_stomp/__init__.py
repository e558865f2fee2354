"""Private pieces of the STOMP adapter (``resilientmq.stomp``)."""
