"""Frozen dataclasses for every event that crosses an engine boundary, and their vocabulary.

Engines return these; the shell publishes them on the bus (``switchd.bus``) and logs
them, the CTI server turns them into ``EVENT`` lines, the store writes
``CallEnded.cdr``. Times are epoch seconds (float, UTC) taken from the ``now`` the
engine was given. Fields that are states, dispositions, directions, tones, roles or
causes are Enums (``StrEnum``: they compare equal to their wire text, and
:meth:`Event.fields` turns them into that text, in this one place).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import Any, ClassVar

from switchd.lines.state import LineStatus

__all__ = [
    "AgentState",
    "AgentStateChanged",
    "BridgeChanged",
    "BridgeMember",
    "CallAnswered",
    "CallBridged",
    "CallConferenced",
    "CallConsultEnded",
    "CallConsulting",
    "CallEnded",
    "CallEvent",
    "CallHeld",
    "CallNew",
    "CallOffered",
    "CallPickedUp",
    "CallRetrieved",
    "CallRinging",
    "CallRouteFailed",
    "CallRouted",
    "CallSwitchAnswered",
    "CallTransferred",
    "Cdr",
    "ConsultEnd",
    "Direction",
    "Disposition",
    "DtmfReceived",
    "Event",
    "HangupCause",
    "IvrEnter",
    "IvrError",
    "IvrExit",
    "IvrLeave",
    "IvrOutcome",
    "IvrRouteRequest",
    "LineError",
    "SipAuthFailed",
    "SipRegistration",
    "LineState",
    "MonitorEnded",
    "MonitorStarted",
    "OfferEnd",
    "OfferWithdrawn",
    "QueueAbandon",
    "QueueCallback",
    "QueueConnected",
    "QueueExit",
    "QueueJoin",
    "QueueLeave",
    "QueueLogEntry",
    "QueueOffered",
    "QueueOverflow",
    "RecordingDone",
    "RecordingFailed",
    "RecordingMark",
    "RecordingMarks",
    "RecordingPaused",
    "RecordingResumed",
    "RecordingStarted",
    "RecordingStopped",
    "Role",
    "RouteFail",
    "Tone",
    "ToneStarted",
    "ToneStopped",
    "TransferKind",
    "VoicemailNew",
]


class Direction(StrEnum):
    """Which way a call goes, from the centre's point of view."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Disposition(StrEnum):
    """Asterisk's CDR dispositions (REFERENCE.md, CDR)."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CONGESTION = "CONGESTION"


class Tone(StrEnum):
    """What the switch plays to a line by itself (national plans in ``lines/tones.py``)."""

    DIAL = "dial"
    RINGBACK = "ringback"
    BUSY = "busy"
    CONGESTION = "congestion"
    MOH = "moh"


class Role(StrEnum):
    """A leg's part in a bridge; the media plane derives every mixing weight from these.

    ``party`` hears and is heard by the other parties; ``held`` hears music on hold and
    nobody hears it; ``listen`` hears the parties and nobody hears it; ``whisper``
    hears the parties and only the leg it coaches hears it; ``barge`` is a full party.
    """

    PARTY = "party"
    HELD = "held"
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


#: Roles a supervisor's monitor leg may take.
MONITOR_ROLES = frozenset({Role.LISTEN, Role.WHISPER, Role.BARGE})


class HangupCause(Enum):
    """Why a call ended: Q.850 cause names as FreeSWITCH spells them, with their numbers.

    ``value`` is ``(name, number)``. Q.850 (ITU-T, "Usage of cause and location in
    DSS1 and ISUP") numbers the network causes; the few causes that have no Q.850
    number take FreeSWITCH's own (``switch_types.h``: ORIGINATOR_CANCEL 487,
    SYSTEM_SHUTDOWN 701), so CDRs compare one to one with a FreeSWITCH centre's.
    """

    UNALLOCATED_NUMBER = ("UNALLOCATED_NUMBER", 1)
    NORMAL_CLEARING = ("NORMAL_CLEARING", 16)
    USER_BUSY = ("USER_BUSY", 17)
    NO_USER_RESPONSE = ("NO_USER_RESPONSE", 18)
    NO_ANSWER = ("NO_ANSWER", 19)
    CALL_REJECTED = ("CALL_REJECTED", 21)
    NORMAL_CIRCUIT_CONGESTION = ("NORMAL_CIRCUIT_CONGESTION", 34)
    ORIGINATOR_CANCEL = ("ORIGINATOR_CANCEL", 487)
    SYSTEM_SHUTDOWN = ("SYSTEM_SHUTDOWN", 701)

    @property
    def q850(self) -> int:
        """The cause number (Q.850, or FreeSWITCH's for causes Q.850 lacks)."""
        return int(self.value[1])

    def __str__(self) -> str:
        return str(self.value[0])


class OfferEnd(StrEnum):
    """Why a ringing offer stopped ringing without being answered by its line."""

    #: Its timeout passed (the phone rang out).
    TIMEOUT = "timeout"
    #: The caller hung up (or the call ended some other way).
    CALLER_GONE = "caller_gone"
    #: Another phone answered the call first (FreeSWITCH: LOSE_RACE).
    TAKEN_ELSEWHERE = "taken_elsewhere"
    #: Somebody picked the call up from another phone (FreeSWITCH: PICKED_OFF).
    PICKED_UP = "picked_up"
    #: Withdrawn on request (the ACD, a cancelled consult).
    WITHDRAWN = "withdrawn"
    #: The rung phone hung up / declined.
    DECLINED = "declined"


class ConsultEnd(StrEnum):
    """Why a consultation ended without a transfer."""

    #: The consulting party cancelled it.
    CANCEL = "cancel"
    #: The consulted phone rang out.
    NO_ANSWER = "no_answer"
    #: The consulted phone hung up while ringing.
    DECLINED = "declined"
    #: The consulted party hung up after answering.
    CONSULTED_HUNG_UP = "consulted_hung_up"
    #: The outside number consulted answered with busy tone.
    BUSY = "busy"


class TransferKind(StrEnum):
    """How a call was transferred."""

    BLIND = "blind"
    ATTENDED = "attended"


@dataclass(frozen=True, slots=True)
class BridgeMember:
    """One leg in a bridge: its line, its role, and (for ``whisper``) the line that hears it."""

    line: str
    role: Role
    to: str | None = None

    def __str__(self) -> str:
        return f"{self.line}:{self.role.value}" + (f">{self.to}" if self.to else "")


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call detail record, assembled by the core when the call ends.

    Field names follow Asterisk's CDR (uniqueid, linkedid, src, dst, clid, start,
    answer, end, duration, billsec, disposition) plus switchd's own. ``start``,
    ``answer`` and ``end`` are epoch seconds (UTC); ``answer`` is None when no person
    answered. ``duration`` = end − start and ``billsec`` = end − answer, in whole
    seconds rounded half-up like Asterisk; ``wait_s`` is the exact float time from
    start to answer (or to end when unanswered). ``disposition`` is one of
    ``ANSWERED``, ``NO ANSWER``, ``BUSY``, ``FAILED``, ``CONGESTION``;
    ``hangup_cause``/``q850`` say why it ended (:class:`HangupCause`).
    """

    uniqueid: str
    linkedid: str
    src: str
    dst: str
    clid: str
    start: float
    answer: float | None
    end: float
    duration: int
    billsec: int
    disposition: str
    direction: str
    trunk: int | None = None
    extension: int | None = None
    agent: str | None = None
    queue: str | None = None
    wait_s: float = 0.0
    ivr_path: str | None = None
    #: The IVR's variables when the call left its flow, as a JSON object text (or None).
    ivr_vars: str | None = None
    recording_id: str | None = None
    hangup_by: str | None = None
    blocked_reason: str | None = None
    dnis: str | None = None
    hangup_cause: str | None = None
    q850: int | None = None
    #: The agent's note on the call (``CALL.NOTE``); the last one given replaces earlier ones.
    note: str | None = None
    #: RTP on the call's lines at its end (the SIP board): ``"trunk/1 rx=812 lost=0 late=1
    #: jitter_ms=2.3; ext/201 …"``; None on the simulated board.
    media: str | None = None


#: Field names per event class, computed once: ``fields()`` runs for every event published.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _wire(value: Any) -> Any:
    if isinstance(value, Enum):
        return str(value) if isinstance(value, HangupCause) else value.value
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events; ``name`` is the wire name used by CTI ``EVENT`` lines."""

    name: ClassVar[str] = "event"

    def fields(self) -> dict[str, Any]:
        """Return the event's fields as wire values (Enums as their text, member tuples
        as ``line:role,…``), None values and the CDR dropped."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        out: dict[str, Any] = {}
        for name in names:
            value = getattr(self, name)
            if value is not None and not isinstance(value, _OFF_WIRE):
                out[name] = _wire(value)
        return out


@dataclass(frozen=True, slots=True)
class CallEvent(Event):
    """An event about one call; ``call_id`` is the call's ULID."""

    call_id: str
    time: float


