"""Small helpers shared by the call-core tests (engine protocol: ``core.handle(now, input)``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from switchd.acd.engine import Acd
from switchd.acd.model import AcdSettings, RingGroup
from switchd.core.call import Call
from switchd.core.engine import SwitchCore
from switchd.core.routing import CoreConfig
from switchd.events import Event

__all__ = ["NEW_EVENT_NAMES", "GroupedCore", "call_snapshot", "without_new"]

#: Events the one-engine core emits that the older core did not: tests that pin an exact
#: event order written for the older core filter these out (and check them separately).
NEW_EVENT_NAMES = frozenset({"bridge.changed", "offer.withdrawn"})


def without_new(events: Iterable[Event]) -> list[Event]:
    """``events`` without ``bridge.changed`` and ``offer.withdrawn``."""
    return [e for e in events if e.name not in NEW_EVENT_NAMES]


def call_snapshot(call: Call) -> tuple[object, ...]:
    """Everything the core tracks about ``call``, as plain comparable values.

    (Offers and bridges are compared by value, not identity, so "nothing changed"
    checks see a moved deadline or a changed role.)
    """
    return (
        call.state, call.anchor, call.origin_line, tuple(call.legs),
        tuple((b.bridge_id, tuple(b.members.items()), tuple(b.whisper_to.items()))
              for b in call.bridges.values()),
        tuple((o.line, o.purpose, o.deadline, o.routed, o.mode, o.agent, o.number)
              for o in call.offers.values()),
        tuple(call.monitors.items()), call.answer_time, call.failure,
        call.cause, call.hangup_by, call.transfer_from, call.consulter, call.held_party,
        call.consulted, call.extension, call.callee, call.route_target, call.ivr_path,
        call.ivr_vars,
    )


class GroupedCore:
    """The call core with the ACD ringing its ring groups, driven like a bare core.

    Ring groups are queues with no waiting that the ACD rings (``call.routed
    target=group:NAME``, then ``Offer``/``Unrouted``). Core tests that route to groups
    drive this pair through one ``handle(now, input)``, dispatched in the shell's
    order (events first in, first out; the ACD's inputs to the core as they come).
    The ACD's own events (``queue.*``, ``agent.state``, ``queue.log``) are left out of
    what ``handle`` returns: these tests read the call core's. Everything else
    (``lines``, ``calls``, ``call_of_line`` …) is the core's.
    """

    def __init__(self, config: CoreConfig, groups: Mapping[str, RingGroup] | None = None,
                 **kw: Any) -> None:
        self.core = SwitchCore(config, **kw)
        self.acd = Acd(AcdSettings(groups=self._on_board(groups),
                                   ring_timeout_s=config.ring_timeout_s))

    def _on_board(self, groups: Mapping[str, RingGroup] | None) -> dict[str, RingGroup]:
        # The config refuses a member with no line on the board; tests that list one
        # (to show it is skipped) get the group the config would have accepted.
        return {name: replace(g, members=tuple(m for m in g.members
                                               if f"ext/{m}" in self.core.lines))
                for name, g in (groups or {}).items()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)

    def reconfigure(self, config: CoreConfig,
                    groups: Mapping[str, RingGroup] | None = None) -> None:
        """New core settings and (when given) new ring groups."""
        self.core.reconfigure(config)
        if groups is not None:
            self.acd.reconfigure(AcdSettings(groups=self._on_board(groups),
                                             ring_timeout_s=config.ring_timeout_s))

    def handle(self, now: float, item: Any) -> list[Event]:
        """Feed a core input; returns the core's events, the ACD's reactions included."""
        return self._drain(now, deque(self.core.handle(now, item)))

    def next_deadline(self) -> float | None:
        ds = [d for d in (self.core.next_deadline(), self.acd.next_deadline()) if d is not None]
        return min(ds) if ds else None

    def handle_timer(self, now: float) -> list[Event]:
        out = self._drain(now, deque(self.core.handle_timer(now)))
        return out + self._drain(now, deque(self.acd.handle_timer(now)))

    def _drain(self, now: float, queue: deque[Any]) -> list[Event]:
        out: list[Event] = []
        while queue:
            x = queue.popleft()
            if isinstance(x, Event):
                if x.name.startswith(("queue.", "agent.")):
                    continue
                out.append(x)
                if isinstance(x, Acd.FOLLOWS):
                    queue.extend(self.acd.handle(now, x))
            else:
                queue.extend(self.core.handle(now, x))
        return out
