"""The client-side registry: what the user set up once (listeners, TLS settings, the CONNECT, subscriptions)
and every new connection gets again, plus the counters and the fan-out to the user's listeners."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import stomp.utils

from resilientmq.core.supervisor import EventDispatcher, call_listeners

from .link import LINK_LISTENER_NAME
from .listeners import UserListenerView

__all__ = ["ClientRegistry", "ConnectArgs", "Subscription"]

log = logging.getLogger("resilientmq.stomp")


@dataclass(frozen=True)
class Subscription:
    """One ``subscribe()``, replayed as it was on every new connection (its terms; ``receipts`` aside)."""

    destination: str
    id: str
    ack: str
    headers: tuple[tuple[str, str], ...]
    receipts: tuple[str, ...] = field(default=(), compare=False)
    """The user's ``receipt`` headers still owed an answer: the first rides on the next SUBSCRIBE that puts
    the subscription in place (the broker answers it, stomp.py delivers it); later replays carry ours."""

    def frame_headers(self, receipt: str | None = None) -> dict[str, str]:
        headers = dict(self.headers)
        if receipt is not None:
            headers["receipt"] = receipt
        return headers

    def own_or_users_receipt(self, own: str) -> str:
        """The receipt to ask for: the user's first owed one, else ``own``."""
        return self.receipts[0] if self.receipts else own


@dataclass(frozen=True)
class ConnectArgs:
    """The arguments of the last ``connect()``: the same CONNECT goes out on every new connection."""

    username: str | None
    passcode: str | None
    headers: Mapping[str, Any]
    with_connect_command: bool
    keyword_headers: Mapping[str, Any]


