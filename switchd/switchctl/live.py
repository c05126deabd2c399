"""What the console knows of the switch right now, for completion and the prompt.

Live calls, agents, queues and lines, loaded from ``CALLS``, ``AGENT.LIST`` (or
``AGENT.STATUS`` for an agent), ``QUEUE.LIST``, and kept current from the events
the session receives: a ``call.new`` adds a call id at once, a ``call.ended``
removes it, and :meth:`LiveState.on_event` says which lists are worth asking for
again. Only what the user may see is here: the server filters both the lists and the
events by role (an agent sees its own calls only).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from switchd.cti.client import CtiClient, CtiError
from switchd.cti.codec import FieldValue

__all__ = ["AgentInfo", "CallInfo", "LiveState", "refresh"]

_LINE_KEYS = ("line", "line_a", "line_b", "held_line")
#: Event families offered for ``SUB events=`` before any event name was seen.
EVENT_FAMILIES = ("*", "call.*", "agent.*", "queue.*", "recording.*", "monitor.*", "ivr.*",
                  "voicemail.*", "line.*")


def _s(value: FieldValue | None) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class CallInfo:
    """A live call as completion shows it: id, state, numbers and the lines in it."""

    call: str
    state: str = ""
    caller: str = ""
    callee: str = ""
    lines: tuple[str, ...] = ()

    def describe(self) -> str:
        """``84001234→8200 ringing ext/201``, the text shown beside the id."""
        who = f"{self.caller}→{self.callee}" if self.caller or self.callee else ""
        return " ".join(x for x in (who, self.state, ",".join(self.lines)) if x)


@dataclass(frozen=True)
class AgentInfo:
    """An ACD agent: id, name, phone line and state."""

    agent: str
    name: str = ""
    line: str = ""
    state: str = ""

    def describe(self) -> str:
        """``Alice ext/201 ready``, the text shown beside the id."""
        return " ".join(x for x in (self.name, self.line, self.state) if x)


class LiveState:
    """Calls, agents, queues, lines and event names seen; updated by replies and events."""

    def __init__(self, own_line: str | None = None) -> None:
        """Start empty; ``own_line`` is the user's phone (``ext/201``) when it has one."""
        self.own_line = own_line
        self.calls: dict[str, CallInfo] = {}
        self.agents: dict[str, AgentInfo] = {}
        self.queues: dict[str, int] = {}  # name -> callers waiting
        self.lines: set[str] = {own_line} if own_line else set()
        self.event_names: set[str] = set()

    # ------------------------------------------------------------ loading lists

    def load_calls(self, items: Iterable[Mapping[str, FieldValue]]) -> None:
        """Replace the calls with a ``CALLS`` reply's items."""
        calls: dict[str, CallInfo] = {}
        for item in items:
            lines = tuple(x for x in _s(item.get("lines")).split(",") if x)
            self.lines.update(lines)
            call = _s(item.get("call"))
            if call:
                calls[call] = CallInfo(call, _s(item.get("state")), _s(item.get("caller")),
                                       _s(item.get("callee")), lines)
        self.calls = calls

    def load_agents(self, items: Iterable[Mapping[str, FieldValue]]) -> None:
        """Replace the agents with ``AGENT.LIST`` items (or one ``AGENT.STATUS`` reply)."""
        agents: dict[str, AgentInfo] = {}
        for item in items:
            agent = _s(item.get("agent"))
            if agent:
                info = AgentInfo(agent, _s(item.get("name")), _s(item.get("line")),
                                 _s(item.get("state")))
                agents[agent] = info
                if info.line:
                    self.lines.add(info.line)
        self.agents = agents

    def load_queues(self, items: Iterable[Mapping[str, FieldValue]]) -> None:
        """Replace the queues with a ``QUEUE.LIST`` reply's items."""
        queues: dict[str, int] = {}
        for item in items:
            name = _s(item.get("queue"))
            if name:
                try:
                    queues[name] = int(item.get("waiting", 0))
                except (TypeError, ValueError):
                    queues[name] = 0
        self.queues = queues

    # ------------------------------------------------------------ events

    def on_event(self, fields: Mapping[str, FieldValue]) -> set[str]:
        """Apply one event; return the list verbs worth asking again (``{"CALLS"}``…).

        Call ids are added and removed at once so that Tab offers a new call before
        any list comes back; the lists fill in what an event does not carry.
        """
        name = _s(fields.get("event"))
        self.event_names.add(name)
        for key in _LINE_KEYS:
            if line := _s(fields.get(key)):
                self.lines.add(line)
        call = _s(fields.get("call"))
        stale: set[str] = set()
        if name.startswith(("call.", "monitor.", "offer.")) and call:
            if name == "call.ended":
                self.calls.pop(call, None)
            else:
                known = self.calls.get(call, CallInfo(call))
                caller = _s(fields.get("caller")) or known.caller
                callee = _s(fields.get("callee")) or known.callee
                state = name.removeprefix("call.") if name.startswith("call.") else known.state
                self.calls[call] = replace(known, caller=caller, callee=callee, state=state)
            stale.add("CALLS")
        elif name == "agent.state":
            agent = _s(fields.get("agent"))
            if agent:
                known_agent = self.agents.get(agent, AgentInfo(agent))
                self.agents[agent] = replace(known_agent, state=_s(fields.get("state")),
                                             line=_s(fields.get("line")) or known_agent.line)
        elif name.startswith("queue."):
            stale.add("QUEUE.LIST")
        return stale

    # ------------------------------------------------------------ what completion offers

    def own_agent(self) -> AgentInfo | None:
        """The agent at the user's own phone, when known."""
        if self.own_line is None:
            return None
        return next((a for a in self.agents.values() if a.line == self.own_line), None)

    def extensions(self) -> dict[str, str]:
        """Extension numbers seen (``201``), each with who sits there, if known."""
        out: dict[str, str] = {}
        for line in sorted(self.lines):
            kind, _, number = line.partition("/")
            if kind == "ext" and number:
                agent = next((a for a in self.agents.values() if a.line == line), None)
                out[number] = agent.describe() if agent else line
        return out

    def call_choices(self) -> dict[str, str]:
        """Live call ids, oldest first, each with its numbers and state."""
        return {c.call: c.describe() for c in self.calls.values()}

    def agent_choices(self) -> dict[str, str]:
        """Agent ids, each with name, phone and state."""
        return {a.agent: a.describe() for a in self.agents.values()}

    def queue_choices(self) -> dict[str, str]:
        """Queue names, each with the callers waiting."""
        return {q: f"{n} waiting" for q, n in self.queues.items()}

    def line_choices(self) -> dict[str, str]:
        """Line names seen (``ext/201``, ``trunk/1``)."""
        return {line: "" for line in sorted(self.lines)}

    def event_choices(self) -> dict[str, str]:
        """Event name patterns: the families, then every event name seen."""
        out = dict.fromkeys(EVENT_FAMILIES, "")
        out.update(dict.fromkeys(sorted(self.event_names - {""}), ""))
        return out


