"""Drive one bot through each of its three transports the same way: HTTP, Socket Mode, console.

A test that takes the `drive` fixture runs three times. `await drive(config)` gives a
driver whose `command()` and `click()` act as a person would and return what that person
sees (`Seen`): for Slack, the response_url post the bot made (its text decoded from
Slack's entities); for the console, what it printed. Slack HTTP requests are signed;
Socket Mode envelopes go through the Socket Mode double's real WebSocket and must be
acknowledged in time (checked at teardown).

Messages the bot posts and later edits in place (an action's plan) are read back with
`messages()`: on Slack from the chat.postMessage / chat.update calls the Web API double
received, on the console from what it printed ("[message N updated]"). Each `Message`
holds every version, oldest first, and the reference the bot stored for it
(`action_requests.message_ref`).

`settle()` waits until the work the bot started after acknowledging is done, so a test
can assert that something did *not* happen without sleeping.

To run a test on some transports only: `@pytest.mark.parametrize("drive", ["socket"], indirect=True)`.
"""
from __future__ import annotations

import html
import io
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import pytest_asyncio
from aiohttp import web

from conftest import SIGNING_SECRET, free_port
from slack_double import ResponsePost, block_texts
from slack_signing import block_actions_body, block_actions_payload, sign, slash_command_fields

from bot.pipeline.roles import RoleDirectory
from bot.transport.console import Console
from bot.transport.edge import SlackEdge
from bot.transport.server import build_web_app
from bot.transport.slack import group_lookup, web_client
from bot.transport.socket_mode import SocketModeTransport

TRANSPORTS = ["http", "socket", "console"]

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_CONSOLE_BUTTON = re.compile(r"\[(\d+)\] ")


def _readable_mrkdwn(mrkdwn: str) -> str:
    """Slack mrkdwn as a person reads it: live mentions as @U123, no bold stars or code fences, entities decoded.

    Inside ``` code only the entities are decoded: a literal &lt;@U123&gt; there reads <@U123>, as in Slack.
    """
    parts = mrkdwn.split("```")
    for i in range(0, len(parts), 2):  # outside code fences
        parts[i] = _BOLD.sub(r"\1", _MENTION.sub(r"@\1", parts[i]))
    return _shown("\n".join(parts))


def _shown(text: str) -> str:
    """Slack's entities decoded, and the invisible word joiner the renderer puts after `<` in plain_text dropped."""
    return html.unescape(text).replace("\u2060", "")


@dataclass
class Seen:
    plain: str  # the words on screen: Slack's &lt; shown as <, the console's output as printed
    ephemeral: bool | None  # None on the console, where everything is for the one typing
    post: ResponsePost | None = None  # Slack: the raw post, to check escaping and Block Kit
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (action_id, value) of every button shown
    mrkdwn: bool = False  # True when it came from Slack (mentions as <@U123>, *bold*)
    screen: str = ""  # Slack, as sent: what the client displays, the blocks (text is only the notification) or else the text

    @property
    def words(self) -> str:
        """What is on screen, Slack's markup read as a person reads it (@U123, no *bold*): the transports compare."""
        return _readable_mrkdwn(self.screen) if self.mrkdwn else self.plain

    @property
    def one_line(self) -> str:
        """The answer's text, asserted to be a single line on its own (a refusal: one sentence)."""
        if self.post is not None:
            text = self.post.text or ""
            # Block Kit repeats the sentence in one section; nothing else is shown.
            shown = [b for b in self.post.blocks or [] if b["type"] != "section" or b["text"]["text"] != text]
            assert shown == [], f"a one-sentence answer came with more blocks: {self.post.blocks}"
        else:
            text = self.plain
        text = (_readable_mrkdwn(text) if self.mrkdwn else text).strip()
        assert text and "\n" not in text, f"expected one line, got:\n{text}"
        return text

    @classmethod
    def from_post(cls, post: ResponsePost) -> "Seen":
        body = post.body or {}
        blocks = post.blocks or []
        words = _shown((post.text or "") + "\n" + block_texts(blocks))
        screen = block_texts(blocks) if blocks else post.text or ""
        return cls(words, body.get("response_type") == "ephemeral", post, _slack_buttons(blocks), True, screen)

    @classmethod
    def from_message(cls, text: str, blocks: list[dict]) -> "Seen":
        """A channel message (chat.postMessage / chat.update arguments)."""
        screen = block_texts(blocks) if blocks else text
        return cls(_shown(text + "\n" + block_texts(blocks)), False, None, _slack_buttons(blocks), True, screen)


