"""``switchd bench ivr``: what the IVR costs, per step and with the media plane running.

Two measurements on the shipped demo flow (``flows/main.yaml``, on a Monday at 10:00
China time so every branch is open), with the daemon's own engines:

* **steps** — ``--calls`` callers arrive at once and walk the flow (self-service with
  a CRM reply, menu choices, transfers, timeouts) in virtual time with prompts of
  their real length but no audio. ``ivr_us_per_step`` is the interpreter's own time
  (``Ivr.handle``/``handle_timer``) per node entered; ``shell_us_per_step`` everything
  (core, interpreter, player, dispatch) per node entered.
* **media** — ``--channels`` trunks each carry a call in the flow; the media plane
  runs every 20 ms frame: prompts play on every line, callers press their keys as
  real in-band DTMF which the detector finds, calls that end are replaced at once.
  ``rtf`` = wall time / audio time on one core; ``--sweep`` tries several sizes
  and reports the largest with ``rtf`` <= 0.5.

Both run the daemon's engines (call core, interpreter, playout, simulated board,
media plane) wired as ``switchd.app`` wires them, frame by frame as
``App._on_frames`` hands them on, on a virtual clock with no asyncio loop, no CTI
server and no CDR writer. The media run logs every event as the daemon does at
level info (JSON lines, written to /dev/null) unless ``--no-log``: logging is a
large part of the daemon's cost per step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings, RingGroup, RingStrategy
from switchd.bus import Bus
from switchd.core.engine import SwitchCore
from switchd.core.inputs import CORE_INPUTS, Answer, Digit, Hangup, Incoming
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.drivers.sim.board import BotSettings, SimSettings
from switchd.drivers.sim.driver import SimDriver
from switchd.engine import Input, TimerHeap
from switchd.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    Event,
    IvrEnter,
    IvrExit,
    IvrOutcome,
    IvrRouteRequest,
)
from switchd.ivr.inputs import RouteReply
from switchd.ivr.interpreter import Ivr
from switchd.ivr.loader import load_flows
from switchd.ivr.model import FlowSet, NodeType
from switchd.ivr.routed import flow_prompt_files
from switchd.ivr.vplayer import VirtualPlayer
from switchd.lines.media import FRAME, MediaPlane
from switchd.lines.prompts import PromptCache, PromptError
from switchd.logconfig import configure_logging
from switchd.playout import Playout, run_frames
from switchd.shell import Shell, VirtualClock

__all__ = ["IvrMediaResult", "IvrStepResult", "bench_ivr_media", "bench_ivr_steps", "run_ivr_bench"]

_ROOT = Path(__file__).resolve().parent.parent
#: What the callers do, in turn: key groups for the menus and collects they meet.
SCRIPTS: tuple[tuple[str, ...], ...] = (
    ("3", "12345678#"), ("1",), ("2",), ("9", "0"), ("7", "7", "7"), (),
)
EXTENSIONS = tuple(range(201, 209))


def _monday_10am() -> float:
    return dt.datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def _core_config(trunks: int) -> CoreConfig:
    return CoreConfig(trunks=trunks, extensions=EXTENSIONS,
                      routes=(Route(Target(TargetKind.FLOW, "main")),))


def _acd() -> Acd:
    """The ACD that rings the demo's ring groups (queues with no waiting)."""
    groups = {"sales": RingGroup("sales", RingStrategy.RINGALL, (201, 202, 203, 204), 20.0),
              "support": RingGroup("support", RingStrategy.HUNT, (205, 206, 207, 208), 10.0)}
    return Acd(AcdSettings(groups=groups))


def _demo_flows() -> FlowSet:
    return load_flows(_ROOT / "flows", ["main"], _ROOT / "prompts")


