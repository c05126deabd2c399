"""The recorder engine on the real call core and ACD, in virtual time.

A ``Rig`` runs :class:`~switchd.core.engine.SwitchCore`, :class:`~switchd.acd.engine.Acd`
and :class:`~switchd.recorder.engine.Recorder` under the daemon's :class:`Shell`, with
a stand-in for the recording service that keeps every ``Tap*`` input and closes files at
once (the real service's figures come from the file; this one from the tap modes it
was told, which is what the file would hold). Each test drives people (callers, agents,
supervisors) and checks what reaches the tap, the events and the CDR.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS, NotReady
from switchd.acd.model import AcdSettings, Strategy
from switchd.bus import Bus
from switchd.core.engine import SwitchCore, new_call_id
from switchd.core.inputs import (
    CORE_INPUTS,
    Annotate,
    Answer,
    BlindTransfer,
    Cancel,
    Complete,
    Conference,
    Consult,
    Dial,
    Digit,
    Hangup,
    HideDigits,
    Hold,
    Incoming,
    Monitor,
    OffHook,
    Redirect,
    Retrieve,
    SetMonitorMode,
)
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.engine import Input
from switchd.events import (
    CallAnswered,
    CallEnded,
    CallNew,
    CallSwitchAnswered,
    Cdr,
    Direction,
    Disposition,
    DtmfReceived,
    Event,
    HangupCause,
    QueueCallback,
    RecordingDone,
    RecordingFailed,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    RecordingStopped,
    Role,
)
from switchd.ivr.inputs import PlayPrompt, StopPrompt
from switchd.recorder.engine import REC_TRANSITIONS, RecInput, Recorder, RecorderError, RecState
from switchd.recorder.inputs import (
    SERVICE_INPUTS,
    RecordCommand,
    RecordingClosed,
    RecordingError,
    TapClose,
    TapMode,
    TapOpen,
    TapSources,
    TapState,
)
from switchd.recorder.model import (
    RecordAction,
    RecordFormat,
    RecordingSettings,
    RecordLayout,
    RecordMode,
    RouteMode,
    recording_relpath,
)
from switchd.shell import Shell, VirtualClock
from tests.acdhelp import T0, agents, queue
from tests.corehelp import StrictLog

S = RecState
QUEUES = ("q", "quiet", "loud", "agentq")


class FakeService:
    """Stands in for the recording service: keeps every Tap* input and, unless told to
    hold, answers a TapClose with RecordingClosed at once. Its duration is the time the
    tap was told to write (running or paused), as the file would hold."""

    TAKES = SERVICE_INPUTS

    def __init__(self) -> None:
        self.got: list[Input] = []
        self.hold_close = False
        self._since: dict[str, float | None] = {}
        self._written: dict[str, float] = {}

    def handle(self, now: float, item: Any) -> list[Any]:
        self.got.append(item)
        rid = item.recording_id
        if isinstance(item, TapOpen):
            self._since[rid], self._written[rid] = now, 0.0
        elif isinstance(item, TapState):
            self._halt(rid, now)
            if item.mode is not TapMode.STOPPED:
                self._since[rid] = now
        elif isinstance(item, TapClose):
            self._halt(rid, now)
            if not self.hold_close:
                return [self.closed(rid)]
        return []

    def _halt(self, rid: str, now: float) -> None:
        since = self._since.get(rid)
        if since is not None:
            self._written[rid] += now - since
            self._since[rid] = None

    def closed(self, rid: str) -> RecordingClosed:
        d = round(self._written[rid], 3)
        return RecordingClosed(rid, d, 44 + int(d * 32000), "ab" * 32)

    def next_deadline(self) -> None:
        return None

    def handle_timer(self, now: float) -> list[Any]:
        return []


class _Player:
    def handle(self, now: float, item: Any) -> list[Any]:
        return []

    def next_deadline(self) -> None:
        return None

    def handle_timer(self, now: float) -> list[Any]:
        return []


def settings(**kw: Any) -> RecordingSettings:
    kw.setdefault("queue_modes", {"quiet": RecordMode.OFF, "loud": RecordMode.ON_ANSWER,
                                  "agentq": RecordMode.ON_AGENT})
    return RecordingSettings(**kw)


class Rig:
    """Core + ACD + recorder on a virtual-time shell. DNIS ``ivr`` (and ``vip``) go to a
    flow (the switch answers; no IVR runs), ``q``/``quiet``/``loud``/``agentq`` to those
    queues (linear; agent a1 at ext/201 in all four, a2 at ext/202 in ``agentq`` only;
    ``quiet`` overflows to ``agentq`` after 60 s), ``203`` to extension 203."""

    def __init__(self, rec_settings: RecordingSettings | None = None) -> None:
        qs = {name: queue(name, strategy=Strategy.LINEAR) for name in QUEUES}
        # Nobody answers in ``quiet`` for a minute: its callers move on to ``agentq``.
        qs["quiet"] = queue("quiet", strategy=Strategy.LINEAR, max_wait_s=60.0,
                            overflow=Target(TargetKind.QUEUE, "agentq"))
        routes = (Route(Target(TargetKind.FLOW, "main"), dnis="ivr"),
                  Route(Target(TargetKind.FLOW, "main"), dnis="vip"),
                  Route(Target(TargetKind.EXTENSION, "203"), dnis="203"),
                  *(Route(Target(TargetKind.QUEUE, n), dnis=n) for n in QUEUES))
        self.core = SwitchCore(CoreConfig(trunks=4, extensions=tuple(range(201, 209)),
                                          routes=routes, ring_timeout_s=20.0))
        people = (*agents(1, QUEUES), *agents(1, ("agentq",), first=2))
        self.acd = Acd(AcdSettings(qs, people), rng=random.Random(1))
        self.recorder = Recorder(rec_settings or settings(),
                                 hidden_digits=self.core.hidden_digits)
        self.service = FakeService()
        self.clock = VirtualClock(T0)
        bus = Bus()
        self.events: list[Event] = []
        bus.on_any(self.events.append)
        self.shell = Shell(bus, self.clock, log_events=False)
        self.shell.log = StrictLog()
        self.shell.add(self.core, takes=CORE_INPUTS)
        self.shell.add(self.acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
        self.shell.add(_Player(), takes=(PlayPrompt, StopPrompt))
        self.shell.add(self.recorder, takes=Recorder.TAKES, follows=Recorder.FOLLOWS)
        self.shell.add(self.service, takes=FakeService.TAKES)
        self.shell.dispatch(self.acd.start(T0), T0)
        self._trunk: dict[str, str] = {}

    # -------------------------------------------------------------- people

    def submit(self, item: Any) -> list[Event]:
        return self.shell.submit(item)

    def at(self, t: float) -> None:
        """Run to ``T0 + t``."""
        self.shell.run_until(T0 + t)

    def call(self, dnis: str = "ivr", caller: str = "5550001") -> str:
        events = self.submit(Incoming(caller, dnis))
        call_id = new_call_id(events)
        assert call_id is not None
        new = next(e for e in events if isinstance(e, CallNew))
        self._trunk[call_id] = f"trunk/{new.trunk}"
        return call_id

    def trunk(self, call_id: str) -> str:
        return self._trunk[call_id]

    def answer(self, line: str) -> None:
        self.submit(Answer(line))

    def hangup(self, line: str) -> None:
        self.submit(Hangup(line))

    def record(self, call_id: str, action: str, user: str | None = None) -> None:
        self.submit(RecordCommand(call_id, RecordAction(action), user))

    def keys(self, line: str, digits: str) -> None:
        for d in digits:
            self.submit(Digit(line, d))

    def to_queue(self, call_id: str, name: str) -> None:
        """Send a switch-held caller (the IVR's) to queue ``name``."""
        self.submit(Redirect(call_id, Target(TargetKind.QUEUE, name)))

    # ------------------------------------------------------------- looking

    def of(self, kind: type[Any], call_id: str | None = None) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)
                and (call_id is None or getattr(e, "call_id", None) == call_id)]

    def taps(self, kind: type[Any] | tuple[type[Any], ...] = object,
             rid: str | None = None) -> list[Any]:
        return [i for i in self.service.got if isinstance(i, kind)
                and (rid is None or i.recording_id == rid)]

    def sources(self, rid: str) -> list[tuple[str, tuple[str, ...]]]:
        """The tap's (customer, extras) for ``rid``: at open, then every change."""
        return [(i.customer, i.extras) for i in self.taps((TapOpen, TapSources), rid)]

    def state(self, call_id: str) -> RecState | None:
        return self.recorder.state_of(call_id)

    def cdr(self, call_id: str) -> Any:
        (ended,) = self.of(CallEnded, call_id)
        return ended.cdr

    def done(self, call_id: str) -> RecordingDone:
        (d,) = self.of(RecordingDone, call_id)
        return d

    def marks(self, call_id: str) -> list[tuple[float, str, str]]:
        marks = self.done(call_id).marks
        assert marks is not None
        return [(m.offset_s, m.kind, m.detail) for m in marks.items]

    def assert_clean(self) -> None:
        """Every call over, every recording done, every open file closed or failed."""
        assert self.core.calls == {}
        assert self.recorder.calls == {}
        for op in self.taps(TapOpen):
            closes = self.taps(TapClose, op.recording_id)
            failed = self.of(RecordingFailed, op.recording_id)
            assert len(closes) + (1 if failed and not closes else 0) == 1, op.recording_id
            assert len(self.of(RecordingDone, op.recording_id)) == 1


