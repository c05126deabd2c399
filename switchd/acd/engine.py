"""The ACD: queues of callers, agents, and who is offered to whom — sans-IO.

:class:`Acd` implements the engine protocol (``switchd.engine``). It follows the
call core's events and returns core inputs, prompts and its own events:

* a caller joins on ``call.routed target=queue:NAME`` (an inbound route, an IVR
  ``queue`` node, an overflow, an agent's transfer into the queue) and leaves with
  exactly one ``queue.leave`` (answered, abandon, timeout, full, joinempty, empty,
  key, system);
* an agent is offered with the core's ``Offer`` (its phone rings; the caller keeps
  its music); the core reports the ring (``call.ringing``), the answer
  (``call.answered``), the end of an unanswered offer (``offer.withdrawn``: timeout,
  declined, caller gone, taken elsewhere) or its refusal (``line.error`` offer), and
  the phone going idle again (``line.state``). The agent's state follows those facts
  only, so it can never be reserved for a call that has ended, nor left on a call
  its phone is no longer in;
* statistics are exact counters (``switchd.acd.stats``); every step is also a
  ``queue.log`` entry in Asterisk's queue_log format.

Selection never scans all agents: free agents sit in per-(queue, penalty) pools
ordered for the strategy (``switchd.acd.pools``); a freed agent looks only at the
heads of its own queues.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from itertools import filterfalse, islice
from typing import Any

from switchd.acd.agents import Agent, AgentCounts
from switchd.acd.inputs import Login, Logout, NotReady, Ready
from switchd.acd.model import (
    AcdSettings,
    AgentInput,
    QueueSettings,
    RingGroup,
    RingStrategy,
    Strategy,
)
from switchd.acd.pools import Pool, make_pool
from switchd.acd.stats import QueueStats
from switchd.core.inputs import (
    Annotate,
    HoldMusic,
    Offer,
    Originate,
    Redirect,
    Release,
    Route,
    Unrouted,
    Withdraw,
)
from switchd.core.routing import NUMBER_RE, Target, TargetKind
from switchd.engine import TimerHeap
from switchd.events import (
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallConferenced,
    CallEnded,
    CallHeld,
    CallNew,
    CallRetrieved,
    CallRinging,
    CallRouted,
    CallRouteFailed,
    CallTransferred,
    DtmfReceived,
    Event,
    HangupCause,
    LineError,
    LineState,
    OfferEnd,
    OfferWithdrawn,
    QueueAbandon,
    QueueCallback,
    QueueConnected,
    QueueExit,
    QueueJoin,
    QueueLeave,
    QueueLogEntry,
    QueueOffered,
    QueueOverflow,
    RouteFail,
    TransferKind,
)
from switchd.ivr.inputs import PlayPrompt, StopPrompt
from switchd.lines.state import LineStatus

__all__ = ["AcdError", "AgentFigures", "AgentStatus", "Acd", "Caller", "QueueStatus"]

_S = AgentState
_I = AgentInput
_QUEUE_PREFIX = "queue:"
_GROUP_PREFIX = "group:"
#: Offer endings that count against the agent (RONA): it let the phone ring out or refused.
_MISSED = (OfferEnd.TIMEOUT, OfferEnd.DECLINED)


class CallerState(StrEnum):
    """Where a caller in a queue is."""

    #: Waiting on the line (music, announcements); offered when its turn comes.
    WAITING = "waiting"
    #: Pressed the callback key: confirming (``1``) or entering a number (``…#``).
    CONFIRMING = "confirming"
    #: Hung up with a callback asked for; keeps its place until its turn.
    CALLBACK = "callback"
    #: Its turn came: an agent's phone rings / the number is being dialled.
    CALLING_BACK = "calling_back"
    #: The last attempt failed; the next is due after ``retry_after_s``.
    RETRY_WAIT = "retry_wait"
    #: A phone answered (or picked the call up): its other offers are being withdrawn
    #: and ``call.answered`` follows at this instant. Never offered again.
    CONNECTING = "connecting"


class CallerInput(Enum):
    """What moves a caller (the keys of :data:`CALLER_TRANSITIONS`)."""

    CALLBACK_KEY = "callback_key"
    CONFIRM = "confirm"
    CANCEL = "cancel"
    DIAL = "dial"
    AGENT_MISSED = "agent_missed"
    ATTEMPT_FAILED = "attempt_failed"
    RETRY = "retry"
    TAKEN = "taken"


_C = CallerState
_CIn = CallerInput
#: (state, input) -> next state; anything else is refused. Leaving the queue (answered,
#: abandon, timeout, …) is possible from every state and is not a move in this table.
CALLER_TRANSITIONS: dict[tuple[CallerState, CallerInput], CallerState] = {
    (_C.WAITING, _CIn.CALLBACK_KEY): _C.CONFIRMING,
    (_C.CONFIRMING, _CIn.CONFIRM): _C.CALLBACK,
    (_C.CONFIRMING, _CIn.CANCEL): _C.WAITING,
    (_C.CALLBACK, _CIn.DIAL): _C.CALLING_BACK,
    (_C.CALLING_BACK, _CIn.AGENT_MISSED): _C.CALLBACK,
    (_C.CALLING_BACK, _CIn.ATTEMPT_FAILED): _C.RETRY_WAIT,
    (_C.RETRY_WAIT, _CIn.RETRY): _C.CALLBACK,
    (_C.WAITING, _CIn.TAKEN): _C.CONNECTING,
    (_C.CONFIRMING, _CIn.TAKEN): _C.CONNECTING,
}
#: Callers no agent may be offered now.
_NOT_OFFERED = (_C.CALLING_BACK, _C.RETRY_WAIT, _C.CONNECTING)
#: Callers whose phone line is gone: the queue rings an agent first, then dials them.
_CALLED_BACK = (_C.CALLBACK, _C.CALLING_BACK, _C.RETRY_WAIT)


class AcdError(Exception):
    """A request the ACD cannot serve; nothing changed. ``code``: a CTI error slug."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(slots=True, eq=False)
class Caller:
    """One caller waiting in a queue. Times are epoch seconds.

    ``offers``: agents whose phones ring for it now (several for ringall). ``sticky``:
    the agent it waits for until ``sticky_until`` (its last call's agent).
    """

    call_id: str
    queue: str
    line: str
    number: str
    priority: int
    joined: float
    orig_position: int
    offers: dict[str, Agent] = field(default_factory=dict)
    sticky: str | None = None
    sticky_until: float = 0.0
    music: bool = False
    state: CallerState = CallerState.WAITING
    #: When it first joined this queue (a caller back from an unanswered overflow
    #: extension keeps its place by it); ``joined`` is this visit's start.
    first_joined: float = 0.0
    #: Callback: the digits entered so far, the number to call, attempts made, the
    #: call placed for the current attempt, and whether the caller's own call is live.
    digits: str = ""
    callback_number: str | None = None
    attempts: int = 0
    dial_call_id: str | None = None
    line_alive: bool = True
    #: A ring group's caller: the phones ringing for it, the next member a hunt tries,
    #: its ring time per offer, and how the last offer ended.
    ringing: dict[str, None] = field(default_factory=dict)
    hunt_next: int = 0
    ring_timeout_s: float = 0.0
    last_end: OfferEnd | None = None

    def move(self, what: CallerInput) -> None:
        """Take ``what`` through :data:`CALLER_TRANSITIONS`. AssertionError if refused
        (every caller of this checks the state first)."""
        nxt = CALLER_TRANSITIONS.get((self.state, what))
        assert nxt is not None, f"caller {self.call_id}: {what.value} in {self.state.value}"
        self.state = nxt


@dataclass(slots=True, eq=False)
class _Queue:
    settings: QueueSettings
    #: agent id -> penalty
    members: dict[str, int] = field(default_factory=dict)
    pools: dict[int, Pool] = field(default_factory=dict)
    levels: list[int] = field(default_factory=list)
    #: priority -> callers in join order; ``prios`` highest first
    waiting: dict[int, dict[str, Caller]] = field(default_factory=dict)
    prios: list[int] = field(default_factory=list)
    count: int = 0
    logged_in: int = 0
    #: A ring group (a queue with no waiting): its member phones, in hunt order.
    phones: tuple[str, ...] = ()
    #: The same phones as a set (is any idle?) and by position (where a hunt goes on),
    #: so a hunt through a big group's busy phones runs in C, not a Python loop.
    phone_set: frozenset[str] = frozenset()
    phone_index: dict[str, int] = field(default_factory=dict)

    def set_phones(self, phones: tuple[str, ...]) -> None:
        """Make ``phones`` (hunt order) the group's members."""
        self.phones = phones
        self.phone_set = frozenset(phones)
        self.phone_index = {line: i for i, line in enumerate(phones)}

    def callers(self) -> Iterable[Caller]:
        """Waiting callers in queue order (priority, then join order)."""
        for p in self.prios:
            yield from self.waiting[p].values()

    def position(self, caller: Caller) -> int:
        """1-based position of ``caller`` (O(callers ahead))."""
        n = 0
        for p in self.prios:
            if p > caller.priority:
                n += len(self.waiting[p])
            elif p == caller.priority:
                for c in self.waiting[p].values():
                    n += 1
                    if c is caller:
                        return n
        return n + 1


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """A snapshot of one queue for ``QUEUE.STATUS``: callers in order as (call id,
    caller number, position, priority, waited s, ringing agent ids, caller state:
    waiting, confirming, callback, calling_back, retry_wait, connecting), agents as
    (agent id, penalty, state), since-start and this-interval statistics."""

    name: str
    strategy: str
    callers: tuple[tuple[str, str, int, int, float, tuple[str, ...], str], ...]
    agents: tuple[tuple[str, int, str], ...]
    total: QueueStats
    interval: QueueStats
    interval_start: float
    longest_wait_s: float
    #: The last completed interval: its figures and (start, end), None before one ended.
    previous: QueueStats | None = None
    previous_span: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A snapshot of one agent: its figures since start (``total``) and in the current
    statistics interval (``interval``), each with seconds per state up to now."""

    agent_id: str
    name: str | None
    line: str | None
    seat: str
    state: str
    reason: str
    since: float
    call_id: str | None
    queues: tuple[tuple[str, int], ...]
    total: AgentFigures
    interval: AgentFigures


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """An agent's figures over one period (see :class:`AgentStatus`)."""

    offered: int
    answered: int
    missed: int
    talk_s: float
    wrapup_s: float
    time_in: tuple[tuple[str, float], ...]

    @property
    def occupancy(self) -> float | None:
        """(on_call + wrap_up) / logged-in time in the period, or None before any."""
        return _occupancy(self.time_in)


