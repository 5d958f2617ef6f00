"""Maintenance windows (bot/maintenance, /maintenance) on a ManualClock, on SQLite and PostgreSQL.

A window is started now or scheduled ahead by its services' owners; the scheduler posts its
announcement (48 h ahead, once), its start and its end in the maintenance channel. While it lasts,
pages of incidents automated detection opened on its services alone are silenced on the timeline
(those a person opened are paged), /health shows its services as MAINT without turning red, and a
guarded action on them says so in its request.

Each test has a database of its own: the bot's scheduler claims every due job in it.
"""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
from conftest import fleet, wait_until
from test_escalation import pg_template, pg_url, sqlite_template, url  # noqa: F401  (fixtures: a database per test)
from test_schedules import Channel
from sqlalchemy import func, select

from bot.incident.models import TimelineEntry
from bot.incident.opening import OpenRequest, open_incident_record
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
    owners: [ops]
    checks:
      - {kind: tcp, host: 127.0.0.1, port: 9, timeout: 2s}
  cache:
    owners: [ops, dev]
    checks:
      - {kind: tcp, host: 127.0.0.1, port: 5432}
roles:
  ops: {users: [UOPS1, UOPS2]}
  dev: {users: [UDEV1]}
slack:
  ops_channel: "#ops"
  incidents_channel: C0INCIDENTS
maintenance:
  channel: "#maint"
  all_services_roles: [ops]
severities:
  P1:
    respond_within: 1h
    escalation:
      - {users: [UONC1], repeat_every: 15m, max_repeats: 2}
"""


MARKER = re.compile(r" \((maintenance (announce|start|end) \d+|page [\d.]+)\)$")


def in_channel(channel: Channel, where: str = "#maint") -> list[str]:
    """The posts' texts, without the marker that names each ("(maintenance start 1)")."""
    return [MARKER.sub("", str(reply.text)) for to, reply in channel.posts if to == where]


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


async def test_a_window_silences_automated_incidents_pages_and_never_those_a_person_opened(make_bot, url):
    clock = ManualClock(START - timedelta(minutes=1))
    bot, channel = await started(make_bot, url, clock)

    async def pings(number: int) -> list[TimelineEntry]:
        async with bot.db.sessions() as session:
            query = select(TimelineEntry).where(TimelineEntry.incident_id == number, TimelineEntry.kind == "ping").order_by(TimelineEntry.id)
            return list(await session.scalars(query))

    async def opened_by_detection(services: list[str]) -> int:
        """As a red scheduled reading opens one (bot/schedules/incidents.py): not a person's."""
        request = OpenRequest(severity="P1", title="backend tcp is critical", services=services, description="", playbook=None,
                              user_id="opsbot", channel_id="C1", transport="console", team_id="", origin="schedule")
        incident, reply = await open_incident_record(bot, request)
        assert incident is not None, reply.text
        await bot.scheduler.run_due()
        return incident.id

    # Detection opened one a minute before the window: paged then; its repeats at +14 and +29 minutes.
    detected = await opened_by_detection(["backend"])
    await at(bot, clock, START)
    await say(bot, 'start 2h backend "database upgrade"')

    # A person opens one on backend during the window: paged, and re-paged, as always.
    reply = await say(bot, "open P1 Database down --service backend", command="incident")
    assert reply.outcome is Outcome.ok, reply.text
    await bot.scheduler.run_due()
    async with bot.db.sessions() as session:
        by_person = await session.scalar(select(func.max(TimelineEntry.incident_id)))
    # Detection on backend and cache (cache is in no window): paged too.
    both = await opened_by_detection(["backend", "cache"])

    await at(bot, clock, START + timedelta(minutes=15))
    [first, repeat] = await pings(detected)
    assert first.data["delivered"] and repeat.text == "Page to UONC1 silenced by maintenance window #1", repeat.text
    assert repeat.data["skipped"] and repeat.data["maintenance"] == [1] and not repeat.data.get("delivered")
    assert repeat.key == f"incident.ping:{detected}:1:0:1"
    for number in (by_person, both):
        assert [(e.text, e.data["delivered"]) for e in await pings(number)] == [("Paged UONC1", True), ("Paged UONC1 (repeat 1)", True)]

    # The detected incident's last repeat falls after the window ended early: paged then.
    await say(bot, "end 1")
    await at(bot, clock, START + timedelta(minutes=30))
    assert [e.data.get("delivered") for e in await pings(detected)] == [True, None, True]
    pages = [text for text in in_channel(channel, "C0INCIDENTS") if "is not acknowledged" in text]
    assert len(pages) == 8  # three each for the person's and for both's, two for detected: never the silenced one


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
        'start 30d backend "upgrade"': "A maintenance window can last at most 4h (maintenance.max_duration); give a shorter one.",
        'start 241m backend "upgrade"': "A maintenance window can last at most 4h (maintenance.max_duration); give a shorter one.",
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


