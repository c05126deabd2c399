"""Random arrivals, answers, hang-ups, logins, logouts, pauses and transfers on a small
centre; the agent invariants of issue 15 item 1 are checked after every step.

* an agent is never in two calls; never reserved for a call that has ended or was
  taken by another phone (a reserved agent's phone rings for that very call);
* a ready agent's phone is idle (never ring a busy agent);
* never stuck: with time running on and no new input, every agent ends logged out,
  ready or not ready, every caller leaves, and every line is idle;
* every call has one CDR; every queue.join has exactly one queue.leave.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from switchd.acd.engine import AcdError
from switchd.acd.inputs import Login, Logout, NotReady, Ready
from switchd.acd.model import AgentSettings, CallbackSettings, PenaltyRule, Strategy
from switchd.core.engine import CoreError
from switchd.core.inputs import (
    Answer,
    BlindTransfer,
    Dial,
    Digit,
    Hangup,
    Incoming,
    OffHook,
    Pickup,
    Redirect,
)
from switchd.core.routing import Target, TargetKind
from switchd.events import (
    AgentState,
    CallEnded,
    CallNew,
    QueueJoin,
    QueueLeave,
    QueueLogEntry,
)
from tests.acdhelp import Centre, queue
from tests.report_stored import reports_by_both_paths

AGENTS = (
    AgentSettings("a1", extension=201, queues={"A": 0, "B": 1}, login=True),
    AgentSettings("a2", extension=202, queues={"A": 1}, login=True, wrapup_s=3),
    AgentSettings("a3", extension=203, queues={"B": 0}, login=True),
    AgentSettings("a4", extension=204, queues={"A": 0, "B": 0}, login=False),
)
QUEUES = (
    queue("A", strategy=Strategy.LONGEST_IDLE, ring_timeout_s=6, wrapup_s=4, rona_after=2,
          max_wait_s=40, overflow=Target(TargetKind.QUEUE, "B"), sticky_wait_s=5,
          penalty_rules=(PenaltyRule(0, 0, 0), PenaltyRule(10, 0, 1)),
          callback=CallbackSettings("2", confirm_timeout_s=5, goodbye_s=1, retries=1,
                                    retry_after_s=10, ring_timeout_s=6)),
    queue("B", strategy=Strategy.RINGALL, ring_timeout_s=5, max_len=3, max_wait_s=60,
          exit_key="0", exit_to=Target(TargetKind.EXTENSION, "205")),
)
EXT_LINES = [f"ext/{n}" for n in (201, 202, 203, 204, 205)]
AGENT_IDS = [a.agent_id for a in AGENTS]


class CentreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.c = Centre(QUEUES, AGENTS, trunks=4, extensions=(201, 202, 203, 204, 205),
                        last_agent={"5550001": "a3"})
        self.n = 0

    def _try(self, item: object) -> None:
        try:
            self.c.submit(item)  # type: ignore[arg-type]
        except (CoreError, AcdError):
            pass  # refused before anything changed: that is allowed

    @rule(q=st.sampled_from(["A", "B"]), who=st.sampled_from(["5550001", "5550002", "5550003"]))
    def arrive(self, q: str, who: str) -> None:
        self._try(Incoming(who, q))

    @rule(line=st.sampled_from(EXT_LINES + [f"trunk/{n}" for n in (1, 2, 3, 4)]))
    def answer(self, line: str) -> None:
        self._try(Answer(line))

    @rule(line=st.sampled_from(EXT_LINES + [f"trunk/{n}" for n in (1, 2, 3, 4)]))
    def hangup(self, line: str) -> None:
        self._try(Hangup(line))

    @rule(agent=st.sampled_from(AGENT_IDS), what=st.sampled_from(["login", "logout", "ready",
                                                                   "pause"]))
    def agent_request(self, agent: str, what: str) -> None:
        item = {"login": Login(agent), "logout": Logout(agent), "ready": Ready(agent),
                "pause": NotReady(agent, "break")}[what]
        self._try(item)

    @rule(line=st.sampled_from(EXT_LINES), to=st.sampled_from(["A", "B", "205", "203"]))
    def transfer(self, line: str, to: str) -> None:
        call = self.c.core.call_of_line(line)
        if call is None:
            return
        if to.isdigit():
            self._try(BlindTransfer(line, to))
        else:
            self._try(Redirect(call.call_id, Target(TargetKind.QUEUE, to), line=line))

    @rule(line=st.sampled_from(EXT_LINES))
    def dial_out(self, line: str) -> None:
        self._try(OffHook(line))
        self._try(Dial(line, "95550"))

    @rule(line=st.sampled_from([f"trunk/{n}" for n in (1, 2, 3, 4)]),
          key=st.sampled_from(["0", "5", "2", "1", "#", "*"]))
    def press(self, line: str, key: str) -> None:
        self._try(Digit(line, key))

    @rule(line=st.sampled_from(EXT_LINES), k=st.integers(0, 3))
    def pickup(self, line: str, k: int) -> None:
        calls = list(self.c.core.calls)
        if calls:
            self._try(Pickup(line, calls[k % len(calls)]))

    @rule(agent=st.sampled_from(AGENT_IDS), ext=st.sampled_from([201, 202, 203, 204, 205]))
    def login_elsewhere(self, agent: str, ext: int) -> None:
        self._try(Login(agent, extension=ext))

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0, 5.0, 6.0, 11.0, 40.0]))
    def wait(self, seconds: float) -> None:
        self.c.advance(seconds)

    @invariant()
    def agents_are_consistent(self) -> None:
        self.c.check_invariants()

    def teardown(self) -> None:
        c = self.c
        # Hang up every line, then let time run: nothing may stay stuck.
        for _ in range(5):
            for name, ln in list(c.core.lines.items()):
                if not ln.idle:
                    self._try(Hangup(name))
            c.advance(120)
        c.check_invariants()
        assert c.lines_idle()
        # Only callbacks may still wait (their callers hung up; they keep their place
        # until an agent takes them, and the teardown keeps refusing the agents' rings).
        assert all(not x.line_alive and x.state.value in ("callback", "retry_wait")
                   for x in c.acd.callers.values()), c.acd.callers
        for a in c.acd.agents.values():
            assert a.state in (AgentState.LOGGED_OUT, AgentState.READY, AgentState.NOT_READY), \
                (a.agent_id, a.state)
        new = {e.call_id for e in c.of(CallNew)}
        ended = Counter(e.call_id for e in c.of(CallEnded))
        assert set(ended) == new and all(v == 1 for v in ended.values())
        waiting = Counter((x.call_id, x.queue) for x in c.acd.callers.values())
        joins = Counter((e.call_id, e.queue) for e in c.of(QueueJoin))
        left = Counter((e.call_id, e.queue) for e in c.of(QueueLeave) if e.position > 0)
        assert joins == left + waiting, (joins, left, waiting)
        # The report facts folded from this queue_log give the file's figures (for the
        # richer runs: each check writes a database and reads it twice).
        log = c.of(QueueLogEntry)
        if len(log) >= 25:
            cdrs = [e.cdr for e in c.of(CallEnded)]
            q = "A" if len(log) % 2 else None
            with tempfile.TemporaryDirectory() as tmp:
                from_file, stored = reports_by_both_paths(Path(tmp), cdrs, log, queue=q)
            assert replace(stored, source="") == replace(from_file, source=""), q


CentreMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestCentre = CentreMachine.TestCase
