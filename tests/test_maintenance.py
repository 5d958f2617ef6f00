"""Maintenance windows (bot/maintenance, /maintenance) on a ManualClock, on SQLite and PostgreSQL.

A window is started now or scheduled ahead; the scheduler posts its announcement (48 h ahead,
once), its start and its end in the maintenance channel. While it lasts, pages of incidents
whose every service is in it are silenced on the timeline, /health shows its services as MAINT
without turning red, and a guarded action on them says so in its request.

Each test has a database of its own: the bot's scheduler claims every due job in it.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from conftest import fleet
from test_escalation import pg_template, pg_url, sqlite_template, url  # noqa: F401  (fixtures: a database per test)
from test_schedules import Channel
from sqlalchemy import func, select

from bot.incident.models import TimelineEntry
from bot.maintenance import service as maintenance
from bot.maintenance.models import MaintenanceWindow
from bot.maintenance.scheduled import JOBS
from bot.migrate import upgrade_async
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.schedule import JobState, ManualClock
from bot.schedule import service as jobs
from bot.schedule.models import ScheduledJob
from commands.maintenance import COMMAND

UTC = timezone.utc
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday

CONFIG = """
version: 1
services:
  backend:
    checks:
      - {kind: tcp, host: 127.0.0.1, port: 9, timeout: 2s}
  cache:
    checks:
      - {kind: tcp, host: 127.0.0.1, port: 5432}
roles:
  ops: {users: [UOPS1, UOPS2]}
slack:
  ops_channel: "#ops"
  incidents_channel: C0INCIDENTS
maintenance:
  channel: "#maint"
severities:
  P1:
    respond_within: 1h
    escalation:
      - {users: [UONC1], repeat_every: 15m, max_repeats: 1}