def _kinds(items: Iterable[Any]) -> list[str]:
    return [type(i).__name__ for i in items]


# --------------------------------------------------------------------- the table


def test_every_recording_can_end_with_its_call_and_every_open_file_reaches_done():
    for state in RecState:
        if state in (S.CLOSING, S.DONE):
            continue
        assert (state, RecInput.CALL_END) in REC_TRANSITIONS, state
    # Whatever was open ends in recording.done: closing takes the file's report either way.
    assert REC_TRANSITIONS[(S.CLOSING, RecInput.CLOSED)][0] is S.DONE
    assert REC_TRANSITIONS[(S.CLOSING, RecInput.ERROR)][0] is S.DONE


def test_the_engine_alone_returns_tap_inputs_core_inputs_and_events_in_order():
    rec = Recorder(settings(layout=RecordLayout.MONO, format=RecordFormat.ULAW))
    cid = "c1"
    assert rec.handle(T0, CallNew(cid, T0, Direction.INBOUND, "5550001", "ivr", trunk=3)) == []
    out = rec.handle(T0, CallSwitchAnswered(cid, T0, "trunk/3"))
    assert _kinds(out) == ["TapOpen", "Annotate", "RecordingStarted"]
    assert (out[0].customer, out[0].layout, out[0].format) == (
        "trunk/3", RecordLayout.MONO, RecordFormat.ULAW)
    assert out[1] == Annotate(cid, recording_id=cid)
    assert (out[2].layout, out[2].format) == ("mono", "ulaw")
    out = rec.handle(T0 + 1, RecordCommand(cid, RecordAction.PAUSE))
    assert out[:2] == [HideDigits(cid, True), TapState(cid, TapMode.PAUSED)]
    out = rec.handle(T0 + 2, RecordCommand(cid, RecordAction.RESUME))
    assert out[:2] == [HideDigits(cid, False), TapState(cid, TapMode.RUNNING)]
    assert out[2].digits_hidden == 0        # no core to ask: nothing was counted
    cdr = Cdr(cid, cid, "5550001", "ivr", "", T0, None, T0 + 3, 3, 0, "NO ANSWER", "inbound")
    out = rec.handle(T0 + 3, CallEnded(cid, T0 + 3, Disposition.NO_ANSWER, 3, 0, "caller",
                                       HangupCause.NORMAL_CLEARING, 16, cdr))
    assert out == [TapClose(cid)]
    assert rec.handle(T0 + 3, RecordingError("other", "EIO")) == []   # not ours: ignored
    out = rec.handle(T0 + 4, RecordingClosed(cid, 3.0, 24058, "cd" * 32))
    assert _kinds(out) == ["RecordingDone"] and rec.calls == {}
    assert (rec.next_deadline(), rec.handle_timer(T0 + 5)) == (None, [])
    with pytest.raises(TypeError):
        rec.handle(T0, Hangup("trunk/3"))


