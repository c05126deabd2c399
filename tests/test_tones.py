"""Call-progress tones: continuity, cadence, frequency, level and batching, measured on the output."""

from __future__ import annotations

import math

import numpy as np
import pytest

from switchd.lines.tones import TONE_NAMES, TONE_PLANS, ToneBank, ToneSpec, tone_plan

RATE = 8000
#: 0 dBm0 sine: peak 22 700 in int16, so rms 22 700 / √2 ≈ 16 052 (REFERENCE.md).
RMS_0DBM0 = 16052.0
#: Cadence edges may move by up to one ramp (4 ms); allow 5 ms.
EDGE_TOLERANCE = int(0.005 * RATE)
RAMP = int(0.004 * RATE)

CASES = [(plan, tone) for plan in ("cn", "us") for tone in TONE_NAMES]
CASE_IDS = [f"{plan}-{tone}" for plan, tone in CASES]

# The tone plans exactly as the brief's table gives them (REFERENCE.md "Tone plans").
EXPECTED_PLANS = {
    "cn": {
        "dial": ((450.0,), ()),
        "ringback": ((450.0,), (1.0, 4.0)),
        "busy": ((450.0,), (0.35, 0.35)),
        "congestion": ((450.0,), (0.7, 0.7)),
        "callwaiting": ((450.0,), (0.4, 4.0)),
    },
    "us": {
        "dial": ((350.0, 440.0), ()),
        "ringback": ((440.0, 480.0), (2.0, 4.0)),
        "busy": ((480.0, 620.0), (0.5, 0.5)),
        "congestion": ((480.0, 620.0), (0.25, 0.25)),
        "callwaiting": ((440.0,), (0.3, 9.7)),
    },
}


def render_one(bank: ToneBank, tone: str, start: int, n: int) -> np.ndarray:
    ids = np.array([bank.index(tone)])
    return bank.render(ids, np.array([start], dtype=np.int64), n)[0]


def nominal_bursts(spec: ToneSpec, total: int) -> list[tuple[int, int]]:
    """(start, end) samples of every nominal on-burst that ends inside ``total`` samples."""
    if spec.continuous:
        return [(0, total)]
    durations = [round(d * RATE) for d in spec.cadence]
    bursts, t = [], 0
    while True:
        for i, d in enumerate(durations):
            if i % 2 == 0:
                if t + d > total:
                    return bursts
                bursts.append((t, t + d))
            t += d