# --------------------------------------------------------------------------- scope and length


def denied(reply) -> str:
    assert reply.ephemeral and reply.outcome is Outcome.denied, (reply.outcome, reply.text)
    assert "\n" not in reply.text and len(reply.text) < 300, reply.text
    return reply.text


async def test_a_window_needs_its_services_owners_and_every_service_a_declared_role(make_bot, sqlite_url):
    await upgrade_async(sqlite_url)
    clock = ManualClock(START)
    bot, channel = await started(make_bot, sqlite_url, clock)
    # dev owns cache only (with ops); ops owns both and is maintenance.all_services_roles.
    owned_by_ops = "You cannot open a window on backend: it needs the ops role (its owners in app.yaml)."
    assert denied(await say(bot, 'start 1h backend "disk swap"', user="UDEV1")) == owned_by_ops
    assert denied(await say(bot, 'schedule 2026-11-21T10:00 1h cache backend "disk swap"', user="UDEV1")) == owned_by_ops
    assert denied(await say(bot, 'start 1h "network swap"', user="UDEV1")) == (
        "You cannot open a window on every service: it needs the ops role (maintenance.all_services_roles).")
    assert await windows_stored(bot) == 0 and await maintenance_jobs(bot) == []

    assert (await say(bot, 'start 1h cache "resize"', user="UDEV1")).outcome is Outcome.ok  # #1
    assert (await say(bot, 'start 1h backend "upgrade"', user="UOPS1")).outcome is Outcome.ok  # #2
    assert denied(await say(bot, "end 2", user="UDEV1")) == "You cannot end a window on backend: it needs the ops role (its owners in app.yaml)."
    assert await maintenance.window_for(bot.db, "backend", clock.now()) is not None
    clock.advance(timedelta(minutes=5))
    assert (await say(bot, "end 1", user="UDEV1")).text.startswith("Maintenance window #1 ended: cache")
    assert (await say(bot, 'start 1h "network swap"', user="UOPS2")).outcome is Outcome.ok  # #3, on every service
    assert denied(await say(bot, "end 3", user="UDEV1")).startswith("You cannot end a window on every service")

    # No role declared for every service: nobody may open such a window; and a service nobody owns cannot be windowed.
    strict = CONFIG.replace("  all_services_roles: [ops]\n", "").replace("    owners: [ops]\n", "", 1)
    other = await make_bot(strict, clock=clock)
    assert denied(await say(other, 'start 1h "network swap"', user="UOPS1")) == (
        "You cannot open a window on every service: app.yaml declares no role for it (maintenance.all_services_roles); "
        "name the services instead.")
    assert denied(await say(other, 'start 1h backend "upgrade"', user="UOPS1")) == (
        "You cannot open a window on backend: app.yaml names no owners for it (services.backend.owners).")
    assert await windows_stored(other) == 0


