"""The core's side of the IVR: routes to a flow, and Route, Release, Annotate of the calls
the switch holds, in virtual time.

A route ``to: flow:NAME`` announces ``call.routed`` and the switch answers the call
itself; the IVR then rings targets for it (``Route``: the caller hears ringback, and
when nobody answers the call stays with the switch and ``call.route_failed`` says
why), hangs it up (``Release``) and hands the CDR its path and variables
(``Annotate``). Every test ends with nothing left behind.
"""

from __future__ import annotations

import pytest

from switchd.acd.model import RingGroup, RingStrategy
from switchd.bus import Bus
from switchd.core.call import CALL_TRANSITIONS, CallInput, CallState
from switchd.core.engine import CoreError, new_call_id
from switchd.core.inputs import (
    Annotate,
    Answer,
    Dial,
    FarBusy,
    Hangup,
    Incoming,
    Offer,
    OffHook,
    Pickup,
    Release,
    Route,
    Shutdown,
    SwitchAnswer,
    Withdraw,
)
from switchd.core.routing import (
    INBOUND_KINDS,
    ROUTE_KINDS,
    CoreConfig,
    Target,
    TargetKind,
)
from switchd.core.routing import Route as InboundRoute
from switchd.drivers.sim.board import (
    AgentMode,
    BotSettings,
    OutsideSettings,
    SimBoard,
    SimSettings,
)
from switchd.engine import Input
from switchd.events import (
    CallEnded,
    CallRinging,
    CallRouted,
    CallRouteFailed,
    Event,
    HangupCause,
    LineError,
    OfferWithdrawn,
    Role,
    RouteFail,
    ToneStarted,
    ToneStopped,
)
from switchd.lines.state import LineStatus
from switchd.shell import Shell, VirtualClock
from tests.corehelp import CoreRun, GroupedCore, call_snapshot

T0 = 1_764_000_000.0
CALLER = "trunk/1"
RING_S = 20.0
HUNT_S = 5.0
IVR_DNIS = "5000"


#: Ring groups are queues with no waiting: the ACD rings them (tests.corehelp.GroupedCore).
GROUPS = {
    "all": RingGroup("all", RingStrategy.RINGALL, (201, 202)),
    "hunt": RingGroup("hunt", RingStrategy.HUNT, (201, 299, 202, 203), ring_timeout_s=HUNT_S),
}


def _config() -> CoreConfig:
    return CoreConfig(
        trunks=3, extensions=(201, 202, 203, 204), ring_timeout_s=RING_S,
        routes=(InboundRoute(Target(TargetKind.FLOW, "main"), dnis=IVR_DNIS),
                InboundRoute(Target(TargetKind.EXTENSION, "204"))),
    )


class Run(CoreRun):
    """The core driven by hand; bridges kept from ``bridge.changed`` as the media plane would."""

    def __init__(self, blacklist: frozenset[str] = frozenset()) -> None:
        super().__init__(GroupedCore(_config(), GROUPS,
                                     contacts=lambda n: (False, n in blacklist)), T0)

    def ivr_call(self, caller: str = "13900001111") -> str:
        """A caller on trunk/1 routed to the flow: the switch holds it."""
        call_id = new_call_id(self.do(Incoming(caller, IVR_DNIS, trunk=1)))
        assert call_id is not None
        assert self.core.calls[call_id].state is CallState.SWITCH
        return call_id

    def assert_held_by_switch(self, call_id: str) -> None:
        """The call waits in the switch as the IVR left it: caller connected, no tone,
        nothing ringing, no timer."""
        call = self.core.calls[call_id]
        assert call.state is CallState.SWITCH and call.offers == {}
        assert call.route_target is None
        assert self.status(CALLER) is LineStatus.CONNECTED and self.tone(CALLER) is None
        assert all(ln.idle for n, ln in self.core.lines.items() if n != CALLER)
        assert self.core.next_deadline() is None


