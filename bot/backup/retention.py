"""Which backups may go (runbooks 000 and 001): one pure function of the rows, "now" and what is in use.

Every path that deletes backups asks plan_retention, through service.apply_retention: the pg_backup
kind after a backup, /backup retention and the backup schedules. Of one database's backups whose file
still exists it keeps:
  - the newest of each calendar day (UTC) for `daily_days` days (today is day 1),
  - the newest of each ISO week for `weekly_weeks` weeks (this week is week 1),
  - nothing older than `max_age_days`, whatever the two rules above keep,
and, whatever those rules say, NEVER deletes
  - a backup an open request names (a pending, approved or running /restore of it),
  - the newest verified backup, whatever its age: a restore always has something,
  - a backup younger than `min_age` (24 h by default): the backup a runbook takes before a risky
    operation outlives the scheduled one that follows it.
"The newest of a day (week)" prefers a verified backup: an unverified one never displaces it.
Everything else goes. Deleting a file keeps its row, marked deleted (deleted_at).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config.types import format_duration


@dataclass
class RetentionPlan:
    keep: list = field(default_factory=list)  # Backup rows, newest first
    delete: list = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # backup id -> why it is kept / goes
    # Would go, but this replica cannot see the file: left as they are (service.apply_retention fills it).
    unseen: list = field(default_factory=list)


def plan_retention(backups: list, retention, now: datetime, in_use: frozenset[int] | set[int] = frozenset()) -> RetentionPlan:
    """Split `backups` (one database's, not deleted) into keep and delete; `in_use`: ids open requests name."""
    rows = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)
    plan = RetentionPlan()
    kept: dict[int, str] = {}
    # The three protections first: no rule below can take them away.
    for b in rows:
        if b.id in in_use:
            kept[b.id] = "named by an open request"
    newest_verified = next((b for b in rows if b.verified), None)
    if newest_verified is not None:
        kept.setdefault(newest_verified.id, "newest verified backup")
    min_age = timedelta(seconds=retention.min_age)
    for b in rows:
        if now - b.created_at < min_age:
            kept.setdefault(b.id, f"younger than {format_duration(retention.min_age)}")
    today = now.date()
    this_week = now.isocalendar()[:2]
    max_age = timedelta(days=retention.max_age_days)

    def best(candidates: list):
        verified = [b for b in candidates if b.verified]
        return (verified or candidates)[0]  # rows are newest first

    by_day: dict = {}
    by_week: dict = {}
    for b in rows:
        by_day.setdefault(b.created_at.date(), []).append(b)
        by_week.setdefault(tuple(b.created_at.isocalendar()[:2]), []).append(b)
    for day, candidates in by_day.items():
        if 0 <= (today - day).days < retention.daily_days:
            chosen = best(candidates)
            if now - chosen.created_at <= max_age:
                kept.setdefault(chosen.id, f"newest of {day.isoformat()}")
    for week, candidates in by_week.items():
        if _weeks_between(week, this_week) < retention.weekly_weeks:
            chosen = best(candidates)
            if now - chosen.created_at <= max_age:
                kept.setdefault(chosen.id, f"newest of week {week[0]}-W{week[1]:02d}")
    for b in rows:
        if b.id in kept:
            plan.keep.append(b)
            plan.reasons[b.id] = kept[b.id]
        else:
            plan.delete.append(b)
            age = now - b.created_at
            if age > max_age:
                plan.reasons[b.id] = f"older than {retention.max_age_days} days"
            else:
                plan.reasons[b.id] = "not the newest of its day or week in the retention window"
    return plan


def _weeks_between(week: tuple[int, int], this_week: tuple[int, int]) -> int:
    """Whole ISO weeks from `week` to `this_week` (0: the same week)."""
    start = datetime.fromisocalendar(week[0], week[1], 1)
    end = datetime.fromisocalendar(this_week[0], this_week[1], 1)
    return max(0, (end - start).days // 7)
