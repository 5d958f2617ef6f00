"""/db, the pg_terminate and pg_vacuum action kinds and the sql check, against the real PostgreSQL.

The module works in a scratch database of its own, so every connection to it is one a test
opened (or opsbot's own), and counts can be exact. Connections are closed by the test that
opened them.
"""
from __future__ import annotations


import asyncio
import uuid

import asyncpg
import pytest
import pytest_asyncio
import yaml
from conftest import PG_ADMIN_DSN, PG_USER, wait_until, real_bot

from bot.action.kinds.base import Plan, PlanContext, PlanError, RunContext
from bot.action.kinds.pg_terminate import KIND as PG_TERMINATE
from bot.action.kinds.pg_vacuum import KIND as PG_VACUUM
from bot.action.params import BadParameter, parse_params
from bot.config.loader import parse_config
from bot.database import DatabaseUnavailable, QueryFailed
from bot.database.backends import idle_backends, terminate
from bot.database.names import NoSuchTable, find_table, quote_ident
from bot.database.slow import slow
from bot.database.status import status
from bot.database.tables import largest_tables
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply, Section
from bot.pipeline.request import Request

ROLES = {"ops": {"users": ["UOPS1", "UOPS2"]}, "dev": {"users": ["UDEV1"]}}


# --------------------------------------------------------------------------- scratch database and config


@pytest_asyncio.fixture(scope="module")
async def scratch():
    """A database of this module's own: (name, dsn)."""
    name = f"opsbot_dbtest_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({exc}); start it (scripts/test-env.sh does).")
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"postgresql://{PG_USER}@127.0.0.1:5432/{name}"
    setup = await asyncpg.connect(dsn)
    await setup.execute(
        """
        CREATE TABLE big (id serial PRIMARY KEY, payload text NOT NULL);
        INSERT INTO big (payload) SELECT repeat(md5(i::text), 8) FROM generate_series(1, 20000) AS i;
        CREATE INDEX big_payload ON big (payload);
        CREATE TABLE small (id int PRIMARY KEY);
        INSERT INTO small VALUES (1), (2);
        CREATE SCHEMA ops;
        CREATE TABLE ops.events (id int);
        CREATE VIEW small_view AS SELECT * FROM small;
        CREATE TABLE payments (id serial PRIMARY KEY, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE documents (id serial PRIMARY KEY, updated_at timestamptz NOT NULL);
        """
    )
    await setup.close()
    yield name, dsn
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def config_text(dsn: str, *, checks: list[dict] | None = None, **database) -> str:
    entry = {"dsn": dsn, "service": "app", "slow_after": "1s", **database}
    return yaml.safe_dump(
        {
            "version": 1,
            "services": {"app": {"owners": ["ops"], "checks": checks or []}},
            "roles": ROLES,
            "databases": {"main": entry},
        },
        sort_keys=False,
    )


def db_config(dsn: str, **database):
    return parse_config(config_text(dsn, **database))


def plan_context(config, user: str = "UOPS1") -> PlanContext:
    return PlanContext(real_bot(config), user)


def run_context(config) -> tuple[RunContext, list[str]]:
    seen: list[str] = []

    async def progress(line: str) -> None:
        seen.append(line)

    async def audit_step(outcome: str, detail: str) -> None:
        seen.append(f"{outcome}: {detail}")

    return RunContext(real_bot(config), 1, "UOPS1", "C1", progress, audit_step), seen


async def opened(dsn: str, count: int, app: str = "dbtest") -> list[asyncpg.Connection]:
    return [await asyncpg.connect(dsn, server_settings={"application_name": f"{app}-{i}"}) for i in range(count)]


async def close_all(conns) -> None:
    """Closed on the server too: a client that just drops its socket leaves a backend busy in pg_sleep running."""
    pids = [conn.get_server_pid() for conn in conns]
    for conn in conns:
        if not conn.is_closed():
            conn.terminate()
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)
    finally:
        await admin.close()


async def alive(dsn: str, pids: list[int]) -> set[int]:
    admin = await asyncpg.connect(dsn)
    try:
        return {row["pid"] for row in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)}
    finally:
        await admin.close()


