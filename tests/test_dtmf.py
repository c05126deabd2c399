"""DTMF generator and detectors against the ITU-T Q.24 limits in REFERENCE.md (DTMF)."""

from __future__ import annotations

import numpy as np
import pytest

from switchd.lines.dtmf import (
    COL_FREQS,
    DBM0_PEAK,
    DIGITS,
    ROW_FREQS,
    DtmfDetector,
    detect_digits,
    generate_digits,
)

RATE = 8000
#: Offsets (samples of leading silence) that put the tone start everywhere in a 102 block.
OFFSETS = (0, 1, 17, 33, 50, 51, 64, 80, 95, 101)
BLOCK_LEN = 102


def pair(
    low: float,
    high: float,
    ms: float,
    level: float = -10.0,
    twist: float = 0.0,
    pre: int = 0,
    post_ms: float = 60.0,
) -> np.ndarray:
    """One tone pair (arbitrary phases) with ``pre`` samples of silence before it."""
    t = np.arange(int(round(ms * RATE / 1000))) / RATE
    a = DBM0_PEAK * 10 ** (level / 20)
    b = DBM0_PEAK * 10 ** ((level + twist) / 20)
    x = a * np.sin(2 * np.pi * low * t + 0.4) + b * np.sin(2 * np.pi * high * t + 2.1)
    out = np.concatenate([np.zeros(pre), x, np.zeros(int(post_ms * RATE / 1000))])
    return np.round(out).astype(np.int16)


def digit_pair(d: str) -> tuple[float, float]:
    k = DIGITS.index(d)
    return ROW_FREQS[k // 4], COL_FREQS[k % 4]


# --- generator ---------------------------------------------------------------------------


def test_generator_length_is_digits_times_on_plus_off() -> None:
    x = generate_digits("123", on_ms=50, off_ms=40)
    assert x.dtype == np.int16 and x.ndim == 1
    assert x.size == 3 * (400 + 320)
    assert not np.any(x[400:720])  # the pause is silent


def test_generator_puts_each_tone_at_the_requested_dbm0_level() -> None:
    x = generate_digits("5", on_ms=1000, off_ms=0, level_dbm0=-10.0, twist_db=4.0).astype(float)
    spec = np.abs(np.fft.rfft(x)) * 2 / x.size  # peak amplitude per 1 Hz bin
    low_db = 20 * np.log10(spec[770] / DBM0_PEAK)
    high_db = 20 * np.log10(spec[1336] / DBM0_PEAK)
    assert low_db == pytest.approx(-10.0, abs=0.05)
    assert high_db == pytest.approx(-6.0, abs=0.05)


def test_generator_names_the_bad_character() -> None:
    with pytest.raises(ValueError, match="'x'"):
        generate_digits("12x4")


def test_generator_accepts_lowercase_letters() -> None:
    assert detect_digits(generate_digits("abcd")) == "ABCD"


# --- basic decoding -------------------------------------------------------------------------


def test_all_sixteen_digits_at_50_50_decode_exactly() -> None:
    assert detect_digits(generate_digits(DIGITS, on_ms=50, off_ms=50)) == DIGITS


@pytest.mark.parametrize("offset", OFFSETS)
def test_equal_digits_separated_by_40ms_pause_are_two_digits(offset: int) -> None:
    for d in DIGITS:
        x = np.concatenate(
            [np.zeros(offset, np.int16), generate_digits(d * 2, on_ms=50, off_ms=40)]
        )
        assert detect_digits(x) == d * 2, d


def test_silence_and_empty_input_give_nothing() -> None:
    assert detect_digits(np.zeros(8000, np.int16)) == ""
    assert detect_digits(np.zeros(0, np.int16)) == ""


# --- frequency tolerance ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "shift, accepted", [(0.015, True), (-0.015, True), (0.035, False), (-0.035, False)]
)
@pytest.mark.parametrize("freq", ROW_FREQS + COL_FREQS)
def test_frequency_within_1_5_percent_accepted_beyond_3_5_percent_rejected(
    freq: float, shift: float, accepted: bool
) -> None:
    for d in DIGITS:
        low, high = digit_pair(d)
        if freq not in (low, high):
            continue
        if freq == low:
            low *= 1 + shift
        else:
            high *= 1 + shift
        got = detect_digits(pair(low, high, 60))
        assert got == (d if accepted else ""), (d, freq, shift)


