"""The ACD's side paths on the real core: VIP, sticky agent, RONA, wrap-up, overflow,
refusals, abandons, exit keys, races. After each branch the agent state, the queue
events, the statistics, the queue_log and the CDR are checked together."""

from __future__ import annotations

import pytest

from switchd.acd.inputs import Login, Logout, NotReady, Ready
from switchd.acd.model import AgentSettings, Strategy
from switchd.core.inputs import (
    Conference,
    Consult,
    Dial,
    Digit,
    Hold,
    OffHook,
    Redirect,
    Retrieve,
)
from switchd.core.routing import Target, TargetKind
from switchd.events import (
    AgentState,
    AgentStateChanged,
    Disposition,
    HangupCause,
    QueueAbandon,
    QueueConnected,
    QueueExit,
    QueueJoin,
    QueueLeave,
    QueueLogEntry,
    QueueOffered,
    QueueOverflow,
)
from tests.acdhelp import T0, Centre, agents, queue


def leaves(c: Centre, call_id: str) -> list[QueueLeave]:
    return [e for e in c.of(QueueLeave) if e.call_id == call_id]


# ------------------------------------------------------------------ priority, sticky


def test_a_vip_caller_overtakes_callers_who_waited_longer():
    c = Centre([queue(vip_priority=10)], agents(1), vips={"5550099"})
    c.submit(NotReady("a1"))
    plain = c.call(caller="5550001")
    c.advance(30)
    vip = c.call(caller="5550099")
    assert [j.priority for j in c.of(QueueJoin)] == [0, 10]
    assert [j.position for j in c.of(QueueJoin)] == [1, 1]   # the VIP went to the front
    c.submit(Ready("a1"))
    assert c.of(QueueOffered)[-1].call_id == vip
    c.answer(201)
    assert plain in c.acd.callers and vip not in c.acd.callers
    c.check_invariants()


def test_sticky_agent_found_the_returning_caller_goes_to_its_last_agent():
    c = Centre([queue(strategy=Strategy.LINEAR, sticky_wait_s=10)], agents(2),
               last_agent={"5550001": "a2"})
    c.call(caller="5550001")
    assert c.ringing() == ["ext/202"]      # linear would have picked 201


def test_sticky_agent_busy_the_caller_waits_for_it_while_it_frees_in_time():
    c = Centre([queue(strategy=Strategy.LINEAR, sticky_wait_s=10)], agents(2),
               last_agent={"5550001": "a2"})
    c.submit(NotReady("a2"))
    call_id = c.call(caller="5550001")
    assert c.ringing() == []               # a1 is free, but the caller waits for a2
    c.advance(4)
    c.submit(Ready("a2"))
    assert c.ringing() == ["ext/202"]
    assert c.of(QueueOffered)[-1].call_id == call_id
    c.check_invariants()


def test_sticky_agent_not_free_in_time_any_agent_takes_the_caller_at_sticky_wait():
    c = Centre([queue(strategy=Strategy.LINEAR, sticky_wait_s=10)], agents(2),
               last_agent={"5550001": "a2"})
    c.submit(NotReady("a2"))
    c.call(caller="5550001")
    c.advance(9.999)
    assert c.ringing() == []
    c.advance(0.001)
    assert c.ringing() == ["ext/201"]
    assert c.of(QueueOffered)[-1].time == T0 + 10


def test_an_answered_caller_is_remembered_for_sticky_routing_within_the_run():
    c = Centre([queue(strategy=Strategy.LINEAR, sticky_wait_s=10)], agents(2))
    c.submit(NotReady("a1"))
    first = c.call(caller="5550001")
    c.answer(202)
    c.caller_hangs_up(first)
    c.submit(Ready("a1"))
    c.call(caller="5550001")
    assert c.ringing() == ["ext/202"]


# ------------------------------------------------------------------------- RONA


def test_rona_pauses_the_agent_in_every_queue_with_an_event():
    ags = (AgentSettings("a1", extension=201, queues={"A": 0, "B": 0}, login=True),)
    c = Centre([queue("A", ring_timeout_s=10, rona_after=2), queue("B")], ags)
    first = c.call("A", caller="5550001")
    c.advance(10)                          # rang out once: ready again, rung again
    assert c.agent_state("a1") is AgentState.RESERVED
    c.advance(10)                          # twice: RONA
    assert c.agent_state("a1") is AgentState.NOT_READY
    rona = [e for e in c.of(AgentStateChanged) if e.reason == "rona"]
    assert len(rona) == 1 and rona[0].state is AgentState.NOT_READY
    log = c.queue_log()
    assert "NONE|A|a1|PAUSE|rona" in log and "NONE|B|a1|PAUSE|rona" in log
    assert sum(1 for x in log if "RINGNOANSWER|10000" in x) == 2
    c.call("B", caller="5550002")          # paused in B as well: nobody rings
    assert c.ringing() == []
    assert c.acd.stats["A"].ring_no_answer == 2 and c.acd.stats["A"].answered == 0
    assert first in c.acd.callers
    c.check_invariants()


def test_an_answered_offer_resets_the_rona_count():
    c = Centre([queue(ring_timeout_s=5, rona_after=2)], agents(1))
    one = c.call(caller="5550001")
    c.advance(5)
    c.answer(201)
    c.caller_hangs_up(one)
    c.call(caller="5550002")
    c.advance(5)
    assert c.agent_state("a1") is AgentState.RESERVED   # one miss since the answer


# ---------------------------------------------------------------------- wrap-up


def test_wrapup_is_exact_and_belongs_to_the_agent_across_queues():
    ags = (AgentSettings("a1", extension=201, queues={"A": 0, "B": 0}, login=True),)
    c = Centre([queue("A", wrapup_s=10), queue("B", wrapup_s=0)], ags)
    one = c.call("A", caller="5550001")
    c.answer(201)
    c.advance(20)
    c.caller_hangs_up(one)
    assert c.agent_state("a1") is AgentState.WRAP_UP
    end = c.now
    c.call("B", caller="5550002")          # queue B has no wrap-up: still A's applies
    c.advance(9.999)
    assert c.ringing() == []
    c.advance(0.001)
    assert c.ringing() == ["ext/201"]
    assert c.of(QueueOffered)[-1].time == end + 10
    assert c.acd.stats["A"].wrapup_sum == pytest.approx(10)
    c.check_invariants()


