"""The headline redrawn after its alert list changed: booked in the list's own transaction, run by the scheduler.

A notification never waits on Slack: the webhook is answered once the list is stored, and the redraw is
a scheduled job (`alerts.headline`), durable like every promise for later (a replica dying before it runs
leaves the row for another). The key is the incident and a REDRAW_EVERY slot, so a storm of repeats books
one chat.update per slot, not one per notification; it runs at the slot's end and draws the list as it is
then (lifecycle.refresh_headline reads the rows afresh).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from bot.incident import lifecycle
from bot.incident import service as incidents
from bot.schedule import Job, JobType
from bot.schedule import service as jobs
from bot.schedule.jobs import EPOCH

KIND = "alerts.headline"
REDRAW_EVERY = 10  # seconds: how stale a headline's counts may be, and at most one redraw per incident per slot


async def book(session, incident_id: int, now: datetime) -> None:
    """In the caller's transaction: the incident's headline is redrawn at the end of this slot."""
    elapsed = int((now - EPOCH).total_seconds())
    due = EPOCH + timedelta(seconds=elapsed - elapsed % REDRAW_EVERY + REDRAW_EVERY)
    await jobs.add(session, KIND, f"{KIND}:{incident_id}:{int((due - EPOCH).total_seconds())}", due, {"incident": incident_id})


async def run(bot, job: Job) -> None:
    try:
        incident = await incidents.get(bot.db, int(job.payload["incident"]))
    except incidents.NoSuchIncident:
        return
    await lifecycle.refresh_headline(bot, incident)


JOBS = [JobType(KIND, run, lease=timedelta(minutes=2))]