# --- duration, drop-out ------------------------------------------------------------------------


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize(
    "ms, accepted", [(40, True), (45, True), (50, True), (20, False), (15, False), (10, False)]
)
def test_tone_of_40ms_accepted_and_of_20ms_rejected_at_any_block_offset(
    ms: int, accepted: bool, offset: int
) -> None:
    for d in DIGITS:
        got = detect_digits(pair(*digit_pair(d), ms, pre=offset))
        assert got == (d if accepted else ""), (d, ms, offset)


@pytest.mark.parametrize("offset", OFFSETS)
def test_dropout_of_10ms_inside_a_tone_is_bridged(offset: int) -> None:
    for d in DIGITS:
        x = pair(*digit_pair(d), 120, pre=offset)
        start = offset + 400 + (offset * 7) % 60  # the gap lands at various block phases
        x[start : start + 80] = 0
        assert detect_digits(x) == d, d


# --- twist and level ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "twist, accepted", [(4.0, True), (-8.0, True), (6.0, False), (-12.0, False)]
)
def test_twist_plus4_and_minus8_accepted_plus6_and_minus12_rejected(
    twist: float, accepted: bool
) -> None:
    got = detect_digits(generate_digits(DIGITS, twist_db=twist))
    assert got == (DIGITS if accepted else "")


@pytest.mark.parametrize("level, accepted", [(-25.0, True), (-45.0, False)])
def test_minus_25_dbm0_accepted_minus_45_rejected(level: float, accepted: bool) -> None:
    got = detect_digits(generate_digits(DIGITS, level_dbm0=level))
    assert got == (DIGITS if accepted else "")


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("level", [-10.0, -25.0])
def test_all_digits_exact_in_white_noise_at_15db_snr(seed: int, level: float) -> None:
    x = generate_digits(DIGITS, level_dbm0=level).astype(float)
    tone_power = 2 * (DBM0_PEAK * 10 ** (level / 20)) ** 2 / 2  # both tones, while on
    noise = np.random.default_rng(seed).normal(0, np.sqrt(tone_power / 10**1.5), x.size)
    y = np.clip(np.round(x + noise), -32768, 32767).astype(np.int16)
    assert detect_digits(y) == DIGITS


# --- streaming detector ------------------------------------------------------------------------


def _channel_signals(n_channels: int, length: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = np.zeros((n_channels, length), np.int16)
    for ch in range(n_channels):
        digits = "".join(rng.choice(list(DIGITS), size=4))
        g = generate_digits(digits, on_ms=45 + 5 * ch, off_ms=45)
        start = int(rng.integers(0, 300))
        x[ch, start : start + g.size] = g[: length - start]
    return x


@pytest.mark.parametrize("chunk", [1, 7, 160, 1000])
def test_streaming_in_any_chunk_size_matches_offline_per_channel(chunk: int) -> None:
    x = _channel_signals(4, 8000)
    det = DtmfDetector(4)
    events: list[tuple[int, str, int]] = []
    for s in range(0, x.shape[1], chunk):
        events.extend(det.process(x[:, s : s + chunk]))
    for ch in range(4):
        assert "".join(d for c, d, _ in events if c == ch) == detect_digits(x[ch])
    # All channels were created together, so their clocks agree: time order = index order.
    assert [e[2] for e in events] == sorted(e[2] for e in events)
    for ch in range(4):
        idx = [i for c, _, i in events if c == ch]
        assert idx == sorted(idx) and len(idx) == 4


def test_events_come_in_time_order_with_sample_index_inside_the_tone() -> None:
    x = np.zeros((2, 4000), np.int16)
    x[0, 1000:1400] = pair(*digit_pair("7"), 50, post_ms=0)
    x[1, 300:700] = pair(*digit_pair("#"), 50, post_ms=0)
    events = DtmfDetector(2).process(x)
    assert [(c, d) for c, d, _ in events] == [(1, "#"), (0, "7")]
    # Confirmed after two whole 102-sample blocks of tone: 204..305 samples in.
    assert 300 + 204 <= events[0][2] <= 300 + 306
    assert 1000 + 204 <= events[1][2] <= 1000 + 306


def test_only_the_channel_with_digits_reports() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 800, (8, 12000)).astype(np.int16)  # about -26 dBm0 of noise
    x[5] = 0
    g = generate_digits("1590#", off_ms=60)
    x[3, 500 : 500 + g.size] = g
    events = DtmfDetector(8).process(x)
    assert {c for c, _, _ in events} == {3}
    assert "".join(d for _, d, _ in events) == "1590#"