class _Callers:
    """The callers, the CRM and the agents of a benchmark: press keys when the flow waits,
    reply to look-ups, answer transfers and hang up after a short talk."""

    def __init__(self, press: Any, *, in_band: bool) -> None:
        self.press = press
        self.in_band = in_band
        self.script: dict[str, list[str]] = {}
        self.line_of: dict[str, str] = {}
        #: inputs due at a time; keys are a running count (ties keep their order)
        self.due: TimerHeap[int] = TimerHeap()
        self._armed = 0
        self.n = 0

    def new_call(self, call_id: str, line: str) -> None:
        self.script[call_id] = list(SCRIPTS[self.n % len(SCRIPTS)])
        self.line_of[call_id] = line
        self.n += 1

    def handle(self, now: float, ev: Any) -> list[Input]:
        if isinstance(ev, IvrEnter) and ev.node_type in (NodeType.MENU, NodeType.COLLECT):
            keys = self.script.get(ev.call_id)
            if keys:
                group = keys.pop(0)
                line = self.line_of[ev.call_id]
                if self.in_band:
                    self.press(line, group)
                else:
                    for i, key in enumerate(group):
                        self._at(now + 0.3 * (i + 1), Digit(line, key, now + 0.3 * (i + 1)))
        elif isinstance(ev, IvrRouteRequest):
            self._at(now + 0.2, RouteReply(ev.call_id, "say_balance", (("balance", "1234.56"),)))
        elif isinstance(ev, CallRinging) and ev.line.startswith("ext/") and not self.in_band:
            self._at(now + 2.0, Answer(ev.line))
        elif isinstance(ev, CallAnswered) and ev.line.startswith("ext/") and not self.in_band:
            self._at(now + 5.0, Hangup(ev.line))
        elif isinstance(ev, IvrExit) and ev.outcome is IvrOutcome.QUEUED:
            # No ACD in this bench: a caller the flow queued hangs up after a while.
            line = self.line_of.get(ev.call_id)
            if line is not None:
                self._at(now + 5.0, Hangup(line))
        elif isinstance(ev, CallEnded):
            self.script.pop(ev.call_id, None)
            self.line_of.pop(ev.call_id, None)
        return []

    def _at(self, t: float, item: Input) -> None:
        self._armed += 1
        self.due.arm(self._armed, t, item)

    def next_deadline(self) -> float | None:
        return self.due.next_deadline()

    def handle_timer(self, now: float) -> list[Input]:
        out = []
        while (due := self.due.pop_due(now)) is not None:
            out.append(due[1])
        return out