def test_the_queue_log_shows_each_hold_and_each_wrap_up_for_reports():
    # HOLD / UNHOLD|hold_s / WRAPUPEND|wrapup_s: switchd's own queue_log lines (Asterisk
    # logs none), so that a report has the agents' hold and wrap-up time from the log.
    c = Centre([queue(wrapup_s=10)], agents(1))
    one = c.call(caller="5550001")
    c.answer(201)
    c.advance(5)
    c.submit(Hold("ext/201"))
    c.advance(7)
    c.submit(Retrieve("ext/201"))
    c.advance(3)
    c.submit(Hold("ext/201"))
    c.advance(4)
    c.caller_hangs_up(one)             # hung up on hold: the hold ends with the call
    c.advance(2)
    c.submit(Ready("a1"))              # wrap-up cut short after 2 s
    log = [x for x in c.queue_log() if x.split("|")[3] in
           ("HOLD", "UNHOLD", "WRAPUPEND", "COMPLETECALLER")]
    held = log[0].split("|")[4]
    assert held.startswith("trunk/")
    assert log == [f"{one}|q|a1|HOLD|{held}", f"{one}|q|a1|UNHOLD|7",
                   f"{one}|q|a1|HOLD|{held}", f"{one}|q|a1|UNHOLD|4",
                   f"{one}|q|a1|COMPLETECALLER|0|19|1", f"{one}|q|a1|WRAPUPEND|2"]
    stamps = [e.time - T0 for e in c.of(QueueLogEntry) if e.event == "WRAPUPEND"]
    assert stamps == [21]
    assert c.agent_state("a1") is AgentState.READY
    c.check_invariants()


def test_a_consultation_holds_the_caller_until_the_agent_transfers_it():
    c = Centre([queue()], agents(2))
    c.submit(NotReady("a2"))
    one = c.call(caller="5550001")
    c.answer(201)
    c.submit(Consult("ext/201", "202"))
    c.advance(6)
    c.answer(202)
    c.hangup("ext/201")                # completes the attended transfer
    log = [x for x in c.queue_log() if x.split("|")[3] in ("HOLD", "UNHOLD")]
    assert [x.split("|")[2:] for x in log] == [["a1", "HOLD", log[0].split("|")[4]],
                                               ["a1", "UNHOLD", "6"]]
    assert not c.acd._holds
    c.caller_hangs_up(one)
    c.check_invariants()


def test_a_conference_ends_the_hold_and_a_new_hold_is_logged():
    # Found in review: the conference took the caller off hold but no UNHOLD was written,
    # so the agent was charged the whole conference as hold, and a later HOLD was lost.
    c = Centre([queue()], agents(2))
    c.submit(NotReady("a2"))
    one = c.call(caller="5550001")
    c.answer(201)
    c.advance(2)
    c.submit(Consult("ext/201", "202"))
    c.answer(202)
    c.advance(7)
    c.submit(Conference("ext/201"))
    c.advance(5)
    c.hangup("ext/202")                # the consulted agent leaves: a1 and the caller
    c.submit(Hold("ext/201"))          # a new hold is logged (the first one has ended)
    c.advance(3)
    c.hangup("ext/201")                # a1 leaves while holding: that hold ends with it
    log = [x.split("|")[2:] for x in c.queue_log() if x.split("|")[3] in ("HOLD", "UNHOLD")]
    assert [(a, ev) for a, ev, *_ in log] == [("a1", "HOLD"), ("a1", "UNHOLD"),
                                             ("a1", "HOLD"), ("a1", "UNHOLD")]
    assert log[1][2:] == ["7"] and log[3][2:] == ["3"]
    assert not any(k[1] == "ext/201" for k in c.acd._holds)
    c.caller_hangs_up(one)
    assert not c.acd._holds
    c.check_invariants()


def test_an_agents_own_wrapup_wins_over_the_queues():
    c = Centre([queue(wrapup_s=30)], agents(1, wrapup_s=3))
    one = c.call()
    c.answer(201)
    c.caller_hangs_up(one)
    c.advance(3)
    assert c.agent_state("a1") is AgentState.READY


def test_a_transfer_from_queue_a_into_queue_b_keeps_the_first_agents_wrapup():
    ags = (AgentSettings("a1", extension=201, queues={"A": 0}, login=True),
           AgentSettings("a2", extension=202, queues={"B": 0}, login=True))
    c = Centre([queue("A", wrapup_s=15), queue("B", wrapup_s=5)], ags)
    call_id = c.call("A", caller="5550001")
    c.advance(2)
    c.answer(201)
    c.advance(10)
    c.submit(Redirect(call_id, Target(TargetKind.QUEUE, "B"), line="ext/201"))
    transferred_at = c.now
    a1 = c.acd.agents["a1"]
    assert a1.state is AgentState.WRAP_UP and a1.last_call_end == transferred_at
    assert c.ringing() == ["ext/202"]      # the caller is in queue B now
    c.advance(3)
    c.answer(202)
    c.advance(20)
    c.caller_hangs_up(call_id)
    # a1: wrap-up ran its 15 s from the transfer, untouched by queue B's call.
    assert a1.last_call_end == transferred_at
    assert [e.time - transferred_at for e in c.of(AgentStateChanged)
            if e.agent == "a1" and e.state is AgentState.READY][-1] == 15
    assert "BLINDTRANSFER|queue:B|switchd|2|10|1" in "\n".join(c.queue_log())
    cdr = c.cdr(call_id)
    assert (cdr.disposition, cdr.agent, cdr.queue) == ("ANSWERED", "a2", "B")
    assert cdr.answer == T0 + 2            # the first answer stays the CDR's
    assert cdr.wait_s == pytest.approx(5)  # 2 s in A + 3 s in B
    c.check_invariants()


# --------------------------------------------------------------------- overflow


def test_max_wait_overflows_to_another_queue_exactly_at_the_limit():
    ags = (AgentSettings("a1", extension=201, queues={"A": 0}, login=True),
           AgentSettings("a2", extension=202, queues={"B": 0}, login=True))
    c = Centre([queue("A", max_wait_s=30, overflow=Target(TargetKind.QUEUE, "B")),
                queue("B")], ags)
    c.submit(NotReady("a1"))
    call_id = c.call("A")
    c.advance(29.999)
    assert c.ringing() == []
    c.advance(0.001)
    over = c.of(QueueOverflow)
    assert [(o.queue, o.reason, o.to, o.time) for o in over] == [
        ("A", QueueExit.TIMEOUT, "queue:B", T0 + 30)]
    assert [(e.queue, e.reason) for e in leaves(c, call_id)] == [("A", QueueExit.TIMEOUT)]
    assert c.ringing() == ["ext/202"]
    c.answer(202)
    s = c.acd.stats["A"]
    assert (s.timed_out, s.overflowed, s.abandoned, s.answered) == (1, 1, 0, 0)
    assert any(x.endswith("|A|NONE|EXITWITHTIMEOUT|1|1|30") for x in c.queue_log())
    c.caller_hangs_up(call_id)
    cdr = c.cdr(call_id)
    assert (cdr.disposition, cdr.queue, cdr.agent) == ("ANSWERED", "B", "a2")
    assert cdr.wait_s == pytest.approx(30)


