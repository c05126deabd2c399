"""The event bus between engines: pyee, wrapped so one bad handler never harms the rest.

Events are the frozen dataclasses of :mod:`switchd.events`. A handler subscribes to
one event name (``call.ended``) or to every event (:meth:`Bus.on_any`). Handlers
run synchronously in publish order, on the event loop's thread; a handler that
raises is logged with the event and the handler's name, and the other handlers
still run (DESIGN §1: a handler exception never kills the loop).
"""

from __future__ import annotations

from collections.abc import Callable
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
        #: Names with at least one handler: publishing an event nobody listens to costs
        #: one set lookup instead of a pyee emit (the media tick and bulk virtual runs
        #: publish hundreds of thousands).
        self._names: set[str] = set()

    def on(self, name: str, handler: Handler) -> None:
        """Call ``handler(event)`` for every event named ``name`` (e.g. ``call.ended``)."""
        self._ee.on(name, self._guard(handler))
        self._names.add(name)

    def on_any(self, handler: Handler) -> None:
        """Call ``handler(event)`` for every event."""
        self._ee.on(_ANY, self._guard(handler))
        self._names.add(_ANY)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its name's handlers, then to the catch-all handlers."""
        names = self._names
        if event.name in names:
            self._ee.emit(event.name, event)
        if _ANY in names:
            self._ee.emit(_ANY, event)

    def _guard(self, handler: Handler) -> Handler:
        def guarded(event: Event) -> None:
            try:
                handler(event)
            except Exception:
                log.exception("bus_handler_failed", handler=getattr(handler, "__qualname__",
                                                                    repr(handler)),
                              event_name=event.name)
        return guarded

    def _on_error(self, exc: BaseException) -> None:  # pragma: no cover - guarded handlers
        log.error("bus_error", error=repr(exc))
