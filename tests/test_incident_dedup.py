"""One open incident per de-duplication key, decided by the database (a partial unique index on
incidents.dedup_key over open incidents), on PostgreSQL and on SQLite.

Two replicas opening for the same key at once open one incident and plan one set of pages; the
loser's request goes onto the winner's timeline. Two schedules reading the same failing check in
the same minute are the case from the field.
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from health_service import health_service
from test_escalation import pg_template, pg_url  # noqa: F401 (fixtures: a migrated database of the test's own)
from test_schedules import Channel

from bot.incident import service as incidents
from bot.incident.models import Incident
from bot.incident.opening import OpenRequest, open_or_join
from bot.migrate import upgrade_async
from bot.pipeline.request import Request
from bot.schedule.clock import ManualClock
from bot.schedule.models import ScheduledJob
from bot.schedules.models import ScheduleIncident

UTC = timezone.utc
START = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)


def config(service: str = "api", url: str = "http://127.0.0.1:9/health", schedules: str = "") -> str:
    return f"""
version: 1
services:
  {service}:
    checks:
      - kind: http
        url: {url}
roles:
  ops: {{users: [UOPS1, UOPS2]}}
slack:
  ops_channel: "#ops"
{schedules}
"""


def request(key: str, title: str = "api is down", user: str = "opsbot") -> OpenRequest:
    return OpenRequest(severity="P2", title=title, services=[], description="the reading is red", playbook=None,
                       user_id=user, channel_id="#ops", transport="slack", team_id="", dedup_key=key)


async def replica(make_bot, database_url: str, clock: ManualClock, text: str | None = None):
    bot = await make_bot(text or config(), database_url, clock=clock)
    recorder = bot.messengers["slack"] = Channel()
    return bot, recorder


async def with_key(bot, key: str) -> list[Incident]:
    async with bot.db.sessions() as session:
        return list((await session.execute(select(Incident).where(Incident.dedup_key == key))).scalars())


async def pings(bot, incident_id: int) -> int:
    async with bot.db.sessions() as session:
        query = select(func.count()).select_from(ScheduledJob).where(ScheduledJob.key.startswith(f"incident.ping:{incident_id}:"))
        return await session.scalar(query)


async def race_two_replicas(make_bot, database_url: str) -> None:
    clock = ManualClock(START)
    one, first = await replica(make_bot, database_url, clock)
    two, second = await replica(make_bot, database_url, clock)
    alone = (await open_or_join(one, request(f"alone-{uuid.uuid4().hex}"))).incident  # what one opening plans
    for _ in range(5):  # five rounds: each must be won once whichever replica is ahead
        key = f"check:api/http:{uuid.uuid4().hex}"
        headlines = len(first.posts) + len(second.posts)
        results = await asyncio.gather(open_or_join(one, request(key)), open_or_join(two, request(key, user="UOPS2")))
        [opened] = [r for r in results if not r.joined]
        [joined] = [r for r in results if r.joined]
        assert joined.incident.id == opened.incident.id
        assert joined.reply.text == f"{opened.incident.ref} is already open for this (P2: api is down); added to its timeline."
        assert [i.id for i in await with_key(one, key)] == [opened.incident.id]
        entries = await incidents.timeline(one.db, opened.incident.id)
        assert [e.kind for e in entries].count("opened") == 1
        [again] = [e for e in entries if e.kind == "repeated"]
        assert again.data["dedup_key"] == key and again.text == "api is down"
        # One headline (no channels without a ChannelAdmin messenger), and the pages of one incident only.
        assert len(first.posts) + len(second.posts) - headlines == 1
        assert await pings(one, opened.incident.id) == await pings(one, alone.id) > 0


async def test_two_replicas_opening_the_same_key_at_once_open_one_incident_on_postgresql(make_bot, pg_database_url):
    await race_two_replicas(make_bot, pg_database_url)


async def test_two_replicas_opening_the_same_key_at_once_open_one_incident_on_sqlite(make_bot, sqlite_url):
    await upgrade_async(sqlite_url)
    await race_two_replicas(make_bot, sqlite_url)


async def test_a_resolved_incident_frees_its_key_and_is_not_reopened_over_a_newer_one(make_bot):
    bot, _ = await replica(make_bot, None, ManualClock(START))
    first = (await open_or_join(bot, request("check:api/http"))).incident
    answer = await bot.handle(Request("UOPS1", "C1", "incident", f"resolve {first.id} fixed", "console"))
    assert "resolved" in answer.text
    second = await open_or_join(bot, request("check:api/http"))
    assert not second.joined and second.incident.id != first.id
    reopen = await bot.handle(Request("UOPS1", "C1", "incident", f"reopen {first.id}", "console"))
    assert reopen.text == (f"{first.ref} cannot be reopened while {second.incident.ref} is open for the same thing; "
                           "follow that one.")
    assert (await incidents.get(bot.db, first.id)).state.value == "resolved"
    # Without a key nothing is de-duplicated: two openings are two incidents.
    plain = [await open_or_join(bot, OpenRequest("P2", "db slow", [], "", None, "UOPS1", "C1", "console", "")) for _ in range(2)]
    assert not any(p.joined for p in plain) and plain[0].incident.id != plain[1].incident.id


async def test_two_schedules_reading_the_same_failing_check_in_one_minute_open_one_incident(make_bot, pg_url):  # noqa: F811
    # A database of its own: schedule ticks are keyed by time, and the session's shared database would
    # hand this test's 07:00 tick to another test's replicas at the same instant (and theirs to these).
    pg_database_url = pg_url
    async with health_service(500) as url:
        # Names of this test's own: the session's PostgreSQL database is shared with other tests.
        nonce = uuid.uuid4().hex[:8]
        service = f"api{nonce}"
        schedules = f"""
