"""The data-operation commands (/db, /backup, /cache) over Slack: signed HTTP requests and Socket Mode.

The console path is covered by test_db, test_backup, test_restore and test_cache; here the
same commands arrive as Slack sends them (tests/drivers.py: signed slash commands and
block_actions over HTTP, envelopes over the Socket Mode double's WebSocket). What the
person sees is read from the Web API double: the response_url posts, and the plan message
posted with chat.postMessage and edited with chat.update.

Every test makes what it touches itself and removes it afterwards: a scratch PostgreSQL
database (opsbot_dt_*, dropped WITH FORCE), the connections it opened (terminated), a
Redis database of 9..14 claimed with a key in db 0 (flushed, only that one). The bot keeps
its own records in a SQLite file of the test, so audit rows and locks never mix between tests.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import yaml
from conftest import PG_ADMIN_DSN, PG_USER, redis_db_url
from drivers import drive  # noqa: F401 (fixture)
from sqlalchemy import select

from action_helpers import request_rows, state_of, trail
from bot.action import service as requests
from bot.backup import service as backups
from bot.backup.models import Backup

pytestmark = pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)

ROLES = {"ops": {"users": ["UOPS1", "UOPS2", "UOPS3"]}, "dev": {"users": ["UDEV1"]}}
TWO_PERSON_RULE = "You requested this, so someone else has to approve it (two-person rule)."
POSTED = re.compile(r"Request #(\d+) is posted and waits for approval\.")


# --------------------------------------------------------------------------- PostgreSQL: a scratch database and connections


def dsn_of(name: str) -> str:
    return f"postgresql://{PG_USER}@127.0.0.1:5432/{name}"


@pytest_asyncio.fixture
async def scratch():
    """(name, dsn) of a database of this test's own, with a small table in it; dropped WITH FORCE after."""
    name = f"opsbot_dt_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({exc}); start it (scripts/test-env.sh does).")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        setup = await asyncpg.connect(dsn_of(name), timeout=5)
        try:
            await setup.execute(
                "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL);"
                "INSERT INTO orders SELECT g, 'customer ' || g FROM generate_series(1, 200) g;"
            )
        finally:
            await setup.close()
        yield name, dsn_of(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class Connections:
    """Connections a test opens; closed on the client and terminated on the server at teardown."""

    def __init__(self):
        self.opened: list[asyncpg.Connection] = []

    async def open(self, dsn: str, count: int, app: str) -> list[asyncpg.Connection]:
        made = [await asyncpg.connect(dsn, timeout=5, server_settings={"application_name": f"{app}-{i}"}) for i in range(count)]
        self.opened += made
        return made

    async def close_all(self) -> None:
        pids = [conn.get_server_pid() for conn in self.opened]
        for conn in self.opened:
            if not conn.is_closed():
                conn.terminate()
        if pids:
            admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
            try:
                await admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)
            finally:
                await admin.close()


@pytest_asyncio.fixture
async def conns():
    made = Connections()
    yield made
    await made.close_all()


async def alive(dsn: str, pids: list[int]) -> set[int]:
    """Which of `pids` pg_stat_activity still lists."""
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)
        return {row["pid"] for row in rows}
    finally:
        await admin.close()


def db_config(dsn: str, *, backups: Path | None = None) -> str:
    body: dict = {
        "version": 1,
        "services": {},
        "roles": ROLES,
        "databases": {"main": {"dsn": dsn, "owners": ["ops"]}},
    }
    if backups is not None:
        body["backups"] = {"directory": str(backups)}
    return yaml.safe_dump(body, sort_keys=False)


# --------------------------------------------------------------------------- Redis: a claimed database of 9..14




redis_url = redis_db_url


@pytest.fixture
def cache_db(claimed_redis_db):
    """(db number, client on it): a Redis database of 9..14 this test owns (conftest.claimed_redis_db)."""
    return claimed_redis_db


def cache_config(db: int) -> str:
    return yaml.safe_dump(
        {"version": 1, "services": {}, "roles": ROLES, "caches": {"main": {"url": redis_url(db), "owners": ["ops"]}}},
        sort_keys=False,
    )


