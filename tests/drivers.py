"""Drive one bot through each of its three transports the same way: HTTP, Socket Mode, console.

A test that takes the `drive` fixture runs three times. `await drive(config)` gives a
driver whose `command()` and `click()` act as a person would and return what that person
sees (`Seen`): for Slack, the response_url post the bot made (its text decoded from
Slack's entities); for the console, what it printed. Slack HTTP requests are signed;
Socket Mode envelopes go through the Socket Mode double's real WebSocket and must be
acknowledged in time.
"""
from __future__ import annotations

import html
import io
from dataclasses import dataclass

import aiohttp
import pytest_asyncio
from aiohttp import web

from conftest import SIGNING_SECRET, free_port
from slack_double import ResponsePost, block_texts
from slack_signing import block_actions_body, block_actions_payload, sign, slash_command_body, slash_command_fields

from bot.pipeline.roles import RoleDirectory
from bot.transport.console import Console
from bot.transport.edge import SlackEdge
from bot.transport.server import build_web_app
from bot.transport.slack import group_lookup, web_client
from bot.transport.socket_mode import SocketModeTransport

TRANSPORTS = ["http", "socket", "console"]


@dataclass
class Seen:
    plain: str  # the words on screen: Slack's &lt; shown as <, the console's output as printed
    ephemeral: bool | None  # None on the console, where everything is for the one typing
    post: ResponsePost | None = None  # Slack: the raw post, to check escaping and Block Kit

    @classmethod
    def from_post(cls, post: ResponsePost) -> "Seen":
        body = post.body or {}
        words = html.unescape((post.text or "") + "\n" + block_texts(post.blocks or []))
        return cls(words, body.get("response_type") == "ephemeral", post)


class SlackDriver:
    """Shared by HTTP and Socket Mode: how a request is built and the reply awaited."""

    channel = "C1"

    def __init__(self, slack, bot, edge: SlackEdge):
        self.slack, self.bot, self.edge = slack, bot, edge

    async def command(self, user: str, command: str, text: str = "") -> Seen:
        url = self.slack.new_response_url()
        fields = slash_command_fields(command, text, user_id=user, channel_id=self.channel, response_url=url)
        await self._send_command(fields)
        await self.slack._wait(lambda: self.slack.response_posts(url), 15, f"a reply to {command}")
        return Seen.from_post(self.slack.response_posts(url)[0])

    async def click(self, user: str, action_id: str, value: str) -> Seen:
        url = self.slack.new_response_url()
        await self._send_click(user, action_id, value, url)
        await self.slack._wait(lambda: self.slack.response_posts(url), 30, f"an answer to {action_id}")
        return Seen.from_post(self.slack.response_posts(url)[0])

    async def settle(self) -> None:
        await self.edge.work.drain(30)


class HttpDriver(SlackDriver):
    name = "http"

    def __init__(self, slack, bot, edge, url: str):
        super().__init__(slack, bot, edge)
        self.url = url

    async def post(self, body: str) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as response:
                return response.status

    async def _send_command(self, fields: dict) -> None:
        from urllib.parse import urlencode

        assert await self.post(urlencode(fields)) == 200

    async def _send_click(self, user, action_id, value, url) -> None:
        assert await self.post(block_actions_body(user, action_id, value, channel_id=self.channel, response_url=url)) == 200


class SocketDriver(SlackDriver):
    name = "socket"

    async def _send_command(self, fields: dict) -> None:
        await self.slack.socket.deliver("slash_commands", fields)

    async def _send_click(self, user, action_id, value, url) -> None:
        await self.slack.socket.deliver("interactive", block_actions_payload(user, action_id, value, channel_id=self.channel, response_url=url))


class ConsoleDriver:
    name = "console"

    def __init__(self, bot):
        self.bot = bot
        self.out = io.StringIO()
        self.console = Console(bot, "UCONSOLE", io.StringIO(), self.out)

    async def command(self, user: str, command: str, text: str = "") -> Seen:
        self.console.user_id = user
        return await self._line(f"{command} {text}".strip())

    async def click(self, user: str, action_id: str, value: str) -> Seen:
        """Press the newest button printed with this action and value, as `user`."""
        numbers = [n for n, b in self.console._buttons.items() if (b.action_id, b.value) == (action_id, value)]
        assert numbers, f"no {action_id} button for {value} was printed"
        self.console.user_id = user
        return await self._line(str(numbers[-1]))

    async def _line(self, line: str) -> Seen:
        self.out.seek(0)
        self.out.truncate()
        await self.console.handle_line(line)
        return Seen(self.out.getvalue(), None)

    async def settle(self) -> None:
        return None


@pytest_asyncio.fixture(params=TRANSPORTS)
async def drive(request, slack, make_bot):
    """drive(config_text, **settings) -> a driver for this run's transport; everything is stopped after the test."""
    cleanups = []

    async def factory(config_text: str, database_url: str | None = None, **settings):
        bot = await make_bot(config_text, database_url, api_url=slack.api_url, **settings)
        if request.param == "console":
            return ConsoleDriver(bot)
        client = web_client(bot.settings)
        bot.roles = RoleDirectory(bot.config, group_lookup(client))
        edge = SlackEdge(bot, client)
        if request.param == "socket":
            transport = SocketModeTransport(edge, slack.app_token, client)
            await transport.connect()
            await slack.socket.wait_connected()
            cleanups.append(transport.close)
            cleanups.append(edge.work.drain)
            return SocketDriver(slack, bot, edge)
        runner = web.AppRunner(build_web_app(bot, edge, SIGNING_SECRET), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        cleanups.append(runner.cleanup)
        cleanups.append(edge.work.drain)
        return HttpDriver(slack, bot, edge, f"http://127.0.0.1:{port}")

    factory.transport = request.param
    yield factory
    for cleanup in reversed(cleanups):
        await cleanup()
    if request.param == "socket":
        await slack.socket.assert_clean()
