"""The core's side of the ACD: queue routes, Redirect, HoldMusic, the ACD's CDR facts.

A route ``to: queue:NAME`` announces ``call.routed`` and the switch answers the caller
itself, as for a flow. ``Redirect`` hands a switch-held call to a flow or a queue (the
IVR's ``queue`` node, a queue's overflow), or, with ``line``, sends an agent's
answered caller back to the switch (a blind transfer into a queue). ``HoldMusic``
plays music on hold to a switch-held caller; ``Annotate`` fills the CDR's ``agent``,
``queue`` and ``wait_s``; ``Release(USER_BUSY)`` is a queue refusing a caller. Driven
by hand in virtual time; every test ends with nothing left behind.
"""

from __future__ import annotations

import pytest

from switchd.core.call import CALL_TRANSITIONS, CallInput, CallState
from switchd.core.engine import CoreError, SwitchCore, new_call_id
from switchd.core.inputs import (
    Annotate,
    Answer,
    Consult,
    Hangup,
    Hold,
    HoldMusic,
    Incoming,
    Monitor,
    Offer,
    Redirect,
    Release,
    Route,
    Withdraw,
)
from switchd.core.routing import APP_KINDS, CoreConfig, Target, TargetKind
from switchd.core.routing import Route as InboundRoute
from switchd.events import (
    CallAnswered,
    CallEnded,
    CallRouted,
    CallTransferred,
    Event,
    HangupCause,
    LineError,
    LineState,
    OfferWithdrawn,
    Role,
    Tone,
    ToneStarted,
    ToneStopped,
)
from switchd.lines.state import LineStatus
from tests.corehelp import CoreRun, call_snapshot

T0 = 1_764_000_000.0
CALLER = "trunk/1"
AGENT = "ext/201"
OTHER = "ext/202"
SUPER = "ext/203"
QUEUE_DNIS = "6000"
FLOW_DNIS = "5000"
DIRECT_DNIS = "8200"  # rings ext/201 directly (a plain answered call to redirect)

SALES = Target(TargetKind.QUEUE, "sales")
SUPPORT = Target(TargetKind.QUEUE, "support")
MAIN = Target(TargetKind.FLOW, "main")


def _config() -> CoreConfig:
    return CoreConfig(
        trunks=2, extensions=(201, 202, 203, 204), ring_timeout_s=20.0,
        routes=(InboundRoute(SALES, dnis=QUEUE_DNIS),
                InboundRoute(MAIN, dnis=FLOW_DNIS),
                InboundRoute(Target(TargetKind.EXTENSION, "201"), dnis=DIRECT_DNIS),
                InboundRoute(Target(TargetKind.BUSY))),
    )


class Run(CoreRun):
    """The core driven by hand; bridges kept from ``bridge.changed`` as the media plane would."""

    def __init__(self) -> None:
        super().__init__(SwitchCore(_config()), T0)

    def queue_call(self, caller: str = "13900001111", vip: bool = False) -> str:
        """A caller on trunk/1 routed to queue sales: the switch holds it."""
        call_id = new_call_id(self.do(Incoming(caller, QUEUE_DNIS, trunk=1, vip=vip)))
        assert call_id is not None
        assert self.state(call_id) is CallState.SWITCH
        return call_id

    def agent_call(self) -> str:
        """A queue caller the ACD offered to ext/201, who answered."""
        call_id = self.queue_call()
        self.do(Offer(call_id, AGENT, 15.0))
        self.do(Answer(AGENT))
        assert self.state(call_id) is CallState.ANSWERED
        return call_id

    def assert_caller_alone_in_switch(self, call_id: str) -> None:
        """The caller waits in the switch, connected, alone in the call's one bridge."""
        call = self.core.calls[call_id]
        assert call.state is CallState.SWITCH and call.offers == {}
        assert self.status(CALLER) is LineStatus.CONNECTED
        assert list(self.bridges.values()) == [{CALLER: Role.PARTY}]
        assert list(call.legs) == [CALLER] and call.anchor == CALLER