async def wait_state(dsn: str, pid: int, state: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await wait_until(lambda: _state_is(admin, pid, state), timeout=10)
    finally:
        await admin.close()


async def _state_is(admin, pid: int, state: str) -> bool:
    return await admin.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid) == state


def everything(reply: Reply) -> str:
    parts = [reply.text]
    parts += [block.text for block in reply.blocks if isinstance(block, (Header, Section, Preformatted, Context))]
    return "\n".join(parts)


def one_sentence(reply: Reply) -> str:
    assert reply.ephemeral, reply.text
    assert "\n" not in reply.text and len(reply.text) < 600, reply.text
    assert "Traceback" not in reply.text
    return reply.text


@pytest_asyncio.fixture
async def db_bot(make_bot, scratch):
    """make(**database settings) -> a bot whose app.yaml declares the scratch database as `main`, with /db registered."""
    from commands import db

    async def make(**database):
        bot = await make_bot(config_text(scratch[1], **database))
        if "db" not in bot.pipeline.commands:  # until commands/__init__.py lists it
            bot.pipeline.commands["db"] = db.COMMAND
        return bot

    return make


def ask(text: str, user: str = "UOPS1") -> Request:
    return Request(user, "C1", "db", text, "console")


# --------------------------------------------------------------------------- status


async def test_status_counts_connections_by_state(scratch):
    name, dsn = scratch
    config = db_config(dsn)
    idle = await opened(dsn, 2)
    in_transaction = (await opened(dsn, 1, "dbtest-tx"))[0]
    await in_transaction.execute("BEGIN; SELECT 1")
    in_transaction_pid = in_transaction.get_server_pid()
    try:
        found = await status("main", config.databases["main"])
    finally:
        await close_all([*idle, in_transaction])
    assert found.database == name
    # Ours: two idle, one idle in transaction; and opsbot's own reading connection, active.
    assert (found.total, found.idle, found.idle_in_transaction, found.active) == (4, 2, 1, 1)
    assert found.server_total >= 4 and found.max_connections > 0
    assert found.size.endswith(("kB", "MB")) and found.size_bytes > 1_000_000
    assert found.longest_transaction_seconds is not None and found.longest_transaction_state == "idle in transaction"
    assert found.longest_transaction_pid == in_transaction_pid
    assert found.grade == database_grade(found.percent)


def database_grade(percent: float) -> str:
    return "critical" if percent >= 90 else "warning" if percent >= 80 else "ok"


async def test_status_grades_connections_against_thresholds(scratch):
    _, dsn = scratch
    warning = await status("main", db_config(dsn, connections={"warn": 0.5, "critical": 100}).databases["main"])
    critical = await status("main", db_config(dsn, connections={"warn": 0.5, "critical": 0.6}).databases["main"])
    assert (warning.grade, critical.grade) == ("warning", "critical")


async def test_db_status_command_replies_graded(db_bot):
    bot = await db_bot(connections={"warn": 0.5, "critical": 100})
    reply = await bot.handle(ask("main status"))
    assert reply.outcome is Outcome.warning, everything(reply)
    text = everything(reply)
    assert "main: WARNING, connections " in reply.text
    assert "On main" in text and "idle in transaction" in text and "Longest transaction" in text
    assert "warning at 0.5%, critical at 100%" in text
    # The database may be left out when there is only one.
    assert (await bot.handle(ask("status"))).outcome is Outcome.warning


async def test_db_status_needs_a_role_owning_the_database(db_bot):
    bot = await db_bot()
    reply = await bot.handle(ask("main status", user="UDEV1"))
    assert reply.outcome is Outcome.denied
    assert one_sentence(reply) == "You cannot read main: it needs the ops role in app.yaml."


# --------------------------------------------------------------------------- slow statements