def test_max_wait_without_a_target_releases_the_caller_no_answer():
    c = Centre([queue(max_wait_s=20)], agents(1))
    c.submit(NotReady("a1"))
    call_id = c.call()
    c.advance(20)
    cdr = c.cdr(call_id)
    assert (cdr.disposition, cdr.hangup_cause, cdr.hangup_by) == (
        "NO ANSWER", str(HangupCause.NO_ANSWER), "system")
    assert c.acd.stats["q"].timed_out == 1 and c.acd.stats["q"].abandoned == 0


def test_a_ringing_agent_is_withdrawn_at_max_wait_and_is_ready_again():
    c = Centre([queue(max_wait_s=10, ring_timeout_s=30,
                      overflow=Target(TargetKind.EXTENSION, "210"))], agents(1))
    call_id = c.call()
    assert c.ringing() == ["ext/201"]
    c.advance(10)
    assert c.ringing() == ["ext/210"]      # the overflow extension rings
    assert c.agent_state("a1") is AgentState.READY
    c.answer(210)
    assert c.core.calls[call_id].state.value == "answered"
    c.check_invariants()


def test_max_len_refuses_the_caller_full_and_counts_it():
    c = Centre([queue(max_len=1)], agents(1))
    c.submit(NotReady("a1"))
    c.call(caller="5550001")
    refused = c.call(caller="5550002")
    assert [(e.reason, e.position) for e in leaves(c, refused)] == [(QueueExit.FULL, 0)]
    assert refused not in [j.call_id for j in c.of(QueueJoin)]
    assert any(x.startswith(f"{refused}|q|NONE|FULL") for x in c.queue_log())
    s = c.acd.stats["q"]
    assert (s.offered, s.joined, s.refused_full) == (2, 1, 1)
    assert c.cdr(refused).disposition == Disposition.BUSY


def test_join_empty_false_refuses_when_no_agent_is_logged_in():
    c = Centre([queue(join_empty=False)], agents(1, login=False))
    refused = c.call()
    assert [e.reason for e in leaves(c, refused)] == [QueueExit.JOINEMPTY]
    assert c.acd.stats["q"].refused_joinempty == 1
    # A paused agent is logged in: the queue takes callers.
    c.submit(Login("a1", ready=False))
    joined = c.call(caller="5550002")
    assert joined in c.acd.callers


def test_leave_empty_sends_waiting_callers_on_when_the_last_agent_logs_out():
    c = Centre([queue(leave_empty=True, overflow=Target(TargetKind.EXTENSION, "210"))],
               agents(1))
    c.submit(NotReady("a1"))
    call_id = c.call()
    c.submit(Logout("a1"))
    assert [e.reason for e in leaves(c, call_id)] == [QueueExit.EMPTY]
    assert c.ringing() == ["ext/210"]
    assert c.acd.stats["q"].exited_empty == 1


def test_the_exit_key_leaves_the_queue_for_its_target():
    c = Centre([queue(exit_key="0", exit_to=Target(TargetKind.EXTENSION, "210"))], agents(1))
    c.submit(NotReady("a1"))
    call_id = c.call()
    c.advance(7)
    c.submit(Digit(c.trunk(call_id), "5"))
    assert call_id in c.acd.callers        # not the exit key
    c.submit(Digit(c.trunk(call_id), "0"))
    assert [e.reason for e in leaves(c, call_id)] == [QueueExit.KEY]
    assert any(x.endswith("|q|NONE|EXITWITHKEY|0|1|1|7") for x in c.queue_log())
    s = c.acd.stats["q"]
    assert (s.exited_key, s.abandoned, s.timed_out) == (1, 0, 0)
    assert c.ringing() == ["ext/210"]


# ---------------------------------------------------------------------- abandon


def test_an_abandon_is_counted_with_its_exact_wait_everywhere():
    c = Centre([queue(service_level_s=20)], agents(1))
    c.submit(NotReady("a1"))
    call_id = c.call()
    c.advance(42.5)
    c.caller_hangs_up(call_id)
    (ab,) = c.of(QueueAbandon)
    assert (ab.wait_s, ab.position, ab.orig_position) == (42.5, 1, 1)
    s = c.acd.stats["q"]
    assert (s.abandoned, s.abandoned_within_sl, s.answered) == (1, 0, 0)
    assert s.wait_sum_all == pytest.approx(42.5)
    assert any(x.endswith("|q|NONE|ABANDON|1|1|43") for x in c.queue_log())
    cdr = c.cdr(call_id)
    assert (cdr.disposition, cdr.agent, cdr.queue, cdr.wait_s) == ("NO ANSWER", None, "q", 42.5)


def test_the_caller_hangs_up_while_an_agent_rings():
    c = Centre([queue()], agents(1))
    call_id = c.call()
    assert c.agent_state("a1") is AgentState.RESERVED
    c.advance(3)
    c.caller_hangs_up(call_id)
    assert c.ringing() == []
    assert c.agent_state("a1") is AgentState.READY
    assert c.acd.agents["a1"].no_answer == 0        # not the agent's fault
    assert not c.of(QueueConnected)
    assert not any("CONNECT" in x for x in c.queue_log())
    s = c.acd.stats["q"]
    assert (s.answered, s.abandoned) == (0, 1)
    assert c.cdr(call_id).disposition != "ANSWERED"
    c.check_invariants()


def test_a_ringall_callers_hang_up_frees_every_rung_agent():
    c = Centre([queue(strategy=Strategy.RINGALL)], agents(3))
    call_id = c.call()
    assert len(c.ringing()) == 3
    c.caller_hangs_up(call_id)
    assert {c.agent_state(a) for a in ("a1", "a2", "a3")} == {AgentState.READY}
    assert c.lines_idle()
    # Each agent went reserved -> ready once, never through a call of its own.
    assert not [e for e in c.of(AgentStateChanged) if e.state is AgentState.ON_CALL]
    c.check_invariants()


# ------------------------------------------------------------------------- races


def test_an_agent_who_dials_out_is_never_rung():
    c = Centre([queue()], agents(2))
    c.submit(OffHook("ext/201"))
    assert c.agent_state("a1") is AgentState.ON_CALL
    c.submit(Dial("ext/201", "9555"))
    c.call()
    assert c.ringing() == ["ext/202"]
    c.hangup("ext/201")
    assert c.agent_state("a1") is AgentState.READY
    c.check_invariants()