def of(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def refused(events: list[Event]) -> bool:
    return bool(events) and all(isinstance(e, LineError) for e in events)


def rung(events: list[Event]) -> list[str]:
    return [e.line for e in of(events, CallRinging)]


# ------------------------------------------------------------------ targets


@pytest.mark.parametrize("text", ["flow:main", "flow:after-hours.v2", "number:84001234",
                                  "number:*21#", "number:0"])
def test_flow_and_number_targets_print_back_as_written(text):
    assert str(Target.parse(text)) == text


@pytest.mark.parametrize("text", ["flow:", "flow:a b", "number:", "number:12a",
                                  "number:" + "1" * 33, "queue:", "queue:a b", "agent:x"])
def test_bad_flow_and_number_targets_are_refused_naming_the_forms(text):
    with pytest.raises(ValueError) as info:
        Target.parse(text)
    if text.startswith("agent"):
        for form in ("extension:<number>", "group:<name>", "flow:<name>", "queue:<name>",
                     "number:<digits>", "busy"):
            assert form in str(info.value)


def test_a_number_is_a_route_target_and_a_flow_an_inbound_one():
    assert TargetKind.NUMBER in ROUTE_KINDS and TargetKind.NUMBER not in INBOUND_KINDS
    assert TargetKind.FLOW in INBOUND_KINDS and TargetKind.FLOW not in ROUTE_KINDS


# --------------------------------------------------------------- flow routes


def test_a_flow_route_announces_call_routed_then_the_switch_answers_the_call():
    r = Run()
    events = r.do(Incoming("13900001111", IVR_DNIS, trunk=1, vip=True))
    names = [e.name for e in events]
    assert names == ["call.new", "line.state", "call.routed", "line.state",
                     "call.switch_answered"]
    [routed] = of(events, CallRouted)
    call_id = routed.call_id
    assert (routed.target, routed.line, routed.caller, routed.dnis, routed.trunk, routed.vip) \
        == ("flow:main", CALLER, "13900001111", IVR_DNIS, 1, True)
    assert r.state(call_id) is CallState.SWITCH
    assert r.status(CALLER) is LineStatus.CONNECTED
    assert rung(events) == [] and of(events, ToneStarted) == []
    r.advance(12)
    r.do(Hangup(CALLER))
    r.assert_clean()
    [cdr] = r.cdrs
    # The switch answered, no person did: NO ANSWER with normal clearing, nothing billed.
    assert (cdr.disposition, cdr.hangup_cause, cdr.hangup_by) == (
        "NO ANSWER", "NORMAL_CLEARING", "caller")
    assert (cdr.answer, cdr.billsec, cdr.duration, cdr.wait_s) == (None, 0, 12, 12.0)


def test_a_blacklisted_caller_to_a_flow_hears_busy_and_is_never_routed():
    r = Run(blacklist=frozenset({"666"}))
    events = r.do(Incoming("666", IVR_DNIS, trunk=1))
    assert of(events, CallRouted) == []
    assert r.status(CALLER) is LineStatus.TONE and r.tone(CALLER) == "busy"
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert (r.cdrs[0].disposition, r.cdrs[0].blocked_reason) == ("BUSY", "blacklist")


# -------------------------------------------------------------------- Route


def test_route_to_an_idle_extension_rings_it_with_ringback_and_the_answer_connects():
    r = Run()
    call_id = r.ivr_call()
    r.advance(10)
    events = r.do(Route(call_id, Target.parse("extension:202")))
    [ringing] = of(events, CallRinging)
    assert (ringing.line, ringing.callee) == ("ext/202", IVR_DNIS)
    assert [(e.line, e.tone) for e in of(events, ToneStarted)] == [(CALLER, "ringback")]
    assert r.status("ext/202") is LineStatus.ALERTING
    assert r.status(CALLER) is LineStatus.RINGBACK
    assert r.state(call_id) is CallState.SWITCH_ROUTING
    assert r.core.calls[call_id].route_target == "extension:202"
    r.advance(4)
    events = r.do(Answer("ext/202"))
    assert [e.name for e in events if e.name.startswith("call.")] == [
        "call.answered", "call.bridged"]
    assert r.state(call_id) is CallState.ANSWERED
    assert r.status(CALLER) is LineStatus.CONNECTED and r.tone(CALLER) is None
    assert list(r.bridges.values()) == [{CALLER: Role.PARTY, "ext/202": Role.PARTY}]
    assert r.core.calls[call_id].route_target is None
    r.advance(30)
    r.do(Hangup("ext/202"))
    r.assert_clean()
    [cdr] = r.cdrs
    assert (cdr.disposition, cdr.extension, cdr.agent, cdr.hangup_by) == (
        "ANSWERED", 202, None, "callee")
    # answer and wait_s are the person's, billsec counts from the person's answer.
    assert (cdr.answer, cdr.wait_s, cdr.billsec, cdr.duration) == (T0 + 14, 14.0, 30, 44)
    assert (cdr.hangup_cause, cdr.dst) == ("NORMAL_CLEARING", IVR_DNIS)


def test_route_rings_for_its_own_timeout_then_fails_no_answer():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("extension:202"), timeout_s=7.0))
    assert r.advance(6.9) == []
    events = r.advance(0.1)
    assert [(e.line, e.reason) for e in of(events, OfferWithdrawn)] == [("ext/202", "timeout")]
    [failed] = of(events, CallRouteFailed)
    assert (failed.target, failed.reason) == ("extension:202", RouteFail.NO_ANSWER)
    assert [e.line for e in of(events, ToneStopped)] == [CALLER]
    r.assert_held_by_switch(call_id)
    assert of(events, CallEnded) == []


