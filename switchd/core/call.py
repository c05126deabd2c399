"""A call: its state table, its parties and the facts its CDR is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["CALL_TRANSITIONS", "Call", "CallState", "Disposition", "Direction"]


class Direction(Enum):
    """Which way a call goes, from the centre's point of view."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Disposition(Enum):
    """Asterisk's CDR dispositions (REFERENCE.md, CDR)."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CONGESTION = "CONGESTION"


class CallState(Enum):
    """The life of a call."""

    ROUTING = "routing"
    RINGING = "ringing"
    ANSWERED = "answered"
    #: A blind transfer's target is ringing; the remaining party hears ringback.
    TRANSFERRING = "transferring"
    #: The caller hears busy/congestion tone until it hangs up or the tone times out.
    TONE = "tone"
    ENDED = "ended"


_C = CallState
#: state -> states it may move to. Every state but ENDED may end: a call can always be cleared.
CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    _C.ROUTING: frozenset({_C.RINGING, _C.TONE, _C.ANSWERED, _C.ENDED}),
    _C.RINGING: frozenset({_C.ANSWERED, _C.TONE, _C.ENDED}),
    _C.ANSWERED: frozenset({_C.TRANSFERRING, _C.ENDED}),
    _C.TRANSFERRING: frozenset({_C.ANSWERED, _C.ENDED}),
    _C.TONE: frozenset({_C.ENDED}),
    _C.ENDED: frozenset(),
}


@dataclass(slots=True, eq=False)
class Call:
    """One call and everything the core tracks about it.

    ``a_line`` is the caller's side (a trunk for inbound, an extension otherwise);
    ``b_line`` is the connected callee, or None until someone answers. ``ringing``
    holds the lines being rung right now (several for a ``ringall`` group), ``hunt``
    the members still to try. Times are epoch seconds.
    """

    call_id: str
    direction: Direction
    caller: str
    callee: str
    start: float
    a_line: str
    dnis: str | None = None
    trunk: int | None = None
    extension: int | None = None
    state: CallState = CallState.ROUTING
    b_line: str | None = None
    ringing: list[str] = field(default_factory=list)
    hunt: list[int] = field(default_factory=list)
    hunt_timeout_s: float | None = None
    answer_time: float | None = None
    failure: Disposition | None = None
    blocked_reason: str | None = None
    #: Who ended the call for the CDR: ``caller``, ``callee`` or ``system``.
    hangup_by: str | None = None
    hangup_line: str | None = None
    vip: bool = False
    #: A blind transfer in progress: the line that left, so a failed transfer can recall it.
    transfer_from: str | None = None
    recalling: bool = False
    timer_token: int = 0
    #: The line that placed the call (the trunk of an inbound call, the dialling extension
    #: otherwise). ``a_line`` changes in a blind transfer; this does not, so the CDR's
    #: ``hangup_by`` still tells the calling side from the called side afterwards.
    origin_line: str | None = None

    def __post_init__(self) -> None:
        if self.origin_line is None:
            self.origin_line = self.a_line

    def can_move(self, to: CallState) -> bool:
        """True when ``CALL_TRANSITIONS`` allows moving from the current state to ``to``."""
        return to in CALL_TRANSITIONS[self.state]

    def peer_of(self, line: str) -> str | None:
        """Return the other connected party of ``line`` in this call, if any."""
        if line == self.a_line:
            return self.b_line
        if line == self.b_line:
            return self.a_line
        return None

    def lines(self) -> list[str]:
        """Every line this call holds right now."""
        out = [self.a_line]
        if self.b_line is not None:
            out.append(self.b_line)
        out.extend(x for x in self.ringing if x not in out)
        return out
