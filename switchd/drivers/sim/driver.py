"""The simulated board as a board driver: :class:`SimBoard`'s signalling plus the parties' audio.

Implements :class:`switchd.lines.board.BoardDriver`. Signalling is the sans-IO
:class:`~switchd.drivers.sim.board.SimBoard`; audio is what the simulated people say
(:class:`~switchd.drivers.sim.audio.SimAudio`: silence, a test tone or speech, while
their line is in a call) plus keys they press (:meth:`SimDriver.press`: real DTMF
audio on the line, detected by the media plane like on an analog board). The
board's scripted callers press keys through the same path: its
:class:`~switchd.drivers.sim.board.PressKeys` actions are carried out here, never
handed to the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from switchd.drivers.sim import board as sim_board
from switchd.drivers.sim.audio import SimAudio, SourceKind
from switchd.drivers.sim.board import (
    AgentMode,
    BoardAction,
    BotSettings,
    PressKeys,
    SimBoard,
    SimSettings,
)
from switchd.events import LineState
from switchd.lines.dtmf import generate_digits
from switchd.lines.prompts import PromptPlayer
from switchd.lines.state import LineStatus

__all__ = ["SimDriver"]

FRAME = 160


class SimDriver:
    """Simulated parties on every line of the board, signalling and audio.

    :attr:`FOLLOWS`: the core events it reacts to (the shell hands it no others).

    ``lines``: line names in the media plane's channel order. ``caller_source`` /
    ``agent_source``: what simulated parties on trunks / extensions say in a call.
    """

    #: The board's events; its voices start and stop on ``line.state``, which is among them.
    FOLLOWS: tuple[type, ...] = sim_board.FOLLOWS

    def __init__(self, settings: SimSettings, extensions: tuple[int, ...], lines: Sequence[str],
                 *, audio: SimAudio | None = None,
                 caller_source: SourceKind = SourceKind.SILENCE,
                 agent_source: SourceKind = SourceKind.SILENCE) -> None:
        self.board = SimBoard(settings, extensions)
        self.lines = list(lines)
        self.channel_of = {name: i for i, name in enumerate(self.lines)}
        self.audio = audio if audio is not None else SimAudio(len(self.lines))
        self.caller_source = caller_source
        self.agent_source = agent_source
        #: audio the parties send on top of (instead of) their voice: pressed keys
        self.injector = PromptPlayer(len(self.lines))
        self._injecting: dict[int, np.ndarray] = {}
        #: what each party heard in the last frame (int16 [C, 160]); for tests and tools
        self.heard = np.zeros((len(self.lines), FRAME), dtype=np.int16)

    # ---------------------------------------------------------- signalling

    def start(self, now: float) -> None:
        """Start the demo traffic (if enabled)."""
        self.board.start(now)

    def reconfigure(self, settings: SimSettings, extensions: tuple[int, ...]) -> None:
        """Take new simulator settings (reload); live calls keep their plans."""
        self.board.reconfigure(settings, extensions)

    def set_agent(self, ext: int, *, mode: AgentMode | None = None,
                  answer_after_s: float | None = None,
                  talk_s: tuple[float, float] | None = None) -> BotSettings:
        """Change how the phone on extension ``ext`` behaves. Raises KeyError for an unknown one."""
        return self.board.set_agent(ext, mode=mode, answer_after_s=answer_after_s, talk_s=talk_s)

    def handle(self, now: float, item: Any) -> list[BoardAction]:
        """Follow one core event: the simulated people plan what to do; voices start and stop."""
        if type(item) is LineState:
            ch = self.channel_of.get(item.line)
            if ch is not None:
                if item.state is LineStatus.IDLE:
                    self.audio.stop(ch)
                    self.injector.stop(ch)
                    self._injecting.pop(ch, None)
                elif item.previous is LineStatus.IDLE:
                    kind = self.caller_source if item.line.startswith("trunk/") \
                        else self.agent_source
                    if kind is not SourceKind.SILENCE:
                        self.audio.start(ch, kind)
        return self.board.handle(now, item)

    def next_deadline(self) -> float | None:
        """When a simulated person next acts, epoch s."""
        return self.board.next_deadline()

    def handle_timer(self, now: float) -> list[BoardAction]:
        """The next due action of a simulated person (at most one) for the core.

        Keys a scripted caller presses are sent here as audio on its line (the core
        hears them through the media plane) and not returned.
        """
        out: list[BoardAction] = []
        for action in self.board.handle_timer(now):
            if type(action) is PressKeys:
                self.press(action.line, action.keys, on_ms=action.on_ms, off_ms=action.off_ms)
            else:
                out.append(action)
        return out

    # --------------------------------------------------------------- audio

    def press(self, line: str, digits: str, *, on_ms: float = 50.0, off_ms: float = 50.0) -> None:
        """The simulated party on ``line`` presses ``digits`` (0-9 A-D * #) on its keypad.

        Sent as real two-tone audio on the line's inbound, each key ``on_ms`` of tone
        then ``off_ms`` of pause (a key held for 3 s: ``on_ms=3000``), queued after
        keys still being sent; while keys are sent the party's voice is muted, as a
        phone mutes its microphone. Raises KeyError for an unknown line, ValueError
        for bad digits or negative durations.
        """
        samples = generate_digits(digits, on_ms=on_ms, off_ms=off_ms)
        ch = self.channel_of[line]
        current = self._injecting.get(ch)
        if current is not None and self.injector.playing(ch):
            samples = np.concatenate([current[self.injector.position(ch):], samples])
        self._injecting[ch] = samples
        self.injector.play(ch, samples, barge_in=False)

    def inbound(self, frame: int, time: float) -> np.ndarray:
        """int16 [C, 160]: what every simulated party says this frame."""
        inbound = self.audio.render(FRAME)
        rows, samples = self.injector.render(FRAME)
        if rows.size:
            inbound[rows] = samples  # the party's microphone is muted while it sends keys
        for ch, _ in self.injector.take_finished():
            self._injecting.pop(ch, None)
        return inbound

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        """Simulated parties hear ``samples`` (kept in :attr:`heard`)."""
        self.heard = samples
