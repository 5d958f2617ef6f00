"""Every alert of an incident is resolved: the incident resolved (the route's auto_resolve) or a Resolve
button posted in its channel, after the webhook is answered.

Auto-resolution checks the alert list first: an alert that fired again before the job ran (and joined the
incident) keeps it open, and the timeline says why.

Booked as a scheduled job (`alerts.resolution`) keyed like the timeline entry that says it, before that
entry is written, so a crash between the two loses nothing and a second delivery books nothing new. The
note is sent once as pages are (posts.py, bot.pipeline.markers): its row written before it goes out,
marked delivered after; a run that finds the row unmarked looks for the note's marker in the channel first.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.alerts import alert_list, posts, views
from bot.incident import lifecycle
from bot.incident import service as incidents
from bot.incident.models import IncidentState
from bot.incident.notify import channel_of, messenger_for
from bot.pipeline.markers import already_posted, marker
from bot.schedule import Job, JobType
from bot.schedule import service as jobs

log = logging.getLogger(__name__)
KIND = "alerts.resolution"
OPENER = "opsbot"


def still_firing_sentence(firing: int) -> str:
    alerts = "1 alert fires" if firing == 1 else f"{firing} alerts fire"
    return f"Not resolved automatically: {alerts} again."


def key_of(incident_id: int, plan: int, starts: datetime | None) -> str:
    return f"{KIND}:{incident_id}:{plan}:{int(starts.timestamp()) if starts else 0}"


async def book(db, key: str, now: datetime, *, incident_id: int, integration: str, count: int, auto_resolve: bool) -> None:
    payload = {"incident": incident_id, "integration": integration, "alerts": count, "auto_resolve": auto_resolve}
    await jobs.enqueue(db, KIND, key, now, payload)


async def run(bot, job: Job) -> None:
    try:
        incident = await incidents.get(bot.db, int(job.payload["incident"]))
    except incidents.NoSuchIncident:
        return
    if incident.state is IncidentState.resolved:
        return  # someone resolved it first: nothing to offer
    integration, count = job.payload["integration"], int(job.payload["alerts"])
    if job.payload.get("auto_resolve"):
        # The alert may have fired again (and joined the incident) between the resolution and this run.
        firing = await alert_list.firing(bot.db, incident.id)
        if firing:
            entry = incidents.Entry("auto_resolve_skipped", OPENER, still_firing_sentence(firing), {"firing": firing},
                                    key=f"{job.key}:skipped")
            await incidents.add_entry(bot.db, incident.id, entry, bot.clock.now())
            return
        await lifecycle.resolve(bot, incident, OPENER, views.resolved_sentence(integration, count))  # conditional: once
        return
    claimed = await posts.claim(bot.db, job.key, bot.clock.now())
    if claimed is posts.Claim.delivered:
        return
    messenger, channel = messenger_for(bot, incident), channel_of(incident)
    mark = marker("alerts resolved", job.key)
    if not (claimed is posts.Claim.unsure and await already_posted(messenger, channel, mark)):
        await messenger.post(channel, views.resolved_note(incident, integration, count, marker=mark))
    await posts.mark_delivered(bot.db, job.key, bot.clock.now())


JOBS = [JobType(KIND, run, lease=timedelta(minutes=2))]
