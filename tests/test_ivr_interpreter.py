"""The IVR interpreter in virtual time: every node type, through the real shell and call core.

Calls arrive as core ``Incoming`` inputs on DNIS 8000 (routed to ``flow:main``), keys
as core ``Digit`` inputs on the trunk (the core turns them into ``call.dtmf``), prompts
"play" in a virtual player (2 s per file unless a test says otherwise). No sleeps: the
clock jumps from deadline to deadline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time

import pytest

from switchd.core import inputs as ci
from switchd.core.routing import Target
from switchd.events import IvrOutcome, IvrRouteRequest, RouteFail
from switchd.ivr import say
from switchd.ivr.inputs import PromptDone, RouteReply
from switchd.ivr.interpreter import (
    PATH_HEAD,
    PATH_MAX,
    STEP_BUDGET,
    Ivr,
    IvrPath,
    RouteReplyError,
    Session,
    State,
    render,
    submit_reply,
)
from switchd.ivr.model import (
    Branch,
    Case,
    Collect,
    Cond,
    CondOp,
    CondSubject,
    Goto,
    Hangup,
    Holidays,
    Menu,
    NodeType,
    Play,
    RouteRequest,
    Say,
    SayKind,
    Schedule,
    SetVars,
    TimeRange,
    Transfer,
    Voicemail,
)
from tests.ivrhelp import Rig, at_local, flow, flowset, node, prompt_path

BYE = node(Hangup, "bye")
FALLBACK = node(Hangup, "fallback")


def _t(rig: Rig, t0: float, name: str, call_id: str) -> list[float]:
    """Times (relative to ``t0``) of the call's events named ``name``."""
    return [round(e.time - t0, 6) for e in rig.of(name, call_id)]


def _leave_time(rig: Rig, call_id: str, node_name: str, t0: float) -> float:
    return next(round(e.time - t0, 6) for e in rig.of("ivr.leave", call_id) if e.node == node_name)


def _done(rig: Rig) -> None:
    """No session, no timer, nothing playing."""
    assert rig.ivr.sessions == {}
    assert rig.ivr.next_deadline() is None
    assert not rig.player.busy()


# ------------------------------------------------------------------ play


def test_play_goes_on_when_its_prompts_end():
    f = flow([node(Play, "welcome", prompts=["zh/welcome", "en/welcome"], next="bye"), BYE])
    rig = Rig(f, durations={"zh/welcome": 1.5, "en/welcome": 2.5})
    t0 = rig.now
    c = rig.call()
    rig.idle()
    assert rig.plays(c) == [(t0, ("zh/welcome", "en/welcome"))]  # one play, both files in order
    enter = rig.of("ivr.enter", c)[0]
    assert (enter.node, enter.node_type, enter.prompt) == ("welcome", "play", "zh/welcome,en/welcome")
    assert rig.leaves(c)[0] == ("welcome", "bye", "end of prompt", None)
    assert _leave_time(rig, c, "welcome", t0) == 4.0
    assert rig.exit(c).outcome == "hangup"
    _done(rig)


def test_play_with_barge_in_stops_at_a_key_which_it_consumes():
    f = flow([node(Play, "welcome", prompts=["welcome"], next="bye"), BYE])
    rig = Rig(f)
    t0 = rig.now
    c = rig.call()
    rig.run(0.5)
    rig.press(c, "5")
    assert rig.leaves(c)[0] == ("welcome", "bye", "barge-in", "5")
    assert _leave_time(rig, c, "welcome", t0) == 0.5
    assert rig.player.stopped == [(t0 + 0.5, c)]
    rig.idle()
    _done(rig)


def test_play_without_barge_in_ignores_keys():
    f = flow([node(Play, "legal", prompts=["legal"], barge_in=False, next="bye"), BYE])
    rig = Rig(f)
    t0 = rig.now
    c = rig.call()
    rig.run(0.5)
    rig.press(c, "12")
    assert rig.ivr.sessions[c].ignored_keys == "12"
    rig.idle()
    assert rig.leaves(c)[0] == ("legal", "bye", "end of prompt", None)
    assert rig.ignored(c) == [("legal", "12")]  # not consumed, but not hidden either
    assert _leave_time(rig, c, "legal", t0) == 2.0


def test_a_key_that_barges_a_play_is_not_seen_by_the_next_menu():
    f = flow([node(Play, "welcome", prompts=["welcome"], next="menu"),
              node(Menu, "menu", prompts=["menu"], choices={"1": "bye"}, timeout_s=5, retries=0,
                   fallback="fallback"),
              BYE, FALLBACK])
    rig = Rig(f)
    t0 = rig.now
    c = rig.call()
    rig.run(1)
    rig.press(c, "1")  # barges the welcome: gone, the menu must not choose "1" with it
    rig.idle()
    assert rig.leaves(c)[:2] == [("welcome", "menu", "barge-in", "1"),
                                 ("menu", "fallback", "timeout x1", None)]
    # menu prompt 1..3 s, then 5 s of silence
    assert _leave_time(rig, c, "menu", t0) == 8.0


def test_a_prompt_that_cannot_be_played_is_reported_and_the_call_goes_on():
    f = flow([node(Play, "welcome", prompts=["gone"], next="bye"), BYE])
    rig = Rig(f, broken=["gone"])
    c = rig.call()
    rig.idle()
    assert len(rig.errors(c)) == 1 and "/prompts/gone.wav" in rig.errors(c)[0]
    assert rig.entered(c) == ["welcome", "bye"]


def test_a_prompt_name_without_a_file_is_reported_and_skipped():
    f = flow([node(Play, "welcome", prompts=["welcome", "ghost"], next="bye"), BYE])
    f = dataclasses.replace(f, prompt_files={"welcome": prompt_path("welcome")})
    rig = Rig(f)
    c = rig.call()
    rig.idle()
    assert rig.plays(c)[0][1] == ("welcome",)
    assert "ghost" in rig.errors(c)[0]


# ------------------------------------------------------------------ menu

MENU_FLOW = [
    node(Menu, "menu", prompts=["menu"], choices={"1": "sales", "2": "support"}, timeout_s=5,
         retries=2, invalid_prompts=["invalid"], timeout_prompts=["no_input"], fallback="operator",
         into="choice"),
    node(Hangup, "sales"), node(Hangup, "support"), node(Hangup, "operator"),
]


def test_menu_good_key_after_the_prompt_sets_its_variable():
    rig = Rig(flow(MENU_FLOW))
    t0 = rig.now
    c = rig.call()
    rig.run(3)
    rig.press(c, "2")
    rig.idle()
    assert rig.leaves(c)[0] == ("menu", "support", "key 2", "2")
    assert _leave_time(rig, c, "menu", t0) == 3.0
    assert json.loads(rig.cdr(c).ivr_vars) == {"choice": "2"}


def test_menu_key_during_the_prompt_decides_at_once():
    rig = Rig(flow(MENU_FLOW))
    t0 = rig.now
    c = rig.call()
    rig.run(0.7)
    rig.press(c, "1")
    assert rig.leaves(c)[0] == ("menu", "sales", "key 1", "1")
    assert rig.player.stopped == [(t0 + 0.7, c)]


def test_menu_invalid_key_then_good_key():
    rig = Rig(flow(MENU_FLOW))
    t0 = rig.now
    c = rig.call()
    rig.run(3)
    rig.press(c, "7")
    rig.run(5)  # invalid (2 s) + menu (2 s) replay, then a second
    rig.press(c, "1")
    rig.idle()
    assert rig.leaves(c)[:2] == [("menu", "menu", "invalid key 7, try 2 of 3", "7"),
                                 ("menu", "sales", "key 1", "1")]
    assert rig.plays(c) == [(t0, ("menu",)), (t0 + 3, ("invalid", "menu"))]
    assert [e.prompt for e in rig.of("ivr.enter", c)][:2] == ["menu", "invalid,menu"]


