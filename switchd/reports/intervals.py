"""Reporting intervals on local calendar boundaries, correct across daylight-saving changes.

Boundaries are wall-clock boundaries in the IANA zone ``tz`` (``zoneinfo``), converted to epoch
seconds, so a spring-forward day is 23 hours long and a fall-back day 25 hours. Hours are
labelled in local time ("2026-12-07 13:00"); the hour a fall-back repeats is labelled twice,
each time with its UTC offset ("2026-11-01 01:00-04:00", then "2026-11-01 01:00-05:00"). Days
are "YYYY-MM-DD", weeks ISO weeks starting Monday ("2026-W49", ISO week-numbering year), months
"YYYY-MM". The first and last intervals are clipped to the requested ``[start, end)``; their
labels stay those of the whole calendar interval.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchd.reports.model import Interval

__all__ = ["BY_CHOICES", "intervals", "zone"]

#: The interval lengths `intervals` knows.
BY_CHOICES: tuple[str, ...] = ("hour", "day", "week", "month")


def zone(tz: str) -> ZoneInfo:
    """The zone named ``tz`` (an IANA name such as "UTC" or "America/New_York").

    Raises ValueError naming the zone and examples of valid names when it is unknown.
    """
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {tz!r}: use an IANA zone name such as UTC, "
                         "Europe/London or America/New_York (zoneinfo.available_timezones() "
                         "lists them)") from exc


def _midnight(d: date, z: ZoneInfo) -> float:
    """Epoch seconds of the first instant of local day ``d``.

    A local midnight that does not exist (a spring-forward at 00:00) resolves, with fold=0, to
    the first instant after the gap; a repeated midnight to its first occurrence.
    """
    return datetime(d.year, d.month, d.day, tzinfo=z).timestamp()


def _hour_label(t: float, z: ZoneInfo) -> str:
    local = datetime.fromtimestamp(t, z)
    label = local.strftime("%Y-%m-%d %H:00")
    wall = local.replace(tzinfo=None)
    first = wall.replace(tzinfo=z, fold=0).utcoffset()
    second = wall.replace(tzinfo=z, fold=1).utcoffset()
    if first != second and (wall.replace(tzinfo=z, fold=0).timestamp()
                            != wall.replace(tzinfo=z, fold=1).timestamp()):
        # Either a repeated hour (fall back) or a skipped one; only a repeated hour is ever
        # reached from a real instant, and both of its occurrences get their offset.
        off = local.strftime("%z")
        label += f"{off[:3]}:{off[3:]}"
    return label


def _hours(start: float, end: float, z: ZoneInfo) -> list[Interval]:
    out: list[Interval] = []
    local = datetime.fromtimestamp(start, z)
    t = start - (local.minute * 60 + local.second + local.microsecond / 1e6)
    while t < end:
        nxt = t + 3600.0
        # Offsets that are not whole hours away from the previous one (a 30-minute DST
        # shift): cut at the next local :00 instead.
        nl = datetime.fromtimestamp(nxt, z)
        if nl.minute or nl.second:
            nxt -= nl.minute * 60 + nl.second
        out.append(Interval(max(t, start), min(nxt, end), _hour_label(t, z)))
        t = nxt
    return out


def _calendar(start: float, end: float, z: ZoneInfo, by: str) -> list[Interval]:
    out: list[Interval] = []
    d = datetime.fromtimestamp(start, z).date()
    if by == "week":
        d -= timedelta(days=d.weekday())
    elif by == "month":
        d = d.replace(day=1)
    while True:
        t = _midnight(d, z)
        if t >= end:
            break
        if by == "day":
            nd = d + timedelta(days=1)
            label = d.isoformat()
        elif by == "week":
            nd = d + timedelta(days=7)
            iso = d.isocalendar()
            label = f"{iso.year}-W{iso.week:02d}"
        else:
            nd = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            label = f"{d.year:04d}-{d.month:02d}"
        nt = _midnight(nd, z)
        if nt > start:
            out.append(Interval(max(t, start), min(nt, end), label))
        d = nd
    return out


def intervals(start: float, end: float, tz: str, by: str) -> list[Interval]:
    """Split ``[start, end)`` (epoch seconds) into local hours, days, ISO weeks or months.

    Returns the intervals in time order, each ``[start, end)`` in epoch seconds, the first and
    last clipped to the requested range; an empty list when ``start == end``.
    Raises ValueError for an unknown ``by`` (listing hour, day, week, month), an unknown zone
    (`zone`), or ``end < start``.
    """
    if by not in BY_CHOICES:
        raise ValueError(f"unknown interval {by!r}: choose one of {', '.join(BY_CHOICES)}")
    z = zone(tz)
    if end < start:
        raise ValueError(f"the end ({end}) is before the start ({start})")
    if end == start:
        return []
    if by == "hour":
        return _hours(start, end, z)
    return _calendar(start, end, z, by)
