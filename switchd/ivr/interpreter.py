"""The IVR interpreter: runs YAML call flows (``switchd.ivr.model``) for calls, sans-IO.

:class:`Ivr` is an engine under the shell (DESIGN §1, ``switchd.engine``): it follows
the core's call events (``call.routed`` starts a flow, ``call.dtmf`` keys,
``call.answered`` / ``call.route_failed`` end a transfer, ``call.ended`` the caller's
hang-up) and takes :class:`~switchd.ivr.inputs.PromptDone` (media) and
:class:`~switchd.ivr.inputs.RouteReply` (CRM). It returns ``ivr.*`` events and inputs
for other engines: :class:`~switchd.ivr.inputs.PlayPrompt` /
:class:`~switchd.ivr.inputs.StopPrompt` for whatever plays audio, and
:class:`~switchd.core.inputs.Route` / :class:`~switchd.core.inputs.Release` /
:class:`~switchd.core.inputs.Annotate` for the core. Timers (menu and collect
timeouts, the CRM's) are asked for through :meth:`Ivr.next_deadline` and fed back
through :meth:`Ivr.handle_timer`. The same object runs in the daemon and in
``switchd flows try`` / the tests on a virtual clock.

One :class:`Session` per call in a flow. What a session does is its
:class:`State`; what an input does to it is looked up in one table keyed by
(state, :class:`Kind`) (h11 ``_state.py`` style); an input the table does not list
for the state is a stale or meaningless one (a ``PromptDone`` after the prompt was
stopped, a key while a transfer rings) and changes nothing. Within a state, the
node's type says what a key or a prompt's end means (a ``play`` barge-in, a ``menu``
choice, a ``collect`` digit).

Digits, exactly once: a key belongs to the node that is current when it arrives; a
key that barges into a ``play`` moves the call on and is gone, so the next node
never sees it; keys typed during a ``collect``'s prompts count, and a collect whose
digits were all typed ahead completes at once.

Errors. Run-time problems of a flow (a prompt that went missing, a value ``say``
cannot read, a goto to a flow that is not loaded) are ``ivr.error`` events; the call
goes on where the flow says, or — when there is nowhere to go — is released
(``ivr.exit`` outcome ``error``). A CRM ``ROUTE.REPLY`` is judged by
:meth:`Ivr.check_reply`; see :class:`IvrError` and :func:`submit_reply` for how a
bad one both moves the call to its fallback and reaches the CRM as an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from switchd.core.inputs import Annotate, Release, Route
from switchd.core.routing import NUMBER_RE, ROUTE_KINDS, Target, TargetKind
from switchd.engine import Input, TimerHeap
from switchd.events import (
    CallAnswered,
    CallEnded,
    CallRouted,
    CallRouteFailed,
    DtmfReceived,
    Event,
    HangupCause,
    IvrEnter,
    IvrExit,
    IvrLeave,
    IvrRouteRequest,
    LineError,
)
from switchd.events import IvrError as IvrProblem
from switchd.ivr import say, schedule
from switchd.ivr.inputs import PlayPrompt, PromptDone, RouteReply, StopPrompt
from switchd.ivr.model import (
    BUILTIN_VARS,
    NAME_RE,
    TEMPLATE_RE,
    Branch,
    Collect,
    Cond,
    CondOp,
    CondSubject,
    Flow,
    FlowSet,
    Goto,
    Menu,
    Node,
    NodeType,
    Play,
    RouteRequest,
    Say,
    Schedule,
    SetVars,
    Transfer,
)

__all__ = ["STEP_BUDGET", "TRANSITIONS", "Ivr", "IvrError", "Kind", "Session", "State", "render",
           "submit_reply"]

#: Node entries one input may cause before the flow is judged to loop without
#: waiting for anyone (set -> branch -> set ...): the call is released with an error
#: instead of the engine spinning forever.
STEP_BUDGET = 1000

_FLOW_PREFIX = "flow:"
_NUMBER_START = re.compile(r"[+-]?\.?\d")


class IvrError(Exception):
    """A request the interpreter cannot serve (the CTI ``ROUTE.REPLY`` verb's errors).

    ``code``: ``not_found`` (no such call in a flow), ``not_waiting`` (the call is not
    at a ``route_request``), ``bad_arg`` (the reply names an unknown node, a node not
    in the node's choices, a bad variable name or a value over the length limit).
    ``msg`` says what to fix.
    """

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class State(StrEnum):
    """What a session is doing."""

    #: Running instant nodes (set, branch, schedule, goto, ...): no input arrives here,
    #: this is the state between leaving a node and the next one waiting.
    STEPPING = "stepping"
    #: A prompt plays that will report its end (play, say, the prompts of a menu or
    #: collect, or their retry prompts).
    PLAYING = "playing"
    #: A menu or collect waits in silence for keys; its key timer runs.
    WAITING_KEYS = "waiting_keys"
    #: A route_request waits for the CRM (hold prompts loop); its timer runs.
    WAITING_CRM = "waiting_crm"
    #: A transfer rings its target; the core answers with call.answered or call.route_failed.
    TRANSFERRING = "transferring"
    #: The flow is over (the session is forgotten).
    DONE = "done"


class Kind(StrEnum):
    """What can happen to a session."""

    PROMPT_DONE = "prompt_done"
    KEY = "key"
    TIMEOUT = "timeout"
    REPLY = "reply"
    ROUTE_FAILED = "route_failed"
    #: The core refused a Route (line.error): treated like a failed transfer.
    ROUTE_REFUSED = "route_refused"
    ANSWERED = "answered"
    HANGUP = "hangup"


#: (state, input kind) -> the Ivr method that handles it. Anything else is ignored
#: (stale prompt ends, keys while waiting for the CRM or a transfer — counted).
TRANSITIONS: dict[tuple[State, Kind], str] = {
    (State.PLAYING, Kind.PROMPT_DONE): "_on_prompt_done",
    (State.PLAYING, Kind.KEY): "_on_key",
    (State.WAITING_KEYS, Kind.KEY): "_on_key",
    (State.WAITING_KEYS, Kind.TIMEOUT): "_on_key_timeout",
    (State.WAITING_CRM, Kind.REPLY): "_on_reply",
    (State.WAITING_CRM, Kind.PROMPT_DONE): "_on_hold_prompt_done",
    (State.WAITING_CRM, Kind.TIMEOUT): "_on_crm_timeout",
    (State.TRANSFERRING, Kind.ANSWERED): "_on_answered",
    (State.TRANSFERRING, Kind.ROUTE_FAILED): "_on_route_failed",
    (State.TRANSFERRING, Kind.ROUTE_REFUSED): "_on_route_failed",
}
for _s in (State.PLAYING, State.WAITING_KEYS, State.WAITING_CRM, State.TRANSFERRING):
    TRANSITIONS[(_s, Kind.HANGUP)] = "_on_hangup"


@dataclass(eq=False, slots=True)
class Session:
    """One call in a flow.

    ``flows``: the generation the call started in (a reload never changes a live
    call's path, not even through ``goto``). ``vars``: text values, builtins
    included. ``path``: (flow, node) of every node entered. ``digits``: the keys the
    current try of the current node holds; ``tries``: its failed tries. ``token``:
    the play whose ``PromptDone`` is awaited. ``ignored_keys``: keys that arrived
    where no node takes keys (a play without barge-in, a transfer ringing, ...).
    """

    call_id: str
    line: str
    flows: FlowSet
    flow: Flow
    vars: dict[str, str]
    started: float
    node: Node | None = None
    state: State = State.STEPPING
    path: list[tuple[str, str]] = field(default_factory=list)
    digits: str = ""
    tries: int = 0
    token: int = 0
    ignored_keys: int = 0
    #: How many path entries and which variables the core was last told (Annotate).
    annotated_len: int = 0
    annotated_vars: dict[str, str] = field(default_factory=dict)

    @property
    def node_name(self) -> str:
        """The current node's name ("" before the first)."""
        return "" if self.node is None else self.node.name

    def path_text(self) -> str:
        """``flow:node>node>…``, with ``flow2:node`` where a goto changed flow."""
        parts: list[str] = []
        last = None
        for flow, node in self.path:
            parts.append(node if flow == last else f"{flow}:{node}")
            last = flow
        return ">".join(parts)

    def vars_json(self, *, builtins: bool = False) -> str:
        """The variables as JSON object text (builtins left out unless asked for)."""
        shown = self.vars if builtins else {k: v for k, v in self.vars.items()
                                            if k not in BUILTIN_VARS}
        return json.dumps(shown, ensure_ascii=False, sort_keys=True)


def render(template: str, values: dict[str, str]) -> str:
    """``template`` with every ``{name}`` replaced by its value ("" when unset; the
    checker refuses reads of variables nothing sets), ``{{``/``}}`` as braces."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return m.group(0)[0]
        return values.get(name, "")
    return TEMPLATE_RE.sub(sub, template)


def _decimal(text: str) -> Decimal | None:
    """``text`` as a finite decimal ("10", "-1.50", "1e3"), or None when it is not a number."""
    if not _NUMBER_START.match(text):
        return None  # cheap refusal of plain words before Decimal's own parser
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def submit_reply(ivr: Ivr, submit: Callable[[Input], list[Event]],
                 reply: RouteReply) -> list[Event]:
    """Hand a CRM reply to ``ivr`` through ``submit`` (``Shell.submit``); return its events.

    For the CTI ``ROUTE.REPLY`` verb. A good reply is submitted like any input. A bad
    one (:meth:`Ivr.check_reply` raises ``bad_arg``) is still submitted — the
    interpreter then moves the call to the node's fallback at once, so the caller is
    never left waiting — and the IvrError is raised afterwards for the CRM's ``ERR``
    (its message ends with where the call went).
    ``not_found``/``not_waiting`` are raised before anything is submitted (nothing
    changes). The events of the fallback move are dispatched by the shell like any.
    """
    try:
        ivr.check_reply(reply)
    except IvrError as exc:
        if exc.code != "bad_arg":
            raise
        events = submit(reply)
        left = next((e for e in events if isinstance(e, IvrLeave)), None)
        where = f"; the call went to {left.next}" if left is not None and left.next else ""
        raise IvrError("bad_arg", f"{exc.msg}{where}") from None
    return submit(reply)


class Ivr:
    """The interpreter engine: one :class:`Session` per call in a flow.

    ``flows``: the generation new calls start in (:meth:`set_flows` on reload).
    ``max_var_len``: the longest value a variable may hold (characters); a CRM reply
    with a longer one is refused, a longer ``set``/``vars:`` result is cut (with an
    ``ivr.error``).
    """

    #: ``line.error`` only matters for a refused ``Route`` (a transfer must not wait forever).
    FOLLOWS: tuple[type, ...] = (CallRouted, DtmfReceived, CallRouteFailed, CallAnswered,
                                 CallEnded, LineError)
    TAKES: tuple[type, ...] = (PromptDone, RouteReply)

    def __init__(self, flows: FlowSet, *, max_var_len: int = 1024) -> None:
        self.flows = flows
        self.max_var_len = max_var_len
        #: call id -> its live session
        self.sessions: dict[str, Session] = {}
        #: call id -> when the current node's key or CRM timer fires (one per call)
        self._timers: TimerHeap[str] = TimerHeap()
        self._token = 0
        self._out: list[Any] = []
        self._handlers: dict[type, Callable[[float, Any], None]] = {
            CallRouted: self._call_routed, DtmfReceived: self._dtmf,
            PromptDone: self._prompt_done, RouteReply: self._route_reply,
            CallAnswered: self._answered, CallRouteFailed: self._route_failed,
            CallEnded: self._call_ended, LineError: self._line_error,
        }
        self._transitions: dict[tuple[State, Kind], Callable[[float, Session, Any], None]] = {
            key: getattr(self, name) for key, name in TRANSITIONS.items()}
        #: node type -> entering it: returns the next node for an instant node, None
        #: when the node waits (or the flow ended).
        self._enter: dict[NodeType, Callable[[float, Session, Any], str | None]] = {
            NodeType.PLAY: self._enter_play, NodeType.MENU: self._enter_keys,
            NodeType.COLLECT: self._enter_keys, NodeType.SAY: self._enter_say,
            NodeType.SCHEDULE: self._enter_schedule, NodeType.BRANCH: self._enter_branch,
            NodeType.SET: self._enter_set, NodeType.ROUTE_REQUEST: self._enter_route_request,
            NodeType.TRANSFER: self._enter_transfer, NodeType.HANGUP: self._enter_hangup,
            NodeType.GOTO: self._enter_goto, NodeType.QUEUE: self._enter_unbuilt,
            NodeType.VOICEMAIL: self._enter_unbuilt,
        }

    # ------------------------------------------------------- engine protocol

    def set_flows(self, flows: FlowSet) -> None:
        """New calls start in ``flows``; calls in a flow finish on the set they started with."""
        self.flows = flows

    def handle(self, now: float, item: Any) -> list[Any]:
        """Take a followed core event or a ``PromptDone``/``RouteReply`` at ``now``.

        Returns events and inputs (for the core and the player), in order. Raises
        IvrError (``not_found``/``not_waiting``) for a reply to a call that is not in a
        flow or not at a route_request, before anything changed; a reply the flow
        cannot use is not raised here (see :meth:`check_reply`): the call goes to its
        fallback and an ``ivr.error`` says why. TypeError for anything else.
        """
        handler = self._handlers.get(type(item))
        if handler is None:
            raise TypeError(f"the IVR takes {', '.join(t.__name__ for t in self.TAKES)} and "
                            f"follows call events, not {item!r}")
        try:
            handler(now, item)
        except IvrError:
            self._out.clear()  # raised before anything changed
            raise
        return self._drain()

    def next_deadline(self) -> float | None:
        """Epoch seconds of the earliest key or CRM timeout, or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        """Fire the timeouts due at ``now`` (menu/collect key timers, CRM timers)."""
        while (due := self._timers.pop_due(now)) is not None:
            s = self.sessions.get(due[0])
            if s is not None:
                self._dispatch(now, s, Kind.TIMEOUT, None)
        return self._drain()

    # ---------------------------------------------------------------- queries

    def waiting_for_route(self, call_id: str) -> bool:
        """True when ``call_id`` sits at a route_request waiting for the CRM."""
        s = self.sessions.get(call_id)
        return s is not None and s.state is State.WAITING_CRM

    def check_reply(self, reply: RouteReply) -> None:
        """Judge a CRM reply without acting on it. Raises IvrError: ``not_found``,
        ``not_waiting`` or ``bad_arg`` (message naming the problem and what is allowed)."""
        s = self._waiting_session(reply.call_id)
        problem, _ = self._judge_reply(s, reply)
        if problem is not None:
            raise IvrError("bad_arg", problem)

    # ------------------------------------------------------------- the inputs

    def _call_routed(self, now: float, ev: CallRouted) -> None:
        if not ev.target.startswith(_FLOW_PREFIX) or ev.call_id in self.sessions:
            return  # another application's call, or a duplicate announcement
        name = ev.target[len(_FLOW_PREFIX):]
        flow = self.flows.get(name)
        if flow is None:
            known = ", ".join(sorted(self.flows.flows)) or "none"
            msg = f"no flow {name!r} is loaded (loaded: {known}); check the route and flows/"
            self._emit(IvrProblem(ev.call_id, now, name, "", "", msg))
            self._emit(IvrExit(ev.call_id, now, name, "", "error", ""))
            self._emit(Release(ev.call_id))
            return
        builtins = {
            "caller": ev.caller, "dnis": ev.dnis or "", "call_id": ev.call_id,
            "trunk": "" if ev.trunk is None else str(ev.trunk),
            "vip": "true" if ev.vip else "false",
            # A blacklisted caller is refused before routing: every routed call is not.
            "blacklisted": "false",
        }
        s = Session(ev.call_id, ev.line, self.flows, flow, builtins, now)
        self.sessions[ev.call_id] = s
        self._apply_flow_vars(now, s, flow, overwrite=True)
        self._run(now, s, flow.start)
        self._flush(s)

    def _dtmf(self, now: float, ev: DtmfReceived) -> None:
        s = self.sessions.get(ev.call_id)
        if s is not None and ev.line == s.line:
            self._dispatch(now, s, Kind.KEY, ev.digit)

    def _prompt_done(self, now: float, done: PromptDone) -> None:
        s = self.sessions.get(done.call_id)
        if s is not None and done.token == s.token:
            self._dispatch(now, s, Kind.PROMPT_DONE, done)

    def _route_reply(self, now: float, reply: RouteReply) -> None:
        self._dispatch(now, self._waiting_session(reply.call_id), Kind.REPLY, reply)

    def _answered(self, now: float, ev: CallAnswered) -> None:
        s = self.sessions.get(ev.call_id)
        if s is not None:
            self._dispatch(now, s, Kind.ANSWERED, ev)

    def _route_failed(self, now: float, ev: CallRouteFailed) -> None:
        s = self.sessions.get(ev.call_id)
        if s is not None:
            self._dispatch(now, s, Kind.ROUTE_FAILED, ev)

    def _call_ended(self, now: float, ev: CallEnded) -> None:
        s = self.sessions.get(ev.call_id)
        if s is not None:
            self._dispatch(now, s, Kind.HANGUP, ev)

    def _line_error(self, now: float, ev: LineError) -> None:
        if ev.action == "route" and ev.call_id is not None:
            s = self.sessions.get(ev.call_id)
            if s is not None:
                self._dispatch(now, s, Kind.ROUTE_REFUSED, ev)

    def _dispatch(self, now: float, s: Session, kind: Kind, item: Any) -> None:
        action = self._transitions.get((s.state, kind))
        if action is None:
            if kind is Kind.KEY:
                s.ignored_keys += 1
            return
        action(now, s, item)
        self._flush(s)

    def _waiting_session(self, call_id: str) -> Session:
        s = self.sessions.get(call_id)
        if s is None:
            raise IvrError("not_found", f"call {call_id} is not in an IVR flow")
        if s.state is not State.WAITING_CRM:
            raise IvrError("not_waiting", f"call {call_id} is not waiting for a route reply: "
                           f"it is at node {s.node_name} ({s.state.value}) of flow {s.flow.name}")
        return s

    # ---------------------------------------------------------- transitions

    def _on_prompt_done(self, now: float, s: Session, done: PromptDone) -> None:
        s.state = State.STEPPING  # nothing plays any more
        if done.error is not None:
            self._problem(now, s, f"prompt could not be played: {done.error}")
        node = s.node
        if isinstance(node, Play | Say):
            self._run(now, s, self._leave(now, s, node.next, "end of prompt"))
        elif isinstance(node, Menu | Collect):
            self._wait_keys(now, s, node)

    def _on_key(self, now: float, s: Session, key: str) -> None:
        node = s.node
        if isinstance(node, Collect):
            self._collect_key(now, s, node, key)
        elif isinstance(node, Menu):
            if s.state is State.PLAYING and not node.barge_in:
                s.ignored_keys += 1  # the menu's prompts must be heard out
            else:
                self._menu_key(now, s, node, key)
        elif isinstance(node, Play | Say) and node.barge_in:
            self._run(now, s, self._leave(now, s, node.next, "barge-in", key))
        else:
            s.ignored_keys += 1

    def _on_key_timeout(self, now: float, s: Session, _: None) -> None:
        node = s.node
        if isinstance(node, Menu):
            self._failed_try(now, s, node, "timeout", "timeout", None, node.timeout_prompts)
        elif isinstance(node, Collect):
            if s.digits:
                self._collect_done(now, s, node, "inter-digit timeout", s.digits)
            else:
                self._failed_try(now, s, node, "timeout", "timeout", None, node.invalid_prompts)

    def _on_reply(self, now: float, s: Session, reply: RouteReply) -> None:
        node = s.node
        assert isinstance(node, RouteRequest)
        problem, nxt = self._judge_reply(s, reply)
        if problem is not None:
            # The CRM hears about it through check_reply; the log and `flows try` here.
            self._problem(now, s, f"bad ROUTE.REPLY: {problem}")
            self._run(now, s, self._leave(now, s, node.fallback, "bad CRM reply"))
            return
        for name, value in reply.vars:
            s.vars[name] = value
        self._run(now, s, self._leave(now, s, nxt, "CRM reply"))

    def _on_hold_prompt_done(self, now: float, s: Session, done: PromptDone) -> None:
        # A looped hold prompt only ends when it cannot be played at all.
        if done.error is not None:
            self._problem(now, s, f"hold prompt could not be played: {done.error}")

    def _on_crm_timeout(self, now: float, s: Session, _: None) -> None:
        node = s.node
        assert isinstance(node, RouteRequest)
        self._run(now, s, self._leave(now, s, node.fallback, f"CRM timeout {node.timeout_s:g} s"))

    def _on_answered(self, now: float, s: Session, ev: CallAnswered) -> None:
        self._end(now, s, "transferred", f"answered on {ev.line}", release=False)

    def _on_route_failed(self, now: float, s: Session, ev: CallRouteFailed | LineError) -> None:
        node = s.node
        assert isinstance(node, Transfer)
        if isinstance(ev, LineError):
            self._problem(now, s, f"the switch refused the transfer: {ev.reason}")
            why = "transfer refused"
        else:
            why = f"transfer {ev.reason.value}"
        if node.on_fail is not None:
            self._run(now, s, self._leave(now, s, node.on_fail, why))
        else:
            self._end(now, s, "hangup", why, release=True)

    def _on_hangup(self, now: float, s: Session, ev: CallEnded) -> None:
        # The session still lives, so the IVR did not end the call itself.
        if ev.hangup_cause is HangupCause.SYSTEM_SHUTDOWN:
            outcome, why = "shutdown", "switch shutting down"
        elif ev.hangup_by == "system":
            outcome, why = "system", "call ended by the switch"
        else:
            outcome, why = "caller_hangup", "caller hung up"
        self._end(now, s, outcome, why, release=False)

    # ------------------------------------------------------------ the nodes

    def _run(self, now: float, s: Session, name: str | None) -> None:
        """Enter node ``name`` and every instant node after it, until one waits for
        something (a prompt, keys, the CRM, a transfer) or the flow ends (None)."""
        for _ in range(STEP_BUDGET):
            if name is None or s.state is State.DONE:
                return
            node = s.flow.nodes.get(name)
            if node is None:
                # The node before was left already (or there was none: a bad start).
                self._fail(now, s, f"flow {s.flow.name} has no node {name!r}", leave=False)
                return
            s.node = node
            s.digits = ""
            s.tries = 0
            self._entered(now, s, _prompt_names(node))
            name = self._enter[node.type](now, s, node)
        if name is not None and s.state is not State.DONE:
            tail = ">".join(n for _, n in s.path[-6:])
            self._fail(now, s, f"{STEP_BUDGET} nodes in a row without waiting for the caller "
                       f"(a loop of instant nodes: …{tail}); give the loop a menu, collect or play",
                       leave=False)

    def _entered(self, now: float, s: Session, prompts: tuple[str, ...]) -> None:
        node = s.node
        assert node is not None
        s.path.append((s.flow.name, node.name))
        self._emit(IvrEnter(s.call_id, now, s.flow.name, s.flow.version, node.name,
                            node.type.value, ",".join(prompts) or None))

    def _leave(self, now: float, s: Session, nxt: str | None, why: str,
               digits: str | None = None) -> str | None:
        """Leave the current node for ``nxt``: silence, no timer; returns ``nxt``."""
        self._quiet(s)
        s.state = State.STEPPING
        self._emit(IvrLeave(s.call_id, now, s.flow.name, s.flow.version, s.node_name, nxt, why,
                            digits or None))
        return nxt

    def _enter_play(self, now: float, s: Session, node: Play) -> str | None:
        if self._play(now, s, self._files(now, s, node.prompts), node.barge_in):
            return None
        return self._leave(now, s, node.next, "nothing to play")

    def _enter_say(self, now: float, s: Session, node: Say) -> str | None:
        language = node.language or s.flow.language
        value = render(node.value, s.vars)
        try:
            names = say.fragments(node.kind, value, language, node.currency)
        except say.SayError as exc:
            self._problem(now, s, str(exc))
            return self._leave(now, s, node.next, "say failed")
        missing = [n for n in names if n not in s.flow.prompt_files]
        if missing:
            self._problem(now, s, f"say {node.kind.value} {value!r}: no recording for "
                          f"{', '.join(missing)} (add them under the prompts directory)")
            return self._leave(now, s, node.next, "say failed")
        files = tuple(s.flow.prompt_files[n] for n in names)
        if self._play(now, s, files, node.barge_in):
            return None
        return self._leave(now, s, node.next, "nothing to say")

    def _enter_keys(self, now: float, s: Session, node: Menu | Collect) -> None:
        self._start_keys(now, s, node, node.prompts)

    def _start_keys(self, now: float, s: Session, node: Menu | Collect,
                    names: tuple[str, ...]) -> None:
        if not self._play(now, s, self._files(now, s, names), node.barge_in):
            self._wait_keys(now, s, node)

    def _wait_keys(self, now: float, s: Session, node: Menu | Collect) -> None:
        """The prompts ended (or there were none): wait for keys in silence."""
        s.state = State.WAITING_KEYS
        if isinstance(node, Menu):
            wait = node.timeout_s
        else:
            wait = node.inter_digit_timeout_s if s.digits else node.first_timeout_s
        self._timers.arm(s.call_id, now + wait)

    def _menu_key(self, now: float, s: Session, node: Menu, key: str) -> None:
        nxt = node.choices.get(key)
        if nxt is None:
            self._failed_try(now, s, node, "invalid", f"invalid key {key}", key,
                             node.invalid_prompts)
            return
        if node.into is not None:
            s.vars[node.into] = key
        self._run(now, s, self._leave(now, s, nxt, f"key {key}", key))

    def _collect_key(self, now: float, s: Session, node: Collect, key: str) -> None:
        if node.terminator is not None and key == node.terminator:
            self._collect_done(now, s, node, f"terminator {key}", s.digits + key)
            return
        s.digits += key
        if len(s.digits) >= node.max_digits:
            self._collect_done(now, s, node, f"{node.max_digits} digits", s.digits)
        elif s.state is State.WAITING_KEYS:
            self._timers.arm(s.call_id, now + node.inter_digit_timeout_s)
        elif node.barge_in:
            # The first key stops the prompt; the caller is typing now.
            self._emit(StopPrompt(s.call_id, s.line))
            self._wait_keys(now, s, node)
        # Without barge-in the prompt plays on; its end starts the inter-digit timer.

    def _collect_done(self, now: float, s: Session, node: Collect, why: str, typed: str) -> None:
        got = s.digits
        if len(got) < node.min_digits:
            problem = (f"{len(got)} digits, at least {node.min_digits} needed" if got
                       else "no digits")
            self._failed_try(now, s, node, "invalid", problem, typed, node.invalid_prompts)
        elif node.pattern is not None and re.fullmatch(node.pattern, got) is None:
            self._failed_try(now, s, node, "invalid", f"{got} does not match {node.pattern}",
                             typed, node.invalid_prompts)
        else:
            s.vars[node.into] = got
            self._run(now, s, self._leave(now, s, node.next, why, typed))

    def _failed_try(self, now: float, s: Session, node: Menu | Collect, what: str, why: str,
                    digits: str | None, retry_prompts: tuple[str, ...]) -> None:
        """A try of a menu or collect failed: start over with ``retry_prompts`` then the
        node's prompts, or go to ``fallback`` when the retries are used up."""
        s.tries += 1
        if s.tries > node.retries:
            self._run(now, s, self._leave(now, s, node.fallback, f"{what} x{s.tries}", digits))
            return
        # Starting over is leaving the node for itself: the trace shows each try.
        self._leave(now, s, node.name, f"{why}, try {s.tries + 1} of {node.retries + 1}", digits)
        s.digits = ""
        names = retry_prompts + node.prompts
        self._entered(now, s, names)
        self._start_keys(now, s, node, names)

    def _enter_schedule(self, now: float, s: Session, node: Schedule) -> str | None:
        try:
            outcome, why = schedule.evaluate(node, s.flow.holidays, s.flow.timezone, now)
        except ValueError as exc:
            self._problem(now, s, str(exc))
            return self._leave(now, s, node.closed, "schedule failed: closed")
        nxt = {"open": node.open, "closed": node.closed,
               "holiday": node.holiday or node.closed}[outcome]
        return self._leave(now, s, nxt, why)

    def _enter_branch(self, now: float, s: Session, node: Branch) -> str | None:
        for i, case in enumerate(node.cases, 1):
            if all(self._holds(now, s, c) for c in case.conds):
                label = " and ".join(str(c) for c in case.conds)
                return self._leave(now, s, case.next, f"case {i}: {label}")
        return self._leave(now, s, node.otherwise, "else")

    def _enter_set(self, now: float, s: Session, node: SetVars) -> str | None:
        for name, template in node.values:
            s.vars[name] = self._fit(now, s, name, render(template, s.vars))
        return self._leave(now, s, node.next, "set " + ", ".join(n for n, _ in node.values))

    def _enter_route_request(self, now: float, s: Session, node: RouteRequest) -> None:
        self._emit(IvrRouteRequest(s.call_id, now, s.flow.name, s.flow.version, node.name,
                                   s.vars["caller"], s.vars["dnis"] or None,
                                   s.vars_json(builtins=True), node.timeout_s))
        self._play(now, s, self._files(now, s, node.prompts), False, loop=True)
        s.state = State.WAITING_CRM
        self._timers.arm(s.call_id, now + node.timeout_s)

    def _enter_transfer(self, now: float, s: Session, node: Transfer) -> str | None:
        try:
            target = _route_target(node.target)
        except ValueError as exc:
            self._problem(now, s, str(exc))
            if node.on_fail is not None:
                return self._leave(now, s, node.on_fail, "transfer target unusable")
            self._end(now, s, "error", "transfer target unusable", release=True)
            return None
        s.state = State.TRANSFERRING
        self._flush(s)  # the CDR has the path even if the call leaves the switch
        self._emit(Route(s.call_id, target, node.timeout_s))
        return None

    def _enter_hangup(self, now: float, s: Session, _: Node) -> None:
        self._end(now, s, "hangup", "hangup", release=True)

    def _enter_goto(self, now: float, s: Session, node: Goto) -> str | None:
        target = s.flows.get(node.flow)
        if target is None:
            self._fail(now, s, f"goto: no flow {node.flow!r} in this call's generation "
                       f"(loaded: {', '.join(sorted(s.flows.flows))})")
            return None
        start = node.node or target.start
        if start not in target.nodes:
            self._fail(now, s, f"goto: flow {node.flow} has no node {start!r}")
            return None
        self._leave(now, s, start, f"goto {node.flow}")
        s.flow = target
        self._apply_flow_vars(now, s, target, overwrite=False)
        return start

    def _enter_unbuilt(self, now: float, s: Session, node: Node) -> None:
        # `flows check` refuses these; a flow that got here anyway must not hang the caller.
        self._fail(now, s, f"{node.type.value} nodes are not built yet (flows check refuses "
                   f"them); use a transfer to a ring group")

    # -------------------------------------------------------------- helpers

    def _holds(self, now: float, s: Session, c: Cond) -> bool:
        subject = c.subject
        if subject is CondSubject.TIME or subject is CondSubject.WEEKDAY:
            local = schedule.local_time(s.flow.timezone, now)
            if subject is CondSubject.WEEKDAY:
                days = c.value if isinstance(c.value, tuple) else (c.value,)
                return local.weekday() in days
            t = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
            rng = c.value
            return bool(rng.start <= t < rng.end)  # type: ignore[attr-defined]
        if subject is CondSubject.VIP or subject is CondSubject.BLACKLISTED:
            flag = s.vars.get(subject.value) == "true"
            want = c.value if isinstance(c.value, bool) else str(c.value).lower() == "true"
            return flag == want if c.op is not CondOp.NOT_EQUALS else flag != want
        name = c.name if subject is CondSubject.VAR else subject.value
        value = s.vars.get(name or "", "")
        # Caller and DNIS are numbers as identifiers ("0138" is not "138"): text only.
        numeric = subject is CondSubject.VAR
        return _compare(c.op, value, c.value, numeric)

    def _files(self, now: float, s: Session, names: tuple[str, ...]) -> tuple[Path, ...]:
        files = []
        for name in names:
            path = s.flow.prompt_files.get(name)
            if path is None:
                self._problem(now, s, f"prompt {name!r} has no file (flows check should have "
                              "found it; was the flow loaded without its prompts?)")
            else:
                files.append(path)
        return tuple(files)

    def _play(self, now: float, s: Session, files: tuple[Path, ...], barge_in: bool,
              loop: bool = False) -> bool:
        """Play ``files`` to the caller; False (nothing sent) when there are none."""
        if not files:
            return False
        self._token += 1
        s.token = self._token
        s.state = State.PLAYING
        self._emit(PlayPrompt(s.call_id, s.line, s.token, files, barge_in, loop))
        return True

    def _quiet(self, s: Session) -> None:
        """Stop whatever this session plays and its timer (leaving a node, ending)."""
        self._timers.cancel(s.call_id)
        node = s.node
        if s.state is State.PLAYING or (s.state is State.WAITING_CRM
                                        and isinstance(node, RouteRequest) and node.prompts):
            self._emit(StopPrompt(s.call_id, s.line))

    def _end(self, now: float, s: Session, outcome: str, why: str, *, release: bool,
             leave: bool = True) -> None:
        """The flow is over for this call: ``ivr.leave`` of the current node (to nowhere;
        ``leave=False`` when it was left already), ``ivr.exit``, and ``Release`` when the
        IVR ends the call itself."""
        if leave:
            self._leave(now, s, None, why)
        else:
            self._quiet(s)
        if release or outcome == "transferred":
            self._flush(s)  # before Release: the CDR is written when the call ends
        s.state = State.DONE
        del self.sessions[s.call_id]
        self._emit(IvrExit(s.call_id, now, s.flow.name, s.flow.version, outcome, s.node_name))
        if release:
            self._emit(Release(s.call_id))

    def _fail(self, now: float, s: Session, msg: str, *, leave: bool = True) -> None:
        """A flow that cannot go on: ``ivr.error``, then the call is released."""
        self._problem(now, s, msg)
        self._end(now, s, "error", "error", release=True, leave=leave)

    def _problem(self, now: float, s: Session, msg: str) -> None:
        self._emit(IvrProblem(s.call_id, now, s.flow.name, s.flow.version, s.node_name, msg))

    def _fit(self, now: float, s: Session, name: str, value: str) -> str:
        if len(value) <= self.max_var_len:
            return value
        self._problem(now, s, f"variable {name} would be {len(value)} characters; cut to "
                      f"{self.max_var_len}")
        return value[:self.max_var_len]

    def _apply_flow_vars(self, now: float, s: Session, flow: Flow, *, overwrite: bool) -> None:
        """A flow's ``vars:`` in order; after a goto only those the call does not have yet
        (a goto keeps the call's variables)."""
        for name, template in flow.vars:
            if name not in BUILTIN_VARS and (overwrite or name not in s.vars):
                s.vars[name] = self._fit(now, s, name, render(template, s.vars))

    def _judge_reply(self, s: Session, reply: RouteReply) -> tuple[str | None, str | None]:
        """(problem, next node): the problem text for an unusable reply, else None."""
        node = s.node
        assert isinstance(node, RouteRequest)
        nxt = reply.next
        if nxt is None:
            if node.next is None:
                allowed = ", ".join(node.choices) if node.choices else "a node of the flow"
                return (f"the reply has no next= and node {node.name} has no default next; "
                        f"name one of: {allowed}"), None
            nxt = node.next
        elif nxt not in s.flow.nodes:
            return f"next={nxt}: flow {s.flow.name} has no such node", None
        elif node.choices and nxt not in node.choices:
            return (f"next={nxt} is not one of node {node.name}'s choices "
                    f"({', '.join(node.choices)})"), None
        for name, value in reply.vars:
            if not NAME_RE.fullmatch(name):
                return (f"variable name {name[:80]!r} is not a name (letters, digits, _ . -; "
                        "starting with a letter or _; at most 64)"), None
            if name in BUILTIN_VARS:
                return f"variable {name} is built in and cannot be set by the CRM", None
            if len(value) > self.max_var_len:
                return (f"variable {name} is {len(value)} characters; at most "
                        f"{self.max_var_len}"), None
        return None, nxt

    def _flush(self, s: Session) -> None:
        """Tell the core the path and variables when they changed (for the CDR)."""
        if s.state is State.DONE:
            return  # the call left the IVR; what it had was sent before
        # Cheap checks first: most inputs (a digit, a prompt's end) change neither.
        path_changed = len(s.path) != s.annotated_len
        vars_changed = s.vars != s.annotated_vars
        if not (path_changed or vars_changed):
            return
        s.annotated_len = len(s.path)
        if vars_changed:
            s.annotated_vars = dict(s.vars)
        self._emit(Annotate(s.call_id, s.path_text() if path_changed else None,
                            s.vars_json() if vars_changed else None))

    def _emit(self, item: Any) -> None:
        self._out.append(item)

    def _drain(self) -> list[Any]:
        out, self._out = self._out, []
        return out


def _prompt_names(node: Node) -> tuple[str, ...]:
    if isinstance(node, Play | Menu | Collect | RouteRequest):
        return node.prompts
    return ()


def _route_target(text: str) -> Target:
    """A transfer node's ``to:`` as a core route target. Raises ValueError (what to write)."""
    target = Target.parse(text)
    if target.kind not in ROUTE_KINDS:
        raise ValueError(f"transfer to {text!r}: a transfer goes to extension:<number>, "
                         "group:<name> or number:<digits>")
    if target.kind is TargetKind.NUMBER and not NUMBER_RE.fullmatch(target.value or ""):
        raise ValueError(f"transfer to {text!r}: a number is 1-32 digits (0-9, *, #)")
    return target


def _compare(op: CondOp, value: str, want: object, numeric: bool) -> bool:
    """``value`` (text) ``op`` ``want``. Decimals compare as numbers (a variable's "1.50"
    equals 1.5); ordering a value that is not a number is false."""
    if op is CondOp.SET:
        is_set = value != ""
        return is_set == (want if isinstance(want, bool) else str(want).lower() == "true")
    if op is CondOp.IN:
        items = want if isinstance(want, tuple | list | frozenset | set) else (want,)
        return any(_compare(CondOp.EQUALS, value, w, numeric) for w in items)
    text = str(want)
    if op is CondOp.PREFIX:
        return value.startswith(text)
    if op is CondOp.MATCHES:
        return re.fullmatch(text, value) is not None
    a = _decimal(value) if numeric or op not in (CondOp.EQUALS, CondOp.NOT_EQUALS) else None
    b = _decimal(text) if a is not None else None
    if op is CondOp.EQUALS or op is CondOp.NOT_EQUALS:
        same = a == b if a is not None and b is not None else value == text
        return same if op is CondOp.EQUALS else not same
    if a is None or b is None:
        return False
    if op is CondOp.GT:
        return a > b
    if op is CondOp.GE:
        return a >= b
    if op is CondOp.LT:
        return a < b
    if op is CondOp.LE:
        return a <= b
    return False
