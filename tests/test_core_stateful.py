"""Random sequences of everything that can happen to a small board, checked after every step.

Hypothesis drives the core with arbitrary interleavings of calls, answers, hangups,
holds, transfers, far-end busy and time passing (DESIGN §9: the side paths are where
peer switches leak state). After every step the line/call bookkeeping must agree;
at the end, every call ever created has exactly one CDR and every line is free.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from switchd.acd.model import RingGroup, RingStrategy
from switchd.core import inputs as ci
from switchd.core.call import CallState, Disposition
from switchd.core.engine import CoreError
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.engine import Input
from switchd.events import CallEnded, CallNew, Event, HangupCause, LineState, Role
from switchd.lines.state import LineStatus
from tests.corehelp import GroupedCore

T0 = 1_764_000_000.0
S = LineStatus
EXTS = (201, 202, 203)
TRUNK_LINES = [f"trunk/{n}" for n in (1, 2, 3)]
EXT_LINES = [f"ext/{n}" for n in EXTS]
ALL_LINES = TRUNK_LINES + EXT_LINES
DISPOSITIONS = {d.value for d in Disposition}
CAUSES = {str(c): c.q850 for c in HangupCause}

#: Ring groups are queues with no waiting: the ACD rings them (tests.corehelp.GroupedCore).
GROUPS = {
    "sales": RingGroup("sales", RingStrategy.RINGALL, (201, 202, 203)),
    "support": RingGroup("support", RingStrategy.HUNT, (203, 202, 201), ring_timeout_s=5.0),
}

CONFIG = CoreConfig(
    trunks=3,
    extensions=EXTS,
    ring_timeout_s=20.0,
    tone_timeout_s=10.0,
    routes=(
        Route(Target(TargetKind.GROUP, "sales"), dnis="8000"),
        Route(Target(TargetKind.GROUP, "support"), dnis="8001"),
        Route(Target(TargetKind.BUSY), dnis="8002"),
        Route(Target(TargetKind.EXTENSION, "202"), trunk=3),
        *(Route(Target(TargetKind.EXTENSION, str(n)), dnis=str(n)) for n in EXTS),
    ),
)

lines = st.sampled_from(ALL_LINES)
ext_lines = st.sampled_from(EXT_LINES)


class CoreMachine(RuleBasedStateMachine):
    """The model is deliberately thin: the invariants say what must always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.core = GroupedCore(CONFIG, GROUPS)
        self.now = T0
        self.created: list[str] = []
        self.ended: list[str] = []

    # ------------------------------------------------------------- plumbing

    def feed(self, events: list[Event]) -> None:
        for ev in events:
            assert ev.time >= T0 and ev.time == self.now  # type: ignore[attr-defined]
            if isinstance(ev, CallNew):
                assert ev.call_id not in self.created
                self.created.append(ev.call_id)
            elif isinstance(ev, CallEnded):
                assert ev.call_id in self.created and ev.call_id not in self.ended
                assert ev.cdr.disposition in DISPOSITIONS
                assert ev.cdr.uniqueid == ev.call_id and ev.cdr.end == self.now
                assert ev.cdr.duration >= ev.cdr.billsec >= 0
                assert (ev.cdr.answer is not None) == (ev.cdr.disposition == "ANSWERED")
                assert ev.cdr.hangup_by in {"caller", "callee", "system"}
                assert 0 <= ev.cdr.wait_s <= ev.cdr.end - ev.cdr.start + 0.001
                # The cause on the event and on the CDR agree.
                assert (ev.cdr.hangup_cause, ev.cdr.q850) == (str(ev.hangup_cause), ev.q850)
                assert CAUSES[ev.cdr.hangup_cause] == ev.q850
                self.ended.append(ev.call_id)
            elif isinstance(ev, LineState):
                assert ev.state != ev.previous

    def do(self, item: Input) -> None:
        """Apply one core input; CoreError is the one exception allowed to escape."""
        try:
            events = self.core.handle(self.now, item)
        except CoreError as exc:
            assert exc.code in {"busy", "not_found", "bad_arg", "wrong_state"}
            return
        assert isinstance(events, list)
        self.feed(events)

    def fire_until(self, t: float) -> None:
        while (d := self.core.next_deadline()) is not None and d <= t:
            assert d >= self.now
            self.now = d
            self.feed(self.core.handle_timer(self.now))
        self.now = max(self.now, t)

    # ---------------------------------------------------------------- rules

    @rule(dnis=st.sampled_from(["8000", "8001", "8002", "201", "202", "203", "7777"]),
          trunk=st.one_of(st.none(), st.integers(1, 3)), blocked=st.booleans())
    def incoming(self, dnis: str, trunk: int | None, blocked: bool) -> None:
        self.do(ci.Incoming("13900001111", dnis, trunk=trunk,
                            blocked_reason="blacklist" if blocked else None))

    @rule(line=ext_lines, number=st.sampled_from(["201", "202", "203", "777", "95550001"]))
    def dial(self, line: str, number: str) -> None:
        self.do(ci.Dial(line, number))

    @rule(line=ext_lines)
    def offhook(self, line: str) -> None:
        self.do(ci.OffHook(line))

    @rule(line=lines)
    def answer(self, line: str) -> None:
        self.do(ci.Answer(line))

    @rule(line=lines)
    def hangup(self, line: str) -> None:
        self.do(ci.Hangup(line))

    @rule(line=lines)
    def hold(self, line: str) -> None:
        self.do(ci.Hold(line))

    @rule(line=lines)
    def retrieve(self, line: str) -> None:
        self.do(ci.Retrieve(line))

    @rule(line=lines, number=st.sampled_from(["201", "202", "203", "777"]))
    def blind_transfer(self, line: str, number: str) -> None:
        self.do(ci.BlindTransfer(line, number))

    @rule(line=lines)
    def far_busy(self, line: str) -> None:
        self.do(ci.FarBusy(line))

    @rule(seconds=st.sampled_from([0.0, 0.5, 3.0, 5.0, 10.0, 20.0, 45.0]))
    def advance(self, seconds: float) -> None:
        self.fire_until(self.now + seconds)

    @rule()
    def next_timer(self) -> None:
        d = self.core.next_deadline()
        if d is not None:
            self.fire_until(d)

    # ----------------------------------------------------------- invariants

    @invariant()
    def lines_and_calls_agree(self) -> None:
        calls = self.core.calls
        for name, ln in self.core.lines.items():
            if ln.status is S.IDLE:
                assert ln.call_id is None and ln.tone is None, (name, ln)
            elif ln.status is S.OFFHOOK:
                # Dial tone before any digit: the one busy state with no call yet.
                assert ln.call_id is None and ln.tone == "dial", (name, ln)
            else:
                assert ln.call_id in calls, (name, ln)
                assert name in calls[ln.call_id].lines(), (name, ln)
        for call_id, call in calls.items():
            assert call.call_id == call_id and call.state is not CallState.ENDED
            held = call.lines()
            assert len(held) == len(set(held))
            for name in held:
                assert self.core.lines[name].call_id == call_id, (call, name)

    @invariant()
    def call_states_match_their_lines(self) -> None:
        st_ = {n: ln.status for n, ln in self.core.lines.items()}
        for call in self.core.calls.values():
            a = call.anchor
            offers = list(call.offers)
            # The older core's ``b_line``: the party connected with the anchor, if any.
            others = [n for n in call.legs if n != a]
            assert all(st_[n] is S.ALERTING for n in offers), call
            if call.state is CallState.RINGING:
                assert offers and not others, call
                assert st_[a] in (S.ALERTING, S.RINGBACK)
                assert not call.bridges, call
            elif call.state is CallState.ANSWERED:
                assert not offers and len(others) == 1, call
                b = others[0]
                pair = sorted([st_[a].value, st_[b].value])
                assert pair in (["connected", "connected"], ["connected", "held"]), call
                # Who hears whom agrees with the lines: one bridge, held role iff held line.
                [main] = call.bridges.values()
                assert set(main.members) == {a, b}, call
                for n in (a, b):
                    assert (main.members[n] is Role.HELD) == (st_[n] is S.HELD), call
            elif call.state in (CallState.TRANSFERRING, CallState.RECALLING):
                # (The older core called both of these TRANSFERRING.)
                assert offers and not others, call
                assert st_[a] is S.RINGBACK
                assert self.core.lines[a].tone == "ringback"
            elif call.state is CallState.TONE:
                assert not offers and not others, call
                assert st_[a] is S.TONE
                assert self.core.lines[a].tone in ("busy", "congestion")
            else:
                raise AssertionError(f"call left in {call.state}: {call}")

    @invariant()
    def live_calls_are_exactly_those_not_ended(self) -> None:
        assert set(self.core.calls) == set(self.created) - set(self.ended)

    @invariant()
    def unanswered_calls_always_have_a_timer(self) -> None:
        # A call that is ringing or playing a tone must end by itself if nobody acts.
        waiting = [c for c in self.core.calls.values() if c.state is not CallState.ANSWERED]
        if waiting:
            d = self.core.next_deadline()
            assert d is not None and d >= self.now

    def teardown(self) -> None:
        self.fire_until(self.now + 10_000)
        assert self.core.next_deadline() is None
        # Only answered calls may outlive every timer; nothing is stuck ringing.
        assert all(c.state is CallState.ANSWERED for c in self.core.calls.values())
        for _ in range(2 * len(ALL_LINES)):
            busy = [n for n, ln in self.core.lines.items() if not ln.idle]
            if not busy:
                break
            self.do(ci.Hangup(busy[0]))
        assert all(ln.idle and ln.call_id is None for ln in self.core.lines.values())
        assert self.core.calls == {}
        assert sorted(self.created) == sorted(self.ended)
        assert len(self.ended) == len(set(self.ended))


CoreMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCoreStateMachine = CoreMachine.TestCase