# ------------------------------------------------------------------------- modes


def test_on_answer_records_an_ivr_call_from_the_switch_answer_and_the_cdr_names_it():
    r = Rig()
    cid = r.call("ivr")
    trunk = r.trunk(cid)
    (op,) = r.taps(TapOpen)
    assert (op.recording_id, op.call_id, op.start) == (cid, cid, T0)
    assert op.relpath == recording_relpath(cid, T0)
    assert str(op.relpath).endswith(f"/{cid}.wav") and str(op.relpath).startswith("2025/11/24/")
    assert (op.customer, op.extras) == (trunk, ())
    assert (op.layout, op.format) == (RecordLayout.STEREO, RecordFormat.PCM)
    (st,) = r.of(RecordingStarted)
    assert (st.recording_id, st.file, st.why, st.mode, st.segment) == (
        cid, str(op.relpath), "answer", "on_answer", 1)
    assert (st.direction, st.caller, st.callee, st.layout, st.format) == (
        "inbound", "5550001", "ivr", "stereo", "pcm")
    assert r.recorder.recording_of(cid) == cid
    r.at(42)
    r.hangup(trunk)
    assert r.cdr(cid).recording_id == cid
    done = r.done(cid)
    assert (done.status, done.file, done.duration_s, done.sha256) == (
        "done", str(op.relpath), 42.0, "ab" * 32)
    assert r.marks(cid) == [(0.0, "start", "answer"), (42.0, "stop", "call_end")]
    assert r.recorder.recording_of(cid) is None
    r.assert_clean()


def test_on_agent_waits_in_the_queue_and_starts_when_the_agent_answers():
    r = Rig(settings(mode=RecordMode.ON_AGENT))
    cid = r.call("q")
    r.at(12)                                # a1's phone rings meanwhile (15 s)
    assert r.taps() == [] and r.state(cid) is S.WAITING
    r.answer("ext/201")
    (op,) = r.taps(TapOpen)
    assert (op.start, op.customer, op.extras) == (T0 + 12, r.trunk(cid), ())
    assert r.of(RecordingStarted)[0].why == "agent"
    r.at(32)
    r.hangup("ext/201")
    assert r.done(cid).duration_s == 20.0
    assert r.marks(cid) == [
        (0.0, "start", "agent"),
        (0.0, "members", f"{r.trunk(cid)}:party,ext/201:party,agent=a1"),
        (20.0, "stop", "call_end")]
    assert r.cdr(cid).recording_id == cid
    r.assert_clean()


def test_mode_off_records_nothing_and_the_cdr_has_no_recording():
    r = Rig(settings(mode=RecordMode.OFF))
    cid = r.call("q")
    r.answer("ext/201")
    r.at(10)
    r.hangup(r.trunk(cid))
    assert r.taps() == [] and r.of(RecordingStarted) == [] and r.of(RecordingDone) == []
    assert r.cdr(cid).recording_id is None
    r.assert_clean()


def test_a_route_record_mode_overrides_the_default_for_its_dnis_only():
    r = Rig(settings(mode=RecordMode.ON_ANSWER,
                     route_modes=(RouteMode(RecordMode.OFF, dnis="vip"),)))
    vip = r.call("vip", caller="5550009")
    plain = r.call("ivr")
    assert [o.recording_id for o in r.taps(TapOpen)] == [plain]
    assert r.state(vip) is S.WAITING
    r.hangup(r.trunk(vip))
    r.hangup(r.trunk(plain))
    r.assert_clean()


