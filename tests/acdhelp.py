"""A switch with queues for tests: the real call core and ACD under one shell in virtual time.

``Centre`` wires :class:`~switchd.core.engine.SwitchCore` and :class:`~switchd.acd.engine.Acd`
to a :class:`~switchd.shell.Shell` on a :class:`~switchd.shell.VirtualClock`, exactly as
the daemon and ``switchd sim`` do, and records every event published. Phones are
people the test drives: ``answer``, ``hangup``, ``call``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings, AgentSettings, QueueSettings, RingGroup
from switchd.bus import Bus
from switchd.core.engine import CoreError, SwitchCore, new_call_id
from switchd.core.inputs import CORE_INPUTS, Answer, Hangup, Incoming
from switchd.core.routing import CoreConfig, Route, Target, TargetKind
from switchd.events import (
    AgentState,
    CallEnded,
    CallNew,
    Event,
    LineState,
    QueueLogEntry,
)
from switchd.ivr.inputs import PlayPrompt, StopPrompt
from switchd.lines.state import LineStatus
from switchd.shell import Shell, VirtualClock
from tests.corehelp import StrictLog

__all__ = ["Centre", "agents", "queue"]

T0 = 1_764_000_000.0


def queue(name: str = "q", **kw: Any) -> QueueSettings:
    """A queue with no music (tests read events, not audio) unless ``music=True``."""
    kw.setdefault("music", False)
    return QueueSettings(name, **kw)


def agents(n: int, queues: Mapping[str, int] | Iterable[str] = ("q",), *, first: int = 1,
           login: bool = True, **kw: Any) -> tuple[AgentSettings, ...]:
    """``n`` agents a1.. at extensions 201.., each in ``queues`` (penalty 0 when a list)."""
    qs = dict(queues) if isinstance(queues, Mapping) else {q: 0 for q in queues}
    return tuple(AgentSettings(f"a{first + i}", extension=200 + first + i, queues=qs,
                               login=login, **kw) for i in range(n))


class _Player:
    """Stands in for the media plane's Playout: records what the ACD asks to play."""

    def __init__(self) -> None:
        self.played: list[PlayPrompt | StopPrompt] = []

    def handle(self, now: float, item: Any) -> list[Any]:
        self.played.append(item)
        return []

    def next_deadline(self) -> None:
        return None

    def handle_timer(self, now: float) -> list[Any]:
        return []


