"""The simulated voice board: callers on trunks, bot agent phones on extensions, the PSTN far end.

:class:`SimBoard` is sans-IO like the core. It watches the core's events (a phone
rings, a call is bridged, a busy tone starts), decides what the simulated people
do and when, and hands back :data:`BoardAction` values when their time comes. The
asyncio shell and the virtual-time driver apply those actions to the core.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, replace
from enum import Enum

from switchd.events import CallBridged, CallRinging, Event, LineState, ToneStarted

__all__ = [
    "Answer",
    "AgentMode",
    "BoardAction",
    "BotSettings",
    "FarBusy",
    "Hangup",
    "Incoming",
    "OutsideSettings",
    "SimBoard",
    "SimSettings",
    "TrafficSettings",
]


#: Seconds within which the demo traffic's first caller rings after start.
FIRST_CALL_WITHIN_S = 1.0


@dataclass(frozen=True, slots=True)
class Answer:
    """The party on ``line`` answers."""

    line: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """The party on ``line`` hangs up."""

    line: str


@dataclass(frozen=True, slots=True)
class FarBusy:
    """The outside number dialled on trunk ``line`` is busy."""

    line: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """A simulated caller dials in from the PSTN."""

    caller: str
    dnis: str


BoardAction = Answer | Hangup | FarBusy | Incoming


class AgentMode(Enum):
    """How a simulated agent phone behaves."""

    #: Answers after ``answer_after_s`` and hangs up after a random talk time.
    AUTO = "auto"
    #: Rings until something else (a CTI client, a timeout) acts.
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class BotSettings:
    """A bot agent phone: ``talk_s`` is the (min, max) of a uniform talk time in seconds."""

    mode: AgentMode = AgentMode.AUTO
    answer_after_s: float = 2.0
    talk_s: tuple[float, float] = (20.0, 90.0)


@dataclass(frozen=True, slots=True)
class OutsideSettings:
    """The simulated PSTN answering outbound calls."""

    answer_after_s: float = 3.0
    talk_s: tuple[float, float] = (10.0, 60.0)
    busy_numbers: frozenset[str] = frozenset()
    unanswered_numbers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    """Demo traffic: Poisson arrivals at ``calls_per_minute`` to ``dnis``."""

    enabled: bool = False
    calls_per_minute: float = 6.0
    dnis: str = "8000"
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Everything the simulated board needs; ``caller_hangup_after_tone_s`` is how long
    a simulated caller listens to busy/congestion before hanging up."""

    bots: BotSettings = BotSettings()
    outside: OutsideSettings = OutsideSettings()
    traffic: TrafficSettings = TrafficSettings()
    caller_hangup_after_tone_s: float = 2.0