"""


def in_channel(channel: Channel, where: str = "#maint") -> list[str]:
    return [reply.text for to, reply in channel.posts if to == where]


# --------------------------------------------------------------------------- helpers


async def started(make_bot, url: str, clock: ManualClock, config: str = CONFIG):
    bot = await make_bot(config, url, clock=clock)
    assert COMMAND.name in bot.pipeline.commands and all(bot.scheduler.registry.get(j.kind) for j in JOBS)
    channel = bot.messengers["console"] = Channel()
    return bot, channel


async def say(bot, text: str, user: str = "UOPS1", command: str = "maintenance"):
    return await bot.handle(Request(user, "C1", command, text, "console"))


async def at(bot, clock: ManualClock, when: datetime) -> None:
    """Move the clock to `when` and run what is due, as the loop would."""
    clock.advance(when - clock.now())
    await bot.scheduler.run_due()


async def windows_stored(bot) -> int:
    async with bot.db.sessions() as session:
        return await session.scalar(select(func.count()).select_from(MaintenanceWindow))


async def maintenance_jobs(bot) -> list[ScheduledJob]:
    async with bot.db.sessions() as session:
        return list(await session.scalars(select(ScheduledJob).where(ScheduledJob.kind.startswith("maintenance.")).order_by(ScheduledJob.id)))


def one_sentence(reply) -> str:
    assert reply.ephemeral and reply.outcome is Outcome.usage_error, reply.text
    assert "\n" not in reply.text and len(reply.text) < 300 and "Traceback" not in reply.text, reply.text
    return reply.text


# --------------------------------------------------------------------------- start, end, list


async def test_start_list_and_end_early_post_in_the_maintenance_channel(make_bot, url):
    clock = ManualClock(START)
    bot, channel = await started(make_bot, url, clock)

    reply = await say(bot, 'start 2h backend "database upgrade"')
    assert not reply.ephemeral and reply.outcome is Outcome.ok
    assert reply.text == ("Maintenance window #1 started by <@UOPS1>: backend from 10:00 UTC to 12:00 UTC (2h): "
                          "database upgrade")
    [window] = await maintenance.active(bot.db, clock.now())
    assert (window.id, window.services, window.reason, window.starts_at, window.ends_at) == (1, ("backend",), "database upgrade", START,
                                                                                             START + timedelta(hours=2))
    assert window.starts_at.utcoffset() == timedelta(0) and window.created_by == "UOPS1"
    assert await maintenance.window_for(bot.db, "backend", clock.now()) == window
    assert await maintenance.window_for(bot.db, "cache", clock.now()) is None
    assert await maintenance.window_for(bot.db, "backend", START + timedelta(hours=2)) is None  # the end is not in it
    assert await maintenance.silenced(bot, ["backend"]) == [window]
    assert not await maintenance.silenced(bot, ["backend", "cache"]) and not await maintenance.silenced(bot, [])

    await bot.scheduler.run_due()
    assert in_channel(channel) == ["Maintenance window #1 started: backend until 12:00 UTC: database upgrade"]
    assert not [k for k in [j.key for j in await maintenance_jobs(bot)] if k.startswith("maintenance.announce")]  # started now: none

    listed = await say(bot, "list")
    assert listed.ephemeral and "Active: #1 backend from" in listed.text and "database upgrade (by <@UOPS1>)" in listed.text

    await at(bot, clock, START + timedelta(minutes=30))
    ended = await say(bot, "end", user="UOPS2")
    assert ended.text == "Maintenance window #1 ended: backend, ended early by <@UOPS2>."
    assert await maintenance.active(bot.db, clock.now()) == []
    again = await say(bot, "end 1")
    assert one_sentence(again) == "Maintenance window #1 is already over."
    await bot.scheduler.run_due()
    await at(bot, clock, START + timedelta(hours=3))  # the planned end passes: nothing more
    assert in_channel(channel) == ["Maintenance window #1 started: backend until 12:00 UTC: database upgrade",
                                    "Maintenance window #1 ended: backend, ended early by <@UOPS2>."]
    assert [j.state for j in await maintenance_jobs(bot)] == [JobState.done, JobState.done]

    # Every service, to its planned end.
    assert "all services" in (await say(bot, 'start 1h "network switch swap"')).text
    assert (await maintenance.window_for(bot.db, "cache", clock.now())).id == 2
    await bot.scheduler.run_due()
    await at(bot, clock, clock.now() + timedelta(hours=1))
    assert in_channel(channel)[-2:] == ["Maintenance window #2 started: all services until 14:00 UTC: network switch swap",
                                         "Maintenance window #2 ended: all services."]
    assert one_sentence(await say(bot, "end")).startswith("No maintenance window is active")

    # A role is needed, whatever the subcommand.
    denied = await say(bot, 'start 1h backend "x"', user="USTRANGER")
    assert denied.outcome is Outcome.denied and await windows_stored(bot) == 2


async def test_a_window_scheduled_ahead_is_announced_48h_before_exactly_once(make_bot, url):
    clock = ManualClock(START)
    bot, channel = await started(make_bot, url, clock)
    reply = await say(bot, 'schedule 2026-11-25T22:00 2h backend cache "kernel upgrade"')
    assert reply.text.startswith("Maintenance window #1 scheduled by <@UOPS1>: backend, cache from Wed 2026-11-25 22:00 UTC")
    assert "Announced in #maint at Mon 2026-11-23 22:00 UTC" in reply.blocks[-1].text
    assert await maintenance.active(bot.db, clock.now()) == []
    [upcoming] = await maintenance.upcoming(bot.db, clock.now())
    assert upcoming.starts_at == datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
    keys = {j.key: j.due_at for j in await maintenance_jobs(bot)}
    assert keys == {"maintenance.announce:1": datetime(2026, 11, 23, 22, 0, tzinfo=UTC),
                    "maintenance.start:1": datetime(2026, 11, 25, 22, 0, tzinfo=UTC),
                    "maintenance.end:1": datetime(2026, 11, 26, 0, 0, tzinfo=UTC)}

    await at(bot, clock, datetime(2026, 11, 23, 21, 59, tzinfo=UTC))
    assert channel.posts == []
    await at(bot, clock, datetime(2026, 11, 23, 22, 0, tzinfo=UTC))
    announced = "Scheduled maintenance #1 in 2d: backend, cache from Wed 2026-11-25 22:00 UTC to Thu 2026-11-26 00:00 UTC (2h): kernel upgrade"
    assert in_channel(channel) == [announced]
    # Enqueued again (a second replica, a repeated command path): one row, already done; nothing posted twice.
    assert not await jobs.enqueue(bot.db, "maintenance.announce", "maintenance.announce:1", clock.now(), {"window": 1})
    await at(bot, clock, datetime(2026, 11, 24, 22, 0, tzinfo=UTC))
    assert in_channel(channel) == [announced]

    await at(bot, clock, datetime(2026, 11, 25, 22, 0, tzinfo=UTC))
    assert (await maintenance.window_for(bot.db, "cache", clock.now())).id == 1
    await at(bot, clock, datetime(2026, 11, 26, 0, 0, tzinfo=UTC))
    assert in_channel(channel) == [announced, "Maintenance window #1 started: backend, cache until Thu 2026-11-26 00:00 UTC: kernel upgrade",
                                    "Maintenance window #1 ended: backend, cache."]
    assert [j.state for j in await maintenance_jobs(bot)] == [JobState.done] * 3


async def test_short_notice_is_announced_at_once_and_a_cancelled_window_says_so(make_bot, sqlite_url):
    await upgrade_async(sqlite_url)
    clock = ManualClock(START)
    bot, channel = await started(make_bot, sqlite_url, clock)
    # An ISO time with an offset: 13:00+01:00 is 12:00 UTC; less than 48 h ahead, so announced now.
    assert "Announced in #maint at 10:00 UTC" in (await say(bot, 'schedule 2026-11-20T13:00+01:00 1h backend "patching"')).blocks[-1].text
    await bot.scheduler.run_due()
    assert in_channel(channel) == ["Scheduled maintenance #1 in 2h: backend from 12:00 UTC to 13:00 UTC (1h): patching"]
    cancelled = await say(bot, "end 1", user="UOPS2")
    assert cancelled.text == "Maintenance window #1 (backend, 12:00 UTC) is cancelled by <@UOPS2>."
    await at(bot, clock, START + timedelta(hours=4))
    assert in_channel(channel)[1:] == ["Maintenance window #1 (backend, 12:00 UTC) is cancelled by <@UOPS2>."]
    assert await maintenance.window_for(bot.db, "backend", START + timedelta(hours=2, minutes=30)) is None

    # Cancelled before anyone was told: nothing is posted at all.
    await say(bot, 'schedule 2026-12-10T09:00 1h cache "cache resize"')
    await say(bot, "end 2")
    await at(bot, clock, datetime(2026, 12, 11, tzinfo=UTC))
    assert len(in_channel(channel)) == 2


# --------------------------------------------------------------------------- effects on other slices


async def test_a_page_of_an_incident_whose_services_are_all_in_a_window_is_silenced(make_bot, url):
    clock = ManualClock(START)
    bot, channel = await started(make_bot, url, clock)
    await say(bot, 'start 2h backend "database upgrade"')

    async def opened(services: str) -> int:
        reply = await say(bot, f"open P1 Database down {services}", command="incident")
        assert reply.outcome is Outcome.ok, reply.text
        await bot.scheduler.run_due()
        async with bot.db.sessions() as session:
            return await session.scalar(select(func.max(TimelineEntry.incident_id)))

    async def pings(number: int) -> list[TimelineEntry]:
        async with bot.db.sessions() as session:
            query = select(TimelineEntry).where(TimelineEntry.incident_id == number, TimelineEntry.kind == "ping").order_by(TimelineEntry.id)
            return list(await session.scalars(query))

    silenced = await opened("--service backend")
    [entry] = await pings(silenced)
    assert entry.text == "Page to UONC1 silenced by maintenance window #1", entry.text
    assert entry.data["skipped"] and entry.data["maintenance"] == [1] and not entry.data.get("delivered")
    assert entry.key == f"incident.ping:{silenced}:1:0:0"
    assert len(in_channel(channel, "C0INCIDENTS")) == 1  # the headline; no page

    paged = await opened("--service backend --service cache")  # cache is in no window: paged
    [entry] = await pings(paged)
    assert entry.text == "Paged UONC1" and entry.data["delivered"] and entry.data["to"] == ["@UONC1"]
    assert len(in_channel(channel, "C0INCIDENTS")) == 3  # its headline and its page

    # The repeat 15 minutes on falls after the window ended early: paged then.
    await at(bot, clock, START + timedelta(minutes=10))
    await say(bot, "end 1")
    await at(bot, clock, START + timedelta(minutes=15))
    assert [e.data.get("delivered") for e in await pings(silenced)] == [None, True]


async def test_health_shows_a_service_in_a_window_as_maint_and_stays_green(make_bot, url):
    clock = ManualClock(START)
    bot, _ = await started(make_bot, url, clock)
    before = await say(bot, "", command="health")
    assert before.outcome is Outcome.critical and "CRITICAL backend" in before.text, before.text

    await say(bot, 'start 2h backend "database upgrade"')
    during = await say(bot, "", user="UOPS2", command="health")
    assert during.outcome is Outcome.ok, during.text
    assert during.text.startswith("Health: OK (1 in maintenance, 1 ok)")
    assert "MAINT    backend" in during.text and "in maintenance window #1 until Fri 2026-11-20 12:00 UTC: tcp" in during.text
    assert "CRITICAL" not in during.text


async def test_a_guarded_action_on_a_service_in_a_window_says_so_in_its_request(make_bot, sqlite_url):
    await upgrade_async(sqlite_url)
    web = fleet()["OPSBOT_FLEET_WEB"]
    config = f"""
