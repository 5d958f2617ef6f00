"""jobs: with an enforced dry run (runbook 000 section 5), on the fleet's web container through the Docker exec API."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from conftest import fleet

from bot.action import service as requests
from bot.audit import service as audit
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.schedule.clock import ManualClock

from action_helpers import everything, request_id_of  # noqa: E402


def config() -> str:
    web = fleet()["OPSBOT_FLEET_WEB"]
    return f"""
version: 1
services:
  web:
    container: {web}
    owners: [ops]
roles:
  ops: {{users: [UOPS1, UOPS2]}}
  dev: {{users: [UDEV1]}}
jobs:
  retention:
    description: enforce_data_retention (runbook 000 section 5)
    service: web
    command: [echo, "deleted 3 rows"]
    dry_run: [echo, "would delete 3 rows"]
  broken:
    service: web
    command: [echo, never]
    dry_run: [sh, -c, "echo cannot connect; exit 3"]
"""


def ask(user: str, text: str) -> Request:
    return Request(user_id=user, channel_id="CJOBS", command="job", text=text, transport="console")


def approve(user: str, request_id: int) -> Click:
    return Click(user, "action.approve", str(request_id), "CJOBS", "console")


async def test_the_real_run_needs_the_same_users_recent_dry_run_and_shows_its_output(make_bot):
    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc))
    bot = await make_bot(config(), clock=clock)

    refused = await bot.handle(ask("UOPS1", "retention"))
    assert refused.outcome is not Outcome.ok
    assert "Run /job retention --dry-run first" in refused.text
    assert await requests.get(bot.db, 1) is None  # nothing was requested

    dry = await bot.handle(ask("UOPS1", "retention --dry-run"))
    assert dry.outcome is Outcome.ok, dry.text
    assert "would delete 3 rows" in dry.text and "exited 0" in dry.text

    # Another user's dry run is not yours.
    assert "Run /job retention --dry-run first" in (await bot.handle(ask("UOPS2", "retention"))).text

    reply = await bot.handle(ask("UOPS1", "retention"))
    request_id = request_id_of(reply)
    shown = everything(reply)
    assert "would delete 3 rows" in shown  # the dry run's output is in the approval plan
    assert "echo deleted 3 rows" in shown

    result = await bot.handle_click(approve("UOPS2", request_id))
    request = await requests.get(bot.db, request_id)
    assert request.state == "succeeded", request.result
    assert "retention: exit 0" in request.result
    assert "deleted 3 rows" in everything(result)
    outcomes = [row.outcome for row in await audit.entries(bot.db, limit=20) if row.command in ("retention", "job")]
    assert {"requested", "approved", "running", "succeeded"} <= set(outcomes)
    # One dry run, one real run.
    assert "already used by a real run" in (await bot.handle(ask("UOPS1", "retention"))).text


async def test_a_dry_run_older_than_fifteen_minutes_or_a_failed_one_does_not_count(make_bot):
    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc))
    bot = await make_bot(config(), clock=clock)
    assert (await bot.handle(ask("UOPS1", "retention --dry-run"))).outcome is Outcome.ok
    clock.advance(timedelta(minutes=16))
    assert "from the last 15m" in (await bot.handle(ask("UOPS1", "retention"))).text

    failed = await bot.handle(ask("UOPS1", "broken --dry-run"))
    assert "exited 3" in failed.text and "cannot connect" in failed.text
    refused = await bot.handle(ask("UOPS1", "broken"))
    assert "failed (exit 3)" in refused.text


async def test_a_newer_dry_run_after_the_request_stops_the_approved_one(make_bot):
    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc))
    bot = await make_bot(config(), clock=clock)
    await bot.handle(ask("UOPS1", "retention --dry-run"))
    request_id = request_id_of(await bot.handle(ask("UOPS1", "retention")))
    await bot.handle(ask("UOPS1", "retention --dry-run"))  # what was approved is no longer the newest dry run
    result = await bot.handle_click(approve("UOPS2", request_id))
    assert "newer dry run" in result.text
    assert (await requests.get(bot.db, request_id)).state == "failed"


async def test_bad_job_input_gets_one_sentence(make_bot):
    bot = await make_bot(config())
    assert "Unknown job 'nope'" in (await bot.handle(ask("UOPS1", "nope --dry-run"))).text
    denied = await bot.handle(ask("UDEV1", "retention --dry-run"))
    assert denied.outcome is Outcome.denied and "needs the ops role" in denied.text
    listing = await bot.handle(ask("UOPS1", ""))
    assert "retention" in listing.text and "broken" in listing.text


async def test_a_dry_run_printing_40_mb_keeps_the_tail_redacted_and_never_stalls_the_event_loop(make_bot):
    """Output is streamed and capped (the last 256 KiB) on a worker thread, and redacted off the
    loop: acks and pages keep moving while a job prints 40 MB."""
    forty_mb = 40 * 1024 * 1024
    chatty = f"""
  chatty:
    service: web
    command: [echo, never]
    dry_run: [sh, -c, "yes 'row 0123456789 password=hunter2 done' | head -c {forty_mb}; echo; echo 'DB_PASSWORD=s3cret-tail last line'"]
    timeout: 120s
"""
    bot = await make_bot(config().replace("jobs:\n", "jobs:" + chatty, 1))
    gaps: list[float] = []
    running = True

    async def watch_the_loop() -> None:
        loop = asyncio.get_running_loop()
        while running:
            before = loop.time()
            await asyncio.sleep(0.005)
            gaps.append(loop.time() - before - 0.005)

    watcher = asyncio.create_task(watch_the_loop())
    try:
        dry = await bot.handle(ask("UOPS1", "chatty --dry-run"))
    finally:
        running = False
        await watcher
    assert "exited 0" in dry.text, dry.text
    assert "last line" in dry.text and "DB_PASSWORD=[REDACTED]" in dry.text
    assert "hunter2" not in dry.text and "s3cret-tail" not in dry.text
    async with bot.db.sessions() as session:
        from sqlalchemy import select

        from bot.job.models import JobDryRun

        [row] = (await session.scalars(select(JobDryRun))).all()
    assert len(row.output) < 256 * 1024 and "s3cret-tail" not in row.output
    assert len(gaps) > 20, "the watcher never ran while the dry run did"
    assert max(gaps) < 0.1, f"the event loop stalled for {max(gaps) * 1000:.0f} ms"


async def test_the_job_list_shows_each_command_as_written(make_bot):
    """A glob's `*`s are not bold markup: the console and Slack both show the command as app.yaml has it."""
    from bot.transport.blocks import to_slack
    from bot.transport.text import to_text

    globbing = config().replace('command: [echo, never]', 'command: [sh, -c, "rm -f /tmp/*.log /var/tmp/*.tmp"]')  # no description: the command is listed
    bot = await make_bot(globbing)
    reply = await bot.handle(ask("UOPS1", ""))
    assert reply.outcome is Outcome.ok, reply.text
    assert "sh -c rm -f /tmp/*.log /var/tmp/*.tmp" in to_text(reply)
    assert "sh -c rm -f /tmp/*.log /var/tmp/*.tmp" in str(to_slack(reply).blocks)
