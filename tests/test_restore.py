"""Restores against the real PostgreSQL (and real Docker containers as the dependents).

The pg_restore kind in the runbook's order: safety backup, stop the dependents, restore,
start them, their health, the result; --into a scratch database skips what would touch
anything else. Rows deleted after the backup come back; a failure stops at its step and
the report says where things stand. Scratch databases and containers are the test's own.
"""
from __future__ import annotations

from pathlib import Path

import docker
import pytest
from sqlalchemy import select

from bot.action.kinds.base import PlanError
from bot.action.kinds.pg_backup import KIND as PG_BACKUP
from bot.action.kinds.pg_restore import KIND as PG_RESTORE
from bot.backup import service as backups
from bot.backup.models import Backup
from bot.action import service as requests
from bot.audit import service as audit
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Outcome

from action_helpers import OwnContainers, own_fixture  # noqa: E402
from test_backup import (  # noqa: E402
    ROWS,
    Recorder,
    command,
    config_yaml,
    dsn_of,
    execute_sql,
    fetch,
    one_sentence,
    pg_databases,  # noqa: F401 (fixture)
    plan_of,
    run_kind,
)


class RestoreContainers(OwnContainers):
    prefix = "opsbot-test-rst-"
    run_label = "opsbot.test.rst"

    def service(self) -> str:
        """A dependent that stops promptly on SIGTERM (docker stop), as an application does."""
        return self.run(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"])


@pytest.fixture
def docker_client():
    client = docker.from_env()
    yield client
    client.close()


own = own_fixture(RestoreContainers)


async def _exists(name: str) -> bool:
    from test_backup import PG_ADMIN_DSN
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await admin.close()


async def test_restore_into_a_new_scratch_database_brings_the_rows_back(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create()
    scratch = pg_databases.name("opsbot_scratch")
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    await execute_sql(source, "DELETE FROM orders WHERE id > 10")  # the original moves on; the scratch copy must not care

    spec, plan = await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": scratch})
    assert [s["step"] for s in plan.steps] == ["restore", "report"]  # new scratch database: no safety backup, no dependents
    assert plan.confirm == scratch and spec.approval.approvals == 2 and spec.approval.confirm
    assert [t.key for t in plan.targets] == ["database:app"]
    assert "(created now)" in PG_RESTORE.describe(plan)[0]

    report, recorder = await run_kind(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": scratch})
    assert report.succeeded, report.summary()
    assert await fetch(scratch, "SELECT count(*) FROM orders") == ROWS
    assert await fetch(scratch, "SELECT customer FROM orders WHERE id = 42") == "customer 42"
    assert await fetch(source, "SELECT count(*) FROM orders") == 10
    assert [o for o, _ in recorder.steps] == ["restore", "report"]
    assert f"Restore of backup #{made.id} into {scratch} done." in report.summary()

    # Again into the now existing scratch database: a safety backup of it first, then --clean.
    _, again = await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": scratch})
    assert [s["step"] for s in again.steps] == ["safety_backup", "restore", "report"]
    await execute_sql(scratch, "DELETE FROM orders")
    report, _ = await run_kind(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": scratch})
    assert report.succeeded, report.summary()
    assert await fetch(scratch, "SELECT count(*) FROM orders") == ROWS
    async with bot.db.sessions() as session:
        safety = (await session.execute(select(Backup).where(Backup.database == f"scratch:{scratch}"))).scalar_one()
        # Recorded apart from the declared databases: nothing is recorded under the bare scratch name.
        assert (await session.execute(select(Backup).where(Backup.database == scratch))).first() is None
    assert safety.verified and safety.label == f"safety before restoring #{made.id}"
    assert safety.file_name.startswith(f"scratch_{scratch}_")


async def test_restore_over_the_original_in_runbook_order_with_dependents(make_bot, pg_databases, tmp_path, own):
    source = await pg_databases.create()
    backend, worker = own.service(), own.service()
    services = {
        "backend": {"container": backend, "owners": ["ops"], "checks": [{"kind": "container"}]},
        "worker": {"container": worker, "owners": ["ops"], "checks": [{"kind": "container"}]},
    }
    actions = {"restore": {"kind": "pg_restore", "verify": {"deadline": "20s", "interval": "200ms"}}}
    bot = await make_bot(
        config_yaml({"app": {"dsn": dsn_of(source), "dependents": ["backend", "worker"]}}, tmp_path / "b", services=services, actions=actions)
    )
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    await execute_sql(source, "DELETE FROM orders WHERE id % 2 = 0")
    await execute_sql(source, "CREATE TABLE added_later (x int)")

    _, plan = await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id)})
    assert [s["step"] for s in plan.steps] == ["safety_backup", "stop", "restore", "start", "health", "report"]
    assert plan.confirm == "app"
    assert [t.key for t in plan.targets] == ["database:app", "service:backend", "service:worker"]

    report, recorder = await run_kind(PG_RESTORE, bot, "restore", {"backup": str(made.id)})
    assert report.succeeded, report.summary()
    assert await fetch(source, "SELECT count(*) FROM orders") == ROWS
    # --clean drops and recreates what the archive holds; a table made after the backup is left alone.
    assert await fetch(source, "SELECT to_regclass('added_later')::text") == "added_later"
    assert [o for o, _ in recorder.steps] == ["safety_backup", "stop", "restore", "start", "health", "report"]
    for name in (backend, worker):
        assert own.inspect(name)["State"]["Running"]
    safety = (await backups.list_backups(bot.db, "app"))[0]
    assert safety.id != made.id and safety.label == f"safety before restoring #{made.id}"
    assert f"Safety backup #{safety.id} holds the state before." in report.summary()

    # The safety backup holds the state before the restore: half the rows and the later table.
    scratch = pg_databases.name("opsbot_scratch")
    report, _ = await run_kind(PG_RESTORE, bot, "restore", {"backup": str(safety.id), "into": scratch})
    assert report.succeeded, report.summary()
    assert await fetch(scratch, "SELECT count(*) FROM orders") == ROWS // 2
    assert await fetch(scratch, "SELECT to_regclass('added_later')::text") == "added_later"


async def test_a_failed_restore_says_where_things_stand(make_bot, pg_databases, tmp_path, own):
    source = await pg_databases.create()
    backend = own.service()
    services = {"backend": {"container": backend, "owners": ["ops"], "checks": [{"kind": "container"}]}}
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source), "dependents": ["backend"]}}, tmp_path / "b", services=services))
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    spec, plan = await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id)})
    # Approved, then the file is damaged before it runs: the checksum stops the restore at step 3.
    data = bytearray(backups.path_of(bot.config, made).read_bytes())
    data[-10] ^= 0xFF
    backups.path_of(bot.config, made).write_bytes(bytes(data))
    recorder = Recorder()
    report = await PG_RESTORE.execute(recorder.context(bot), spec, plan)
    assert not report.succeeded
    summary = report.steps[-1].summary
    assert [step.ok for step in report.steps] == [True, True, False]
    safety = (await backups.list_backups(bot.db, "app"))[0]
    assert summary.startswith("Restore failed at step 3 (restore): backup #%d cannot be restored: its SHA-256 does not match" % made.id), summary
    assert f"dependents backend are STOPPED; safety backup #{safety.id} holds the state before." in summary
    assert f"Database {source} is unchanged (pg_restore runs in one transaction)" in summary
    assert recorder.steps[-1][0] == "failed"
    assert not own.inspect(backend)["State"]["Running"]  # left stopped: a human decides
    assert await fetch(source, "SELECT count(*) FROM orders") == ROWS


