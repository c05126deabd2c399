"""The recording tap: every open recording's audio, 20 ms at a time, all at once.

:class:`RecordingTap` is the recorder's :class:`~switchd.lines.board.TapSink`. The
media plane hands it, once per frame, the raw inbound (``rx``: what a line's party
says) and the outbound (``tx``: what that party hears) of every line it taps
(``switchd.lines.taps``). Per recording, per frame (the rule of issue 16, item 2)::

    left  = rx[customer]                                  the customer's own voice
    right = saturate(tx[customer] + Σ rx[extras])         what the customer hears, plus the
                                                          switch-side voices it does not
                                                          (a whisper, a consult)
    stereo: L, R interleaved        mono: saturate(left + right)
    PAUSED: silence of the same length (pause for compliance: the file keeps time)
    STOPPED: nothing (a gap between segments)

then A-law or µ-law with :mod:`switchd.lines.g711` when the format asks for it.
Whisper never reaches the left channel, and a listen-only supervisor is never in
the file at all, because neither is a tapped source: the customer's ``tx`` is what
the mixer (``bridge_weights``) lets the customer hear, and ``extras`` are chosen by
the recorder engine (whisperers and consult parties, never ``listen``).

Why it is built this way (DESIGN §3: no per-channel Python on the hot path):

* Recordings are grouped by (layout, format): every recording in a group makes
  frames of the same size, so a group's frame is a handful of numpy operations
  over all its recordings at once (a gather, an optional sum of the extras in
  *layers* as the mixer does, a saturation, an interleave, an encode, a scatter
  into the buffer). Python loops over groups (at most six) and extra layers
  (the most extras any recording has: usually none), never over recordings.
* Each recording owns a *slot*: a row of its group's ring buffer
  ``uint8 [slots, hand_frames, frame_bytes]``. A recording keeps its slot for life,
  so opening, closing or re-sourcing one recording never moves another's bytes
  and needs no hand-off (issue 16's brief asked for one on every change; keeping
  the slots makes it unnecessary, and the bytes still reach the writer in order).
  A recording's mode and tap rows are per-slot numpy arrays, so the index arrays
  are recompiled with numpy at the next frame after a change (~75 µs for 1000
  recordings; a new tap also costs one dict lookup per recording to find the rows).
  Measured on 2 vCPUs: ~0.16 µs per recording-frame in isolation and ~0.35 µs in
  the loaded media tick, stereo PCM; A-law/µ-law add the encode (~0.17 µs).
* Bytes go to the writer (``write(rec_id, bytes)``, non-blocking) in hand-offs of
  up to ``hand_frames`` frames (default 50 = 1 s). Slot ``s`` hands off when the
  ring column is ``s % hand_frames``, so with many recordings about
  ``recordings / hand_frames`` hand-offs happen per frame, spread evenly, instead
  of all of them in one tick every second (a 1000-recording spike would cost the
  tick several milliseconds). Stopping or closing a recording, and a gap, hand its
  bytes at once; pausing does not need to (the pause writes silence into the same
  ring).
* A frame-index gap (the media tick skipped frames: ``MediaPlane.skip``) becomes
  silence in every recording that wrote the frame before it, so a file keeps wall
  time; at most ``max_gap_frames`` (default 500 = 10 s) per gap, the rest is
  counted in :attr:`TapStats.gap_frames_lost` (a machine suspended for an hour must
  not add an hour of zeros to every open file).

Tap keys are ``f"{rec_id}\\x00{line}"`` (NUL cannot occur in a call id or a line
name). The media plane passes the same ``keys`` list object while the set of taps
is unchanged; rows are looked up again only when it changes, and the index arrays
are recompiled only then or when a recording changed here.

Memory: a slot is ``hand_frames`` frames of its format (32 KiB for 1 s of stereo
PCM); a group's ring grows ×2 when full and never shrinks (2000 simultaneous stereo
PCM recordings: 64 MiB).
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from switchd.lines.g711 import alaw_encode, ulaw_encode
from switchd.lines.taps import Taps
from switchd.recorder.inputs import TapMode
from switchd.recorder.model import RecordFormat, RecordLayout

__all__ = ["ByteSink", "RecordingTap", "TapError", "TapStats", "frame_bytes", "tap_key"]

#: Samples per media frame (20 ms at 8 kHz), as the media plane delivers them.
FRAME = 160
_I16_MIN, _I16_MAX = -32768, 32767
#: WAV data is little-endian; on a little-endian host this is plain int16 (no copy).
_PCM_LE = np.dtype("<i2")
_NATIVE_LE = sys.byteorder == "little"
_ENCODERS: dict[RecordFormat, Callable[[np.ndarray], np.ndarray]] = {
    RecordFormat.ALAW: alaw_encode,
    RecordFormat.ULAW: ulaw_encode,
}
#: The byte that encodes silence: 0 for PCM, the code of sample 0 for G.711
#: (A-law 0xD5, µ-law 0xFF: a file of zero bytes would be a loud buzz there).
_SILENCE: dict[RecordFormat, int] = {
    RecordFormat.PCM: 0,
    RecordFormat.ALAW: int(alaw_encode(np.zeros(1, np.int16))[0]),
    RecordFormat.ULAW: int(ulaw_encode(np.zeros(1, np.int16))[0]),
}
_ACTIVE = frozenset({TapMode.RUNNING, TapMode.PAUSED})


class TapError(ValueError):
    """A request the tap cannot carry out; the message says what to fix."""


class ByteSink(Protocol):
    """Where the tap hands a recording's encoded audio (the recording writer)."""

    def write(self, rec_id: str, data: bytes) -> None:
        """Append ``data`` (the WAV data chunk's bytes, whole frames) to ``rec_id``; must not block."""
        ...


