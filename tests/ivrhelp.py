"""Helpers for the IVR interpreter tests: build flows in code, run calls in virtual time.

``node(Play, "welcome", prompts=["welcome"], next="menu")`` builds a node (lists become
tuples, a mark is filled in); ``flow([...nodes], start=...)`` a flow whose every prompt
name resolves to ``/prompts/<name>.wav``; :class:`Rig` wires the real shell, call core,
interpreter and virtual player on a :class:`~switchd.shell.VirtualClock`, with a
guard that stops a run-away flow instead of hanging the test (:class:`Runaway`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings, QueueSettings, RingGroup, RingStrategy
from switchd.bus import Bus
from switchd.core import inputs as core_inputs
from switchd.core.engine import CoreError, SwitchCore, new_call_id
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.events import CallEnded, CallNew, Cdr, Event
from switchd.ivr.interpreter import Ivr
from switchd.ivr.model import Flow, FlowSet, Holidays, Mark, Node
from switchd.ivr.vplayer import VirtualPlayer
from switchd.shell import Shell, VirtualClock

__all__ = ["CORE_INPUTS", "Rig", "Runaway", "at_local", "flow", "flowset", "node", "prompt_path"]

#: Every core input type: the core takes exactly these (so the IVR's and the
#: player's inputs reach them, not the core).
CORE_INPUTS = core_inputs.CORE_INPUTS

_MARK = Mark("test.yaml", 1, 1)


def node(cls: type[Node], name: str, **fields: Any) -> Any:
    """``cls(name=name, mark=…, **fields)`` with lists turned into tuples (the model is frozen).

    ``values`` (SetVars) may be a dict; ``choices`` of a route_request a list.
    """
    for key, value in list(fields.items()):
        if isinstance(value, dict) and key == "values":
            fields[key] = tuple(value.items())
        elif isinstance(value, list):
            fields[key] = tuple(value)
    return cls(name=name, mark=_MARK, **fields)


def prompt_path(name: str) -> Path:
    """The file a prompt name resolves to in test flows."""
    return Path(f"/prompts/{name}.wav")


def flow(nodes: Iterable[Node], *, name: str = "main", start: str | None = None,
         version: str = "v1", timezone: str = "Asia/Shanghai", language: str = "en",
         holidays: Holidays | None = None, vars: dict[str, str] | None = None,
         extra_prompts: Iterable[str] = ()) -> Flow:
    """A flow of ``nodes`` (start: the first node). Every prompt the nodes name, plus
    ``extra_prompts`` (say fragments), resolves to :func:`prompt_path`."""
    nodes = list(nodes)
    names: list[str] = list(extra_prompts)
    for n in nodes:
        for attr in ("prompts", "invalid_prompts", "timeout_prompts"):
            names.extend(getattr(n, attr, ()))
    return Flow(name=name, version=version, path=Path(f"/flows/{name}.yaml"),
                start=start or nodes[0].name, nodes={n.name: n for n in nodes},
                timezone=timezone, language=language, holidays=holidays or Holidays(),
                vars=tuple((vars or {}).items()),
                prompt_files={p: prompt_path(p) for p in names})


def flowset(*flows: Flow, generation: int = 0) -> FlowSet:
    """A generation holding ``flows``."""
    return FlowSet({f.name: f for f in flows}, generation)


class Runaway(Exception):
    """The interpreter was handed more inputs than a test allows (a flow that spins)."""


def at_local(text: str, tz: str = "Asia/Shanghai") -> float:
    """Epoch seconds of local wall time ``text`` (``2026-12-07T17:59:59``) in ``tz``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