class _Prankster:
    """Takes ext/201 off-hook at the instant a call is routed, before the ACD's Offer
    reaches the core: the race the core reports as ``line.error`` (action offer)."""

    def __init__(self) -> None:
        self.armed = True

    def handle(self, now: float, ev: object) -> list[object]:
        if self.armed:
            self.armed = False
            return [OffHook("ext/201")]
        return []

    def next_deadline(self) -> None:
        return None

    def handle_timer(self, now: float) -> list[object]:
        return []


def test_an_offer_the_core_refuses_frees_the_agent_and_the_caller_goes_to_the_next():
    from switchd.events import CallRouted, LineError
    c = Centre([queue(strategy=Strategy.LINEAR)], agents(2))
    prank = _Prankster()
    c.shell.add(prank)
    c.shell._followers.insert(0, (prank, (CallRouted,)))   # before the ACD sees it
    c.shell._follow_by_type.clear()
    call_id = c.call()
    errors = [e for e in c.of(LineError) if e.action == "offer"]
    assert [(e.line, e.call_id) for e in errors] == [("ext/201", call_id)]
    assert c.agent_state("a1") is AgentState.ON_CALL         # its own call (off-hook)
    assert c.ringing() == ["ext/202"]
    assert [o.line for o in c.of(QueueOffered)] == ["ext/201", "ext/202"]
    c.hangup("ext/201")
    assert c.agent_state("a1") is AgentState.READY
    c.check_invariants()


def test_logout_while_ringing_withdraws_and_offers_the_next_agent():
    c = Centre([queue(strategy=Strategy.LINEAR)], agents(2))
    call_id = c.call()
    assert c.ringing() == ["ext/201"]
    c.submit(Logout("a1"))
    assert c.ringing() == ["ext/202"]
    assert c.agent_state("a1") is AgentState.LOGGED_OUT
    assert c.of(QueueOffered)[-1].call_id == call_id
    c.check_invariants()


def test_an_agent_on_a_queue_call_cannot_log_out_or_pause():
    from switchd.acd.engine import AcdError
    c = Centre([queue()], agents(1))
    c.call()
    c.answer(201)
    for req in (Logout("a1"), NotReady("a1")):
        with pytest.raises(AcdError) as exc:
            c.submit(req)
        assert exc.value.code == "wrong_state" and "queue q" in exc.value.msg
    assert c.agent_state("a1") is AgentState.ON_CALL


def test_an_agent_on_a_call_of_its_own_may_pause_or_log_out():
    from switchd.acd.model import RingGroup, RingStrategy
    c = Centre([queue()], agents(2), groups=[RingGroup("desk", RingStrategy.RINGALL, (201,))])
    c.call("desk")                               # a ring group rings a1's phone
    assert c.agent_state("a1") is AgentState.ON_CALL
    c.submit(NotReady("a1", "lunch"))
    assert c.agent_state("a1") is AgentState.NOT_READY
    c.submit(OffHook("ext/202"))                 # a2 dials out
    c.submit(Logout("a2"))
    assert c.agent_state("a2") is AgentState.LOGGED_OUT
    c.hangup("ext/202")
    assert c.agent_state("a2") is AgentState.LOGGED_OUT
    c.check_invariants()


# -------------------------------------------------------------------- statistics


def test_service_levels_are_exact_over_the_period():
    c = Centre([queue(service_level_s=20)], agents(1))
    c.submit(NotReady("a1"))
    quick = c.call(caller="5550001")    # answered after 10 s
    late = c.call(caller="5550002")     # answered after 30 s
    short = c.call(caller="5550003")    # abandons after 5 s
    long_ = c.call(caller="5550004")    # abandons after 25 s
    c.advance(5)
    c.caller_hangs_up(short)
    c.advance(5)
    c.submit(Ready("a1"))
    c.answer(201)                       # quick, at 10 s
    c.hangup("ext/201")
    c.advance(15)
    c.caller_hangs_up(long_)            # at 25 s
    c.advance(5)
    c.answer(201)                       # late, at 30 s
    s = c.acd.stats["q"]
    assert (s.offered, s.answered, s.answered_within_sl, s.abandoned,
            s.abandoned_within_sl) == (4, 2, 1, 2, 1)
    assert s.sl1 == pytest.approx(1 / 4)
    assert s.sl2 == pytest.approx(1 / 3)
    assert s.sl3 == pytest.approx(1 / 4)
    assert s.asa_s == pytest.approx(20)
    assert s.wait_max == pytest.approx(30)
    assert {quick, late} == {e.call_id for e in c.of(QueueConnected)}


# ------------------------------------------------------------------------ pickup


def test_a_supervisor_picks_up_a_queued_call_with_nothing_ringing():
    from switchd.core.inputs import Pickup
    c = Centre([queue()], agents(1))
    c.submit(NotReady("a1"))
    call_id = c.call()
    c.advance(12)
    c.submit(Pickup("ext/210", call_id))
    assert c.core.calls[call_id].state.value == "answered"
    (left,) = leaves(c, call_id)
    assert (left.reason, left.wait_s) == (QueueExit.ANSWERED, 12)
    assert any(x.startswith(f"{call_id}|q|NONE|CONNECT|12|") for x in c.queue_log())
    assert c.acd.stats["q"].answered == 1
    c.caller_hangs_up(call_id)
    cdr = c.cdr(call_id)
    assert (cdr.disposition, cdr.extension, cdr.wait_s) == ("ANSWERED", 210, 12)


def test_a_supervisor_picks_up_a_queued_call_while_an_agent_rings():
    from switchd.core.inputs import Pickup
    c = Centre([queue()], agents(1))
    call_id = c.call()
    assert c.ringing() == ["ext/201"]
    c.submit(Pickup("ext/210", call_id))
    assert c.ringing() == []
    assert c.agent_state("a1") is AgentState.READY
    assert [e.reason for e in leaves(c, call_id)] == [QueueExit.ANSWERED]
    c.check_invariants()


# ---------------------------------------------------------------------- callback


def _callback_centre(**cb: object) -> Centre:
    from switchd.acd.model import CallbackSettings
    settings = CallbackSettings("2", goodbye_s=4, retry_after_s=60, ring_timeout_s=30,
                                **cb)  # type: ignore[arg-type]
    return Centre([queue(strategy=Strategy.LINEAR, callback=settings)], agents(1))


def _press(c: Centre, call_id: str, keys: str) -> None:
    for k in keys:
        c.submit(Digit(c.trunk(call_id), k))


