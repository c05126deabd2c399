"""G.711 µ-law / A-law against an independent reference written from the standard's tables.

The reference below deliberately shares no code or technique with the module:
the module computes codes with bit tricks on the Sun ``g711.c`` segment ends;
here the decision values of G.711 Table 2a (µ-law) and Table 1a (A-law) are
listed interval by interval and each sample is placed with a plain search.
"""

from __future__ import annotations

import bisect
import warnings

import numpy as np
import pytest

from switchd.lines.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


def _decision_values(first: int, widths: list[int], first_interval_width: int) -> list[int]:
    """Lower edges of the 128 quantisation intervals, plus the final upper edge."""
    edges = [first]
    for seg, width in enumerate(widths):
        for q in range(16):
            step = first_interval_width if (seg == 0 and q == 0) else width
            edges.append(edges[-1] + step)
    return edges


# G.711 Table 2a (µ-law), 14-bit magnitude scale: interval 0 is [0, 1), then 15 intervals
# of 2, then 16 of 4, 8, ..., 256; the top decision value is 8159.
ULAW_EDGES = _decision_values(0, [2, 4, 8, 16, 32, 64, 128, 256], 1)
# G.711 Table 1a (A-law), 12-bit magnitude scale: 32 intervals of 2 (segments 0 and 1
# are collinear), then 16 of 4, 8, ..., 128; the top decision value is 4096.
ALAW_EDGES = _decision_values(0, [2, 2, 4, 8, 16, 32, 64, 128], 2)


def _interval(edges: list[int], magnitude: int) -> int:
    """Index 0..127 of the interval holding ``magnitude``; beyond the top edge is the top interval."""
    return min(bisect.bisect_right(edges, magnitude) - 1, 127)


def ref_ulaw_encode(sample: int) -> int:
    value = sample >> 2  # 14-bit two's complement
    positive = value >= 0
    magnitude = value if positive else -value  # µ-law reference code negates
    index = _interval(ULAW_EDGES, magnitude)  # segment * 16 + step
    # Table 2a: sign bit 1 for positive values, the seven magnitude bits inverted
    return (0x80 if positive else 0x00) | (index ^ 0x7F)


def ref_ulaw_decode(code: int) -> int:
    index = (code & 0x7F) ^ 0x7F
    low, high = ULAW_EDGES[index], ULAW_EDGES[index + 1]
    level = 0 if index == 0 else (low + high) // 2  # interval 0's value is 0
    level *= 4  # 14-bit -> 16-bit
    return level if code & 0x80 else -level


def ref_alaw_encode(sample: int) -> int:
    value = sample >> 3  # 13-bit two's complement
    positive = value >= 0
    magnitude = value if positive else -value - 1  # A-law reference code uses one's complement
    index = _interval(ALAW_EDGES, magnitude)
    word = (0x80 if positive else 0x00) | index
    return word ^ 0x55  # even bits inverted on the line


def ref_alaw_decode(code: int) -> int:
    word = code ^ 0x55
    index = word & 0x7F
    level = (ALAW_EDGES[index] + ALAW_EDGES[index + 1]) // 2 * 8  # midpoint, 13-bit -> 16-bit
    # all A-law edges are even, so the integer halving is exact
    return level if word & 0x80 else -level


def test_reference_tables_end_where_the_standard_says() -> None:
    assert ULAW_EDGES[-1] == 8159
    assert ALAW_EDGES[-1] == 4096
    assert ULAW_EDGES[16] == 31 and ULAW_EDGES[32] == 95  # segment boundaries of Table 2a
    assert ALAW_EDGES[32] == 64 and ALAW_EDGES[112] == 2048  # segment boundaries of Table 1a


@pytest.mark.parametrize(
    ("encode", "reference"),
    [(ulaw_encode, ref_ulaw_encode), (alaw_encode, ref_alaw_encode)],
    ids=["ulaw", "alaw"],
)
def test_every_int16_sample_encodes_as_the_reference(encode, reference) -> None:
    expected = np.array([reference(int(s)) for s in ALL_PCM], dtype=np.uint8)
    got = encode(ALL_PCM)
    assert got.dtype == np.uint8
    mismatches = np.flatnonzero(got != expected)
    assert mismatches.size == 0, f"first mismatch at pcm={ALL_PCM[mismatches[0]]}"


