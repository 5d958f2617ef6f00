"""Escalation (bot/incident/escalation.py) through the durable scheduler, on real PostgreSQL and SQLite.

Every ping is a scheduled job (`incident.ping:{incident}:{plan}:{level}:{repeat}`) run by the bot's
own Scheduler on a ManualClock: time passes by clock.advance(), never by waiting. Pages go through
the Slack messenger (`SlackWorkspaceMessenger`) to the Web API double, so what is checked is what
Slack received: the ping in the incident's channel with live mentions (`<@U…>`, `<!subteam^S…>`)
and a direct message (conversations.open, then chat.postMessage to the D… channel) per user.

Each test gets a database of its own (PostgreSQL: a copy of a migrated template; SQLite: a copy of
a migrated file), because a bot's scheduler claims every due incident.ping in its database.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio
from conftest import BOT_TOKEN, PG_ADMIN_DSN, PG_USER, wait_until
from slack_double import TEAM_ID, SlackDouble
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, insert, select

from bot.config.loader import parse_config
from bot.incident import escalation, planning, service
from bot.incident.planning import PING, PlannedPing, planned_pings
from bot.incident.models import Incident, IncidentState, TimelineEntry
from bot.migrate import upgrade_async
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.schedule import JobState, ManualClock
from bot.schedule import service as jobs
from bot.schedule.models import ScheduledJob
from bot.transport.slack_channels import SlackWorkspaceMessenger

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
# A Tuesday. The primary rotation hands off Mondays 09:00 UTC from Monday 2026-01-05; 46 weeks on,
# shift 46 (from Monday 23 November) is members[46 % 2]: UONCALL1, until Monday 30 November.
START = datetime(2026, 11, 24, 5, 30, tzinfo=UTC)
ON_CALL, LEAD, LEADS_GROUP = "UONCALL1", "ULEAD1", "SLEADS1"
LEASE = timedelta(minutes=2)  # incident.ping's lease (escalation.JOBS)

CONFIG = f"""
version: 1
roles:
  ops: {{users: [UOPS1, UOPS2]}}
  devops-lead: {{users: [{LEAD}], groups: [{LEADS_GROUP}]}}
oncall:
  primary: {{members: [{ON_CALL}, UONCALL2], shift: 7d, starts: 2026-01-05}}
slack:
  incidents_channel: C0INCIDENTS
incidents:
  create_channels: true
severities:
  P0:
    aliases: [Critical]
    respond_within: 15m
    escalation:
      - {{rotation: primary, repeat_every: 5m, max_repeats: 2}}
      - {{role: devops-lead, name: DevOps lead, repeat_every: 5m, max_repeats: 3}}
  P1:
    aliases: [High]
    respond_within: 1h
    escalation:
      - {{rotation: primary, repeat_every: 15m, max_repeats: 3}}
      - {{role: devops-lead, name: DevOps lead}}
"""


# --------------------------------------------------------------------------- planned_pings: when each ping falls due


def matrix(severities: str, calendar: str = "") -> object:
    return parse_config(f"version: 1\nroles:\n  lead: {{users: [{LEAD}]}}\noncall:\n  primary: {{members: [{ON_CALL}]}}\n"
                        f"{calendar}\nseverities:\n{severities}")


def plan_of(config, name: str, start: datetime, from_level: int = 0) -> list[tuple[int, int, datetime]]:
    _, severity = config.severity(name)
    return [(p.level, p.repeat, p.due) for p in planned_pings(severity, config, start, from_level)]


def test_a_p0_chain_pages_level_by_level_and_drops_repeats_past_the_next_level():
    config = matrix("""  P0:
    respond_within: 15m
    escalation:
      - {rotation: primary, repeat_every: 5m, max_repeats: 4}
      - {role: lead, repeat_every: 5m, max_repeats: 3}
  P0-fast:
    respond_within: 15m
    escalation:
      - {rotation: primary, repeat_every: 4m, max_repeats: 5, escalate_after: 10m}
      - {role: lead}
""")
    t = START
    minutes = lambda m: t + timedelta(minutes=m)  # noqa: E731
    # The on-call now, +5, +10; the repeats at +15 and +20 would fall when the lead's level starts: dropped.
    # The last level keeps all its repeats (nobody comes after it).
    assert plan_of(config, "P0", t) == [
        (0, 0, minutes(0)), (0, 1, minutes(5)), (0, 2, minutes(10)),
        (1, 0, minutes(15)), (1, 1, minutes(20)), (1, 2, minutes(25)), (1, 3, minutes(30)),
    ]
    # escalate_after overrides respond_within for its level: the lead at +10; the repeat at +8 stays.
    assert plan_of(config, "P0-fast", t) == [(0, 0, minutes(0)), (0, 1, minutes(4)), (0, 2, minutes(8)), (1, 0, minutes(10))]
    # From a later level (/incident escalate): that level now; a level past the chain is its last one.
    assert plan_of(config, "P0", t, from_level=1) == [(1, 0, minutes(0)), (1, 1, minutes(5)), (1, 2, minutes(10)), (1, 3, minutes(15))]
    assert plan_of(config, "P0-fast", t, from_level=7) == [(1, 0, minutes(0))]
    _, severity = config.severity("P0")
    assert planned_pings(severity, config, t)[0] == PlannedPing(level=0, repeat=0, due=t)


NEXT_DAY = """  P3:
    respond_within: next_business_day
    escalation:
      - {rotation: primary, repeat_every: 4h, max_repeats: 1}
      - {role: lead}
