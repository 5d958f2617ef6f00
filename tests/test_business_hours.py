"""Working hours (bot/schedule/business_hours.py): weekends, holidays, and daylight-saving changes.

2026's changes: Europe/Berlin springs forward on Sunday 29 March (02:00 -> 03:00) and falls
back on Sunday 25 October (03:00 -> 02:00); America/New_York on Sunday 8 March and Sunday
1 November. A 09:00 start stays 09:00 local on either side.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bot.config.incident_models import Calendar
from bot.schedule.business_hours import SEARCH_DAYS, add_business_time, is_business_time, next_business_day, next_business_start

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


def test_friday_evening_is_followed_by_monday_morning():
    calendar = Calendar()  # UTC, mon-fri 09:00-17:00
    friday_evening = utc(2026, 3, 6, 18, 0)
    assert not is_business_time(calendar, friday_evening)
    assert next_business_day(calendar, friday_evening) == utc(2026, 3, 9, 9, 0)
    assert next_business_start(calendar, friday_evening) == utc(2026, 3, 9, 9, 0)
    saturday_noon = utc(2026, 3, 7, 12, 0)
    assert next_business_start(calendar, saturday_noon) == utc(2026, 3, 9, 9, 0)
    # Friday within hours: the next business day is still Monday; the next business start is now.
    friday_noon = utc(2026, 3, 6, 12, 0)
    assert next_business_day(calendar, friday_noon) == utc(2026, 3, 9, 9, 0)
    assert next_business_start(calendar, friday_noon) == friday_noon


def test_the_working_day_boundaries():
    calendar = Calendar()
    wednesday = (2026, 3, 4)
    assert not is_business_time(calendar, utc(*wednesday, 8, 59, 59))
    assert is_business_time(calendar, utc(*wednesday, 9, 0))
    assert is_business_time(calendar, utc(*wednesday, 16, 59, 59))
    assert not is_business_time(calendar, utc(*wednesday, 17, 0))
    # Early in a working day: its own start, not tomorrow's.
    assert next_business_start(calendar, utc(*wednesday, 7, 0)) == utc(*wednesday, 9, 0)
    assert next_business_day(calendar, utc(*wednesday, 7, 0)) == utc(2026, 3, 5, 9, 0)
    # After hours: tomorrow.
    assert next_business_start(calendar, utc(*wednesday, 17, 0)) == utc(2026, 3, 5, 9, 0)


def test_answers_are_utc_whatever_zone_the_question_is_in():
    calendar = Calendar(timezone="Europe/Berlin")
    asked = local(NEW_YORK, 2026, 3, 4, 12, 0)  # 18:00 in Berlin: after hours
    answer = next_business_start(calendar, asked)
    assert answer == local(BERLIN, 2026, 3, 5, 9, 0) and answer.tzinfo is UTC
    assert next_business_start(calendar, local(NEW_YORK, 2026, 3, 4, 6, 0)).tzinfo is UTC  # within hours: `at`, in UTC
    with pytest.raises(ValueError):
        is_business_time(calendar, dt.datetime(2026, 3, 4, 12, 0))
    with pytest.raises(ValueError):
        next_business_day(calendar, dt.datetime(2026, 3, 4, 12, 0))


def test_holidays_and_working_days_are_skipped():
    calendar = Calendar(timezone="Europe/Berlin", holidays=[dt.date(2026, 12, 24), dt.date(2026, 12, 25)])
    assert not is_business_time(calendar, local(BERLIN, 2026, 12, 24, 10, 0))
    # Wednesday evening before Christmas: Thursday and Friday are holidays, then the weekend.
    assert next_business_day(calendar, local(BERLIN, 2026, 12, 23, 18, 0)) == local(BERLIN, 2026, 12, 28, 9, 0)
    assert next_business_start(calendar, local(BERLIN, 2026, 12, 24, 10, 0)) == local(BERLIN, 2026, 12, 28, 9, 0)

    sunday_to_thursday = Calendar(working_days=["sun", "mon", "tue", "wed", "thu"])
    assert next_business_day(sunday_to_thursday, utc(2026, 3, 5, 18, 0)) == utc(2026, 3, 8, 9, 0)
    assert not is_business_time(sunday_to_thursday, utc(2026, 3, 6, 10, 0))  # a Friday


def test_a_calendar_without_any_working_day_is_an_error():
    mondays = [dt.date(2026, 3, 9) + dt.timedelta(weeks=i) for i in range(SEARCH_DAYS // 7 + 2)]
    calendar = Calendar(working_days=["mon"], holidays=mondays)
    with pytest.raises(ValueError, match="no working day"):
        next_business_day(calendar, utc(2026, 3, 6, 18, 0))
    with pytest.raises(ValueError, match="no working day"):
        next_business_start(calendar, utc(2026, 3, 6, 18, 0))


@pytest.mark.parametrize(
    "zone, before, change, after",
    [
        # Berlin springs forward: 09:00 is 08:00 UTC before, 07:00 UTC after.
        (BERLIN, utc(2026, 3, 28, 8, 0), dt.date(2026, 3, 29), utc(2026, 3, 29, 7, 0)),
        # Berlin falls back: 07:00 UTC before, 08:00 UTC after.
        (BERLIN, utc(2026, 10, 24, 7, 0), dt.date(2026, 10, 25), utc(2026, 10, 25, 8, 0)),
        # New York springs forward: 14:00 UTC before, 13:00 UTC after.
        (NEW_YORK, utc(2026, 3, 7, 14, 0), dt.date(2026, 3, 8), utc(2026, 3, 8, 13, 0)),
        # New York falls back: 13:00 UTC before, 14:00 UTC after.
        (NEW_YORK, utc(2026, 10, 31, 13, 0), dt.date(2026, 11, 1), utc(2026, 11, 1, 14, 0)),
    ],
)
def test_a_nine_o_clock_start_stays_nine_o_clock_across_daylight_saving(zone, before, change, after):
    calendar = Calendar(timezone=zone.key, working_days=EVERY_DAY)
    # The day before the change, in the evening: the next day starts at 09:00 local, on the new offset.
    day_before = change - dt.timedelta(days=1)
    evening_before = local(zone, day_before.year, day_before.month, day_before.day, 20, 0)
    assert next_business_day(calendar, evening_before) == after
    assert next_business_start(calendar, evening_before) == after
    assert after.astimezone(zone).hour == 9 and before.astimezone(zone).hour == 9
    # The day before's start was on the old offset.
    assert next_business_start(calendar, local(zone, day_before.year, day_before.month, day_before.day, 5, 0)) == before
    # Boundaries on the day of the change.
    assert not is_business_time(calendar, after - dt.timedelta(seconds=1))
    assert is_business_time(calendar, after)
    end = local(zone, change.year, change.month, change.day, 17, 0)
    assert is_business_time(calendar, end - dt.timedelta(seconds=1))
    assert not is_business_time(calendar, end)


def test_weekday_calendars_across_the_spring_weekend():
    # Friday evening before the change to Monday morning after it, in both zones.
    berlin = Calendar(timezone="Europe/Berlin")
    assert next_business_day(berlin, local(BERLIN, 2026, 3, 27, 18, 0)) == utc(2026, 3, 30, 7, 0)
    new_york = Calendar(timezone="America/New_York")
    assert next_business_day(new_york, local(NEW_YORK, 2026, 3, 6, 18, 0)) == utc(2026, 3, 9, 13, 0)
    assert next_business_day(new_york, local(NEW_YORK, 2026, 10, 30, 18, 0)) == utc(2026, 11, 2, 14, 0)


def test_a_start_in_the_skipped_or_repeated_hour_resolves_with_fold_0():
    # 02:30 does not exist in Berlin on 29 March: fold=0 reads it on the old offset (+01:00), i.e. 03:30 CEST.
    skipped = Calendar(timezone="Europe/Berlin", working_days=EVERY_DAY, working_hours_start="02:30")
    assert next_business_day(skipped, local(BERLIN, 2026, 3, 28, 20, 0)) == utc(2026, 3, 29, 1, 30)
    # 02:30 occurs twice on 25 October: fold=0 is the first one (CEST, +02:00).
    assert next_business_day(skipped, local(BERLIN, 2026, 10, 24, 20, 0)) == utc(2026, 10, 25, 0, 30)
    assert is_business_time(skipped, utc(2026, 10, 25, 0, 30))
    assert not is_business_time(skipped, utc(2026, 10, 25, 0, 29, 59))


# --------------------------------------------------------------------------- working time added


def test_working_time_is_counted_in_working_hours_only():
    calendar = Calendar()  # UTC, mon-fri 09:00-17:00
    monday_4pm = utc(2026, 3, 2, 16, 0)
    assert add_business_time(calendar, monday_4pm, 4 * 3600) == utc(2026, 3, 3, 12, 0)  # 1 h Monday, 3 h Tuesday
    assert add_business_time(calendar, monday_4pm, 3600) == utc(2026, 3, 2, 17, 0)  # exactly the end of the day
    assert add_business_time(calendar, utc(2026, 3, 6, 16, 0), 4 * 3600) == utc(2026, 3, 9, 12, 0)  # Friday -> Monday
    assert add_business_time(calendar, utc(2026, 3, 7, 3, 0), 3600) == utc(2026, 3, 9, 10, 0)  # from a Saturday night
    assert add_business_time(calendar, utc(2026, 3, 2, 10, 0), 0) == utc(2026, 3, 2, 10, 0)
    assert add_business_time(calendar, utc(2026, 3, 2, 20, 0), 0) == utc(2026, 3, 3, 9, 0)  # zero from the evening: next start
    holiday = Calendar(holidays=[dt.date(2026, 3, 3)])
    assert add_business_time(holiday, monday_4pm, 4 * 3600) == utc(2026, 3, 4, 12, 0)


def test_working_time_across_a_daylight_saving_change_keeps_local_hours():
    berlin = Calendar(timezone="Europe/Berlin")
    # Friday 27 March 2026 16:00 CET + 2 h of working time: 1 h Friday, 1 h Monday 30 March (CEST).
    assert add_business_time(berlin, local(BERLIN, 2026, 3, 27, 16, 0), 2 * 3600) == local(BERLIN, 2026, 3, 30, 10, 0)


def test_working_time_that_never_fits_is_refused():
    closed = Calendar(working_days=["mon"], holidays=[dt.date(2026, 3, 2) + dt.timedelta(weeks=w) for w in range(60)])
    with pytest.raises(ValueError):
        add_business_time(closed, utc(2026, 3, 1, 12, 0), 3600)
