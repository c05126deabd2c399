"""The voicemail tap: what a caller says after the beep, frame by frame, with its level.

:class:`MessageTap` is a :class:`~switchd.lines.board.TapSink` on the callers' lines
(one tap per message, keyed by the message id). Each frame it takes the caller's
*inbound* only (what the caller says; a message has one channel) and judges every
tapped row's level at once (one numpy reduction for all messages). Per message it
keeps a small :class:`Capture`: the audio not yet handed to the writer, the silence
after the last sound (held back, so a message that ends by silence does not end with
seconds of nothing), and when sound was last heard, which the voicemail service's
silence timer reads. Nothing here blocks or touches a file: bytes go to ``write``
(the writer's non-blocking enqueue) at most once a second per message.

Units: a frame is 160 samples (20 ms) at 8 kHz; audio is 16-bit little-endian PCM
bytes, as the WAV file holds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from switchd.lines.tones import DBM0_PEAK

__all__ = [
    "FRAME",
    "FRAMES_PER_S",
    "HAND_FRAMES",
    "HASH_TRIM_FRAMES",
    "HOLD_MAX_FRAMES",
    "MAX_GAP_FRAMES",
    "TAIL_FRAMES",
    "Capture",
    "Trim",
    "MessageTap",
    "silence_threshold",
]

#: Samples per frame (20 ms at 8 kHz).
FRAME = 160
FRAMES_PER_S = 50
#: Frames handed to the writer at a time (1 s): a message is never held whole in memory.
HAND_FRAMES = 50
#: Frames cut from the end of a message the caller ended with ``#`` (120 ms): the key's
#: tone sounds from about 40 ms before the key is confirmed until it is released, and
#: the message should not end with it. These frames are always kept back from the writer.
HASH_TRIM_FRAMES = 6
#: Silence kept at the end of a message that ended by silence (0.5 s): enough not to
#: clip the last word, far less than the seconds of silence that ended it.
TAIL_FRAMES = 25
#: Silent frames held back after the last sound before they are handed on anyway (30 s):
#: bounds the memory a long configured ``silence_s`` may take (16 kB/s per message).
HOLD_MAX_FRAMES = 30 * FRAMES_PER_S
#: Longest run of frames the media tick skipped that is filled with silence (10 s), so
#: the file keeps time; a longer stall is a fault, not a pause in the caller's speech.
MAX_GAP_FRAMES = 10 * FRAMES_PER_S

_SILENT_FRAME = bytes(2 * FRAME)


def silence_threshold(dbm0: float) -> float:
    """The mean square (int16 units²) below which a frame is silence: the power of a sine
    at ``dbm0`` (0 dBm0 = peak 22 700, REFERENCE.md). E.g. -45 dBm0 → ≈ 1.45e3 (an RMS
    of about 38). Raises ValueError for a level that is not finite."""
    if not math.isfinite(dbm0):
        raise ValueError(f"silence level {dbm0!r} dBm0 is not a finite number")
    rms = DBM0_PEAK / math.sqrt(2.0) * 10.0 ** (dbm0 / 20.0)
    return rms * rms


class Trim(StrEnum):
    """How the end of a message is cut when it is finished (:meth:`Capture.finish`)."""

    #: Keep :data:`TAIL_FRAMES` of the silence after the last sound (none when the
    #: caller never made one).
    SILENCE = "silence"
    #: Cut :data:`HASH_TRIM_FRAMES` (the ``#`` key's tone).
    HASH = "hash"
    #: Keep everything (max length, hang-up, an error).
    NONE = "none"


@dataclass(eq=False, slots=True)
class Capture:
    """One message being taken: ``start_frame`` is the first media frame recorded (the
    beep's end), ``max_frames`` the longest message. ``sound_at``: epoch s of the end
    of the last frame louder than the silence level (None: no sound yet)."""

    message_id: str
    start_frame: int
    max_frames: int
    #: The media frame index expected next (None before the first recorded frame).
    next_frame: int | None = None
    #: Frames taken so far (handed, pending and held).
    frames: int = 0
    handed_frames: int = 0
    sound_at: float | None = None
    pending: list[bytes] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)

    def take(self, data: bytes, loud: bool, time: float) -> None:
        """One frame of the caller (``data``: 320 bytes) ending at epoch ``time``."""
        if self.frames >= self.max_frames:
            return  # the service ends the message at its max length
        self.frames += 1
        if loud:
            if self.held:
                self.pending.extend(self.held)
                self.held.clear()
            self.pending.append(data)
            self.sound_at = time
        else:
            self.held.append(data)
            if len(self.held) > HOLD_MAX_FRAMES:
                # Silence this long is part of the message whatever comes next.
                self.pending.append(self.held.pop(0))

    def ready(self) -> bytes | None:
        """Bytes to hand to the writer now (all pending frames but the last
        :data:`HASH_TRIM_FRAMES`), once :data:`HAND_FRAMES` have gathered; else None."""
        if len(self.pending) < HAND_FRAMES + HASH_TRIM_FRAMES:
            return None
        cut = len(self.pending) - HASH_TRIM_FRAMES
        out = b"".join(self.pending[:cut])
        del self.pending[:cut]
        self.handed_frames += cut
        return out

    def finish(self, trim: Trim) -> tuple[bytes, int]:
        """The message's last bytes, cut by ``trim``, and the frames the message keeps in
        all (handed before included). Leaves the capture empty."""
        if trim is Trim.SILENCE:
            # After the last word, a short tail; a caller who never spoke left nothing.
            held = self.held[:TAIL_FRAMES] if self.sound_at is not None else []
        else:
            held = self.held
        rest = self.pending + held
        if trim is Trim.HASH:
            rest = rest[:max(0, len(rest) - HASH_TRIM_FRAMES)]
        self.pending, self.held = [], []
        kept = self.handed_frames + len(rest)
        self.handed_frames = kept
        return b"".join(rest), kept


class MessageTap:
    """The tap sink of every message being taken (see the module docstring).

    ``write(message_id, data)``: hands bytes on (the writer's enqueue; must not block).
    ``silence_dbm0``: frames quieter than this are silence (:func:`silence_threshold`).
    """

    def __init__(self, write: Callable[[str, bytes], None], silence_dbm0: float) -> None:
        self.write = write
        self.threshold = silence_threshold(silence_dbm0)
        #: message id -> its capture
        self.captures: dict[str, Capture] = {}

    def set_level(self, silence_dbm0: float) -> None:
        """Judge silence against ``silence_dbm0`` from the next frame (a reload)."""
        self.threshold = silence_threshold(silence_dbm0)

    def add(self, capture: Capture) -> None:
        """Follow ``capture`` (the caller must also add the media tap with its id as key)."""
        self.captures[capture.message_id] = capture

    def remove(self, message_id: str) -> Capture | None:
        """Stop following a message; returns its capture (None if unknown)."""
        return self.captures.pop(message_id, None)

    def __call__(self, frame: int, time: float, keys: Sequence[str], channels: np.ndarray,
                 rx: np.ndarray, tx: np.ndarray) -> None:
        """Take media frame ``frame`` (ending at epoch ``time`` s) for the messages ``keys``:
        ``rx`` int16 ``[T, 160]`` (what each caller says; ``tx``, what they hear, is not
        recorded). Levels for all rows at once; then a short loop over the messages."""
        x = rx.astype(np.float64)
        power = np.einsum("ij,ij->i", x, x) / FRAME
        loud = power > self.threshold
        data = rx.astype("<i2", copy=False)
        for i, key in enumerate(keys):
            cap = self.captures.get(key)
            if cap is None or frame < cap.start_frame:
                continue  # not ours, or the beep is still sounding
            if cap.next_frame is not None and frame > cap.next_frame:
                # Frames the tick skipped: silence, so the message keeps wall time.
                for _ in range(min(frame - cap.next_frame, MAX_GAP_FRAMES)):
                    cap.take(_SILENT_FRAME, False, time)
            cap.next_frame = frame + 1
            cap.take(data[i].tobytes(), bool(loud[i]), time)
            out = cap.ready()
            if out is not None:
                self.write(key, out)