"""


def local(zone: ZoneInfo, *args) -> datetime:
    return datetime(*args, tzinfo=zone)


def test_next_business_day_friday_evening_pages_monday_morning_and_the_next_level_the_day_after():
    config = matrix(NEXT_DAY, "calendar: {timezone: Europe/Berlin}")
    friday_evening = local(BERLIN, 2026, 3, 6, 18, 0)
    assert plan_of(config, "P3", friday_evening) == [
        (0, 0, local(BERLIN, 2026, 3, 9, 9, 0)),  # Monday 09:00 CET, 08:00 UTC
        (0, 1, local(BERLIN, 2026, 3, 9, 13, 0)),  # four hours on, within the day
        (1, 0, local(BERLIN, 2026, 3, 10, 9, 0)),  # the next business day after Monday
    ]
    assert plan_of(config, "P3", friday_evening)[0][2] == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    # Opened within hours: paged at once; the repeat at 20:00 is held to Monday 09:00, when the next
    # level starts, so it is dropped.
    friday_afternoon = local(BERLIN, 2026, 3, 6, 16, 0)
    assert plan_of(config, "P3", friday_afternoon) == [(0, 0, friday_afternoon), (1, 0, local(BERLIN, 2026, 3, 9, 9, 0))]


def test_a_working_hours_severity_counts_its_waits_in_working_time():
    """escalate_after and repeat_every of a next_business_day severity are working time: 4 h from
    Monday 16:00 (09:00-17:00) is Tuesday 12:00, not a night that passes while nobody works."""
    config = matrix("""  P3:
    respond_within: next_business_day
    escalation:
      - {rotation: primary, repeat_every: 2h, max_repeats: 1, escalate_after: 4h}
      - {role: lead}
""", "calendar: {timezone: Europe/Berlin}")
    monday_4pm = local(BERLIN, 2026, 3, 2, 16, 0)
    assert plan_of(config, "P3", monday_4pm) == [
        (0, 0, monday_4pm),
        (0, 1, local(BERLIN, 2026, 3, 3, 10, 0)),  # 1 h on Monday, 1 h on Tuesday
        (1, 0, local(BERLIN, 2026, 3, 3, 12, 0)),  # 1 h on Monday, 3 h on Tuesday
    ]


# 2026: Europe/Berlin springs forward on Sunday 29 March and falls back on Sunday 25 October;
# America/New_York on Sunday 8 March and Sunday 1 November. Each Friday is before the change.
DST_WEEKENDS = [
    pytest.param("Europe/Berlin", date(2026, 3, 27), (7, 0), id="berlin-spring"),  # Monday 09:00 CEST = 07:00 UTC (Friday's was 08:00)
    pytest.param("Europe/Berlin", date(2026, 10, 23), (8, 0), id="berlin-autumn"),  # 09:00 CET = 08:00 UTC (Friday's was 07:00)
    pytest.param("America/New_York", date(2026, 3, 6), (13, 0), id="new-york-spring"),  # 09:00 EDT (Friday's EST was 14:00 UTC)
    pytest.param("America/New_York", date(2026, 10, 30), (14, 0), id="new-york-autumn"),  # 09:00 EST (Friday's EDT was 13:00 UTC)
]


@pytest.mark.parametrize("zone_name, friday, monday_utc", DST_WEEKENDS)
def test_business_hours_stay_0900_local_across_a_daylight_saving_change(zone_name, friday, monday_utc):
    zone = ZoneInfo(zone_name)
    config = matrix(NEXT_DAY, f"calendar: {{timezone: {zone_name}}}")
    monday, tuesday = friday + timedelta(days=3), friday + timedelta(days=4)
    friday_morning_utc = local(zone, friday.year, friday.month, friday.day, 9, 0).astimezone(UTC)

    evening = plan_of(config, "P3", local(zone, friday.year, friday.month, friday.day, 18, 0))
    assert [(level, repeat, due.astimezone(zone).date(), due.astimezone(zone).time().isoformat()) for level, repeat, due in evening] == [
        (0, 0, monday, "09:00:00"), (0, 1, monday, "13:00:00"), (1, 0, tuesday, "09:00:00"),
    ]
    first = evening[0][2].astimezone(UTC)
    assert (first.hour, first.minute) == monday_utc
    assert (first.hour, first.minute) != (friday_morning_utc.hour, friday_morning_utc.minute)  # the offset did change

    # A repeat held over the weekend lands on Monday 09:00 local too, and gives way to the next level.
    afternoon = plan_of(config, "P3", local(zone, friday.year, friday.month, friday.day, 16, 0))
    assert [(level, repeat) for level, repeat, _ in afternoon] == [(0, 0), (1, 0)]
    assert afternoon[1][2].astimezone(zone).replace(tzinfo=None) == datetime(monday.year, monday.month, monday.day, 9, 0)


def test_holidays_are_skipped():
    # Easter 2026 in Berlin: Good Friday 3 April and Easter Monday 6 April; Wednesday 8 April off too.
    config = matrix(NEXT_DAY, "calendar: {timezone: Europe/Berlin, holidays: [2026-04-03, 2026-04-06, 2026-04-08]}")
    assert plan_of(config, "P3", local(BERLIN, 2026, 4, 2, 18, 0)) == [
        (0, 0, local(BERLIN, 2026, 4, 7, 9, 0)),  # Tuesday: Friday, the weekend and Monday are off
        (0, 1, local(BERLIN, 2026, 4, 7, 13, 0)),
        (1, 0, local(BERLIN, 2026, 4, 9, 9, 0)),  # Thursday: Wednesday is off
    ]


# --------------------------------------------------------------------------- databases of their own


@pytest_asyncio.fixture(scope="module")
async def pg_template():
    """A migrated PostgreSQL database each test copies (CREATE DATABASE ... TEMPLATE: no migration per test)."""
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    name = f"opsbot_escalation_tpl_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await upgrade_async(f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}")
        yield admin, name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest_asyncio.fixture(scope="module")
async def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("escalation") / "template.db"
    await upgrade_async(f"sqlite+aiosqlite:///{path}")
    return path


@pytest_asyncio.fixture
async def pg_url(pg_template):
    admin, template = pg_template
    name = f"opsbot_escalation_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database(request, backend: str, tmp_path, sqlite_template) -> str:
    if backend == "postgres":
        return request.getfixturevalue("pg_url")
    path = tmp_path / "escalation.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path, sqlite_template):
    """A database of this test's own (a plain fixture: no event loop runs here, so the async ones may)."""
    return database(request, request.param, tmp_path, sqlite_template)


