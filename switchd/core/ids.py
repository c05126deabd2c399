"""Call ids: ULIDs that sort in the order calls were created.

A ULID is 48 bits of millisecond timestamp then 80 random bits, so ids from
different milliseconds sort by time. Within one millisecond (hundreds of calls per
second make that common) random bits would sort arbitrarily; like the ULID spec's
monotonic mode, :class:`CallIds` then increments the previous id by one instead, so
``sorted(ids) == ids`` always holds for one switch.
"""

from __future__ import annotations

from ulid import ULID

__all__ = ["CallIds"]


class CallIds:
    """A callable ``now -> id``: unique, time-ordered call ids (26-char Crockford base32).

    ``now`` is epoch seconds. A clock that steps backwards never makes an id sort
    before an earlier one: the previous id is incremented instead.
    """

    def __init__(self) -> None:
        self._last: int = 0

    def __call__(self, now: float) -> str:
        # float(): python-ulid reads an int timestamp as milliseconds (1970 for epoch seconds).
        value = int(ULID.from_timestamp(float(now)))
        if (value >> 80) <= (self._last >> 80):  # same or earlier millisecond
            value = self._last + 1
        self._last = value
        return str(ULID.from_int(value))
