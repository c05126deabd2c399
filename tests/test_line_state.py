"""The line state table, alone and through the call core.

The table is checked against an independent copy of the rules (so an accidental edit
of ``TRANSITIONS`` fails here), then every illegal core input is sent to a line in
every state the core can leave it in: it must come back as a ``LineError`` with a
reason, change nothing, and leave the line usable for the next call.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from switchd.acd.model import RingGroup, RingStrategy
from switchd.core import inputs as ci
from switchd.core.engine import CoreError, new_call_id
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.engine import Input
from switchd.events import CallEnded, Event, LineError
from switchd.lines.state import TRANSITIONS, Line, LineInput, LineKind, LineStatus, line_name
from tests.corehelp import GroupedCore, call_snapshot

S = LineStatus
I = LineInput  # noqa: E741 - mirrors the module's own short alias

#: The rules, written out independently of switchd.lines.state.
_EXPECTED: dict[LineStatus, dict[LineInput, LineStatus]] = {
    S.IDLE: {I.OFFHOOK: S.OFFHOOK, I.DIAL: S.DIALING, I.ALERT: S.ALERTING},
    S.OFFHOOK: {I.DIAL: S.DIALING, I.TONE: S.TONE},
    S.DIALING: {I.RINGBACK: S.RINGBACK, I.ALERT: S.ALERTING, I.TONE: S.TONE,
                I.CONNECT: S.CONNECTED},
    S.ALERTING: {I.ANSWER: S.CONNECTED, I.TONE: S.TONE},
    S.RINGBACK: {I.CONNECT: S.CONNECTED, I.TONE: S.TONE},
    S.CONNECTED: {I.HOLD: S.HELD, I.RINGBACK: S.RINGBACK, I.TONE: S.TONE},
    S.HELD: {I.RETRIEVE: S.CONNECTED, I.RINGBACK: S.RINGBACK, I.TONE: S.TONE},
    S.TONE: {},
}
for _s in LineStatus:
    if _s is not S.IDLE:
        _EXPECTED[_s] |= {I.HANGUP: S.IDLE, I.RELEASE: S.IDLE}

_PAIRS = [(s, i) for s in LineStatus for i in LineInput]


def _pair_id(pair: tuple[LineStatus, LineInput]) -> str:
    return f"{pair[0].value}-{pair[1].value}"


# ---------------------------------------------------------------- the pure table


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(LineStatus)


@pytest.mark.parametrize("pair", _PAIRS, ids=[_pair_id(p) for p in _PAIRS])
@pytest.mark.parametrize("kind", list(LineKind))
def test_every_state_and_input_follows_the_table(
    pair: tuple[LineStatus, LineInput], kind: LineKind
) -> None:
    status, what = pair
    line = Line(kind, 7, status=status, call_id=None if status is S.IDLE else "c1")
    got = line.next_status(what)
    want = _EXPECTED[status].get(what)
    if want is not None:
        assert got is want
    else:
        # LineStatus is a StrEnum now: a refusal is a plain reason string, not a state.
        assert isinstance(got, str) and not isinstance(got, LineStatus)
        assert what.value in got and status.value in got and line.name in got
    # Asking never changes the line: only the core applies a transition.
    assert line.status is status and line.call_id == (None if status is S.IDLE else "c1")


def test_every_busy_state_can_be_hung_up_and_released() -> None:
    for status in LineStatus:
        for what in (I.HANGUP, I.RELEASE):
            got = Line(LineKind.EXTENSION, 201, status=status).next_status(what)
            if status is S.IDLE:
                assert isinstance(got, str) and not isinstance(got, LineStatus)
            else:
                assert got is S.IDLE


def test_idle_line_refuses_hangup_with_a_reason() -> None:
    got = Line(LineKind.TRUNK, 3).next_status(I.HANGUP)
    assert got == "cannot hangup trunk/3: line is idle"


def test_line_names_follow_the_wire_format() -> None:
    assert line_name(LineKind.TRUNK, 3) == "trunk/3"
    assert line_name(LineKind.EXTENSION, 201) == "ext/201"
    assert Line(LineKind.EXTENSION, 201).name == "ext/201"
    assert Line(LineKind.EXTENSION, 201).idle


# ------------------------------------------------------------ through the core

T0 = 1_764_000_000.0


def _config() -> CoreConfig:
    return CoreConfig(
        trunks=3,
        extensions=(201, 202, 203),
        routes=(
            Route(Target(TargetKind.EXTENSION, "201"), dnis="201"),
            Route(Target(TargetKind.EXTENSION, "202"), dnis="202"),
            Route(Target(TargetKind.BUSY), dnis="busy"),
            Route(Target(TargetKind.GROUP, "sales")),
        ),
    )


#: The core's line-signalling inputs by the verb names these tests use.
_VERBS: dict[str, Callable[[str], Input]] = {
    "answer": ci.Answer, "hangup": ci.Hangup, "hold": ci.Hold, "retrieve": ci.Retrieve,
    "far_busy": ci.FarBusy, "offhook": ci.OffHook,
}


class Rig:
    """A core plus a clock; collects every event it is given."""

    def __init__(self) -> None:
        self.core = GroupedCore(_config(), {"sales": RingGroup("sales", RingStrategy.RINGALL,
                                                               (202, 203))})
        self.now = T0
        self.events: list[Event] = []

    def take(self, events: list[Event]) -> list[Event]:
        self.events.extend(events)
        return events

    def incoming(self, dnis: str, trunk: int | None = None) -> str:
        call_id = new_call_id(self.take(self.core.handle(
            self.now, ci.Incoming("13900001111", dnis, trunk=trunk))))
        assert call_id is not None
        return call_id

    def dial(self, line: str, number: str) -> str | None:
        return new_call_id(self.take(self.core.handle(self.now, ci.Dial(line, number))))

    def do(self, verb: str, line: str) -> list[Event]:
        return self.take(self.core.handle(self.now, _VERBS[verb](line)))

    def run_timers(self) -> None:
        while (d := self.core.next_deadline()) is not None:
            self.now = max(self.now, d)
            self.take(self.core.handle_timer(self.now))

    def snapshot(self) -> dict[str, tuple[LineStatus, str | None, str | None]]:
        return {n: (ln.status, ln.call_id, ln.tone) for n, ln in self.core.lines.items()}

    def calls(self) -> dict[str, tuple[object, ...]]:
        return {cid: call_snapshot(c) for cid, c in self.core.calls.items()}

    def clear(self) -> None:
        """Hang up every busy line, then let every timer fire."""
        for _ in range(10):
            busy = [n for n, ln in self.core.lines.items() if not ln.idle]
            if not busy:
                break
            self.do("hangup", busy[0])
        self.run_timers()
        assert all(ln.idle and ln.call_id is None for ln in self.core.lines.values())
        assert self.core.calls == {}


Scenario = Callable[[Rig], None]


def _ext_idle(r: Rig) -> None:
    pass


def _ext_offhook(r: Rig) -> None:
    r.do("offhook", "ext/201")


def _ext_alerting(r: Rig) -> None:
    r.incoming("201")


def _ext_ringback(r: Rig) -> None:
    r.dial("ext/201", "202")


def _ext_connected(r: Rig) -> None:
    r.dial("ext/201", "202")
    r.do("answer", "ext/202")


def _ext_held(r: Rig) -> None:
    _ext_connected(r)
    r.do("hold", "ext/202")


def _ext_holding(r: Rig) -> None:
    _ext_connected(r)
    r.do("hold", "ext/201")


def _ext_tone(r: Rig) -> None:
    r.dial("ext/201", "777")


def _trunk_idle(r: Rig) -> None:
    pass


def _trunk_alerting_inbound(r: Rig) -> None:
    r.incoming("202", trunk=1)


def _trunk_alerting_outbound(r: Rig) -> None:
    r.dial("ext/202", "955501")


def _trunk_connected(r: Rig) -> None:
    r.incoming("202", trunk=1)
    r.do("answer", "ext/202")


def _trunk_ringback(r: Rig) -> None:
    _trunk_connected(r)
    r.take(r.core.handle(r.now, ci.BlindTransfer("ext/202", "203")))


def _trunk_held(r: Rig) -> None:
    _trunk_connected(r)
    r.do("hold", "ext/202")


def _trunk_tone(r: Rig) -> None:
    r.incoming("busy", trunk=1)


_ALL_INPUTS = ("answer", "hangup", "hold", "retrieve", "far_busy", "dial", "offhook")
#: (scenario, line under test, the state it leaves that line in, the core inputs it must refuse).
#: DIALING is not listed: the core moves through it inside one ``dial`` call and never rests there.
_CASES: list[tuple[Scenario, str, LineStatus, tuple[str, ...]]] = [
    (_ext_idle, "ext/201", S.IDLE, ("answer", "hangup", "hold", "retrieve", "far_busy")),
    (_ext_offhook, "ext/201", S.OFFHOOK, ("answer", "hold", "retrieve", "far_busy", "offhook")),
    (_ext_alerting, "ext/201", S.ALERTING, ("hold", "retrieve", "far_busy", "dial", "offhook")),
    (_ext_ringback, "ext/201", S.RINGBACK,
     ("answer", "hold", "retrieve", "far_busy", "dial", "offhook")),
    (_ext_connected, "ext/201", S.CONNECTED,
     ("answer", "retrieve", "far_busy", "dial", "offhook")),
    (_ext_held, "ext/201", S.HELD,
     ("answer", "hold", "retrieve", "far_busy", "dial", "offhook")),
    (_ext_holding, "ext/201", S.CONNECTED, ("answer", "hold", "far_busy", "dial", "offhook")),
    (_ext_tone, "ext/201", S.TONE, ("answer", "hold", "retrieve", "far_busy", "dial", "offhook")),
    (_trunk_idle, "trunk/1", S.IDLE, ("answer", "hangup", "hold", "retrieve", "far_busy")),
    (_trunk_alerting_inbound, "trunk/1", S.ALERTING, ("answer", "hold", "retrieve", "far_busy")),
    (_trunk_alerting_outbound, "trunk/1", S.ALERTING, ("hold", "retrieve")),
    (_trunk_connected, "trunk/1", S.CONNECTED, ("answer", "retrieve", "far_busy")),
    (_trunk_ringback, "trunk/1", S.RINGBACK, ("answer", "hold", "retrieve", "far_busy")),
    (_trunk_held, "trunk/1", S.HELD, ("answer", "hold", "retrieve", "far_busy")),
    (_trunk_tone, "trunk/1", S.TONE, ("answer", "hold", "retrieve", "far_busy")),
]
_ILLEGAL = [(scenario, line, status, what)
            for scenario, line, status, refused in _CASES for what in refused]
_ACTION = {"answer": "answer", "hangup": "hangup", "hold": "hold", "retrieve": "retrieve",
           "far_busy": "tone", "dial": "dial", "offhook": "offhook"}


def _send(r: Rig, what: str, line: str) -> list[Event]:
    if what == "dial":
        events = r.core.handle(r.now, ci.Dial(line, "203"))
        assert new_call_id(events) is None
        return r.take(events)
    return r.do(what, line)


def _prove_line_works(r: Rig, line: str) -> None:
    """A fresh call that uses ``line`` is answered and ends cleanly."""
    r.events.clear()
    if line.startswith("ext/"):
        r.dial(line, "203")
        r.do("answer", "ext/203")
    else:
        r.incoming("202", trunk=int(line.split("/")[1]))
        r.do("answer", "ext/202")
    r.now += 30
    r.do("hangup", line)
    ended = [e for e in r.events if isinstance(e, CallEnded)]
    assert [e.disposition for e in ended] == ["ANSWERED"]
    assert ended[0].cdr.billsec == 30
    assert all(ln.idle for ln in r.core.lines.values())


@pytest.mark.parametrize(
    ("scenario", "line", "status", "what"), _ILLEGAL,
    ids=[f"{sc.__name__[1:]}-{w}" for sc, _, _, w in _ILLEGAL],
)
def test_illegal_core_input_is_a_line_error_and_changes_nothing(
    scenario: Scenario, line: str, status: LineStatus, what: str
) -> None:
    r = Rig()
    scenario(r)
    assert r.core.lines[line].status is status
    before_lines, before_calls, deadline = r.snapshot(), r.calls(), r.core.next_deadline()

    events = _send(r, what, line)

    assert len(events) == 1, events
    err = events[0]
    assert isinstance(err, LineError)
    assert err.line == line and err.state == status.value and err.action == _ACTION[what]
    assert line in err.reason and err.reason.startswith("cannot")
    assert err.call_id == r.core.lines[line].call_id
    assert r.snapshot() == before_lines
    assert r.calls() == before_calls
    assert r.core.next_deadline() == deadline
    # The line is not stuck: it can be hung up (unless idle), and then carries a new call.
    if status is not S.IDLE:
        r.do("hangup", line)
        assert r.core.lines[line].idle
    r.clear()
    _prove_line_works(r, line)


@pytest.mark.parametrize(("scenario", "line", "status"),
                         [(sc, ln, st) for sc, ln, st, _ in _CASES if st is not S.IDLE],
                         ids=[sc.__name__[1:] for sc, _, st, _ in _CASES if st is not S.IDLE])
def test_every_busy_state_can_be_hung_up_through_the_core(
    scenario: Scenario, line: str, status: LineStatus
) -> None:
    r = Rig()
    scenario(r)
    events = r.do("hangup", line)
    assert not any(isinstance(e, LineError) for e in events)
    assert r.core.lines[line].idle and r.core.lines[line].call_id is None
    assert r.core.lines[line].tone is None
    r.clear()
    _prove_line_works(r, line)


@pytest.mark.parametrize("verb", ["dial", "offhook"])
def test_trunk_cannot_dial_or_go_offhook_and_nothing_changes(verb: str) -> None:
    r = Rig()
    _trunk_connected(r)
    before = r.snapshot()
    with pytest.raises(CoreError) as exc:
        if verb == "dial":
            r.core.handle(r.now, ci.Dial("trunk/1", "203"))
        else:
            r.core.handle(r.now, ci.OffHook("trunk/1"))
    assert exc.value.code == "bad_arg" and "trunk/1" in exc.value.msg
    assert r.snapshot() == before


def test_every_input_is_covered_in_some_state() -> None:
    covered = {what for *_, refused in _CASES for what in refused}
    assert covered == set(_ALL_INPUTS)