@pytest.fixture(params=[("postgres", 1000), ("sqlite", 100)], ids=["postgres-1000", "sqlite-100"])
def crowd(request, tmp_path, sqlite_template):
    """(database, how many incidents) for two replicas."""
    backend, count = request.param
    return database(request, backend, tmp_path, sqlite_template), count


# --------------------------------------------------------------------------- helpers


async def incident_bot(make_bot, url: str, clock: ManualClock, double: SlackDouble):
    """A Bot on `url` and `clock` whose Slack messenger talks to `double`, as serve wires it."""
    bot = await make_bot(CONFIG, database_url=url, clock=clock, api_url=double.api_url)
    bot.messengers["slack"] = SlackWorkspaceMessenger(AsyncWebClient(token=BOT_TOKEN, base_url=double.api_url))
    return bot


async def say(bot, text: str, user: str = "UOPS1") -> str:
    """/incident <text> typed in Slack by `user`; the answer, which must not be a refusal."""
    reply = await bot.handle(Request(user_id=user, channel_id="C0OPS", command="incident", text=text, transport="slack", team_id=TEAM_ID))
    assert reply.outcome is Outcome.ok, reply.text
    return reply.text


async def open_incident(bot, severity: str, title: str) -> Incident:
    await say(bot, f"open {severity} {title}")
    [incident] = [i for i in await service.listing(bot.db, include_resolved=True) if i.title == title]
    assert incident.channel_id  # create_channels: its own channel, where the pings go
    return incident


def ref_of(text: str) -> int | None:
    found = re.search(r"INC-(\d+)\b", text)
    return int(found.group(1)) if found else None


PAGE_MARKER = re.compile(r" \(page \d+\.\d+\.\d+\.\d+\)$")


def pings(double: SlackDouble, channel: str) -> list[str]:
    """The texts of the pings Slack accepted in `channel`, oldest first, without their "(page 42.1.0.0)" marker."""
    return [PAGE_MARKER.sub("", str(c.args.get("text", ""))) for c in double.calls_to("chat.postMessage")
            if c.response.get("ok") and c.args.get("channel") == channel and "is not acknowledged" in str(c.args.get("text", ""))]


def direct_pings(double: SlackDouble, user: str) -> list[str]:
    """The pings Slack accepted in `user`'s direct-message channel (the one conversations.open gave)."""
    opened = {c.response["channel"]["id"] for c in double.calls_to("conversations.open") if c.ok and c.args.get("users") == user}
    assert all(channel.startswith("D") for channel in opened)
    return [PAGE_MARKER.sub("", str(c.args.get("text", ""))) for c in double.calls_to("chat.postMessage")
            if c.response.get("ok") and c.args.get("channel") in opened and "is not acknowledged" in str(c.args.get("text", ""))]


def by_incident(texts: list[str]) -> Counter:
    return Counter(ref_of(text) for text in texts)


async def ping_entries(bot, incident_id: int | None = None) -> list[TimelineEntry]:
    query = select(TimelineEntry).where(TimelineEntry.kind == "ping").order_by(TimelineEntry.id)
    if incident_id is not None:
        query = query.where(TimelineEntry.incident_id == incident_id)
    async with bot.db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def ping_jobs(bot, incident_id: int) -> dict[str, ScheduledJob]:
    async with bot.db.sessions() as session:
        rows = (await session.execute(select(ScheduledJob).where(ScheduledJob.key.startswith(f"{PING}:{incident_id}:")))).scalars()
        return {row.key: row for row in rows}


def key(incident: Incident, plan: int, level: int, repeat: int) -> str:
    return planning.ping_key(incident.id, plan, level, repeat)


async def settle(clock: ManualClock, *bots) -> None:
    """Every bot's scheduler has finished its pass and sleeps, with no wake-up pending (a command that
    planned pings wakes the loop through an event, not the clock)."""
    await wait_until(lambda: clock.sleepers == len(bots) and not any(b.scheduler._wake.is_set() for b in bots), timeout=30)


async def advance(clock: ManualClock, delta: timedelta, *bots) -> None:
    await settle(clock, *bots)
    clock.advance(delta)
    await asyncio.sleep(0.01)
    await settle(clock, *bots)


async def kill(scheduler) -> None:
    """What SIGKILL leaves behind: the loop's task is cancelled without stop(), so nothing is handed
    back. Its claimed rows stay `running` until their lease runs out."""
    task = scheduler._task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --------------------------------------------------------------------------- end to end, one bot


