"""The shell: one clock, a set of engines, and the dispatch between them (DESIGN §1).

Engines are sans-IO (``switchd.engine``). The shell feeds them inputs, publishes the
events they return on the bus (and logs them: engines never log), hands the inputs
they return to the engine that takes them (a board driver's ``Answer`` goes to the
core), lets *followers* (engines that react to events, such as the simulated board)
see every event, and fires each engine's timer when its deadline comes.

The daemon runs a shell on :class:`LoopClock` (the asyncio loop's monotonic clock,
anchored to the epoch at start); ``switchd bench calls`` and the tests run the same
shell on :class:`VirtualClock`, where :meth:`Shell.run_until` jumps from deadline to
deadline without sleeping. Both exercise the production wiring.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from switchd.bus import Bus
from switchd.engine import Engine, Input
from switchd.events import (
    BridgeChanged,
    CallEnded,
    CallEvent,
    Event,
    IvrError,
    LineError,
    LineState,
    QueueLogEntry,
    ToneStarted,
    ToneStopped,
)
from switchd.logconfig import emit

__all__ = ["Clock", "LoopClock", "RefusedInput", "Shell", "VirtualClock"]

#: Events logged at debug only (lines' and bridges' own steps). A tuple, not ``A | B``:
#: this runs for every event, and a union written in the call is built at each call.
_DEBUG_ONLY = (LineState, ToneStarted, ToneStopped, BridgeChanged)


class Clock(Protocol):
    """Where the shell's ``now`` comes from (epoch seconds)."""

    def now(self) -> float:
        """Epoch seconds."""
        ...


