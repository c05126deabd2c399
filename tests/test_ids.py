"""Call ids are unique and sort in creation order, even within one millisecond."""

from __future__ import annotations

import random

from ulid import ULID, StrictMonotonicPolicy, ULIDGenerator

from switchd.core.ids import CallIds


def test_ids_within_one_millisecond_sort_in_creation_order():
    ids = CallIds()
    got = [ids(1_764_000_000.0001) for _ in range(1000)]
    assert sorted(got) == got and len(set(got)) == 1000
    assert all(len(x) == 26 for x in got)
    assert ULID.from_str(got[0]).milliseconds == 1_764_000_000_000


def test_ids_follow_time_and_never_go_backwards_when_the_clock_does():
    ids = CallIds()
    a = ids(1_764_000_000.0)
    b = ids(1_764_000_001.0)
    c = ids(1_763_999_000.0)
    assert a < b < c
    assert ULID.from_str(b).milliseconds == 1_764_000_001_000


def test_ids_stay_sorted_when_the_clock_steps_back_within_and_across_milliseconds():
    ids = CallIds()
    times = [100.0005, 100.0001, 100.0009, 99.5, 100.0004, 100.002, 100.0015, 100.002]
    got = [ids(t) for t in times]
    assert got == sorted(got) and len(set(got)) == len(got)
    # While the clock is behind, ids carry the latest millisecond seen.
    assert [ULID.from_str(x).milliseconds for x in got] == [
        100_000, 100_000, 100_000, 100_000, 100_000, 100_002, 100_002, 100_002
    ]


def test_random_clocks_never_break_the_order():
    rng = random.Random(7)
    ids = CallIds()
    now = 1_764_000_000.0
    got = []
    for _ in range(5000):
        now += rng.choice([0.0, 0.0, 0.0003, 0.002, -0.004, 1.0, -3.0])
        got.append(ids(now))
    assert got == sorted(got) and len(set(got)) == len(got)


def test_each_switch_core_has_its_own_sequence():
    a, b = CallIds(), CallIds()
    first_a = a(1_764_000_000.0)
    b(1_764_000_500.0)  # b running ahead does not drag a's clock forward
    assert ULID.from_str(a(1_764_000_000.0)).milliseconds == 1_764_000_000_000
    assert a(1_764_000_000.0) > first_a


def test_ids_come_from_python_ulids_monotonic_generator():
    ids = CallIds()
    assert isinstance(ids._generator, ULIDGenerator)
    assert isinstance(ids._generator.policy, StrictMonotonicPolicy)
    x, y = ids(5.0), ids(5.0)
    # Same millisecond: the library increments the random part by one.
    assert int(ULID.from_str(y)) == int(ULID.from_str(x)) + 1