def test_a_call_that_ends_before_its_moment_has_no_recording():
    r = Rig(settings(mode=RecordMode.ON_AGENT))
    ringing = r.call("203")                 # rings ext/203; the caller gives up
    queued = r.call("q", caller="5550002")  # waits; hangs up before an agent is free
    r.submit(Hangup("ext/201"))             # (a1 is being rung: decline)
    r.hangup(r.trunk(ringing))
    r.hangup(r.trunk(queued))
    assert r.taps() == [] and r.of(RecordingStarted) == [] and r.of(RecordingDone) == []
    assert r.recorder.calls == {}


def test_a_queue_whose_mode_is_off_stops_what_the_route_mode_started_and_its_time_is_not_in_the_file():
    r = Rig()
    cid = r.call("ivr")
    r.at(10)
    r.to_queue(cid, "quiet")                # the IVR sends the caller to the quiet queue
    (stop,) = r.of(RecordingStopped)
    assert (stop.why, stop.user) == ("mode", None)
    assert r.state(cid) is S.STOPPED_BY_MODE
    assert [t.mode for t in r.taps(TapState)] == [TapMode.STOPPED]
    r.at(25)
    r.hangup(r.trunk(cid))                  # nobody answered: a1 rang meanwhile
    assert r.done(cid).duration_s == 10.0
    assert r.marks(cid) == [(0.0, "start", "answer"), (10.0, "stop", "mode")]
    r.assert_clean()


def test_a_queue_that_records_on_answer_starts_the_recording_as_the_caller_joins():
    r = Rig(settings(mode=RecordMode.OFF))
    cid = r.call("ivr")
    r.at(5)
    assert r.taps() == []
    r.to_queue(cid, "loud")
    (op,) = r.taps(TapOpen)
    assert op.start == T0 + 5
    assert r.of(RecordingStarted)[0].mode == "on_answer"
    r.hangup(r.trunk(cid))
    r.assert_clean()


def test_a_later_queue_that_records_on_agent_starts_a_second_segment_when_its_agent_answers():
    r = Rig()
    r.submit(NotReady("a1"))
    cid = r.call("ivr")
    r.at(10)
    r.to_queue(cid, "quiet")                # stops at 10 s; nobody is free there
    r.at(70)                                # overflow to agentq: a2 rings
    assert r.state(cid) is S.STOPPED_BY_MODE
    r.at(75)
    r.answer("ext/202")
    starts = r.of(RecordingStarted)
    assert [(s.segment, s.why, s.mode) for s in starts] == [
        (1, "answer", "on_answer"), (2, "agent", "on_agent")]
    assert [t.mode for t in r.taps(TapState)] == [TapMode.STOPPED, TapMode.RUNNING]
    r.at(80)
    r.hangup(r.trunk(cid))
    assert r.done(cid).duration_s == 15.0
    assert r.marks(cid) == [
        (0.0, "start", "answer"), (10.0, "stop", "mode"), (10.0, "start", "agent"),
        (10.0, "members", f"{r.trunk(cid)}:party,ext/202:party,agent=a2"),
        (15.0, "stop", "call_end")]
    r.assert_clean()


def test_a_command_started_recording_is_never_stopped_by_a_queue_mode():
    r = Rig(settings(mode=RecordMode.OFF))
    cid = r.call("ivr")
    r.record(cid, "start", user="sup1")
    assert r.state(cid) is S.RECORDING_BY_COMMAND
    assert r.of(RecordingStarted)[0].why == "command"
    r.to_queue(cid, "quiet")
    assert r.of(RecordingStopped) == [] and r.state(cid) is S.RECORDING_BY_COMMAND
    r.answer("ext/201")
    r.at(12)
    r.hangup("ext/201")
    assert r.done(cid).duration_s == 12.0
    assert r.marks(cid)[0] == (0.0, "start", "command user=sup1")
    r.assert_clean()


def test_internal_calls_are_recorded_by_mode_only_when_internal_is_set():
    for internal in (False, True):
        r = Rig(settings(internal=internal))
        r.submit(OffHook("ext/203"))
        cid = new_call_id(r.submit(Dial("ext/203", "204")))
        assert cid is not None
        r.answer("ext/204")
        assert bool(r.taps(TapOpen)) is internal
        if not internal:
            r.record(cid, "start")          # a command records it all the same
        (op,) = r.taps(TapOpen)
        assert (op.customer, op.extras) == ("ext/203", ())
        assert r.of(RecordingStarted)[0].direction == "internal"
        r.hangup("ext/204")
        r.assert_clean()


