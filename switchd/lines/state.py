"""Line state: the transition table every trunk and extension obeys.

A line changes state only through :data:`TRANSITIONS` (h11 ``_state.py`` style).
An input that has no entry for the line's current state is *refused*: the caller
gets a reason string and the line keeps its state, so a hook flash, answer or
hangup in the wrong state can never leave a line stuck half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

__all__ = [
    "TRANSITIONS",
    "Line",
    "LineInput",
    "LineKind",
    "LineStatus",
    "line_name",
]


class LineKind(StrEnum):
    """What sits on the far side of a line: the PSTN (trunk, FXO) or an agent phone (extension, FXS)."""

    TRUNK = "trunk"
    EXTENSION = "ext"


class LineStatus(StrEnum):
    """The states of one line (a port of the voice board)."""

    IDLE = "idle"
    #: An extension lifted its handset and hears dial tone.
    OFFHOOK = "offhook"
    #: Digits were dialled (extension) or the trunk was seized to dial out; the switch is routing.
    DIALING = "dialing"
    #: This line is being rung: an extension's phone rings, a trunk's inbound call waits for
    #: the switch to connect it, or the far end of an outbound trunk call is being alerted.
    ALERTING = "alerting"
    #: This line placed the call and hears ringback while the other side is alerted.
    RINGBACK = "ringback"
    CONNECTED = "connected"
    #: This line's party was put on hold by its peer and hears music on hold.
    HELD = "held"
    #: This line hears busy or congestion tone and waits to be released.
    TONE = "tone"


class LineInput(Enum):
    """What can happen to a line."""

    OFFHOOK = "offhook"
    DIAL = "dial"
    ALERT = "alert"
    RINGBACK = "ringback"
    ANSWER = "answer"
    CONNECT = "connect"
    HOLD = "hold"
    RETRIEVE = "retrieve"
    TONE = "tone"
    HANGUP = "hangup"
    RELEASE = "release"


_S = LineStatus
_I = LineInput
_BUSY_STATES = tuple(s for s in LineStatus if s is not LineStatus.IDLE)

#: state -> input -> next state. Anything not listed is refused.
TRANSITIONS: dict[LineStatus, dict[LineInput, LineStatus]] = {
    _S.IDLE: {_I.OFFHOOK: _S.OFFHOOK, _I.DIAL: _S.DIALING, _I.ALERT: _S.ALERTING},
    _S.OFFHOOK: {_I.DIAL: _S.DIALING, _I.TONE: _S.TONE},
    _S.DIALING: {_I.RINGBACK: _S.RINGBACK, _I.ALERT: _S.ALERTING, _I.TONE: _S.TONE,
                 _I.CONNECT: _S.CONNECTED},
    _S.ALERTING: {_I.ANSWER: _S.CONNECTED, _I.TONE: _S.TONE},
    _S.RINGBACK: {_I.CONNECT: _S.CONNECTED, _I.TONE: _S.TONE},
    _S.CONNECTED: {_I.HOLD: _S.HELD, _I.RINGBACK: _S.RINGBACK, _I.TONE: _S.TONE},
    # A held party is connected again by the one who held it (retrieve), or hears
    # ringback when it is transferred on (a consulting agent hung up before the answer).
    _S.HELD: {_I.RETRIEVE: _S.CONNECTED, _I.RINGBACK: _S.RINGBACK, _I.TONE: _S.TONE},
    _S.TONE: {},
}
# Hanging up and being released are legal from every state but idle: whatever path a
# call took, its lines can always be freed (DESIGN §9: no state released only on the happy path).
for _state in _BUSY_STATES:
    TRANSITIONS[_state][_I.HANGUP] = _S.IDLE
    TRANSITIONS[_state][_I.RELEASE] = _S.IDLE


def line_name(kind: LineKind, number: int) -> str:
    """Return the wire name of a line: ``trunk/3`` or ``ext/201``."""
    return f"{kind.value}/{number}"


@dataclass(slots=True)
class Line:
    """One port of the board and the call it currently serves.

    ``number`` is the trunk number (1..N) or the extension number (e.g. 201).
    ``call_id`` is the call that owns the line while it is not idle.
    """

    kind: LineKind
    number: int
    status: LineStatus = LineStatus.IDLE
    call_id: str | None = None
    name: str = ""
    label: str | None = None
    #: The tone the switch plays to this line (dial, ringback, busy, congestion, moh), if any.
    tone: str | None = None
    #: Epoch seconds of the last state change (None: idle since the switch started); the
    #: wallboard's "how long has this line been ringing / talking".
    since: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            self.name = line_name(self.kind, self.number)

    def next_status(self, what: LineInput) -> LineStatus | str:
        """Return the state ``what`` leads to, or a reason string when it is refused here."""
        nxt = TRANSITIONS[self.status].get(what)
        if nxt is None:
            return f"cannot {what.value} {self.name}: line is {self.status.value}"
        return nxt

    @property
    def idle(self) -> bool:
        """True when the line is free for a new call."""
        return self.status is LineStatus.IDLE