@pytest.mark.parametrize(("target", "reason"), [
    ("extension:202", RouteFail.BUSY),        # off-hook below
    ("extension:299", RouteFail.UNALLOCATED),
    ("group:nosuch", RouteFail.UNALLOCATED),
])
def test_route_to_what_cannot_ring_fails_at_once_and_the_caller_stays(target, reason):
    r = Run()
    call_id = r.ivr_call()
    r.do(OffHook("ext/202"))
    events = r.do(Route(call_id, Target.parse(target)))
    [failed] = of(events, CallRouteFailed)
    assert (failed.target, failed.reason) == (target, reason)
    assert of(events, ToneStarted) == [] and rung(events) == []
    assert r.state(call_id) is CallState.SWITCH
    assert r.status(CALLER) is LineStatus.CONNECTED and r.tone(CALLER) is None
    assert r.core.calls[call_id].route_target is None
    r.do(Hangup("ext/202"))
    r.assert_held_by_switch(call_id)
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_ring_group_with_every_member_busy_fails_busy():
    r = Run()
    call_id = r.ivr_call()
    r.do(OffHook("ext/201"))
    r.do(OffHook("ext/202"))
    [failed] = of(r.do(Route(call_id, Target.parse("group:all"))), CallRouteFailed)
    assert failed.reason is RouteFail.BUSY
    for line in ("ext/201", "ext/202", CALLER):
        r.do(Hangup(line))
    r.assert_clean()


def test_a_hunt_group_rings_in_turn_then_fails_no_answer_after_the_last():
    r = Run()
    call_id = r.ivr_call()
    events = r.do(Route(call_id, Target.parse("group:hunt")))
    assert rung(events) == ["ext/201"] and r.tone(CALLER) == "ringback"
    # 299 has no line and is skipped; each member rings the group's 5 s.
    assert rung(r.advance(HUNT_S)) == ["ext/202"]
    assert r.state(call_id) is CallState.SWITCH_ROUTING
    assert r.status(CALLER) is LineStatus.RINGBACK
    assert rung(r.advance(HUNT_S)) == ["ext/203"]
    events = r.advance(HUNT_S)
    [failed] = of(events, CallRouteFailed)
    assert (failed.target, failed.reason) == ("group:hunt", RouteFail.NO_ANSWER)
    assert [e.line for e in of(events, ToneStopped)] == [CALLER]
    r.assert_held_by_switch(call_id)
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_route_timeout_is_the_time_per_hunt_member():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("group:hunt"), timeout_s=2.0))
    assert rung(r.advance(2.0)) == ["ext/202"]
    r.advance(2.0)
    assert rung(r.do(Answer("ext/203"))) == []
    assert r.state(call_id) is CallState.ANSWERED and r.core.calls[call_id].extension == 203
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_hunt_member_busy_when_its_turn_comes_is_skipped():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("group:hunt")))
    r.do(OffHook("ext/202"))
    assert rung(r.advance(HUNT_S)) == ["ext/203"]
    r.do(Hangup("ext/202"))
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_ringall_declined_by_every_phone_fails_declined():
    r = Run()
    call_id = r.ivr_call()
    assert rung(r.do(Route(call_id, Target.parse("group:all")))) == ["ext/201", "ext/202"]
    events = r.do(Hangup("ext/201"))
    assert of(events, CallRouteFailed) == [] and r.tone(CALLER) == "ringback"
    events = r.do(Hangup("ext/202"))
    [failed] = of(events, CallRouteFailed)
    assert (failed.target, failed.reason) == ("group:all", RouteFail.DECLINED)
    r.assert_held_by_switch(call_id)
    r.do(Release(call_id))
    r.assert_clean()


