"""The core's side of call recording: the CDR's recording id (``Annotate``) and the keys
withheld while a recording is paused for compliance (``HideDigits``), in virtual time.

While a call's keys are hidden a key press makes no ``call.dtmf`` — the one event the
log, CTI clients, the IVR and the ACD read keys from — and is only counted, for the
recorder to report (``SwitchCore.hidden_digits``). Every test ends with nothing left.
"""

from __future__ import annotations

from switchd.core.engine import SwitchCore, new_call_id
from switchd.core.inputs import Annotate, Answer, Digit, Hangup, HideDigits, Incoming
from switchd.core.routing import CoreConfig, Route, Target
from switchd.events import DtmfReceived
from tests.corehelp import CoreRun

T0 = 1_764_000_000.0
CALLER = "trunk/1"


def _run() -> tuple[CoreRun, str]:
    """An inbound call answered at ext/201."""
    core = SwitchCore(CoreConfig(trunks=2, extensions=(201, 202),
                                 routes=(Route(Target.parse("extension:201")),)))
    r = CoreRun(core, T0)
    call_id = new_call_id(r.do(Incoming("5550001", "100", trunk=1)))
    assert call_id is not None
    r.do(Answer("ext/201"))
    return r, call_id


def _keys(r: CoreRun, line: str, digits: str) -> str:
    """Press ``digits`` on ``line``; returns the keys call.dtmf reported."""
    out = ""
    for d in digits:
        out += "".join(e.digit for e in r.do(Digit(line, d)) if isinstance(e, DtmfReceived))
    return out


def test_annotate_puts_the_recording_id_into_the_cdr_and_none_keeps_it():
    r, call_id = _run()
    assert r.do(Annotate(call_id, recording_id=call_id)) == []
    assert r.do(Annotate(call_id, ivr_path="main:x")) == []   # other facts leave it alone
    r.do(Hangup(CALLER))
    r.assert_clean()
    assert r.cdrs[0].recording_id == call_id


def test_a_call_never_recorded_has_no_recording_id():
    r, _ = _run()
    r.do(Hangup(CALLER))
    assert r.cdrs[0].recording_id is None


def test_hidden_keys_make_no_event_and_are_counted_per_pause():
    r, call_id = _run()
    assert _keys(r, CALLER, "1") == "1"
    assert r.do(HideDigits(call_id, True)) == []
    assert _keys(r, CALLER, "4111") == "" and _keys(r, "ext/201", "2") == ""
    assert r.core.hidden_digits(call_id) == 5
    assert r.do(HideDigits(call_id, True)) == []              # still on: keeps counting
    _keys(r, CALLER, "3")
    assert r.core.hidden_digits(call_id) == 6
    assert r.do(HideDigits(call_id, False)) == []
    assert r.core.hidden_digits(call_id) == 6                  # readable after the pause
    assert _keys(r, CALLER, "9") == "9"
    r.do(HideDigits(call_id, True))                            # a new pause counts afresh
    assert r.core.hidden_digits(call_id) == 0
    _keys(r, CALLER, "77")
    assert r.core.hidden_digits(call_id) == 2
    assert [e.digit for e in r.events if isinstance(e, DtmfReceived)] == ["1", "9"]
    r.do(Hangup(CALLER))
    r.assert_clean()


def test_hide_digits_for_an_unknown_or_ended_call_is_ignored_and_the_next_call_hears_keys():
    r, call_id = _run()
    r.do(HideDigits(call_id, True))
    r.do(Hangup(CALLER))
    assert r.do(HideDigits(call_id, False)) == []
    assert r.do(HideDigits("never", True)) == []
    assert r.core.hidden_digits(call_id) == 0 and r.core.hidden_digits("never") == 0
    nxt = new_call_id(r.do(Incoming("5550002", "100", trunk=1)))
    r.do(Answer("ext/201"))
    assert nxt is not None and _keys(r, CALLER, "5") == "5"
    r.do(Hangup(CALLER))
    r.assert_clean()
