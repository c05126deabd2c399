"""``switchd flows try``: one call through a flow in virtual time, with the daemon's engines.

The same shell, call core and interpreter as the daemon run on a
:class:`~switchd.shell.VirtualClock` set to ``--at``; prompts "play" for their real
decoded length (:class:`~switchd.ivr.vplayer.VirtualPlayer`), so timeouts and
type-ahead behave as on a real line. A scripted caller presses each comma group of
``--digits`` when the flow next waits for keys (a ``menu`` or ``collect`` starts or
starts over), a scripted CRM answers ``ivr.route_request`` with each ``--route-reply``
in turn, and the phones a ``transfer`` rings answer (or not: ``--transfer``).
Every step is printed: node, prompt, keys consumed, where it went and why.

No ACD runs in a trial: a ``queue`` node ends it (outcome ``queued``), and the last
step says which queue the call was handed to and with what priority. A ``voicemail``
node takes a message from a caller who says nothing after the greeting and the beep
(:class:`~switchd.ivr.vplayer.VirtualRecorder`): it ends by silence (the scripted
keys are for menus and collects only).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings, RingGroup
from switchd.bus import Bus
from switchd.core.engine import SwitchCore
from switchd.core.inputs import CORE_INPUTS, Answer, Digit, Hangup, Incoming
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.cti.codec import KEY_RE
from switchd.engine import Input, TimerHeap
from switchd.events import (
    CallEnded,
    CallRinging,
    CallRouted,
    CallRouteFailed,
    Event,
    IvrEnter,
    IvrError,
    IvrExit,
    IvrLeave,
    IvrRouteRequest,
)
from switchd.ivr.inputs import RouteReply
from switchd.ivr.interpreter import Ivr
from switchd.ivr.model import FlowSet, NodeType
from switchd.ivr.vplayer import VirtualPlayer, VirtualRecorder
from switchd.lines.prompts import PromptCache, PromptError
from switchd.recorder.mailboxes import Mailboxes
from switchd.recorder.model import VoicemailSettings
from switchd.shell import Shell, VirtualClock

__all__ = ["Step", "TrialScript", "parse_at", "parse_route_reply", "run_trial"]

#: Seconds between two keys of one group, and after a prompt starts before the first.
KEY_GAP_S = 0.3
#: Virtual seconds a trial may last before it is stopped (a caller would have hung up).
TRIAL_LIMIT_S = 1800.0


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the trace: ``t`` seconds after the call arrived."""

    t: float
    event: str
    fields: dict[str, Any]

    def text(self) -> str:
        """The step as one readable line."""
        f = self.fields
        when = f"{self.t:7.2f}s"
        if self.event == "ivr.enter":
            prompt = f"  plays {f['prompt']}" if f.get("prompt") else ""
            return f"{when}  enter {f['flow']}:{f['node']} ({f['node_type']}){prompt}"
        if self.event == "ivr.leave":
            keys = f"  keys {f['digits']}" if f.get("digits") else ""
            nxt = f"-> {f['next']}" if f.get("next") else "(flow ends here)"
            ignored = f"  (ignored keys {f['ignored']})" if f.get("ignored") else ""
            return f"{when}  leave {f['node']}{keys}  {nxt}  because {f['why']}{ignored}"
        if self.event == "press":
            return f"{when}  caller presses {f['digits']}"
        if self.event == "ivr.route_request":
            return f"{when}  asks the CRM (ivr.route_request, {f['timeout_s']:g} s) with {f['vars']}"
        if self.event == "route.reply":
            return f"{when}  CRM replies {f['reply']}"
        if self.event == "ivr.error":
            return f"{when}  ERROR at {f['node']}: {f['error']}"
        if self.event == "ivr.exit":
            return f"{when}  flow {f['flow']} ends: {f['outcome']} (at {f['node']})"
        if self.event == "call.ringing":
            return f"{when}  rings {f['line']}"
        if self.event == "call.route_failed":
            return f"{when}  transfer to {f['target']} failed: {f['reason']}"
        if self.event == "call.routed":
            prio = f" with priority {f['priority']}" if f.get("priority") else ""
            return (f"{when}  handed to {f['target']}{prio}; flows try runs no queues, so "
                    "the trial ends here")
        if self.event == "trial.stopped":
            return f"{when}  stopped: {f['why']}"
        if self.event == "call.ended":
            return f"{when}  call ends: {f['disposition']}, cause {f['hangup_cause']}"
        return f"{when}  {self.event} {f}"


