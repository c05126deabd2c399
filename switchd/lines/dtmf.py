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
HARMONIC_PAIR_HZ = 8.0
FIT_PASSES = 2

_NONE = -1


@dataclass(frozen=True)
class _Tables:
    """Precomputed analysis tables for one sample rate (built once per rate)."""

    rate: int
    dft: np.ndarray  # float32 [BLOCK, 72]: rect, harmonics, Hann A, Hann B, Hann full (cos|sin)
    energy: np.ndarray  # float32 [BLOCK, 2]: plain and full-Hann² weights
    nominal: np.ndarray  # float64 [8] Hz
    omega: np.ndarray  # float64 [8] rad/sample
    min_amp: float  # peak amplitude of MIN_LEVEL_DBM0
    max_harmonic: float  # power ratio of MAX_HARMONIC_DB
    max_reverse: float  # amplitude ratio high/low of MAX_REVERSE_TWIST_DB
    min_normal: float  # amplitude ratio high/low of -MAX_NORMAL_TWIST_DB
    full_sq_sum: float  # Σw² of the full-block Hann window
    kern_grid: np.ndarray  # float64 [G]: δω in rad/sample for the kernels below
    kern_amp: np.ndarray  # float64 [3, G]: real amplitude of rect, short Hann, full Hann
    kern_center: np.ndarray  # float64 [4]: centre sample of rect, Hann A, Hann B, full Hann


_TABLE_CACHE: dict[int, _Tables] = {}

# Kernel indices: which window's response _kernel() evaluates.
_RECT, _HANN_A, _HANN_B, _FULL = 0, 1, 2, 3
_KERN_AMP_ROW = (0, 1, 1, 2)  # Hann A and B share one amplitude response
_KERN_STEP_HZ = 0.25
_KERN_SPAN_HZ = 1200.0  # >= the widest tone-to-bin distance (1633 - 697 + slack)


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
    # W(δω) = Σ w[n]·e^{jδω·n} = e^{jδω·centre}·R(δω) with R real for a symmetric window:
    # tabulate R finely, apply the phase exactly (see _kernel).
    span = 2.0 * np.pi * _KERN_SPAN_HZ / rate
    grid = np.linspace(-span, span, int(round(2 * _KERN_SPAN_HZ / _KERN_STEP_HZ)) + 1)
    amps = []
    for win in (np.ones(BLOCK), w, full):
        m = np.arange(win.size) - (win.size - 1) / 2.0
        amps.append(np.cos(np.outer(grid, m)) @ win)
    centre = np.array(
        [(BLOCK - 1) / 2.0, (HANN_LEN - 1) / 2.0, HANN_HOP + (HANN_LEN - 1) / 2.0, (BLOCK - 1) / 2.0]
    )
    tables = _Tables(
        rate=rate,
        dft=dft,
        energy=energy.astype(np.float32),
        nominal=freqs,
        omega=2.0 * np.pi * freqs / rate,
        min_amp=DBM0_PEAK * 10.0 ** (MIN_LEVEL_DBM0 / 20.0),
        max_harmonic=10.0 ** (MAX_HARMONIC_DB / 10.0),
        max_reverse=10.0 ** (MAX_REVERSE_TWIST_DB / 20.0),
        min_normal=10.0 ** (-MAX_NORMAL_TWIST_DB / 20.0),
        full_sq_sum=float((full**2).sum()),
        kern_grid=grid,
        kern_amp=np.stack(amps),
        kern_center=centre,
    )
    _TABLE_CACHE[rate] = tables
    return tables


def _kernel(t: _Tables, kind: int, dw: np.ndarray) -> np.ndarray:
    """Response W(δω) = Σ w[n]·e^{jδω·n} of analysis window ``kind`` (complex, same shape as ``dw``).

    ``dw`` is the distance in rad/sample from a tone to the bin analysed.  A real tone
    Re(c·e^{jωn}) gives (c/2)·W(ω - ω_k) in the bin at ω_k of that window (its image at
    -ω is >= 1394 Hz away and ignored: < -35 dB even for the rectangular window).
    """
    amp = np.interp(dw, t.kern_grid, t.kern_amp[_KERN_AMP_ROW[kind]])
    return amp * np.exp(1j * t.kern_center[kind] * dw)


def _complex_bins(y: np.ndarray, first: int, sel: np.ndarray | None = None) -> np.ndarray:
    """Complex DFT X = Σx·w·e^{-jωn} from the cos|sin column pair starting at ``first``."""
    re = y[:, first : first + 8].astype(np.float64)
    im = y[:, first + 8 : first + 16].astype(np.float64)
    if sel is not None:
        re = np.take_along_axis(re, sel, axis=1)
        im = np.take_along_axis(im, sel, axis=1)
    return re - 1j * im


