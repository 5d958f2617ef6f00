"""Who a rotation puts on call at a given time, from app.yaml alone (overrides are in service.py).

The anchor is the first `handoff_day` at `handoff_time` (local, the rotation's zone) on or
after `starts`; shift k starts at anchor + k * shift and belongs to members[k mod n]. Times
before the anchor have negative k, so the answer is defined for any time.

A shift of whole days steps in local calendar days and is localised again on each date, so
a 09:00 hand-off stays 09:00 local across daylight-saving changes (that shift is 23 or 25
hours long); a hand-off time that does not exist or occurs twice that day resolves with
fold=0, the offset in force before the change. Any other shift (12h, 36h) steps in absolute
time. At exactly the hand-off instant the new member is on call.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.config.incident_models import WEEKDAYS, Rotation, clock_time
from bot.schedule.business_hours import as_utc, local_instant

DAY = 86400


@dataclass(frozen=True)
class Shift:
    user: str
    starts: dt.datetime  # UTC, inclusive
    ends: dt.datetime  # UTC, exclusive: the next member's start


def shift_at(rotation: Rotation, at: dt.datetime) -> Shift:
    """The shift covering `at` (timezone-aware)."""
    return _shift(rotation, _index(rotation, as_utc(at)))


def shifts(rotation: Rotation, at: dt.datetime, count: int) -> list[Shift]:
    """The shift covering `at` and the `count - 1` after it, in order."""
    if count < 0:
        raise ValueError("count must not be negative")
    first = _index(rotation, as_utc(at))
    return [_shift(rotation, first + i) for i in range(count)]


def _anchor_date(rotation: Rotation) -> dt.date:
    ahead = (WEEKDAYS.index(rotation.handoff_day) - rotation.starts.weekday()) % 7
    return rotation.starts + dt.timedelta(days=ahead)


def _whole_days(rotation: Rotation) -> int | None:
    seconds = int(rotation.shift)
    return seconds // DAY if seconds % DAY == 0 else None


def _start(rotation: Rotation, k: int) -> dt.datetime:
    """Start of shift k, UTC."""
    zone = ZoneInfo(rotation.timezone)
    anchor_date = _anchor_date(rotation)
    days = _whole_days(rotation)
    if days is not None:
        return local_instant(anchor_date + dt.timedelta(days=k * days), clock_time(rotation.handoff_time), zone)
    anchor = local_instant(anchor_date, clock_time(rotation.handoff_time), zone)
    return anchor + k * dt.timedelta(seconds=int(rotation.shift))


def _index(rotation: Rotation, at: dt.datetime) -> int:
    """The k with start(k) <= at < start(k + 1)."""
    anchor = _start(rotation, 0)
    k = (at - anchor) // dt.timedelta(seconds=int(rotation.shift))
    # Exact for absolute shifts; for local days a DST change moves a start by at most a few
    # hours against the estimate, so at most one step either way is needed.
    while _start(rotation, k) > at:
        k -= 1
    while _start(rotation, k + 1) <= at:
        k += 1
    return k


def _shift(rotation: Rotation, k: int) -> Shift:
    return Shift(rotation.members[k % len(rotation.members)], _start(rotation, k), _start(rotation, k + 1))