class _Timed:
    """Wraps an engine and adds up the wall time of its handle/handle_timer calls."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.seconds = 0.0

    def handle(self, now: float, item: Any) -> list[Any]:
        t0 = time.perf_counter()
        try:
            return self.engine.handle(now, item)
        finally:
            self.seconds += time.perf_counter() - t0

    def next_deadline(self) -> float | None:
        return self.engine.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        t0 = time.perf_counter()
        try:
            return self.engine.handle_timer(now)
        finally:
            self.seconds += time.perf_counter() - t0


@dataclass(frozen=True, slots=True)
class IvrStepResult:
    """Interpreter cost: ``steps`` nodes entered by ``calls`` calls."""

    calls: int
    steps: int
    ivr_s: float
    wall_s: float
    ivr_us_per_step: float
    shell_us_per_step: float


def bench_ivr_steps(calls: int) -> IvrStepResult:
    """Run ``calls`` calls (≥ 1) through the demo flow in virtual time; cost per step.

    Raises ValueError for ``calls`` < 1.
    """
    if calls < 1:
        raise ValueError("need --calls >= 1")
    flows = _demo_flows()
    cache = PromptCache()
    lengths: dict[Path, float] = {}
    for path in flow_prompt_files(flows):
        try:
            lengths[path] = len(cache.get(path)) / 8000.0
        except PromptError:
            lengths[path] = 0.0
    clock = VirtualClock(_monday_10am())
    bus = Bus()
    shell = Shell(bus, clock, log_events=False)
    core = SwitchCore(_core_config(calls))
    ivr = _Timed(Ivr(flows))
    callers = _Callers(None, in_band=False)
    steps = [0]

    def count(ev: Event) -> None:
        if isinstance(ev, IvrEnter):
            steps[0] += 1

    bus.on_any(count)
    shell.add(core, takes=CORE_INPUTS)
    shell.add(_acd(), takes=ACD_INPUTS, follows=Acd.FOLLOWS)
    shell.add(ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(VirtualPlayer(lambda p: lengths.get(p, 0.0)), takes=VirtualPlayer.TAKES)
    shell.add(callers, follows=(IvrEnter, IvrRouteRequest, CallRinging, CallAnswered, CallEnded,
                                IvrExit))
    t0 = time.perf_counter()
    for n in range(1, calls + 1):
        events = shell.submit(Incoming(caller=f"1380000{n:04d}", dnis="8000", trunk=n))
        call_id = next(e.call_id for e in events if e.name == "call.new")  # type: ignore[attr-defined]
        callers.new_call(call_id, f"trunk/{n}")
    shell.run_idle()
    wall = time.perf_counter() - t0
    n_steps = max(steps[0], 1)
    return IvrStepResult(calls=calls, steps=steps[0], ivr_s=round(ivr.seconds, 4),
                         wall_s=round(wall, 4),
                         ivr_us_per_step=round(ivr.seconds * 1e6 / n_steps, 2),
                         shell_us_per_step=round(wall * 1e6 / n_steps, 2))


@dataclass(frozen=True, slots=True)
class IvrMediaResult:
    """Calls in flows with the media plane running: ``rtf`` = ``wall_s`` / ``seconds``."""

    channels: int
    seconds: float
    wall_s: float
    rtf: float
    calls_in_flows_avg: float
    logged: bool
    steps: int
    digits_detected: int
    prompts_finished: int


def bench_ivr_media(channels: int, seconds: float, *, log: bool = True) -> IvrMediaResult:
    """``channels`` trunks (≥ 1) in the demo flow for ``seconds`` of audio, media running.

    ``log``: log every event as the daemon does (JSON lines at info, to /dev/null).
    Raises ValueError for ``channels`` < 1 or ``seconds`` <= 0.
    """
    if channels < 1 or seconds <= 0:
        raise ValueError("need --channels >= 1 and --seconds > 0")
    flows = _demo_flows()
    cache = PromptCache(1 << 30)
    cache.preload(flow_prompt_files(flows))
    core = SwitchCore(_core_config(channels))
    lines = list(core.lines)
    settings = SimSettings(bots=BotSettings(answer_after_s=2.0, talk_s=(5.0, 5.0)),
                           caller_patience_s=3600.0)
    driver = SimDriver(settings, EXTENSIONS, lines)
    media = MediaPlane(lines, port=driver, prompt_cache=cache)
    playout = Playout(media, cache)
    clock = VirtualClock(_monday_10am())
    bus = Bus()
    sink = open(os.devnull, "wb") if log else None
    saved = structlog.get_config()
    if sink is not None:
        configure_logging("json", "info", sink)
    shell = Shell(bus, clock, log_events=log)
    ivr = Ivr(flows)
    callers = _Callers(driver.press, in_band=True)
    counts = {"steps": 0, "digits": 0, "done": 0}
    ended: list[int] = []

    def follow(ev: Event) -> None:
        if isinstance(ev, IvrEnter):
            counts["steps"] += 1
        elif isinstance(ev, CallEnded) and ev.cdr.trunk is not None:
            ended.append(ev.cdr.trunk)

    bus.on_any(media.on_event)
    bus.on_any(follow)
    shell.add(core, takes=CORE_INPUTS)
    shell.add(_acd(), takes=ACD_INPUTS, follows=Acd.FOLLOWS)
    shell.add(driver, follows=driver.FOLLOWS)
    shell.add(ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
    shell.add(playout, takes=Playout.TAKES)
    shell.add(callers, follows=(IvrEnter, IvrRouteRequest, CallEnded, IvrExit))

    def call_in(trunk: int) -> None:
        events = shell.submit(Incoming(caller=f"1390000{trunk:04d}", dnis="8000", trunk=trunk))
        call_id = next((e.call_id for e in events if e.name == "call.new"), None)  # type: ignore[attr-defined]
        if call_id is not None:
            callers.new_call(call_id, f"trunk/{trunk}")

    frames = int(round(seconds * 8000 / FRAME))
    in_flows = 0
    try:
        for n in range(1, channels + 1):
            call_in(n)
        t0 = time.perf_counter()
        for _ in range(frames):
            clock.t += FRAME / 8000
            shell.fire_due()
            # The daemon's own frame hand-on (keys first, then the prompts that ended).
            keys, ended_plays = run_frames(media, playout, shell.submit, 1, clock.t)
            counts["digits"] += keys
            counts["done"] += ended_plays
            while ended:
                call_in(ended.pop())
            in_flows += len(ivr.sessions)
        wall = time.perf_counter() - t0
    finally:
        if sink is not None:
            structlog.configure(**saved)  # whoever called us logs where it did before
            sink.close()
    audio_s = frames * FRAME / 8000
    return IvrMediaResult(channels=channels, seconds=audio_s, wall_s=round(wall, 3),
                          rtf=round(wall / audio_s, 4),
                          calls_in_flows_avg=round(in_flows / frames, 1), logged=log,
                          steps=counts["steps"],
                          digits_detected=counts["digits"], prompts_finished=counts["done"])


def run_ivr_bench(args: argparse.Namespace) -> int:
    """CLI entry of ``switchd bench ivr``; JSON with ``--json``. Returns the exit code."""
    try:
        steps = bench_ivr_steps(args.calls)
        sizes = [int(x) for x in args.sweep.split(",")] if args.sweep else [args.channels]
        media = [bench_ivr_media(n, args.seconds, log=not args.no_log) for n in sizes]
    except ValueError as exc:
        sys.stderr.write(f"switchd bench ivr: {exc}\n")
        return 2
    fit = [m.channels for m in media if m.rtf <= 0.5]
    out: dict[str, Any] = {"steps": asdict(steps), "media": [asdict(m) for m in media],
                           "max_channels_rtf_le_0_5": max(fit) if fit else None}
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        s = steps
        sys.stdout.write(f"steps: {s.steps} nodes entered by {s.calls} calls; interpreter "
                         f"{s.ivr_us_per_step} µs/step, whole shell {s.shell_us_per_step} µs/step\n")
        for m in media:
            how = "events logged as JSON" if m.logged else "no logging"
            sys.stdout.write(f"media (engines on a virtual clock, {how}): {m.channels} calls "
                             f"in flows ({m.calls_in_flows_avg} on "
                             f"average), {m.seconds:g} s audio in {m.wall_s} s: rtf {m.rtf}; "
                             f"{m.digits_detected} keys detected in-band, {m.steps} steps\n")
        if args.sweep:
            sys.stdout.write(f"largest size with rtf <= 0.5: {out['max_channels_rtf_le_0_5']}\n")
    sys.stdout.flush()
    return 0
