"""A check run in an incident's channel reaches its timeline through the activity feed even when
PostgreSQL blips: the write is retried until stored, and stored once.

The bot reaches PostgreSQL through a TCP proxy (tests/pg_proxy.py) that loses the timeline's
INSERT, or lets it commit and loses the answer, then refuses connections until the test lets
them through again. The test reads the database directly, past the proxy.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest_asyncio

from conftest import wait_until
from health_service import health_service
from pg_proxy import pg_proxy

from bot.incident import service as incidents
from bot.incident.models import IncidentState
from bot.pipeline.request import Request
from bot.schedule.clock import ManualClock

START = datetime(2026, 12, 6, 22, 0, tzinfo=timezone.utc)
TIMELINE_INSERT = b"INSERT INTO incident_timeline"


@pytest_asyncio.fixture
async def api_url():
    async with health_service(200) as url:
        yield url


@pytest_asyncio.fixture
async def proxy():
    async with pg_proxy() as running:
        yield running


def config(url: str) -> str:
    return f"""
version: 1
services:
  api:
    checks:
      - kind: http
        url: {url}
roles:
  ops: {{users: [UOPS1]}}
"""


async def incident_with_channel(db, channel: str) -> int:
    incident = await incidents.open_incident(db, title="api is slow", severity="P2", services=["api"], description="",
                                             playbook=None, opened_by="UOPS1", transport="slack", team="", now=START)
    await incidents.set_fields(db, incident.id, START, channel_id=channel)
    return incident.id


async def checks_on(db, incident_id: int) -> list:
    return [e for e in await incidents.timeline(db, incident_id) if e.kind == "check"]


async def setup(make_bot, open_db, pg_database_url, proxy, api_url):
    direct = open_db(pg_database_url)
    channel = f"CINC{uuid.uuid4().hex[:8].upper()}"
    number = await incident_with_channel(direct, channel)
    clock = ManualClock(START + timedelta(minutes=1))
    bot = await make_bot(config(api_url), proxy.url_for(pg_database_url), clock=clock)
    assert (await incidents.get(bot.db, number)).state is IncidentState.open  # the bot's connections go through the proxy
    return direct, bot, clock, channel, number


async def test_a_timeline_write_lost_in_a_database_blip_is_stored_when_it_is_back(make_bot, open_db, pg_database_url, proxy, api_url):
    direct, bot, clock, channel, number = await setup(make_bot, open_db, pg_database_url, proxy, api_url)
    proxy.lose_next(TIMELINE_INSERT)
    reply = await bot.handle(Request("UOPS1", channel, "health", "api", "console"))
    assert reply.text.startswith("Health: OK")  # the answer does not wait for the timeline
    await wait_until(lambda: proxy.seen == 1)
    # The database is unreachable now: the entry is not stored, and the feed keeps trying.
    await wait_until(lambda: proxy.refused >= 3)
    assert await checks_on(direct, number) == []
    assert bot.activity.pending == 1
    clock.advance(timedelta(minutes=5))
    proxy.accept()
    assert await bot.activity.drain(30)
    [check] = await checks_on(direct, number)
    assert (check.user_id, check.text) == ("UOPS1", reply.text)
    assert check.at == START + timedelta(minutes=1)  # when it happened, not when it was finally stored


async def test_a_timeline_write_whose_answer_is_lost_is_not_stored_twice(make_bot, open_db, pg_database_url, proxy, api_url):
    direct, bot, clock, channel, number = await setup(make_bot, open_db, pg_database_url, proxy, api_url)
    proxy.lose_answer_after(TIMELINE_INSERT)
    reply = await bot.handle(Request("UOPS1", channel, "health", "api", "console"))
    assert reply.text.startswith("Health: OK")
    await wait_until(lambda: proxy.seen == 1)
    # The COMMIT reached PostgreSQL and its answer did not reach the bot: stored, and the bot cannot know.
    await wait_until(lambda: checks_on(direct, number))
    await wait_until(lambda: proxy.refused >= 2)
    assert bot.activity.pending == 1
    proxy.accept()
    assert await bot.activity.drain(30)
    assert len(await checks_on(direct, number)) == 1
    # The feed still works as before once the database is back.
    await bot.handle(Request("UOPS1", channel, "health", "api", "console"))
    assert await bot.activity.drain(30)
    assert len(await checks_on(direct, number)) == 2