def test_menu_timeouts_use_up_the_retries_then_fallback():
    rig = Rig(flow(MENU_FLOW), durations={"no_input": 1.0})
    t0 = rig.now
    c = rig.call()
    rig.idle()
    # 0-2 menu, 2-7 wait; 7-10 no_input+menu, 10-15 wait; 15-18, 18-23 wait -> fallback
    assert rig.leaves(c)[:3] == [("menu", "menu", "timeout, try 2 of 3", None),
                                 ("menu", "menu", "timeout, try 3 of 3", None),
                                 ("menu", "operator", "timeout x3", None)]
    assert _t(rig, t0, "ivr.leave", c)[:3] == [7.0, 15.0, 23.0]
    assert rig.exit(c).node == "operator"
    _done(rig)


def test_menu_invalid_keys_use_up_the_retries_then_fallback():
    rig = Rig(flow(MENU_FLOW))
    c = rig.call()
    for _ in range(3):
        rig.run(0.1)
        rig.press(c, "9")
    assert rig.leaves(c)[2] == ("menu", "operator", "invalid x3", "9")


def test_a_key_during_the_invalid_prompt_counts_for_the_menu():
    rig = Rig(flow(MENU_FLOW))
    t0 = rig.now
    c = rig.call()
    rig.run(3)
    rig.press(c, "8")
    rig.run(0.5)  # the invalid prompt plays
    rig.press(c, "2")
    assert rig.leaves(c)[1] == ("menu", "support", "key 2", "2")
    assert _leave_time(rig, c, "menu", t0) == 3.0  # the first leave: the retry
    assert rig.player.stopped == [(t0 + 3.5, c)]


def test_menu_without_prompts_starts_its_timer_at_once():
    f = flow([node(Menu, "menu", prompts=[], choices={"1": "bye"}, timeout_s=4, retries=0,
                   fallback="fallback"), BYE, FALLBACK])
    rig = Rig(f)
    t0 = rig.now
    c = rig.call()
    rig.idle()
    assert rig.leaves(c)[0] == ("menu", "fallback", "timeout x1", None)
    assert _leave_time(rig, c, "menu", t0) == 4.0


def test_menu_without_barge_in_ignores_keys_while_its_prompt_plays():
    f = flow([node(Menu, "menu", prompts=["menu"], choices={"1": "bye"}, timeout_s=4, retries=0,
                   fallback="fallback", barge_in=False), BYE, FALLBACK])
    rig = Rig(f)
    c = rig.call()
    rig.run(1)
    rig.press(c, "1")
    assert rig.ivr.sessions[c].ignored_keys == "1"
    rig.run(2)
    rig.press(c, "1")
    assert rig.leaves(c)[0] == ("menu", "bye", "key 1", "1")
    assert rig.ignored(c) == [("menu", "1")]


# --------------------------------------------------------------- collect


def _collect(**kw: object) -> list:
    fields = dict(prompts=["enter"], into="account", min_digits=4, max_digits=4,
                  terminator="#", first_timeout_s=5, inter_digit_timeout_s=3, retries=2,
                  invalid_prompts=["invalid"], next="done", fallback="fallback")
    fields.update(kw)
    return [node(Collect, "account", **fields), node(Hangup, "done"), FALLBACK]


def test_collect_exactly_n_digits_without_terminator_completes_at_the_last_key():
    rig = Rig(flow(_collect(terminator=None)))
    t0 = rig.now
    c = rig.call()
    rig.run(2.5)
    rig.press(c, "1234", gap=0.4)
    assert rig.leaves(c)[0] == ("account", "done", "4 digits", "1234")
    assert _leave_time(rig, c, "account", t0) == pytest.approx(3.7)  # no timeout waited
    assert rig.ivr.sessions == {}  # done -> hangup at once
    assert json.loads(rig.cdr(c).ivr_vars) == {"account": "1234"}


def test_collect_all_typed_ahead_during_the_prompt_completes_at_once():
    # Without barge-in the prompt keeps playing while the keys count; the last one ends it.
    rig = Rig(flow(_collect(barge_in=False)), durations={"enter": 10.0})
    t0 = rig.now
    c = rig.call()
    rig.run(1)
    rig.press(c, "9876", gap=0.5)
    assert rig.leaves(c)[0] == ("account", "done", "4 digits", "9876")
    assert _leave_time(rig, c, "account", t0) == 2.5
    assert rig.player.stopped == [(t0 + 2.5, c)]  # the prompt stopped mid-way


def test_collect_terminator_ends_input_and_is_not_stored():
    rig = Rig(flow(_collect(max_digits=8)))
    c = rig.call()
    rig.run(3)
    rig.press(c, "12345#")
    assert rig.leaves(c)[0] == ("account", "done", "terminator #", "12345#")
    assert json.loads(rig.cdr(c).ivr_vars) == {"account": "12345"}


def test_collect_typed_ahead_with_terminator_completes_at_once():
    rig = Rig(flow(_collect(max_digits=8)), durations={"enter": 10.0})
    t0 = rig.now
    c = rig.call()
    rig.run(1)
    rig.press(c, "55555#")
    assert rig.leaves(c)[0] == ("account", "done", "terminator #", "55555#")
    assert _leave_time(rig, c, "account", t0) == 1.0


def test_collect_inter_digit_timeout_completes():
    rig = Rig(flow(_collect(max_digits=8)))
    t0 = rig.now
    c = rig.call()
    rig.run(3)
    rig.press(c, "12345", gap=1.0)  # last key at 7
    rig.idle()
    assert rig.leaves(c)[0] == ("account", "done", "inter-digit timeout", "12345")
    assert _leave_time(rig, c, "account", t0) == 10.0


def test_collect_keys_during_prompt_without_barge_in_start_the_inter_digit_timer_at_its_end():
    rig = Rig(flow(_collect(max_digits=8, barge_in=False)), durations={"enter": 4.0})
    t0 = rig.now
    c = rig.call()
    rig.run(1)
    rig.press(c, "12345")
    rig.idle()
    assert rig.leaves(c)[0] == ("account", "done", "inter-digit timeout", "12345")
    assert _leave_time(rig, c, "account", t0) == 7.0  # prompt ends at 4, + 3 s


def test_collect_barge_in_stops_the_prompt_at_the_first_key():
    rig = Rig(flow(_collect(max_digits=8)), durations={"enter": 10.0})
    t0 = rig.now
    c = rig.call()
    rig.run(1)
    rig.press(c, "12")
    assert rig.player.stopped == [(t0 + 1, c)]
    rig.idle()
    assert _leave_time(rig, c, "account", t0) == 4.0


def test_collect_too_short_retries_then_fallback():
    rig = Rig(flow(_collect(max_digits=8)))
    t0 = rig.now
    c = rig.call()
    for _ in range(3):
        rig.run(0.5)
        rig.press(c, "12#")
    assert rig.leaves(c) [:3] == [
        ("account", "account", "2 digits, at least 4 needed, try 2 of 3", "12#"),
        ("account", "account", "2 digits, at least 4 needed, try 3 of 3", "12#"),
        ("account", "fallback", "invalid x3", "12#")]
    assert rig.plays(c)[1] == (t0 + 0.5, ("invalid", "enter"))
    assert "account" not in json.loads(rig.cdr(c).ivr_vars)


def test_collect_pattern_must_match_the_whole_input():
    rig = Rig(flow(_collect(max_digits=8, pattern="[1-5]{4,}")))
    c = rig.call()
    rig.run(3)
    rig.press(c, "12349#")
    assert rig.leaves(c)[0] == ("account", "account",
                                "12349 does not match [1-5]{4,}, try 2 of 3", "12349#")
    rig.press(c, "1234#")
    assert rig.leaves(c)[1] == ("account", "done", "terminator #", "1234#")


def test_collect_no_key_after_the_prompt_is_a_failed_try():
    rig = Rig(flow(_collect(retries=1)))
    t0 = rig.now
    c = rig.call()
    rig.idle()
    assert rig.leaves(c)[:2] == [("account", "account", "timeout, try 2 of 2", None),
                                 ("account", "fallback", "timeout x2", None)]
    # 0-2 prompt, 5 s; 7-11 invalid+enter, 5 s
    assert _t(rig, t0, "ivr.leave", c)[:2] == [7.0, 16.0]


# ------------------------------------------------------------------- say