class ClientRegistry:
    """Shared by the facade (which records) and each session (which replays).

    ``lock`` guards the listeners, the subscriptions and which transports show the listeners, so that a
    listener or subscription added while a connection is being set up is never missed by it.

    Listener maps are replaced, never changed in place: stomp.py's heart-beat thread loops over
    ``transport.listeners`` without a lock, and ``call_listeners`` over ours.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.listeners: Mapping[str, Any] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.connect_args: ConnectArgs | None = None
        # ``conn.transport``: stomp.py's placeholder until the first connection is up, then the transport of
        # the live (or last live) connection.
        self.transport: Any = None
        self._showing: list[Any] = []  # transports of connections being set up or live: new listeners go on
        self._shown: weakref.WeakSet[Any] = weakref.WeakSet()  # every transport that shows them
        self._io_threads: weakref.WeakSet[Any] = weakref.WeakSet()
        self._ssl: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._counts = {"acks_skipped": 0, "nacks_skipped": 0, "subscriptions_refused": 0}
        # Callbacks the adapter makes up (answers to the user's receipts) run here, never on stomp.py's io
        # thread, which must stay free to read the receipts everything else waits for.
        self._events = EventDispatcher(f"{name}-listeners")

    # -- recorded by the facade ----------------------------------------------------------------------
    def set_listener(self, name: str, listener: Any) -> None:
        assert listener is not None  # as stomp.py's Transport.set_listener
        with self.lock:
            self.listeners = {**self.listeners, name: listener}
            self._show_everywhere()

    def remove_listener(self, name: str) -> None:
        with self.lock:
            if name not in self.listeners:
                raise KeyError(name)  # as stomp.py's Transport.remove_listener
            self.listeners = {k: v for k, v in self.listeners.items() if k != name}
            self._show_everywhere()

    def _show_everywhere(self) -> None:
        # A transport whose connection we dropped loses removed or replaced listeners and gains none.
        for transport in self._shown:
            _show(transport, self.listeners, add=transport in self._showing)

    def add_ssl(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._ssl.append((args, kwargs))
        self.transport.set_ssl(*args, **kwargs)

    # -- replayed on every new transport --------------------------------------------------------------
    def prepare(self, transport: Any) -> None:
        """Give a new transport the TLS settings, and the thread factory set with
        ``conn.transport.override_threading()``."""
        for args, kwargs in self._ssl:
            transport.set_ssl(*args, **kwargs)
        transport.override_threading(self.transport.create_thread_fc)

    def show_listeners(self, transport: Any) -> None:
        """Put the user's listeners on a connection's main transport (before it starts)."""
        with self.lock:
            self._showing.append(transport)
            self._shown.add(transport)
            _show(transport, self.listeners, add=True)

    def started(self, transport: Any) -> None:
        """``transport`` is started: its io thread runs listener callbacks from now on."""
        thread = getattr(transport, "io_thread", None)
        if thread is not None:
            try:
                self._io_threads.add(thread)
            except TypeError:  # a thread factory's object that takes no weak reference
                log.debug("cannot track io thread %r", thread)

    def on_io_thread(self) -> bool:
        """True on an io thread of one of our stomp.py transports (where waiting for a frame would wait on
        the very thread that must read it)."""
        return threading.current_thread() in self._io_threads

    def connected(self, transport: Any) -> None:
        """The connection of ``transport`` is up: ``conn.transport`` shows it from now on."""
        with self.lock:
            self.transport = transport

    def dropped(self, transport: Any) -> None:
        """We drop this transport's connection: listeners added from now on do not go on it. The ones on it
        stay, so what stomp.py's threads still deliver (``on_disconnected``, ``on_heartbeat_timeout``, a
        last receipt) reaches them."""
        with self.lock:
            if transport in self._showing:
                self._showing.remove(transport)

    def refused(self, sub: Subscription, cause: BaseException) -> None:
        """The broker refused this subscription for good: stop replaying it (the user's listeners saw the
        ERROR frame)."""
        with self.lock:
            if self.subscriptions.get(sub.id) == sub:
                del self.subscriptions[sub.id]
            self._counts["subscriptions_refused"] += 1
        log.error("%s: subscription %r to %s refused, dropped: %s", self.name, sub.id, sub.destination, cause)

    # -- the user's receipts on subscriptions ---------------------------------------------------------
    def subscribed(self, sub: Subscription) -> None:
        """The broker answered the SUBSCRIBE that put ``sub`` in place. The user receipt it carried (the
        first owed one) reached the listeners through stomp.py; the others are answered here."""
        if not sub.receipts:
            return
        with self.lock:
            current = self.subscriptions.get(sub.id)
            if current == sub:
                left = tuple(r for r in current.receipts if r not in sub.receipts)
                self.subscriptions[sub.id] = replace(current, receipts=left)
        for receipt in sub.receipts[1:]:
            self.answer_receipt(receipt)

    def settle_receipts(self, in_place: Mapping[str, Subscription]) -> None:
        """Answer the receipts owed by subscriptions already in place on a connection (asked for again
        after their SUBSCRIBE went out). Called under ``lock``."""
        for sid, sub in list(self.subscriptions.items()):
            if sub.receipts and in_place.get(sid) == sub:
                self.subscriptions[sid] = replace(sub, receipts=())
                for receipt in sub.receipts:
                    self.answer_receipt(receipt)

    def answer_receipt(self, receipt: str) -> None:
        """A RECEIPT made up by the adapter for something done without the broker, on its event thread."""
        self.tell_listeners("on_receipt", stomp.utils.Frame("RECEIPT", {"receipt-id": receipt}))

    # -- counters and the user's listeners ------------------------------------------------------------
    def count(self, name: str) -> None:
        with self.lock:
            self._counts[name] += 1

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self._counts)

    def call_listeners(self, method: str, *args: Any) -> None:
        """Call ``method`` on every user listener, in this thread; a raising listener is logged."""
        call_listeners(self.listeners.values(), method, args, "stomp")

    def tell_listeners(self, method: str, *args: Any) -> None:
        """Call ``method`` on every user listener from the adapter's own event thread."""
        self._events.post([self], "call_listeners", (method, *args))

    def deliver_told(self, timeout: float) -> None:
        """Wait (bounded) until what was told so far has been delivered, so that it comes before what
        stomp.py delivers next (a DISCONNECT's ``on_disconnected``), as the broker's own answers would.
        Not on the event thread itself (a listener disconnecting from ``on_receipt``)."""
        if self._events.in_own_thread():
            return
        done = threading.Event()
        self._events.post([done], "set", ())
        done.wait(timeout)

    def close(self) -> None:
        self._events.close()


# The names of the adapter's and stomp.py's own listeners: a user listener cannot replace them.
_OWN_NAMES = frozenset({LINK_LISTENER_NAME, "protocol-listener"})


def _show(transport: Any, listeners: Mapping[str, Any], *, add: bool) -> None:
    """Make ``transport`` show ``listeners``, each wrapped in a view (kept while its listener is the same);
    without ``add``, only those it shows already, unchanged."""
    current: Mapping[str, Any] = transport.listeners
    fresh = {k: v for k, v in current.items() if not isinstance(v, UserListenerView)}
    for name, listener in listeners.items():
        if name in _OWN_NAMES:
            continue
        view = current.get(name)
        if isinstance(view, UserListenerView) and view.listener is listener:
            fresh[name] = view
        elif add:
            fresh[name] = UserListenerView(listener)
    # Replaced, never changed in place: stomp.py's heart-beat thread iterates it without a lock.
    transport.listeners = fresh