def _callback_turn(c: Centre) -> str:
    """The one agent paused, a caller asks for a callback on its own number (2, 1) and
    is hung up after the 4 s goodbye; then the agent is ready: its phone rings for the
    callback. Returns the caller's call id."""
    c.submit(NotReady("a1"))
    call_id = c.call()
    _press(c, call_id, "21")
    c.advance(4)
    c.submit(Ready("a1"))
    return call_id


def test_a_callback_keeps_the_callers_place_and_rings_the_agent_before_the_customer():
    from switchd.core.inputs import Answer
    from switchd.events import QueueCallback
    c = _callback_centre()
    c.submit(NotReady("a1"))
    first = c.call(caller="5550001")
    second = c.call(caller="5550002")
    third = c.call(caller="5550003")
    c.advance(10)
    _press(c, second, "21")                 # callback, on its own number
    assert [e.outcome for e in c.of(QueueCallback)] == ["requested"]
    c.advance(4)                            # the goodbye, then the switch hangs up
    assert c.cdr(second).hangup_by == "system"
    assert second in c.acd.callers          # still in line, second place
    status = c.acd.queue_status("q", c.now)
    assert [x[0] for x in status.callers] == [first, second, third]
    c.submit(Ready("a1"))
    assert c.of(QueueOffered)[-1].call_id == first
    c.answer(201)
    c.advance(30)
    c.caller_hangs_up(first)                # the agent is free: the callback's turn
    assert c.ringing() == ["ext/201"]       # the agent first, nothing dialled yet
    dialling = [e for e in c.of(QueueCallback) if e.outcome == "dialling"]
    assert dialling and dialling[-1].attempt == 1
    dial = dialling[-1].dial_call_id
    c.answer(201)
    assert c.agent_state("a1") is AgentState.ON_CALL
    trunk = next(n for n, ln in c.core.lines.items()
                 if n.startswith("trunk/") and ln.call_id == dial)
    c.advance(5)
    c.submit(Answer(trunk))                 # the customer answers
    assert [e.outcome for e in c.of(QueueCallback)][-1] == "connected"
    assert [e.reason for e in leaves(c, second)] == [QueueExit.ANSWERED]
    assert third in c.acd.callers
    c.advance(60)
    c.hangup("ext/201")
    cdr = c.cdr(dial)
    assert (cdr.direction, cdr.dst, cdr.disposition, cdr.agent, cdr.queue) == (
        "outbound", "5550002", "ANSWERED", "a1", "q")
    s = c.acd.stats["q"]
    assert (s.callbacks, s.answered, s.abandoned, s.callbacks_failed) == (1, 2, 0, 0)
    log = "\n".join(c.queue_log())
    assert f"{second}|q|NONE|CALLBACK|5550002|2|10" in log
    assert f"{dial}|q|a1|COMPLETEAGENT" in log
    c.check_invariants()


def test_a_callback_to_another_number_entered_with_hash():
    from switchd.events import QueueCallback
    c = _callback_centre()
    c.submit(NotReady("a1"))
    call_id = c.call()
    _press(c, call_id, "284001234#")
    (req,) = [e for e in c.of(QueueCallback) if e.outcome == "requested"]
    assert req.number == "84001234"


def test_no_confirmation_keeps_the_caller_waiting_on_the_line():
    from switchd.events import QueueCallback
    c = _callback_centre(confirm_timeout_s=10)
    c.submit(NotReady("a1"))
    call_id = c.call()
    _press(c, call_id, "2")
    c.advance(10)
    assert [e.outcome for e in c.of(QueueCallback)] == ["cancelled"]
    c.submit(Ready("a1"))
    assert c.of(QueueOffered)[-1].call_id == call_id   # an ordinary offer, on its line


def test_a_failed_callback_is_retried_then_given_up_and_reported():
    from switchd.core.inputs import FarBusy
    from switchd.events import QueueCallback
    c = _callback_centre(retries=1)
    call_id = _callback_turn(c)
    for attempt in (1, 2):
        assert c.ringing() == ["ext/201"], attempt
        c.answer(201)
        trunk = next(n for n, ln in c.core.lines.items()
                     if n.startswith("trunk/") and ln.status.value == "alerting")
        c.submit(FarBusy(trunk))
        c.hangup("ext/201")
        if attempt == 1:
            assert [e.outcome for e in c.of(QueueCallback)][-1] == "failed"
            c.advance(59.9)
            assert c.ringing() == []
            c.advance(0.1)
    assert [e.outcome for e in c.of(QueueCallback)][-1] == "gave_up"
    assert [e.reason for e in leaves(c, call_id)] == [QueueExit.CALLBACK_FAILED]
    s = c.acd.stats["q"]
    assert (s.callbacks, s.callbacks_failed, s.callbacks_lost, s.abandoned) == (1, 2, 1, 0)
    assert any("CALLBACKFAILED|2|busy|gave_up" in x for x in c.queue_log())
    assert not c.acd.callers
    c.check_invariants()


def test_an_agent_who_does_not_pick_up_a_callback_does_not_use_up_an_attempt():
    c = _callback_centre(retries=0)
    call_id = _callback_turn(c)
    from switchd.events import QueueCallback
    c.advance(15)                            # the agent's phone rang out (rona_after 2)
    assert call_id in c.acd.callers          # retries 0, yet not given up: nobody was dialled
    assert c.ringing() == ["ext/201"]        # offered again, still the first attempt
    assert [e.attempt for e in c.of(QueueCallback) if e.outcome == "dialling"] == [1, 1]
    c.check_invariants()


# ------------------------------------------------------------------ announcements


def test_greeting_then_position_with_the_estimated_wait_from_exact_figures():
    from pathlib import Path

    from switchd.ivr.inputs import PlayPrompt, StopPrompt
    pos = tuple((Path(f"pos{i}"),) for i in range(1, 21))
    wait = tuple((Path(f"wait{m}"),) for m in range(1, 31))
    c = Centre([queue(greeting=(Path("hello"),), announce_position_every_s=30,
                      position_files=pos, wait_files=wait, wrapup_s=20)], agents(1))
    first = c.call(caller="5550001")
    c.answer(201)
    c.advance(100)
    c.caller_hangs_up(first)               # handle time 100 + 20 s wrap-up = 120 s
    c.call(caller="5550002")               # waits behind the wrap-up…
    third = c.call(caller="5550003")
    plays = [p for p in c.player.played if isinstance(p, PlayPrompt) and p.call_id == third]
    assert [p.files for p in plays] == [(Path("hello"),)]
    c.advance(30)
    plays = [p for p in c.player.played if isinstance(p, PlayPrompt) and p.call_id == third]
    # Position 2 (the second caller rings the agent since the wrap-up ended, but is
    # not answered): 2 × 120 s / 1 agent staffed = 4 minutes.
    assert plays[-1].files == (Path("pos2"), Path("wait4"))
    assert plays[-1].barge_in is False
    c.caller_hangs_up(third)
    assert not [p for p in c.player.played
                if isinstance(p, PlayPrompt) and p.call_id == third and p not in plays]
    del StopPrompt


