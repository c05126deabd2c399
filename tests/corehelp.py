"""Small helpers shared by the call-core tests (engine protocol: ``core.handle(now, input)``)."""

from __future__ import annotations

from collections.abc import Iterable

from switchd.core.call import Call
from switchd.events import Event

__all__ = ["NEW_EVENT_NAMES", "call_snapshot", "without_new"]

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
        tuple(call.monitors.items()), tuple(call.hunt), call.answer_time, call.failure,
        call.cause, call.hangup_by, call.transfer_from, call.consulter, call.held_party,
        call.consulted, call.extension, call.callee, call.route_target, call.ivr_path,
        call.ivr_vars,
    )