@dataclass(frozen=True, slots=True)
class CallNew(CallEvent):
    """A call was created: inbound on a trunk, internal, or outbound from an extension."""

    name: ClassVar[str] = "call.new"
    direction: Direction
    caller: str
    callee: str
    trunk: int | None = None
    extension: int | None = None


@dataclass(frozen=True, slots=True)
class CallRinging(CallEvent):
    """A line is being rung for this call (an offer: an extension, or a trunk dialled out)."""

    name: ClassVar[str] = "call.ringing"
    line: str
    caller: str
    callee: str


@dataclass(frozen=True, slots=True)
class CallOffered(CallEvent):
    """The screen pop: extension ``line`` rings to take the call (an ACD offer, a direct
    call, a ring group, a transfer, a consultation; never a supervisor's monitor ring nor
    the agent's own click-to-dial ring), with what the agent needs before answering.

    ``agent``: the ACD agent at ``line`` when the ACD offered the call (a queue, a ring
    group), else None. ``queue``: the queue the caller waits in (None when not from a
    queue). ``wait_s``: seconds the caller has waited so far (in queues when it queued,
    else since the call started). ``ivr_vars`` is JSON object text. History of the
    customer's number (``caller`` inbound, ``callee`` outbound; internal calls have none)
    from the stored CDRs: ``new`` (1: no earlier call, 0: a returning caller), ``previous_calls``, and of the last
    one ``last_time`` (its start, ISO-8601 UTC text), ``last_agent``, ``last_extension``,
    ``last_recording`` (its recording id) and ``last_note``. ``history_error`` says why
    the history is missing when it could not be read.
    """

    name: ClassVar[str] = "call.offered"
    line: str
    agent: str | None
    caller: str
    callee: str
    dnis: str | None
    trunk: int | None
    direction: Direction
    queue: str | None
    wait_s: float
    ivr_path: str | None
    ivr_vars: str | None
    vip: bool
    #: 1 for a first-time caller, 0 for a returning one (the issue's ``new=1``).
    new: int | None = None
    previous_calls: int | None = None
    last_time: str | None = None
    last_agent: str | None = None
    last_extension: int | None = None
    last_recording: str | None = None
    last_note: str | None = None
    history_error: str | None = None