def _say_flow(kind: SayKind, value: str, **kw: object):
    language = str(kw.get("language") or "en")
    frags = say.all_fragments(language)
    return flow([node(Say, "say", kind=kind, value=value, next="bye", **kw), BYE],
                extra_prompts=frags, vars={"balance": "12.50"}, language="en")


def test_say_plays_the_fragments_of_the_value():
    rig = Rig(_say_flow(SayKind.AMOUNT, "{balance}"), default_s=0.5)
    t0 = rig.now
    c = rig.call()
    rig.idle()
    want = tuple(say.fragments(SayKind.AMOUNT, "12.50", "en"))
    assert rig.plays(c) == [(t0, want)]
    assert _leave_time(rig, c, "say", t0) == pytest.approx(0.5 * len(want))
    assert rig.leaves(c)[0] == ("say", "bye", "said 12.50 as amount", None)


def test_say_barged_into_says_barge_in():
    rig = Rig(_say_flow(SayKind.DIGITS, "0571"), default_s=0.5)
    c = rig.call()
    rig.run(0.7)
    rig.press(c, "#")
    assert rig.leaves(c)[0] == ("say", "bye", "barge-in", "#")


def test_say_that_cannot_be_played_does_not_claim_it_was_said():
    rig = Rig(_say_flow(SayKind.NUMBER, "7"), broken=["en/say/7"])
    c = rig.call()
    rig.idle()
    assert rig.leaves(c)[0] == ("say", "bye", "say failed", None)
    assert "prompt could not be played" in rig.errors(c)[0]


def test_say_in_the_nodes_own_language():
    rig = Rig(_say_flow(SayKind.DIGITS, "0571", language="zh"), default_s=0.5)
    c = rig.call()
    rig.idle()
    assert rig.plays(c)[0][1] == tuple(say.fragments(SayKind.DIGITS, "0571", "zh"))


def test_say_a_value_it_cannot_read_is_an_error_and_the_call_goes_on():
    rig = Rig(_say_flow(SayKind.DATE, "not a date"))
    c = rig.call()
    rig.idle()
    assert len(rig.errors(c)) == 1 and "not a date" in rig.errors(c)[0]
    assert rig.leaves(c)[0] == ("say", "bye", "say failed", None)
    assert rig.plays(c) == []


def test_say_a_fragment_without_a_recording_is_an_error_and_the_call_goes_on():
    f = flow([node(Say, "say", kind=SayKind.NUMBER, value="7", next="bye"), BYE])
    rig = Rig(f)
    c = rig.call()
    rig.idle()
    assert "en/say/7" in rig.errors(c)[0]
    assert rig.entered(c) == ["say", "bye"]


# -------------------------------------------------------------- schedule

NINE_TO_SIX = (TimeRange(9 * 3600, 18 * 3600),)


def _schedule_flow(tz: str = "Asia/Shanghai", holidays: Holidays | None = None,
                   **kw: object):
    hours = {d: NINE_TO_SIX for d in range(5)}
    return flow([node(Schedule, "hours", hours=hours, open="open", closed="closed", **kw),
                 node(Hangup, "open"), node(Hangup, "closed"), node(Hangup, "holiday")],
                timezone=tz, holidays=holidays or Holidays())


def _decide(f, at: float) -> tuple[str | None, str]:
    rig = Rig(f, at=at)
    c = rig.call()
    (_, nxt, why, _), *_ = rig.leaves(c)
    return nxt, why


def test_schedule_the_last_second_is_open_and_18_00_00_is_closed():
    f = _schedule_flow()
    assert _decide(f, at_local("2026-12-07T17:59:59"))[0] == "open"
    nxt, why = _decide(f, at_local("2026-12-07T18:00:00"))
    assert nxt == "closed" and why == "Mon 18:00:00 Asia/Shanghai outside 09:00-18:00"
    assert _decide(f, at_local("2026-12-07T09:00:00"))[0] == "open"


def test_schedule_public_holiday_goes_to_holiday_or_closed():
    cn = Holidays(country="CN")
    at = at_local("2026-10-01T10:00:00")  # a Thursday, National Day
    nxt, why = _decide(_schedule_flow(holidays=cn, holiday="holiday"), at)
    assert nxt == "holiday" and "National Day" in why
    assert _decide(_schedule_flow(holidays=cn), at)[0] == "closed"


def test_schedule_make_up_working_day_is_open():
    sat = dt.date(2026, 12, 12)
    at = at_local("2026-12-12T10:00:00")
    assert _decide(_schedule_flow(), at)[0] == "closed"
    assert _decide(_schedule_flow(holidays=Holidays(workdays=frozenset({sat}))), at)[0] == "open"


def test_schedule_follows_the_flows_zone_across_dst():
    f = _schedule_flow(tz="America/New_York")
    # Mon 2026-03-09, the day after spring-forward: 09:30 EDT is 13:30 UTC (EST would say 08:30).
    at = dt.datetime(2026, 3, 9, 13, 30, tzinfo=dt.UTC).timestamp()
    assert _decide(f, at)[0] == "open"
    # Mon 2026-11-02, the day after fall-back: 17:30 EST is 22:30 UTC (EDT would say 18:30).
    at = dt.datetime(2026, 11, 2, 22, 30, tzinfo=dt.UTC).timestamp()
    assert _decide(f, at)[0] == "open"
    at = dt.datetime(2026, 11, 2, 23, 0, tzinfo=dt.UTC).timestamp()
    assert _decide(f, at)[0] == "closed"


def test_schedule_ignores_the_servers_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: a different day in Shanghai
    time.tzset()
    try:
        assert _decide(_schedule_flow(), at_local("2026-12-07T17:59:59"))[0] == "open"
        assert _decide(_schedule_flow(), at_local("2026-12-07T18:00:00"))[0] == "closed"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert os.environ.get("TZ") != "Pacific/Kiritimati"


# ---------------------------------------------------------------- branch


def _branch(conds: list[Cond], **flow_kw: object):
    return flow([node(Branch, "b", cases=[Case(tuple(conds), "yes")], otherwise="no"),
                 node(Hangup, "yes"), node(Hangup, "no")], **flow_kw)


V = CondSubject.VAR
VARS = {"tier": "gold", "n": "10", "price": "1.50", "empty": "", "code": "A7"}

BRANCH_CASES = [
    (Cond(V, CondOp.EQUALS, "gold", "tier"), True),
    (Cond(V, CondOp.EQUALS, "silver", "tier"), False),
    (Cond(V, CondOp.EQUALS, "1.5", "price"), True),  # decimals compare as numbers
    (Cond(V, CondOp.EQUALS, 10, "n"), True),
    (Cond(V, CondOp.NOT_EQUALS, "silver", "tier"), True),
    (Cond(V, CondOp.NOT_EQUALS, "gold", "tier"), False),
    (Cond(V, CondOp.IN, ("silver", "gold"), "tier"), True),
    (Cond(V, CondOp.IN, ("silver", "bronze"), "tier"), False),
    (Cond(V, CondOp.PREFIX, "go", "tier"), True),
    (Cond(V, CondOp.PREFIX, "ol", "tier"), False),
    (Cond(V, CondOp.MATCHES, "[A-Z][0-9]", "code"), True),
    (Cond(V, CondOp.MATCHES, "[A-Z]", "code"), False),  # whole match
    (Cond(V, CondOp.GT, "9", "n"), True),  # 10 > 9 as numbers (as text "10" < "9")
    (Cond(V, CondOp.GT, "10", "n"), False),
    (Cond(V, CondOp.GE, "10", "n"), True),
    (Cond(V, CondOp.LT, "10.5", "n"), True),
    (Cond(V, CondOp.LT, "10", "n"), False),
    (Cond(V, CondOp.LE, "10.00", "n"), True),
    (Cond(V, CondOp.GT, "1e1", "n"), False),
    (Cond(V, CondOp.GE, "1e1", "n"), True),
    (Cond(V, CondOp.GT, "a", "tier"), False),  # not numbers: no order
    (Cond(V, CondOp.LT, "zzz", "tier"), False),
    (Cond(V, CondOp.SET, True, "tier"), True),
    (Cond(V, CondOp.SET, True, "empty"), False),
    (Cond(V, CondOp.SET, False, "empty"), True),
    (Cond(V, CondOp.SET, True, "never"), False),
    (Cond(CondSubject.CALLER, CondOp.PREFIX, "138"), True),
    (Cond(CondSubject.CALLER, CondOp.EQUALS, "13800000000"), True),
    (Cond(CondSubject.CALLER, CondOp.EQUALS, "013800000000"), False),  # numbers as text
    (Cond(CondSubject.DNIS, CondOp.EQUALS, "8000"), True),
    (Cond(CondSubject.DNIS, CondOp.IN, ("8001", "8002")), False),
    (Cond(CondSubject.VIP, CondOp.IS, True), False),
    (Cond(CondSubject.VIP, CondOp.IS, False), True),
    (Cond(CondSubject.BLACKLISTED, CondOp.IS, False), True),
    (Cond(CondSubject.BLACKLISTED, CondOp.IS, True), False),
    # Rig time: 2026-12-07 (Monday) 12:30 in Shanghai
    (Cond(CondSubject.TIME, CondOp.IS, TimeRange(12 * 3600, 13 * 3600 + 1800)), True),
    (Cond(CondSubject.TIME, CondOp.IS, TimeRange(13 * 3600, 14 * 3600)), False),
    (Cond(CondSubject.TIME, CondOp.IS, TimeRange(12 * 3600 + 1800, 13 * 3600)), True),
    (Cond(CondSubject.WEEKDAY, CondOp.IS, (0, 1)), True),
    (Cond(CondSubject.WEEKDAY, CondOp.IS, (5, 6)), False),
]


