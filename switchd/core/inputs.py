"""The call core's inputs: one frozen dataclass per thing that can happen to it.

``SwitchCore.handle(now, Answer(line="ext/201"))``. Line signalling comes from the
board driver (:class:`Incoming`, :class:`OffHook`, :class:`Dial`, :class:`Answer`,
:class:`Hangup`, :class:`FarBusy`) and from the media plane (:class:`Digit`); call
control comes from CTI, the IVR and the ACD; the recorder sends :class:`Annotate`
(the recording id) and :class:`HideDigits` (a pause for compliance).
"""

from __future__ import annotations

from dataclasses import dataclass

from switchd.core.routing import Target
from switchd.engine import Input
from switchd.events import HangupCause, Role, RouteFail

__all__ = [
    "CORE_INPUTS",
    "Annotate",
    "Answer",
    "BlindTransfer",
    "Cancel",
    "Complete",
    "Conference",
    "Consult",
    "Dial",
    "Digit",
    "FarBusy",
    "Hangup",
    "HideDigits",
    "Hold",
    "HoldMusic",
    "Incoming",
    "Monitor",
    "OffHook",
    "Offer",
    "Originate",
    "Pickup",
    "Redirect",
    "Release",
    "Retrieve",
    "Route",
    "SetMonitorMode",
    "Shutdown",
    "SwitchAnswer",
    "Unrouted",
    "Withdraw",
]


@dataclass(frozen=True, slots=True)
class Incoming(Input):
    """A call arrives from the PSTN on ``trunk`` (None: the first idle trunk).

    ``blocked_reason`` set (e.g. ``blacklist``): the caller hears busy tone and the
    call ends ``CALL_REJECTED``. ``vip``: the caller is flagged VIP in contacts.
    """

    caller: str
    dnis: str
    trunk: int | None = None
    blocked_reason: str | None = None
    vip: bool = False


@dataclass(frozen=True, slots=True)
class OffHook(Input):
    """An extension lifts its handset; it hears dial tone until it dials or hangs up."""

    line: str


@dataclass(frozen=True, slots=True)
class Dial(Input):
    """Extension ``line`` dials ``number`` (another extension, or prefix + outside number)."""

    line: str
    number: str


@dataclass(frozen=True, slots=True)
class Answer(Input):
    """The party on ``line`` answers its ringing phone (or the far end of a trunk answers)."""

    line: str


@dataclass(frozen=True, slots=True)
class Hangup(Input):
    """The party on ``line`` hangs up."""

    line: str


@dataclass(frozen=True, slots=True)
class FarBusy(Input):
    """The outside number dialled on trunk ``line`` is busy."""

    line: str


@dataclass(frozen=True, slots=True)
class Digit(Input):
    """The media plane detected DTMF ``digit`` in ``line``'s audio at ``time`` (epoch s)."""

    line: str
    digit: str
    time: float | None = None