@dataclass(frozen=True, slots=True)
class CallSwitchAnswered(CallEvent):
    """The switch answered the caller's line itself (for an IVR or a queue); no person yet."""

    name: ClassVar[str] = "call.switch_answered"
    line: str


@dataclass(frozen=True, slots=True)
class CallAnswered(CallEvent):
    """The called line answered."""

    name: ClassVar[str] = "call.answered"
    line: str


@dataclass(frozen=True, slots=True)
class CallBridged(CallEvent):
    """Two lines now hear each other."""

    name: ClassVar[str] = "call.bridged"
    line_a: str
    line_b: str


@dataclass(frozen=True, slots=True)
class BridgeChanged(CallEvent):
    """A bridge of the call has new members or roles; ``members`` empty = dissolved.

    The media plane derives every mixing weight from this one event.
    """

    name: ClassVar[str] = "bridge.changed"
    bridge: str
    members: tuple[BridgeMember, ...]


@dataclass(frozen=True, slots=True)
class OfferWithdrawn(CallEvent):
    """``line`` stopped ringing for this call without answering it, for ``reason``."""

    name: ClassVar[str] = "offer.withdrawn"
    line: str
    reason: OfferEnd


@dataclass(frozen=True, slots=True)
class CallHeld(CallEvent):
    """``line`` put its peer ``held_line`` on hold; the held party hears music on hold."""

    name: ClassVar[str] = "call.held"
    line: str
    held_line: str