def _slack_buttons(blocks: list[dict]) -> list[tuple[str, str]]:
    return [(e["action_id"], e.get("value", "")) for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]


def _blocks(raw) -> list[dict]:
    return json.loads(raw) if isinstance(raw, str) else list(raw or [])


@dataclass
class Message:
    """A message the bot posted in the channel and edited in place: every version, oldest first."""

    ref: str  # as the bot stores it: "C1:<ts>" on Slack, "console:<n>" on the console
    versions: list[Seen]

    @property
    def now(self) -> Seen:
        return self.versions[-1]

    @property
    def edits(self) -> list[Seen]:
        return self.versions[1:]


class SlackDriver:
    """Shared by HTTP and Socket Mode: how a request is built and the reply awaited."""

    channel = "C1"

    def __init__(self, slack, bot, edge: SlackEdge):
        self.slack, self.bot, self.edge = slack, bot, edge

    def fields(self, user: str, command: str, text: str = "", **extra) -> dict:
        """A slash command's fields with a fresh response_url (see `send_command`)."""
        return slash_command_fields(command, text, user_id=user, channel_id=self.channel, response_url=self.slack.new_response_url(), **extra)

    async def command(self, user: str, command: str, text: str = "") -> Seen:
        fields = self.fields(user, command, text)
        await self.send_command(fields)
        return await self.answer(fields["response_url"], command)

    async def answer(self, url: str, what: str, timeout: float = 15) -> Seen:
        """The first post to `url`, once the bot made it."""
        await self.slack._wait(lambda: self.slack.response_posts(url), timeout, f"a reply to {what}")
        return Seen.from_post(self.slack.response_posts(url)[0])

    def press(self, user: str, action_id: str, value: str, *, channel: str | None = None) -> dict:
        """A button press's block_actions payload, with a fresh response_url (see `send_click`)."""
        url = self.slack.new_response_url()
        return block_actions_payload(user, action_id, value, channel_id=channel or self.channel, response_url=url)

    async def click(self, user: str, action_id: str, value: str, *, channel: str | None = None) -> Seen:
        """A button press on a message in `channel` (the driver's channel unless given)."""
        payload = self.press(user, action_id, value, channel=channel)
        await self.send_click(payload)
        return await self.answer(payload["response_url"], action_id, 30)

    def messages(self) -> list[Message]:
        """Every message posted with chat.postMessage, with each chat.update of it, in order."""
        found: dict[tuple[str, str], Message] = {}
        for call in self.slack.calls:
            if not call.ok:
                continue
            if call.method == "chat.postMessage":
                key = (call.response["channel"], call.response["ts"])
                found[key] = Message(f"{key[0]}:{key[1]}", [Seen.from_message(call.args.get("text", ""), _blocks(call.args.get("blocks")))])
            elif call.method == "chat.update":
                key = (str(call.args["channel"]), str(call.args["ts"]))
                found[key].versions.append(Seen.from_message(call.args.get("text", ""), _blocks(call.args.get("blocks"))))
        return list(found.values())

    async def settle(self) -> None:
        await self.edge.work.drain(30)
        await self.bot.activity.drain(30)  # timeline entries are written in the background


class HttpDriver(SlackDriver):
    name = "http"

    def __init__(self, slack, bot, edge, url: str):
        super().__init__(slack, bot, edge)
        self.url = url

    async def post(self, body: str, headers: dict[str, str] | None = None) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body), **(headers or {})}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as response:
                return response.status

    async def send_command(self, fields: dict, *, retry_attempt: int = 0) -> None:
        """POST the command as Slack does; a retry carries X-Slack-Retry-Num as Slack's do."""
        assert await self.post(urlencode(fields), _retry_headers(retry_attempt)) == 200

    async def send_click(self, payload: dict, *, retry_attempt: int = 0) -> None:
        action = payload["actions"][0]
        body = block_actions_body(
            payload["user"]["id"],
            action["action_id"],
            action["value"],
            channel_id=payload["channel"]["id"],
            response_url=payload["response_url"],
            trigger_id=payload["trigger_id"],
        )
        assert await self.post(body, _retry_headers(retry_attempt)) == 200


def _retry_headers(retry_attempt: int) -> dict[str, str] | None:
    return {"X-Slack-Retry-Num": str(retry_attempt), "X-Slack-Retry-Reason": "http_timeout"} if retry_attempt else None


