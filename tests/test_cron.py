"""Cron expressions read as Vixie cron reads them, checked against cronsim (a maintained cron
evaluator that follows Debian's Vixie cron) on random expressions and instants.

The two differ on purpose only around daylight-saving changes (docs/commands.md, "Schedules": a slot in
the repeated hour runs once, where cron runs an hourly job twice), so those instants are left out.
"""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from bot.config.schedule_models import Schedule
from bot.schedule.cron import CronError, next_slot, parse_cron, previous_slot

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"]
FIELDS = [("minute", 0, 59, None), ("hour", 0, 23, None), ("day", 1, 31, None),
          ("month", 1, 12, "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()),
          ("weekday", 0, 7, "SUN MON TUE WED THU FRI SAT".split())]


def _slots(expression: str, after: datetime, count: int) -> list[datetime]:
    slots = []
    for _ in range(count):
        after = next_slot(expression, "UTC", after)
        slots.append(after)
    return slots


def test_a_day_field_starting_with_a_star_keeps_its_values():
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    # Every other day: the odd days of the month, not every day.
    assert _slots("0 0 */2 * *", start, 3) == [datetime(2026, 12, d, tzinfo=UTC) for d in (1, 3, 5)]
    # "The first Sunday": the 1st to the 7th AND a Sunday (*/7 is 0 and 7), not the 1st to the 7th.
    assert _slots("1 1 1-7 * */7", start, 3) == [datetime(2026, 12, 6, 1, 1, tzinfo=UTC), datetime(2027, 1, 3, 1, 1, tzinfo=UTC),
                                                  datetime(2027, 2, 7, 1, 1, tzinfo=UTC)]
    # */100 is the 1st only; with 1-7 the list still starts with *, so Mondays among the 1st to the 7th.
    assert _slots("0 9 */100,1-7 * 1", start, 2) == [datetime(2026, 12, 7, 9, tzinfo=UTC), datetime(2027, 1, 4, 9, tzinfo=UTC)]
    # Both written out: either one suffices (the 15th, or a Sunday).
    assert _slots("0 0 15 * 0", datetime(2026, 12, 10, tzinfo=UTC), 3) == [
        datetime(2026, 12, 13, tzinfo=UTC), datetime(2026, 12, 15, tzinfo=UTC), datetime(2026, 12, 20, tzinfo=UTC)]
    assert previous_slot("0 0 */2 * *", "UTC", datetime(2026, 12, 4, 12, tzinfo=UTC)) == datetime(2026, 12, 3, tzinfo=UTC)


def test_steps_larger_than_the_field_and_leading_zeros_are_accepted():
    start = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    assert _slots("*/60 * * * *", start, 2) == [datetime(2026, 12, 1, 13, tzinfo=UTC), datetime(2026, 12, 1, 14, tzinfo=UTC)]
    assert _slots("0 */25 * * *", start, 2) == [datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)]
    assert _slots("007 08 * * 001", start, 1) == [datetime(2026, 12, 7, 8, 7, tzinfo=UTC)]
    assert parse_cron("*/100 */1000 */2 */13 */8").minutes == {0}
    # app.yaml takes them too.
    for expression in ("*/60 */25 */2 * *", "007 008 * * *"):
        assert Schedule.model_validate({"cron": expression, "run": "health"}).cron == expression
    # What cron refuses is still refused, each in one sentence.
    for expression, problem in [("*/0 * * * *", "bad step '/0'"), ("060 * * * *", "has 60"), ("5-1 * * * *", "runs backwards"),
                                ("*/x * * * *", "bad step")]:
        try:
            parse_cron(expression)
        except CronError as exc:
            assert problem in str(exc), (expression, str(exc))
        else:
            raise AssertionError(f"{expression} was accepted")


def _number(rng: random.Random, low: int, high: int, names: list[str] | None) -> str:
    value = rng.randint(low, high)
    if names and value - low < len(names) and rng.random() < 0.2:
        return names[value - low]
    return f"{value:03d}" if rng.random() < 0.1 else str(value)


def _item(rng: random.Random, low: int, high: int, names: list[str] | None) -> str:
    step = rng.choice([rng.randint(1, high), rng.randint(high, high * 4)]) if rng.random() < 0.8 else rng.randint(1, 3)
    kind = rng.random()
    if kind < 0.25:
        return "*"
    if kind < 0.5:
        return f"*/{step}"
    if kind < 0.7:
        return _number(rng, low, high, names)
    a, b = sorted(rng.sample(range(low, high + 1), 2))
    item = f"{a}-{b}"
    return item if kind < 0.85 else f"{item}/{step}"


def _expression(rng: random.Random) -> str:
    fields = []
    for name, low, high, names in FIELDS:
        if name in ("minute", "hour") and rng.random() < 0.5:
            fields.append(_number(rng, low, high, None))  # most schedules fire at a set time
            continue
        items = [_item(rng, low, high, names) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        fields.append(",".join(items))
    return " ".join(fields)


def _near_daylight_saving(zone: ZoneInfo, instant: datetime) -> bool:
    return (instant - timedelta(hours=3)).astimezone(zone).utcoffset() != (instant + timedelta(hours=3)).astimezone(zone).utcoffset()


def test_cron_agrees_with_cronsim_on_random_expressions_and_instants():
    rng = random.Random(20261206)
    span = int((datetime(2031, 1, 1, tzinfo=UTC) - datetime(2025, 1, 1, tzinfo=UTC)).total_seconds())
    compared, skipped = 0, 0
    for _ in range(3000):
        expression, zone_name = _expression(rng), rng.choice(ZONES)
        zone = ZoneInfo(zone_name)
        # Whole seconds, not on a minute: "after" and "at or before" then mean the same to both.
        instant = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(span // 60) * 60 + rng.randint(1, 59))
        ours_next = next_slot(expression, zone_name, instant)
        ours_previous = previous_slot(expression, zone_name, instant)
        if ours_next is None or ours_previous is None:  # fires less than yearly (29 February): outside our window
            skipped += 1
            continue
        theirs_next = next(CronSim(expression, instant.astimezone(zone)))
        theirs_previous = next(CronSim(expression, instant.astimezone(zone), reverse=True))
        if any(_near_daylight_saving(zone, t) for t in (instant, ours_next, theirs_next, ours_previous, theirs_previous)):
            skipped += 1
            continue
        assert ours_next == theirs_next, (expression, zone_name, instant, ours_next, theirs_next)
        assert ours_previous == theirs_previous, (expression, zone_name, instant, ours_previous, theirs_previous)
        compared += 1
    assert compared > 2500, (compared, skipped)
