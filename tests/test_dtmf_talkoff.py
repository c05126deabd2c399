"""DTMF talk-off: speech and music-like audio must not produce digits (Q.24, REFERENCE.md).

The speech test needs espeak-ng and skips without it; the synthetic worst cases always
run.  Material generators live in tools/talkoff.py (also the long measurement tool).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from switchd.lines.dtmf import DBM0_PEAK, DIGITS, DtmfDetector, detect_digits, generate_digits

RATE = 8000


def _load_talkoff() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "tools" / "talkoff.py"
    spec = importlib.util.spec_from_file_location("talkoff_tool", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


talkoff = _load_talkoff()

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng not installed (apt-get install espeak-ng): no speech material to test talk-off",
)


def _amp(level_dbm0: float) -> float:
    return DBM0_PEAK * 10 ** (level_dbm0 / 20)


def _digits_in(x: np.ndarray) -> str:
    return detect_digits(np.clip(np.round(x), -32768, 32767).astype(np.int16))


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    """About 2.5 minutes of espeak-ng speech: 8 texts, varied voices, speeds, levels."""
    return [clip for _, clip in talkoff.speech_clips(150.0, seed=3)]


@needs_espeak
def test_speech_produces_no_digits(speech: list[np.ndarray]) -> None:
    false, seconds, found = talkoff.count_false_digits(speech)
    assert seconds >= 150.0
    assert false == 0, found


@needs_espeak
def test_dtmf_mixed_into_speech_is_still_detected(speech: list[np.ndarray]) -> None:
    g = generate_digits(DIGITS, on_ms=60, off_ms=60, level_dbm0=-10.0).astype(float)
    for clip in speech[:8]:
        assert clip.size >= 2 * g.size
        bed = talkoff.to_level(clip.astype(float), -22.0).astype(float)
        mid = bed.size // 3
        assert _digits_in(g + bed[mid : mid + g.size]) == DIGITS


def test_synthetic_music_like_material_produces_no_digits() -> None:
    clips = [clip for _, clip in talkoff.music_clips(96.0, seed=5)]
    false, seconds, found = talkoff.count_false_digits(clips)
    assert seconds >= 96.0
    assert false == 0, found


@pytest.mark.parametrize("digit", list(DIGITS))
def test_dtmf_pair_with_a_strong_third_tone_is_rejected_but_alone_is_accepted(digit: str) -> None:
    k = DIGITS.index(digit)
    low, high = (697.0, 770.0, 852.0, 941.0)[k // 4], (1209.0, 1336.0, 1477.0, 1633.0)[k % 4]
    t = np.arange(int(0.2 * RATE)) / RATE
    pair = _amp(-12) * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    assert _digits_in(pair) == digit  # the material is a digit without the third tone
    for third in (400.0, 1100.0, 2000.0, 3000.0):
        x = pair + _amp(-14) * np.sin(2 * np.pi * third * t + 1.0)  # 2 dB under each tone
        assert _digits_in(x) == "", third


@pytest.mark.parametrize("rate_hz_per_s", [800.0, 1500.0, 3000.0])
def test_tone_pair_sweeping_through_dtmf_ratio_produces_no_digits(rate_hz_per_s: float) -> None:
    # 697→1209, 770→1336, 852→1477, 941→1633 are all ≈ ×1.735: the pair crosses 1, 5, 9, D.
    t = np.arange(int(3400 / rate_hz_per_s * RATE)) / RATE
    inst = 300 + rate_hz_per_s * t
    x = _amp(-10) * (
        np.sin(2 * np.pi * np.cumsum(inst) / RATE)
        + np.sin(2 * np.pi * np.cumsum(1.735 * inst) / RATE)
    )
    assert _digits_in(x) == ""


@pytest.mark.parametrize("f0", [100.0, 139.4, 174.25, 232.33, 300.0])
def test_vowel_like_harmonic_series_produces_no_digits(f0: float) -> None:
    # 139.4·5 = 697 and 174.25·4 = 697, 232.33·3 = 697: harmonics sit right on DTMF rows.
    t = np.arange(RATE) / RATE
    x = np.zeros_like(t)
    for h in range(1, int(3800 / f0)):
        fh = h * f0
        gain = 1.0 / (1 + ((fh - 700) / 120) ** 2) + 0.7 / (1 + ((fh - 1250) / 120) ** 2) + 0.05
        x += gain * np.sin(2 * np.pi * fh * t + h)
    x *= _amp(-8) / np.max(np.abs(x)) * 1.5
    assert _digits_in(x) == ""


def test_talkoff_counter_counts_a_real_digit() -> None:
    """The counter itself must be able to find digits, or a 0 above would mean nothing."""
    false, seconds, found = talkoff.count_false_digits(
        [np.zeros(800, np.int16), generate_digits("7", on_ms=60)]
    )
    assert false == 1 and found == [(1, "7")]
    assert seconds == pytest.approx((800 + 880) / RATE)


def test_loud_white_noise_on_many_channels_produces_no_digits() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 2000, (16, 4000)).astype(np.int16)
    assert DtmfDetector(16).process(x) == []


@pytest.mark.parametrize("level", [-25.0, -10.0, 0.0])
@pytest.mark.parametrize("third", [0.0, 0.3, 0.6])
def test_single_notes_with_harmonics_from_600_to_1000_hz_produce_no_digits(
    level: float, third: float
) -> None:
    # A note f with its 2nd harmonic 2f: 680-684 Hz passed for 2, 752-756 Hz for 6 and
    # 832-836 Hz for C (2f within the column window).  One note per channel, 1 Hz steps.
    f0 = np.arange(600.0, 1001.0, 1.0)
    for k, second in enumerate((0.3, 0.45, 0.6, 0.8, 1.0)):
        partials = (1.0, second, third) if third else (1.0, second)
        x = talkoff.harmonic_notes(f0, 0.5, partials, level, seed=k)
        frames = np.clip(np.round(x), -32768, 32767).astype(np.int16)
        events = DtmfDetector(f0.size).process(frames)
        assert events == [], (second, [(f0[c], d) for c, d, _ in events][:5])


def test_note_plus_2nd_harmonic_is_a_harmonic_not_a_digit_but_the_dtmf_pair_is() -> None:
    # The counter-check: the same detector accepts digit 2's own tones at the same level.
    note = talkoff.harmonic_notes(np.array([682.0]), 0.5, (1.0, 0.6), -10.0)[0]
    assert _digits_in(note) == ""
    t = np.arange(int(0.5 * RATE)) / RATE
    digit = _amp(-10) * (np.sin(2 * np.pi * 697 * t) + 0.6 * np.sin(2 * np.pi * 1336 * t))
    assert _digits_in(digit) == "2"


@pytest.mark.parametrize("level", [-25.0, -10.0, 0.0])
def test_high_voice_whose_3rd_and_4th_harmonics_straddle_941_and_1209_gives_no_star(
    level: float,
) -> None:
    # f0 ≈ 306-312 Hz: 3·f0 ≈ 929 Hz (941 - 1.3 %), 4·f0 ≈ 1239 Hz (1209 + 2.5 %), a
    # formant on them; 2 h of espeak-ng speech found this twice before the 4:3 rule.
    f0 = np.arange(300.0, 322.0, 0.25)
    x = talkoff.harmonic_notes(f0, 0.5, (0.15, 0.25, 1.0, 0.9, 0.1, 0.05), level, seed=4)
    events = DtmfDetector(f0.size).process(np.round(x).astype(np.int16))
    assert events == [], [(f0[c], d) for c, d, _ in events][:5]


def test_ten_minutes_of_piano_like_music_produce_no_digits() -> None:
    clips = [clip for _, clip in talkoff.piano_clips(600.0, seed=1)]
    false, seconds, found = talkoff.count_false_digits(clips)
    assert seconds >= 600.0
    assert false == 0, found
