"""A window's posts in the maintenance channel, run by the scheduler (bot.schedule).

Three jobs per window, keyed by its id (`maintenance.announce:<id>`, `maintenance.start:<id>`,
`maintenance.end:<id>`) and enqueued with the window (service.create), so each is one row and
runs once across replicas. Each reads the window first: a cancelled window is not announced
and does not start; /maintenance end moves the end job to now.

The channel is maintenance.channel, else slack.ops_channel; the post goes out on Slack when
this process runs it, else on the console.

Each post is sent once as pages are (posts.py, bot.pipeline.markers): its row is written before
it goes out and marked delivered after; a run that finds the row unmarked (the one before died,
or its lease ran out, mid-post) looks for the post's marker in the channel and sends only when
it is missing. That look needs the channel's ID (C...): by name, the post is sent again.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Callable

from bot.maintenance import posts, views
from bot.maintenance.service import ANNOUNCE, END, START, get, key
from bot.pipeline.markers import already_posted, marker
from bot.pipeline.messenger import MessagePostFailed
from bot.pipeline.reply import Reply
from bot.schedule import Job, JobType

log = logging.getLogger(__name__)


def channel_of(config) -> str:
    return config.maintenance.channel or config.slack.ops_channel or ""


async def _post(bot, job: Job, reply: Callable[[str], Reply]) -> None:
    """`reply(marker)` in the maintenance channel, once for the job's key."""
    messenger = bot.messengers.get("slack") or bot.messengers.get("console")
    if messenger is None:
        raise MessagePostFailed("no transport is running to post maintenance messages")
    channel = channel_of(bot.config)
    if not channel and messenger is bot.messengers.get("slack"):
        log.warning("maintenance post not sent: set maintenance.channel or slack.ops_channel in app.yaml")
        return
    claimed = await posts.claim(bot.db, job.key, job.payload["window"], bot.clock.now())
    if claimed is posts.Claim.delivered:
        return
    mark = marker(job.kind.replace(".", " "), job.key)  # "(maintenance announce 3)"
    if not (claimed is posts.Claim.unsure and await already_posted(messenger, channel, mark)):
        await messenger.post(channel, reply(mark))
    await posts.mark_delivered(bot.db, job.key, bot.clock.now())


async def run_announce(bot, job: Job) -> None:
    window = await get(bot.db, job.payload["window"])
    if window is None or window.ended_at is not None:
        return  # cancelled before its announcement
    await _post(bot, job, lambda mark: views.announcement(window, bot.config, bot.clock.now(), marker=mark))


async def run_start(bot, job: Job) -> None:
    window = await get(bot.db, job.payload["window"])
    now = bot.clock.now()
    if window is None or window.cancelled or window.until <= now:
        return  # cancelled, or over before this ran (its end is posted by the end job)
    await _post(bot, job, lambda mark: views.started(window, bot.config, now, marker=mark))


async def run_end(bot, job: Job) -> None:
    window = await get(bot.db, job.payload["window"])
    if window is None:
        return
    if window.cancelled and not await posts.written(bot.db, key(ANNOUNCE, window.id)):
        return  # nobody was told of it: nothing to take back
    # What other slices say at its end (the alerts it held back), gathered before the post is claimed.
    held = [line for note in bot.window_end_notes for line in await note(bot, window)]
    await _post(bot, job, lambda mark: views.ended(window, bot.config, bot.clock.now(), marker=mark, held_alerts=held))


JOBS = [
    JobType(ANNOUNCE, run_announce, lease=timedelta(minutes=2)),
    JobType(START, run_start, lease=timedelta(minutes=2)),
    JobType(END, run_end, lease=timedelta(minutes=2)),
]