@dataclass(frozen=True, slots=True)
class SwitchAnswer(Input):
    """The switch answers the caller's ringing trunk itself (an IVR or a queue takes it)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Offer(Input):
    """Ring ``line`` for ``call_id`` for at most ``timeout_s`` seconds without connecting it.

    The caller keeps hearing what it hears. When ``line`` answers it is connected
    with the caller and every other offer of the call is withdrawn; when the call
    ends, the offer times out or another phone takes the call, the offer is
    withdrawn (``offer.withdrawn`` with the reason). Refused with a ``line.error``
    (``action`` offer, ``call_id`` this call) when ``line`` is not idle or the call is
    not in state ``switch`` (not while its own ``Route`` rings): whoever offers (the
    ACD) learns it from the event, since it may have decided on a line that went busy
    at the same instant. CoreError for an unknown call or line, a trunk, a bad timeout.
    """

    call_id: str
    line: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Withdraw(Input):
    """Stop ringing ``line`` for ``call_id``."""

    call_id: str
    line: str


@dataclass(frozen=True, slots=True)
class Hold(Input):
    """``line`` puts its connected peer on hold (the peer hears music on hold)."""

    line: str


@dataclass(frozen=True, slots=True)
class Retrieve(Input):
    """``line`` takes its held peer back."""

    line: str


@dataclass(frozen=True, slots=True)
class BlindTransfer(Input):
    """``line`` sends its peer to extension ``number`` and leaves the call.

    ``outside``: ``number`` is an outside number (1-32 of 0-9 * #), rung on the first
    idle trunk; the peer hears ringback and, unanswered, is rung back to ``line``.
    Raises CoreError: not_found (no such extension), busy (the extension is not idle,
    no trunk is idle), bad_arg (an outside number that is not digits).
    """

    line: str
    number: str
    outside: bool = False


@dataclass(frozen=True, slots=True)
class Consult(Input):
    """``line`` holds its peer and rings extension ``number`` in a second bridge.

    ``outside``: ``number`` is an outside number, rung on the first idle trunk (a
    consultation with someone outside the centre). Errors as :class:`BlindTransfer`.
    """

    line: str
    number: str
    outside: bool = False


@dataclass(frozen=True, slots=True)
class Complete(Input):
    """The consulting ``line`` joins its held peer with the consulted party and leaves."""

    line: str


@dataclass(frozen=True, slots=True)
class Cancel(Input):
    """The consulting ``line`` drops the consultation and is back with its held peer."""

    line: str


@dataclass(frozen=True, slots=True)
class Conference(Input):
    """The consulting ``line`` joins its held peer and the consulted party: all three talk."""

    line: str


@dataclass(frozen=True, slots=True)
class Monitor(Input):
    """Supervisor extension ``line`` monitors ``call_id`` as ``mode`` (listen, whisper, barge).

    The supervisor's phone rings; when it answers it joins the call's main bridge.
    ``agent``: the line a whisper goes to (default: the party on an extension — the
    agent, never the customer, whichever way the call goes).
    """

    line: str
    call_id: str
    mode: Role
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class SetMonitorMode(Input):
    """Supervisor ``line``, already monitoring, switches to ``mode`` live."""

    line: str
    mode: Role


@dataclass(frozen=True, slots=True)
class Pickup(Input):
    """Extension ``line`` (idle) picks up ``call_id``, which is ringing elsewhere or held
    by the switch (waiting in a queue, in an IVR flow): a supervisor's "grab".

    Every ringing offer of the call is withdrawn (``picked_up``) and ``line`` is
    connected with the caller at once (``call.picked_up``, ``call.answered``); the ACD
    takes a queued caller out of its queue as answered by that line.
    """

    line: str
    call_id: str


@dataclass(frozen=True, slots=True)
class Shutdown(Input):
    """Stop taking calls and end every live call with its CDR (``SYSTEM_SHUTDOWN``)."""


@dataclass(frozen=True, slots=True)
class Route(Input):
    """Ring ``target`` for a switch-answered call (an IVR ``transfer`` node).

    ``target``: an extension, a ring group (the ACD rings it, as for an inbound route)
    or an outside ``number`` (rung on the first idle trunk). The call is
    ``switch_routing`` and the caller hears ringback while it rings; the first to
    answer is connected (``call.answered``). When nobody answers (busy, rang out,
    declined, no trunk) the call is back in ``switch`` and ``call.route_failed`` says
    why. ``timeout_s``: ring time (per member of a hunt group); None = the group's or the dial
    plan's. Refused (``line.error``) unless the call is in state ``switch`` with nothing
    ringing.
    """

    call_id: str
    target: Target
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class Release(Input):
    """The switch ends a call it holds (an IVR ``hangup`` node, a queue that refuses or
    times a caller out): CDR ``hangup_by`` is ``system`` and the cause ``cause``
    (NORMAL_CLEARING by default); with USER_BUSY an unanswered call's disposition is BUSY."""

    call_id: str
    cause: HangupCause = HangupCause.NORMAL_CLEARING


@dataclass(frozen=True, slots=True)
class Redirect(Input):
    """Hand ``call_id`` to an application of the switch: a ``flow:`` or a ``queue:``.

    ``call.routed`` announces it (with ``priority``, for a queue) and the switch keeps
    holding the caller. Without ``line`` the call must be switch-held (state ``switch``,
    nothing ringing): the IVR sends its caller to a queue, the ACD a caller to its
    overflow flow or queue. With ``line`` (an agent's phone in a plain answered call),
    that line leaves and its peer goes back to the switch (state ``switch``): a blind
    transfer into a queue or a flow; the CDR keeps the first answer and its agent until
    another agent answers. Refused with ``line.error`` in any other state; CoreError
    for an unknown call/line or a target that is not a flow or a queue.
    """

    call_id: str
    target: Target
    priority: int = 0
    line: str | None = None


@dataclass(frozen=True, slots=True)
class Originate(Input):
    """Place a call for extension ``line``: ring it first, and when it answers dial
    ``number`` over the first idle trunk (a queue callback: the agent first, then the
    customer).

    A new outbound call (``call.new`` with ``extension``) rings ``line`` for
    ``timeout_s`` seconds; unanswered or declined, it ends NO ANSWER. Once answered,
    the extension hears ringback while ``number`` rings for ``dial_timeout_s`` (None:
    the dial plan's ring time); busy, no trunk or no answer end it as an agent's own
    outbound call would. Refused with ``line.error`` (action ``originate``) when
    ``line`` is not idle; CoreError for an unknown line, a trunk, a bad number or time.
    """

    line: str
    number: str
    timeout_s: float
    dial_timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class Unrouted(Input):
    """The ACD rang nobody to an answer for ``call_id``, routed to a ring group: for
    ``reason`` (busy: no member was free; no_answer, declined: every member it rang).

    Whatever still rings is withdrawn and the call goes on as any route that failed:
    an inbound caller hears busy tone (busy) or is released NO ANSWER; a switch-held
    call's ``Route`` reports ``call.route_failed``. Ignored when the call is no longer
    routing, ringing or switch_routing (it ended, the switch answered it, somebody
    picked it up at the same instant).
    """

    call_id: str
    reason: RouteFail


@dataclass(frozen=True, slots=True)
class HoldMusic(Input):
    """Music on hold on (``on``) or off for the caller of switch-held ``call_id`` (a
    queue). Ignored for an ended call; refused (``line.error``) unless the call is in
    state ``switch``. An agent answering stops it, as any connect does."""

    call_id: str
    on: bool = True


@dataclass(frozen=True, slots=True)
class Annotate(Input):
    """Facts for the call's CDR from the engine that holds the call (the IVR).

    ``ivr_path``: the nodes visited so far (``flow:node>node>…``), replacing the last
    value; ``ivr_vars``: the variables as JSON object text. From the ACD: ``agent`` (the
    agent id of the agent who answered; "" clears it), ``queue`` (the queue the call was
    in last) and
    ``wait_s`` (seconds waited in queues so far, replacing the CDR's start-to-answer
    wait) and ``waiting`` (True: the caller starts waiting in a queue now; False: it
    stopped). From the recorder: ``recording_id`` (the CDR's). From CTI: ``note`` (the
    agent's ``CALL.NOTE``, replacing an earlier one). The core keeps the queue
    wait clock itself, with its own ``now``, so the CDR's ``wait_s`` is exact for a
    caller who hangs up in the queue too; an answer stops the clock. None leaves a field as it is. Unknown or ended calls are ignored
    (an engine may lag the caller's hang-up).
    """

    call_id: str
    ivr_path: str | None = None
    ivr_vars: str | None = None
    agent: str | None = None
    queue: str | None = None
    wait_s: float | None = None
    waiting: bool | None = None
    #: From the recorder: the id of the call's recording (the CDR's ``recording_id``).
    recording_id: str | None = None
    #: From CTI (``CALL.NOTE``): the agent's note for the CDR, replacing an earlier one.
    note: str | None = None


@dataclass(frozen=True, slots=True)
class HideDigits(Input):
    """From the recorder: while ``on``, the call's key presses are withheld (no
    ``call.dtmf`` event, so they are neither logged, sent to clients nor seen by a flow):
    a recording paused for compliance while a card number is keyed.

    The core only counts them: ``SwitchCore.hidden_digits(call_id)`` is the number
    withheld since ``on`` was last set (a repeated ``on`` keeps counting); the recorder
    reads it as the pause ends (``recording.resumed digits_hidden=``), because no event
    may carry a withheld key. ``HideDigits(on=False)`` ends it. Emits nothing; ignored
    for an unknown or ended call (the recorder may lag the hang-up)."""

    call_id: str
    on: bool = True


#: Every input type the call core takes (what the shell routes to it).
CORE_INPUTS: tuple[type[Input], ...] = (
    Incoming, OffHook, Dial, Answer, Hangup, FarBusy, Digit, SwitchAnswer, Offer, Withdraw,
    Hold, Retrieve, BlindTransfer, Consult, Complete, Cancel, Conference, Monitor,
    SetMonitorMode, Pickup, Shutdown, Route, Release, Annotate, Redirect, HoldMusic, Originate,
    Unrouted, HideDigits,
)
