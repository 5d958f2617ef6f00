"""/db kill-idle spares opsbot's own connections by backend pid; /db status says when it cannot see other roles.

kill-idle used to spare every connection whose application_name starts with "opsbot", which any
client may set, and to take the bot's own pooled connection once it was named otherwise. Now the
bot's pools and connections are known by pid and backend_start (bot.storage.OWN_BACKENDS).

Without pg_read_all_stats a role sees only its own role's backends in pg_stat_activity; /db status
used to read "OK" in a storm of another role's connections. The role here is a real PostgreSQL role
made without that grant (trust auth lets the test connect as it).

Commands arrive as signed Slack HTTP requests, Socket Mode envelopes and console lines.
"""
from __future__ import annotations

import re
import uuid

import asyncpg
import pytest_asyncio
import yaml
from conftest import PG_ADMIN_DSN, PG_USER
from drivers import ConsoleDriver, drive  # noqa: F401 (fixture)
from sqlalchemy import text
from test_data_transports import ROLES, alive, conns, plan_message, scratch  # noqa: F401 (fixtures)

from bot.migrate import upgrade_async
from bot.storage import OWN_BACKENDS


def config(dsn: str, connections: dict | None = None) -> str:
    main: dict = {"dsn": dsn, "owners": ["ops"]}
    if connections:
        main["connections"] = connections
    return yaml.safe_dump({"version": 1, "services": {}, "roles": ROLES, "databases": {"main": main}}, sort_keys=False)


@pytest_asyncio.fixture
async def bot_database():
    """(dsn, SQLAlchemy url) of a fresh, migrated database that is both the bot's own and app.yaml's `main`."""
    name = f"opsbot_own_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"
    try:
        await upgrade_async(url)
        yield f"postgresql://{PG_USER}@127.0.0.1:5432/{name}", url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_kill_idle_spares_the_bots_own_pool_by_pid_and_takes_a_client_named_opsbot(drive, bot_database, conns):
    dsn, url = bot_database
    d = await drive(config(dsn), url)
    # The bot's own pooled connection, renamed as any client may rename itself.
    async with d.bot.db.sessions() as session:
        pooled = await session.scalar(text("SELECT pg_backend_pid()"))
        await session.execute(text("SET application_name = 'psql'"))
        await session.commit()
    assert pooled in {pid for pid, _ in OWN_BACKENDS.snapshot()}
    # Another client calling itself opsbot, idle.
    [impostor] = await conns.open(dsn, 1, "opsbot")
    assert await impostor.fetchval("SHOW application_name") == "opsbot-0"

    seen = await d.command("UOPS1", "/db", "kill-idle --older-than 1ms")
    request_id = int(re.search(r"[Rr]equest #(\d+)", seen.words).group(1))
    # Slack: the plan is a channel message, the requester gets a line; the console prints the plan itself.
    words = seen.words if isinstance(d, ConsoleDriver) else plan_message(d, request_id).now.words
    listed = {int(pid) for pid in re.findall(r"terminate pid (\d+) ", words)}
    assert impostor.get_server_pid() in listed, words
    assert not listed & {pid for pid, _ in OWN_BACKENDS.snapshot()}, words
    assert pooled not in listed

    seen = await d.click("UOPS2", "action.approve", str(request_id))
    assert seen.words.rstrip().endswith(f"Request #{request_id} succeeded."), seen.words
    assert await alive(dsn, [impostor.get_server_pid(), pooled]) == {pooled}
    async with d.bot.db.sessions() as session:
        assert await session.scalar(text("SELECT 1")) == 1


async def test_db_status_says_when_it_sees_only_its_own_roles_backends(drive, scratch, conns):
    name, dsn = scratch
    role = f"opsbot_nostats_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        max_connections = int(await admin.fetchval("SHOW max_connections"))
        # A storm of another role's connections: 8 of them, over the critical line at 5 connections.
        await conns.open(dsn, 8, "storm")
        limits = {"warn": 100 * 3 / max_connections, "critical": 100 * 5 / max_connections}
        d = await drive(config(f"postgresql://{role}@127.0.0.1:5432/{name}", limits))

        seen = await d.command("UOPS1", "/db", "main status")
        words = seen.words
        assert re.search(r"main: CRITICAL, connections at most (\d+)/", words), words
        assert "it sees only its own role's backends (grant pg_read_all_stats)" in words, words
        assert "grant it pg_read_all_stats to see every connection" in words, words
        hidden = int(re.search(r"Hidden +(\d+) backends of other roles", words).group(1))
        assert hidden >= 8, words

        # Granted, it sees everything, and says nothing about hidden backends.
        await admin.execute(f'GRANT pg_read_all_stats TO "{role}"')
        seen = await d.command("UOPS1", "/db", "main status")
        words = seen.words
        assert re.search(r"main: CRITICAL, connections \d+/", words) and "at most" not in words, words
        assert "pg_read_all_stats" not in words and "Hidden" not in words, words
        assert re.search(r"On main +9: 1 active, 8 idle", words), words
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