@dataclass
class TrialScript:
    """What the simulated parties do: key groups, CRM replies, how transfers go."""

    digits: list[str] = field(default_factory=list)
    replies: list[tuple[str | None, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    #: What the phones a transfer rings do: answer | decline (hang up while ringing) | noanswer
    transfer: str = "answer"
    #: The caller is a VIP in the contacts table (the ``vip`` builtin is "true").
    vip: bool = False


def parse_at(text: str) -> float:
    """``--at`` (ISO 8601 with a zone offset, e.g. ``2026-12-07T10:00+08:00`` or ``…Z``) as epoch s.

    Raises ValueError naming the accepted form.
    """
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at {text!r} is not an ISO 8601 time; e.g. 2026-12-07T10:00+08:00") \
            from None
    if when.tzinfo is None:
        raise ValueError(f"--at {text!r} has no zone; add the offset, e.g. {text}+08:00 or {text}Z")
    return when.timestamp()


def parse_route_reply(tokens: Sequence[str]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """``--route-reply next=NODE var=VALUE …`` as (next, variables). Raises ValueError."""
    nxt: str | None = None
    pairs: list[tuple[str, str]] = []
    for tok in tokens:
        key, sep, value = tok.partition("=")
        if not sep or not key:
            raise ValueError(f"--route-reply {tok!r}: expected key=value, e.g. next=say_balance")
        if not KEY_RE.fullmatch(key):
            # As ROUTE.REPLY on the socket would refuse it (bad_syntax): try what the CRM can send.
            raise ValueError(f"--route-reply {tok!r}: {key!r} is not a key ROUTE.REPLY can "
                             "carry (lower-case: a-z first, then a-z, 0-9, '_', '.', '-')")
        if key == "next":
            nxt = value
        else:
            pairs.append((key, value))
    return nxt, tuple(pairs)


class _Parties:
    """The caller, the CRM and the phones of a trial: an engine following the call's events."""

    def __init__(self, script: TrialScript, trunk_line: str, steps: list[Step], t0: float) -> None:
        self.script = script
        self.trunk_line = trunk_line
        self.steps = steps
        self.t0 = t0
        #: The script's own list: what is left unpressed at the end shows in the trace.
        self.digits = script.digits
        self.replies = list(script.replies)
        #: (input, trace line) due at a time; keys are a running count (ties keep order)
        self._due: TimerHeap[int] = TimerHeap()
        self._n = 0
        self.waiting_node: str | None = None

    def _at(self, t: float, item: Input, step: Step | None = None) -> None:
        self._n += 1
        self._due.arm(self._n, t, (item, step))

    def handle(self, now: float, item: Any) -> list[Input]:
        if isinstance(item, IvrEnter) and item.node_type in (NodeType.MENU, NodeType.COLLECT):
            self.waiting_node = item.node
            self._press_next(now)
        elif isinstance(item, IvrRouteRequest) and self.replies:
            nxt, pairs = self.replies.pop(0)
            shown = " ".join(([f"next={nxt}"] if nxt else []) + [f"{k}={v}" for k, v in pairs])
            self._at(now + 0.2, RouteReply(item.call_id, nxt, pairs),
                     Step(now + 0.2 - self.t0, "route.reply", {"reply": shown}))
        elif isinstance(item, CallRinging) and item.line != self.trunk_line:
            if self.script.transfer == "answer":
                self._at(now + 2.0, Answer(item.line))
            elif self.script.transfer == "decline":
                self._at(now + 0.5, Hangup(item.line))
        return []

    def _press_next(self, now: float) -> None:
        if not self.digits:
            return
        group = self.digits.pop(0)
        t = now + KEY_GAP_S
        first = True
        for key in group:
            self._at(t, Digit(self.trunk_line, key, t),
                     Step(t - self.t0, "press", {"digits": group}) if first else None)
            first = False
            t += KEY_GAP_S

    def next_deadline(self) -> float | None:
        return self._due.next_deadline()

    def handle_timer(self, now: float) -> list[Input]:
        out: list[Input] = []
        while (due := self._due.pop_due(now)) is not None:
            item, step = due[1]
            if step is not None:
                self.steps.append(step)
            out.append(item)
        return out


class _AnyBox:
    """The mailboxes of a trial without a config: every box exists, with no greeting."""

    def greeting(self, name: str) -> tuple[Path, ...] | None:
        return ()


class _GroupsOnly:
    """The ACD for a trial: it rings ring groups, and sees nothing of queues."""

    def __init__(self, acd: Acd) -> None:
        self.acd = acd

    def handle(self, now: float, item: Any) -> list[Any]:
        if isinstance(item, CallRouted) and not item.target.startswith("group:"):
            return []
        return self.acd.handle(now, item)

    def next_deadline(self) -> float | None:
        return self.acd.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        return self.acd.handle_timer(now)


def run_trial(flows: FlowSet, flow: str, *, caller: str = "13800000000", dnis: str = "8000",
              at: float, script: TrialScript, core_config: CoreConfig | None = None,
              groups: Mapping[str, RingGroup] | None = None,
              cache: PromptCache | None = None,
              voicemail: VoicemailSettings | None = None) -> list[Step]:
    """Run one call into ``flow`` at epoch ``at``; return the trace, in time order.

    ``core_config``, ``groups``: extensions and ring groups for ``transfer`` nodes (the
    daemon's config; its ACD rings the groups); the routes are replaced by one route to
    the flow. ``voicemail``: the config's boxes, greetings and limits for ``voicemail``
    nodes (None: every box exists, with no greeting and the default limits). Prompt
    lengths come from ``cache`` (decoded from the files; a file that cannot be decoded
    counts 0 s). Raises KeyError for a flow not in ``flows``.
    """
    if flows.get(flow) is None:
        raise KeyError(flow)
    base = core_config or CoreConfig()
    cfg = dataclasses.replace(base, trunks=max(base.trunks, 1),
                              routes=(Route(Target(TargetKind.FLOW, flow)),))
    cache = cache or PromptCache()

    def duration(path: Path) -> float:
        try:
            return len(cache.get(path)) / 8000.0
        except PromptError:
            return 0.0

    clock = VirtualClock(at)
    bus = Bus()
    shell = Shell(bus, clock, log_events=False)
    core = SwitchCore(cfg)
    if voicemail is None:
        ivr = Ivr(flows, mailboxes=_AnyBox())
        recorder = VirtualRecorder()
    else:
        ivr = Ivr(flows, mailboxes=Mailboxes(voicemail))
        recorder = VirtualRecorder(silence_s=voicemail.silence_s, max_s=voicemail.max_s,
                                   beep_s=voicemail.beep_ms / 1000.0)
    player = VirtualPlayer(duration)
    steps: list[Step] = []
    parties = _Parties(script, "trunk/1", steps, at)
    shell.add(core, takes=CORE_INPUTS)
    # Ring groups are queues with no waiting: the ACD rings a transfer's group. A trial
    # runs no queue: a caller the flow queues is where the trial ends.
    acd = _GroupsOnly(Acd(AcdSettings(groups=dict(groups or {}),
                                      ring_timeout_s=cfg.ring_timeout_s)))
    shell.add(acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
    shell.add(ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(player, takes=VirtualPlayer.TAKES)
    shell.add(recorder, takes=VirtualRecorder.TAKES, follows=VirtualRecorder.FOLLOWS)
    shell.add(parties, follows=(IvrEnter, IvrRouteRequest, CallRinging))
    done = [False]
    last_enter: dict[str, str] = {}

    def record(ev: Event) -> None:
        if isinstance(ev, IvrEnter | IvrLeave | IvrExit | IvrRouteRequest | IvrError
                      | CallRouteFailed | CallEnded | CallRinging | CallRouted):
            if isinstance(ev, CallRinging) and ev.line == "trunk/1":
                return
            if isinstance(ev, CallRouted) and not ev.target.startswith("queue:"):
                return  # the route into the flow tried: not a step of the flow
            fields = ev.fields()
            fields.pop("time", None)
            fields.pop("call_id", None)
            if isinstance(ev, CallRouted):
                # What the trial shows of the hand-over: where to, and how urgent.
                fields = {"target": ev.target, "priority": ev.priority}
            steps.append(Step(ev.time - at, ev.name, fields))
        if isinstance(ev, IvrEnter):
            last_enter[ev.call_id] = ev.node
        if isinstance(ev, IvrExit | CallEnded):
            done[0] = True

    bus.on_any(record)
    shell.submit(Incoming(caller=caller, dnis=dnis, trunk=1, vip=script.vip))
    limit = at + TRIAL_LIMIT_S
    while not done[0] and shell.step():
        if clock.now() > limit:
            steps.append(Step(clock.now() - at, "trial.stopped",
                              {"why": f"the call was still in the flow after {TRIAL_LIMIT_S:g} s "
                                      "of virtual time; a caller would have hung up"}))
            break
    return steps


def steps_json(steps: list[Step]) -> str:
    """The trace as JSON lines (one object per step: t, event, and the event's fields)."""
    return "\n".join(json.dumps({"t": round(s.t, 3), "event": s.event, **s.fields},
                                ensure_ascii=False, default=str) for s in steps)
