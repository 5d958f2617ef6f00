"""The headline redrawn after its alert list changed: booked in the list's own transaction, run by the scheduler.

A notification never waits on Slack: the webhook is answered once the list is stored, and the redraw is
a scheduled job (`alerts.headline`), durable like every promise for later (a replica dying before it runs
leaves the row for another). The key is the incident and a REDRAW_EVERY slot, so a storm of repeats books
one chat.update per slot, not one per notification; it runs at the slot's end and draws the list as it is
then (lifecycle.refresh_headline reads the rows afresh).
"""
from __future__ import annotations

import weakref
from datetime import datetime, timedelta

from bot.incident import lifecycle
from bot.incident import service as incidents
from bot.schedule import Job, JobType
from bot.schedule import service as jobs
from bot.schedule.jobs import EPOCH

KIND = "alerts.headline"
REDRAW_EVERY = 30  # seconds: how stale a headline's counts may be; at most one redraw per incident per slot (each costs a chat.update)


# Per database engine, the key this process last saw committed for each incident: a repeat in the same slot
# skips the INSERT (ON CONFLICT would ignore it anyway). Only a shortcut: another replica's booking is found
# by the key's conflict, and a process that restarts books again.
_booked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MAX_REMEMBERED = 10_000


async def book(session, incident_id: int, now: datetime) -> None:
    """In the caller's transaction: the incident's headline is redrawn at the end of this slot."""
    elapsed = int((now - EPOCH).total_seconds())
    due = EPOCH + timedelta(seconds=elapsed - elapsed % REDRAW_EVERY + REDRAW_EVERY)
    key = f"{KIND}:{incident_id}:{int((due - EPOCH).total_seconds())}"
    if _booked.get(session.bind, {}).get(incident_id) == key:
        return
    await jobs.add(session, KIND, key, due, {"incident": incident_id})
    session.sync_session.info.setdefault("alerts.booked", []).append((incident_id, key))


def committed(session) -> None:
    """After the caller's transaction committed: what it booked is stored."""
    booked = _booked.setdefault(session.bind, {})
    if len(booked) > MAX_REMEMBERED:
        booked.clear()
    booked.update(session.sync_session.info.pop("alerts.booked", ()))


async def run(bot, job: Job) -> None:
    try:
        incident = await incidents.get(bot.db, int(job.payload["incident"]))
    except incidents.NoSuchIncident:
        return
    await lifecycle.refresh_headline(bot, incident)


JOBS = [JobType(KIND, run, lease=timedelta(minutes=2))]
