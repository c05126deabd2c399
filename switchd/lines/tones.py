"""Call-progress tones (dial, ringback, busy, congestion, call waiting) per national plan.

Why a wavetable: the media tick renders a 160-sample frame for every channel
that hears a tone, possibly a thousand at once. Each tone is periodic in the
sample index (whole-Hz frequencies at an integer rate, cadences of whole
samples), so :class:`ToneBank` renders one full period of every tone, gate and
ramps included, into an int16 table at construction. A frame is then one
gather per row. Because sample ``t`` of a row is *defined* as the table value
for the absolute index ``positions[k] + t`` since the tone started, output is
phase-continuous across frames and cadence-exact by construction, however the
caller slices time; index arithmetic is integer, so positions of 10^9 and more
lose nothing.

Levels: 0 dBm0 is a sine of peak 22 700 in int16 (REFERENCE.md, µ-law: 3.14 dB
below full scale); ``level_dbm0`` applies to *each* frequency of a tone, as
national plans state it.

Cadence edges: each "on" burst rises and falls with a 4 ms raised-cosine ramp
placed *inside* its nominal on-time (a continuous tone only rises at its
start), so nothing sounds outside the cadence grid and on/off boundaries stay
exactly on the whole-sample edges the plan gives; the burst at half amplitude
is one ramp (4 ms) shorter than nominal, far inside cadence tolerances (China
allows ±10 %). Hard edges would splatter clicks across the band, which tone
and DTMF detectors downstream can mistake for signal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

__all__ = [
    "DBM0_PEAK",
    "RAMP_S",
    "TONE_NAMES",
    "TONE_PLANS",
    "ToneBank",
    "ToneSpec",
    "tone_plan",
]

#: Peak int16 amplitude of a 0 dBm0 sine (REFERENCE.md; G.711 µ-law digital milliwatt).
DBM0_PEAK = 22700.0
#: Length of the raised-cosine ramp at each cadence edge, seconds.
RAMP_S = 0.004
#: Tone names in index order: ``ToneBank.render`` takes indices into this tuple.
TONE_NAMES: tuple[str, ...] = ("dial", "ringback", "busy", "congestion", "callwaiting")

#: Largest wavetable one tone may need (samples); only an exotic custom spec gets near it.
_MAX_TABLE = 1 << 22
#: Rows are rendered from a table padded by this many samples past one period, so a
#: frame up to this long needs no per-sample modulo.
_PAD = 4096


@dataclass(frozen=True)
class ToneSpec:
    """One tone: frequencies mixed together, an on/off cadence, and a level per frequency.

    ``freqs`` are in Hz; ``cadence`` alternates on and off durations in
    seconds, starting with "on" and repeating (``()`` = continuous);
    ``level_dbm0`` is the level of each frequency component. Raises
    ``ValueError`` for no or non-positive frequencies, or a cadence that is
    not on/off pairs of positive durations.
    """

    freqs: tuple[float, ...]
    cadence: tuple[float, ...]
    level_dbm0: float

    def __post_init__(self) -> None:
        if not self.freqs or any(not f > 0 for f in self.freqs):
            raise ValueError(f"a tone needs one or more positive frequencies, got {self.freqs!r}")
        if len(self.cadence) % 2 or any(not d > 0 for d in self.cadence):
            raise ValueError(
                f"cadence must be on/off pairs of positive seconds, got {self.cadence!r}"
            )

    @property
    def continuous(self) -> bool:
        """True when the tone never pauses."""
        return not self.cadence

    @property
    def peak(self) -> float:
        """Peak int16 amplitude of each frequency component (0 dBm0 = :data:`DBM0_PEAK`)."""
        return DBM0_PEAK * 10.0 ** (self.level_dbm0 / 20.0)


# China: YD/T (MPT) signal-tone rules: all tones 450 ± 25 Hz at −10 ± 3 dBm0; dial
# continuous, ringback 1 s / 4 s, busy 0.35 s / 0.35 s, congestion 0.7 s / 0.7 s,
# call waiting 0.4 s on / 4 s off (REFERENCE.md).
_CN = {
    "dial": ToneSpec((450.0,), (), -10.0),
    "ringback": ToneSpec((450.0,), (1.0, 4.0), -10.0),
    "busy": ToneSpec((450.0,), (0.35, 0.35), -10.0),
    "congestion": ToneSpec((450.0,), (0.7, 0.7), -10.0),
    "callwaiting": ToneSpec((450.0,), (0.4, 4.0), -10.0),
}
# North America: the Precise Tone Plan (AT&T "Notes on Distance Dialing" 1968; Telcordia
# GR-506-CORE): dial 350+440 Hz at −13 dBm0 per frequency, audible ringing 440+480 at −19,
# busy and reorder 480+620 at −24, call waiting 440 Hz at −13, 0.3 s every 10 s.
_US = {
    "dial": ToneSpec((350.0, 440.0), (), -13.0),
    "ringback": ToneSpec((440.0, 480.0), (2.0, 4.0), -19.0),
    "busy": ToneSpec((480.0, 620.0), (0.5, 0.5), -24.0),
    "congestion": ToneSpec((480.0, 620.0), (0.25, 0.25), -24.0),
    "callwaiting": ToneSpec((440.0,), (0.3, 9.7), -13.0),
}

#: National plan name -> tone name -> spec. Read-only.
TONE_PLANS: Mapping[str, Mapping[str, ToneSpec]] = MappingProxyType(
    {"cn": MappingProxyType(_CN), "us": MappingProxyType(_US)}
)


def tone_plan(name: str) -> Mapping[str, ToneSpec]:
    """Return the tones of national plan ``name`` (``"cn"`` or ``"us"``).

    Raises ``ValueError`` naming the known plans if ``name`` is not one of them.
    """
    try:
        return TONE_PLANS[name]
    except KeyError:
        known = ", ".join(sorted(TONE_PLANS))
        raise ValueError(f"unknown tone plan {name!r}; known plans: {known}") from None


def _whole_samples(seconds: float, rate: int, what: str) -> int:
    samples = seconds * rate
    whole = round(samples)
    if whole <= 0 or abs(samples - whole) > 1e-6 * max(1.0, samples):
        raise ValueError(f"{what} of {seconds} s is not a whole number of samples at {rate} Hz")
    return whole


def _ramp(length: int) -> np.ndarray:
    """Rising raised-cosine half period over ``length`` samples, never exactly 0 or 1."""
    i = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / length)


def _gate(cadence_samples: list[int], ramp_len: int) -> np.ndarray:
    """One cadence cycle of gain (0..1): ramped on-bursts, silent off-gaps."""
    gate = np.zeros(sum(cadence_samples), dtype=np.float64)
    start = 0
    for i, length in enumerate(cadence_samples):
        if i % 2 == 0:
            env = np.ones(length, dtype=np.float64)
            r = min(ramp_len, length)
            env[:r] = _ramp(ramp_len)[:r]
            env = np.minimum(env, env[::-1])  # the fall mirrors the rise
            gate[start : start + length] = env
        start += length
    return gate


def _mixture(spec: ToneSpec, rate: int, t: np.ndarray) -> np.ndarray:
    """The sum of the spec's sines at integer sample indices ``t`` (float64)."""
    out = np.zeros(t.shape, dtype=np.float64)
    for f in spec.freqs:
        # (f·t) mod rate in integers keeps the phase exact for any t.
        cycles = (int(f) * t) % rate
        out += spec.peak * np.sin(2.0 * np.pi * cycles / rate)
    return out