@dataclass(frozen=True, slots=True)
class TapStats:
    """What the tap has done since it was made.

    ``frames``: media frames delivered to it; ``recording_frames``: frames written
    into recordings (running and paused, summed over recordings); ``bytes_handed``:
    bytes given to the writer; ``gap_frames_filled``/``gap_frames_lost``: silence
    frames written for skipped media frames, and skipped frames beyond the bound
    (both summed over recordings); ``busy_s``: time spent in the tap per the
    ``timer`` it was given (0 without one).
    """

    recordings: int
    frames: int
    recording_frames: int
    bytes_handed: int
    gap_frames_filled: int
    gap_frames_lost: int
    busy_s: float


def _index(rows: np.ndarray) -> slice | np.ndarray:
    """``rows`` as a slice when they are one ascending contiguous range, else as they are."""
    if rows.size and int(rows[-1]) - int(rows[0]) == rows.size - 1 and \
            (rows.size == 1 or bool((np.diff(rows) == 1).all())):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def tap_key(rec_id: str, line: str) -> str:
    """The media-plane tap key of ``line`` in recording ``rec_id``."""
    return f"{rec_id}\x00{line}"


def frame_bytes(layout: RecordLayout, fmt: RecordFormat) -> int:
    """Bytes of one 20 ms frame (160 samples × channels × bytes per sample) in a file
    of this layout and format: 640 stereo PCM, 320 mono PCM or stereo G.711, 160 mono G.711."""
    return FRAME * (2 if layout is RecordLayout.STEREO else 1) * fmt.sample_bytes


@dataclass(frozen=True, slots=True, eq=False)
class _Rec:
    rec_id: str
    group: _Group
    slot: int
    customer: str
    extras: tuple[str, ...]
    mode: TapMode

    def keys(self) -> list[tuple[str, str]]:
        """(tap key, line) of the customer and every extra line."""
        return [(tap_key(self.rec_id, ln), ln) for ln in (self.customer, *self.extras)]

    def tap_keys(self) -> tuple[str, tuple[str, ...]]:
        """(the customer's tap key, the extras' tap keys)."""
        return tap_key(self.rec_id, self.customer), tuple(tap_key(self.rec_id, ln)
                                                          for ln in self.extras)