async def test_restore_refuses_what_cannot_be_restored(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    with pytest.raises(PlanError, match=r"There is no backup #424242; /backup list shows them\."):
        await plan_of(PG_RESTORE, bot, "restore", {"backup": "424242"})
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    backups.path_of(bot.config, made).write_bytes(b"PGDMP broken")
    await backups.verify_backup(bot, made.id)
    with pytest.raises(PlanError, match=rf"Backup #{made.id} is not verified .*; run /backup verify {made.id} first\."):
        await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id)})

    for text, expected in [
        ("424242", "There is no backup #424242; /backup list shows them."),
        ("abc", "'abc' is not a backup id; /backup list shows them. Usage: /restore BACKUP_ID [--into DATABASE]."),
    ]:
        reply = await command(bot, "UOPS1", "restore", text)
        assert reply.text.rstrip(".") == expected.rstrip("."), reply.text
        assert reply.outcome in (Outcome.usage_error, Outcome.error)
    bad_name = await command(bot, "UOPS1", "restore", f"{made.id} --into bad-name;drop")
    assert bad_name.outcome == Outcome.usage_error and "letters, digits and _" in bad_name.text
    system = await command(bot, "UOPS1", "restore", f"{made.id} --into template1")
    assert "system database" in system.text
    one_sentence(system.text.split(" Usage:")[0])


