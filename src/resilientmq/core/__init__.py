"""The resilience core every adapter shares, with no broker-specific code.

``policy`` (the reconnect policy as a value), ``supervisor`` (the connection state machine and the one
reconnect loop), ``session`` (what an adapter implements), ``outbox`` (the buffer and its one sender),
``buffer`` (memory and durable outboxes), ``errors``, ``options`` (the resilience kwargs) and ``client``
(the parts every facade is built from).
"""
