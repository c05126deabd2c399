"""Business hours in the flow's own time zone: edges, holidays, make-up days, DST.

Virtual time only: every instant is built with zoneinfo from a local wall-clock
time, turned into epoch seconds, and handed to ``evaluate``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

import pytest

from switchd.ivr import schedule
from switchd.ivr.model import DateRule, Holidays, Mark, Schedule, TimeRange
from switchd.ivr.schedule import (
    evaluate,
    holiday_name,
    is_makeup_workday,
    local_time,
    parse_time_range,
    parse_weekdays,
    validate_calendar,
)

SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"
NINE_TO_SIX = (TimeRange(9 * 3600, 18 * 3600),)
CN = Holidays(country="CN")


def office(**kw: object) -> Schedule:
    """Mon-Fri 09:00-18:00, Sat 10:00-12:00 unless overridden."""
    hours = {d: NINE_TO_SIX for d in range(5)} | {5: (TimeRange(10 * 3600, 12 * 3600),)}
    args: dict[str, object] = {"name": "hours", "mark": Mark("flows/main.yaml", 5, 3),
                               "hours": hours, "open": "menu", "closed": "after_hours",
                               "holiday": "holiday"}
    return Schedule(**(args | kw))  # type: ignore[arg-type]


def at(local: str, tz: str = SHANGHAI) -> float:
    """Epoch seconds of a wall-clock time in ``tz`` (ISO, no offset)."""
    return dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).timestamp()


# -- the edges of a range -------------------------------------------------------------


def test_one_second_before_closing_is_open_and_closing_time_is_closed() -> None:
    # 2026-12-07 is a Monday
    assert evaluate(office(), CN, SHANGHAI, at("2026-12-07T17:59:59")) == (
        "open", "Mon 17:59:59 Asia/Shanghai within 09:00-18:00")
    assert evaluate(office(), CN, SHANGHAI, at("2026-12-07T17:59:59.999"))[0] == "open"
    assert evaluate(office(), CN, SHANGHAI, at("2026-12-07T18:00:00")) == (
        "closed", "Mon 18:00:00 Asia/Shanghai outside 09:00-18:00")


def test_opening_time_is_open_and_the_second_before_is_closed() -> None:
    assert evaluate(office(), CN, SHANGHAI, at("2026-12-07T09:00:00"))[0] == "open"
    assert evaluate(office(), CN, SHANGHAI, at("2026-12-07T08:59:59.999"))[0] == "closed"


def test_a_weekday_not_listed_is_closed_all_day() -> None:
    # 2026-12-06 is a Sunday; Sunday has no hours
    state, why = evaluate(office(), CN, SHANGHAI, at("2026-12-06T10:00"))
    assert (state, why) == ("closed", "Sun 10:00:00 Asia/Shanghai: no hours on sun")
    assert evaluate(office(), CN, SHANGHAI, at("2026-12-05T10:30"))[0] == "open"  # Saturday


def test_a_range_may_end_at_midnight() -> None:
    node = office(hours={0: (parse_time_range("20:00-24:00"),)})
    assert evaluate(node, CN, SHANGHAI, at("2026-12-07T23:59:59.999"))[0] == "open"
    assert evaluate(node, CN, SHANGHAI, at("2026-12-08T00:00:00"))[0] == "closed"  # Tuesday


def test_several_ranges_in_a_day() -> None:
    node = office(hours={0: (parse_time_range("09:00-12:00"), parse_time_range("13:30-18:00"))})
    assert evaluate(node, CN, SHANGHAI, at("2026-12-07T12:30"))[1] == (
        "Mon 12:30:00 Asia/Shanghai outside 09:00-12:00, 13:30-18:00")
    assert evaluate(node, CN, SHANGHAI, at("2026-12-07T13:30")) == (
        "open", "Mon 13:30:00 Asia/Shanghai within 13:30-18:00")


# -- holidays and make-up working days ---------------------------------------------------


def test_a_chinese_public_holiday_is_a_holiday_whatever_the_hour() -> None:
    # 2026-10-01 is a Thursday, National Day
    assert evaluate(office(), CN, SHANGHAI, at("2026-10-01T10:00")) == (
        "holiday", "2026-10-01 National Day (CN holiday)")
    assert evaluate(office(), CN, SHANGHAI, at("2026-10-01T23:00"))[0] == "holiday"
    assert evaluate(office(), Holidays(), SHANGHAI, at("2026-10-01T10:00"))[0] == "open"


def test_a_saturday_china_works_is_open_with_mondays_hours() -> None:
    # Spring Festival 2026: Saturdays 02-14 and 02-28 are working days (调休)
    day = dt.date(2026, 2, 14)
    assert day.weekday() == 5 and is_makeup_workday(CN, day)
    assert dt.date(2026, 2, 28) in _weekend_workdays_2026()
    # Saturday's own hours are 10-12; a make-up day uses Monday's 09-18 instead
    assert evaluate(office(), CN, SHANGHAI, at("2026-02-14T15:00")) == (
        "open", "2026-02-14 Sat 15:00:00 Asia/Shanghai: make-up working day within 09:00-18:00")
    assert evaluate(office(), CN, SHANGHAI, at("2026-02-14T18:00")) == (
        "closed", "2026-02-14 Sat 18:00:00 Asia/Shanghai: make-up working day outside 09:00-18:00")
    # the Saturday after is an ordinary Saturday
    assert evaluate(office(), CN, SHANGHAI, at("2026-02-21T15:00"))[0] == "closed"


def _weekend_workdays_2026() -> set[dt.date]:
    """China's 2026 weekend working days according to the holidays library."""
    return {d for d in (dt.date(2026, 1, 1) + dt.timedelta(n) for n in range(365))
            if d.weekday() >= 5 and is_makeup_workday(CN, d)}


