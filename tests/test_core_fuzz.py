"""Every core input in random order, with the whole call model checked after every step.

A hypothesis state machine drives :class:`SwitchCore` with all of its inputs (line
signalling, CTI call control, supervisor monitoring, the switch's own offers, time
passing). Most arguments are drawn from what the core is doing right now (answer a
phone that rings, consult from a talking agent, monitor a live call), the rest from
every line and call, so refusals are exercised as much as the happy paths; a call or
two may already be connected when a run starts. It is the reviewer's randomised fuzzer
(its invariants, its state-aware and CTI-realistic generators) made permanent; after
every step, timer firings included:

* lines and calls point at each other (a busy line belongs to a live call that holds
  it as anchor, leg or offer; an idle line belongs to nobody);
* bridges hold only legs of their own call, no line sits in two bridges, a held role
  is a held line, supervisors sit in the customer's (main) bridge, and a whisper only
  ever reaches an agent's phone, never the customer's trunk;
* the media plane's view, rebuilt from ``bridge.changed`` alone, equals the core's
  bridges, and the mixing weights derived from it never let a customer hear a
  whisper nor a held party hear or be heard;
* every ``call.ended`` carries a CDR with its hangup cause, ``ANSWERED`` exactly
  when a person answered, and the IVR facts and recording id the last ``Annotate`` gave;
* while the recorder hides a call's keys (``HideDigits``), a key press makes no event
  and is only counted; ``HideDigits`` itself emits nothing;
* a call the switch holds (a flow route, ``SwitchAnswer``) is ``switch_routing``
  exactly while a ``Route`` rings for it, its caller hearing ringback and no ACD
  offer beside it; a ``call.route_failed`` leaves it in ``switch``, nothing of the
  route left ringing;
* an ``Offer`` or ``Route`` that the call table has no row for (``Call.can``) is
  refused; a refusal (``CoreError`` or a ``line.error``) changes nothing at all;
* with no calls left, every line is free, no bridge exists and no timer is armed.

A failing run prints the inputs it applied (``note``: ``t=<seconds> <input>``, with
each refusal's reason), shrunk to a minimal sequence. Ids come from a counter (c1, c2,
…), so a printed sequence replays exactly.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from switchd.acd.model import RingGroup, RingStrategy
from switchd.core import inputs as ci
from switchd.core.call import Call, CallInput, CallState, OfferPurpose
from switchd.core.engine import CoreError, SwitchCore
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.engine import Input
from switchd.events import (
    MONITOR_ROLES,
    BridgeChanged,
    BridgeMember,
    CallAnswered,
    CallEnded,
    CallNew,
    CallPickedUp,
    CallRinging,
    CallRouted,
    CallRouteFailed,
    CallSwitchAnswered,
    Direction,
    Event,
    HangupCause,
    LineError,
    MonitorStarted,
    OfferWithdrawn,
    Role,
)
from switchd.lines.mixer import bridge_weights
from switchd.lines.state import LineKind, LineStatus
from tests.corehelp import GroupedCore

T0 = 1_764_000_000.0
S = LineStatus
EXTS = (201, 202, 203, 204, 205, 206, 207, 208)
TRUNK_LINES = [f"trunk/{n}" for n in (1, 2, 3)]
EXT_LINES = [f"ext/{n}" for n in EXTS]
ALL_LINES = TRUNK_LINES + EXT_LINES
#: The media plane's channel of each line (bridge_weights speaks channels).
CHANNEL = {name: i for i, name in enumerate(ALL_LINES)}
CAUSES = {str(c): c.q850 for c in HangupCause}
ERROR_CODES = {"busy", "not_found", "bad_arg", "wrong_state"}
TALKING_STATES = (CallState.ANSWERED, CallState.CONSULTING, CallState.CONFERENCE)
#: States of a call the switch holds (the IVR may Route, Release or Annotate it).
SWITCH_STATES = (CallState.SWITCH, CallState.SWITCH_ROUTING)
#: The call-table input each core input needs a row for, where the table decides.
TABLE_INPUT = {ci.Offer: CallInput.OFFER, ci.Route: CallInput.ROUTE}

#: Ring groups are queues with no waiting: the ACD rings them (tests.corehelp.GroupedCore).
GROUPS = {
    "sales": RingGroup("sales", RingStrategy.RINGALL, (201, 202, 203)),
    "support": RingGroup("support", RingStrategy.HUNT, (203, 202, 201), ring_timeout_s=5.0),
    # A member with no line (299) is skipped (the config refuses it; GroupedCore drops it).
    "overflow": RingGroup("overflow", RingStrategy.HUNT, (299, 204, 205), ring_timeout_s=4.0),
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
        Route(Target(TargetKind.GROUP, "overflow"), dnis="8003"),
        Route(Target(TargetKind.EXTENSION, "299"), dnis="8004"),
        Route(Target(TargetKind.FLOW, "main"), dnis="8005"),
        *(Route(Target(TargetKind.EXTENSION, str(n)), dnis=str(n)) for n in EXTS),
    ),
)

#: Mostly numbers that ring somebody; the last three end in busy or congestion tone.
DNIS = ["8000", "8000", "8001", "8003", "201", "202", "203", "204", "205", "8005", "8005",
        "8002", "8004", "7777"]
#: Where the IVR routes the calls it holds: mostly what rings somebody, else what cannot
#: (an unknown extension or group: unallocated; an outside number: busy or congestion
#: when no trunk is free), and what the core refuses (bad_arg).
ROUTE_TARGETS = [Target.parse(t) for t in (
    "extension:201", "extension:202", "extension:203", "extension:204", "group:sales",
    "group:support", "group:overflow", "number:95550001", "number:5550002", "extension:299",
    "group:nosuch")]
BAD_ROUTE_TARGETS = [Target(TargetKind.FLOW, "main"), Target(TargetKind.BUSY),
                     Target(TargetKind.NUMBER, "12a")]
ROUTE_TIMEOUTS = [None, None, 5.0, 0.5, 0.0]
IVR_PATHS = [None, "main:welcome", "main:welcome>menu", "other:x"]
IVR_VARS = [None, "{}", '{"lang": "en"}']
#: What extensions dial: an idle extension or an outside number mostly, else any of
#: DIALLED (a busy or unknown number, or a bad one: bad_arg).
OUTSIDE = ["95550001", "95550002"]
DIALLED = ["201", "202", "203", "204", "205", *OUTSIDE, "777", "9", "", "12a"]
MODES = [Role.LISTEN, Role.WHISPER, Role.BARGE]
SECONDS = [0.0, 0.5, 4.0, 5.0, 10.0, 20.0, 30.0]
NOISE_KINDS = {"Incoming", "Answer", "Hangup", "FarBusy", "OffHook", "Dial", "Hold", "Retrieve",
               "BlindTransfer", "Consult", "Complete", "Cancel", "Conference", "Monitor",
               "SetMonitorMode", "Pickup", "SwitchAnswer", "Offer", "Withdraw", "Digit",
               "Route", "Release", "Annotate", "HideDigits"}


# ------------------------------------------------------------------ snapshots


def _freeze(x: Any) -> Any:
    """``x`` as nested tuples of plain values (dataclasses field by field, dicts in order)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__name__,
                tuple((f.name, _freeze(getattr(x, f.name))) for f in dataclasses.fields(x)))
    if isinstance(x, dict):
        return tuple((k, _freeze(v)) for k, v in x.items())
    if isinstance(x, list | tuple):
        return tuple(_freeze(v) for v in x)
    return x


