"""Maintenance posts and incident update reminders go out exactly once, as pages do, with two
schedulers (two Bots on one PostgreSQL database) and a lease that runs out mid-post.

Replica A claims the job; its chat.postMessage reaches the Slack double, which holds the answer.
Either Slack took the message and answers late (`took`), or it never took it and refuses it in
the end. Meanwhile the ManualClock passes the job's lease, so replica B takes the job back and
runs it: it finds the post's row written and not marked delivered, looks for the post's marker
in the channel's history, and sends only when it is not there. One message arrives either way.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from conftest import BOT_TOKEN, wait_until
from slack_double import TEAM_ID, SlackDouble
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from test_escalation import pg_template, pg_url, settle  # noqa: F401  (fixtures: a PostgreSQL database per test)

from bot.incident.models import TimelineEntry
from bot.maintenance.models import MaintenancePost
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.schedule import JobState, ManualClock
from bot.schedule.models import ScheduledJob
from bot.transport.slack_channels import SlackWorkspaceMessenger

UTC = timezone.utc
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday
LEASE = timedelta(minutes=2)  # the lease of maintenance.* and incident.remind jobs

CONFIG = """
version: 1
services:
  backend:
    owners: [ops]
    checks:
      - {kind: tcp, host: 127.0.0.1, port: 9, timeout: 2s}
roles:
  ops: {users: [UOPS1, UOPS2]}
slack:
  incidents_channel: C0INCIDENTS
maintenance:
  channel: C0MAINT
severities:
  P2:
    respond_within: 4h
    update_reminder: 30m
    escalation:
      - {users: [UONC1]}