def test_ringall_the_first_answer_takes_the_call():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("group:all")))
    events = r.do(Answer("ext/202"))
    assert [(e.line, e.reason) for e in of(events, OfferWithdrawn)] == [
        ("ext/201", "taken_elsewhere")]
    assert r.state(call_id) is CallState.ANSWERED
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert (r.cdrs[0].extension, r.cdrs[0].hangup_by) == (202, "caller")


def test_after_a_failed_route_the_switch_may_route_again():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("extension:201"), timeout_s=3.0))
    r.advance(3.0)
    r.do(Route(call_id, Target.parse("extension:202")))
    r.do(Answer("ext/202"))
    r.do(Hangup("ext/202"))
    r.assert_clean()
    assert r.cdrs[0].extension == 202


def test_route_to_a_number_rings_the_first_idle_trunk_dialling_that_number():
    r = Run()
    call_id = r.ivr_call()
    events = r.do(Route(call_id, Target.parse("number:84001234")))
    [ringing] = of(events, CallRinging)
    # The board dials what call.ringing names.
    assert (ringing.line, ringing.callee) == ("trunk/2", "84001234")
    assert r.status(CALLER) is LineStatus.RINGBACK
    r.advance(3)
    r.do(Answer("trunk/2"))
    assert list(r.bridges.values()) == [{CALLER: Role.PARTY, "trunk/2": Role.PARTY}]
    r.advance(20)
    r.do(Hangup("trunk/2"))
    r.assert_clean()
    [cdr] = r.cdrs
    assert (cdr.disposition, cdr.extension, cdr.answer, cdr.billsec) == (
        "ANSWERED", None, T0 + 3, 20)


def test_route_to_a_number_with_no_idle_trunk_fails_congestion():
    r = Run()
    call_id = r.ivr_call()
    r.do(Incoming("1", "204", trunk=2))
    r.do(Incoming("2", "204", trunk=3))
    events = r.do(Route(call_id, Target.parse("number:84001234")))
    [failed] = of(events, CallRouteFailed)
    assert failed.reason is RouteFail.CONGESTION
    assert r.status(CALLER) is LineStatus.CONNECTED and r.tone(CALLER) is None
    r.do(Shutdown())
    r.assert_clean()


def test_a_busy_outside_number_fails_the_route_busy():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("number:84001234")))
    events = r.do(FarBusy("trunk/2"))
    assert [(e.line, e.reason) for e in of(events, OfferWithdrawn)] == [("trunk/2", "withdrawn")]
    [failed] = of(events, CallRouteFailed)
    assert (failed.target, failed.reason) == ("number:84001234", RouteFail.BUSY)
    r.assert_held_by_switch(call_id)
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_caller_hanging_up_while_a_route_rings_withdraws_the_offers():
    r = Run()
    call_id = r.ivr_call()
    r.advance(8)
    r.do(Route(call_id, Target.parse("group:all")))
    r.advance(5)
    events = r.do(Hangup(CALLER))
    assert sorted((e.line, e.reason) for e in of(events, OfferWithdrawn)) == [
        ("ext/201", "caller_gone"), ("ext/202", "caller_gone")]
    assert of(events, CallRouteFailed) == []
    r.assert_clean()
    [cdr] = r.cdrs
    # As any call the switch answered and no person did (DESIGN: not Asterisk's ANSWERED).
    assert (cdr.disposition, cdr.hangup_cause, cdr.hangup_by, cdr.answer, cdr.billsec) == (
        "NO ANSWER", "NORMAL_CLEARING", "caller", None, 0)
    assert (cdr.duration, cdr.wait_s, cdr.extension) == (13, 13.0, None)


