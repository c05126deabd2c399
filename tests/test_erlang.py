"""The Erlang formulas reproduce every figure of REFERENCE.md, to the printed precision,
and the general chain agrees with the closed forms at its limits."""

from __future__ import annotations

import math

import pytest

from switchd.acd.erlang import (
    asa_c,
    erlang_a,
    erlang_b,
    erlang_c,
    queue_figures,
    service_level_c,
)


def _printed(value: float, printed: str) -> bool:
    """``value`` rounds to the figure as printed (same number of decimals)."""
    decimals = len(printed.split(".")[1])
    return f"{value:.{decimals}f}" == printed


@pytest.mark.parametrize("a, printed", [(3, "0.0081324394"), (5, "0.0700478522"),
                                        (8, "0.2355702611")])
def test_erlang_b_reproduces_the_reference_for_8_trunks(a, printed):
    assert _printed(erlang_b(8, a), printed)


@pytest.mark.parametrize("n, a, p_wait, sl, asa", [
    (8, 5, "0.16727", "0.88015", "10.036"),
    (8, 6, "0.35698", "0.71415", "32.128"),
    (8, 7, "0.63532", "0.43149", "114.357"),
    (9, 6, "0.19598", "0.85957", "11.759"),
])
def test_erlang_c_reproduces_the_reference_table(n, a, p_wait, sl, asa):
    assert _printed(erlang_c(n, a), p_wait)
    assert _printed(service_level_c(n, a, 180, 20), sl)
    assert _printed(asa_c(n, a, 180), asa)


@pytest.mark.parametrize("a, patience, p_wait, p_abandon, mean_wait", [
    (6, 120, "0.23828", "0.061534", "7.384"),
    (6, 180, "0.25602", "0.052337", "9.4206"),
    (8, 120, "0.50258", "0.15329", "18.394"),
])
def test_erlang_a_reproduces_the_reference_table(a, patience, p_wait, p_abandon, mean_wait):
    f = erlang_a(8, a, 180, patience)
    assert _printed(f.p_wait, p_wait)
    assert _printed(f.p_abandon, p_abandon)
    assert _printed(f.mean_wait_s, mean_wait)
    assert f.p_block == 0.0


def test_erlang_b_is_stable_for_large_n_and_tiny_load():
    # No factorial is formed: 1000! would overflow a float.
    assert 0.0 <= erlang_b(1000, 1.0) < 1e-300
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_b(1, 1.0) == pytest.approx(0.5)


def test_erlang_c_is_one_and_waits_infinite_when_overloaded():
    assert erlang_c(8, 8) == 1.0
    assert asa_c(8, 9, 180) == math.inf
    assert service_level_c(8, 9, 180, 20) == 0.0
    assert not queue_figures(8, 9, 180).stable


def test_the_chain_with_almost_infinite_patience_is_erlang_c():
    f = queue_figures(8, 6, 180, patience_s=1e12)
    assert f.p_wait == pytest.approx(erlang_c(8, 6), rel=1e-9)
    assert f.asa_s == pytest.approx(asa_c(8, 6, 180), rel=1e-9)
    assert f.service_level == pytest.approx(service_level_c(8, 6, 180, 20), rel=1e-9)
    assert f.p_abandon < 1e-9


def test_the_chain_with_many_trunks_and_no_patience_is_erlang_c():
    # Finite trunks take the general chain (uniformized service level) instead of the
    # closed form; with trunks far above what is ever used they must agree.
    f = queue_figures(8, 6, 180, trunks=10_000)
    assert f.p_block < 1e-12
    assert f.p_wait == pytest.approx(erlang_c(8, 6), rel=1e-9)
    assert f.service_level == pytest.approx(service_level_c(8, 6, 180, 20), rel=1e-9)
    assert f.mean_wait_s == pytest.approx(asa_c(8, 6, 180), rel=1e-9)


def test_trunks_no_more_than_agents_is_erlang_b_and_nobody_waits():
    f = queue_figures(20, 5, 180, trunks=8)
    assert f.p_block == erlang_b(8, 5)
    assert f.p_wait == 0.0 and f.service_level == 1.0


def test_finite_trunks_above_agents_block_what_m_m_n_k_blocks():
    # M/M/1/2 by hand: states 0, 1, 2 with weights 1, a, a² (one agent, one waiting place).
    a = 0.5
    f = queue_figures(1, a, 100, trunks=2)
    z = 1 + a + a * a
    assert f.p_block == pytest.approx(a * a / z)
    # Let in and waiting: arrivals that see state 1, over those let in.
    assert f.p_wait == pytest.approx((a / z) / (1 - a * a / z))
    # The one waiting caller waits exactly one service time (mean 100 s).
    assert f.asa_s == pytest.approx(f.p_wait * 100)
    assert f.service_level == pytest.approx(
        1 - f.p_wait + f.p_wait * (1 - math.exp(-20 / 100)))


def test_abandon_share_from_little_agrees_with_the_tagged_caller():
    # P(abandon) = θ·E[Q]/λ (Little) and 1 − P(answered) (first-step analysis of the
    # tagged caller) are computed independently; they must agree.
    for a, patience in ((6, 120), (8, 120), (12, 60)):
        f = erlang_a(8, a, 180, patience)
        answered_share = 1 - f.p_abandon
        # E[W] = P(answered)·ASA + E[W·1{abandoned}], so ASA·P(answered) <= E[W].
        assert f.asa_s * answered_share <= f.mean_wait_s + 1e-9
        assert 0 < f.p_abandon < f.p_wait < 1


def test_erlang_a_service_level_lies_between_its_bounds():
    f = erlang_a(8, 6, 180, 120)
    assert f.service_level is not None
    # At least every caller who never waited, at most every caller who did not abandon.
    assert 1 - f.p_wait < f.service_level < 1 - f.p_abandon


@pytest.mark.parametrize("call, what", [
    (lambda: erlang_b(-1, 1), "n"),
    (lambda: erlang_b(8, -1), "a (offered Erlangs)"),
    (lambda: erlang_c(0, 1), "n (agents)"),
    (lambda: service_level_c(8, 5, 0, 20), "aht_s"),
    (lambda: erlang_a(8, 5, 180, 0), "patience_s"),
    (lambda: queue_figures(8, 5, 180, trunks=0), "trunks"),
    (lambda: erlang_b(8, math.nan), "a (offered Erlangs)"),
])
def test_bad_arguments_are_named(call, what):
    with pytest.raises(ValueError, match=what.replace("(", r"\(").replace(")", r"\)")):
        call()