async def test_pings_mention_the_on_call_and_the_group_in_the_incident_channel_and_message_each_user(make_bot, url, slack):
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    assert await bot.oncall.on_call_users("primary") == {ON_CALL}
    bot.scheduler.start()
    incident = await open_incident(bot, "P0", "Checkout is down")
    channel = incident.channel_id

    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) == 1)
    await settle(clock, bot)
    [first] = pings(slack, channel)
    assert first.startswith(f"<@{ON_CALL}> INC-{incident.id} P0 (Critical) ")
    assert first.endswith("is not acknowledged. Paging on-call (primary).")
    assert direct_pings(slack, ON_CALL) == [first]
    opened = [c for c in slack.calls_to("conversations.open") if c.args.get("users") == ON_CALL]
    assert opened and opened[0].response["channel"]["id"].startswith("D")

    await advance(clock, timedelta(minutes=5), bot)
    assert pings(slack, channel)[1].endswith("is not acknowledged (reminder 1). Paging on-call (primary).")
    await advance(clock, timedelta(minutes=5), bot)
    await advance(clock, timedelta(minutes=5), bot)  # +15: the DevOps lead's level
    channel_pings = pings(slack, channel)
    assert len(channel_pings) == 4
    assert channel_pings[3].startswith(f"<@{LEAD}> <!subteam^{LEADS_GROUP}> INC-{incident.id} ")
    assert channel_pings[3].endswith("Paging DevOps lead.")
    assert len(direct_pings(slack, LEAD)) == 1 and len(direct_pings(slack, ON_CALL)) == 3
    assert not any(c.args.get("users") == LEADS_GROUP for c in slack.calls_to("conversations.open"))  # a group is mentioned, not messaged

    entries = await ping_entries(bot, incident.id)
    assert [e.key for e in entries] == [key(incident, 1, 0, 0), key(incident, 1, 0, 1), key(incident, 1, 0, 2), key(incident, 1, 1, 0)]
    assert [(e.data["delivered"], e.data["late"], e.data["to"]) for e in entries] == (
        [(True, False, [f"@{ON_CALL}"])] * 3 + [(True, False, [f"@{LEAD}", f"@{LEADS_GROUP}"])]
    )
    assert [e.at for e in entries] == [START + timedelta(minutes=m) for m in (0, 5, 10, 15)]
    assert (await service.get(bot.db, incident.id)).escalation_level == 1


async def test_a_page_slack_refuses_is_tried_again_and_one_that_half_arrives_counts(make_bot, url, slack):
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    bot.scheduler.start()
    # The on-call's direct message is refused, the channel post goes: the page counts as delivered.
    slack.fail_next("conversations.open", "user_not_found")
    incident = await open_incident(bot, "P0", "Checkout is down")
    await wait_until(lambda: len(pings(slack, incident.channel_id)) == 1)
    await settle(clock, bot)
    [first] = await ping_entries(bot, incident.id)
    assert first.data["delivered"] is True and first.data["failed"] == [f"{ON_CALL}: user_not_found"]
    assert direct_pings(slack, ON_CALL) == []

    # Nothing of the next page arrives: the timeline says so and the page is tried again a minute later, once.
    for method in ("chat.postMessage", "conversations.open"):
        slack.fail_next(method, "internal_error")
    await advance(clock, timedelta(minutes=5), bot)
    second = (await ping_entries(bot, incident.id))[1]
    assert second.data["delivered"] is False
    assert second.text == ("Paged on-call (primary) (repeat 1): not delivered "
                           f"({incident.channel_id}: internal_error; {ON_CALL}: internal_error); trying again (1 of 3)")
    await advance(clock, timedelta(minutes=1), bot)
    second = (await ping_entries(bot, incident.id))[1]
    assert second.data["delivered"] is True and second.data["late"] is True
    assert len(pings(slack, incident.channel_id)) == 2 and len(direct_pings(slack, ON_CALL)) == 1
    await advance(clock, timedelta(minutes=2), bot)
    assert len(pings(slack, incident.channel_id)) == 2  # the retry ran once


async def test_acknowledging_stops_the_pings_and_records_the_time_to_acknowledge(make_bot, url, slack):
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    bot.scheduler.start()
    incident = await open_incident(bot, "P0", "Payments failing")
    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) == 1)
    await advance(clock, timedelta(minutes=5), bot)
    await advance(clock, timedelta(minutes=2), bot)
    assert len(pings(slack, incident.channel_id)) == 2

    assert "acknowledged by <@UOPS2> after 7m; escalation stopped" in await say(bot, f"ack {incident.id}", user="UOPS2")
    acknowledged = await service.get(bot.db, incident.id)
    assert (acknowledged.state, acknowledged.acknowledged_by, acknowledged.acknowledged_at) == (IncidentState.acknowledged, "UOPS2", START + timedelta(minutes=7))
    [entry] = [e for e in await service.timeline(bot.db, incident.id) if e.kind == "acknowledged"]
    assert entry.data == {"tta_seconds": 420}
    planned = await ping_jobs(bot, incident.id)
    assert Counter(row.state for row in planned.values()) == Counter({JobState.done: 2, JobState.cancelled: 5})

    await advance(clock, timedelta(hours=2), bot)
    assert len(pings(slack, incident.channel_id)) == 2 and len(direct_pings(slack, ON_CALL)) == 2
    assert not direct_pings(slack, LEAD)


