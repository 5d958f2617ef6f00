"""The schedules slice's jobs: a minute tick that books each schedule's slots, and the slot runs.

The tick enqueues the next slot of every schedule as a job keyed by schedule and slot, so it
fires at its time; the key makes booking it again (every minute, on every replica) a no-op.
After a downtime the tick also books the latest slot that passed without a run: it runs
once, marked late, however many slots were missed.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.schedule import Job, JobType
from bot.schedule import service as jobs
from bot.schedule.cron import next_slot, previous_slot
from bot.schedules.models import ScheduleRun
from bot.schedules.runner import LONG_RUNS, paused, run_slot

TICK = "schedules.tick"
RUN = "schedules.run"
# Backups and the weekly restore test run for as long as a dump does: their job holds its claim
# that long, so no other replica takes it back while it still runs.
RUN_LONG = "schedules.run_long"
# A slot that passed longer ago than this without a run was missed (the bot was down): it runs late.
LATE_AFTER = timedelta(minutes=2)
# How far back a missed slot is still worth posting; older ones are skipped for the next.
MISSED_WINDOW = timedelta(days=2)


def run_key(name: str, slot: datetime) -> str:
    return f"{RUN}:{name}:{slot.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def kind_for(schedule) -> str:
    return RUN_LONG if schedule.run in LONG_RUNS else RUN


async def last_slot_run(db, name: str) -> datetime | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(ScheduleRun.slot).where(ScheduleRun.schedule == name, ScheduleRun.trigger == "cron").order_by(ScheduleRun.slot.desc()).limit(1)
        )


async def tick(bot, job: Job | None = None) -> None:
    now = bot.clock.now()
    for name, schedule in bot.config.schedules.items():
        if await paused(bot.db, name):
            continue
        upcoming = next_slot(schedule.cron, schedule.timezone, now)
        if upcoming is not None:
            await jobs.enqueue(bot.db, kind_for(schedule), run_key(name, upcoming), upcoming, {"schedule": name, "slot": upcoming.isoformat()})
        passed = previous_slot(schedule.cron, schedule.timezone, now)
        if passed is None or now - passed > MISSED_WINDOW:
            continue  # very old slots are not worth a post
        last = await last_slot_run(bot.db, name)
        # A slot that just passed unbooked (a resume, a first start at the minute) runs now, on time;
        # one missed longer ago runs late, but only for a schedule that ran before: a new one does not
        # post yesterday's.
        if (last is None or last < passed) and (now - passed < LATE_AFTER or last is not None):
            # Booked with the slot as its due time: the loop sees it overdue and marks it late.
            await jobs.enqueue(bot.db, kind_for(schedule), run_key(name, passed), passed, {"schedule": name, "slot": passed.isoformat()})


async def run(bot, job: Job) -> None:
    name, slot = job.payload["schedule"], datetime.fromisoformat(job.payload["slot"])
    schedule, now = bot.config.schedules.get(name), bot.clock.now()
    if schedule is None:
        return
    if next_slot(schedule.cron, schedule.timezone, slot - timedelta(seconds=1)) != slot:
        return  # booked under an earlier cron expression: app.yaml changed since
    newest = previous_slot(schedule.cron, schedule.timezone, now)
    if newest is not None and newest > slot:
        return  # a later slot has passed too (a downtime): only the newest is posted, and the tick books it
    await run_slot(bot, name, slot, late=now - slot > LATE_AFTER, takeover=job.attempts > 1)


JOBS = [
    JobType(TICK, tick, every=timedelta(minutes=1), lease=timedelta(minutes=2)),
    JobType(RUN, run, lease=timedelta(minutes=10)),
    JobType(RUN_LONG, run, lease=timedelta(hours=8)),  # longer than a dump's default 6 h timeout
]