def _occupancy(time_in: tuple[tuple[str, float], ...]) -> float | None:
    t = dict(time_in)
    logged = sum(v for k, v in t.items() if k != _S.LOGGED_OUT.value)
    busy = t.get(_S.ON_CALL.value, 0.0) + t.get(_S.WRAP_UP.value, 0.0)
    return busy / logged if logged > 0 else None


class Acd:
    """Queues and agents for one switch (see the module docstring)."""

    FOLLOWS: tuple[type, ...] = (CallRouted, CallRinging, CallAnswered, OfferWithdrawn, CallEnded,
                                 LineState, LineError, DtmfReceived, CallTransferred,
                                 CallRouteFailed, CallNew, CallHeld, CallRetrieved,
                                 CallConferenced)
    TAKES: tuple[type, ...] = (Login, Logout, Ready, NotReady)

    def __init__(self, settings: AcdSettings, *,
                 last_agent: Callable[[str], str | None] | None = None,
                 rng: random.Random | None = None) -> None:
        """``last_agent(number)``: the agent id of the caller's last call (contacts), or None."""
        self.settings = settings
        self._last_agent_lookup = last_agent
        self.rng = rng if rng is not None else random.Random()
        self.agents: dict[str, Agent] = {}
        self._by_line: dict[str, Agent] = {}
        self.queues: dict[str, _Queue] = {}
        self.callers: dict[str, Caller] = {}
        #: Agent extensions that are not idle right now (from line.state).
        self._busy_lines: set[str] = set()
        #: Agents ``login: true`` logged in already (a reload logs in only new ones).
        self._auto_logged: set[str] = set()
        #: switchd is stopping: nobody is offered any more.
        self.stopping = False
        #: agent id -> callers waiting for exactly that agent (sticky), by call id
        self._sticky: dict[str, dict[str, Caller]] = {}
        #: caller number -> agent id of its last answered queue call (this run)
        self._last_agent: dict[str, str] = {}
        #: call id -> (who, line, queue, answered at, joined at, orig position) of answered
        #: queue calls whose completion is not logged yet; ``who`` is the agent id, or the
        #: phone's line for a ring group (the queue_log names the phone, as at CONNECT)
        self._talking: dict[str, list[tuple[str, str, str, float, float, int]]] = {}
        #: calls sent to an extension on overflow: call id -> (the queue they left, when
        #: they had joined it); those back from it unanswered, until they rejoin
        self._sent_to_extension: dict[str, tuple[str, float]] = {}
        self._returning: dict[str, tuple[str, float]] = {}
        #: call id -> (instant, queues that refused it then): a caller refused round a
        #: loop of overflows at one instant is released, not sent round again
        self._refused: dict[str, tuple[float, set[str]]] = {}
        #: callbacks: agent line -> the caller an Originate was just asked for; the call
        #: placed (its call.new names the extension) -> that caller
        self._originating: dict[str, Caller] = {}
        self._dialling: dict[str, Caller] = {}
        #: calls placed for callbacks that connected (their completion is logged reversed)
        self._completed_callbacks: set[str] = set()
        #: (call id, agent line) -> (since, agent, queue) while an agent holds its peer:
        #: the queue_log's HOLD/UNHOLD lines (an agent's hold time in reports)
        self._holds: dict[tuple[str, str], tuple[float, Agent, str]] = {}
        self.stats: dict[str, QueueStats] = {}
        self.interval: dict[str, QueueStats] = {}
        self.interval_start = 0.0
        #: Completed intervals, oldest first: (start, end, figures per queue); a day's.
        self.history: deque[tuple[float, float, dict[str, QueueStats]]] = deque(maxlen=96)
        self._timers: TimerHeap[tuple[str, str]] = TimerHeap()
        self._out: list[Any] = []
        self._handlers: dict[type, Callable[[float, Any], None]] = {
            CallRouted: self._on_routed, CallRinging: self._on_ringing,
            CallAnswered: self._on_answered, OfferWithdrawn: self._on_withdrawn,
            CallEnded: self._on_ended, LineState: self._on_line, LineError: self._on_line_error,
            DtmfReceived: self._on_dtmf, CallTransferred: self._on_transferred,
            CallRouteFailed: self._on_route_failed, CallNew: self._on_new,
            CallHeld: self._on_held, CallRetrieved: self._on_retrieved,
            CallConferenced: self._on_conferenced,
            Login: self._login, Logout: self._logout, Ready: self._ready,
            NotReady: self._not_ready,
        }
        self._timer_handlers: dict[str, Callable[[float, str], None]] = {
            "maxwait": self._on_max_wait, "rule": self._on_rule, "sticky": self._on_sticky_end,
            "wrapup": self._on_wrapup_end, "position": self._on_position,
            "periodic": self._on_periodic, "interval": self._on_interval,
            "confirm": self._on_confirm_timeout, "goodbye": self._on_goodbye,
            "retry": self._on_retry,
        }
        self._build(settings)

    # ---------------------------------------------------------------- set-up

    def _build(self, settings: AcdSettings) -> None:
        for group in settings.groups.values():
            self._build_group(group, settings.ring_timeout_s)
        for name, qs in settings.queues.items():
            q = self.queues.get(name)
            if q is None:
                self.queues[name] = _Queue(qs)
                self.stats[name] = QueueStats()
                self.interval[name] = QueueStats()
            elif q.settings.strategy is not qs.strategy:
                q.settings = qs
                q.pools = {}
                q.levels = []
                for aid in q.members:
                    a = self.agents.get(aid)
                    if a is not None and a.free:
                        self._pool(q, q.members[aid], name).add(a)
            else:
                q.settings = qs
        for a_set in settings.agents:
            a = self.agents.get(a_set.agent_id)
            if a is None:
                a = Agent(a_set.agent_id, order=len(self.agents))
                self.agents[a.agent_id] = a
            a.name = a_set.name
            a.seat = a_set.seat
            a.wrapup_s = a_set.wrapup_s
            a.weight = a_set.weight
            if a.state is _S.LOGGED_OUT:
                a.queues = dict(a_set.queues)
                self._set_line(a, None if a_set.extension is None else f"ext/{a_set.extension}")

    def _build_group(self, group: RingGroup, ring_timeout_s: float) -> None:
        """A ring group as a queue named ``group:NAME`` whose members are phones."""
        key = _GROUP_PREFIX + group.name
        strategy = Strategy.RINGALL if group.strategy is RingStrategy.RINGALL else Strategy.LINEAR
        qs = QueueSettings(key, strategy=strategy,
                           ring_timeout_s=group.ring_timeout_s or ring_timeout_s,
                           join_empty=False, rona_after=0, music=False)
        phones = tuple(f"ext/{m}" for m in group.members)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = _Queue(qs)
            self.stats[key] = QueueStats()
            self.interval[key] = QueueStats()
        else:
            q.settings = qs
        q.set_phones(phones)

    def stop(self) -> None:
        """switchd is stopping: offer nobody any more (every call is about to end)."""
        self.stopping = True

    def reconfigure(self, settings: AcdSettings) -> None:
        """Take new queue settings and agents: the next offers and joins use them;
        waiting callers keep their place, logged-in agents their queues until they log
        out. Queues are only added (a removed queue may hold callers)."""
        self.settings = settings
        self._build(settings)

    def login_configured(self, now: float) -> list[Any]:
        """Log in (ready) the configured agents with ``login`` that never were logged in
        and have a phone: at start, and those a reload added. Returns what follows."""
        for a_set in self.settings.agents:
            a = self.agents[a_set.agent_id]
            if a_set.login and a.agent_id not in self._auto_logged and a.line is not None:
                self._auto_logged.add(a.agent_id)
                if a.state is _S.LOGGED_OUT:
                    a.since = a.counted_to = now
                    self._do_login(now, a, None, True)
        return self._drain()

    def start(self, now: float) -> list[Any]:
        """Log in (ready) the agents configured with ``login``; arm the stats interval."""
        self.interval_start = now
        every = self.settings.stats_interval_s
        if every > 0:
            # Intervals on the clock (:00, :15, :30, :45 for 900 s), as reports expect;
            # the first one is what is left of the interval switchd started in.
            self._timers.arm(("interval", ""), (math.floor(now / every) + 1) * every, None)
        for a in self.agents.values():
            a.since = a.counted_to = now
        return self.login_configured(now)

    # ------------------------------------------------------- engine protocol

    def handle(self, now: float, item: Any) -> list[Any]:
        """Take a followed core event or an agent request at ``now``; return what follows.

        Raises AcdError for a request it cannot serve (before anything changed),
        TypeError for anything else.
        """
        handler = self._handlers.get(type(item))
        if handler is None:
            raise TypeError(f"the ACD takes Login/Logout/Ready/NotReady and follows call "
                            f"events, not {item!r}")
        try:
            handler(now, item)
        except AcdError:
            self._out.clear()
            raise
        return self._drain()

    def next_deadline(self) -> float | None:
        """Epoch seconds of the earliest queue timer (max wait, rules, wrap-up, …), or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        """Fire every queue timer due at ``now``."""
        while (due := self._timers.pop_due(now)) is not None:
            (kind, key), _ = due
            self._timer_handlers[kind](now, key)
        return self._drain()

    # ---------------------------------------------------------------- queries

    def queue_names(self) -> list[str]:
        """Every queue, in config order, then every ring group (``group:NAME``)."""
        return [n for n in self.queues if not self.queues[n].phones] + \
            [n for n in self.queues if self.queues[n].phones]

    def queue_status(self, name: str, now: float) -> QueueStatus:
        """A snapshot of queue ``name`` at ``now``. Raises AcdError(not_found)."""
        q = self.queues.get(name)
        if q is None:
            raise AcdError("not_found", f"no queue {name!r}; queues: "
                           f"{', '.join(self.queues) or '(none)'}")
        callers = []
        for i, c in enumerate(q.callers(), 1):
            callers.append((c.call_id, c.number, i, c.priority, round(now - c.joined, 3),
                            tuple(c.offers) or tuple(c.ringing), c.state.value))
        agents = tuple((aid, pen, self.agents[aid].state.value)
                       for aid, pen in q.members.items())
        longest = max((now - c.joined for c in q.callers()), default=0.0)
        prev = self.history[-1] if self.history else None
        return QueueStatus(name, q.settings.strategy.value, tuple(callers), agents,
                           self.stats[name], self.interval[name], self.interval_start,
                           round(longest, 3),
                           prev[2].get(name) if prev is not None else None,
                           (prev[0], prev[1]) if prev is not None else None)

    def agent_status(self, now: float) -> list[AgentStatus]:
        """Every agent, in config order, with times per state up to ``now``."""
        out = []
        for a in self.agents.values():
            out.append(AgentStatus(
                a.agent_id, a.name, a.line, a.seat.value, a.state.value, a.reason, a.since,
                a.call_id, tuple(a.queues.items()), _figures(a.total, a, now),
                _figures(a.interval, a, now)))
        return out

    # ------------------------------------------------------------- agent requests

    def _agent(self, agent_id: str) -> Agent:
        a = self.agents.get(agent_id)
        if a is None:
            raise AcdError("not_found", f"no agent {agent_id!r}")
        return a

    def _login(self, now: float, inp: Login) -> None:
        a = self.agents.get(inp.agent)
        if a is None:
            a = Agent(inp.agent, order=len(self.agents), since=now, counted_to=now)
            self.agents[a.agent_id] = a
        if a.state is not _S.LOGGED_OUT:
            raise AcdError("wrong_state", f"agent {a.agent_id} is already logged in "
                           f"({a.state.value}) at {a.line}")
        line = f"ext/{inp.extension}" if inp.extension is not None else a.line
        if line is None:
            raise AcdError("bad_arg", f"agent {a.agent_id} has no extension; log in with one")
        other = self._by_line.get(line)
        if other is not None and other is not a and other.state is not _S.LOGGED_OUT:
            raise AcdError("wrong_state", f"{line} is taken by agent {other.agent_id}")
        queues = dict(inp.queues) if inp.queues is not None else dict(a.queues)
        # A ring group rings phones, not agents: nobody logs into one.
        real = [q for q in self.queues if not q.startswith(_GROUP_PREFIX)]
        unknown = [q for q in queues if q not in real]
        if unknown:
            raise AcdError("not_found", f"no queue {', '.join(unknown)}; queues: "
                           f"{', '.join(real) or '(none)'}")
        self._set_line(a, line)
        self._do_login(now, a, queues, inp.ready)

    def _do_login(self, now: float, a: Agent, queues: dict[str, int] | None, ready: bool) -> None:
        if queues is not None:
            a.queues = queues
        a.last_call_end = now
        a.no_answer = 0
        for qname, pen in a.queues.items():
            q = self.queues.get(qname)
            if q is None:
                continue
            q.members[a.agent_id] = pen
            q.logged_in += 1
            self._log(now, "NONE", qname, a.agent_id, "ADDMEMBER")
        self._move(now, a, _I.LOGIN_READY if ready else _I.LOGIN_NOT_READY, "login")
        if ready:
            self._became_ready(now, a)
        else:
            for qname in a.queues:
                if qname in self.queues:
                    self._log(now, "NONE", qname, a.agent_id, "PAUSE", "login")

    def _logout(self, now: float, inp: Logout) -> None:
        a = self._agent(inp.agent)
        if a.next_state(_I.LOGOUT) is None:
            raise AcdError("wrong_state", f"agent {a.agent_id} is {a.state.value}; log out "
                           "after the call")
        self._refuse_if_queue_call(a, "log out")
        self._refuse_if_callback_rings(a)
        left = self._drop_offer(a)
        if a.state is _S.WRAP_UP:
            self._timers.cancel(("wrapup", a.agent_id))
            self._wrapup_done(now, a)
        a.call_id = None
        self._move(now, a, _I.LOGOUT, "logout")
        self._forget_sticky(now, a.agent_id)
        if left is not None:
            self._serve_caller(now, left)
        emptied = []
        for qname in a.queues:
            q = self.queues.get(qname)
            if q is None or a.agent_id not in q.members:
                continue
            del q.members[a.agent_id]
            q.logged_in -= 1
            self._log(now, "NONE", qname, a.agent_id, "REMOVEMEMBER")
            if q.logged_in == 0 and q.settings.leave_empty:
                emptied.append(q)
        for q in emptied:
            # Callbacks stay: their callers hung up already and keep their place.
            for c in [c for c in q.callers() if c.line_alive]:
                self._leave_to_overflow(now, c, QueueExit.EMPTY)

    def _ready(self, now: float, inp: Ready) -> None:
        a = self._agent(inp.agent)
        if a.next_state(_I.READY) is None:
            raise AcdError("wrong_state", f"agent {a.agent_id} is {a.state.value}; only a "
                           "not-ready agent or one in wrap-up becomes ready")
        was = a.state
        self._timers.cancel(("wrapup", a.agent_id))
        if was is _S.WRAP_UP:
            self._wrapup_done(now, a)
        self._move(now, a, _I.READY, "ready")
        if was is _S.NOT_READY:
            for qname in a.queues:
                if qname in self.queues:
                    self._log(now, "NONE", qname, a.agent_id, "UNPAUSE", "")
        self._became_ready(now, a)

    def _not_ready(self, now: float, inp: NotReady) -> None:
        a = self._agent(inp.agent)
        if a.next_state(_I.NOT_READY) is None:
            raise AcdError("wrong_state", f"agent {a.agent_id} is {a.state.value}; not "
                           "ready is taken from ready, wrap-up, a ringing offer or a call of "
                           "its own")
        self._refuse_if_queue_call(a, "go not ready")
        self._refuse_if_callback_rings(a)
        self._pause(now, a, _I.NOT_READY, inp.reason or "break")

    def _pause(self, now: float, a: Agent, what: AgentInput, reason: str) -> None:
        left = self._drop_offer(a)
        if a.state is _S.ON_CALL:
            a.call_id = None  # a call of its own goes on; the ACD no longer follows it
        if a.state is _S.WRAP_UP:
            self._timers.cancel(("wrapup", a.agent_id))
            self._wrapup_done(now, a)
        self._move(now, a, what, reason)
        for qname in a.queues:
            if qname in self.queues:
                self._log(now, "NONE", qname, a.agent_id, "PAUSE", reason)
        if left is not None:
            self._serve_caller(now, left)

    # ------------------------------------------------------------- core events

    def _on_routed(self, now: float, ev: CallRouted) -> None:
        held = self.callers.get(ev.call_id)
        if held is not None:
            if ev.target == _QUEUE_PREFIX + held.queue or ev.target == held.queue:
                return
            # Redirected elsewhere while waiting (a supervisor, a flow, a transfer): it is
            # out of this queue for good, or it would be offered to agents from there.
            self._remove(now, held, QueueExit.SYSTEM, None)
        if ev.target.startswith(_GROUP_PREFIX):
            self._join_group(now, ev)
            return
        if not ev.target.startswith(_QUEUE_PREFIX):
            return
        name = ev.target[len(_QUEUE_PREFIX):]
        q = self.queues.get(name)
        if q is None:
            # The config named it when the call was routed; a reload removed it since.
            self._emit(Release(ev.call_id, HangupCause.UNALLOCATED_NUMBER))
            return
        qs = q.settings
        priority = max(ev.priority, qs.vip_priority if ev.vip else 0)
        st = self._figures(name)
        for s in st:
            s.offered += 1
        self._log(now, ev.call_id, name, "NONE", "ENTERQUEUE", "", ev.caller)
        if qs.max_len is not None and q.count >= qs.max_len:
            self._refuse(now, ev, q, QueueExit.FULL)
            return
        if not qs.join_empty and q.logged_in == 0:
            self._refuse(now, ev, q, QueueExit.JOINEMPTY)
            return
        self._refused.pop(ev.call_id, None)
        c = Caller(ev.call_id, name, ev.line, ev.caller, priority, now, 0)
        self.callers[c.call_id] = c
        bucket = q.waiting.get(priority)
        if bucket is None:
            bucket = q.waiting[priority] = {}
            q.prios.append(priority)
            q.prios.sort(reverse=True)
        back = self._returning.pop(c.call_id, None)
        if back is not None and back[0] == name:
            # Back from an overflow extension nobody answered: its place by its first
            # join time (ahead of those who came later), and no further overflow by time.
            c.first_joined = back[1]
            ahead = {k: v for k, v in bucket.items() if v.first_joined <= back[1]}
            rest = {k: v for k, v in bucket.items() if k not in ahead}
            bucket.clear()
            bucket.update(ahead)
            bucket[c.call_id] = c
            bucket.update(rest)
        else:
            back = None
            c.first_joined = now
            bucket[c.call_id] = c
        q.count += 1
        c.orig_position = (q.position(c) if len(q.prios) > 1 or priority or back is not None
                           else q.count)
        for s in st:
            s.joined += 1
        self._emit(QueueJoin(c.call_id, now, name, c.orig_position, priority, ev.caller))
        self._emit(Annotate(c.call_id, queue=name, waiting=True))
        if qs.music:
            c.music = True
            self._emit(HoldMusic(c.call_id, True))
        if qs.greeting:
            self._emit(PlayPrompt(c.call_id, c.line, 0, qs.greeting, barge_in=False))
        if qs.max_wait_s is not None and back is None:
            self._timers.arm(("maxwait", c.call_id), now + qs.max_wait_s, None)
        nxt = qs.next_rule_after(0.0)
        if nxt is not None:
            self._timers.arm(("rule", c.call_id), now + nxt, None)
        if qs.announce_position_every_s and qs.position_files:
            self._timers.arm(("position", c.call_id), now + qs.announce_position_every_s, None)
        if qs.periodic and qs.periodic_every_s:
            self._timers.arm(("periodic", c.call_id), now + qs.periodic_every_s, None)
        if qs.sticky_wait_s > 0:
            last = self._last_agent.get(ev.caller)
            if last is None and self._last_agent_lookup is not None:
                last = self._last_agent_lookup(ev.caller)
            a = self.agents.get(last) if last is not None else None
            if a is not None and a.state is not _S.LOGGED_OUT and a.agent_id in q.members:
                c.sticky = a.agent_id
                c.sticky_until = now + qs.sticky_wait_s
                self._sticky.setdefault(a.agent_id, {})[c.call_id] = c
                self._timers.arm(("sticky", c.call_id), c.sticky_until, None)
        self._serve_caller(now, c)

    def _refuse(self, now: float, ev: CallRouted, q: _Queue, why: QueueExit) -> None:
        name = q.settings.name
        for s in self._figures(name):
            if why is QueueExit.FULL:
                s.refused_full += 1
            else:
                s.refused_joinempty += 1
        self._log(now, ev.call_id, name, "NONE", why.value.upper())
        self._emit(QueueLeave(ev.call_id, now, name, why, 0.0, 0))
        at, refused = self._refused.get(ev.call_id, (now, set()))
        if at != now:
            refused = set()
        if name in refused:
            # Refused round a loop of overflows at this very instant: stop the round.
            self._refused.pop(ev.call_id, None)
            self._send_away(now, ev.call_id, q, why, 0.0, None)
            return
        refused.add(name)
        self._refused[ev.call_id] = (now, refused)
        self._send_away(now, ev.call_id, q, why, 0.0, q.settings.overflow)

    def _on_ringing(self, now: float, ev: CallRinging) -> None:
        a = self._by_line.get(ev.line)
        if a is not None and a.state is _S.RESERVED and a.call_id == ev.call_id:
            a.offered_at = now

    def _on_answered(self, now: float, ev: CallAnswered) -> None:
        c = self.callers.get(ev.call_id)
        if c is None:
            c = self._dialling.get(ev.call_id)
            if c is not None:
                self._callback_connected(now, c, ev)
            return
        q = self.queues[c.queue]
        # A ring group rings phones, not agents: whoever sits there took a call of its
        # own (no agent figures, no wrap-up; the queue_log names the phone).
        a = self._by_line.get(ev.line) if not q.phones else None
        if a is not None and not (a.state in (_S.RESERVED, _S.ON_CALL)
                                  and a.call_id == c.call_id):
            # The phone of an agent who is not on this call (in wrap-up, not ready, logged
            # out: a supervisor's pickup at a shared desk): nobody's agent call.
            a = None
        wait = now - c.joined
        agent_id = a.agent_id if a is not None else None
        who = agent_id or (ev.line if q.phones else "NONE")
        if a is not None and a.state is _S.RESERVED and a.call_id == c.call_id:
            c.offers.pop(a.agent_id, None)
            ring = now - a.offered_at
            a.no_answer = 0
            a.count("answered")
            a.answered_in[c.queue] = a.answered_in.get(c.queue, 0) + 1
            a.answered_at = now
            self._move(now, a, _I.ANSWER, "answered")
            self._talking.setdefault(c.call_id, []).append(
                (a.agent_id, ev.line, c.queue, now, c.joined, c.orig_position))
            self._emit(QueueConnected(c.call_id, now, c.queue, a.agent_id, ev.line,
                                      round(wait, 3), round(ring, 3)))
            self._log(now, c.call_id, c.queue, a.agent_id, "CONNECT", _secs(wait), c.call_id,
                      _secs(ring))
        else:
            # Picked up from another phone, a ring group's member, or answered as the offer
            # was withdrawn: the same record, with no ring of ours to time.
            ring = 0.0
            if a is not None and a.state is _S.ON_CALL and a.call_id == c.call_id:
                # An agent's phone took it: a queue call of that agent (talk, wrap-up).
                a.count("answered")
                a.answered_in[c.queue] = a.answered_in.get(c.queue, 0) + 1
                a.queue, a.answered_at = c.queue, now
                self._talking.setdefault(c.call_id, []).append(
                    (a.agent_id, ev.line, c.queue, now, c.joined, c.orig_position))
            elif q.phones:
                # A ring group's phone: its talk ends with a COMPLETE* naming the phone, as
                # its CONNECT does (reports give the phone its talk time).
                self._talking.setdefault(c.call_id, []).append(
                    (ev.line, ev.line, c.queue, now, c.joined, c.orig_position))
            self._emit(QueueConnected(c.call_id, now, c.queue, agent_id, ev.line,
                                      round(wait, 3), 0.0))
            self._log(now, c.call_id, c.queue, who, "CONNECT", _secs(wait), c.call_id, "0")
        for s in self._figures(c.queue):
            s.answered += 1
            if wait <= q.settings.service_level_s:
                s.answered_within_sl += 1
            s.wait_sum_answered += wait
        if q.phones:
            # A ring group: the CDR is the routed call's as it always was (no queue). The
            # core withdrew the other phones already (taken_elsewhere); this one answered.
            c.ringing.clear()
            self._remove(now, c, QueueExit.ANSWERED, agent_id)
            return
        if agent_id is not None:
            self._last_agent[c.number] = agent_id
        # "" clears an agent an earlier queue's answer left on the CDR (a supervisor's
        # pickup after a transfer into this queue is nobody's agent call).
        self._emit(Annotate(c.call_id, agent=agent_id or "", queue=c.queue, waiting=False))
        self._remove(now, c, QueueExit.ANSWERED, agent_id)

    def _on_withdrawn(self, now: float, ev: OfferWithdrawn) -> None:
        g = self.callers.get(ev.call_id)
        if g is not None and ev.line in g.ringing:
            self._group_offer_ended(now, g, ev.line, ev.reason)
            return
        a = self._by_line.get(ev.line)
        if a is None or a.state is not _S.RESERVED or a.call_id != ev.call_id:
            return  # not ours, or we withdrew it ourselves (already accounted for)
        cb = self._dialling.pop(ev.call_id, None)
        if cb is not None:
            # A callback's agent did not pick up: the attempt never reached the customer.
            cb.offers.pop(a.agent_id, None)
            cb.dial_call_id = None
            cb.attempts -= 1
            cb.move(_CIn.AGENT_MISSED)
            self._agent_missed(now, a, ev.reason, cb.queue, cb)
            return
        c = self.callers.get(ev.call_id)
        if ev.reason in (OfferEnd.TAKEN_ELSEWHERE, OfferEnd.PICKED_UP, OfferEnd.CALLER_GONE):
            # Another phone has the caller (call.answered follows), or the core ends the
            # call (call.ended follows, saying who ended it): free this agent, and never
            # offer it the caller again meanwhile.
            if c is not None:
                c.offers.pop(a.agent_id, None)
                if c.state in (_C.WAITING, _C.CONFIRMING):
                    c.move(_CIn.TAKEN)
            self._offer_ended(now, a)
            return
        if c is not None:
            c.offers.pop(a.agent_id, None)
        self._agent_missed(now, a, ev.reason, a.queue or "", c)

    def _agent_missed(self, now: float, a: Agent, reason: OfferEnd, queue: str,
                      c: Caller | None) -> None:
        """``a``'s offer to ``c`` ended unanswered for ``reason``: not ready (RONA) when it
        let too many ring out in a row, else ready again, but only after ``c`` was
        offered to any other free agent (a caller never rings the same phone again while
        another agent is free)."""
        if reason not in _MISSED:
            self._offer_ended(now, a, then=c)
            return
        a.no_answer += 1
        a.count("missed")
        if queue in self.stats:
            for s in self._figures(queue):
                s.ring_no_answer += 1
            self._log(now, a.call_id or "NONE", queue, a.agent_id, "RINGNOANSWER",
                      str(round((now - a.offered_at) * 1000)))
        rona = self.queues[queue].settings.rona_after if queue in self.queues else 0
        if rona and a.no_answer >= rona:
            a.call_id, a.queue = None, None  # the offer is over already
            self._pause(now, a, _I.RONA, "rona")
            if c is not None and not c.offers:
                self._serve_caller(now, c)
        else:
            self._offer_ended(now, a, then=c)

    def _on_line_error(self, now: float, ev: LineError) -> None:
        g = self.callers.get(ev.call_id or "")
        if ev.action == "offer" and g is not None and ev.line in g.ringing:
            del g.ringing[ev.line]
            if ev.state is LineStatus.IDLE:
                # The core refused the *call*: it is no longer a group's to ring.
                self._remove(now, g, QueueExit.SYSTEM, None)
                return
            # The phone went busy at this instant: a ring group tries the next one.
            self._busy_lines.add(ev.line)
            self._ring_phones(now, g, self.queues[g.queue])
            return
        if ev.action == "originate":
            cb = self._originating.pop(ev.line, None)
            a = self._by_line.get(ev.line)
            if cb is not None and a is not None and a.state is _S.RESERVED:
                cb.offers.pop(a.agent_id, None)
                cb.attempts -= 1
                cb.move(_CIn.AGENT_MISSED)
                self._offer_ended(now, a)
                self._serve_caller(now, cb)
            return
        if ev.action != "offer":
            return
        a = self._by_line.get(ev.line)
        if a is None or a.state is not _S.RESERVED or a.call_id != ev.call_id:
            return
        c = self.callers.get(ev.call_id)
        if c is not None and ev.state is LineStatus.IDLE:
            # The phone was free: the core refused the *call* (it is no longer the
            # switch's to offer). Offering it again would be refused again.
            self._remove(now, c, QueueExit.SYSTEM, None)
            return
        if c is not None:
            c.offers.pop(a.agent_id, None)
        # The phone is not idle, whatever this engine had seen: the agent is on a call of
        # its own, never offered the caller again at this instant.
        if a.line is not None:
            self._busy_lines.add(a.line)
        self._offer_ended(now, a)
        if c is not None and not c.offers:
            self._serve_caller(now, c)

    def _on_held(self, now: float, ev: CallHeld) -> None:
        # An agent put its peer on hold (CALL.HOLD, or a consultation): logged so that a
        # report can give each agent's hold time. Switchd's own queue_log event, as
        # are UNHOLD and WRAPUPEND (Asterisk's app_queue logs none of the three).
        a = self._by_line.get(ev.line)
        key = (ev.call_id, ev.line)
        if a is None or a.state is _S.LOGGED_OUT or key in self._holds:
            return
        queue = a.queue if a.call_id == ev.call_id and a.queue else "NONE"
        self._holds[key] = (now, a, queue)
        self._log(now, ev.call_id, queue, a.agent_id, "HOLD", ev.held_line)

    def _on_retrieved(self, now: float, ev: CallRetrieved) -> None:
        self._end_hold(now, ev.call_id, ev.line)

    def _on_conferenced(self, now: float, ev: CallConferenced) -> None:
        # A conference takes the held party off hold (everyone hears everyone).
        self._end_holds(now, ev.call_id)

    def _end_holds(self, now: float, call_id: str) -> None:
        if self._holds:
            for cid, line in [k for k in self._holds if k[0] == call_id]:
                self._end_hold(now, cid, line)

    def _end_hold(self, now: float, call_id: str, line: str) -> None:
        """Log ``UNHOLD|hold_s`` for the hold ``line`` has on ``call_id``, if any: taken
        back, or ended by the agent leaving the call (transfer) or the call ending."""
        held = self._holds.pop((call_id, line), None)
        if held is not None:
            since, a, queue = held
            self._log(now, call_id, queue, a.agent_id, "UNHOLD", _secs(now - since))

    def _on_ended(self, now: float, ev: CallEnded) -> None:
        self._end_holds(now, ev.call_id)
        self._sent_to_extension.pop(ev.call_id, None)
        self._returning.pop(ev.call_id, None)
        self._refused.pop(ev.call_id, None)
        talking = self._talking.pop(ev.call_id, None)
        if talking:
            # On a callback the agent's phone placed the call: its "caller" is the agent.
            by_caller = ev.hangup_by == "caller"
            if ev.call_id in self._completed_callbacks:
                self._completed_callbacks.discard(ev.call_id)
                by_caller = not by_caller
            event = "COMPLETECALLER" if by_caller else "COMPLETEAGENT"
            for who, _line, queue, answered, joined, orig in talking:
                self._log(now, ev.call_id, queue, who, event, _secs(answered - joined),
                          _secs(now - answered), str(orig))
        cb = self._dialling.pop(ev.call_id, None)
        if cb is not None:
            self._callback_failed(now, cb, ev)
            return
        c = self.callers.get(ev.call_id)
        if c is not None and c.state in _CALLED_BACK:
            c.line_alive = False  # hung up after asking for a callback: it keeps its place
            self._timers.cancel(("goodbye", c.call_id))
            if c.state is _C.CALLBACK:
                self._serve_caller(now, c)   # its turn may have come already
            return
        if c is not None and ev.hangup_by == "system":
            # The switch ended it (shutdown, a release elsewhere): not the caller's choice.
            for a in self._remove(now, c, QueueExit.SYSTEM, None, gone=True):
                self._offer_ended(now, a)
        elif c is not None:
            # The core withdrew every offer (caller_gone) before this: none is left.
            for a in self._abandon(now, c):
                self._offer_ended(now, a)

    def _abandon(self, now: float, c: Caller) -> list[Agent]:
        """The caller hung up in the queue. Returns the agents still reserved for it (each
        is freed by its own ``offer.withdrawn caller_gone``, which follows)."""
        q = self.queues[c.queue]
        wait = now - c.joined
        pos = q.position(c)
        for s in self._figures(c.queue):
            s.abandoned += 1
            if wait <= q.settings.service_level_s:
                s.abandoned_within_sl += 1
        self._emit(QueueAbandon(c.call_id, now, c.queue, pos, c.orig_position, round(wait, 3)))
        self._log(now, c.call_id, c.queue, "NONE", "ABANDON", str(pos), str(c.orig_position),
                  _secs(wait))
        return self._remove(now, c, QueueExit.ABANDON, None, gone=True)

    def _on_transferred(self, now: float, ev: CallTransferred) -> None:
        self._end_hold(now, ev.call_id, ev.line)
        talking = self._talking.get(ev.call_id)
        if not talking:
            return
        for entry in list(talking):
            who, line, queue, answered, joined, orig = entry
            if line != ev.line:
                continue
            talking.remove(entry)
            if ev.kind is TransferKind.ATTENDED:
                self._log(now, ev.call_id, queue, who, "ATTENDEDTRANSFER", "BRIDGE",
                          ev.target, _secs(answered - joined), _secs(now - answered), str(orig))
            else:
                self._log(now, ev.call_id, queue, who, "BLINDTRANSFER", ev.target,
                          "switchd", _secs(answered - joined), _secs(now - answered), str(orig))
        if not talking:
            self._talking.pop(ev.call_id, None)

    def _on_route_failed(self, now: float, ev: CallRouteFailed) -> None:
        # An overflow to an extension that nobody answered: the caller is not dropped;
        # it goes back to the queue it left (no further overflow by time).
        sent = self._sent_to_extension.pop(ev.call_id, None)
        if sent is None or sent[0] not in self.queues:
            return
        self._returning[ev.call_id] = sent
        self._emit(Redirect(ev.call_id, Target(TargetKind.QUEUE, sent[0])))

    def _on_line(self, now: float, ev: LineState) -> None:
        # Every phone's idleness, agent's or not: an agent may log in at any of them, and
        # a ring group rings them (the core's line table stays the one that decides; an
        # offer to a phone that is not idle comes back as line.error).
        if ev.line.startswith("ext/"):
            if ev.state is LineStatus.IDLE:
                self._busy_lines.discard(ev.line)
            else:
                self._busy_lines.add(ev.line)
        a = self._by_line.get(ev.line)
        if a is None:
            return
        if ev.state is LineStatus.IDLE:
            if ev.call_id is not None:
                # Its hold ends as it leaves the call (a conference it left, a hang-up).
                self._end_hold(now, ev.call_id, ev.line)
            if a.state is _S.ON_CALL:
                self._call_over(now, a)
            return
        if a.free:
            self._unfree(a)
        if (a.state is _S.RESERVED and ev.state is LineStatus.CONNECTED
                and a.call_id is not None and a.call_id == ev.call_id
                and ev.call_id in self._dialling):
            # A callback: the agent picked up; the customer is dialled now.
            a.no_answer = 0
            a.answered_at = now
            self._move(now, a, _I.ANSWER, "answered")
            return
        if a.state is _S.READY:
            # A call the ACD did not offer (the agent dialled, a direct call rang it).
            a.call_id, a.queue = ev.call_id, None
            self._move(now, a, _I.DIRECT, "direct")

    def _on_dtmf(self, now: float, ev: DtmfReceived) -> None:
        c = self.callers.get(ev.call_id)
        if c is None or ev.line != c.line:
            return
        qs = self.queues[c.queue].settings
        cb = qs.callback
        if c.state is _C.CONFIRMING and cb is not None:
            self._confirm_key(now, c, cb, ev.digit)
            return
        if c.state is not _C.WAITING:
            return
        if cb is not None and ev.digit == cb.key:
            c.move(_CIn.CALLBACK_KEY)
            c.digits = ""
            if cb.confirm:
                self._emit(PlayPrompt(c.call_id, c.line, 0, cb.confirm, barge_in=True))
            self._timers.arm(("confirm", c.call_id), now + cb.confirm_timeout_s, None)
            return
        if qs.exit_key is None or ev.digit != qs.exit_key:
            return
        q = self.queues[c.queue]
        wait = now - c.joined
        pos = q.position(c)
        for s in self._figures(c.queue):
            s.exited_key += 1
        self._log(now, c.call_id, c.queue, "NONE", "EXITWITHKEY", ev.digit, str(pos),
                  str(c.orig_position), _secs(wait))
        self._remove(now, c, QueueExit.KEY, None)
        self._send_away(now, c.call_id, q, QueueExit.KEY, wait, qs.exit_to, c.music,
                        c.first_joined)

    # ------------------------------------------------------------- ring groups

    def _join_group(self, now: float, ev: CallRouted) -> None:
        """A call routed to a ring group: a queue with no waiting whose members are
        phones. Nothing free: ``Unrouted(busy)`` at once; rung out: ``Unrouted``."""
        key = ev.target
        q = self.queues.get(key)
        if q is None or not q.phones:
            self._emit(Unrouted(ev.call_id, RouteFail.UNALLOCATED))
            return
        for s in self._figures(key):
            s.offered += 1
        self._log(now, ev.call_id, key, "NONE", "ENTERQUEUE", "", ev.caller)
        c = Caller(ev.call_id, key, ev.line, ev.caller, 0, now, 0)
        c.ring_timeout_s = ev.timeout_s or q.settings.ring_timeout_s
        if q.phone_set <= self._busy_lines:
            self._group_refused(now, ev, q)
            return
        self.callers[c.call_id] = c
        q.waiting.setdefault(0, {})[c.call_id] = c
        if not q.prios:
            q.prios.append(0)
        q.count += 1
        c.orig_position = q.count
        for s in self._figures(key):
            s.joined += 1
        self._emit(QueueJoin(c.call_id, now, key, c.orig_position, 0, ev.caller))
        self._ring_phones(now, c, q)

    def _group_refused(self, now: float, ev: CallRouted, q: _Queue) -> None:
        key = q.settings.name
        for s in self._figures(key):
            s.refused_joinempty += 1
        self._log(now, ev.call_id, key, "NONE", "JOINEMPTY")
        self._emit(QueueLeave(ev.call_id, now, key, QueueExit.JOINEMPTY, 0.0, 0))
        self._emit(Unrouted(ev.call_id, RouteFail.BUSY))

    def _ring_phones(self, now: float, c: Caller, q: _Queue) -> None:
        """Ring the group's idle members: all of them (ringall) or the next one in turn
        (hunt). When nothing rings any more, the group rang nobody to an answer."""
        if q.settings.strategy is Strategy.RINGALL:
            if not c.ringing and c.last_end is None:
                for line in q.phones:
                    if line not in self._busy_lines:
                        self._ring_phone(now, c, line)
        elif not c.ringing:
            # The next idle member from where the hunt stands (busy ones skipped in C).
            line = next(filterfalse(self._busy_lines.__contains__,
                                    islice(q.phones, c.hunt_next, None)), None)
            if line is None:
                c.hunt_next = len(q.phones)
            else:
                c.hunt_next = q.phone_index[line] + 1
                self._ring_phone(now, c, line)
        if not c.ringing:
            self._group_rang_out(now, c)

    def _ring_phone(self, now: float, c: Caller, line: str) -> None:
        c.ringing[line] = None
        # A ring group's member is the phone (the queue_log's "agent" field names it).
        self._emit(QueueOffered(c.call_id, now, c.queue, line, line))
        self._emit(Offer(c.call_id, line, c.ring_timeout_s))

    def _group_offer_ended(self, now: float, c: Caller, line: str, why: OfferEnd) -> None:
        del c.ringing[line]
        if why in (OfferEnd.TAKEN_ELSEWHERE, OfferEnd.PICKED_UP):
            if c.state is _C.WAITING:
                c.move(_CIn.TAKEN)     # call.answered follows
            return
        if why is OfferEnd.CALLER_GONE:
            if c.state is _C.WAITING:
                c.move(_CIn.TAKEN)     # call.ended follows, saying who ended it
            return
        # Withdrawn by someone else (the ACD forgets its own before withdrawing): the
        # group goes on as if that phone rang out.
        c.last_end = why
        if why in _MISSED:
            for s in self._figures(c.queue):
                s.ring_no_answer += 1
            self._log(now, c.call_id, c.queue, line, "RINGNOANSWER",
                      str(round(c.ring_timeout_s * 1000)) if why is OfferEnd.TIMEOUT else "0")
        self._ring_phones(now, self.callers[c.call_id], self.queues[c.queue])

    def _group_rang_out(self, now: float, c: Caller) -> None:
        """Nothing rings for ``c`` any more and nobody answered: out of the group."""
        q = self.queues[c.queue]
        wait = now - c.joined
        pos = q.position(c)
        for s in self._figures(c.queue):
            s.timed_out += 1
        self._log(now, c.call_id, c.queue, "NONE", "EXITWITHTIMEOUT", str(pos),
                  str(c.orig_position), _secs(wait))
        why = (RouteFail.DECLINED if c.last_end is OfferEnd.DECLINED
               else RouteFail.NO_ANSWER if c.last_end is not None else RouteFail.BUSY)
        self._remove(now, c, QueueExit.TIMEOUT, None)
        self._emit(Unrouted(c.call_id, why))

    # ---------------------------------------------------------------- callbacks

    def _confirm_key(self, now: float, c: Caller, cb: Any, key: str) -> None:
        """A key while the caller confirms a callback: ``1`` first = its own number;
        digits then ``#`` = that number; ``*`` = never mind."""
        if key == "*" or (key == "#" and not c.digits):
            self._cancel_callback(now, c)
            return
        if key == "1" and not c.digits:
            number = c.number
        elif key == "#":
            number = c.digits
        else:
            if key.isdigit() and len(c.digits) < 32:
                c.digits += key
            return
        if not NUMBER_RE.fullmatch(number or "") or len(number) < 3:
            self._cancel_callback(now, c)
            return
        self._timers.cancel(("confirm", c.call_id))
        c.move(_CIn.CONFIRM)
        c.callback_number = number
        # The caller is leaving the line: phones ringing for it now stop (it is called
        # back once its call has ended, never while a person could still take it).
        rung = [a for a in c.offers.values()
                if a.state is _S.RESERVED and a.call_id == c.call_id]
        c.offers.clear()
        for a in rung:
            assert a.line is not None
            self._withdraw(c.call_id, a.line)
            self._offer_ended(now, a)
        for kind in ("maxwait", "position", "periodic"):
            self._timers.cancel((kind, c.call_id))
        for st in self._figures(c.queue):
            st.callbacks += 1
        pos = self.queues[c.queue].position(c)
        self._emit(QueueCallback(c.call_id, now, c.queue, number, "requested"))
        self._log(now, c.call_id, c.queue, "NONE", "CALLBACK", number, str(pos),
                  _secs(now - c.joined))
        self._emit(Annotate(c.call_id, waiting=False))
        if cb.done:
            self._emit(PlayPrompt(c.call_id, c.line, 0, cb.done, barge_in=False))
        self._timers.arm(("goodbye", c.call_id), now + cb.goodbye_s, None)

    def _cancel_callback(self, now: float, c: Caller) -> None:
        self._timers.cancel(("confirm", c.call_id))
        c.move(_CIn.CANCEL)
        c.digits = ""
        self._emit(StopPrompt(c.call_id, c.line))
        self._emit(QueueCallback(c.call_id, now, c.queue, c.number, "cancelled"))

    def _on_confirm_timeout(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is not None and c.state is _C.CONFIRMING:
            self._cancel_callback(now, c)

    def _on_goodbye(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is not None and c.line_alive and c.state in _CALLED_BACK:
            c.line_alive = False
            self._emit(Release(call_id, HangupCause.NORMAL_CLEARING))

    def _on_retry(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is not None and c.state is _C.RETRY_WAIT:
            c.move(_CIn.RETRY)
            self._serve_caller(now, c)

    def _dial_callback(self, now: float, c: Caller, a: Agent) -> None:
        """``c``'s turn came: ring agent ``a`` first; the core dials the number when it answers."""
        qs = self.queues[c.queue].settings
        assert qs.callback is not None and c.callback_number is not None and a.line is not None
        self._unfree(a)
        # The call id comes with its call.new; the agent is on a queue call (talk, wrap-up)
        # only once the customer answers.
        a.call_id, a.queue = None, None
        a.offered_at = now
        a.count("offered")
        c.offers[a.agent_id] = a
        c.move(_CIn.DIAL)
        c.attempts += 1
        self._originating[a.line] = c
        self._move(now, a, _I.OFFER, "callback")
        self._emit(QueueOffered(c.call_id, now, c.queue, a.agent_id, a.line))
        self._emit(Originate(a.line, c.callback_number, qs.ring_timeout_s,
                             qs.callback.ring_timeout_s))

    def _on_new(self, now: float, ev: CallNew) -> None:
        if not self._originating or ev.extension is None:
            return
        c = self._originating.pop(f"ext/{ev.extension}", None)
        if c is None:
            return
        a = self._by_line.get(f"ext/{ev.extension}")
        assert a is not None
        a.call_id = c.dial_call_id = ev.call_id
        self._dialling[ev.call_id] = c
        self._emit(QueueCallback(c.call_id, now, c.queue, c.callback_number or "", "dialling",
                                 c.attempts, ev.call_id, a.agent_id))
        self._emit(Annotate(ev.call_id, agent=a.agent_id, queue=c.queue))

    def _callback_connected(self, now: float, c: Caller, ev: CallAnswered) -> None:
        """The customer of a callback answered: the caller leaves the queue answered."""
        dial = ev.call_id
        del self._dialling[dial]
        agent = next(iter(c.offers.values()), None)
        q = self.queues[c.queue]
        wait = now - c.joined
        for st in self._figures(c.queue):
            st.answered += 1
            if wait <= q.settings.service_level_s:
                st.answered_within_sl += 1
            st.wait_sum_answered += wait
        agent_id = agent.agent_id if agent is not None else None
        if agent is not None:
            agent.count("answered")
            agent.answered_in[c.queue] = agent.answered_in.get(c.queue, 0) + 1
            # From now on a queue call: talk time counts, wrap-up follows.
            agent.queue, agent.answered_at = c.queue, now
            assert agent.line is not None
            self._talking.setdefault(dial, []).append(
                (agent.agent_id, agent.line, c.queue, now, c.joined, c.orig_position))
            self._completed_callbacks.add(dial)
            self._last_agent[c.number] = agent.agent_id
            assert agent.line is not None
            self._emit(QueueConnected(dial, now, c.queue, agent.agent_id, agent.line,
                                      round(wait, 3), round(now - agent.offered_at, 3)))
        self._emit(QueueCallback(c.call_id, now, c.queue, c.callback_number or "", "connected",
                                 c.attempts, dial, agent_id))
        self._log(now, c.call_id, c.queue, agent_id or "NONE", "CONNECT", _secs(wait), dial,
                  _secs(now - (agent.offered_at if agent else now)))
        c.offers.clear()
        self._remove(now, c, QueueExit.ANSWERED, agent_id, gone=True)

    def _callback_failed(self, now: float, c: Caller, ev: CallEnded) -> None:
        """The call placed for ``c`` ended before the customer answered."""
        c.offers.clear()
        c.dial_call_id = None
        cb = self.queues[c.queue].settings.callback
        for st in self._figures(c.queue):
            st.callbacks_failed += 1
        why = ev.disposition.value.lower().replace(" ", "_")
        retries = cb.retries if cb is not None else 0
        if c.attempts <= retries and cb is not None:
            c.move(_CIn.ATTEMPT_FAILED)
            self._emit(QueueCallback(c.call_id, now, c.queue, c.callback_number or "", "failed",
                                     c.attempts, ev.call_id))
            self._log(now, c.call_id, c.queue, "NONE", "CALLBACKFAILED", str(c.attempts), why)
            self._timers.arm(("retry", c.call_id), now + cb.retry_after_s, None)
            return
        for st in self._figures(c.queue):
            st.callbacks_lost += 1
        self._emit(QueueCallback(c.call_id, now, c.queue, c.callback_number or "", "gave_up",
                                 c.attempts, ev.call_id))
        self._log(now, c.call_id, c.queue, "NONE", "CALLBACKFAILED", str(c.attempts), why,
                  "gave_up")
        self._remove(now, c, QueueExit.CALLBACK_FAILED, None, gone=True)

    # ------------------------------------------------------------------ timers

    def _on_max_wait(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is not None:
            self._leave_to_overflow(now, c, QueueExit.TIMEOUT)

    def _on_rule(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is None:
            return
        qs = self.queues[c.queue].settings
        nxt = qs.next_rule_after(now - c.joined)
        if nxt is not None:
            self._timers.arm(("rule", call_id), c.joined + nxt, None)
        if not c.offers:
            self._serve_caller(now, c)

    def _on_sticky_end(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is not None and c.sticky is not None:
            self._unstick(c)
            if not c.offers:
                self._serve_caller(now, c)

    def _on_wrapup_end(self, now: float, agent_id: str) -> None:
        a = self.agents.get(agent_id)
        if a is None or a.state is not _S.WRAP_UP:
            return
        self._wrapup_done(now, a)
        if a.line in self._busy_lines:
            self._move(now, a, _I.DIRECT, "direct")
            return
        self._move(now, a, _I.WRAPUP_END, "wrapup_end")
        self._became_ready(now, a)

    def _on_position(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is None:
            return
        q = self.queues[c.queue]
        qs = q.settings
        files = qs.position_files
        if files and qs.announce_position_every_s:
            pos = q.position(c)
            said = files[min(pos, len(files)) - 1]
            minutes = self._estimated_wait_min(q, pos)
            if minutes is not None and qs.wait_files:
                said += qs.wait_files[min(minutes, len(qs.wait_files)) - 1]
            self._emit(PlayPrompt(c.call_id, c.line, 0, said, barge_in=False))
            self._timers.arm(("position", call_id), now + qs.announce_position_every_s, None)

    def _estimated_wait_min(self, q: _Queue, position: int) -> int | None:
        """Whole minutes (rounded up, >= 1) a caller at ``position`` may expect to wait:
        position × this queue's mean handle time (talk + wrap-up, exact over the calls
        so far) / the agents staffing it (logged in and not paused). None before any
        call completed or while nobody staffs the queue: nothing honest to say."""
        st = self.stats[q.settings.name]
        if not st.talk_count:
            return None
        staffed = sum(1 for aid in q.members
                      if self.agents[aid].state not in (_S.LOGGED_OUT, _S.NOT_READY))
        if not staffed:
            return None
        handle = (st.talk_sum + st.wrapup_sum) / st.talk_count
        return max(1, math.ceil(position * handle / staffed / 60))

    def _on_periodic(self, now: float, call_id: str) -> None:
        c = self.callers.get(call_id)
        if c is None:
            return
        qs = self.queues[c.queue].settings
        if qs.periodic and qs.periodic_every_s:
            self._emit(PlayPrompt(c.call_id, c.line, 0, qs.periodic, barge_in=False))
            self._timers.arm(("periodic", call_id), now + qs.periodic_every_s, None)

    def _on_interval(self, now: float, _: str) -> None:
        self.history.append((self.interval_start, now, self.interval))
        self.interval = {name: QueueStats() for name in self.queues}
        for a in self.agents.values():
            # The state's time so far belongs to the interval that ends now.
            spent = now - a.counted_to
            a.total.time_in[a.state] = a.total.time_in.get(a.state, 0.0) + spent
            a.counted_to = now
            a.interval = AgentCounts()
        self.interval_start = now
        every = self.settings.stats_interval_s
        if every > 0:
            self._timers.arm(("interval", ""), now + every, None)

    # ----------------------------------------------------------------- matching

    def _serve_caller(self, now: float, c: Caller) -> None:
        """Offer ``c`` to the agent its queue's strategy picks, if one is free for it."""
        if c.state in _NOT_OFFERED or self.stopping or (c.state is _C.CALLBACK
                                                         and c.line_alive):
            return
        q = self.queues[c.queue]
        qs = q.settings
        if c.sticky is not None:
            a = self.agents.get(c.sticky)
            if a is not None and a.free:
                self._offer(now, c, a)
            return
        lo, hi = qs.penalty_range(now - c.joined)
        for level in q.levels:
            if level < lo:
                continue
            if level > hi:
                break
            pool = q.pools[level]
            if qs.strategy is Strategy.RINGALL and c.state is not _C.CALLBACK:
                agents = pool.all()
                if agents:
                    for a in agents:
                        self._offer(now, c, a)
                    return
                continue
            a = pool.pick()
            if a is not None:
                pool.rung(a)
                self._offer(now, c, a)
                return

    def _became_ready(self, now: float, a: Agent) -> None:
        """``a`` is ready: if its phone is idle it is free; offer it the best caller waiting."""
        if a.line in self._busy_lines:
            a.call_id, a.queue = None, None
            self._move(now, a, _I.DIRECT, "direct")
            return
        a.version += 1
        a.free = True
        if self.stopping:
            return
        for qname, pen in a.queues.items():
            q = self.queues.get(qname)
            if q is not None and a.agent_id in q.members:
                self._pool(q, pen, qname).add(a)
        sticky = self._sticky.get(a.agent_id)
        if sticky:
            # A returning caller waits for exactly this agent: it goes first.
            c = min(sticky.values(), key=lambda c: (-c.priority, c.joined))
            self._offer(now, c, a)
            return
        best: Caller | None = None
        for qname in a.queues:
            q = self.queues.get(qname)
            if q is None or not q.count or a.agent_id not in q.members:
                continue
            pen = q.members[a.agent_id]
            for c in q.callers():
                if c.state in _NOT_OFFERED or (c.state is _C.CALLBACK and c.line_alive):
                    continue
                if c.offers and q.settings.strategy is not Strategy.RINGALL:
                    continue
                if c.sticky is not None and c.sticky != a.agent_id:
                    continue
                lo, hi = q.settings.penalty_range(now - c.joined)
                if not lo <= pen <= hi:
                    continue  # this caller may not have this agent yet: the next may
                if best is None or (c.priority, -c.joined) > (best.priority, -best.joined):
                    best = c
                break
        if best is not None:
            q = self.queues[best.queue]
            q.pools[q.members[a.agent_id]].rung(a)
            self._offer(now, best, a)

    def _unstick(self, c: Caller) -> None:
        waiting = self._sticky.get(c.sticky or "")
        if waiting is not None:
            waiting.pop(c.call_id, None)
            if not waiting:
                del self._sticky[c.sticky or ""]
        c.sticky = None

    def _forget_sticky(self, now: float, agent_id: str) -> None:
        """``agent_id`` logged out: callers waiting for it take anyone now."""
        for c in list(self._sticky.pop(agent_id, {}).values()):
            c.sticky = None
            self._timers.cancel(("sticky", c.call_id))
            self._serve_caller(now, c)

    def _offer(self, now: float, c: Caller, a: Agent) -> None:
        if c.sticky is not None:
            self._unstick(c)
            self._timers.cancel(("sticky", c.call_id))
        if c.state is _C.CALLBACK:
            self._dial_callback(now, c, a)
            return
        self._unfree(a)
        a.call_id, a.queue = c.call_id, c.queue
        a.offered_at = now
        a.count("offered")
        c.offers[a.agent_id] = a
        self._move(now, a, _I.OFFER, "offer")
        assert a.line is not None
        self._emit(QueueOffered(c.call_id, now, c.queue, a.agent_id, a.line))
        self._emit(Offer(c.call_id, a.line, self.queues[c.queue].settings.ring_timeout_s))

    def _offer_ended(self, now: float, a: Agent, *, then: Caller | None = None) -> None:
        """``a``'s offer is over: ready again. ``then``: the caller it rang for, offered to
        the other free agents before ``a`` is free again (it goes back to ``a`` only when
        nobody else is free)."""
        a.call_id, a.queue = None, None
        self._move(now, a, _I.OFFER_END, "offer_end")
        if then is not None and not then.offers and then.call_id in self.callers:
            self._serve_caller(now, then)
        self._became_ready(now, a)

    def _refuse_if_queue_call(self, a: Agent, what: str) -> None:
        """An agent on a queue call finishes it (wrap-up follows) before ``what``; on a
        call of its own it may. Raises AcdError(wrong_state)."""
        if a.state is _S.ON_CALL and a.queue is not None:
            raise AcdError("wrong_state", f"agent {a.agent_id} is on a call of queue "
                           f"{a.queue}; {what} after it (wrap-up follows the call)")

    def _refuse_if_callback_rings(self, a: Agent) -> None:
        """A callback's ring cannot be withdrawn (the call placed for it is the agent's
        own until answered or rung out). Raises AcdError(wrong_state)."""
        if a.state in (_S.RESERVED, _S.ON_CALL) and (a.line in self._originating
                                                      or (a.call_id or "") in self._dialling):
            raise AcdError("wrong_state", f"agent {a.agent_id}'s phone is on a callback (ringing "
                           "or dialling the customer); finish it first")

    def _drop_offer(self, a: Agent) -> Caller | None:
        """Withdraw ``a``'s ringing offer (it logs out or pauses). Returns its caller when
        nothing rings for it any more: whoever called this offers it again once the
        agent's own state has moved (so the agent is not picked again)."""
        if a.state is not _S.RESERVED or a.call_id is None:
            return None
        call_id, line = a.call_id, a.line
        c = self.callers.get(call_id)
        a.call_id, a.queue = None, None
        assert line is not None
        self._withdraw(call_id, line)
        if c is not None:
            c.offers.pop(a.agent_id, None)
            if not c.offers:
                return c
        return None

    def _withdraw(self, call_id: str, line: str) -> None:
        # The phone rings for our offer: once the core withdraws it, it is idle (the
        # agent must not look busy with a call of its own meanwhile).
        self._busy_lines.discard(line)
        self._emit(Withdraw(call_id, line))

    def _call_over(self, now: float, a: Agent) -> None:
        """``a``'s phone is idle after a call: wrap-up after a queue call, else ready."""
        queue, call_id = a.queue, a.call_id
        a.call_id, a.queue = None, None
        if queue is None:
            self._move(now, a, _I.FREE, "call_end")
            self._became_ready(now, a)
            return
        talk = now - a.answered_at
        a.count("talk_s", talk)
        a.talk_in[queue] = a.talk_in.get(queue, 0.0) + talk
        a.last_call_end = now
        if queue in self.stats:
            for s in self._figures(queue):
                s.talk_sum += talk
                s.talk_count += 1
        qs = self.queues[queue].settings if queue in self.queues else None
        wrapup = a.wrapup_s if a.wrapup_s is not None else (qs.wrapup_s if qs else 0.0)
        if wrapup <= 0:
            self._move(now, a, _I.FREE, "call_end")
            self._became_ready(now, a)
            return
        self._move(now, a, _I.CALL_END, "call_end")
        a.queue = queue  # the wrap-up's queue (stats), not a call
        a.wrapup_call = call_id
        self._timers.arm(("wrapup", a.agent_id), now + wrapup, None)

    def _wrapup_done(self, now: float, a: Agent) -> None:
        queue, a.queue = a.queue, None
        call_id, a.wrapup_call = a.wrapup_call, None
        spent = now - a.since
        a.count("wrapup_s", spent)
        # However it ends (its timer, READY, NOT_READY, logout, a call of its own):
        # WRAPUPEND|wrapup_s, so reports have the wrap-up time and when it was spent.
        self._log(now, call_id or "NONE", queue or "NONE", a.agent_id, "WRAPUPEND", _secs(spent))
        if queue in self.stats:
            for s in self._figures(queue):
                s.wrapup_sum += spent
                s.wrapup_count += 1

    # ------------------------------------------------------------ leaving

    def _leave_to_overflow(self, now: float, c: Caller, why: QueueExit) -> None:
        q = self.queues[c.queue]
        wait = now - c.joined
        pos = q.position(c)
        for s in self._figures(c.queue):
            if why is QueueExit.TIMEOUT:
                s.timed_out += 1
            else:
                s.exited_empty += 1
        event = "EXITWITHTIMEOUT" if why is QueueExit.TIMEOUT else "EXITEMPTY"
        self._log(now, c.call_id, c.queue, "NONE", event, str(pos), str(c.orig_position),
                  _secs(wait))
        self._remove(now, c, why, None)
        self._send_away(now, c.call_id, q, why, wait, q.settings.overflow, c.music,
                        c.first_joined)

    def _send_away(self, now: float, call_id: str, q: _Queue, why: QueueExit, wait: float,
                   target: Target | None, music: bool = False,
                   joined: float | None = None) -> None:
        """The caller left ``q`` (joined at ``joined``) for ``why``: on to ``target`` (the
        overflow or exit-key target), or released (busy for a refused join) when there
        is none."""
        name = q.settings.name
        if target is not None:
            for s in self._figures(name):
                s.overflowed += 1
        self._emit(QueueOverflow(call_id, now, name, why, round(wait, 3),
                                 str(target) if target is not None else None))
        if music:
            self._emit(HoldMusic(call_id, False))
        if target is None:
            cause = (HangupCause.USER_BUSY if why in (QueueExit.FULL, QueueExit.JOINEMPTY)
                     else HangupCause.NO_ANSWER)
            self._emit(Release(call_id, cause))
        elif target.kind is TargetKind.EXTENSION:
            self._sent_to_extension[call_id] = (name, joined if joined is not None else now)
            self._emit(Route(call_id, target))
        else:
            self._emit(Redirect(call_id, target))

    def _remove(self, now: float, c: Caller, why: QueueExit, agent: str | None, *,
                gone: bool = False) -> list[Agent]:
        """Take ``c`` out of its queue: offers withdrawn, timers cancelled, one queue.leave.

        ``gone``: the call ended; the core withdraws its offers itself, so the agents
        still reserved for it are returned, not freed (their phones may not be idle yet).
        """
        q = self.queues[c.queue]
        wait = now - c.joined
        pos = q.position(c)
        rung = [a for a in c.offers.values()
                if a.state is _S.RESERVED and a.call_id == c.call_id]
        c.offers.clear()
        if c.sticky is not None:
            self._unstick(c)
        bucket = q.waiting[c.priority]
        del bucket[c.call_id]
        if not bucket:
            del q.waiting[c.priority]
            q.prios.remove(c.priority)
        q.count -= 1
        del self.callers[c.call_id]
        for kind in ("maxwait", "rule", "sticky", "position", "periodic", "confirm", "goodbye",
                     "retry"):
            self._timers.cancel((kind, c.call_id))
        if c.dial_call_id is not None:
            self._dialling.pop(c.dial_call_id, None)
        qs = q.settings
        if not gone and c.line_alive and (qs.greeting or qs.periodic or qs.position_files
                                          or qs.callback is not None):
            # An announcement must not play on into the conversation (or the next queue).
            self._emit(StopPrompt(c.call_id, c.line))
        for s in self._figures(c.queue):
            s.left += 1
            s.wait_sum_all += wait
            if wait > 0:
                s.waited += 1
            if wait > s.wait_max:
                s.wait_max = wait
        if why is QueueExit.SYSTEM:
            for s in self._figures(c.queue):
                s.system_exits += 1
            self._log(now, c.call_id, c.queue, "NONE", "SYSTEMEXIT", str(pos),
                      str(c.orig_position), _secs(wait))
        if why is not QueueExit.ANSWERED and not gone and not q.phones:
            self._emit(Annotate(c.call_id, waiting=False))
        if c.ringing and not gone:
            for line in c.ringing:
                self._emit(Withdraw(c.call_id, line))
        c.ringing.clear()
        self._emit(QueueLeave(c.call_id, now, c.queue, why, round(wait, 3), pos, agent))
        if gone:
            return rung
        # Only now that the caller is out may its agents be offered to someone else.
        for a in rung:
            assert a.line is not None
            self._withdraw(c.call_id, a.line)
            self._offer_ended(now, a)
        return []

    # ------------------------------------------------------------- primitives

    def _figures(self, queue: str) -> tuple[QueueStats, QueueStats]:
        """The queue's figures since start and in the current interval (both counted)."""
        return self.stats[queue], self.interval[queue]

    def _pool(self, q: _Queue, penalty: int, qname: str) -> Pool:
        pool = q.pools.get(penalty)
        if pool is None:
            pool = q.pools[penalty] = make_pool(q.settings.strategy, qname, self.rng)
            q.levels = sorted(q.pools)
        return pool

    def _unfree(self, a: Agent) -> None:
        if not a.free:
            return
        a.free = False
        a.version += 1
        for qname, pen in a.queues.items():
            q = self.queues.get(qname)
            if q is not None:
                pool = q.pools.get(pen)
                if pool is not None:
                    pool.discard(a)

    def _set_line(self, a: Agent, line: str | None) -> None:
        if a.line is not None and self._by_line.get(a.line) is a:
            del self._by_line[a.line]
        a.line = line
        if line is not None:
            self._by_line[line] = a

    def _move(self, now: float, a: Agent, what: AgentInput, reason: str) -> None:
        nxt = a.next_state(what)
        if nxt is None:
            # A bug in this module, not a peer's mistake: every caller checks first.
            raise AssertionError(f"agent {a.agent_id}: {what.value} in state "
                                 f"{a.state.value} is not in the table")
        if nxt is not _S.READY and a.free:
            self._unfree(a)
        prev = a.state
        spent = now - a.counted_to
        for counts in (a.total, a.interval):
            counts.time_in[prev] = counts.time_in.get(prev, 0.0) + spent
        a.counted_to = now
        a.since = now
        a.state = nxt
        a.reason = reason
        self._emit(AgentStateChanged(a.agent_id, nxt, prev, reason, now, a.line, a.call_id))

    def _log(self, now: float, call_id: str, queue: str, agent: str, event: str,
             *data: str) -> None:
        self._emit(QueueLogEntry(now, call_id, queue, agent, event, data))

    def _emit(self, item: Any) -> None:
        self._out.append(item)

    def _drain(self) -> list[Any]:
        out, self._out = self._out, []
        return out


def _figures(c: AgentCounts, a: Agent, now: float) -> AgentFigures:
    t = dict(c.time_in)
    t[a.state] = t.get(a.state, 0.0) + (now - a.counted_to)
    return AgentFigures(c.offered, c.answered, c.missed, c.talk_s, c.wrapup_s,
                        tuple((k.value, v) for k, v in t.items()))


def _secs(x: float) -> str:
    """Whole seconds for queue_log fields (Asterisk writes integers), rounded half-up."""
    return str(int(x + 0.5)) if x > 0 else "0"


_ = Event  # re-exported type for annotations of callers of this module
