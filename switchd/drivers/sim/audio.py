"""What the simulated people say: silence, a test tone, or speech from a WAV file.

Rendered for every channel at once ([C, n] int16); a channel produces audio only
while its line is in a call. Speech channels each read the shared speech buffer
from their own random offset, so two simulated callers never speak in unison.
"""

from __future__ import annotations

import random
from enum import IntEnum

import numpy as np

__all__ = ["SimAudio", "SourceKind"]

#: Peak amplitude of a 0 dBm0 sine in 16-bit linear PCM (G.711 µ-law reference, ≈ 3.14 dBov).
DBM0_PEAK = 22_700.0


class SourceKind(IntEnum):
    """What a simulated party sends."""

    SILENCE = 0
    TONE = 1
    SPEECH = 2


class SimAudio:
    """Per-channel simulated sources.

    ``tone_hz``/``tone_dbm0``: the test tone (Hz, dBm0). ``speech``: int16 1-D at
    8 kHz (None: speech channels fall back to the tone).
    """

    def __init__(self, channels: int, *, tone_hz: float = 1000.0, tone_dbm0: float = -20.0,
                 speech: np.ndarray | None = None, seed: int | None = None) -> None:
        self.channels = channels
        self.tone_hz = tone_hz
        self.tone_amp = DBM0_PEAK * 10 ** (tone_dbm0 / 20)
        self.speech = speech if speech is not None and len(speech) else None
        self.kind = np.zeros(channels, dtype=np.int8)
        self.pos = np.zeros(channels, dtype=np.int64)
        self._rng = random.Random(seed)

    def resize(self, channels: int) -> None:
        """Grow to ``channels`` channels (new ones silent)."""
        if channels > self.channels:
            extra = channels - self.channels
            self.kind = np.concatenate([self.kind, np.zeros(extra, np.int8)])
            self.pos = np.concatenate([self.pos, np.zeros(extra, np.int64)])
            self.channels = channels

    def start(self, channel: int, kind: SourceKind) -> None:
        """Channel ``channel`` starts sending ``kind`` (speech from a random offset)."""
        if kind is SourceKind.SPEECH and self.speech is None:
            kind = SourceKind.TONE
        self.kind[channel] = kind
        self.pos[channel] = (self._rng.randrange(len(self.speech))
                             if kind is SourceKind.SPEECH and self.speech is not None else 0)

    def stop(self, channel: int) -> None:
        """Channel ``channel`` goes quiet (its line went idle)."""
        self.kind[channel] = SourceKind.SILENCE

    def render(self, n: int = 160) -> np.ndarray:
        """Return int16 [channels, n]: the next ``n`` samples every party says."""
        out = np.zeros((self.channels, n), dtype=np.int16)
        t = np.arange(n, dtype=np.int64)
        tone = np.flatnonzero(self.kind == SourceKind.TONE)
        if tone.size:
            phase = (self.pos[tone, None] + t) * (2 * np.pi * self.tone_hz / 8000.0)
            out[tone] = (self.tone_amp * np.sin(phase)).astype(np.int16)
        speech = np.flatnonzero(self.kind == SourceKind.SPEECH)
        if speech.size and self.speech is not None:
            out[speech] = self.speech[(self.pos[speech, None] + t) % len(self.speech)]
        self.pos += n
        return out
