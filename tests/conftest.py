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
# Shared helper modules report failed asserts like test modules do; registered before anything imports them.
pytest.register_assert_rewrite("action_helpers", "drivers")

from k8s_double import K8sDouble  # noqa: E402
from slack_double import SlackDouble  # noqa: E402

from bot.app import Bot  # noqa: E402
from bot.config.loader import parse_config  # noqa: E402
from bot.migrate import upgrade_async  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.storage import Database  # noqa: E402

PG_USER = os.environ.get("PGUSER", "postgres")
PG_ADMIN_DSN = os.environ.get("OPSBOT_TEST_POSTGRES_DSN", f"postgresql://{PG_USER}@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OPSBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-A0TEST-1-test-token"  # Socket Mode (apps.connections.open); slack.socket serves the WebSocket


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


@pytest_asyncio.fixture
async def open_db():
    """open_db(url) -> a Database with an engine of its own (as another replica would have); closed after the test."""
    opened: list[Database] = []

    def factory(url: str) -> Database:
        opened.append(Database(url))
        return opened[-1]

    yield factory
    for db in opened:
        await db.close()


@pytest_asyncio.fixture(scope="session")
async def slack():
    double = SlackDouble(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture(autouse=True)
def _fresh_slack_recordings(request):
    """A clean double for each test that uses it; after the test (its bots and their background
    work stopped first: this fixture is torn down last), any live markup the bot sent Slack but
    did not place itself fails the test (SlackDouble.violations)."""
    if "slack" not in request.fixturenames:
        yield
        return
    double = request.getfixturevalue("slack")
    double.reset()
    yield
    found, double.violations[:] = list(double.violations), []
    assert not found, "the bot sent Slack live markup it did not place:\n" + "\n".join(found[:40])


@pytest_asyncio.fixture(scope="session")
async def k8s():
    """The Kubernetes API double (tests/k8s_double.py); each test gets an empty cluster."""
    double = K8sDouble()
    await double.start()
    yield double
    await double.stop()


@pytest.fixture(autouse=True)
def _fresh_k8s_cluster(request):
    """An empty cluster for each test that uses the Kubernetes double; after it, any object the double
    served that the official API schemas reject fails the test (K8sDouble.violations)."""
    if "k8s" not in request.fixturenames:
        yield
        return
    double = request.getfixturevalue("k8s")
    double.reset()
    yield
    found, double.violations[:] = list(double.violations), []
    assert not found, "the Kubernetes double served objects the API schemas reject:\n" + "\n".join(found[:40])


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


_FLEET_CONFIG_TEMPLATE = """
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
    container: {OPSBOT_FLEET_WEB}
    depends_on: [database, cache]
    checks:
      - kind: http
        url: {OPSBOT_FLEET_WEB_HEALTH_URL}
        expect_json: {{status: healthy}}
        nested_checks: checks
      - kind: container
  broken:
    container: {OPSBOT_FLEET_WEB500}
    checks:
      - kind: http
        url: {OPSBOT_FLEET_WEB500_URL}
roles:
  ops:
    users: [UOPS1, UOPS2]
  leads:
    groups: [SLEADS1]
slack:
  ops_channel: "#ops"
"""


def fleet_config() -> str:
    """The shared app.yaml (database, cache, web, broken) naming the fleet recorded in tests/.fleet.env."""
    values = fleet()
    keys = ("OPSBOT_FLEET_WEB", "OPSBOT_FLEET_WEB_HEALTH_URL", "OPSBOT_FLEET_WEB500", "OPSBOT_FLEET_WEB500_URL")
    missing = [key for key in keys if not values.get(key)]
    if missing:
        pytest.fail(f"tests/.fleet.env lacks {', '.join(missing)}: run scripts/test-env.sh (make test does) to rewrite it.")
    return _FLEET_CONFIG_TEMPLATE.format(**{key: values[key] for key in keys})


def __getattr__(name: str):
    # `from conftest import FLEET_CONFIG` lands here (PEP 562): the config is built from tests/.fleet.env
    # when a test module imports it, so importing conftest itself never needs the fleet.
    if name == "FLEET_CONFIG":
        return fleet_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@pytest_asyncio.fixture
async def make_bot(tmp_path):
    """make_bot(config_text, database_url, clock=..., **settings) -> a Bot on real components; closed after the test.

    Without config_text the bot gets FLEET_CONFIG (fleet_config()).

    Without database_url the bot gets its own migrated SQLite file.
    """
    bots = []

    async def factory(config_text: str | None = None, database_url: str | None = None, group_lookup=None, clock=None, **settings):
        if config_text is None:
            config_text = fleet_config()
        if database_url is None:
            database_url = f"sqlite+aiosqlite:///{tmp_path / f'bot{len(bots)}.db'}"
            await upgrade_async(database_url)
        bot = Bot(settings_for(database_url, **settings), parse_config(config_text), group_lookup, clock=clock)
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


# --------------------------------------------------------------------------- Redis: a claimed database of 9..14

REDIS_BASE = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
REDIS_TEST_DBS = range(9, 15)


def redis_db_url(db: int) -> str:
    return f"{REDIS_BASE}/{db}"


@pytest_asyncio.fixture
async def claimed_redis_db():
    """(db number, client on it): an empty Redis database of 9..14 claimed for this test by a key in db 0,
    so parallel runs never share one; flushed and released after."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(redis_db_url(0), socket_timeout=5)
    token = uuid.uuid4().hex
    claimed = None
    try:
        for db in REDIS_TEST_DBS:
            claim = f"opsbot:test:cache-db:{db}"
            if not await admin.set(claim, token, nx=True, ex=600):
                continue
            client = aioredis.from_url(redis_db_url(db), socket_timeout=5)
            if await client.dbsize() == 0:
                claimed = (db, client)
                break
            await client.aclose()
            await admin.delete(claim)
        if claimed is None:
            pytest.fail(f"No empty Redis database among 9..14 to claim at {REDIS_BASE}.")
        yield claimed
    finally:
        if claimed is not None:
            db, client = claimed
            await client.flushdb()  # only the database this test claimed
            await client.aclose()
            claim = f"opsbot:test:cache-db:{db}"
            if (await admin.get(claim)) == token.encode():
                await admin.delete(claim)
        await admin.aclose()


# --------------------------------------------------------------------------- real bots for direct calls

_REAL_BOTS: list = []


def real_bot(config):
    """A real Bot on a parsed `config`, for calling a kind's plan() and execute() directly; closed after the test."""
    import tempfile

    bot = Bot(settings_for(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bot.db"), config)
    _REAL_BOTS.append(bot)
    return bot


@pytest_asyncio.fixture(autouse=True)
async def _close_real_bots():
    yield
    while _REAL_BOTS:
        await _REAL_BOTS.pop().close()
