"""The media plane: every line's audio, one 20 ms frame at a time, all channels at once.

Per frame (DESIGN §3): board → DTMF → sources → mixing → board, taps.

1. ``inbound`` int16 [C, 160]: what each line's party says, from the board driver
   (:class:`~switchd.lines.board.AudioPort`; the simulated board, or SIP/RTP).
2. In-band DTMF detection on every channel's inbound (:class:`~switchd.lines.dtmf.DtmfDetector`),
   and DTMF suppression: while the detector hears a key on a line, that line's row
   of the inbound used for mixing is silence (see :meth:`MediaPlane._suppress_dtmf`),
   so a key is delivered once, as a digit, and not also as audio to the other
   party, a monitoring supervisor or anyone else.
3. Switch-generated audio for listeners: call-progress tones (:class:`~switchd.lines.tones.ToneBank`),
   prompts and music on hold (:class:`~switchd.lines.prompts.PromptPlayer`).
4. ``outbound`` int16 [C, 160] = every bridge's weights over inbound plus the
   generated rows (:class:`~switchd.lines.mixer.Mixer`), saturated; handed back to
   the board driver.
5. Taps (the recorder) get (frame index, time, inbound, outbound) rows of the lines
   they follow. Their inbound is the *raw* inbound, keys included: a recording is
   evidence of what the party did (the CDR's digits can be checked against it);
   their outbound is what the line heard, so a key the other party pressed is
   suppressed there as for the listener.

The plane follows the call core through its events: ``bridge.changed`` gives every
mixing weight (:func:`~switchd.lines.mixer.bridge_weights`, the one function that
decides who hears whom), ``tone.started``/``tone.stopped`` the tones and music on
hold, an idle line stops what plays to it. Channel numbers are the positions of the
line names given at construction. It never reads a file or a socket: prompts are
decoded into the cache before they play (``PromptCache``), and audio comes from and
goes to the driver.

Music on hold and announcements on one line (a caller waiting in a queue): a prompt
started on a line whose tone is music on hold pauses the music (its call's resume
point is kept) and plays alone; when the prompt ends, is stopped or barged, the music
goes on from that point, from the next frame. Music that starts while a prompt plays
waits for it the same way. Nothing resumes once the line's tone is no longer music
on hold (``tone.stopped``: an agent answered; another tone; the line went idle): the
music never mixes under a prompt and never follows a caller into a conversation. This
is bookkeeping per event (a prompt started, ended, stopped): the tick stays one
vectorised render for all channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from switchd.events import (
    BridgeChanged,
    CallEnded,
    Event,
    LineState,
    Tone,
    ToneStarted,
    ToneStopped,
)
from switchd.lines.board import AudioPort
from switchd.lines.dtmf import DtmfDetector
from switchd.lines.mixer import Mixer, bridge_weights
from switchd.lines.prompts import MusicOnHold, PromptCache, PromptPlayer
from switchd.lines.state import LineStatus
from switchd.lines.taps import Taps
from switchd.lines.tones import ToneBank

__all__ = ["FRAME", "DtmfHit", "MediaPlane", "SilentPort"]

#: Samples per frame: 20 ms at 8 kHz.
FRAME = 160
RATE = 8000
#: Frames a line stays muted after its key's tone was declared ended: the detector
#: declares the end 25-38 ms after the tone stops (three blocks without it), so this
#: is slack for a tone that fades out (a phone's release click, an echo tail).
DTMF_TAIL_FRAMES = 1


@dataclass(frozen=True, slots=True)
class DtmfHit:
    """A digit detected in the audio of ``line``; ``time`` is epoch seconds of the frame it was confirmed in."""

    line: str
    digit: str
    time: float


class SilentPort:
    """An audio port whose parties say nothing and hear into the void (no board audio)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def inbound(self, frame: int, time: float) -> np.ndarray:
        """int16 [C, 160] of zeros."""
        return np.zeros((self.channels, FRAME), dtype=np.int16)

    def outbound(self, frame: int, time: float, samples: np.ndarray) -> None:
        """Discard ``samples``."""