async def test_a_resolved_incidents_pending_pings_never_fire(make_bot, url, slack):
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    bot.scheduler.start()
    incident = await open_incident(bot, "P0", "Search is slow")
    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) == 1)
    await advance(clock, timedelta(minutes=1), bot)
    await say(bot, f"resolve {incident.id} false alarm")

    await advance(clock, timedelta(hours=3), bot)
    assert len(pings(slack, incident.channel_id)) == 1 and len(direct_pings(slack, ON_CALL)) == 1
    assert not direct_pings(slack, LEAD)
    assert [e.key for e in await ping_entries(bot, incident.id)] == [key(incident, 1, 0, 0)]
    planned = await ping_jobs(bot, incident.id)
    assert Counter(row.state for row in planned.values()) == Counter({JobState.done: 1, JobState.cancelled: 6})


async def test_a_ping_claimed_just_before_the_incident_is_resolved_sends_nothing(make_bot, url, slack):
    """Resolve cancels pending pings; one already claimed (running) cannot be cancelled, so the
    handler reads the incident first and does nothing."""
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)  # the loop is not started: the claim is taken by hand
    incident = await open_incident(bot, "P1", "Queue backlog")
    leases = bot.scheduler.registry.leases()
    [claimed] = await jobs.claim(bot.db, "replica-x", {PING: leases[PING]}, clock.now(), grace=timedelta(minutes=1), limit=10)
    assert claimed.key == key(incident, 1, 0, 0)

    await say(bot, f"resolve {incident.id} fixed by the deploy")
    await escalation.run_ping(bot, claimed)
    assert await jobs.finish(bot.db, claimed, "replica-x", clock.now())

    bot.scheduler.start()
    await advance(clock, timedelta(hours=2), bot)
    assert pings(slack, incident.channel_id) == [] and direct_pings(slack, ON_CALL) == []
    assert await ping_entries(bot, incident.id) == []


async def test_a_ping_run_again_after_it_was_delivered_sends_nothing(make_bot, url, slack):
    """A job run a second time (its replica died after the delivered mark, before the job's end was
    recorded) finds its timeline entry delivered and sends nothing."""
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    incident = await open_incident(bot, "P0", "Certificates expired")
    leases = bot.scheduler.registry.leases()
    [job] = await jobs.claim(bot.db, "replica-x", {PING: leases[PING]}, clock.now(), grace=timedelta(minutes=1), limit=10)
    await escalation.run_ping(bot, job)
    await escalation.run_ping(bot, job)
    assert len(pings(slack, incident.channel_id)) == 1 and len(direct_pings(slack, ON_CALL)) == 1
    [entry] = await ping_entries(bot, incident.id)
    assert entry.key == job.key and entry.data["delivered"] and not entry.data["late"]


async def test_a_severity_change_replans_from_now(make_bot, url, slack):
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    bot.scheduler.start()
    incident = await open_incident(bot, "P1", "Login errors")  # P1: the on-call at 0, 15, 30, 45 min
    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) == 1)
    await advance(clock, timedelta(minutes=10), bot)
    assert len(pings(slack, incident.channel_id)) == 1

    assert "is now P0 (was P1); escalation re-planned from now" in await say(bot, f"severity {incident.id} P0")
    await wait_until(lambda: len(pings(slack, incident.channel_id)) == 2)  # P0's first page, at once
    await settle(clock, bot)
    assert " P0 (Critical) " in pings(slack, incident.channel_id)[1]
    # +15 min: P1's repeat would have been due; P0's first repeat (5 min after the change) is.
    await advance(clock, timedelta(minutes=5), bot)
    assert [e.key for e in await ping_entries(bot, incident.id)] == [key(incident, 1, 0, 0), key(incident, 2, 0, 0), key(incident, 2, 0, 1)]
    # +20 min: P0's second repeat. +25 min: P0's lead level, 15 min after the change (not after the opening).
    await advance(clock, timedelta(minutes=5), bot)
    await advance(clock, timedelta(minutes=4), bot)
    assert not direct_pings(slack, LEAD)
    await advance(clock, timedelta(minutes=1), bot)
    assert len(direct_pings(slack, LEAD)) == 1
    planned = await ping_jobs(bot, incident.id)
    assert {row.state for k, row in planned.items() if k.startswith(f"{PING}:{incident.id}:1:")} == {JobState.done, JobState.cancelled}
    assert [e.at for e in await ping_entries(bot, incident.id)] == [START + timedelta(minutes=m) for m in (0, 10, 15, 20, 25)]


async def test_escalate_pages_the_next_level_at_once_even_when_acknowledged(make_bot, url, slack):
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    bot.scheduler.start()
    incident = await open_incident(bot, "P0", "Data loss suspected")
    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) == 1)
    await advance(clock, timedelta(minutes=2), bot)
    await say(bot, f"ack {incident.id}")

    assert "escalated to level 2, DevOps lead" in await say(bot, f"escalate {incident.id} needs the lead")
    await wait_until(lambda: len(direct_pings(slack, LEAD)) == 1)
    await settle(clock, bot)
    last = pings(slack, incident.channel_id)[-1]
    assert last.startswith(f"<@{LEAD}> <!subteam^{LEADS_GROUP}> INC-{incident.id} ") and last.endswith("Paging DevOps lead.")
    assert (await service.get(bot.db, incident.id)).escalation_level == 1
    # Acknowledged: the forced page went out, its repeats do not.
    await advance(clock, timedelta(hours=1), bot)
    assert len(direct_pings(slack, LEAD)) == 1 and len(pings(slack, incident.channel_id)) == 2
    assert [e.key for e in await ping_entries(bot, incident.id)] == [key(incident, 1, 0, 0), key(incident, 2, 1, 0)]