class Rig:
    """Shell + SwitchCore + Ivr + VirtualPlayer on a virtual clock.

    Routes send DNIS ``8000`` to ``flow:main`` (and ``8001`` to ``flow:other``).
    Prompt durations: ``durations`` (name -> s), else ``default_s``; a name listed
    in ``broken`` cannot be played (the player answers with an error).
    Every published event is kept in :attr:`events`.

    ``max_inputs``: inputs the interpreter may be handed in all (:attr:`ivr_inputs`
    counts them). One more raises :class:`Runaway` inside the shell, which logs it
    and drops that input — so a flow spinning through the core (an input loop the
    shell would drain forever) ends the test instead of hanging it; the test then
    checks :attr:`runaway`.
    """

    def __init__(self, flows: FlowSet | Flow, *, at: float = 1_764_000_000.0,
                 durations: dict[str, float] | None = None, default_s: float = 2.0,
                 broken: Iterable[str] = (), max_var_len: int = 1024,
                 config: CoreConfig | None = None, max_inputs: int = 100_000) -> None:
        if isinstance(flows, Flow):
            flows = flowset(flows)
        self.durations = {prompt_path(k): v for k, v in (durations or {}).items()}
        self.default_s = default_s
        self.broken = {prompt_path(b) for b in broken}
        self.clock = VirtualClock(at)
        self.bus = Bus()
        self.events: list[Event] = []
        self.bus.on_any(self.events.append)
        self.shell = Shell(self.bus, self.clock, log_events=False, refusals=(CoreError,))
        self.core = SwitchCore(config or CoreConfig(
            trunks=4, extensions=(201, 202, 203),
            routes=(Route(Target(TargetKind.FLOW, "main"), dnis="8000"),
                    Route(Target(TargetKind.FLOW, "other"), dnis="8001"),
                    Route(Target(TargetKind.FLOW, "nosuch"), dnis="8009"))))
        self.ivr = Ivr(flows, max_var_len=max_var_len)
        self.max_inputs = max_inputs
        self.ivr_inputs = 0
        self.runaway = False
        handle = self.ivr.handle

        def guarded(now: float, item: Any) -> list[Any]:
            self.ivr_inputs += 1
            if self.ivr_inputs > self.max_inputs:
                self.runaway = True
                raise Runaway(f"the interpreter was handed more than {self.max_inputs} inputs")
            return handle(now, item)

        # The shell looks ``handle`` up on the engine at each call: the guard sees them all.
        self.ivr.handle = guarded  # type: ignore[method-assign]
        self.player = VirtualPlayer(self._duration)
        self.shell.add(self.core, takes=CORE_INPUTS)
        # Ring groups are queues with no waiting: the ACD rings them.
        self.acd = Acd(AcdSettings(groups={"sales": RingGroup("sales", RingStrategy.RINGALL,
                                                               (201, 202), 15.0)},
                                   queues={q: QueueSettings(q, music=False)
                                           for q in ("sales", "support")},
                                   ring_timeout_s=self.core.config.ring_timeout_s))
        self.shell.add(self.acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
        self.shell.add(self.ivr, takes=Ivr.TAKES, follows=Ivr.FOLLOWS)
        self.shell.add(self.player, takes=VirtualPlayer.TAKES, follows=VirtualPlayer.FOLLOWS)
        self.lines: dict[str, str] = {}

    def _duration(self, path: Path) -> float:
        if path in self.broken:
            raise OSError(f"{path}: no such file")
        return self.durations.get(path, self.default_s)

    # -------------------------------------------------------------- driving

    @property
    def now(self) -> float:
        """Virtual epoch seconds."""
        return self.clock.now()

    def call(self, caller: str = "13800000000", dnis: str = "8000", *, vip: bool = False) -> str:
        """A call arrives; returns its id (the flow starts at once)."""
        events = self.shell.submit(core_inputs.Incoming(caller, dnis, vip=vip))
        call_id = new_call_id(events)
        assert call_id is not None, events
        # (The call may be over already: a flow of instant nodes ends at once.)
        new = next(e for e in events if isinstance(e, CallNew))
        self.lines[call_id] = f"trunk/{new.trunk}"
        return call_id

    def press(self, call_id: str, keys: str, gap: float = 0.0) -> None:
        """The caller presses ``keys`` on its trunk, ``gap`` seconds apart (the first now)."""
        for i, key in enumerate(keys):
            if i and gap:
                self.run(gap)
            self.shell.submit(core_inputs.Digit(self.lines[call_id], key, self.now))

    def run(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass."""
        self.shell.advance(seconds)

    def run_to(self, t: float) -> None:
        """Run until epoch ``t``."""
        self.shell.run_until(t)

    def idle(self) -> None:
        """Run until nothing is pending."""
        self.shell.run_idle()

    def hangup(self, call_id: str) -> None:
        """The caller hangs up."""
        self.shell.submit(core_inputs.Hangup(self.lines[call_id]))

    def submit(self, item: Any) -> list[Event]:
        """Feed an input through the shell (what a CTI verb does)."""
        return self.shell.submit(item)

    # -------------------------------------------------------------- looking

    def of(self, name: str, call_id: str | None = None) -> list[Any]:
        """Events named ``name`` (``ivr.enter``), of ``call_id`` when given."""
        return [e for e in self.events if e.name == name
                and (call_id is None or getattr(e, "call_id", None) == call_id)]

    def entered(self, call_id: str) -> list[str]:
        """Nodes the call entered, in order."""
        return [e.node for e in self.of("ivr.enter", call_id)]

    def leaves(self, call_id: str) -> list[tuple[str, str | None, str, str | None]]:
        """(node, next, why, digits) of every ivr.leave of the call."""
        return [(e.node, e.next, e.why, e.digits) for e in self.of("ivr.leave", call_id)]

    def ignored(self, call_id: str) -> list[tuple[str, str]]:
        """(node, keys) of every ivr.leave of the call that reports ignored keys."""
        return [(e.node, e.ignored) for e in self.of("ivr.leave", call_id) if e.ignored]

    def exit(self, call_id: str) -> Any:
        """The call's one ivr.exit (asserts there is exactly one)."""
        exits = self.of("ivr.exit", call_id)
        assert len(exits) == 1, exits
        return exits[0]

    def errors(self, call_id: str | None = None) -> list[str]:
        """The texts of ivr.error events."""
        return [e.error for e in self.of("ivr.error", call_id)]

    def cdr(self, call_id: str) -> Cdr:
        """The CDR of an ended call."""
        ended = [e for e in self.events if isinstance(e, CallEnded) and e.call_id == call_id]
        assert len(ended) == 1, ended
        return ended[0].cdr

    def plays(self, call_id: str) -> list[tuple[float, tuple[str, ...]]]:
        """(time, prompt names) of every play to the call."""
        return [(t, tuple(str(f.relative_to("/prompts").with_suffix("")) for f in files))
                for t, cid, files in self.player.played if cid == call_id]