@dataclass(frozen=True, slots=True)
class CallRetrieved(CallEvent):
    """``line`` took its peer back off hold."""

    name: ClassVar[str] = "call.retrieved"
    line: str
    held_line: str


@dataclass(frozen=True, slots=True)
class CallTransferred(CallEvent):
    """``line`` transferred its peer to ``target`` and left the call."""

    name: ClassVar[str] = "call.transferred"
    line: str
    target: str
    kind: TransferKind = TransferKind.BLIND


@dataclass(frozen=True, slots=True)
class CallConsulting(CallEvent):
    """``line`` holds its peer ``held_line`` and rings ``target`` in a second bridge."""

    name: ClassVar[str] = "call.consulting"
    line: str
    held_line: str
    target: str


@dataclass(frozen=True, slots=True)
class CallConsultEnded(CallEvent):
    """A consultation ended without a transfer: ``line`` is back with ``held_line``."""

    name: ClassVar[str] = "call.consult_ended"
    line: str
    held_line: str
    target: str
    reason: ConsultEnd


@dataclass(frozen=True, slots=True)
class CallConferenced(CallEvent):
    """``line`` joined its held peer and the consulted party: ``lines`` all hear each other."""

    name: ClassVar[str] = "call.conferenced"
    line: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallPickedUp(CallEvent):
    """``line`` picked up the call that was ringing on ``from_lines``."""

    name: ClassVar[str] = "call.picked_up"
    line: str
    from_lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MonitorStarted(CallEvent):
    """Supervisor ``line`` monitors the call as ``mode`` (a change of mode is a new event)."""

    name: ClassVar[str] = "monitor.started"
    line: str
    mode: Role
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class MonitorEnded(CallEvent):
    """Supervisor ``line`` stopped monitoring (it hung up, or the call ended)."""

    name: ClassVar[str] = "monitor.ended"
    line: str


@dataclass(frozen=True, slots=True)
class CallEnded(CallEvent):
    """The call is over; ``cdr`` is the record the store writes."""

    name: ClassVar[str] = "call.ended"
    disposition: Disposition
    duration: int
    billsec: int
    hangup_by: str | None
    hangup_cause: HangupCause
    q850: int
    cdr: Cdr
    #: RTP figures of the call's lines (as ``Cdr.media``), None on the simulated board.
    media: str | None = None


@dataclass(frozen=True, slots=True)
class LineState(Event):
    """A line changed state through its transition table."""

    name: ClassVar[str] = "line.state"
    line: str
    state: LineStatus
    previous: LineStatus
    time: float
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class LineError(Event):
    """An action was refused because the line (or its call) was in the wrong state.

    Everything keeps its state: a refused action never leaves a line stuck.
    """

    name: ClassVar[str] = "line.error"
    line: str
    action: str
    state: LineStatus
    reason: str
    time: float
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToneStarted(Event):
    """The switch started playing ``tone`` to a line."""

    name: ClassVar[str] = "tone.started"
    line: str
    tone: Tone
    time: float
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToneStopped(Event):
    """The tone on a line stopped."""

    name: ClassVar[str] = "tone.stopped"
    line: str
    time: float
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived(CallEvent):
    """A DTMF digit was received from ``line`` (one event per key press)."""

    name: ClassVar[str] = "call.dtmf"
    line: str
    digit: str


