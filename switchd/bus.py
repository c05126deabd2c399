"""The event bus between engines: pyee, wrapped so one bad handler never harms the rest.

Events are the frozen dataclasses of :mod:`switchd.events`. A handler subscribes to
one event name (``call.ended``) or to every event (:meth:`Bus.on_any`). Handlers
run synchronously in publish order, on the event loop's thread; a handler that
raises is logged with the event and the handler's name, and the other handlers
still run (DESIGN §1: a handler exception never kills the loop).

pyee's ``EventEmitter`` holds the subscriptions; publishing walks a tuple of the
handlers for that event name, worked out once per name from the emitter (the name's
handlers, then the catch-all ones, each in subscription order: what ``emit`` would
call) and calls them directly. Why: a call publishes about 25 events, and two ``emit``
calls per event (name and catch-all), each through pyee's per-handler machinery and a
guard closure, were a fifth of the loop's time per call. A catch-all handler may name
the events it wants (``on_any(handler, only=...)``) and is then not called for others,
keeping its place among the catch-all handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import structlog
from pyee import EventEmitter

from switchd.events import Event

__all__ = ["Bus", "Handler"]

Handler = Callable[[Event], Any]
_ANY = "*"
log = structlog.get_logger("switchd.bus")


class Bus:
    """Publish/subscribe for :class:`~switchd.events.Event` values."""

    def __init__(self) -> None:
        # The synchronous EventEmitter: every handler here is a plain function, and
        # delivery must finish before the next core input (ordering is part of the contract).
        self._ee = EventEmitter()
        self._ee.on("error", self._on_error)
        #: The event names each catch-all subscription wants (None: every event).
        self._only: dict[Handler, frozenset[str] | None] = {}
        #: event name -> the handlers to call, in order; rebuilt after a subscription.
        #: An event nobody listens to costs one dict lookup (the media tick and bulk
        #: virtual runs publish hundreds of thousands).
        self._plan: dict[str, tuple[Handler, ...]] = {}

    def on(self, name: str, handler: Handler) -> None:
        """Call ``handler(event)`` for every event named ``name`` (e.g. ``call.ended``)."""
        # Each subscription is its own object (pyee keys listeners by function): the same
        # function subscribed twice is called twice, as subscribed.
        self._ee.on(name, partial(handler))
        self._plan.clear()

    def on_any(self, handler: Handler, *, only: Iterable[str] | None = None) -> None:
        """Call ``handler(event)`` for every event, or only for the events named in
        ``only`` (e.g. ``{"call.ended"}``), after the handlers of the event's own name."""
        sub = partial(handler)
        self._ee.on(_ANY, sub)
        self._only[sub] = None if only is None else frozenset(only)
        self._plan.clear()

    def handlers(self, name: str) -> tuple[Handler, ...]:
        """The handlers an event named ``name`` goes to, in the order they are called."""
        plan = self._plan.get(name)
        if plan is None:
            anys = [h for h in self._ee.listeners(_ANY)
                    if (only := self._only.get(h)) is None or name in only]
            mine = self._ee.listeners(name) if name != _ANY else []
            plan = self._plan[name] = (*mine, *anys)
        return plan

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its name's handlers, then to the catch-all handlers.

        A handler that raises is logged (``bus_handler_failed``) and the rest still run.
        """
        name = event.name
        plan = self._plan.get(name)
        if plan is None:
            plan = self.handlers(name)
        for handler in plan:
            try:
                handler(event)
            except Exception:
                fn = getattr(handler, "func", handler)
                log.exception("bus_handler_failed", handler=getattr(fn, "__qualname__", repr(fn)),
                              event_name=name)

    def _on_error(self, exc: BaseException) -> None:  # pragma: no cover - never emitted
        log.error("bus_error", error=repr(exc))
