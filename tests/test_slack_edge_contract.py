"""Slack's contract cases that Bolt's request path gets wrong, where no other test file holds the proof.

docs/security.md ("Why the Slack edge is opsbot's own") lists every case with the test that proves
it; most live in tests/test_edge.py, tests/test_slack_http.py and tests/test_three_transports.py.
This file holds the rest. Bolt is not imported: the cases are about what opsbot does, and Bolt is
only the ack benchmark's baseline (the bench extra).
"""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web

from conftest import SIGNING_SECRET, free_port
from slack_signing import block_actions_body, event_callback_payload, sign, slash_command_body
from test_slack_http import QUICK_CONFIG, Served

from bot.pipeline.interactions import UNKNOWN_BUTTON
from bot.pipeline.roles import RoleDirectory
from bot.transport.edge import SlackEdge
from bot.transport.server import build_web_app
from bot.transport.slack import group_lookup, web_client

FORM = "application/x-www-form-urlencoded"
# Slack shows the user an error when the ack takes 3 s; well under it, on a busy 2-core machine.
ACK_BUDGET = 1.0


class HungWebApi:
    """A Slack Web API that accepts every connection and never answers: Slack having an outage."""

    def __init__(self) -> None:
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._writers.append(writer)  # read nothing, answer nothing, until stop()

        self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api/"

    async def stop(self) -> None:
        # Closing the held connections makes any call still waiting fail at once, so nothing the
        # bot left running waits out slack-sdk's 30 s timeout after the test.
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def post_timed(url: str, body: bytes, content_type: str = FORM) -> tuple[int, str, float]:
    headers = {"Content-Type": content_type, **sign(SIGNING_SECRET, body)}
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/slack/events", data=body, headers=headers) as response:
            text = await response.text()
            return response.status, text, time.perf_counter() - started


async def test_an_ack_never_waits_on_slacks_web_api(slack, make_bot):
    """Bolt's AsyncSingleTeamAuthorization awaits auth.test inside the request path on the first
    delivery (and on every one while it fails), so a slow Web API delays or fails the ack. opsbot calls
    auth.test once, at start (serve._token_refusal), and its edge acknowledges without the Web API."""
    api = HungWebApi()
    api_url = await api.start()
    bot = await make_bot(QUICK_CONFIG, api_url=api_url)
    client = web_client(bot.settings)
    bot.roles = RoleDirectory(bot.config, group_lookup(client))
    edge = SlackEdge(bot, client)
    runner = web.AppRunner(build_web_app(bot, edge, SIGNING_SECRET), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    served = Served(bot, f"http://127.0.0.1:{port}", runner)
    try:
        # The first deliveries after start: the ones Bolt would hold behind auth.test.
        command_url = slack.new_response_url()
        command = slash_command_body("/health", "", user_id="UOPS1", response_url=command_url).encode()
        button_url = slack.new_response_url()
        button = block_actions_body("UOPS1", "incident.snooze", "7", response_url=button_url).encode()
        verification = json.dumps({"type": "url_verification", "challenge": "c0ntract", "token": "t"}).encode()
        # An event type no spec declares: acknowledged and ignored, whatever the Web API does.
        event = json.dumps(event_callback_payload({"type": "app_mention", "user": "UOPS1", "text": "hi", "ts": "1.2", "channel": "C1"})).encode()

        answers = [
            await post_timed(served.url, command),
            await post_timed(served.url, button),
            await post_timed(served.url, verification, "application/json"),
            await post_timed(served.url, event, "application/json"),
        ]
        assert [(status, text) for status, text, _ in answers] == [(200, ""), (200, ""), (200, '{"challenge": "c0ntract"}'), (200, "")]
        slowest = max(elapsed for _, _, elapsed in answers)
        assert slowest < ACK_BUDGET, f"an ack took {slowest:.2f} s while the Web API hung"

        # The answers do not need the Web API either: they go to each delivery's response_url.
        await slack.wait_for_response_posts(2, timeout=15)
        [health] = slack.response_posts(command_url)
        assert "Health:" in health.text
        [unknown] = slack.response_posts(button_url)
        assert unknown.text == UNKNOWN_BUTTON

        # The rig itself: the Web API really hangs, so an ack that waited on it would have missed.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.auth_test(), ACK_BUDGET)
        assert api.connections >= 1
    finally:
        await api.stop()
        await edge.work.drain(10)
        await runner.cleanup()