async def test_slow_lists_statements_running_longer_than_slow_after(scratch):
    _, dsn = scratch
    config = db_config(dsn)
    sleeper = (await opened(dsn, 1, "sleeper"))[0]
    pid = sleeper.get_server_pid()
    running = asyncio.create_task(sleeper.fetchval("SELECT pg_sleep(30) /* password=hunter2hunter2 */"))
    try:
        await wait_state(dsn, pid, "active")
        await asyncio.sleep(1.3)  # past slow_after (1 s)
        found = await slow("main", config.databases["main"])
    finally:
        await close_all([sleeper])
        await asyncio.gather(running, return_exceptions=True)
    assert [r.pid for r in found.running] == [pid] and found.matching == 1
    row = found.running[0]
    assert row.application == "sleeper-0" and row.state == "active" and row.seconds >= 1
    assert "pg_sleep(30)" in row.query and "hunter2hunter2" not in row.query and "[REDACTED]" in row.query
    assert found.top == [] and "pg_stat_statements is not installed in main" in found.top_note


async def test_slow_says_so_when_pg_stat_statements_is_not_loaded(scratch):
    _, dsn = scratch
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        preloaded = "pg_stat_statements" in (await admin.fetchval("SHOW shared_preload_libraries"))
        found = await slow("main", db_config(dsn).databases["main"])
    finally:
        await admin.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
        await admin.close()
    if preloaded:
        assert found.top_note is None
    else:
        assert found.top == [] and "installed in main but not loaded" in found.top_note


async def test_db_slow_command_with_nothing_slow(db_bot):
    bot = await db_bot()
    reply = await bot.handle(ask("main slow"))
    assert reply.outcome is Outcome.ok
    assert reply.text == "No statement on main has been running longer than 1 s."
    assert "pg_stat_statements is not installed" in everything(reply)


# --------------------------------------------------------------------------- tables


async def test_tables_lists_the_largest_first_with_index_sizes(scratch):
    _, dsn = scratch
    found = await largest_tables("main", db_config(dsn).databases["main"])
    assert found[0].shown == "big" and found[0].total_bytes > 1_000_000
    assert found[0].indexes.endswith(("kB", "MB")) and found[0].table.endswith(("kB", "MB"))
    names = [t.shown for t in found]
    assert "small" in names and "ops.events" in names and "small_view" not in names
    assert len(found) <= 10


async def test_db_tables_command(db_bot):
    bot = await db_bot()
    reply = await bot.handle(ask("tables"))
    assert reply.outcome is Outcome.ok
    table = next(block.text for block in reply.blocks if isinstance(block, Preformatted))
    assert table.splitlines()[0].split()[:2] == ["table", "total"]
    assert table.splitlines()[1].startswith("big ")


# --------------------------------------------------------------------------- kill-idle (pg_terminate)


def terminate_params(config, **raw) -> dict:
    return parse_params(PG_TERMINATE.params(config.action("kill_idle")), {"database": "main", **raw}, config)