@pytest.mark.parametrize(("cond", "holds"), BRANCH_CASES, ids=[str(c) for c, _ in BRANCH_CASES])
def test_branch_condition(cond: Cond, holds: bool):
    rig = Rig(_branch([cond], vars=VARS), at=at_local("2026-12-07T12:30:00"))
    c = rig.call()
    assert rig.leaves(c)[0][1] == ("yes" if holds else "no")


def test_branch_time_is_the_flows_local_time():
    cond = Cond(CondSubject.TIME, CondOp.IS, TimeRange(12 * 3600, 13 * 3600))
    at = at_local("2026-12-07T12:30:00", "America/New_York")
    rig = Rig(_branch([cond], timezone="America/New_York"), at=at)
    assert rig.leaves(rig.call())[0][1] == "yes"
    rig = Rig(_branch([cond], timezone="Asia/Shanghai"), at=at)
    assert rig.leaves(rig.call())[0][1] == "no"


def test_branch_vip_flag_of_the_call():
    rig = Rig(_branch([Cond(CondSubject.VIP, CondOp.IS, True)]))
    assert rig.leaves(rig.call(vip=True))[0][1] == "yes"


def test_branch_takes_the_first_case_that_holds_and_says_why():
    f = flow([node(Branch, "b", cases=[
        Case((Cond(V, CondOp.EQUALS, "silver", "tier"),), "no"),
        Case((Cond(V, CondOp.EQUALS, "gold", "tier"), Cond(CondSubject.DNIS, CondOp.EQUALS,
                                                           "8000")), "yes"),
        Case((Cond(V, CondOp.SET, True, "tier"),), "no")], otherwise="no"),
        node(Hangup, "yes"), node(Hangup, "no")], vars=VARS)
    rig = Rig(f)
    c = rig.call()
    assert rig.leaves(c)[0] == ("b", "yes", "case 2: var tier equals gold and dnis equals 8000",
                                None)
    rig = Rig(_branch([Cond(V, CondOp.EQUALS, "x", "tier")], vars=VARS))
    c = rig.call()
    assert rig.leaves(c)[0] == ("b", "no", "else", None)


# ------------------------------------------------------------------- set


def test_set_renders_templates_in_order_and_the_cdr_gets_the_variables():
    f = flow([node(SetVars, "s", values={"a": "x{caller}", "b": "{a}-{{lit}}", "c": "{nope}"},
                   next="bye"), BYE], vars={"greeted": "no"})
    rig = Rig(f)
    c = rig.call(caller="1390000")
    rig.idle()
    assert rig.leaves(c)[0] == ("s", "bye", "set a, b, c", None)
    assert json.loads(rig.cdr(c).ivr_vars) == {"greeted": "no", "a": "x1390000",
                                              "b": "x1390000-{lit}", "c": ""}
    assert rig.cdr(c).ivr_path == "main:s>bye"


def test_set_value_over_the_limit_is_cut_and_reported():
    f = flow([node(SetVars, "s", values={"a": "0123456789", "b": "{a}{a}"}, next="bye"), BYE])
    rig = Rig(f, max_var_len=12)
    c = rig.call()
    assert json.loads(rig.cdr(c).ivr_vars)["b"] == "012345678901"
    assert "variable b would be 20 characters" in rig.errors(c)[0]


def test_render():
    assert render("{a}{{b}}{c}", {"a": "1"}) == "1{b}"
    assert render("}}{{", {}) == "}{"


# ---------------------------------------------------------- route_request


def _crm_flow(**kw: object):
    fields = dict(timeout_s=3, choices=["say_it", "nope"], fallback="crm_down",
                  prompts=["wait"], next="say_it", sets=["balance"])
    fields.update(kw)
    return flow([node(SetVars, "s", values={"account": "42"}, next="lookup"),
                 node(RouteRequest, "lookup", **fields),
                 node(Play, "say_it", prompts=["balance"], next="bye"),
                 node(Hangup, "nope"), node(Hangup, "crm_down"), node(Hangup, "elsewhere"), BYE])


def test_route_request_reply_with_variables_goes_to_the_named_node():
    rig = Rig(_crm_flow())
    t0 = rig.now
    c = rig.call()
    req = rig.of("ivr.route_request", c)[0]
    assert isinstance(req, IvrRouteRequest)
    assert (req.node, req.caller, req.dnis, req.timeout_s) == ("lookup", "13800000000", "8000", 3)
    assert json.loads(req.vars) == {"account": "42", "caller": "13800000000", "dnis": "8000",
                                    "call_id": c, "trunk": "1", "vip": "false",
                                    "blacklisted": "false"}
    assert rig.ivr.waiting_for_route(c)
    assert rig.player.played[-1][2] == (prompt_path("wait"),)
    rig.run(1)
    rig.press(c, "5")  # ignored while waiting for the CRM
    events = submit_reply(rig.ivr, rig.submit, RouteReply(c, "say_it", (("balance", "9.99"),)))
    assert [e.name for e in events][:2] == ["ivr.leave", "ivr.enter"]
    assert rig.leaves(c)[1] == ("lookup", "say_it", "CRM reply", None)
    assert rig.ignored(c) == [("lookup", "5")]
    assert rig.player.stopped == [(t0 + 1, c)]  # the hold prompt
    rig.idle()
    assert json.loads(rig.cdr(c).ivr_vars) == {"account": "42", "balance": "9.99"}
    assert rig.cdr(c).ivr_path == "main:s>lookup>say_it>bye"


def test_route_request_reply_without_next_uses_the_nodes_next():
    rig = Rig(_crm_flow())
    c = rig.call()
    rig.submit(RouteReply(c))
    assert rig.leaves(c)[1] == ("lookup", "say_it", "CRM reply", None)


@pytest.mark.parametrize(("reply", "problem"), [
    (("nowhere", ()), "next=nowhere: flow main has no such node"),
    (("elsewhere", ()), "next=elsewhere is not one of node lookup's choices (say_it, nope)"),
    (("say_it", (("balance", "9" * 10_000),)), "variable balance is 10000 characters; at most 1024"),
    (("say_it", (("9lives", "x"),)), "variable name '9lives' is not a name"),
    (("say_it", (("caller", "x"),)), "variable caller is built in"),
])
def test_bad_route_reply_sends_the_call_to_fallback_and_raises(reply, problem):
    rig = Rig(_crm_flow())
    c = rig.call()
    nxt, pairs = reply
    with pytest.raises(RouteReplyError) as err:
        submit_reply(rig.ivr, rig.submit, RouteReply(c, nxt, pairs))
    assert err.value.code == "bad_arg" and problem in err.value.msg
    assert err.value.msg.endswith("; the call went to crm_down")
    # ... and the call did not wait: it is on its fallback, the events were published.
    assert rig.leaves(c)[1] == ("lookup", "crm_down", "bad CRM reply", None)
    assert problem in rig.errors(c)[0]
    assert rig.exit(c).node == "crm_down"
    assert "balance" not in json.loads(rig.cdr(c).ivr_vars)