def test_an_answered_caller_hears_no_more_of_its_announcement():
    from pathlib import Path

    from switchd.ivr.inputs import StopPrompt
    c = Centre([queue(greeting=(Path("hello"),))], agents(1))
    call_id = c.call()
    c.answer(201)
    assert [(p.call_id, p.line) for p in c.player.played if isinstance(p, StopPrompt)] == [
        (call_id, c.trunk(call_id))]


def test_queue_and_agent_figures_per_interval_and_since_start():
    c = Centre([queue(wrapup_s=10)], agents(1))      # intervals of 900 s from the start
    c.advance(100)
    one = c.call(caller="5550001")
    c.answer(201)
    c.advance(60)
    c.caller_hangs_up(one)                            # talk 60, wrap-up to 170
    c.advance(900 - 160)                              # the interval rolls at 900
    c.advance(30)
    two = c.call(caller="5550002")
    c.answer(201)
    c.advance(20)
    (a,) = c.acd.agent_status(c.now)
    assert (a.total.answered, a.total.talk_s, a.total.wrapup_s) == (2, 60, 10)
    assert a.interval is not None
    assert (a.interval.answered, a.interval.talk_s) == (1, 0)   # the call goes on
    iv = {k: v for k, v in a.interval.time_in if v}
    assert iv == {"ready": 30, "on_call": 20}
    total = dict(a.total.time_in)
    assert total["on_call"] == pytest.approx(80) and total["wrap_up"] == pytest.approx(10)
    assert a.total.occupancy == pytest.approx(90 / 950)
    assert a.interval.occupancy == pytest.approx(20 / 50)
    st = c.acd.queue_status("q", c.now)
    assert (st.total.answered, st.interval.answered, st.interval_start) == (2, 1, T0 + 900)
    c.caller_hangs_up(two)


# ------------------------------------------------------------------- ring groups


def test_a_ring_group_is_a_queue_with_no_waiting_rung_by_the_acd():
    from switchd.acd.model import RingGroup, RingStrategy
    hunt = RingGroup("desk", RingStrategy.HUNT, (201, 202), ring_timeout_s=5)
    c = Centre([queue()], agents(2), groups=[hunt])
    c.submit(NotReady("a1"))               # a phone is rung whatever its agent's state
    call_id = c.call("desk")
    assert c.ringing() == ["ext/201"]
    assert c.core.lines[c.trunk(call_id)].status.value == "alerting"   # not answered
    c.advance(5)
    assert c.ringing() == ["ext/202"]
    c.answer(202)
    c.advance(30)
    c.caller_hangs_up(call_id)
    cdr = c.cdr(call_id)
    assert (cdr.disposition, cdr.extension, cdr.wait_s, cdr.queue) == ("ANSWERED", 202, 5, None)
    s = c.acd.stats["group:desk"]
    assert (s.offered, s.answered, s.ring_no_answer, s.answered_within_sl) == (1, 1, 1, 1)
    log = c.queue_log()
    assert f"{call_id}|group:desk|NONE|ENTERQUEUE||5550001" in log
    assert any(x.startswith(f"{call_id}|group:desk|ext/202|CONNECT|5|") for x in log)
    # Its talk ends with a COMPLETE naming the phone, as the CONNECT does: reports give
    # the phone its 30 s of talk.
    assert f"{call_id}|group:desk|ext/202|COMPLETECALLER|5|30|1" in log
    assert "group:desk" in c.acd.queue_names()
    c.check_invariants()


def test_a_ring_group_with_every_phone_busy_gives_busy_and_counts_it():
    from switchd.acd.model import RingGroup, RingStrategy
    from switchd.core.inputs import OffHook
    c = Centre([queue()], agents(1), groups=[RingGroup("desk", RingStrategy.RINGALL, (201,))])
    c.submit(OffHook("ext/201"))
    call_id = c.call("desk")
    assert c.core.lines[c.trunk(call_id)].status.value == "tone"
    assert c.acd.stats["group:desk"].refused_joinempty == 1
    c.advance(10)
    assert c.cdr(call_id).disposition == "BUSY"


# ----------------------------------------------------------- shutdown and reload


def test_at_shutdown_waiting_callers_leave_as_system_and_nobody_is_offered():
    from switchd.core.inputs import Shutdown
    c = Centre([queue()], agents(1))
    busy = c.call(caller="5550001")
    c.answer(201)
    waiting = c.call(caller="5550002")
    c.acd.stop()
    c.submit(Shutdown())
    assert [e.reason for e in leaves(c, waiting)] == [QueueExit.SYSTEM]
    assert c.acd.stats["q"].abandoned == 0
    assert not [e for e in c.of(QueueOffered) if e.call_id == waiting]
    assert c.agent_state("a1") is not AgentState.RESERVED
    del busy


def test_a_caller_refused_at_join_goes_to_the_overflow():
    c = Centre([queue("A", max_len=1, overflow=Target(TargetKind.QUEUE, "B")), queue("B")],
               agents(1, ("A",)) + agents(1, ("B",), first=2))
    c.submit(NotReady("a1"))
    c.call("A", caller="5550001")
    second = c.call("A", caller="5550002")
    assert [(e.queue, e.reason) for e in leaves(c, second)] == [("A", QueueExit.FULL)]
    assert c.ringing() == ["ext/202"]       # queue B's agent: the overflow took it
    assert c.acd.stats["A"].overflowed == 1


def test_a_reload_logs_in_the_agents_it_adds_with_login():
    from dataclasses import replace
    c = Centre([queue()], agents(1))
    added = replace(c.settings, agents=c.settings.agents + agents(1, first=2))
    c.acd.reconfigure(added)
    c.shell.dispatch(c.acd.login_configured(c.now))
    assert c.agent_state("a2") is AgentState.READY
    c.submit(NotReady("a2"))
    c.acd.reconfigure(added)                  # a second reload does not undo the pause
    c.shell.dispatch(c.acd.login_configured(c.now))
    assert c.agent_state("a2") is AgentState.NOT_READY


# ------------------------------------------------------------ review regressions


