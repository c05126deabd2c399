"""Call ids: ULIDs that sort in the order calls were created.

A ULID is 48 bits of millisecond timestamp then 80 random bits, so ids from
different milliseconds sort by time. Within one millisecond (hundreds of calls per
second make that common) random bits would sort arbitrarily; python-ulid's
``ULIDGenerator`` with its ``StrictMonotonicPolicy`` (the ULID spec's monotonic
mode) then increments the previous id's random part instead. One generator per
:class:`CallIds`, so each switch core has its own sequence and no shared state.

The one thing the library does not do: a clock that steps *backwards* (NTP, a
virtual clock in tests) would give a new millisecond that sorts before the last
id. :class:`CallIds` keeps the millisecond from going back, so the library's
same-millisecond increment applies and ``sorted(ids) == ids`` always holds.
"""

from __future__ import annotations

from ulid import ULID, StrictMonotonicPolicy, ULIDGenerator

__all__ = ["CallIds", "ulid_time"]


class CallIds:
    """A callable ``now -> id``: unique, time-ordered call ids (26-char Crockford base32).

    ``now`` is epoch seconds (the core's clock, real or virtual). Ids are strictly
    increasing in creation order, also within one millisecond and when ``now``
    goes backwards (then they carry the latest millisecond seen). Raises
    ValueError, from python-ulid, only if 2**80 ids are asked for within one
    millisecond.
    """

    def __init__(self) -> None:
        self._generator = ULIDGenerator(policy=StrictMonotonicPolicy())
        self._last_ms = 0

    def __call__(self, now: float) -> str:
        # An int is read as milliseconds by python-ulid (a float as seconds); pass
        # milliseconds so the clamp below and the library agree on the unit.
        ms = max(int(now * 1000), self._last_ms)
        self._last_ms = ms
        return str(self._generator.generate(ms))


def ulid_time(text: str) -> float | None:
    """The epoch time (s, millisecond precision) encoded in a ULID such as a call id or
    a voicemail message id, or None when ``text`` is not a ULID (a file renamed by hand)."""
    try:
        return float(ULID.from_str(text).timestamp)
    except ValueError:
        return None
