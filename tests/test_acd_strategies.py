"""Each queue strategy's choice on constructed scenarios (the real core and ACD, virtual time)."""

from __future__ import annotations

from collections import Counter

import pytest

from switchd.acd.inputs import NotReady, Ready
from switchd.acd.model import AgentSettings, PenaltyRule, Strategy
from switchd.events import AgentState, QueueOffered
from tests.acdhelp import Centre, agents, queue


def take_call(c: Centre, ext: int, talk_s: float, caller: str = "5550100") -> None:
    """Only ``ext``'s agent is ready: it takes one call and talks ``talk_s``; the others
    are made not ready meanwhile and ready again afterwards (their histories unchanged)."""
    others = [a for a in c.acd.agents.values()
              if a.line != f"ext/{ext}" and a.state is AgentState.READY]
    for a in others:
        c.submit(NotReady(a.agent_id))
    call_id = c.call(caller=caller)
    assert c.ringing() == [f"ext/{ext}"]
    c.answer(ext)
    c.advance(talk_s)
    c.caller_hangs_up(call_id)
    for a in others:
        c.submit(Ready(a.agent_id))


def first_offer(c: Centre, caller: str = "5559999") -> str:
    """Ring the queue once; the extension the strategy picked."""
    c.call(caller=caller)
    ringing = c.ringing()
    assert len(ringing) == 1, ringing
    return ringing[0]


def test_longest_idle_picks_the_agent_whose_last_call_ended_longest_ago():
    c = Centre([queue(strategy=Strategy.LONGEST_IDLE)], agents(3))
    c.advance(1)
    take_call(c, 202, 10)   # a2's call ends at 11
    take_call(c, 201, 10)   # a1's at 21
    take_call(c, 203, 10)   # a3's at 31
    assert first_offer(c) == "ext/202"
    c.check_invariants()


def test_linear_always_tries_member_order_first():
    c = Centre([queue(strategy=Strategy.LINEAR)], agents(3))
    take_call(c, 201, 5)
    take_call(c, 202, 5)
    assert first_offer(c) == "ext/201"
    c.submit(NotReady("a1"))
    c.check_invariants()


def test_round_robin_remembers_who_was_rung_last():
    c = Centre([queue(strategy=Strategy.ROUND_ROBIN)], agents(3))
    rung = []
    for i in range(4):
        call_id = c.call(caller=f"555000{i}")
        (ext,) = c.ringing()
        rung.append(ext)
        c.answer(ext[4:])
        c.caller_hangs_up(call_id)
    assert rung == ["ext/201", "ext/202", "ext/203", "ext/201"]


def test_fewest_calls_counts_this_queues_answered_calls():
    c = Centre([queue(strategy=Strategy.FEWEST_CALLS)], agents(3))
    take_call(c, 201, 5)
    take_call(c, 201, 5)
    take_call(c, 203, 5)
    assert first_offer(c) == "ext/202"


def test_least_talk_time_picks_the_agent_who_talked_least_in_this_queue():
    c = Centre([queue(strategy=Strategy.LEAST_TALK_TIME)], agents(3))
    take_call(c, 201, 30)
    take_call(c, 202, 5)
    take_call(c, 203, 20)
    assert first_offer(c) == "ext/202"


def test_ringall_rings_every_free_agent_and_the_first_to_answer_takes_it():
    c = Centre([queue(strategy=Strategy.RINGALL)], agents(3))
    c.submit(NotReady("a3"))
    call_id = c.call()
    assert c.ringing() == ["ext/201", "ext/202"]
    c.answer(202)
    assert c.ringing() == []
    assert c.agent_state("a1") is AgentState.READY
    assert c.agent_state("a2") is AgentState.ON_CALL
    assert call_id not in c.acd.callers
    c.check_invariants()


def test_random_and_weighted_random_spread_calls_by_weight():
    counts: dict[Strategy, Counter[str]] = {}
    for strategy in (Strategy.RANDOM, Strategy.WEIGHTED_RANDOM):
        ags = (AgentSettings("a1", extension=201, queues={"q": 0}, login=True, weight=1.0),
               AgentSettings("a2", extension=202, queues={"q": 0}, login=True, weight=3.0))
        c = Centre([queue(strategy=strategy)], ags, seed=7)
        got: Counter[str] = Counter()
        for i in range(800):
            call_id = c.call(caller=f"55{i:05d}")
            (ext,) = c.ringing()
            got[ext] += 1
            c.caller_hangs_up(call_id)
        counts[strategy] = got
    r, w = counts[Strategy.RANDOM], counts[Strategy.WEIGHTED_RANDOM]
    # Binomial(800, 0.5): sd 14; weighted 0.75: mean 600, sd 12. Six sd either way.
    assert abs(r["ext/201"] - 400) < 85
    assert abs(w["ext/202"] - 600) < 75


def test_lowest_penalty_first_then_skills_rules_widen_the_range():
    ags = (AgentSettings("expert", extension=201, queues={"q": 0}, login=True),
           AgentSettings("novice", extension=202, queues={"q": 2}, login=True))
    rules = (PenaltyRule(0, 0, 0), PenaltyRule(30, 0, 1), PenaltyRule(60, 0, 2))
    c = Centre([queue(strategy=Strategy.SKILLS, penalty_rules=rules)], ags)
    c.submit(NotReady("expert"))
    c.call()
    assert c.ringing() == []           # only penalty 0 may take it yet
    c.advance(30)
    assert c.ringing() == []           # 0..1: still nobody
    c.advance(29.9)
    assert c.ringing() == []
    c.advance(0.1)                     # exactly 60 s: 0..2 reaches the novice
    assert c.ringing() == ["ext/202"]
    assert c.of(QueueOffered)[-1].time == c.now
    c.check_invariants()


def test_a_caller_no_agent_can_take_yet_does_not_block_the_callers_behind():
    # Asterisk lets such a caller take a turn and hold the queue; switchd skips it.
    ags = (AgentSettings("expert", extension=201, queues={"q": 0}, login=True),)
    rules = (PenaltyRule(0, 0, 0), PenaltyRule(30, 1, 1))   # after 30 s: penalty 1 only
    c = Centre([queue(strategy=Strategy.SKILLS, penalty_rules=rules)], ags)
    c.submit(NotReady("expert"))
    first = c.call(caller="5550001")
    c.advance(31)
    second = c.call(caller="5550002")
    c.advance(1)
    c.submit(Ready("expert"))           # the first caller may only have penalty 1 now
    assert c.ringing() == ["ext/201"]
    assert c.of(QueueOffered)[-1].call_id == second
    assert first in c.acd.callers
    c.check_invariants()


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_never_offers_a_busy_or_paused_agent(strategy):
    c = Centre([queue(strategy=strategy)], agents(3))
    c.submit(NotReady("a1"))
    busy = c.call(caller="5550001")
    first = c.ringing()
    c.answer(first[0][4:])
    c.call(caller="5550002")
    for ext in c.ringing():
        assert ext not in ("ext/201", first[0])
    c.check_invariants()
    del busy
