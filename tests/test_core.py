"""The call core's routing outcomes, driven in virtual time (no sleeps).

Each test checks the CDR, that every line is idle afterwards, and the events the
core emitted, in order. Traces are compact strings (``"line.state ext/201 alerting"``)
so a wrong order or a missing/extra event shows up as a readable diff.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from ulid import ULID

from switchd.acd.model import RingGroup, RingStrategy
from switchd.core.call import CallState
from switchd.core.engine import CoreError, new_call_id
from switchd.core.ids import CallIds
from switchd.core.inputs import (
    Answer,
    BlindTransfer,
    Dial,
    FarBusy,
    Hangup,
    Hold,
    Incoming,
    OffHook,
    Retrieve,
    Shutdown,
)
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.engine import Input
from switchd.events import (
    CallEnded,
    CallHeld,
    CallRetrieved,
    CallTransferred,
    Cdr,
    Event,
    HangupCause,
    LineError,
    LineState,
    OfferEnd,
    OfferWithdrawn,
    ToneStarted,
)
from switchd.lines.state import LineStatus
from tests.corehelp import NEW_EVENT_NAMES, GroupedCore

T0 = 1_764_000_000.0
CALLER = "13900001111"
S = LineStatus


#: Ring groups are queues with no waiting: the ACD rings them (tests.corehelp.GroupedCore).
GROUPS = {
    "sales": RingGroup("sales", RingStrategy.RINGALL, (201, 202, 203)),
    "support": RingGroup("support", RingStrategy.HUNT, (201, 202, 203), ring_timeout_s=5.0),
}


def _config(**kw: object) -> CoreConfig:
    base: dict[str, object] = dict(
        trunks=3,
        extensions=(201, 202, 203, 204),
        ring_timeout_s=20.0,
        tone_timeout_s=10.0,
        routes=(
            Route(Target(TargetKind.GROUP, "sales"), dnis="8000"),
            Route(Target(TargetKind.GROUP, "support"), dnis="8001"),
            Route(Target(TargetKind.BUSY), dnis="8002"),
            *(Route(Target(TargetKind.EXTENSION, str(n)), dnis=str(n)) for n in (201, 202, 203)),
        ),
    )
    base.update(kw)
    return CoreConfig(**base)  # type: ignore[arg-type]


class Rig:
    """A core plus a virtual clock; collects every event and every CDR."""

    def __init__(self, config: CoreConfig | None = None, *,
                 contacts: Callable[[str], tuple[bool, bool]] | None = None) -> None:
        self.core = GroupedCore(config or _config(), GROUPS, contacts=contacts)
        self.now = T0
        self.events: list[Event] = []

    # inputs
    def take(self, events: list[Event]) -> list[Event]:
        self.events.extend(events)
        return events

    def send(self, item: Input) -> list[Event]:
        return self.take(self.core.handle(self.now, item))

    def incoming(self, dnis: str, *, caller: str = CALLER, trunk: int | None = None,
                 blocked_reason: str | None = None) -> str:
        events = self.send(Incoming(caller, dnis, trunk=trunk, blocked_reason=blocked_reason))
        call_id = new_call_id(events)
        assert call_id is not None
        return call_id

    def dial(self, line: str, number: str) -> str:
        call_id = new_call_id(self.send(Dial(line, number)))
        assert call_id is not None
        return call_id

    def offhook(self, line: str) -> list[Event]:
        return self.send(OffHook(line))

    def answer(self, line: str) -> list[Event]:
        return self.send(Answer(line))

    def hangup(self, line: str) -> list[Event]:
        return self.send(Hangup(line))

    def hold(self, line: str) -> list[Event]:
        return self.send(Hold(line))

    def retrieve(self, line: str) -> list[Event]:
        return self.send(Retrieve(line))

    def transfer(self, line: str, number: str) -> list[Event]:
        return self.send(BlindTransfer(line, number))

    def far_busy(self, line: str) -> list[Event]:
        return self.send(FarBusy(line))

    def shutdown(self) -> list[Event]:
        return self.send(Shutdown())

    def advance(self, seconds: float) -> None:
        """Move the clock on, firing every timer at its exact deadline."""
        end = self.now + seconds
        while (d := self.core.next_deadline()) is not None and d <= end:
            self.now = max(self.now, d)
            self.take(self.core.handle_timer(self.now))
        self.now = end

    # observations
    def status(self, line: str) -> LineStatus:
        return self.core.lines[line].status

    def cdrs(self) -> list[Cdr]:
        return [e.cdr for e in self.events if isinstance(e, CallEnded)]

    def cdr(self) -> Cdr:
        cdrs = self.cdrs()
        assert len(cdrs) == 1, cdrs
        return cdrs[0]

    def snapshot(self) -> dict[str, tuple[LineStatus, str | None, str | None]]:
        return {n: (ln.status, ln.call_id, ln.tone) for n, ln in self.core.lines.items()}

    def assert_all_idle(self) -> None:
        for name, ln in self.core.lines.items():
            assert ln.idle and ln.call_id is None and ln.tone is None, (name, ln)
        assert self.core.calls == {}
        assert self.core.next_deadline() is None


def trace(events: list[Event], call_id: str | None = None) -> list[str]:
    """Compact, ordered description of ``events`` (optionally only those of one call)."""
    out = []
    for e in events:
        if call_id is not None and getattr(e, "call_id", None) != call_id:
            continue
        if e.name in NEW_EVENT_NAMES:
            continue  # bridge.changed / offer.withdrawn: checked by their own tests
        f = e.fields()
        if e.name == "call.new":
            out.append(f"call.new {f['direction']} {f['caller']}->{f['callee']}")
        elif e.name in ("call.ringing", "call.answered"):
            out.append(f"{e.name} {f['line']}")
        elif e.name == "call.bridged":
            out.append(f"call.bridged {f['line_a']} {f['line_b']}")
        elif e.name == "call.ended":
            out.append(f"call.ended {f['disposition']}")
        elif e.name == "line.state":
            out.append(f"line.state {f['line']} {f['state']}")
        elif e.name == "tone.started":
            out.append(f"tone {f['line']} {f['tone']}")
        elif e.name == "tone.stopped":
            out.append(f"tone {f['line']} off")
        else:
            out.append(e.name)
    return out


def call_names(events: list[Event]) -> list[str]:
    return [e.name for e in events if e.name.startswith("call.")]


def line_path(events: list[Event], line: str) -> list[str]:
    return [e.state for e in events if isinstance(e, LineState) and e.line == line]


#: The CDR fields every routing-outcome test must state (the brief's list).
CDR_FIELDS = frozenset({"disposition", "src", "dst", "trunk", "extension", "duration", "billsec",
                        "wait_s", "hangup_by", "blocked_reason", "direction"})


def assert_cdr(cdr: Cdr, **want: object) -> None:
    assert CDR_FIELDS <= set(want), f"state every CDR field: missing {CDR_FIELDS - set(want)}"
    got = {k: getattr(cdr, k) for k in want}
    assert got == want


# ------------------------------------------------------------------ inbound


def test_inbound_call_to_extension_is_answered() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.advance(3)
    r.answer("ext/201")
    r.advance(60)
    r.hangup("trunk/1")

    assert_cdr(r.cdr(), uniqueid=cid, disposition="ANSWERED", src=CALLER, dst="201", trunk=1,
               extension=201, start=T0, answer=T0 + 3, end=T0 + 63, duration=63, billsec=60,
               wait_s=3.0, hangup_by="caller", blocked_reason=None, direction="inbound",
               dnis="201")
    assert trace(r.events) == [
        f"call.new inbound {CALLER}->201",
        "line.state trunk/1 alerting",
        "line.state ext/201 alerting",
        "call.ringing ext/201",
        "tone trunk/1 ringback",
        "line.state ext/201 connected",
        "line.state trunk/1 connected",
        "tone trunk/1 off",
        "call.answered ext/201",
        "call.bridged trunk/1 ext/201",
        "line.state trunk/1 idle",
        "line.state ext/201 idle",
        "call.ended ANSWERED",
    ]
    assert all(getattr(e, "call_id", cid) == cid for e in r.events)
    r.assert_all_idle()


def test_extension_hanging_up_first_is_recorded_as_callee() -> None:
    r = Rig()
    r.incoming("201")
    r.answer("ext/201")
    r.advance(10.4)
    r.hangup("ext/201")
    assert_cdr(r.cdr(), disposition="ANSWERED", src=CALLER, dst="201", trunk=1, extension=201,
               duration=10, billsec=10, wait_s=0.0, hangup_by="callee", blocked_reason=None,
               direction="inbound")
    r.assert_all_idle()


def test_caller_hears_busy_when_extension_is_busy() -> None:
    r = Rig()
    internal = r.dial("ext/201", "202")
    r.answer("ext/202")
    r.events.clear()

    cid = r.incoming("201")
    assert r.status("trunk/1") is S.TONE
    assert ToneStarted("trunk/1", "busy", T0, cid) in r.events
    r.advance(2)
    r.hangup("trunk/1")

    assert_cdr(r.cdr(), disposition="BUSY", src=CALLER, dst="201", trunk=1, extension=None,
               duration=2, billsec=0, wait_s=2.0, hangup_by="caller", blocked_reason=None,
               direction="inbound", answer=None)
    assert trace(r.events) == [
        f"call.new inbound {CALLER}->201",
        "line.state trunk/1 alerting",
        "line.state trunk/1 tone",
        "tone trunk/1 busy",
        "tone trunk/1 off",
        "line.state trunk/1 idle",
        "call.ended BUSY",
    ]
    # The busy extension's own call was not touched.
    assert r.core.calls[internal].state is CallState.ANSWERED
    assert r.status("ext/201") is S.CONNECTED
    r.hangup("ext/202")
    r.assert_all_idle()


def test_busy_route_gives_busy_tone_and_busy_cdr() -> None:
    r = Rig()
    r.incoming("8002")
    assert r.core.lines["trunk/1"].tone == "busy"
    r.advance(4)
    r.hangup("trunk/1")
    assert_cdr(r.cdr(), disposition="BUSY", src=CALLER, dst="8002", trunk=1, extension=None,
               duration=4, billsec=0, wait_s=4.0, hangup_by="caller", blocked_reason=None,
               direction="inbound")
    assert call_names(r.events) == ["call.new", "call.ended"]
    assert line_path(r.events, "trunk/1") == ["alerting", "tone", "idle"]
    r.assert_all_idle()


def test_ring_timeout_ends_no_answer_after_exactly_ring_timeout() -> None:
    r = Rig()
    r.incoming("201")
    assert r.core.next_deadline() == T0 + 20
    r.advance(19.999)
    assert r.cdrs() == [] and r.status("ext/201") is S.ALERTING
    r.advance(0.001)
    assert_cdr(r.cdr(), disposition="NO ANSWER", src=CALLER, dst="201", trunk=1, extension=None,
               duration=20, billsec=0, wait_s=20.0, hangup_by="system", blocked_reason=None,
               direction="inbound", end=T0 + 20, answer=None)
    assert call_names(r.events) == ["call.new", "call.ringing", "call.ended"]
    assert line_path(r.events, "ext/201") == ["alerting", "idle"]
    assert line_path(r.events, "trunk/1") == ["alerting", "idle"]
    r.assert_all_idle()


def test_caller_abandoning_while_ringing_is_no_answer_by_caller() -> None:
    r = Rig()
    r.incoming("201")
    r.advance(7)
    r.hangup("trunk/1")
    assert_cdr(r.cdr(), disposition="NO ANSWER", src=CALLER, dst="201", trunk=1, extension=None,
               duration=7, billsec=0, wait_s=7.0, hangup_by="caller", blocked_reason=None,
               direction="inbound")
    assert trace(r.events)[-4:] == [
        "tone trunk/1 off", "line.state trunk/1 idle", "line.state ext/201 idle",
        "call.ended NO ANSWER",
    ]
    r.assert_all_idle()
    # A late answer from the phone that stopped ringing is refused, not delivered.
    assert isinstance(r.answer("ext/201")[0], LineError)


# ---------------------------------------------------------------- ring groups


def test_ringall_rings_every_member_and_first_answer_wins() -> None:
    r = Rig()
    r.incoming("8000")
    assert [e.fields()["line"] for e in r.events if e.name == "call.ringing"] == [
        "ext/201", "ext/202", "ext/203"]
    r.advance(4)
    r.events.clear()
    r.answer("ext/202")
    assert trace(r.events) == [
        "line.state ext/202 connected",
        "line.state ext/201 idle",
        "line.state ext/203 idle",
        "line.state trunk/1 connected",
        "tone trunk/1 off",
        "call.answered ext/202",
        "call.bridged trunk/1 ext/202",
    ]
    # The losers' offers are reported withdrawn because another phone took the call.
    assert [(e.line, e.reason) for e in r.events if isinstance(e, OfferWithdrawn)] == [
        ("ext/201", OfferEnd.TAKEN_ELSEWHERE), ("ext/203", OfferEnd.TAKEN_ELSEWHERE)]
    # The others were released: a second answer is refused.
    assert isinstance(r.answer("ext/201")[0], LineError)
    r.advance(30)
    r.hangup("ext/202")
    assert_cdr(r.cdr(), disposition="ANSWERED", src=CALLER, dst="8000", trunk=1, extension=202,
               duration=34, billsec=30, wait_s=4.0, hangup_by="callee", blocked_reason=None,
               direction="inbound")
    r.assert_all_idle()


def test_ringall_skips_busy_members() -> None:
    r = Rig()
    r.offhook("ext/202")
    r.incoming("8000")
    rung = [e.fields()["line"] for e in r.events if e.name == "call.ringing"]
    assert rung == ["ext/201", "ext/203"]
    assert r.status("ext/202") is S.OFFHOOK


def test_hunt_rings_members_in_turn_skipping_busy_then_no_answer() -> None:
    r = Rig()
    r.offhook("ext/202")  # busy: must be skipped
    r.events.clear()
    r.incoming("8001")
    assert r.core.next_deadline() == T0 + 5
    r.advance(10)
    rings = [(e.fields()["line"], e.time) for e in r.events if e.name == "call.ringing"]
    assert rings == [("ext/201", T0), ("ext/203", T0 + 5)]
    assert call_names(r.events) == ["call.new", "call.routed", "call.ringing", "call.ringing",
                                    "call.ended"]
    assert line_path(r.events, "ext/201") == ["alerting", "idle"]
    assert line_path(r.events, "ext/203") == ["alerting", "idle"]
    assert line_path(r.events, "ext/202") == []
    # Ringback plays once for the whole hunt, not restarted per member.
    assert [t for t in trace(r.events) if t.startswith("tone")] == [
        "tone trunk/1 ringback", "tone trunk/1 off"]
    assert_cdr(r.cdr(), disposition="NO ANSWER", src=CALLER, dst="8001", trunk=1, extension=None,
               duration=10, billsec=0, wait_s=10.0, hangup_by="system", blocked_reason=None,
               direction="inbound", end=T0 + 10)
    r.hangup("ext/202")
    r.assert_all_idle()


def test_hunt_second_member_answers() -> None:
    r = Rig()
    r.incoming("8001")
    r.advance(6)
    assert r.status("ext/201") is S.IDLE and r.status("ext/202") is S.ALERTING
    r.answer("ext/202")
    r.advance(5)
    r.hangup("trunk/1")
    assert_cdr(r.cdr(), disposition="ANSWERED", src=CALLER, dst="8001", trunk=1, extension=202,
               duration=11, billsec=5, wait_s=6.0, hangup_by="caller", blocked_reason=None,
               direction="inbound")
    r.assert_all_idle()


def test_hunt_member_that_frees_up_is_rung_in_its_turn() -> None:
    r = Rig()
    r.offhook("ext/202")
    r.incoming("8001")
    r.hangup("ext/202")  # 202 is free again before its turn comes
    r.advance(5)
    assert r.status("ext/202") is S.ALERTING


def test_declining_member_moves_the_hunt_on() -> None:
    r = Rig()
    r.incoming("8001")
    r.advance(1)
    r.hangup("ext/201")
    assert r.status("ext/202") is S.ALERTING
    assert r.core.next_deadline() == T0 + 1 + 5


@pytest.mark.parametrize("dnis", ["8000", "8001"])
def test_all_members_busy_gives_busy(dnis: str) -> None:
    r = Rig()
    r.dial("ext/201", "202")
    r.answer("ext/202")
    r.offhook("ext/203")
    r.events.clear()
    cid = r.incoming(dnis)
    assert trace(r.events, cid) == [
        f"call.new inbound {CALLER}->{dnis}", "line.state trunk/1 alerting", "call.routed",
        "line.state trunk/1 tone", "tone trunk/1 busy"]
    r.advance(10)
    assert_cdr(r.cdr(), disposition="BUSY", src=CALLER, dst=dnis, trunk=1, extension=None,
               duration=10, billsec=0, wait_s=10.0, hangup_by="system", blocked_reason=None,
               direction="inbound")
    assert call_names(r.events) == ["call.new", "call.routed", "call.ended"]
    assert line_path(r.events, "trunk/1") == ["alerting", "tone", "idle"]
    assert not any(e.name == "line.state" and e.line.startswith("ext/") for e in r.events)
    for line in ("ext/201", "ext/203"):
        r.hangup(line)
    r.assert_all_idle()


def test_no_matching_route_fails_with_congestion() -> None:
    r = Rig()
    r.incoming("7777")
    assert r.core.lines["trunk/1"].tone == "congestion"
    r.advance(10)
    assert_cdr(r.cdr(), disposition="FAILED", src=CALLER, dst="7777", trunk=1, extension=None,
               duration=10, billsec=0, wait_s=10.0, hangup_by="system", blocked_reason=None,
               direction="inbound")
    assert line_path(r.events, "trunk/1") == ["alerting", "tone", "idle"]
    r.assert_all_idle()


def test_route_to_missing_extension_or_group_fails() -> None:
    cfg = _config(routes=(Route(Target(TargetKind.EXTENSION, "999"), dnis="1"),
                          Route(Target(TargetKind.GROUP, "nope"), dnis="2")))
    r = Rig(cfg)
    r.incoming("1")
    r.incoming("2")
    r.advance(10)
    assert [c.disposition for c in r.cdrs()] == ["FAILED", "FAILED"]
    r.assert_all_idle()


def test_route_by_trunk_number() -> None:
    cfg = _config(routes=(Route(Target(TargetKind.EXTENSION, "203"), trunk=2),
                          Route(Target(TargetKind.EXTENSION, "201"))))
    r = Rig(cfg)
    r.incoming("555", trunk=2)
    r.incoming("555", trunk=3)
    assert r.status("ext/203") is S.ALERTING and r.status("ext/201") is S.ALERTING


def test_blacklisted_caller_hears_busy_and_no_extension_rings() -> None:
    r = Rig()
    r.incoming("201", blocked_reason="blacklist")
    assert r.core.lines["trunk/1"].tone == "busy"
    r.advance(3)
    r.hangup("trunk/1")
    assert_cdr(r.cdr(), disposition="BUSY", src=CALLER, dst="201", trunk=1, extension=None,
               duration=3, billsec=0, wait_s=3.0, hangup_by="caller", blocked_reason="blacklist",
               direction="inbound")
    assert "call.ringing" not in call_names(r.events)
    assert not any(isinstance(e, LineState) and e.line.startswith("ext/") for e in r.events)
    r.assert_all_idle()


# ---------------------------------------------------------------- internal


def test_internal_extension_call_is_answered() -> None:
    r = Rig()
    cid = r.dial("ext/201", "202")
    r.advance(2)
    r.answer("ext/202")
    r.advance(15)
    r.hangup("ext/201")
    assert_cdr(r.cdr(), uniqueid=cid, disposition="ANSWERED", direction="internal", src="201",
               dst="202", trunk=None, extension=201, duration=17, billsec=15, wait_s=2.0,
               hangup_by="caller", blocked_reason=None)
    assert trace(r.events) == [
        "line.state ext/201 dialing",
        "call.new internal 201->202",
        "line.state ext/202 alerting",
        "call.ringing ext/202",
        "line.state ext/201 ringback",
        "tone ext/201 ringback",
        "line.state ext/202 connected",
        "line.state ext/201 connected",
        "tone ext/201 off",
        "call.answered ext/202",
        "call.bridged ext/201 ext/202",
        "line.state ext/201 idle",
        "line.state ext/202 idle",
        "call.ended ANSWERED",
    ]
    r.assert_all_idle()


def test_dialling_after_offhook_stops_dial_tone() -> None:
    r = Rig()
    r.offhook("ext/201")
    assert r.core.lines["ext/201"].tone == "dial"
    r.dial("ext/201", "202")
    assert trace(r.events)[:4] == [
        "line.state ext/201 offhook", "tone ext/201 dial", "line.state ext/201 dialing",
        "tone ext/201 off"]
    assert r.core.lines["ext/201"].tone == "ringback"


def test_dialling_own_extension_is_busy() -> None:
    r = Rig()
    r.dial("ext/201", "201")
    assert r.status("ext/201") is S.TONE and r.core.lines["ext/201"].tone == "busy"
    r.advance(1)
    r.hangup("ext/201")
    assert_cdr(r.cdr(), disposition="BUSY", src="201", dst="201", trunk=None, extension=201,
               duration=1, billsec=0, wait_s=1.0, hangup_by="caller", blocked_reason=None,
               direction="internal")
    assert "call.ringing" not in call_names(r.events)
    r.assert_all_idle()


def test_dialling_unknown_extension_fails() -> None:
    r = Rig()
    r.dial("ext/201", "777")
    assert r.core.lines["ext/201"].tone == "congestion"
    r.advance(10)
    assert_cdr(r.cdr(), disposition="FAILED", src="201", dst="777", trunk=None, extension=201,
               duration=10, billsec=0, wait_s=10.0, hangup_by="system", blocked_reason=None,
               direction="internal")
    r.assert_all_idle()


def test_bad_number_is_refused_before_anything_changes() -> None:
    r = Rig()
    for number in ("", "12a"):
        with pytest.raises(CoreError) as exc:
            r.core.handle(r.now, Dial("ext/201", number))
        assert exc.value.code == "bad_arg"
    r.assert_all_idle()


# ---------------------------------------------------------------- outbound


def test_outbound_call_takes_the_first_free_trunk() -> None:
    r = Rig()
    r.incoming("201", trunk=1)  # trunk 1 in use for the whole call below
    r.answer("ext/201")
    r.events.clear()
    cid = r.dial("ext/202", "95550001")
    assert trace(r.events) == [
        "line.state ext/202 dialing",
        "call.new outbound 202->5550001",
        "line.state trunk/2 alerting",
        "call.ringing trunk/2",
        "line.state ext/202 ringback",
        "tone ext/202 ringback",
    ]
    r.advance(3)
    r.answer("trunk/2")
    r.advance(20)
    r.hangup("ext/202")
    cdr = [c for c in r.cdrs() if c.uniqueid == cid][0]
    assert_cdr(cdr, disposition="ANSWERED", direction="outbound", src="202", dst="5550001",
               trunk=2, extension=202, duration=23, billsec=20, wait_s=3.0, hangup_by="caller",
               blocked_reason=None)
    assert r.status("trunk/1") is S.CONNECTED and r.status("trunk/2") is S.IDLE
    # Trunk 1 frees up: it is the first free trunk again.
    r.hangup("trunk/1")
    r.dial("ext/203", "95550002")
    assert r.status("trunk/1") is S.ALERTING and r.status("trunk/2") is S.IDLE
    r.hangup("ext/203")
    assert [c.disposition for c in r.cdrs()] == ["ANSWERED", "ANSWERED", "NO ANSWER"]
    assert not any(isinstance(e, LineError) for e in r.events)
    r.assert_all_idle()


def test_outbound_with_all_trunks_busy_is_congestion() -> None:
    r = Rig()
    for t in (1, 2, 3):
        r.incoming("8002", trunk=t)
    r.events.clear()
    r.dial("ext/201", "95550001")
    assert r.status("ext/201") is S.TONE
    assert ToneStarted("ext/201", "congestion", T0, r.core.lines["ext/201"].call_id) in r.events
    r.advance(10)
    ours = [c for c in r.cdrs() if c.direction == "outbound"]
    assert len(ours) == 1
    assert_cdr(ours[0], disposition="CONGESTION", src="201", dst="5550001", trunk=None,
               extension=201, duration=10, billsec=0, wait_s=10.0, hangup_by="system",
               blocked_reason=None, direction="outbound")
    r.assert_all_idle()


def test_outside_busy_number_is_busy() -> None:
    r = Rig()
    r.dial("ext/201", "95550001")
    r.advance(0.5)
    r.far_busy("trunk/1")
    assert r.status("trunk/1") is S.IDLE  # the trunk is freed at once
    assert r.status("ext/201") is S.TONE and r.core.lines["ext/201"].tone == "busy"
    r.advance(1.5)
    r.hangup("ext/201")
    assert_cdr(r.cdr(), disposition="BUSY", src="201", dst="5550001", trunk=1, extension=201,
               duration=2, billsec=0, wait_s=2.0, hangup_by="caller", blocked_reason=None,
               direction="outbound")
    assert line_path(r.events, "trunk/1") == ["alerting", "idle"]
    r.assert_all_idle()


def test_unanswered_outside_number_is_no_answer() -> None:
    r = Rig()
    r.dial("ext/201", "95550001")
    r.advance(20)
    assert_cdr(r.cdr(), disposition="NO ANSWER", src="201", dst="5550001", trunk=1, extension=201,
               duration=20, billsec=0, wait_s=20.0, hangup_by="system", blocked_reason=None,
               direction="outbound")
    r.assert_all_idle()


def test_tone_timeout_releases_the_line() -> None:
    r = Rig()
    r.incoming("8002")
    assert r.core.next_deadline() == T0 + 10
    r.advance(9.99)
    assert r.status("trunk/1") is S.TONE
    r.advance(0.01)
    assert_cdr(r.cdr(), disposition="BUSY", src=CALLER, dst="8002", trunk=1, extension=None,
               duration=10, billsec=0, wait_s=10.0, hangup_by="system", blocked_reason=None,
               direction="inbound", end=T0 + 10)
    assert trace(r.events)[-3:] == ["tone trunk/1 off", "line.state trunk/1 idle",
                                    "call.ended BUSY"]
    r.assert_all_idle()


# ---------------------------------------------------------------- hold


def _answered(r: Rig) -> str:
    cid = r.incoming("201")
    r.answer("ext/201")
    r.events.clear()
    return cid


def test_hold_plays_moh_to_the_peer_and_retrieve_reconnects() -> None:
    r = Rig()
    cid = _answered(r)
    r.hold("ext/201")
    assert r.status("trunk/1") is S.HELD and r.core.lines["trunk/1"].tone == "moh"
    assert r.status("ext/201") is S.CONNECTED
    r.retrieve("ext/201")
    assert r.status("trunk/1") is S.CONNECTED and r.core.lines["trunk/1"].tone is None
    assert trace(r.events) == [
        "line.state trunk/1 held", "tone trunk/1 moh", "call.held",
        "line.state trunk/1 connected", "tone trunk/1 off", "call.retrieved"]
    assert CallHeld(cid, T0, "ext/201", "trunk/1") in r.events
    assert CallRetrieved(cid, T0, "ext/201", "trunk/1") in r.events


def test_hold_twice_is_refused() -> None:
    r = Rig()
    _answered(r)
    r.hold("ext/201")
    before = r.snapshot()
    events = r.hold("ext/201")
    assert len(events) == 1 and isinstance(events[0], LineError)
    assert events[0].line == "ext/201" and "trunk/1" in events[0].reason
    assert r.snapshot() == before


def test_held_party_cannot_put_the_holder_on_hold() -> None:
    r = Rig()
    _answered(r)
    r.hold("ext/201")
    before = r.snapshot()
    assert isinstance(r.hold("trunk/1")[0], LineError)
    assert r.snapshot() == before


def test_retrieve_with_nothing_held_is_refused() -> None:
    r = Rig()
    _answered(r)
    before = r.snapshot()
    events = r.retrieve("ext/201")
    assert len(events) == 1 and isinstance(events[0], LineError)
    assert "nothing is on hold" in events[0].reason
    assert r.snapshot() == before


def test_hangup_while_held_ends_the_call_answered() -> None:
    r = Rig()
    _answered(r)
    r.advance(5)
    r.hold("ext/201")
    r.advance(5)
    r.hangup("ext/201")
    assert_cdr(r.cdr(), disposition="ANSWERED", src=CALLER, dst="201", trunk=1, extension=201,
               duration=10, billsec=10, wait_s=0.0, hangup_by="callee", blocked_reason=None,
               direction="inbound")
    assert trace(r.events)[-4:] == ["tone trunk/1 off", "line.state trunk/1 idle",
                                    "line.state ext/201 idle", "call.ended ANSWERED"]
    r.assert_all_idle()


# ---------------------------------------------------------------- blind transfer


def test_blind_transfer_answered_by_target() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.advance(2)
    r.answer("ext/201")
    r.advance(8)
    r.events.clear()
    r.transfer("ext/201", "202")
    assert trace(r.events) == [
        "line.state ext/201 idle",
        "line.state trunk/1 ringback",
        "call.transferred",
        "line.state ext/202 alerting",
        "call.ringing ext/202",
        "tone trunk/1 ringback",
    ]
    assert CallTransferred(cid, T0 + 10, "ext/201", "ext/202") in r.events
    # The transferor is free at once and can make a new call.
    assert r.core.lines["ext/201"].idle and r.core.lines["ext/201"].call_id is None
    side = r.dial("ext/201", "203")
    r.answer("ext/203")

    r.advance(3)
    r.events.clear()
    r.answer("ext/202")
    assert trace(r.events) == [
        "line.state ext/202 connected", "tone trunk/1 off", "line.state trunk/1 connected",
        "call.answered ext/202", "call.bridged trunk/1 ext/202"]
    r.advance(20)
    r.hangup("trunk/1")
    main = [c for c in r.cdrs() if c.uniqueid == cid]
    assert len(main) == 1
    assert_cdr(main[0], disposition="ANSWERED", src=CALLER, dst="201", trunk=1, extension=202,
               duration=33, billsec=31, wait_s=2.0, hangup_by="caller", blocked_reason=None,
               direction="inbound", answer=T0 + 2)
    r.hangup("ext/203")
    assert [c.uniqueid for c in r.cdrs()] == [cid, side]
    r.assert_all_idle()


def test_blind_transfer_not_answered_recalls_the_transferor() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.answer("ext/201")
    r.transfer("ext/201", "202")
    r.events.clear()
    r.advance(20)
    assert trace(r.events) == ["line.state ext/202 idle", "line.state ext/201 alerting",
                               "call.ringing ext/201"]
    assert r.status("trunk/1") is S.RINGBACK and r.core.lines["trunk/1"].tone == "ringback"
    r.advance(2)
    r.answer("ext/201")
    assert r.status("trunk/1") is S.CONNECTED and r.status("ext/201") is S.CONNECTED
    assert r.core.calls[cid].state is CallState.ANSWERED
    # The call goes on as before: hold works again.
    r.hold("ext/201")
    assert r.status("trunk/1") is S.HELD
    r.advance(10)
    r.hangup("trunk/1")
    assert_cdr(r.cdr(), disposition="ANSWERED", src=CALLER, dst="201", trunk=1, extension=201,
               duration=32, billsec=32, wait_s=0.0, hangup_by="caller", blocked_reason=None,
               direction="inbound", answer=T0)
    r.assert_all_idle()


def test_recall_not_answered_ends_the_call() -> None:
    r = Rig()
    r.incoming("201")
    r.answer("ext/201")
    r.transfer("ext/201", "202")
    r.advance(20)
    assert r.status("ext/201") is S.ALERTING
    r.advance(20)
    assert_cdr(r.cdr(), disposition="ANSWERED", src=CALLER, dst="201", trunk=1, extension=201,
               duration=40, billsec=40, wait_s=0.0, hangup_by="system", blocked_reason=None,
               direction="inbound", end=T0 + 40)
    r.assert_all_idle()


def test_transfer_fails_and_ends_when_transferor_is_busy_by_then() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.answer("ext/201")
    r.transfer("ext/201", "202")
    r.offhook("ext/201")
    r.advance(20)
    assert [c.uniqueid for c in r.cdrs()] == [cid]
    assert r.status("trunk/1") is S.IDLE and r.status("ext/201") is S.OFFHOOK


def test_transfer_to_busy_extension_is_refused_and_nothing_changes() -> None:
    r = Rig()
    cid = _answered(r)
    r.offhook("ext/202")
    before = r.snapshot()
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, BlindTransfer("ext/201", "202"))
    assert exc.value.code == "busy"
    assert r.snapshot() == before and r.core.calls[cid].state is CallState.ANSWERED
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, BlindTransfer("ext/201", "201"))  # to oneself: busy as well
    assert exc.value.code == "busy"
    assert r.snapshot() == before


def test_transfer_to_unknown_extension_is_not_found_and_nothing_changes() -> None:
    r = Rig()
    cid = _answered(r)
    before = r.snapshot()
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, BlindTransfer("ext/201", "777"))
    assert exc.value.code == "not_found"
    assert r.snapshot() == before and r.core.calls[cid].state is CallState.ANSWERED


def test_transfer_of_an_unanswered_call_is_refused() -> None:
    r = Rig()
    r.incoming("201")
    before = r.snapshot()
    events = r.transfer("ext/201", "202")
    assert len(events) == 1 and isinstance(events[0], LineError)
    assert r.snapshot() == before


def test_caller_hanging_up_during_transfer_ringing_ends_everything() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.answer("ext/201")
    r.transfer("ext/201", "202")
    r.advance(5)
    r.hangup("trunk/1")
    assert_cdr(r.cdr(), disposition="ANSWERED", src=CALLER, dst="201", trunk=1, extension=201,
               duration=5, billsec=5, wait_s=0.0, hangup_by="caller", blocked_reason=None,
               direction="inbound", uniqueid=cid)
    r.assert_all_idle()
    assert isinstance(r.answer("ext/202")[0], LineError)


# ---------------------------------------------------------------- shutdown, ids, trunks


def test_shutdown_ends_every_call_and_refuses_new_ones() -> None:
    r = Rig()
    answered = r.incoming("201")
    r.answer("ext/201")
    ringing = r.incoming("202")
    tone = r.incoming("8002")
    r.advance(3)
    r.shutdown()
    cdrs = {c.uniqueid: c for c in r.cdrs()}
    assert set(cdrs) == {answered, ringing, tone}
    assert_cdr(cdrs[answered], disposition="ANSWERED", src=CALLER, dst="201", trunk=1,
               extension=201, duration=3, billsec=3, wait_s=0.0, hangup_by="system",
               blocked_reason=None, direction="inbound", end=T0 + 3)
    assert_cdr(cdrs[ringing], disposition="NO ANSWER", src=CALLER, dst="202", trunk=2,
               extension=None, duration=3, billsec=0, wait_s=3.0, hangup_by="system",
               blocked_reason=None, direction="inbound", end=T0 + 3)
    assert_cdr(cdrs[tone], disposition="BUSY", src=CALLER, dst="8002", trunk=3,
               extension=None, duration=3, billsec=0, wait_s=3.0, hangup_by="system",
               blocked_reason=None, direction="inbound", end=T0 + 3)
    r.assert_all_idle()
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, Incoming(CALLER, "201"))
    assert exc.value.code == "busy"
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, Dial("ext/201", "202"))
    assert exc.value.code == "busy"
    r.assert_all_idle()


def test_call_ids_are_unique_and_sort_in_time_order() -> None:
    r = Rig(_config(trunks=200, routes=(Route(Target(TargetKind.BUSY)),)))
    ids = []
    # Whole seconds (ints), sub-millisecond steps and plain floats, all increasing.
    nows: list[float] = [1_764_000_000, 1_764_000_001]
    nows += [1_764_000_001.5 + i * 0.0001 for i in range(50)]
    nows += [1_764_000_002.0 + i * 7.25 for i in range(100)]
    for now in nows:
        r.now = now
        ids.append(r.incoming("1"))
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    # The id carries the call's start time (to the millisecond).
    for now, cid in zip(nows, ids, strict=True):
        assert ULID.from_str(cid).timestamp == pytest.approx(now, abs=0.001)


def test_call_ids_stamp_integral_seconds_correctly() -> None:
    factory = CallIds()
    # python-ulid reads an int as milliseconds; a whole-second ``now`` must still mean seconds.
    first = factory(1_764_000_000)
    assert ULID.from_str(first).timestamp == 1_764_000_000.0
    assert first < factory(1_764_000_000.5) < factory(1_764_000_001)


def test_core_with_monotonic_ids_sorts_calls_made_in_one_millisecond() -> None:
    r = Rig(_config(trunks=100, routes=(Route(Target(TargetKind.BUSY)),)))
    ids = [r.incoming("1") for _ in range(100)]
    assert sorted(ids) == ids and len(set(ids)) == 100


def test_incoming_on_a_busy_trunk_is_refused() -> None:
    r = Rig()
    r.incoming("201", trunk=2)
    before = r.snapshot()
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, Incoming(CALLER, "202", trunk=2))
    assert exc.value.code == "busy" and "2" in exc.value.msg
    assert r.snapshot() == before and len(r.core.calls) == 1
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, Incoming(CALLER, "202", trunk=9))
    assert exc.value.code == "not_found"


def test_incoming_with_every_trunk_busy_is_refused() -> None:
    r = Rig()
    for _ in range(3):
        r.incoming("8002")
    assert [r.status(f"trunk/{t}") for t in (1, 2, 3)] == [S.TONE] * 3
    before = r.snapshot()
    with pytest.raises(CoreError) as exc:
        r.core.handle(r.now, Incoming(CALLER, "201"))
    assert exc.value.code == "busy"
    assert r.snapshot() == before


def test_reconfigure_keeps_live_calls_and_uses_new_routes() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.core.reconfigure(_config(
        extensions=(201, 202, 203, 204, 205),
        routes=(Route(Target(TargetKind.GROUP, "sales")),)),
        {"sales": RingGroup("sales", RingStrategy.RINGALL, (205,))})
    r.incoming("8000")
    assert r.status("ext/205") is S.ALERTING
    assert r.status("ext/201") is S.ALERTING and r.core.calls[cid].state is CallState.RINGING


# ---------------------------------------------------------------- scale


@pytest.mark.parametrize("routing", ["hunt", "routes"])
def test_two_thousand_simultaneous_calls(routing: str) -> None:
    n = 2000
    exts = tuple(range(1000, 1000 + n))
    if routing == "hunt":
        cfg = CoreConfig(trunks=n, extensions=exts,
                         routes=(Route(Target(TargetKind.GROUP, "all")),))
    else:
        cfg = CoreConfig(trunks=n, extensions=exts, routes=tuple(
            Route(Target(TargetKind.EXTENSION, str(1000 + i)), trunk=i + 1) for i in range(n)))
    started = time.perf_counter()
    core = GroupedCore(cfg, {"all": RingGroup("all", RingStrategy.HUNT, exts)})
    ended: list[Cdr] = []
    for i in range(n):
        call_id = new_call_id(core.handle(T0 + i * 0.001, Incoming(f"139{i:08d}", "8000")))
        assert call_id is not None
        call = core.calls[call_id]
        assert list(call.offers) == [f"ext/{1000 + i}"] and call.anchor == f"trunk/{i + 1}"
        core.handle(T0 + 5, Answer(next(iter(call.offers))))
    assert len(core.calls) == n
    assert all(ln.status is S.CONNECTED for ln in core.lines.values())
    for i in range(n):
        ended += [e.cdr for e in core.handle(T0 + 65, Hangup(f"trunk/{i + 1}"))
                  if isinstance(e, CallEnded)]
    elapsed = time.perf_counter() - started
    assert len(ended) == n and len({c.uniqueid for c in ended}) == n
    assert all(c.disposition == "ANSWERED" and c.billsec == 60 for c in ended)
    assert all(ln.idle and ln.call_id is None for ln in core.lines.values())
    assert core.calls == {} and core.next_deadline() is None
    assert elapsed < 2.5, f"2000 calls took {elapsed:.2f} s"


def test_far_end_hanging_up_after_an_outbound_transfer_is_the_callee() -> None:
    r = Rig()
    r.dial("ext/201", "95550001")
    r.answer("trunk/1")
    r.transfer("ext/201", "202")
    r.answer("ext/202")
    r.advance(9)
    r.hangup("trunk/1")
    assert_cdr(r.cdr(), disposition="ANSWERED", src="201", dst="5550001", trunk=1, extension=202,
               duration=9, billsec=9, wait_s=0.0, hangup_by="callee", blocked_reason=None,
               direction="outbound")
    r.assert_all_idle()


def test_transferred_caller_hanging_up_is_still_the_caller() -> None:
    r = Rig()
    r.incoming("201")
    r.answer("ext/201")
    r.transfer("ext/201", "202")
    r.answer("ext/202")
    r.hangup("ext/202")
    assert r.cdr().hangup_by == "callee"


def test_free_trunk_bookkeeping_stays_bounded_over_a_long_run() -> None:
    r = Rig()
    for _ in range(3000):
        r.incoming("8002", trunk=2)
        r.hangup("trunk/2")
    # Private on purpose: a heap that grew by one entry per call would leak memory in a
    # daemon that runs for months with callers arriving on explicit trunks.
    assert len(r.core._idle_trunks) <= r.core.config.trunks
    r.incoming("8002", trunk=1)
    r.dial("ext/201", "95550001")
    assert r.status("trunk/2") is S.ALERTING


# ---------------------------------------------------------------- hangup causes


def _ended(r: Rig, call_id: str | None = None) -> CallEnded:
    ended = [e for e in r.events if isinstance(e, CallEnded)
             and (call_id is None or e.call_id == call_id)]
    assert len(ended) == 1, ended
    return ended[0]


def assert_cause(ev: CallEnded, cause: HangupCause, q850: int, disposition: str) -> None:
    """The event and its CDR agree on the cause (the CDR as text) and the disposition."""
    assert (ev.hangup_cause, ev.q850) == (cause, q850)
    assert (ev.cdr.hangup_cause, ev.cdr.q850) == (cause.value[0], q850)
    assert ev.disposition == disposition and ev.cdr.disposition == disposition
    assert ev.fields()["hangup_cause"] == cause.value[0] and ev.fields()["q850"] == q850


def test_cause_normal_clearing_for_an_answered_call() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.answer("ext/201")
    r.advance(30)
    r.hangup("ext/201")
    assert_cause(_ended(r, cid), HangupCause.NORMAL_CLEARING, 16, "ANSWERED")
    r.assert_all_idle()


def test_cause_normal_clearing_when_the_caller_hangs_up_after_answer() -> None:
    r = Rig()
    cid = r.dial("ext/201", "202")
    r.answer("ext/202")
    r.hangup("ext/201")
    assert_cause(_ended(r, cid), HangupCause.NORMAL_CLEARING, 16, "ANSWERED")


def test_cause_user_busy_for_a_busy_extension() -> None:
    r = Rig()
    r.dial("ext/201", "202")
    r.answer("ext/202")
    cid = r.incoming("201")
    r.advance(2)
    r.hangup("trunk/1")  # the caller gives up on the busy tone: still USER_BUSY
    assert_cause(_ended(r, cid), HangupCause.USER_BUSY, 17, "BUSY")


def test_cause_user_busy_for_an_extension_dialling_a_busy_one() -> None:
    r = Rig()
    r.offhook("ext/202")
    cid = r.dial("ext/201", "202")
    r.advance(10)  # the busy tone times out
    assert_cause(_ended(r, cid), HangupCause.USER_BUSY, 17, "BUSY")


def test_cause_user_busy_for_the_busy_route() -> None:
    r = Rig()
    cid = r.incoming("8002")
    r.advance(10)
    assert_cause(_ended(r, cid), HangupCause.USER_BUSY, 17, "BUSY")


@pytest.mark.parametrize("dnis", ["8000", "8001"])
def test_cause_user_busy_when_every_group_member_is_busy(dnis: str) -> None:
    r = Rig()
    r.dial("ext/201", "202")
    r.answer("ext/202")
    r.offhook("ext/203")
    cid = r.incoming(dnis)
    r.advance(10)
    assert_cause(_ended(r, cid), HangupCause.USER_BUSY, 17, "BUSY")


def test_cause_user_busy_when_the_far_end_is_busy() -> None:
    r = Rig()
    cid = r.dial("ext/201", "95550001")
    r.far_busy("trunk/1")
    r.advance(1)
    r.hangup("ext/201")
    assert_cause(_ended(r, cid), HangupCause.USER_BUSY, 17, "BUSY")


def test_cause_no_answer_when_the_ring_times_out() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.advance(20)
    assert_cause(_ended(r, cid), HangupCause.NO_ANSWER, 19, "NO ANSWER")


def test_cause_no_answer_when_a_hunt_runs_out() -> None:
    r = Rig()
    cid = r.incoming("8001")
    r.advance(15)
    assert_cause(_ended(r, cid), HangupCause.NO_ANSWER, 19, "NO ANSWER")


def test_cause_no_answer_when_the_outside_number_does_not_answer() -> None:
    r = Rig()
    cid = r.dial("ext/201", "95550001")
    r.advance(20)
    assert_cause(_ended(r, cid), HangupCause.NO_ANSWER, 19, "NO ANSWER")


def test_cause_call_rejected_for_a_caller_blacklisted_in_contacts() -> None:
    def contacts(number: str) -> tuple[bool, bool]:
        return (False, number == CALLER)

    r = Rig(contacts=contacts)
    cid = r.incoming("201")  # no blocked_reason given: the core looks the caller up itself
    assert r.core.lines["trunk/1"].tone == "busy"
    assert "call.ringing" not in call_names(r.events)
    r.advance(3)
    r.hangup("trunk/1")
    ev = _ended(r, cid)
    assert_cause(ev, HangupCause.CALL_REJECTED, 21, "BUSY")
    assert ev.cdr.blocked_reason == "blacklist"
    # Another caller is not blacklisted and rings through.
    other = r.incoming("201", caller="13900002222")
    assert r.core.calls[other].state is CallState.RINGING and r.status("ext/201") is S.ALERTING


def test_cause_call_rejected_for_an_explicitly_blocked_caller() -> None:
    r = Rig()
    cid = r.incoming("201", blocked_reason="blacklist")
    r.advance(10)
    assert_cause(_ended(r, cid), HangupCause.CALL_REJECTED, 21, "BUSY")


def test_cause_unallocated_number_for_an_unknown_dnis() -> None:
    r = Rig()
    cid = r.incoming("7777")
    r.advance(10)
    assert_cause(_ended(r, cid), HangupCause.UNALLOCATED_NUMBER, 1, "FAILED")


def test_cause_unallocated_number_for_a_route_to_a_missing_extension_or_group() -> None:
    cfg = _config(routes=(Route(Target(TargetKind.EXTENSION, "999"), dnis="1"),
                          Route(Target(TargetKind.GROUP, "nope"), dnis="2")))
    r = Rig(cfg)
    ids = [r.incoming("1"), r.incoming("2")]
    r.advance(10)
    for cid in ids:
        assert_cause(_ended(r, cid), HangupCause.UNALLOCATED_NUMBER, 1, "FAILED")


def test_cause_unallocated_number_for_an_unknown_extension_dialled() -> None:
    r = Rig()
    cid = r.dial("ext/201", "777")
    r.advance(1)
    r.hangup("ext/201")
    assert_cause(_ended(r, cid), HangupCause.UNALLOCATED_NUMBER, 1, "FAILED")


def test_cause_congestion_when_no_trunk_is_free() -> None:
    r = Rig()
    for t in (1, 2, 3):
        r.incoming("8002", trunk=t)
    cid = r.dial("ext/201", "95550001")
    r.advance(10)
    assert_cause(_ended(r, cid), HangupCause.NORMAL_CIRCUIT_CONGESTION, 34, "CONGESTION")


def test_cause_originator_cancel_when_the_caller_hangs_up_while_ringing() -> None:
    r = Rig()
    cid = r.incoming("201")
    r.advance(5)
    r.hangup("trunk/1")
    assert_cause(_ended(r, cid), HangupCause.ORIGINATOR_CANCEL, 487, "NO ANSWER")


def test_cause_originator_cancel_when_an_extension_gives_up_dialling() -> None:
    r = Rig()
    cid = r.dial("ext/201", "202")
    r.advance(5)
    r.hangup("ext/201")
    assert_cause(_ended(r, cid), HangupCause.ORIGINATOR_CANCEL, 487, "NO ANSWER")


def test_cause_system_shutdown_for_every_live_call() -> None:
    r = Rig()
    answered = r.incoming("201")
    r.answer("ext/201")
    ringing = r.incoming("202")
    tone = r.incoming("8002")
    r.advance(3)
    r.shutdown()
    assert_cause(_ended(r, answered), HangupCause.SYSTEM_SHUTDOWN, 701, "ANSWERED")
    assert_cause(_ended(r, ringing), HangupCause.SYSTEM_SHUTDOWN, 701, "NO ANSWER")
    assert_cause(_ended(r, tone), HangupCause.SYSTEM_SHUTDOWN, 701, "BUSY")
    r.assert_all_idle()