@pytest.mark.parametrize("mode", [RecordMode.ON_ANSWER, RecordMode.ON_AGENT])
def test_an_outbound_call_starts_when_the_far_end_answers_with_the_trunk_as_customer(mode):
    r = Rig(settings(mode=mode))
    r.submit(OffHook("ext/201"))
    cid = new_call_id(r.submit(Dial("ext/201", "95550123")))
    assert cid is not None
    r.at(8)
    assert r.taps() == []                   # ringing out: nobody answered
    r.answer("trunk/1")
    (op,) = r.taps(TapOpen)
    assert (op.start, op.customer, op.extras) == (T0 + 8, "trunk/1", ())
    assert r.taps(TapSources) == []         # the bridge announced after agrees
    st = r.of(RecordingStarted)[0]
    assert (st.direction, st.caller, st.callee) == ("outbound", "201", "5550123")
    r.hangup("ext/201")
    r.assert_clean()


def test_a_reload_applies_to_the_next_calls_only():
    r = Rig(settings(mode=RecordMode.OFF))
    first = r.call("q")
    r.recorder.reconfigure(settings(mode=RecordMode.ON_ANSWER, format=RecordFormat.ALAW))
    second = r.call("q", caller="5550002")
    r.answer("ext/201")                     # takes the first caller
    assert [o.recording_id for o in r.taps(TapOpen)] == [second]
    assert r.taps(TapOpen)[0].format is RecordFormat.ALAW
    r.hangup(r.trunk(first))
    r.hangup(r.trunk(second))
    r.assert_clean()


# ----------------------------------------------------------------------- commands


def test_commands_refused_name_the_problem_and_change_nothing():
    r = Rig(settings(mode=RecordMode.OFF))
    with pytest.raises(RecorderError) as e:
        r.record("nosuch", "start")
    assert e.value.code == "not_found" and "CALLS" in e.value.msg
    ringing = r.call("203")
    with pytest.raises(RecorderError) as e:
        r.record(ringing, "start")
    assert e.value.code == "wrong_state" and "not answered" in e.value.msg
    cid = r.call("ivr", caller="5550002")
    for action, hint in (("pause", "action=start"), ("resume", "action=start"),
                         ("stop", "action=start")):
        with pytest.raises(RecorderError) as e:
            r.record(cid, action)
        assert (e.value.code, hint in e.value.msg) == ("wrong_state", True), e.value.msg
    r.record(cid, "start")
    for action, hint in (("start", "already"), ("resume", "action=pause")):
        with pytest.raises(RecorderError) as e:
            r.record(cid, action)
        assert (e.value.code, hint in e.value.msg) == ("wrong_state", True), e.value.msg
    r.record(cid, "pause")
    for action, hint in (("start", "action=resume"), ("pause", "paused already")):
        with pytest.raises(RecorderError) as e:
            r.record(cid, action)
        assert (e.value.code, hint in e.value.msg) == ("wrong_state", True), e.value.msg
    before = (list(r.service.got), list(r.events), r.state(cid))
    with pytest.raises(RecorderError):
        r.record(cid, "pause")
    assert (list(r.service.got), list(r.events), r.state(cid)) == before
    r.hangup(r.trunk(cid))
    with pytest.raises(RecorderError) as e:
        r.record(cid, "resume")
    assert e.value.code == "not_found"
    r.hangup(r.trunk(ringing))
    r.assert_clean()


def test_stop_and_start_make_segments_and_stopped_time_is_not_in_the_file():
    r = Rig()
    cid = r.call("ivr")
    r.at(10)
    r.record(cid, "stop", user="a1")
    (stop,) = r.of(RecordingStopped)
    assert (stop.why, stop.user) == ("command", "a1")
    assert r.state(cid) is S.STOPPED
    r.at(30)
    r.to_queue(cid, "loud")                 # a mode never restarts what a command stopped
    assert r.state(cid) is S.STOPPED
    r.record(cid, "start", user="a1")
    starts = r.of(RecordingStarted)
    assert [(s.segment, s.why, s.file) for s in starts] == [
        (1, "answer", starts[0].file), (2, "command", starts[0].file)]
    assert len(r.taps(TapOpen)) == 1        # one file for the call
    assert [t.mode for t in r.taps(TapState)] == [TapMode.STOPPED, TapMode.RUNNING]
    r.at(35)
    r.hangup(r.trunk(cid))
    assert r.done(cid).duration_s == 15.0
    assert r.marks(cid) == [(0.0, "start", "answer"), (10.0, "stop", "command user=a1"),
                            (10.0, "start", "command user=a1"), (15.0, "stop", "call_end")]
    r.assert_clean()


def test_pause_writes_silence_hides_the_keys_from_every_event_and_counts_them():
    r = Rig()
    cid = r.call("q")
    r.answer("ext/201")
    trunk = r.trunk(cid)
    r.keys(trunk, "1")
    assert [d.digit for d in r.of(DtmfReceived)] == ["1"]
    r.at(10)
    r.record(cid, "pause", user="a1")
    assert _kinds(r.taps(TapState)) == ["TapState"]
    assert r.taps(TapState)[-1].mode is TapMode.PAUSED
    (paused,) = r.of(RecordingPaused)
    assert paused.user == "a1"
    r.keys(trunk, "4111")
    r.keys("ext/201", "2")                  # the agent's keys too: same call
    assert [d.digit for d in r.of(DtmfReceived)] == ["1"]
    r.at(20)
    r.record(cid, "resume", user="a1")
    (resumed,) = r.of(RecordingResumed)
    assert (resumed.digits_hidden, resumed.user) == (5, "a1")
    assert r.taps(TapState)[-1].mode is TapMode.RUNNING
    r.keys(trunk, "9")
    assert [d.digit for d in r.of(DtmfReceived)] == ["1", "9"]
    # A second pause counts afresh; ending it with stop gives the keys back too.
    r.record(cid, "pause")
    r.keys(trunk, "77")
    r.at(25)
    r.record(cid, "stop")
    r.keys(trunk, "3")
    assert [d.digit for d in r.of(DtmfReceived)] == ["1", "9", "3"]
    r.at(30)
    r.hangup(trunk)
    assert r.done(cid).duration_s == 25.0   # paused time is silence in the file
    assert r.marks(cid) == [
        (0.0, "start", "answer"), (0.0, "members", f"{trunk}:party,ext/201:party,agent=a1"),
        (10.0, "pause", "user=a1"), (20.0, "resume", "user=a1 digits_hidden=5"),
        (20.0, "pause", ""), (25.0, "stop", "command digits_hidden=2")]
    r.assert_clean()