class Centre:
    """Core + ACD on a virtual-time shell; trunks 1..``trunks``, DNIS ``q``-name routes."""

    def __init__(self, queues: Iterable[QueueSettings], agent_list: Iterable[AgentSettings],
                 *, trunks: int = 20, extensions: Iterable[int] = range(201, 221),
                 last_agent: Mapping[str, str] | None = None, seed: int = 1,
                 vips: Iterable[str] = (), groups: Iterable[RingGroup] = ()) -> None:
        import random
        qs = {q.name: q for q in queues}
        gs = {g.name: g for g in groups}
        self.settings = AcdSettings(qs, tuple(agent_list), groups=gs)
        routes = tuple(Route(Target(TargetKind.QUEUE, name), dnis=name) for name in qs) + \
            tuple(Route(Target(TargetKind.GROUP, name), dnis=name) for name in gs)
        vip_set = frozenset(vips)
        self.core = SwitchCore(CoreConfig(trunks=trunks, extensions=tuple(extensions),
                                          routes=routes),
                               contacts=lambda number: (number in vip_set, False))
        lookup = dict(last_agent or {})
        self.acd = Acd(self.settings, last_agent=lookup.get, rng=random.Random(seed))
        self.clock = VirtualClock(T0)
        self.bus = Bus()
        self.shell = Shell(self.bus, self.clock, log_events=False)
        # An engine failing on an input (a refused Withdraw, an Offer for a gone call)
        # is logged and survived by the daemon; here it must fail the test.
        self.shell.log = StrictLog()
        self.events: list[Event] = []
        self.bus.on_any(self.events.append)
        self.shell.add(self.core, takes=CORE_INPUTS)
        self.shell.add(self.acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)
        self.player = _Player()
        self.shell.add(self.player, takes=(PlayPrompt, StopPrompt))
        self.shell.dispatch(self.acd.start(self.now), self.now)
        self._trunk_of: dict[str, str] = {}

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Run ``seconds`` of virtual time (timers fire in order)."""
        self.shell.advance(seconds)

    def at(self, t: float) -> None:
        """Run to ``T0 + t``."""
        self.shell.run_until(T0 + t)

    # --------------------------------------------------------------- people

    def submit(self, item: Any) -> list[Event]:
        return self.shell.submit(item)

    def call(self, queue_name: str = "q", caller: str = "5550001") -> str:
        """A caller rings the queue's DNIS; returns the call id."""
        events = self.submit(Incoming(caller, queue_name))
        call_id = new_call_id(events)
        assert call_id is not None
        new = next(e for e in events if isinstance(e, CallNew))
        self._trunk_of[call_id] = f"trunk/{new.trunk}"
        return call_id

    def trunk(self, call_id: str) -> str:
        return self._trunk_of[call_id]

    def answer(self, ext: int | str) -> list[Event]:
        return self.submit(Answer(f"ext/{ext}"))

    def hangup(self, line: str) -> list[Event]:
        return self.submit(Hangup(line))

    def caller_hangs_up(self, call_id: str) -> list[Event]:
        return self.submit(Hangup(self.trunk(call_id)))

    # --------------------------------------------------------------- looking

    def ringing(self) -> list[str]:
        """Extensions ringing now, sorted."""
        return sorted(n for n, ln in self.core.lines.items()
                      if n.startswith("ext/") and ln.status is LineStatus.ALERTING)

    def agent_state(self, agent_id: str) -> AgentState:
        return self.acd.agents[agent_id].state

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def queue_log(self) -> list[str]:
        """queue_log lines without the epoch: ``call|queue|agent|EVENT|data…``."""
        return [e.line().split("|", 1)[1] for e in self.of(QueueLogEntry)]

    def cdr(self, call_id: str) -> Any:
        ended = [e for e in self.of(CallEnded) if e.call_id == call_id]
        assert len(ended) == 1, f"call {call_id} ended {len(ended)} times"
        return ended[0].cdr

    def check_invariants(self) -> None:
        """The agent invariants of issue 15 item 1, checked against the core's lines."""
        calls = self.core.calls
        on: dict[str, str] = {}
        for a in self.acd.agents.values():
            ln = self.core.lines.get(a.line) if a.line else None
            if a.state is AgentState.RESERVED:
                assert a.call_id in calls, f"{a.agent_id} reserved for ended call {a.call_id}"
                call = calls[a.call_id]
                assert a.line in call.offers, f"{a.agent_id} reserved but {a.line} not offered"
            if a.state is AgentState.ON_CALL and ln is not None:
                # On a call (offered, or its own: dialling, a direct call, a ring group's
                # ring) means the phone is not idle, whatever call id it is known by.
                assert not ln.idle, f"{a.agent_id} on a call but {a.line} is idle"
            if a.state is AgentState.READY:
                assert ln is not None and ln.idle, f"{a.agent_id} ready but {a.line} busy"
            if a.call_id is not None and a.state in (AgentState.RESERVED, AgentState.ON_CALL):
                assert a.agent_id not in on
                on[a.agent_id] = a.call_id
            if a.free:
                assert a.state is AgentState.READY
        for c in self.acd.callers.values():
            if c.line_alive:
                assert c.call_id in calls, f"caller {c.call_id} queued after its call ended"
            else:   # a callback: its own call is gone, the one placed for it may be live
                assert c.state.value in ("callback", "calling_back", "retry_wait"), c.state
                if c.dial_call_id is not None:
                    assert c.dial_call_id in calls
            for aid in c.offers:
                # Reserved for the caller's call, or (a callback) for the call placed for it.
                assert self.acd.agents[aid].call_id in (c.call_id, c.dial_call_id)

    def lines_idle(self) -> bool:
        return all(ln.idle for ln in self.core.lines.values())


_ = (CoreError, LineState, replace)
