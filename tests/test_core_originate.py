"""``Originate``: the switch rings an extension first, then dials the far end for it
(a queue callback). Driven on the core directly."""

from __future__ import annotations

import pytest

from switchd.core.call import CallState
from switchd.core.engine import CoreError, SwitchCore, new_call_id
from switchd.core.inputs import Answer, FarBusy, Hangup, Incoming, Originate
from switchd.core.routing import CoreConfig
from switchd.engine import Input
from switchd.events import CallAnswered, CallEnded, Event, LineError, Tone, ToneStarted
from switchd.lines.state import LineStatus

T0 = 1_764_000_000.0
EXT = "ext/201"


class Run:
    def __init__(self, trunks: int = 2) -> None:
        self.core = SwitchCore(CoreConfig(trunks=trunks, extensions=(201, 202)))
        self.now = T0
        self.events: list[Event] = []

    def do(self, item: Input) -> list[Event]:
        out = self.core.handle(self.now, item)
        self.events += out
        return out

    def advance(self, s: float) -> None:
        self.now += s
        self.events += self.core.handle_timer(self.now)

    def status(self, line: str) -> LineStatus:
        return self.core.lines[line].status

    def ended(self) -> CallEnded:
        (e,) = [e for e in self.events if isinstance(e, CallEnded)]
        return e


def test_the_extension_answers_then_the_customer_is_dialled_and_connected():
    r = Run()
    call_id = new_call_id(r.do(Originate(EXT, "84001234", 15.0, 30.0)))
    assert call_id is not None
    assert r.status(EXT) is LineStatus.ALERTING
    assert r.status("trunk/1") is LineStatus.IDLE      # nothing dialled before the agent is there
    r.advance(2)
    r.do(Answer(EXT))
    assert r.status(EXT) is LineStatus.RINGBACK
    assert r.status("trunk/1") is LineStatus.ALERTING
    assert any(isinstance(e, ToneStarted) and e.line == EXT and e.tone is Tone.RINGBACK
               for e in r.events)
    r.advance(5)
    r.do(Answer("trunk/1"))
    assert [e.line for e in r.events if isinstance(e, CallAnswered)] == ["trunk/1"]
    assert r.core.calls[call_id].state is CallState.ANSWERED
    r.advance(60)
    r.do(Hangup("trunk/1"))
    cdr = r.ended().cdr
    assert (cdr.direction, cdr.src, cdr.dst, cdr.disposition, cdr.extension, cdr.trunk) == (
        "outbound", "201", "84001234", "ANSWERED", 201, 1)
    assert (cdr.answer, cdr.billsec) == (T0 + 7, 60)


def test_the_extension_does_not_answer_and_nothing_is_dialled():
    r = Run()
    r.do(Originate(EXT, "84001234", 15.0))
    r.advance(15)
    assert r.status(EXT) is LineStatus.IDLE and r.status("trunk/1") is LineStatus.IDLE
    assert r.ended().cdr.disposition == "NO ANSWER"


def test_the_far_end_is_busy_the_extension_hears_busy_tone():
    r = Run()
    r.do(Originate(EXT, "84001234", 15.0))
    r.do(Answer(EXT))
    r.do(FarBusy("trunk/1"))
    assert r.status(EXT) is LineStatus.TONE
    r.do(Hangup(EXT))
    assert r.ended().cdr.disposition == "BUSY"


def test_no_trunk_free_the_extension_hears_congestion():
    r = Run(trunks=1)
    r.do(Incoming("5550001", "x"))     # takes the only trunk (no route: congestion tone)
    r.do(Originate(EXT, "84001234", 15.0))
    r.do(Answer(EXT))
    assert r.status(EXT) is LineStatus.TONE
    assert any(isinstance(e, ToneStarted) and e.line == EXT and e.tone is Tone.CONGESTION
               for e in r.events)


def test_a_busy_extension_is_refused_as_an_event_and_bad_requests_raise():
    r = Run()
    r.do(Originate(EXT, "84001234", 15.0))
    out = r.do(Originate(EXT, "84009999", 15.0))
    assert [(e.line, e.action) for e in out if isinstance(e, LineError)] == [(EXT, "originate")]
    for bad in (Originate("trunk/1", "1", 5.0), Originate("ext/202", "12a", 5.0),
                Originate("ext/202", "1", 0.0), Originate("ext/999", "1", 5.0)):
        with pytest.raises(CoreError):
            r.do(bad)
