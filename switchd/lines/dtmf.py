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
  every channel is multiplied by one table (``X[C, 102] @ T[102, 16]``): the
  rectangular DFT at the 8 DTMF frequencies (group selection, relative-peak test).
  Only the few candidate blocks (two strong bins carrying half the energy; ~1.5 % of
  speech blocks) get a second product (``T[102, 72]``): the rectangular DFT at the high
  group's 2nd harmonics; two Hann windows of 56 samples, 46 apart, whose phase advance
  measures each tone's frequency, so a tone 3.5 % off is rejected even inside the right
  bin; a full-block Hann window for level, twist and energy share; and the full-block
  Hann window at twice each DTMF frequency (2nd harmonics).
* Two-tone fit: the other group's tone (>= 250 Hz away, up to 8 dB louder) leaks into
  the short windows at up to -20 dB and into the rectangular bins at up to -20 dB; with
  the twist limits that is up to -12 dB under the weak tone, which moved its measured
  frequency by ±9 Hz and tripped the relative-peak test.  So each tone's complex
  amplitude is solved from the full-Hann bins, its predicted leakage (window responses
  tabulated every 0.25 Hz) is subtracted from the other tone's short windows, the
  frequencies are measured again (error < 0.5 Hz without noise) and the amplitudes
  solved again.
* A block "hits" digit d when: after subtracting both fitted tones, no other bin of
  either group is within ``RELATIVE_PEAK_DB`` of that group's tone; both tones are
  within ``FREQ_TOLERANCE`` of nominal; the pair is not two harmonics of one
  fundamental (``HARMONIC_PAIRS``: a note and its 2nd harmonic, 680 + 1360 Hz, fall
  inside the windows of 2, 6 and C, a 310 Hz voice's 3rd and 4th inside *; no DTMF pair
  within ±1.5 % is that close to 2:1 or 4:3);
  each is above ``MIN_LEVEL_DBM0``; the twist is inside the window; the energy share
  test below passes; the 2nd harmonic of each tone
  (full Hann at twice the measured frequency, and the high tone's also in the
  rectangular bin at twice nominal) is ``MAX_HARMONIC_DB`` below it; and each tone has
  nearly the same amplitude in the early and the late short window
  (``MIN_STEADINESS``), so a block only partly filled with tone is not a hit.
* Energy share (changed for issue 20 item 3, "DTMF on noisy real lines").  A *clean*
  hit: the two tones carry ``MIN_ENERGY_SHARE`` = 85 % of the full-Hann block energy,
  as before.  That one number was most of the talk-off defence, but a key at 6 dB SNR
  (key power over interference power on its samples) carries 80 % on average and
  less in half its blocks: 12 % of such keys were heard under noise and music.  So
  below 85 % a block is a *noisy* hit when all of these hold:
  the tones carry ``NOISY_MIN_ENERGY_SHARE`` = 70 %; both are inside Q.24's accept
  window ``NOISY_FREQ_TOLERANCE`` = ±1.5 % (not the wider ``FREQ_TOLERANCE``) and at
  ``NOISY_MIN_LEVEL_DBM0`` = -25 dBm0 or above (Q.24's accept level; quieter pairs must
  be clean); the residual (block minus both fitted tones, 256-point FFT of the full
  Hann window) has no component farther than ``RESIDUAL_GUARD_HZ`` from the tones
  within ``MAX_RESIDUAL_PEAK_DB`` = -3.5 dB of the weaker tone (a third tone is a chord,
  not noise: a DTMF pair with a tone 2 dB under each must stay rejected, also with
  noise pulling its share under 85 %); and if the tones are the a-th and b-th
  harmonics of one f0 (a <= ``COMB_MAX_A``, within ``COMB_TOL_HZ``), no other harmonic
  of f0 is within ``MAX_COMB_DB`` = -6 dB of the weaker tone (a vowel of f0 = 234.5 Hz
  puts its 4th and 7th harmonics on 941 + 1633 Hz; its 11th gave it away).  These run
  only for the rows that passed every other test with a share of 70-85 %.
