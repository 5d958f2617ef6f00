"""A window's posts in the maintenance channel, run by the scheduler (bot.schedule).

Three jobs per window, keyed by its id (`maintenance.announce:<id>`, `maintenance.start:<id>`,
`maintenance.end:<id>`) and enqueued with the window (service.create), so each is one row and
runs once across replicas. Each reads the window first: a cancelled window is not announced
and does not start; /maintenance end moves the end job to now.

The channel is maintenance.channel, else slack.ops_channel; the post goes out on Slack when
this process runs it, else on the console.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from bot.maintenance import views
from bot.maintenance.service import ANNOUNCE, END, START, get, key
from bot.pipeline.messenger import MessagePostFailed
from bot.pipeline.reply import Reply
from bot.schedule import Job, JobState, JobType
from bot.schedule import service as jobs

log = logging.getLogger(__name__)


def channel_of(config) -> str:
    return config.maintenance.channel or config.slack.ops_channel or ""


async def _post(bot, reply: Reply) -> None:
    messenger = bot.messengers.get("slack") or bot.messengers.get("console")
    if messenger is None:
        raise MessagePostFailed("no transport is running to post maintenance messages")
    channel = channel_of(bot.config)
    if not channel and messenger is bot.messengers.get("slack"):
        log.warning("maintenance post not sent: set maintenance.channel or slack.ops_channel in app.yaml")
        return
    await messenger.post(channel, reply)


async def run_announce(bot, job: Job) -> None:
    window = await get(bot.db, job.payload["window"])
    if window is None or window.ended_at is not None:
        return  # cancelled before its announcement
    await _post(bot, views.announcement(window, bot.config, bot.clock.now()))


async def run_start(bot, job: Job) -> None:
    window = await get(bot.db, job.payload["window"])
    now = bot.clock.now()
    if window is None or window.cancelled or window.until <= now:
        return  # cancelled, or over before this ran (its end is posted by the end job)
    await _post(bot, views.started(window, bot.config, now))


async def run_end(bot, job: Job) -> None:
    window = await get(bot.db, job.payload["window"])
    if window is None:
        return
    if window.cancelled:
        announced = await jobs.get(bot.db, key(ANNOUNCE, window.id))
        if announced is None or announced.state != JobState.done:
            return  # nobody was told of it: nothing to take back
    await _post(bot, views.ended(window, bot.config, bot.clock.now()))


JOBS = [
    JobType(ANNOUNCE, run_announce, lease=timedelta(minutes=2)),
    JobType(START, run_start, lease=timedelta(minutes=2)),
    JobType(END, run_end, lease=timedelta(minutes=2)),
]
