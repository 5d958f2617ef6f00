"""The heartbeat's posts go out exactly once, as pages and maintenance posts do, and its check is
scheduled only when a heartbeat is watched.

Two replicas (two Bots on one PostgreSQL database, their schedulers running on a ManualClock) and the
Slack double: replica A runs the "alerting pipeline looks down" post, Slack holds its answer, the lease
runs out and a replica takes the job back. It finds the post's row written and not marked delivered,
looks for the post's marker in the channel's history, and sends only when it is not there: one
message either way (Slack took the first, or never did).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from conftest import BOT_TOKEN, wait_until
from slack_double import SlackDouble
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from test_escalation import pg_template, pg_url, settle  # noqa: F401  (fixtures: a PostgreSQL database per test)
from test_alerts_heartbeat import CONFIG, payload
from test_maintenance_once import answered_late, arrived, taken_back_and_done

from bot.alerts.formats import parse
from bot.alerts.heartbeat import CHECK
from bot.alerts.intake import receive
from bot.alerts.models import AlertPost
from bot.schedule import ManualClock
from bot.schedule.models import ScheduledJob
from bot.transport.slack_channels import SlackWorkspaceMessenger

UTC = timezone.utc
START = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)  # alerts.heartbeat.post's

UNWATCHED = CONFIG.replace("  heartbeat: {integration: am, interval: 5m}\n", "")


def watchdog() -> bytes:
    return json.dumps(payload("Watchdog")).encode()


async def replica(make_bot, url: str, clock: ManualClock, double: SlackDouble):
    bot = await make_bot(CONFIG, database_url=url, clock=clock, api_url=double.api_url)
    bot.messengers["slack"] = SlackWorkspaceMessenger(AsyncWebClient(token=BOT_TOKEN, base_url=double.api_url))
    bot.scheduler.start()
    return bot


@pytest.mark.parametrize("took", [True, False], ids=["slack-took-it", "slack-never-took-it"])
async def test_the_pipeline_down_post_goes_out_once_when_its_lease_runs_out_mid_post(make_bot, pg_url, monkeypatch, took):
    monkeypatch.setenv("TEST_HEARTBEAT_TOKEN", "unused-here-4321")
    clock = ManualClock(START)
    async with SlackDouble(bot_token=BOT_TOKEN) as double:
        held, release = answered_late(double, "alerting pipeline looks down", took=took)
        a, b = [await replica(make_bot, pg_url, clock, double) for _ in range(2)]
        try:
            assert await receive(a, "am", parse(a.config.alerts.integrations["am"], watchdog())) == ["heartbeat"]
            await settle(clock, a, b)
            clock.advance(timedelta(minutes=6))  # overdue by the 5 m interval: the check enqueues the post, a replica runs it
            await wait_until(lambda: held, timeout=20)
            clock.advance(LEASE)
            try:
                await wait_until(lambda: taken_back_and_done(a, "alerts.heartbeat.post:am:1"), timeout=20)
            finally:
                release.set()
            await wait_until(lambda: len(double.calls_to("chat.postMessage")) == (1 if took else 2), timeout=10)
            await settle(clock, a, b)

            [said] = arrived(double, "alerting pipeline")
            assert said.startswith("The alerting pipeline looks down: no Watchdog alert from am since 2026-12-07 03:00 UTC")
            assert said.endswith(" (alerting pipeline am.1)")
            looked = [c for c in double.calls_to("conversations.history") if c.args.get("channel") == "C0OPS"]
            assert len(looked) == 1 and looked[0].ok  # the run that took the job back looked before sending
            async with a.db.sessions() as session:
                [row] = (await session.scalars(select(AlertPost))).all()
            assert row.key == "alerts.heartbeat.post:am:1" and row.delivered_at == START + timedelta(minutes=6) + LEASE
        finally:
            release.set()
            for bot in (a, b):
                await bot.scheduler.stop()


async def check_rows(bot) -> list[str]:
    async with bot.db.sessions() as session:
        return list(await session.scalars(select(ScheduledJob.key).where(ScheduledJob.kind == CHECK)))


async def test_the_heartbeat_check_is_scheduled_only_when_a_heartbeat_is_watched(make_bot, monkeypatch):
    monkeypatch.setenv("TEST_HEARTBEAT_TOKEN", "unused-here-4321")
    unwatched = await make_bot(UNWATCHED, clock=ManualClock(START))
    await unwatched.scheduler.ensure_periodic()
    await unwatched.scheduler.run_due()
    assert await check_rows(unwatched) == []  # no row every 30 s for a heartbeat nobody configured

    watched = await make_bot(CONFIG, clock=ManualClock(START))
    await watched.scheduler.ensure_periodic()
    assert await check_rows(watched) == ["alerts.heartbeat:2026-12-07T03:00:00Z"]
