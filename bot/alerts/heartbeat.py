"""Who watches the watcher (alerts.heartbeat): Alertmanager's always-firing Watchdog alert must keep arriving.

Each arrival moves `last_seen` on (beat). A periodic job (`alerts.heartbeat`, every 30 s) takes the
pipeline for down once the alert is overdue by the configured interval; an arrival while down takes it
for up again. The check is registered only when alerts.heartbeat is configured (jobs_for): unwatched,
it would leave a scheduled_jobs row every 30 s for nothing (ended rows are kept a week, schedule.retention).
Each change is a conditional UPDATE that one replica wins, and the winner enqueues the post saying so,
in the same transaction, keyed by the change's number. The post is sent once as pages are (posts.py,
bot.pipeline.markers): its row is written before it goes out and marked delivered after; a run that finds
the row unmarked (the one before died, or its lease ran out, mid-post) looks for the post's marker in the
channel and sends only when it is missing. Until the first arrival, the interval counts from the first check.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from bot.alerts import posts
from bot.alerts.models import AlertHeartbeat, insert_for
from bot.config.types import format_duration
from bot.pipeline.markers import already_posted, marker
from bot.pipeline.messenger import MessagePostFailed
from bot.pipeline.reply import Context, Reply, Section
from bot.schedule import Job, JobType
from bot.schedule import service as jobs

log = logging.getLogger(__name__)
H = AlertHeartbeat
CHECK = "alerts.heartbeat"
POST = "alerts.heartbeat.post"


async def _ensure(session, integration: str, now: datetime) -> None:
    statement = insert_for(session)(H).values(integration=integration, last_seen=now, state="up", changed_at=now, changes=0)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["integration"]))


async def _change(session, integration: str, to: str, where, now: datetime, since: datetime | None) -> None:
    """State `to` when `where` holds; the winner enqueues the post."""
    changed = await session.execute(update(H).where(H.integration == integration, *where)
                                    .values(state=to, changed_at=now, changes=H.changes + 1).returning(H.changes))
    number = changed.scalar()
    if number is not None:
        payload = {"integration": integration, "state": to, "since": since.isoformat() if since else None}
        await jobs.add(session, POST, f"{POST}:{integration}:{number}", now, payload)


async def beat(bot, integration: str, now: datetime) -> None:
    """The heartbeat alert arrived (firing)."""
    async with bot.db.sessions() as session, session.begin():
        await _ensure(session, integration, now)
        down_since = await session.scalar(select(H.last_seen).where(H.integration == integration, H.state == "down"))
        await session.execute(update(H).where(H.integration == integration, H.last_seen < now).values(last_seen=now))
        await _change(session, integration, "up", (H.state == "down",), now, down_since)
    bot.scheduler.wake()


async def check(bot, job: Job) -> None:
    heartbeat = bot.config.alerts.heartbeat
    if heartbeat is None:
        return
    now = bot.clock.now()
    overdue = now - timedelta(seconds=heartbeat.interval)
    async with bot.db.sessions() as session, session.begin():
        await _ensure(session, heartbeat.integration, now)
        last_seen = await session.scalar(select(H.last_seen).where(H.integration == heartbeat.integration))
        await _change(session, heartbeat.integration, "down", (H.state == "up", H.last_seen < overdue), now, last_seen)
    bot.scheduler.wake()


def message(heartbeat, state: str, since: datetime | None, timezone: str) -> str:
    when = since.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z") if since else "its first check"
    if state == "down":
        return (f"The alerting pipeline looks down: no {heartbeat.alertname} alert from {heartbeat.integration} since {when} "
                f"(expected every {format_duration(heartbeat.interval)}). Alerts may not reach opsbot: check Prometheus and Alertmanager.")
    return f"The alerting pipeline is back: {heartbeat.alertname} from {heartbeat.integration} arrives again (silent since {when})."


async def post(bot, job: Job) -> None:
    heartbeat = bot.config.alerts.heartbeat
    if heartbeat is None or heartbeat.integration != job.payload["integration"]:
        return  # the config changed since: nothing to say about a heartbeat nobody watches
    messenger = bot.messengers.get("slack") or bot.messengers.get("console")
    if messenger is None:
        raise MessagePostFailed("no transport is running to say the alerting pipeline's state")
    claimed = await posts.claim(bot.db, job.key, bot.clock.now())
    if claimed is posts.Claim.delivered:
        return
    channel = heartbeat.channel or bot.config.slack.ops_channel
    mark = marker("alerting pipeline", job.key)  # "(alerting pipeline am.3)": the change's number
    if not (claimed is posts.Claim.unsure and await already_posted(messenger, channel, mark)):
        since = datetime.fromisoformat(job.payload["since"]) if job.payload.get("since") else None
        text = message(heartbeat, job.payload["state"], since, bot.config.calendar.timezone)
        await messenger.post(channel, Reply(text=f"{text} {mark}", blocks=[Section(text), Context(mark)]))
    await posts.mark_delivered(bot.db, job.key, bot.clock.now())


CHECK_JOB = JobType(CHECK, check, lease=timedelta(minutes=1), every=timedelta(seconds=30))
POST_JOB = JobType(POST, post, lease=timedelta(minutes=2))


def jobs_for(config) -> list[JobType]:
    """The check only when a heartbeat is watched; the post always, so one enqueued before a restart without
    the heartbeat is still taken (and finds nothing to say)."""
    return [CHECK_JOB, POST_JOB] if config.alerts.heartbeat is not None else [POST_JOB]