def test_bad_reply_handled_directly_reports_the_problem_before_leaving():
    # What Shell.submit returns for a bad reply (no raise: the events must be dispatched).
    rig = Rig(_crm_flow())
    c = rig.call()
    events = rig.submit(RouteReply(c, "nowhere"))
    assert [e.name for e in events][:3] == ["ivr.error", "ivr.leave", "ivr.enter"]
    assert events[1].next == "crm_down"


def test_reply_without_next_where_the_node_has_none_is_refused():
    rig = Rig(_crm_flow(next=None))
    c = rig.call()
    with pytest.raises(RouteReplyError, match="has no default next; name one of: say_it, nope"):
        submit_reply(rig.ivr, rig.submit, RouteReply(c))
    assert rig.exit(c).node == "crm_down"


def test_reply_to_a_call_not_waiting_or_unknown_changes_nothing():
    f = _crm_flow()
    f2 = flow([node(Play, "p", prompts=["long"], next="bye"), BYE], name="other")
    rig = Rig(flowset(f, f2))
    c = rig.call(dnis="8001")  # in flow other, playing
    before = len(rig.events)
    with pytest.raises(RouteReplyError) as err:
        submit_reply(rig.ivr, rig.submit, RouteReply(c, "say_it"))
    assert err.value.code == "not_waiting" and "node p (playing)" in err.value.msg
    with pytest.raises(RouteReplyError) as err:
        rig.submit(RouteReply("01NOSUCHCALL", "say_it"))  # through the shell: raised too
    assert err.value.code == "not_found"
    assert len(rig.events) == before and rig.ivr.sessions[c].state is State.PLAYING


def test_route_request_timeout_goes_to_fallback():
    rig = Rig(_crm_flow())
    t0 = rig.now
    c = rig.call()
    rig.idle()
    assert rig.leaves(c)[1] == ("lookup", "crm_down", "CRM timeout 3 s", None)
    assert _leave_time(rig, c, "lookup", t0) == 3.0
    assert rig.player.stopped == [(t0 + 3, c)]
    with pytest.raises(RouteReplyError) as err:
        rig.ivr.check_reply(RouteReply(c, "say_it"))
    assert err.value.code == "not_found"
    _done(rig)


def test_late_route_reply_after_timeout_is_not_waiting():
    f = _crm_flow(fallback="hold")
    f = flow([*f.nodes.values(), node(Play, "hold", prompts=["sorry"], next="bye")])
    rig = Rig(f)
    c = rig.call()
    rig.run(3.5)
    with pytest.raises(RouteReplyError) as err:
        submit_reply(rig.ivr, rig.submit, RouteReply(c, "say_it"))
    assert err.value.code == "not_waiting"


# -------------------------------------------------------------- transfer


def _transfer_flow(to: str = "group:sales", on_fail: str | None = "sorry", **kw: object):
    return flow([node(Transfer, "xfer", target=to, on_fail=on_fail, **kw),
                 node(Play, "sorry", prompts=["sorry"], next="bye"), BYE])


def test_transfer_answered_ends_the_flow():
    rig = Rig(_transfer_flow())
    c = rig.call()
    assert rig.ivr.sessions[c].state is State.TRANSFERRING
    rig.run(2)
    rig.press(c, "1")  # ignored while it rings
    rig.submit(ci.Answer("ext/202"))
    ex = rig.exit(c)
    assert (ex.outcome, ex.node) == (IvrOutcome.TRANSFERRED, "xfer")
    assert ex.fields()["outcome"] == "transferred"  # the wire text is unchanged
    assert rig.leaves(c)[0] == ("xfer", None, "answered on ext/202", None)
    assert rig.ignored(c) == [("xfer", "1")]
    _done(rig)
    rig.submit(ci.Hangup("ext/202"))
    assert rig.cdr(c).ivr_path == "main:xfer"
    assert rig.cdr(c).disposition == "ANSWERED"
    assert len(rig.of("ivr.exit", c)) == 1


@pytest.mark.parametrize("where", ["playing", "waiting_keys"])
def test_a_supervisor_picking_the_caller_up_ends_the_flow_and_its_prompt(where):
    f = flow([node(Menu, "menu", prompts=["menu"], choices={"1": "bye"}, timeout_s=5,
                   retries=0, fallback="fallback"), BYE, FALLBACK])
    rig = Rig(f, durations={"menu": 2.0})
    t0 = rig.now
    c = rig.call()
    rig.run(0.5 if where == "playing" else 2.5)
    rig.submit(ci.Pickup("ext/203", c))
    ex = rig.exit(c)
    assert (ex.outcome, ex.node) == (IvrOutcome.TRANSFERRED, "menu")
    assert rig.leaves(c)[0] == ("menu", None, "picked up on ext/203", None)
    if where == "playing":
        assert rig.player.stopped == [(t0 + 0.5, c)]
    _done(rig)
    rig.press(c, "1")   # the caller now talks with the supervisor: keys go nowhere
    assert len(rig.leaves(c)) == 1
    rig.submit(ci.Hangup("ext/203"))
    assert rig.cdr(c).ivr_path == "main:menu" and rig.cdr(c).extension == 203


def test_transfer_busy_goes_to_on_fail():
    rig = Rig(_transfer_flow("extension:201"))
    rig.submit(ci.OffHook("ext/201"))
    c = rig.call()
    assert rig.leaves(c)[0] == ("xfer", "sorry", f"transfer {RouteFail.BUSY.value}", None)
    rig.idle()
    assert rig.cdr(c).ivr_path == "main:xfer>sorry>bye"


def test_transfer_no_answer_goes_to_on_fail():
    rig = Rig(_transfer_flow("extension:201", timeout_s=7))
    t0 = rig.now
    c = rig.call()
    rig.idle()
    assert rig.leaves(c)[0] == ("xfer", "sorry", "transfer no_answer", None)
    assert _leave_time(rig, c, "xfer", t0) == 7.0


def test_transfer_failing_without_on_fail_hangs_up():
    rig = Rig(_transfer_flow("extension:201", on_fail=None))
    rig.submit(ci.OffHook("ext/201"))
    c = rig.call()
    ex = rig.exit(c)
    assert (ex.outcome, ex.node) == ("hangup", "xfer")
    assert rig.cdr(c).hangup_by == "system"
    _done(rig)


def test_transfer_the_switch_refuses_goes_to_on_fail():
    f = flow([node(Menu, "menu", prompts=["menu"], choices={"1": "xfer"}, fallback="bye"),
              *_transfer_flow("extension:201").nodes.values()])
    rig = Rig(f)
    c = rig.call()
    rig.run(3)
    rig.submit(ci.Route(c, Target.parse("extension:202")))  # something else rings for it
    rig.press(c, "1")
    assert "the switch refused the transfer" in rig.errors(c)[0]
    assert rig.leaves(c)[1] == ("xfer", "sorry", "transfer refused", None)


def test_transfer_to_an_unusable_target_is_an_error():
    rig = Rig(_transfer_flow("busy", on_fail=None))
    c = rig.call()
    assert "transfer goes to extension" in rig.errors(c)[0]
    assert rig.exit(c).outcome == "error"
    assert rig.cdr(c).hangup_by == "system"


# ------------------------------------------------------- hangup, goto, errors


def test_hangup_node_releases_the_call():
    rig = Rig(flow([BYE]))
    c = rig.call()
    ex = rig.exit(c)
    assert (ex.outcome, ex.node, ex.flow, ex.version) == ("hangup", "bye", "main", "v1")
    assert ex.outcome is IvrOutcome.HANGUP and ex.fields()["outcome"] == "hangup"
    cdr = rig.cdr(c)
    assert (cdr.hangup_by, cdr.ivr_path, cdr.ivr_vars) == ("system", "main:bye", "{}")
    _done(rig)