def of(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def refused(events: list[Event]) -> bool:
    return bool(events) and all(isinstance(e, LineError) for e in events)


# ------------------------------------------------------------------ queue routes


def test_queue_is_an_application_kind_like_flow():
    assert APP_KINDS == {TargetKind.FLOW, TargetKind.QUEUE, TargetKind.VOICEMAIL}
    assert str(Target.parse("queue:sales")) == "queue:sales"


def test_a_queue_route_announces_call_routed_then_the_switch_answers_the_call():
    r = Run()
    events = r.do(Incoming("13900001111", QUEUE_DNIS, trunk=1, vip=True))
    assert [e.name for e in events] == ["call.new", "line.state", "call.routed", "line.state",
                                        "call.switch_answered"]
    [routed] = of(events, CallRouted)
    assert (routed.target, routed.line, routed.caller, routed.dnis, routed.trunk, routed.vip,
            routed.priority) == ("queue:sales", CALLER, "13900001111", QUEUE_DNIS, 1, True, 0)
    call_id = routed.call_id
    assert r.state(call_id) is CallState.SWITCH
    assert r.status(CALLER) is LineStatus.CONNECTED and r.tone(CALLER) is None
    assert of(events, ToneStarted) == [] and r.core.next_deadline() is None
    r.advance(40)
    r.do(Hangup(CALLER))
    r.assert_clean()
    [cdr] = r.cdrs
    # Nobody answered: an abandoned queue call is never ANSWERED.
    assert (cdr.disposition, cdr.hangup_by, cdr.answer, cdr.billsec, cdr.wait_s) == (
        "NO ANSWER", "caller", None, 0, 40.0)
    assert (cdr.agent, cdr.queue) == (None, None)


# ---------------------------------------------------------------- Redirect


@pytest.mark.parametrize("target", [SUPPORT, MAIN])
def test_redirect_of_a_switch_held_call_announces_call_routed_with_its_priority(target):
    r = Run()
    call_id = r.queue_call(vip=True)
    r.advance(3)
    before = call_snapshot(r.core.calls[call_id])
    events = r.do(Redirect(call_id, target, priority=5))
    # Only the announcement: the caller stays where it is, nothing rings, no timer.
    [routed] = events
    assert isinstance(routed, CallRouted)
    assert (routed.call_id, routed.time, routed.target, routed.priority) == (
        call_id, T0 + 3, str(target), 5)
    assert (routed.line, routed.caller, routed.dnis, routed.trunk, routed.vip) == (
        CALLER, "13900001111", QUEUE_DNIS, 1, True)
    assert call_snapshot(r.core.calls[call_id]) == before
    assert r.core.next_deadline() is None
    r.do(Release(call_id))
    r.assert_clean()


def test_redirect_priority_defaults_to_zero():
    r = Run()
    call_id = r.queue_call()
    [routed] = r.do(Redirect(call_id, SUPPORT))
    assert routed.priority == 0
    r.do(Release(call_id))
    r.assert_clean()


def test_redirect_is_refused_while_an_offer_rings_and_changes_nothing():
    r = Run()
    call_id = r.queue_call()
    r.do(Offer(call_id, AGENT, 15.0))
    before = call_snapshot(r.core.calls[call_id])
    events = r.do(Redirect(call_id, SUPPORT))
    assert refused(events)
    [err] = events
    assert (err.line, err.action, err.call_id) == (CALLER, "redirect", call_id)
    assert AGENT in err.reason and "switch" in err.reason
    assert call_snapshot(r.core.calls[call_id]) == before
    assert r.status(AGENT) is LineStatus.ALERTING
    # Once the offer is withdrawn the same Redirect is taken.
    r.do(Withdraw(call_id, AGENT))
    assert [e.target for e in of(r.do(Redirect(call_id, SUPPORT)), CallRouted)] == [
        "queue:support"]
    r.do(Release(call_id))
    r.assert_clean()


@pytest.mark.parametrize("how", ["ringing", "switch_routing", "answered", "tone"])
def test_redirect_without_a_line_is_refused_unless_the_switch_holds_the_call(how):
    r = Run()
    if how == "ringing":
        call_id = new_call_id(r.do(Incoming("1", DIRECT_DNIS, trunk=1)))
    elif how == "tone":
        call_id = new_call_id(r.do(Incoming("1", "9999", trunk=1)))  # routed to busy
    else:
        call_id = r.queue_call()
        if how == "switch_routing":
            r.do(Route(call_id, Target.parse("extension:202")))
        else:
            r.do(Offer(call_id, AGENT, 15.0))
            r.do(Answer(AGENT))
    assert call_id is not None
    state = r.state(call_id)
    assert state.value == how or (how == "tone" and state is CallState.TONE)
    before = call_snapshot(r.core.calls[call_id])
    events = r.do(Redirect(call_id, SUPPORT))
    assert refused(events) and of(events, CallRouted) == []
    assert state.value in events[0].reason
    assert call_snapshot(r.core.calls[call_id]) == before
    r.do(Release(call_id))
    r.assert_clean()


@pytest.mark.parametrize("target", [
    Target(TargetKind.EXTENSION, "202"), Target(TargetKind.GROUP, "all"),
    Target(TargetKind.NUMBER, "84001234"), Target(TargetKind.BUSY)])
@pytest.mark.parametrize("with_line", [False, True])
def test_redirect_to_what_is_not_a_flow_or_queue_is_bad_arg_and_changes_nothing(target,
                                                                                with_line):
    r = Run()
    call_id = r.agent_call() if with_line else r.queue_call()
    before = call_snapshot(r.core.calls[call_id])
    with pytest.raises(CoreError) as info:
        r.do(Redirect(call_id, target, line=AGENT if with_line else None))
    assert info.value.code == "bad_arg"
    assert "flow:<name>" in info.value.msg and "queue:<name>" in info.value.msg
    assert call_snapshot(r.core.calls[call_id]) == before
    r.do(Release(call_id))
    r.assert_clean()


def test_redirect_of_an_unknown_call_or_with_a_line_not_in_it_raises():
    r = Run()
    with pytest.raises(CoreError) as info:
        r.do(Redirect("nope", SALES))
    assert info.value.code == "not_found"
    call_id = r.agent_call()
    with pytest.raises(CoreError) as info:
        r.do(Redirect(call_id, SALES, line=OTHER))
    assert info.value.code == "bad_arg"
    with pytest.raises(CoreError) as info:
        r.do(Redirect(call_id, SALES, line="ext/999"))
    assert info.value.code == "not_found"
    assert r.state(call_id) is CallState.ANSWERED
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_an_agent_redirects_its_caller_into_a_queue_and_a_second_agent_takes_it():
    r = Run()
    call_id = r.queue_call()
    r.advance(10)
    r.do(Annotate(call_id, agent="1001", queue="sales", wait_s=10.0))
    r.do(Offer(call_id, AGENT, 15.0))
    r.advance(2)
    r.do(Answer(AGENT))
    first_answer = r.now
    assert list(r.bridges.values()) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.advance(30)

    events = r.do(Redirect(call_id, SUPPORT, priority=3, line=AGENT))
    names = [e.name for e in events]
    assert names.index("call.transferred") < names.index("call.routed")
    [moved] = of(events, CallTransferred)
    assert (moved.line, moved.target) == (AGENT, "queue:support")
    [routed] = of(events, CallRouted)
    assert (routed.target, routed.priority, routed.line, routed.caller) == (
        "queue:support", 3, CALLER, "13900001111")
    # The agent's phone is free at once; the caller stays, alone in the main bridge.
    assert r.status(AGENT) is LineStatus.IDLE and r.core.lines[AGENT].call_id is None
    assert [(e.line, e.state) for e in of(events, LineState)] == [(AGENT, LineStatus.IDLE)]
    r.assert_caller_alone_in_switch(call_id)
    assert r.tone(CALLER) is None

    r.do(HoldMusic(call_id, on=True))
    r.advance(20)
    r.do(Offer(call_id, OTHER, 15.0))
    r.advance(3)
    events = r.do(Answer(OTHER))
    assert [e.line for e in of(events, CallAnswered)] == [OTHER]
    assert [e.line for e in of(events, ToneStopped)] == [CALLER]
    assert r.state(call_id) is CallState.ANSWERED
    assert list(r.bridges.values()) == [{CALLER: Role.PARTY, OTHER: Role.PARTY}]
    r.do(Annotate(call_id, agent="1002", queue="support", wait_s=33.0))
    r.advance(60)
    r.do(Hangup(OTHER))
    r.assert_clean()
    [cdr] = r.cdrs
    # One CDR: the first answer (billing started then), the agent and queue of the last.
    assert (cdr.disposition, cdr.answer, cdr.billsec) == ("ANSWERED", first_answer, 113)
    assert (cdr.extension, cdr.agent, cdr.queue, cdr.wait_s) == (202, "1002", "support", 33.0)
    assert (cdr.hangup_by, cdr.duration) == ("callee", 125)


def test_a_caller_on_hold_is_taken_off_hold_when_its_agent_redirects_it():
    r = Run()
    call_id = r.agent_call()
    r.do(Hold(AGENT))
    assert r.status(CALLER) is LineStatus.HELD and r.tone(CALLER) == Tone.MOH
    events = r.do(Redirect(call_id, MAIN, line=AGENT))
    assert [e.line for e in of(events, ToneStopped)] == [CALLER]
    assert (CALLER, LineStatus.CONNECTED) in [(e.line, e.state) for e in of(events, LineState)]
    assert r.tone(CALLER) is None
    r.assert_caller_alone_in_switch(call_id)
    [routed] = of(events, CallRouted)
    assert routed.target == "flow:main"
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert r.cdrs[0].hangup_by == "caller"


def test_a_direct_call_an_agent_answered_can_be_redirected_into_a_queue():
    r = Run()
    call_id = new_call_id(r.do(Incoming("1", DIRECT_DNIS, trunk=1)))
    assert call_id is not None
    r.advance(4)
    r.do(Answer(AGENT))
    events = r.do(Redirect(call_id, SALES, line=AGENT))
    assert [e.target for e in of(events, CallRouted)] == ["queue:sales"]
    r.assert_caller_alone_in_switch(call_id)
    r.advance(10)
    r.do(Release(call_id, HangupCause.USER_BUSY))  # e.g. the queue refused it: full
    r.assert_clean()
    [cdr] = r.cdrs
    # Answered once: stays ANSWERED whatever the queue did later.
    assert (cdr.disposition, cdr.answer, cdr.hangup_cause) == ("ANSWERED", T0 + 4, "USER_BUSY")


@pytest.mark.parametrize("how", ["consulting", "ringing_only", "monitor"])
def test_redirect_with_a_line_is_refused_unless_it_talks_in_a_plain_answered_call(how):
    r = Run()
    if how == "ringing_only":
        call_id = r.queue_call()
        r.do(Offer(call_id, AGENT, 15.0))
        line = AGENT
    else:
        call_id = r.agent_call()
        line = AGENT
        if how == "consulting":
            r.do(Consult(AGENT, "202"))
            r.do(Answer(OTHER))
            assert r.state(call_id) is CallState.CONSULTING
        else:
            r.do(Monitor(SUPER, call_id, Role.LISTEN))
            r.do(Answer(SUPER))
            line = SUPER
    before = call_snapshot(r.core.calls[call_id])
    events = r.do(Redirect(call_id, SUPPORT, line=line))
    assert refused(events) and events[0].action == "redirect" and events[0].line == line
    assert call_snapshot(r.core.calls[call_id]) == before
    r.do(Release(call_id))
    r.assert_clean()


def test_redirect_is_a_row_of_the_call_table():
    assert CALL_TRANSITIONS[(CallState.ANSWERED, CallInput.REDIRECT)] is CallState.SWITCH
    assert {s for (s, i) in CALL_TRANSITIONS if i is CallInput.REDIRECT} == {CallState.ANSWERED}


# ---------------------------------------------------------------- HoldMusic


def test_hold_music_plays_to_a_switch_held_caller_and_stops():
    r = Run()
    call_id = r.queue_call()
    events = r.do(HoldMusic(call_id, on=True))
    assert [(e.line, e.tone, e.call_id) for e in of(events, ToneStarted)] == [
        (CALLER, Tone.MOH, call_id)]
    assert r.tone(CALLER) == "moh" and r.status(CALLER) is LineStatus.CONNECTED
    assert r.do(HoldMusic(call_id, on=True)) == []  # already playing: no second start
    events = r.do(HoldMusic(call_id, on=False))
    assert [(e.line, e.call_id) for e in of(events, ToneStopped)] == [(CALLER, call_id)]
    assert r.tone(CALLER) is None
    assert r.do(HoldMusic(call_id, on=False)) == []
    r.do(HoldMusic(call_id, on=True))
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_hold_music_goes_on_while_an_offer_rings_and_the_answer_stops_it():
    r = Run()
    call_id = r.queue_call()
    r.do(HoldMusic(call_id))
    r.do(Offer(call_id, AGENT, 15.0))
    assert r.tone(CALLER) == "moh"
    events = r.do(Answer(AGENT))
    assert [e.line for e in of(events, ToneStopped)] == [CALLER]
    names = [e.name for e in events]
    assert names.index("tone.stopped") < names.index("call.bridged")
    assert r.tone(CALLER) is None
    assert list(r.bridges.values()) == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.do(Hangup(AGENT))
    r.assert_clean()


def test_an_offer_timing_out_leaves_the_music_playing():
    r = Run()
    call_id = r.queue_call()
    r.do(HoldMusic(call_id))
    r.do(Offer(call_id, AGENT, 5.0))
    events = r.advance(5.0)
    assert [(e.line, e.reason) for e in of(events, OfferWithdrawn)] == [(AGENT, "timeout")]
    assert r.tone(CALLER) == "moh" and r.state(call_id) is CallState.SWITCH
    r.do(Hangup(CALLER))
    r.assert_clean()


@pytest.mark.parametrize("how", ["answered", "switch_routing", "ringing"])
def test_hold_music_is_refused_unless_the_switch_holds_the_call(how):
    r = Run()
    if how == "ringing":
        call_id = new_call_id(r.do(Incoming("1", DIRECT_DNIS, trunk=1)))
    elif how == "answered":
        call_id = r.agent_call()
    else:
        call_id = r.queue_call()
        r.do(Route(call_id, Target.parse("extension:202")))
    assert call_id is not None
    before = call_snapshot(r.core.calls[call_id])
    tone = r.tone(CALLER)
    events = r.do(HoldMusic(call_id, on=True))
    assert refused(events)
    assert (events[0].line, events[0].action) == (CALLER, "hold_music")
    assert r.state(call_id).value in events[0].reason
    assert call_snapshot(r.core.calls[call_id]) == before and r.tone(CALLER) == tone
    r.do(Release(call_id))
    r.assert_clean()


def test_hold_music_for_an_ended_or_unknown_call_is_ignored():
    r = Run()
    call_id = r.queue_call()
    r.do(Hangup(CALLER))
    assert r.do(HoldMusic(call_id)) == []
    assert r.do(HoldMusic("never")) == []
    r.assert_clean()


# ---------------------------------------------------- Release, Annotate, the CDR


def test_release_user_busy_of_an_unanswered_switch_held_call_is_busy():
    r = Run()
    call_id = r.queue_call()
    r.advance(2)
    events = r.do(Release(call_id, HangupCause.USER_BUSY))
    [ended] = of(events, CallEnded)
    assert (ended.hangup_by, ended.hangup_cause, ended.q850) == (
        "system", HangupCause.USER_BUSY, 17)
    r.assert_clean()
    [cdr] = r.cdrs
    assert (cdr.disposition, cdr.hangup_cause, cdr.answer, cdr.wait_s) == (
        "BUSY", "USER_BUSY", None, 2.0)


def test_release_with_another_cause_of_an_unanswered_call_stays_no_answer():
    r = Run()
    r.do(Release(r.queue_call(), HangupCause.NORMAL_CLEARING))
    r.assert_clean()
    assert r.cdrs[0].disposition == "NO ANSWER"


def test_annotate_fills_agent_queue_and_replaces_the_wait():
    r = Run()
    call_id = r.queue_call()
    r.advance(25)
    r.do(Offer(call_id, AGENT, 15.0))
    r.advance(5)
    r.do(Answer(AGENT))
    assert r.do(Annotate(call_id, agent="1001", queue="sales", wait_s=12.5)) == []
    assert r.do(Annotate(call_id)) == []  # None keeps what is there
    r.advance(10)
    r.do(Hangup(CALLER))
    r.assert_clean()
    [cdr] = r.cdrs
    # wait_s is the queue's (not start to answer, 30 s); answer and billsec are the agent's.
    assert (cdr.agent, cdr.queue, cdr.wait_s) == ("1001", "sales", 12.5)
    assert (cdr.answer, cdr.billsec, cdr.extension) == (T0 + 30, 10, 201)


def test_a_call_without_acd_facts_keeps_the_start_to_answer_wait():
    r = Run()
    call_id = r.queue_call()
    r.advance(7)
    r.do(Offer(call_id, AGENT, 15.0))
    r.do(Answer(AGENT))
    r.do(Hangup(AGENT))
    r.assert_clean()
    assert (r.cdrs[0].agent, r.cdrs[0].queue, r.cdrs[0].wait_s) == (None, None, 7.0)


def test_an_offer_to_a_busy_phone_is_a_line_error_naming_the_offered_call():
    r = Run()
    busy = r.agent_call()
    waiting = new_call_id(r.do(Incoming("2", QUEUE_DNIS, trunk=2)))
    assert waiting is not None
    events = r.do(Offer(waiting, AGENT, 15.0))
    [err] = events
    assert isinstance(err, LineError)
    assert (err.line, err.action, err.call_id) == (AGENT, "offer", waiting)
    assert r.state(waiting) is CallState.SWITCH and r.core.calls[waiting].offers == {}
    assert r.core.lines[AGENT].call_id == busy
    r.do(Release(waiting))
    r.do(Release(busy))
    r.assert_clean()


# ------------------------------------------------------------------ redirect edges


def test_redirect_to_a_flow_stops_music_on_hold():
    # A queue overflowing into a flow: the IVR's prompts must not play under music.
    r = Run()
    call_id = r.queue_call()
    r.do(HoldMusic(call_id))
    events = r.do(Redirect(call_id, MAIN))
    assert [e.line for e in of(events, ToneStopped)] == [CALLER]
    assert r.tone(CALLER) is None


def test_redirect_from_the_customers_trunk_is_bad_arg():
    r = Run()
    call_id = r.agent_call()
    with pytest.raises(CoreError) as info:
        r.do(Redirect(call_id, SALES, line=CALLER))
    assert info.value.code == "bad_arg"


def test_redirect_with_a_negative_priority_is_bad_arg():
    r = Run()
    call_id = r.queue_call()
    with pytest.raises(CoreError) as info:
        r.do(Redirect(call_id, SALES, priority=-1))
    assert info.value.code == "bad_arg"


def test_redirecting_a_call_the_agent_dialled_names_the_customer_as_the_caller():
    from switchd.core.inputs import Answer, Dial, OffHook
    from switchd.events import CallRouted
    r = Run()
    r.do(OffHook("ext/201"))
    r.do(Dial("ext/201", "984001234"))
    trunk = next(n for n, ln in r.core.lines.items()
                 if n.startswith("trunk/") and not ln.idle)
    r.do(Answer(trunk))
    call_id = r.core.lines["ext/201"].call_id
    assert call_id is not None
    events = r.do(Redirect(call_id, SALES, line="ext/201"))
    (routed,) = of(events, CallRouted)
    assert (routed.caller, routed.line) == ("84001234", trunk)