def test_a_queue_that_does_not_record_ends_a_pause_and_gives_the_keys_back():
    r = Rig()
    cid = r.call("ivr")
    r.record(cid, "pause")
    r.keys(r.trunk(cid), "12")
    r.to_queue(cid, "quiet")
    assert r.state(cid) is S.STOPPED_BY_MODE
    r.keys(r.trunk(cid), "3")
    assert [d.digit for d in r.of(DtmfReceived)] == ["3"]
    stopped = r.of(RecordingStopped)[0]
    # The keys withheld during the pause are reported as the stop gives them back.
    assert (stopped.why, stopped.digits_hidden) == ("mode", 2)
    r.hangup(r.trunk(cid))
    r.assert_clean()


def test_leaving_a_queue_that_does_not_record_for_one_without_override_records_again():
    """The route's mode (on_answer) is back in force in a queue with no record: of its own."""
    r = Rig()
    r.submit(NotReady("a1"))                # nobody rings: the caller can be moved on
    cid = r.call("ivr")
    r.at(5)
    r.to_queue(cid, "quiet")
    assert r.state(cid) is S.STOPPED_BY_MODE
    r.at(8)
    r.to_queue(cid, "q")                    # no override: the route's on_answer
    assert r.state(cid) is S.RECORDING
    assert [e.segment for e in r.of(RecordingStarted)] == [1, 2]
    r.hangup(r.trunk(cid))
    r.assert_clean()


# ------------------------------------------------------------------------ sources


def _agent_call(r: Rig) -> tuple[str, str]:
    cid = r.call("q")
    r.answer("ext/201")
    return cid, r.trunk(cid)


def test_a_whisper_goes_into_the_right_channel_only_and_a_listener_never():
    r = Rig()
    cid, trunk = _agent_call(r)
    r.submit(Monitor("ext/205", cid, Role.LISTEN))
    r.at(1)
    r.answer("ext/205")
    assert r.sources(cid) == [(trunk, ())]  # listen-only: never recorded
    r.at(2)
    r.submit(SetMonitorMode("ext/205", Role.WHISPER))
    assert r.sources(cid)[-1] == (trunk, ("ext/205",))
    r.at(3)
    r.submit(SetMonitorMode("ext/205", Role.BARGE))
    assert r.sources(cid)[-1] == (trunk, ())  # the customer hears a barge: it is in tx
    r.at(4)
    r.submit(SetMonitorMode("ext/205", Role.WHISPER))
    r.at(5)
    r.hangup("ext/205")
    assert r.sources(cid) == [(trunk, ()), (trunk, ("ext/205",)), (trunk, ()),
                              (trunk, ("ext/205",)), (trunk, ())]
    r.hangup(trunk)
    members = [d for _, k, d in r.marks(cid) if k == "members"]
    assert f"{trunk}:party,ext/201:party,agent=a1,ext/205:whisper>ext/201" in members
    assert f"{trunk}:party,ext/201:party,agent=a1,ext/205:listen" in members
    r.assert_clean()


def test_a_held_customer_does_not_hear_the_agent_so_the_agent_goes_into_the_right_channel():
    r = Rig()
    cid, trunk = _agent_call(r)
    r.submit(Hold("ext/201"))
    r.submit(Retrieve("ext/201"))
    assert r.sources(cid) == [(trunk, ()), (trunk, ("ext/201",)), (trunk, ())]
    r.hangup(trunk)
    r.assert_clean()


def test_a_consult_puts_agent_and_consulted_party_on_the_right_and_complete_hands_over():
    r = Rig()
    cid, trunk = _agent_call(r)
    r.at(10)
    r.submit(Consult("ext/201", "203"))
    assert r.sources(cid)[-1] == (trunk, ("ext/201",))
    r.answer("ext/203")
    assert r.sources(cid)[-1] == (trunk, ("ext/201", "ext/203"))
    r.at(20)
    r.submit(Complete("ext/201"))
    assert r.sources(cid)[-1] == (trunk, ())
    r.at(30)
    r.hangup("ext/203")
    assert len(r.taps(TapOpen)) == 1 and r.of(RecordingStopped) == []
    assert r.done(cid).duration_s == 30.0   # one recording with both parts
    members = [(o, d) for o, k, d in r.marks(cid) if k == "members"]
    assert (20.0, f"{trunk}:party,ext/203:party") in members
    r.assert_clean()