class VirtualClock:
    """A clock that only moves when told to (virtual-time runs)."""

    def __init__(self, t: float = 1_764_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        """The virtual epoch time, s."""
        return self.t


class LoopClock:
    """Epoch seconds advancing with the event loop's monotonic clock.

    Anchored once to ``time.time()``, then immune to wall-clock steps (NTP, DST),
    so timers and CDR durations never jump.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.epoch0 = time.time()
        self.loop0 = loop.time()

    def now(self) -> float:
        """Epoch seconds now."""
        return self.epoch0 + (self.loop.time() - self.loop0)

    def loop_time(self, epoch: float) -> float:
        """The loop time at which epoch time ``epoch`` comes."""
        return self.loop0 + (epoch - self.epoch0)


class RefusedInput(Exception):
    """Raised by :meth:`Shell.submit` for an input no engine takes."""


class Shell:
    """Runs engines on a clock and dispatches what they return.

    ``on_refused(input, exc)`` is told about inputs that engines returned (not those
    submitted from outside, whose caller gets the exception) and that the target
    engine refused with one of ``refusals`` (e.g. a simulated caller when every
    trunk is busy).
    """

    def __init__(self, bus: Bus, clock: Clock, *, debug: bool = False, log_events: bool = True,
                 refusals: tuple[type[Exception], ...] = (),
                 on_refused: Callable[[Any, Exception], None] | None = None) -> None:
        self.bus = bus
        self.clock = clock
        self.log = structlog.get_logger("switchd")
        #: Line and tone events are logged only at debug level; skip building them otherwise.
        self.debug = debug
        #: False for bulk virtual-time runs (bench), where a log line per event would dominate.
        self.log_events = log_events
        self.refusals = refusals
        self.on_refused = on_refused
        self._engines: list[Engine] = []
        #: (engine, the event types it follows; None = every event)
        self._followers: list[tuple[Engine, tuple[type, ...] | None]] = []
        #: event type -> the engines that follow it, worked out once per type
        self._follow_by_type: dict[type, list[Engine]] = {}
        self._routes: dict[type, Engine] = {}
        self._takes: list[tuple[type, Engine]] = []
        self._queue: deque[Any] = deque()
        self._draining = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._running = False

    # ------------------------------------------------------------- wiring

    def add(self, engine: Engine, *, takes: tuple[type, ...] = (),
            follows: bool | tuple[type, ...] = False) -> None:
        """Run ``engine``: its timers fire, inputs of the ``takes`` types go to it, and
        published events are handed to its ``handle`` too: every event with
        ``follows=True``, or only events of the given types.

        Engines' timers fire in the order they were added (the core first).
        """
        self._engines.append(engine)
        for t in takes:
            self._takes.append((t, engine))
        if follows:
            self._followers.append((engine, None if follows is True else tuple(follows)))
            self._follow_by_type.clear()

    def now(self) -> float:
        """The clock's epoch seconds."""
        return self.clock.now()

    # ------------------------------------------------------------- inputs

    def submit(self, item: Input) -> list[Event]:
        """Feed ``item`` to its engine now and dispatch everything that follows.

        Returns the events that engine returned for it (a caller checks them for a
        ``line.error`` refusal). Raises what the engine raises when it refuses before
        changing anything (``CoreError``), and RefusedInput when no engine takes it.
        """
        engine = self._engine_for(item)
        now = self.clock.now()
        outputs = engine.handle(now, item)
        self._dispatch(outputs, now)
        return [o for o in outputs if isinstance(o, Event)]

    def _engine_for(self, item: Any) -> Engine:
        engine = self._routes.get(type(item))
        if engine is None:
            for t, eng in self._takes:
                if isinstance(item, t):
                    engine = self._routes[type(item)] = eng
                    break
            else:
                raise RefusedInput(f"no engine takes {type(item).__name__}")
        return engine

    # ----------------------------------------------------------- dispatch

    def dispatch(self, outputs: list[Any], now: float | None = None) -> None:
        """Publish and carry out what an engine returned outside :meth:`submit` (an
        engine's ``start``), at ``now`` (default: the clock's)."""
        self._dispatch(outputs, now)

    def _dispatch(self, outputs: list[Any], now: float | None = None) -> None:
        self._queue.extend(outputs)
        if self._draining:
            return  # the outer call drains in order
        self._draining = True
        # Everything this input causes happens at the same instant: the one the engine
        # that returned ``outputs`` was given (the loop clock moves meanwhile).
        if now is None:
            now = self.clock.now()
        try:
            while self._queue:
                self._one(self._queue.popleft(), now)
        finally:
            self._draining = False
            self.rearm()

    def _one(self, item: Any, now: float) -> None:
        if isinstance(item, Event):
            if self.log_events:
                self._log_event(item)
            self.bus.publish(item)
            followers = self._follow_by_type.get(type(item))
            if followers is None:
                followers = self._follow_by_type[type(item)] = [
                    eng for eng, kinds in self._followers
                    if kinds is None or isinstance(item, kinds)]
            for eng in followers:
                try:
                    out = eng.handle(now, item)
                    if out:
                        self._queue.extend(out)
                except Exception:
                    self.log.exception("engine_failed", engine=type(eng).__name__,
                                       event_name=item.name)
            return
        try:
            engine = self._engine_for(item)
            self._queue.extend(engine.handle(now, item))
        except self.refusals as exc:
            if self.on_refused is not None:
                self.on_refused(item, exc)
        except Exception:
            # One bad input must not hold back what is queued behind it.
            self.log.exception("engine_failed", input=type(item).__name__)

    # ------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        """The earliest deadline of every engine, or None."""
        best: float | None = None
        for eng in self._engines:
            d = eng.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def fire_due(self) -> None:
        """Run every engine timer due now, one engine's batch at a time, until none is due.

        A driver hands back one action per call, so the core's events for it are
        dispatched (and can cancel what became moot) before the next is taken.
        """
        now = self.clock.now()
        progressed = True
        while progressed:
            progressed = False
            for eng in self._engines:
                d = eng.next_deadline()
                if d is not None and d <= now:
                    try:
                        self._dispatch(eng.handle_timer(now), now)
                    except Exception:
                        self.log.exception("engine_timer_failed", engine=type(eng).__name__)
                        continue
                    progressed = True

    # ---------------------------------------------------------- real time

    def start(self) -> None:
        """Arm the loop timer for the earliest deadline (real time, on a :class:`LoopClock`)."""
        self._running = True
        self.rearm()

    def stop(self) -> None:
        """Stop arming loop timers (shutdown)."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None

    def rearm(self) -> None:
        """Re-arm the one loop timer for the earliest engine deadline (real time only)."""
        clock = self.clock
        if not self._running or not isinstance(clock, LoopClock):
            return
        at = self.next_deadline()
        if at == self._timer_at:
            return
        armed = self._timer_at
        if self._timer is not None and armed is not None and (at is None or at > armed):
            # The armed timer fires first and re-arms then (firing finds nothing due):
            # cheaper than a cancel and a new loop timer each time a call's timer goes.
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = clock.loop.call_at(clock.loop_time(at), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.fire_due()
        finally:
            # Whatever happened above, the next deadline stays armed.
            self.rearm()

    # -------------------------------------------------------- virtual time

    def step(self) -> bool:
        """Virtual time: jump to the next deadline and fire it; False when nothing is pending."""
        clock = self.clock
        assert isinstance(clock, VirtualClock), "step() runs on a VirtualClock"
        d = self.next_deadline()
        if d is None:
            return False
        clock.t = max(clock.t, d)
        self.fire_due()
        return True

    def run_until(self, t: float) -> None:
        """Virtual time: fire every deadline up to and including ``t``, then set the clock to ``t``."""
        clock = self.clock
        assert isinstance(clock, VirtualClock), "run_until() runs on a VirtualClock"
        while True:
            d = self.next_deadline()
            if d is None or d > t:
                break
            self.step()
        clock.t = max(clock.t, t)

    def advance(self, seconds: float) -> None:
        """Virtual time: run for ``seconds``."""
        self.run_until(self.clock.now() + seconds)

    def run_idle(self, limit: int = 1_000_000) -> None:
        """Virtual time: run until nothing is pending or ``limit`` steps were taken."""
        for _ in range(limit):
            if not self.step():
                return

    # ------------------------------------------------------------ logging

    def _log_event(self, ev: Event) -> None:
        if isinstance(ev, _DEBUG_ONLY):
            if self.debug:
                self.log.debug(ev.name, **ev.fields())
            return
        if isinstance(ev, QueueLogEntry):
            # It repeats a queue.* event already logged (and its ``event`` field would
            # clash with the log call's own): one debug line, as the file has it.
            if self.debug:
                self.log.debug(ev.name, entry=ev.line())
            return
        fields = ev.fields()
        fields.pop("time", None)
        if isinstance(ev, CallEvent):
            call_id = fields.pop("call_id")
            if isinstance(ev, CallEnded):
                cdr = ev.cdr
                fields.update(src=cdr.src, dst=cdr.dst, trunk=cdr.trunk, extension=cdr.extension,
                              agent=cdr.agent, queue=cdr.queue, wait_s=cdr.wait_s,
                              blocked_reason=cdr.blocked_reason)
            # A flow that could not do something at run time is for the operator to fix.
            method = "warning" if isinstance(ev, IvrError) else "info"
            fields = {"call_id": call_id, **fields}
        else:
            method = "warning" if isinstance(ev, LineError) else "info"
        # The same line as self.log's, without structlog's layers (logconfig.emit).
        if not emit("switchd", method, ev.name, fields):
            getattr(self.log, method)(ev.name, **fields)
