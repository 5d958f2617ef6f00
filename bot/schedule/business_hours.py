"""Working hours from app.yaml's calendar: is it business time, and when does the next working period start.

Pure functions over `Calendar`. Every `at` must be timezone-aware; every answer is UTC.
Local times are built from the calendar's zone on each date (not by adding 24 h), so a
09:00 start stays 09:00 local across daylight-saving changes. A start that falls in a
spring-forward gap, or twice in a fall-back hour, resolves with fold=0 (the offset in
force before the change), as datetime and zoneinfo do by default.

Comparisons are made in UTC: two datetimes in the same ZoneInfo compare by wall clock and
ignore fold, which is wrong inside a repeated hour.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.config.incident_models import WEEKDAYS, Calendar, clock_time

# A calendar with no working day in this many days (every weekday a holiday) has none at all.
SEARCH_DAYS = 400


def is_business_time(calendar: Calendar, at: dt.datetime) -> bool:
    """Whether `at` is within working hours: a working day, start <= at < end, local time."""
    at = as_utc(at)
    day = at.astimezone(ZoneInfo(calendar.timezone)).date()
    if not is_working_day(calendar, day):
        return False
    start, end = _hours(calendar, day)
    return start <= at < end


def next_business_start(calendar: Calendar, at: dt.datetime) -> dt.datetime:
    """`at` itself (in UTC) when within working hours, else the start of the next working period."""
    at = as_utc(at)
    if is_business_time(calendar, at):
        return at
    day = at.astimezone(ZoneInfo(calendar.timezone)).date()
    if is_working_day(calendar, day):
        start, _ = _hours(calendar, day)
        if at < start:
            return start
    return next_business_day(calendar, at)


def next_business_day(calendar: Calendar, at: dt.datetime) -> dt.datetime:
    """Start of working hours on the first working day strictly after `at`'s local date (Friday 18:00 -> Monday 09:00).

    ValueError when no working day comes within SEARCH_DAYS (every working day a holiday).
    """
    day = as_utc(at).astimezone(ZoneInfo(calendar.timezone)).date()
    for offset in range(1, SEARCH_DAYS + 1):
        candidate = day + dt.timedelta(days=offset)
        if is_working_day(calendar, candidate):
            return _hours(calendar, candidate)[0]
    raise ValueError(f"the calendar has no working day in the {SEARCH_DAYS} days after {day.isoformat()}")


def add_business_time(calendar: Calendar, at: dt.datetime, seconds: float) -> dt.datetime:
    """`seconds` of working time counted from `at`: 4 h from Monday 16:00 (09:00-17:00) is Tuesday 12:00.

    From outside working hours the count starts at the next working period. Bounded like
    next_business_day: a calendar with no working day within SEARCH_DAYS raises ValueError.
    """
    moment = next_business_start(calendar, at)
    remaining = dt.timedelta(seconds=seconds)
    for _ in range(SEARCH_DAYS):
        day = moment.astimezone(ZoneInfo(calendar.timezone)).date()
        _, end = _hours(calendar, day)
        if moment + remaining <= end:
            return moment + remaining
        remaining -= end - moment
        moment = next_business_day(calendar, moment)
    raise ValueError(f"{seconds:g} s of working time do not fit in {SEARCH_DAYS} working days")


def is_working_day(calendar: Calendar, day: dt.date) -> bool:
    return WEEKDAYS[day.weekday()] in calendar.working_days and day not in calendar.holidays


def local_instant(day: dt.date, time: dt.time, zone: ZoneInfo) -> dt.datetime:
    """`time` on `day` in `zone`, as UTC; a nonexistent or repeated local time resolves with fold=0."""
    return dt.datetime.combine(day, time, tzinfo=zone).replace(fold=0).astimezone(dt.timezone.utc)


def _hours(calendar: Calendar, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(calendar.timezone)
    start = local_instant(day, clock_time(calendar.working_hours_start), zone)
    end = local_instant(day, clock_time(calendar.working_hours_end), zone)
    return start, end


def as_utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is needed")
    return at.astimezone(dt.timezone.utc)
