"""Legs, bridges, offers and monitors in the call core, in virtual time.

Every operation of the core issue and its unhappy branches. After each branch the
state of every line, every bridge (as the media plane would see it from
``bridge.changed``) and the CDR are checked together, and every call must leave
nothing behind: no line off idle, no bridge, no timer.
"""

from __future__ import annotations

import pytest

from switchd.acd.model import RingGroup, RingStrategy
from switchd.core.call import CallState
from switchd.core.engine import CoreError, new_call_id
from switchd.core.inputs import (
    Answer,
    BlindTransfer,
    Cancel,
    Complete,
    Conference,
    Consult,
    Dial,
    FarBusy,
    Hangup,
    Hold,
    Incoming,
    Monitor,
    Offer,
    Pickup,
    Redirect,
    Retrieve,
    SetMonitorMode,
    SwitchAnswer,
    Withdraw,
)
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.events import (
    BridgeChanged,
    Event,
    HangupCause,
    LineError,
    OfferWithdrawn,
    Role,
)
from switchd.lines.state import LineStatus
from tests.corehelp import CoreRun, GroupedCore

T0 = 1_764_000_000.0
CALLER = "trunk/1"
AGENT = "ext/201"
OTHER = "ext/202"
THIRD = "ext/203"
SUPER = "ext/209"
RING_S = 20.0


class Run(CoreRun):
    """The core driven by hand, with what the media plane would hold (bridges) kept from events."""

    def __init__(self) -> None:
        super().__init__(GroupedCore(CoreConfig(
            trunks=2, extensions=(201, 202, 203, 209), ring_timeout_s=RING_S,
            routes=(Route(Target(TargetKind.GROUP, "all"), dnis="7000"),
                    Route(Target(TargetKind.EXTENSION, "201"))),
        ), {"all": RingGroup("all", RingStrategy.RINGALL, (201, 202))}), T0)

    def call(self) -> str:
        [call_id] = list(self.core.calls)
        return call_id

    def roles(self) -> list[dict[str, Role]]:
        """The live bridges' members, oldest bridge first."""
        return [self.bridges[k] for k in sorted(self.bridges)]

    def answered_call(self) -> str:
        """A caller on trunk/1 talking with the agent on ext/201."""
        call_id = new_call_id(self.do(Incoming("13900001111", "8000")))
        assert call_id is not None
        self.do(Answer(AGENT))
        return call_id


def refused(events: list[Event]) -> bool:
    return any(isinstance(e, LineError) for e in events)


# ------------------------------------------------------------------ two-party


def test_answered_call_is_one_bridge_of_two_parties_and_ends_clean():
    r = Run()
    r.answered_call()
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.do(Hangup(AGENT))
    r.assert_clean()
    [cdr] = r.cdrs
    assert cdr.disposition == "ANSWERED" and cdr.hangup_by == "callee"
    assert (cdr.hangup_cause, cdr.q850) == ("NORMAL_CLEARING", 16)


def test_hold_makes_the_peer_a_held_member_and_retrieve_a_party_again():
    r = Run()
    r.answered_call()
    r.do(Hold(AGENT))
    assert r.roles() == [{CALLER: Role.HELD, AGENT: Role.PARTY}]
    assert r.status(CALLER) is LineStatus.HELD and r.core.lines[CALLER].tone == "moh"
    r.do(Retrieve(AGENT))
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert r.status(CALLER) is LineStatus.CONNECTED and r.core.lines[CALLER].tone is None
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert r.cdrs[0].hangup_by == "caller"


