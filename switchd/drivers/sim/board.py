"""The simulated voice board's signalling: callers on trunks, bot agent phones on
extensions, the PSTN far end.

:class:`SimBoard` is a sans-IO engine like the core (``switchd.engine``). It follows
the core's events (a phone rings, a call is bridged, a busy tone starts), decides
what the simulated people do and when, and hands back core inputs
(:class:`~switchd.core.inputs.Answer`, ``Hangup``, ``FarBusy``, ``Incoming``) from
:meth:`SimBoard.handle_timer`, one at a time, which the shell feeds to the core.
One action is not a core input: :class:`PressKeys`, a simulated caller pressing keys,
which the driver (:class:`~switchd.drivers.sim.driver.SimDriver`) turns into real
in-band DTMF audio on the caller's line; the switch learns of the keys only by
hearing them, as on an analog board.

Demo callers follow a key script (``sim.traffic.keys``): one drawn per call, started
when the switch answers the call itself (an IVR), one group of keys at a time, and
stopped when a person answers or the call ends.

Simulated people never strand a call: a connected simulated caller hangs up after
its own talk time whatever the agent phone does (a phone in ``manual`` mode only
stops its *own* bot), and a caller nobody answers gives up after its patience.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from switchd.core.inputs import Answer, FarBusy, Hangup, Incoming
from switchd.engine import TimerHeap
from switchd.events import (
    CallAnswered,
    CallBridged,
    CallEnded,
    CallNew,
    CallRinging,
    CallSwitchAnswered,
    Direction,
    LineState,
    Tone,
    ToneStarted,
)
from switchd.lines.state import LineStatus

__all__ = [
    "FOLLOWS",
    "KEYS",
    "AgentMode",
    "BoardAction",
    "BotSettings",
    "OutsideSettings",
    "PressKeys",
    "SimBoard",
    "SimSettings",
    "TrafficSettings",
    "check_key_group",
]


#: Seconds within which the demo traffic's first caller rings after start.
FIRST_CALL_WITHIN_S = 1.0

#: The keys of a DTMF keypad, as a key script writes them.
KEYS = "0123456789*#ABCD"
#: Most keys in one group of a key script (a long account number and its ``#``).
MAX_GROUP_KEYS = 32
#: A scripted caller's key press: ms of tone per key and ms between keys, a person's
#: usual pace and well above the 40 ms a switch must accept (Q.24).
KEY_ON_MS = 100.0
KEY_OFF_MS = 100.0


@dataclass(frozen=True, slots=True)
class PressKeys:
    """The simulated party on ``line`` presses ``keys`` now, ``on_ms`` of tone and
    ``off_ms`` of pause each.

    Not a core input: the driver sends the keys as in-band DTMF audio on the line
    (:meth:`~switchd.drivers.sim.driver.SimDriver.press`), and the media plane's
    detector makes digits of them, as it would for a real phone.
    """

    line: str
    keys: str
    on_ms: float = KEY_ON_MS
    off_ms: float = KEY_OFF_MS

    @property
    def duration_s(self) -> float:
        """Seconds the keys take to send, pauses included."""
        return len(self.keys) * (self.on_ms + self.off_ms) / 1000.0


#: What the simulated people do: inputs of the core, and keys the driver sends as audio.
BoardAction = Answer | Hangup | FarBusy | Incoming | PressKeys

#: The core events the simulated people react to (:meth:`SimBoard.handle` ignores others).
FOLLOWS: tuple[type, ...] = (LineState, CallNew, CallRinging, CallBridged, ToneStarted,
                             CallSwitchAnswered, CallAnswered, CallEnded)


def check_key_group(group: str) -> str:
    """Return ``group`` if it is a valid group of a key script, else raise ValueError saying why.

    Valid: 1 to :data:`MAX_GROUP_KEYS` keys, each one of :data:`KEYS` (letters in
    upper case, as printed on a keypad).
    """
    if not isinstance(group, str) or not group:
        raise ValueError(f"a key group must be a non-empty string of keys ({KEYS}), got {group!r}")
    bad = next((k for k in group if k not in KEYS), None)
    if bad is not None:
        raise ValueError(f"{bad!r} in {group!r} is not a key; keys are 0-9, *, # and A-D")
    if len(group) > MAX_GROUP_KEYS:
        raise ValueError(f"a key group has at most {MAX_GROUP_KEYS} keys, got {len(group)}")
    return group


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
    """Demo traffic: Poisson arrivals at ``calls_per_minute`` to ``dnis``.

    ``keys``: key scripts; each demo call draws one uniformly (``()``: nobody presses
    keys). A script is a tuple of key groups (strings of :data:`KEYS`); an empty
    script is a caller who never presses. The caller sends the first group
    ``first_key_after_s`` seconds after the switch answers the call itself (an IVR
    greets it), and each next group ``key_gap_s`` seconds after the previous group's
    last key; it stops when a person answers the call or it ends. ``seed`` makes
    arrivals, talk times and the drawn scripts repeatable.

    Raises ValueError for a bad key group or a negative time.
    """

    enabled: bool = False
    calls_per_minute: float = 6.0
    dnis: str = "8000"
    seed: int | None = None
    keys: tuple[tuple[str, ...], ...] = ()
    first_key_after_s: float = 9.0
    key_gap_s: float = 6.0

    def __post_init__(self) -> None:
        for script in self.keys:
            for group in script:
                check_key_group(group)
        if self.first_key_after_s < 0 or self.key_gap_s < 0:
            raise ValueError(
                f"first_key_after_s and key_gap_s must be >= 0, got "
                f"{self.first_key_after_s} and {self.key_gap_s}"
            )


@dataclass(slots=True)
class _KeyScript:
    """The key groups one demo caller still has to press (``pos``: the next one)."""

    line: str
    groups: tuple[str, ...]
    pos: int = 0
    started: bool = False


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Everything the simulated board needs.

    ``caller_hangup_after_tone_s``: how long a simulated caller listens to busy or
    congestion tone before hanging up. ``caller_talk_s``: (min, max) seconds a
    connected simulated caller talks before hanging up, whatever the agent phone
    does. ``caller_patience_s``: seconds a simulated caller waits unanswered (ringing,
    in an IVR or a queue) before giving up.
    """

    bots: BotSettings = BotSettings()
    outside: OutsideSettings = OutsideSettings()
    traffic: TrafficSettings = TrafficSettings()
    caller_hangup_after_tone_s: float = 2.0
    caller_talk_s: tuple[float, float] = (60.0, 180.0)
    caller_patience_s: float = 60.0


