"""In-band DTMF: generator, offline detector and a streaming detector for all channels.

Why: the switch hears key presses in the caller's audio (IVR menus, queue exits,
agent codes) and must never hear them in speech or hold music.

Limits (ITU-T Q.23/Q.24, /work/shared/REFERENCE.md "DTMF"):
frequency accepted within ±1.5 %, rejected beyond ±3.5 %; tones >= 40 ms accepted,
<= 20 ms rejected; a drop-out <= 10 ms is bridged, a 40 ms pause separates two equal
digits; twist accepted from low group 8 dB louder to high group 4 dB louder; level
accepted down to -25 dBm0 per tone; works at 15 dB SNR.

Design (after spandsp/Asterisk, plus a measured frequency):

* The signal is cut into blocks of ``BLOCK`` = 102 samples (12.75 ms).  Every block of
  every channel is multiplied by one precomputed table (``X[C, 102] @ T[102, 72]``):
  rectangular DFT at the 8 DTMF frequencies (group selection, relative-peak test) and
  at the 4 second harmonics of the high group; two Hann windows of 56 samples, 46
  apart (the nearest other-group tone, 268 Hz away, falls near their second null),
  whose phase advance measures each tone's frequency, so a tone 3.5 % off is rejected
  even inside the right bin; and a full-block Hann window for level, twist and energy
  share (sidelobes < -30 dB at the other group and at speech harmonics >= 160 Hz away).
* A block "hits" digit d when: the best tone of each group beats the others in its
  group by ``RELATIVE_PEAK_DB``; both tones are within ``FREQ_TOLERANCE`` of nominal;
  each is above ``MIN_LEVEL_DBM0``; the twist is inside the window; the two tones carry
  ``MIN_ENERGY_SHARE`` of the windowed block energy; the high tone's second harmonic is
  ``MAX_HARMONIC_DB`` below it; and each tone has nearly the same amplitude in the
  early and the late short window (``MIN_STEADINESS``), so a block only partly
  filled with tone is not a hit.
* Two consecutive hits of the same digit whose measured frequencies agree within
  ``MAX_DRIFT_HZ`` start it (a sweep through a DTMF pair is not a key press; a 40 ms
  tone always covers two whole blocks, a 20 ms tone never fills two blocks to the
  steadiness threshold; 23 ms may pass, inside Q.24's 20-23 ms grey zone).
  ``END_MISSES`` = 3 consecutive non-hits end it (a 10 ms drop-out spoils at most two
  blocks, a 40 ms pause at least three).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DIGITS = "123A456B789C*0#D"
ROW_FREQS: tuple[float, ...] = (697.0, 770.0, 852.0, 941.0)
COL_FREQS: tuple[float, ...] = (1209.0, 1336.0, 1477.0, 1633.0)

#: Sine peak amplitude in int16 for 0 dBm0 (µ-law digital milliwatt, 3.14 dB below full scale).
DBM0_PEAK = 22700.0

BLOCK = 102
HANN_LEN = 56
HANN_HOP = BLOCK - HANN_LEN
RELATIVE_PEAK_DB = 8.0
FREQ_TOLERANCE = 0.025
MIN_LEVEL_DBM0 = -36.0
MAX_REVERSE_TWIST_DB = 5.0
MAX_NORMAL_TWIST_DB = 9.0
MIN_ENERGY_SHARE = 0.85
MAX_HARMONIC_DB = -12.0
MIN_STEADINESS = 0.80
MIN_STEADINESS_EACH = 0.70
PREFILTER_SHARE = 0.5
END_MISSES = 3
MAX_DRIFT_HZ = 8.0

_NONE = -1


@dataclass(frozen=True)
class _Tables:
    """Precomputed analysis tables for one sample rate (built once per rate)."""

    rate: int
    dft: np.ndarray  # float32 [BLOCK, 72]: rect, harmonics, Hann A, Hann B, Hann full (cos|sin)
    energy: np.ndarray  # float32 [BLOCK, 2]: plain and full-Hann² weights
    nominal: np.ndarray  # float64 [8]
    min_amp: float  # peak amplitude of MIN_LEVEL_DBM0
    max_harmonic: float  # power ratio of MAX_HARMONIC_DB
    max_reverse: float  # amplitude ratio high/low of MAX_REVERSE_TWIST_DB
    min_normal: float  # amplitude ratio high/low of -MAX_NORMAL_TWIST_DB
    full_sum: float  # Σw of the full-block Hann window
    full_sq_sum: float  # Σw²
    resp_grid: np.ndarray  # Hz offsets for the full-Hann amplitude response
    resp: np.ndarray  # |W(δf)| / W(0) of the full-block Hann window


_TABLE_CACHE: dict[int, _Tables] = {}


def _tables(rate: int) -> _Tables:
    """Build (or reuse) the cos/sin tables for ``rate`` Hz.

    Raises ValueError for any rate but 8000: block and window lengths are tuned in
    samples to the 8 kHz timing rules (switch audio is always 8 kHz, DESIGN.md §3).
    """
    if rate != 8000:
        raise ValueError(f"DTMF detection supports 8000 Hz audio only, got {rate}")
    cached = _TABLE_CACHE.get(rate)
    if cached is not None:
        return cached
    n = np.arange(BLOCK, dtype=np.float64)
    freqs = np.array(ROW_FREQS + COL_FREQS)
    harm = 2.0 * np.array(COL_FREQS)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(HANN_LEN) + 0.5) / HANN_LEN)
    win_a = np.zeros(BLOCK)
    win_a[:HANN_LEN] = w
    win_b = np.zeros(BLOCK)
    win_b[HANN_HOP:] = w
    full = 0.5 - 0.5 * np.cos(2.0 * np.pi * (n + 0.5) / BLOCK)
    ang = 2.0 * np.pi * np.outer(n, freqs) / rate
    hang = 2.0 * np.pi * np.outer(n, harm) / rate
    # Absolute sample index in every table, so the phase ratio B/A is exp(j·δω·HOP).
    cols = [
        np.cos(ang),
        np.sin(ang),
        np.cos(hang),
        np.sin(hang),
        win_a[:, None] * np.cos(ang),
        win_a[:, None] * np.sin(ang),
        win_b[:, None] * np.cos(ang),
        win_b[:, None] * np.sin(ang),
        full[:, None] * np.cos(ang),
        full[:, None] * np.sin(ang),
    ]
    dft = np.concatenate(cols, axis=1).astype(np.float32)
    energy = np.stack([np.ones(BLOCK), full**2], axis=1)
    grid = np.linspace(-300.0, 300.0, 1201)
    resp = np.abs(np.exp(2j * np.pi * np.outer(grid, n) / rate) @ full) / full.sum()
    tables = _Tables(
        rate=rate,
        dft=dft,
        energy=energy.astype(np.float32),
        nominal=freqs,
        min_amp=DBM0_PEAK * 10.0 ** (MIN_LEVEL_DBM0 / 20.0),
        max_harmonic=10.0 ** (MAX_HARMONIC_DB / 10.0),
        max_reverse=10.0 ** (MAX_REVERSE_TWIST_DB / 20.0),
        min_normal=10.0 ** (-MAX_NORMAL_TWIST_DB / 20.0),
        full_sum=float(full.sum()),
        full_sq_sum=float((full**2).sum()),
        resp_grid=grid,
        resp=resp,
    )
    _TABLE_CACHE[rate] = tables
    return tables


def _block_hits(blocks: np.ndarray, t: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """Classify each row of ``blocks`` (float32 [R, BLOCK]) as a digit index 0..15 or -1.

    Returns (digit int8 [R], measured frequency offsets float32 [R, 2] in Hz of the
    row and column tone, NaN where there is no hit).

    Pure function of one block: all the Q.24 per-block tests live here.  Cheap tests on
    the rectangular DFT run for every row; the rest only for the few rows that pass.
    """
    r = blocks.shape[0]
    out = np.full(r, _NONE, dtype=np.int8)
    offsets = np.full((r, 2), np.nan, dtype=np.float32)
    y = blocks @ t.dft  # [R, 72]
    e = (blocks * blocks) @ t.energy  # [R, 2]: plain, full Hann²
    rect = y[:, 0:8] ** 2 + y[:, 8:16] ** 2
    row = np.argmax(rect[:, :4], axis=1)
    col = np.argmax(rect[:, 4:], axis=1)
    idx = np.arange(r)
    best_r = rect[idx, row]
    best_c = rect[idx, col + 4]
    # |X|² of a sine of peak A over N samples is (A·N/2)²; its energy is A²·N/2.
    floor = (t.min_amp * BLOCK / 2.0) ** 2 * 0.25
    cand = (best_r >= floor) & (best_c >= floor)
    cand &= (best_r + best_c) * (2.0 / BLOCK) >= PREFILTER_SHARE * e[:, 0]
    sub = np.flatnonzero(cand)
    if sub.size == 0:
        return out, offsets
    y, e, rect = y[sub], e[sub], rect[sub]
    row, col, best_c = row[sub], col[sub], best_c[sub]
    k = np.arange(sub.size)

    srow = np.sort(rect[:, :4], axis=1)
    scol = np.sort(rect[:, 4:], axis=1)
    peak = 10.0 ** (RELATIVE_PEAK_DB / 10.0)
    ok = (srow[:, 3] >= peak * srow[:, 2]) & (scol[:, 3] >= peak * scol[:, 2])
    ok &= y[k, 16 + col] ** 2 + y[k, 20 + col] ** 2 <= t.max_harmonic * best_c

    sel = np.stack([row, col + 4], axis=1).astype(np.int64)  # [S, 2]
    ar = np.take_along_axis(y[:, 24:32], sel, axis=1).astype(np.float64)
    ai = np.take_along_axis(y[:, 32:40], sel, axis=1).astype(np.float64)
    br = np.take_along_axis(y[:, 40:48], sel, axis=1).astype(np.float64)
    bi = np.take_along_axis(y[:, 48:56], sel, axis=1).astype(np.float64)
    # Phase advance from window A to window B = δω·HOP (tables use e^{+jω0 n}).
    dphi = np.arctan2(ai * br - ar * bi, ar * br + ai * bi)
    dfreq = dphi * (t.rate / (2.0 * np.pi * HANN_HOP))
    ok &= np.all(np.abs(dfreq) <= FREQ_TOLERANCE * t.nominal[sel], axis=1)

    mag_a = np.sqrt(ar * ar + ai * ai)
    mag_b = np.sqrt(br * br + bi * bi)
    # Level, twist and energy share from the full-block Hann window: its sidelobes at
    # the other group (>= 268 Hz) and at speech harmonics >= 160 Hz away are < -30 dB,
    # where the short windows would let a vowel's neighbouring harmonics in.
    fr = np.take_along_axis(y[:, 56:64], sel, axis=1).astype(np.float64)
    fi = np.take_along_axis(y[:, 64:72], sel, axis=1).astype(np.float64)
    resp = np.interp(dfreq, t.resp_grid, t.resp)
    amp = 2.0 * np.sqrt(fr * fr + fi * fi) / t.full_sum / np.maximum(resp, 1e-3)  # peak
    ok &= np.all(amp >= t.min_amp, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_tw = amp[:, 1] / amp[:, 0]
        ok &= (ratio_tw <= t.max_reverse) & (ratio_tw >= t.min_normal)
        tone_energy = (amp[:, 0] ** 2 + amp[:, 1] ** 2) / 2.0 * t.full_sq_sum
        ok &= tone_energy >= MIN_ENERGY_SHARE * e[:, 1]
        # Each tone's amplitude in the early vs the late window: a block only partly
        # filled with tone (start or end of a burst) is not a hit.  Plain half-block
        # energies would not do: the beat of the two tones moves them by up to ±15 %.
        # The geometric mean over both tones halves the noise; each alone gets slack.
        steady = np.minimum(mag_a, mag_b) / np.maximum(mag_a, mag_b)
        ok &= np.sqrt(steady[:, 0] * steady[:, 1]) >= MIN_STEADINESS
        ok &= np.all(steady >= MIN_STEADINESS_EACH, axis=1)
    out[sub[ok]] = (row[ok] * 4 + col[ok]).astype(np.int8)
    offsets[sub[ok]] = dfreq[ok]
    return out, offsets


class DtmfDetector:
    """Streaming DTMF detector for ``channels`` lines, fed one media tick at a time.

    All channels share one block phase, so a call's blocks are cut at the same sample
    for every line and one matrix product covers them all (no per-channel Python loop).
    Rules and sources: see the module docstring (ITU-T Q.24 via REFERENCE.md).
    """

    def __init__(self, channels: int, rate: int = 8000) -> None:
        """Create state for ``channels`` lines at ``rate`` Hz; ValueError if either is invalid."""
        if channels < 0:
            raise ValueError(f"channels must be >= 0, got {channels}")
        self._t = _tables(rate)
        self._channels = 0
        self._buf = np.zeros((0, BLOCK), dtype=np.float32)
        self._fill = 0
        self._block_start = 0  # absolute sample index (shared clock) of the buffered block
        self._origin = np.zeros(0, dtype=np.int64)
        self._cur = np.zeros(0, dtype=np.int8)
        self._last = np.zeros(0, dtype=np.int8)
        self._misses = np.zeros(0, dtype=np.int8)
        self._last_offsets = np.zeros((0, 2), dtype=np.float32)
        self.resize(channels)

    @property
    def channels(self) -> int:
        """Number of lines this detector currently serves."""
        return self._channels

    def resize(self, channels: int) -> None:
        """Grow to ``channels`` lines (board reconfigure); new lines start fresh.

        Raises ValueError when asked to shrink (a line's state would be lost silently).
        """
        if channels < self._channels:
            raise ValueError(f"cannot shrink from {self._channels} to {channels} channels")
        extra = channels - self._channels
        if extra == 0:
            return
        self._buf = np.concatenate([self._buf, np.zeros((extra, BLOCK), np.float32)])
        now = self._block_start + self._fill
        self._origin = np.concatenate([self._origin, np.full(extra, now, np.int64)])
        self._cur = np.concatenate([self._cur, np.full(extra, _NONE, np.int8)])
        self._last = np.concatenate([self._last, np.full(extra, _NONE, np.int8)])
        self._misses = np.concatenate([self._misses, np.zeros(extra, np.int8)])
        self._last_offsets = np.concatenate(
            [self._last_offsets, np.full((extra, 2), np.nan, np.float32)]
        )
        self._channels = channels

    def reset(self, channels: np.ndarray | Sequence[int]) -> None:
        """Forget the state of ``channels`` (a new call on those lines).

        Their sample index restarts at 0 from now; audio already buffered for them is
        zeroed so nothing of the old call can complete a digit in the new one.
        Raises IndexError for a channel number out of range.
        """
        ch = np.asarray(channels, dtype=np.int64).reshape(-1)
        if ch.size and (ch.min() < 0 or ch.max() >= self._channels):
            raise IndexError(f"channel out of range 0..{self._channels - 1}: {ch.tolist()}")
        self._buf[ch] = 0.0
        self._origin[ch] = self._block_start + self._fill
        self._cur[ch] = _NONE
        self._last[ch] = _NONE
        self._misses[ch] = 0
        self._last_offsets[ch] = np.nan

    def process(self, frames: np.ndarray) -> list[tuple[int, str, int]]:
        """Feed ``frames`` (int16 [channels, n], n >= 1) and return newly confirmed digits.

        Returns ``(channel, digit, sample_index)`` for every digit whose start was
        confirmed in this call, in time order; ``sample_index`` counts samples on that
        channel since creation or its last reset, at the end of the confirming block.
        Raises ValueError if the shape does not match the channel count.
        """
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[0] != self._channels:
            raise ValueError(
                f"frames must be [{self._channels}, n], got shape {tuple(frames.shape)}"
            )
        n = frames.shape[1]
        if n == 0 or self._channels == 0:
            return []
        total = self._fill + n
        if total < BLOCK:
            self._buf[:, self._fill : total] = frames
            self._fill = total
            return []
        data = np.empty((self._channels, total), dtype=np.float32)
        data[:, : self._fill] = self._buf[:, : self._fill]
        data[:, self._fill :] = frames
        nb = total // BLOCK
        used = nb * BLOCK
        blocks = data[:, :used].reshape(self._channels * nb, BLOCK)
        hits, offsets = _block_hits(blocks, self._t)
        hits = hits.reshape(self._channels, nb)
        offsets = offsets.reshape(self._channels, nb, 2)
        events: list[tuple[int, str, int]] = []
        for k in range(nb):
            end = self._block_start + (k + 1) * BLOCK
            started = self._step(hits[:, k], offsets[:, k])
            for ch in np.flatnonzero(started).tolist():
                events.append((ch, DIGITS[self._cur[ch]], int(end - self._origin[ch])))
        rest = total - used
        self._buf[:, :rest] = data[:, used:]
        self._fill = rest
        self._block_start += used
        return events

    def _step(self, d: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Advance every channel's digit state by one block; return where a digit started.

        ``d`` is this block's digit per channel (-1: none), ``offsets`` its measured
        frequency offsets [C, 2] in Hz.
        """
        cur, last = self._cur, self._last
        hit = d != _NONE
        # A tone pair that glides (sweeps, glissandi) is not a key press.
        with np.errstate(invalid="ignore"):
            drift = np.abs(offsets - self._last_offsets)
            steady = np.all(drift <= MAX_DRIFT_HZ, axis=1)
        confirmed = hit & (d == last) & steady
        # Two consecutive hits of a digit other than the current one start it.
        started = confirmed & (d != cur)
        same = hit & (d == cur)
        in_digit = cur != _NONE
        misses = np.where(same, 0, np.where(in_digit, self._misses + 1, 0)).astype(np.int8)
        ended = in_digit & (misses >= END_MISSES)
        cur = np.where(ended, _NONE, cur)
        misses = np.where(ended, 0, misses)
        cur = np.where(started, d, cur).astype(np.int8)
        misses = np.where(started, 0, misses).astype(np.int8)
        self._cur = cur
        self._misses = misses
        self._last = d
        self._last_offsets = offsets
        return started


def detect_digits(samples: np.ndarray, rate: int = 8000) -> str:
    """Decode all DTMF digits in a whole 1-D int16 signal (offline; same rules as streaming).

    Raises ValueError if ``samples`` is not one-dimensional.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {x.shape}")
    if x.size == 0:
        return ""
    det = DtmfDetector(1, rate)
    return "".join(d for _, d, _ in det.process(x[None, :]))


def generate_digits(
    digits: str,
    rate: int = 8000,
    on_ms: float = 50,
    off_ms: float = 50,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
) -> np.ndarray:
    """Synthesize ``digits`` as DTMF: int16 1-D, each digit ``on_ms`` of tone then ``off_ms`` silence.

    Each tone is at ``level_dbm0`` (0 dBm0 = peak 22 700); the high-group tone is raised
    by ``twist_db`` (positive = reverse twist, high louder).  Letters a-d are accepted in
    either case.  Raises ValueError naming the first character not in DIGITS, or for a
    non-positive rate / negative durations.  The sum is saturated to int16.
    """
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    if on_ms < 0 or off_ms < 0:
        raise ValueError(f"durations must be >= 0, got on_ms={on_ms}, off_ms={off_ms}")
    for ch in digits:
        if ch.upper() not in DIGITS:
            raise ValueError(f"not a DTMF digit: {ch!r} (allowed: {DIGITS})")
    on = int(round(on_ms * rate / 1000.0))
    off = int(round(off_ms * rate / 1000.0))
    t = np.arange(on) / rate
    low_amp = DBM0_PEAK * 10.0 ** (level_dbm0 / 20.0)
    high_amp = DBM0_PEAK * 10.0 ** ((level_dbm0 + twist_db) / 20.0)
    out = np.zeros(len(digits) * (on + off), dtype=np.float64)
    for i, ch in enumerate(digits):
        k = DIGITS.index(ch.upper())
        tone = low_amp * np.sin(2 * np.pi * ROW_FREQS[k // 4] * t)
        tone += high_amp * np.sin(2 * np.pi * COL_FREQS[k % 4] * t)
        start = i * (on + off)
        out[start : start + on] = tone
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)