def test_blind_transfer_moves_the_caller_to_the_target_in_the_same_bridge():
    r = Run()
    r.answered_call()
    r.do(BlindTransfer(AGENT, "202"))
    assert r.status(AGENT) is LineStatus.IDLE
    assert r.status(CALLER) is LineStatus.RINGBACK
    assert r.roles() == [{CALLER: Role.PARTY}]
    r.do(Answer(OTHER))
    assert r.roles() == [{CALLER: Role.PARTY, OTHER: Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert r.cdrs[0].extension == 202 and r.cdrs[0].disposition == "ANSWERED"


# --------------------------------------------------------- switch answer, offers


def _switch_answered(r: Run) -> str:
    call_id = new_call_id(r.do(Incoming("13900001111", "8000")))
    assert call_id is not None
    r.do(SwitchAnswer(call_id))
    return call_id


def test_switch_answers_the_trunk_without_a_person_and_the_offer_rings_no_caller_tone():
    r = Run()
    call_id = _switch_answered(r)
    assert r.core.calls[call_id].state is CallState.SWITCH
    assert r.status(CALLER) is LineStatus.CONNECTED and r.status(AGENT) is LineStatus.IDLE
    r.do(Offer(call_id, OTHER, 15.0))
    assert r.status(OTHER) is LineStatus.ALERTING
    # An ACD offer leaves the call with the switch (only its own Route is switch_routing).
    assert r.core.calls[call_id].state is CallState.SWITCH
    # The caller keeps hearing what the IVR or queue plays: no ringback from an offer.
    assert r.core.lines[CALLER].tone is None
    r.do(Answer(OTHER))
    assert r.roles() == [{CALLER: Role.PARTY, OTHER: Role.PARTY}]
    r.advance(30)
    r.do(Hangup(OTHER))
    r.assert_clean()
    [cdr] = r.cdrs
    assert cdr.disposition == "ANSWERED" and cdr.extension == 202 and cdr.billsec == 30


def test_an_offer_is_withdrawn_the_moment_the_caller_hangs_up():
    r = Run()
    call_id = _switch_answered(r)
    r.do(Offer(call_id, OTHER, 15.0))
    events = r.do(Hangup(CALLER))
    [w] = [e for e in events if isinstance(e, OfferWithdrawn)]
    assert (w.line, w.reason) == (OTHER, "caller_gone")
    r.assert_clean()
    [cdr] = r.cdrs
    # The switch answered, no person did: not ANSWERED (Asterisk's IVR mistake), but
    # the caller was connected, so normal clearing rather than a cancel.
    assert cdr.disposition == "NO ANSWER" and cdr.hangup_cause == "NORMAL_CLEARING"


def test_an_offer_that_times_out_frees_the_phone_and_leaves_the_caller_waiting():
    r = Run()
    call_id = _switch_answered(r)
    r.do(Offer(call_id, OTHER, 15.0))
    r.advance(15.0)
    [w] = [e for e in r.events if isinstance(e, OfferWithdrawn) and e.line == OTHER]
    assert w.reason == "timeout"
    assert r.status(OTHER) is LineStatus.IDLE
    assert r.core.calls[call_id].state is CallState.SWITCH
    assert r.status(CALLER) is LineStatus.CONNECTED
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_the_first_phone_to_answer_takes_the_call_and_the_other_offer_is_withdrawn():
    r = Run()
    call_id = _switch_answered(r)
    r.do(Offer(call_id, OTHER, 15.0))
    r.do(Offer(call_id, THIRD, 15.0))
    events = r.do(Answer(THIRD))
    assert [(e.line, e.reason) for e in events if isinstance(e, OfferWithdrawn)] == [
        (OTHER, "taken_elsewhere")]
    assert r.status(OTHER) is LineStatus.IDLE
    # The late answer of the phone that lost is refused and changes nothing.
    assert refused(r.do(Answer(OTHER)))
    assert r.roles() == [{CALLER: Role.PARTY, THIRD: Role.PARTY}]
    r.do(Hangup(THIRD))
    r.assert_clean()
    assert r.cdrs[0].extension == 203


def test_withdraw_stops_one_offer_and_refuses_what_is_not_ringing():
    r = Run()
    call_id = _switch_answered(r)
    r.do(Offer(call_id, OTHER, 15.0))
    [w] = [e for e in r.do(Withdraw(call_id, OTHER)) if isinstance(e, OfferWithdrawn)]
    assert w.reason == "withdrawn" and r.status(OTHER) is LineStatus.IDLE
    with pytest.raises(CoreError) as exc:
        r.do(Withdraw(call_id, OTHER))
    assert exc.value.code == "not_found"
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_offers_are_refused_to_busy_phones_and_for_calls_not_answered_by_the_switch():
    r = Run()
    r.answered_call()
    # An event naming the offered call (not CoreError): the ACD that offered must learn it.
    events = r.do(Offer(r.call(), AGENT, 10.0))
    assert refused(events)
    err = next(e for e in events if isinstance(e, LineError))
    assert (err.line, err.action, err.call_id) == (AGENT, "offer", r.call())
    assert refused(r.do(Offer(r.call(), OTHER, 10.0)))  # the call is answered, not queued
    assert r.status(OTHER) is LineStatus.IDLE
    r.do(Hangup(AGENT))
    r.assert_clean()


# ------------------------------------------------------------------ consult


def _consulting(r: Run, *, answer: bool) -> str:
    call_id = r.answered_call()
    r.do(Consult(AGENT, "202"))
    if answer:
        r.do(Answer(OTHER))
    return call_id


def test_consult_holds_the_caller_alone_and_puts_the_agent_in_a_second_bridge():
    r = Run()
    call_id = _consulting(r, answer=False)
    assert r.core.calls[call_id].state is CallState.CONSULTING
    assert r.roles() == [{CALLER: Role.HELD}, {AGENT: Role.PARTY}]
    assert r.status(CALLER) is LineStatus.HELD and r.core.lines[CALLER].tone == "moh"
    assert r.status(AGENT) is LineStatus.RINGBACK and r.status(OTHER) is LineStatus.ALERTING
    r.do(Answer(OTHER))
    assert r.roles() == [{CALLER: Role.HELD}, {AGENT: Role.PARTY, OTHER: Role.PARTY}]
    assert r.status(AGENT) is LineStatus.CONNECTED and r.core.lines[AGENT].tone is None


def test_complete_joins_caller_and_consulted_party_and_the_agent_leaves():
    r = Run()
    _consulting(r, answer=True)
    r.do(Complete(AGENT))
    assert r.status(AGENT) is LineStatus.IDLE
    assert r.roles() == [{CALLER: Role.PARTY, OTHER: Role.PARTY}]
    assert r.status(CALLER) is LineStatus.CONNECTED and r.core.lines[CALLER].tone is None
    r.do(Hangup(CALLER))
    r.assert_clean()
    [cdr] = r.cdrs
    assert cdr.disposition == "ANSWERED" and cdr.extension == 202


def test_complete_before_the_consulted_party_answers_is_refused_and_changes_nothing():
    r = Run()
    _consulting(r, answer=False)
    before = r.roles()
    assert refused(r.do(Complete(AGENT)))
    assert refused(r.do(Conference(AGENT)))
    assert r.roles() == before and r.status(OTHER) is LineStatus.ALERTING
    r.do(Hangup(CALLER))
    r.assert_clean()


@pytest.mark.parametrize("answer", [False, True])
def test_cancel_brings_the_agent_back_to_the_caller(answer):
    r = Run()
    _consulting(r, answer=answer)
    r.do(Cancel(AGENT))
    assert r.status(OTHER) is LineStatus.IDLE
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert r.status(CALLER) is LineStatus.CONNECTED and r.status(AGENT) is LineStatus.CONNECTED
    assert r.core.lines[CALLER].tone is None and r.core.lines[AGENT].tone is None
    r.do(Hangup(AGENT))
    r.assert_clean()
    assert r.cdrs[0].extension == 201


def test_conference_puts_all_three_in_one_bridge_and_a_leaving_member_leaves_two():
    r = Run()
    call_id = _consulting(r, answer=True)
    r.do(Conference(AGENT))
    assert r.core.calls[call_id].state is CallState.CONFERENCE
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY, OTHER: Role.PARTY}]
    r.do(Hangup(OTHER))
    assert r.core.calls[call_id].state is CallState.ANSWERED
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.do(Hangup(AGENT))
    r.assert_clean()
    assert r.cdrs[0].hangup_by == "callee"


