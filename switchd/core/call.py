"""A call: its state table, its legs, bridges, offers and monitors, and its CDR facts.

A call is one customer interaction (one CDR). It owns:

* **legs** — a line's part in the call once that line is connected (``party``),
  on hold, or monitoring; keyed by line name (a line serves one call at a time);
* **bridges** — sets of (leg, role) members; the media plane mixes each bridge
  from its members and roles alone (``bridge.changed``);
* **offers** — lines being rung for the call that are not connected yet (a ring
  group, an ACD offer, a transfer or consult target, a supervisor's phone).

Every one of them is released when the call ends, whatever path it took, because
they live nowhere else (DESIGN §3, §9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum

from switchd.events import (
    BridgeMember,
    Direction,
    Disposition,
    HangupCause,
    Role,
)

__all__ = [
    "CALL_TRANSITIONS",
    "Bridge",
    "Call",
    "CallInput",
    "CallState",
    "Direction",
    "Disposition",
    "Offer",
    "OfferPurpose",
]


class CallState(StrEnum):
    """The life of a call."""

    ROUTING = "routing"
    #: Routed offers ring (an extension, a ring group, a trunk dialled out); the
    #: caller hears ringback.
    RINGING = "ringing"
    #: The switch answered the caller itself (IVR, queue) and holds it; ``Offer``s may
    #: ring phones for it (ACD); if nobody answers the call stays here.
    SWITCH = "switch"
    #: The switch holds the call and its own ``Route`` rings a target (an IVR
    #: ``transfer``: an extension, a ring group, an outside number); the caller hears
    #: ringback. An answer connects it (``answered``); when nobody answers the call is
    #: back in ``switch`` (``call.route_failed``).
    SWITCH_ROUTING = "switch_routing"
    #: The switch rings an extension to place a call for it (``Originate``, a queue
    #: callback); when it answers the far end is dialled (``ringing``).
    ORIGINATING = "originating"
    #: Two or more parties connected in the main bridge (one may be on hold).
    ANSWERED = "answered"
    #: A party consults a third in a second bridge while its peer is held.
    CONSULTING = "consulting"
    #: Three or more parties hear each other in one bridge.
    CONFERENCE = "conference"
    #: A blind transfer's target is ringing; the remaining party hears ringback.
    TRANSFERRING = "transferring"
    #: The transfer target did not answer; the transferring extension is rung back.
    RECALLING = "recalling"
    #: The caller hears busy/congestion tone until it hangs up or the tone times out.
    TONE = "tone"
    ENDED = "ended"


class CallInput(Enum):
    """What moves a call from one state to another."""

    #: The core rings a phone or trunk for the call's own routing (a route, a dialled
    #: number, a transfer target, a recall).
    RING = "ring"
    #: An ``Offer`` (the ACD) rings a phone: for a caller in a queue (the switch holds
    #: it), or for a call routed to a ring group (unanswered; the caller hears ringback).
    OFFER = "offer"
    #: The switch's ``Route`` of a call it holds starts ringing its target.
    ROUTE = "route"
    #: Nothing of that ``Route`` rang to an answer: the switch holds the call again.
    ROUTE_FAILED = "route_failed"
    SWITCH_ANSWER = "switch_answer"
    ANSWER = "answer"
    FAIL = "fail"
    TRANSFER = "transfer"
    RECALL = "recall"
    CONSULT = "consult"
    COMPLETE = "complete"
    CANCEL = "cancel"
    CONFERENCE = "conference"
    PARTY_LEFT = "party_left"
    #: An agent sends its answered caller back to the switch (a queue or a flow).
    REDIRECT = "redirect"
    #: ``Originate`` rings the extension that places the call.
    ORIGINATE = "originate"
    END = "end"


_C = CallState
_I = CallInput

#: (state, input) -> next state. Anything not listed is refused (h11 ``_state.py`` style).
CALL_TRANSITIONS: dict[tuple[CallState, CallInput], CallState] = {
    (_C.ROUTING, _I.RING): _C.RINGING,
    (_C.ROUTING, _I.OFFER): _C.RINGING,  # a ring group's member (the ACD rings it)
    (_C.ROUTING, _I.SWITCH_ANSWER): _C.SWITCH,
    (_C.ROUTING, _I.FAIL): _C.TONE,
    (_C.ROUTING, _I.ORIGINATE): _C.ORIGINATING,
    (_C.ORIGINATING, _I.RING): _C.RINGING,  # it answered: the far end rings
    (_C.ORIGINATING, _I.FAIL): _C.TONE,     # no trunk for the far end
    (_C.RINGING, _I.OFFER): _C.RINGING,  # the next member of a hunt group
    (_C.RINGING, _I.ANSWER): _C.ANSWERED,
    (_C.RINGING, _I.FAIL): _C.TONE,
    (_C.RINGING, _I.SWITCH_ANSWER): _C.SWITCH,
    (_C.SWITCH, _I.OFFER): _C.SWITCH,  # an ACD offer; none while a Route rings
    (_C.SWITCH, _I.ANSWER): _C.ANSWERED,
    (_C.SWITCH, _I.FAIL): _C.TONE,
    (_C.SWITCH, _I.ROUTE): _C.SWITCH_ROUTING,
    (_C.SWITCH_ROUTING, _I.RING): _C.SWITCH_ROUTING,  # the extension or number it rings
    (_C.SWITCH_ROUTING, _I.OFFER): _C.SWITCH_ROUTING,  # a member of the group it rings
    (_C.SWITCH_ROUTING, _I.ANSWER): _C.ANSWERED,
    (_C.SWITCH_ROUTING, _I.ROUTE_FAILED): _C.SWITCH,
    (_C.ANSWERED, _I.TRANSFER): _C.TRANSFERRING,
    (_C.ANSWERED, _I.REDIRECT): _C.SWITCH,
    (_C.ANSWERED, _I.CONSULT): _C.CONSULTING,
    (_C.CONSULTING, _I.COMPLETE): _C.ANSWERED,
    (_C.CONSULTING, _I.CANCEL): _C.ANSWERED,
    (_C.CONSULTING, _I.CONFERENCE): _C.CONFERENCE,
    # The consulting party hung up before its target answered: the held party is
    # transferred to the ringing target (semi-attended transfer).
    (_C.CONSULTING, _I.TRANSFER): _C.TRANSFERRING,
    (_C.CONFERENCE, _I.PARTY_LEFT): _C.ANSWERED,
    (_C.TRANSFERRING, _I.RING): _C.TRANSFERRING,  # the transfer target rings
    (_C.TRANSFERRING, _I.ANSWER): _C.ANSWERED,
    (_C.TRANSFERRING, _I.RECALL): _C.RECALLING,
    (_C.RECALLING, _I.RING): _C.RECALLING,  # the transferring phone rings back
    (_C.RECALLING, _I.ANSWER): _C.ANSWERED,
}
# Every state but ENDED may end: a call can always be cleared.
for _state in CallState:
    if _state is not _C.ENDED:
        CALL_TRANSITIONS[(_state, _I.END)] = _C.ENDED


class OfferPurpose(StrEnum):
    """What answering an offer does."""

    #: Connect the answering line with the call's anchor (routing, ACD, transfer, recall).
    CONNECT = "connect"
    #: Connect it with the consulting party in the consult bridge.
    CONSULT = "consult"
    #: Join the main bridge as a supervisor (listen/whisper/barge).
    MONITOR = "monitor"
    #: The extension an ``Originate`` places the call for: answering dials the far end.
    ORIGINATE = "originate"


@dataclass(slots=True, eq=False)
class Offer:
    """A line ringing for the call. ``deadline`` is epoch seconds; ``routed`` offers are
    the core's own (an extension or number route, a transfer, a consultation, a recall,
    ``Originate``): when the last one ends unanswered the core fails the call, recalls
    or reports ``call.route_failed``; other offers (the ACD's, for queues and ring
    groups) only report ``offer.withdrawn`` and the ACD decides. ``number``: what a trunk rung for a route
    dials (``call.ringing``'s callee), when that is not the call's own callee."""

    line: str
    purpose: OfferPurpose
    deadline: float
    routed: bool
    mode: Role | None = None
    agent: str | None = None
    number: str | None = None


@dataclass(slots=True, eq=False)
class Bridge:
    """Members (line -> role) that the media plane mixes together; ``whisper_to`` maps a
    whispering supervisor's line to the one line that hears it."""

    bridge_id: str
    members: dict[str, Role] = field(default_factory=dict)
    whisper_to: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> tuple[BridgeMember, ...]:
        """The members as frozen values, in join order."""
        return tuple(BridgeMember(line, role, self.whisper_to.get(line))
                     for line, role in self.members.items())

    def parties(self) -> list[str]:
        """Lines that take part in the conversation (party or barge), in join order."""
        return [ln for ln, r in self.members.items() if r in (Role.PARTY, Role.BARGE)]


@dataclass(slots=True, eq=False)
class Call:
    """One call and everything the core tracks about it.

    ``anchor`` is the customer's side: the line that placed the call, or, after
    that line transferred the call away, the party it left behind. When the anchor
    hangs up, the call ends. ``origin_line`` never changes (the CDR's ``hangup_by``
    tells the calling side from the called side with it). Times are epoch seconds.
    """

    call_id: str
    direction: Direction
    caller: str
    callee: str
    start: float
    anchor: str
    dnis: str | None = None
    trunk: int | None = None
    extension: int | None = None
    state: CallState = CallState.ROUTING
    #: Lines connected in the call (party, held or monitoring), in the order they joined.
    legs: dict[str, None] = field(default_factory=dict)
    bridges: dict[str, Bridge] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    #: supervisor line -> the line its whisper goes to (None for listen/barge)
    monitors: dict[str, str | None] = field(default_factory=dict)
    #: ``Originate``: how long the far end rings once the extension answered.
    dial_timeout_s: float | None = None
    answer_time: float | None = None
    switch_answer_time: float | None = None
    failure: Disposition | None = None
    cause: HangupCause | None = None
    blocked_reason: str | None = None
    #: Who ended the call for the CDR: ``caller``, ``callee`` or ``system``.
    hangup_by: str | None = None
    hangup_line: str | None = None
    vip: bool = False
    #: The line that left by a blind transfer (rung back if the target does not answer).
    transfer_from: str | None = None
    #: During a consultation: who consults, who is held, and the consulted line.
    consulter: str | None = None
    held_party: str | None = None
    consulted: str | None = None
    #: The customer's conversation: the bridge the call was first connected in. It keeps
    #: its id through hold, transfer, consultation and conference (a consultation opens
    #: a second bridge and merges back into this one); supervisors join it.
    main_id: str | None = None
    origin_line: str | None = None
    #: What the ringing ``Route`` was asked to ring (``extension:201``), kept for
    #: ``call.route_failed`` to name; set in ``switch_routing``, None otherwise. Data
    #: only: whether a route rings is the state, never this field.
    route_target: str | None = None
    #: CDR facts from the engine that holds the call (``Annotate``): the IVR path
    #: (``flow:node>node``) and its variables as JSON object text.
    ivr_path: str | None = None
    ivr_vars: str | None = None
    #: CDR facts from the ACD: the agent who answered, the last queue, seconds waited
    #: in queues (None: the CDR's wait is start to answer).
    agent: str | None = None
    queue: str | None = None
    queue_wait_s: float | None = None
    #: When the caller's current wait in a queue started (None: not waiting in one).
    queue_since: float | None = None
    #: From the recorder (``Annotate``): the id of the call's recording, for the CDR.
    recording_id: str | None = None
    #: From CTI (``Annotate``, ``CALL.NOTE``): the agent's note, for the CDR; the last
    #: one given replaces earlier ones.
    note: str | None = None
    #: ``HideDigits``: while True the call's key presses make no ``call.dtmf`` (a
    #: recording paused for compliance while a card number is keyed); they are only
    #: counted in ``digits_hidden`` (reset by each ``HideDigits(on=True)``). Data beside
    #: the call's state, not a state: it changes nothing the call table decides.
    hide_digits: bool = False
    digits_hidden: int = 0
    #: Lines that were a party of the call and left it (a transfer, a consultation, a
    #: conference): who may still note the call while it goes on (``CALL.NOTE``).
    former_legs: set[str] = field(default_factory=set)
    _bridge_seq: int = 0

    def __post_init__(self) -> None:
        if self.origin_line is None:
            self.origin_line = self.anchor

    def can(self, what: CallInput) -> bool:
        """True when ``CALL_TRANSITIONS`` has an entry for (state, ``what``)."""
        return (self.state, what) in CALL_TRANSITIONS

    def new_bridge(self) -> Bridge:
        """Create and register a bridge with the next id (``<call>/b1``, ``/b2``, …)."""
        self._bridge_seq += 1
        b = Bridge(f"{self.call_id}/b{self._bridge_seq}")
        self.bridges[b.bridge_id] = b
        return b

    def bridge_of(self, line: str) -> Bridge | None:
        """The bridge ``line`` is a member of, or None."""
        for b in self.bridges.values():
            if line in b.members:
                return b
        return None

    @property
    def main(self) -> Bridge | None:
        """The customer's conversation (see :attr:`main_id`), or None before anyone connected."""
        return self.bridges.get(self.main_id) if self.main_id is not None else None

    def peer_of(self, line: str) -> str | None:
        """The one other party or held member in ``line``'s bridge, if there is exactly one."""
        b = self.bridge_of(line)
        if b is None:
            return None
        others = [ln for ln, r in b.members.items()
                  if ln != line and r in (Role.PARTY, Role.HELD, Role.BARGE)]
        return others[0] if len(others) == 1 else None

    def lines(self) -> list[str]:
        """Every line this call holds right now: the anchor, other legs, then ringing offers."""
        out = [self.anchor]
        out.extend(x for x in self.legs if x != self.anchor)
        out.extend(x for x in self.offers if x not in out)
        return out
