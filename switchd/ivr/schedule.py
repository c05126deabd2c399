"""Business hours: what a ``schedule`` node decides at a given instant.

Pure: the answer depends only on the node, the flow's calendar, the flow's IANA
time zone and ``now`` (epoch seconds, UTC). Local time comes from
:mod:`zoneinfo` with the ``tzdata`` package, never from the server's zone (a
switch in Frankfurt runs a Shanghai service number on Shanghai time), and the
public holidays come from the ``holidays`` library, memoised per (country,
subdivision, year): the only "state" here is that memo of immutable calendars.

The order of the rules (docs/flows.md, ``schedule``):

1. the node's ``dates`` rules, first match wins: within their hours -> open,
   otherwise closed (an empty ``hours`` closes the whole day);
2. a make-up working day -- one of the flow's ``workdays``, or a weekend day the
   country works (China's 调休 Saturdays, ``HolidayBase.weekend_workdays``) -- is
   open within ``workday_hours`` (None = Monday's hours);
3. one of the flow's own holiday ``dates``, or a public holiday of the country,
   is a holiday;
4. otherwise the weekday's hours; a weekday not listed is closed.

A flow's ``workdays`` beat its own ``dates`` and the country's holidays: a
designer who lists a day as a working day means it (the model's
:class:`~switchd.ivr.model.Holidays` says so too).

Every range is ``start <= t < end`` on the wall clock, so 18:00:00 is closed for
``09:00-18:00`` and 17:59:59.999 is open. On a DST change the wall clock is what
counts: 09:00 local is 09:00 whether the day has 23, 24 or 25 hours.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from switchd.ivr.model import Holidays, Schedule, TimeRange

__all__ = [
    "WEEKDAYS",
    "evaluate",
    "holiday_name",
    "is_makeup_workday",
    "local_time",
    "parse_time_range",
    "parse_weekdays",
    "validate_calendar",
]

#: Weekday names as written in flows (index = ``date.weekday()``, Monday = 0).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {name: i for names in (WEEKDAYS, _FULL_WEEKDAYS) for i, name in enumerate(names)}

_TIME_RANGE_RE = re.compile(
    r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*-\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*"
)

#: (country, subdivision, year) -> that year's public holidays. A pure memo: a
#: calendar never changes once built, and building one costs about a millisecond.
_CALENDARS: dict[tuple[str, str | None, int], holidays_lib.HolidayBase] = {}


def local_time(tz: str, now: float) -> dt.datetime:
    """``now`` (epoch seconds, UTC) as an aware datetime on the wall clock of ``tz``.

    Raises ValueError naming the zone when ``tz`` is not an IANA zone name.
    """
    return dt.datetime.fromtimestamp(now, _zone(tz))


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)  # ZoneInfo keeps its own cache of zones
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(
            f"unknown time zone {tz!r}: use an IANA zone name such as Asia/Shanghai or "
            "America/New_York"
        ) from exc


def _country_calendar(country: str, subdivision: str | None, year: int) -> holidays_lib.HolidayBase:
    """The public holidays of ``country`` (and ``subdivision``) in ``year``, memoised.

    Raises ValueError when the holidays library does not know the country or subdivision.
    """
    key = (country, subdivision, year)
    cal = _CALENDARS.get(key)
    if cal is None:
        # expand=False: this object answers for its own year only (that is the key).
        cal = _build_calendar(country, subdivision, (year,))
        _CALENDARS[key] = cal
    return cal


def _build_calendar(
    country: str, subdivision: str | None, years: tuple[int, ...]
) -> holidays_lib.HolidayBase:
    try:
        # English names make the schedule's reasons readable in every log.
        return holidays_lib.country_holidays(
            country, subdiv=subdivision, years=years, expand=False, language="en_US"
        )
    except NotImplementedError as exc:
        what = f"country {country!r}" if subdivision is None else (
            f"country {country!r} with subdivision {subdivision!r}")
        raise ValueError(
            f"the holidays library has no calendar for {what} ({exc}); use an ISO 3166 "
            "country code such as CN or US, and a subdivision that country has"
        ) from exc


def validate_calendar(calendar: Holidays) -> None:
    """Raise ValueError (with what to fix) when ``calendar`` names an unknown country/subdivision.

    For the loader: a bad country code is reported by ``flows check``, not on a live call.
    """
    if calendar.country is not None:
        _build_calendar(calendar.country, calendar.subdivision, ())  # no years: cheap


def holiday_name(calendar: Holidays, day: dt.date) -> str | None:
    """The name of the holiday on ``day``: the country's public holiday in English with
    the country (``"National Day (CN holiday)"``), else ``"closed date (flow holidays)"``
    for one of the flow's own ``dates``; None on an ordinary day. Make-up working days are not considered here (see :func:`evaluate`).

    Raises ValueError for an unknown country/subdivision.
    """
    if calendar.country is not None:
        name = _country_calendar(calendar.country, calendar.subdivision, day.year).get(day)
        if name:
            return f"{name} ({calendar.country} holiday)"
    if day in calendar.dates:
        return "closed date (flow holidays)"
    return None


def is_makeup_workday(calendar: Holidays, day: dt.date) -> bool:
    """True when ``day`` is a make-up working day: in the flow's ``workdays``, or a
    weekend day the country declares a working day (China moves weekends around its
    long holidays; the holidays library lists those in ``weekend_workdays``).

    Raises ValueError for an unknown country/subdivision.
    """
    if day in calendar.workdays:
        return True
    if calendar.country is None:
        return False
    cal = _country_calendar(calendar.country, calendar.subdivision, day.year)
    return day.weekday() in cal.weekend and day in getattr(cal, "weekend_workdays", ())


def evaluate(node: Schedule, calendar: Holidays, tz: str, now: float) -> tuple[str, str]:
    """Decide ``node`` at ``now``: ``("open" | "closed" | "holiday", why)``.

    ``now`` is epoch seconds (UTC); ``tz`` the flow's IANA zone; ``why`` a short
    reason for the log and ``flows try``, e.g. ``"Mon 17:59:59 Asia/Shanghai within
    09:00-18:00"`` or ``"2026-10-01 National Day (CN holiday)"``. The holiday outcome
    is returned even when the node has no ``holiday`` exit (the caller maps it to
    ``closed``). Raises ValueError for an unknown zone or holidays country.
    """
    local = local_time(tz, now)
    day = local.date()
    t = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    clock = f"{local:%a} {local:%H:%M:%S} {tz}"

    for rule in node.dates:
        if rule.first <= day <= rule.last:
            span = f"date rule {rule.first.isoformat()}..{rule.last.isoformat()}"
            hit = _within(rule.hours, t)
            if hit is not None:
                return "open", f"{day.isoformat()} {clock}: {span} within {hit}"
            return "closed", f"{day.isoformat()} {clock}: {span} {_outside(rule.hours)}"

    if is_makeup_workday(calendar, day):
        hours = node.workday_hours if node.workday_hours is not None else node.hours.get(0, ())
        label = f"{day.isoformat()} {clock}: make-up working day"
        hit = _within(hours, t)
        if hit is not None:
            return "open", f"{label} within {hit}"
        return "closed", f"{label} {_outside(hours)}"

    name = holiday_name(calendar, day)
    if name is not None:
        return "holiday", f"{day.isoformat()} {name}"

    hours = node.hours.get(day.weekday(), ())
    if not hours:
        return "closed", f"{clock}: no hours on {WEEKDAYS[day.weekday()]}"
    hit = _within(hours, t)
    if hit is not None:
        return "open", f"{clock} within {hit}"
    return "closed", f"{clock} {_outside(hours)}"


def _within(hours: Iterable[TimeRange], t: float) -> TimeRange | None:
    """The first range holding ``t`` (seconds since local midnight), or None."""
    for r in hours:
        if r.start <= t < r.end:
            return r
    return None


def _outside(hours: tuple[TimeRange, ...]) -> str:
    if not hours:
        return "closed all day"
    return "outside " + ", ".join(str(r) for r in hours)


def parse_time_range(text: str) -> TimeRange:
    """Parse ``"HH:MM-HH:MM"`` (seconds optional: ``"HH:MM:SS"``) into a :class:`TimeRange`.

    The start is 00:00..23:59:59; the end may be ``24:00`` (midnight at the end of
    the day) and must be after the start: a range never crosses midnight. Raises
    ValueError saying what is wrong and how to write it.
    """
    m = _TIME_RANGE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(
            f"bad time range {text!r}: write HH:MM-HH:MM, e.g. \"09:00-18:00\" (end may be 24:00)"
        )
    h1, m1, s1, h2, m2, s2 = (int(g) if g is not None else 0 for g in m.groups())
    if h1 > 23 or m1 > 59 or s1 > 59:
        raise ValueError(f"bad time range {text!r}: the start is not a time of day (00:00..23:59)")
    if m2 > 59 or s2 > 59 or h2 > 24 or (h2 == 24 and (m2 or s2)):
        raise ValueError(
            f"bad time range {text!r}: the end is not a time of day (00:00..24:00)"
        )
    start, end = h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2
    if end <= start:
        raise ValueError(
            f"bad time range {text!r}: the end must be after the start; a range cannot cross "
            "midnight, so write two ranges (e.g. \"22:00-24:00\" today and \"00:00-06:00\" "
            "on the next day)"
        )
    return TimeRange(start, end)


def parse_weekdays(text: str) -> tuple[int, ...]:
    """Parse weekday names into sorted day numbers (Monday = 0).

    Accepts one name (``"mon"``), a range (``"mon-fri"``) or a comma list of either
    (``"sat,sun"``, ``"mon-wed,fri"``); names are ``mon tue wed thu fri sat sun`` or
    written out (``monday``), any case. A range may not wrap past Sunday (write
    ``"fri-sun,mon"``). Raises ValueError naming the accepted names.
    """
    accepted = "use mon tue wed thu fri sat sun, a range like mon-fri or a list like sat,sun"
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"bad weekdays {text!r}: {accepted}")
    days: set[int] = set()
    for part in text.split(","):
        ends = [p.strip().lower() for p in part.split("-")]
        if len(ends) > 2 or any(e not in _DAY_INDEX for e in ends):
            bad = next((e for e in ends if e not in _DAY_INDEX), part.strip())
            raise ValueError(f"unknown weekday {bad!r} in {text!r}: {accepted}")
        first, last = _DAY_INDEX[ends[0]], _DAY_INDEX[ends[-1]]
        if last < first:
            raise ValueError(
                f"weekday range {part.strip()!r} in {text!r} runs backwards: a range goes "
                f"from Monday towards Sunday; write e.g. \"{ends[0]}-sun,mon-{ends[-1]}\""
            )
        days.update(range(first, last + 1))
    return tuple(sorted(days))
