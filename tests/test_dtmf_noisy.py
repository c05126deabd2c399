"""Keys on noisy lines (issue 20 item 3): the "noisy hit" path of switchd/lines/dtmf.py.

Below the 85 % energy share a block still hits when the two tones are inside Q.24's
±1.5 %, at -25 dBm0 or above, carry >= 70 % of the block, and the residual holds no
third tone and no other harmonic of a fundamental the tones share.  These tests pin
what each part is for: keys at 6 dB SNR are heard, a chord with a strong third tone
and a vowel whose harmonics sit on a DTMF pair are not, in quiet and in noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from switchd.bench_dtmf import score
from switchd.lines import dtmf
from switchd.lines.dtmf import DBM0_PEAK, DIGITS, detect_digits, generate_digits
from switchd.lines.g711 import ulaw_decode, ulaw_encode

RATE = 8000


def _amp(level_dbm0: float) -> float:
    return DBM0_PEAK * 10 ** (level_dbm0 / 20)


def _line(x: np.ndarray) -> np.ndarray:
    """Saturate to int16 and pass through G.711 µ-law, as a real line delivers."""
    return ulaw_decode(ulaw_encode(np.clip(np.round(x), -32768, 32767).astype(np.int16)))


#: Share of the 64 keys (16 keys x 4 noise seeds) heard per twist; measured 53, 28
#: and 42 of 64 (with the 85 % share alone: a handful).  The high tone 6 dB down sits
#: in white noise at its own SNR of about 3 dB over the whole band: the hardest case.
NOISE_6DB_FLOOR = {0.0: 0.75, -6.0: 0.35, 3.0: 0.55}


@pytest.mark.parametrize("twist", sorted(NOISE_6DB_FLOOR))
def test_keys_in_white_noise_at_6_db_snr_are_heard(twist: float) -> None:
    # SNR over the keys' samples: both tones' power over the noise power, 6 dB.
    detected = 0
    for seed in range(4):
        keys = generate_digits(DIGITS, on_ms=70, off_ms=100, level_dbm0=-13.0 - twist / 2,
                               twist_db=twist).astype(float)
        p_keys = float(np.mean(keys[keys != 0] ** 2))
        noise = np.random.default_rng(seed).normal(0, np.sqrt(p_keys / 10**0.6), keys.size)
        matched, false = score(DIGITS, detect_digits(_line(keys + noise)))
        assert false <= 1
        detected += matched
    assert detected >= NOISE_6DB_FLOOR[twist] * 4 * len(DIGITS), detected


def test_the_same_keys_need_the_noisy_path_the_85_percent_share_alone_misses_most() -> None:
    keys = generate_digits(DIGITS, on_ms=70, off_ms=100, level_dbm0=-13.0).astype(float)
    p_keys = float(np.mean(keys[keys != 0] ** 2))
    noise = np.random.default_rng(0).normal(0, np.sqrt(p_keys / 10**0.6), keys.size)
    x = _line(keys + noise)
    heard = detect_digits(x)
    saved = dtmf.NOISY_MIN_ENERGY_SHARE
    try:
        dtmf.NOISY_MIN_ENERGY_SHARE = 2.0  # no noisy hit can pass: the clean rule alone
        clean_only = detect_digits(x)
    finally:
        dtmf.NOISY_MIN_ENERGY_SHARE = saved
    assert len(heard) >= 12 and len(clean_only) <= 6, (heard, clean_only)


@pytest.mark.parametrize("third", [400.0, 2000.0, 3000.0])
@pytest.mark.parametrize("snr_db", [30.0, 20.0, 15.0])
def test_dtmf_pair_with_a_third_tone_2_db_under_each_is_rejected_in_noise_too(
    third: float, snr_db: float
) -> None:
    # In quiet the 85 % share rejects it (tests/test_dtmf_talkoff.py); noise pulls the
    # share under 85 % and the noisy path must reject it by its residual peak.
    t = np.arange(int(0.3 * RATE)) / RATE
    for seed, (low, high, digit) in enumerate([(697, 1209, "1"), (852, 1477, "9"),
                                               (941, 1633, "D"), (770, 1336, "5")]):
        rng = np.random.default_rng(seed)
        pair = _amp(-12) * (np.sin(2 * np.pi * low * t + rng.uniform(0, 6))
                            + np.sin(2 * np.pi * high * t + rng.uniform(0, 6)))
        chord = pair + _amp(-14) * np.sin(2 * np.pi * third * t + rng.uniform(0, 6))
        noise = rng.normal(0, _amp(-12) / 10 ** (snr_db / 20), t.size)
        assert detect_digits(_line(pair + noise)) == digit  # the pair alone is a key
        assert detect_digits(_line(chord + noise)) == "", (low, high, third)


def test_vowel_whose_4th_and_7th_harmonics_sit_on_941_and_1633_hz_is_no_d() -> None:
    # f0 = 234.5 Hz: 938 and 1641.5 Hz are inside D's windows; its 11th harmonic (2580
    # Hz) at -4 dB keeps the share near 80 % and under the residual-peak limit, so only
    # the harmonic-comb test tells the vowel from a key.
    t = np.arange(int(0.4 * RATE)) / RATE
    f0 = 234.5
    pair = _amp(-12) * (np.sin(2 * np.pi * 4 * f0 * t) + np.sin(2 * np.pi * 7 * f0 * t + 1.0))
    vowel = pair + _amp(-16) * np.sin(2 * np.pi * 11 * f0 * t + 0.5)
    assert detect_digits(_line(pair)) == "D"
    assert detect_digits(_line(vowel)) == ""
    saved = dtmf.MAX_COMB_DB
    try:
        dtmf.MAX_COMB_DB = 100.0  # without the comb test it would be a D
        assert detect_digits(_line(vowel)) == "D"
    finally:
        dtmf.MAX_COMB_DB = saved


def test_a_noisy_hit_alone_mutes_nothing_a_confirmed_noisy_key_does() -> None:
    # active() drives the media plane's muting: a lone noisy hit (speech can make
    # one) must not cut the caller's audio; a confirmed key still does.
    keys = generate_digits("5", on_ms=200, off_ms=0, level_dbm0=-13.0).astype(float)
    p_keys = float(np.mean(keys**2))
    noise = np.random.default_rng(3).normal(0, np.sqrt(p_keys / 10**0.6), keys.size)
    det = dtmf.DtmfDetector(1)
    x = _line(keys + noise)  # seed 3: one noisy hit before the confirming pair
    events = []
    lone_noisy_blocks = 0
    for s in range(0, x.size - dtmf.BLOCK + 1, dtmf.BLOCK):
        events += det.process(x[None, s : s + dtmf.BLOCK])
        if det._last[0] != -1 and det._cur[0] == -1 and not det._last_flags[0] & dtmf._CLEAN:
            lone_noisy_blocks += 1
            assert not det.active()[0]
    assert lone_noisy_blocks >= 1
    assert [d for _, d, _ in events] == ["5"]
    assert det.active()[0]
