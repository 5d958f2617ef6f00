"""Slack over real HTTP, both ways.

Inbound: signed slash commands POSTed to the bot's own aiohttp edge (bot/transport/),
exactly as Slack sends them. Outbound: the bot's AsyncWebClient and its response_url
posts talking to the Slack double (tests/slack_double.py), which
enforces Block Kit limits, response_url rules, 429s and file upload v2.
Nothing in the bot is mocked; PostgreSQL and Redis are the real local ones.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from slack_double import block_texts
from conftest import BOT_TOKEN, FLEET_CONFIG, REDIS_URL, SIGNING_SECRET, free_port, wait_until
from slack_signing import sign, slash_command_body

from bot.audit import service as audit
from bot.pipeline.roles import RoleDirectory
from bot.transport.server import build_web_app
from bot.transport.edge import SlackEdge
from bot.transport.slack import group_lookup, web_client

ROOT = Path(__file__).resolve().parent.parent
OPSBOT = ROOT / ".venv" / "bin" / "opsbot"

# Cheap checks only, so replies come back in milliseconds.
QUICK_CONFIG = """
version: 1
services:
  host:
    checks:
      - kind: disk
        path: /
        usage: {warn: 99, critical: 100}
      - kind: memory
        usage: {warn: 99, critical: 100}
roles:
  ops:
    users: [UOPS1]
  leads:
    groups: [SLEADS1]
