"""Shared fixtures: real PostgreSQL, Redis, Docker fleet and the Slack Web API double.

`make test` runs scripts/test-env.sh first, which starts what is missing and writes
tests/.fleet.env; nothing here is skipped when a component is absent: a missing
component is a failure with a sentence saying what to start.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from slack_double import SlackDouble  # noqa: E402

from bot.app import Bot  # noqa: E402
from bot.config.loader import parse_config  # noqa: E402
from bot.migrate import upgrade_async  # noqa: E402
from bot.settings import Settings  # noqa: E402

PG_USER = os.environ.get("PGUSER", "postgres")
PG_ADMIN_DSN = os.environ.get("OPSBOT_TEST_POSTGRES_DSN", f"postgresql://{PG_USER}@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OPSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-test-token"


def fleet() -> dict[str, str]:
    """What scripts/test-env.sh reported about the Docker test fleet."""
    path = ROOT / "tests" / ".fleet.env"
    if not path.exists():
        pytest.fail("tests/.fleet.env is missing: run scripts/test-env.sh (make test does) to start the Docker test fleet.")
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest_asyncio.fixture(scope="session")
async def pg_database_url():
    """A fresh PostgreSQL database for this test session, migrated to head."""
    name = f"opsbot_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({exc}); start it (scripts/test-env.sh does).")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"
    await upgrade_async(url)
    yield url
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite+aiosqlite:///{tmp_path / 'opsbot.db'}"


@pytest_asyncio.fixture(scope="session")
async def slack():
    double = SlackDouble(bot_token=BOT_TOKEN)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture(autouse=True)
def _fresh_slack_recordings(request):
    if "slack" in request.fixturenames:
        request.getfixturevalue("slack").reset()


def settings_for(database_url: str, *, redis_url: str | None = None, api_url: str = "http://127.0.0.1:9/api/", **extra) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "SLACK_API_URL": api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return Settings.from_env(env)


FLEET_CONFIG = """
version: 1
services:
  database:
    checks:
      - kind: postgres
        dsn: postgresql://postgres@127.0.0.1:5432/test
  cache:
    depends_on: [database]
    checks:
      - kind: redis
        url: redis://127.0.0.1:6379/0
  web:
    container: opsbot-test-web
    depends_on: [database, cache]
    checks:
      - kind: http
        url: http://127.0.0.1:18080/health
        expect_json: {status: healthy}
        nested_checks: checks
      - kind: container
  broken:
    container: opsbot-test-web500
    checks:
      - kind: http
        url: http://127.0.0.1:18081/cgi-bin/health
roles:
  ops:
    users: [UOPS1, UOPS2]
  leads:
    groups: [SLEADS1]
slack:
  ops_channel: "#ops"
"""


@pytest_asyncio.fixture
async def make_bot(tmp_path):
    """make_bot(config_text, database_url, **settings) -> a Bot on real components; closed after the test.

    Without database_url the bot gets its own migrated SQLite file.
    """
    bots = []

    async def factory(config_text: str = FLEET_CONFIG, database_url: str | None = None, group_lookup=None, **settings):
        if database_url is None:
            database_url = f"sqlite+aiosqlite:///{tmp_path / f'bot{len(bots)}.db'}"
            await upgrade_async(database_url)
        bot = Bot(settings_for(database_url, **settings), parse_config(config_text), group_lookup)
        bots.append(bot)
        return bot

    yield factory
    for bot in bots:
        await bot.close()


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