def test_a_phone_rung_by_a_route_can_be_picked_up_from_another():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("extension:201")))
    r.do(Pickup("ext/203", call_id))
    assert r.state(call_id) is CallState.ANSWERED
    assert r.status(CALLER) is LineStatus.CONNECTED and r.tone(CALLER) is None
    assert r.core.calls[call_id].route_target is None
    r.do(Hangup("ext/203"))
    r.assert_clean()
    assert r.cdrs[0].extension == 203


def test_route_is_refused_unless_the_switch_holds_the_call_with_nothing_ringing():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("extension:201")))
    before = (r.state(call_id), dict(r.core.calls[call_id].offers))
    events = r.do(Route(call_id, Target.parse("extension:202")))
    assert refused(events) and "still ring" in events[0].reason
    assert (r.state(call_id), dict(r.core.calls[call_id].offers)) == before
    # The ACD cannot offer the call while the switch's own route rings, either.
    assert refused(r.do(Offer(call_id, "ext/203", 10.0)))
    r.do(Hangup("ext/201"))  # declined: back to the switch
    r.do(Offer(call_id, "ext/203", 10.0))
    events = r.do(Route(call_id, Target.parse("extension:202")))
    assert refused(events) and "ext/203" in events[0].reason
    r.do(Answer("ext/203"))
    events = r.do(Route(call_id, Target.parse("extension:202")))
    assert refused(events) and "answered" in events[0].reason
    r.do(Hangup(CALLER))

    plain = new_call_id(r.do(Incoming("1", "9999", trunk=1)))  # rings ext/204
    assert plain is not None
    assert refused(r.do(Route(plain, Target.parse("extension:202"))))
    r.do(Hangup(CALLER))
    r.assert_clean()


# ------------------------------------------------------ the switch_routing state

_SW, _SR = CallState.SWITCH, CallState.SWITCH_ROUTING


def test_a_ringing_route_is_a_state_of_the_call_table_not_a_flag():
    # DESIGN §1: every state machine is a table keyed by (state, input).
    assert CALL_TRANSITIONS[(_SW, CallInput.ROUTE)] is _SR
    assert {s for (s, _), nxt in CALL_TRANSITIONS.items() if nxt is _SR} == {_SW, _SR}
    leaves = {i: nxt for (s, i), nxt in CALL_TRANSITIONS.items() if s is _SR}
    assert leaves == {CallInput.RING: _SR,  # the extension or number the route rings
                      CallInput.OFFER: _SR,  # a member of the ring group it routes to
                      CallInput.ANSWER: CallState.ANSWERED,
                      CallInput.ROUTE_FAILED: _SW,
                      CallInput.END: CallState.ENDED}
    # A second Route is no row: refused while a route rings.
    assert (_SR, CallInput.ROUTE) not in CALL_TRANSITIONS
    assert _SR.value == "switch_routing"  # CALLS state=switch_routing


def test_a_route_moves_switch_to_switch_routing_and_back_to_switch_when_nobody_answers():
    r = Run()
    call_id = r.ivr_call()
    call = r.core.calls[call_id]
    assert call.can(CallInput.ROUTE) and call.can(CallInput.OFFER)
    r.do(Route(call_id, Target.parse("group:all"), timeout_s=5.0))
    assert r.state(call_id) is _SR
    # The group's members are offered (by the ACD); another Route is refused.
    assert not call.can(CallInput.ROUTE) and call.can(CallInput.OFFER)
    r.do(Hangup("ext/201"))  # one phone declines, the other still rings
    assert r.state(call_id) is _SR and r.tone(CALLER) == "ringback"
    [failed] = of(r.advance(5.0), CallRouteFailed)
    assert failed.reason is RouteFail.NO_ANSWER
    r.assert_held_by_switch(call_id)
    assert call.can(CallInput.ROUTE) and call.can(CallInput.OFFER)
    r.do(Release(call_id))
    r.assert_clean()


def test_a_route_that_cannot_ring_leaves_the_call_in_switch():
    r = Run()
    call_id = r.ivr_call()
    [failed] = of(r.do(Route(call_id, Target.parse("extension:299"))), CallRouteFailed)
    assert failed.reason is RouteFail.UNALLOCATED
    r.assert_held_by_switch(call_id)
    r.do(Release(call_id))
    r.assert_clean()


