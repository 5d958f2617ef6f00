"""Scheduled posts (schedules: in app.yaml) on an injected clock: at the cron time, once per slot across
replicas, once late after a downtime, right on daylight-saving days, and a red reading's one incident.

The fleet's `web` answers healthy and `broken` (web500) answers 500, so its HTTP check is critical.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from conftest import fleet
from drivers import drive  # noqa: F401 (fixture)
from test_backup import pg_databases  # noqa: F401  (fixture)
from sqlalchemy import select

from bot.incident import service as incident_service
from bot.pipeline.request import Request
from bot.schedule.clock import ManualClock
from bot.schedules.models import ScheduleIncident, ScheduleRun

UTC = timezone.utc


class Channel:
    """A transport's posts, with the channel each went to."""

    def __init__(self):
        self.posts: list[tuple[str, object]] = []

    async def post(self, channel: str, reply) -> str:
        self.posts.append((channel, reply))
        return f"rec:{len(self.posts)}"

    async def update(self, ref: str, reply) -> None:
        pass

    async def open_form(self, trigger_id, form) -> bool:
        return False

    async def direct(self, user_id: str, reply) -> str:
        return "rec:dm"

    def texts(self) -> list[str]:
        return [reply.text for _, reply in self.posts]


def config(schedules: str, *, with_broken: bool = True, with_container: bool = True) -> str:
    f = fleet()
    container = f"container: {f['OPSBOT_FLEET_WEB']}" if with_container else "description: the web site, from outside"
    broken = f"""
  broken:
    container: {f['OPSBOT_FLEET_WEB500']}
    owners: [ops]
    checks:
      - kind: http
        url: {f['OPSBOT_FLEET_WEB500_URL']}
""" if with_broken else ""
    return f"""
version: 1
services:
  web:
    {container}
    owners: [ops]  # the daily check reads its logs: /schedule run needs what /logs web needs
    checks:
      - kind: http
        url: {f['OPSBOT_FLEET_WEB_HEALTH_URL']}
{broken}
roles:
  ops: {{users: [UOPS1, UOPS2]}}
slack:
  ops_channel: "#ops"
schedules:
{schedules}
"""


DAILY = """
  morning:
    cron: "0 8 * * 1-5"
    timezone: Europe/Berlin
    run: daily_check
"""


async def started(make_bot, text: str, clock: ManualClock, database_url: str | None = None):
    bot = await make_bot(text, database_url, clock=clock)
    channel = bot.messengers["slack"] = Channel()
    await bot.scheduler.ensure_periodic()
    await bot.scheduler.run_due()
    return bot, channel


async def at(bot, clock: ManualClock, when: datetime) -> None:
    """Move the clock to `when` and run what is due, as the loop would."""
    clock.set(when) if hasattr(clock, "set") else clock.advance(when - clock.now())
    await bot.scheduler.ensure_periodic()
    await bot.scheduler.run_due()