def _fit_pair(
    t: _Tables, om: np.ndarray, a: np.ndarray, b: np.ndarray, f: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Measure both tones of a candidate pair with each one's leakage into the other removed.

    ``om`` [S, 2] nominal rad/sample of the row and column tone; ``a``, ``b``, ``f`` [S, 2]
    their complex bins in Hann A, Hann B and the full-block Hann window.  Returns
    (δω [S, 2] rad/sample, half complex amplitude h = c/2 [S, 2], |A'|, |B'| [S, 2]
    corrected short-window magnitudes).

    Why: the short windows hear the other group's tone (>= 250 Hz away) at up to -20 dB,
    and with 8 dB of twist that is -12 dB under the weak tone: enough to move its
    measured frequency by ±9 Hz and its early/late amplitudes by ±25 %.  Estimate both
    tones, subtract each one's predicted contribution from the other's bins, measure
    again (two passes bring the error under 1 Hz).
    """
    dw = np.angle(b * np.conj(a)) / HANN_HOP
    a_c, b_c = a, b
    for it in range(FIT_PASSES + 1):
        cross = om[:, ::-1] + dw[:, ::-1] - om  # other tone as seen from this tone's bin
        own_f = _kernel(t, _FULL, dw)
        cross_f = _kernel(t, _FULL, cross)
        # f_i = h_i·W(δω_i) + h_j·W(cross_i): solve the 2×2 system for h = c/2.
        det = own_f[:, 0] * own_f[:, 1] - cross_f[:, 0] * cross_f[:, 1]
        det = np.where(np.abs(det) > 1e-9, det, 1e-9)
        h = np.stack(
            [
                (own_f[:, 1] * f[:, 0] - cross_f[:, 0] * f[:, 1]) / det,
                (own_f[:, 0] * f[:, 1] - cross_f[:, 1] * f[:, 0]) / det,
            ],
            axis=1,
        )
        if it == FIT_PASSES:
            break
        other = h[:, ::-1]
        a_c = a - other * _kernel(t, _HANN_A, cross)
        b_c = b - other * _kernel(t, _HANN_B, cross)
        dw = np.angle(b_c * np.conj(a_c)) / HANN_HOP
    return dw, h, np.abs(a_c), np.abs(b_c)


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
    y, e = y[sub], e[sub]
    row, col, best_c = row[sub], col[sub], best_c[sub]
    k = np.arange(sub.size)
    ok = y[k, 16 + col] ** 2 + y[k, 20 + col] ** 2 <= t.max_harmonic * best_c

    sel = np.stack([row, col + 4], axis=1).astype(np.int64)  # [S, 2]
    om = t.omega[sel]
    dw, h, mag_a, mag_b = _fit_pair(
        t, om, _complex_bins(y, 24, sel), _complex_bins(y, 40, sel), _complex_bins(y, 56, sel)
    )
    dfreq = dw * (t.rate / (2.0 * np.pi))
    ok &= np.all(np.abs(dfreq) <= FREQ_TOLERANCE * t.nominal[sel], axis=1)
    # A note and its own 2nd harmonic (f, 2f) can sit inside the windows of 2, 6 or C
    # (680 + 1360 Hz looks like 697 + 1336); no DTMF pair within ±1.5 % is closer than
    # 17 Hz to f_high = 2·f_low (697·0.985·2 vs 1336·1.015), a harmonic is at 0.
    f_meas = t.nominal[sel] + dfreq
    ok &= np.abs(f_meas[:, 1] - 2.0 * f_meas[:, 0]) > HARMONIC_PAIR_HZ

    # Relative peak: what the rectangular DFT hears in the other bins of each group once
    # both measured tones are subtracted (their leakage is not a competing tone).
    x = _complex_bins(y, 0)  # [S, 8]
    dist = om[:, :, None] + dw[:, :, None] - t.omega[None, None, :]  # [S, 2, 8]
    resid = x - np.einsum("sk,skb->sb", h, _kernel(t, _RECT, dist))
    res2 = np.abs(resid) ** 2
    np.put_along_axis(res2, sel, 0.0, axis=1)
    tone2 = np.abs(h * _kernel(t, _RECT, dw)) ** 2  # each tone in its own rect bin
    peak = 10.0 ** (RELATIVE_PEAK_DB / 10.0)
    ok &= tone2[:, 0] >= peak * res2[:, :4].max(axis=1)
    ok &= tone2[:, 1] >= peak * res2[:, 4:].max(axis=1)

    # Level, twist and energy share from the full-block Hann fit: its sidelobes at the
    # other group (>= 250 Hz) and at speech harmonics >= 160 Hz away are < -30 dB.
    amp = 2.0 * np.abs(h)  # peak amplitude of each tone
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
