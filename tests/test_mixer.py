"""The media mixer: who hears whom, read from the mixed samples themselves.

Each channel says something recognisable (a distinct constant that is a power of
two, so any sum names its parts, or a distinct sine), and every test asserts the
exact samples each listener gets. A property test checks the sparse mixer against
a dense matrix reference built here, independently of the module.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.lines.mixer import (
    Mixer,
    barge,
    conference,
    held,
    listen,
    two_party,
    whisper,
)

N = 160


def constants(*values: int, n: int = N) -> np.ndarray:
    """One row per channel, each a constant: row i says values[i] on every sample."""
    return np.repeat(np.asarray(values, dtype=np.int16)[:, None], n, axis=1)


def sines(channels: int, amp: float = 6000.0, n: int = N) -> np.ndarray:
    """One distinct sine per channel (different frequency and phase)."""
    k = np.arange(n)
    rows = [amp * np.sin(2 * np.pi * (300 + 170 * c) * k / 8000 + c) for c in range(channels)]
    return np.rint(np.array(rows)).astype(np.int16)


def mixed_once(channels: int, weights: list, inbound: np.ndarray) -> np.ndarray:
    m = Mixer(channels)
    m.set_bridge("call", weights)
    return m.mix(inbound)


def as_int(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64)


# --- bridge modes --------------------------------------------------------------------------


def test_two_party_each_hears_exactly_the_other_and_a_bystander_hears_silence():
    inbound = sines(3)
    out = mixed_once(3, two_party(0, 1), inbound)
    assert out.dtype == np.int16 and out.shape == (3, N)
    np.testing.assert_array_equal(out[0], inbound[1])
    np.testing.assert_array_equal(out[1], inbound[0])
    np.testing.assert_array_equal(out[2], 0)


@pytest.mark.parametrize("size", [3, 5])
def test_conference_member_hears_the_sum_of_the_others_never_itself(size):
    values = [1 << (c + 4) for c in range(size)]  # 16, 32, 64, ...: each sum is unique
    inbound = constants(*values, 7)  # one extra channel outside the conference
    out = mixed_once(size + 1, conference(range(size)), inbound)
    total = sum(values)
    for member in range(size):
        np.testing.assert_array_equal(out[member], total - values[member])
    np.testing.assert_array_equal(out[size], 0)


def test_conference_with_sines_matches_the_sum_of_the_other_members():
    inbound = sines(5)
    out = mixed_once(5, conference([0, 1, 2, 3, 4]), inbound)
    for member in range(5):
        others = [c for c in range(5) if c != member]
        np.testing.assert_array_equal(as_int(out[member]), as_int(inbound[others]).sum(axis=0))


AGENT, CALLER, SUPERVISOR, BYSTANDER = 0, 1, 2, 3
SAYS = constants(16, 32, 64, 128)  # agent, caller, supervisor, bystander


def test_listen_supervisor_hears_both_and_nobody_hears_the_supervisor():
    out = mixed_once(4, listen(AGENT, CALLER, SUPERVISOR), SAYS)
    np.testing.assert_array_equal(out[SUPERVISOR], 16 + 32)
    np.testing.assert_array_equal(out[CALLER], 16)  # agent only: no 64 in it
    np.testing.assert_array_equal(out[AGENT], 32)  # caller only: no 64 in it
    np.testing.assert_array_equal(out[BYSTANDER], 0)


def test_whisper_agent_hears_the_supervisor_and_the_caller_does_not():
    out = mixed_once(4, whisper(AGENT, CALLER, SUPERVISOR), SAYS)
    np.testing.assert_array_equal(out[AGENT], 32 + 64)
    np.testing.assert_array_equal(out[CALLER], 16)
    np.testing.assert_array_equal(out[SUPERVISOR], 16 + 32)
    np.testing.assert_array_equal(out[BYSTANDER], 0)


def test_whisper_keeps_the_supervisor_out_of_the_caller_with_real_audio():
    inbound = sines(3)
    out = mixed_once(3, whisper(AGENT, CALLER, SUPERVISOR), inbound)
    np.testing.assert_array_equal(out[CALLER], inbound[AGENT])
    np.testing.assert_array_equal(as_int(out[AGENT]), as_int(inbound[CALLER]) + inbound[SUPERVISOR])


def test_barge_everyone_hears_the_other_two():
    out = mixed_once(4, barge(AGENT, CALLER, SUPERVISOR), SAYS)
    np.testing.assert_array_equal(out[AGENT], 32 + 64)
    np.testing.assert_array_equal(out[CALLER], 16 + 64)
    np.testing.assert_array_equal(out[SUPERVISOR], 16 + 32)
    np.testing.assert_array_equal(out[BYSTANDER], 0)


def test_held_party_hears_only_music_on_hold_and_holder_hears_silence():
    holder, held_party = 0, 1
    inbound = sines(2)
    moh = sines(1, amp=3000.0)
    m = Mixer(2)
    m.set_bridge("call", held(holder, held_party))
    out = m.mix(inbound, extra=moh, extra_rows=np.array([held_party]))
    np.testing.assert_array_equal(out[held_party], moh[0])
    np.testing.assert_array_equal(out[holder], 0)
    assert m.bridge_weights("call") == ()


# --- levels --------------------------------------------------------------------------------


def test_two_loud_talkers_saturate_instead_of_wrapping_around():
    out = mixed_once(3, conference([0, 1, 2]), constants(30000, 30000, -30000))
    np.testing.assert_array_equal(out[2], 32767)  # 60000 would wrap to -5536 in int16
    np.testing.assert_array_equal(out[0], 0)  # 30000 - 30000
    out = mixed_once(3, conference([0, 1, 2]), constants(-30000, -30000, 5))
    np.testing.assert_array_equal(out[2], -32768)


def test_saturated_sine_keeps_its_sign_on_every_sample():
    loud = np.repeat(sines(1, amp=30000.0), 2, axis=0)
    inbound = np.vstack([np.zeros((1, N), np.int16), loud])
    out = mixed_once(3, conference([0, 1, 2]), inbound)
    exact = 2 * as_int(loud[0])
    np.testing.assert_array_equal(out[0], np.clip(exact, -32768, 32767))
    assert (np.sign(out[0]) == np.sign(exact)).all()


def test_half_gain_halves_the_talker_and_two_half_gains_average():
    inbound = constants(0, 20000, -6000)
    m = Mixer(3)
    m.set_bridge("a", [(0, 1, 0.5)])
    np.testing.assert_array_equal(m.mix(inbound)[0], 10000)
    m2 = Mixer(3)
    m2.set_bridge("avg", [(0, 1, 0.5), (0, 2, 0.5)])
    np.testing.assert_array_equal(m2.mix(inbound)[0], 7000)


def test_gain_that_overflows_a_single_talker_is_clipped():
    out = mixed_once(2, [(0, 1, 2.0)], constants(0, -20000))
    np.testing.assert_array_equal(out[0], -32768)


def test_extra_sources_on_one_row_add_up_and_saturate():
    m = Mixer(2)
    m.set_bridge("call", two_party(0, 1))
    extra = constants(1000, 2000, 30000)
    out = m.mix(constants(100, 200), extra=extra, extra_rows=np.array([0, 0, 1]))
    np.testing.assert_array_equal(out[0], 200 + 1000 + 2000)
    np.testing.assert_array_equal(out[1], 100 + 30000)
    out = m.mix(constants(10000, 200), extra=extra[2:], extra_rows=np.array([1]))
    np.testing.assert_array_equal(out[1], 32767)  # 10000 heard + 30000 tone


# --- several bridges -------------------------------------------------------------------------


def test_bridges_coexist_and_removing_one_silences_only_its_listeners():
    inbound = sines(7)
    m = Mixer(7)
    m.set_bridge("call-1", two_party(0, 1))
    m.set_bridge("conf", conference([2, 3, 4]))
    m.set_bridge("call-2", two_party(5, 6))
    steady = m.mix(inbound)
    np.testing.assert_array_equal(steady[0], inbound[1])
    np.testing.assert_array_equal(steady[6], inbound[5])
    np.testing.assert_array_equal(as_int(steady[3]), as_int(inbound[2]) + inbound[4])

    m.remove_bridge("call-1")
    fading = m.mix(inbound)
    # Only the removed bridge's rows fade; the others are bit-identical in that frame.
    np.testing.assert_array_equal(fading[2:], steady[2:])
    assert not np.array_equal(fading[0], steady[0])
    after = m.mix(inbound)
    np.testing.assert_array_equal(after[:2], 0)
    np.testing.assert_array_equal(after[2:], steady[2:])
    assert m.bridge_weights("call-1") == ()


def test_weights_of_bridges_on_the_same_pair_add_up():
    m = Mixer(2)
    m.set_bridge("x", [(0, 1, 1.0)])
    m.set_bridge("y", [(0, 1, 0.5)])
    np.testing.assert_array_equal(m.mix(constants(0, 1000))[0], 1500)


def test_set_bridge_replaces_that_bridges_weights_and_reports_them():
    m = Mixer(4)
    m.set_bridge("call", two_party(0, 1))
    m.set_bridge("call", listen(0, 1, 2))
    assert m.bridge_weights("call") == (
        (0, 1, 1.0), (1, 0, 1.0), (2, 0, 1.0), (2, 1, 1.0),
    )
    out = m.mix(SAYS)
    np.testing.assert_array_equal(out[2], 16 + 32)
    np.testing.assert_array_equal(out[0], 32)


def test_removing_an_unknown_bridge_is_harmless():
    m = Mixer(2)
    m.set_bridge("call", two_party(0, 1))
    m.remove_bridge("never-existed")
    np.testing.assert_array_equal(m.mix(constants(5, 6)), constants(6, 5))


# --- click-free changes ----------------------------------------------------------------------


def test_hold_crossfades_over_exactly_one_frame_without_a_step():
    a, b, c = 0, 1, 2
    inbound = constants(1000, -3000, 77)
    m = Mixer(3)
    m.set_bridge("call", two_party(a, b))
    m.mix(inbound)
    before = m.mix(inbound)
    m.set_bridge("call", held(a, b))
    changed = m.mix(inbound)
    after = m.mix(inbound)

    np.testing.assert_array_equal(before[a], -3000)  # previous frame: pure old
    np.testing.assert_array_equal(before[b], 1000)
    np.testing.assert_array_equal(after[[a, b]], 0)  # next frame: pure new
    np.testing.assert_array_equal(np.concatenate([before[c], changed[c], after[c]]), 0)

    for row, old, new in ((a, -3000, 0), (b, 1000, 0)):
        ramp = as_int(changed[row])
        steps = np.diff(ramp)
        assert (steps >= 0).all() if new > old else (steps <= 0).all()  # monotonic
        assert ramp[0] != old and ramp[-1] != new  # really between the two, at both ends
        assert min(old, new) <= ramp.min() and ramp.max() <= max(old, new)
        joined = np.concatenate([as_int(before[row]), ramp, as_int(after[row])])
        assert np.abs(np.diff(joined)).max() <= abs(old - new) / N + 1


def test_retrieve_from_hold_fades_the_voice_back_in():
    m = Mixer(2)
    m.set_bridge("call", held(0, 1))
    m.mix(constants(8000, 4000))
    m.set_bridge("call", two_party(0, 1))
    changed = as_int(m.mix(constants(8000, 4000))[0])
    assert (np.diff(changed) >= 0).all() and 0 < changed[0] < changed[-1] < 4000
    np.testing.assert_array_equal(m.mix(constants(8000, 4000))[0], 4000)


def test_crossfade_blends_audio_old_weights_out_and_new_weights_in():
    inbound = sines(3)
    m = Mixer(3)
    m.set_bridge("call", [(0, 1, 1.0)])
    m.mix(inbound)
    m.set_bridge("call", [(0, 2, 1.0)])
    out = m.mix(inbound)[0]
    r = np.arange(1, N + 1) / (N + 1)
    expected = inbound[1] * (1 - r) + inbound[2] * r
    assert np.abs(out - expected).max() <= 1


def test_extra_sources_are_not_faded_in_a_crossfade_frame():
    m = Mixer(2)
    m.set_bridge("call", two_party(0, 1))
    m.mix(constants(0, 0))
    m.set_bridge("call", held(0, 1))
    out = m.mix(constants(0, 0), extra=constants(1234), extra_rows=np.array([1]))
    np.testing.assert_array_equal(out[1], 1234)


def test_no_crossfade_when_the_same_weights_are_set_again():
    inbound = sines(3)
    m = Mixer(3)
    m.set_bridge("call", two_party(0, 1))
    m.mix(inbound)
    m.set_bridge("call", two_party(0, 1))
    out = m.mix(inbound)
    np.testing.assert_array_equal(out[0], inbound[1])
    np.testing.assert_array_equal(out[1], inbound[0])


def test_no_crossfade_when_the_effective_weights_are_unchanged():
    inbound = sines(3)
    m = Mixer(3)
    m.set_bridge("call", two_party(0, 1))
    m.mix(inbound)
    m.remove_bridge("call")
    m.set_bridge("a", [(0, 1, 0.5)])
    m.set_bridge("b", [(0, 1, 0.5), (1, 0, 1.0)])
    np.testing.assert_array_equal(m.mix(inbound)[:2], inbound[[1, 0]])


def test_first_mix_is_not_faded():
    inbound = sines(2)
    np.testing.assert_array_equal(mixed_once(2, two_party(0, 1), inbound), inbound[[1, 0]])


# --- resize and errors -----------------------------------------------------------------------


def test_resize_grows_with_new_channels_silent_and_old_calls_unchanged():
    m = Mixer(2)
    m.set_bridge("call", two_party(0, 1))
    m.mix(constants(1, 2))
    m.resize(4)
    assert m.channels == 4
    out = m.mix(constants(1, 2, 3, 4))
    np.testing.assert_array_equal(out, constants(2, 1, 0, 0))
    m.set_bridge("new", two_party(2, 3))
    m.mix(constants(1, 2, 3, 4))
    np.testing.assert_array_equal(m.mix(constants(1, 2, 3, 4)), constants(2, 1, 4, 3))


def test_resize_refuses_to_drop_a_channel_a_bridge_still_uses():
    m = Mixer(4)
    m.set_bridge("call", two_party(0, 3))
    with pytest.raises(ValueError, match="'call'"):
        m.resize(3)
    assert m.channels == 4


def test_resize_shrinks_after_the_bridge_is_gone_even_mid_fade():
    m = Mixer(4)
    m.set_bridge("call", two_party(0, 3))
    m.set_bridge("keep", two_party(1, 2))
    m.mix(constants(1, 2, 3, 4))
    m.remove_bridge("call")
    m.resize(3)
    out = m.mix(constants(1, 2, 3))
    np.testing.assert_array_equal(out[1:], constants(3, 2))


def test_set_bridge_rejects_a_channel_outside_the_board_and_keeps_old_weights():
    m = Mixer(3)
    m.set_bridge("call", two_party(0, 1))
    with pytest.raises(ValueError, match="talker channel 3"):
        m.set_bridge("call", [(0, 1, 1.0), (0, 3, 1.0)])
    with pytest.raises(ValueError, match="listener channel -1"):
        m.set_bridge("call", [(-1, 0, 1.0)])
    with pytest.raises(ValueError, match="not finite"):
        m.set_bridge("call", [(0, 1, float("nan"))])
    assert m.bridge_weights("call") == tuple(two_party(0, 1))


def test_mix_rejects_wrong_shapes_and_non_int16_audio():
    m = Mixer(2)
    with pytest.raises(ValueError, match=r"shape \(2, n\)"):
        m.mix(np.zeros((3, N), np.int16))
    with pytest.raises(TypeError, match="int16"):
        m.mix(np.zeros((2, N), np.float32))
    with pytest.raises(ValueError, match="together"):
        m.mix(np.zeros((2, N), np.int16), extra=np.zeros((1, N), np.int16))
    with pytest.raises(ValueError, match="extra_rows must lie"):
        m.mix(np.zeros((2, N), np.int16), np.zeros((1, N), np.int16), np.array([2]))
    with pytest.raises(ValueError, match=r"shape \(K, 160\)"):
        m.mix(np.zeros((2, N), np.int16), np.zeros((1, 80), np.int16), np.array([0]))
    with pytest.raises(TypeError, match="extra must be int16"):
        m.mix(np.zeros((2, N), np.int16), np.zeros((1, N), np.float64), np.array([0]))


@pytest.mark.parametrize(
    "build",
    [
        lambda: two_party(1, 1),
        lambda: conference([1, 2, 1]),
        lambda: listen(1, 2, 1),
        lambda: whisper(1, 1, 2),
        lambda: barge(2, 1, 2),
        lambda: held(3, 3),
    ],
)
def test_mode_helpers_refuse_a_party_twice(build):
    with pytest.raises(ValueError, match="distinct"):
        build()


def test_conference_of_one_is_silent():
    assert conference([4]) == []


# --- property: sparse mixer == dense reference ------------------------------------------------

# Dyadic gains keep every product and sum exact in float32 and float64 alike, so the
# sparse mixer and the dense reference must agree to the last bit.
GAINS = st.sampled_from([-1.0, -0.5, 0.25, 0.5, 1.0, 1.5, 2.0])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, dict[str, list], np.ndarray, list[int]]:
    channels = draw(st.integers(1, 12))
    chan = st.integers(0, channels - 1)
    bridges = draw(
        st.dictionaries(
            st.sampled_from(["b0", "b1", "b2", "b3", "b4"]),
            st.lists(st.tuples(chan, chan, GAINS), max_size=20),
            max_size=5,
        )
    )
    n = draw(st.sampled_from([1, 7, N]))
    seed = draw(st.integers(0, 2**32 - 1))
    rows = draw(st.lists(chan, max_size=4))
    return channels, bridges, np.random.default_rng(seed).integers(-32768, 32768, (channels, n)), rows


def dense_reference(channels: int, bridges: dict[str, list], inbound: np.ndarray,
                    extra: np.ndarray, rows: list[int]) -> np.ndarray:
    matrix = np.zeros((channels, channels))
    for weights in bridges.values():
        for listener, talker, gain in weights:
            matrix[listener, talker] += gain
    out = matrix @ inbound.astype(np.float64)
    for i, row in enumerate(rows):
        out[row] += extra[i]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_sparse_mix_equals_dense_matrix_reference(scenario):
    channels, bridges, raw, rows = scenario
    inbound = raw.astype(np.int16)
    extra = (raw[np.arange(len(rows)) % channels] // 3).astype(np.int16)  # [K, n], K may be 0
    m = Mixer(channels)
    for key, weights in bridges.items():
        m.set_bridge(key, weights)
    out = m.mix(inbound, extra, np.array(rows, dtype=np.int64))
    np.testing.assert_array_equal(out, dense_reference(channels, bridges, inbound, extra, rows))


@settings(max_examples=100, deadline=None)
@given(scenarios(), scenarios())
def test_after_any_change_the_fade_frame_is_bounded_and_the_next_is_exact(first, second):
    channels, old_bridges, raw, _ = first
    _, new_bridges, _, _ = second
    new_bridges = {key: [(lis % channels, tlk % channels, g) for lis, tlk, g in weights]
                   for key, weights in new_bridges.items()}
    inbound = raw.astype(np.int16)
    none = np.zeros((0, raw.shape[1]), np.int16)
    m = Mixer(channels)
    for key, weights in old_bridges.items():
        m.set_bridge(key, weights)
    m.mix(inbound)
    for key in old_bridges:
        m.remove_bridge(key)
    for key, weights in new_bridges.items():
        m.set_bridge(key, weights)
    fade = as_int(m.mix(inbound))
    old = as_int(dense_reference(channels, old_bridges, inbound, none, []))
    new = as_int(dense_reference(channels, new_bridges, inbound, none, []))
    r = np.arange(1, raw.shape[1] + 1) / (raw.shape[1] + 1)
    assert np.abs(fade - (old + (new - old) * r)).max() <= 1
    np.testing.assert_array_equal(m.mix(inbound), new)
