"""Incident channels on Slack: create, invite, topic, pin, and read a message back (ChannelAdmin).

Slack's errors come back as MessagePostFailed carrying Slack's error code (name_taken,
already_pinned, ...), so the incident slice can decide what each means without knowing Slack.
"""
from __future__ import annotations

from slack_sdk.errors import SlackApiError

from bot.metrics import SLACK_API_ERRORS
from bot.pipeline.messenger import MessagePostFailed
from bot.transport.blocks import channel_topic
from bot.transport.slack import SlackMessenger

HISTORY_PAGE, HISTORY_PAGES = 200, 10  # a retried page looks through the newest 2,000 messages for itself
MEMBERS_PAGE, MEMBERS_PAGES = 1000, 20  # who is in an incident channel: 20,000 members at most
# Answers that mean the wanted state is already there.
ALREADY = {"conversations.invite": "already_in_channel", "pins.add": "already_pinned"}


class SlackWorkspaceMessenger(SlackMessenger):
    async def _call(self, method: str, call, **args) -> dict:
        try:
            return (await call(**args)).data
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown"))[:64]
            if ALREADY.get(method) == error:
                return {}
            SLACK_API_ERRORS.labels(method, error).inc()
            raise MessagePostFailed(error) from None

    async def create_channel(self, name: str, *, private: bool) -> str:
        created = await self._call("conversations.create", self._client.conversations_create, name=name, is_private=private)
        return created["channel"]["id"]

    async def invite(self, channel: str, users: list[str]) -> None:
        if users:
            await self._call("conversations.invite", self._client.conversations_invite, channel=channel, users=",".join(users))

    async def members(self, channel: str) -> set[str]:
        # conversations.members, page by page (next_cursor); past MEMBERS_PAGES pages nobody further is
        # known, so one not found there is refused: fails closed.
        found: set[str] = set()
        cursor = ""
        for _ in range(MEMBERS_PAGES):
            page = await self._call("conversations.members", self._client.conversations_members, channel=channel,
                                    limit=MEMBERS_PAGE, **({"cursor": cursor} if cursor else {}))
            found.update(str(member) for member in page.get("members", []))
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        return found

    async def set_topic(self, channel: str, topic: str) -> None:
        """`topic` as written (an incident's title in it): escaped here, once, like message text."""
        await self._call("conversations.setTopic", self._client.conversations_setTopic, channel=channel, topic=channel_topic(topic))

    async def pin(self, ref: str) -> None:
        channel, ts = ref.split(":", 1)
        await self._call("pins.add", self._client.pins_add, channel=channel, timestamp=ts)

    async def message(self, channel: str, ts: str) -> tuple[str, str] | None:
        history = await self._call("conversations.history", self._client.conversations_history, channel=channel, latest=ts,
                                   inclusive=True, limit=1)
        found = _at(history.get("messages", []), ts)
        if found is None:  # a reply in a thread: not in the channel's history, in its thread's
            try:
                thread = await self._call("conversations.replies", self._client.conversations_replies, channel=channel, ts=ts)
            except MessagePostFailed as exc:
                if str(exc) != "thread_not_found":
                    raise
                return None  # gone
            found = _at(thread.get("messages", []), ts)
        if found is None:
            return None
        author = found.get("user") or found.get("bot_id") or ""
        return str(author)[:32], str(found.get("text", ""))[:40000]

    async def posted(self, channel: str, marker: str) -> bool:
        if channel.startswith(("U", "W")):  # a user: the direct-message channel with the bot
            opened = await self._call("conversations.open", self._client.conversations_open, users=channel)
            channel = opened["channel"]["id"]
        # Newest first, page by page (each page ends where the next starts: `latest`, exclusive), up to
        # HISTORY_PAGES pages: past that the page is sent again (a page twice beats a page lost).
        latest = None
        for _ in range(HISTORY_PAGES):
            args = {"channel": channel, "limit": HISTORY_PAGE} | ({"latest": latest, "inclusive": False} if latest else {})
            history = await self._call("conversations.history", self._client.conversations_history, **args)
            messages = history.get("messages", [])
            if any(marker in str(message.get("text", "")) for message in messages):
                return True
            if not history.get("has_more") or not messages:
                return False
            latest = str(messages[-1].get("ts", ""))
        return False


def _at(messages: list, ts: str) -> dict | None:
    return next((m for m in messages if isinstance(m, dict) and m.get("ts") == ts), None)