@pytest.mark.parametrize(
    ("decode", "reference"),
    [(ulaw_decode, ref_ulaw_decode), (alaw_decode, ref_alaw_decode)],
    ids=["ulaw", "alaw"],
)
def test_every_code_decodes_as_the_reference(decode, reference) -> None:
    expected = np.array([reference(int(c)) for c in ALL_CODES], dtype=np.int16)
    got = decode(ALL_CODES)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("encode", "decode", "lin2", "to_lin"),
    [
        (ulaw_encode, ulaw_decode, "lin2ulaw", "ulaw2lin"),
        (alaw_encode, alaw_decode, "lin2alaw", "alaw2lin"),
    ],
    ids=["ulaw", "alaw"],
)
def test_matches_audioop_for_every_value(encode, decode, lin2, to_lin) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    expected_codes = np.frombuffer(getattr(audioop, lin2)(ALL_PCM.tobytes(), 2), dtype=np.uint8)
    np.testing.assert_array_equal(encode(ALL_PCM), expected_codes)
    expected_pcm = np.frombuffer(getattr(audioop, to_lin)(ALL_CODES.tobytes(), 2), dtype=np.int16)
    np.testing.assert_array_equal(decode(ALL_CODES), expected_pcm)


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)],
    ids=["ulaw", "alaw"],
)
def test_decoded_values_survive_another_encode_decode(encode, decode) -> None:
    once = decode(ALL_CODES)
    np.testing.assert_array_equal(decode(encode(once)), once)


def test_only_ulaw_negative_zero_changes_code_on_reencode() -> None:
    again = ulaw_encode(ulaw_decode(ALL_CODES))
    changed = ALL_CODES[again != ALL_CODES]
    assert changed.tolist() == [0x7F]  # -0 and +0 both decode to 0, which encodes as +0
    assert again[0x7F] == 0xFF


def test_every_alaw_code_reencodes_to_itself() -> None:
    np.testing.assert_array_equal(alaw_encode(alaw_decode(ALL_CODES)), ALL_CODES)


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124)],
)
def test_ulaw_known_points(code: int, value: int) -> None:
    assert ref_ulaw_decode(code) == value  # the reference agrees, so the point is right
    assert ulaw_decode(np.array([code], dtype=np.uint8))[0] == value


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256)],
)
def test_alaw_known_points(code: int, value: int) -> None:
    assert ref_alaw_decode(code) == value
    assert alaw_decode(np.array([code], dtype=np.uint8))[0] == value


def test_silence_encodes_to_the_idle_codes() -> None:
    zeros = np.zeros(4, dtype=np.int16)
    assert ulaw_encode(zeros).tolist() == [0xFF] * 4
    assert alaw_encode(zeros).tolist() == [0xD5] * 4


def test_full_scale_saturates_instead_of_wrapping() -> None:
    extremes = np.array([32767, -32768], dtype=np.int16)
    assert ulaw_encode(extremes).tolist() == [0x80, 0x00]
    assert alaw_encode(extremes).tolist() == [0xAA, 0x2A]


def test_frames_keep_their_shape_and_strided_views_work() -> None:
    rng = np.random.default_rng(7)
    frames = rng.integers(-32768, 32768, size=(6, 160), dtype=np.int16)
    view = frames[::2, ::3]  # non-contiguous
    codes = ulaw_encode(view)
    assert codes.shape == view.shape
    np.testing.assert_array_equal(codes, ulaw_encode(np.ascontiguousarray(view)))
    assert ulaw_decode(codes).shape == view.shape
    assert alaw_decode(alaw_encode(frames)).shape == (6, 160)


def test_zero_dimensional_input_gives_an_array() -> None:
    code = ulaw_encode(np.array(0, dtype=np.int16))
    assert isinstance(code, np.ndarray) and code.shape == () and int(code) == 0xFF


@pytest.mark.parametrize("func", [ulaw_encode, alaw_encode])
def test_encoders_refuse_non_int16(func) -> None:
    with pytest.raises(TypeError, match="int16"):
        func(np.zeros(3, dtype=np.int32))


@pytest.mark.parametrize("func", [ulaw_decode, alaw_decode])
def test_decoders_refuse_non_uint8(func) -> None:
    with pytest.raises(TypeError, match="uint8"):
        func(np.zeros(3, dtype=np.int16))