def test_a_cancelled_consult_keeps_recording_with_the_agent_back_on_the_customer():
    r = Rig()
    cid, trunk = _agent_call(r)
    r.submit(Consult("ext/201", "203"))
    r.answer("ext/203")
    r.submit(Cancel("ext/201"))
    assert r.sources(cid)[-1] == (trunk, ())
    assert r.state(cid) is S.RECORDING and r.of(RecordingStopped) == []
    r.at(5)
    r.hangup(trunk)
    assert r.done(cid).duration_s == 5.0
    r.assert_clean()


def test_a_conference_has_no_extras_everyone_talks_with_the_customer():
    r = Rig()
    cid, trunk = _agent_call(r)
    r.submit(Consult("ext/201", "203"))
    r.answer("ext/203")
    r.submit(Conference("ext/201"))
    assert r.sources(cid)[-1] == (trunk, ())
    r.hangup("ext/203")
    r.hangup(trunk)
    r.assert_clean()


def test_a_blind_transfer_that_rings_out_and_recalls_keeps_one_recording_running():
    r = Rig()
    cid, trunk = _agent_call(r)
    r.submit(BlindTransfer("ext/201", "203"))
    r.at(21)                                # 203 rang out: the agent is rung back
    assert r.core.calls[cid].state.value == "recalling"
    r.answer("ext/201")
    assert r.state(cid) is S.RECORDING and len(r.taps(TapOpen)) == 1
    r.submit(BlindTransfer("ext/201", "204"))
    r.answer("ext/204")
    assert r.sources(cid)[-1] == (trunk, ())
    r.at(40)
    r.hangup("ext/204")
    assert r.done(cid).duration_s == 40.0
    members = [d for _, k, d in r.marks(cid) if k == "members"]
    assert members[-1] == f"{trunk}:party,ext/204:party"
    r.assert_clean()


def test_an_agent_transferring_a_dialled_out_call_keeps_the_far_end_as_customer():
    r = Rig()
    r.submit(OffHook("ext/201"))
    cid = new_call_id(r.submit(Dial("ext/201", "95550123")))
    assert cid is not None
    r.answer("trunk/1")
    r.submit(BlindTransfer("ext/201", "203"))
    r.answer("ext/203")
    assert all(customer == "trunk/1" for customer, _ in r.sources(cid))
    r.hangup("trunk/1")
    r.assert_clean()


# ----------------------------------------------------------------------- failure


def test_a_disk_failure_stops_the_recording_the_call_goes_on_and_the_next_call_records():
    r = Rig()
    cid, trunk = _agent_call(r)
    r.at(7)
    r.submit(RecordingError(cid, "No space left on device", duration_s=6.5, size=208044))
    (failed,) = r.of(RecordingFailed)
    assert (failed.reason, failed.file) == ("No space left on device",
                                            str(r.taps(TapOpen)[0].relpath))
    assert r.state(cid) is S.FAILED and r.recorder.recording_of(cid) == cid
    taps = len(r.service.got)
    r.submit(Monitor("ext/205", cid, Role.WHISPER))
    r.answer("ext/205")
    with pytest.raises(RecorderError) as e:
        r.record(cid, "start")
    assert e.value.code == "wrong_state" and "No space left" in e.value.msg
    r.hangup("ext/205")
    r.at(20)
    r.hangup(trunk)
    assert len(r.service.got) == taps       # nothing more for the failed recording
    done = r.done(cid)
    assert (done.status, done.duration_s, done.size, done.sha256) == (
        "failed", 6.5, 208044, None)
    assert r.marks(cid)[-1] == (7.0, "stop", "failed: No space left on device")
    assert r.cdr(cid).recording_id == cid
    nxt = r.call("ivr", caller="5550002")   # space is back: the next call records
    assert r.taps(TapOpen)[-1].recording_id == nxt
    r.hangup(r.trunk(nxt))
    r.assert_clean()


def test_a_failure_while_paused_keeps_the_keys_hidden_until_the_pause_ends():
    r = Rig()
    cid = r.call("ivr")
    r.record(cid, "pause")
    r.submit(RecordingError(cid, "Read-only file system"))
    assert r.state(cid) is S.FAILED_PAUSED
    r.keys(r.trunk(cid), "4111")
    assert r.of(DtmfReceived) == []
    r.record(cid, "resume")
    assert r.state(cid) is S.FAILED and r.of(RecordingResumed) == []
    r.keys(r.trunk(cid), "5")
    assert [d.digit for d in r.of(DtmfReceived)] == ["5"]
    r.hangup(r.trunk(cid))
    assert r.done(cid).status == "failed"
    r.assert_clean()


def test_a_failure_reported_at_close_marks_the_recording_failed():
    r = Rig()
    r.service.hold_close = True
    cid = r.call("ivr")
    r.hangup(r.trunk(cid))
    assert r.state(cid) is S.CLOSING and r.recorder.recording_of(cid) == cid
    with pytest.raises(RecorderError) as e:
        r.record(cid, "stop")
    assert e.value.code == "not_found"
    r.submit(RecordingError(cid, "Input/output error", duration_s=0.0, size=44))
    assert [e.name for e in r.events[-2:]] == ["recording.failed", "recording.done"]
    assert r.done(cid).status == "failed"
    r.submit(RecordingClosed(cid, 0.0, 44, "00"))   # a late report: nothing to add
    assert len(r.of(RecordingDone)) == 1
    r.assert_clean()


