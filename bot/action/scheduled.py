"""The action slice's periodic work, run by the scheduler (bot.schedule).

One job, every 30 seconds: expire approval requests whose time is up, and fail those a
stopped process left approved or running, so their service locks are released. Both steps
are conditional UPDATEs, so a slot run late, or run again after a lost claim, changes
nothing twice.
"""
from __future__ import annotations

from datetime import timedelta

from bot.action.flow import recover_stale, sweep_expired
from bot.schedule import Job, JobType

SWEEP = "action.sweep"


async def sweep(bot, job: Job | None = None) -> None:
    """Both steps; an error in the first (a message that cannot be edited, say) is raised after the
    second ran, so one stuck request does not keep stranded ones locked."""
    try:
        await sweep_expired(bot)
    finally:
        await recover_stale(bot)


JOBS = [JobType(SWEEP, sweep, every=timedelta(seconds=30), lease=timedelta(minutes=5))]