async def refresh(cti: CtiClient, live: LiveState, verbs: Iterable[str], which: Iterable[str] = (
        "CALLS", "QUEUE.LIST", "AGENT.LIST")) -> None:
    """Ask for the lists in ``which`` that ``verbs`` (the user's verbs) allows; load the replies.

    An agent, who may not use ``AGENT.LIST``, gets its own ``AGENT.STATUS``
    instead. Errors are ignored (completion is a convenience): a refused or failed
    list leaves the old values. Never raises, but CancelledError.
    """
    allowed = set(verbs)
    wanted = set(which)
    if "AGENT.LIST" in wanted and "AGENT.LIST" not in allowed and "AGENT.STATUS" in allowed:
        wanted = (wanted - {"AGENT.LIST"}) | {"AGENT.STATUS"}
    wanted &= allowed
    if not wanted:
        return
    names = sorted(wanted)
    replies = await asyncio.gather(*(cti.request(n) for n in names), return_exceptions=True)
    for name, reply in zip(names, replies, strict=True):
        if isinstance(reply, BaseException):
            if isinstance(reply, asyncio.CancelledError):
                raise reply
            continue
        with contextlib.suppress(CtiError, ValueError):
            if name == "CALLS":
                live.load_calls(reply.items or ())
            elif name == "QUEUE.LIST":
                live.load_queues(reply.items or ())
            elif name == "AGENT.LIST":
                live.load_agents(reply.items or ())
            elif name == "AGENT.STATUS":
                live.load_agents([reply.fields])