@pytest.mark.parametrize("answer", [False, True])
def test_caller_hanging_up_during_a_consult_releases_every_leg(answer):
    r = Run()
    _consulting(r, answer=answer)
    r.do(Hangup(CALLER))
    r.assert_clean()
    [cdr] = r.cdrs
    assert cdr.disposition == "ANSWERED" and cdr.hangup_by == "caller"


def test_a_consulted_party_who_never_answers_sends_the_agent_back_to_the_caller():
    r = Run()
    _consulting(r, answer=False)
    r.advance(RING_S)
    ended = [e for e in r.events if e.name == "call.consult_ended"]
    assert [e.fields()["reason"] for e in ended] == ["no_answer"]
    assert r.status(OTHER) is LineStatus.IDLE
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_consulted_party_who_hangs_up_sends_the_agent_back_to_the_caller():
    r = Run()
    _consulting(r, answer=True)
    r.do(Hangup(OTHER))
    assert [e.fields()["reason"] for e in r.events if e.name == "call.consult_ended"] == [
        "consulted_hung_up"]
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.do(Hangup(AGENT))
    r.assert_clean()


def test_agent_hanging_up_after_the_consulted_party_answered_transfers_the_caller():
    r = Run()
    _consulting(r, answer=True)
    r.do(Hangup(AGENT))
    assert r.roles() == [{CALLER: Role.PARTY, OTHER: Role.PARTY}]
    assert r.status(CALLER) is LineStatus.CONNECTED
    r.do(Hangup(OTHER))
    r.assert_clean()
    assert r.cdrs[0].extension == 202


