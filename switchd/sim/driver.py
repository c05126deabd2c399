"""Apply board actions to the core, and run both in virtual time.

:func:`apply_action` is the one place that turns a :data:`~switchd.sim.board.BoardAction`
into a core input; the asyncio shell and :class:`VirtualRun` both use it, so the
daemon and ``switchd bench``/tests exercise the same path.
"""

from __future__ import annotations

from collections.abc import Callable

from switchd.core.engine import CoreError, SwitchCore
from switchd.events import CallEnded, Cdr, Event
from switchd.sim.board import Answer, BoardAction, FarBusy, Hangup, SimBoard

__all__ = ["ContactLookup", "VirtualRun", "apply_action"]

#: number -> (vip, blacklisted)
ContactLookup = Callable[[str], tuple[bool, bool]]


def _no_contact(_number: str) -> tuple[bool, bool]:
    return (False, False)


def apply_action(core: SwitchCore, action: BoardAction, now: float,
                 contacts: ContactLookup = _no_contact) -> list[Event]:
    """Carry out one simulated action on the core and return the events it caused.

    Raises CoreError when the core refuses a new call (e.g. all trunks busy).
    """
    if isinstance(action, Answer):
        return core.answer(now, action.line)
    if isinstance(action, Hangup):
        return core.hangup(now, action.line) if not core.lines[action.line].idle else []
    if isinstance(action, FarBusy):
        return core.far_busy(now, action.line)
    vip, blacklisted = contacts(action.caller)
    _, events = core.incoming(now, action.caller, action.dnis,
                              blocked_reason="blacklist" if blacklisted else None, vip=vip)
    return events


class VirtualRun:
    """Core + simulated board in virtual time: no sleeps, the clock jumps to the next deadline.

    ``events`` keeps every event in order (when ``keep_events``), ``cdrs`` every CDR,
    ``rejected`` the simulated calls the core refused.
    """

    def __init__(self, core: SwitchCore, board: SimBoard, *, now: float = 1_764_000_000.0,
                 contacts: ContactLookup = _no_contact, keep_events: bool = True) -> None:
        self.core = core
        self.board = board
        self.now = now
        self.contacts = contacts
        self.keep_events = keep_events
        self.events: list[Event] = []
        self.cdrs: list[Cdr] = []
        self.rejected: list[CoreError] = []
        board.start(now)

    def feed(self, events: list[Event]) -> list[Event]:
        """Record ``events`` and let the simulated board react to them; returns them."""
        for ev in events:
            if self.keep_events:
                self.events.append(ev)
            if isinstance(ev, CallEnded):
                self.cdrs.append(ev.cdr)
            self.board.on_event(ev, self.now)
        return events

    def act(self, action: BoardAction) -> list[Event]:
        """Apply one action now."""
        try:
            return self.feed(apply_action(self.core, action, self.now, self.contacts))
        except CoreError as exc:
            self.rejected.append(exc)
            return []

    def next_deadline(self) -> float | None:
        """The earliest deadline of core and board."""
        ds = [d for d in (self.core.next_deadline(), self.board.next_deadline()) if d is not None]
        return min(ds) if ds else None

    def step(self) -> bool:
        """Advance to the next deadline and fire it; False when nothing is pending."""
        d = self.next_deadline()
        if d is None:
            return False
        self.now = max(self.now, d)
        self.feed(self.core.handle_timer(self.now))
        while (action := self.board.pop_due(self.now)) is not None:
            self.act(action)
        return True

    def run_until(self, t: float) -> None:
        """Fire every deadline up to and including ``t``, then set the clock to ``t``."""
        while True:
            d = self.next_deadline()
            if d is None or d > t:
                break
            self.step()
        self.now = max(self.now, t)

    def advance(self, seconds: float) -> None:
        """Run for ``seconds`` of virtual time."""
        self.run_until(self.now + seconds)

    def run_idle(self, limit: int = 1_000_000) -> None:
        """Run until nothing is pending (traffic off) or ``limit`` steps."""
        for _ in range(limit):
            if not self.step():
                return
