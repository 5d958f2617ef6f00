"""/schedule run NAME over signed Slack HTTP, Socket Mode and the console: it needs what the
schedule's work needs by hand, and is refused while a run of the same schedule is in progress."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from drivers import drive  # noqa: F401 (fixture)
from sqlalchemy import select
from test_backup import dsn_of, pg_databases  # noqa: F401  (fixture)

from bot.backup import service as backups
from bot.config.loader import parse_config
from bot.schedules.models import ScheduleRun
from bot.schedules.run_policy import needs
from bot.schedules.runner import AlreadyRunning, claim

UTC = timezone.utc


def backup_config(dsn: str, directory) -> str:
    return f"""
version: 1
services: {{}}
roles:
  ops: {{users: [UOPS1]}}
  dba: {{users: [UDBA, UBOTH]}}
  backupers: {{users: [UBACK, UBOTH]}}
slack:
  ops_channel: C0OPS1
databases:
  app: {{dsn: "{dsn}", owners: [dba]}}
backups:
  directory: {directory}
actions:
  backup: {{kind: pg_backup, request_roles: [backupers]}}
schedules:
  nightly:
    cron: "0 2 * * *"
    timezone: UTC
    run: backup
    database: app
"""


async def _runs(bot) -> list[ScheduleRun]:
    async with bot.db.sessions() as session:
        return list((await session.execute(select(ScheduleRun).order_by(ScheduleRun.id))).scalars())


async def test_a_backup_schedule_by_hand_needs_the_owners_and_the_requesters_and_waits_for_a_run_in_progress(drive, pg_databases, tmp_path):
    source = await pg_databases.create(rows=20)
    d = await drive(backup_config(dsn_of(source), tmp_path / "backups"))
    bot = d.bot

    # No role, a role alone, the database's owners alone, the backup's requesters alone: one sentence each, nothing done.
    for user, needed in [
        ("UNOBODY", "a role"),
        ("UOPS1", "the dba role for backing up app"),
        ("UBACK", "the dba role for backing up app"),
        ("UDBA", "the backupers role for backing up app"),
    ]:
        sentence = f"You are not allowed to run /schedule run: it needs {needed} in app.yaml."
        refused = await d.command(user, "/schedule", "run nightly")
        assert refused.words.strip() == sentence, (user, refused.words)
        # Pausing the nightly backup is a power over it too: the same permission.
        paused = await d.command(user, "/schedule", "pause nightly")
        assert paused.words.strip() == sentence.replace("/schedule run", "/schedule pause"), (user, paused.words)
    assert await _runs(bot) == [] and await backups.list_backups(bot.db, "app") == []

    # A run left 'running' by a replica that died nine hours ago (past a backup's 8 h) holds nothing back.
    dead = await claim(bot.db, "nightly", datetime(2026, 1, 1, 2, 0, tzinfo=UTC), late=False, trigger="cron",
                       now=bot.clock.now() - timedelta(hours=9))
    ran = await d.command("UBOTH", "/schedule", "run nightly")
    assert "Ran nightly now" in ran.words, ran.words
    assert len(await backups.list_backups(bot.db, "app")) == 1

    # The scheduler starts tonight's slot (as it does at 02:00): a run by hand meanwhile is refused.
    slot = bot.clock.now().replace(hour=2, minute=0, second=0, microsecond=0) + timedelta(days=1)
    tonight = await claim(bot.db, "nightly", slot, late=False, trigger="cron", now=bot.clock.now())
    assert tonight is not None and dead is not None
    refused = await d.command("UBOTH", "/schedule", "run nightly")
    assert refused.words.startswith("nightly is already running (since ") and refused.words.strip().endswith("); try again once it has posted."), refused.words
    assert len(await backups.list_backups(bot.db, "app")) == 1
    assert [run.state for run in await _runs(bot)] == ["running", "posted", "running"]


async def test_a_cron_slot_meeting_a_run_by_hand_in_progress_is_skipped_not_run_beside_it(make_bot, pg_databases, tmp_path):
    from bot.schedules.runner import run_slot

    source = await pg_databases.create(rows=5)
    bot = await make_bot(backup_config(dsn_of(source), tmp_path / "backups"))
    by_hand = await claim(bot.db, "nightly", bot.clock.now(), late=False, trigger="manual", now=bot.clock.now())
    assert by_hand is not None  # a run by hand, still going
    slot = bot.clock.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert await run_slot(bot, "nightly", slot, late=False) is None
    [skipped] = [run for run in await _runs(bot) if run.slot.replace(tzinfo=UTC) == slot]
    assert skipped.state == "skipped" and "by hand" in skipped.headline
    assert await backups.list_backups(bot.db, "app") == []  # no second pg_dump beside the first


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
async def test_runs_by_hand_asked_for_at_once_run_one_at_a_time(make_bot, pg_database_url, database):
    bot = await make_bot("""
version: 1
services: {}
roles: {ops: {users: [UOPS1]}}
slack: {ops_channel: "#ops"}
schedules:
  at-once-%s: {cron: "0 2 * * *", run: health}
""" % database, pg_database_url if database == "postgresql" else None)
    name, now = f"at-once-{database}", bot.clock.now()

    async def by_hand(i: int):
        try:
            return await claim(bot.db, name, now + timedelta(microseconds=i + 1), late=False, trigger=f"U{i}", now=now,
                               alone_within=timedelta(minutes=15))
        except AlreadyRunning:
            return None

    claimed = await asyncio.gather(*(by_hand(i) for i in range(8)))
    assert len([run for run in claimed if run is not None]) == 1


def test_each_kind_of_schedule_needs_what_its_work_needs_by_hand():
    config = parse_config("""
version: 1
services:
  web: {container: web-1, owners: [web]}
  api: {description: outside, owners: [api]}
roles: {web: {users: [UWEB]}, api: {users: [UAPI]}, dba: {users: [UDBA]}, restorers: {users: [URESTORE]}}
databases:
  app: {dsn: "postgresql://x@127.0.0.1/app", owners: [dba]}
backups: {directory: /tmp/opsbot-backups}
slack: {ops_channel: "#ops"}
actions:
  restore: {kind: pg_restore, request_roles: [restorers]}
schedules:
  daily: {cron: "0 8 * * *", run: daily_check}
  weekly: {cron: "0 9 * * 1", run: weekly_check}
  health: {cron: "0 * * * *", run: health}
  checklist: {cron: "0 9 1 * *", run: monthly_checklist}
""")
    def summary(name):
        return [(n.doing, n.target.name, sorted(n.roles)) for n in needs(config, config.schedules[name])]

    # The daily check reads each database (its owners) and the logs of each container (the logs action's requesters).
    assert summary("daily") == [("reading", "app", ["dba"]), ("reading the logs of", "web", ["web"])]
    assert summary("weekly") == [("reading", "app", ["dba"]), ("restoring a backup of", "app", ["restorers"])]
    assert summary("health") == [] and summary("checklist") == []  # a role, as /health is open to everyone