def test_goto_continues_in_another_flow_with_the_same_variables():
    main = flow([node(SetVars, "s", values={"lang": "en"}, next="g"),
                 node(Goto, "g", flow="other", node="two")])
    other = flow([node(Play, "one", prompts=["one"], next="two"),
                  node(SetVars, "two", values={"seen": "{lang}"}, next="bye"), BYE],
                 name="other", version="o1", vars={"lang": "zh", "extra": "x"})
    rig = Rig(flowset(main, other))
    c = rig.call()
    assert rig.leaves(c)[1] == ("g", "two", "goto other", None)
    assert [(e.flow, e.version, e.node) for e in rig.of("ivr.enter", c)] == [
        ("main", "v1", "s"), ("main", "v1", "g"), ("other", "o1", "two"), ("other", "o1", "bye")]
    cdr = rig.cdr(c)
    assert cdr.ivr_path == "main:s>g>other:two>bye"
    assert json.loads(cdr.ivr_vars) == {"lang": "en", "seen": "en", "extra": "x"}
    assert rig.exit(c).flow == "other"


def test_goto_without_node_starts_the_other_flow():
    main = flow([node(Goto, "g", flow="other")])
    other = flow([node(Play, "one", prompts=["one"], next="bye"), BYE], name="other")
    rig = Rig(flowset(main, other))
    c = rig.call()
    rig.idle()
    assert rig.entered(c) == ["g", "one", "bye"]


def test_goto_to_a_missing_flow_releases_the_call_with_an_error():
    rig = Rig(flow([node(Goto, "g", flow="ghost")]))
    c = rig.call()
    assert "no flow 'ghost'" in rig.errors(c)[0]
    assert rig.exit(c).outcome == "error"
    assert rig.leaves(c) == [("g", None, "error", None)]
    assert rig.cdr(c).hangup_by == "system"
    _done(rig)


def test_a_voicemail_node_on_a_switch_without_voicemail_releases_the_call_with_an_error():
    # (Voicemail itself: tests/test_voicemail_ivr.py.)
    rig = Rig(flow([node(Voicemail, "q", mailbox="100")]))
    c = rig.call()
    assert "voicemail is not set up" in rig.errors(c)[0]
    assert rig.exit(c).outcome == "error"
    assert rig.cdr(c).hangup_by == "system"


def test_a_route_to_a_flow_that_is_not_loaded_releases_the_call():
    rig = Rig(flow([BYE]))
    c = rig.call(dnis="8009")
    assert "no flow 'nosuch' is loaded (loaded: main)" in rig.errors(c)[0]
    ex = rig.exit(c)
    assert (ex.flow, ex.outcome) == ("nosuch", "error")
    assert rig.cdr(c).hangup_by == "system"
    _done(rig)


def test_a_loop_of_instant_nodes_is_stopped():
    f = flow([node(SetVars, "a", values={"x": "1"}, next="b"),
              node(Branch, "b", cases=[Case((Cond(V, CondOp.SET, True, "x"),), "a")],
                   otherwise="bye"), BYE])
    rig = Rig(f)
    c = rig.call()
    assert f"{STEP_BUDGET} nodes in one instant" in rig.errors(c)[0]
    assert "the loop b>a>b never waits" in rig.errors(c)[0]
    assert rig.exit(c).outcome == IvrOutcome.ERROR
    assert len(rig.entered(c)) == STEP_BUDGET
    _done(rig)


# --------------------------------------------------------- hang-up, reload


def test_caller_hangs_up_mid_prompt():
    rig = Rig(flow(MENU_FLOW))
    c = rig.call()
    rig.run(1)
    rig.hangup(c)
    ex = rig.exit(c)
    assert (ex.outcome, ex.node) == ("caller_hangup", "menu")
    assert rig.leaves(c) == [("menu", None, "caller hung up", None)]
    _done(rig)
    assert rig.shell.next_deadline() is None
    assert rig.cdr(c).ivr_path == "main:menu"


def test_shutdown_ends_the_flow_with_outcome_shutdown():
    rig = Rig(flow(MENU_FLOW))
    c = rig.call()
    rig.submit(ci.Shutdown())
    assert rig.exit(c).outcome == "shutdown"
    _done(rig)


def test_hold_prompt_that_cannot_play_is_reported_and_the_crm_still_answers():
    rig = Rig(_crm_flow(), broken=["wait"])
    c = rig.call()
    rig.run(0.5)
    assert "hold prompt could not be played" in rig.errors(c)[0]
    assert rig.ivr.waiting_for_route(c)
    submit_reply(rig.ivr, rig.submit, RouteReply(c, "nope"))
    assert rig.exit(c).node == "nope"


def test_caller_hangs_up_while_the_menu_waits():
    rig = Rig(flow(MENU_FLOW))
    c = rig.call()
    rig.run(3)
    assert rig.ivr.next_deadline() is not None
    rig.hangup(c)
    assert rig.exit(c).outcome == "caller_hangup"
    assert rig.shell.next_deadline() is None
    _done(rig)


def test_caller_hangs_up_while_waiting_for_the_crm():
    rig = Rig(_crm_flow())
    c = rig.call()
    rig.run(1)
    rig.hangup(c)
    assert rig.exit(c).outcome == "caller_hangup"
    assert rig.shell.next_deadline() is None
    with pytest.raises(RouteReplyError):
        rig.ivr.check_reply(RouteReply(c, "say_it"))


def test_reload_keeps_a_live_call_on_its_version():
    def gen(version: str, generation: int, goodbye: str):
        main = flow([node(Play, "welcome", prompts=["welcome"], next="g"),
                     node(Goto, "g", flow="other")], version=version)
        other = flow([node(Play, goodbye, prompts=[goodbye], next="bye"), BYE], name="other",
                     version=version)
        return flowset(main, other, generation=generation)

    rig = Rig(gen("v1", 1, "old_bye"))
    c1 = rig.call()
    rig.run(1)
    rig.ivr.set_flows(gen("v2", 2, "new_bye"))
    c2 = rig.call()
    rig.idle()
    assert {e.version for e in rig.events if e.name.startswith("ivr.")
            and e.call_id == c1} == {"v1"}
    assert {e.version for e in rig.events if e.name.startswith("ivr.")
            and e.call_id == c2} == {"v2"}
    assert "old_bye" in rig.entered(c1) and "new_bye" in rig.entered(c2)


def test_stale_prompt_done_is_ignored():
    rig = Rig(flow(MENU_FLOW))
    c = rig.call()
    rig.run(0.5)
    token = rig.ivr.sessions[c].token
    rig.submit(PromptDone(c, token - 1))
    assert rig.ivr.sessions[c].state is State.PLAYING
    rig.submit(PromptDone(c, token))
    assert rig.ivr.sessions[c].state is State.WAITING_KEYS


def test_annotate_reaches_the_core_before_the_call_ends():
    rig = Rig(flow(MENU_FLOW))
    c = rig.call()
    call = rig.core.calls[c]
    assert call.ivr_path == "main:menu"
    rig.run(3)
    rig.press(c, "1")
    cdr = rig.cdr(c)
    assert (cdr.ivr_path, cdr.ivr_vars) == ("main:menu>sales", '{"choice": "1"}')


def test_ivr_events_carry_flow_and_version():
    rig = Rig(flow(MENU_FLOW, version="abc123"))
    rig.call()
    rig.idle()
    ivr = [e for e in rig.events if e.name.startswith("ivr.")]
    assert ivr and all((e.flow, e.version) == ("main", "abc123") for e in ivr)


def test_engine_refuses_what_it_does_not_take():
    with pytest.raises(TypeError):
        Ivr(flowset()).handle(0.0, ci.Answer("ext/201"))


# ------------------------------------------------- loops across inputs