class SocketDriver(SlackDriver):
    name = "socket"

    def __init__(self, slack, bot, edge, transport: SocketModeTransport):
        super().__init__(slack, bot, edge)
        self.transport = transport

    async def send_command(self, fields: dict, *, retry_attempt: int = 0) -> None:
        """Deliver the envelope and wait for its ack; a retry has retry_attempt set as Slack's do."""
        reason = "timeout" if retry_attempt else ""
        await self.slack.socket.deliver("slash_commands", fields, retry_attempt=retry_attempt, retry_reason=reason)

    async def send_click(self, payload: dict, *, retry_attempt: int = 0) -> None:
        reason = "timeout" if retry_attempt else ""
        await self.slack.socket.deliver("interactive", payload, retry_attempt=retry_attempt, retry_reason=reason)

    async def settle(self) -> None:
        await self.slack.socket.settle()
        await super().settle()


class _Transcript(io.TextIOBase):
    """The console's standard output, one chunk per Console.write (one message, edit or reply each)."""

    def __init__(self):
        self.chunks: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.chunks.append(text)
        return len(text)


class ConsoleDriver:
    name = "console"
    channel = "console"

    def __init__(self, bot):
        self.bot = bot
        self.out = _Transcript()
        self.console = Console(bot, "UCONSOLE", io.StringIO(), self.out)
        self.lines: list[list[str]] = []  # what each typed line printed, chunk by chunk

    async def command(self, user: str, command: str, text: str = "") -> Seen:
        return await self.type(user, f"{command} {text}".strip())

    async def click(self, user: str, action_id: str, value: str, *, channel: str | None = None) -> Seen:
        """Press the newest button printed with this action and value, as `user`."""
        assert channel is None, "the console has one channel: a click cannot come from another"
        numbers = [n for n, b in self.console._buttons.items() if (b.action_id, b.value) == (action_id, value)]
        assert numbers, f"no {action_id} button for {value} was printed"
        return await self.type(user, str(numbers[-1]))

    async def type(self, user: str, line: str) -> Seen:
        """Type `line` as `user` (a command, a button number, anything)."""
        self.console.user_id = user
        mark = len(self.out.chunks)
        await self.console.handle_line(line)
        printed = self.out.chunks[mark:]
        self.lines.append(printed)
        text = "".join(printed)
        return Seen(text, None, buttons=self._buttons_in(text))

    def _buttons_in(self, text: str) -> list[tuple[str, str]]:
        shown = []
        for line in text.splitlines():
            if line.endswith("(type the number to press)"):
                for number in _CONSOLE_BUTTON.findall(line):
                    button = self.console._buttons[int(number)]
                    shown.append((button.action_id, button.value))
        return shown

    def messages(self) -> list[Message]:
        """Messages printed by the console's messenger: what a line printed before its answer, and its edits."""
        found: list[Message] = []
        for printed in self.lines:
            for chunk in printed[:-1]:  # the last chunk is the answer to the line itself
                head, _, rest = chunk.partition("\n")
                updated = re.fullmatch(r"\[message (\d+) updated\]", head)
                if updated:
                    found[int(updated.group(1)) - 1].versions.append(Seen(rest, None, buttons=self._buttons_in(rest)))
                else:
                    found.append(Message(f"console:{len(found) + 1}", [Seen(chunk, None, buttons=self._buttons_in(chunk))]))
        return found

    async def settle(self) -> None:
        # The console does everything before it prints the answer, but the timeline's entries (in the background).
        await self.bot.activity.drain(30)


@pytest_asyncio.fixture(params=TRANSPORTS)
async def drive(request, slack, make_bot):
    """drive(config_text, **settings) -> a driver for this run's transport; everything is stopped after the test."""
    cleanups = []

    async def factory(config_text: str, database_url: str | None = None, **settings):
        bot = await make_bot(config_text, database_url, api_url=slack.api_url, **settings)
        if request.param == "console":
            return ConsoleDriver(bot)
        client = web_client(bot.settings)
        bot.roles = RoleDirectory(bot.config, group_lookup(client), oncall=bot.oncall.on_call_users)
        edge = SlackEdge(bot, client)
        if request.param == "socket":
            transport = SocketModeTransport(edge, slack.app_token, client)
            await transport.connect()
            await slack.socket.wait_connected()
            cleanups.append(transport.close)
            cleanups.append(edge.work.drain)
            return SocketDriver(slack, bot, edge, transport)
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
