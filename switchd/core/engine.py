"""The switch core: calls, legs and routing, sans-IO.

:class:`SwitchCore` takes inputs (a trunk rings, an extension dials, a line
answers or hangs up, a timer fires) together with ``now`` (epoch seconds, float)
and returns the events they cause. It never sleeps, reads a socket or touches a
file; the asyncio shell (``switchd.app``) and the virtual-time driver
(``switchd.sim``) both run this same code.

Two kinds of failure, kept apart on purpose:

* a request naming something that does not exist, or that cannot be served
  (unknown call, unknown line, all trunks busy) raises :class:`CoreError` before
  anything changes;
* an input that is legal in general but not in the line's current state (answer
  an idle line, hold a ringing one) returns a :class:`~switchd.events.LineError`
  event with the reason, and every line keeps its state.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from enum import Enum

from switchd.core.call import Call, CallState, Direction, Disposition
from switchd.core.ids import CallIds
from switchd.core.routing import CoreConfig, RingGroup, RingStrategy, Target, TargetKind
from switchd.events import (
    CallAnswered,
    CallBridged,
    CallEnded,
    CallHeld,
    CallNew,
    CallRetrieved,
    CallRinging,
    CallTransferred,
    Cdr,
    Event,
    LineError,
    LineState,
    ToneStarted,
    ToneStopped,
)
from switchd.lines.state import Line, LineInput, LineKind, LineStatus, line_name

__all__ = ["CoreError", "SwitchCore"]

_I = LineInput
_S = LineStatus


class CoreError(Exception):
    """A request the core cannot serve; nothing changed.

    ``code`` is a CTI error slug (``not_found``, ``busy``, ``bad_arg``, ``wrong_state``).
    """

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class _Timer(Enum):
    RING = "ring"
    TONE = "tone"


def _round_half_up(x: float) -> int:
    return int(x + 0.5) if x > 0 else 0


class SwitchCore:
    """The call-control engine for one board.

    Lines are named ``trunk/<n>`` (1..trunks) and ``ext/<number>``. Every public
    input method takes ``now`` and returns the list of events it caused, in order.
    Timers are asked for through :meth:`next_deadline` and fed back through
    :meth:`handle_timer` (aioquic's pattern).
    """

    def __init__(
        self, config: CoreConfig, *, id_factory: Callable[[float], str] | None = None
    ) -> None:
        self.config = config
        # Each core its own monotonic factory: ids sort in creation order (core/ids.py).
        self._new_id = id_factory if id_factory is not None else CallIds()
        self.lines: dict[str, Line] = {}
        self.calls: dict[str, Call] = {}
        self.accepting = True
        self._timers: list[tuple[float, int, str, int, _Timer]] = []
        self._seq = 0
        self._idle_trunks: list[int] = []
        #: Trunk numbers currently in ``_idle_trunks``, so a trunk is never pushed twice and
        #: the heap stays at most ``trunks`` long however many calls a long run carries.
        self._in_trunk_heap: set[int] = set()
        self._out: list[Event] = []
        #: group name -> (the RingGroup it was built from, its member lines); rebuilt when
        #: the group object changes (reconfigure) so a reload is picked up.
        self._members: dict[str, tuple[RingGroup, tuple[Line | None, ...]]] = {}
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
        self._members.clear()

    # ---------------------------------------------------------------- queries

    def next_deadline(self) -> float | None:
        """Return the epoch time of the earliest pending timer, or None."""
        while self._timers:
            deadline, _, call_id, token, _ = self._timers[0]
            call = self.calls.get(call_id)
            if call is not None and call.timer_token == token:
                return deadline
            heapq.heappop(self._timers)
        return None

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

    def extension_line(self, number: int | str) -> Line:
        """Return the line of extension ``number``. Raises CoreError(not_found)."""
        return self.line(f"ext/{number}")

    # ------------------------------------------------------------------ inputs

    def incoming(
        self,
        now: float,
        caller: str,
        dnis: str,
        *,
        trunk: int | None = None,
        blocked_reason: str | None = None,
        vip: bool = False,
    ) -> tuple[str, list[Event]]:
        """A call arrives from the PSTN on ``trunk`` (None: the first idle trunk).

        Returns the new call id and the events. A blacklisted caller
        (``blocked_reason`` set) hears busy tone and ends ``BUSY``.
        Raises CoreError ``busy`` when the trunk (or every trunk) is in use or the
        switch is shutting down, ``not_found`` for a trunk that does not exist.
        """
        if not self.accepting:
            raise CoreError("busy", "switchd is shutting down and takes no new calls")
        if trunk is None:
            t = self._first_idle_trunk()
            if t is None:
                raise CoreError("busy", f"all {self.config.trunks} trunks are busy")
            trunk = t
        ln = self.line(line_name(LineKind.TRUNK, trunk))
        if not ln.idle:
            raise CoreError("busy", f"trunk {trunk} is {ln.status.value}")
        call = Call(
            call_id=self._new_id(now), direction=Direction.INBOUND, caller=caller,
            callee=dnis, dnis=dnis, start=now, a_line=ln.name, trunk=trunk, vip=vip,
            blocked_reason=blocked_reason,
        )
        self.calls[call.call_id] = call
        self._emit(CallNew(call.call_id, now, call.direction.value, caller, dnis, trunk=trunk))
        self._move(now, ln, _I.ALERT, call.call_id)
        if blocked_reason is not None:
            self._fail(now, call, Disposition.BUSY, "busy")
        else:
            self._route_inbound(now, call, self.config.route(dnis, trunk))
        return call.call_id, self._drain()

    def offhook(self, now: float, line: str) -> list[Event]:
        """An extension lifts its handset: it hears dial tone until it dials or hangs up."""
        ln = self.line(line)
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{line} is a trunk; only extensions go off-hook to dial")
        if self._move(now, ln, _I.OFFHOOK, None):
            self._tone(now, ln, "dial")
        return self._drain()

    def dial(self, now: float, line: str, number: str) -> tuple[str | None, list[Event]]:
        """Extension ``line`` dials ``number``: another extension, or the outside prefix + a number.

        Works from idle (click-to-dial) or off-hook. Returns the new call id (None
        when the line refused) and the events. An unknown number ends ``FAILED``
        with congestion tone; no idle trunk ends ``CONGESTION``; a busy extension
        ends ``BUSY``. Raises CoreError(bad_arg) for an empty or non-digit number.
        """
        ln = self.line(line)
        if ln.kind is not LineKind.EXTENSION:
            raise CoreError("bad_arg", f"{line} is a trunk; only extensions dial")
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
            caller=str(ln.number), callee=callee, start=now, a_line=ln.name,
            extension=ln.number,
        )
        if not self._move(now, ln, _I.DIAL, call.call_id):
            return None, self._drain()
        self.calls[call.call_id] = call
        self._stop_tone(now, ln)
        self._emit(CallNew(call.call_id, now, call.direction.value, call.caller, callee,
                           extension=ln.number))
        if outside:
            t = self._first_idle_trunk()
            if t is None:
                self._fail(now, call, Disposition.CONGESTION, "congestion")
            else:
                call.trunk = t
                self._ring(now, call, [self.lines[line_name(LineKind.TRUNK, t)]])
        else:
            target = self.lines.get(f"ext/{callee}")
            if target is None:
                self._fail(now, call, Disposition.FAILED, "congestion")
            elif target is ln or not target.idle:
                self._fail(now, call, Disposition.BUSY, "busy")
            else:
                self._ring(now, call, [target])
        return call.call_id, self._drain()

    def answer(self, now: float, line: str) -> list[Event]:
        """The party on ``line`` answers its ringing call (an extension, or the far end of a trunk)."""
        ln = self.line(line)
        call = self.call_of_line(line)
        if call is None or line not in call.ringing:
            self._refuse(now, ln, _I.ANSWER, f"cannot answer {line}: it is not ringing "
                         f"(line is {ln.status.value})")
            return self._drain()
        if not self._move(now, ln, _I.ANSWER, call.call_id):
            return self._drain()
        call.ringing.remove(line)
        for other in call.ringing:
            self._release(now, self.lines[other])
        call.ringing.clear()
        call.hunt.clear()
        self._cancel_timer(call)
        if call.state is CallState.TRANSFERRING:
            self._complete_transfer(now, call, ln)
            return self._drain()
        call.b_line = line
        if ln.kind is LineKind.EXTENSION and call.direction is Direction.INBOUND:
            call.extension = ln.number
        elif ln.kind is LineKind.EXTENSION and call.direction is Direction.INTERNAL:
            call.callee = str(ln.number)
        a = self.lines[call.a_line]
        call.answer_time = now
        self._set_state(call, CallState.ANSWERED)
        self._move(now, a, _I.ANSWER if a.status is _S.ALERTING else _I.CONNECT, call.call_id)
        self._stop_tone(now, a)
        self._emit(CallAnswered(call.call_id, now, line))
        self._emit(CallBridged(call.call_id, now, call.a_line, line))
        return self._drain()

    def far_busy(self, now: float, line: str) -> list[Event]:
        """The outside number dialled on trunk ``line`` is busy: the caller hears busy tone.

        Refused (a LineError, nothing changes) unless ``line`` is a trunk ringing for an
        outbound call. Raises CoreError(not_found) for an unknown line.
        """
        ln = self.line(line)
        call = self.call_of_line(line)
        # Only the PSTN reports busy: an extension that is rung cannot be "busy" (it is
        # ringing), and letting it fail the call would end a whole ringall group.
        if (ln.kind is not LineKind.TRUNK or call is None or line not in call.ringing
                or call.state is not CallState.RINGING):
            self._refuse(now, ln, _I.TONE, f"cannot report busy on {line}: no outbound call "
                         f"is ringing on it (line is {ln.status.value})")
            return self._drain()
        self._fail(now, call, Disposition.BUSY, "busy")
        return self._drain()

    def hangup(self, now: float, line: str) -> list[Event]:
        """The party on ``line`` hangs up (goes on-hook)."""
        ln = self.line(line)
        if ln.idle:
            self._refuse(now, ln, _I.HANGUP, f"cannot hang up {line}: line is idle")
            return self._drain()
        call = self.call_of_line(line)
        if call is None:
            # Off-hook with dial tone and no call yet.
            self._stop_tone(now, ln)
            self._move(now, ln, _I.HANGUP, None)
            return self._drain()
        if line in call.ringing:
            # A rung party cannot reject by going on-hook on an analog line; treat it as
            # that member declining: stop ringing it, and let the rest go on.
            call.ringing.remove(line)
            self._move(now, ln, _I.HANGUP, None, call.call_id)
            if not call.ringing:
                self._next_hunt_or_fail(now, call)
            return self._drain()
        call.hangup_line = line
        call.hangup_by = "caller" if line == call.origin_line else "callee"
        self._end(now, call)
        return self._drain()

    def hold(self, now: float, line: str) -> list[Event]:
        """``line`` puts its connected peer on hold; the peer hears music on hold."""
        ln = self.line(line)
        call = self.call_of_line(line)
        peer = call.peer_of(line) if call is not None else None
        if (call is None or peer is None or call.state is not CallState.ANSWERED
                or ln.status is not _S.CONNECTED):
            self._refuse(now, ln, _I.HOLD, f"cannot hold from {line}: it has no connected call "
                         f"(line is {ln.status.value})")
            return self._drain()
        p = self.lines[peer]
        if p.status is not _S.CONNECTED:
            # Report on the line that asked, so the client learns why *its* request failed.
            self._refuse(now, ln, _I.HOLD, f"cannot hold from {line}: {peer} is already "
                         f"{p.status.value}")
            return self._drain()
        self._move(now, p, _I.HOLD, call.call_id)
        self._tone(now, p, "moh")
        self._emit(CallHeld(call.call_id, now, line, peer))
        return self._drain()

    def retrieve(self, now: float, line: str) -> list[Event]:
        """``line`` takes its held peer back."""
        ln = self.line(line)
        call = self.call_of_line(line)
        peer = call.peer_of(line) if call is not None else None
        if call is None or peer is None or self.lines[peer].status is not _S.HELD:
            self._refuse(now, ln, _I.RETRIEVE, f"cannot retrieve from {line}: nothing is on hold")
            return self._drain()
        p = self.lines[peer]
        self._move(now, p, _I.RETRIEVE, call.call_id)
        self._stop_tone(now, p)
        self._emit(CallRetrieved(call.call_id, now, line, peer))
        return self._drain()

    def blind_transfer(self, now: float, line: str, number: str) -> list[Event]:
        """``line`` sends its peer to extension ``number`` and leaves the call.

        The peer hears ringback while the target rings. If the target does not
        answer within the ring timeout, the transferring extension is rung back
        (recall, so a failed transfer never strands the caller); if that is not
        answered either, the call ends. Raises CoreError ``not_found`` for an
        unknown extension and ``busy`` when the target is not idle; in both cases
        nothing changes.
        """
        ln = self.line(line)
        call = self.call_of_line(line)
        peer = call.peer_of(line) if call is not None else None
        if call is None or peer is None or call.state is not CallState.ANSWERED:
            self._refuse(now, ln, _I.RELEASE, f"cannot transfer from {line}: it has no "
                         f"connected call (line is {ln.status.value})")
            return self._drain()
        target = self.lines.get(f"ext/{number}")
        if target is None:
            raise CoreError("not_found", f"no extension {number} to transfer to")
        if not target.idle:
            raise CoreError("busy", f"extension {number} is {target.status.value}")
        p = self.lines[peer]
        self._set_state(call, CallState.TRANSFERRING)
        call.transfer_from = line
        call.recalling = False
        # While the target rings, a_line is the party that stays; the target becomes b_line.
        call.a_line, call.b_line = peer, None
        self._stop_tone(now, ln)
        self._move(now, ln, _I.RELEASE, None, call.call_id)
        self._stop_tone(now, p)
        self._move(now, p, _I.RINGBACK, call.call_id)
        self._emit(CallTransferred(call.call_id, now, line, f"ext/{number}"))
        self._ring(now, call, [target])
        return self._drain()

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``: ring timeouts, hunt steps, tone timeouts."""
        while self._timers and self._timers[0][0] <= now:
            _, _, call_id, token, kind = heapq.heappop(self._timers)
            call = self.calls.get(call_id)
            if call is None or call.timer_token != token:
                continue
            if kind is _Timer.TONE:
                call.hangup_by = "system"
                self._end(now, call)
            elif kind is _Timer.RING:
                self._ring_timeout(now, call)
        return self._drain()

    def shutdown(self, now: float) -> list[Event]:
        """Stop taking calls and end every live call, each with its CDR (``hangup_by=system``)."""
        self.accepting = False
        for call in list(self.calls.values()):
            call.hangup_by = "system"
            self._end(now, call)
        return self._drain()

    # ---------------------------------------------------------------- routing

    def _route_inbound(self, now: float, call: Call, target: Target | None) -> None:
        if target is None:
            self._fail(now, call, Disposition.FAILED, "congestion")
            return
        if target.kind is TargetKind.BUSY:
            self._fail(now, call, Disposition.BUSY, "busy")
        elif target.kind is TargetKind.EXTENSION:
            ln = self.lines.get(f"ext/{target.value}")
            if ln is None:
                self._fail(now, call, Disposition.FAILED, "congestion")
            elif not ln.idle:
                self._fail(now, call, Disposition.BUSY, "busy")
            else:
                self._ring(now, call, [ln])
        elif target.kind is TargetKind.GROUP:
            group = self.config.ring_groups.get(target.value or "")
            if group is None:
                self._fail(now, call, Disposition.FAILED, "congestion")
                return
            members = self._group_lines(group)
            if group.strategy is RingStrategy.RINGALL:
                idle = [ln for ln in members if ln is not None and ln.idle]
                if not idle:
                    self._fail(now, call, Disposition.BUSY, "busy")
                else:
                    self._ring(now, call, idle, timeout=group.ring_timeout_s)
                return
            # Hunt: ring the first idle member; the members after it are tried in turn
            # (each checked for idleness when its turn comes). Stopping at the first idle
            # member keeps routing cheap for large groups (2000-member load tests).
            for i, ln in enumerate(members):
                if ln is not None and ln.status is _S.IDLE:
                    call.hunt = list(group.members[i + 1:])
                    call.hunt_timeout_s = group.ring_timeout_s
                    self._ring(now, call, [ln], timeout=group.ring_timeout_s)
                    return
            self._fail(now, call, Disposition.BUSY, "busy")

    def _group_lines(self, group: RingGroup) -> tuple[Line | None, ...]:
        """The member lines of ``group`` in list order (None for a member with no line), cached."""
        members = self._members.get(group.name)
        if members is None or members[0] is not group:
            members = (group, tuple(self.lines.get(f"ext/{m}") for m in group.members))
            self._members[group.name] = members
        return members[1]

    def _ring(self, now: float, call: Call, targets: Iterable[Line],
              timeout: float | None = None) -> None:
        a = self.lines[call.a_line]
        for t in targets:
            if self._move(now, t, _I.ALERT, call.call_id):
                call.ringing.append(t.name)
                self._emit(CallRinging(call.call_id, now, t.name, call.caller, call.callee))
        if not call.ringing:
            if call.state is CallState.TRANSFERRING:
                self._transfer_failed(now, call)
            else:
                self._fail(now, call, Disposition.BUSY, "busy")
            return
        if call.state is CallState.ROUTING:
            self._set_state(call, CallState.RINGING)
        if a.status is _S.DIALING:
            self._move(now, a, _I.RINGBACK, call.call_id)
        self._tone(now, a, "ringback")
        self._arm(call, now + (timeout or self.config.ring_timeout_s), _Timer.RING)

    def _ring_timeout(self, now: float, call: Call) -> None:
        for name in call.ringing:
            self._release(now, self.lines[name])
        call.ringing.clear()
        self._next_hunt_or_fail(now, call)

    def _next_hunt_or_fail(self, now: float, call: Call) -> None:
        while call.hunt:
            ln = self.lines.get(f"ext/{call.hunt.pop(0)}")
            if ln is not None and ln.idle:
                self._ring(now, call, [ln], timeout=call.hunt_timeout_s)
                return
        if call.state is CallState.TRANSFERRING:
            self._transfer_failed(now, call)
            return
        call.hangup_by = "system"
        call.failure = Disposition.NO_ANSWER
        self._end(now, call)

    # --------------------------------------------------------------- transfer

    def _complete_transfer(self, now: float, call: Call, target: Line) -> None:
        remaining = call.a_line
        call.b_line = target.name
        if target.kind is LineKind.EXTENSION:
            call.extension = target.number
        call.transfer_from = None
        call.recalling = False
        self._set_state(call, CallState.ANSWERED)
        r = self.lines[remaining]
        self._stop_tone(now, r)
        self._move(now, r, _I.CONNECT, call.call_id)
        self._emit(CallAnswered(call.call_id, now, target.name))
        self._emit(CallBridged(call.call_id, now, remaining, target.name))

    def _transfer_failed(self, now: float, call: Call) -> None:
        back = self.lines.get(call.transfer_from or "")
        if not call.recalling and back is not None and back.idle:
            call.recalling = True
            self._ring(now, call, [back])
            return
        call.hangup_by = "system"
        self._end(now, call)

    # ------------------------------------------------------------ call ending

    def _fail(self, now: float, call: Call, disposition: Disposition, tone: str) -> None:
        """The caller hears ``tone`` until it hangs up or ``tone_timeout_s`` passes."""
        for name in call.ringing:
            self._release(now, self.lines[name])
        call.ringing.clear()
        call.hunt.clear()
        call.failure = disposition
        self._set_state(call, CallState.TONE)
        a = self.lines[call.a_line]
        self._move(now, a, _I.TONE, call.call_id)
        self._tone(now, a, tone)
        self._arm(call, now + self.config.tone_timeout_s, _Timer.TONE)

    def _end(self, now: float, call: Call) -> None:
        if call.state is CallState.ENDED:
            return
        self._set_state(call, CallState.ENDED)
        self._cancel_timer(call)
        for name in call.lines():
            ln = self.lines[name]
            if ln.call_id == call.call_id and not ln.idle:
                self._stop_tone(now, ln)
                what = _I.HANGUP if name == call.hangup_line else _I.RELEASE
                self._move(now, ln, what, None, call.call_id)
        call.ringing.clear()
        del self.calls[call.call_id]
        cdr = self._cdr(now, call)
        self._emit(CallEnded(call.call_id, now, cdr.disposition, cdr.duration, cdr.billsec,
                             call.hangup_by, cdr))

    def _cdr(self, now: float, call: Call) -> Cdr:
        if call.answer_time is not None:
            disposition = Disposition.ANSWERED
        else:
            disposition = call.failure or Disposition.NO_ANSWER
        trunk = call.trunk
        return Cdr(
            uniqueid=call.call_id, linkedid=call.call_id, src=call.caller, dst=call.callee,
            clid=f'"{call.caller}" <{call.caller}>', start=call.start, answer=call.answer_time,
            end=now, duration=_round_half_up(now - call.start),
            billsec=_round_half_up(now - call.answer_time) if call.answer_time is not None else 0,
            disposition=disposition.value, direction=call.direction.value, trunk=trunk,
            extension=call.extension,
            wait_s=round((call.answer_time if call.answer_time is not None else now) - call.start, 3),
            hangup_by=call.hangup_by, blocked_reason=call.blocked_reason, dnis=call.dnis,
        )

    # ------------------------------------------------------------ primitives

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
        if isinstance(nxt, str):
            self._refuse(now, ln, what, nxt)
            return False
        prev = ln.status
        ln.status = nxt
        if nxt is _S.IDLE:
            ln.call_id = None
            if ln.kind is LineKind.TRUNK:
                self._push_idle_trunk(ln.number)
        elif call_id is not None:
            ln.call_id = call_id
        self._emit(LineState(ln.name, nxt.value, prev.value, now, call_id or event_call_id))
        return True

    def _release(self, now: float, ln: Line) -> None:
        call_id = ln.call_id
        self._stop_tone(now, ln)
        self._move(now, ln, _I.RELEASE, None, call_id)

    def _refuse(self, now: float, ln: Line, what: LineInput, reason: str) -> None:
        self._emit(LineError(ln.name, what.value, ln.status.value, reason, now, ln.call_id))

    def _tone(self, now: float, ln: Line, tone: str) -> None:
        if ln.tone == tone:
            return
        ln.tone = tone
        self._emit(ToneStarted(ln.name, tone, now, ln.call_id))

    def _stop_tone(self, now: float, ln: Line) -> None:
        if ln.tone is not None:
            ln.tone = None
            self._emit(ToneStopped(ln.name, now, ln.call_id))

    def _set_state(self, call: Call, to: CallState) -> None:
        if call.state is to:
            return
        if not call.can_move(to):
            # A bug in this module, not a peer's mistake: fail loudly in tests.
            raise AssertionError(f"call {call.call_id}: {call.state.value} -> {to.value} is not in the table")
        call.state = to

    def _arm(self, call: Call, deadline: float, kind: _Timer) -> None:
        call.timer_token += 1
        self._seq += 1
        heapq.heappush(self._timers, (deadline, self._seq, call.call_id, call.timer_token, kind))

    def _cancel_timer(self, call: Call) -> None:
        call.timer_token += 1

    def _emit(self, event: Event) -> None:
        self._out.append(event)

    def _drain(self) -> list[Event]:
        out, self._out = self._out, []
        return out
