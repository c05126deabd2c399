"""The switch core: calls, legs, bridges, offers and routing, sans-IO.

:class:`SwitchCore` implements the engine protocol (``switchd.engine``): it takes an
input (a frozen dataclass of ``switchd.core.inputs``) together with ``now`` (epoch
seconds, float) and returns the events it caused. It never sleeps, reads a socket,
opens a file or logs; the daemon's shell and the virtual-time runs (``switchd bench
calls``) drive this same code.

Two kinds of failure, kept apart on purpose:

* a request naming something that does not exist, or that cannot be served
  (unknown call, unknown line, all trunks busy, a busy target) raises
  :class:`CoreError` before anything changes;
* an input that is legal in general but not in the current state of the line or
  call (answer an idle line, hold a ringing one, complete a consultation nobody
  answered) returns a :class:`~switchd.events.LineError` event with the reason, and
  everything keeps its state. Both the line table (``lines/state.py``) and the call
  table (``core/call.py``) are consulted before anything moves.

Who hears whom is decided here and only here, as bridge members and roles
(``bridge.changed``); the media plane turns them into mixing weights.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from typing import Any

from switchd.core import inputs
from switchd.core.call import (
    CALL_TRANSITIONS,
    Bridge,
    Call,
    CallInput,
    CallState,
    Offer,
    OfferPurpose,
)
from switchd.core.ids import CallIds
from switchd.core.routing import (
    APP_KINDS,
    NUMBER_RE,
    ROUTE_KINDS,
    CoreConfig,
    Target,
    TargetKind,
)
from switchd.engine import TimerHeap
from switchd.events import (
    MONITOR_ROLES,
    BridgeChanged,
    CallAnswered,
    CallBridged,
    CallConferenced,
    CallConsultEnded,
    CallConsulting,
    CallEnded,
    CallHeld,
    CallNew,
    CallPickedUp,
    CallRetrieved,
    CallRinging,
    CallRouted,
    CallRouteFailed,
    CallSwitchAnswered,
    CallTransferred,
    Cdr,
    ConsultEnd,
    Direction,
    Disposition,
    DtmfReceived,
    Event,
    HangupCause,
    LineError,
    LineState,
    MonitorEnded,
    MonitorStarted,
    OfferEnd,
    OfferWithdrawn,
    Role,
    RouteFail,
    Tone,
    ToneStarted,
    ToneStopped,
    TransferKind,
)
from switchd.lines.state import Line, LineInput, LineKind, LineStatus, line_name

__all__ = ["CoreError", "SwitchCore", "new_call_id"]

_L = LineInput
_S = LineStatus
_CI = CallInput
_H = HangupCause
_PARTY_ROLES = (Role.PARTY, Role.HELD, Role.BARGE)


class CoreError(Exception):
    """A request the core cannot serve; nothing changed.

    ``code`` is a CTI error slug (``not_found``, ``busy``, ``bad_arg``, ``wrong_state``).
    """

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def new_call_id(events: Iterable[Event]) -> str | None:
    """The id of the call a ``call.new`` event in ``events`` announces, or None."""
    for ev in events:
        if isinstance(ev, CallNew):
            return ev.call_id
    return None


#: How an inbound or dialled call that nothing rings for fails: (disposition, the tone
#: its caller hears, the hangup cause).
_FAILURES: dict[RouteFail, tuple[Disposition, Tone, HangupCause]] = {
    RouteFail.BUSY: (Disposition.BUSY, Tone.BUSY, HangupCause.USER_BUSY),
    RouteFail.UNALLOCATED: (Disposition.FAILED, Tone.CONGESTION, HangupCause.UNALLOCATED_NUMBER),
    RouteFail.CONGESTION: (Disposition.CONGESTION, Tone.CONGESTION,
                           HangupCause.NORMAL_CIRCUIT_CONGESTION),
}


def _round_half_up(x: float) -> int:
    return int(x + 0.5) if x > 0 else 0


class SwitchCore:
    """The call-control engine for one board.

    Lines are named ``trunk/<n>`` (1..trunks) and ``ext/<number>``. :meth:`handle`
    takes one input and returns the events it caused, in order; timers are asked
    for through :meth:`next_deadline` and fed back through :meth:`handle_timer`.
    """

    def __init__(
        self, config: CoreConfig, *, id_factory: Callable[[float], str] | None = None,
        contacts: Callable[[str], tuple[bool, bool]] | None = None,
        media_stats: Callable[[str], str | None] | None = None,
    ) -> None:
        """``contacts(number) -> (vip, blacklisted)``: the in-memory contact flags, looked up
        for every inbound caller (a pure lookup; the store keeps it current).
        ``media_stats(call_id) -> text or None``: what the board's RTP receivers saw on the
        call's lines (the SIP board), read as the call ends for its CDR and ``call.ended``."""
        self.config = config
        self._contacts = contacts
        self._media_stats = media_stats
        # Each core its own monotonic factory: ids sort in creation order (core/ids.py).
        self._new_id = id_factory if id_factory is not None else CallIds()
        self.lines: dict[str, Line] = {}
        self.calls: dict[str, Call] = {}
        self.accepting = True
        #: ("offer", line) -> call id, ("tone", call id) -> call id
        self._timers: TimerHeap[tuple[str, str]] = TimerHeap()
        self._idle_trunks: list[int] = []
        #: Trunk numbers currently in ``_idle_trunks``, so a trunk is never pushed twice.
        self._in_trunk_heap: set[int] = set()
        self._out: list[Event] = []
        self._handlers: dict[type, Callable[[float, Any], None]] = {
            inputs.Incoming: self._incoming, inputs.OffHook: self._offhook, inputs.Dial: self._dial,
            inputs.Answer: self._answer, inputs.Hangup: self._hangup, inputs.FarBusy: self._far_busy,
            inputs.Digit: self._digit, inputs.SwitchAnswer: self._switch_answer, inputs.Offer: self._offer_in,
            inputs.Withdraw: self._withdraw_in, inputs.Hold: self._hold, inputs.Retrieve: self._retrieve,
            inputs.BlindTransfer: self._blind_transfer, inputs.Consult: self._consult,
            inputs.Complete: self._complete, inputs.Cancel: self._cancel, inputs.Conference: self._conference,
            inputs.Monitor: self._monitor, inputs.SetMonitorMode: self._set_monitor_mode,
            inputs.Pickup: self._pickup, inputs.Shutdown: self._shutdown,
            inputs.Route: self._route, inputs.Release: self._release,
            inputs.Annotate: self._annotate, inputs.Redirect: self._redirect,
            inputs.HoldMusic: self._hold_music, inputs.Originate: self._originate,
            inputs.Unrouted: self._unrouted_in, inputs.HideDigits: self._hide_digits,
        }
        self._add_lines(config)

    # ----------------------------------------------------------------- set-up

    def _add_lines(self, config: CoreConfig) -> None:
        for n in range(1, config.trunks + 1):
            name = line_name(LineKind.TRUNK, n)
            if name not in self.lines:
                self.lines[name] = Line(LineKind.TRUNK, n)
                self._push_idle_trunk(n)
        for n in config.extensions:
            name = line_name(LineKind.EXTENSION, n)
            if name not in self.lines:
                self.lines[name] = Line(LineKind.EXTENSION, n, label=config.extension_names.get(n))

    def reconfigure(self, config: CoreConfig) -> None:
        """Take new routes, ring groups and timeouts; live calls keep running untouched.

        Lines are only ever added (a removed line may carry a live call). The daemon
        keeps the board of its start (a board change needs a restart, because the
        media plane's channels are fixed then); this serves embedders and tests.
        """
        self.config = config
        self._add_lines(config)

    # ------------------------------------------------------- engine protocol

    def handle(self, now: float, item: Any) -> list[Event]:
        """Carry out one input (``switchd.core.inputs``) at ``now``; return the events.

        Raises CoreError (nothing changed) for unknown calls/lines, busy targets and
        bad arguments; TypeError for something that is not a core input.
        """
        handler = self._handlers.get(type(item))
        if handler is None:
            raise TypeError(f"the core takes switchd.core.inputs values, not {item!r}")
        try:
            handler(now, item)
        except CoreError:
            # Raised before anything changed: nothing to report.
            self._out.clear()
            raise
        return self._drain()

    def next_deadline(self) -> float | None:
        """Return the epoch time of the earliest pending timer, or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``: offer timeouts (ring, transfer, consult,
        monitor) and tone timeouts."""
        while (due := self._timers.pop_due(now)) is not None:
            (kind, key), call_id = due
            call = self.calls.get(call_id)
            if call is None:
                continue
            if kind == "tone":
                call.hangup_by = "system"
                self._end(now, call)
            elif kind == "offer":
                offer = call.offers.get(key)
                if offer is not None:
                    self._withdraw(now, call, offer, OfferEnd.TIMEOUT)
                    self._offer_gone(now, call, offer, OfferEnd.TIMEOUT)
        return self._drain()

    # ---------------------------------------------------------------- queries

    def call_of_line(self, line: str) -> Call | None:
        """Return the call that holds ``line``, or None."""
        ln = self.lines.get(line)
        if ln is None or ln.call_id is None:
            return None
        return self.calls.get(ln.call_id)

    def get_call(self, call_id: str) -> Call:
        """Return a live call. Raises CoreError(not_found) for an unknown or ended call."""
        call = self.calls.get(call_id)
        if call is None:
            raise CoreError("not_found", f"no active call {call_id}")
        return call

    def line(self, name: str) -> Line:
        """Return a line by name. Raises CoreError(not_found) naming what exists."""
        ln = self.lines.get(name)
        if ln is None:
            raise CoreError(
                "not_found",
                f"no line {name} (trunks are trunk/1..trunk/{self.config.trunks}, "
                f"extensions ext/{min(self.config.extensions)}..ext/{max(self.config.extensions)})"
                if self.config.extensions
                else f"no line {name}",
            )
        return ln

    def hidden_digits(self, call_id: str) -> int:
        """Key presses of ``call_id`` withheld since its last ``HideDigits(on=True)`` (0 for
        an unknown or ended call, or one never hidden).

        The recorder reads it when a compliance pause ends, for ``recording.resumed``'s
        ``digits_hidden``: no event can carry the count, because a withheld key must make
        none (``HideDigits``). A pure look-up, like the ACD's ``last_agent``.
        """
        call = self.calls.get(call_id)
        return call.digits_hidden if call is not None else 0

    def extension_line(self, number: int | str) -> Line:
        """Return the line of extension ``number``. Raises CoreError(not_found)."""
        return self.line(f"ext/{number}")

    def _idle_extension(self, number: str, what: str) -> Line:
        target = self.lines.get(f"ext/{number}")
        if target is None:
            raise CoreError("not_found", f"no extension {number} to {what}")
        if not target.idle:
            raise CoreError("busy", f"extension {number} is {target.status.value}")
        return target

    def _transfer_target(self, number: str, outside: bool, what: str) -> tuple[Line, str | None]:
        """The idle line a transfer or consultation rings, and the number a trunk dials
        (None for an extension). Raises CoreError before anything changed: not_found,
        busy (the extension is in use; no trunk is idle), bad_arg (not digits)."""
        if not outside:
            return self._idle_extension(number, what), None
        if not NUMBER_RE.fullmatch(number):
            raise CoreError("bad_arg", f"outside number {number!r} must be 1-32 digits "
                            "(0-9, *, #)")
        t = self._first_idle_trunk()
        if t is None:
            raise CoreError("busy", f"no idle trunk to {what} {number}: every trunk is in use")
        return self.lines[line_name(LineKind.TRUNK, t)], number

    # ------------------------------------------------------- line signalling

    def _incoming(self, now: float, inp: inputs.Incoming) -> None:
        if not self.accepting:
            raise CoreError("busy", "switchd is shutting down and takes no new calls")
        trunk = inp.trunk
        if trunk is None:
            t = self._first_idle_trunk()
            if t is None:
                raise CoreError("busy", f"all {self.config.trunks} trunks are busy")
            trunk = t
        ln = self.line(line_name(LineKind.TRUNK, trunk))
        if not ln.idle:
            raise CoreError("busy", f"trunk {trunk} is {ln.status.value}")
        vip, blocked = inp.vip, inp.blocked_reason
        if self._contacts is not None:
            listed_vip, blacklisted = self._contacts(inp.caller)
            vip = vip or listed_vip
            if blacklisted and blocked is None:
                blocked = "blacklist"
        call = Call(
            call_id=self._new_id(now), direction=Direction.INBOUND, caller=inp.caller,
            callee=inp.dnis, dnis=inp.dnis, start=now, anchor=ln.name, trunk=trunk, vip=vip,
            blocked_reason=blocked,
        )
        self.calls[call.call_id] = call
        self._emit(CallNew(call.call_id, now, call.direction, inp.caller, inp.dnis, trunk=trunk))
        self._move(now, ln, _L.ALERT, call.call_id)
        if blocked is not None:
            self._fail(now, call, Disposition.BUSY, Tone.BUSY, _H.CALL_REJECTED)
        else:
            self._route_inbound(now, call, self.config.route(inp.dnis, trunk))

    def _offhook(self, now: float, inp: inputs.OffHook) -> None:
        ln = self.line(inp.line)
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{inp.line} is a trunk; only extensions go off-hook to dial")
        if self._move(now, ln, _L.OFFHOOK, None):
            self._tone(now, ln, Tone.DIAL)

    def _dial(self, now: float, inp: inputs.Dial) -> None:
        ln = self.line(inp.line)
        number = inp.number
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{inp.line} is a trunk; only extensions dial")
        if not number or not all(c in "0123456789*#" for c in number):
            raise CoreError("bad_arg", f"number {number!r} must be digits (0-9, *, #)")
        if not self.accepting:
            raise CoreError("busy", "switchd is shutting down and takes no new calls")
        prefix = self.config.outside_prefix
        outside = bool(prefix) and number.startswith(prefix) and len(number) > len(prefix)
        callee = number[len(prefix):] if outside else number
        call = Call(
            call_id=self._new_id(now),
            direction=Direction.OUTBOUND if outside else Direction.INTERNAL,
            caller=str(ln.number), callee=callee, start=now, anchor=ln.name,
            extension=ln.number,
        )
        if not self._move(now, ln, _L.DIAL, call.call_id):
            return
        self.calls[call.call_id] = call
        self._stop_tone(now, ln)
        self._emit(CallNew(call.call_id, now, call.direction, call.caller, callee,
                           extension=ln.number))
        if outside:
            t = self._first_idle_trunk()
            if t is None:
                self._fail(now, call, Disposition.CONGESTION, Tone.CONGESTION,
                           _H.NORMAL_CIRCUIT_CONGESTION)
            else:
                call.trunk = t
                self._ring(now, call, [self.lines[line_name(LineKind.TRUNK, t)]])
        else:
            target = self.lines.get(f"ext/{callee}")
            if target is None:
                self._fail(now, call, Disposition.FAILED, Tone.CONGESTION, _H.UNALLOCATED_NUMBER)
            elif target is ln or not target.idle:
                self._fail(now, call, Disposition.BUSY, Tone.BUSY, _H.USER_BUSY)
            else:
                self._ring(now, call, [target])

    def _answer(self, now: float, inp: inputs.Answer) -> None:
        line = inp.line
        ln = self.line(line)
        call = self.call_of_line(line)
        offer = call.offers.get(line) if call is not None else None
        if call is None or offer is None:
            self._refuse(now, ln, "answer", f"cannot answer {line}: it is not ringing "
                         f"(line is {ln.status.value})")
            return
        if not self._move(now, ln, _L.ANSWER, call.call_id):
            return
        del call.offers[line]
        self._timers.cancel(("offer", line))
        if offer.purpose is OfferPurpose.CONNECT:
            self._connect(now, call, ln)
        elif offer.purpose is OfferPurpose.ORIGINATE:
            self._originate_answered(now, call, ln)
        elif offer.purpose is OfferPurpose.CONSULT:
            self._consult_answered(now, call, ln)
        else:
            self._join_monitor(now, call, ln, offer)

    def _far_busy(self, now: float, inp: inputs.FarBusy) -> None:
        line = inp.line
        ln = self.line(line)
        call = self.call_of_line(line)
        offer = call.offers.get(line) if call is not None else None
        # Only the PSTN reports busy: an extension that is rung cannot be "busy" (it is
        # ringing), and letting it fail the call would end a whole ringall group.
        if (ln.kind is not LineKind.TRUNK or call is None or offer is None or not offer.routed
                or call.state not in (CallState.RINGING, CallState.SWITCH_ROUTING,
                                      CallState.TRANSFERRING, CallState.CONSULTING)):
            self._refuse(now, ln, "tone", f"cannot report busy on {line}: no outbound call "
                         f"is ringing on it (line is {ln.status.value})")
            return
        if call.state is CallState.SWITCH_ROUTING:
            # A Route to an outside number: the switch keeps the caller (the IVR decides).
            self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)
            self._route_failed(now, call, RouteFail.BUSY)
            return
        if call.state is CallState.TRANSFERRING:
            # A blind transfer to an outside number that is busy: ring the agent back at
            # once rather than let the caller hear ringback for the whole ring time.
            self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)
            self._transfer_failed(now, call)
            return
        if call.state is CallState.CONSULTING:
            if offer.purpose is not OfferPurpose.CONSULT:
                self._refuse(now, ln, "tone", f"cannot report busy on {line}: it does not "
                             "ring for the consultation")
                return
            # The consulting agent is back with its caller at once (consult_ended busy).
            self._end_consult(now, call, ConsultEnd.BUSY)
            return
        self._fail(now, call, Disposition.BUSY, Tone.BUSY, _H.USER_BUSY)

    def _digit(self, now: float, inp: inputs.Digit) -> None:
        call = self.call_of_line(inp.line)
        if call is None:
            return
        if call.hide_digits:
            # Paused for compliance: the key is neither logged, sent to clients nor seen by
            # a flow (every one of them reads call.dtmf); only how many is kept.
            call.digits_hidden += 1
            return
        self._emit(DtmfReceived(call.call_id, inp.time if inp.time is not None else now,
                                inp.line, inp.digit))

    def _hangup(self, now: float, inp: inputs.Hangup) -> None:
        line = inp.line
        ln = self.line(line)
        if ln.idle:
            self._refuse(now, ln, "hangup", f"cannot hang up {line}: line is idle")
            return
        call = self.call_of_line(line)
        if call is None:
            # Off-hook with dial tone and no call yet.
            self._stop_tone(now, ln)
            self._move(now, ln, _L.HANGUP, None)
            return
        offer = call.offers.get(line)
        if offer is not None:
            # A rung phone cannot reject by going on-hook on an analog line; treat it as
            # that phone declining: stop ringing it, and let the rest go on.
            self._withdraw(now, call, offer, OfferEnd.DECLINED, hangup=True)
            self._offer_gone(now, call, offer, OfferEnd.DECLINED)
            return
        if line in call.monitors:
            self._drop_monitor(now, call, line, hangup=True)
            return
        if call.state is CallState.CONSULTING:
            if line == call.consulter:
                self._consulter_left(now, call, ln)
                return
            if line == call.consulted:
                self._end_consult(now, call, ConsultEnd.CONSULTED_HUNG_UP, hangup=True)
                return
        talking = sum(1 for leg in call.legs if leg not in call.monitors)
        if call.state is CallState.CONFERENCE and talking > 2:
            # Whoever leaves a conference, the others talk on.
            self._party_left(now, call, ln)
            return
        # During a consultation only the held party is left to hang up here: the
        # customer (or, on a call the agent dialled, the far end) ends the call.
        if (line == call.anchor or talking <= 2
                or call.state in (CallState.TONE, CallState.CONSULTING)):
            self._end_by(now, call, line)
            return
        self._party_left(now, call, ln)

    # ----------------------------------------------------------- call control

    def _switch_answer(self, now: float, inp: inputs.SwitchAnswer) -> None:
        call = self.get_call(inp.call_id)
        a = self.lines[call.anchor]
        if not call.can(_CI.SWITCH_ANSWER) or a.status is not _S.ALERTING:
            self._refuse(now, a, "switch_answer", f"cannot answer call {call.call_id} in the "
                         f"switch: it is {call.state.value} (line {a.name} is {a.status.value})")
            return
        self._answer_by_switch(now, call)

    def _answer_by_switch(self, now: float, call: Call) -> None:
        """The switch answers the caller's alerting line itself (SwitchAnswer, a flow route);
        whatever rang for the call stops. The caller checked that the call may be answered."""
        a = self.lines[call.anchor]
        for offer in list(call.offers.values()):
            self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)
        self._set_state(call, _CI.SWITCH_ANSWER)
        self._move(now, a, _L.ANSWER, call.call_id)
        self._stop_tone(now, a)
        call.switch_answer_time = now
        self._emit(CallSwitchAnswered(call.call_id, now, a.name))

    def _offer_in(self, now: float, inp: inputs.Offer) -> None:
        call = self.get_call(inp.call_id)
        ln = self.line(inp.line)
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{inp.line} is a trunk; calls are offered to extensions")
        if not (inp.timeout_s > 0 and math.isfinite(inp.timeout_s)):
            raise CoreError("bad_arg", f"offer timeout {inp.timeout_s} must be > 0 seconds")
        if not ln.idle:
            # An event, not CoreError: the ACD decided on a line that went busy at this
            # very instant and must learn it to free its agent and try another.
            self._emit(LineError(ln.name, "offer", ln.status, f"cannot offer call "
                                 f"{call.call_id} to {inp.line}: it is {ln.status.value}",
                                 now, call.call_id))
            return
        group_route = (call.state is not CallState.SWITCH_ROUTING
                       or (call.route_target or "").startswith("group:"))
        if not call.can(_CI.OFFER) or not group_route:
            # switch_routing: one owner at a time; the caller hears the route's ringback,
            # and its failure hands the call back to whoever asked for it.
            why = (f"the switch is ringing {call.route_target} for it; wait for "
                   "call.answered or call.route_failed"
                   if call.state is CallState.SWITCH_ROUTING else
                   "only calls the switch holds (IVR, queue) or routes to a ring group "
                   "are offered")
            self._emit(LineError(ln.name, "offer", ln.status, f"cannot offer call "
                                 f"{call.call_id} to {inp.line}: the call is "
                                 f"{call.state.value}; {why}", now, call.call_id))
            return
        if self._offer(now, call, ln, OfferPurpose.CONNECT, inp.timeout_s, routed=False):
            self._set_state(call, _CI.OFFER)
            if call.state is not CallState.SWITCH:
                # A ring group: the unanswered caller (or the IVR's caller it rings for)
                # hears ringback, as for any route.
                a = self.lines[call.anchor]
                if a.status is _S.DIALING or (call.state is CallState.SWITCH_ROUTING
                                              and a.status is _S.CONNECTED):
                    self._move(now, a, _L.RINGBACK, call.call_id)
                self._tone(now, a, Tone.RINGBACK)

    def _unrouted_in(self, now: float, inp: inputs.Unrouted) -> None:
        call = self.calls.get(inp.call_id)
        if call is None or call.state not in (CallState.ROUTING, CallState.RINGING,
                                              CallState.SWITCH_ROUTING):
            # The ACD reports what it saw; meanwhile the call ended, was answered by the
            # switch or picked up: nothing is left to fail.
            return
        for offer in list(call.offers.values()):
            self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)
        self._unrouted(now, call, inp.reason)

    def _withdraw_in(self, now: float, inp: inputs.Withdraw) -> None:
        call = self.get_call(inp.call_id)
        offer = call.offers.get(inp.line)
        if offer is None:
            raise CoreError("not_found", f"call {call.call_id} is not ringing {inp.line}")
        if offer.routed:
            raise CoreError("wrong_state", f"{inp.line} rings for call {call.call_id}'s own "
                            "routing (ring group, transfer or consultation), which the switch "
                            "ends itself; only offers made with Offer or Monitor are withdrawn")
        self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)

    def _hold(self, now: float, inp: inputs.Hold) -> None:
        line = inp.line
        ln = self.line(line)
        call = self.call_of_line(line)
        peer = self._transferable(now, ln, call, "hold")
        if call is None or peer is None:
            return
        p = self.lines[peer]
        if p.status is not _S.CONNECTED:
            # Report on the line that asked, so the client learns why *its* request failed.
            self._refuse(now, ln, "hold", f"cannot hold from {line}: {peer} is already "
                         f"{p.status.value}")
            return
        bridge = call.bridge_of(line)
        assert bridge is not None
        self._move(now, p, _L.HOLD, call.call_id)
        self._tone(now, p, Tone.MOH)
        bridge.members[peer] = Role.HELD
        self._emit(CallHeld(call.call_id, now, line, peer))
        self._bridge_changed(now, call, bridge)

    def _retrieve(self, now: float, inp: inputs.Retrieve) -> None:
        line = inp.line
        ln = self.line(line)
        call = self.call_of_line(line)
        peer = call.peer_of(line) if call is not None else None
        if (call is None or peer is None or call.state is not CallState.ANSWERED
                or self.lines[peer].status is not _S.HELD or ln.status is not _S.CONNECTED):
            self._refuse(now, ln, "retrieve", f"cannot retrieve from {line}: nothing is on hold")
            return
        p = self.lines[peer]
        bridge = call.bridge_of(line)
        assert bridge is not None
        self._move(now, p, _L.RETRIEVE, call.call_id)
        self._stop_tone(now, p)
        bridge.members[peer] = Role.PARTY
        self._emit(CallRetrieved(call.call_id, now, line, peer))
        self._bridge_changed(now, call, bridge)

    def _transferable(self, now: float, ln: Line, call: Call | None, what: str) -> str | None:
        """The one peer ``ln`` talks with in a plain answered call (to hold, transfer or
        consult), or None after reporting why there is none."""
        peer = call.peer_of(ln.name) if call is not None else None
        if (call is None or peer is None or call.state is not CallState.ANSWERED
                or ln.status is not _S.CONNECTED or ln.name in call.monitors):
            self._refuse(now, ln, what, f"cannot {what} from {ln.name}: it has no connected "
                         f"two-party call (line is {ln.status.value}"
                         + (f", call is {call.state.value})" if call is not None else ")"))
            return None
        return peer

    def _blind_transfer(self, now: float, inp: inputs.BlindTransfer) -> None:
        ln = self.line(inp.line)
        call = self.call_of_line(inp.line)
        target, number = self._transfer_target(inp.number, inp.outside, "transfer to")
        peer = self._transferable(now, ln, call, "transfer")
        if call is None or peer is None:
            return
        self._set_state(call, _CI.TRANSFER)
        call.transfer_from = ln.name
        self._leave(now, call, ln, _L.RELEASE)
        if call.anchor == ln.name:
            call.anchor = peer
        p = self.lines[peer]
        bridge = call.bridge_of(peer)
        assert bridge is not None
        bridge.members[peer] = Role.PARTY
        self._stop_tone(now, p)
        self._move(now, p, _L.RINGBACK, call.call_id)
        self._emit(CallTransferred(call.call_id, now, ln.name, target.name))
        self._bridge_changed(now, call, bridge)
        self._ring(now, call, [target], number=number)

    def _consult(self, now: float, inp: inputs.Consult) -> None:
        ln = self.line(inp.line)
        call = self.call_of_line(inp.line)
        target, number = self._transfer_target(inp.number, inp.outside, "consult")
        peer = self._transferable(now, ln, call, "consult")
        if call is None or peer is None:
            return
        main = call.bridge_of(ln.name)
        assert main is not None
        self._set_state(call, _CI.CONSULT)
        call.consulter, call.held_party, call.consulted = ln.name, peer, target.name
        p = self.lines[peer]
        if p.status is _S.CONNECTED:
            self._move(now, p, _L.HOLD, call.call_id)
            self._tone(now, p, Tone.MOH)
            self._emit(CallHeld(call.call_id, now, ln.name, peer))
        main.members[peer] = Role.HELD
        del main.members[ln.name]
        side = call.new_bridge()
        side.members[ln.name] = Role.PARTY
        self._move(now, ln, _L.RINGBACK, call.call_id)
        self._tone(now, ln, Tone.RINGBACK)
        self._emit(CallConsulting(call.call_id, now, ln.name, peer, target.name))
        self._bridge_changed(now, call, main)
        self._bridge_changed(now, call, side)
        self._offer(now, call, target, OfferPurpose.CONSULT, self.config.ring_timeout_s,
                    routed=True, number=number)

    def _consulting(self, now: float, line: str, what: str, *, answered: bool) -> Call | None:
        """The call ``line`` consults in (its consulted party answered, if ``answered``),
        or None after reporting why not."""
        ln = self.line(line)
        call = self.call_of_line(line)
        if call is None or call.state is not CallState.CONSULTING or call.consulter != line:
            self._refuse(now, ln, what, f"cannot {what} from {line}: it is not consulting "
                         f"(line is {ln.status.value}"
                         + (f", call is {call.state.value})" if call is not None else ")"))
            return None
        if answered and call.consulted not in call.legs:
            self._refuse(now, ln, what, f"cannot {what} from {line}: {call.consulted} has not "
                         "answered yet; wait for it, or cancel the consultation")
            return None
        return call

    def _complete(self, now: float, inp: inputs.Complete) -> None:
        call = self._consulting(now, inp.line, "complete", answered=True)
        if call is not None:
            self._hand_over(now, call, self.lines[inp.line], _L.RELEASE)

    def _hand_over(self, now: float, call: Call, ln: Line, how: LineInput) -> None:
        """Attended transfer: the consulting ``ln`` leaves (``how``: released by a Complete,
        or hung up) and its held peer talks with the consulted party in the main bridge."""
        held, consulted = call.held_party, call.consulted
        assert held is not None and consulted is not None
        self._set_state(call, _CI.COMPLETE)
        side = call.bridge_of(consulted)
        self._leave(now, call, ln, how)
        if call.anchor == ln.name:
            call.anchor = held
        main = self._retrieve_held(now, call)
        if side is not None:
            side.members.pop(consulted, None)
            self._dissolve(now, call, side)
        main.members[consulted] = Role.PARTY
        self._clear_consult(call)
        c = self.lines[consulted]
        if c.kind is LineKind.EXTENSION:
            call.extension = c.number
        self._emit(CallTransferred(call.call_id, now, ln.name, consulted, TransferKind.ATTENDED))
        self._emit(CallBridged(call.call_id, now, held, consulted))
        self._bridge_changed(now, call, main)
        self._coach_new_agent(now, call)

    def _cancel(self, now: float, inp: inputs.Cancel) -> None:
        call = self._consulting(now, inp.line, "cancel", answered=False)
        if call is not None:
            self._end_consult(now, call, ConsultEnd.CANCEL)

    def _conference(self, now: float, inp: inputs.Conference) -> None:
        call = self._consulting(now, inp.line, "conference", answered=True)
        if call is None:
            return
        consulter, held, consulted = inp.line, call.held_party, call.consulted
        assert held is not None and consulted is not None
        self._set_state(call, _CI.CONFERENCE)
        side = call.bridge_of(consulter)
        main = self._retrieve_held(now, call)
        if side is not None:
            side.members.clear()
            self._dissolve(now, call, side)
        main.members[consulter] = Role.PARTY
        main.members[consulted] = Role.PARTY
        self._clear_consult(call)
        self._emit(CallConferenced(call.call_id, now, consulter, tuple(main.parties())))
        self._bridge_changed(now, call, main)

    def _monitor(self, now: float, inp: inputs.Monitor) -> None:
        call = self.get_call(inp.call_id)
        ln = self.line(inp.line)
        if inp.mode not in MONITOR_ROLES:
            raise CoreError("bad_arg", f"monitor mode {inp.mode} must be listen, whisper or barge")
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{inp.line} is a trunk; supervisors monitor from an extension")
        if ln.call_id == call.call_id:
            raise CoreError("bad_arg", f"{inp.line} is already part of call {call.call_id}")
        if not ln.idle:
            raise CoreError("busy", f"{inp.line} is {ln.status.value}")
        main = call.main
        if call.state not in (CallState.ANSWERED, CallState.CONSULTING, CallState.CONFERENCE) \
                or main is None:
            where = {CallState.SWITCH: "with the switch (an IVR flow or a queue), nobody "
                     "talks in it yet", CallState.SWITCH_ROUTING: "ringing for the switch",
                     CallState.RINGING: "still ringing"}.get(call.state, call.state.value)
            self._refuse(now, ln, "monitor", f"cannot monitor call {call.call_id}: it is "
                         f"{where}; only connected calls are monitored")
            return
        if inp.agent is not None:
            self._whisper_target(call, inp.agent)   # refuse a bad target now
        self._offer(now, call, ln, OfferPurpose.MONITOR, self.config.ring_timeout_s,
                    routed=False, mode=inp.mode, agent=inp.agent)

    def _whisper_target(self, call: Call, agent: str | None) -> str | None:
        """The line a whisper goes to: ``agent`` when given (it must be a phone in the
        call: a whisper never reaches the customer's trunk), else the agent now in the
        call. Raises CoreError(bad_arg) for a bad ``agent``."""
        if agent is not None:
            ln = self.lines.get(agent)
            if (ln is None or ln.kind is not LineKind.EXTENSION or agent not in call.legs
                    or agent in call.monitors):
                phones = [leg for leg in call.legs if leg not in call.monitors
                          and self.lines[leg].kind is LineKind.EXTENSION]
                raise CoreError("bad_arg", f"{agent} is not an agent's phone in call "
                                f"{call.call_id}; a whisper goes to one of "
                                f"{','.join(phones) or '(none)'}")
            return agent
        # The agent is the party on an extension: a whisper must never reach the customer,
        # who is the anchor on an inbound call but the trunk on an agent's outbound call.
        phones = [ln for ln in call.legs if ln not in call.monitors
                  and self.lines[ln].kind is LineKind.EXTENSION]
        if len(phones) > 1:
            phones = [ln for ln in phones if ln != call.anchor] or phones
        return phones[0] if phones else None

    def _set_monitor_mode(self, now: float, inp: inputs.SetMonitorMode) -> None:
        ln = self.line(inp.line)
        if inp.mode not in MONITOR_ROLES:
            raise CoreError("bad_arg", f"monitor mode {inp.mode} must be listen, whisper or barge")
        call = self.call_of_line(inp.line)
        if call is None:
            self._refuse(now, ln, "monitor", f"{inp.line} is not monitoring a call")
            return
        offer = call.offers.get(inp.line)
        if offer is not None and offer.purpose is OfferPurpose.MONITOR:
            offer.mode = inp.mode  # takes effect when the supervisor answers
            return
        bridge = call.bridge_of(inp.line)
        if inp.line not in call.monitors or bridge is None:
            self._refuse(now, ln, "monitor", f"{inp.line} is not monitoring call {call.call_id}")
            return
        agent = call.monitors[inp.line]
        if agent is None or agent not in call.legs:
            # The coached agent left (transfer, consult): coach the one there now.
            agent = call.monitors[inp.line] = self._whisper_target(call, None)
        bridge.members[inp.line] = inp.mode
        bridge.whisper_to.pop(inp.line, None)
        if inp.mode is Role.WHISPER and agent is not None:
            bridge.whisper_to[inp.line] = agent
        self._emit(MonitorStarted(call.call_id, now, inp.line, inp.mode, agent))
        self._bridge_changed(now, call, bridge)

    def _pickup(self, now: float, inp: inputs.Pickup) -> None:
        call = self.get_call(inp.call_id)
        ln = self.line(inp.line)
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{inp.line} is a trunk; calls are picked up from extensions")
        if ln.call_id == call.call_id:
            raise CoreError("bad_arg", f"{inp.line} is already part of call {call.call_id}")
        if not ln.idle:
            raise CoreError("busy", f"{inp.line} is {ln.status.value}")
        # Only phones can be picked up from: a call ringing out on a trunk is the far
        # end's to answer.
        ringing = [o for o in call.offers.values() if o.purpose is OfferPurpose.CONNECT
                   and self.lines[o.line].kind is LineKind.EXTENSION]
        if not ringing and (call.state is not CallState.SWITCH or call.offers):
            # A switch-held caller (queue, IVR) with nothing ringing may be grabbed too.
            self._refuse(now, ln, "pickup", f"cannot pick up call {call.call_id}: it is not "
                         f"ringing anywhere nor waiting in the switch (call is "
                         f"{call.state.value})")
            return
        for offer in ringing:
            self._withdraw(now, call, offer, OfferEnd.PICKED_UP)
        self._move(now, ln, _L.ALERT, call.call_id)
        self._move(now, ln, _L.ANSWER, call.call_id)
        self._emit(CallPickedUp(call.call_id, now, ln.name, tuple(o.line for o in ringing)))
        self._connect(now, call, ln)

    def _shutdown(self, now: float, inp: inputs.Shutdown) -> None:
        self.accepting = False
        for call in list(self.calls.values()):
            call.hangup_by = "system"
            self._end(now, call, _H.SYSTEM_SHUTDOWN)

    def _route(self, now: float, inp: inputs.Route) -> None:
        call = self.get_call(inp.call_id)
        target = inp.target
        if target.kind not in ROUTE_KINDS:
            raise CoreError("bad_arg", f"cannot route a call to {target}: a switch-held call "
                            "is routed to extension:<number>, group:<name> or number:<digits>")
        if target.kind is TargetKind.NUMBER and not NUMBER_RE.fullmatch(target.value or ""):
            raise CoreError("bad_arg", f"cannot route a call to {target}: a number is 1-32 "
                            "digits (0-9, *, #)")
        if inp.timeout_s is not None and not (inp.timeout_s > 0 and math.isfinite(inp.timeout_s)):
            raise CoreError("bad_arg", f"route timeout {inp.timeout_s} must be > 0 seconds "
                            "(or none: the group's or the dial plan's ring time)")
        a = self.lines[call.anchor]
        if not call.can(_CI.ROUTE):
            why = (f"{', '.join(call.offers)} still ring for its route to {call.route_target}; "
                   "wait for call.answered or call.route_failed"
                   if call.state is CallState.SWITCH_ROUTING else
                   "only a call the switch answered itself (IVR) is routed")
            self._refuse(now, a, "route", f"cannot route call {call.call_id} to {target}: it is "
                         f"{call.state.value}; {why}")
            return
        if call.offers:
            # ACD offers (Offer) ring for the call: whoever made them withdraws them first.
            self._refuse(now, a, "route", f"cannot route call {call.call_id} to {target}: "
                         f"{', '.join(call.offers)} still ring for it; withdraw them first")
            return
        # A switch-held caller is connected to the switch (its IVR): assert, not refuse,
        # because SWITCH with nothing ringing has no other line state.
        assert a.status is _S.CONNECTED, (call.call_id, a.status)
        self._set_state(call, _CI.ROUTE)
        call.route_target = str(target)
        self._route_to(now, call, target, inp.timeout_s)

    def _release(self, now: float, inp: inputs.Release) -> None:
        call = self.get_call(inp.call_id)
        call.hangup_by = "system"
        if inp.cause is _H.USER_BUSY and call.answer_time is None:
            call.failure = Disposition.BUSY  # a queue that refused the caller (full)
        self._end(now, call, inp.cause)

    def _redirect(self, now: float, inp: inputs.Redirect) -> None:
        target = inp.target
        if target.kind not in APP_KINDS:
            raise CoreError("bad_arg", f"cannot redirect a call to {target}: only to "
                            "flow:<name>, queue:<name> or voicemail:<box>")
        if inp.priority < 0:
            raise CoreError("bad_arg", f"priority {inp.priority} must be >= 0")
        if inp.line is None:
            call = self.get_call(inp.call_id)
            a = self.lines[call.anchor]
            if call.state is not CallState.SWITCH or call.offers:
                self._refuse(now, a, "redirect", f"cannot redirect call {call.call_id} to "
                             f"{target}: it is {call.state.value}"
                             + (f" and {', '.join(call.offers)} ring for it" if call.offers
                                else "") + "; only a call the switch holds with nothing "
                             "ringing is redirected")
                return
            # Whatever the switch played to the caller (music in a queue) stops: the next
            # application starts from silence.
            self._stop_tone(now, a)
            self._routed(now, call, target, inp.priority)
            return
        ln = self.line(inp.line)
        call = self.get_call(inp.call_id)
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{inp.line} is a trunk; an agent's phone (an "
                            "extension) sends its caller to a queue or a flow")
        if ln.call_id != call.call_id:
            raise CoreError("bad_arg", f"{inp.line} is not in call {call.call_id}")
        peer = self._transferable(now, ln, call, "redirect")
        if peer is None:
            return
        self._set_state(call, _CI.REDIRECT)
        self._leave(now, call, ln, _L.RELEASE)
        if call.anchor == ln.name:
            call.anchor = peer
        p = self.lines[peer]
        bridge = call.bridge_of(peer)
        if p.status is _S.HELD:
            self._move(now, p, _L.RETRIEVE, call.call_id)
            self._stop_tone(now, p)
        if bridge is not None:
            # The caller stays alone in the call's main bridge: the next agent joins it.
            bridge.members[peer] = Role.PARTY
        call.transfer_from = None
        self._emit(CallTransferred(call.call_id, now, ln.name, str(target)))
        # The call moves away from every agent, back to the switch (a queue, a flow): a
        # supervisor monitoring it would only hear music or prompts, and a whisper would
        # reach nobody, so the monitors end here (issue 17: a monitor ends when the call
        # ends or moves away).
        for sup in list(call.monitors):
            self._drop_monitor(now, call, sup, hangup=False)
        for offer in [o for o in call.offers.values() if o.purpose is OfferPurpose.MONITOR]:
            # A supervisor's phone still ringing to monitor: it would join a caller the
            # switch holds (a queue, a flow), so it stops ringing too.
            self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)
        if bridge is not None:
            self._bridge_changed(now, call, bridge)
        self._routed(now, call, target, inp.priority)

    def _routed(self, now: float, call: Call, target: Target, priority: int = 0, *,
                timeout_s: float | None = None) -> None:
        """Announce that the application at ``target`` (IVR, ACD) now has the call.

        ``caller`` is the customer's number: on a call an agent dialled out, the number
        it dialled (VIP and sticky routing look it up)."""
        customer = call.callee if call.direction is Direction.OUTBOUND else call.caller
        self._emit(CallRouted(call.call_id, now, str(target), call.anchor, customer,
                              call.dnis, call.trunk, call.vip, priority, timeout_s))

    def _originate(self, now: float, inp: inputs.Originate) -> None:
        ln = self.line(inp.line)
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{inp.line} is a trunk; calls are placed for extensions")
        if not NUMBER_RE.fullmatch(inp.number):
            raise CoreError("bad_arg", f"number {inp.number!r} must be 1-32 digits (0-9, *, #)")
        for t in (inp.timeout_s, inp.dial_timeout_s):
            if t is not None and not (t > 0 and math.isfinite(t)):
                raise CoreError("bad_arg", f"originate timeout {t} must be > 0 seconds")
        if not self.accepting:
            raise CoreError("busy", "switchd is shutting down and takes no new calls")
        if not ln.idle:
            self._refuse(now, ln, "originate", f"cannot place a call for {inp.line}: it is "
                         f"{ln.status.value}")
            return
        call = Call(call_id=self._new_id(now), direction=Direction.OUTBOUND,
                    caller=str(ln.number), callee=inp.number, start=now, anchor=ln.name,
                    extension=ln.number)
        call.dial_timeout_s = inp.dial_timeout_s
        self.calls[call.call_id] = call
        self._emit(CallNew(call.call_id, now, call.direction, call.caller, call.callee,
                           extension=ln.number))
        self._set_state(call, _CI.ORIGINATE)
        self._offer(now, call, ln, OfferPurpose.ORIGINATE, inp.timeout_s, routed=True)

    def _originate_answered(self, now: float, call: Call, ln: Line) -> None:
        """The extension an Originate rang answered: it hears ringback while the far end
        rings on the first idle trunk (congestion tone when there is none)."""
        t = self._first_idle_trunk()
        if t is None:
            self._fail(now, call, Disposition.CONGESTION, Tone.CONGESTION,
                       _H.NORMAL_CIRCUIT_CONGESTION)
            return
        call.trunk = t
        self._move(now, ln, _L.RINGBACK, call.call_id)
        timeout, call.dial_timeout_s = call.dial_timeout_s, None
        self._ring(now, call, [self.lines[line_name(LineKind.TRUNK, t)]], timeout=timeout)

    def _hold_music(self, now: float, inp: inputs.HoldMusic) -> None:
        call = self.calls.get(inp.call_id)
        if call is None:
            return  # the queue may lag the caller's hang-up
        a = self.lines[call.anchor]
        if call.state is not CallState.SWITCH:
            self._refuse(now, a, "hold_music", f"cannot play music on hold to call "
                         f"{call.call_id}: it is {call.state.value}; only a call the switch "
                         "holds (a queue) gets it")
            return
        if inp.on:
            self._tone(now, a, Tone.MOH)
        else:
            self._stop_tone(now, a)

    def _annotate(self, now: float, inp: inputs.Annotate) -> None:
        call = self.calls.get(inp.call_id)
        if call is None:
            return  # the IVR may lag the caller's hang-up: the CDR is already written
        if inp.ivr_path is not None:
            call.ivr_path = inp.ivr_path
        if inp.ivr_vars is not None:
            call.ivr_vars = inp.ivr_vars
        if inp.agent is not None:
            call.agent = inp.agent or None  # "" clears it
        if inp.queue is not None:
            call.queue = inp.queue
        if inp.wait_s is not None:
            call.queue_wait_s = inp.wait_s
        if inp.waiting is True and call.queue_since is None:
            call.queue_since = now
            if call.queue_wait_s is None:
                call.queue_wait_s = 0.0
        elif inp.waiting is False:
            self._stop_queue_wait(now, call)
        if inp.recording_id is not None:
            call.recording_id = inp.recording_id
        if inp.note is not None:
            call.note = inp.note

    def _hide_digits(self, now: float, inp: inputs.HideDigits) -> None:
        call = self.calls.get(inp.call_id)
        if call is None:
            return  # the recorder may lag the caller's hang-up
        if inp.on and not call.hide_digits:
            call.digits_hidden = 0   # each pause counts its own key presses
        call.hide_digits = inp.on

    @staticmethod
    def _stop_queue_wait(now: float, call: Call) -> None:
        if call.queue_since is not None:
            call.queue_wait_s = (call.queue_wait_s or 0.0) + (now - call.queue_since)
            call.queue_since = None

    # ---------------------------------------------------------------- routing

    def _route_inbound(self, now: float, call: Call, target: Target | None) -> None:
        if target is None:
            self._fail(now, call, Disposition.FAILED, Tone.CONGESTION, _H.UNALLOCATED_NUMBER)
        elif target.kind is TargetKind.BUSY:
            self._fail(now, call, Disposition.BUSY, Tone.BUSY, _H.USER_BUSY)
        elif target.kind in APP_KINDS:
            # The IVR or the ACD follows call.routed; routing knows them by name only.
            self._routed(now, call, target)
            self._answer_by_switch(now, call)
        else:
            self._route_to(now, call, target, None)

    def _route_to(self, now: float, call: Call, target: Target, timeout: float | None) -> None:
        """Ring ``target`` (an extension, a ring group or an outside number) for ``call``.

        The one routing of the core, for inbound routes and for ``Route`` of a
        switch-held call alike. ``timeout``: seconds of ringing; None = the dial plan's
        (a group's own, for a group). When nothing can ring, the call is handled by
        :meth:`_unrouted` (an inbound call fails, a switch-held one reports
        ``call.route_failed``). A ring group is a queue with no waiting, rung by the
        ACD: ``call.routed target=group:NAME`` hands it the call, unanswered; it offers
        the members (``Offer``, the caller hears ringback) and reports a group that rang
        nobody to an answer with ``Unrouted``.
        """
        if target.kind is TargetKind.EXTENSION:
            ln = self.lines.get(f"ext/{target.value}")
            if ln is None:
                self._unrouted(now, call, RouteFail.UNALLOCATED)
            elif not ln.idle:
                self._unrouted(now, call, RouteFail.BUSY)
            else:
                self._ring(now, call, [ln], timeout=timeout)
        elif target.kind is TargetKind.GROUP:
            self._routed(now, call, target, timeout_s=timeout)
        elif target.kind is TargetKind.NUMBER:
            t = self._first_idle_trunk()
            if t is None:
                self._unrouted(now, call, RouteFail.CONGESTION)
            else:
                self._ring(now, call, [self.lines[line_name(LineKind.TRUNK, t)]],
                           timeout=timeout, number=target.value)
        else:
            raise AssertionError(f"{target} is not a target that rings (checked by the caller)")

    def _unrouted(self, now: float, call: Call, why: RouteFail) -> None:
        """Nothing (more) rings for the call's routing, for ``why``.

        A switch-held call stays with the switch (``call.route_failed``); a transferred
        call is recalled; any other call fails: busy/congestion tone for what never
        rang, or ends at once when its phones rang out or refused it.
        """
        if call.state is CallState.SWITCH_ROUTING:
            self._route_failed(now, call, why)
        elif call.state in (CallState.TRANSFERRING, CallState.RECALLING):
            self._transfer_failed(now, call)
        elif why in (RouteFail.NO_ANSWER, RouteFail.DECLINED):
            call.hangup_by = "system"
            call.failure = Disposition.NO_ANSWER
            # A phone that refused the call (went on-hook while ringing) rejected it (Q.850 21).
            self._end(now, call, _H.CALL_REJECTED if why is RouteFail.DECLINED else _H.NO_ANSWER)
        else:
            self._fail(now, call, *_FAILURES[why])

    def _route_failed(self, now: float, call: Call, why: RouteFail) -> None:
        """A Route of a switch-held call rang nobody to an answer: the caller's ringback
        stops, the call is back with the switch as it was, and whoever asked learns why."""
        self._set_state(call, _CI.ROUTE_FAILED)
        a = self.lines[call.anchor]
        if a.status is _S.RINGBACK:
            self._move(now, a, _L.CONNECT, call.call_id)
        self._stop_tone(now, a)
        target, call.route_target = call.route_target, None
        self._emit(CallRouteFailed(call.call_id, now, target or "", why))

    def _ring(self, now: float, call: Call, targets: Iterable[Line],
              timeout: float | None = None, number: str | None = None) -> None:
        """Routed offers to ``targets``; the anchor hears ringback while they ring.

        ``number``: what a trunk rung here dials, when not the call's callee (a Route).
        """
        rung = False
        for t in targets:
            rung |= self._offer(now, call, t, OfferPurpose.CONNECT,
                                timeout or self.config.ring_timeout_s, routed=True,
                                number=number)
        if not rung:
            self._unrouted(now, call, RouteFail.BUSY)
            return
        a = self.lines[call.anchor]
        # The dialling phone, or the switch-held caller of a Route (off its IVR), now
        # hears ringback; an inbound caller's trunk stays alerting while it hears it.
        if a.status is _S.DIALING or (call.state is CallState.SWITCH_ROUTING
                                      and a.status is _S.CONNECTED):
            self._move(now, a, _L.RINGBACK, call.call_id)
        self._tone(now, a, Tone.RINGBACK)

    # ----------------------------------------------------------------- offers

    def _offer(self, now: float, call: Call, ln: Line, purpose: OfferPurpose, timeout: float,
               *, routed: bool, mode: Role | None = None, agent: str | None = None,
               number: str | None = None) -> bool:
        """Ring ``ln`` for ``call``; False (and a line.error) when the line refuses.

        ``number``: the callee this ring announces (a trunk dials it) instead of the call's.
        """
        if not self._move(now, ln, _L.ALERT, call.call_id):
            return False
        call.offers[ln.name] = Offer(ln.name, purpose, now + timeout, routed, mode, agent, number)
        self._timers.arm(("offer", ln.name), now + timeout, call.call_id)
        if routed and purpose is OfferPurpose.CONNECT:
            # The call's own routing rings (``_ring``); an ACD offer moves the call in
            # ``_offer_in``, a consultation or a supervisor's phone does not move it.
            self._set_state(call, _CI.RING)
        self._emit(CallRinging(call.call_id, now, ln.name, call.caller,
                               number if number is not None else call.callee))
        return True

    def _withdraw(self, now: float, call: Call, offer: Offer, reason: OfferEnd,
                  *, hangup: bool = False) -> None:
        """Stop ringing ``offer``'s line and free it; the caller of this decides what next."""
        call.offers.pop(offer.line, None)
        self._timers.cancel(("offer", offer.line))
        ln = self.lines[offer.line]
        if ln.call_id == call.call_id and not ln.idle:
            self._stop_tone(now, ln)
            self._move(now, ln, _L.HANGUP if hangup else _L.RELEASE, None, call.call_id)
        self._emit(OfferWithdrawn(call.call_id, now, offer.line, reason))

    def _offer_gone(self, now: float, call: Call, offer: Offer, reason: OfferEnd) -> None:
        """A routed offer ended unanswered: recall, end the consultation, or fail."""
        if not offer.routed or call.state is CallState.ENDED:
            return
        if any(o.routed for o in call.offers.values()):
            return  # other phones of a ringall group still ring
        if offer.purpose is OfferPurpose.CONSULT:
            self._end_consult(now, call, ConsultEnd.NO_ANSWER if reason is OfferEnd.TIMEOUT
                              else ConsultEnd.DECLINED if reason is OfferEnd.DECLINED
                              else ConsultEnd.CANCEL)
        elif call.state in (CallState.RINGING, CallState.SWITCH_ROUTING,
                            CallState.ORIGINATING):
            # SWITCH_ROUTING: the routed offers are a Route's; when they are all gone the
            # call is back with the switch (call.route_failed).
            self._unrouted(now, call, RouteFail.DECLINED if reason is OfferEnd.DECLINED
                           else RouteFail.NO_ANSWER)
        elif call.state in (CallState.TRANSFERRING, CallState.RECALLING):
            self._transfer_failed(now, call)

    def _connect(self, now: float, call: Call, ln: Line) -> None:
        """``ln`` answered a connect offer (or picked the call up): it talks with the anchor."""
        for other in list(call.offers.values()):
            if other.purpose is OfferPurpose.CONNECT:
                self._withdraw(now, call, other, OfferEnd.TAKEN_ELSEWHERE)
        call.route_target = None
        a = self.lines[call.anchor]
        if call.state in (CallState.TRANSFERRING, CallState.RECALLING):
            # A transferred party's ringback stops before it is connected (as always).
            self._stop_tone(now, a)
        self._set_state(call, _CI.ANSWER)
        if a.status is _S.ALERTING:
            self._move(now, a, _L.ANSWER, call.call_id)
        elif a.status in (_S.DIALING, _S.RINGBACK):
            self._move(now, a, _L.CONNECT, call.call_id)
        self._stop_tone(now, a)
        main = call.main
        if main is None:
            main = call.new_bridge()
            call.main_id = main.bridge_id
            main.members[call.anchor] = Role.PARTY
            call.legs[call.anchor] = None
        main.members[ln.name] = Role.PARTY
        call.legs[ln.name] = None
        if call.answer_time is None:
            call.answer_time = now
        self._stop_queue_wait(now, call)
        if ln.kind is LineKind.EXTENSION:
            if call.direction is Direction.INBOUND or call.transfer_from is not None:
                call.extension = ln.number
            elif call.direction is Direction.INTERNAL:
                call.callee = str(ln.number)
        call.transfer_from = None
        self._emit(CallAnswered(call.call_id, now, ln.name))
        self._emit(CallBridged(call.call_id, now, call.anchor, ln.name))
        self._bridge_changed(now, call, main)
        self._coach_new_agent(now, call)

    def _consult_answered(self, now: float, call: Call, ln: Line) -> None:
        consulter = self.lines[call.consulter or ""]
        side = call.bridge_of(consulter.name)
        assert side is not None
        self._move(now, consulter, _L.CONNECT, call.call_id)
        self._stop_tone(now, consulter)
        side.members[ln.name] = Role.PARTY
        call.legs[ln.name] = None
        self._emit(CallAnswered(call.call_id, now, ln.name))
        self._emit(CallBridged(call.call_id, now, consulter.name, ln.name))
        self._bridge_changed(now, call, side)

    def _join_monitor(self, now: float, call: Call, ln: Line, offer: Offer) -> None:
        if call.state not in (CallState.ANSWERED, CallState.CONSULTING, CallState.CONFERENCE,
                              CallState.TRANSFERRING, CallState.RECALLING):
            # A blind transfer (ringing its target, or ringing the agent back) keeps the
            # monitors already in the call, so a supervisor answering then joins as they
            # did and coaches whoever answers (_coach_new_agent). A call sent to a queue or
            # a flow withdrew this ring (Redirect); anything else is released here.
            self._refuse(now, ln, "monitor", f"call {call.call_id} is {call.state.value} "
                         "now; only connected calls are monitored")
            self._move(now, ln, _L.RELEASE, None, call.call_id)
            return
        main = call.main
        mode = offer.mode or Role.LISTEN
        # Monitor is only offered for connected calls, and the main bridge lives as long
        # as the call: a supervisor always has somewhere to join.
        assert main is not None, f"call {call.call_id} has no main bridge to monitor"
        main.members[ln.name] = mode
        # Worked out as the supervisor joins: the agent may have changed while it rang.
        # (It may have left, or come back as a monitor itself: then the agent now in the call.)
        agent = (offer.agent if offer.agent in call.legs and offer.agent not in call.monitors
                 else self._whisper_target(call, None))
        if mode is Role.WHISPER and agent is not None:
            main.whisper_to[ln.name] = agent
        call.legs[ln.name] = None
        call.monitors[ln.name] = agent
        self._emit(MonitorStarted(call.call_id, now, ln.name, mode, agent))
        self._bridge_changed(now, call, main)

    def _coach_new_agent(self, now: float, call: Call) -> None:
        """A phone joined the call as a party (a transfer answered, an attended transfer
        completed): a supervisor whose coached agent left coaches the agent now in the
        call (``monitor.started`` again, with the new ``agent``), so a whisper never
        goes to nobody while an agent is there. When no agent's phone is left (the call
        went to an outside number), the call has moved away from the centre and the
        monitor ends."""
        for sup, agent in list(call.monitors.items()):
            if agent is not None and agent in call.legs and agent not in call.monitors:
                continue
            new = self._whisper_target(call, None)
            if new is None:
                self._drop_monitor(now, call, sup, hangup=False)
                continue
            bridge = call.bridge_of(sup)
            if new == agent or bridge is None:
                continue
            call.monitors[sup] = new
            mode = bridge.members[sup]
            if mode is Role.WHISPER:
                bridge.whisper_to[sup] = new
            self._emit(MonitorStarted(call.call_id, now, sup, mode, new))
            self._bridge_changed(now, call, bridge)

    def _drop_monitor(self, now: float, call: Call, line: str, *, hangup: bool) -> None:
        call.monitors.pop(line, None)
        bridge = call.bridge_of(line)
        call.legs.pop(line, None)
        ln = self.lines[line]
        if ln.call_id == call.call_id and not ln.idle:
            self._move(now, ln, _L.HANGUP if hangup else _L.RELEASE, None, call.call_id)
        self._emit(MonitorEnded(call.call_id, now, line))
        if bridge is not None:
            del bridge.members[line]
            bridge.whisper_to.pop(line, None)
            self._bridge_changed(now, call, bridge)

    # -------------------------------------------------------------- consult

    def _retrieve_held(self, now: float, call: Call) -> Bridge:
        """Take the held party of a consultation off hold in the main bridge; returns it."""
        held = call.held_party or ""
        main = call.bridge_of(held)
        assert main is not None
        h = self.lines[held]
        if h.status is _S.HELD:
            self._move(now, h, _L.RETRIEVE, call.call_id)
        self._stop_tone(now, h)
        main.members[held] = Role.PARTY
        return main

    def _clear_consult(self, call: Call) -> None:
        call.consulter = call.held_party = call.consulted = None

    def _end_consult(self, now: float, call: Call, reason: ConsultEnd, *,
                     hangup: bool = False) -> None:
        """Back to the held party without a transfer (cancel, no answer, consulted left)."""
        consulter, held, consulted = call.consulter, call.held_party, call.consulted
        assert consulter is not None and held is not None and consulted is not None
        offer = call.offers.get(consulted)
        if offer is not None:
            self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)
        elif consulted in call.legs:
            self._leave(now, call, self.lines[consulted], _L.HANGUP if hangup else _L.RELEASE)
        self._set_state(call, _CI.CANCEL)
        side = call.bridge_of(consulter)
        if side is not None:
            side.members.clear()
            self._dissolve(now, call, side)
        c = self.lines[consulter]
        if c.status is _S.RINGBACK:
            self._move(now, c, _L.CONNECT, call.call_id)
        self._stop_tone(now, c)
        main = self._retrieve_held(now, call)
        main.members[consulter] = Role.PARTY
        self._clear_consult(call)
        self._emit(CallConsultEnded(call.call_id, now, consulter, held, consulted, reason))
        self._emit(CallRetrieved(call.call_id, now, consulter, held))
        self._bridge_changed(now, call, main)

    def _consulter_left(self, now: float, call: Call, ln: Line) -> None:
        """The consulting party hung up: hand its held peer to the consulted party
        (attended transfer when it answered; otherwise the held party hears the target
        ring, and the consulter is rung back if nobody answers)."""
        consulted = call.consulted or ""
        if consulted in call.legs:
            self._hand_over(now, call, ln, _L.HANGUP)
            return
        held = call.held_party or ""
        offer = call.offers.get(consulted)
        self._set_state(call, _CI.TRANSFER)
        # The consulter was alone in the side bridge (its target still rings): leaving
        # dissolves it.
        self._leave(now, call, ln, _L.HANGUP)
        if call.anchor == ln.name:
            call.anchor = held
        main = call.bridge_of(held)
        assert main is not None
        h = self.lines[held]
        self._stop_tone(now, h)
        self._move(now, h, _L.RINGBACK, call.call_id)
        self._tone(now, h, Tone.RINGBACK)
        main.members[held] = Role.PARTY
        call.transfer_from = ln.name
        self._clear_consult(call)
        if offer is not None:
            offer.purpose = OfferPurpose.CONNECT
        self._emit(CallTransferred(call.call_id, now, ln.name, consulted))
        self._bridge_changed(now, call, main)

    # --------------------------------------------------------------- transfer

    def _transfer_failed(self, now: float, call: Call) -> None:
        back = self.lines.get(call.transfer_from or "")
        if call.state is CallState.TRANSFERRING and back is not None and back.idle:
            self._set_state(call, _CI.RECALL)
            self._ring(now, call, [back])
            return
        call.hangup_by = "system"
        self._end(now, call, _H.NO_ANSWER)

    # ------------------------------------------------------------ call ending

    def _party_left(self, now: float, call: Call, ln: Line) -> None:
        """A party hung up where others talk on (a conference, or a third line): the call
        goes on while two remain, re-anchored on the customer's side if the anchor left."""
        bridge = call.bridge_of(ln.name)
        self._leave(now, call, ln, _L.HANGUP)
        talkers = [leg for leg in call.legs if leg not in call.monitors]
        if len(talkers) >= 2 and bridge is not None:
            if call.state is CallState.CONFERENCE and len(talkers) < 3:
                self._set_state(call, _CI.PARTY_LEFT)
            if ln.name == call.anchor:
                # The customer's side stays the anchor: a trunk if one is left.
                trunks = [leg for leg in talkers if self.lines[leg].kind is LineKind.TRUNK]
                call.anchor = (trunks or talkers)[0]
            if ln.kind is LineKind.EXTENSION and call.extension == ln.number:
                # The CDR names the extension the call was last with.
                phones = [self.lines[leg] for leg in talkers
                          if self.lines[leg].kind is LineKind.EXTENSION]
                if phones:
                    call.extension = phones[-1].number
            self._bridge_changed(now, call, bridge)
            self._coach_new_agent(now, call)
            return
        self._end_by(now, call, ln.name)

    def _end_by(self, now: float, call: Call, line: str) -> None:
        call.hangup_line = line
        call.hangup_by = "caller" if line == call.origin_line else "callee"
        self._end(now, call)

    def _leave(self, now: float, call: Call, ln: Line, how: LineInput) -> None:
        """Take ``ln`` out of the call: out of its bridge and legs, the line freed.

        The caller announces the bridge's new members (it usually changes more first);
        a bridge left empty is dissolved here.
        """
        bridge = call.bridge_of(ln.name)
        if bridge is not None:
            del bridge.members[ln.name]
            bridge.whisper_to.pop(ln.name, None)
        # A supervisor coaching this line has nobody to whisper to any more.
        for sup, agent in call.monitors.items():
            if agent == ln.name:
                call.monitors[sup] = None
                for b in call.bridges.values():
                    if b.whisper_to.get(sup) == ln.name:
                        del b.whisper_to[sup]
        if call.legs.pop(ln.name, False) is not False:
            call.former_legs.add(ln.name)
        self._stop_tone(now, ln)
        self._move(now, ln, how, None, call.call_id)
        if bridge is not None and not bridge.members:
            self._dissolve(now, call, bridge)

    def _fail(self, now: float, call: Call, disposition: Disposition, tone: Tone,
              cause: HangupCause) -> None:
        """The caller hears ``tone`` until it hangs up or ``tone_timeout_s`` passes."""
        for offer in list(call.offers.values()):
            self._withdraw(now, call, offer, OfferEnd.WITHDRAWN)
        call.failure = disposition
        call.cause = cause
        self._set_state(call, _CI.FAIL)
        a = self.lines[call.anchor]
        self._move(now, a, _L.TONE, call.call_id)
        self._tone(now, a, tone)
        self._timers.arm(("tone", call.call_id), now + self.config.tone_timeout_s, call.call_id)

    def _end(self, now: float, call: Call, cause: HangupCause | None = None) -> None:
        """End ``call``: every offer, monitor, leg and bridge it owns is released, then the CDR."""
        if call.state is CallState.ENDED:
            return
        if cause is None:
            cause = call.cause
        if cause is None:
            if call.answer_time is not None or call.switch_answer_time is not None:
                cause = _H.NORMAL_CLEARING
            elif call.hangup_by == "caller":
                cause = _H.ORIGINATOR_CANCEL
            else:
                cause = _H.NO_ANSWER
        self._set_state(call, _CI.END)
        self._timers.cancel(("tone", call.call_id))
        media = self._media_of(call)
        # Supervisors first (so no bridge.changed lists lines already gone), then the
        # caller's side, the other parties, and phones still ringing: the order clients
        # have always seen the lines go idle in.
        for sup in list(call.monitors):
            self._drop_monitor(now, call, sup, hangup=sup == call.hangup_line)
        for name in [call.anchor, *call.legs]:
            ln = self.lines[name]
            if ln.call_id == call.call_id and not ln.idle:
                self._stop_tone(now, ln)
                what = _L.HANGUP if name == call.hangup_line else _L.RELEASE
                self._move(now, ln, what, None, call.call_id)
        for offer in list(call.offers.values()):
            self._withdraw(now, call, offer, OfferEnd.CALLER_GONE)
        call.legs.clear()
        for bridge in list(call.bridges.values()):
            bridge.members.clear()
            self._dissolve(now, call, bridge)
        del self.calls[call.call_id]
        cdr = self._cdr(now, call, cause, media)
        self._emit(CallEnded(call.call_id, now, Disposition(cdr.disposition), cdr.duration,
                             cdr.billsec, call.hangup_by, cause, cause.q850, cdr, media))

    def _media_of(self, call: Call) -> str | None:
        """The board's RTP figures of the call's lines, read before they are released."""
        return self._media_stats(call.call_id) if self._media_stats is not None else None

    def _cdr(self, now: float, call: Call, cause: HangupCause, media: str | None = None) -> Cdr:
        self._stop_queue_wait(now, call)
        if call.answer_time is not None:
            disposition = Disposition.ANSWERED
        else:
            disposition = call.failure or Disposition.NO_ANSWER
        return Cdr(
            uniqueid=call.call_id, linkedid=call.call_id, src=call.caller, dst=call.callee,
            clid=f'"{call.caller}" <{call.caller}>', start=call.start, answer=call.answer_time,
            end=now, duration=_round_half_up(now - call.start),
            billsec=_round_half_up(now - call.answer_time) if call.answer_time is not None else 0,
            disposition=disposition.value, direction=call.direction.value, trunk=call.trunk,
            extension=call.extension, agent=call.agent, queue=call.queue,
            wait_s=round(call.queue_wait_s if call.queue_wait_s is not None else
                         (call.answer_time if call.answer_time is not None else now)
                         - call.start, 3),
            hangup_by=call.hangup_by, blocked_reason=call.blocked_reason, dnis=call.dnis,
            hangup_cause=str(cause), q850=cause.q850, ivr_path=call.ivr_path,
            ivr_vars=call.ivr_vars, recording_id=call.recording_id, note=call.note,
            media=media,
        )

    # ------------------------------------------------------------ primitives

    def _bridge_changed(self, now: float, call: Call, bridge: Bridge) -> None:
        if not bridge.members:
            self._dissolve(now, call, bridge)
            return
        self._emit(BridgeChanged(call.call_id, now, bridge.bridge_id, bridge.snapshot()))

    def _dissolve(self, now: float, call: Call, bridge: Bridge) -> None:
        if call.bridges.pop(bridge.bridge_id, None) is not None:
            self._emit(BridgeChanged(call.call_id, now, bridge.bridge_id, ()))

    def _first_idle_trunk(self) -> int | None:
        # Lazy heap: entries for trunks that became busy are skipped here, and a trunk
        # is pushed back when it goes idle, so "first free trunk" is O(log n) at any size.
        while self._idle_trunks:
            n = self._idle_trunks[0]
            if self.lines[line_name(LineKind.TRUNK, n)].idle:
                return n
            self._in_trunk_heap.discard(heapq.heappop(self._idle_trunks))
        return None

    def _push_idle_trunk(self, n: int) -> None:
        if n not in self._in_trunk_heap:
            self._in_trunk_heap.add(n)
            heapq.heappush(self._idle_trunks, n)

    def _move(self, now: float, ln: Line, what: LineInput, call_id: str | None,
              event_call_id: str | None = None) -> bool:
        nxt = ln.next_status(what)
        if not isinstance(nxt, LineStatus):
            self._refuse(now, ln, what.value, nxt)
            return False
        prev = ln.status
        ln.status = nxt
        ln.since = now
        if nxt is _S.IDLE:
            ln.call_id = None
            if ln.kind is LineKind.TRUNK:
                self._push_idle_trunk(ln.number)
        elif call_id is not None:
            ln.call_id = call_id
        self._emit(LineState(ln.name, nxt, prev, now, call_id or event_call_id))
        return True

    def _refuse(self, now: float, ln: Line, what: str, reason: str) -> None:
        self._emit(LineError(ln.name, what, ln.status, reason, now, ln.call_id))

    def _tone(self, now: float, ln: Line, tone: Tone) -> None:
        if ln.tone == tone:
            return
        ln.tone = tone
        self._emit(ToneStarted(ln.name, tone, now, ln.call_id))

    def _stop_tone(self, now: float, ln: Line) -> None:
        if ln.tone is not None:
            ln.tone = None
            self._emit(ToneStopped(ln.name, now, ln.call_id))

    def _set_state(self, call: Call, what: CallInput) -> None:
        nxt = CALL_TRANSITIONS.get((call.state, what))
        if nxt is None:
            # A bug in this module, not a peer's mistake: every caller checks first.
            raise AssertionError(f"call {call.call_id}: {what.value} in state "
                                 f"{call.state.value} is not in the table")
        call.state = nxt

    def _emit(self, event: Event) -> None:
        self._out.append(event)

    def _drain(self) -> list[Event]:
        out, self._out = self._out, []
        return out