def test_queues_refusing_each_other_in_a_loop_release_the_caller_at_once():
    # join_empty false both ways and nobody logged in: A refuses to B, B back to A.
    c = Centre([queue("A", join_empty=False, overflow=Target(TargetKind.QUEUE, "B")),
                queue("B", join_empty=False, overflow=Target(TargetKind.QUEUE, "A"))],
               agents(1, ("A", "B"), login=False))
    call_id = c.call("A")
    assert [(e.queue, e.reason) for e in leaves(c, call_id)] == [
        ("A", QueueExit.JOINEMPTY), ("B", QueueExit.JOINEMPTY), ("A", QueueExit.JOINEMPTY)]
    assert c.cdr(call_id).disposition == Disposition.BUSY


def test_an_agent_logging_in_at_a_busy_phone_is_on_that_call_not_offered():
    c = Centre([queue()], agents(1, login=False))
    waiting = c.call()
    c.submit(OffHook("ext/205"))
    c.submit(Dial("ext/205", "206"))
    c.answer(206)
    c.submit(Login("zed", extension=205, queues=(("q", 0),)))
    assert c.agent_state("zed") is AgentState.ON_CALL
    assert c.ringing() == []
    c.hangup("ext/205")
    assert c.ringing() == ["ext/205"]                  # free now: offered the caller
    assert c.of(QueueOffered)[-1].call_id == waiting
    c.check_invariants()


def test_after_a_ring_out_the_caller_tries_the_other_free_agent_first():
    for strategy in (Strategy.LINEAR, Strategy.LONGEST_IDLE, Strategy.FEWEST_CALLS):
        c = Centre([queue(strategy=strategy, ring_timeout_s=10, rona_after=0)], agents(2))
        c.call()
        assert c.ringing() == ["ext/201"], strategy
        c.advance(10)
        assert c.ringing() == ["ext/202"], strategy


def test_an_agent_cannot_pause_or_log_out_while_a_callback_rings_it():
    from switchd.acd.engine import AcdError
    c = _callback_centre()
    _callback_turn(c)                               # the callback rings a1's phone
    for req in (NotReady("a1"), Logout("a1")):
        with pytest.raises(AcdError) as exc:
            c.submit(req)
        assert exc.value.code == "wrong_state" and "callback" in exc.value.msg
    assert c.agent_state("a1") is AgentState.RESERVED
    c.check_invariants()


def test_a_reload_that_changes_the_strategy_keeps_queues_working():
    from dataclasses import replace
    c = Centre([queue(strategy=Strategy.LINEAR)], agents(2))
    c.submit(NotReady("a1"))
    c.submit(NotReady("a2"))
    c.acd.reconfigure(replace(c.settings, queues={"q": queue(strategy=Strategy.ROUND_ROBIN)}))
    c.call()
    c.submit(Ready("a2"))
    assert c.ringing() == ["ext/202"]
    c.check_invariants()


def test_an_unanswered_overflow_extension_sends_the_caller_back_to_its_place_for_good():
    c = Centre([queue(max_wait_s=30, overflow=Target(TargetKind.EXTENSION, "210"))],
               agents(1))
    c.submit(NotReady("a1"))
    first = c.call(caller="5550001")
    c.advance(25)
    second = c.call(caller="5550002")
    c.advance(5)                                        # first overflows to ext 210
    assert c.ringing() == ["ext/210"]
    c.advance(20)                                       # 210 rang out: back in line,
    assert [x[0] for x in c.acd.queue_status("q", c.now).callers] == [first, second]
    c.advance(600)                                      # and no second overflow by time
    assert {first, second} <= set(c.acd.callers)
    assert c.acd.stats["q"].timed_out == 2              # once each


def test_leave_empty_keeps_the_callbacks_waiting():
    from switchd.acd.model import CallbackSettings
    c = Centre([queue(leave_empty=True, callback=CallbackSettings("2", goodbye_s=1))],
               agents(1))
    c.submit(NotReady("a1"))
    call_id = c.call()
    _press(c, call_id, "21")
    c.advance(1)
    c.submit(Logout("a1"))
    assert call_id in c.acd.callers
    assert c.acd.stats["q"].exited_empty == 0


def test_a_shutdown_leave_is_counted_and_logged_as_a_system_exit():
    from switchd.core.inputs import Shutdown
    c = Centre([queue()], agents(1))
    c.submit(NotReady("a1"))
    call_id = c.call()
    c.advance(30)
    c.acd.stop()
    c.submit(Shutdown())
    s = c.acd.stats["q"]
    assert (s.system_exits, s.abandoned, s.left) == (1, 0, 1)
    assert any(x.endswith("|q|NONE|SYSTEMEXIT|1|1|30") for x in c.queue_log())
    del call_id


def test_a_pickup_by_a_phone_that_is_no_agents_is_recorded_as_connected():
    from switchd.core.inputs import Pickup
    c = Centre([queue()], agents(1))
    call_id = c.call()
    assert c.ringing() == ["ext/201"]
    c.submit(Pickup("ext/210", call_id))              # a supervisor's desk grabs it
    (conn,) = c.of(QueueConnected)
    assert (conn.agent, conn.line, conn.ring_s) == (None, "ext/210", 0.0)
    assert c.agent_state("a1") is AgentState.READY
    c.caller_hangs_up(call_id)
    assert c.cdr(call_id).agent is None


def test_a_pickup_from_a_ready_agents_phone_is_that_agents_queue_call():
    from switchd.core.inputs import Pickup
    c = Centre([queue(strategy=Strategy.LINEAR, wrapup_s=30)], agents(2))
    call_id = c.call()
    assert c.ringing() == ["ext/201"]      # linear: a1's phone rings, a2 is free
    c.submit(Pickup("ext/202", call_id))   # a2 grabs it from its own phone
    assert c.agent_state("a1") is AgentState.READY
    assert c.agent_state("a2") is AgentState.ON_CALL
    (conn,) = c.of(QueueConnected)
    assert (conn.agent, conn.line) == ("a2", "ext/202")
    c.advance(40)
    c.hangup("ext/202")
    s = c.acd.stats["q"]
    assert (s.answered, s.talk_count, s.talk_sum) == (1, 1, 40)
    assert any(x.startswith(f"{call_id}|q|a2|COMPLETEAGENT|0|40|1") for x in c.queue_log())
    assert c.agent_state("a2") is AgentState.WRAP_UP
    assert c.cdr(call_id).agent == "a2"
    c.check_invariants()