def test_reset_restarts_the_sample_index_and_forgets_a_half_seen_digit() -> None:
    det = DtmfDetector(2)
    tone = pair(*digit_pair("4"), 60, post_ms=0)
    frames = np.zeros((2, 160), np.int16)
    frames[:, 100:] = tone[:60]
    det.process(frames)  # both channels are inside a tone...
    det.reset([0])  # ...when channel 0 gets a new call
    rest = np.zeros((2, 480), np.int16)
    rest[:, : tone.size - 60] = tone[60:]
    events = det.process(rest)
    # Channel 1 still hears the whole 60 ms tone; channel 0 only the 52 ms after the
    # reset (still a digit), and its sample index counts from the reset at sample 160.
    by_ch = {c: (d, i) for c, d, i in events}
    assert by_ch[1][0] == "4" and by_ch[0][0] == "4"
    assert 204 <= by_ch[0][1] <= rest.shape[1]
    assert by_ch[1][1] > 160 + 100


def test_resize_adds_fresh_channels_and_refuses_to_shrink() -> None:
    det = DtmfDetector(1)
    det.process(np.zeros((1, 500), np.int16))
    det.resize(3)
    assert det.channels == 3
    g = generate_digits("8")
    x = np.zeros((3, g.size), np.int16)
    x[2] = g
    events = det.process(x)
    assert [(c, d) for c, d, _ in events] == [(2, "8")]
    assert events[0][2] < g.size  # channel 2's clock started at the resize
    with pytest.raises(ValueError, match="shrink"):
        det.resize(2)


def test_process_rejects_a_frame_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\[3, n\]"):
        DtmfDetector(3).process(np.zeros((2, 160), np.int16))


def test_reset_rejects_unknown_channel() -> None:
    with pytest.raises(IndexError):
        DtmfDetector(3).reset([3])


def test_detector_refuses_a_rate_its_timing_was_not_tuned_for() -> None:
    with pytest.raises(ValueError, match="8000"):
        DtmfDetector(1, rate=16000)


# --- twist at the limits with frequency offsets (vectorised: one trial per channel) -----------