schedules:
  early{nonce}:
    cron: "0 * * * *"
    run: health
    services: [{service}]
    open_incident: P2
  late{nonce}:
    cron: "0 * * * *"
    run: health
    services: [{service}]
    open_incident: P2
"""
        clock = ManualClock(START)
        text = config(service, url, schedules)
        one, first = await replica(make_bot, pg_database_url, clock, text)
        two, second = await replica(make_bot, pg_database_url, clock, text)
        await asyncio.gather(one.scheduler.ensure_periodic(), two.scheduler.ensure_periodic())
        await asyncio.gather(one.scheduler.run_due(), two.scheduler.run_due())
        clock.advance(timedelta(minutes=30))  # 07:00: both schedules are due in the same minute
        await asyncio.gather(one.scheduler.ensure_periodic(), two.scheduler.ensure_periodic())
        await asyncio.gather(one.scheduler.run_due(), two.scheduler.run_due())

        key = f"check:{service}/http"
        async with one.db.sessions() as session:
            opened = list((await session.execute(select(Incident).where(Incident.title.startswith(f"{service} http")))).scalars())
        assert len(opened) == 1, [i.ref for i in opened]
        [incident] = opened
        assert incident.dedup_key == key
        async with one.db.sessions() as session:
            rows = list((await session.execute(select(ScheduleIncident).where(ScheduleIncident.item == key))).scalars())
        assert [row.incident_id for row in rows] == [incident.id]
        said = [t for t in first.texts() + second.texts() if t.startswith("Scheduled health check") and nonce in t]
        assert len(said) == 2
        assert sum(f"opened {incident.ref} for {service} http" in t for t in said) == 1
        assert sum(f"{incident.ref} is open already for {service} http" in t for t in said) == 1
        kinds = [e.kind for e in await incidents.timeline(one.db, incident.id)]
        assert kinds.count("opened") == 1 and kinds.count("repeated") == 1


async def test_migration_0011_goes_down_and_up_again_on_sqlite(sqlite_url, open_db):
    from sqlalchemy import inspect

    from bot.migrate import downgrade

    async def indexes() -> dict:
        async with open_db(sqlite_url).engine.connect() as conn:
            return await conn.run_sync(lambda sync: {i["name"]: i for i in inspect(sync).get_indexes("incidents")})

    await upgrade_async(sqlite_url, "0011")
    assert (await indexes())["uq_incidents_dedup_key_open"]["unique"]
    await asyncio.to_thread(downgrade, sqlite_url, "0010")
    assert "uq_incidents_dedup_key_open" not in await indexes()
    await upgrade_async(sqlite_url, "0011")
    assert "uq_incidents_dedup_key_open" in await indexes()