def test_workday_hours_apply_on_make_up_days() -> None:
    node = office(workday_hours=(parse_time_range("08:30-17:30"),))
    assert evaluate(node, CN, SHANGHAI, at("2026-02-28T08:45"))[0] == "open"
    assert evaluate(node, CN, SHANGHAI, at("2026-02-28T17:45"))[0] == "closed"


def test_the_flows_own_closed_date_and_make_up_day() -> None:
    own = Holidays(country="CN", dates=frozenset({dt.date(2026, 12, 24)}),
                   workdays=frozenset({dt.date(2026, 12, 27), dt.date(2026, 10, 2)}))
    assert evaluate(office(), own, SHANGHAI, at("2026-12-24T10:00")) == (
        "holiday", "2026-12-24 closed date (flow holidays)")
    # 2026-12-27 is a Sunday the flow works
    assert evaluate(office(), own, SHANGHAI, at("2026-12-27T10:00"))[0] == "open"
    assert evaluate(office(), own, SHANGHAI, at("2026-12-27T08:00"))[0] == "closed"
    # the flow's workday beats the country's holiday (2026-10-02, National Day)
    assert holiday_name(own, dt.date(2026, 10, 2)) == "National Day (CN holiday)"
    assert evaluate(office(), own, SHANGHAI, at("2026-10-02T10:00"))[0] == "open"
    # without a country, only the flow's own dates count
    mine = Holidays(dates=frozenset({dt.date(2026, 12, 24)}))
    assert evaluate(office(), mine, SHANGHAI, at("2026-12-24T10:00"))[0] == "holiday"
    assert holiday_name(mine, dt.date(2026, 10, 1)) is None


def test_date_rules_come_first_and_the_first_match_wins() -> None:
    node = office(dates=(
        DateRule(dt.date(2026, 11, 11), dt.date(2026, 11, 11), (parse_time_range("00:00-24:00"),)),
        DateRule(dt.date(2026, 11, 1), dt.date(2026, 11, 30), ()),
        DateRule(dt.date(2026, 10, 1), dt.date(2026, 10, 1), (parse_time_range("10:00-14:00"),)),
    ))
    assert evaluate(node, CN, SHANGHAI, at("2026-11-11T03:00")) == (
        "open", "2026-11-11 Wed 03:00:00 Asia/Shanghai: date rule 2026-11-11..2026-11-11 "
                "within 00:00-24:00")
    assert evaluate(node, CN, SHANGHAI, at("2026-11-12T10:00")) == (
        "closed", "2026-11-12 Thu 10:00:00 Asia/Shanghai: date rule 2026-11-01..2026-11-30 "
                  "closed all day")
    # a date rule covers a public holiday
    assert evaluate(node, CN, SHANGHAI, at("2026-10-01T11:00"))[0] == "open"
    assert evaluate(node, CN, SHANGHAI, at("2026-10-01T15:00"))[0] == "closed"


# -- time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize("day", ["2026-03-08", "2026-11-01"])
def test_a_dst_change_keeps_the_wall_clock(day: str) -> None:
    """New York springs forward on 2026-03-08 and falls back on 2026-11-01 (both Sundays);
    the office opens Sundays 09:00-18:00 here, so both days test the hours."""
    node = office(hours={6: NINE_TO_SIX})
    nine = at(f"{day}T09:00", NEW_YORK)
    assert local_time(NEW_YORK, nine).hour == 9
    assert evaluate(node, Holidays(), NEW_YORK, nine)[0] == "open"
    assert evaluate(node, Holidays(), NEW_YORK, nine - 0.001)[0] == "closed"
    # across the jump at 02:00 the UTC offset changed, the wall clock did not
    midnight = at(f"{day}T00:00", NEW_YORK)
    offsets = {local_time(NEW_YORK, midnight).utcoffset(), local_time(NEW_YORK, nine).utcoffset()}
    assert len(offsets) == 2
    hours_between = (nine - midnight) / 3600
    assert hours_between == (8 if day == "2026-03-08" else 10)
    assert evaluate(node, Holidays(), NEW_YORK, at(f"{day}T17:59:59", NEW_YORK))[0] == "open"
    assert evaluate(node, Holidays(), NEW_YORK, at(f"{day}T18:00", NEW_YORK))[0] == "closed"