@pytest.mark.parametrize("how", ["answer", "pickup", "hunt", "trunk"])
def test_an_answered_route_moves_switch_routing_to_answered(how):
    r = Run()
    call_id = r.ivr_call()
    target = {"hunt": "group:hunt", "trunk": "number:84001234"}.get(how, "extension:201")
    r.do(Route(call_id, Target.parse(target)))
    assert r.state(call_id) is _SR
    if how == "hunt":
        r.advance(HUNT_S)  # on to the next member: still routing
        assert r.state(call_id) is _SR and r.status("ext/202") is LineStatus.ALERTING
        r.do(Answer("ext/202"))
    elif how == "trunk":
        r.do(Answer("trunk/2"))
    elif how == "pickup":
        r.do(Pickup("ext/203", call_id))
    else:
        r.do(Answer("ext/201"))
    call = r.core.calls[call_id]
    assert call.state is CallState.ANSWERED and call.route_target is None
    assert r.status(CALLER) is LineStatus.CONNECTED and r.tone(CALLER) is None
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_offer_and_route_while_a_route_rings_are_refused_by_the_table_and_change_nothing():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("extension:201")))
    call = r.core.calls[call_id]
    before = call_snapshot(call)
    events = r.do(Offer(call_id, "ext/203", 10.0))
    assert refused(events)
    assert "switch_routing" in events[0].reason and "extension:201" in events[0].reason
    events = r.do(Route(call_id, Target.parse("extension:202")))
    assert refused(events) and "switch_routing" in events[0].reason
    assert call_snapshot(call) == before and r.status("ext/203") is LineStatus.IDLE
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_what_a_route_rings_for_is_data_and_never_decides_what_offer_or_route_do():
    r = Run()
    call_id = r.ivr_call()
    call = r.core.calls[call_id]
    # Stale text in switch: an Offer is still taken.
    call.route_target = "extension:999"
    assert not refused(r.do(Offer(call_id, "ext/203", 10.0)))
    r.do(Withdraw(call_id, "ext/203"))
    call.route_target = None
    r.do(Route(call_id, Target.parse("extension:201"), timeout_s=3.0))
    # No text while a route rings: the state still refuses an Offer and a Route.
    call.route_target = None
    assert refused(r.do(Offer(call_id, "ext/203", 10.0)))
    assert refused(r.do(Route(call_id, Target.parse("extension:202"))))
    r.advance(3.0)
    r.assert_held_by_switch(call_id)
    r.do(Release(call_id))
    r.assert_clean()


@pytest.mark.parametrize(("target", "timeout"), [
    (Target(TargetKind.FLOW, "main"), None),
    (Target(TargetKind.BUSY), None),
    (Target(TargetKind.NUMBER, "12ab"), None),
    (Target(TargetKind.EXTENSION, "202"), 0.0),
    (Target(TargetKind.EXTENSION, "202"), float("inf")),
])
def test_route_with_a_bad_target_or_timeout_is_bad_arg_and_changes_nothing(target, timeout):
    r = Run()
    call_id = r.ivr_call()
    with pytest.raises(CoreError) as info:
        r.do(Route(call_id, target, timeout))
    assert info.value.code == "bad_arg"
    r.assert_held_by_switch(call_id)


def test_route_release_of_an_unknown_call_is_not_found():
    r = Run()
    for item in (Route("nope", Target.parse("extension:201")), Release("nope")):
        with pytest.raises(CoreError) as info:
            r.do(item)
        assert info.value.code == "not_found"


# ------------------------------------------------------------------ Release


def test_release_ends_the_call_as_the_system_with_normal_clearing():
    r = Run()
    call_id = r.ivr_call()
    r.advance(6)
    events = r.do(Release(call_id))
    [ended] = of(events, CallEnded)
    assert (ended.hangup_by, ended.hangup_cause, ended.q850) == (
        "system", HangupCause.NORMAL_CLEARING, 16)
    assert [e.state for e in events if e.name == "line.state"] == [LineStatus.IDLE]
    r.assert_clean()
    assert (r.cdrs[0].disposition, r.cdrs[0].duration) == ("NO ANSWER", 6)


def test_release_takes_the_cause_given_and_frees_a_ringing_route():
    r = Run()
    call_id = r.ivr_call()
    r.do(Route(call_id, Target.parse("group:all")))
    events = r.do(Release(call_id, HangupCause.CALL_REJECTED))
    assert sorted(e.line for e in of(events, OfferWithdrawn)) == ["ext/201", "ext/202"]
    r.assert_clean()
    assert (r.cdrs[0].hangup_by, r.cdrs[0].hangup_cause) == ("system", "CALL_REJECTED")


