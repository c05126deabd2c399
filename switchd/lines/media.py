"""The media plane: every line's audio, one 20 ms frame at a time, all channels at once.

Per frame (DESIGN §3): sources → mixing → sinks.

1. ``inbound`` int16 [C, 160]: what each line's party says (the board; on the sim
   board :class:`~switchd.sim.audio.SimAudio` plus injected audio such as the
   DTMF of ``SIM.DTMF``).
2. In-band DTMF detection on every channel's inbound (:class:`~switchd.lines.dtmf.DtmfDetector`).
3. Switch-generated audio for listeners: call-progress tones (:class:`~switchd.lines.tones.ToneBank`),
   prompts and music on hold (:class:`~switchd.lines.prompts.PromptPlayer`).
4. ``outbound`` int16 [C, 160] = the bridges' (listener, talker, gain) weights over
   inbound plus the generated rows (:class:`~switchd.lines.mixer.Mixer`), saturated.
5. Recorder taps get (inbound, outbound) rows of the lines they follow.

The plane follows the call core through its events (tone started/stopped, call
bridged/held/retrieved/transferred/ended, line idle), so who hears whom is data
derived from the core, never a second opinion. Channel numbers are the positions
of the line names given at construction (trunks first, then extensions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from switchd.events import (
    CallBridged,
    CallEnded,
    CallHeld,
    CallRetrieved,
    CallTransferred,
    Event,
    LineState,
    ToneStarted,
    ToneStopped,
)
from switchd.lines.dtmf import DtmfDetector
from switchd.lines.mixer import Mixer, held, two_party
from switchd.lines.prompts import MusicOnHold, PromptCache, PromptError, PromptPlayer
from switchd.lines.tones import ToneBank
from switchd.recorder.taps import Taps
from switchd.sim.audio import SimAudio, SourceKind

__all__ = ["DtmfHit", "FRAME", "MediaPlane"]

#: Samples per frame: 20 ms at 8 kHz.
FRAME = 160
RATE = 8000

log = structlog.get_logger("switchd.media")


@dataclass(frozen=True, slots=True)
class DtmfHit:
    """A digit detected in the audio of ``line``; ``time`` is epoch seconds of the frame it was confirmed in."""

    line: str
    digit: str
    time: float


class MediaPlane:
    """All channels' audio. Not thread-safe; driven by the media ticker on the event loop.

    ``lines``: line names in channel order. ``caller_source``/``agent_source``: what
    simulated parties on trunks/extensions say while in a call.
    """

    def __init__(self, lines: Sequence[str], *, tone_plan: str = "cn",
                 moh_dir: Path | None = None, prompt_cache: PromptCache | None = None,
                 sim_audio: SimAudio | None = None,
                 caller_source: SourceKind = SourceKind.SILENCE,
                 agent_source: SourceKind = SourceKind.SILENCE) -> None:
        self.lines = list(lines)
        self.channel_of = {name: i for i, name in enumerate(self.lines)}
        c = len(self.lines)
        self.channels = c
        self.tones = ToneBank(tone_plan)
        self.tone_id = np.full(c, -1, dtype=np.int16)
        self.tone_pos = np.zeros(c, dtype=np.int64)
        self.mixer = Mixer(c)
        self.player = PromptPlayer(c)        # what the switch plays to a line
        self.injector = PromptPlayer(c)      # audio injected into a line's inbound (sim DTMF)
        self.cache = prompt_cache or PromptCache()
        self.moh = MusicOnHold(moh_dir, self.cache)
        self.sim = sim_audio or SimAudio(c)
        self.caller_source = caller_source
        self.agent_source = agent_source
        self.dtmf = DtmfDetector(c)
        self.taps = Taps()
        self.frames = 0
        self._moh_key: dict[int, str] = {}
        #: channel -> the buffer being injected on it (to queue further injections)
        self._injecting: dict[int, np.ndarray] = {}
        #: (channel, play id) of prompts that played to their end; the owner drains it
        #: with :meth:`take_finished_plays` (the IVR's "prompt done" signal).
        self.finished_plays: list[tuple[int, int]] = []
        self.last_inbound = np.zeros((c, FRAME), dtype=np.int16)
        self.last_outbound = np.zeros((c, FRAME), dtype=np.int16)

    # ------------------------------------------------------------ following the core

    def on_event(self, ev: Event) -> None:
        """Update tones, bridges, MOH and sources from one core event."""
        if isinstance(ev, ToneStarted):
            ch = self.channel_of.get(ev.line)
            if ch is None:
                return
            if ev.tone == "moh":
                self._stop_tone(ch)
                key = ev.call_id or ev.line
                self._moh_key[ch] = key
                self.moh.start(self.player, ch, key)
            elif ev.tone in self.tones.names:
                self.tone_id[ch] = self.tones.index(ev.tone)
                self.tone_pos[ch] = 0
        elif isinstance(ev, ToneStopped):
            ch = self.channel_of.get(ev.line)
            if ch is not None:
                self._stop_tone(ch)
        elif isinstance(ev, CallBridged | CallRetrieved):
            a, b = (ev.line_a, ev.line_b) if isinstance(ev, CallBridged) else (ev.line, ev.held_line)
            ca, cb = self.channel_of.get(a), self.channel_of.get(b)
            if ca is not None and cb is not None:
                self.mixer.set_bridge(ev.call_id, two_party(ca, cb))
        elif isinstance(ev, CallHeld):
            ca, cb = self.channel_of.get(ev.line), self.channel_of.get(ev.held_line)
            if ca is not None and cb is not None:
                self.mixer.set_bridge(ev.call_id, held(ca, cb))
        elif isinstance(ev, CallTransferred):
            self.mixer.remove_bridge(ev.call_id)
        elif isinstance(ev, CallEnded):
            self.mixer.remove_bridge(ev.call_id)
            self.moh.forget(ev.call_id)
        elif isinstance(ev, LineState):
            ch = self.channel_of.get(ev.line)
            if ch is None:
                return
            if ev.state == "idle":
                self._stop_tone(ch)
                self.player.stop(ch)
                self.injector.stop(ch)
                self._injecting.pop(ch, None)
                self.sim.stop(ch)
                self.dtmf.reset([ch])
            elif ev.previous == "idle":
                kind = self.caller_source if ev.line.startswith("trunk/") else self.agent_source
                if kind is not SourceKind.SILENCE:
                    self.sim.start(ch, kind)

    def _stop_tone(self, ch: int) -> None:
        self.tone_id[ch] = -1
        key = self._moh_key.pop(ch, None)
        if key is not None:
            self.moh.stop(self.player, ch, key)

    # ------------------------------------------------------------ inputs

    def inject(self, line: str, samples: np.ndarray) -> None:
        """Send ``samples`` (int16 1-D) on ``line``'s inbound, as if its party sent them.

        Injections queue: what is still being sent goes first, then ``samples``. While
        injected audio plays, the simulated party's own audio is muted, as a phone
        mutes its microphone while it sends DTMF.
        """
        ch = self.channel_of[line]
        current = self._injecting.get(ch)
        if current is not None and self.injector.playing(ch):
            samples = np.concatenate([current[self.injector.position(ch):], samples])
        self._injecting[ch] = samples
        self.injector.play(ch, samples, barge_in=False)

    def play(self, line: str, samples: np.ndarray, *, loop: bool = False,
             barge_in: bool = True) -> int:
        """Play a prompt to the party on ``line``; returns the play id.

        With ``barge_in`` a DTMF digit detected on that line stops the prompt.
        """
        return self.player.play(self.channel_of[line], samples, loop=loop, barge_in=barge_in)

    def play_file(self, line: str, path: Path, *, loop: bool = False,
                  barge_in: bool = True) -> int | None:
        """Play the prompt file ``path`` to ``line``; None when it cannot be played.

        A missing or undecodable file is logged once with the file and what to do
        (install ffmpeg, convert to WAV); the call goes on and the caller hears
        silence, and the caller of this method takes its error path.
        """
        try:
            samples = self.cache.get(path)
        except PromptError as exc:
            log.error("prompt_unplayable", line=line, file=str(exc.path), reason=exc.reason)
            return None
        return self.play(line, samples, loop=loop, barge_in=barge_in)

    def take_finished_plays(self) -> list[tuple[str, int]]:
        """Return and forget the (line, play id) of prompts that played to their end."""
        out = [(self.lines[ch], pid) for ch, pid in self.finished_plays]
        self.finished_plays.clear()
        return out

    # ------------------------------------------------------------ the tick

    def process(self, frames: int, now: float) -> list[DtmfHit]:
        """Run ``frames`` frames back to back; ``now`` is the epoch time at the end of the last.

        Returns the DTMF digits detected, in time order.
        """
        hits: list[DtmfHit] = []
        for k in range(frames):
            t_end = now - (frames - 1 - k) * FRAME / RATE
            for ch, digit, _ in self._frame():
                # Barge-in: a key press stops a prompt that allows it (never music on hold).
                self.player.barge(ch)
                hits.append(DtmfHit(self.lines[ch], digit, t_end))
        return hits

    def _frame(self) -> list[tuple[int, str, int]]:
        inbound = self.sim.render(FRAME)
        rows, audio = self.injector.render(FRAME)
        if rows.size:
            inbound[rows] = audio  # the party's microphone is muted while it sends
        for ch, _ in self.injector.take_finished():
            self._injecting.pop(ch, None)
        hits = self.dtmf.process(inbound)

        extra_rows: list[np.ndarray] = []
        extra: list[np.ndarray] = []
        tone_rows = np.flatnonzero(self.tone_id >= 0)
        if tone_rows.size:
            extra.append(self.tones.render(self.tone_id[tone_rows].astype(np.int64),
                                           self.tone_pos[tone_rows], FRAME))
            extra_rows.append(tone_rows)
            self.tone_pos[tone_rows] += FRAME
        prows, paudio = self.player.render(FRAME)
        self.finished_plays.extend(self.player.take_finished())
        if prows.size:
            extra.append(paudio)
            extra_rows.append(prows)
        if extra:
            outbound = self.mixer.mix(inbound, np.concatenate(extra),
                                      np.concatenate(extra_rows))
        else:
            outbound = self.mixer.mix(inbound)
        self.taps.deliver(inbound, outbound)
        self.last_inbound, self.last_outbound = inbound, outbound
        self.frames += 1
        return hits