version: 1
services:
  web:
    container: {web}
    owners: [ops]
    checks: [{{kind: container}}]
roles:
  ops: {{users: [UOPS1, UOPS2]}}
slack:
  ops_channel: "#ops"
actions:
  restart: {{kind: docker_restart, approval: {{approvals: 1, expires: 15m}}}}
"""
    clock = ManualClock(datetime.now(UTC).replace(hour=20, minute=0, second=0, microsecond=0))
    bot, _ = await started(make_bot, sqlite_url, clock, config)
    del bot.messengers["console"]  # the request message comes back as the answer

    def notes(reply) -> list[str]:
        return [b.text for b in reply.blocks if "maintenance window" in getattr(b, "text", "")]

    plain = await say(bot, "web", command="restart")
    assert "request #1" in plain.text and notes(plain) == []
    assert "denied" in (await bot.handle_click(Click("UOPS1", "action.deny", "1", "C1", "console"))).text.lower()

    await say(bot, 'start 3h web "deploy v2"')
    reply = await say(bot, "web", command="restart")
    assert notes(reply) == ["web is in maintenance window #1 until 23:00 UTC: deploy v2"]
    assert await maintenance.notes_for(bot, ["web", "web", "other"]) == notes(reply)


async def test_bad_input_is_one_sentence_and_stores_nothing(make_bot, sqlite_url):
    await upgrade_async(sqlite_url)
    clock = ManualClock(START)
    bot, channel = await started(make_bot, sqlite_url, clock)
    cases = {
        'schedule 2026-11-25T22:00 2026-11-25T21:00 backend "upgrade"':
            "That window ends (Wed 2026-11-25 21:00 UTC) before it starts (Wed 2026-11-25 22:00 UTC); give a later end or a duration such as 2h.",
        'schedule 2026-11-19T22:00 2h backend "upgrade"':
            "Thu 2026-11-19 22:00 UTC is already past; give a later start, or use /maintenance start.",
        'start 2h backend databse "upgrade"':
            "There is no service 'databse' in app.yaml; the services are: backend, cache.",
        "start 2h backend":
            'A reason is required, in quotes, e.g. /maintenance start 2h backend "database upgrade".',
        "start 2h backend database upgrade":
            'A reason is required, in quotes, e.g. /maintenance start 2h backend "database upgrade".',
        'start 2h backend ""':
            'A reason is required, in quotes, e.g. /maintenance start 2h backend "database upgrade".',
        'start 30d backend "upgrade"':
            "A maintenance window can last at most 7 days; give a shorter one, or schedule another after it.",
        'start 0h backend "upgrade"': "'0h': a duration must be greater than zero; give a duration such as 2h.",
        'start soon backend "upgrade"':
            "'soon' is neither a duration (2h, 90m, 1d) nor an end time (2026-11-25T23:00); e.g. /maintenance start 2h backend \"database upgrade\".",
        f'start 2h backend "{"x" * 201}"': "The reason is 201 characters; keep it to 200.",
        'schedule 2026-13-40T22:00 2h "upgrade"':
            "'2026-13-40T22:00' is not a time opsbot can read; give YYYY-MM-DDTHH:MM (UTC time) or an ISO 8601 time with an offset such as 2026-11-25T22:00+01:00.",
        "end": "No maintenance window is active; /maintenance end <ID> cancels an upcoming one (/maintenance list).",
        "end 7": "There is no maintenance window #7; /maintenance list shows them.",
        "restart": "Usage: " + COMMAND.usage,
    }
    for text, sentence in cases.items():
        assert one_sentence(await say(bot, text)) == sentence, text
    assert await windows_stored(bot) == 0 and await maintenance_jobs(bot) == []
    assert (await say(bot, "list")).text == "No maintenance window is active or scheduled."

    # The reason is stored redacted (and cut to 200 after redaction).
    await say(bot, 'start 1h backend "rotate password=hunter2secret"')
    [window] = await maintenance.active(bot.db, clock.now())
    assert window.reason == "rotate password=[REDACTED]"
    await bot.scheduler.run_due()
    assert "hunter2secret" not in " ".join(in_channel(channel))
