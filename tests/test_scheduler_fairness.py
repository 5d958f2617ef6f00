"""A slow job never holds the others back (bot/schedule/loop.py): while one page waits on Slack,
every other page due on the same replica still goes out on time.

Real time here, not a ManualClock: what is slow is slack-sdk honouring a real `Retry-After`. The
lateness is measured between two recorded instants, the page's due time (on its timeline entry)
and the moment the Slack double received the page, never against how long the test took.
"""
from __future__ import annotations

import asyncio
from datetime import datetime

from conftest import wait_until
from test_escalation import CONFIG, open_incident
from test_escalation import pg_template, pg_url, sqlite_template, url  # noqa: F401 (fixtures: a database of the test's own)

from bot.incident import service
from bot.schedule.clock import SystemClock
from bot.transport.slack import web_client
from bot.transport.slack_channels import SlackWorkspaceMessenger

RETRY_AFTER = 15  # seconds Slack asks the page for the first incident to wait


def page_calls(slack, channel: str):
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == channel and "is not acknowledged" in str(c.args.get("text", ""))]


async def test_a_page_waiting_out_a_429_does_not_hold_back_the_next_incidents_page(make_bot, url, slack):  # noqa: F811
    bot = await make_bot(CONFIG, database_url=url, clock=SystemClock(), api_url=slack.api_url)
    # As serve wires it: the client that honours Retry-After (three retries), so the page job really waits.
    bot.messengers["slack"] = SlackWorkspaceMessenger(web_client(bot.settings))

    first = await open_incident(bot, "P0", "Checkout is down")
    slack.rate_limit_channel_posts(first.channel_id, retry_after=RETRY_AFTER)
    bot.scheduler.start()  # the first page, due since it was opened, is claimed now and meets the 429
    [refused] = await wait_until(lambda: page_calls(slack, first.channel_id), timeout=10)
    assert refused.status == 429

    await asyncio.sleep(0.1)
    second = await open_incident(bot, "P0", "Payments are slow")
    [paged] = await wait_until(lambda: [c for c in page_calls(slack, second.channel_id) if c.status == 200], timeout=10)
    entries = [e for e in await service.timeline(bot.db, second.id) if e.kind == "ping"]
    due = datetime.fromisoformat(entries[0].data["due"]).timestamp()
    assert 0 <= paged.at - due < 1.0, paged.at - due
    # The first page is still waiting out its Retry-After: the second did not queue behind it.
    assert [c.status for c in page_calls(slack, first.channel_id)] == [429]
    assert paged.at - refused.at < RETRY_AFTER / 2