def armed_timers(core: SwitchCore) -> dict[Any, float]:
    """Every timer the core has armed, key -> deadline (the heap's live entries)."""
    heap = core._timers
    return {key: deadline for deadline, seq, key, _ in heap._heap if heap._live.get(key) == seq}


def snapshot(core: SwitchCore) -> tuple[Any, ...]:
    """Everything the core holds: lines, calls (every field, offers, bridges), timers.

    Bar the count of withheld keys: the one thing a key press may change (while the
    recorder hides a call's keys); the model checks it instead (``hidden``)."""
    calls = {cid: dataclasses.replace(call, digits_hidden=0) for cid, call in core.calls.items()}
    return (_freeze(core.lines), _freeze(calls), sorted(armed_timers(core).items()),
            core.accepting)


def talkers(call: Call) -> list[str]:
    """The call's legs that are not supervisors."""
    return [leg for leg in call.legs if leg not in call.monitors]


# -------------------------------------------------------------------- machine


class CoreFuzz(RuleBasedStateMachine):
    """One small board; the model is the events the core emitted, the checks are invariants."""

    def __init__(self) -> None:
        super().__init__()
        counter = itertools.count(1)
        # Counter ids: a run replays exactly, and a shrunk example names the same calls.
        self.core = GroupedCore(CONFIG, GROUPS, id_factory=lambda now: f"c{next(counter)}")
        self.now = T0
        self.created: list[str] = []
        self.ended: dict[str, CallEnded] = {}
        #: Calls a person answered (call.answered / call.picked_up, not the switch).
        self.answered: set[str] = set()
        self.origin: dict[str, str | None] = {}
        #: The media plane's bridges: bridge id -> members, from bridge.changed alone.
        self.media: dict[str, tuple[BridgeMember, ...]] = {}
        #: line -> call, from call.ringing minus offer.withdrawn / answers.
        self.ringing: dict[str, str] = {}
        #: Calls a trunk answered (a Route to an outside number, or a call dialled out).
        self.trunk_answered: set[str] = set()
        #: Calls routed to a flow (call.routed), and what the last Annotate set per call.
        self.routed: set[str] = set()
        self.ivr: dict[str, tuple[str | None, str | None]] = {}
        #: The recording id the last Annotate gave per call.
        self.recording: dict[str, str] = {}
        #: Calls whose keys the recorder hides -> keys withheld since (HideDigits).
        self.hidden: dict[str, int] = {}
        #: False while a step runs: a step that raised leaves nothing for teardown to check.
        self.sound = True

    # ------------------------------------------------------------- plumbing

    def feed(self, events: list[Event], cause: Input | str) -> None:
        """Follow the events as the media plane and the CDR writer would, checking each."""
        route_failed: list[CallRouteFailed] = []
        for i, ev in enumerate(events):
            assert getattr(ev, "time", self.now) == self.now, ev
            if isinstance(ev, CallRouted) and ev.target.startswith("group:"):
                # A ring group: the ACD rings it; the switch does not answer the call.
                assert not any(isinstance(e, CallSwitchAnswered) and e.call_id == ev.call_id
                               for e in events[i + 1:]), f"group call {ev.call_id} answered"
            elif isinstance(ev, CallRouted):
                assert ev.target == "flow:main" and ev.dnis == "8005", ev
                assert ev.call_id not in self.routed, f"{ev.call_id} routed twice"
                self.routed.add(ev.call_id)
                # The switch answers the call it routed to a flow, in the same step.
                assert any(isinstance(e, CallSwitchAnswered) and e.call_id == ev.call_id
                           for e in events[i + 1:]), f"call.routed {ev.call_id} not answered"
            elif isinstance(ev, CallRouteFailed):
                route_failed.append(ev)
            elif isinstance(ev, CallNew):
                assert ev.call_id not in self.created, f"call id {ev.call_id} reused"
                self.created.append(ev.call_id)
                call = self.core.calls.get(ev.call_id)
                self.origin[ev.call_id] = call.origin_line if call is not None else None
            elif isinstance(ev, CallAnswered | CallPickedUp):
                self.answered.add(ev.call_id)
                self.ringing.pop(ev.line, None)
                if ev.line.startswith("trunk/"):
                    self.trunk_answered.add(ev.call_id)
            elif isinstance(ev, MonitorStarted):
                self.ringing.pop(ev.line, None)
            elif isinstance(ev, CallRinging):
                assert ev.line not in self.ringing, f"{ev.line} rung twice: {self.ringing}"
                self.ringing[ev.line] = ev.call_id
            elif isinstance(ev, OfferWithdrawn):
                assert self.ringing.get(ev.line) == ev.call_id, (
                    f"offer.withdrawn {ev.line} for {ev.call_id}, which never rang it "
                    f"(ringing: {self.ringing})")
                del self.ringing[ev.line]
            elif isinstance(ev, BridgeChanged):
                if ev.members:
                    lines = [m.line for m in ev.members]
                    assert len(lines) == len(set(lines)), f"{ev.bridge} lists a line twice: {lines}"
                    self.media[ev.bridge] = ev.members
                else:
                    assert ev.bridge in self.media, f"dissolved unknown bridge {ev.bridge}"
                    del self.media[ev.bridge]
            elif isinstance(ev, CallEnded):
                self.check_cdr(ev, cause)
        for ev in route_failed:
            # The call is back with the switch: nothing of the route rings, no ringback.
            call = self.core.calls.get(ev.call_id)
            assert call is not None and call.state is CallState.SWITCH, (ev, call)
            assert call.route_target is None and not any(o.routed for o in call.offers.values())
            assert self.core.lines[call.anchor].status is S.CONNECTED, (ev, call.anchor)
            assert ev.target and ev.reason, ev

    def check_cdr(self, ev: CallEnded, cause: Input | str) -> None:
        """A call.ended: one per call, its CDR complete, ANSWERED iff a person answered."""
        cid = ev.call_id
        assert cid in self.created and cid not in self.ended, f"{cid} ended twice or never began"
        self.ended[cid] = ev
        cdr = ev.cdr
        assert cdr is not None and cdr.uniqueid == cid, ev
        assert cdr.hangup_cause and cdr.q850 is not None, f"CDR {cid} without cause: {cdr}"
        assert CAUSES.get(cdr.hangup_cause) == cdr.q850, f"CDR {cid} cause/q850 {cdr}"
        assert (cdr.hangup_cause, cdr.q850) == (str(ev.hangup_cause), ev.q850), (ev, cdr)
        assert ev.disposition.value == cdr.disposition and ev.hangup_by == cdr.hangup_by
        answered = cid in self.answered
        assert (cdr.disposition == "ANSWERED") == answered, (
            f"CDR {cid} disposition {cdr.disposition} but a person answered: {answered}")
        assert (cdr.answer is not None) == answered, f"CDR {cid} answer={cdr.answer}, {answered=}"
        assert cdr.hangup_by in {"caller", "callee", "system"}, cdr.hangup_by
        assert cdr.end == self.now and cdr.duration >= cdr.billsec >= 0, cdr
        if answered:
            assert ev.hangup_cause is not HangupCause.ORIGINATOR_CANCEL, (cid, ev.hangup_cause)
            if cdr.direction == Direction.INBOUND.value and cid not in self.trunk_answered:
                assert cdr.extension is not None, f"answered inbound CDR {cid} names no extension"
        if cause == "timer":
            assert cdr.hangup_by == "system", f"a timer ended {cid} but hangup_by={cdr.hangup_by}"
        assert (cdr.ivr_path, cdr.ivr_vars) == self.ivr.get(cid, (None, None)), (cid, cdr)
        assert cdr.recording_id == self.recording.get(cid), (cid, cdr.recording_id)
        self.hidden.pop(cid, None)
        if isinstance(cause, ci.Release):
            assert (cdr.hangup_by, ev.hangup_cause) == ("system", cause.cause), cdr
        elif isinstance(cause, ci.Shutdown):
            assert (cdr.hangup_by, ev.hangup_cause) == ("system", HangupCause.SYSTEM_SHUTDOWN), cdr
        elif isinstance(cause, ci.Hangup) and cdr.hangup_by != "system":
            want = "caller" if cause.line == self.origin.get(cid) else "callee"
            assert cdr.hangup_by == want, f"{cause.line} hung up {cid}: hangup_by={cdr.hangup_by}"
            if answered:
                assert ev.hangup_cause is HangupCause.NORMAL_CLEARING, (cid, ev.hangup_cause)

    def do(self, item: Input) -> None:
        """Apply one input. A refusal (CoreError, or nothing but line.error) changes nothing."""
        self.sound = False
        note(f"t={self.now - T0:g} {item!r}")
        before = snapshot(self.core)
        # With no row in the call table for it, the input must be refused (DESIGN §1).
        table_input = TABLE_INPUT.get(type(item))
        target = self.core.calls.get(getattr(item, "call_id", ""))
        no_row = table_input is not None and target is not None and not target.can(table_input)
        try:
            events = self.core.handle(self.now, item)
        except CoreError as exc:
            note(f"    CoreError {exc.code}: {exc.msg}")
            assert exc.code in ERROR_CODES, exc.code
            assert snapshot(self.core) == before, f"CoreError {exc.code} ({exc.msg}) changed state"
            self.sound = True
            return
        errors = [e for e in events if isinstance(e, LineError)]
        assert errors or not no_row, (
            f"{item!r} was carried out in state {target.state if target else None}, "
            "which has no row for it")
        if errors:
            note(f"    refused: {errors[0].reason}")
            assert len(errors) == len(events), (
                f"a refusal mixed with changes: {[e.name for e in events]}")
            assert snapshot(self.core) == before, f"refusal {errors[0].reason!r} changed state"
        elif isinstance(item, ci.Digit):
            assert snapshot(self.core) == before, "a DTMF digit changed state"
            call = self.core.call_of_line(item.line)
            if call is not None and call.call_id in self.hidden:
                assert events == [], f"a hidden key made {events}"
                self.hidden[call.call_id] += 1
        elif isinstance(item, ci.HideDigits):
            assert events == [], f"HideDigits emitted {events}"
            if item.call_id in self.core.calls:
                if not item.on:
                    self.hidden.pop(item.call_id, None)
                elif item.call_id not in self.hidden:
                    self.hidden[item.call_id] = 0
        elif isinstance(item, ci.Annotate):
            assert events == [], f"Annotate emitted {events}"
            call = self.core.calls.get(item.call_id)
            if call is None:
                assert snapshot(self.core) == before, "Annotate of a gone call changed state"
            else:
                path, vars_ = self.ivr.get(item.call_id, (None, None))
                self.ivr[item.call_id] = (item.ivr_path if item.ivr_path is not None else path,
                                          item.ivr_vars if item.ivr_vars is not None else vars_)
                assert (call.ivr_path, call.ivr_vars) == self.ivr[item.call_id]
                if item.recording_id is not None:
                    self.recording[item.call_id] = item.recording_id
        self.feed(events, item)
        self.sound = True

    def fire_until(self, t: float) -> None:
        """Let time pass to ``t``, firing every timer on its deadline, checking after each."""
        self.sound = False
        while (d := self.core.next_deadline()) is not None and d <= t:
            assert d >= self.now, f"deadline {d} in the past (now {self.now})"
            self.now = d
            note(f"t={self.now - T0:g} timer")
            self.feed(self.core.handle_timer(self.now), "timer")
            self.check_model()
        self.now = max(self.now, t)
        self.sound = True

    # ----------------------------------------------------------- choosing

    def pick(self, data: st.DataObject, preferred: list[Any], pool: list[Any]) -> Any:
        """Mostly one of ``preferred`` (what makes sense now), else anything of ``pool``."""
        preferred = list(dict.fromkeys(preferred))
        if preferred and data.draw(st.integers(0, 9)) < 9:
            return data.draw(st.sampled_from(preferred))
        return data.draw(st.sampled_from(pool))

    # What makes sense now (the reviewer's state-aware generator); a rule whose pool is
    # empty is not chosen, and ``anything`` below tries every input with any argument.

    def calls(self) -> list[Call]:
        return list(self.core.calls.values())

    def any_call(self) -> list[str]:
        """Every call id ever made, and one never made (both are CoreError not_found)."""
        return [*self.created, "c999"]

    def idle_exts(self) -> list[str]:
        return [n for n in EXT_LINES if self.core.lines[n].idle]

    def busy_lines(self) -> list[str]:
        return [n for n, ln in self.core.lines.items() if not ln.idle]

    def ringing_lines(self) -> list[str]:
        return [o for c in self.calls() for o in c.offers]

    def agents(self) -> list[str]:
        """Phones in two-party calls: CTI call control comes from agents (a trunk's turn
        comes with the noise of ``pick`` and ``anything``)."""
        return [leg for c in self.calls() if c.state is CallState.ANSWERED
                for leg in talkers(c) if leg.startswith("ext/")]

    def holding(self) -> list[str]:
        """Agents whose peer is on hold."""
        out = []
        for line in self.agents():
            call = self.core.call_of_line(line)
            peer = call.peer_of(line) if call is not None else None
            if peer is not None and self.core.lines[peer].status is S.HELD:
                out.append(line)
        return out

    def consulters(self) -> list[str]:
        return [c.consulter for c in self.calls() if c.consulter is not None]

    def supervisors(self) -> list[str]:
        return [m for c in self.calls() for m in c.monitors] + [
            o.line for c in self.calls() for o in c.offers.values()
            if o.purpose is OfferPurpose.MONITOR]

    def inbound_ringing(self) -> list[str]:
        """Calls the switch may answer itself: ringing, the caller's trunk alerting."""
        return [c.call_id for c in self.calls() if c.state is CallState.RINGING
                and self.core.lines[c.anchor].status is S.ALERTING]

    def held_by_switch(self) -> list[str]:
        """Calls the switch holds with nothing ringing: what the IVR may Route."""
        return [c.call_id for c in self.calls()
                if c.state is CallState.SWITCH and not c.offers]

    def calls_in(self, *states: CallState) -> list[str]:
        return [c.call_id for c in self.calls() if c.state in states]

    def pickable(self) -> list[str]:
        return [c.call_id for c in self.calls() if any(
            o.purpose is OfferPurpose.CONNECT and o.line.startswith("ext/")
            for o in c.offers.values())]

    def target(self, data: st.DataObject) -> str:
        """An extension number to transfer or consult to (mostly an idle one)."""
        return self.pick(data, [n[4:] for n in self.idle_exts()], [*map(str, EXTS), "299", "777"])

    def ring_then_answer(self, item: Input, answer: bool) -> None:
        """Apply ``item``; with ``answer``, a phone it started ringing answers at once (the
        chains that reach consultations, conferences and supervisors are long otherwise)."""
        before = set(self.ringing_lines())
        self.do(item)
        rung = [ln for ln in self.ringing_lines() if ln not in before]
        if answer and rung:
            self.check_model()
            self.do(ci.Answer(rung[0]))

    # ---------------------------------------------------------------- rules

    @initialize(kinds=st.lists(st.sampled_from(["inbound", "internal", "outbound", "ivr"]),
                               max_size=2))
    def busy_board(self, kinds: list[str]) -> None:
        """Start with a call or two already connected or in the IVR (the long chains start
        sooner)."""
        for n, kind in enumerate(kinds):
            caller, callee = EXT_LINES[2 * n], EXT_LINES[2 * n + 1]
            if kind == "ivr":
                self.do(ci.Incoming("13900004444", "8005"))
            elif kind == "inbound":
                self.ring_then_answer(ci.Incoming("13900003333", callee[4:]), True)
            else:
                number = callee[4:] if kind == "internal" else OUTSIDE[0]
                self.ring_then_answer(ci.Dial(caller, number), True)
            self.check_model()

    @precondition(lambda self: any(self.core.lines[n].idle for n in TRUNK_LINES))
    @rule(caller=st.sampled_from(["13900001111", "13900002222", "anonymous"]),
          dnis=st.sampled_from(DNIS), trunk=st.sampled_from([None, None, None, 1, 2, 3]),
          blocked=st.sampled_from([None] * 7 + ["blacklist"]), vip=st.booleans(),
          answer=st.booleans())
    def incoming(self, caller: str, dnis: str, trunk: int | None, blocked: str | None,
                 vip: bool, answer: bool) -> None:
        self.ring_then_answer(
            ci.Incoming(caller, dnis, trunk=trunk, blocked_reason=blocked, vip=vip), answer)

    @precondition(lambda self: any(self.core.lines[n].status in (S.IDLE, S.OFFHOOK)
                                   for n in EXT_LINES))
    @rule(data=st.data(), answer=st.booleans())
    def dial(self, data: st.DataObject, answer: bool) -> None:
        free = [n for n in EXT_LINES if self.core.lines[n].status in (S.IDLE, S.OFFHOOK)]
        line = self.pick(data, free, ALL_LINES)
        number = self.pick(data, [n[4:] for n in self.idle_exts() if n != line] + OUTSIDE, DIALLED)
        self.ring_then_answer(ci.Dial(line, number), answer)

    @precondition(lambda self: self.idle_exts() and not any(
        ln.status is S.OFFHOOK for ln in self.core.lines.values()))
    @rule(data=st.data())
    def offhook(self, data: st.DataObject) -> None:
        self.do(ci.OffHook(self.pick(data, self.idle_exts(), ALL_LINES)))

    @precondition(lambda self: self.ringing_lines())
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        self.do(ci.Answer(self.pick(data, self.ringing_lines(), ALL_LINES)))

    @precondition(lambda self: self.busy_lines())
    @rule(data=st.data())
    def hangup(self, data: st.DataObject) -> None:
        self.do(ci.Hangup(self.pick(data, self.busy_lines(), ALL_LINES)))

    @precondition(lambda self: any(o.startswith("trunk/") for o in self.ringing_lines()))
    @rule(data=st.data())
    def far_busy(self, data: st.DataObject) -> None:
        out = [o for o in self.ringing_lines() if o.startswith("trunk/")]
        self.do(ci.FarBusy(self.pick(data, out, ALL_LINES)))

    @precondition(lambda self: self.agents())
    @rule(data=st.data())
    def hold(self, data: st.DataObject) -> None:
        self.do(ci.Hold(self.pick(data, self.agents(), ALL_LINES)))

    @precondition(lambda self: self.holding())
    @rule(data=st.data())
    def retrieve(self, data: st.DataObject) -> None:
        self.do(ci.Retrieve(self.pick(data, self.holding(), ALL_LINES)))

    @precondition(lambda self: self.agents())
    @rule(data=st.data(), answer=st.booleans())
    def blind_transfer(self, data: st.DataObject, answer: bool) -> None:
        line = self.pick(data, self.agents(), ALL_LINES)
        outside = data.draw(st.booleans())
        number = data.draw(st.sampled_from(["84001234", "1"])) if outside else self.target(data)
        self.ring_then_answer(ci.BlindTransfer(line, number, outside=outside), answer)

    @precondition(lambda self: self.agents())
    @rule(data=st.data(), answer=st.booleans())
    def consult(self, data: st.DataObject, answer: bool) -> None:
        line = self.pick(data, self.agents(), ALL_LINES)
        outside = data.draw(st.booleans())
        number = data.draw(st.sampled_from(["84001234", "1"])) if outside else self.target(data)
        self.ring_then_answer(ci.Consult(line, number, outside=outside), answer)

    @precondition(lambda self: self.consulters())
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        self.do(ci.Complete(self.pick(data, self.consulters(), ALL_LINES)))

    @precondition(lambda self: self.consulters())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.do(ci.Cancel(self.pick(data, self.consulters(), ALL_LINES)))

    @precondition(lambda self: self.consulters())
    @rule(data=st.data())
    def conference(self, data: st.DataObject) -> None:
        self.do(ci.Conference(self.pick(data, self.consulters(), ALL_LINES)))

    @precondition(lambda self: self.calls_in(*TALKING_STATES))
    @rule(data=st.data(), mode=st.sampled_from(MODES), explicit=st.booleans(),
          answer=st.booleans())
    def monitor(self, data: st.DataObject, mode: Role, explicit: bool, answer: bool) -> None:
        """Listen, whisper or barge; the whisper target left to the core, or named."""
        call_id = self.pick(data, self.calls_in(*TALKING_STATES), self.any_call())
        agent = None
        if explicit:
            call = self.core.calls.get(call_id)
            agent = self.pick(data, talkers(call) if call is not None else [], ALL_LINES)
        sup = self.pick(data, self.idle_exts(), ALL_LINES)
        self.ring_then_answer(ci.Monitor(sup, call_id, mode, agent), answer)

    @precondition(lambda self: self.supervisors())
    @rule(data=st.data(), mode=st.sampled_from([*MODES, Role.PARTY]))
    def set_monitor_mode(self, data: st.DataObject, mode: Role) -> None:
        self.do(ci.SetMonitorMode(self.pick(data, self.supervisors(), ALL_LINES), mode))

    @precondition(lambda self: self.pickable())
    @rule(data=st.data())
    def pickup(self, data: st.DataObject) -> None:
        call_id = self.pick(data, self.pickable(), self.any_call())
        self.do(ci.Pickup(self.pick(data, self.idle_exts(), ALL_LINES), call_id))

    @precondition(lambda self: self.inbound_ringing())
    @rule(data=st.data(), then_offer=st.booleans())
    def switch_answer(self, data: st.DataObject, then_offer: bool) -> None:
        """The switch takes a ringing call (IVR, queue); with ``then_offer`` the ACD offers
        it to an idle phone at once."""
        call_id = self.pick(data, self.inbound_ringing(), self.any_call())
        self.do(ci.SwitchAnswer(call_id))
        call = self.core.calls.get(call_id)
        if then_offer and call is not None and call.state is CallState.SWITCH and self.idle_exts():
            self.check_model()
            self.do(ci.Offer(call_id, data.draw(st.sampled_from(self.idle_exts())), 20.0))

    @precondition(lambda self: self.calls_in(*SWITCH_STATES))
    @rule(data=st.data(), timeout=st.sampled_from([20.0, 5.0, 0.5, 0.0]), answer=st.booleans())
    def offer(self, data: st.DataObject, timeout: float, answer: bool) -> None:
        """The ACD offers a call the switch holds (now and then one whose Route rings:
        refused by the table)."""
        call_id = self.pick(data, self.calls_in(CallState.SWITCH),
                            [*self.calls_in(CallState.SWITCH_ROUTING), *self.any_call()])
        line = self.pick(data, self.idle_exts(), ALL_LINES)
        self.ring_then_answer(ci.Offer(call_id, line, timeout), answer)

    @precondition(lambda self: self.calls_in(*SWITCH_STATES))
    @rule(data=st.data(), timeout=st.sampled_from(ROUTE_TIMEOUTS), answer=st.booleans())
    def route(self, data: st.DataObject, timeout: float | None, answer: bool) -> None:
        """The IVR transfers a call it holds (mostly one with nothing ringing; else one
        with ACD offers or its own Route ringing: refused)."""
        call_id = self.pick(data, self.held_by_switch(), self.calls_in(*SWITCH_STATES))
        target = self.pick(data, ROUTE_TARGETS, BAD_ROUTE_TARGETS)
        self.ring_then_answer(ci.Route(call_id, target, timeout), answer)

    @precondition(lambda self: self.calls_in(*SWITCH_STATES))
    @rule(data=st.data(), cause=st.sampled_from([HangupCause.NORMAL_CLEARING,
                                                 HangupCause.CALL_REJECTED]))
    def release(self, data: st.DataObject, cause: HangupCause) -> None:
        """The IVR hangs up a call it holds (now and then any live call: Release is
        allowed in every state)."""
        call_id = self.pick(data, self.calls_in(*SWITCH_STATES),
                            [c.call_id for c in self.calls()])
        self.do(ci.Release(call_id, cause))

    @precondition(lambda self: self.calls_in(*SWITCH_STATES))
    @rule(data=st.data(), path=st.sampled_from(IVR_PATHS), ivr_vars=st.sampled_from(IVR_VARS))
    def annotate(self, data: st.DataObject, path: str | None, ivr_vars: str | None) -> None:
        call_id = self.pick(data, self.calls_in(*SWITCH_STATES), self.any_call())
        self.do(ci.Annotate(call_id, path, ivr_vars,
                            recording_id=data.draw(st.sampled_from([None, call_id]))))

    @precondition(lambda self: self.core.calls)
    @rule(data=st.data(), on=st.booleans(), keys=st.integers(0, 3))
    def hide_digits(self, data: st.DataObject, on: bool, keys: int) -> None:
        """The recorder pauses (or resumes) a call's recording; its parties press keys."""
        call = data.draw(st.sampled_from(self.calls()))
        self.do(ci.HideDigits(call.call_id, on))
        for _ in range(keys):
            if call.call_id in self.core.calls:
                self.do(ci.Digit(data.draw(st.sampled_from(call.lines())), "4"))

    @precondition(lambda self: self.ringing_lines())
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        offers = [(c.call_id, o) for c in self.calls() for o in c.offers]
        call_id, line = self.pick(data, offers, [(c, ln) for c in self.any_call()[-3:]
                                                  for ln in ALL_LINES])
        self.do(ci.Withdraw(call_id, line))

    @rule(data=st.data(), kind=st.sampled_from(sorted(NOISE_KINDS)))
    def anything(self, data: st.DataObject, kind: str) -> None:
        """Any input with any arguments: mostly refusals, which must change nothing."""
        def line() -> str:
            return data.draw(st.sampled_from(ALL_LINES))

        def call() -> str:
            return data.draw(st.sampled_from(self.any_call()))

        def number() -> str:
            return data.draw(st.sampled_from([*DIALLED, "299"]))

        def mode() -> Role:
            return data.draw(st.sampled_from(list(Role)))

        make = {
            "Incoming": lambda: ci.Incoming("1", "201", trunk=data.draw(st.sampled_from([None, 1]))),
            "Answer": lambda: ci.Answer(line()), "Hangup": lambda: ci.Hangup(line()),
            "FarBusy": lambda: ci.FarBusy(line()), "OffHook": lambda: ci.OffHook(line()),
            "Dial": lambda: ci.Dial(line(), number()), "Hold": lambda: ci.Hold(line()),
            "Retrieve": lambda: ci.Retrieve(line()),
            "BlindTransfer": lambda: ci.BlindTransfer(line(), number(),
                                                      outside=data.draw(st.booleans())),
            "Consult": lambda: ci.Consult(line(), number(), outside=data.draw(st.booleans())),
            "Complete": lambda: ci.Complete(line()), "Cancel": lambda: ci.Cancel(line()),
            "Conference": lambda: ci.Conference(line()),
            "Monitor": lambda: ci.Monitor(line(), call(), mode(),
                                          data.draw(st.sampled_from([None, *ALL_LINES]))),
            "SetMonitorMode": lambda: ci.SetMonitorMode(line(), mode()),
            "Pickup": lambda: ci.Pickup(line(), call()),
            "SwitchAnswer": lambda: ci.SwitchAnswer(call()),
            "Offer": lambda: ci.Offer(call(), line(), data.draw(st.sampled_from([20.0, -1.0]))),
            "Withdraw": lambda: ci.Withdraw(call(), line()),
            "Digit": lambda: ci.Digit(line(), "5"),
            "Route": lambda: ci.Route(call(), data.draw(st.sampled_from(
                ROUTE_TARGETS + BAD_ROUTE_TARGETS)), data.draw(st.sampled_from(ROUTE_TIMEOUTS))),
            "Release": lambda: ci.Release(call()),
            "Annotate": lambda: ci.Annotate(call(), "x:y", None),
            "HideDigits": lambda: ci.HideDigits(call(), data.draw(st.booleans())),
        }
        self.do(make[kind]())

    @rule(seconds=st.sampled_from(SECONDS))
    def advance(self, seconds: float) -> None:
        self.fire_until(self.now + seconds)

    @precondition(lambda self: self.core.next_deadline() is not None)
    @rule()
    def next_timer(self) -> None:
        d = self.core.next_deadline()
        assert d is not None
        self.fire_until(d)

    # ----------------------------------------------------------- invariants

    @invariant()
    def invariants_hold(self) -> None:
        self.sound = False
        self.check_model()
        self.sound = True

    def check_model(self) -> None:
        self.lines_point_to_calls_that_hold_them()
        self.calls_point_back_to_their_lines()
        self.tones_match_line_states()
        self.bridges_hold_only_legs_of_their_call()
        self.held_roles_are_held_lines()
        self.monitors_sit_in_the_main_bridge()
        self.whispers_reach_only_an_agent_phone()
        self.media_bridges_equal_core_bridges()
        self.mixing_weights_keep_secrets()
        self.call_states_agree_with_legs_and_timers()
        self.hidden_keys_are_only_counted()
        self.nothing_left_without_calls()

    def lines_point_to_calls_that_hold_them(self) -> None:
        calls = self.core.calls
        for name, ln in self.core.lines.items():
            if ln.status is S.IDLE:
                assert ln.call_id is None, f"idle {name} still points to {ln.call_id}"
            elif ln.status is S.OFFHOOK:
                assert ln.call_id is None, f"off-hook {name} points to {ln.call_id}"
            else:
                call = calls.get(ln.call_id or "")
                assert call is not None, f"{name} ({ln.status}) points to dead call {ln.call_id}"
                assert name == call.anchor or name in call.legs or name in call.offers, (
                    f"{name} ({ln.status}) is not held by its call {call.call_id}: anchor="
                    f"{call.anchor} legs={list(call.legs)} offers={list(call.offers)}")

    def hidden_keys_are_only_counted(self) -> None:
        for call in self.calls():
            assert call.hide_digits is (call.call_id in self.hidden), call.call_id
            if call.hide_digits:
                assert call.digits_hidden == self.hidden[call.call_id], call.call_id
                assert self.core.hidden_digits(call.call_id) == call.digits_hidden
        assert set(self.hidden) <= set(self.core.calls), "a hidden count outlived its call"

    def calls_point_back_to_their_lines(self) -> None:
        lines = self.core.lines
        assert set(self.core.calls) == set(self.created) - set(self.ended), (
            f"live calls {sorted(self.core.calls)} != created - ended")
        for cid, call in self.core.calls.items():
            assert call.call_id == cid and call.state is not CallState.ENDED, call
            for name in [call.anchor, *call.legs, *call.offers]:
                assert lines[name].call_id == cid and not lines[name].idle, (
                    f"call {cid} holds {name}, but the line is {lines[name]}")
            for name in call.offers:
                assert lines[name].status is S.ALERTING, f"offer {name} is {lines[name].status}"
                assert name not in call.legs, f"{name} is both a leg and an offer of {cid}"
            assert set(call.monitors) <= set(call.legs), f"monitors {call.monitors} not legs"

    def tones_match_line_states(self) -> None:
        for name, ln in self.core.lines.items():
            if ln.status is S.IDLE:
                assert ln.tone is None, f"idle {name} hears {ln.tone}"
            elif ln.status is S.OFFHOOK:
                assert ln.tone == "dial", f"off-hook {name} hears {ln.tone}"
            elif ln.status is S.CONNECTED:
                assert ln.tone is None, f"connected {name} hears {ln.tone}"
            elif ln.status is S.RINGBACK:
                assert ln.tone == "ringback", f"{name} in ringback hears {ln.tone}"
            elif ln.status is S.TONE:
                assert ln.tone in ("busy", "congestion"), f"{name} in tone hears {ln.tone}"
            assert (ln.status is S.HELD) == (ln.tone == "moh"), f"{name} {ln.status} {ln.tone}"

    def bridges_hold_only_legs_of_their_call(self) -> None:
        seen: dict[str, str] = {}
        for cid, call in self.core.calls.items():
            for bid, bridge in call.bridges.items():
                assert bid.startswith(f"{cid}/") and bridge.bridge_id == bid, (cid, bid)
                assert bridge.members, f"empty bridge {bid} left in call {cid}"
                for member in bridge.members:
                    assert member in call.legs, (
                        f"bridge {bid} holds {member}, not a leg of {cid} (legs {list(call.legs)})")
                    assert member not in seen, f"{member} is in {seen.get(member)} and {bid}"
                    seen[member] = bid
            for leg in call.legs:
                assert leg in seen, f"leg {leg} of {cid} ({call.state}) is in no bridge"
            if call.main_id is not None:
                assert call.main_id in call.bridges, f"{cid} lost its main bridge {call.main_id}"
            if call.state in TALKING_STATES:
                assert call.main_id is not None, f"{cid} is {call.state} without a main bridge"

    def held_roles_are_held_lines(self) -> None:
        held_members = set()
        for call in self.core.calls.values():
            for bid, bridge in call.bridges.items():
                for member, role in bridge.members.items():
                    status = self.core.lines[member].status
                    assert (role is Role.HELD) == (status is S.HELD), (
                        f"{member} has role {role} in {bid} but its line is {status}")
                    if role is Role.HELD:
                        held_members.add(member)
        held_lines = {n for n, ln in self.core.lines.items() if ln.status is S.HELD}
        assert held_lines == held_members, f"held lines {held_lines} != held members {held_members}"

    def monitors_sit_in_the_main_bridge(self) -> None:
        for cid, call in self.core.calls.items():
            # (main_id, not Call.main: the bridge the customer was first connected in.)
            main = call.bridges.get(call.main_id or "")
            for sup in call.monitors:
                assert main is not None and sup in main.members, (
                    f"supervisor {sup} of {cid} is not in the main bridge {call.main_id}: "
                    f"{ {b: dict(x.members) for b, x in call.bridges.items()} }")
                assert main.members[sup] in MONITOR_ROLES, (sup, main.members[sup])
            for bid, bridge in call.bridges.items():
                for member, role in bridge.members.items():
                    if role in (Role.LISTEN, Role.WHISPER):
                        assert member in call.monitors, f"{member} {role} in {bid}, no supervisor"

    def whispers_reach_only_an_agent_phone(self) -> None:
        lines = self.core.lines
        for cid, call in self.core.calls.items():
            for bid, bridge in call.bridges.items():
                for sup, to in bridge.whisper_to.items():
                    assert bridge.members.get(sup) is Role.WHISPER, (
                        f"{bid}: whisper target for {sup}, which is {bridge.members.get(sup)}")
                    assert lines[to].kind is LineKind.EXTENSION, (
                        f"supervisor {sup} whispers to the customer's {to} in {cid}")
                    assert to in call.legs and to not in call.monitors, (
                        f"supervisor {sup} whispers to {to}, not an agent leg of {cid}")
                    assert call.monitors.get(sup) == to, (sup, to, call.monitors)

    def media_bridges_equal_core_bridges(self) -> None:
        core = {bid: b.snapshot() for c in self.core.calls.values() for bid, b in c.bridges.items()}
        assert self.media == core, (
            f"bridges from bridge.changed\n  {self.media}\n!= the core's\n  {core}")

    def mixing_weights_keep_secrets(self) -> None:
        for bid, members in self.media.items():
            role = {m.line: m.role for m in members}
            for m in members:
                if m.role is Role.WHISPER and m.to is not None:
                    assert not m.to.startswith("trunk/"), f"{bid}: {m.line} whispers to {m.to}"
            for listener_ch, talker_ch, _ in bridge_weights(members, CHANNEL):
                listener, talker = ALL_LINES[listener_ch], ALL_LINES[talker_ch]
                assert role[listener] is not Role.HELD, f"{bid}: held {listener} hears {talker}"
                assert role[talker] is not Role.HELD, f"{bid}: held {talker} heard by {listener}"
                assert role[talker] is not Role.LISTEN, f"{bid}: listener {talker} is heard"
                if role[talker] is Role.WHISPER:
                    assert not listener.startswith("trunk/"), (
                        f"{bid}: customer {listener} hears {talker}'s whisper")

    def call_states_agree_with_legs_and_timers(self) -> None:
        timers = armed_timers(self.core)
        want: dict[Any, float | None] = {}
        for cid, call in self.core.calls.items():
            for name, offer in call.offers.items():
                want[("offer", name)] = offer.deadline
            if call.state is CallState.TONE:
                want[("tone", cid)] = None
            if call.state in (CallState.RINGING, CallState.TRANSFERRING, CallState.RECALLING,
                              CallState.SWITCH_ROUTING):
                # Something rings for it: the core's own offers, or (a ring group) the
                # ACD's, which the ACD answers for with Unrouted when they are all gone.
                assert call.offers, f"{cid} is {call.state} but nothing rings"
            if call.state is CallState.CONSULTING:
                assert call.consulted in call.offers or call.consulted in call.legs, call
                assert call.consulter in call.legs and call.held_party in call.legs, call
            if call.state is CallState.CONFERENCE:
                assert len(talkers(call)) >= 3, f"{cid} conference of {talkers(call)}"
            routed = [o for o in call.offers.values() if o.routed]
            anchor = self.core.lines[call.anchor]
            if call.state is CallState.SWITCH_ROUTING:
                # A Route rings, the caller hears its ringback, and nothing else rings.
                assert call.route_target is not None, f"{cid} routes to nothing named"
                assert anchor.status is S.RINGBACK, (cid, anchor.status, routed)
                # A ring group's members are the ACD's offers; any other route's the core's.
                group = (call.route_target or "").startswith("group:")
                assert len(routed) == (0 if group else len(call.offers)), (
                    f"{cid}: offers of the wrong owner ring for {call.route_target}: "
                    f"{list(call.offers)}")
            else:
                assert call.route_target is None, (cid, call.state, call.route_target)
            if call.state is CallState.SWITCH:
                # Held by the switch, no Route ringing: only ACD offers may ring.
                assert not routed, f"{cid} is switch with routed offers {routed}"
                assert anchor.status is S.CONNECTED, (cid, anchor.status)
            if call.state is CallState.ANSWERED:
                assert len(talkers(call)) == 2, f"{cid} answered with {talkers(call)}"
        assert set(timers) == set(want), f"timers {sorted(timers)} != offers+tones {sorted(want)}"
        for key, deadline in want.items():
            assert deadline is None or timers[key] == deadline, (key, timers[key], deadline)
        offers = {o: c.call_id for c in self.core.calls.values() for o in c.offers}
        assert self.ringing == offers, f"rung per events {self.ringing} != offers {offers}"

    def nothing_left_without_calls(self) -> None:
        if self.core.calls:
            return
        busy = {n: ln.status for n, ln in self.core.lines.items()
                if ln.status not in (S.IDLE, S.OFFHOOK) or ln.call_id is not None}
        assert not busy, f"no calls, but lines are busy: {busy}"
        assert not self.media, f"no calls, but the media plane has bridges {self.media}"
        assert self.core.next_deadline() is None, "no calls, but a timer is armed"
        assert not self.ringing, f"no calls, but {self.ringing} ring"

    def teardown(self) -> None:
        if not self.sound:
            return  # a step failed: hypothesis reports that, not its aftermath
        # Shut down from wherever the run stopped: every live call ends with its CDR.
        self.do(ci.Shutdown())
        self.check_model()
        assert not self.core.calls and sorted(self.created) == sorted(self.ended)
        assert all(ln.status in (S.IDLE, S.OFFHOOK) for ln in self.core.lines.values())
        self.do(ci.Incoming("13900001111", "201"))  # refused: the switch is shutting down
        self.check_model()


CoreFuzz.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCoreFuzz = CoreFuzz.TestCase