async def test_a_window_and_a_chain_of_windows_last_at_most_max_duration(make_bot, url):
    clock = ManualClock(START)  # Friday 10:00 UTC
    bot, _ = await started(make_bot, url, clock)

    async def opened(text: str) -> int:
        reply = await say(bot, text)
        assert reply.outcome is Outcome.ok, reply.text
        return int(re.search(r"#(\d+)", reply.text).group(1))

    assert await opened('schedule 2026-11-20T12:00 2h backend "a"') == 1
    assert await opened('schedule 2026-11-20T14:00 2h backend "b"') == 2  # touches #1: 4 h in a row, the most
    too_long = ("With windows #1, #2 this keeps backend in maintenance for 4h 30m in a row ({span}); "
                "windows less than an hour apart can last at most 4h together (maintenance.max_duration).")
    assert one_sentence(await say(bot, 'schedule 2026-11-20T16:00 30m backend "c"')) == too_long.format(span="12:00 UTC to 16:30 UTC")
    assert one_sentence(await say(bot, 'schedule 2026-11-20T11:30 1h backend "c"')) == too_long.format(span="11:30 UTC to 16:00 UTC")
    # Every service chains with every window: the longest chain is named.
    assert one_sentence(await say(bot, 'schedule 2026-11-20T16:00 30m "c"')) == too_long.format(span="12:00 UTC to 16:30 UTC")
    assert await windows_stored(bot) == 2

    assert await opened('schedule 2026-11-20T16:00 30m cache "d"') == 3  # another service
    # A minute of detection between windows does not break the chain: the gap is counted.
    assert one_sentence(await say(bot, 'schedule 2026-11-20T16:01 30m backend "e"')) == too_long.replace("4h 30m", "4h 31m").format(span="12:00 UTC to 16:31 UTC")
    assert await opened('schedule 2026-11-20T17:00 30m backend "e"') == 4  # an hour apart: not a chain
    # A cancelled window is no longer in any chain.
    await say(bot, "end 2")
    assert await opened('schedule 2026-11-20T10:30 90m backend "f"') == 5  # 10:30 to 14:00 with #1


async def test_two_windows_created_at_once_cannot_both_pass_the_chain_check(make_bot, pg_url):
    """Two replicas create windows that each fit, and together chain past 4 h. Another client holds the
    table meanwhile, so both requests have read the windows (or wait to) before either writes: one is refused."""
    clock = ManualClock(START)
    first, _ = await started(make_bot, pg_url, clock)
    second, _ = await started(make_bot, pg_url, clock)
    holder = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.execute("LOCK TABLE maintenance_windows IN SHARE ROW EXCLUSIVE MODE")
        both = asyncio.gather(say(first, 'schedule 2026-11-20T12:00 3h backend "a"'), say(second, 'schedule 2026-11-20T15:00 2h backend "b"'))
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'maintenance_windows'::regclass AND NOT granted"
        await wait_until(lambda: _equals(holder.fetchval(waiting), 2), timeout=10)
        await holding.rollback()
        replies = await both
    finally:
        await holder.close()
    assert sorted(r.outcome.value for r in replies) == ["ok", "usage_error"], [r.text for r in replies]
    assert await windows_stored(first) == 1


async def _equals(value, expected) -> bool:
    return await value == expected


def test_maintenance_settings_name_known_roles_and_a_positive_max_duration():
    from bot.config.loader import ConfigError, parse_config

    assert parse_config(CONFIG).maintenance.max_duration == 4 * 3600  # the default
    assert parse_config(CONFIG.replace("  channel:", "  max_duration: 90m\n  channel:")).maintenance.max_duration == 5400
    for before, after, problem in [
        ("all_services_roles: [ops]", "all_services_roles: [nobody]", "maintenance.all_services_roles names unknown role 'nobody'"),
        ("  channel:", "  max_duration: 0s\n  channel:", "maintenance.max_duration: a duration must be greater than zero"),
    ]:
        with pytest.raises(ConfigError) as refused:
            parse_config(CONFIG.replace(before, after))
        assert problem in str(refused.value), str(refused.value)
