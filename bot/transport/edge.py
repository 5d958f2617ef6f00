"""What Slack delivers, over HTTP or Socket Mode: acknowledged at once, then handled in the background.

Whatever arrives (a command, any button, a modal, an event, known or not) gets its ack:
Slack shows the user an error for anything not acknowledged within 3 s. The work then
runs as a background task and answers through the request's response_url.
"""
from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import INTERACTIONS
from bot.pipeline.messenger import Click
from bot.pipeline.request import Request
from bot.transport.inbound import Inbound, Interaction, SlashCommand, UrlVerification
from bot.transport.slack import BackgroundWork, SlackMessenger, deliver, responder

log = logging.getLogger(__name__)

INTERACTION_KINDS = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion", "interactive_message"}
)


class SlackEdge:
    def __init__(self, bot, client: AsyncWebClient):
        self.bot = bot
        self.client = client
        self.work = BackgroundWork()
        bot.messengers["slack"] = SlackMessenger(client)

    async def receive(self, inbound: Inbound) -> dict | None:
        """The ack's body (None: an empty 200). Never raises for anything Slack can send."""
        if isinstance(inbound, UrlVerification):
            return {"challenge": inbound.challenge}
        key = inbound.delivery_key
        # Slack retries deliveries (X-Slack-Retry-Num, Socket Mode retry_attempt): the same one never runs twice.
        if key is not None and not await self.bot.coordinator.claim(key):
            log.info("skipping a repeated delivery (same %s)", key.split(":", 1)[0])  # the id itself is body text
            return None
        if isinstance(inbound, SlashCommand):
            self.work.spawn(self._command(inbound))
        elif isinstance(inbound, Interaction):
            # Known types only: a label per arbitrary string would grow the metric without bound.
            INTERACTIONS.labels(inbound.kind if inbound.kind in INTERACTION_KINDS else "other").inc()
            if inbound.kind == "block_actions":
                self.work.spawn(self._button(inbound))
            elif inbound.kind == "block_suggestion":
                return {"options": []}  # opsbot has no external selects; an empty list, not an error
        return None

    async def _command(self, command: SlashCommand) -> None:
        request = Request(
            user_id=command.user_id,
            channel_id=command.channel_id,
            command=command.command,
            text=command.text,
            transport="slack",
            team_id=command.team_id,
        )
        reply = await self.bot.handle(request)
        await deliver(reply, responder(command.response_url), self.client, command.channel_id, command.command)

    async def _button(self, interaction: Interaction) -> None:
        click = Click(
            user_id=interaction.user_id,
            action_id=interaction.action_id,
            value=interaction.value,
            channel_id=interaction.channel_id,
            transport="slack",
            team_id=interaction.team_id,
        )
        reply = await self.bot.handle_click(click)
        reply.ephemeral = True  # a shared message is edited in place; this answer is for the one who clicked
        if not interaction.response_url:
            log.info("no response_url on a %s click; its answer is not shown", interaction.action_id[:40])
            return
        await deliver(
            reply, responder(interaction.response_url), self.client, interaction.channel_id, "button", replace_original=False
        )
