"""Voicemail in the IVR: the ``voicemail`` node, ``voicemail:BOX`` routes, transfers and queue
overflows, through the real shell, call core, interpreter (and ACD), in virtual time.

The recorder is :class:`~switchd.ivr.vplayer.VirtualRecorder` (a caller who says nothing
after the beep: the message ends by silence, or at ``#``); prompts "play" in the virtual
player (2 s per file unless a test says otherwise). The daemon's recorder is tested in
tests/test_voicemail_service.py.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings, QueueSettings
from switchd.bus import Bus
from switchd.core import inputs as ci
from switchd.core.engine import SwitchCore, new_call_id
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.events import CallEnded, Event
from switchd.ivr.inputs import MessageEnd, MessageEnded, RecordMessage, StopMessage
from switchd.ivr.interpreter import RECORDER_GRACE_S, VOICEMAIL_FLOW, Ivr, State
from switchd.ivr.model import Hangup, NodeType, Play, Transfer, Voicemail
from switchd.ivr.trial import TrialScript, run_trial
from switchd.ivr.vplayer import VirtualPlayer, VirtualRecorder
from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import Mailbox, VoicemailSettings
from switchd.shell import Shell, VirtualClock
from tests.ivrhelp import Rig, flow, flowset, node, prompt_path

BYE = node(Hangup, "bye")
SETTINGS = VoicemailSettings(
    boxes=MappingProxyType({
        "1001": Mailbox("1001", owner="agent:1001", greeting=(prompt_path("vm/alice"),)),
        "sales": Mailbox("sales", owner="queue:sales"),
        "afterhours": Mailbox("afterhours", greeting=(prompt_path("vm/closed"),)),
    }),
    greeting=(prompt_path("vm/default"),), silence_s=5.0, max_s=120.0, beep_ms=400)


class Spy:
    """Stands between the interpreter and the recorder: keeps every input it is sent."""

    def __init__(self, inner: VirtualRecorder | None) -> None:
        self.inner = inner
        self.seen: list[Any] = []

    def handle(self, now: float, item: Any) -> list[Any]:
        if not isinstance(item, CallEnded):
            self.seen.append((now, item))
        return self.inner.handle(now, item) if self.inner is not None else []

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline() if self.inner is not None else None

    def handle_timer(self, now: float) -> list[Any]:
        return self.inner.handle_timer(now) if self.inner is not None else []


def vm_rig(f: Any, *, recorder: bool = True, **kw: Any) -> tuple[Rig, Spy]:
    """The interpreter rig with the mailboxes above and a recorder (a silent caller)."""
    rig = Rig(f, **kw)
    rig.ivr.mailboxes = Mailboxes(SETTINGS)
    spy = Spy(VirtualRecorder(silence_s=5.0, max_s=120.0, beep_s=0.4) if recorder else None)
    rig.shell.add(spy, takes=VirtualRecorder.TAKES, follows=VirtualRecorder.FOLLOWS)
    return rig, spy


def asked(spy: Spy) -> list[tuple[float, Any]]:
    return [(t, i) for t, i in spy.seen if isinstance(i, RecordMessage)]


def stops(spy: Spy) -> list[tuple[float, Any]]:
    return [(t, i) for t, i in spy.seen if isinstance(i, StopMessage)]


# ------------------------------------------------------------------ the node


def test_the_box_greeting_plays_then_the_message_is_taken_then_the_flow_goes_on():
    f = flow([node(Voicemail, "vm", mailbox="1001", next="bye"), BYE])
    rig, spy = vm_rig(f, durations={"vm/alice": 3.0})
    t0 = rig.now
    c = rig.call(caller="13900001111")
    assert rig.plays(c) == [(t0, ("vm/alice",))]  # the personal greeting
    rig.idle()
    [(t, rec)] = asked(spy)
    assert t == t0 + 3.0  # after the greeting
    assert (rec.call_id, rec.line, rec.mailbox, rec.caller, rec.max_s, rec.silence_s) == (
        c, "trunk/1", "1001", "13900001111", None, None)
    # A silent caller: 0.4 s beep + 5 s silence; nothing kept.
    assert rig.leaves(c)[0] == ("vm", "bye", "message silence, 0.0 s", None)
    assert rig.of("ivr.leave", c)[0].time == pytest.approx(t0 + 3.0 + 0.4 + 5.0)
    assert rig.entered(c) == ["vm", "bye"]
    assert rig.exit(c).outcome == "hangup"
    assert rig.of("ivr.enter", c)[0].node_type == NodeType.VOICEMAIL
    assert rig.ivr.sessions == {} and rig.ivr.next_deadline() is None


def test_a_box_without_its_own_greeting_plays_the_default_and_a_node_greeting_wins():
    f = flow([node(Voicemail, "vm", mailbox="sales", next="own"),
              node(Voicemail, "own", mailbox="sales", greeting=["vm/flow"], max_s=30,
                   silence_s=2, next="bye"), BYE], extra_prompts=["vm/flow"])
    rig, spy = vm_rig(f)
    c = rig.call()
    rig.idle()
    assert [p for _, p in rig.plays(c)] == [("vm/default",), ("vm/flow",)]
    second = asked(spy)[1][1]
    assert (second.max_s, second.silence_s) == (30.0, 2.0)
    assert rig.of("ivr.enter", c)[1].prompt == "vm/flow"


def test_a_key_during_the_greeting_skips_to_the_beep():
    f = flow([node(Voicemail, "vm", mailbox="1001", next="bye"), BYE])
    rig, spy = vm_rig(f, durations={"vm/alice": 10.0})
    t0 = rig.now
    c = rig.call()
    rig.run(1.5)
    rig.press(c, "5")
    assert rig.player.stopped == [(t0 + 1.5, c)]
    assert asked(spy)[0][0] == t0 + 1.5
    assert rig.ivr.sessions[c].state is State.RECORDING
    rig.idle()
    assert rig.leaves(c)[0][3] == "5"  # the key the node used


def test_hash_ends_the_message_and_the_switch_hangs_up_without_a_next():
    f = flow([node(Voicemail, "vm", mailbox="1001")])
    rig, spy = vm_rig(f, durations={"vm/alice": 1.0})
    t0 = rig.now
    c = rig.call()
    rig.run(4.4)  # greeting 1 s, beep 0.4 s, 3 s of message
    rig.press(c, "#")
    assert [i.reason for _, i in stops(spy)] == [MessageEnd.HASH]
    assert spy.inner is not None and spy.inner.messages == [(c, "1001", MessageEnd.HASH, 3.0)]
    assert rig.leaves(c) == [("vm", None, "message hash, 3.0 s", "#")]
    ex = rig.exit(c)
    assert (ex.outcome, ex.node) == ("hangup", "vm")
    cdr = rig.cdr(c)
    assert (cdr.hangup_by, cdr.ivr_path) == ("system", "main:vm")
    assert rig.of("call.ended", c)[0].time == t0 + 4.4


def test_hash_that_skipped_the_greeting_does_not_stop_hash_from_ending_the_message():
    f = flow([node(Voicemail, "vm", mailbox="1001", next="bye"), BYE])
    rig, spy = vm_rig(f, durations={"vm/alice": 10.0})
    c = rig.call()
    rig.run(1.0)
    rig.press(c, "#")  # skips the greeting: the beep, then the message
    assert rig.ivr.sessions[c].state is State.RECORDING and stops(spy) == []
    rig.run(2.4)  # the beep, 2 s of message
    rig.press(c, "#")  # ends the message
    assert [i.reason for _, i in stops(spy)] == [MessageEnd.HASH]
    assert spy.inner is not None and spy.inner.messages == [(c, "1001", MessageEnd.HASH, 2.0)]
    assert rig.leaves(c)[0] == ("vm", "bye", "message hash, 2.0 s", "##")
    assert rig.ignored(c) == []


def test_other_keys_while_recording_are_ignored_and_do_not_end_the_message():
    f = flow([node(Voicemail, "vm", mailbox="1001", next="bye"), BYE])
    rig, spy = vm_rig(f, durations={"vm/alice": 1.0})
    c = rig.call()
    rig.run(2)
    rig.press(c, "12*")
    assert rig.ivr.sessions[c].state is State.RECORDING
    assert stops(spy) == []
    rig.idle()
    assert rig.ignored(c) == [("vm", "12*")]


def test_the_caller_hanging_up_mid_message_ends_the_flow_without_a_release():
    f = flow([node(Voicemail, "vm", mailbox="1001", next="bye"), BYE])
    rig, spy = vm_rig(f, durations={"vm/alice": 1.0})
    c = rig.call()
    rig.run(3)
    rig.hangup(c)
    assert rig.exit(c).outcome == "caller_hangup"
    assert spy.inner is not None and spy.inner.messages[0][2] is MessageEnd.HANGUP
    assert rig.cdr(c).hangup_by == "caller"
    rig.idle()
    assert rig.ivr.sessions == {} and rig.ivr.next_deadline() is None


def test_a_box_that_does_not_exist_is_an_error_and_the_call_goes_to_next():
    f = flow([node(Voicemail, "vm", mailbox="nobody", next="bye"), BYE])
    rig, spy = vm_rig(f)
    c = rig.call()
    assert "no mailbox 'nobody'" in rig.errors(c)[0]
    assert rig.leaves(c)[0] == ("vm", "bye", "no mailbox", None)
    assert asked(spy) == []


def test_a_box_that_does_not_exist_without_next_releases_the_call():
    rig, _ = vm_rig(flow([node(Voicemail, "vm", mailbox="nobody")]))
    c = rig.call()
    assert rig.exit(c).outcome == "error"
    assert rig.cdr(c).hangup_by == "system"


def test_a_recorder_that_never_answers_does_not_hold_the_caller():
    f = flow([node(Voicemail, "vm", mailbox="1001", max_s=10, next="bye"), BYE])
    rig, spy = vm_rig(f, recorder=False, durations={"vm/alice": 1.0})
    t0 = rig.now
    c = rig.call()
    rig.idle()
    assert "did not report the end of the message" in rig.errors(c)[0]
    assert [i.reason for _, i in stops(spy)] == [MessageEnd.STOPPED]
    assert rig.leaves(c)[0][:3] == ("vm", "bye", "recorder timeout")
    assert rig.of("ivr.leave", c)[0].time == t0 + 1.0 + 10 + RECORDER_GRACE_S


def test_a_recorder_error_is_reported_and_the_flow_goes_on():
    f = flow([node(Voicemail, "vm", mailbox="1001", next="bye"), BYE])
    rig, spy = vm_rig(f, recorder=False, durations={"vm/alice": 1.0})
    c = rig.call()
    rig.run(2)
    rig.submit(MessageEnded(c, MessageEnd.ERROR, "m1", 0.5, "No space left on device: x.wav"))
    assert "No space left on device" in rig.errors(c)[0]
    assert rig.leaves(c)[0][:3] == ("vm", "bye", "message error, 0.5 s")


def test_a_message_end_for_a_call_not_recording_changes_nothing():
    f = flow([node(Play, "p", prompts=["long"], next="bye"), BYE])
    rig, _ = vm_rig(f, durations={"long": 30.0})
    c = rig.call()
    assert rig.submit(MessageEnded(c, MessageEnd.SILENCE)) == []
    assert rig.submit(MessageEnded("nosuchcall", MessageEnd.SILENCE)) == []
    assert rig.ivr.sessions[c].state is State.PLAYING


# -------------------------------------------------------- voicemail:BOX targets


def _routes(*routes: Route) -> CoreConfig:
    return CoreConfig(trunks=4, extensions=(201, 202), routes=routes)


def test_a_route_to_a_box_takes_a_message_as_a_one_node_flow():
    cfg = _routes(Route(Target(TargetKind.VOICEMAIL, "afterhours"), dnis="8000"))
    rig, spy = vm_rig(flow([BYE]), config=cfg, durations={"vm/closed": 2.5})
    t0 = rig.now
    c = rig.call()
    assert rig.of("call.switch_answered", c)  # the switch answers the caller itself
    enter = rig.of("ivr.enter", c)[0]
    assert (enter.flow, enter.node, enter.node_type) == (VOICEMAIL_FLOW, "afterhours",
                                                         "voicemail")
    assert rig.plays(c) == [(t0, ("vm/closed",))]
    rig.idle()
    assert asked(spy)[0][1].mailbox == "afterhours"
    assert rig.exit(c).outcome == "hangup"
    assert rig.cdr(c).ivr_path == "voicemail:afterhours"


def test_a_route_to_a_box_that_is_gone_releases_the_call_with_an_error():
    cfg = _routes(Route(Target(TargetKind.VOICEMAIL, "gone"), dnis="8000"))
    rig, _ = vm_rig(flow([BYE]), config=cfg)
    c = rig.call()
    assert "no mailbox 'gone'" in rig.errors(c)[0]
    assert rig.exit(c).outcome == "error"


def test_a_transfer_to_a_box_takes_a_message_then_hangs_up():
    f = flow([node(Transfer, "leave_msg", target="voicemail:sales", on_fail="bye"), BYE])
    rig, spy = vm_rig(f)
    c = rig.call()
    rig.idle()
    assert asked(spy)[0][1].mailbox == "sales"
    assert [p for _, p in rig.plays(c)] == [("vm/default",)]
    assert rig.leaves(c) == [("leave_msg", None, "message silence, 0.0 s", None)]
    assert rig.exit(c).outcome == "hangup"
    assert not rig.of("call.ringing", c)[1:]  # nothing rang but the caller's own line


def test_a_transfer_to_a_box_that_does_not_exist_goes_to_on_fail():
    f = flow([node(Transfer, "leave_msg", target="voicemail:nobody", on_fail="bye"), BYE])
    rig, spy = vm_rig(f)
    c = rig.call()
    assert rig.leaves(c)[0] == ("leave_msg", "bye", "no mailbox", None)
    assert asked(spy) == []


def test_a_queue_overflows_its_caller_to_the_queue_mailbox():
    clock = VirtualClock(1_764_000_000.0)
    bus = Bus()
    events: list[Event] = []
    bus.on_any(events.append)
    shell = Shell(bus, clock, log_events=False)
    core = SwitchCore(_routes(Route(Target(TargetKind.QUEUE, "sales"), dnis="8000")))
    acd = Acd(AcdSettings(queues={"sales": QueueSettings(
        "sales", music=False, max_wait_s=30.0,
        overflow=Target(TargetKind.VOICEMAIL, "sales"))}))
    ivr = Ivr(flowset(), mailboxes=Mailboxes(SETTINGS))
    player = VirtualPlayer(lambda p: 2.0)
    recorder = VirtualRecorder(silence_s=5.0)
    shell.add(core, takes=ci.CORE_INPUTS)
    shell.add(acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
    shell.add(ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(player, takes=VirtualPlayer.TAKES, follows=VirtualPlayer.FOLLOWS)
    shell.add(recorder, takes=VirtualRecorder.TAKES, follows=VirtualRecorder.FOLLOWS)
    t0 = clock.now()
    c = new_call_id(shell.submit(ci.Incoming("13900002222", "8000")))
    assert c is not None
    shell.run_idle()
    overflow = [e for e in events if e.name == "queue.overflow"]
    assert [(e.queue, e.to, e.time - t0) for e in overflow] == [
        ("sales", "voicemail:sales", 30.0)]
    routed = [e.target for e in events if e.name == "call.routed"]
    assert routed == ["queue:sales", "voicemail:sales"]
    assert recorder.messages == [(c, "sales", MessageEnd.SILENCE, 0.0)]
    [ended] = [e for e in events if isinstance(e, CallEnded)]
    # 30 s in the queue, the default greeting (2 s), the beep, 5 s of silence.
    assert ended.time - t0 == pytest.approx(30.0 + 2.0 + 0.4 + 5.0)
    assert (ended.cdr.queue, ended.cdr.ivr_path, ended.cdr.hangup_by) == (
        "sales", "voicemail:sales", "system")


# ------------------------------------------------------------------ flows try


def test_flows_try_takes_a_message_from_the_silent_caller(tmp_path: Path):
    f = flow([node(Voicemail, "vm", mailbox="anything", next="bye"), BYE])
    steps = run_trial(flowset(f), "main", at=1_764_000_000.0, script=TrialScript())
    texts = [s.text() for s in steps]
    assert any("leave vm" in t and "message silence" in t for t in texts), texts
    assert any("flow main ends: hangup" in t for t in texts), texts


def test_flows_try_with_the_config_boxes_reports_a_missing_box():
    f = flow([node(Voicemail, "vm", mailbox="nobody", next="bye"), BYE])
    steps = run_trial(flowset(f), "main", at=1_764_000_000.0, script=TrialScript(),
                      voicemail=SETTINGS)
    assert any("no mailbox 'nobody'" in s.text() for s in steps)