# -------------------------------------------------------- ending in every state


def _into(r: Rig, state: RecState) -> str:
    """A call whose recording is in ``state`` (on a recorder whose mode is on_answer,
    but off for WAITING)."""
    if state is S.RINGING:
        return r.call("203")
    cid = r.call("ivr")
    steps: dict[RecState, list[Any]] = {
        S.WAITING: [],
        S.RECORDING: [],
        S.PAUSED: ["pause"],
        S.RECORDING_BY_COMMAND: ["stop", "start"],
        S.PAUSED_BY_COMMAND: ["stop", "start", "pause"],
        S.STOPPED: ["stop"],
        S.STOPPED_BY_MODE: [Redirect(cid, Target(TargetKind.QUEUE, "quiet"))],
        S.FAILED: [RecordingError(cid, "No space left on device")],
        S.FAILED_PAUSED: ["pause", RecordingError(cid, "No space left on device")],
    }
    for step in steps[state]:
        if isinstance(step, str):
            r.record(cid, step)
        else:
            r.submit(step)
    return cid


@pytest.mark.parametrize("state", [s for s in RecState if s not in (S.CLOSING, S.DONE)])
def test_a_call_can_end_in_every_state_and_leaves_nothing_open(state):
    r = Rig(settings(mode=RecordMode.OFF) if state is S.WAITING else settings())
    cid = _into(r, state)
    assert r.state(cid) is state
    r.at(3)
    line = r.trunk(cid)
    r.hangup(line)
    assert r.recorder.calls == {}
    nxt = r.call("ivr", caller="5550002")  # on the same trunk: its keys are its own
    r.keys(r.trunk(nxt), "5")
    assert len(r.of(DtmfReceived)) == 1
    r.hangup(r.trunk(nxt))
    recorded = state not in (S.RINGING, S.WAITING)
    assert len(r.of(RecordingDone, cid)) == (1 if recorded else 0)
    if recorded:
        done = r.done(cid)
        assert done.status == ("failed" if state in (S.FAILED, S.FAILED_PAUSED) else "done")
        assert r.cdr(cid).recording_id == cid
    r.assert_clean()


def test_hide_digits_for_a_call_that_ended_is_ignored():
    r = Rig()
    cid = r.call("ivr")
    r.hangup(r.trunk(cid))
    assert r.submit(HideDigits(cid, True)) == []


@pytest.mark.parametrize("callback_first", [False, True])
def test_a_queues_callback_call_records_by_that_queues_mode(callback_first):
    """The call the ACD places to call a customer back has no queue.join: the recorder
    takes the queue's mode from queue.callback (``quiet`` does not record, ``loud`` does),
    whichever of it and call.new comes first."""
    for queue_name, recorded in (("quiet", False), ("loud", True)):
        rec = Recorder(settings(mode=RecordMode.ON_ANSWER))
        dial = f"dial-{queue_name}"
        new = CallNew(dial, T0, Direction.OUTBOUND, "201", "5550001", extension=201)
        cb = QueueCallback("waiting-caller", T0, queue_name, "5550001", "dialling", 1,
                           dial_call_id=dial, agent="a1")
        out = [*rec.handle(T0, cb), *rec.handle(T0, new)] if callback_first else \
            [*rec.handle(T0, new), *rec.handle(T0, cb)]
        out += rec.handle(T0 + 5, CallAnswered(dial, T0 + 5, "trunk/2"))
        assert any(isinstance(o, TapOpen) for o in out) is recorded, queue_name


def test_a_live_call_keeps_the_layout_format_and_mode_it_began_with_across_a_reload():
    """Reloaded while its caller waits (mode on_agent, stereo PCM): the call is recorded
    when the agent answers, as it began — stereo PCM, on_agent — and a later segment too;
    the next call takes the new settings."""
    r = Rig(settings(mode=RecordMode.ON_AGENT))
    first = r.call("q")                     # a1 rings; not answered yet
    r.recorder.reconfigure(settings(mode=RecordMode.ON_ANSWER, format=RecordFormat.ULAW,
                                    layout=RecordLayout.MONO))
    r.at(2)
    r.answer("ext/201")
    (opened,) = r.taps(TapOpen)
    assert (opened.recording_id, opened.layout, opened.format) == (
        first, RecordLayout.STEREO, RecordFormat.PCM)
    assert [(e.mode, e.why) for e in r.of(RecordingStarted)] == [("on_agent", "agent")]
    r.record(first, "stop")
    r.record(first, "start")
    assert [e.segment for e in r.of(RecordingStarted)] == [1, 2]
    second = r.call("ivr", caller="5550002")  # the switch answers it: on_answer now
    (_, nxt) = r.taps(TapOpen)
    assert (nxt.recording_id, nxt.layout, nxt.format) == (
        second, RecordLayout.MONO, RecordFormat.ULAW)
    r.hangup(r.trunk(first))
    r.hangup(r.trunk(second))
    r.assert_clean()