* Two consecutive hits of the same digit whose measured frequencies agree within
  ``MAX_DRIFT_HZ`` start it, if both are clean or both are inside ±1.5 % (a noisy hit
  never pairs with a hit only the wider tolerance let through) (a sweep through a DTMF pair is not a key press; a 40 ms
  tone always covers two whole blocks, a 20 ms tone never fills two blocks to the
  steadiness threshold; 23 ms may pass, inside Q.24's 20-23 ms grey zone).
  ``END_MISSES`` = 3 consecutive non-hits end it (a 10 ms drop-out spoils at most two
  blocks, a 40 ms pause at least three).  A noisy hit continues a digit like a clean
  one.  Only a clean hit makes :meth:`DtmfDetector.active` true before the digit is
  confirmed, so a lone noisy hit in speech mutes nothing.

Measured (``switchd bench dtmf``: 16 keys x 2 per cell, -20 … -10 dBm0, twist -6 … +3
dB, under espeak-ng speech, synthetic music, white/pink noise, after G.711 µ-law):
keys heard at SNR <= 10 dB went from 66.8 % to 80.1 % (6 dB: noise 12 -> 65 %, music
12 -> 41 %, speech 60 -> 69 %; 20 and 15 dB: 99-100 % as before); talk-off stayed 0 on
``tools/talkoff.py --minutes 30`` (90 min) and on the bench's 15 min; on 22 h of
further material (the talkoff.py generators, seeds 2-4: 10 h speech, 6 h music-like,
6 h piano-like) it found 8 false digits where the old detector found 7: the same 7
(5 in synthetic piano: two sustained notes on 698 + 1340 Hz and the like) and one
more, a fast espeak-ng glide through 852 + 1209 Hz.
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
FREQ_TOLERANCE = 0.022  # accept ±1.5 %, reject ±3.5 % (Q.24); narrower is less talk-off
MIN_LEVEL_DBM0 = -36.0
MAX_REVERSE_TWIST_DB = 5.0
MAX_NORMAL_TWIST_DB = 9.0
MIN_ENERGY_SHARE = 0.85
#: A "noisy hit" (module docstring): the two tones carry at least this share of the block.
NOISY_MIN_ENERGY_SHARE = 0.70
#: ...and are within Q.24's accept window (±1.5 %), tighter than ``FREQ_TOLERANCE``...
NOISY_FREQ_TOLERANCE = 0.015
#: ...and nothing else in the residual (0-4 kHz, > ``RESIDUAL_GUARD_HZ`` from both tones)
#: comes within this many dB of the weaker tone (a third tone is not noise)...
MAX_RESIDUAL_PEAK_DB = -3.5
RESIDUAL_GUARD_HZ = 80.0
#: ...and when the tones are harmonics a·f0 and b·f0 of one fundamental (a <= COMB_MAX_A,
#: within COMB_TOL_HZ), no other harmonic of f0 comes within MAX_COMB_DB of the weaker tone.
MAX_COMB_DB = -6.0
COMB_MAX_A = 10
COMB_TOL_HZ = 3.0
#: ...and both tones are at Q.24's accept level or above (a weaker pair must be clean).
NOISY_MIN_LEVEL_DBM0 = -25.0
MAX_HARMONIC_DB = -12.0
MIN_STEADINESS = 0.80
MIN_STEADINESS_EACH = 0.70
PREFILTER_SHARE = 0.5
END_MISSES = 3
MAX_DRIFT_HZ = 8.0
#: (f_high / f_low ratio, Hz): a pair within that many Hz of the ratio is two harmonics.
HARMONIC_PAIRS: tuple[tuple[float, float], ...] = ((2.0, 8.0), (4.0 / 3.0, 4.5))

_NONE = -1


@dataclass(frozen=True)
class _Tables:
    """Precomputed analysis tables for one sample rate (built once per rate)."""

    rate: int
    dft_rect: np.ndarray  # float32 [BLOCK, 16]: rectangular DFT at the 8 tones (cos|sin)
    dft_cand: np.ndarray  # float32 [BLOCK, 72]: rect 2·high, Hann A, B, full, full at 2·f (cos|sin)
    energy: np.ndarray  # float32 [BLOCK, 2]: plain and full-Hann² weights
    nominal: np.ndarray  # float64 [8] Hz
    omega: np.ndarray  # float32 [8] rad/sample
    min_amp: float  # peak amplitude of MIN_LEVEL_DBM0
    noisy_min_amp: float  # peak amplitude of NOISY_MIN_LEVEL_DBM0
    max_harmonic: float  # power ratio of MAX_HARMONIC_DB
    max_reverse: float  # amplitude ratio high/low of MAX_REVERSE_TWIST_DB
    min_normal: float  # amplitude ratio high/low of -MAX_NORMAL_TWIST_DB
    full_sq_sum: float  # Σw² of the full-block Hann window
    full_win: np.ndarray  # float32 [BLOCK]: the full-block Hann window
    full_sum: float  # Σw of the full-block Hann window
    kern: np.ndarray  # complex64 [4·G]: W(δω) of rect, Hann A, Hann B, full Hann, end to end
    kern_scale: float  # table samples per rad/sample
    kern_base: np.ndarray  # float32 [4]: table position of δω = 0 for each window


_TABLE_CACHE: dict[int, _Tables] = {}

# Window kinds in the kernel table.
_RECT, _HANN_A, _HANN_B, _FULL = 0, 1, 2, 3
_KERN_STEP_HZ = 0.25
#: Widest tone-to-bin distance looked up: 1633 - 697 Hz plus the ±87 Hz that a phase
#: step over HANN_HOP can express, with slack; no lookup is ever clamped.
_KERN_SPAN_HZ = 1200.0


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
        full[:, None] * np.cos(2.0 * ang),
        full[:, None] * np.sin(2.0 * ang),
    ]
    dft = np.concatenate(cols, axis=1).astype(np.float32)  # [BLOCK, 88]
    energy = np.stack([np.ones(BLOCK), full**2], axis=1)
    # W(δω) = Σ w[n]·e^{jδω·n} every 0.25 Hz: linear interpolation between samples is
    # exact to ~1e-5 (the phase turns by < 0.01 rad per step).
    step = 2.0 * np.pi * _KERN_STEP_HZ / rate
    half = int(round(_KERN_SPAN_HZ / _KERN_STEP_HZ))
    grid = np.arange(-half, half + 1) * step
    wins = np.stack([np.ones(BLOCK), win_a, win_b, full])  # [4, BLOCK]
    kern = (np.exp(1j * np.outer(grid, n)) @ wins.T).T  # [4, G]
    tables = _Tables(
        rate=rate,
        dft_rect=np.ascontiguousarray(dft[:, :16]),
        dft_cand=np.ascontiguousarray(dft[:, 16:]),
        energy=energy.astype(np.float32),
        nominal=freqs,
        omega=(2.0 * np.pi * freqs / rate).astype(np.float32),
        min_amp=DBM0_PEAK * 10.0 ** (MIN_LEVEL_DBM0 / 20.0),
        noisy_min_amp=DBM0_PEAK * 10.0 ** (NOISY_MIN_LEVEL_DBM0 / 20.0),
        max_harmonic=10.0 ** (MAX_HARMONIC_DB / 10.0),
        max_reverse=10.0 ** (MAX_REVERSE_TWIST_DB / 20.0),
        min_normal=10.0 ** (-MAX_NORMAL_TWIST_DB / 20.0),
        full_sq_sum=float((full**2).sum()),
        full_win=full.astype(np.float32),
        full_sum=float(full.sum()),
        kern=kern.reshape(-1).astype(np.complex64),
        kern_scale=1.0 / step,
        kern_base=(np.arange(4) * grid.size + half).astype(np.float32),
    )
    _TABLE_CACHE[rate] = tables
    return tables