@pytest.mark.parametrize("how", ["ringing", "answered", "tone", "dialled"])
def test_release_ends_a_call_in_any_state(how):
    r = Run()
    if how == "dialled":
        call_id = new_call_id(r.do(Dial("ext/201", "202")))
    else:
        call_id = new_call_id(r.do(Incoming("1", "9999" if how != "tone" else "1",
                                            trunk=1)))
        if how == "answered":
            r.do(Answer("ext/204"))
    assert call_id is not None
    if how == "tone":
        r.do(OffHook("ext/204"))
        r.do(Release(call_id))
        r.do(Hangup("ext/204"))
    else:
        r.do(Release(call_id))
    r.assert_clean()
    [cdr] = r.cdrs
    assert (cdr.hangup_by, cdr.hangup_cause) == ("system", "NORMAL_CLEARING")
    assert (cdr.disposition == "ANSWERED") == (how == "answered")


# ----------------------------------------------------------------- Annotate


def test_annotate_puts_the_ivr_path_and_vars_into_the_cdr():
    r = Run()
    call_id = r.ivr_call()
    assert r.do(Annotate(call_id, "main:welcome", None)) == []
    assert r.do(Annotate(call_id, "main:welcome>menu", '{"lang": "en"}')) == []
    assert r.do(Annotate(call_id, None, None)) == []  # None keeps what is there
    r.do(Route(call_id, Target.parse("extension:201")))
    r.do(Answer("ext/201"))
    r.do(Hangup(CALLER))
    r.assert_clean()
    [cdr] = r.cdrs
    assert (cdr.ivr_path, cdr.ivr_vars) == ("main:welcome>menu", '{"lang": "en"}')


def test_a_call_never_annotated_has_no_ivr_fields():
    r = Run()
    r.do(Release(r.ivr_call()))
    assert (r.cdrs[0].ivr_path, r.cdrs[0].ivr_vars) == (None, None)


def test_annotate_of_an_unknown_or_ended_call_is_ignored():
    r = Run()
    call_id = r.ivr_call()
    r.do(Hangup(CALLER))
    assert r.do(Annotate(call_id, "main:x", "{}")) == []
    assert r.do(Annotate("never", "main:x", "{}")) == []
    r.assert_clean()


def test_switch_answer_of_a_call_the_flow_route_answered_is_refused():
    r = Run()
    call_id = r.ivr_call()
    assert refused(r.do(SwitchAnswer(call_id)))
    r.do(Release(call_id))
    r.assert_clean()


# -------------------------------------------------------------- the sim board


def test_the_simulated_board_dials_the_routed_number():
    cfg = _config()
    core = GroupedCore(cfg, GROUPS)
    board = SimBoard(SimSettings(
        bots=BotSettings(mode=AgentMode.MANUAL), caller_patience_s=1e9,
        outside=OutsideSettings(busy_numbers=frozenset({"5550001"}), answer_after_s=3.0,
                                talk_s=(10.0, 10.0))), cfg.extensions)
    seen: list[Event] = []
    bus = Bus()
    bus.on_any(seen.append)
    clock = VirtualClock(T0)
    shell = Shell(bus, clock, log_events=False, refusals=(CoreError,))
    shell.add(core, takes=(Input,))
    shell.add(board, follows=True)
    board.start(T0)

    [call_id] = [e.call_id for e in shell.submit(Incoming("1", IVR_DNIS, trunk=1))
                 if isinstance(e, CallRouted)]
    shell.submit(Route(call_id, Target.parse("number:5550001")))
    shell.advance(1.0)
    [failed] = [e for e in seen if isinstance(e, CallRouteFailed)]
    assert failed.reason is RouteFail.BUSY  # the board found the number busy
    shell.submit(Route(call_id, Target.parse("number:5550002")))
    shell.advance(3.0)
    assert core.calls[call_id].state is CallState.ANSWERED
    shell.advance(10.0)  # the far end hangs up after its talk time
    [ended] = [e for e in seen if isinstance(e, CallEnded)]
    assert (ended.cdr.disposition, ended.hangup_by) == ("ANSWERED", "callee")