def test_agent_hanging_up_while_the_consulted_phone_rings_transfers_the_caller_to_it():
    r = Run()
    _consulting(r, answer=False)
    r.do(Hangup(AGENT))
    assert r.status(CALLER) is LineStatus.RINGBACK and r.core.lines[CALLER].tone == "ringback"
    r.do(Answer(OTHER))
    assert r.roles() == [{CALLER: Role.PARTY, OTHER: Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert r.cdrs[0].extension == 202


def test_agent_hanging_up_while_nobody_answers_rings_the_agent_back_then_gives_up():
    r = Run()
    call_id = _consulting(r, answer=False)
    r.do(Hangup(AGENT))
    r.advance(RING_S)
    assert r.core.calls[call_id].state is CallState.RECALLING
    assert r.status(AGENT) is LineStatus.ALERTING and r.status(OTHER) is LineStatus.IDLE
    r.advance(RING_S)
    r.assert_clean()
    assert r.cdrs[0].hangup_cause == "NO_ANSWER"


def test_consult_needs_a_connected_two_party_call_and_an_idle_target():
    r = Run()
    r.answered_call()
    with pytest.raises(CoreError) as exc:
        r.do(Consult(AGENT, "201"))
    assert exc.value.code == "busy"
    with pytest.raises(CoreError):
        r.do(Consult(AGENT, "299"))
    r.do(Hold(AGENT))
    r.do(Consult(AGENT, "202"))   # consulting from hold is the usual way
    assert r.roles() == [{CALLER: Role.HELD}, {AGENT: Role.PARTY}]
    assert refused(r.do(Consult(AGENT, "203")))   # one consultation at a time
    r.do(Hangup(CALLER))
    r.assert_clean()


# ------------------------------------------------------------------ monitor


def _monitored(r: Run, mode: Role) -> str:
    call_id = r.answered_call()
    r.do(Monitor(SUPER, call_id, mode))
    assert r.status(SUPER) is LineStatus.ALERTING
    r.do(Answer(SUPER))
    return call_id


@pytest.mark.parametrize("mode", [Role.LISTEN, Role.WHISPER, Role.BARGE])
def test_a_supervisor_joins_the_call_with_the_role_of_its_mode(mode):
    r = Run()
    _monitored(r, mode)
    [bridge] = r.roles()
    assert bridge == {CALLER: Role.PARTY, AGENT: Role.PARTY, SUPER: mode}
    if mode is Role.WHISPER:
        [ev] = [e for e in r.events if isinstance(e, BridgeChanged)][-1:]
        assert [m.to for m in ev.members if m.line == SUPER] == [AGENT]
    r.do(Hangup(CALLER))
    r.assert_clean()
    [cdr] = r.cdrs
    assert cdr.disposition == "ANSWERED" and cdr.extension == 201


def test_the_monitor_mode_switches_live_and_the_supervisor_may_leave_first():
    r = Run()
    call_id = _monitored(r, Role.LISTEN)
    for mode in (Role.WHISPER, Role.BARGE, Role.LISTEN):
        r.do(SetMonitorMode(SUPER, mode))
        assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY, SUPER: mode}]
    r.do(Hangup(SUPER))
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert r.core.calls[call_id].state is CallState.ANSWERED
    assert r.status(SUPER) is LineStatus.IDLE
    r.do(Hangup(AGENT))
    r.assert_clean()
    assert r.cdrs[0].hangup_by == "callee"


def test_a_monitored_call_that_ends_releases_the_supervisor():
    r = Run()
    _monitored(r, Role.WHISPER)
    events = r.do(Hangup(AGENT))
    assert [e.name for e in events].count("monitor.ended") == 1
    r.assert_clean()