def _kernel(t: _Tables, dw: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Window responses W(δω) = Σ w[n]·e^{jδω·n} (complex, shape of ``dw``).

    ``dw`` is the distance in rad/sample from a tone to the bin analysed, ``kinds`` the
    window of each column (broadcast against ``dw``).  A real tone Re(c·e^{jωn}) puts
    (c/2)·W(ω - ω_k) into the bin at ω_k; its image at -ω is >= 1394 Hz away and left
    out (< -35 dB even for the rectangular window).
    """
    pos = dw * t.kern_scale + t.kern_base[kinds]
    i0 = pos.astype(np.int64)
    lo = t.kern[i0]
    return lo + (t.kern[i0 + 1] - lo) * (pos - i0)


def _solve_pair(w_own: np.ndarray, w_cross: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Half complex amplitudes h = c/2 [S, 2] of both tones from their full-Hann bins ``f``.

    f_i = h_i·W(δω_i) + h_j·W(ω_j + δω_j - ω_i): a 2×2 system per row, solved in closed form.
    """
    det = w_own[:, 0] * w_own[:, 1] - w_cross[:, 0] * w_cross[:, 1]
    det = np.where(np.abs(det) > 1e-6, det, np.complex64(1e-6))[:, None]
    return (w_own[:, ::-1] * f - w_cross * f[:, ::-1]) / det


_K_FIRST = np.array([_FULL, _FULL, _FULL, _FULL, _HANN_A, _HANN_A, _HANN_B, _HANN_B])
_K_FINAL = np.array([_FULL] * 4 + [_RECT] * 16 + [_FULL] * 3)


def _block_hits(blocks: np.ndarray, t: _Tables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify each row of ``blocks`` (float32 [R, BLOCK]) as a digit index 0..15 or -1.

    Returns (digit int8 [R], measured frequency offsets float32 [R, 2] in Hz of the
    row and column tone, NaN where there is no hit, flags uint8 [R]: ``_CLEAN`` for a
    hit that passed ``MIN_ENERGY_SHARE``, ``_TIGHT`` for a hit whose tones are both
    within ``NOISY_FREQ_TOLERANCE``; a noisy hit is ``_TIGHT`` only).

    Pure function of one block: all the Q.24 per-block tests live here.  Cheap tests on
    the rectangular DFT run for every row; the two-tone fit and the rest only for the
    few rows that pass (about 1.5 % of speech blocks).
    """
    r = blocks.shape[0]
    out = np.full(r, _NONE, dtype=np.int8)
    offsets = np.full((r, 2), np.nan, dtype=np.float32)
    flags = np.zeros(r, dtype=np.uint8)
    y = blocks @ t.dft_rect  # [R, 16]
    e = (blocks * blocks) @ t.energy  # [R, 2]: plain, full Hann²
    rect = (y[:, 0:8] ** 2 + y[:, 8:16] ** 2).reshape(r, 2, 4)
    best = np.argmax(rect, axis=2)  # [R, 2]: row, column within the group
    best_r, best_c = np.take_along_axis(rect, best[:, :, None], axis=2)[:, :, 0].T
    # |X|² of a sine of peak A over N samples is (A·N/2)²; its energy is A²·N/2.
    floor = (t.min_amp * BLOCK / 2.0) ** 2 * 0.25
    cand = (best_r >= floor) & (best_c >= floor)
    cand &= (best_r + best_c) * (2.0 / BLOCK) >= PREFILTER_SHARE * e[:, 0]
    sub = np.flatnonzero(cand)
    if sub.size == 0:
        return out, offsets, flags
    s = sub.size
    yd = y[sub]
    # The windowed DFTs only for candidates: the full product would cost 4x the time.
    yc = blocks[sub] @ t.dft_cand  # [S, 72]
    row, col = best[sub, 0], best[sub, 1]
    sel = np.stack([row, col + 4], axis=1)  # [S, 2]
    k = np.arange(s)
    om = t.omega[sel]
    om_x = om[:, ::-1] - om  # the other tone's nominal, seen from this tone's bin
    # Hann A, Hann B, full Hann bins of both tones in one gather: [S, 3, 2] complex.
    g = yc[k[:, None, None], _SHORT_COLS[None, :, None] + sel[:, None, :]]
    abf = g[:, 0::2] - np.complex64(1j) * g[:, 1::2]
    a, b, f, f2 = abf[:, 0], abf[:, 1], abf[:, 2], abf[:, 3]

    # Two-tone fit.  The short windows hear the other group's tone (>= 250 Hz away) at
    # up to -20 dB; with 8 dB of twist that is -12 dB under the weak tone, enough to move
    # its measured frequency by ±9 Hz and its early/late amplitude by ±25 %, and the
    # rectangular bins hear it at up to -12 dB too, which broke the relative-peak test
    # (REFERENCE.md twist limits).  So: measure, subtract each tone's predicted leakage
    # from the other's bins, measure again (the error falls from ±9 Hz to < 0.5 Hz).
    dw = np.angle(b * np.conj(a)) / HANN_HOP
    cross = om_x + dw[:, ::-1]
    kw = _kernel(t, np.concatenate([dw, cross, cross, cross], axis=1), _K_FIRST)
    h = _solve_pair(kw[:, 0:2], kw[:, 2:4], f)
    a = a - h[:, ::-1] * kw[:, 4:6]
    b = b - h[:, ::-1] * kw[:, 6:8]
    dw = np.angle(b * np.conj(a)) / HANN_HOP
    dist = om[:, :, None] + dw[:, :, None] - t.omega[None, None, :]  # [S, 2, 8]
    # The column tone as seen from the full-Hann bin at 2·f_row (1336 is 58 Hz from
    # 2·697), and each tone's own 2nd harmonic, 2·δω away from the bin at 2·nominal.
    high_at_2row = om[:, 1:] + dw[:, 1:] - 2.0 * om[:, :1]
    query = [dw, om_x + dw[:, ::-1], dist.reshape(s, 16), high_at_2row, 2.0 * dw]
    kw = _kernel(t, np.concatenate(query, axis=1), _K_FINAL)
    h = _solve_pair(kw[:, 0:2], kw[:, 2:4], f)

    # Second harmonic of the high tone (speech is rich in harmonics, DTMF is not).
    ok = yc[k, col] ** 2 + yc[k, 4 + col] ** 2 <= t.max_harmonic * best_c[sub]
    # ...and of both tones measured where it really is (2·measured f, which the fixed
    # rectangular bin at 2·nominal misses by up to a bin), with the column tone's leakage
    # removed.  Two sustained notes (F5 698 Hz + E6 1318 Hz) are in the windows of
    # digit 2; their own 2nd harmonics (1397, 2637 Hz) tell them from a key press.
    f2 = f2 - np.stack([h[:, 1] * kw[:, 20], np.zeros_like(f2[:, 1])], axis=1)
    harm2 = (f2.real**2 + f2.imag**2) / np.maximum(np.abs(kw[:, 21:23]) ** 2, 1e-30)
    ok &= np.all(harm2 <= t.max_harmonic * (h.real**2 + h.imag**2), axis=1)
    dfreq = dw * (t.rate / (2.0 * np.pi))
    ok &= np.all(np.abs(dfreq) <= FREQ_TOLERANCE * t.nominal[sel], axis=1)
    # Two harmonics of one fundamental look like a pair: a note and its 2nd harmonic
    # (680 + 1360 Hz passes for 697 + 1336 = 2, likewise 6 and C) and the 3rd and 4th
    # harmonics of a high voice (f0 ≈ 310 Hz: 929 + 1239 Hz passes for 941 + 1209 = *).
    # With both tones within ±1.5 %, no DTMF pair comes closer to 2:1 than 17 Hz (2·697
    # ·0.985 vs 1336·1.015) or to 4:3 than 8.8 Hz (4/3·941·0.985 vs 1209·1.015) on the
    # high tone; real harmonics sit at 0 ± the measuring error (< 1 Hz without noise).
    f_meas = t.nominal[sel] + dfreq
    for ratio, window_hz in HARMONIC_PAIRS:
        ok &= np.abs(f_meas[:, 1] - ratio * f_meas[:, 0]) > window_hz

    # Relative peak: what the rectangular DFT hears in the other bins of each group once
    # both measured tones are subtracted (their leakage is not a competing tone).
    leak = h[:, :, None] * kw[:, 4:20].reshape(s, 2, 8)
    resid = yd[:, 0:8] - np.complex64(1j) * yd[:, 8:16] - leak[:, 0] - leak[:, 1]
    res2 = resid.real**2 + resid.imag**2
    own = np.take_along_axis(leak.reshape(s, 16), sel + _OWN_LEAK, axis=1)
    tone2 = (own.real**2 + own.imag**2) / 10.0 ** (RELATIVE_PEAK_DB / 10.0)
    np.put_along_axis(res2, sel, 0.0, axis=1)
    ok &= np.all(res2.reshape(s, 2, 4) <= tone2[:, :, None], axis=(1, 2))

    # Level, twist and energy share from the full-block Hann fit: its sidelobes at the
    # other group (>= 250 Hz) and at speech harmonics >= 160 Hz away are < -30 dB.
    amp = 2.0 * np.abs(h)  # peak amplitude of each tone
    ok &= np.all(amp >= t.min_amp, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_tw = amp[:, 1] / amp[:, 0]
        ok &= (ratio_tw <= t.max_reverse) & (ratio_tw >= t.min_normal)
        tone_energy = (amp[:, 0] ** 2 + amp[:, 1] ** 2) / 2.0 * t.full_sq_sum
        # Each tone's amplitude in the early vs the late window: a block only partly
        # filled with tone (start or end of a burst) is not a hit.  Plain half-block
        # energies would not do: the beat of the two tones moves them by up to ±15 %.
        # The geometric mean over both tones halves the noise; each alone gets slack.
        mag_a, mag_b = np.abs(a), np.abs(b)
        steady = np.minimum(mag_a, mag_b) / np.maximum(mag_a, mag_b)
        ok &= np.sqrt(steady[:, 0] * steady[:, 1]) >= MIN_STEADINESS
        ok &= np.all(steady >= MIN_STEADINESS_EACH, axis=1)
    # Energy share: a clean hit as before; below it, a noisy hit only with the tones
    # inside ±1.5 % and a residual that holds no third tone and no other harmonic of
    # a common fundamental (the tests on the residual run for those few rows only).
    clean = ok & (tone_energy >= MIN_ENERGY_SHARE * e[sub, 1])
    tight = np.all(np.abs(dfreq) <= NOISY_FREQ_TOLERANCE * t.nominal[sel], axis=1)
    noisy = ok & ~clean & tight & (tone_energy >= NOISY_MIN_ENERGY_SHARE * e[sub, 1])
    noisy &= np.all(amp >= t.noisy_min_amp, axis=1)
    if noisy.any():
        noisy[noisy] = _residual_is_noise(blocks[sub[noisy]], h[noisy], om[noisy] + dw[noisy], t)
    ok = clean | noisy
    out[sub[ok]] = (row[ok] * 4 + col[ok]).astype(np.int8)
    offsets[sub[ok]] = dfreq[ok]
    flags[sub[clean]] = _CLEAN
    flags[sub[ok & tight]] |= _TIGHT
    return out, offsets, flags


def _residual_is_noise(rows: np.ndarray, h: np.ndarray, w: np.ndarray, t: _Tables) -> np.ndarray:
    """True [N] where what is left of ``rows`` (float32 [N, BLOCK]) after subtracting the
    two fitted tones (half complex amplitudes ``h`` complex [N, 2], measured frequencies
    ``w`` float [N, 2] in rad/sample) may be noise, speech or music under a key.

    False when the residual's strongest component (full-Hann spectrum, 31.25 Hz grid,
    farther than ``RESIDUAL_GUARD_HZ`` from both tones) is within
    ``MAX_RESIDUAL_PEAK_DB`` of the weaker tone: a third tone (a DTMF pair plus a tone 2 dB
    under each is a chord, not a key).  False too when the tones are the a-th and b-th
    harmonics of one fundamental f0 (a = 2..``COMB_MAX_A``, ``COMB_TOL_HZ``) and another
    harmonic of f0 (150-3800 Hz, outside the guard) is within ``MAX_COMB_DB`` of the
    weaker tone: a sung or spoken vowel whose 4th and 7th harmonics sit on 941 + 1633 Hz.
    """
    idx = np.arange(BLOCK, dtype=np.float64)
    tones = (2.0 * h[:, :, None] * np.exp(1j * w[:, :, None].astype(np.float64) * idx)).real
    spec = np.fft.rfft((rows - tones.sum(axis=1)) * t.full_win, _RESID_FFT)
    power = spec.real**2 + spec.imag**2  # [N, _RESID_FFT // 2 + 1]
    weak = np.min(np.abs(h), axis=1) ** 2 * t.full_sum**2  # the weaker tone's peak bin
    hz = w * (t.rate / (2.0 * np.pi))  # [N, 2]
    grid = np.arange(power.shape[1]) * (t.rate / _RESID_FFT)
    outside = np.all(np.abs(grid[None, None, :] - hz[:, :, None]) > RESIDUAL_GUARD_HZ, axis=1)
    peak = np.max(np.where(outside, power, 0.0), axis=1)
    ok = peak <= weak * 10.0 ** (MAX_RESIDUAL_PEAK_DB / 10.0)
    comb_limit = weak * 10.0 ** (MAX_COMB_DB / 10.0)
    k = np.arange(1, _COMB_MAX_K + 1)
    for a in range(2, COMB_MAX_A + 1):
        f0 = hz[:, 0] / a
        b = np.rint(hz[:, 1] / f0)
        match = np.abs(hz[:, 1] - b * f0) <= COMB_TOL_HZ
        if not match.any():
            continue
        fk = k[None, :] * f0[:, None]  # [N, K]
        use = (fk > 150.0) & (fk < 3800.0) & (k[None, :] != a) & (k[None, :] != b[:, None])
        use &= np.all(np.abs(fk[:, None, :] - hz[:, :, None]) > RESIDUAL_GUARD_HZ, axis=1)
        bins = np.minimum(np.rint(fk * (_RESID_FFT / t.rate)).astype(np.int64), power.shape[1] - 1)
        harm = np.max(np.where(use, np.take_along_axis(power, bins, axis=1), 0.0), axis=1)
        ok &= ~match | (harm <= comb_limit)
    return ok


#: Columns of cos|sin of Hann A, Hann B, full Hann and full Hann at 2·f, at bin 0 of the
#: candidate product (after the 8 rectangular 2nd-harmonic columns).
_SHORT_COLS = np.array([8, 16, 24, 32, 40, 48, 56, 64])
#: Where tone i's leakage into its own bin sits in the flattened [2, 8] leak array.
_OWN_LEAK = np.array([0, 8])
#: Flags of a hit (``_block_hits``): passed MIN_ENERGY_SHARE; tones within ±1.5 %.
_CLEAN, _TIGHT = np.uint8(1), np.uint8(2)
#: Residual spectrum: 256-point FFT of the 102-sample block (31.25 Hz grid, < 0.3 dB
#: scalloping); harmonics up to 3800 Hz of a fundamental down to 68.6 Hz (697 Hz
#: - 1.5 % over COMB_MAX_A = 10): 3800 / 68.6 < 56.
_RESID_FFT = 256
_COMB_MAX_K = 56


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
        self._last_flags = np.zeros(0, dtype=np.uint8)
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
        self._last_flags = np.concatenate([self._last_flags, np.zeros(extra, np.uint8)])
        self._channels = channels

    def active(self) -> np.ndarray:
        """bool [channels]: True where a key seems to sound, as of the last whole block.

        True from the first block that hits a digit (12.75-25.5 ms into the tone, one
        block before the digit is confirmed) and, once confirmed, until ``END_MISSES``
        blocks without it (about 25-40 ms after the tone ended). A lone hit that is
        never confirmed makes it True for that block only; speech and music almost
        never hit a single block (not once in the 194 s of shipped prompts and music
        on hold). A new array each call: the media plane mutes those lines' audio
        towards every other listener with it.
        """
        lone = (self._last != _NONE) & ((self._last_flags & _CLEAN) != 0)
        return (self._cur != _NONE) | lone

    def reset(self, channels: np.ndarray | Sequence[int]) -> None:
        """Forget the state of ``channels`` (a new call on those lines).

        Their sample index restarts at 0 from now; audio already buffered for them is
        zeroed so nothing of the old call can complete a digit in the new one.
        Raises IndexError for a channel number out of range.
        """
        if isinstance(channels, list | tuple) and len(channels) == 1 \
                and isinstance(channels[0], int):
            # One line (every call's end): scalar indexing, no index array nor reductions,
            # about a tenth of the cost of the general path below.
            c = channels[0]
            if not 0 <= c < self._channels:
                raise IndexError(f"channel out of range 0..{self._channels - 1}: [{c}]")
            self._buf[c] = 0.0
            self._origin[c] = self._block_start + self._fill
            self._cur[c] = _NONE
            self._last[c] = _NONE
            self._misses[c] = 0
            self._last_offsets[c] = np.nan
            return
        ch = np.asarray(channels, dtype=np.int64).reshape(-1)
        if ch.size and (ch.min() < 0 or ch.max() >= self._channels):
            raise IndexError(f"channel out of range 0..{self._channels - 1}: {ch.tolist()}")
        self._buf[ch] = 0.0
        self._origin[ch] = self._block_start + self._fill
        self._cur[ch] = _NONE
        self._last[ch] = _NONE
        self._misses[ch] = 0
        self._last_offsets[ch] = np.nan
        self._last_flags[ch] = 0

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
        hits, offsets, flags = _block_hits(blocks, self._t)
        hits = hits.reshape(self._channels, nb)
        offsets = offsets.reshape(self._channels, nb, 2)
        flags = flags.reshape(self._channels, nb)
        events: list[tuple[int, str, int]] = []
        for k in range(nb):
            end = self._block_start + (k + 1) * BLOCK
            started = self._step(hits[:, k], offsets[:, k], flags[:, k])
            for ch in np.flatnonzero(started).tolist():
                events.append((ch, DIGITS[self._cur[ch]], int(end - self._origin[ch])))
        rest = total - used
        self._buf[:, :rest] = data[:, used:]
        self._fill = rest
        self._block_start += used
        return events

    def _step(self, d: np.ndarray, offsets: np.ndarray, flags: np.ndarray) -> np.ndarray:
        """Advance every channel's digit state by one block; return where a digit started.

        ``d`` is this block's digit per channel (-1: none), ``offsets`` its measured
        frequency offsets [C, 2] in Hz, ``flags`` its ``_CLEAN``/``_TIGHT`` bits.
        """
        cur, last = self._cur, self._last
        hit = d != _NONE
        # A tone pair that glides (sweeps, glissandi) is not a key press.
        with np.errstate(invalid="ignore"):
            drift = np.abs(offsets - self._last_offsets)
            steady = np.all(drift <= MAX_DRIFT_HZ, axis=1)
        # Two clean hits, or two hits inside ±1.5 % (a noisy hit pairs with no hit
        # that only the wider FREQ_TOLERANCE let through).
        both = flags & self._last_flags
        confirmed = hit & (d == last) & steady & (both != 0)
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
        self._last_flags = np.where(hit, flags, 0).astype(np.uint8)
        return started


def detect_digits(samples: np.ndarray, rate: int = 8000) -> str:
    """Decode all DTMF digits in a whole mono signal (offline; same rules as streaming).

    ``samples`` is 1-D, either int16 (full scale ±32768, as the media plane and
    ``wave`` give) or floating point in [-1, 1] (as ``soundfile`` and
    ``scipy.io.wavfile`` give for float files). Floats are scaled by 32768 and
    rounded to int16, so both spellings of one signal give the same digits; the
    level limits (dBm0) are the same for both.

    Raises ValueError, saying what was given, for: a signal that is not 1-D (a
    stereo ``[n, 2]`` array: pick or mix a channel first); any other dtype (int32,
    uint8, …: convert, since their full scale is not known here); floats outside
    [-1, 1], NaN or infinity (likely int16 values stored as floats: divide by
    32768); and any rate but 8000 Hz.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(
            f"samples must be 1-D (one channel), got shape {x.shape}; pick or mix one channel"
        )
    if np.issubdtype(x.dtype, np.floating):
        if x.size and not np.isfinite(x).all():
            raise ValueError("float samples contain NaN or infinity")
        peak = float(np.abs(x).max()) if x.size else 0.0
        if peak > 1.0:
            raise ValueError(
                f"float samples must be in [-1, 1] (full scale 1.0), got a peak of {peak:g}; "
                "if these are int16 values stored as floats, divide them by 32768"
            )
        x = np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)
    elif x.dtype != np.int16:
        raise ValueError(
            f"samples must be int16 or float in [-1, 1], got {x.dtype}; convert them "
            "(e.g. int32 PCM: (x >> 16).astype(np.int16))"
        )
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