# --------------------------------------------------------------------------- helpers


def posted_request(seen) -> int:
    """The id in the ephemeral one-liner a requester gets once the plan is posted in the channel."""
    assert seen.ephemeral is True, seen
    match = POSTED.fullmatch(seen.one_line)
    assert match, seen.words
    return int(match.group(1))


def plan_message(d, request_id: int):
    """The channel message of request #id (chat.postMessage, with every chat.update of it)."""
    found = [m for m in d.messages() if f": request #{request_id}" in m.versions[0].words]
    assert len(found) == 1, [m.versions[0].words for m in d.messages()]
    return found[0]


async def message_ref_is(d, request_id: int, message) -> None:
    request = await requests.get(d.bot.db, request_id)
    assert request.message_ref == message.ref, (request.message_ref, message.ref)
    assert request.transport == "slack" and request.channel == d.channel


# --------------------------------------------------------------------------- 1. /db status


async def test_db_status_answers_with_the_connection_counts(drive, scratch, conns):
    name, dsn = scratch
    idle = await conns.open(dsn, 2, "idle")
    [in_transaction] = await conns.open(dsn, 1, "in-tx")
    await in_transaction.execute("BEGIN; SELECT 1")
    max_connections = int(await idle[0].fetchval("SHOW max_connections"))
    d = await drive(db_config(dsn))

    seen = await d.command("UOPS1", "/db", "main status")
    assert seen.post is not None and seen.ephemeral is False, seen  # on the response_url, for the channel
    words = seen.words
    assert "/db main status" in words, words
    title = re.search(r"main: (OK|WARNING|CRITICAL), connections (\d+)/(\d+) \((\d+)%\), \d+ (bytes|kB|MB)", words)
    assert title, words
    assert int(title.group(3)) == max_connections and int(title.group(2)) >= 4
    # Ours: two idle, one idle in transaction; and opsbot's own reading connection, active.
    assert re.search(r"On main +4: 1 active, 2 idle, 1 idle in transaction", words), words
    assert re.search(rf"Connections +\d+/{max_connections} on the server \(\d+%\)", words), words
    assert re.search(rf"Longest transaction +[0-9.]+ \w+ \(pid {in_transaction.get_server_pid()}, idle in transaction\)", words), words
    assert "Traceback" not in words

    # The database may be left out when app.yaml declares only one; someone without its role reads nothing.
    seen = await d.command("UOPS2", "/db", "status")
    assert re.search(r"On main +4: 1 active, 2 idle, 1 idle in transaction", seen.words), seen.words
    seen = await d.command("UDEV1", "/db", "main status")
    assert seen.ephemeral is True and seen.one_line == "You cannot read main: it needs the ops role in app.yaml."
    assert d.messages() == []  # reads post nothing in the channel


# --------------------------------------------------------------------------- 2. /db kill-idle