#: Per-slot mode codes in a group's ``mode`` array.
_IDLE, _RUN, _PAUSE = 0, 1, 2
_CODE = {TapMode.STOPPED: _IDLE, TapMode.RUNNING: _RUN, TapMode.PAUSED: _PAUSE}


class _Group:
    """The recordings of one (layout, format): their ring buffer, per-slot state, and the
    index arrays the frame loop uses (compiled with numpy from the per-slot arrays, so a
    change costs no Python work per recording)."""

    def __init__(self, layout: RecordLayout, fmt: RecordFormat, hand_frames: int) -> None:
        self.layout = layout
        self.fmt = fmt
        self.stereo = layout is RecordLayout.STEREO
        self.encode = _ENCODERS.get(fmt)
        self.silence = _SILENCE[fmt]
        self.fb = frame_bytes(layout, fmt)
        self.hand_frames = hand_frames
        self.capacity = 0
        self.buf = np.zeros((0, hand_frames, self.fb), dtype=np.uint8)
        #: _IDLE (free or stopped), _RUN or _PAUSE per slot
        self.mode = np.zeros(0, dtype=np.int8)
        #: row of the slot's customer tap in this frame's rx/tx (-1: none)
        self.cust_row = np.zeros(0, dtype=np.intp)
        #: frames in each slot's ring not yet handed to the writer
        self.pending = np.zeros(0, dtype=np.int64)
        #: media frame index each slot last wrote (-1: none yet)
        self.last = np.zeros(0, dtype=np.int64)
        self.rec_at: list[str | None] = []
        self.cust_key: list[str | None] = []
        #: tap keys / rows of the extras of the slots that have any (few: whispers, consults)
        self.extra_keys: dict[int, tuple[str, ...]] = {}
        self.extra_rows: dict[int, list[int]] = {}
        self.rows_stale = True
        self._free: list[int] = []
        self._silence_bytes: dict[int, bytes] = {}
        z = np.zeros(0, dtype=np.intp)
        self.run_slots = z
        #: run_slots / their customer rows as a slice when they are one contiguous range
        #: (the usual case without churn): basic indexing is a view, no gather or scatter.
        self.slot_index: slice | np.ndarray = z
        self.cust_index: slice | np.ndarray = z
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        self.pause_slots = z
        self.active = z
        self.is_active = np.zeros(0, dtype=bool)

    # -------------------------------------------------- slots (per event)

    def alloc(self, rec_id: str) -> int:
        """A free slot for ``rec_id`` (growing the buffer ×2 when full)."""
        if not self._free:
            old = self.capacity
            new = max(8, old * 2)
            buf = np.zeros((new, self.hand_frames, self.fb), dtype=np.uint8)
            buf[:old] = self.buf
            self.buf = buf
            grow = new - old
            self.mode = np.concatenate([self.mode, np.zeros(grow, np.int8)])
            self.cust_row = np.concatenate([self.cust_row, np.full(grow, -1, np.intp)])
            self.pending = np.concatenate([self.pending, np.zeros(grow, np.int64)])
            self.last = np.concatenate([self.last, np.full(grow, -1, np.int64)])
            self.is_active = np.concatenate([self.is_active, np.zeros(grow, bool)])
            self.rec_at.extend([None] * grow)
            self.cust_key.extend([None] * grow)
            for s in range(old, new):
                heapq.heappush(self._free, s)
            self.capacity = new
        slot = heapq.heappop(self._free)  # lowest first: slots stay dense, phases spread
        self.rec_at[slot] = rec_id
        self.pending[slot] = 0
        self.last[slot] = -1
        return slot

    def free(self, slot: int) -> None:
        """Give ``slot`` back (its bytes were handed or dropped)."""
        self.rec_at[slot] = None
        self.cust_key[slot] = None
        self.extra_keys.pop(slot, None)
        self.extra_rows.pop(slot, None)
        self.mode[slot] = _IDLE
        self.cust_row[slot] = -1
        self.pending[slot] = 0
        self.last[slot] = -1
        heapq.heappush(self._free, slot)

    def set_sources(self, slot: int, cust_key: str, extra_keys: tuple[str, ...]) -> None:
        """The tap keys of ``slot``'s customer and extras (rows are found at the next frame)."""
        self.cust_key[slot] = cust_key
        if extra_keys:
            self.extra_keys[slot] = extra_keys
        else:
            self.extra_keys.pop(slot, None)
        self.rows_stale = True

    def set_mode(self, slot: int, mode: TapMode) -> None:
        """Running, paused or stopped from the next frame."""
        self.mode[slot] = _CODE[mode]

    def silence_bytes(self, frames: int) -> bytes:
        """``frames`` frames of silence in this group's encoding (cached: shared, immutable)."""
        data = self._silence_bytes.get(frames)
        if data is None:
            if len(self._silence_bytes) > 64:
                self._silence_bytes.clear()
            data = self._silence_bytes[frames] = bytes([self.silence]) * (frames * self.fb)
        return data

    # -------------------------------------------------- compiling (per change)

    def map_rows(self, row_of: Mapping[str, int]) -> None:
        """Find every slot's tap rows in this frame's ``rx``/``tx`` (the key list changed)."""
        get = row_of.get
        self.cust_row = np.fromiter(
            (-1 if k is None else get(k, -1) for k in self.cust_key),
            dtype=np.intp, count=self.capacity)
        self.extra_rows = {slot: [r for k in keys if (r := get(k)) is not None]
                           for slot, keys in self.extra_keys.items()}
        self.rows_stale = False

    def compile(self) -> None:
        """The frame loop's index arrays from the per-slot arrays."""
        mode = self.mode
        # A running slot whose customer tap is missing (removed behind our back) writes nothing.
        run = (mode == _RUN) & (self.cust_row >= 0)
        pause = mode == _PAUSE
        self.run_slots = np.flatnonzero(run)
        run_cust = self.cust_row[self.run_slots]
        self.slot_index = _index(self.run_slots)
        self.cust_index = _index(run_cust)
        self.pause_slots = np.flatnonzero(pause)
        self.is_active = run | pause
        self.active = np.flatnonzero(self.is_active)
        # Layer k: the k-th extra of every running recording that has more than k; within
        # a layer destinations are distinct, so fancy-index += is exact (no np.add.at).
        # Python here runs over the recordings with extras only.
        with_extras = sorted(s for s, rows in self.extra_rows.items() if rows and run[s])
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        if with_extras:
            pos = np.searchsorted(self.run_slots, with_extras).tolist()
            depth = max(len(self.extra_rows[s]) for s in with_extras)
            for k in range(depth):
                keep = [(p, self.extra_rows[s][k]) for p, s in zip(pos, with_extras, strict=True)
                        if len(self.extra_rows[s]) > k]
                layers.append((np.asarray([p for p, _ in keep], dtype=np.intp),
                               np.asarray([r for _, r in keep], dtype=np.intp)))
        self.layers = layers

    # -------------------------------------------------- the frame

    def write(self, col: int, frame: int, rx: np.ndarray, tx: np.ndarray) -> None:
        """Write media frame ``frame`` of every active recording into ring column ``col``."""
        if self.run_slots.size:
            self._write_running(col, rx, tx)
        if self.pause_slots.size:
            self.buf[self.pause_slots, col] = self.silence
        if self.active.size:
            self.pending[self.active] += 1
            self.last[self.active] = frame

    def _write_running(self, col: int, rx: np.ndarray, tx: np.ndarray) -> None:
        n = self.run_slots.size
        left = rx[self.cust_index]
        right = tx[self.cust_index]
        if self.layers:
            wide = right.astype(np.int32)
            for dest, rows in self.layers:
                wide[dest] += rx[rows]
            np.clip(wide, _I16_MIN, _I16_MAX, out=wide)
            right = wide.astype(np.int16)
        if self.stereo and self.encode is None and isinstance(self.slot_index, slice):
            # Interleave straight into the ring (a view): no temporary, no scatter.
            dst = self.buf[self.slot_index, col].view(_PCM_LE).reshape(n, FRAME, 2)
            dst[:, :, 0] = left
            dst[:, :, 1] = right
            return
        if self.stereo:
            pcm = np.empty((n, FRAME, 2), dtype=np.int16)
            pcm[:, :, 0] = left
            pcm[:, :, 1] = right
        else:
            wide = left.astype(np.int32)
            wide += right
            np.clip(wide, _I16_MIN, _I16_MAX, out=wide)
            pcm = wide.astype(np.int16)
        if self.encode is not None:
            data = self.encode(pcm)
        else:
            data = pcm if _NATIVE_LE else pcm.astype(_PCM_LE)
        self.buf[self.slot_index, col] = data.reshape(n, -1).view(np.uint8)

    def due(self, col: int) -> list[int]:
        """Active slots whose hand-off comes at ring column ``col`` (slot ≡ col mod hand_frames)."""
        cand = np.arange(col, self.capacity, self.hand_frames)
        return cand[self.is_active[cand]].tolist()

    def take(self, slot: int, end_col: int) -> bytes:
        """The pending bytes of ``slot`` (frames ending at ring column ``end_col``), marked handed."""
        n = int(self.pending[slot])
        self.pending[slot] = 0
        if n <= 0:
            return b""
        start = end_col - n + 1
        if start >= 0:
            return self.buf[slot, start:end_col + 1].tobytes()
        return self.buf[slot, start + self.hand_frames:].tobytes() + \
            self.buf[slot, :end_col + 1].tobytes()