class SimBoard:
    """Simulated people around the switch, driven by the core's events and by time.

    Implements the engine protocol: :meth:`handle` takes the core's events,
    :meth:`handle_timer` returns the next due core input (at most one per call).
    """

    def __init__(self, settings: SimSettings, extensions: tuple[int, ...],
                 rng: random.Random | None = None,
                 key_rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng if rng is not None else random.Random(settings.traffic.seed)
        # The key scripts draw from their own generator, so that configuring them
        # leaves the arrivals and talk times of a seeded run as they were.
        seed = settings.traffic.seed
        self.key_rng = key_rng if key_rng is not None else random.Random(
            None if seed is None else f"sim.traffic.keys/{seed}")
        self.agents: dict[int, BotSettings] = {n: settings.bots for n in extensions}
        #: key (a line name, or "traffic") -> the one action planned for it
        self._timers: TimerHeap[str] = TimerHeap()
        self._traffic_armed = False
        #: Trunks rung for an outbound call: their far end hangs up by itself after talking.
        self._outbound_trunks: set[str] = set()
        #: The caller number of the demo call just handed out, until its ``call.new``.
        self._placing: str | None = None
        #: Key scripts of demo calls, by call id; and the call id by trunk line.
        self._scripts: dict[str, _KeyScript] = {}
        self._script_calls: dict[str, str] = {}

    def reconfigure(self, settings: SimSettings, extensions: tuple[int, ...]) -> None:
        """Take new defaults; agents set with ``set_agent`` keep their own settings."""
        old = self.settings.bots
        self.settings = settings
        for n in extensions:
            if self.agents.get(n, old) == old:
                self.agents[n] = settings.bots
        if not settings.traffic.enabled:
            # Otherwise the arrival already drawn would still come after traffic was switched off.
            self._timers.cancel("traffic")
            self._traffic_armed = False

    def set_agent(self, ext: int, *, mode: AgentMode | None = None,
                  answer_after_s: float | None = None,
                  talk_s: tuple[float, float] | None = None) -> BotSettings:
        """Change how the phone on extension ``ext`` behaves. Raises KeyError for an unknown extension.

        Switching a phone to ``manual`` also drops what its bot had already planned (an
        answer while it rings, a hangup after talking): from then on a person decides.
        The caller on the other end keeps its own plan (it still hangs up after its
        talk time), so no call is stranded.
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
            self._timers.cancel(f"ext/{ext}")
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
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[BoardAction]:
        """Return the next action due at ``now`` (a list of at most one): a core input,
        or a :class:`PressKeys` for the driver to send as audio.

        One at a time, so that the shell feeds it to the core and lets this board see
        the core's events before the next one is taken: an answer made moot by another
        phone answering first is cancelled rather than delivered late.
        """
        due = self._timers.pop_due(now)
        if due is None:
            return []
        key, action = due
        if key == "traffic":
            self._traffic_armed = False
            if self.settings.traffic.enabled:
                self._traffic_armed = True
                self._arm_arrival(now)
            # The core answers this Incoming at once with a call.new: that call is ours.
            self._placing = action.caller if self.settings.traffic.keys else None
        elif type(action) is PressKeys:
            self._arm_next_keys(now, action)
        return [action]

    # ----------------------------------------------------------- events

    def handle(self, now: float, event: Any) -> list[BoardAction]:
        """Let the simulated people react to what the switch did; returns nothing at once
        (people take time: what they do comes from :meth:`handle_timer`)."""
        kind = type(event)
        if kind is LineState:
            if event.state is LineStatus.IDLE:
                self._timers.cancel(event.line)
                self._outbound_trunks.discard(event.line)
                self._forget_script(self._script_calls.get(event.line))
        elif kind is CallNew:
            if event.direction is Direction.INBOUND and event.trunk is not None:
                # Waiting unanswered: ringing, in an IVR, in a queue — until patience ends.
                line = f"trunk/{event.trunk}"
                self._timers.arm(line, now + self.settings.caller_patience_s, Hangup(line))
                if self._placing is not None and event.caller == self._placing:
                    self._placing = None
                    self._draw_script(event.call_id, line)
        elif kind is CallSwitchAnswered:
            self._start_script(event, now)
        elif kind is CallAnswered or kind is CallEnded:
            # A person took the call (no more keys for a menu), or it is over.
            self._forget_script(event.call_id)
        elif kind is CallRinging:
            self._on_ringing(event, now)
        elif kind is CallBridged:
            for line in (event.line_a, event.line_b):
                self._on_talking(line, now)
        elif kind is ToneStarted and event.tone in (Tone.BUSY, Tone.CONGESTION):
            if event.line.startswith("trunk/") or self._bot(event.line) is not None:
                self._timers.arm(event.line, now + self.settings.caller_hangup_after_tone_s,
                                 Hangup(event.line))
        return []

    def _on_ringing(self, event: CallRinging, now: float) -> None:
        if event.line.startswith("trunk/"):
            out = self.settings.outside
            self._outbound_trunks.add(event.line)
            if event.callee in out.busy_numbers:
                self._timers.arm(event.line, now + 0.5, FarBusy(event.line))
            elif event.callee not in out.unanswered_numbers:
                self._timers.arm(event.line, now + out.answer_after_s, Answer(event.line))
            return
        bot = self._bot(event.line)
        if bot is not None:
            self._timers.arm(event.line, now + bot.answer_after_s, Answer(event.line))

    def _on_talking(self, line: str, now: float) -> None:
        if line.startswith("trunk/"):
            # The far end of an outbound call talks for the outside talk time; an inbound
            # caller for its own talk time, whatever the agent phone does.
            lo, hi = (self.settings.outside.talk_s if line in self._outbound_trunks
                      else self.settings.caller_talk_s)
            self._timers.arm(line, now + self.rng.uniform(lo, hi), Hangup(line))
            return
        bot = self._bot(line)
        if bot is not None:
            lo, hi = bot.talk_s
            self._timers.arm(line, now + self.rng.uniform(lo, hi), Hangup(line))

    def _bot(self, line: str) -> BotSettings | None:
        if not line.startswith("ext/"):
            return None
        try:
            bot = self.agents.get(int(line[4:]))
        except ValueError:
            return None
        return bot if bot is not None and bot.mode is AgentMode.AUTO else None

    # ------------------------------------------------------------ key scripts

    def _draw_script(self, call_id: str, line: str) -> None:
        scripts = self.settings.traffic.keys
        if not scripts:
            return
        groups = self.key_rng.choice(scripts)
        if groups:
            self._scripts[call_id] = _KeyScript(line, tuple(groups))
            self._script_calls[line] = call_id

    def _start_script(self, event: CallSwitchAnswered, now: float) -> None:
        script = self._scripts.get(event.call_id)
        if script is None or script.started or script.line != event.line:
            return
        script.started = True
        self._timers.arm(f"keys/{script.line}", now + self.settings.traffic.first_key_after_s,
                         PressKeys(script.line, script.groups[0]))

    def _arm_next_keys(self, now: float, sent: PressKeys) -> None:
        call_id = self._script_calls.get(sent.line)
        script = self._scripts.get(call_id) if call_id is not None else None
        if script is None:
            return
        script.pos += 1
        if script.pos >= len(script.groups):
            self._forget_script(call_id)
            return
        # The gap runs from the last key of this group, which the driver is only starting to send.
        self._timers.arm(f"keys/{script.line}",
                         now + sent.duration_s + self.settings.traffic.key_gap_s,
                         PressKeys(script.line, script.groups[script.pos]))

    def _forget_script(self, call_id: str | None) -> None:
        script = self._scripts.pop(call_id, None) if call_id is not None else None
        if script is not None:
            self._timers.cancel(f"keys/{script.line}")
            self._script_calls.pop(script.line, None)

    # -------------------------------------------------------- primitives

    def _arm_arrival(self, now: float, first: bool = False) -> None:
        rate = self.settings.traffic.calls_per_minute / 60.0
        if rate <= 0:
            self._traffic_armed = False
            return
        caller = f"1390000{self.rng.randrange(10000):04d}"
        gap = self.rng.expovariate(rate)
        if first:
            gap = min(gap, FIRST_CALL_WITHIN_S)
        self._timers.arm("traffic", now + gap, Incoming(caller, self.settings.traffic.dnis))