async def test_restore_command_asks_two_approvers_to_type_the_database(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    report, _ = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
    assert report.succeeded
    [made] = await backups.list_backups(bot.db, "app")
    scratch = pg_databases.name("opsbot_scratch")
    reply = await command(bot, "UOPS1", "restore", f"{made.id} --into {scratch}")
    assert reply.outcome == Outcome.ok, reply.text
    assert "/restore" in reply.text and "request #" in reply.text, reply.text
    assert not await _exists(scratch)  # nothing runs before two approvals
    request_id = int(reply.text.split("request #")[1].split(":")[0].split()[0].rstrip("."))

    def typed(user: str, name: str) -> Click:
        # The submission of the confirmation form Approve opens in Slack (bot/action/confirmation.py).
        return Click(user, "", "", "", "slack", kind="view_submission", callback_id="action.confirm",
                     fields=(("confirm", name),), metadata=f"{request_id}:C1:")

    wrong = await bot.handle_click(typed("UOPS2", "app"))
    assert wrong.outcome == Outcome.denied and f"That is not {scratch}" in wrong.text
    assert (await requests.get(bot.db, request_id)).state == "pending"
    assert "one more approver" in (await bot.handle_click(typed("UOPS2", scratch))).text
    await bot.handle_click(typed("UOPS3", scratch))
    done = await requests.get(bot.db, request_id)
    assert done.state == "succeeded", done.result
    assert await fetch(scratch, "SELECT count(*) FROM orders") == 10  # the rows came back
    entries = [e for e in await audit.entries(bot.db, limit=50) if e.command == "restore"]
    assert {"requested", "approval refused", "approved", "running", "succeeded"} <= {e.outcome for e in entries}


async def test_restore_never_overwrites_a_database_it_did_not_create(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    other = await pg_databases.create(rows=3)  # another application's database on the same server
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    with pytest.raises(PlanError, match=rf"Database {other} exists and is not a scratch database"):
        await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": other})
    assert await fetch(other, "SELECT count(*) FROM orders") == 3


async def test_restore_in_the_database_container_streams_the_file_through_docker_exec(make_bot, pg_databases, tmp_path):
    from conftest import fleet

    container = fleet().get("OPSBOT_FLEET_PGCLIENT")
    if not container:
        pytest.fail("tests/.fleet.env has no OPSBOT_FLEET_PGCLIENT: run scripts/test-env.sh (make test does) to build the pg client container.")
    source = await pg_databases.create()
    scratch = pg_databases.name("opsbot_scratch")
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source), "container": container}}, tmp_path / "b"))
    report, _ = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
    assert report.succeeded, report.summary()
    [made] = await backups.list_backups(bot.db, "app")
    report, _ = await run_kind(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": scratch})
    assert report.succeeded, report.summary()
    assert await fetch(scratch, "SELECT count(*) FROM orders") == ROWS


async def test_into_may_not_name_a_declared_database(make_bot, pg_databases, tmp_path):
    source, other = await pg_databases.create(rows=10), await pg_databases.create(rows=3)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}, "billing": {"dsn": dsn_of(other)}}, tmp_path / "b"))
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    for into, said in [
        ("billing", "billing is a database of app.yaml"),
        ("APP", "APP is a database of app.yaml"),
        (other, f"{other} is the PostgreSQL database of billing in app.yaml"),
        (source, f"{source} is the PostgreSQL database of app in app.yaml"),
    ]:
        with pytest.raises(PlanError) as caught:
            await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": into})
        text = str(caught.value)
        assert text.startswith(f"--into {into}: {said}, not a scratch database") and text.endswith("; nothing was requested."), text
        one_sentence(text)
    assert await fetch(other, "SELECT count(*) FROM orders") == 3