"""

# How long "nothing happened" is watched for.
QUIET = 1.0


def closed_port() -> int:
    """A local port nothing listens on (bound, read, released)."""
    return free_port()


def many_services_config(count: int, check_name: str | None = None) -> str:
    port = closed_port()
    lines = ["version: 1", "services:"]
    for i in range(count):
        lines += [f"  service-{i:02d}:", "    checks:", "      - kind: tcp", "        host: 127.0.0.1", f"        port: {port}"]
        if check_name:
            lines.append(f"        name: {check_name}-{i:02d}")
    return "\n".join(lines) + "\n"


class Served:
    """A bot served over HTTP on 127.0.0.1, as `opsbot serve` wires it."""

    def __init__(self, bot, url: str, runner: web.AppRunner):
        self.bot, self.url, self.runner = bot, url, runner

    async def post(self, body: str, headers: dict[str, str]) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as response:
                return response.status, await response.text()

    async def command(self, body: str, **extra_headers: str) -> tuple[int, str]:
        return await self.post(body, {**sign(SIGNING_SECRET, body), **extra_headers})

    async def get(self, path: str) -> tuple[int, object]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.url}{path}") as response:
                if response.content_type == "application/json":
                    return response.status, await response.json()
                return response.status, await response.text()


@pytest_asyncio.fixture
async def serve_bot(slack, make_bot):
    """serve_bot(config_text=QUICK_CONFIG, **settings) -> Served, stopped after the test."""
    runners: list[web.AppRunner] = []

    async def factory(config_text: str = QUICK_CONFIG, database_url: str | None = None, **settings) -> Served:
        bot = await make_bot(config_text, database_url, api_url=slack.api_url, **settings)
        client = web_client(bot.settings)
        bot.roles = RoleDirectory(bot.config, group_lookup(client))
        app = build_web_app(bot, SlackEdge(bot, client), bot.settings.slack_signing_secret)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Served(bot, f"http://127.0.0.1:{port}", runner)

    yield factory
    for runner in runners:
        await runner.cleanup()


async def audit_rows(bot) -> list:
    return await audit.entries(bot.db)




# --- signed slash commands ----------------------------------------------------------


async def test_signed_health_is_acked_then_answered_once_in_channel(slack, serve_bot):
    served = await serve_bot(FLEET_CONFIG)
    url = slack.new_response_url()
    body = slash_command_body("/health", "", user_id="UOPS1", response_url=url)

    started = time.perf_counter()
    status, text = await served.command(body)
    ack_s = time.perf_counter() - started
    assert status == 200
    assert ack_s < 3.0, f"ack took {ack_s:.2f}s; Slack gives up after 3 s"

    posts = await slack.wait_for_response_posts(1, timeout=15)
    await asyncio.sleep(QUIET)
    posts = slack.response_posts(url)
    assert len(posts) == 1, posts
    post = posts[0]
    assert post.status == 200, post  # the double validated Block Kit and accepted it
    assert post.body["response_type"] == "in_channel"
    assert post.blocks and post.blocks[0]["type"] == "header"
    assert "Health:" in post.text
    assert "Health:" in post.blocks[0]["text"]["text"]
    assert "broken" in post.text  # the fleet's 500 service is reported
    assert "run #" in block_texts(post.blocks)

    rows = await audit_rows(served.bot)
    assert len(rows) == 1
    assert (rows[0].command, rows[0].user_id, rows[0].channel, rows[0].transport) == ("health", "UOPS1", "C1", "slack")


async def test_forged_signature_is_refused_and_nothing_runs(slack, serve_bot):
    served = await serve_bot()
    url = slack.new_response_url()
    body = slash_command_body("/health", "", response_url=url)
    forged = sign("not-the-signing-secret", body)

    status, text = await served.post(body, forged)
    assert status == 401
    assert "invalid request" in text

    # A correct signature over a different body does not carry over either.
    other = slash_command_body("/health", "host", response_url=url)
    status, _ = await served.post(body, sign(SIGNING_SECRET, other))
    assert status == 401

    await asyncio.sleep(QUIET)
    assert slack.response_posts() == []
    assert await audit_rows(served.bot) == []

    # The forgeries did not use up the delivery: the genuine request with the same
    # trigger_id still runs (the retry guard sits behind signature verification).
    assert (await served.command(body))[0] == 200
    [post] = await slack.wait_for_response_posts(1)
    assert "Health:" in post.text
    assert len(await audit_rows(served.bot)) == 1


async def test_stale_timestamp_is_refused(slack, serve_bot):
    served = await serve_bot()
    body = slash_command_body("/health", "", response_url=slack.new_response_url())
    status, _ = await served.post(body, sign(SIGNING_SECRET, body, timestamp=int(time.time()) - 301))
    assert status == 401
    await asyncio.sleep(QUIET)
    assert slack.response_posts() == []
    assert await audit_rows(served.bot) == []


@pytest.mark.parametrize("drop", ["both", "X-Slack-Signature", "X-Slack-Request-Timestamp"])
async def test_missing_signature_headers_are_refused(slack, serve_bot, drop):
    served = await serve_bot()
    body = slash_command_body("/health", "", response_url=slack.new_response_url())
    headers = sign(SIGNING_SECRET, body)
    if drop == "both":
        headers = {}
    else:
        headers.pop(drop)
    status, _ = await served.post(body, headers)
    assert status == 401
    await asyncio.sleep(QUIET)
    assert slack.response_posts() == []
    assert await audit_rows(served.bot) == []


# --- retried deliveries -------------------------------------------------------------

RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


@pytest.mark.parametrize("redis_url", [None, REDIS_URL], ids=["database", "redis"])
async def test_retried_delivery_runs_once(slack, serve_bot, redis_url):
    served = await serve_bot(redis_url=redis_url)
    url = slack.new_response_url()
    body = slash_command_body("/health", "", response_url=url)

    assert (await served.command(body))[0] == 200
    await slack.wait_for_response_posts(1)
    status, _ = await served.command(body, **RETRY)  # re-signed, as Slack does for every attempt
    assert status == 200
    status, _ = await served.command(body, **{**RETRY, "X-Slack-Retry-Num": "2"})
    assert status == 200

    await asyncio.sleep(QUIET)
    assert len(slack.response_posts(url)) == 1
    assert len(await audit_rows(served.bot)) == 1


async def test_retry_racing_the_first_delivery_still_runs_once(slack, serve_bot):
    served = await serve_bot(redis_url=REDIS_URL)
    url = slack.new_response_url()
    body = slash_command_body("/health", "", response_url=url)
    results = await asyncio.gather(served.command(body), served.command(body, **RETRY))
    assert [status for status, _ in results] == [200, 200]
    await slack.wait_for_response_posts(1)
    await asyncio.sleep(QUIET)
    assert len(slack.response_posts(url)) == 1
    assert len(await audit_rows(served.bot)) == 1


async def test_two_replicas_sharing_redis_run_a_delivery_once(slack, serve_bot):
    first = await serve_bot(redis_url=REDIS_URL)
    second = await serve_bot(redis_url=REDIS_URL)
    assert first.bot.db.url != second.bot.db.url  # separate processes' worth of state, shared Redis only
    url = slack.new_response_url()
    body = slash_command_body("/health", "", response_url=url)

    results = await asyncio.gather(first.command(body), second.command(body, **RETRY))
    assert [status for status, _ in results] == [200, 200]
    await slack.wait_for_response_posts(1)
    await asyncio.sleep(QUIET)
    assert len(slack.response_posts(url)) == 1
    assert len(await audit_rows(first.bot)) + len(await audit_rows(second.bot)) == 1

    # A new delivery (new trigger_id) is not mistaken for a repeat.
    url2 = slack.new_response_url()
    assert (await second.command(slash_command_body("/health", "", response_url=url2)))[0] == 200
    await wait_until(lambda: len(slack.response_posts(url2)) == 1)


# --- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("nosuch", "Unknown service 'nosuch'"),
        ("hots", "Did you mean 'host'?"),
        ("--bogus", "Unknown option '--bogus'"),
        ('"unclosed', "A quote is not closed"),
    ],
)
async def test_usage_errors_get_one_ephemeral_sentence(slack, serve_bot, text, expected):
    served = await serve_bot()
    url = slack.new_response_url()
    status, _ = await served.command(slash_command_body("/health", text, response_url=url))
    assert status == 200
    [post] = await slack.wait_for_response_posts(1)
    assert post.status == 200
    assert post.body["response_type"] == "ephemeral"
    assert expected in post.text
    assert "\n" not in post.text.strip()
    assert len(post.blocks) == 1 and post.blocks[0]["type"] == "section"
    await asyncio.sleep(0.2)
    assert len(slack.response_posts(url)) == 1
    [row] = await audit_rows(served.bot)
    assert row.outcome == "usage_error"


# --- roles through Slack user groups --------------------------------------------------


async def test_help_shows_roles_granted_by_a_user_group(slack, serve_bot):
    slack.set_usergroup("SLEADS1", ["ULEAD1"])
    served = await serve_bot(FLEET_CONFIG)

    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/help", "", user_id="ULEAD1", response_url=url)))[0] == 200
    [post] = await slack.wait_for_response_posts(1)
    assert post.status == 200
    assert post.body["response_type"] == "ephemeral"
    assert "Your roles: leads" in post.text
    assert "/health" in post.text

    lookups = slack.calls_to("usergroups.users.list")
    assert lookups and lookups[0].args["usergroup"] == "SLEADS1"
    assert lookups[0].http_verb == "GET"  # the contract: usergroups.users.list is a GET

    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/help", "", user_id="UNOBODY", response_url=url)))[0] == 200
    await wait_until(lambda: slack.response_posts(url))
    [post] = slack.response_posts(url)
    assert "Your roles: none" in post.text


async def test_group_lookup_rate_limited_is_retried(slack, serve_bot):
    slack.set_usergroup("SLEADS1", ["ULEAD1"])
    slack.rate_limit("usergroups.users.list", times=1, retry_after=1)
    served = await serve_bot(FLEET_CONFIG)

    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/help", "", user_id="ULEAD1", response_url=url)))[0] == 200
    [post] = await slack.wait_for_response_posts(1, timeout=10)
    assert "Your roles: leads" in post.text
    calls = slack.calls_to("usergroups.users.list")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.9  # waited for Retry-After


# --- long replies ---------------------------------------------------------------------


async def test_many_services_split_into_sections_within_limits(slack, serve_bot):
    served = await serve_bot(many_services_config(60))
    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/health", "", response_url=url)))[0] == 200
    [post] = await slack.wait_for_response_posts(1, timeout=15)
    assert post.status == 200, post  # the double checks 3,000 characters a section, 50 blocks
    sections = [b for b in post.blocks if b["type"] == "section"]
    assert len(sections) >= 2  # ~60 lines of failures do not fit one section
    assert all(len(b["text"]["text"]) <= 3000 for b in sections)
    shown = block_texts(post.blocks)
    assert all(f"service-{i:02d}" in shown for i in range(60))
    assert len(post.text) <= 4000
    assert slack.uploaded_files == {}  # still fits one message: no file


async def test_reply_over_fifty_blocks_uploads_the_full_text(slack, serve_bot):
    # Long check names make every report line nearly a section on its own: 60 lines,
    # 60 sections, over Block Kit's 50 blocks a message.
    served = await serve_bot(many_services_config(60, check_name="x" * 2600))
    slack.rate_limit("files.completeUploadExternal", times=1, retry_after=1)
    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/health", "", channel_id="CLONG", response_url=url)))[0] == 200

    [post] = await slack.wait_for_response_posts(1, timeout=15)
    assert post.status == 200, post
    assert len(post.blocks) <= 50
    assert "attached as a file" in block_texts(post.blocks[-1:])
    assert len(post.text) <= 4000

    completes = await slack.wait_for("files.completeUploadExternal", 2, timeout=10)
    assert [c.status for c in completes] == [429, 200]  # Retry-After honoured, then it went through
    assert completes[1].at - completes[0].at >= 0.9
    [upload] = slack.uploaded_files.values()
    assert upload.completed
    assert upload.channel_id == "CLONG"
    assert upload.filename == "health.txt"
    text = upload.data.decode()
    assert upload.length == len(upload.data)
    assert all(f"service-{i:02d}" in text for i in range(60))
    assert text.startswith("Health: CRITICAL")
    assert len(text) > 50 * 2600  # the whole report, not the clipped message text
    # Wire format: the upload methods send their arguments in the query string.
    [get_url] = slack.calls_to("files.getUploadURLExternal")
    assert get_url.content_type in ("", "application/x-www-form-urlencoded")


# --- health endpoints and metrics -------------------------------------------------------


async def test_rejected_response_post_is_logged_and_counted(slack, serve_bot, caplog):
    served = await serve_bot()
    url = slack.new_response_url()
    async with aiohttp.ClientSession() as http:  # someone already used the URL's five posts
        for _ in range(5):
            async with http.post(url, json={"text": "earlier"}) as response:
                assert response.status == 200
    _, before = await served.get("/metrics")
    counted = metric_value(before, "opsbot_slack_api_errors_total", method="response_url", error="used_url")

    assert (await served.command(slash_command_body("/health", "", response_url=url)))[0] == 200
    await slack.wait_for_response_posts(6)
    assert slack.response_posts(url)[-1].status == 404
    await wait_until(lambda: _counted_more(served, "opsbot_slack_api_errors_total", counted, method="response_url", error="used_url"))
    assert any("could not deliver /health reply" in r.getMessage() and "used_url" in r.getMessage() for r in caplog.records)
    assert (await served.get("/healthz"))[0] == 200


async def _counted_more(served, name: str, previous: float, **labels: str) -> bool:
    _, text = await served.get("/metrics")
    return metric_value(text, name, **labels) > previous


async def test_dead_redis_degrades_readiness_and_commands_still_answer_once(slack, serve_bot):
    served = await serve_bot(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    status, doc = await served.get("/readyz")
    assert status == 200  # Redis is optional: an outage of it must not take every replica out of rotation
    assert_readiness_shape(doc)
    assert doc["status"] == "degraded"
    assert doc["checks"]["redis"]["status"] == "degraded"
    assert doc["checks"]["database"]["status"] == "healthy"

    url = slack.new_response_url()
    body = slash_command_body("/health", "", response_url=url)
    assert (await served.command(body))[0] == 200
    await slack.wait_for_response_posts(1, timeout=10)
    assert doc["checks"]["deduplication"]["message"] == "retried deliveries are claimed once in SQLite (Redis unreachable)"
    assert (await served.command(body, **RETRY))[0] == 200  # the database de-duplicates meanwhile
    await asyncio.sleep(QUIET)
    assert len(slack.response_posts(url)) == 1
    assert len(await audit_rows(served.bot)) == 1


async def test_healthz(serve_bot):
    served = await serve_bot()
    status, body = await served.get("/healthz")
    assert status == 200 and body == {"status": "healthy"}


def assert_readiness_shape(doc: dict) -> None:
    assert set(doc) == {"status", "timestamp", "checks"}
    assert set(doc["checks"]) == {"database", "migrations", "audit_log", "redis", "deduplication", "config"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["timestamp"])
    for check in doc["checks"].values():
        assert check["status"] in ("healthy", "degraded", "unhealthy")


async def test_readyz_with_redis(serve_bot):
    served = await serve_bot(redis_url=REDIS_URL)
    status, doc = await served.get("/readyz")
    assert status == 200, doc
    assert_readiness_shape(doc)
    assert doc["status"] == "healthy"
    assert doc["checks"]["redis"]["status"] == "healthy"
    assert doc["checks"]["redis"]["latency"].endswith("ms")
    assert doc["checks"]["database"]["status"] == "healthy"
    assert doc["checks"]["config"]["message"] == "1 services loaded"


async def test_readyz_without_redis_says_the_database_deduplicates(serve_bot):
    served = await serve_bot()
    status, doc = await served.get("/readyz")
    assert status == 200, doc
    assert_readiness_shape(doc)
    assert doc["status"] == "healthy"
    assert doc["checks"]["redis"]["status"] == "healthy"
    assert doc["checks"]["redis"]["message"] == "not configured (optional)"
    assert doc["checks"]["deduplication"] == {"status": "healthy", "message": "retried deliveries are claimed once in SQLite"}


async def test_readyz_with_postgres(serve_bot, pg_database_url):
    served = await serve_bot(database_url=pg_database_url, redis_url=REDIS_URL)
    status, doc = await served.get("/readyz")
    assert status == 200, doc
    assert doc["checks"]["database"]["status"] == "healthy"


async def test_dead_database_unready_but_commands_still_answer(slack, serve_bot):
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/x"
    served = await serve_bot(database_url=dead)

    status, doc = await served.get("/readyz")
    assert status == 503
    assert_readiness_shape(doc)
    assert doc["status"] == "unhealthy"
    assert doc["checks"]["database"]["status"] == "unhealthy"
    assert "127.0.0.1" not in doc["checks"]["database"]["message"]  # no connection details leak

    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/health", "", response_url=url)))[0] == 200
    [post] = await slack.wait_for_response_posts(1, timeout=15)
    assert post.status == 200
    assert "Health:" in post.text
    shown = block_texts(post.blocks)
    assert "not saved" in shown
    assert "Not recorded in the audit log" in shown

    # Still serving.
    assert (await served.get("/healthz"))[0] == 200
    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/help", "", response_url=url)))[0] == 200
    await wait_until(lambda: slack.response_posts(url))


def metric_value(exposition: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_count_commands(slack, serve_bot):
    served = await serve_bot()
    status, before = await served.get("/metrics")
    assert status == 200
    assert "# TYPE opsbot_commands_total counter" in before
    counted = metric_value(before, "opsbot_commands_total", command="health")

    url = slack.new_response_url()
    assert (await served.command(slash_command_body("/health", "", response_url=url)))[0] == 200
    await slack.wait_for_response_posts(1)
    _, after = await served.get("/metrics")
    assert metric_value(after, "opsbot_commands_total", command="health") == counted + 1
    assert 'opsbot_commands_total{command="health",outcome="ok"}' in after


# --- the real process -------------------------------------------------------------------


def serve_env(slack, tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_")) and k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    env.update(
        SLACK_API_URL=slack.api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


async def wait_for_healthz(url: str, process: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise AssertionError(f"opsbot serve exited with {process.returncode} before serving")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("opsbot serve did not answer /healthz in time")


async def terminate(process, timeout: float = 30) -> bytes:
    """SIGTERM (a clean shutdown), killed if it does not end in time; its standard error."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
    return stderr