def measured_bursts(x: np.ndarray, bridge: int = 80) -> list[tuple[int, int]]:
    """Runs of sound in ``x``; silences shorter than ``bridge`` samples (zero crossings,
    beat nulls) do not split a burst. The tone is exactly 0 when gated off."""
    nz = np.flatnonzero(x)
    if nz.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(nz) > bridge)
    starts = np.concatenate(([nz[0]], nz[breaks + 1]))
    ends = np.concatenate((nz[breaks] + 1, [nz[-1] + 1]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def steady_segment(spec: ToneSpec) -> tuple[int, int]:
    """The first on-burst without its ramps (or the first second of a continuous tone)."""
    on = RATE if spec.continuous else round(spec.cadence[0] * RATE)
    return RAMP, on - RAMP


def test_plans_hold_the_reference_frequencies_and_cadences() -> None:
    assert set(TONE_PLANS) == set(EXPECTED_PLANS)
    for plan, tones in EXPECTED_PLANS.items():
        assert tuple(TONE_PLANS[plan]) == TONE_NAMES
        for tone, (freqs, cadence) in tones.items():
            spec = TONE_PLANS[plan][tone]
            assert (spec.freqs, spec.cadence) == (freqs, cadence), (plan, tone)


def test_levels_follow_the_national_plans() -> None:
    assert {s.level_dbm0 for s in TONE_PLANS["cn"].values()} == {-10.0}
    us = {name: s.level_dbm0 for name, s in TONE_PLANS["us"].items()}
    assert us == {"dial": -13.0, "ringback": -19.0, "busy": -24.0, "congestion": -24.0,
                  "callwaiting": -13.0}


@pytest.mark.parametrize(("plan", "tone"), CASES, ids=CASE_IDS)
def test_frame_by_frame_equals_one_block(plan: str, tone: str) -> None:
    bank = ToneBank(plan)
    total = 10 * RATE
    block = render_one(bank, tone, 0, total)
    frames = np.concatenate([render_one(bank, tone, p, 160) for p in range(0, total, 160)])
    np.testing.assert_array_equal(frames, block)
    # Odd-sized chunks cross cadence and table edges at other places.
    edges = [0, 1, 33, 1000, 2799, 2800, 2801, 40_000, 47_999, 55_555, total]
    chunks = np.concatenate(
        [render_one(bank, tone, a, b - a) for a, b in zip(edges, edges[1:], strict=False)]
    )
    np.testing.assert_array_equal(chunks, block)


@pytest.mark.parametrize(("plan", "tone"), CASES, ids=CASE_IDS)
def test_on_off_times_match_the_cadence(plan: str, tone: str) -> None:
    bank = ToneBank(plan)
    spec = tone_plan(plan)[tone]
    cycle = 10 * RATE if spec.continuous else round(sum(spec.cadence) * RATE)
    total = 2 * cycle
    x = render_one(bank, tone, 0, total)
    expected = nominal_bursts(spec, total)
    got = measured_bursts(x)
    assert len(got) == len(expected), (got, expected)
    for (s, e), (es, ee) in zip(got, expected, strict=True):
        assert abs(s - es) <= EDGE_TOLERANCE, f"burst starts at {s}, cadence says {es}"
        assert abs(e - ee) <= EDGE_TOLERANCE, f"burst ends at {e}, cadence says {ee}"
    # Outside the nominal bursts the tone is exactly silent.
    gate = np.zeros(total, dtype=bool)
    for s, e in expected:
        gate[s:e] = True
    assert not x[~gate].any()


@pytest.mark.parametrize(("plan", "tone"), CASES, ids=CASE_IDS)
def test_spectrum_peaks_at_the_plan_frequencies(plan: str, tone: str) -> None:
    spec = tone_plan(plan)[tone]
    a, b = steady_segment(spec)
    seg = render_one(ToneBank(plan), tone, 0, b)[a:].astype(np.float64)
    nfft = 16 * RATE  # 0.5 Hz bins after zero padding
    mag = np.abs(np.fft.rfft(seg * np.hanning(seg.size), nfft))
    freqs = np.fft.rfftfreq(nfft, 1 / RATE)
    peaks, peak_mags = [], []
    for _ in range(len(spec.freqs) + 1):
        k = int(np.argmax(mag))
        peaks.append(freqs[k])
        peak_mags.append(mag[k])
        mag[(freqs > freqs[k] - 30) & (freqs < freqs[k] + 30)] = 0.0
    found = sorted(peaks[: len(spec.freqs)])
    for f_found, f_spec in zip(found, sorted(spec.freqs), strict=True):
        assert abs(f_found - f_spec) <= 2.0, (found, spec.freqs)
    # Nothing else comes close: the next peak is at least 40 dB below the weakest tone.
    assert 20 * math.log10(min(peak_mags[:-1]) / peak_mags[-1]) > 40


@pytest.mark.parametrize(("plan", "tone"), CASES, ids=CASE_IDS)
def test_level_matches_the_plan(plan: str, tone: str) -> None:
    spec = tone_plan(plan)[tone]
    a, b = steady_segment(spec)
    seg = render_one(ToneBank(plan), tone, 0, b)[a:].astype(np.float64)
    rms = math.sqrt(float(np.mean(seg**2)))
    # Each frequency is at level_dbm0; uncorrelated components add in power.
    expected = RMS_0DBM0 * 10 ** (spec.level_dbm0 / 20) * math.sqrt(len(spec.freqs))
    assert abs(20 * math.log10(rms / expected)) < 0.2


@pytest.mark.parametrize("plan", ["cn", "us"])
@pytest.mark.parametrize("n", [160, 5000])
def test_batch_rows_equal_rows_rendered_alone(plan: str, n: int) -> None:
    bank = ToneBank(plan)
    rng = np.random.default_rng(42)
    k = 64
    ids = rng.integers(0, len(TONE_NAMES), k)
    positions = rng.integers(0, 200_000, k)
    positions[:10] = np.arange(10) * 7  # some rows inside a tone's first ramp
    positions[10:14] = [10**9, 10**9 + 17, 10**12, 2**40 + 3]
    batch = bank.render(ids, positions, n)
    assert batch.shape == (k, n) and batch.dtype == np.int16
    for row in range(k):
        alone = bank.render(ids[row : row + 1], positions[row : row + 1], n)[0]
        np.testing.assert_array_equal(batch[row], alone)


@pytest.mark.parametrize(("plan", "tone"), CASES, ids=CASE_IDS)
def test_huge_positions_still_give_the_exact_waveform(plan: str, tone: str) -> None:
    bank = ToneBank(plan)
    spec = tone_plan(plan)[tone]
    cycle = 1 if spec.continuous else round(sum(spec.cadence) * RATE)
    mid_burst = 1000  # every plan's first burst is at least 2000 samples long
    start = (10**12 // cycle) * cycle + mid_burst
    got = render_one(bank, tone, start, 160).astype(np.int64)
    # Independent formula in exact integers for the phase: sin(2π f a / rate), gate fully on.
    want = [
        sum(spec.peak * math.sin(2 * math.pi * ((int(f) * a) % RATE) / RATE) for f in spec.freqs)
        for a in range(start, start + 160)
    ]
    assert np.max(np.abs(got - np.rint(want))) <= 1


@pytest.mark.parametrize(("plan", "tone"), CASES, ids=CASE_IDS)
def test_bursts_fade_in_and_out_without_clicks(plan: str, tone: str) -> None:
    spec = tone_plan(plan)[tone]
    x = np.abs(render_one(ToneBank(plan), tone, 0, 2 * RATE).astype(np.int64))
    steady_peak = np.max(x[RAMP : 2 * RAMP + 200])
    one_ms = RATE // 1000
    assert np.max(x[:one_ms]) < 0.25 * steady_peak
    if not spec.continuous:
        on = round(spec.cadence[0] * RATE)
        assert np.max(x[on - one_ms : on]) < 0.25 * steady_peak


def test_unknown_plan_names_the_known_plans() -> None:
    with pytest.raises(ValueError, match=r"'uk'.*cn, us"):
        tone_plan("uk")
    with pytest.raises(ValueError, match="cn, us"):
        ToneBank("uk")


def test_unknown_tone_names_the_known_tones() -> None:
    bank = ToneBank()
    assert [bank.index(t) for t in TONE_NAMES] == list(range(len(TONE_NAMES)))
    with pytest.raises(ValueError, match="dial, ringback, busy, congestion, callwaiting"):
        bank.index("howler")


@pytest.mark.parametrize(
    ("ids", "positions", "n"),
    [
        ([0, 5], [0, 0], 160),  # tone id out of range
        ([-1], [0], 160),
        ([0], [-160], 160),  # negative position
        ([0, 1], [0], 160),  # mismatched lengths
        ([[0]], [[0]], 160),  # not 1-D
        ([0], [0], -1),
        ([0.0], [0], 160),  # not integers
    ],
)
def test_render_refuses_bad_input(ids, positions, n) -> None:
    with pytest.raises(ValueError):
        ToneBank().render(np.array(ids), np.array(positions), n)


def test_empty_batch_gives_empty_frame() -> None:
    out = ToneBank().render(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert out.shape == (0, 160) and out.dtype == np.int16


@pytest.mark.parametrize(
    ("freqs", "cadence"),
    [((), ()), ((450.0,), (1.0,)), ((450.0,), (1.0, 0.0)), ((-5.0,), ())],
)
def test_tone_spec_refuses_nonsense(freqs, cadence) -> None:
    with pytest.raises(ValueError):
        ToneSpec(freqs, cadence, -10.0)


def test_tone_bank_refuses_a_rate_the_plan_cannot_use() -> None:
    with pytest.raises(ValueError, match="whole number of samples"):
        ToneBank("cn", rate=8001)  # 0.35 s is not whole samples
    with pytest.raises(ValueError, match="below"):
        ToneBank("us", rate=1000)  # 620 Hz aliases