def _edge_trials(digit: str, seed: int, per_case: int = 16) -> np.ndarray:
    """Trials of ``digit`` as rows: twist exactly +4 or -8 dB, every combination of
    -1.5 / 0 / +1.5 % on each tone, each tone between -25 and 0 dBm0, random phases,
    random start in the block (0..101 samples), 40-50 ms long.  int16 [trials, 900]."""
    rng = np.random.default_rng(seed)
    low, high = digit_pair(digit)
    cases = [
        (tw, ol, oh)
        for tw in (4.0, -8.0)
        for ol in (-0.015, 0.0, 0.015)
        for oh in (-0.015, 0.0, 0.015)
    ]
    rows = []
    for tw, ol, oh in cases:
        loud = rng.uniform(-25.0 + abs(tw), 0.0, per_case)  # the weaker tone stays >= -25
        lo_db = loud - max(tw, 0.0)
        ms = rng.uniform(40.0, 50.0, per_case)
        pre = rng.integers(0, BLOCK_LEN, per_case)
        ph = rng.uniform(0, 2 * np.pi, (per_case, 2))
        n = np.arange(900)[None, :] - pre[:, None]
        on = (n >= 0) & (n < np.round(ms * RATE / 1000)[:, None])
        a = DBM0_PEAK * 10 ** (lo_db / 20)
        b = DBM0_PEAK * 10 ** ((lo_db + tw) / 20)
        x = a[:, None] * np.sin(2 * np.pi * low * (1 + ol) * n / RATE + ph[:, :1])
        x += b[:, None] * np.sin(2 * np.pi * high * (1 + oh) * n / RATE + ph[:, 1:])
        rows.append(np.where(on, x, 0.0))
    return np.clip(np.round(np.concatenate(rows)), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("digit", list(DIGITS))
def test_twist_at_both_limits_with_1_5_percent_offsets_never_misses(digit: str) -> None:
    # 2 twists x 9 offset combinations x 16 = 288 trials, each trial on its own channel.
    x = _edge_trials(digit, seed=1000 + DIGITS.index(digit))
    assert x.shape[0] >= 200
    det = DtmfDetector(x.shape[0])
    got = [""] * x.shape[0]
    for s in range(0, x.shape[1], 160):
        for ch, d, _ in det.process(x[:, s : s + 160]):
            got[ch] += d
    misses = [i for i, g in enumerate(got) if g != digit]
    assert misses == [], (digit, len(misses), [got[i] for i in misses[:5]])


@pytest.mark.parametrize("digit", ["2", "6", "C", "*"])
def test_pairs_nearest_to_a_harmonic_ratio_are_accepted_at_worst_offsets(digit: str) -> None:
    # 697/1336, 770/1477, 852/1633 are ~1.92:1; low -1.5 % and high +1.5 % bring them
    # to 1.975:1, the closest any DTMF pair gets to a note and its 2nd harmonic; 941/1209
    # the same way gets to 1.324:1, the closest to a voice's 3rd and 4th harmonics (4:3).
    low, high = digit_pair(digit)
    for level in (-25.0, -10.0, -4.0):  # -4 dBm0 per tone: the sum just fits in int16
        for pre in (0, 37, 80):
            x = pair(low * 0.985, high * 1.015, 45, level=level, pre=pre)
            assert detect_digits(x) == digit, (level, pre)


# ---------------------------------------------------------------- offline input types


def test_float_samples_in_plus_minus_one_give_the_same_digits_as_int16():
    x = generate_digits(DIGITS, on_ms=50, off_ms=50)
    for dtype in (np.float32, np.float64):
        f = (x / 32768.0).astype(dtype)  # what soundfile / scipy return for a float file
        assert detect_digits(f) == DIGITS, dtype


def test_quiet_float_digits_are_not_lost_to_scaling():
    # -20 dBm0 is well above the -25 dBm0 limit; in float it is a peak of about 0.14.
    x = generate_digits("159#", level_dbm0=-20.0) / 32768.0
    assert np.abs(x).max() < 0.2 and detect_digits(x) == "159#"


def test_full_scale_float_is_accepted():
    x = np.zeros(800)
    x[100] = 1.0
    x[200] = -1.0
    assert detect_digits(x) == ""


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (generate_digits("1").astype(np.float64), r"in \[-1, 1\].*peak of 14245;.*divide them by 32768"),
        (np.array([0.0, np.nan, 0.0]), "NaN or infinity"),
        (np.array([0.0, np.inf]), "NaN or infinity"),
        (generate_digits("1").astype(np.int32), "int16 or float in \\[-1, 1\\], got int32"),
        (np.zeros(160, np.uint8), "got uint8"),
        (np.zeros((160, 2), np.int16), r"1-D \(one channel\), got shape \(160, 2\)"),
        (np.zeros((2, 160), np.float32), "1-D"),
    ],
)
def test_anything_else_is_a_clear_error(samples, message):
    with pytest.raises(ValueError, match=message):
        detect_digits(samples)


def test_empty_input_of_either_type_has_no_digits():
    assert detect_digits(np.zeros(0, np.float32)) == ""
    assert detect_digits(np.zeros(0, np.int16)) == ""


def test_resetting_one_line_by_list_forgets_what_the_array_path_forgets():
    from switchd.lines.dtmf import DtmfDetector

    rng = np.random.default_rng(7)
    one, many = DtmfDetector(6), DtmfDetector(6)
    frames = (rng.standard_normal((6, 160)) * 3000).astype(np.int16)
    for det in (one, many):
        det.process(frames)
    one.reset([2])
    many.reset(np.array([2, 2]))
    for attr in ("_buf", "_origin", "_cur", "_last", "_misses", "_last_offsets"):
        assert np.array_equal(getattr(one, attr), getattr(many, attr), equal_nan=True), attr
    with pytest.raises(IndexError):
        one.reset([6])
