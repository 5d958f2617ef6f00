"""The low findings of the hardening review, one test each: audit before answering, bounded
durations, console impersonation, orderly shutdown."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from conftest import free_port

from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.transport.slack import BackgroundWork

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
version: 1
services:
  host:
    checks:
      - kind: memory
        usage: {warn: 99.9}
roles:
  ops:
    users: [UOPS1, UOPS2]
"""


async def test_a_gated_command_does_not_run_when_its_audit_row_cannot_be_written(make_bot):
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"
    bot = await make_bot(CONFIG, database_url=dead)
    reply = await bot.handle(Request("UOPS1", "C1", "logs", "host", "console"))
    assert reply.text == "/logs was not run: opsbot cannot write its audit log (the bot's database is unreachable). Try again shortly."
    assert reply.outcome is Outcome.error and reply.ephemeral
    # A public command still answers: that is when /health matters most.
    health = await bot.handle(Request("UOPS1", "C1", "health", "", "console"))
    assert health.text.startswith("Health:")


async def test_audit_since_beyond_any_datetime_is_one_sentence(make_bot):
    bot = await make_bot(CONFIG)
    for since in ("999999999d", "1e400", "3661d"):
        reply = await bot.handle(Request("UOPS1", "C1", "audit", f"--since {since}", "console"))
        assert reply.outcome is Outcome.usage_error, reply.text
        assert "\n" not in reply.text and "Traceback" not in reply.text


def run_cli(tmp_path, *args, stdin: str = "", database_url: str) -> subprocess.CompletedProcess:
    (tmp_path / "app.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REDIS_URL", "OPSBOT_"))}
    env.update({"DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)})
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_impersonation_needs_a_flag_against_a_server_database(tmp_path, pg_database_url):
    shared = pg_database_url
    refused = run_cli(tmp_path, "shell", "--as", "UOPS1", database_url=shared)
    assert refused.returncode == 2 and "--allow-impersonation" in refused.stderr
    refused = run_cli(tmp_path, "run", "/help", "--as", "UOPS1", database_url=shared)
    assert refused.returncode == 2 and "--allow-impersonation" in refused.stderr

    switching = run_cli(tmp_path, "shell", stdin="as UOPS2\n/help\n", database_url=shared)
    assert "Switching user is off" in switching.stdout
    assert "Your roles: none" in switching.stdout  # still the console user

    allowed = run_cli(tmp_path, "shell", "--as", "UOPS1", "--allow-impersonation", stdin="as UOPS2\n/help\n", database_url=shared)
    assert allowed.returncode == 0, allowed.stderr
    assert "Now acting as UOPS2." in allowed.stdout and "Your roles: ops" in allowed.stdout


def test_impersonation_needs_a_flag_next_to_a_slack_bot_even_on_sqlite(tmp_path):
    """The Docker image runs on SQLite: `docker exec … opsbot shell` there is next to the Slack bot."""
    local = f"sqlite+aiosqlite:///{tmp_path / 'opsbot.db'}"
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-x\nSLACK_SIGNING_SECRET=s3cr3t-signing\n")
    refused = run_cli(tmp_path, "shell", "--as", "UOPS1", database_url=local)
    assert refused.returncode == 2 and "--allow-impersonation" in refused.stderr
    switching = run_cli(tmp_path, "shell", stdin="as UOPS2\n/help\n", database_url=local)
    assert "Switching user is off" in switching.stdout


def test_impersonation_is_a_local_rehearsal_on_embedded_sqlite(tmp_path):
    local = f"sqlite+aiosqlite:///{tmp_path / 'opsbot.db'}"
    result = run_cli(tmp_path, "shell", "--as", "UOPS1", stdin="as UOPS2\n/help\n", database_url=local)
    assert result.returncode == 0, result.stderr
    assert "Now acting as UOPS2." in result.stdout


async def test_drain_cancels_and_awaits_work_that_outlives_its_timeout():
    work = BackgroundWork()
    finished: list[str] = []

    async def quick():
        finished.append("quick")

    async def stuck():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that must complete before drain returns
            finished.append("stuck cleaned up")

    work.spawn(quick())
    work.spawn(stuck())
    await work.drain(timeout=0.5)
    assert finished == ["quick", "stuck cleaned up"]


async def test_close_stops_the_scheduler_and_waits_for_it(make_bot):
    bot = await make_bot(CONFIG)
    bot.scheduler.start()
    task = bot.scheduler._task
    await asyncio.sleep(0.05)
    assert bot.scheduler.running
    await bot.close()
    assert task.done() and not bot.scheduler.running


def test_a_stored_result_mentions_the_requests_own_people_and_nobody_else():
    from datetime import datetime, timezone

    from bot.action.models import ActionRequest
    from bot.action.views import request_message
    from bot.transport.blocks import to_slack

    now = datetime(2026, 11, 24, 5, 0, tzinfo=timezone.utc)
    request = ActionRequest(
        id=7, action="restart", service="web", plan={"action": "restart", "kind": "docker_restart", "service": "web", "steps": [], "options": {}}, plan_hash="0" * 64,
        requested_by="UREQ1", channel="C1", team="T1", transport="slack", state="failed", approvals_needed=1,
        created_at=now, expires_at=now, decided_by="UAPP1", decided_at=now,
        result="Request #7 was not run: approver <@UAPP1> no longer holds the ops role. Container said <@UEVIL> <!channel>",
    )
    from bot.action.flow import plan_of

    message = to_slack(request_message(request, plan_of(request), [], [], ["UAPP1"], approver_roles="ops"))
    shown = " ".join(block["text"]["text"] for block in message.blocks if block["type"] == "section")
    assert "approver <@UAPP1> no longer holds" in shown and "approver <@UAPP1> no longer holds" in message.text
    assert "&lt;@UEVIL&gt; &lt;!channel&gt;" in shown and "<@UEVIL>" not in message.text + shown