async def test_a_late_forced_escalation_is_sent_though_its_repeats_are_due_too(make_bot, url, slack):
    """Escalated while acknowledged, and the scheduler only gets to it after its repeats fell due:
    the forced page still goes (its repeats do nothing for an acknowledged incident, so skipping
    it for them would page no one)."""
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    incident = await open_incident(bot, "P0", "Data loss suspected")
    await say(bot, f"ack {incident.id}")
    await say(bot, f"escalate {incident.id} needs the lead")
    clock.advance(timedelta(minutes=12))  # the lead's repeats at +5 and +10 are due as well
    bot.scheduler.start()
    await wait_until(lambda: len(direct_pings(slack, LEAD)) == 1)
    await settle(clock, bot)
    assert len(direct_pings(slack, LEAD)) == 1
    [forced] = [e for e in await ping_entries(bot, incident.id) if e.key == key(incident, 2, 1, 0)]
    assert forced.data["delivered"] is True and forced.data["late"] is True


# --------------------------------------------------------------------------- replicas, kills and restarts


async def load_incidents(bot, count: int, now: datetime) -> list[int]:
    """`count` open P0 incidents, each in a channel of its own, planned by escalation.plan as on open."""
    rows = [{"title": f"region {n} down", "severity": "P0", "state": IncidentState.open, "services": [], "description": "",
             "playbook": None, "opened_by": "UOPS1", "opened_at": now, "transport": "slack", "team": TEAM_ID, "summary": "",
             "channel_id": f"CINC{n:06d}", "escalation_plan": 1, "escalation_level": 0, "updated_at": now} for n in range(count)]
    async with bot.db.sessions() as session, session.begin():
        await session.execute(insert(Incident.__table__), rows)
    incidents = await service.listing(bot.db, include_resolved=False, limit=count)
    for incident in incidents:
        await planning.plan(bot, incident, now)
    return sorted(i.id for i in incidents)


async def test_two_schedulers_send_each_due_ping_exactly_once(make_bot, crowd, slack):
    url, count = crowd
    clock = ManualClock(START)
    # Exactly once under load is the subject here, not Slack's pacing (tests/test_pacing.py): every
    # page also goes to the one on-call's DM channel, which Slack's one post a second would stretch
    # to a quarter of an hour.
    slack.limit_channel_posts(per_second=10_000, burst=10_000)
    first, second = [await incident_bot(make_bot, url, clock, slack) for _ in range(2)]
    ids = await load_incidents(first, count, clock.now())
    channels = {f"CINC{n:06d}" for n in range(count)}

    first.scheduler.start()
    second.scheduler.start()
    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) >= count, timeout=120)
    await settle(clock, first, second)

    in_channels = Counter(c.args["channel"] for c in slack.calls_to("chat.postMessage") if c.response.get("ok") and c.args["channel"] in channels)
    assert in_channels == Counter({channel: 1 for channel in channels})
    assert by_incident(direct_pings(slack, ON_CALL)) == Counter({n: 1 for n in ids})
    entries = await ping_entries(first)
    assert len(entries) == count and all(e.data["delivered"] for e in entries)
    async with first.db.sessions() as session:
        ran = Counter((await session.execute(select(ScheduledJob.claimed_by).where(ScheduledJob.key.like(f"{PING}:%:1:0:0")))).scalars())
        attempts = set((await session.execute(select(ScheduledJob.attempts).where(ScheduledJob.key.like(f"{PING}:%:1:0:0")))).scalars())
    assert set(ran) == {first.scheduler.replica, second.scheduler.replica}, ran  # both really sent
    assert sum(ran.values()) == count and attempts == {1}


def blocking_posts(double: SlackDouble):
    """chat.postMessage on `double` that never answers for the channels in the returned set: the
    request reaches Slack, which neither posts the message nor replies (until `release` is set, and
    then it refuses it). Other channels get the double's own chat.postMessage."""
    stuck: set[str] = set()
    waiting: list[str] = []
    release = asyncio.Event()

    async def post_message(args):
        if args.get("channel") in stuck:
            waiting.append(args["channel"])
            await release.wait()
            return {"ok": False, "error": "request_timeout"}
        return double._chat_post_message(args)  # the built-in one, with all its checks

    double.set_handler("chat.postMessage", post_message)
    return stuck, waiting, release