class RouteFail(StrEnum):
    """Why a route the switch asked for (an IVR ``transfer``) rang nobody to an answer."""

    #: No target line was idle (or the group had no idle member) when it was tried, or
    #: the outside number dialled was busy.
    BUSY = "busy"
    #: Every target rang out (hunt members in turn).
    NO_ANSWER = "no_answer"
    #: The (last) rung phone refused the call.
    DECLINED = "declined"
    #: The target does not exist (an extension or group not on this switch).
    UNALLOCATED = "unallocated"
    #: No trunk was free for an outside number.
    CONGESTION = "congestion"


@dataclass(frozen=True, slots=True)
class CallRouted(CallEvent):
    """A call was routed to an application target (``flow:NAME`` or ``queue:NAME``).

    For an inbound route it comes before the switch answers the call
    (``call.switch_answered`` follows at the same instant); a ``Redirect`` sends a call
    the switch already holds. The IVR starts the flow from it, the ACD queues the caller.
    """

    name: ClassVar[str] = "call.routed"
    target: str
    line: str
    caller: str
    dnis: str | None = None
    trunk: int | None = None
    vip: bool = False
    #: A queue caller's priority as the IVR set it (``Redirect``); 0 otherwise.
    priority: int = 0
    #: A ring group's ring time asked by the router (an IVR transfer's ``timeout_s``);
    #: None = the group's own.
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class CallRouteFailed(CallEvent):
    """A ``Route`` asked of a switch-answered call ended with nobody answering.

    The call is back in the switch's hands (state ``switch``, ringback stopped);
    whoever asked (the IVR) decides what next.
    """

    name: ClassVar[str] = "call.route_failed"
    target: str
    reason: RouteFail


@dataclass(frozen=True, slots=True)
class IvrEnter(CallEvent):
    """The call entered node ``node`` (of type ``node_type``) of ``flow`` at ``version``.

    ``prompt``: the prompt names the node plays first, comma separated, if any.
    (``node_type``, not ``type``: ``type`` names the line itself in JSON mode.)
    """

    name: ClassVar[str] = "ivr.enter"
    flow: str
    version: str
    node: str
    node_type: str
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class IvrLeave(CallEvent):
    """The call left ``node``: ``next`` is where it goes (None when the flow ends there),
    ``digits`` the keys this node consumed, ``why`` the reason in words (the branch
    taken, ``timeout``, ``invalid``, ``schedule open``, ``said 88.5 as amount``, …).

    ``ignored``: the keys that arrived while this node (this try of it) was current and
    that nothing consumed — a prompt without barge-in, a ringing transfer, a CRM look-up
    — in the order pressed; None when there were none. They are not lost silently:
    ``flows try`` and the log show them.
    """

    name: ClassVar[str] = "ivr.leave"
    flow: str
    version: str
    node: str
    next: str | None
    why: str
    digits: str | None = None
    ignored: str | None = None


class IvrOutcome(StrEnum):
    """How a call left its IVR flow (``ivr.exit``)."""

    #: A person answered a ``transfer``: the call is theirs now.
    TRANSFERRED = "transferred"
    #: A ``queue`` node handed the call to an ACD queue (``Redirect``): the queue has it now.
    QUEUED = "queued"
    #: A ``hangup`` node (or a failed transfer without ``on_fail``): the switch ended the call.
    HANGUP = "hangup"
    #: The caller hung up.
    CALLER_HANGUP = "caller_hangup"
    #: The switch ended the call for another reason (not the flow, not the caller).
    SYSTEM = "system"
    #: switchd was stopping.
    SHUTDOWN = "shutdown"
    #: The flow could not go on (an ``ivr.error`` says why); the switch ended the call.
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class IvrExit(CallEvent):
    """The call left the IVR (once per call in a flow): ``outcome`` says how, ``node``
    is where it was."""

    name: ClassVar[str] = "ivr.exit"
    flow: str
    version: str
    outcome: IvrOutcome
    node: str


