"""The IVR interpreter: runs YAML call flows (``switchd.ivr.model``) for calls, sans-IO.

:class:`Ivr` is an engine under the shell (DESIGN §1, ``switchd.engine``): it follows
the core's call events (``call.routed`` starts a flow, or takes a message for a
``voicemail:BOX`` target as a one-node flow; ``call.dtmf`` keys, ``call.answered`` /
``call.route_failed`` end a transfer, ``call.ended`` the caller's hang-up) and takes
:class:`~switchd.ivr.inputs.PromptDone` (media), :class:`~switchd.ivr.inputs.RouteReply`
(CRM) and :class:`~switchd.ivr.inputs.MessageEnded` (the voicemail recorder). It
returns ``ivr.*`` events and inputs for other engines:
:class:`~switchd.ivr.inputs.PlayPrompt` / :class:`~switchd.ivr.inputs.StopPrompt` for
whatever plays audio, :class:`~switchd.ivr.inputs.RecordMessage` /
:class:`~switchd.ivr.inputs.StopMessage` for whatever records voicemail, and
:class:`~switchd.core.inputs.Route` / :class:`~switchd.core.inputs.Release` /
:class:`~switchd.core.inputs.Redirect` (a ``queue`` node hands the call to the ACD) /
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

Same instant. Inputs that carry the same ``now`` may reach the engine in either
order; the result does not depend on it:

* keys of an instant come before the prompt ends of that instant (the daemon hands
  them over in that order, frame by frame): a key at the very instant a prompt ran
  out was pressed while it played. So when the prompt's end was taken first, a key
  of that same instant still goes where it would have gone during the prompt — a
  ``menu`` without barge-in ignores it, a ``play`` it barged into had it (the next
  node does not see it; ``ivr.leave`` shows it as ``ignored`` there);
* a ``ROUTE.REPLY`` at or after the CRM's deadline is late, whether or not the
  timeout was handled yet: the call goes to the fallback, the CRM is told
  ``not_waiting``.

Errors. Run-time problems of a flow (a prompt that went missing, a value ``say``
cannot read, a goto to a flow that is not loaded) are ``ivr.error`` events; the call
goes on where the flow says, or — when there is nowhere to go — is released
(``ivr.exit`` outcome ``error``). A flow that goes round without waiting — instant
nodes, or a transfer that fails at once and whose ``on_fail`` leads straight back —
is stopped after :data:`STEP_BUDGET` nodes in one instant, whatever inputs carried
it round. A bug of the interpreter itself (an exception while handling an input)
ends only that call, the same way, with ``internal error in node …``; the switch
and the other calls go on. A CRM ``ROUTE.REPLY`` is judged by
:meth:`Ivr.check_reply`; see :class:`RouteReplyError` and :func:`submit_reply` for
how a bad one both moves the call to its fallback and reaches the CRM as an error.
"""

from __future__ import annotations

import json
import re
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from switchd.core.inputs import Annotate, Redirect, Release, Route
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
    IvrOutcome,
    IvrRouteRequest,
    LineError,
)

# The event under another name here: `from switchd.ivr.interpreter import IvrError` (the
# exception's old name) must fail at import, not hand out an event class to `except`.
from switchd.events import IvrError as IvrProblem
from switchd.ivr import say, schedule
from switchd.ivr.inputs import (
    MessageEnd,
    MessageEnded,
    PlayPrompt,
    PromptDone,
    RecordMessage,
    RouteReply,
    StopMessage,
    StopPrompt,
)
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
    Mark,
    Menu,
    Node,
    NodeType,
    Play,
    Queue,
    RouteRequest,
    Say,
    Schedule,
    SetVars,
    Transfer,
    Voicemail,
)

__all__ = ["PATH_MAX", "RECORDER_GRACE_S", "STEP_BUDGET", "TRANSITIONS", "VOICEMAIL_FLOW", "Ivr",
           "IvrPath", "Kind", "MailboxLookup", "RouteReplyError", "Session", "State", "render",
           "submit_reply"]

#: A tuple, not ``A | B`` (built at each call): checked for every event the IVR follows.
_ENDS_OR_ANSWERS = (CallEnded, CallAnswered)

#: Nodes one call may enter in one instant (the same ``now``) before the flow is judged
#: to loop without waiting for anyone — set -> branch -> set within one input, or a
#: transfer that fails at once whose ``on_fail`` leads back to it, input after input:
#: the call is released with an error instead of the switch spinning forever.
STEP_BUDGET = 1000
#: Longest ``ivr_path`` text sent to the core (the CDR), characters; see :class:`IvrPath`.
PATH_MAX = 1000
#: Of which at most this many for the path's start.
PATH_HEAD = 300
#: Ignored keys kept per node (a caller drumming on the keypad through a long
#: prompt); beyond, one "…" says there were more.
IGNORED_MAX = 32
#: Longest value quoted in a say node's ``why`` (``said … as amount``).
_SAID_MAX = 40