async def test_kill_idle_plans_and_terminates_exactly_the_listed_connections(scratch):
    _, dsn = scratch
    config = db_config(dsn)
    spec = config.action("kill_idle")
    victims = await opened(dsn, 2, "victim")
    turns_busy = (await opened(dsn, 1, "busy"))[0]
    in_transaction = (await opened(dsn, 1, "in-tx"))[0]
    await in_transaction.execute("BEGIN; SELECT 1")
    later = None
    busy = None
    try:
        await asyncio.sleep(1.2)
        plan = await PG_TERMINATE.plan(plan_context(config), "kill_idle", spec, terminate_params(config, older_than="1s"))
        listed = {step["pid"] for step in plan.steps}
        victim_pids = {c.get_server_pid() for c in victims}
        assert listed == victim_pids | {turns_busy.get_server_pid()}  # not in-transaction, not opsbot's own
        assert [t.key for t in plan.targets] == ["database:main"]
        assert plan.params == {"database": "main", "older_than": 1.0, "idle_in_transaction": False}
        step = plan.steps[0]
        assert set(step) == {"pid", "backend_start", "user", "application", "state", "age_seconds"}
        assert step["state"] == "idle" and step["user"] == PG_USER and step["application"].startswith(("victim", "busy"))
        lines = PG_TERMINATE.describe(plan)
        assert len(lines) == 3 and all(line.startswith("terminate pid ") for line in lines)
        assert Plan.from_json(plan.to_json()).hash == plan.hash

        # Between approval and execution: one gets busy, a new one connects.
        later = (await opened(dsn, 1, "later"))[0]
        busy = asyncio.create_task(turns_busy.fetchval("SELECT pg_sleep(5)"))
        await wait_state(dsn, turns_busy.get_server_pid(), "active")
        assert await PG_TERMINATE.recheck(plan_context(config), spec, plan) is None

        ctx, _ = run_context(config)
        report = await PG_TERMINATE.execute(ctx, spec, plan)
        by_pid = {int(s.name.split()[1]): s for s in report.steps}
        assert set(by_pid) == listed
        for pid in victim_pids:
            assert by_pid[pid].ok and ": terminated (was idle for " in by_pid[pid].summary
        skipped = by_pid[turns_busy.get_server_pid()]
        assert skipped.ok and "skipped, it is active now" in skipped.summary
        assert report.succeeded

        survivors = {turns_busy.get_server_pid(), in_transaction.get_server_pid(), later.get_server_pid()}
        assert await alive(dsn, [*victim_pids, *survivors]) == survivors
        assert await later.fetchval("SELECT 1") == 1 and await in_transaction.fetchval("SELECT 2") == 2
    finally:
        await close_all([*victims, turns_busy, in_transaction, *([later] if later else [])])
        if busy is not None:
            await asyncio.gather(busy, return_exceptions=True)


async def test_kill_idle_in_transaction_lists_only_those(scratch):
    _, dsn = scratch
    config = db_config(dsn)
    plain = await opened(dsn, 1, "plain")
    in_transaction = (await opened(dsn, 1, "in-tx"))[0]
    await in_transaction.execute("BEGIN; SELECT 1")
    try:
        await asyncio.sleep(1.1)
        params = terminate_params(config, older_than="1s", idle_in_transaction="true")
        plan = await PG_TERMINATE.plan(plan_context(config), "kill_idle", config.action("kill_idle"), params)
        assert [s["pid"] for s in plan.steps] == [in_transaction.get_server_pid()]
        assert plan.steps[0]["state"] == "idle in transaction"
        report = await PG_TERMINATE.execute(run_context(config)[0], config.action("kill_idle"), plan)
        assert report.succeeded and "terminated" in report.summary()
        assert await alive(dsn, [plain[0].get_server_pid(), in_transaction.get_server_pid()]) == {plain[0].get_server_pid()}
    finally:
        await close_all([*plain, in_transaction])


async def test_terminate_skips_a_reused_pid_and_one_already_gone(scratch):
    _, dsn = scratch
    config = db_config(dsn)
    keeper, leaver = await opened(dsn, 2, "keeper")
    try:
        await asyncio.sleep(1.1)
        backends, _ = await idle_backends("main", config.databases["main"], 1.0, False)
        steps = {b.pid: b.as_step() for b in backends}
        leaver_step = steps[leaver.get_server_pid()]
        await leaver.close()
        await wait_until(lambda: _gone(dsn, leaver_step["pid"]))
        # The keeper's pid, but the start of another connection: as if the pid had been reused.
        impostor = dict(steps[keeper.get_server_pid()], backend_start="2001-01-01T00:00:00+00:00")
        outcomes = await terminate("main", config.databases["main"], [impostor, leaver_step], 1.0, False)
        assert [o.result for o in outcomes] == ["skipped", "skipped"]
        assert "the pid now belongs to a newer connection" in outcomes[0].sentence
        assert "it had already disconnected" in outcomes[1].sentence
        assert await keeper.fetchval("SELECT 1") == 1
    finally:
        await close_all([keeper, leaver])


async def _gone(dsn: str, pid: int) -> bool:
    return not await alive(dsn, [pid])


async def test_kill_idle_with_nothing_matching_requests_nothing(scratch):
    _, dsn = scratch
    config = db_config(dsn)
    with pytest.raises(PlanError) as caught:
        await PG_TERMINATE.plan(plan_context(config), "kill_idle", config.action("kill_idle"), terminate_params(config, older_than="30d"))
    assert str(caught.value) == "No idle connections match in main (idle for over 30d, not opsbot's own); nothing was requested."