def test_the_same_instant_is_judged_in_the_flows_zone() -> None:
    now = at("2026-12-07T10:00")  # Monday 10:00 in Shanghai = Sunday 21:00 in New York
    assert evaluate(office(), CN, SHANGHAI, now)[0] == "open"
    assert evaluate(office(), Holidays(), NEW_YORK, now) == (
        "closed", "Sun 21:00:00 America/New_York: no hours on sun")


def test_the_servers_zone_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    instants = [at("2026-12-07T17:59:59"), at("2026-12-07T18:00"), at("2026-10-01T10:00"),
                at("2026-02-14T10:00"), at("2026-03-08T09:00", NEW_YORK)]
    cases = [(SHANGHAI, CN), (NEW_YORK, Holidays())]
    before = [evaluate(office(), cal, tz, t) for t in instants for tz, cal in cases]
    try:
        monkeypatch.setenv("TZ", "Pacific/Auckland")
        time.tzset()
        assert time.localtime(at("2026-12-07T12:00")).tm_hour == 17  # the server really moved
        after = [evaluate(office(), cal, tz, t) for t in instants for tz, cal in cases]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert after == before
    assert "TZ" not in os.environ or os.environ["TZ"] != "Pacific/Auckland"


def test_unknown_zone_and_country_are_value_errors_saying_what_to_use() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'.*IANA"):
        evaluate(office(), CN, "Mars/Olympus", 0.0)
    with pytest.raises(ValueError, match="no calendar for country 'XX'.*ISO 3166"):
        evaluate(office(), Holidays(country="XX"), SHANGHAI, at("2026-12-07T10:00"))
    with pytest.raises(ValueError, match="subdivision 'ZZ'"):
        validate_calendar(Holidays(country="US", subdivision="ZZ"))
    validate_calendar(Holidays(country="US", subdivision="CA"))
    validate_calendar(Holidays())


def test_calendars_are_memoised_per_country_subdivision_and_year() -> None:
    holiday_name(CN, dt.date(2026, 5, 1))
    holiday_name(CN, dt.date(2026, 6, 1))
    holiday_name(CN, dt.date(2025, 6, 1))
    keys = [k for k in schedule._CALENDARS if k[0] == "CN"]
    assert ("CN", None, 2026) in keys and ("CN", None, 2025) in keys
    cached = schedule._CALENDARS[("CN", None, 2026)]
    holiday_name(CN, dt.date(2026, 10, 1))
    assert schedule._CALENDARS[("CN", None, 2026)] is cached


# -- parsing helpers for the loader ----------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("09:00-18:00", TimeRange(32400, 64800)),
    (" 9:30 - 12:00 ", TimeRange(34200, 43200)),
    ("00:00-24:00", TimeRange(0, 86400)),
    ("12:00:30-12:00:45", TimeRange(43230, 43245)),
])
def test_parse_time_range(text: str, expected: TimeRange) -> None:
    assert parse_time_range(text) == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("18:00-09:00", "the end must be after the start"),
    ("09:00-09:00", "the end must be after the start"),
    ("09:00", "write HH:MM-HH:MM"),
    ("9-18", "write HH:MM-HH:MM"),
    ("24:00-24:00", "the start is not a time of day"),
    ("09:60-10:00", "the start is not a time of day"),
    ("09:00-24:30", "the end is not a time of day"),
    ("09:00-25:00", "the end is not a time of day"),
])
def test_parse_time_range_errors(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as err:
        parse_time_range(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("mon", (0,)),
    ("mon-fri", (0, 1, 2, 3, 4)),
    ("sat,sun", (5, 6)),
    ("Sat, Sunday", (5, 6)),
    ("mon-wed,fri,mon", (0, 1, 2, 4)),
    ("sun", (6,)),
])
def test_parse_weekdays(text: str, expected: tuple[int, ...]) -> None:
    assert parse_weekdays(text) == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("tues", "unknown weekday 'tues'"),
    ("mon-fry", "unknown weekday 'fry'"),
    ("", "bad weekdays"),
    ("mon-tue-wed", "unknown weekday"),
    ("fri-mon", "runs backwards"),
])
def test_parse_weekdays_errors_name_the_accepted_names(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as err:
        parse_weekdays(text)
    assert "mon tue wed thu fri sat sun" in str(err.value) or "backwards" in needle