_FLOW_PREFIX = "flow:"
_VOICEMAIL_PREFIX = "voicemail:"
#: The name of the one-node flow a ``voicemail:BOX`` route or overflow runs (its node is
#: named after the box), as ``ivr.*`` events and the CDR's ``ivr_path`` show it.
VOICEMAIL_FLOW = "voicemail"
#: Seconds the interpreter waits beyond a message's longest length (the settings' at
#: most, 3600 s, when the node sets none) for the recorder's ``MessageEnded`` before it
#: stops the message itself: a recorder that never answers must not hold a caller.
RECORDER_GRACE_S = 30.0
_LONGEST_MESSAGE_S = 3600.0
_NUMBER_START = re.compile(r"[+-]?\.?\d")
#: ``Session.swallow`` when every key of the instant belongs to a prompt that ended then.
_ALL = -1


class RouteReplyError(Exception):
    """A ``ROUTE.REPLY`` the interpreter cannot serve (the CTI verb's errors).

    ``code``: ``not_found`` (no such call in a flow), ``not_waiting`` (the call is not
    at a ``route_request``, or the reply came when the CRM's time had run out),
    ``bad_arg`` (the reply names an unknown node, a node not in the node's choices, a
    bad variable name or a value over the length limit), ``internal`` (the interpreter
    failed on the reply; the call was released with an ``ivr.error``). ``msg`` says
    what to fix.
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
    #: A voicemail node records the caller's message; the recorder's MessageEnded (or
    #: its grace timer) moves on.
    RECORDING = "recording"
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
    #: The voicemail recorder reports the end of the message.
    MESSAGE_ENDED = "message_ended"


#: (state, input kind) -> the Ivr method that handles it. Anything else is ignored
#: (stale prompt ends; keys while waiting for the CRM or a transfer, which the node's
#: ivr.leave shows as ``ignored``).
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
    (State.RECORDING, Kind.KEY): "_on_message_key",
    (State.RECORDING, Kind.MESSAGE_ENDED): "_on_message_ended",
    (State.RECORDING, Kind.TIMEOUT): "_on_recorder_timeout",
}
for _s in (State.PLAYING, State.WAITING_KEYS, State.WAITING_CRM, State.TRANSFERRING,
           State.RECORDING):
    TRANSITIONS[(_s, Kind.HANGUP)] = "_on_hangup"
# A person answered a call that was in the flow and not being transferred: a supervisor
# picked it up (SUPER.PICKUP). The flow ends there; nothing more is played to the call.
for _s in (State.PLAYING, State.WAITING_KEYS, State.WAITING_CRM, State.RECORDING):
    TRANSITIONS[(_s, Kind.ANSWERED)] = "_on_picked_up"


class IvrPath:
    """The nodes a call entered, kept as the ``ivr_path`` text of its CDR, bounded.

    The text is ``flow:node>node>…`` with ``flow2:node`` where a goto changed flow. A
    call that goes round a menu for an hour must not grow its CDR, nor the work of
    each step, without end, so the text is at most :data:`PATH_MAX` characters. The
    rule when the whole path is longer: the first nodes (whole names, at most
    :data:`PATH_HEAD` characters), then ``…``, then the most recent nodes (whole
    names, as many as fit), the first of them with its flow (``flow:node``) so the
    reader knows where the call was; ``main:welcome>hours>menu>…>main:menu>menu>sales``.
    Both the start and the end of the call stay visible; the middle is cut.

    Kept as it grows: :meth:`append` costs O(1) (amortized), :meth:`text` at most
    :data:`PATH_MAX` characters, whatever the length of the call.
    """

    __slots__ = ("_cut", "_head", "_head_len", "_head_open", "_last_flow", "_tail",
                 "_tail_len", "count", "recent")

    #: How many recent entries :attr:`recent` keeps (to name a loop).
    RECENT = 32

    def __init__(self) -> None:
        #: Nodes entered so far (also those cut from the text).
        self.count = 0
        #: (flow, node) of the last :attr:`RECENT` entries.
        self.recent: deque[tuple[str, str]] = deque(maxlen=self.RECENT)
        self._head: list[str] = []
        self._head_len = 0  # characters of ">".join(_head)
        self._head_open = True
        #: (flow, node, text as in the uncut path) of the entries after the head
        self._tail: deque[tuple[str, str, str]] = deque()
        self._tail_len = 0  # characters of "".join(">" + text for each)
        self._cut = False  # entries were dropped between head and tail
        self._last_flow: str | None = None

    def append(self, flow: str, node: str) -> None:
        """The call entered ``node`` of ``flow``."""
        self.count += 1
        self.recent.append((flow, node))
        seg = node if flow == self._last_flow else f"{flow}:{node}"
        self._last_flow = flow
        if self._head_open:
            grown = self._head_len + len(seg) + (1 if self._head else 0)
            if grown <= PATH_HEAD:
                self._head.append(seg)
                self._head_len = grown
                return
            self._head_open = False
        self._tail.append((flow, node, seg))
        self._tail_len += 1 + len(seg)
        while len(self._tail) > 1 and self._length() > PATH_MAX:
            _, _, old = self._tail.popleft()
            self._tail_len -= 1 + len(old)
            self._cut = True

    def _length(self) -> int:
        """len(:meth:`text`), worked out without building it."""
        if not self._tail:
            return self._head_len
        n = self._head_len + self._tail_len - (0 if self._head else 1)
        if self._cut:
            flow, node, seg = self._tail[0]
            n += 2 + len(flow) + 1 + len(node) - len(seg)  # "…>" and the flow of the first
        return n

    def text(self) -> str:
        """The ``ivr_path`` text (see the class)."""
        parts = list(self._head)
        tail = iter(self._tail)
        if self._cut:
            flow, node, _ = next(tail)
            parts += ["…", f"{flow}:{node}"]
        parts.extend(seg for _, _, seg in tail)
        text = ">".join(parts)
        # Only names longer than NAME_RE allows could overflow; cut hard rather than grow.
        return text if len(text) <= PATH_MAX else text[:PATH_MAX - 1] + "…"

    def loop(self) -> str:
        """The recent entries as a loop, ``t>t`` or ``a>b>a`` (from the last node back to
        its previous visit), else the last few; flows named only when the loop spans
        several."""
        recent = list(self.recent)
        start = max(0, len(recent) - 6)
        for i in range(len(recent) - 2, -1, -1):
            if recent[i] == recent[-1]:
                start = i
                break
        shown = recent[start:]
        several = len({f for f, _ in shown}) > 1
        text = ">".join(f"{f}:{n}" if several else n for f, n in shown)
        return text if start == 0 or recent[start] == recent[-1] else "…" + text


@dataclass(eq=False, slots=True)
class Session:
    """One call in a flow.

    ``flows``: the generation the call started in (a reload never changes a live
    call's path, not even through ``goto``). ``vars``: text values, builtins
    included. ``path``: the nodes entered (:class:`IvrPath`). ``token``: the play
    whose ``PromptDone`` is awaited (0: none).

    Per node, reset when it is entered: ``digits`` (the keys the current try holds)
    and ``tries`` (its failed tries; a retry keeps it). Per try, reset when it is
    left: ``ignored_keys``, the keys that arrived while it was current and that
    nothing consumed (a play without barge-in, a transfer ringing, a CRM look-up, …),
    which its ``ivr.leave`` carries as ``ignored``.
    """

    call_id: str
    line: str
    flows: FlowSet
    flow: Flow
    vars: dict[str, str]
    started: float
    node: Node | None = None
    state: State = State.STEPPING
    path: IvrPath = field(default_factory=IvrPath)
    digits: str = ""
    tries: int = 0
    token: int = 0
    ignored_keys: str = ""
    #: When the CRM's time runs out at the current route_request (epoch s).
    crm_deadline: float = 0.0
    #: (instant, token) of the last prompt that ran to its end.
    prompt_end: tuple[float, int] | None = None
    #: Keys of instant ``swallow_at`` still owed to prompts that ended at that instant
    #: and moved the call on (one per barge-in prompt; ``_ALL`` for one without
    #: barge-in): keys of an instant come before its prompt ends (see the module).
    swallow_at: float | None = None
    swallow: int = 0
    #: Nodes entered at instant ``burst_at`` (over every input of that instant).
    burst_at: float | None = None
    burst_count: int = 0
    #: How many path entries and which variables the core was last told (Annotate).
    annotated_len: int = 0
    annotated_vars: dict[str, str] = field(default_factory=dict)
    #: ``len(digits)`` when the current message started recording: the keys after it
    #: are the message's (a key before it skipped the greeting and ends nothing).
    message_keys_from: int = 0

    @property
    def node_name(self) -> str:
        """The current node's name ("" before the first)."""
        return "" if self.node is None else self.node.name

    def path_text(self) -> str:
        """The ``ivr_path`` text: ``flow:node>node>…``, at most :data:`PATH_MAX`
        characters (:class:`IvrPath`)."""
        return self.path.text()

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
    never left waiting — and the RouteReplyError is raised afterwards for the CRM's
    ``ERR`` (its message ends with where the call went). ``not_found``/``not_waiting``
    are raised before anything changes (a late reply: the timeout moves the call). When
    the interpreter fails on the reply, the call is released and ``internal`` is raised.
    The events of the move are dispatched by the shell like any.
    """
    problem: RouteReplyError | None = None
    try:
        ivr.check_reply(reply)
    except RouteReplyError as exc:
        if exc.code != "bad_arg":
            raise
        problem = exc
    crashes = ivr.internal_errors
    events = submit(reply)
    if ivr.internal_errors != crashes and ivr.last_internal_error is not None \
            and ivr.last_internal_error[0] == reply.call_id:
        raise RouteReplyError("internal", f"{ivr.last_internal_error[1]}; the call was released")
    if problem is not None:
        left = next((e for e in events if isinstance(e, IvrLeave)), None)
        where = f"; the call went to {left.next}" if left is not None and left.next else ""
        raise RouteReplyError("bad_arg", f"{problem.msg}{where}")
    return events


class MailboxLookup(Protocol):
    """The voicemail boxes as the interpreter sees them
    (:class:`switchd.recorder.mailboxes.Mailboxes` in the daemon)."""

    def greeting(self, name: str) -> tuple[Path, ...] | None:
        """The files played before the beep at box ``name`` (empty: only the beep), or
        None when there is no such box."""
        ...


class Ivr:
    """The interpreter engine: one :class:`Session` per call in a flow.

    ``flows``: the generation new calls start in (:meth:`set_flows` on reload).
    ``max_var_len``: the longest value a variable may hold (characters); a CRM reply
    with a longer one is refused, a longer ``set``/``vars:`` result is cut (with an
    ``ivr.error``). ``mailboxes``: the voicemail boxes (None: no voicemail on this
    switch; a ``voicemail`` node is then an ``ivr.error``).
    """

    #: ``line.error`` only matters for a refused ``Route`` (a transfer must not wait forever).
    FOLLOWS: tuple[type, ...] = (CallRouted, DtmfReceived, CallRouteFailed, CallAnswered,
                                 CallEnded, LineError)
    TAKES: tuple[type, ...] = (PromptDone, RouteReply, MessageEnded)

    def __init__(self, flows: FlowSet, *, max_var_len: int = 1024,
                 mailboxes: MailboxLookup | None = None) -> None:
        self.flows = flows
        self.max_var_len = max_var_len
        self.mailboxes = mailboxes
        #: call id -> its live session
        self.sessions: dict[str, Session] = {}
        #: Inputs the interpreter failed on (each ended its call), and the last one:
        #: (call id, the ivr.error text).
        self.internal_errors = 0
        self.last_internal_error: tuple[str, str] | None = None
        #: call id -> when the current node's key or CRM timer fires (one per call)
        self._timers: TimerHeap[str] = TimerHeap()
        self._token = 0
        self._out: list[Any] = []
        self._handlers: dict[type, Callable[[float, Any], None]] = {
            CallRouted: self._call_routed, DtmfReceived: self._dtmf,
            PromptDone: self._prompt_done, RouteReply: self._route_reply,
            MessageEnded: self._message_ended,
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
            NodeType.GOTO: self._enter_goto, NodeType.QUEUE: self._enter_queue,
            NodeType.VOICEMAIL: self._enter_voicemail,
        }

    # ------------------------------------------------------- engine protocol

    def set_flows(self, flows: FlowSet) -> None:
        """New calls start in ``flows``; calls in a flow finish on the set they started with."""
        self.flows = flows

    def handle(self, now: float, item: Any) -> list[Any]:
        """Take a followed core event or a ``PromptDone``/``RouteReply``/``MessageEnded``
        at ``now``.

        Returns events and inputs (for the core and the player), in order. Raises
        RouteReplyError (``not_found``/``not_waiting``) for a reply to a call that is
        not in a flow, not at a route_request, or late (at or after the CRM's
        deadline), before anything changed; a reply the flow cannot use is not raised
        here (see :meth:`check_reply`): the call goes to its fallback and an
        ``ivr.error`` says why. TypeError for anything else.

        Should the interpreter itself fail on the input (a bug: any other exception),
        what the input had produced is dropped and that call is ended (``ivr.error``
        ``internal error in node …``, ``ivr.exit`` outcome ``error``, ``Release``); the
        exception is not raised, so the switch and the other calls go on.
        """
        handler = self._handlers.get(type(item))
        if handler is None:
            raise TypeError(f"the IVR takes {', '.join(t.__name__ for t in self.TAKES)} and "
                            f"follows call events, not {item!r}")
        mark = len(self._out)
        try:
            handler(now, item)
        except RouteReplyError:
            del self._out[mark:]  # raised before anything changed
            raise
        except Exception as exc:
            del self._out[mark:]  # half an input's work must not reach anyone
            if not self._abort(now, getattr(item, "call_id", None), exc, item):
                raise
        return self._drain()

    def next_deadline(self) -> float | None:
        """Epoch seconds of the earliest key, CRM or recorder timeout, or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Any]:
        """Fire the timeouts due at ``now`` (menu/collect key timers, CRM timers).

        A timeout the interpreter fails on ends that call as :meth:`handle` does; the
        other timeouts due still fire.
        """
        while (due := self._timers.pop_due(now)) is not None:
            s = self.sessions.get(due[0])
            if s is None:
                continue
            mark = len(self._out)
            try:
                self._dispatch(now, s, Kind.TIMEOUT, None)
            except Exception as exc:
                del self._out[mark:]
                self._abort(now, s.call_id, exc, None)
        return self._drain()

    # ---------------------------------------------------------------- queries

    def waiting_for_route(self, call_id: str) -> bool:
        """True when ``call_id`` sits at a route_request waiting for the CRM."""
        s = self.sessions.get(call_id)
        return s is not None and s.state is State.WAITING_CRM

    def check_reply(self, reply: RouteReply) -> None:
        """Judge a CRM reply without acting on it. Raises RouteReplyError: ``not_found``,
        ``not_waiting`` or ``bad_arg`` (message naming the problem and what is allowed).

        (Whether it is late is known only at :meth:`handle`, which has the time.)
        """
        s = self._waiting_session(reply.call_id)
        problem, _ = self._judge_reply(s, reply)
        if problem is not None:
            raise RouteReplyError("bad_arg", problem)

    # ------------------------------------------------------------- the inputs

    def _call_routed(self, now: float, ev: CallRouted) -> None:
        if ev.call_id in self.sessions:
            return  # a duplicate announcement
        if ev.target.startswith(_VOICEMAIL_PREFIX):
            flow: Flow | None = _voicemail_flow(ev.target[len(_VOICEMAIL_PREFIX):])
            name = VOICEMAIL_FLOW
        elif ev.target.startswith(_FLOW_PREFIX):
            name = ev.target[len(_FLOW_PREFIX):]
            flow = self.flows.get(name)
        else:
            return  # another application's call
        if flow is None:
            known = ", ".join(sorted(self.flows.flows)) or "none"
            msg = f"no flow {name!r} is loaded (loaded: {known}); check the route and flows/"
            self._emit(IvrProblem(ev.call_id, now, name, "", "", msg))
            self._emit(IvrExit(ev.call_id, now, name, "", IvrOutcome.ERROR, ""))
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
        if s is None or ev.line != s.line:
            return
        if s.swallow and s.swallow_at == now:
            # A prompt that ended at this very instant moved the call on, and its end
            # was taken first: this key was pressed while it played, so it is that
            # prompt's (a barge-in had it), not the next node's.
            if s.swallow != _ALL:
                s.swallow -= 1
            self._ignore(s, ev.digit)
            return
        self._dispatch(now, s, Kind.KEY, ev.digit)

    def _prompt_done(self, now: float, done: PromptDone) -> None:
        s = self.sessions.get(done.call_id)
        if s is not None and done.token == s.token:
            self._dispatch(now, s, Kind.PROMPT_DONE, done)

    def _route_reply(self, now: float, reply: RouteReply) -> None:
        s = self._waiting_session(reply.call_id)
        if now >= s.crm_deadline:
            # Late, even if its timeout has not been handled yet (same instant, or a
            # busy loop): the outcome must not depend on which came first.
            node = s.node
            assert isinstance(node, RouteRequest)
            raise RouteReplyError(
                "not_waiting", f"call {reply.call_id} is not waiting for a route reply any "
                f"more: the {node.timeout_s:g} s of node {node.name} ran out; it goes to "
                f"{node.fallback}")
        self._dispatch(now, s, Kind.REPLY, reply)

    def _answered(self, now: float, ev: CallAnswered) -> None:
        s = self.sessions.get(ev.call_id)
        if s is not None:
            self._dispatch(now, s, Kind.ANSWERED, ev)

    def _route_failed(self, now: float, ev: CallRouteFailed) -> None:
        s = self.sessions.get(ev.call_id)
        if s is not None:
            self._dispatch(now, s, Kind.ROUTE_FAILED, ev)

    def _message_ended(self, now: float, ended: MessageEnded) -> None:
        s = self.sessions.get(ended.call_id)
        if s is not None:
            self._dispatch(now, s, Kind.MESSAGE_ENDED, ended)

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
                self._ignore(s, item)
            return
        action(now, s, item)
        self._flush(s)

    def _waiting_session(self, call_id: str) -> Session:
        s = self.sessions.get(call_id)
        if s is None:
            raise RouteReplyError("not_found", f"call {call_id} is not in an IVR flow")
        if s.state is not State.WAITING_CRM:
            raise RouteReplyError(
                "not_waiting", f"call {call_id} is not waiting for a route reply: it is at "
                f"node {s.node_name} ({s.state.value}) of flow {s.flow.name}")
        return s

    def _abort(self, now: float, call_id: str | None, exc: Exception, item: Any) -> bool:
        """End ``call_id``'s flow after the interpreter failed on ``item`` (its outputs
        were dropped already): ``ivr.error`` naming the node and the exception,
        ``ivr.exit`` outcome ``error``, and ``Release`` unless the call already ended
        or a person answered it. False when no flow of that call was running."""
        where = ""
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})"
        s = self.sessions.pop(call_id, None) if call_id is not None else None
        if s is None:
            if not (isinstance(item, CallRouted) and item.target.startswith(_FLOW_PREFIX)):
                return False
            # It failed before the session existed: nobody else would answer the caller.
            name = item.target[len(_FLOW_PREFIX):]
            flow, version, node = name, "", ""
            line: str | None = None
        else:
            self._timers.cancel(s.call_id)
            s.state = State.DONE
            flow, version, node, line = s.flow.name, s.flow.version, s.node_name, s.line
        assert call_id is not None
        msg = f"internal error in node {node or '(none)'}: {type(exc).__name__}: {exc}{where}"
        self.internal_errors += 1
        self.last_internal_error = (call_id, msg)
        if line is not None and not isinstance(item, CallEnded):
            self._emit(StopPrompt(call_id, line))  # whatever the dropped outputs started
            if s is not None and isinstance(s.node, Voicemail):
                # A message may be being recorded (or was asked for by what was dropped).
                self._emit(StopMessage(call_id, MessageEnd.STOPPED))
        self._emit(IvrProblem(call_id, now, flow, version, node, msg))
        self._emit(IvrExit(call_id, now, flow, version, IvrOutcome.ERROR, node))
        # A call that ended is gone; one a person answered is theirs: cutting it off
        # would be worse than the error.
        if not isinstance(item, _ENDS_OR_ANSWERS):
            self._emit(Release(call_id))
        return True

    # ---------------------------------------------------------- transitions

    def _on_prompt_done(self, now: float, s: Session, done: PromptDone) -> None:
        s.state = State.STEPPING  # nothing plays any more
        s.prompt_end = (now, done.token)
        if done.error is not None:
            self._problem(now, s, f"prompt could not be played: {done.error}")
        node = s.node
        if isinstance(node, Play | Say):
            # Keys of this instant still to come were pressed while this prompt played
            # (see the module): one is its barge-in, or all are ignored without.
            if s.swallow_at != now:
                s.swallow_at, s.swallow = now, 0
            if s.swallow != _ALL:
                s.swallow = s.swallow + 1 if node.barge_in else _ALL
            if isinstance(node, Say):
                why = "say failed" if done.error is not None else \
                    f"said {_short(render(node.value, s.vars))} as {node.kind.value}"
            else:
                why = "end of prompt"
            self._run(now, s, self._leave(now, s, node.next, why))
        elif isinstance(node, Menu | Collect):
            self._wait_keys(now, s, node)
        elif isinstance(node, Voicemail):
            # The greeting's: a key of this instant would have skipped it (see above).
            if s.swallow_at != now:
                s.swallow_at, s.swallow = now, 0
            if s.swallow != _ALL:
                s.swallow += 1
            self._record(now, s, node)

    def _on_key(self, now: float, s: Session, key: str) -> None:
        node = s.node
        if isinstance(node, Voicemail):
            # A key skips the greeting: the beep, and the message, come at once.
            self._emit(StopPrompt(s.call_id, s.line))
            s.token = 0  # no PromptDone follows a stop
            s.digits += key
            self._record(now, s, node)
        elif isinstance(node, Collect):
            self._collect_key(now, s, node, key)
        elif isinstance(node, Menu):
            # A key at the very instant its prompt ended was pressed while it played.
            playing = s.state is State.PLAYING or s.prompt_end == (now, s.token)
            if playing and not node.barge_in:
                self._ignore(s, key)  # the menu's prompts must be heard out
            else:
                self._menu_key(now, s, node, key)
        elif isinstance(node, Play | Say) and node.barge_in:
            self._run(now, s, self._leave(now, s, node.next, "barge-in", key))
        else:
            self._ignore(s, key)

    def _ignore(self, s: Session, key: str) -> None:
        """A key nothing consumes: kept for the node's ``ivr.leave`` (``ignored``)."""
        if len(s.ignored_keys) < IGNORED_MAX:
            s.ignored_keys += key
        elif not s.ignored_keys.endswith("…"):
            s.ignored_keys += "…"

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
        self._end(now, s, IvrOutcome.TRANSFERRED, f"answered on {ev.line}", release=False)

    def _on_picked_up(self, now: float, s: Session, ev: CallAnswered) -> None:
        self._end(now, s, IvrOutcome.TRANSFERRED, f"picked up on {ev.line}", release=False)

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
            self._end(now, s, IvrOutcome.HANGUP, why, release=True)

    def _on_hangup(self, now: float, s: Session, ev: CallEnded) -> None:
        # The session still lives, so the IVR did not end the call itself.
        if ev.hangup_cause is HangupCause.SYSTEM_SHUTDOWN:
            outcome, why = IvrOutcome.SHUTDOWN, "switch shutting down"
        elif ev.hangup_by == "system":
            outcome, why = IvrOutcome.SYSTEM, "call ended by the switch"
        else:
            outcome, why = IvrOutcome.CALLER_HANGUP, "caller hung up"
        self._end(now, s, outcome, why, release=False)

    def _on_message_key(self, now: float, s: Session, key: str) -> None:
        """A key while the message records: the first ``#`` pressed since recording
        started ends it (one that skipped the greeting does not count); others are
        ignored (they are in the audio)."""
        if key != "#":
            self._ignore(s, key)  # it is in the message's audio; it does not end it
            return
        if "#" not in s.digits[s.message_keys_from:]:
            s.digits += key
            # The recorder answers with MessageEnded(hash) (at once, in the daemon).
            self._emit(StopMessage(s.call_id, MessageEnd.HASH))
        else:
            self._ignore(s, key)

    def _on_message_ended(self, now: float, s: Session, ended: MessageEnded) -> None:
        node = s.node
        assert isinstance(node, Voicemail)
        self._timers.cancel(s.call_id)
        if ended.reason is MessageEnd.ERROR:
            self._problem(now, s, f"voicemail for {node.mailbox}: "
                          f"{ended.error or 'the message could not be recorded'}")
        why = f"message {ended.reason.value}, {ended.duration_s:.1f} s"
        s.state = State.STEPPING  # nothing is recorded any more: leaving stops nothing
        self._after_message(now, s, node, why)

    def _on_recorder_timeout(self, now: float, s: Session, _: None) -> None:
        node = s.node
        assert isinstance(node, Voicemail)
        self._problem(now, s, f"voicemail for {node.mailbox}: the recorder did not report the "
                      "end of the message in time; stopped")
        self._after_message(now, s, node, "recorder timeout")  # _quiet stops the message

    def _after_message(self, now: float, s: Session, node: Voicemail, why: str) -> None:
        """The message is over: on to ``next``, or the switch hangs up."""
        if node.next is not None:
            self._run(now, s, self._leave(now, s, node.next, why, s.digits or None))
        else:
            self._leave(now, s, None, why, s.digits or None)
            self._end(now, s, IvrOutcome.HANGUP, why, release=True, leave=False)

    # ------------------------------------------------------------ the nodes

    def _run(self, now: float, s: Session, name: str | None) -> None:
        """Enter node ``name`` and every instant node after it, until one waits for
        something (a prompt, keys, the CRM, a transfer) or the flow ends (None).

        No more than :data:`STEP_BUDGET` entries per instant, counted across inputs:
        a transfer that fails at once and whose ``on_fail`` leads back comes round
        through the core, one input at a time, but never waits either.
        """
        while name is not None and s.state is not State.DONE:
            if s.burst_at == now and s.burst_count >= STEP_BUDGET:
                self._fail(now, s, f"{STEP_BUDGET} nodes in one instant without waiting for "
                           f"the caller: the loop {s.path.loop()} never waits; give it a "
                           "menu, collect or play (or a transfer's on_fail that does not lead "
                           "straight back)", leave=False)
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

    def _entered(self, now: float, s: Session, prompts: tuple[str, ...]) -> None:
        node = s.node
        assert node is not None
        s.path.append(s.flow.name, node.name)
        if s.burst_at == now:
            s.burst_count += 1
        else:
            s.burst_at, s.burst_count = now, 1
        self._emit(IvrEnter(s.call_id, now, s.flow.name, s.flow.version, node.name,
                            node.type.value, ",".join(prompts) or None))

    def _leave(self, now: float, s: Session, nxt: str | None, why: str,
               digits: str | None = None) -> str | None:
        """Leave the current node (or try) for ``nxt``: silence, no timer, no play awaited;
        the keys it ignored go with its ``ivr.leave``. Returns ``nxt``."""
        self._quiet(s)
        s.state = State.STEPPING
        s.token = 0  # a PromptDone of what it played is stale now
        self._emit(IvrLeave(s.call_id, now, s.flow.name, s.flow.version, s.node_name, nxt, why,
                            digits or None, s.ignored_keys or None))
        s.ignored_keys = ""
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
            s.token = 0  # no PromptDone follows a stop
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
        s.crm_deadline = now + node.timeout_s
        self._timers.arm(s.call_id, s.crm_deadline)

    def _enter_transfer(self, now: float, s: Session, node: Transfer) -> str | None:
        if node.target.startswith(_VOICEMAIL_PREFIX):
            # Rings nobody: the node takes a message for the box, then the switch hangs up.
            vm = Voicemail(name=node.name, mark=node.mark,
                           mailbox=node.target[len(_VOICEMAIL_PREFIX):])
            s.node = vm
            return self._enter_voicemail(now, s, vm, missing=node.on_fail)
        try:
            target = _route_target(node.target)
        except ValueError as exc:
            self._problem(now, s, str(exc))
            if node.on_fail is not None:
                return self._leave(now, s, node.on_fail, "transfer target unusable")
            self._end(now, s, IvrOutcome.ERROR, "transfer target unusable", release=True)
            return None
        s.state = State.TRANSFERRING
        self._flush(s)  # the CDR has the path even if the call leaves the switch
        self._emit(Route(s.call_id, target, node.timeout_s))
        return None

    def _enter_queue(self, now: float, s: Session, node: Queue) -> None:
        # The ACD takes the call from here: the flow ends (ivr.leave, the path for the
        # CDR, ivr.exit queued), then the hand-over. The session is gone before the core
        # announces call.routed, so keys from now on are the queue's, not the flow's.
        why = f"queued in {node.queue}" + (f", priority {node.priority}" if node.priority
                                            else "")
        self._end(now, s, IvrOutcome.QUEUED, why, release=False)
        self._emit(Redirect(s.call_id, Target(TargetKind.QUEUE, node.queue), node.priority))

    def _enter_hangup(self, now: float, s: Session, _: Node) -> None:
        self._end(now, s, IvrOutcome.HANGUP, "hangup", release=True)

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

    def _enter_voicemail(self, now: float, s: Session, node: Voicemail, *,
                         missing: str | None = None) -> str | None:
        """Greeting (barge-in: a key skips it), then the message (:meth:`_record`). A box
        that does not exist goes to ``missing`` (a transfer's on_fail; default: the node's
        ``next``), or releases the call."""
        known = self.mailboxes.greeting(node.mailbox) if self.mailboxes is not None else None
        if known is None:
            why = ("voicemail is not set up on this switch" if self.mailboxes is None else
                   f"no mailbox {node.mailbox!r} (switchd check names the boxes there are)")
            self._problem(now, s, why)
            nxt = missing if missing is not None else node.next
            if nxt is not None:
                return self._leave(now, s, nxt, "no mailbox")
            self._end(now, s, IvrOutcome.ERROR, "no mailbox", release=True)
            return None
        files = self._files(now, s, node.greeting) if node.greeting else known
        if not self._play(now, s, files, True):
            self._record(now, s, node)
        return None

    def _record(self, now: float, s: Session, node: Voicemail) -> None:
        """Ask the recorder for the message; wait for its MessageEnded (with a grace timer
        in case it never comes)."""
        s.state = State.RECORDING
        s.token = 0
        s.message_keys_from = len(s.digits)  # a greeting-skipping # does not end it
        self._flush(s)  # the CDR has the path even if the caller hangs up mid-message
        self._emit(RecordMessage(s.call_id, s.line, node.mailbox, s.vars.get("caller", ""),
                                 node.max_s, node.silence_s))
        longest = node.max_s if node.max_s is not None else _LONGEST_MESSAGE_S
        self._timers.arm(s.call_id, now + longest + RECORDER_GRACE_S)

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
        """Stop whatever this session plays or records and its timer (leaving a node,
        ending)."""
        self._timers.cancel(s.call_id)
        node = s.node
        if s.state is State.PLAYING or (s.state is State.WAITING_CRM
                                        and isinstance(node, RouteRequest) and node.prompts):
            self._emit(StopPrompt(s.call_id, s.line))
        elif s.state is State.RECORDING:
            self._emit(StopMessage(s.call_id, MessageEnd.STOPPED))

    def _end(self, now: float, s: Session, outcome: IvrOutcome, why: str, *, release: bool,
             leave: bool = True) -> None:
        """The flow is over for this call: ``ivr.leave`` of the current node (to nowhere;
        ``leave=False`` when it was left already), ``ivr.exit``, and ``Release`` when the
        IVR ends the call itself."""
        if leave:
            self._leave(now, s, None, why)
        else:
            self._quiet(s)
        if release or outcome is IvrOutcome.TRANSFERRED or outcome is IvrOutcome.QUEUED:
            # Before Release (the CDR is written when the call ends) or the hand-over
            # (the flow's path is in the CDR whatever the queue does next).
            self._flush(s)
        s.state = State.DONE
        del self.sessions[s.call_id]
        self._emit(IvrExit(s.call_id, now, s.flow.name, s.flow.version, outcome, s.node_name))
        if release:
            self._emit(Release(s.call_id))

    def _fail(self, now: float, s: Session, msg: str, *, leave: bool = True) -> None:
        """A flow that cannot go on: ``ivr.error``, then the call is released."""
        self._problem(now, s, msg)
        self._end(now, s, IvrOutcome.ERROR, "error", release=True, leave=leave)

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
        path_changed = s.path.count != s.annotated_len
        vars_changed = s.vars != s.annotated_vars
        if not (path_changed or vars_changed):
            return
        s.annotated_len = s.path.count
        if vars_changed:
            s.annotated_vars = dict(s.vars)
        self._emit(Annotate(s.call_id, s.path_text() if path_changed else None,
                            s.vars_json() if vars_changed else None))

    def _emit(self, item: Any) -> None:
        self._out.append(item)

    def _drain(self) -> list[Any]:
        out, self._out = self._out, []
        return out


def _short(text: str) -> str:
    """``text`` for a ``why``: at most :data:`_SAID_MAX` characters."""
    return text if len(text) <= _SAID_MAX else text[:_SAID_MAX - 1] + "…"


def _prompt_names(node: Node) -> tuple[str, ...]:
    if isinstance(node, Play | Menu | Collect | RouteRequest):
        return node.prompts
    if isinstance(node, Voicemail):
        return node.greeting
    return ()


_VM_MARK = Mark("voicemail", 0, 0)


def _voicemail_flow(box: str) -> Flow:
    """The one-node flow a ``voicemail:BOX`` route or overflow runs: a voicemail node
    named after the box, with the box's greeting; the switch hangs up after it."""
    return Flow(name=VOICEMAIL_FLOW, version="", path=Path(VOICEMAIL_FLOW), start=box,
                nodes={box: Voicemail(name=box, mark=_VM_MARK, mailbox=box)})


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
