"""Five-field cron expressions, read in a time zone, with daylight saving handled the way people expect.

`0 8 * * 1-5` in Europe/Berlin is 08:00 Berlin time on weekdays, whatever the UTC offset.
On the day clocks go forward, a slot inside the skipped hour runs at the first minute after
the gap (once); on the day they go back, a slot in the repeated hour runs at its first
occurrence only. So a daylight-saving day neither skips nor doubles a post.

Fields read as Vixie cron reads them: a step may be larger than its field (`*/60` is minute 0),
numbers may carry leading zeros (`007`), and a day field that starts with `*` keeps its values
(`*/2` is the odd days) but makes the two day fields AND instead of OR.

Parsing is bounded: at most 200 characters, each field a comma list of at most 60 items.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

MAX_CRON = 200
_NAMES = {
    "month": {n: i for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)},
    "weekday": {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))


class CronError(ValueError):
    """The sentence says which field is wrong and what is allowed."""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_starred: bool  # the day-of-month field starts with * (*, */2, */100,1-7)
    weekday_starred: bool  # the day-of-week field starts with *

    def matches_date(self, year: int, month: int, day: int) -> bool:
        if month not in self.months:
            return False
        weekday = (datetime(year, month, day).weekday() + 1) % 7
        day_ok, weekday_ok = day in self.days, weekday in self.weekdays
        # Vixie cron's rule: a day field starting with * (its DOM_STAR / DOW_STAR flag) makes the two
        # AND; only when both are written out does either one suffice. A bare * holds every value,
        # so AND with it is the other field alone; */2 keeps its odd days.
        if self.day_starred or self.weekday_starred:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def _value(text: str, name: str, low: int, high: int) -> int:
    names = _NAMES.get(name, {})
    if text.lower() in names:
        return names[text.lower()]
    if not text.isascii() or not text.isdigit():
        raise CronError(f"the {name} field has '{text[:10]}', expected a number from {low} to {high}")
    value = int(text)  # leading zeros are fine (007), as in cron; the length is bounded by MAX_CRON
    if not low <= value <= high:
        raise CronError(f"the {name} field has {value}, expected {low} to {high}")
    return value


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    items = text.split(",")
    if len(items) > 60:
        raise CronError(f"the {name} field has more than 60 items")
    values: set[int] = set()
    for item in items:
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            # A step larger than the field is fine (*/60 is the first value only), as in cron.
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"the {name} field has a bad step '/{step_text[:10]}'")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, name, low, high), _value(b, name, low, high)
            if start > end:
                raise CronError(f"the {name} field has a range that runs backwards ({base[:20]})")
        else:
            start = _value(base, name, low, high)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> Cron:
    if len(expression) > MAX_CRON:
        raise CronError(f"a cron expression is at most {MAX_CRON} characters")
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(f"'{expression[:60]}' has {len(fields)} fields; cron takes five: minute hour day-of-month month day-of-week")
    parsed = [_field(text, name, low, high) for text, (name, low, high) in zip(fields, _FIELDS)]
    weekdays = frozenset(d % 7 for d in parsed[4])  # 7 is Sunday too
    return Cron(parsed[0], parsed[1], parsed[2], parsed[3], weekdays, fields[2].startswith("*"), fields[4].startswith("*"))


def _local_slots(cron: Cron, start_date, days: int):
    """Local wall-clock datetimes (naive) matching `cron`, from `start_date` on, in order."""
    for offset in range(days):
        date = start_date + timedelta(days=offset)
        if not cron.matches_date(date.year, date.month, date.day):
            continue
        for hour in sorted(cron.hours):
            for minute in sorted(cron.minutes):
                yield datetime(date.year, date.month, date.day, hour, minute)


def _exists(naive: datetime, zone: ZoneInfo) -> bool:
    return naive.replace(tzinfo=zone).astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == naive


def _instant(naive: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time: the first occurrence when it repeats, the first
    minute after the gap when it does not exist."""
    if _exists(naive, zone):
        return naive.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    before = naive
    for _ in range(24 * 60):  # gaps are an hour, rarely more; bounded either way
        before -= timedelta(minutes=1)
        if _exists(before, zone):
            return before.replace(tzinfo=zone, fold=0).astimezone(timezone.utc) + timedelta(minutes=1)
    raise CronError("the time zone has a gap longer than a day")


# A year and a bit: enough for any expression that fires at least yearly. One that does not (30
# February; 29 February, every four years) is refused by app.yaml (bot/config/schedule_models.py).
SEARCH_DAYS = 400


def next_slot(expression: str, zone_name: str, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (aware), as an aware UTC datetime; None if none within a year."""
    cron, zone = parse_cron(expression), ZoneInfo(zone_name)
    local_after = after.astimezone(zone)
    for naive in _local_slots(cron, local_after.date() - timedelta(days=1), SEARCH_DAYS + 2):
        instant = _instant(naive, zone)
        if instant > after:  # gap times mapping to an instant already passed are skipped: it fires once
            return instant
    return None


def previous_slot(expression: str, zone_name: str, at: datetime) -> datetime | None:
    """The last slot at or before `at` (aware), within the last 400 days; None if none."""
    cron, zone = parse_cron(expression), ZoneInfo(zone_name)
    local = at.astimezone(zone)
    start = local.date() - timedelta(days=SEARCH_DAYS)
    best: datetime | None = None
    # Walk backwards day by day from today: the first day with a slot at or before `at` wins.
    for offset in range(SEARCH_DAYS + 1):
        date = local.date() - timedelta(days=offset)
        if date < start:
            break
        candidates = [_instant(n, zone) for n in _local_slots(cron, date, 1)]
        candidates = [c for c in candidates if c <= at]
        if candidates:
            best = max(candidates)
            break
    return best