@pytest.mark.parametrize("to", ["queue:support", "flow:main"])
def test_a_monitored_call_sent_back_to_the_switch_releases_the_supervisor(to):
    r = Run()
    call_id = _monitored(r, Role.WHISPER)
    events = r.do(Redirect(call_id, Target.parse(to), line=AGENT))
    names = [e.name for e in events]
    # Ended as the call moves to the switch, not later when the call ends.
    assert names.count("monitor.ended") == 1
    assert names.index("monitor.ended") < names.index("call.routed")
    assert r.status(SUPER) is LineStatus.IDLE and r.status(AGENT) is LineStatus.IDLE
    assert all(SUPER not in b for b in r.roles())
    if call_id in r.core.calls:
        r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_monitor_follows_the_call_to_the_next_agent_of_a_blind_transfer():
    r = Run()
    _monitored(r, Role.WHISPER)
    r.do(BlindTransfer(AGENT, "202"))
    events = r.do(Answer(OTHER))
    [bridge] = r.roles()
    assert bridge == {CALLER: Role.PARTY, OTHER: Role.PARTY, SUPER: Role.WHISPER}
    # ... and the whisper now goes to the new agent (never to nobody, never the caller).
    [started] = [e for e in events if e.name == "monitor.started"]
    assert (started.line, started.mode, started.agent) == (SUPER, Role.WHISPER, OTHER)
    [ev] = [e for e in r.events if isinstance(e, BridgeChanged)][-1:]
    assert [m.to for m in ev.members if m.line == SUPER] == [OTHER]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_whisper_follows_an_attended_transfer_to_the_consulted_agent():
    r = Run()
    _monitored(r, Role.WHISPER)
    r.do(Consult(AGENT, "202"))
    r.do(Answer(OTHER))
    events = r.do(Complete(AGENT))
    [started] = [e for e in events if e.name == "monitor.started"]
    assert started.agent == OTHER
    [ev] = [e for e in r.events if isinstance(e, BridgeChanged)][-1:]
    assert [m.to for m in ev.members if m.line == SUPER] == [OTHER]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_supervisor_who_does_not_answer_leaves_the_call_untouched():
    r = Run()
    call_id = r.answered_call()
    r.do(Monitor(SUPER, call_id, Role.LISTEN))
    r.advance(RING_S)
    assert r.status(SUPER) is LineStatus.IDLE
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert r.core.calls[call_id].state is CallState.ANSWERED
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_monitoring_needs_a_connected_call_and_a_real_mode():
    r = Run()
    call_id = new_call_id(r.do(Incoming("13900001111", "8000")))
    assert call_id is not None
    assert refused(r.do(Monitor(SUPER, call_id, Role.LISTEN)))  # still ringing
    assert r.status(SUPER) is LineStatus.IDLE
    r.do(Answer(AGENT))
    with pytest.raises(CoreError):
        r.do(Monitor(SUPER, call_id, Role.PARTY))
    with pytest.raises(CoreError):
        r.do(Monitor(AGENT, call_id, Role.LISTEN))   # already in the call
    r.do(Hangup(CALLER))
    r.assert_clean()


# ------------------------------------------------------------------ pickup


def test_pickup_takes_a_call_ringing_elsewhere_at_once():
    r = Run()
    call_id = new_call_id(r.do(Incoming("13900001111", "7000")))   # rings 201 and 202
    assert call_id is not None
    events = r.do(Pickup(SUPER, call_id))
    assert sorted((e.line, e.reason) for e in events if isinstance(e, OfferWithdrawn)) == [
        (AGENT, "picked_up"), (OTHER, "picked_up")]
    assert r.status(AGENT) is LineStatus.IDLE and r.status(OTHER) is LineStatus.IDLE
    assert r.roles() == [{CALLER: Role.PARTY, SUPER: Role.PARTY}]
    assert r.core.lines[CALLER].tone is None
    r.do(Hangup(SUPER))
    r.assert_clean()
    [cdr] = r.cdrs
    assert cdr.disposition == "ANSWERED" and cdr.extension == 209


def test_pickup_of_a_call_that_rings_nowhere_is_refused():
    r = Run()
    call_id = r.answered_call()
    assert refused(r.do(Pickup(SUPER, call_id)))
    assert r.status(SUPER) is LineStatus.IDLE
    with pytest.raises(CoreError):
        r.do(Pickup(SUPER, "no-such-call"))
    r.do(Hangup(CALLER))
    r.assert_clean()


# ------------------------------------------------------------------ causes


def test_every_end_carries_its_q850_cause():
    r = Run()
    r.do(Incoming("13900001111", "8000"))
    r.do(Hangup(CALLER))
    assert (r.cdrs[-1].hangup_cause, r.cdrs[-1].q850) == ("ORIGINATOR_CANCEL", 487)
    r.do(Incoming("13900001111", "8000"))
    r.advance(RING_S)
    assert (r.cdrs[-1].hangup_cause, r.cdrs[-1].q850) == ("NO_ANSWER", 19)
    assert r.cdrs[-1].disposition == "NO ANSWER"
    r.assert_clean()
    assert HangupCause.SYSTEM_SHUTDOWN.q850 == 701


def test_a_whisper_whose_agent_transfers_away_goes_to_nobody():
    r = Run()
    _monitored(r, Role.WHISPER)
    r.do(BlindTransfer(AGENT, "202"))
    last = [e for e in r.events if isinstance(e, BridgeChanged)][-1]
    assert [(m.line, m.role, m.to) for m in last.members] == [
        (CALLER, Role.PARTY, None), (SUPER, Role.WHISPER, None)]
    r.do(Answer(OTHER))
    r.do(Hangup(CALLER))
    r.assert_clean()