class RecordingTap:
    """All open recordings' audio: a :class:`~switchd.lines.board.TapSink` (module doc).

    ``taps``: the media plane's :class:`~switchd.lines.taps.Taps`, where this tap
    registers the lines it follows; ``channel_of``: line name → channel
    (``MediaPlane.channel_of``); ``writer``: where the bytes go. ``hand_frames``:
    frames per hand-off (≥ 1); ``max_gap_frames``: the most silence frames written
    for one gap (≥ 0); ``timer``: a clock (s) whose time spent in :meth:`__call__`
    is summed in :attr:`TapStats.busy_s` (e.g. ``time.thread_time`` for CPU time);
    None measures nothing. Not thread-safe: the media tick and the loop own it.
    Raises ``ValueError`` for ``hand_frames`` < 1 or ``max_gap_frames`` < 0.
    """

    def __init__(self, taps: Taps, channel_of: Mapping[str, int], writer: ByteSink, *,
                 hand_frames: int = 50, max_gap_frames: int = 500,
                 timer: Callable[[], float] | None = None) -> None:
        if hand_frames < 1:
            raise ValueError(f"hand_frames must be >= 1, got {hand_frames}")
        if max_gap_frames < 0:
            raise ValueError(f"max_gap_frames must be >= 0, got {max_gap_frames}")
        self._taps = taps
        self._channel_of = channel_of
        self._writer = writer
        self.hand_frames = hand_frames
        self.max_gap_frames = max_gap_frames
        self._timer = timer
        self._recs: dict[str, _Rec] = {}
        self._groups: dict[tuple[RecordLayout, RecordFormat], _Group] = {}
        self._live: list[_Group] = []
        self._keys: Sequence[str] | None = None
        self._dirty = True
        self._col = 0  # ring column the next frame goes into
        self._last_frame: int | None = None
        self._frames = 0
        self._rec_frames = 0
        self._bytes = 0
        self._gap_filled = 0
        self._gap_lost = 0
        self._busy = 0.0

    # ------------------------------------------------------------ recordings

    def __contains__(self, rec_id: object) -> bool:
        return rec_id in self._recs

    def __len__(self) -> int:
        return len(self._recs)

    def mode(self, rec_id: str) -> TapMode:
        """The mode of recording ``rec_id``. Raises TapError if it is not open here."""
        return self._rec(rec_id).mode

    def open(self, rec_id: str, customer: str, extras: Sequence[str] = (), *,
             layout: RecordLayout = RecordLayout.STEREO, fmt: RecordFormat = RecordFormat.PCM,
             mode: TapMode = TapMode.RUNNING) -> None:
        """Start tapping ``customer`` (left) and ``extras`` (added to the right) for
        ``rec_id``, from the next frame, in ``mode``.

        Extras without a channel on the media plane, and the customer repeated among
        them, are left out (as the mixer leaves out a bridge member without a
        channel). Raises TapError if ``rec_id`` is already open or ``customer`` has
        no channel (nothing changes then).
        """
        if rec_id in self._recs:
            raise TapError(f"recording {rec_id} is already open in the tap; close it first")
        if "\x00" in rec_id:
            raise TapError(f"recording id {rec_id!r} contains NUL, which tap keys reserve")
        extras = self._check_sources(rec_id, customer, extras)
        key = (layout, fmt)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(layout, fmt, self.hand_frames)
        rec = _Rec(rec_id, group, group.alloc(rec_id), customer, extras, mode)
        self._recs[rec_id] = rec
        self._add_taps(rec)
        group.set_sources(rec.slot, *rec.tap_keys())
        group.set_mode(rec.slot, mode)
        self._dirty = True

    def sources(self, rec_id: str, customer: str, extras: Sequence[str] = ()) -> None:
        """Follow new lines for ``rec_id`` from the next frame (a transfer, a consult,
        a whisper). Extras as in :meth:`open`. Raises TapError for a recording that is
        not open or a customer with no channel (nothing changes then)."""
        rec = self._rec(rec_id)
        extras = self._check_sources(rec_id, customer, extras)
        if (customer, extras) == (rec.customer, rec.extras):
            return
        new = replace(rec, customer=customer, extras=extras)
        old_keys = {k for k, _ in rec.keys()}
        new_keys = {k for k, _ in new.keys()}
        for k in old_keys - new_keys:
            self._taps.remove(k)
        self._recs[rec_id] = new
        self._add_taps(new)
        new.group.set_sources(new.slot, *new.tap_keys())
        self._dirty = True

    def set_mode(self, rec_id: str, mode: TapMode) -> None:
        """Running, paused (silence) or stopped (nothing) from the next frame. Stopping
        hands the recording's buffered bytes to the writer at once. Raises TapError for
        a recording that is not open."""
        rec = self._rec(rec_id)
        if mode is rec.mode:
            return
        if mode is TapMode.STOPPED:
            self._hand(rec)
        self._recs[rec_id] = replace(rec, mode=mode)
        rec.group.set_mode(rec.slot, mode)
        self._dirty = True

    def close(self, rec_id: str) -> None:
        """Hand ``rec_id``'s buffered bytes to the writer and stop tapping it (the
        caller closes the file after this). Raises TapError if it is not open."""
        rec = self._rec(rec_id)
        self._hand(rec)
        self._forget(rec)

    def drop(self, rec_id: str) -> None:
        """Stop tapping ``rec_id`` and discard its buffered bytes (its file failed).
        Nothing happens for a recording that is not open."""
        rec = self._recs.get(rec_id)
        if rec is not None:
            self._forget(rec)

    def flush(self) -> None:
        """Hand every recording's buffered bytes to the writer now (before shutdown)."""
        for rec in self._recs.values():
            self._hand(rec)

    def stats(self) -> TapStats:
        """Counters since the tap was made (see :class:`TapStats`)."""
        return TapStats(recordings=len(self._recs), frames=self._frames,
                        recording_frames=self._rec_frames, bytes_handed=self._bytes,
                        gap_frames_filled=self._gap_filled, gap_frames_lost=self._gap_lost,
                        busy_s=self._busy)

    # ------------------------------------------------------------ the frame

    def __call__(self, frame: int, time: float, keys: Sequence[str], channels: np.ndarray,
                 rx: np.ndarray, tx: np.ndarray) -> None:
        """Take frame ``frame`` of every tapped line (``rx``/``tx`` int16 ``[T, 160]``,
        rows in the order of ``keys``) and write it into every open recording."""
        t0 = self._timer() if self._timer is not None else 0.0
        if self._dirty or keys is not self._keys:
            self._compile(keys)
        last = self._last_frame
        if last is not None and frame > last + 1:
            self._fill_gap(frame - last - 1)
        col = self._col
        for group in self._live:
            group.write(col, frame, rx, tx)
            self._rec_frames += group.active.size
        for group in self._live:
            for slot in group.due(col):
                self._give(group.rec_at[slot], group.take(slot, col))
        self._last_frame = frame
        self._col = (col + 1) % self.hand_frames
        self._frames += 1
        if self._timer is not None:
            self._busy += self._timer() - t0

    # ------------------------------------------------------------ internals

    def _rec(self, rec_id: str) -> _Rec:
        rec = self._recs.get(rec_id)
        if rec is None:
            raise TapError(f"no recording {rec_id} is open in the tap")
        return rec

    def _check_sources(self, rec_id: str, customer: str,
                       extras: Sequence[str]) -> tuple[str, ...]:
        if customer not in self._channel_of:
            raise TapError(f"recording {rec_id}: line {customer} has no audio channel on "
                           "the media plane; record a configured trunk or extension")
        out: list[str] = []
        for line in extras:
            if line != customer and line in self._channel_of and line not in out:
                out.append(line)
        return tuple(out)

    def _add_taps(self, rec: _Rec) -> None:
        for key, line in rec.keys():
            self._taps.add(key, self._channel_of[line], self)

    def _forget(self, rec: _Rec) -> None:
        for key, _ in rec.keys():
            self._taps.remove(key)
        rec.group.free(rec.slot)
        del self._recs[rec.rec_id]
        self._dirty = True

    def _end_col(self) -> int:
        """Ring column of the last frame written (where every pending run ends)."""
        return (self._col - 1) % self.hand_frames

    def _hand(self, rec: _Rec) -> None:
        self._give(rec.rec_id, rec.group.take(rec.slot, self._end_col()))

    def _give(self, rec_id: str | None, data: bytes) -> None:
        if data and rec_id is not None:
            self._bytes += len(data)
            self._writer.write(rec_id, data)

    def _compile(self, keys: Sequence[str]) -> None:
        """Recompile every group's index arrays (something changed since the last frame).

        Rows are looked up again only when the media plane's key list changed (a tap
        was added or removed) or a recording's sources did; a pause, a resume or a stop
        recompiles with numpy alone."""
        remap = keys is not self._keys
        row_of: dict[str, int] | None = None
        end = self._end_col()
        live: list[_Group] = []
        for group in self._groups.values():
            if remap or group.rows_stale:
                if row_of is None:
                    row_of = dict(zip(keys, range(len(keys)), strict=True))
                group.map_rows(row_of)
            group.compile()
            # A slot that will not write the next frame must not keep bytes whose ring
            # position is only known relative to the last frame written.
            idle = np.flatnonzero((group.pending > 0) & ~group.is_active)
            for slot in idle.tolist():
                self._give(group.rec_at[slot], group.take(slot, end))
            if group.active.size:
                live.append(group)
        self._live = live
        self._keys = keys
        self._dirty = False

    def _fill_gap(self, gap: int) -> None:
        """Silence for ``gap`` skipped frames in every recording that wrote the frame
        before the gap and still runs or pauses (bounded by ``max_gap_frames``)."""
        fill = min(gap, self.max_gap_frames)
        last = self._last_frame
        for rec in self._recs.values():
            group = rec.group
            if rec.mode not in _ACTIVE or group.last[rec.slot] != last:
                continue
            self._hand(rec)
            if fill:
                self._give(rec.rec_id, group.silence_bytes(fill))
            self._gap_filled += fill
            self._gap_lost += gap - fill