async def test_db_kill_idle_terminates_exactly_the_planned_connections_once_approved(drive, scratch, conns):
    name, dsn = scratch
    victims = await conns.open(dsn, 2, "victim")
    victim_pids = {conn.get_server_pid() for conn in victims}
    await asyncio.sleep(1.5)
    d = await drive(db_config(dsn))

    seen = await d.command("UOPS1", "/db", "kill-idle --older-than 1s")
    request_id = posted_request(seen)
    plan = plan_message(d, request_id)
    words = plan.now.words
    assert f"/kill_idle main: request #{request_id}" in words, words
    assert "Requested by @UOPS1" in words and "needs 1 approval from ops" in words
    assert "Status: Waiting for approval" in words
    assert {int(pid) for pid in re.findall(r"terminate pid (\d+) ", words)} == victim_pids, words
    assert plan.now.buttons == [(action, str(request_id)) for action in ("action.approve", "action.deny", "action.withdraw")]
    await message_ref_is(d, request_id, plan)
    [row] = await request_rows(d.bot, "main")
    assert row.id == request_id and row.state == "pending"
    assert {step["pid"] for step in row.plan["steps"]} == victim_pids

    # A connection made after the plan is not in it.
    [later] = await conns.open(dsn, 1, "later")
    everyone = [*victim_pids, later.get_server_pid()]

    # The requester's own approval is refused; nothing is terminated.
    seen = await d.click("UOPS1", "action.approve", str(request_id))
    assert seen.ephemeral is True and seen.one_line == TWO_PERSON_RULE
    await d.settle()
    assert await state_of(d.bot, request_id) == "pending"
    assert await alive(dsn, everyone) == set(everyone)
    assert plan_message(d, request_id).edits == []

    # A second ops member approves (signed block_actions / an interactive envelope): it runs.
    seen = await d.click("UOPS2", "action.approve", str(request_id))
    assert seen.ephemeral is True and seen.one_line == f"Request #{request_id} succeeded.", seen.words
    assert await state_of(d.bot, request_id) == "succeeded"
    assert await alive(dsn, everyone) == {later.get_server_pid()}
    assert await later.fetchval("SELECT 1") == 1
    for conn in victims:
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError, OSError)):
            await conn.fetchval("SELECT 1")

    message = plan_message(d, request_id)
    assert len(d.messages()) == 1  # edited in place, never posted again
    running, done = message.edits[0], message.now
    assert "Status: Running · approved by @UOPS2" in running.words, running.words
    assert "Status: Succeeded · approved by @UOPS2" in done.words, done.words
    assert done.words.count(": terminated (was idle for ") == 2, done.words
    assert all(version.buttons == [] for version in message.edits)
    stored = d.slack.messages[tuple(message.ref.split(":", 1))]
    assert "Succeeded" in stored["text"] and "edited" in stored
    request = await requests.get(d.bot.db, request_id)
    assert request.decided_by == "UOPS2" and request.result.count(": terminated (was idle for ") == 2
    assert await trail(d.bot, "main", request_id) == ["requested", "approved", "running", "succeeded"]
    assert "approval refused" in await trail(d.bot, "main", request_id, refusals=True)


# --------------------------------------------------------------------------- 3. /backup


async def rows_of(bot) -> list[Backup]:
    async with bot.db.sessions() as session:
        return list((await session.execute(select(Backup).order_by(Backup.id))).scalars())


async def test_backup_runs_at_once_and_edits_its_message_to_succeeded(drive, scratch, tmp_path):
    name, dsn = scratch
    directory = tmp_path / "backups"
    d = await drive(db_config(dsn, backups=directory))

    seen = await d.command("UOPS1", "/backup", 'main --label "over slack"')
    # approvals: 0 -> posted, run, and the message edited; the requester gets the outcome in a line.
    match = re.fullmatch(r"Request #(\d+) succeeded\.", seen.one_line)
    assert match and seen.ephemeral is True, seen.words
    request_id = int(match.group(1))
    assert await state_of(d.bot, request_id) == "succeeded"

    [row] = await rows_of(d.bot)
    path = backups.path_of(d.bot.config, row)  # row.file is relative to backups.directory
    assert path.exists() and path.parent == directory.resolve(), row.file
    assert re.fullmatch(r"main_\d{8}_\d{6}_[0-9a-f]{6}\.dump", path.name)
    data = path.read_bytes()
    assert data[:5] == b"PGDMP" and row.size == len(data) and row.sha256 == hashlib.sha256(data).hexdigest()
    assert row.verified and row.verify_error is None and row.verified_at is not None
    assert (row.database, row.made_by, row.label) == ("main", "UOPS1", "over slack")
    assert not list(directory.glob("*.partial"))

    message = plan_message(d, request_id)
    await message_ref_is(d, request_id, message)
    assert len(d.messages()) == 1
    first = message.versions[0].words
    assert f"/backup main: request #{request_id}" in first and "Requested by @UOPS1" in first
    assert "needs" not in first.split("Requested by", 1)[1].splitlines()[0]  # no approval asked for
    assert "Status: Approved, starting" in first, first  # posted before it runs, so its progress can be shown
    assert message.edits, "the posted message was never edited"
    assert "Status: Running" in message.edits[0].words, message.edits[0].words
    done = message.now.words
    assert "Status: Succeeded" in done, done
    assert f'backup #{row.id} "over slack" {row.file_name}' in done, done
    assert all(version.buttons == [] for version in message.versions)
    stored = d.slack.messages[tuple(message.ref.split(":", 1))]
    assert "Succeeded" in stored["text"] and "edited" in stored

    outcomes = await trail(d.bot, "main", request_id)
    # requested, running, succeeded, with the kind's own steps between; nobody approved it (approvals: 0).
    assert outcomes == ["requested", "running", "dumped", "verified", "retention", "succeeded"], outcomes

    # The row is the one /backup verify re-checks, over the same transport.
    seen = await d.command("UOPS2", "/backup", f"verify {row.id}")
    assert f"Backup #{row.id} (main, {row.file_name}, " in seen.words, seen.words
    assert "verified: SHA-256 matches, pg_restore lists and reads every block." in seen.words


