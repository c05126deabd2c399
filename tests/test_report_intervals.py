"""Report intervals: local calendar boundaries, daylight-saving days of 23 and 25 hours, ISO weeks,
month ends, and clear errors. Expected epochs are written as UTC instants worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchd.reports.intervals import intervals

NY = "America/New_York"
H = 3600.0


def utc(text: str) -> float:
    """Epoch seconds of a UTC wall time "YYYY-MM-DD HH:MM[:SS]"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_utc_day_is_24_hours_labelled_by_local_hour():
    iv = intervals(utc("2026-12-07 00:00"), utc("2026-12-08 00:00"), "UTC", "hour")
    assert len(iv) == 24
    assert iv[0].label == "2026-12-07 00:00" and iv[13].label == "2026-12-07 13:00"
    assert iv[13].start == utc("2026-12-07 13:00") and iv[13].end == utc("2026-12-07 14:00")
    # Contiguous, half-open: each end is the next start.
    assert all(a.end == b.start for a, b in zip(iv, iv[1:], strict=False))


def test_spring_forward_day_has_23_hours_and_no_2am():
    # 2026-03-08 in New York: 00:00 EST = 05:00Z; at 02:00 EST (07:00Z) clocks go to 03:00 EDT;
    # the next local midnight 2026-03-09 00:00 EDT = 04:00Z, so the day is 05:00Z..04:00Z = 23 h.
    start, end = utc("2026-03-08 05:00"), utc("2026-03-09 04:00")
    hours = intervals(start, end, NY, "hour")
    assert len(hours) == 23
    labels = [i.label for i in hours]
    assert labels[:3] == ["2026-03-08 00:00", "2026-03-08 01:00", "2026-03-08 03:00"]
    assert "2026-03-08 02:00" not in labels
    assert hours[2].start == utc("2026-03-08 07:00")   # 03:00 EDT = 07:00Z
    (day,) = intervals(start, end, NY, "day")
    assert (day.label, day.start, day.end) == ("2026-03-08", start, end)
    assert day.end - day.start == 23 * H


def test_fall_back_day_has_25_hours_and_the_repeated_hour_labelled_apart():
    # 2026-11-01 in New York: 00:00 EDT = 04:00Z; 01:00 EDT = 05:00Z; at 02:00 EDT (06:00Z)
    # clocks go back to 01:00 EST; 2026-11-02 00:00 EST = 05:00Z: 04:00Z..05:00Z next day = 25 h.
    start, end = utc("2026-11-01 04:00"), utc("2026-11-02 05:00")
    hours = intervals(start, end, NY, "hour")
    assert len(hours) == 25
    assert [i.label for i in hours[:4]] == [
        "2026-11-01 00:00", "2026-11-01 01:00-04:00", "2026-11-01 01:00-05:00",
        "2026-11-01 02:00"]
    assert hours[1].start == utc("2026-11-01 05:00")
    assert hours[2].start == utc("2026-11-01 06:00")
    assert hours[3].start == utc("2026-11-01 07:00")    # 02:00 EST = 07:00Z
    assert len({i.label for i in hours}) == 25          # every label distinct
    (day,) = intervals(start, end, NY, "day")
    assert day.end - day.start == 25 * H


def test_iso_weeks_start_monday_and_cross_the_year():
    # 2026-12-07 is a Monday (2026-01-01 is a Thursday, +340 days = 48 weeks + 4 days); ISO week
    # 1 of 2026 starts 2025-12-29, and 2025-12-29 + 343 days (49 weeks) = week 50. A year whose
    # 1 January is a Thursday has 53 ISO weeks: 2026-12-28 is W53 and 2027-01-04 is 2027-W01.
    iv = intervals(utc("2026-12-09 12:00"), utc("2027-01-05 00:00"), "UTC", "week")
    assert [i.label for i in iv] == ["2026-W50", "2026-W51", "2026-W52", "2026-W53", "2027-W01"]
    # The first week is clipped to the requested start; the second starts Monday 2026-12-14.
    assert iv[0].start == utc("2026-12-09 12:00")
    assert iv[1].start == utc("2026-12-14 00:00") and iv[1].end == utc("2026-12-21 00:00")
    assert iv[-1].end == utc("2027-01-05 00:00")


def test_months_end_on_local_midnight_of_the_first():
    # New York, November (EST, UTC-5): 2026-12-01 00:00 EST = 05:00Z. October is EDT (UTC-4):
    # 2026-10-01 00:00 EDT = 04:00Z, so October+November is 04:00Z Oct 1 .. 05:00Z Dec 1.
    iv = intervals(utc("2026-10-01 04:00"), utc("2027-01-01 05:00"), NY, "month")
    assert [i.label for i in iv] == ["2026-10", "2026-11", "2026-12"]
    assert iv[1].start == utc("2026-11-01 04:00")   # 1 November is still EDT at midnight
    assert iv[1].end == utc("2026-12-01 05:00")
    # November: 30 days plus the extra fall-back hour.
    assert iv[1].end - iv[1].start == 30 * 24 * H + H


def test_empty_range_and_errors():
    assert intervals(100.0, 100.0, "UTC", "day") == []
    with pytest.raises(ValueError, match="hour, day, week, month"):
        intervals(0.0, 10.0, "UTC", "minute")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        intervals(0.0, 10.0, "Mars/Olympus", "day")
    with pytest.raises(ValueError, match="before the start"):
        intervals(10.0, 0.0, "UTC", "day")


def test_half_hour_zone_hours_fall_on_local_hours():
    # Asia/Kolkata is UTC+5:30: local 06:00 on 1970-01-01 is 00:30Z = 1800 s.
    iv = intervals(0.0, 3 * H, "Asia/Kolkata", "hour")
    assert [(i.start, i.end, i.label) for i in iv] == [
        (0.0, 1800.0, "1970-01-01 05:00"),
        (1800.0, 5400.0, "1970-01-01 06:00"),
        (5400.0, 9000.0, "1970-01-01 07:00"),
        (9000.0, 10800.0, "1970-01-01 08:00"),
    ]