@dataclass(frozen=True)
class _Table:
    """Where one tone lives in the bank's table: a head played once, then a repeating body."""

    head_at: int
    head_len: int
    body_at: int
    body_len: int


def _build(spec: ToneSpec, rate: int, ramp_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (head, one body period) of a tone as float64 samples."""
    for f in spec.freqs:
        if f != int(f) or f >= rate / 2:
            raise ValueError(f"tone frequency {f} Hz must be a whole number below {rate / 2} Hz")
    sine_period = rate // math.gcd(rate, *(int(f) for f in spec.freqs))
    if spec.continuous:
        # Only the onset is ramped; after it the tone repeats every sine period.
        head_t = np.arange(ramp_len, dtype=np.int64)
        head = _mixture(spec, rate, head_t) * _ramp(ramp_len)
        body_t = ramp_len + np.arange(sine_period, dtype=np.int64)
        return head, _mixture(spec, rate, body_t)
    cadence = [
        _whole_samples(d, rate, "on-time" if i % 2 == 0 else "off-time")
        for i, d in enumerate(spec.cadence)
    ]
    gate = _gate(cadence, ramp_len)
    period = math.lcm(sine_period, gate.size)
    if period > _MAX_TABLE:
        raise ValueError(f"tone {spec} repeats only every {period} samples; too long to tabulate")
    t = np.arange(period, dtype=np.int64)
    return np.zeros(0), _mixture(spec, rate, t) * np.tile(gate, period // gate.size)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class ToneBank:
    """Renders the call-progress tones of one national plan for many channels at once.

    ``plan`` is a key of :data:`TONE_PLANS`; ``rate`` is the sample rate in Hz
    (8000 on the board). Raises ``ValueError`` for an unknown plan or a rate at
    which a plan's frequencies alias or its cadence is not whole samples.
    """

    def __init__(self, plan: str = "cn", rate: int = 8000) -> None:
        if int(rate) != rate or rate <= 0:
            raise ValueError(f"rate must be a positive whole number of Hz, got {rate!r}")
        self.plan = plan
        self.rate = int(rate)
        self.specs: Mapping[str, ToneSpec] = tone_plan(plan)
        self.names: tuple[str, ...] = TONE_NAMES
        self.ramp_samples = max(1, round(RAMP_S * self.rate))
        pieces: list[np.ndarray] = []
        tables: list[_Table] = []
        at = 0
        for name in self.names:
            head, body = _build(self.specs[name], self.rate, self.ramp_samples)
            padded = np.resize(body, body.size + _PAD)  # cyclic: a frame may run past the end
            tables.append(_Table(at, head.size, at + head.size, body.size))
            pieces += [head, padded]
            at += head.size + padded.size
        self._table = _to_int16(np.concatenate(pieces))
        self._table.flags.writeable = False
        self._head_at = np.array([t.head_at for t in tables], dtype=np.int64)
        self._head_len = np.array([t.head_len for t in tables], dtype=np.int64)
        self._body_at = np.array([t.body_at for t in tables], dtype=np.int64)
        self._body_len = np.array([t.body_len for t in tables], dtype=np.int64)

    def index(self, name: str) -> int:
        """Return the id of tone ``name`` for :meth:`render`.

        Raises ``ValueError`` naming the known tones if ``name`` is not one.
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(
                f"unknown tone {name!r}; known tones: {', '.join(self.names)}"
            ) from None

    def render(self, tone_ids: np.ndarray, positions: np.ndarray, n: int = 160) -> np.ndarray:
        """Return int16 ``[K, n]``: row ``k`` holds samples ``positions[k] .. positions[k]+n-1``.

        ``tone_ids`` (int ``[K]``) index :attr:`names`; ``positions`` (int
        ``[K]``) count samples since that channel's tone started, so the
        caller advances them by ``n`` per frame. The result is a pure function
        of (tone, absolute sample index): frames join without phase or cadence
        error and a batch row equals the same row rendered alone. Raises
        ``ValueError`` for mismatched or non-1-D inputs, an unknown tone id, a
        negative position or a negative ``n``.
        """
        ids = np.asarray(tone_ids)
        pos = np.asarray(positions)
        if ids.ndim != 1 or pos.shape != ids.shape:
            raise ValueError(
                f"tone_ids and positions must be 1-D of equal length, got {ids.shape} and {pos.shape}"
            )
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if ids.size == 0:
            return np.zeros((0, n), dtype=np.int16)
        if not (np.issubdtype(ids.dtype, np.integer) and np.issubdtype(pos.dtype, np.integer)):
            raise ValueError("tone_ids and positions must be integer arrays")
        if ids.min() < 0 or ids.max() >= len(self.names):
            raise ValueError(f"tone ids must lie in 0..{len(self.names) - 1} ({', '.join(self.names)})")
        pos = pos.astype(np.int64, copy=False)
        if pos.min() < 0:
            raise ValueError("positions count samples since the tone started and cannot be negative")

        head_len = self._head_len[ids]
        body_len = self._body_len[ids]
        offsets = np.arange(n, dtype=np.int64)
        if n <= _PAD:
            # Per row: where in the body the frame starts; the padding covers the rest.
            start = self._body_at[ids] + (pos - head_len) % body_len
            index = start[:, None] + offsets
        else:
            rel = pos[:, None] + offsets - head_len[:, None]
            index = self._body_at[ids][:, None] + rel % body_len[:, None]
        early = np.flatnonzero(pos < head_len)
        if early.size:
            # Rows still inside a continuous tone's onset read the head for those samples.
            absolute = pos[early, None] + offsets
            in_head = absolute < head_len[early, None]
            head_index = self._head_at[ids[early], None] + absolute
            index[early] = np.where(in_head, head_index, index[early])
        return np.take(self._table, index)