@dataclass(frozen=True, slots=True)
class IvrRouteRequest(CallEvent):
    """A ``route_request`` node asks the CRM where the call goes next.

    Answered with ``ROUTE.REPLY call=<call_id> next=<node> [var=value …]`` within
    ``timeout_s``; ``vars`` is the call's variables as a JSON object text.
    """

    name: ClassVar[str] = "ivr.route_request"
    flow: str
    version: str
    node: str
    caller: str
    dnis: str | None
    vars: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class IvrError(CallEvent):
    """Something in a flow could not be done at run time (a prompt that went missing, a
    value ``say`` cannot read, a bad CRM reply); the call goes on (``next``)."""

    name: ClassVar[str] = "ivr.error"
    flow: str
    version: str
    node: str
    error: str


# ----------------------------------------------------------------------------- ACD

class AgentState(StrEnum):
    """An agent's state (``agent.state`` events carry it)."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    #: Paused with a reason (``break``, ``lunch``, ``rona``, …).
    NOT_READY = "not_ready"
    #: An offer rings the agent's phone.
    RESERVED = "reserved"
    #: On a call: a queue call it answered, or a call of its own (``reason`` direct).
    ON_CALL = "on_call"
    #: After a queue call, for the agent's wrap-up time.
    WRAP_UP = "wrap_up"


class QueueExit(StrEnum):
    """Why a caller left a queue (``queue.leave``'s ``reason``)."""

    #: An agent answered.
    ANSWERED = "answered"
    #: The caller hung up while waiting (or while an agent's phone rang).
    ABANDON = "abandon"
    #: ``max_wait_s`` passed (Asterisk EXITWITHTIMEOUT).
    TIMEOUT = "timeout"
    #: Refused at join: ``max_len`` callers were waiting (Asterisk FULL).
    FULL = "full"
    #: Refused at join: no agent of the queue was logged in (Asterisk JOINEMPTY).
    JOINEMPTY = "joinempty"
    #: The last agent logged out while the caller waited (Asterisk EXITEMPTY).
    EMPTY = "empty"
    #: The caller pressed the queue's exit key (Asterisk EXITWITHKEY).
    KEY = "key"
    #: The call was taken out by the switch (it can no longer be offered).
    SYSTEM = "system"
    #: A callback the caller asked for failed every attempt.
    CALLBACK_FAILED = "callback_failed"


@dataclass(frozen=True, slots=True)
class AgentStateChanged(Event):
    """Agent ``agent`` (at ``line``, None when logged out of a phone) moved from
    ``previous`` to ``state``; ``reason`` says why (a not-ready reason such as ``break``
    or ``rona``, ``login``, ``logout``, ``offer``, ``answered``, ``wrapup_end``, …);
    ``call_id``: the call it is reserved for or on, if any."""

    name: ClassVar[str] = "agent.state"
    agent: str
    state: AgentState
    previous: AgentState
    reason: str
    time: float
    line: str | None = None
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueueJoin(CallEvent):
    """The caller joined ``queue`` at ``position`` (1 = next) with ``priority``."""

    name: ClassVar[str] = "queue.join"
    queue: str
    position: int
    priority: int
    caller: str


@dataclass(frozen=True, slots=True)
class QueueOffered(CallEvent):
    """The queue rings agent ``agent``'s phone ``line`` for the caller."""

    name: ClassVar[str] = "queue.offered"
    queue: str
    agent: str
    line: str


@dataclass(frozen=True, slots=True)
class QueueConnected(CallEvent):
    """The caller is connected at ``line``: agent ``agent`` answered its offer (the phone
    rang ``ring_s``), or the line picked the call up / a ring group's member answered
    (``ring_s`` 0; ``agent`` None when that phone is no agent's). The caller waited
    ``wait_s`` in the queue."""

    name: ClassVar[str] = "queue.connected"
    queue: str
    agent: str | None
    line: str
    wait_s: float
    ring_s: float


@dataclass(frozen=True, slots=True)
class QueueAbandon(CallEvent):
    """The caller hung up in the queue after ``wait_s`` at ``position`` (joined at
    ``orig_position``)."""

    name: ClassVar[str] = "queue.abandon"
    queue: str
    position: int
    orig_position: int
    wait_s: float


@dataclass(frozen=True, slots=True)
class QueueOverflow(CallEvent):
    """The caller left (or was refused by) the queue for ``reason`` (timeout, full,
    joinempty, empty, key) and goes to ``to`` (None: released)."""

    name: ClassVar[str] = "queue.overflow"
    queue: str
    reason: QueueExit
    wait_s: float
    to: str | None = None


@dataclass(frozen=True, slots=True)
class QueueLeave(CallEvent):
    """The caller is out of ``queue``: exactly one per ``queue.join`` (and one per
    refused join), whatever happened; ``reason`` says what, ``wait_s`` how long it
    waited (s), ``position`` where it was (0 for a refused join)."""

    name: ClassVar[str] = "queue.leave"
    queue: str
    reason: QueueExit
    wait_s: float
    position: int
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class QueueCallback(CallEvent):
    """A callback in ``queue`` for the caller of ``call_id``: ``outcome`` is ``requested``
    (the caller confirmed ``number`` and hangs up, keeping its place), ``cancelled``
    (it did not confirm), ``dialling`` (attempt ``attempt``: an agent's phone rings,
    the call placed is ``dial_call_id``), ``connected``, ``failed`` (this attempt; it
    will be tried again) or ``gave_up`` (no attempt left)."""

    name: ClassVar[str] = "queue.callback"
    queue: str
    number: str
    outcome: str
    attempt: int = 0
    dial_call_id: str | None = None
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class QueueLogEntry(Event):
    """One line of the queue_log file, in Asterisk's format (REFERENCE.md):
    ``epoch|call_id|queue|agent|EVENT|data1|data2|…``; ``agent`` is ``NONE`` when there is
    none, ``call_id`` ``NONE`` for agent events."""

    name: ClassVar[str] = "queue.log"
    time: float
    call_id: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...] = ()

    def line(self) -> str:
        """The queue_log line (no newline): whole epoch seconds, as Asterisk writes. A
        ``|`` or a line break inside a field (a caller id, a pause reason) would break the
        format: each becomes ``_``."""
        fields = (str(int(self.time)), self.call_id, self.queue, self.agent, self.event,
                  *self.data)
        return "|".join(f.translate(_QUEUE_LOG_UNSAFE) for f in fields)