def test_a_transfer_that_fails_at_once_and_loops_back_is_stopped():
    # extension:999 is no line: the core answers every Route with call.route_failed at
    # once, so each turn of the loop is a new input at the same instant.
    f = flow([node(Transfer, "t", target="extension:999", on_fail="t")])
    rig = Rig(f, max_inputs=20 * STEP_BUDGET)  # a spinning flow stops here, not in a hang
    c = rig.call()
    assert not rig.runaway, "the loop was not stopped by the interpreter"
    assert len(rig.entered(c)) == STEP_BUDGET
    (error,) = rig.errors(c)
    assert f"{STEP_BUDGET} nodes in one instant" in error and "the loop t>t never waits" in error
    ex = rig.exit(c)
    assert (ex.outcome, ex.node) == (IvrOutcome.ERROR, "t")
    cdr = rig.cdr(c)
    assert cdr.hangup_by == "system"
    assert len(cdr.ivr_path) <= PATH_MAX and cdr.ivr_path.startswith("main:t>t>")
    assert "…" in cdr.ivr_path
    _done(rig)


def test_a_loop_that_waits_for_a_prompt_each_turn_is_not_cut():
    # The budget counts one instant: a loop that plays something each turn is slow,
    # not stuck, and the caller may break out of it (or hang up).
    f = flow([node(Transfer, "t", target="extension:999", on_fail="sorry"),
              node(Play, "sorry", prompts=["sorry"], next="t")])
    rig = Rig(f)
    c = rig.call()
    rig.run(STEP_BUDGET * 2.0 + 1)  # 2 s a turn: more turns than the budget
    assert len(rig.entered(c)) > STEP_BUDGET
    assert rig.errors(c) == [] and rig.of("ivr.exit", c) == []
    rig.hangup(c)
    assert rig.exit(c).outcome == IvrOutcome.CALLER_HANGUP
    assert len(rig.cdr(c).ivr_path) <= PATH_MAX


# ------------------------------------------------------- internal errors


def _boom_for(call_id: str, real):
    """A node handler that fails for ``call_id`` and works for every other call."""
    def enter(now: float, s: Session, node) -> str | None:
        if s.call_id == call_id:
            raise RuntimeError("boom")
        return real(now, s, node)
    return enter


def _two_menu_calls() -> tuple[Rig, str, str]:
    f = flow([node(Menu, "menu", prompts=["menu"], choices={"1": "s", "2": "p"}, timeout_s=5,
                   retries=0, fallback="bye"),
              node(SetVars, "s", values={"x": "1"}, next="p"),
              node(Play, "p", prompts=["p"], next="bye"), BYE])
    rig = Rig(f)
    a, b = rig.call(), rig.call()
    return rig, a, b


def test_an_internal_error_ends_only_that_call(monkeypatch):
    rig, a, b = _two_menu_calls()
    monkeypatch.setitem(rig.ivr._enter, NodeType.SET, _boom_for(a, rig.ivr._enter[NodeType.SET]))
    rig.run(3)
    before = len(rig.events)
    rig.press(a, "1")  # menu -> s, whose handler raises
    assert all(getattr(e, "call_id", a) == a for e in rig.events[before:])
    (error,) = rig.errors(a)
    assert error.startswith("internal error in node s: RuntimeError: boom (")
    ex = rig.exit(a)
    assert (ex.outcome, ex.node) == (IvrOutcome.ERROR, "s")
    # What the failed input had produced is gone (no half step in the trace) ...
    assert rig.leaves(a) == [] and rig.entered(a) == ["menu"]
    assert rig.cdr(a).hangup_by == "system"  # ... and the caller is not left in silence
    assert rig.ivr.internal_errors == 1 and set(rig.ivr.sessions) == {b}
    # The other call goes on, and nothing of the failed input leaks into its steps.
    mark = len(rig.events)
    rig.press(b, "1")
    rig.idle()
    assert all(getattr(e, "call_id", b) == b for e in rig.events[mark:])
    assert rig.entered(b) == ["menu", "s", "p", "bye"]
    assert rig.exit(b).outcome == IvrOutcome.HANGUP
    _done(rig)


def test_an_internal_error_in_a_timeout_spares_the_other_timeouts_due(monkeypatch):
    rig, a, b = _two_menu_calls()  # both menus time out at the same instant
    monkeypatch.setitem(rig.ivr._enter, NodeType.HANGUP,
                        _boom_for(a, rig.ivr._enter[NodeType.HANGUP]))
    rig.idle()
    assert rig.errors(a)[0].startswith("internal error in node bye: RuntimeError: boom")
    assert rig.exit(a).outcome == IvrOutcome.ERROR and rig.cdr(a).hangup_by == "system"
    assert rig.leaves(b) == [("menu", "bye", "timeout x1", None), ("bye", None, "hangup", None)]
    assert rig.exit(b).outcome == IvrOutcome.HANGUP
    _done(rig)


def test_an_internal_error_at_the_start_of_a_flow_releases_the_call(monkeypatch):
    rig = Rig(flow([node(Play, "welcome", prompts=["welcome"], next="bye"), BYE]))

    def boom(now: float, s: Session, node) -> None:
        raise KeyError("lost")
    monkeypatch.setitem(rig.ivr._enter, NodeType.PLAY, boom)
    c = rig.call()
    assert rig.errors(c)[0].startswith("internal error in node welcome: KeyError: 'lost'")
    assert rig.exit(c).outcome == IvrOutcome.ERROR
    assert rig.cdr(c).hangup_by == "system" and rig.player.played == []
    _done(rig)


def test_an_internal_error_before_the_flow_starts_releases_the_call(monkeypatch):
    rig = Rig(flow([BYE]))

    class Broken:
        flows: dict = {}

        def get(self, name: str) -> None:
            raise RuntimeError("generation lost")
    monkeypatch.setattr(rig.ivr, "flows", Broken())
    c = rig.call()
    assert rig.errors(c) == [rig.ivr.last_internal_error[1]]
    assert rig.errors(c)[0].startswith("internal error in node (none): RuntimeError: generation")
    ex = rig.exit(c)
    assert (ex.flow, ex.outcome) == ("main", IvrOutcome.ERROR)
    assert rig.cdr(c).hangup_by == "system"
    _done(rig)


def test_the_old_exception_name_is_gone():
    # A stale `from switchd.ivr.interpreter import IvrError` must fail at import rather
    # than hand the event class of that name to an `except`.
    import switchd.ivr.interpreter as interpreter
    assert not hasattr(interpreter, "IvrError")
    assert issubclass(RouteReplyError, Exception)


def test_an_internal_error_on_a_route_reply_reaches_the_crm(monkeypatch):
    rig = Rig(_crm_flow())
    c = rig.call()
    monkeypatch.setitem(rig.ivr._enter, NodeType.PLAY, _boom_for(c, rig.ivr._enter[NodeType.PLAY]))
    with pytest.raises(RouteReplyError) as err:
        submit_reply(rig.ivr, rig.submit, RouteReply(c, "say_it"))
    assert err.value.code == "internal"
    assert err.value.msg.startswith("internal error in node say_it: RuntimeError: boom")
    assert err.value.msg.endswith("; the call was released")
    assert rig.exit(c).outcome == IvrOutcome.ERROR
    assert rig.player.stopped[-1][1] == c  # the hold music stopped
    _done(rig)


# ------------------------------------------------------------ ivr_path


def _uncut(entries: list[tuple[str, str]]) -> str:
    parts, last = [], None
    for f, n in entries:
        parts.append(n if f == last else f"{f}:{n}")
        last = f
    return ">".join(parts)


@pytest.mark.parametrize("n", [1, 5, 60, 61, 200, 5000])
def test_ivr_path_keeps_the_start_and_the_latest_nodes_within_the_limit(n):
    import random
    rnd = random.Random(n)
    entries = [(rnd.choice(["main", "billing"]), rnd.choice(["menu", "a" * 64, "say_balance",
                                                              "x"])) for _ in range(n)]
    path = IvrPath()
    for f, node_name in entries:
        path.append(f, node_name)
    full, text = _uncut(entries), path.text()
    assert path.count == n
    if len(full) <= PATH_MAX:
        assert text == full
        return
    assert len(text) <= PATH_MAX
    head, sep, tail = text.partition(">…>")
    assert sep and "…" not in tail
    assert full.startswith(head + ">") and len(head) <= PATH_HEAD
    first, _, rest = tail.partition(">")
    assert ":" in first  # the first node after the cut says its flow
    assert full.endswith(rest) and full.endswith(first.split(":")[1] + ">" + rest)
    # as many recent nodes as fit: one more would not
    assert len(text) > PATH_MAX - 2 * (64 + 8)