async def test_a_database_that_appears_after_the_plan_is_not_overwritten(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    scratch = pg_databases.name("opsbot_scratch")
    spec, plan = await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id), "into": scratch})
    assert [s["step"] for s in plan.steps] == ["restore", "report"]
    # Between the recheck and the run, someone creates a database of that name (not a scratch one).
    from test_backup import PG_ADMIN_DSN
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
    finally:
        await admin.close()
    await execute_sql(scratch, "CREATE TABLE precious (x int); INSERT INTO precious VALUES (1)")
    report = await PG_RESTORE.execute(Recorder().context(bot), spec, plan)
    assert not report.succeeded
    summary = report.steps[-1].summary
    assert f"database {scratch} exists now and is not a scratch database an earlier --into made" in summary, summary
    assert await fetch(scratch, "SELECT count(*) FROM precious") == 1
    assert await fetch(scratch, "SELECT to_regclass('orders')::text") is None


async def _planned_restore_with_a_dependent(make_bot, pg_databases, tmp_path, own, clock=None):
    """(bot, the dependent's container, the backup, spec, plan): a restore over app, planned, not yet run."""
    source = await pg_databases.create(rows=10)
    backend = own.service()
    services = {"backend": {"container": backend, "owners": ["ops"], "checks": [{"kind": "container"}]}}
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source), "dependents": ["backend"]}}, tmp_path / "b", services=services), clock=clock)
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    spec, plan = await plan_of(PG_RESTORE, bot, "restore", {"backup": str(made.id)})
    return bot, backend, made, spec, plan


async def test_a_backup_deleted_during_the_safety_backup_stops_nothing(make_bot, pg_databases, tmp_path, own):
    bot, backend, made, spec, plan = await _planned_restore_with_a_dependent(make_bot, pg_databases, tmp_path, own)
    from datetime import datetime, timezone
    from sqlalchemy import update

    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(Backup).where(Backup.id == made.id).values(deleted_at=datetime.now(timezone.utc)))
    report = await PG_RESTORE.execute(Recorder().context(bot), spec, plan)
    assert [step.ok for step in report.steps] == [True, False]
    assert "deleted by retention meanwhile, so nothing was stopped" in report.steps[-1].summary
    assert own.inspect(backend)["State"]["Running"]


async def test_a_replica_that_cannot_see_the_backup_stops_nothing_and_keeps_it_verified(make_bot, pg_databases, tmp_path, own):
    from datetime import datetime, timedelta, timezone

    from bot.schedule.clock import ManualClock

    clock = ManualClock(datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc))
    bot, backend, made, spec, plan = await _planned_restore_with_a_dependent(make_bot, pg_databases, tmp_path, own, clock)
    # The run lands on a replica where the file is not to be seen (its directory is not the shared one).
    backups.path_of(bot.config, made).rename(tmp_path / "on-another-volume.dump")
    clock.advance(timedelta(minutes=1))  # the safety backup's file gets a name of its own
    report = await PG_RESTORE.execute(Recorder().context(bot), spec, plan)
    assert [step.ok for step in report.steps] == [True, False]
    assert f"backup #{made.id}: this replica cannot see its file {made.file_name}" in report.steps[-1].summary
    assert "so nothing was stopped" in report.steps[-1].summary
    assert own.inspect(backend)["State"]["Running"]
    assert (await backups.get_backup(bot.db, made.id)).verified
