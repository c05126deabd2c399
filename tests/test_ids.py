"""Call ids are unique and sort in creation order, even within one millisecond."""

from __future__ import annotations

from ulid import ULID

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
