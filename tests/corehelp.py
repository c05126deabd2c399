"""Small helpers shared by the call-core tests (engine protocol: ``core.handle(now, input)``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from switchd.acd.engine import Acd
from switchd.acd.inputs import ACD_INPUTS
from switchd.acd.model import AcdSettings, RingGroup
from switchd.bus import Bus
from switchd.core.call import Call, CallState
from switchd.core.engine import SwitchCore
from switchd.core.inputs import CORE_INPUTS
from switchd.core.routing import CoreConfig
from switchd.events import BridgeChanged, CallEnded, Cdr, Event, Role
from switchd.lines.state import LineStatus
from switchd.shell import Shell, VirtualClock

__all__ = ["NEW_EVENT_NAMES", "CoreRun", "GroupedCore", "StrictLog", "call_snapshot",
           "without_new"]

#: Events the one-engine core emits that the older core did not: tests that pin an exact
#: event order written for the older core filter these out (and check them separately).
NEW_EVENT_NAMES = frozenset({"bridge.changed", "offer.withdrawn"})


def without_new(events: Iterable[Event]) -> list[Event]:
    """``events`` without ``bridge.changed`` and ``offer.withdrawn``."""
    return [e for e in events if e.name not in NEW_EVENT_NAMES]


def call_snapshot(call: Call) -> tuple[object, ...]:
    """Everything the core tracks about ``call``, as plain comparable values.

    (Offers and bridges are compared by value, not identity, so "nothing changed"
    checks see a moved deadline or a changed role.)
    """
    return (
        call.state, call.anchor, call.origin_line, tuple(call.legs),
        tuple((b.bridge_id, tuple(b.members.items()), tuple(b.whisper_to.items()))
              for b in call.bridges.values()),
        tuple((o.line, o.purpose, o.deadline, o.routed, o.mode, o.agent, o.number)
              for o in call.offers.values()),
        tuple(call.monitors.items()), call.answer_time, call.failure,
        call.cause, call.hangup_by, call.transfer_from, call.consulter, call.held_party,
        call.consulted, call.extension, call.callee, call.route_target, call.ivr_path,
        call.ivr_vars,
    )


class StrictLog:
    """A logger for a test's shell: the shell logs an engine failing on an input (a
    refused Withdraw, an Offer for a gone call) and goes on, as the daemon must; in a
    test that must fail instead."""

    def exception(self, event: str, **kw: Any) -> None:
        raise AssertionError(f"{event}: {kw}")

    error = warning = exception

    def info(self, event: str, **kw: Any) -> None:
        pass

    debug = info


class GroupedCore:
    """The call core with the ACD ringing its ring groups, driven like a bare core.

    Ring groups are queues with no waiting that the ACD rings (``call.routed
    target=group:NAME``, then ``Offer``/``Unrouted``). Core tests that route to groups
    drive the pair through one ``handle(now, input)``: the daemon's own shell
    dispatches it (on a virtual clock set to ``now``), and what it published is
    returned, without the ACD's own events (``queue.*``, ``agent.state``,
    ``queue.log``): these tests read the call core's. Everything else (``lines``,
    ``calls``, ``call_of_line`` …) is the core's.
    """

    def __init__(self, config: CoreConfig, groups: Mapping[str, RingGroup] | None = None,
                 **kw: Any) -> None:
        self.core = SwitchCore(config, **kw)
        self.acd = Acd(AcdSettings(groups=self._on_board(groups),
                                   ring_timeout_s=config.ring_timeout_s))
        self._clock = VirtualClock(0.0)
        bus = Bus()
        self._published: list[Event] = []
        bus.on_any(self._keep)
        self._shell = Shell(bus, self._clock, log_events=False)
        self._shell.log = StrictLog()
        self._shell.add(self.core, takes=CORE_INPUTS)
        self._shell.add(self.acd, takes=ACD_INPUTS, follows=Acd.FOLLOWS)

    def _on_board(self, groups: Mapping[str, RingGroup] | None) -> dict[str, RingGroup]:
        # The config refuses a member with no line on the board; tests that list one
        # (to show it is skipped) get the group the config would have accepted.
        return {name: replace(g, members=tuple(m for m in g.members
                                               if f"ext/{m}" in self.core.lines))
                for name, g in (groups or {}).items()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)

    def reconfigure(self, config: CoreConfig,
                    groups: Mapping[str, RingGroup] | None = None) -> None:
        """New core settings and (when given) new ring groups."""
        self.core.reconfigure(config)
        if groups is not None:
            self.acd.reconfigure(AcdSettings(groups=self._on_board(groups),
                                             ring_timeout_s=config.ring_timeout_s))

    def handle(self, now: float, item: Any) -> list[Event]:
        """Feed a core input at ``now``; returns the core's events, the ACD's reactions
        included. Raises what the core raises (CoreError) before anything changed."""
        self._clock.t = now
        self._shell.submit(item)
        return self._take()

    def next_deadline(self) -> float | None:
        return self._shell.next_deadline()

    def handle_timer(self, now: float) -> list[Event]:
        self._clock.t = now
        self._shell.fire_due()
        return self._take()

    def _keep(self, ev: Event) -> None:
        if not ev.name.startswith(("queue.", "agent.")):
            self._published.append(ev)

    def _take(self) -> list[Event]:
        out, self._published = self._published, []
        return out


class CoreRun:
    """A core driven by hand at ``now``: every event kept in order, the bridges as the
    media plane would hold them (from ``bridge.changed``), every CDR."""

    def __init__(self, core: SwitchCore | GroupedCore, now: float) -> None:
        self.core = core
        self.now = now
        self.events: list[Event] = []
        self.bridges: dict[str, dict[str, Role]] = {}
        self.cdrs: list[Cdr] = []

    def do(self, item: object) -> list[Event]:
        """Feed one input now; returns its events."""
        return self._take(self.core.handle(self.now, item))

    def _take(self, events: list[Event]) -> list[Event]:
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, BridgeChanged):
                if ev.members:
                    self.bridges[ev.bridge] = {m.line: m.role for m in ev.members}
                else:
                    self.bridges.pop(ev.bridge, None)
            elif isinstance(ev, CallEnded):
                self.cdrs.append(ev.cdr)
        return events

    def advance(self, seconds: float) -> list[Event]:
        """Let ``seconds`` pass, firing timers on their deadlines; returns what they caused."""
        out: list[Event] = []
        end = self.now + seconds
        while (d := self.core.next_deadline()) is not None and d <= end:
            self.now = d
            out += self._take(self.core.handle_timer(self.now))
        self.now = end
        return out

    def status(self, line: str) -> LineStatus:
        return self.core.lines[line].status

    def tone(self, line: str) -> str | None:
        return self.core.lines[line].tone

    def state(self, call_id: str) -> CallState:
        return self.core.calls[call_id].state

    def assert_clean(self) -> None:
        """Nothing left behind: every line idle, no call, no bridge, no timer."""
        assert {n: ln.status for n, ln in self.core.lines.items()
                if ln.status is not LineStatus.IDLE} == {}
        assert all(ln.call_id is None and ln.tone is None for ln in self.core.lines.values())
        assert self.core.calls == {}
        assert self.bridges == {}
        assert self.core.next_deadline() is None
