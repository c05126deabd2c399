"""``switchd sim``: the production shell, core and ACD in virtual time reproduce Erlang B,
C and A within their statistical error, every arrival is accounted for, and the CLI
prints what the issue lists.

Tolerances. Each run starts empty and uses its own seed, so R runs give R independent
estimates of a figure; the spread of those estimates gives the standard error of
their mean (the method of independent replications, Law & Kelton, *Simulation
Modeling and Analysis*, ch. 9). It captures the strong correlation between callers
of one busy period, which a binomial error per caller would miss. A check allows 4
standard errors (a correct engine fails with probability about 0.3 % for t with R − 1
degrees of freedom; the seeds are fixed, so a run that passes always passes), and
each check also asserts that its tolerance is tight: below a stated share of the
figure, so a biased engine cannot hide behind a loose bound.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
from collections.abc import Callable

import pytest

from switchd.__main__ import main
from switchd.acd.erlang import erlang_a, erlang_b, erlang_c, service_level_c
from switchd.acd.model import Strategy
from switchd.events import CallAnswered
from switchd.simulate import (
    JSON_KEYS,
    Population,
    SimError,
    SimOptions,
    SimResult,
    Talk,
    simulate,
)

#: Simulated hours per replication, and replications per check (about 6000 calls each).
HOURS = 50.0


def _replicate(options: SimOptions, runs: int) -> list[SimResult]:
    results = []
    for seed in range(1, runs + 1):
        r = simulate(_with(options, seed=seed))
        # Every arrival is accounted for, once.
        assert r.offered == r.blocked + r.answered + r.abandoned, r
        results.append(r)
    return results


def _with(o: SimOptions, **changes: object) -> SimOptions:
    from dataclasses import replace

    return replace(o, **changes)


def _check(results: list[SimResult], figure: Callable[[SimResult], float], expected: float,
           *, tight: float) -> None:
    """Mean of ``figure`` over the runs within 4 standard errors of ``expected``, and
    that bound below ``tight`` × ``expected``."""
    values = [figure(r) for r in results]
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values))
    tolerance = 4 * se
    assert tolerance < tight * expected, (
        f"the check is too loose to mean anything: ±{tolerance:.4g} around {expected:.4g}")
    assert abs(mean - expected) <= tolerance, (
        f"simulated {mean:.5g} ± {se:.2g} (1 s.e., {len(values)} runs), theory {expected:.5g}")


def test_erlang_b_blocking_of_8_trunks_offered_5_erlangs():
    # 10 agents for 8 trunks: an agent is always free, so the trunks alone block.
    results = _replicate(SimOptions(agents=10, erlangs=5, trunks=8, hours=HOURS), runs=10)
    _check(results, lambda r: r.p_block, erlang_b(8, 5), tight=0.15)
    for r in results:
        assert r.blocked > 0 and r.abandoned == 0
        # An agent answers the instant it is rung: nobody waits at all.
        assert r.p_wait == 0.0 and r.service_level == 1.0 and r.asa_s == 0.0
        assert r.theory is not None and r.theory.model.startswith("Erlang B")


def test_erlang_c_wait_probability_and_service_level_of_8_agents_at_6_erlangs():
    results = _replicate(SimOptions(agents=8, erlangs=6, hours=HOURS), runs=16)
    _check(results, lambda r: r.p_wait, erlang_c(8, 6), tight=0.12)
    _check(results, lambda r: r.service_level, service_level_c(8, 6, 180, 20), tight=0.06)
    for r in results:
        assert r.blocked == 0 and r.abandoned == 0 and r.answered == r.offered
        # Infinite patience: the mean wait of all callers is the ASA.
        assert r.mean_wait_s == pytest.approx(r.asa_s)


def test_erlang_a_abandon_share_of_8_agents_at_6_erlangs_with_120_s_patience():
    results = _replicate(SimOptions(agents=8, erlangs=6, patience_s=120, hours=HOURS), runs=10)
    theory = erlang_a(8, 6, 180, 120)
    _check(results, lambda r: r.p_abandon, theory.p_abandon, tight=0.12)
    _check(results, lambda r: r.p_wait, theory.p_wait, tight=0.08)
    _check(results, lambda r: r.mean_wait_s, theory.mean_wait_s, tight=0.12)
    for r in results:
        assert r.abandoned > 0 and r.blocked == 0


def test_wrap_up_keeps_agents_busy_and_counts_in_occupancy():
    # Occupancy = (talk + wrap-up) / agent time; with 60 s wrap-up after 180 s talk the
    # agents carry 4 × 240/180 Erlangs.
    results = _replicate(SimOptions(agents=8, erlangs=4, wrapup_s=60, hours=HOURS), runs=8)
    _check(results, lambda r: r.occupancy, 4 * 240 / 180 / 8, tight=0.06)


def test_overload_with_unlimited_trunks_grows_the_board_and_blocks_nobody():
    # 3 Erlangs on one agent: the queue grows far past the 64 trunks the core starts
    # with; every caller is still let in, waits its turn and is answered at the end.
    r = simulate(SimOptions(agents=1, erlangs=3, aht_s=60, hours=1.0, seed=7))
    assert r.peak_calls > 64
    assert r.blocked == 0 and r.answered == r.offered
    assert r.theory is None  # no steady state to compare with
    assert r.sim_hours > 1.5  # the queue was worked off after arrivals stopped


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_serves_every_caller(strategy):
    r = simulate(SimOptions(agents=4, erlangs=3, aht_s=60, patience_s=90, hours=2,
                            strategy=strategy, seed=11))
    assert r.offered > 300
    assert r.offered == r.answered + r.abandoned
    assert 0 < r.p_abandon < 0.3 and 0 < r.occupancy < 1


def _talk_times(talk: Talk, n: int) -> list[float]:
    """Talk times the population draws, read from its hang-up deadlines."""
    people = Population(start=0.0, rate_per_s=1.0, aht_s=180.0, until=0.0,
                        rng=random.Random(5), talk=talk)
    for i in range(n):
        assert people.handle(0.0, CallAnswered(f"c{i}", 0.0, f"ext/{i}")) == []
    times = []
    while (d := people.next_deadline()) is not None:
        times.extend(d for _ in people.handle_timer(d))
    assert len(times) == n
    return times


@pytest.mark.parametrize("talk, short_share", [(Talk.EXPONENTIAL, 1 - math.exp(-0.1)),
                                               (Talk.LOGNORMAL, 0.0094)])
def test_talk_times_have_the_mean_aht_and_their_distribution(talk, short_share):
    n = 20_000
    times = _talk_times(talk, n)
    # Both have standard deviation = mean (cv 1): s.e. of the mean 180/sqrt(n).
    assert abs(statistics.fmean(times) - 180) < 4 * 180 / math.sqrt(n)
    # They differ in the share of very short calls (< 18 s): 9.5 % vs 0.94 %.
    share = sum(t < 18 for t in times) / n
    assert abs(share - short_share) < 4 * math.sqrt(short_share * (1 - short_share) / n)


def test_arrivals_stop_at_the_end_of_the_period():
    people = Population(start=0.0, rate_per_s=0.5, aht_s=180.0, until=3600.0,
                        rng=random.Random(2))
    count = 0
    while (d := people.next_deadline()) is not None:
        assert d < 3600.0
        count += len(people.handle_timer(d))
    assert people.arrivals_done and people.offered == count
    # Poisson with mean 1800: within 4 standard deviations.
    assert abs(count - 1800) < 4 * math.sqrt(1800)


@pytest.mark.parametrize("changes, option", [
    ({"agents": 0}, "--agents"), ({"trunks": 0}, "--trunks"), ({"erlangs": -1}, "--erlangs"),
    ({"aht_s": 0}, "--aht"), ({"patience_s": 0}, "--patience"), ({"wrapup_s": -1}, "--wrapup"),
    ({"hours": math.inf}, "--hours"), ({"target_s": math.nan}, "--target"),
])
def test_bad_options_are_named(changes, option):
    with pytest.raises(SimError, match=option):
        simulate(_with(SimOptions(agents=2, erlangs=1), **changes))


def test_cli_json_has_every_listed_key_and_accounts_for_every_call():
    proc = subprocess.run(
        [sys.executable, "-m", "switchd", "sim", "--agents", "3", "--erlangs", "2", "--aht",
         "60", "--patience", "30", "--trunks", "5", "--hours", "2", "--seed", "4", "--json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(JSON_KEYS) <= set(result)
    assert result["offered"] == result["blocked"] + result["answered"] + result["abandoned"]
    assert result["blocked"] > 0 and result["abandoned"] > 0
    assert result["p_block"] == pytest.approx(result["blocked"] / result["offered"])
    assert result["erlang"]["model"] == "M/M/3/5+M"
    assert result["sim_hours"] >= 2 and result["wall_s"] > 0
    assert result["seed"] == 4


def test_cli_table_compares_with_erlang_c(capsys):
    assert main(["sim", "--agents", "8", "--erlangs", "6", "--hours", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "Erlang C" in out and "35.70 %" in out  # P(wait > 0) of Erlang C
    assert "service level" in out and "occupancy" in out


def test_cli_calls_per_hour_is_erlangs_times_aht(capsys):
    assert main(["sim", "--agents", "2", "--calls-per-hour", "60", "--aht", "30", "--hours",
                 "1", "--seed", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["options"]["erlangs"] == pytest.approx(0.5)


@pytest.mark.parametrize("argv, named", [
    (["--agents", "0", "--erlangs", "1"], "--agents"),
    (["--agents", "2", "--erlangs", "1", "--patience", "-5"], "--patience"),
    (["--agents", "2", "--erlangs", "1", "--strategy", "fastest"], "--strategy"),
    (["--agents", "2", "--erlangs", "1", "--talk", "uniform"], "--talk"),
    (["--agents", "2", "--calls-per-hour", "0"], "--calls-per-hour"),
    (["--agents", "2", "--erlangs", "1", "--calls-per-hour", "5"], "--calls-per-hour"),
    (["--agents", "2"], "--erlangs"),
    (["--erlangs", "2"], "--agents"),
    (["--agents", "2", "--erlangs", "x"], "--erlangs"),
])
def test_cli_bad_options_exit_2_naming_the_option(capsys, argv, named):
    try:
        code = main(["sim", *argv])
    except SystemExit as exc:   # argparse's own refusals
        code = exc.code
    assert code == 2
    assert named in capsys.readouterr().err


def test_cli_help_names_every_strategy(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for s in Strategy:
        assert s.value in out