@pytest.mark.parametrize(
    "raw, sentence",
    [
        ({"older_than": "-1h"}, "older_than: expected a duration like 5s, 500ms, 15m or 1h."),
        ({"older_than": "31d"}, "older_than can be at most 30d."),
        ({"older_than": "99999999999d"}, "older_than: a duration can be at most 3660d (ten years)."),
        ({"older_than": "0s"}, "older_than: a duration must be greater than zero."),
        ({"idle_in_transaction": "maybe"}, "idle_in_transaction must be true or false."),
        ({"database": "nosuch"}, "Unknown database 'nosuch' for database. Known: main."),
    ],
)
async def test_kill_idle_refuses_bad_parameters(scratch, raw, sentence):
    config = db_config(scratch[1])
    with pytest.raises(BadParameter) as caught:
        terminate_params(config, **raw)
    assert str(caught.value) == sentence


async def test_a_dead_database_is_one_sentence(scratch):
    config = db_config("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(PlanError) as caught:
        await PG_TERMINATE.plan(plan_context(config), "kill_idle", config.action("kill_idle"), terminate_params(config))
    assert str(caught.value).startswith("Cannot connect to database main: ")
    assert str(caught.value).endswith("; nothing was requested.") and "\n" not in str(caught.value)
    with pytest.raises(DatabaseUnavailable):
        await status("main", config.databases["main"])


async def test_db_command_on_a_dead_database(make_bot):
    bot = await make_bot(config_text("postgresql://postgres@127.0.0.1:1/nothing"))
    reply = await bot.handle(ask("main status"))
    assert reply.outcome is Outcome.error
    assert one_sentence(reply).startswith("Cannot connect to database main: ")


# --------------------------------------------------------------------------- vacuum (pg_vacuum)


def vacuum_params(config, **raw) -> dict:
    return parse_params(PG_VACUUM.params(config.action("vacuum")), {"database": "main", **raw}, config)


async def test_vacuum_one_table(scratch):
    _, dsn = scratch
    config = db_config(dsn)
    spec = config.action("vacuum")
    plan = await PG_VACUUM.plan(plan_context(config), "vacuum", spec, vacuum_params(config, table="small"))
    assert plan.steps == [{"database": "main", "schema": "public", "table": "small", "timeout": 3600.0}]
    assert PG_VACUUM.describe(plan)[0].startswith("VACUUM ANALYZE table public.small of main (")
    assert await PG_VACUUM.recheck(plan_context(config), spec, plan) is None
    report = await PG_VACUUM.execute(run_context(config)[0], spec, plan)
    assert report.succeeded, report.summary()
    assert report.summary().startswith("VACUUM ANALYZE public.small done in ")
    admin = await asyncpg.connect(dsn)
    try:
        row = await admin.fetchrow("SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = 'small'")
    finally:
        await admin.close()
    assert row["last_vacuum"] is not None and row["last_analyze"] is not None


async def test_vacuum_a_schema_qualified_table_and_the_whole_database(scratch):
    _, dsn = scratch
    config = db_config(dsn)
    spec = config.action("vacuum")
    for raw, shown in (({"table": "ops.events"}, "ops.events"), ({}, "main")):
        plan = await PG_VACUUM.plan(plan_context(config), "vacuum", spec, vacuum_params(config, **raw))
        report = await PG_VACUUM.execute(run_context(config)[0], spec, plan)
        assert report.succeeded and report.summary().startswith(f"VACUUM ANALYZE {shown} done in "), report.summary()


@pytest.mark.parametrize("table", ['small"; DROP TABLE big; --', "small;", "a'b", 'a"b', "a b", "a.b.c", "x" * 70, ""])
async def test_vacuum_refuses_table_names_with_quotes_or_semicolons(scratch, table):
    config = db_config(scratch[1])
    with pytest.raises(BadParameter) as caught:
        vacuum_params(config, table=table)
    assert str(caught.value).startswith("table must be a table name")


@pytest.mark.parametrize(
    "table, sentence",
    [
        ("nosuch", "There is no table 'nosuch' in database main; nothing was requested."),
        ("small_view", "'small_view' in database main is a view, not a table; nothing was requested."),
        ("nosuch.small", "There is no table 'nosuch.small' in database main; nothing was requested."),
    ],
)
async def test_vacuum_plan_refuses_what_is_not_a_table(scratch, table, sentence):
    config = db_config(scratch[1])
    with pytest.raises(PlanError) as caught:
        await PG_VACUUM.plan(plan_context(config), "vacuum", config.action("vacuum"), vacuum_params(config, table=table))
    assert str(caught.value) == sentence


async def test_table_names_are_looked_up_bound_and_quoted(scratch):
    database = db_config(scratch[1]).databases["main"]
    assert quote_ident('we"ird') == '"we""ird"'
    table = await find_table("main", database, "ops.events")
    assert table.qualified == '"ops"."events"' and table.kind == "table"
    with pytest.raises(NoSuchTable):
        await find_table("main", database, "big; DROP TABLE small")  # bound: a name that does not exist, not SQL
    assert (await find_table("main", database, "small")).name == "small"


# --------------------------------------------------------------------------- the command's words


@pytest.mark.parametrize(
    "text, sentence",
    [
        ("nosuch status", "Unknown database 'nosuch'. Known: main."),
        ("nosuch", "Unknown database or subcommand 'nosuch'. Known databases: main."),
        ("main", "What about main?"),
        ("main nosuch", "Unknown subcommand 'nosuch'."),
        ("", "Say what to show or do."),
        ("main status now", "/db status takes nothing after it; unexpected 'now'."),
        ("kill-idle --older-than -1h", "older_than: expected a duration like 5s, 500ms, 15m or 1h."),
        ("main kill-idle --older-than 31d", "older_than can be at most 30d."),
        ("kill-idle --older-than", "--older-than needs a duration, e.g. --older-than 1h."),
        ("kill-idle --force", "Unexpected '--force': kill-idle takes --older-than DURATION and --idle-in-transaction."),
        ("vacuum 'small; DROP TABLE big'", "table must be a table name"),
        ('main vacuum small"x', "table must be a table name"),
        ("vacuum small big", "vacuum takes at most one table name."),
    ],
)
async def test_db_refuses_bad_input_with_one_sentence(db_bot, text, sentence):
    bot = await db_bot()
    reply = await bot.handle(ask(text))
    assert one_sentence(reply).startswith(sentence), reply.text
    assert reply.outcome is Outcome.usage_error


async def test_db_asks_which_database_when_several(make_bot, scratch):
    text = yaml.safe_load(config_text(scratch[1]))
    text["databases"]["other"] = dict(text["databases"]["main"])
    bot = await make_bot(yaml.safe_dump(text))
    assert one_sentence(await bot.handle(ask("status"))).startswith("Which database? Known: main, other.")
    assert (await bot.handle(ask("other tables"))).outcome is Outcome.ok


# --------------------------------------------------------------------------- the sql check


STUCK = {
    "kind": "sql",
    "name": "stuck payments",
    "database": "main",
    "query": "SELECT count(*) FROM payments WHERE status = $1 AND created_at < now() - $2 * interval '1 minute'",
    "params": ["pending", 15],
    "value": {"warn": 1, "critical": 10},
    "unit": "stuck payments",
}
FRESH = {
    "kind": "sql",
    "name": "documents freshness",
    "database": "main",
    "query": "SELECT EXTRACT(EPOCH FROM now() - MAX(updated_at)) FROM documents",
    "value": {"warn": 3600, "critical": 86400},
    "unit": "s since update",
}


async def run_checks(make_bot, dsn: str, checks: list[dict], **database):
    bot = await make_bot(config_text(dsn, checks=checks, **database))
    return [(r.check, r.status, r.detail) for r in await bot.checks.run(bot.config, ["app"])]


@pytest.mark.parametrize("stuck, status, detail", [
    (0, "ok", "0 stuck payments"),
    (3, "warning", "3 stuck payments (warning at 1, critical at 10)"),
    (12, "critical", "12 stuck payments (warning at 1, critical at 10)"),
])
async def test_sql_check_counts_stuck_payments(make_bot, scratch, stuck, status, detail):
    _, dsn = scratch
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("TRUNCATE payments")
        await admin.execute(
            "INSERT INTO payments (status, created_at) SELECT 'pending', now() - interval '1 hour' FROM generate_series(1, $1)", stuck
        )
        # Recent ones and settled ones do not count.
        await admin.execute("INSERT INTO payments (status) VALUES ('pending'), ('pending')")
        await admin.execute("INSERT INTO payments (status, created_at) VALUES ('paid', now() - interval '2 hours')")
        assert await run_checks(make_bot, dsn, [STUCK]) == [("stuck payments", status, detail)]
    finally:
        await admin.execute("TRUNCATE payments")
        await admin.close()


@pytest.mark.parametrize("ago, status", [("1 minute", "ok"), ("2 hours", "warning"), ("2 days", "critical")])
async def test_sql_check_grades_data_freshness(make_bot, scratch, ago, status):
    _, dsn = scratch
    admin = await asyncpg.connect(dsn)
    interval_form = dict(FRESH, name="documents age", query="SELECT now() - MAX(updated_at) FROM documents", unit="")
    try:
        await admin.execute("TRUNCATE documents")
        await admin.execute(f"INSERT INTO documents (updated_at) VALUES (now() - interval '{ago}'), (now() - interval '30 days')")
        results = await run_checks(make_bot, dsn, [FRESH, interval_form])
    finally:
        await admin.execute("TRUNCATE documents")
        await admin.close()
    assert [r[:2] for r in results] == [("documents freshness", status), ("documents age", status)]
    assert results[0][2].split()[1:4] == ["s", "since", "update"] and results[1][2].split()[1] == "s"


async def test_sql_check_on_no_data_is_critical(make_bot, scratch):
    _, dsn = scratch
    assert await run_checks(make_bot, dsn, [FRESH]) == [
        ("documents freshness", "critical", "the query returned NULL (no data at all?)")
    ]


async def test_sql_check_only_reads_and_keeps_to_the_statement_timeout(make_bot, scratch):
    _, dsn = scratch
    writes = dict(STUCK, name="writes", query="WITH gone AS (DELETE FROM big RETURNING 1) SELECT count(*) FROM gone", params=[])
    sleeps = dict(STUCK, name="sleeps", query="SELECT count(*) FROM pg_sleep(3)", params=[])
    broken = dict(STUCK, name="broken", query="SELECT count(*) FROM no_such_table", params=[])
    results = {check: (status, detail) for check, status, detail in await run_checks(
        make_bot, dsn, [writes, sleeps, broken], statement_timeout="500ms"
    )}
    status, detail = results["writes"]
    assert status == "critical" and detail.startswith("The query on main failed: cannot execute ") and "read-only transaction" in detail
    assert results["sleeps"] == ("critical", "The query on main ran longer than its statement timeout (0.5s) and was cancelled.")
    assert results["broken"] == ("critical", 'The query on main failed: relation "no_such_table" does not exist.')
    admin = await asyncpg.connect(dsn)
    try:
        assert await admin.fetchval("SELECT count(*) FROM big") == 20000
    finally:
        await admin.close()


async def test_sql_check_on_a_dead_database(make_bot):
    results = await run_checks(make_bot, "postgresql://postgres@127.0.0.1:1/nothing", [STUCK])
    assert results[0][1] == "critical" and results[0][2].startswith("Cannot connect to database main: ")


async def test_read_errors_are_query_failed_sentences(scratch):
    database = db_config(scratch[1], statement_timeout="200ms").databases["main"]
    from bot.database.connection import reading

    with pytest.raises(QueryFailed) as caught:
        async with reading("main", database) as conn:
            await conn.execute("SELECT pg_sleep(2)")
    assert str(caught.value) == "The query on main ran longer than its statement timeout (0.2s) and was cancelled."


# --------------------------------------------------------------------------- through the action flow


async def test_kill_idle_end_to_end_through_the_flow(db_bot, scratch):
    from action_helpers import click, everything as whole, request_id_of


    _, dsn = scratch
    bot = await db_bot()
    victims = await opened(dsn, 2, "victim")
    try:
        await asyncio.sleep(1.2)
        reply = await bot.handle(ask("main kill-idle --older-than 1s"))
        shown = whole(reply)
        for conn in victims:
            assert f"terminate pid {conn.get_server_pid()} " in shown, shown
        later = (await opened(dsn, 1, "later"))[0]
        victims.append(later)
        done = await bot.handle_click(click("UOPS2", request_id_of(reply)))
        assert "Succeeded" in done.text and done.text.count(": terminated (was idle for ") == 2, whole(done)
        assert await alive(dsn, [c.get_server_pid() for c in victims]) == {later.get_server_pid()}
    finally:
        await close_all(victims)


async def test_vacuum_end_to_end_through_the_flow(db_bot):
    from action_helpers import click, everything as whole, request_id_of


    bot = await db_bot()
    refused = await bot.handle(ask("main vacuum nosuch"))
    assert one_sentence(refused) == "There is no table 'nosuch' in database main; nothing was requested."
    reply = await bot.handle(ask("main vacuum big"))
    assert "VACUUM ANALYZE table public.big of main" in whole(reply)
    done = await bot.handle_click(click("UOPS2", request_id_of(reply)))
    assert "Succeeded" in done.text and "VACUUM ANALYZE public.big done in " in done.text, whole(done)


# --------------------------------------------------------------------------- opsbot's own connections


async def test_kill_idle_never_lists_opsbots_own_connections(scratch):
    """The bot's pooled connections are known by pid (storage.OWN_BACKENDS): never listed, whatever they are
    called. A client that merely calls itself opsbot is listed like any other."""
    from bot.storage import OWN_BACKENDS, Database as Storage

    _, dsn = scratch
    config = db_config(dsn)
    storage = Storage(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    impostors = await opened(dsn, 1, "opsbot") + await opened(dsn, 1, "opsbot-backup")
    other = await opened(dsn, 1, "dbtest-other")
    try:
        async with storage.engine.connect() as conn:  # a pooled connection, idle afterwards
            from sqlalchemy import text

            pooled = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            await conn.execute(text("SET application_name = 'dbtest-renamed'"))
            await conn.commit()
        assert pooled in {pid for pid, _ in OWN_BACKENDS.snapshot()}
        backends, _ = await idle_backends("main", config.databases["main"], 0.001, False)
        listed = {b.pid for b in backends}
        assert {c.get_server_pid() for c in [*other, *impostors]} <= listed
        assert pooled not in listed
    finally:
        await storage.close()
        await close_all([*impostors, *other])


async def test_kill_idle_spares_a_running_dump_or_restore_client_and_restores_admin_connection(scratch):
    """pg_dump and pg_restore run under a secret application name registered for their run (their pid
    is never known here), and a restore's admin connection is known by pid: none is listed, while a
    client that calls itself opsbot-backup is."""
    from types import SimpleNamespace

    from bot.backup.restore import _admin
    from bot.storage import OWN_BACKENDS

    _, dsn = scratch
    config = db_config(dsn)
    impostors = await opened(dsn, 1, "opsbot-backup")
    with OWN_BACKENDS.secret_name("opsbot-backup") as name:
        # What pg_dump's backend looks like while it runs: PGAPPNAME is the registered name.
        dump_client = [await asyncpg.connect(dsn, server_settings={"application_name": name})]
        admin = await _admin(SimpleNamespace(dsn=dsn, database="main"))
        try:
            backends, _ = await idle_backends("main", config.databases["main"], 0.001, False)
            listed = {b.pid for b in backends}
            assert {c.get_server_pid() for c in impostors} <= listed
            assert dump_client[0].get_server_pid() not in listed
            assert admin.get_server_pid() not in listed
        finally:
            await admin.close()
            await close_all([*impostors, *dump_client])
    assert name not in OWN_BACKENDS.names()