class SimBoard:
    """Simulated people around the switch, driven by the core's events and by time."""

    def __init__(self, settings: SimSettings, extensions: tuple[int, ...],
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng if rng is not None else random.Random(settings.traffic.seed)
        self.agents: dict[int, BotSettings] = {n: settings.bots for n in extensions}
        self._timers: list[tuple[float, int, str, int, BoardAction]] = []
        self._tokens: dict[str, int] = {}
        self._seq = 0
        self._next_caller = 0
        self._traffic_armed = False
        #: Trunks rung for an outbound call: their far end hangs up by itself after talking.
        self._outbound_trunks: set[str] = set()

    def reconfigure(self, settings: SimSettings, extensions: tuple[int, ...]) -> None:
        """Take new defaults; agents set with ``set_agent`` keep their own settings."""
        old = self.settings.bots
        self.settings = settings
        for n in extensions:
            if self.agents.get(n, old) == old:
                self.agents[n] = settings.bots
        if not settings.traffic.enabled:
            # Otherwise the arrival already drawn would still come after traffic was switched off.
            self._cancel("traffic")
            self._traffic_armed = False

    def set_agent(self, ext: int, *, mode: AgentMode | None = None,
                  answer_after_s: float | None = None,
                  talk_s: tuple[float, float] | None = None) -> BotSettings:
        """Change how the phone on extension ``ext`` behaves. Raises KeyError for an unknown extension.

        Switching a phone to ``manual`` also drops what its bot had already planned (an
        answer while it rings, a hangup after talking): from then on a person decides.
        """
        cur = self.agents[ext]
        new = replace(
            cur,
            mode=mode if mode is not None else cur.mode,
            answer_after_s=answer_after_s if answer_after_s is not None else cur.answer_after_s,
            talk_s=talk_s if talk_s is not None else cur.talk_s,
        )
        self.agents[ext] = new
        if new.mode is AgentMode.MANUAL:
            self._cancel(f"ext/{ext}")
        return new

    # ------------------------------------------------------------- time

    def start(self, now: float) -> None:
        """Arm the traffic generator (if enabled).

        The first caller rings within :data:`FIRST_CALL_WITHIN_S`, so a demo shows a
        call at once rather than after a long first Poisson gap; later arrivals are Poisson.
        """
        if self.settings.traffic.enabled and not self._traffic_armed:
            self._traffic_armed = True
            self._arm_arrival(now, first=True)

    def next_deadline(self) -> float | None:
        """Epoch time of the next simulated action, or None."""
        while self._timers:
            deadline, _, key, token, _ = self._timers[0]
            if self._tokens.get(key) == token:
                return deadline
            heapq.heappop(self._timers)
        return None

    def pop_due(self, now: float) -> BoardAction | None:
        """Return the next action due at ``now`` (or None).

        One at a time, so that drivers apply it and feed the core's events back before
        the next one is taken: an answer made moot by another phone answering first is
        cancelled rather than delivered late.
        """
        while self._timers and self._timers[0][0] <= now:
            _, _, key, token, action = heapq.heappop(self._timers)
            if self._tokens.get(key) != token:
                continue
            del self._tokens[key]
            if isinstance(action, Incoming):
                self._traffic_armed = False
                if self.settings.traffic.enabled:
                    self._traffic_armed = True
                    self._arm_arrival(now)
            return action
        return None

    # ----------------------------------------------------------- events

    def on_event(self, event: Event, now: float) -> None:
        """Let the simulated people react to what the switch did."""
        if isinstance(event, LineState):
            if event.state == "idle":
                self._cancel(event.line)
                self._outbound_trunks.discard(event.line)
        elif isinstance(event, CallRinging):
            self._on_ringing(event, now)
        elif isinstance(event, CallBridged):
            for line in (event.line_a, event.line_b):
                self._on_talking(line, now)
        elif isinstance(event, ToneStarted) and event.tone in ("busy", "congestion"):
            if event.line.startswith("trunk/") or self._bot(event.line) is not None:
                self._arm(event.line, now + self.settings.caller_hangup_after_tone_s,
                          Hangup(event.line))

    def _on_ringing(self, event: CallRinging, now: float) -> None:
        if event.line.startswith("trunk/"):
            out = self.settings.outside
            self._outbound_trunks.add(event.line)
            if event.callee in out.busy_numbers:
                self._arm(event.line, now + 0.5, FarBusy(event.line))
            elif event.callee not in out.unanswered_numbers:
                self._arm(event.line, now + out.answer_after_s, Answer(event.line))
            return
        bot = self._bot(event.line)
        if bot is not None:
            self._arm(event.line, now + bot.answer_after_s, Answer(event.line))

    def _on_talking(self, line: str, now: float) -> None:
        if line.startswith("trunk/"):
            # Only the far end of an outbound call hangs up by itself; an inbound caller
            # waits for the agent (or SIM.HANGUP).
            if line in self._outbound_trunks:
                lo, hi = self.settings.outside.talk_s
                self._arm(line, now + self.rng.uniform(lo, hi), Hangup(line))
            return
        bot = self._bot(line)
        if bot is not None:
            lo, hi = bot.talk_s
            self._arm(line, now + self.rng.uniform(lo, hi), Hangup(line))

    def _bot(self, line: str) -> BotSettings | None:
        if not line.startswith("ext/"):
            return None
        try:
            bot = self.agents.get(int(line[4:]))
        except ValueError:
            return None
        return bot if bot is not None and bot.mode is AgentMode.AUTO else None

    # -------------------------------------------------------- primitives

    def _arm_arrival(self, now: float, first: bool = False) -> None:
        rate = self.settings.traffic.calls_per_minute / 60.0
        if rate <= 0:
            self._traffic_armed = False
            return
        self._next_caller += 1
        caller = f"1390000{self.rng.randrange(10000):04d}"
        gap = self.rng.expovariate(rate)
        if first:
            gap = min(gap, FIRST_CALL_WITHIN_S)
        self._arm("traffic", now + gap, Incoming(caller, self.settings.traffic.dnis))

    def _arm(self, key: str, deadline: float, action: BoardAction) -> None:
        self._seq += 1
        self._tokens[key] = self._seq
        heapq.heappush(self._timers, (deadline, self._seq, key, self._seq, action))

    def _cancel(self, key: str) -> None:
        self._tokens.pop(key, None)