class MediaPlane:
    """All channels' audio. Not thread-safe; driven by the media ticker on the event loop.

    ``lines``: line names in channel order. ``port``: the board driver's audio
    (default: silence). ``moh``: the loaded music on hold (default: the generated
    chime).
    """

    #: The events :meth:`on_event` acts on; the others need not reach it (the daemon's
    #: bus skips it for them: a call publishes about 25 events, five of these kinds).
    FOLLOWS: ClassVar[tuple[type[Event], ...]] = (BridgeChanged, ToneStarted, ToneStopped,
                                                  CallEnded, LineState)

    def __init__(self, lines: Sequence[str], *, port: AudioPort | None = None,
                 tone_plan: str = "cn", moh: MusicOnHold | None = None,
                 prompt_cache: PromptCache | None = None) -> None:
        self.lines = list(lines)
        self.channel_of = {name: i for i, name in enumerate(self.lines)}
        c = len(self.lines)
        self.channels = c
        self.port: AudioPort = port if port is not None else SilentPort(c)
        self.tones = ToneBank(tone_plan)
        self.tone_id = np.full(c, -1, dtype=np.int16)
        self.tone_pos = np.zeros(c, dtype=np.int64)
        self.mixer = Mixer(c)
        self.player = PromptPlayer(c)        # what the switch plays to a line
        self.cache = prompt_cache or PromptCache()
        self.moh = moh if moh is not None else MusicOnHold(None, self.cache)
        self.dtmf = DtmfDetector(c)
        #: Frames each line's inbound stays out of the mix for a detected key (this one included).
        self._dtmf_mute = np.zeros(c, dtype=np.int8)
        self._dtmf_muting = False
        self.taps = Taps()
        self.frames = 0
        #: channel -> call key of the lines whose tone is music on hold (playing or paused)
        self._moh_key: dict[int, str] = {}
        #: channel -> id of the play the music is paused under (a subset of ``_moh_key``)
        self._moh_under: dict[int, int] = {}
        #: (channel, play id) of prompts that played to their end; the owner drains it
        #: with :meth:`take_finished_plays` (the IVR's "prompt done" signal).
        self.finished_plays: list[tuple[int, int]] = []
        self.last_inbound = np.zeros((c, FRAME), dtype=np.int16)
        self.last_outbound = np.zeros((c, FRAME), dtype=np.int16)
        #: channel -> (key audio, frame it started) of keys a line sends (send_keys)
        self._keys: dict[int, tuple[np.ndarray, int]] = {}

    # ------------------------------------------------------------ following the core

    def on_event(self, ev: Event) -> None:
        """Update bridges, tones and MOH from one core event."""
        if isinstance(ev, BridgeChanged):
            if ev.members:
                self.mixer.set_bridge(ev.bridge, bridge_weights(ev.members, self.channel_of))
            else:
                self.mixer.remove_bridge(ev.bridge)
        elif isinstance(ev, ToneStarted):
            ch = self.channel_of.get(ev.line)
            if ch is None:
                return
            # A line has one tone (the core's model): a new one ends the last, music included.
            self._stop_tone(ch)
            if ev.tone is Tone.MOH:
                key = ev.call_id or ev.line
                self._moh_key[ch] = key
                prompt = self.player.play_id(ch)
                if prompt is None:
                    self.moh.start(self.player, ch, key)
                else:
                    # An announcement is playing: it plays alone, the music follows it.
                    self.moh.start(self.player, ch, key, paused=True)
                    self._moh_under[ch] = prompt
            elif ev.tone in self.tones.names:
                self.tone_id[ch] = self.tones.index(ev.tone)
                self.tone_pos[ch] = 0
        elif isinstance(ev, ToneStopped):
            ch = self.channel_of.get(ev.line)
            if ch is not None:
                self._stop_tone(ch)
        elif isinstance(ev, CallEnded):
            # The call's music is over for good, even before its lines report idle.
            self.moh.forget(ev.call_id)
            for ch in [c for c, k in self._moh_key.items() if k == ev.call_id]:
                del self._moh_key[ch]
                self._moh_under.pop(ch, None)
        elif isinstance(ev, LineState) and ev.state is LineStatus.IDLE:
            ch = self.channel_of.get(ev.line)
            if ch is not None:
                self._stop_tone(ch)
                self.player.stop(ch)
                self.dtmf.reset([ch])
                self._dtmf_mute[ch] = 0
                self._keys.pop(ch, None)

    def _stop_tone(self, ch: int) -> None:
        self.tone_id[ch] = -1
        self._moh_under.pop(ch, None)
        key = self._moh_key.pop(ch, None)
        if key is not None:
            self.moh.stop(self.player, ch, key)

    def _resume_moh(self, ch: int, play_id: int) -> None:
        """The play ``play_id`` on ``ch`` ended or was stopped: music paused under it goes on."""
        if self._moh_under.get(ch) == play_id:
            del self._moh_under[ch]
            self.moh.resume(self.player, ch)

    # ------------------------------------------------------------ inputs

    def play(self, line: str, samples: np.ndarray, *, loop: bool = False,
             barge_in: bool = True) -> int:
        """Play decoded audio (int16 1-D, 8 kHz; from the prompt cache) to ``line``; returns the play id.

        Replaces what the line's prompt played. With ``barge_in`` a DTMF digit
        detected on that line stops the prompt. On a line hearing music on hold the
        music pauses and resumes after the prompt (module doc). Raises KeyError for
        an unknown line, TypeError for samples that are not int16 1-D.
        """
        ch = self.channel_of[line]
        if ch not in self._moh_key:
            return self.player.play(ch, samples, loop=loop, barge_in=barge_in)
        under = self._moh_under.get(ch)  # a prompt replacing a prompt: the music stays paused
        self.moh.pause(self.player, ch)
        try:
            play_id = self.player.play(ch, samples, loop=loop, barge_in=barge_in)
        except (TypeError, ValueError):
            if under is None:
                self.moh.resume(self.player, ch)  # nothing played: the music goes on
            raise
        self._moh_under[ch] = play_id
        return play_id

    def hearers(self, line: str) -> list[str]:
        """The lines that hear ``line`` through the mixer now (the far party, a
        conference, a supervisor listening), in channel order. Raises KeyError for an
        unknown line."""
        return [self.lines[ch] for ch in self.mixer.listeners_of(self.channel_of[line])]

    def send_keys(self, line: str, samples: np.ndarray, to: Sequence[str]) -> None:
        """Play DTMF ``samples`` (int16 1-D, 8 kHz, from ``generate_digits``) as keys
        ``line`` sends, to the lines ``to`` (normally :meth:`hearers`), on top of what they
        hear.

        As a phone does, ``line``'s own voice is taken out of the mix while its keys
        sound (from this frame to one frame after the last sample), so speech never
        masks a key. Keys sent while earlier ones still sound are queued after them
        (a softphone sends one request per key press). Why played and not injected into
        ``line``'s inbound: the detector would take them as keys pressed on ``line`` and
        the suppression would mute them from the mix (a key is counted once, and the far
        end must still hear it). Raises KeyError for an unknown line, TypeError for
        samples that are not int16 1-D.
        """
        ch = self.channel_of[line]
        pending = self._keys.get(ch)
        if pending is not None:
            previous, start = pending
            rest = previous[(self.frames - start) * FRAME:]
            if rest.size:
                samples = np.concatenate([rest, samples])
        self._keys[ch] = (samples, self.frames)
        for hearer in to:
            self.play(hearer, samples, barge_in=False)
        frames = -(-samples.size // FRAME)
        self._dtmf_mute[ch] = max(int(self._dtmf_mute[ch]), frames + 1)
        self._dtmf_muting = True

    def stop(self, line: str, play_id: int | None = None) -> bool:
        """Stop the prompt playing to ``line`` (only if it is ``play_id``, when given).

        Not reported as finished. Music on hold paused under it resumes; the music
        itself is not a prompt and is left alone (``tone.stopped`` ends it). Returns
        True if a prompt was stopped. Raises KeyError for an unknown line.
        """
        ch = self.channel_of[line]
        current = self.player.play_id(ch)
        if current is None or (play_id is not None and current != play_id):
            return False
        if ch in self._moh_key and ch not in self._moh_under:
            return False  # what plays is the music
        self.player.stop(ch)
        self._resume_moh(ch, current)
        return True

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
            for ch, digit, _ in self._frame(t_end):
                # Barge-in: a key press stops a prompt that allows it (never music on hold).
                play_id = self.player.play_id(ch)
                if self.player.barge(ch) and self._moh_under and play_id is not None:
                    self._resume_moh(ch, play_id)
                hits.append(DtmfHit(self.lines[ch], digit, t_end))
        return hits

    def skip(self, frames: int) -> None:
        """Account for ``frames`` frames the tick could not run (the frame index jumps)."""
        self.frames += frames

    def _frame(self, t_end: float) -> list[tuple[int, str, int]]:
        index = self.frames
        inbound = self.port.inbound(index, t_end)
        hits = self.dtmf.process(inbound)
        talk = self._suppress_dtmf(inbound)

        extra_rows: list[np.ndarray] = []
        extra: list[np.ndarray] = []
        tone_rows = np.flatnonzero(self.tone_id >= 0)
        if tone_rows.size:
            extra.append(self.tones.render(self.tone_id[tone_rows].astype(np.int64),
                                           self.tone_pos[tone_rows], FRAME))
            extra_rows.append(tone_rows)
            self.tone_pos[tone_rows] += FRAME
        prows, paudio = self.player.render(FRAME)
        finished = self.player.take_finished()
        if finished:
            self.finished_plays.extend(finished)
            if self._moh_under:
                # Music paused under a prompt that ended here plays from the next frame.
                for ch, play_id in finished:
                    self._resume_moh(ch, play_id)
        if prows.size:
            extra.append(paudio)
            extra_rows.append(prows)
        if extra:
            outbound = self.mixer.mix(talk, np.concatenate(extra),
                                      np.concatenate(extra_rows))
        else:
            outbound = self.mixer.mix(talk)
        self.port.outbound(index, t_end, outbound)
        self.taps.deliver(index, t_end, inbound, outbound)
        self.last_inbound, self.last_outbound = inbound, outbound
        self.frames += 1
        return hits

    def _suppress_dtmf(self, inbound: np.ndarray) -> np.ndarray:
        """The inbound to mix: ``inbound`` with the rows of lines sending a detected key zeroed.

        A line is muted from the frame in which the detector first hears its key
        (one block before the digit is confirmed, see
        :meth:`~switchd.lines.dtmf.DtmfDetector.active`) until the detector declares
        the tone ended, plus :data:`DTMF_TAIL_FRAMES`; a key held for seconds stays
        muted for as long and is one digit. The start of each key's tone reaches
        the others: 0-25 ms of it, up to the frame in which the first whole 12.75 ms
        block of tone ends (hiding it would take a delay line, which would delay
        every call's audio). That is below the 40 ms a detector must accept but in
        Q.24's 20-40 ms grey zone at worst, so a strict far-end detector may, rarely,
        still take a leaked start for a key. Whether the switch owns the caller (IVR, queue; a monitoring
        supervisor) or the caller is bridged to an agent, every listener gets the
        same suppressed row: who hears whom stays the mixer's business alone.

        ``inbound`` itself is left alone (taps and :attr:`last_inbound` keep the raw
        audio). Vectorised over all channels; with no key sounding anywhere this
        is one comparison over the channels and returns ``inbound`` as is.
        """
        active = self.dtmf.active()
        if not self._dtmf_muting and not active.any():
            return inbound
        mute = self._dtmf_mute
        mute -= mute > 0
        mute[active] = DTMF_TAIL_FRAMES + 1
        rows = np.flatnonzero(mute)
        self._dtmf_muting = bool(rows.size)
        if not rows.size:
            return inbound
        talk = inbound.copy()
        talk[rows] = 0
        return talk