async def test_a_killed_scheduler_loses_no_ping_and_doubles_none(make_bot, url):
    """Replica A dies (SIGKILL: no clean stop) with two pings claimed; B takes them back after the lease.

    The one window in which a kill can still double a ping: after Slack accepted the message and
    before the delivered mark committed (run_ping writes the timeline entry, undelivered, before
    sending, and marks it after). A retry finds the entry undelivered and sends again, since it
    cannot know whether Slack took the first one. So A is killed outside that window: its two
    pings' channel posts are in flight and Slack never accepts them (this double holds the request
    and, much later, refuses it), so nothing of those pings reached anyone before the kill.
    """
    clock = ManualClock(START)
    async with SlackDouble(bot_token=BOT_TOKEN) as double:
        a = await incident_bot(make_bot, url, clock, double)
        incidents = [await open_incident(a, "P0", f"Shard {n} unreachable") for n in range(6)]
        stuck, waiting, release = blocking_posts(double)
        victims = {incidents[1].id, incidents[4].id}
        stuck |= {i.channel_id for i in incidents if i.id in victims}
        try:
            a.scheduler.start()

            async def four_delivered() -> bool:
                return len(waiting) == 2 and sum(e.data["delivered"] for e in await ping_entries(a)) == 4

            await wait_until(four_delivered)
            await kill(a.scheduler)
            stuck.clear()  # Slack is fine again: only A is gone
            for incident in incidents:
                row = (await ping_jobs(a, incident.id))[key(incident, 1, 0, 0)]
                expected = (JobState.running, a.scheduler.replica, 1) if incident.id in victims else (JobState.done, a.scheduler.replica, 1)
                assert (row.state, row.claimed_by, row.attempts) == expected
            undelivered = [e for e in await ping_entries(a) if not e.data["delivered"]]
            assert {e.incident_id for e in undelivered} == victims  # written, never sent

            b = await incident_bot(make_bot, url, clock, double)
            b.scheduler.start()
            await settle(clock, b)
            # A's claims hold until their lease runs out: A might only be slow.
            await advance(clock, LEASE - timedelta(seconds=1), b)
            assert by_incident(direct_pings(double, ON_CALL)) == Counter({i.id: 1 for i in incidents if i.id not in victims})
            await advance(clock, timedelta(seconds=1), b)
            await wait_until(lambda: len(direct_pings(double, ON_CALL)) == 6)
            await settle(clock, b)

            for incident in incidents:
                assert len(pings(double, incident.channel_id)) == 1, incident.id
            assert by_incident(direct_pings(double, ON_CALL)) == Counter({i.id: 1 for i in incidents})
            entries = await ping_entries(b)
            assert len(entries) == 6 and all(e.data["delivered"] for e in entries)
            assert {e.incident_id for e in entries if e.data["late"]} == victims  # sent after the lease: marked late
            for incident in incidents:
                if incident.id in victims:
                    row = (await ping_jobs(b, incident.id))[key(incident, 1, 0, 0)]
                    assert (row.state, row.claimed_by, row.attempts) == (JobState.done, b.scheduler.replica, 2)
                    assert row.error == f"attempt 1 on {a.scheduler.replica} did not finish within its lease"
                    assert "late: the bot was down" in pings(double, incident.channel_id)[0]

            # B alone carries on: every incident's first repeat, once.
            await advance(clock, timedelta(minutes=5) - LEASE, b)
            assert by_incident(direct_pings(double, ON_CALL)) == Counter({i.id: 2 for i in incidents})
        finally:
            release.set()  # A's requests, still held by the double, are refused now
            await asyncio.sleep(0.05)
        refused = [c for c in double.calls_to("chat.postMessage") if not c.response.get("ok")]
        assert len(refused) == 2 and {c.args["channel"] for c in refused} == {i.channel_id for i in incidents if i.id in victims}


async def test_a_dead_replicas_pings_are_taken_back_while_the_survivor_works_through_a_backlog(make_bot, pg_url):
    """A's claims run out while B has hundreds of pings to send: B takes them back on its way (it looks
    for expired claims once per poll even in a backlog), rather than after it has caught up."""
    clock = ManualClock(START)
    async with SlackDouble(bot_token=BOT_TOKEN) as double:
        double.limit_channel_posts(per_second=10_000, burst=10_000)  # a backlog to one on-call's DMs: pacing is not the subject
        a = await incident_bot(make_bot, pg_url, clock, double)
        victims = [await open_incident(a, "P0", f"Primary {n} lost") for n in range(2)]
        stuck, waiting, release = blocking_posts(double)
        stuck |= {v.channel_id for v in victims}
        try:
            a.scheduler.start()
            await wait_until(lambda: len(waiting) == 2)
            await kill(a.scheduler)
            stuck.clear()
            clock.advance(timedelta(minutes=1))
            b = await incident_bot(make_bot, pg_url, clock, double)
            backlog = await load_incidents(b, 400, clock.now())
            b.scheduler.start()
            await wait_until(lambda: len(direct_pings(double, ON_CALL)) >= 40, timeout=30)  # B is in the middle of it
            clock.advance(LEASE)  # A's claims, taken at START, ran out at START + 2 min
            await wait_until(lambda: len(direct_pings(double, ON_CALL)) == 402, timeout=120)
            await settle(clock, b)
        finally:
            release.set()
            await asyncio.sleep(0.05)
        order = [ref_of(text) for text in direct_pings(double, ON_CALL)]
        assert sorted(order) == sorted([*backlog, *(v.id for v in victims)])
        assert max(order.index(v.id) for v in victims) < len(order) - 100, order.index(victims[0].id)


async def test_a_ping_due_in_a_moment_is_sent_on_time_after_a_pass_that_found_nothing(make_bot, url, slack):
    """A pass that claimed nothing (woken by an unrelated enqueue) sleeps until the next due time,
    not half a second more: that wait is only for due rows another replica is claiming."""
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, url, clock, slack)
    incident = await open_incident(bot, "P0", "Latency spike")
    await bot.scheduler.cancel_prefix(f"{PING}:{incident.id}:")
    async with bot.db.sessions() as session, session.begin():
        await session.execute(Incident.__table__.update().where(Incident.id == incident.id).values(escalation_plan=2))
    incident = await service.get(bot.db, incident.id)
    await planning.plan(bot, incident, clock.now() + timedelta(milliseconds=300))  # its first page in 0.3 s
    bot.scheduler.start()
    await settle(clock, bot)
    await advance(clock, timedelta(milliseconds=100), bot)
    bot.scheduler.wake()  # anything enqueued elsewhere: this pass finds nothing due
    await settle(clock, bot)
    assert pings(slack, incident.channel_id) == []
    await advance(clock, timedelta(milliseconds=200), bot)
    assert len(pings(slack, incident.channel_id)) == 1
    [entry] = await ping_entries(bot, incident.id)
    assert entry.at == START + timedelta(milliseconds=300) and not entry.data["late"]