async def test_the_daily_post_arrives_at_its_cron_time_and_compares_with_the_previous_run(make_bot):
    clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))  # Monday 07:30 in Berlin
    bot, channel = await started(make_bot, config(DAILY), clock)
    assert channel.posts == []

    await at(bot, clock, datetime(2026, 11, 23, 6, 59, tzinfo=UTC))
    assert channel.posts == []  # not before 08:00 Berlin
    await at(bot, clock, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert len(channel.posts) == 1
    where, first = channel.posts[0]
    assert where == "#ops"
    assert "Daily check (morning, Mon 23 Nov 08:00 CET)" in first.text
    assert "broken http" in first.text and "Late" not in first.text

    await at(bot, clock, datetime(2026, 11, 24, 7, 0, tzinfo=UTC))  # Tuesday 08:00 Berlin
    assert len(channel.posts) == 2
    second = channel.posts[1][1]
    blocks = " ".join(getattr(b, "text", "") for b in second.blocks)
    assert "0 new" in second.text and "Still not green" in blocks and "Turned red" not in blocks

    runs = await _runs(bot, "morning")
    assert [r.slot for r in runs] == [datetime(2026, 11, 23, 7, 0, tzinfo=UTC), datetime(2026, 11, 24, 7, 0, tzinfo=UTC)]
    assert all(r.state == "posted" and not r.late for r in runs)


async def test_a_green_day_is_one_line_with_the_details_a_press_away(make_bot):
    clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    # No container: the shared fleet container's real logs (other tests' errors) stay out of it.
    bot, channel = await started(make_bot, config(DAILY, with_broken=False, with_container=False), clock)
    await at(bot, clock, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    [(_, post)] = channel.posts
    assert post.text.startswith("Daily check (morning, Mon 23 Nov 08:00 CET): all ") and " green" in post.text
    assert "\n" not in post.text
    [button] = [b for block in post.blocks if hasattr(block, "buttons") for b in block.buttons]
    from bot.pipeline.messenger import Click

    details = await bot.handle_click(Click("UOPS1", button.action_id, button.value, "#ops", "slack"))
    assert "web http" in details.text and "incidents" in details.text and details.ephemeral


async def test_two_replicas_post_once_per_slot(make_bot, pg_database_url):
    clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    name = f"m{clock.now().microsecond}{id(clock) % 100000}"
    schedules = f"""
  {name}:
    cron: "0 8 * * 1-5"
    timezone: Europe/Berlin
    run: health
    services: [web]
"""
    one, first = await started(make_bot, config(schedules), clock, pg_database_url)
    two, second = await started(make_bot, config(schedules), clock, pg_database_url)
    clock.advance(timedelta(minutes=30))
    await asyncio.gather(one.scheduler.ensure_periodic(), two.scheduler.ensure_periodic())
    await asyncio.gather(one.scheduler.run_due(), two.scheduler.run_due())
    # The shared database holds other tests' jobs too (their pages land in these recorders): count this schedule's.
    ours = [text for text in first.texts() + second.texts() if text.startswith(f"Scheduled health check ({name},")]
    assert len(ours) == 1
    assert len(await _runs(one, name)) == 1


async def test_a_slot_missed_while_down_runs_once_late(make_bot):
    clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    bot, channel = await started(make_bot, config(DAILY, with_broken=False), clock)
    await at(bot, clock, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert len(channel.posts) == 1
    # Down from Monday noon until Wednesday 10:00 Berlin: Tuesday's and Wednesday's 08:00 passed.
    await at(bot, clock, datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    assert len(channel.posts) == 2  # one post for what was missed, not one per slot
    late = channel.posts[1][1]
    assert "Late: this slot was missed while opsbot was down" in late.text
    runs = await _runs(bot, "morning")
    assert runs[-1].late and runs[-1].slot == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    await at(bot, clock, datetime(2026, 11, 25, 9, 30, tzinfo=UTC))
    assert len(channel.posts) == 2


async def test_daylight_saving_days_neither_skip_nor_double(make_bot):
    schedules = """
  night:
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    run: health
    services: [web]
"""
    # Spring forward (29 March 2026): 02:30 does not exist; it runs once, at 03:00 CEST (01:00 UTC).
    clock = ManualClock(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    bot, channel = await started(make_bot, config(schedules), clock)
    for hour, minute in ((0, 30), (1, 0), (1, 30), (2, 30)):
        await at(bot, clock, datetime(2026, 3, 29, hour, minute, tzinfo=UTC))
    assert len(channel.posts) == 1
    assert (await _runs(bot, "night"))[0].slot == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)

    # Fall back (25 October 2026): 02:30 happens twice; it runs at the first (00:30 UTC) only.
    clock2 = ManualClock(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    bot2, channel2 = await started(make_bot, config(schedules), clock2)
    for hour, minute in ((0, 30), (1, 0), (1, 30), (2, 30), (3, 0)):
        await at(bot2, clock2, datetime(2026, 10, 25, hour, minute, tzinfo=UTC))
    assert len(channel2.posts) == 1
    assert (await _runs(bot2, "night"))[0].slot == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


async def test_a_red_check_opens_exactly_one_incident_and_says_so_when_green(make_bot):
    schedules = """
  hourly:
    cron: "0 * * * *"
    timezone: UTC
    run: health
    services: [broken]
    open_incident: P2
"""
    clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    bot, channel = await started(make_bot, config(schedules), clock)
    await at(bot, clock, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    await at(bot, clock, datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    async with bot.db.sessions() as session:
        rows = list((await session.execute(select(ScheduleIncident))).scalars())
    assert len(rows) == 1 and rows[0].item == "check:broken/http" and rows[0].cleared_at is None
    listing = await bot.handle(Request("UOPS1", "C1", "incident", "list", "console"))
    shown = " ".join(getattr(block, "text", "") for block in listing.blocks)
    assert listing.text == "Open incidents: 1" and "INC-1 P2" in shown.replace("*", "") and "broken http" in shown
    posts = [text for text in channel.texts() if text.startswith("Scheduled health check")]
    assert len(posts) == 2 and "opened INC-1 for broken http" in posts[0] and "INC-" not in posts[1]


async def test_schedule_command_lists_runs_pauses_and_resumes(make_bot):
    clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    bot, channel = await started(make_bot, config(DAILY, with_broken=False), clock)
    listed = await bot.handle(Request("UOPS1", "C1", "schedule", "list", "console"))
    assert "morning" in listed.text and "next: Mon 23 Nov 08:00 CET" in listed.text and "last: never" in listed.text

    ran = await bot.handle(Request("UOPS1", "C1", "schedule", "run morning", "console"))
    assert "Ran morning now" in ran.text and len(channel.posts) == 1

    assert "is paused" in (await bot.handle(Request("UOPS1", "C1", "schedule", "pause morning", "console"))).text
    await at(bot, clock, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert len(channel.posts) == 1  # paused: the slot posts nothing
    assert "paused" in (await bot.handle(Request("UOPS1", "C1", "schedule", "list", "console"))).text
    resumed = await bot.handle(Request("UOPS1", "C1", "schedule", "resume morning", "console"))
    assert "running again; next post Tue 24 Nov 08:00 CET" in resumed.text
    await at(bot, clock, datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    assert len(channel.posts) == 2

    assert "Unknown schedule 'nope'" in (await bot.handle(Request("UOPS1", "C1", "schedule", "run nope", "console"))).text
    outsider = await bot.handle(Request("UNOBODY", "C1", "schedule", "pause morning", "console"))
    assert "morning" not in outsider.text or "role" in outsider.text


async def _runs(bot, name: str) -> list[ScheduleRun]:
    async with bot.db.sessions() as session:
        return list((await session.execute(select(ScheduleRun).where(ScheduleRun.schedule == name).order_by(ScheduleRun.slot))).scalars())


async def test_the_monthly_checklist_is_ticked_with_buttons_recording_who(make_bot):
    schedules = """
  monthly:
    cron: "0 9 1 * *"
    timezone: UTC
    run: monthly_checklist
    checklist: [Review and update the runbooks, Check that backup restoration works]
"""
    clock = ManualClock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    bot, channel = await started(make_bot, config(schedules, with_broken=False, with_container=False), clock)
    await at(bot, clock, datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    [(where, post)] = channel.posts
    assert where == "#ops" and "Monthly checklist (monthly, Tue 01 Dec 09:00 UTC): 0 of 2 done." == post.text
    buttons = [b for block in post.blocks if hasattr(block, "buttons") for b in block.buttons]
    assert [b.label for b in buttons] == ["Tick", "Tick"]

    from bot.pipeline.messenger import Click

    updates = []

    async def update(ref, reply):
        updates.append((ref, reply))

    channel.update = update
    done = await bot.handle_click(Click("UOPS2", buttons[1].action_id, buttons[1].value, "#ops", "slack"))
    assert done.text == "Ticked: Check that backup restoration works."
    [(ref, redrawn)] = updates
    assert ref == "rec:1" and redrawn.text.endswith("1 of 2 done.")
    shown = " ".join(str(getattr(block, "text", "")) for block in redrawn.blocks)
    assert "☑ Check that backup restoration works (ticked by <@UOPS2> at 01 Dec 09:00 UTC)" in shown
    again = await bot.handle_click(Click("UOPS1", buttons[1].action_id, buttons[1].value, "#ops", "slack"))
    assert "already ticked by <@UOPS2>" in again.text


async def test_when_the_red_reading_is_green_again_the_incident_hears_it_and_offers_resolve(make_bot):
    from aiohttp import web

    from conftest import free_port

    status = {"code": 500}

    async def health(request):
        return web.Response(status=status["code"], text="{}")

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        text = f"""
version: 1
services:
  api:
    checks:
      - kind: http
        url: http://127.0.0.1:{port}/health
roles:
  ops: {{users: [UOPS1]}}
slack:
  ops_channel: "#ops"
schedules:
  hourly:
    cron: "0 * * * *"
    run: health
    open_incident: P3
"""
        clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
        bot, channel = await started(make_bot, text, clock)
        await at(bot, clock, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
        status["code"] = 200
        await at(bot, clock, datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
        green = [reply for _, reply in channel.posts if reply.text.startswith("INC-1: api http is green again")]
        assert len(green) == 1
        buttons = [b for block in green[0].blocks if hasattr(block, "buttons") for b in block.buttons]
        assert [(b.label, b.action_id, b.value) for b in buttons] == [("Resolve", "incident.resolve", "1")]
        post = [reply.text for _, reply in channel.posts if reply.text.startswith("Scheduled health check")][-1]
        assert "recovered: api http" in post and "Incidents: INC-1: api http is green again" in post
        async with bot.db.sessions() as session:
            [row] = list((await session.execute(select(ScheduleIncident))).scalars())
        assert row.cleared_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    finally:
        await runner.cleanup()


async def test_the_weekly_check_reads_size_statements_tables_and_restores_the_newest_backup(make_bot, pg_databases, tmp_path):
    from test_backup import dsn_of

    from bot.backup.service import make_backup
    from bot.schedules.weekly import scratch_name

    source = await pg_databases.create(rows=50)
    pg_databases.made.append(scratch_name("app"))  # dropped with the others after the test
    schedules = """
  weekly:
    cron: "0 9 * * 1"
    timezone: UTC
    run: weekly_check
"""
    text = config(schedules, with_broken=False, with_container=False) + f"""
databases:
  app: {{dsn: "{dsn_of(source)}", owners: [ops]}}
backups:
  directory: {tmp_path / 'backups'}
"""
    clock = ManualClock(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    bot, channel = await started(make_bot, text, clock)
    made = await make_backup(bot, "app", made_by="UOPS1")
    assert made.verified
    await at(bot, clock, datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    [run] = await _runs(bot, "weekly")
    assert run.state == "posted"
    items = run.items
    assert items["size:app"]["status"] == "ok" and "no earlier reading" in items["size:app"]["detail"]
    assert items["slow:app"]["status"] == "ok" and "0 running longer than 10 s" in items["slow:app"]["detail"]
    assert "public.orders" in items["tables:app"]["detail"]
    restore = items["restore-test:app"]
    assert restore["status"] == "ok" and f"backup #{made.id} restored into {scratch_name('app')}" in restore["detail"]
    assert restore["number"] >= 1
    assert channel.posts[-1][1].text.startswith("Weekly check (weekly, Mon 23 Nov 09:00 UTC): all ")


async def test_schedule_run_posts_in_its_channel_over_every_transport(drive):
    schedules = DAILY.replace("run: daily_check", "run: daily_check\n    channel: C0OPS1")
    d = await drive(config(schedules, with_broken=False, with_container=False))
    seen = await d.command("UOPS1", "/schedule", "run morning")
    assert "Ran morning now" in seen.words
    await d.settle()
    posts = [m for m in d.messages() if "Daily check (morning" in m.now.words]
    assert len(posts) == 1 and " green" in posts[0].now.words
    listed = await d.command("UOPS2", "/schedule", "list")
    assert "morning" in listed.words and "last: never" not in listed.words  # the run by hand is the last run


async def test_a_maintenance_window_silences_a_red_reading(make_bot):
    schedules = """
  hourly:
    cron: "0 * * * *"
    timezone: UTC
    run: health
    services: [broken]
    open_incident: P2
"""
    clock = ManualClock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    bot, channel = await started(make_bot, config(schedules), clock)
    started_window = await bot.handle(Request("UOPS1", "C1", "maintenance", 'start 2h broken "replacing the web500 box"', "console"))
    assert started_window.outcome.value in ("ok",), started_window.text
    await at(bot, clock, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    async with bot.db.sessions() as session:
        assert list((await session.execute(select(ScheduleIncident))).scalars()) == []
    [run] = await _runs(bot, "hourly")
    assert run.items["check:broken/http"]["status"] == "maintenance"
    post = [reply.text for _, reply in channel.posts if reply.text.startswith("Scheduled health check")][0]
    assert "1 in maintenance" in post and "CRITICAL" not in post
    # After the window the same reading opens its incident, as automated detection (which a window silences).
    await at(bot, clock, datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    async with bot.db.sessions() as session:
        [row] = list((await session.execute(select(ScheduleIncident))).scalars())
        assert await incident_service.origin_in(session, row.incident_id) == "schedule"


def test_cron_reads_like_vixie_cron_and_refuses_what_never_fires():
    from bot.config.loader import ConfigError, parse_config
    from bot.schedule.cron import next_slot

    # A day field starting with * makes the two AND: Mondays that fall on odd days, not "odd days or Mondays".
    assert next_slot("0 8 */2 * 1", "UTC", datetime(2026, 11, 30, 9, 0, tzinfo=UTC)) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert next_slot("0 8 * * 7", "UTC", datetime(2026, 11, 23, tzinfo=UTC)) == datetime(2026, 11, 29, 8, 0, tzinfo=UTC)  # 7 is Sunday
    assert next_slot("0 8-18/5 * * MON-FRI", "UTC", datetime(2026, 11, 23, 9, 0, tzinfo=UTC)) == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    for cron, problem in [
        ("0 8 30 2 *", "never fires within a year"),
        ("61 * * * *", "the minute field has 61"),
        ("0 8 * *", "has 4 fields"),
    ]:
        text = config(f"""
  bad:
    cron: "{cron}"
    run: health
""", with_broken=False, with_container=False)
        try:
            parse_config(text)
        except ConfigError as exc:
            assert problem in str(exc) and "schedules.bad.cron" in str(exc)
        else:
            raise AssertionError(f"{cron} was accepted")
    try:
        parse_config(config('''
  bad:
    cron: "0 8 * * *"
    timezone: Mars/Olympus
    run: health
''', with_broken=False, with_container=False))
    except ConfigError as exc:
        assert "unknown time zone 'Mars/Olympus'" in str(exc)
    else:
        raise AssertionError("an unknown time zone was accepted")