# --------------------------------------------------------------------------- 4. /cache ratelimit --clear


async def seed_users(client) -> dict[str, list[bytes]]:
    made = {
        "12": [f"rate:user:12:w{i}".encode() for i in range(30)] + [b"rate:user:12:minute"],
        "123": [f"rate:user:123:w{i}".encode() for i in range(5)],
        "1": [b"rate:user:1:minute"],
        "other": [b"rate:users:12:x", b"ratex:user:12:y"],
    }
    await client.mset({key: b"1" for group in made.values() for key in group})
    return made


async def test_cache_ratelimit_clear_deletes_one_users_keys_once_approved(drive, cache_db):
    db, client = cache_db
    made = await seed_users(client)
    total = sum(len(group) for group in made.values())
    d = await drive(cache_config(db))

    seen = await d.command("UOPS1", "/cache", "ratelimit 12 --clear")
    request_id = posted_request(seen)
    plan = plan_message(d, request_id)
    words = plan.now.words
    assert f"/clear_ratelimit main: request #{request_id}" in words, words
    assert "delete the 31 keys of user 12 matching rate:user:12:*" in words, words
    assert plan.now.buttons == [(action, str(request_id)) for action in ("action.approve", "action.deny", "action.withdraw")]
    await message_ref_is(d, request_id, plan)
    assert await client.dbsize() == total  # nothing before the approval

    seen = await d.click("UOPS1", "action.approve", str(request_id))
    assert seen.one_line == TWO_PERSON_RULE
    await d.settle()
    assert await client.dbsize() == total and await state_of(d.bot, request_id) == "pending"

    seen = await d.click("UOPS2", "action.approve", str(request_id))
    assert seen.ephemeral is True and seen.one_line == f"Request #{request_id} succeeded.", seen.words
    assert await client.exists(*made["12"]) == 0
    for other in ("123", "1", "other"):
        assert await client.exists(*made[other]) == len(made[other]), other
    assert await client.dbsize() == total - len(made["12"])

    request = await requests.get(d.bot.db, request_id)
    assert request.state == "succeeded" and request.decided_by == "UOPS2"
    assert request.result == "main: deleted 31 of the 31 rate-limit keys of user 12.", request.result
    message = plan_message(d, request_id)
    assert "Status: Succeeded · approved by @UOPS2" in message.now.words, message.now.words
    assert "main: deleted 31 of the 31 rate-limit keys of user 12." in message.now.words
    assert message.now.buttons == [] and len(d.messages()) == 1
    assert await trail(d.bot, "main", request_id) == ["requested", "approved", "running", "succeeded"]

    # Reading afterwards, over the same transport: none left for 12, 123's still there.
    seen = await d.command("UOPS1", "/cache", "ratelimit 12")
    assert "No rate-limit keys for user 12 in cache main" in seen.words, seen.words
    seen = await d.command("UOPS1", "/cache", "ratelimit 123")
    assert "5 rate-limit keys for user 123" in seen.words, seen.words
