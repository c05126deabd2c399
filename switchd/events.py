"""Frozen dataclasses for every event that crosses an engine boundary.

Engines return these; the shell publishes them on the bus (``switchd.bus``), the CTI
server turns them into ``EVENT`` lines, the store writes ``CallEnded.cdr``. Times are
epoch seconds (float, UTC) taken from the ``now`` the engine was given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "CallAnswered",
    "CallBridged",
    "CallEnded",
    "CallEvent",
    "CallHeld",
    "CallNew",
    "CallRetrieved",
    "CallRinging",
    "CallTransferred",
    "Cdr",
    "DtmfReceived",
    "Event",
    "LineError",
    "LineState",
    "ToneStarted",
    "ToneStopped",
]


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call detail record, assembled by the core when the call ends.

    Field names follow Asterisk's CDR (uniqueid, linkedid, src, dst, clid, start,
    answer, end, duration, billsec, disposition) plus switchd's own. ``start``,
    ``answer`` and ``end`` are epoch seconds (UTC); ``answer`` is None when the call
    was never answered. ``duration`` = end − start and ``billsec`` = end − answer, in
    whole seconds rounded half-up like Asterisk; ``wait_s`` is the exact float time
    from start to answer (or to end when unanswered). ``disposition`` is one of
    ``ANSWERED``, ``NO ANSWER``, ``BUSY``, ``FAILED``, ``CONGESTION``.
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
    recording_id: str | None = None
    hangup_by: str | None = None
    blocked_reason: str | None = None
    dnis: str | None = None


#: Field names per event class, computed once: ``fields()`` runs for every event published.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events; ``name`` is the wire name used by CTI ``EVENT`` lines."""

    name: ClassVar[str] = "event"

    def fields(self) -> dict[str, Any]:
        """Return the event's fields for the wire, None values and the CDR dropped."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        out: dict[str, Any] = {}
        for name in names:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Cdr):
                out[name] = value
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
    direction: str
    caller: str
    callee: str
    trunk: int | None = None
    extension: int | None = None


@dataclass(frozen=True, slots=True)
class CallRinging(CallEvent):
    """A line is being rung for this call (an extension, or a trunk dialled out)."""

    name: ClassVar[str] = "call.ringing"
    line: str
    caller: str
    callee: str


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
    """``line`` blind-transferred its peer to ``target`` and left the call."""

    name: ClassVar[str] = "call.transferred"
    line: str
    target: str
    kind: str = "blind"


@dataclass(frozen=True, slots=True)
class CallEnded(CallEvent):
    """The call is over; ``cdr`` is the record the store writes."""

    name: ClassVar[str] = "call.ended"
    disposition: str
    duration: int
    billsec: int
    hangup_by: str | None
    cdr: Cdr


@dataclass(frozen=True, slots=True)
class LineState(Event):
    """A line changed state through its transition table."""

    name: ClassVar[str] = "line.state"
    line: str
    state: str
    previous: str
    time: float
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class LineError(Event):
    """An action was refused because the line was in the wrong state.

    The line keeps its state: a refused action never leaves a line stuck.
    """

    name: ClassVar[str] = "line.error"
    line: str
    action: str
    state: str
    reason: str
    time: float
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToneStarted(Event):
    """The switch started playing ``tone`` (dial, ringback, busy, congestion, moh) to a line."""

    name: ClassVar[str] = "tone.started"
    line: str
    tone: str
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