# ------------------------------------------- found by review: side paths and races


def _dialled_out(r: Run) -> str:
    """ext/201 called an outside number and the far end (trunk/1) answered."""
    call_id = new_call_id(r.do(Dial(AGENT, "95550001")))
    assert call_id is not None
    r.do(Answer(CALLER))
    return call_id


def test_a_supervisor_joins_the_customers_bridge_even_when_the_agent_dialled_and_consults():
    r = Run()
    call_id = _dialled_out(r)
    r.do(Consult(AGENT, "202"))
    r.do(Answer(OTHER))
    r.do(Monitor(SUPER, call_id, Role.BARGE))
    r.do(Answer(SUPER))
    # The consultation stays private: the supervisor is with the held customer.
    assert r.roles() == [{CALLER: Role.HELD, SUPER: Role.BARGE}, {AGENT: Role.PARTY,
                                                                OTHER: Role.PARTY}]
    r.do(Cancel(AGENT))
    assert r.roles() == [{CALLER: Role.PARTY, SUPER: Role.BARGE, AGENT: Role.PARTY}]
    r.do(SetMonitorMode(SUPER, Role.LISTEN))
    assert r.roles() == [{CALLER: Role.PARTY, SUPER: Role.LISTEN, AGENT: Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_held_party_never_hears_a_whisper():
    from switchd.lines.mixer import bridge_weights

    r = Run()
    call_id = new_call_id(r.do(Dial(AGENT, "202")))
    assert call_id is not None
    r.do(Answer(OTHER))
    r.do(Monitor(SUPER, call_id, Role.WHISPER))   # coaches ext/202, the called agent
    r.do(Answer(SUPER))
    r.do(Hold(AGENT))
    last = [e for e in r.events if isinstance(e, BridgeChanged)][-1]
    channels = {line: i for i, line in enumerate(r.core.lines)}
    heard_by_202 = {t for lst, t, _ in bridge_weights(last.members, channels)
                    if lst == channels[OTHER]}
    assert heard_by_202 == set()
    r.do(Hangup(AGENT))
    r.assert_clean()


def test_a_conference_that_loses_a_party_to_two_is_a_plain_call_again_despite_a_barger():
    r = Run()
    call_id = _consulting(r, answer=True)
    r.do(Conference(AGENT))
    r.do(Monitor(SUPER, call_id, Role.BARGE))
    r.do(Answer(SUPER))
    r.do(Hangup(OTHER))
    assert r.core.calls[call_id].state is CallState.ANSWERED
    r.do(Hangup(SUPER))
    r.do(Hold(AGENT))   # a plain call again: hold works
    assert r.status(CALLER) is LineStatus.HELD
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_the_agent_who_dialled_may_leave_a_conference_and_the_others_talk_on():
    r = Run()
    call_id = _dialled_out(r)
    r.do(Consult(AGENT, "202"))
    r.do(Answer(OTHER))
    r.do(Conference(AGENT))
    r.do(Hangup(AGENT))
    assert r.core.calls[call_id].state is CallState.ANSWERED
    assert r.core.calls[call_id].anchor == CALLER   # the customer's side anchors the call
    assert r.roles() == [{CALLER: Role.PARTY, OTHER: Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert r.cdrs[0].extension == 202


def test_a_call_ringing_out_on_a_trunk_cannot_be_picked_up():
    r = Run()
    call_id = new_call_id(r.do(Dial(AGENT, "95550001")))
    assert call_id is not None
    assert refused(r.do(Pickup(THIRD, call_id)))
    assert r.status(CALLER) is LineStatus.ALERTING and r.status(THIRD) is LineStatus.IDLE
    r.do(Hangup(AGENT))
    r.assert_clean()


def test_a_whisper_aimed_at_the_customer_is_refused():
    r = Run()
    call_id = r.answered_call()
    with pytest.raises(CoreError) as exc:
        r.do(Monitor(SUPER, call_id, Role.WHISPER, agent=CALLER))
    assert exc.value.code == "bad_arg" and AGENT in exc.value.msg
    assert r.status(SUPER) is LineStatus.IDLE
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_the_whisper_goes_to_the_agent_there_when_the_supervisor_answers():
    r = Run()
    call_id = r.answered_call()
    r.do(Monitor(SUPER, call_id, Role.WHISPER))
    r.do(BlindTransfer(AGENT, "202"))
    r.do(Answer(OTHER))
    r.do(Answer(SUPER))
    [started] = [e for e in r.events if e.name == "monitor.started"]
    assert started.fields()["agent"] == OTHER
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_whisper_target_that_comes_back_as_a_monitor_is_not_whispered_to():
    """The consulted phone a supervisor was asked to coach leaves (consult cancelled) and
    joins again as a listener before the supervisor answers: the whisper goes to the agent
    in the call, never to a monitor (found by the core fuzz test)."""
    r = Run()
    call_id = r.answered_call()
    r.do(Consult(AGENT, "202"))
    r.do(Answer(OTHER))
    r.do(Monitor(SUPER, call_id, Role.WHISPER, agent=OTHER))
    r.do(Cancel(AGENT))
    r.do(Monitor(OTHER, call_id, Role.LISTEN))
    r.do(Answer(OTHER))
    r.do(Answer(SUPER))
    [started] = [e for e in r.events if e.name == "monitor.started" and e.line == SUPER]
    assert started.fields()["agent"] == AGENT
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_the_switchs_own_ringing_cannot_be_withdrawn_from_outside():
    r = Run()
    call_id = new_call_id(r.do(Incoming("13900001111", "8000")))
    assert call_id is not None
    with pytest.raises(CoreError) as exc:
        r.do(Withdraw(call_id, AGENT))
    assert exc.value.code == "wrong_state"
    assert r.status(AGENT) is LineStatus.ALERTING
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_phone_that_refuses_the_only_ringing_offer_rejects_the_call():
    r = Run()
    r.do(Incoming("13900001111", "8000"))
    r.do(Hangup(AGENT))
    r.assert_clean()
    [cdr] = r.cdrs
    assert (cdr.disposition, cdr.hangup_cause, cdr.q850) == ("NO ANSWER", "CALL_REJECTED", 21)


# ------------------------------------------------------------------ outside numbers


def test_blind_transfer_to_an_outside_number_rings_the_next_trunk_and_connects_the_caller():
    r = Run()
    call_id = r.answered_call()
    events = r.do(BlindTransfer(AGENT, "84001234", outside=True))
    ringing = [e for e in events if e.name == "call.ringing"]
    assert [(e.line, e.callee) for e in ringing] == [("trunk/2", "84001234")]
    assert r.status(AGENT) is LineStatus.IDLE and r.status(CALLER) is LineStatus.RINGBACK
    r.do(Answer("trunk/2"))
    assert r.roles() == [{CALLER: Role.PARTY, "trunk/2": Role.PARTY}]
    r.do(Hangup("trunk/2"))
    r.assert_clean()
    [cdr] = r.cdrs
    assert cdr.uniqueid == call_id and cdr.disposition == "ANSWERED"


def test_an_outside_transfer_nobody_answers_rings_the_agent_back():
    r = Run()
    r.answered_call()
    r.do(BlindTransfer(AGENT, "84001234", outside=True))
    r.advance(RING_S + 0.1)
    assert r.status("trunk/2") is LineStatus.IDLE and r.status(AGENT) is LineStatus.ALERTING
    r.do(Answer(AGENT))
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()


@pytest.mark.parametrize("finish", ["complete", "cancel", "conference"])
def test_consulting_an_outside_number(finish):
    r = Run()
    r.answered_call()
    r.do(Consult(AGENT, "84001234", outside=True))
    assert r.roles() == [{CALLER: Role.HELD}, {AGENT: Role.PARTY}]
    assert r.status("trunk/2") is LineStatus.ALERTING
    r.do(Answer("trunk/2"))
    assert r.roles() == [{CALLER: Role.HELD}, {AGENT: Role.PARTY, "trunk/2": Role.PARTY}]
    if finish == "complete":
        r.do(Complete(AGENT))
        assert r.roles() == [{CALLER: Role.PARTY, "trunk/2": Role.PARTY}]
        assert r.status(AGENT) is LineStatus.IDLE
        r.do(Hangup(CALLER))
    elif finish == "cancel":
        r.do(Cancel(AGENT))
        assert r.status("trunk/2") is LineStatus.IDLE
        assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
        r.do(Hangup(AGENT))
    else:
        r.do(Conference(AGENT))
        assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY, "trunk/2": Role.PARTY}]
        r.do(Hangup(AGENT))
        r.do(Hangup(CALLER))
    r.assert_clean()
    assert len(r.cdrs) == 1


def test_an_outside_transfer_with_no_idle_trunk_or_bad_digits_is_refused_before_anything_changes():
    r = Run()
    call_id = r.answered_call()
    with pytest.raises(CoreError) as bad:
        r.do(BlindTransfer(AGENT, "84-00", outside=True))
    assert bad.value.code == "bad_arg"
    r.do(Incoming("13900002222", "8000"))   # the second (last) trunk is now busy
    before = r.roles()
    for inp in (BlindTransfer(AGENT, "84001234", outside=True),
                Consult(AGENT, "84001234", outside=True)):
        with pytest.raises(CoreError) as busy:
            r.do(inp)
        assert busy.value.code == "busy" and "no idle trunk" in busy.value.msg
    assert r.roles() == before and r.core.calls[call_id].state is CallState.ANSWERED


def test_a_supervisor_still_ringing_to_monitor_stops_when_the_call_goes_to_a_queue():
    r = Run()
    call_id = r.answered_call()
    r.do(Monitor(SUPER, call_id, Role.BARGE))
    assert r.status(SUPER) is LineStatus.ALERTING
    events = r.do(Redirect(call_id, Target.parse("flow:main"), line=AGENT))
    gone = [e for e in events if isinstance(e, OfferWithdrawn) and e.line == SUPER]
    assert len(gone) == 1 and r.status(SUPER) is LineStatus.IDLE
    assert all(SUPER not in b for b in r.roles())
    if call_id in r.core.calls:
        r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_supervisor_answering_while_a_blind_transfer_rings_joins_and_coaches_who_answers():
    # Found by the core fuzzer: the supervisor's phone rang to monitor, the agent blind
    # transferred, then the supervisor answered. A monitor already in the call stays
    # through the transfer, so one answering now joins the same way (not a refusal
    # that connected and released the phone in one step).
    r = Run()
    call_id = r.answered_call()
    r.do(Monitor(SUPER, call_id, Role.WHISPER))
    r.do(BlindTransfer(AGENT, "202"))
    assert r.core.calls[call_id].state is CallState.TRANSFERRING
    events = r.do(Answer(SUPER))
    assert not [e for e in events if e.name == "line.error"]
    [started] = [e for e in events if e.name == "monitor.started"]
    assert (started.line, started.agent) == (SUPER, None)   # nobody to whisper to yet
    assert r.status(SUPER) is LineStatus.CONNECTED
    events = r.do(Answer(OTHER))
    [started] = [e for e in events if e.name == "monitor.started"]
    assert (started.line, started.mode, started.agent) == (SUPER, Role.WHISPER, OTHER)
    assert r.roles() == [{CALLER: Role.PARTY, OTHER: Role.PARTY, SUPER: Role.WHISPER}]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_an_outside_number_busy_on_a_blind_transfer_rings_the_agent_back_at_once():
    r = Run()
    r.answered_call()
    r.do(BlindTransfer(AGENT, "84000000", outside=True))
    r.do(FarBusy("trunk/2"))
    assert r.status("trunk/2") is LineStatus.IDLE and r.status(AGENT) is LineStatus.ALERTING
    r.do(Answer(AGENT))
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_an_outside_number_busy_on_a_consultation_ends_it_back_with_the_caller():
    r = Run()
    call_id = r.answered_call()
    r.do(Consult(AGENT, "84000000", outside=True))
    events = r.do(FarBusy("trunk/2"))
    [ended] = [e for e in events if e.name == "call.consult_ended"]
    assert ended.reason == "busy"
    assert r.status("trunk/2") is LineStatus.IDLE
    assert r.roles() == [{CALLER: Role.PARTY, AGENT: Role.PARTY}]
    assert r.core.calls[call_id].state is CallState.ANSWERED
    r.do(Hangup(AGENT))
    r.assert_clean()


def test_a_monitor_ends_when_the_call_is_transferred_to_an_outside_number():
    r = Run()
    _monitored(r, Role.LISTEN)
    r.do(BlindTransfer(AGENT, "84001234", outside=True))
    events = r.do(Answer("trunk/2"))
    assert [e.name for e in events].count("monitor.ended") == 1
    assert r.status(SUPER) is LineStatus.IDLE
    assert r.roles() == [{CALLER: Role.PARTY, "trunk/2": Role.PARTY}]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_a_whisper_follows_to_the_agent_left_in_a_conference_its_agent_leaves():
    r = Run()
    call_id = _monitored(r, Role.WHISPER)
    r.do(Consult(AGENT, "202"))
    r.do(Answer(OTHER))
    r.do(Conference(AGENT))
    events = r.do(Hangup(AGENT))
    [started] = [e for e in events if e.name == "monitor.started"]
    assert started.agent == OTHER and r.core.calls[call_id].monitors[SUPER] == OTHER
    [ev] = [e for e in r.events if isinstance(e, BridgeChanged)][-1:]
    assert [m.to for m in ev.members if m.line == SUPER] == [OTHER]
    r.do(Hangup(CALLER))
    r.assert_clean()