async def test_opsbot_serve_process(slack, tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text(QUICK_CONFIG)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(OPSBOT), "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config),
        cwd=tmp_path, env=serve_env(slack, tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_healthz(url, process)
        # serve checked the bot token once at start, with the bearer header.
        auth = slack.calls_to("auth.test")
        assert auth and auth[0].headers["Authorization"] == f"Bearer {BOT_TOKEN}"
        async with aiohttp.ClientSession() as http:
            response_url = slack.new_response_url()
            body = slash_command_body("/health", "", response_url=response_url)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
            async with http.post(f"{url}/slack/events", data=body, headers=headers) as response:
                assert response.status == 200
            [post] = await slack.wait_for_response_posts(1, timeout=15)
            assert post.status == 200
            assert "Health:" in post.text and post.body["response_type"] == "in_channel"
            assert "run #" in block_texts(post.blocks)  # recorded in its migrated SQLite file

            forged_url = slack.new_response_url()
            forged_body = slash_command_body("/health", "", response_url=forged_url)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign("forged", forged_body)}
            async with http.post(f"{url}/slack/events", data=forged_body, headers=headers) as response:
                assert response.status == 401
            async with http.get(f"{url}/readyz") as response:
                assert response.status == 200
            await asyncio.sleep(QUIET)
            assert slack.response_posts(forged_url) == []
    finally:
        stderr = await terminate(process)
    assert process.returncode == 0, stderr.decode()[-2000:]  # SIGTERM is a clean shutdown
    assert SIGNING_SECRET not in stderr.decode() and BOT_TOKEN not in stderr.decode()


async def test_opsbot_serve_over_socket_mode(slack, tmp_path):
    """The real process with SLACK_APP_TOKEN: it connects to the Socket Mode double, answers a
    command delivered as an envelope, acknowledges a button it does not know, and stops cleanly."""
    from slack_signing import block_actions_payload, slash_command_fields

    config = tmp_path / "app.yaml"
    config.write_text(QUICK_CONFIG)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(OPSBOT), "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config),
        cwd=tmp_path, env=serve_env(slack, tmp_path, SLACK_APP_TOKEN=slack.app_token, SLACK_SIGNING_SECRET=None),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_healthz(f"http://127.0.0.1:{port}", process)
        await slack.socket.wait_connected(timeout=15)
        url = slack.new_response_url()
        await slack.socket.deliver("slash_commands", slash_command_fields("/health", "", user_id="UOPS1", response_url=url))
        [post] = await slack.wait_for_response_posts(1, timeout=15)
        assert "Health:" in post.text and post.body["response_type"] == "in_channel"
        await slack.socket.deliver("interactive", block_actions_payload("UOPS1", "incident.nope", "1", response_url=slack.new_response_url()))
        await slack.socket.assert_clean()
    finally:
        stderr = await terminate(process)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert slack.app_token not in stderr.decode() and BOT_TOKEN not in stderr.decode()


async def test_opsbot_serve_without_signing_secret_exits_2(slack, tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text(QUICK_CONFIG)
    process = await asyncio.create_subprocess_exec(
        str(OPSBOT), "serve", "--port", str(free_port()), "--config", str(config),
        cwd=tmp_path, env=serve_env(slack, tmp_path, SLACK_SIGNING_SECRET=None),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "SLACK_SIGNING_SECRET" in stderr.decode()


async def test_opsbot_serve_on_a_port_in_use_says_so_in_one_sentence_and_exits_2(slack, tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text(QUICK_CONFIG)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            str(OPSBOT), "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config),
            cwd=tmp_path, env=serve_env(slack, tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 2, text
    assert "Traceback" not in text
    [line] = [line for line in text.splitlines() if "cannot start" in line]
    assert f"port {port} on 127.0.0.1 is already in use" in line