async def test_a_restart_neither_loses_nor_doubles_a_ping(make_bot, url, slack):
    """The bot is stopped (cleanly) and started again on the same database: what was sent is not
    sent again, and what fell due while it was down is sent once, marked late."""
    clock = ManualClock(START)
    before = await incident_bot(make_bot, url, clock, slack)
    before.scheduler.start()
    incident = await open_incident(before, "P0", "Disk full on db-1")
    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) == 1)
    await advance(clock, timedelta(minutes=5), before)
    assert len(pings(slack, incident.channel_id)) == 2
    await before.close()

    clock.advance(timedelta(minutes=7))  # down from +5 to +12: the repeat due at +10 falls due meanwhile
    after = await incident_bot(make_bot, url, clock, slack)
    after.scheduler.start()
    await wait_until(lambda: len(pings(slack, incident.channel_id)) == 3)
    await settle(clock, after)
    assert "late: the bot was down" in pings(slack, incident.channel_id)[2]
    await advance(clock, timedelta(minutes=3), after)  # +15: the lead's level, on time
    assert len(pings(slack, incident.channel_id)) == 4 and len(direct_pings(slack, LEAD)) == 1

    entries = await ping_entries(after, incident.id)
    assert [e.key for e in entries] == [key(incident, 1, 0, 0), key(incident, 1, 0, 1), key(incident, 1, 0, 2), key(incident, 1, 1, 0)]
    assert [e.data["late"] for e in entries] == [False, False, True, False]
    assert by_incident(direct_pings(slack, ON_CALL)) == Counter({incident.id: 3})


async def test_back_from_a_long_downtime_only_the_newest_overdue_page_goes_out(make_bot, url, slack):
    """Down from +0 to +22: the on-call's two repeats and the lead's first two pages all fell due.
    Coming back, one page goes out (the newest, the lead's), not a burst of four."""
    clock = ManualClock(START)
    before = await incident_bot(make_bot, url, clock, slack)
    before.scheduler.start()
    incident = await open_incident(before, "P0", "Queue stuck")
    await wait_until(lambda: len(direct_pings(slack, ON_CALL)) == 1)
    await settle(clock, before)
    await before.close()

    clock.advance(timedelta(minutes=22))
    after = await incident_bot(make_bot, url, clock, slack)
    after.scheduler.start()
    await wait_until(lambda: len(pings(slack, incident.channel_id)) == 2)
    await settle(clock, after)
    assert len(pings(slack, incident.channel_id)) == 2 and len(direct_pings(slack, ON_CALL)) == 1
    assert "Paging DevOps lead. This page is late" in pings(slack, incident.channel_id)[1]
    entries = await ping_entries(after, incident.id)
    skipped = sorted(e.key for e in entries if e.data.get("skipped"))  # written at the same moment, in any order
    assert skipped == [key(incident, 1, 0, 1), key(incident, 1, 0, 2), key(incident, 1, 1, 0)]
    assert [e.key for e in entries if e.data.get("delivered")] == [key(incident, 1, 0, 0), key(incident, 1, 1, 1)]


async def test_a_restart_in_the_middle_of_a_ping_sends_it_once(make_bot, url):
    """Stopped while the ping's post waits on Slack: the clean stop hands the job back at once
    (no lease to wait out) and the next bot sends it; Slack never took the first attempt."""
    clock = ManualClock(START)
    async with SlackDouble(bot_token=BOT_TOKEN) as double:
        before = await incident_bot(make_bot, url, clock, double)
        incident = await open_incident(before, "P1", "Webhooks delayed")
        stuck, waiting, release = blocking_posts(double)
        stuck.add(incident.channel_id)
        try:
            before.scheduler.start()
            await wait_until(lambda: waiting == [incident.channel_id])
            await before.close()
            after = await incident_bot(make_bot, url, clock, double)
            row = (await ping_jobs(after, incident.id))[key(incident, 1, 0, 0)]
            assert (row.state, row.claimed_by, row.attempts) == (JobState.pending, None, 0)  # handed back
            stuck.clear()
            after.scheduler.start()
            await wait_until(lambda: len(direct_pings(double, ON_CALL)) == 1)
            await settle(clock, after)
            assert len(pings(double, incident.channel_id)) == 1
            [entry] = await ping_entries(after, incident.id)
            assert entry.data["delivered"] and entry.data["late"]  # written by the first attempt, sent by the second
            await advance(clock, timedelta(minutes=15), after)
            assert len(pings(double, incident.channel_id)) == 2 and len(direct_pings(double, ON_CALL)) == 2
        finally:
            release.set()
            await asyncio.sleep(0.05)


async def test_scheduled_pings_are_counted_once_in_the_database(make_bot, pg_url, slack):
    """The bookkeeping behind "exactly once": one job row and one timeline entry per ping key, however
    often the plan is written (open, then a replica planning the same incident again)."""
    clock = ManualClock(START)
    bot = await incident_bot(make_bot, pg_url, clock, slack)
    incident = await open_incident(bot, "P0", "Cache stampede")
    assert await planning.plan(bot, incident, clock.now()) == 7  # the same keys: nothing new
    async with bot.db.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.key.startswith(f"{PING}:{incident.id}:")))
    assert count == 7