#: Characters a queue_log field cannot hold (the separator, line breaks) -> ``_``.
_QUEUE_LOG_UNSAFE = str.maketrans({"|": "_", "\n": "_", "\r": "_"})


@dataclass(frozen=True, slots=True)
class RecordingMark:
    """One thing that happened in a recording, for the index (``recordings.marks``).

    ``kind``: ``start`` (a segment starts), ``stop`` (it ends), ``pause``, ``resume``,
    ``members`` (who is in the call now: ``detail`` lists ``line:role`` pairs and
    agents as ``agent=<id>``). ``at``: epoch s; ``offset_s``: seconds into the file.
    """

    at: float
    offset_s: float
    kind: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RecordingMarks:
    """A recording's marks, in order (kept off the wire: the index stores them)."""

    items: tuple[RecordingMark, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordingStarted(CallEvent):
    """Call ``call_id`` is being recorded into ``file`` (relative to the recordings
    directory). ``why``: ``answer`` / ``agent`` (the record mode's moment) or
    ``command`` (CALL.RECORD); a later segment of the same recording says so with
    ``segment`` > 1."""

    name: ClassVar[str] = "recording.started"
    recording_id: str
    file: str
    mode: str
    layout: str
    format: str
    why: str
    direction: str
    caller: str
    callee: str
    segment: int = 1


@dataclass(frozen=True, slots=True)
class RecordingPaused(CallEvent):
    """Recording paused for compliance: silence is written and the call's key presses
    are withheld from logs and events until ``recording.resumed``."""

    name: ClassVar[str] = "recording.paused"
    recording_id: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class RecordingResumed(CallEvent):
    """Recording goes on after a pause; ``digits_hidden``: key presses withheld meanwhile."""

    name: ClassVar[str] = "recording.resumed"
    recording_id: str
    user: str | None = None
    digits_hidden: int = 0


@dataclass(frozen=True, slots=True)
class RecordingStopped(CallEvent):
    """A segment ended before the call did (``why``: ``command``, or ``mode`` when the
    queue the call moved to does not record); the file stays open for a later start.
    ``digits_hidden``: when the stop ended a compliance pause, the key presses withheld
    during it (the call's keys are passed on again from now)."""

    name: ClassVar[str] = "recording.stopped"
    recording_id: str
    why: str
    user: str | None = None
    digits_hidden: int | None = None


@dataclass(frozen=True, slots=True)
class RecordingDone(CallEvent):
    """The recording is closed and indexed: ``status`` ``done`` (or ``failed`` when the
    disk refused it earlier); ``duration_s`` and ``size`` (bytes) are the file's own,
    ``sha256`` its digest (hex). ``marks`` go to the index only."""

    name: ClassVar[str] = "recording.done"
    recording_id: str
    file: str
    status: str
    duration_s: float
    size: int
    sha256: str | None = None
    marks: RecordingMarks | None = None


@dataclass(frozen=True, slots=True)
class RecordingFailed(CallEvent):
    """The disk refused the recording (full, unwritable): it stops, the call goes on.
    ``reason`` is what the OS said; what reached the file is kept."""

    name: ClassVar[str] = "recording.failed"
    recording_id: str
    file: str
    reason: str


@dataclass(frozen=True, slots=True)
class VoicemailNew(CallEvent):
    """A message was left in ``mailbox`` (message waiting): ``owner`` is who it is for
    (``agent:<id>``, ``queue:<name>``, or None), ``caller`` who left it, ``waiting`` the
    box's unheard messages."""

    name: ClassVar[str] = "voicemail.new"
    mailbox: str
    message_id: str
    caller: str
    duration_s: float
    file: str
    owner: str | None = None
    waiting: int = 1
    #: The owner agent's phone (``ext/201``) when it sits at one: its softphone gets the
    #: event (an agent's session sees events of its own line).
    line: str | None = None



@dataclass(frozen=True, slots=True)
class SipAuthFailed(Event):
    """A SIP request from ``source`` (``host:port``) failed digest authentication or came
    from an address no trunk accepts: ``method``, the ``user`` it claimed (may be empty),
    ``reason`` (``bad_credentials``, ``unknown_user``, ``rate_limited``) and how many failures that address has in the last minute."""

    name: ClassVar[str] = "sip.auth_failed"
    source: str
    method: str
    user: str
    reason: str
    failures: int
    time: float


@dataclass(frozen=True, slots=True)
class SipRegistration(Event):
    """Extension ``line``'s SIP phone registered, refreshed or dropped a contact:
    ``contacts`` is how many are bound now (0: unregistered), ``contact`` the one that
    changed, ``expires_s`` its lifetime (0 when removed or expired)."""

    name: ClassVar[str] = "sip.registration"
    line: str
    contacts: int
    contact: str
    expires_s: float
    source: str
    time: float

#: Values kept off the wire (``Event.fields``): the CDR and a recording's marks.
_OFF_WIRE = (Cdr, RecordingMarks)
