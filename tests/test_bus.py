"""The event bus: order of delivery, catch-all filters, a failing handler harms no other."""

from __future__ import annotations

from switchd.bus import Bus
from switchd.events import CallEnded, CallNew, Direction, Event, LineState
from switchd.lines.state import LineStatus


def _new(call_id: str = "c1") -> CallNew:
    return CallNew(call_id, 1.0, Direction.INBOUND, "100", "200")


def test_name_handlers_run_before_catch_all_handlers_each_in_subscription_order():
    bus, seen = Bus(), []
    bus.on_any(lambda ev: seen.append("any1"))
    bus.on(CallNew.name, lambda ev: seen.append("name1"))
    bus.on_any(lambda ev: seen.append("any2"))
    bus.on(CallNew.name, lambda ev: seen.append("name2"))
    bus.publish(_new())
    assert seen == ["name1", "name2", "any1", "any2"]


def test_a_catch_all_handler_with_only_sees_only_those_events_and_keeps_its_place():
    bus, seen = Bus(), []
    bus.on_any(lambda ev: seen.append(("first", ev.name)))
    bus.on_any(lambda ev: seen.append(("picky", ev.name)), only={CallNew.name})
    bus.on_any(lambda ev: seen.append(("last", ev.name)))
    bus.publish(_new())
    bus.publish(LineState("trunk/1", LineStatus.IDLE, LineStatus.OFFHOOK, 1.0))
    assert seen == [("first", "call.new"), ("picky", "call.new"), ("last", "call.new"),
                    ("first", "line.state"), ("last", "line.state")]


def test_a_handler_subscribed_later_is_called_for_later_events():
    bus, seen = Bus(), []
    bus.on(CallNew.name, seen.append)
    bus.publish(_new("a"))
    bus.on_any(seen.append)
    bus.publish(_new("b"))
    assert [ev.call_id for ev in seen if isinstance(ev, CallNew)] == ["a", "b", "b"]


def test_the_same_function_subscribed_twice_is_called_twice():
    bus, seen = Bus(), []
    bus.on(CallNew.name, seen.append)
    bus.on(CallNew.name, seen.append)
    bus.publish(_new())
    assert len(seen) == 2


def test_a_failing_handler_is_logged_and_the_others_still_run():
    bus, seen = Bus(), []

    def broken(ev: Event) -> None:
        raise RuntimeError("bug")

    bus.on(CallNew.name, broken)
    bus.on(CallNew.name, seen.append)
    bus.on_any(seen.append)
    bus.publish(_new())
    assert len(seen) == 2


def test_an_event_nobody_follows_reaches_no_handler():
    bus, seen = Bus(), []
    bus.on(CallEnded.name, seen.append)
    bus.on_any(seen.append, only={CallEnded.name})
    bus.publish(_new())
    assert seen == [] and bus.handlers(CallNew.name) == ()