"""


async def replica(make_bot, url: str, clock: ManualClock, double: SlackDouble):
    """A Bot on `url` whose Slack messenger talks to `double`, its scheduler running, as serve wires it."""
    bot = await make_bot(CONFIG, database_url=url, clock=clock, api_url=double.api_url)
    bot.messengers["slack"] = SlackWorkspaceMessenger(AsyncWebClient(token=BOT_TOKEN, base_url=double.api_url))
    bot.scheduler.start()
    return bot


async def say(bot, command: str, text: str) -> str:
    reply = await bot.handle(Request("UOPS1", "C0OPS", command, text, "slack", team_id=TEAM_ID))
    assert reply.outcome is Outcome.ok, reply.text
    return reply.text


def answered_late(double: SlackDouble, words: str, *, took: bool):
    """The first chat.postMessage whose text has `words`: Slack stores it (`took`) or not, and answers
    only once `release` is set (ok when it took it, else refused). Every other call as usual."""
    held: list[str] = []
    release = asyncio.Event()

    async def post_message(args):
        if words in str(args.get("text", "")) and not held:
            held.append(str(args.get("channel")))
            answer = double._chat_post_message(args) if took else {"ok": False, "error": "request_timeout"}
            await release.wait()
            return answer
        return double._chat_post_message(args)

    double.set_handler("chat.postMessage", post_message)
    return held, release


def arrived(double: SlackDouble, words: str) -> list[str]:
    """Texts of the messages Slack holds (what people see) that contain `words`."""
    return [m["text"] for (_, _), m in sorted(double.messages.items()) if words in m.get("text", "")]


async def job(bot, key: str) -> ScheduledJob:
    async with bot.db.sessions() as session:
        return await session.scalar(select(ScheduledJob).where(ScheduledJob.key == key))


async def taken_back_and_done(bot, key: str) -> bool:
    row = await job(bot, key)
    return row.state is JobState.done and row.attempts == 2


@dataclass
class Rig:
    double: SlackDouble
    a: object  # the two replicas: Bots on one database, their schedulers running
    b: object
    held: list[str]  # the channel of the post whose answer Slack holds, once it arrived
    release: asyncio.Event  # Slack answers it


@contextlib.asynccontextmanager
async def two_replicas(make_bot, url: str, clock: ManualClock, words: str, *, took: bool):
    """A Slack double that holds the answer to the first post with `words` (answered_late), and two replicas sending to it."""
    async with SlackDouble(bot_token=BOT_TOKEN) as double:
        held, release = answered_late(double, words, took=took)
        bots = [await replica(make_bot, url, clock, double) for _ in range(2)]
        try:
            yield Rig(double, *bots, held, release)
        finally:
            release.set()
            for bot in bots:
                await bot.scheduler.stop()


async def lease_runs_out_mid_post(clock: ManualClock, rig: Rig, key: str) -> None:
    """The replica running `key` waits on Slack; the lease runs out and a replica takes the job back and
    finishes it (either one: the first run's replica claims again as soon as its loop turns, which it
    does when one of its periodic jobs ends); then Slack answers the first run."""
    await wait_until(lambda: rig.held, timeout=10)
    clock.advance(LEASE)
    try:
        await wait_until(lambda: taken_back_and_done(rig.a, key), timeout=20)
    finally:
        rig.release.set()


@pytest.mark.parametrize("took", [True, False], ids=["slack-took-it", "slack-never-took-it"])
async def test_a_maintenance_announcement_goes_out_once_when_its_lease_runs_out_mid_post(make_bot, pg_url, took):
    clock = ManualClock(START)
    async with two_replicas(make_bot, pg_url, clock, "Scheduled maintenance #1", took=took) as rig:
        double, a, b = rig.double, rig.a, rig.b
        await say(a, "maintenance", 'schedule 2026-11-20T12:00 1h backend "disk swap"')  # short notice: announced now
        await lease_runs_out_mid_post(clock, rig, "maintenance.announce:1")
        await wait_until(lambda: len(double.calls_to("chat.postMessage")) == (1 if took else 2), timeout=10)  # the held one answered
        await settle(clock, a, b)

        [announcement] = arrived(double, "Scheduled maintenance #1")
        assert announcement.endswith(" (maintenance announce 1)")
        looked = [c for c in double.calls_to("conversations.history") if c.args.get("channel") == "C0MAINT"]
        assert len(looked) == 1 and looked[0].ok  # the run that took the job back looked before sending
        async with a.db.sessions() as session:
            [row] = (await session.scalars(select(MaintenancePost))).all()
        assert row.key == "maintenance.announce:1" and row.delivered_at == START + LEASE

        # The window's start and end, with both replicas running: once each.
        for hour in (12, 13):
            clock.advance(datetime(2026, 11, 20, hour, 0, tzinfo=UTC) - clock.now())
            await wait_until(lambda: arrived(double, "Maintenance window #1 " + ("started" if hour == 12 else "ended")), timeout=10)
            await settle(clock, a, b)  # both passes over: a second post, if there were one, is in
        posts = [re.sub(r" \(maintenance \w+ 1\)$", "", text) for text in arrived(double, "aintenance")]
        ahead = "2h" if took else "1h 58m"  # Slack never took the first: the retry writes it anew, two minutes on
        assert posts == [f"Scheduled maintenance #1 in {ahead}: backend from 12:00 UTC to 13:00 UTC (1h): disk swap",
                         "Maintenance window #1 started: backend until 13:00 UTC: disk swap",
                         "Maintenance window #1 ended: backend."]


@pytest.mark.parametrize("took", [True, False], ids=["slack-took-it", "slack-never-took-it"])
async def test_an_update_reminder_goes_out_once_when_its_lease_runs_out_mid_post(make_bot, pg_url, took):
    clock = ManualClock(START)
    async with two_replicas(make_bot, pg_url, clock, "has had no update", took=took) as rig:
        double, a, b = rig.double, rig.a, rig.b
        await say(a, "incident", "open P2 Disk filling on backend --service backend")
        await wait_until(lambda: arrived(double, "is not acknowledged"), timeout=10)  # the page, before the reminder is due
        await settle(clock, a, b)
        clock.advance(timedelta(minutes=30))
        await lease_runs_out_mid_post(clock, rig, "incident.remind:1:1:1")
        await settle(clock, a, b)  # the held answer is in, and both replicas are idle

        [reminder] = arrived(double, "has had no update")
        since = "30m" if took else "32m"  # Slack never took the first: the retry writes it anew, two minutes on
        assert reminder.startswith(f"<@UOPS1> INC-1 has had no update for {since}.") and reminder.endswith(" (update reminder 1.1.1)")
        async with a.db.sessions() as session:
            [entry] = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "reminder"))).all()
        assert entry.key == "incident.remind:1:1:1" and entry.data == {"delivered": True}

        # The next one, half an hour on, with both replicas running: once.
        clock.advance(timedelta(minutes=30) - LEASE)
        await wait_until(lambda: len(arrived(double, "has had no update")) == 2, timeout=10)
        await settle(clock, a, b)
        assert len(arrived(double, "has had no update")) == 2