def test_a_pickup_from_the_phone_of_an_agent_in_wrap_up_is_nobodys_agent_call():
    # A team leader's desk shared with an agent (in wrap-up) grabs a waiting caller: the
    # agent's figures and state are untouched, the CDR names no agent.
    from switchd.core.inputs import Pickup
    c = Centre([queue(strategy=Strategy.LINEAR, wrapup_s=60)], agents(1))
    first = c.call()
    c.answer(201)
    c.advance(10)
    c.hangup("ext/201")
    assert c.agent_state("a1") is AgentState.WRAP_UP
    call_id = c.call()
    c.advance(5)
    c.submit(Pickup("ext/201", call_id))
    conn = [e for e in c.of(QueueConnected) if e.call_id == call_id]
    assert [(e.agent, e.line) for e in conn] == [(None, "ext/201")]
    assert c.agent_state("a1") is AgentState.WRAP_UP
    [a1] = [a for a in c.acd.agent_status(c.now) if a.agent_id == "a1"]
    assert a1.total.answered == 1      # the first call only
    c.hangup("ext/201")
    assert c.cdr(call_id).agent is None and c.cdr(first).agent == "a1"
    c.check_invariants()


def test_a_pickup_after_a_transfer_into_another_queue_clears_the_first_agent():
    from switchd.core.inputs import Pickup
    c = Centre([queue("A"), queue("B")], agents(1, ("A",)) + agents(1, ("B",), first=2))
    c.submit(NotReady("a2"))
    call_id = c.call("A")
    c.answer(201)
    c.advance(20)
    c.submit(Redirect(call_id, Target(TargetKind.QUEUE, "B"), line="ext/201"))
    c.advance(10)
    c.submit(Pickup("ext/210", call_id))
    c.advance(50)
    c.hangup("ext/210")
    cdr = c.cdr(call_id)
    assert (cdr.agent, cdr.queue, cdr.extension, cdr.wait_s) == (None, "B", 210, 10)


def test_a_failed_callback_attempt_is_no_talk_and_no_wrapup():
    from switchd.core.inputs import FarBusy
    c = _callback_centre(retries=0)
    _callback_turn(c)
    c.answer(201)
    c.advance(25)
    trunk = next(n for n, ln in c.core.lines.items()
                 if n.startswith("trunk/") and ln.status.value == "alerting")
    c.submit(FarBusy(trunk))
    c.hangup("ext/201")
    s = c.acd.stats["q"]
    assert (s.answered, s.talk_count, s.talk_sum) == (0, 0, 0)
    assert c.agent_state("a1") is AgentState.READY
    assert c.acd.agents["a1"].total.talk_s == 0


def test_queue_log_fields_never_break_the_line_format():
    from switchd.events import QueueLogEntry
    line = QueueLogEntry(T0, "c1", "q", "a1", "PAUSE", ("lunch|long\nbreak",)).line()
    assert line == f"{int(T0)}|c1|q|a1|PAUSE|lunch_long_break"


def test_a_not_ready_login_is_logged_paused():
    c = Centre([queue()], agents(1, login=False))
    c.submit(Login("a1", ready=False))
    assert c.queue_log()[-2:] == ["NONE|q|a1|ADDMEMBER", "NONE|q|a1|PAUSE|login"]


def test_completed_intervals_are_kept_on_the_clock():
    c = Centre([queue()], agents(1))
    one = c.call(caller="5550001")
    c.answer(201)
    c.caller_hangs_up(one)
    c.advance(900)                           # T0 is on a 15-minute boundary
    c.call(caller="5550002")
    st = c.acd.queue_status("q", c.now)
    assert st.previous is not None and st.previous.answered == 1
    assert st.previous_span == (T0, T0 + 900)
    assert (st.interval.offered, st.total.offered) == (1, 2)


def test_an_agent_dialling_a_callbacks_customer_cannot_pause_or_leave():
    from switchd.acd.engine import AcdError
    c = _callback_centre()
    _callback_turn(c)
    c.answer(201)                                   # ringback: the customer is dialled
    for req in (NotReady("a1"), Logout("a1")):
        with pytest.raises(AcdError) as exc:
            c.submit(req)
        assert "callback" in exc.value.msg
    c.check_invariants()


def test_confirming_a_callback_stops_the_ringing_and_a_pickup_meanwhile_answers_it():
    from switchd.core.inputs import Pickup
    from switchd.events import QueueCallback
    c = _callback_centre()
    call_id = c.call()
    assert c.ringing() == ["ext/201"]               # a1 rings, the caller asks anyway
    _press(c, call_id, "21")
    assert c.ringing() == []                        # the caller is leaving the line
    assert c.agent_state("a1") is AgentState.READY  # and is not called back meanwhile
    assert not [e for e in c.of(QueueCallback) if e.outcome == "dialling"]
    c.submit(Pickup("ext/210", call_id))            # a supervisor takes it before goodbye
    assert [e.reason for e in leaves(c, call_id)] == [QueueExit.ANSWERED]
    c.advance(60)
    assert not [e for e in c.of(QueueCallback) if e.outcome == "dialling"]
    c.check_invariants()


def test_a_ring_groups_ring_on_an_agents_phone_is_a_call_of_its_own():
    from switchd.acd.model import RingGroup, RingStrategy
    c = Centre([queue(wrapup_s=30)], agents(1),
               groups=[RingGroup("desk", RingStrategy.RINGALL, (201,))])
    call_id = c.call("desk")
    c.answer(201)
    c.submit(NotReady("a1", "after this call"))     # allowed: not a queue call
    c.advance(20)
    c.caller_hangs_up(call_id)
    assert c.agent_state("a1") is AgentState.NOT_READY
    assert c.acd.agents["a1"].total.answered == 0
    assert c.acd.stats["group:desk"].answered == 1
    assert c.cdr(call_id).agent is None


def test_a_waiting_caller_redirected_elsewhere_leaves_its_queue_for_good():
    """A waiting caller the switch sends on (a supervisor's transfer, a flow) is out of its
    queue at once: it leaves with SYSTEMEXIT and is never offered from there again."""
    ags = (AgentSettings("a1", extension=201, queues={"A": 0}, login=True),
           AgentSettings("a2", extension=202, queues={"B": 0}, login=True))
    c = Centre([queue("A"), queue("B")], ags)
    c.submit(NotReady("a1"))
    call_id = c.call("A", caller="5550001")
    c.advance(4)
    c.submit(Redirect(call_id, Target(TargetKind.QUEUE, "B")))
    (left,) = leaves(c, call_id)
    assert (left.queue, left.reason) == ("A", QueueExit.SYSTEM)
    assert c.acd.callers[call_id].queue == "B" and c.ringing() == ["ext/202"]
    c.submit(Ready("a1"))                  # free again in A: nothing left there for it
    assert c.ringing() == ["ext/202"]
    assert any("|A|NONE|SYSTEMEXIT|" in line for line in c.queue_log())
    c.answer(202)
    c.caller_hangs_up(call_id)
    assert c.cdr(call_id).queue == "B"
    c.check_invariants()
