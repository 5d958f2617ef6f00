"""The scheduler's own upkeep: ended jobs are kept a week, then deleted.

Every periodic job leaves a row per slot (the action sweep alone, 2,880 a day); a week is
enough to read back what ran late or failed, and keeps the claim indexes small.
"""
from __future__ import annotations

from datetime import timedelta

from bot.schedule import service
from bot.schedule.jobs import JobType
from bot.schedule.models import Job

KEEP = timedelta(days=7)


async def purge(bot, job: Job) -> None:
    # The slot's own time, not a clock read: a late run purges what that slot would have.
    await service.purge(bot.db, job.due_at - KEEP)


JOBS = [JobType("schedule.purge", purge, every=timedelta(hours=1))]