def test_a_long_call_keeps_its_cdr_path_short():
    f = flow([node(Menu, "menu", prompts=["m"], choices={"9": "menu", "0": "bye"}, fallback="bye"),
              BYE])
    rig = Rig(f, default_s=1.0)
    c = rig.call()
    for _ in range(400):
        rig.press(c, "9")  # 400 repeats of the menu: 2000 characters uncut
    rig.press(c, "0")
    path = rig.cdr(c).ivr_path
    assert len(path) <= PATH_MAX
    assert path.startswith("main:menu>menu>") and path.endswith(">menu>menu>bye")
    assert ">…>main:menu>" in path


# ------------------------------------------------------------ same instant


def _deadline(rig: Rig, call_id: str) -> float:
    return rig.ivr.sessions[call_id].crm_deadline


def _crm_race(reply_first: bool) -> tuple[Rig, str, RouteReplyError | None]:
    f = _crm_flow(fallback="hold")
    rig = Rig(flow([*f.nodes.values(), node(Play, "hold", prompts=["sorry"], next="bye")]))
    c = rig.call()
    deadline = _deadline(rig, c)
    if reply_first:
        rig.clock.t = deadline  # the instant comes; its timer has not been handled yet
    else:
        rig.run_to(deadline)  # the timer is handled first
    error = None
    try:
        submit_reply(rig.ivr, rig.submit, RouteReply(c, "say_it", (("balance", "1.00"),)))
    except RouteReplyError as exc:
        error = exc
    rig.idle()
    return rig, c, error


@pytest.mark.parametrize("reply_first", [True, False], ids=["reply-first", "timeout-first"])
def test_a_route_reply_at_the_timeout_instant_is_late_in_either_order(reply_first):
    rig, c, error = _crm_race(reply_first)
    assert error is not None and error.code == "not_waiting"
    assert rig.leaves(c)[1] == ("lookup", "hold", "CRM timeout 3 s", None)
    assert "balance" not in json.loads(rig.cdr(c).ivr_vars)
    other, c2, _ = _crm_race(not reply_first)
    assert rig.leaves(c) == other.leaves(c2)


def test_a_route_reply_just_before_the_timeout_is_taken():
    rig = Rig(_crm_flow())
    c = rig.call()
    rig.run_to(_deadline(rig, c) - 0.001)
    submit_reply(rig.ivr, rig.submit, RouteReply(c, "say_it", (("balance", "1.00"),)))
    rig.idle()
    assert rig.leaves(c)[1] == ("lookup", "say_it", "CRM reply", None)
    # no timeout fired after the reply
    assert [n for n, *_ in rig.leaves(c)] == ["s", "lookup", "say_it", "bye"]


def _race(nodes: list, keys: str, key_first: bool) -> tuple[Rig, str]:
    """Press ``keys`` at the instant the first prompt (2 s) ends, before or after its end
    is handled."""
    rig = Rig(flow(nodes))
    t0 = rig.now
    c = rig.call()
    if key_first:
        rig.clock.t = t0 + 2.0  # the prompt's end is due but not handled yet
    else:
        rig.run_to(t0 + 2.0)
        assert rig.ivr.sessions[c].prompt_end is not None
    rig.press(c, keys)
    rig.idle()
    return rig, c


def _outcome(rig: Rig, c: str) -> tuple:
    """What a race must not change: where the call went, when, with which keys."""
    return (rig.entered(c), [(n, nxt, d) for n, nxt, _, d in rig.leaves(c)[1:]],
            _t(rig, rig.of("ivr.enter", c)[0].time, "ivr.leave", c), rig.exit(c).node,
            rig.cdr(c).ivr_vars)


_MENU = node(Menu, "menu", prompts=["menu"], choices={"1": "one", "2": "two"}, timeout_s=5,
             retries=0, fallback="bye", into="choice")
_AFTER = [node(Hangup, "one"), node(Hangup, "two"), BYE]
RACES = {
    # A play barged into at its last instant had the key; the menu after it sees only the next.
    "play-barge-in": ([node(Play, "p", prompts=["p"], next="menu"), _MENU, *_AFTER], "12",
                      "two"),
    # A play without barge-in ignores it; so does the menu after it.
    "play-no-barge-in": ([node(Play, "p", prompts=["p"], barge_in=False, next="menu"), _MENU,
                          *_AFTER], "1", "bye"),
    # A menu takes a key at the end of its prompt, whichever came first ...
    "menu-barge-in": ([_MENU, *_AFTER], "2", "two"),
    # ... unless its prompt must be heard out: pressed while it played.
    "menu-no-barge-in": ([dataclasses.replace(_MENU, barge_in=False), *_AFTER], "2", "bye"),
    # A collect counts it either way.
    "collect": (_collect(terminator=None), "1234", "done"),
    "collect-no-barge-in": (_collect(terminator=None, barge_in=False), "1234", "done"),
}


@pytest.mark.parametrize("case", RACES)
def test_a_key_at_the_instant_a_prompt_ends_gives_the_same_result_in_either_order(case):
    nodes, keys, ends_at = RACES[case]
    first, c1 = _race(nodes, keys, key_first=True)
    second, c2 = _race(nodes, keys, key_first=False)
    assert _outcome(first, c1) == _outcome(second, c2)
    assert first.exit(c1).node == ends_at
    # Each key is counted once: consumed by one node or shown as ignored by one.
    for rig, c in ((first, c1), (second, c2)):
        used = "".join(d or "" for _, _, _, d in rig.leaves(c)) + "".join(
            k for _, k in rig.ignored(c))
        assert sorted(used) == sorted(keys)


# --------------------------------------------------------- per-node state


def test_ignored_keys_belong_to_the_node_and_try_they_arrived_in():
    f = flow([node(Play, "legal", prompts=["legal"], barge_in=False, next="menu"),
              node(Menu, "menu", prompts=["menu"], choices={"1": "xfer"}, timeout_s=3,
                   retries=1, fallback="bye", barge_in=False),
              node(Transfer, "xfer", target="group:sales", on_fail="bye"), BYE])
    rig = Rig(f)
    c = rig.call()
    rig.run(1)
    rig.press(c, "12")  # legal ignores them
    rig.run(2)          # 3 s: the menu prompt plays (no barge-in)
    rig.press(c, "3")   # ignored by the menu's first try
    rig.run(5)          # 8 s: try 1 timed out at 7, try 2 plays its prompt until 9
    rig.run(1.5)
    rig.press(c, "1")   # try 2 takes it
    rig.press(c, "45")  # the group rings: ignored by the transfer
    rig.submit(ci.Answer("ext/201"))
    assert rig.ignored(c) == [("legal", "12"), ("menu", "3"), ("xfer", "45")]
    assert [(n, d) for n, _, _, d in rig.leaves(c)] == [
        ("legal", None), ("menu", None), ("menu", "1"), ("xfer", None)]


def test_ignored_keys_are_kept_within_bounds():
    f = flow([node(Transfer, "xfer", target="group:sales", on_fail="bye"), BYE])
    rig = Rig(f)
    c = rig.call()
    rig.press(c, "1" * 1000)
    rig.submit(ci.Answer("ext/201"))
    ((_, keys),) = rig.ignored(c)
    assert keys.endswith("…") and len(keys) < 40


def test_the_step_budget_counts_per_instant_not_per_call():
    # Two turns of 600 instant nodes, at two instants: 1200 in all, none cut.
    f = flow([node(SetVars, "a", values={"n": "1"}, next="b"),
              node(Branch, "b", cases=[Case((Cond(V, CondOp.LT, "300", "n"),), "m")],
                   otherwise="inc"),
              node(SetVars, "inc", values={"n": "{n}1"}, next="b"),
              node(Menu, "m", prompts=[], choices={"1": "a"}, timeout_s=1, retries=0,
                   fallback="bye"), BYE])
    rig = Rig(f)
    c = rig.call()
    rig.press(c, "1")
    rig.idle()
    assert rig.errors(c) == []
    assert rig.exit(c).outcome == IvrOutcome.HANGUP
