"""What Slack delivers, over HTTP or Socket Mode: acknowledged at once, then handled in the background.

Whatever arrives (a command, any button, a modal, an event, known or not) gets its ack:
Slack shows the user an error for anything not acknowledged within 3 s. The work then
runs as a background task and answers through the request's response_url.

Slack retries a delivery it saw no ack for, possibly on another replica; each is claimed once
(bot.coordination) after the ack, just before its work, so a slow database delays the work, not
the ack, and the claim is not given up early (a given-up claim is how a retry would run twice).

Two exceptions. A modal submission (view_submission) is answered in the ack body, so it
is claimed and runs through the interaction pipeline before the ack, for at most FORM_ACK_BUDGET seconds.
A shortcut has no response_url: its answer opens a modal with views.open (trigger_id).

An Events API event whose type a declared InteractionSpec lists (`events=`) runs through the
same interaction pipeline as a button, as a Click of kind "event", after the ack; its answer
goes nowhere (an event has no response_url). Any other event is acknowledged and ignored.
"""
from __future__ import annotations

import asyncio
import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.coordination import AFTER_ACK_CLAIM_BUDGET
from bot.metrics import INTERACTIONS
from bot.pipeline.interactions import FormErrors
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Outcome, Reply
from bot.pipeline.request import Request
from bot.transport.inbound import EventCallback, Inbound, Interaction, SlashCommand, UrlVerification
from bot.transport.blocks import plain, to_slack
from bot.transport.slack import BackgroundWork, deliver, responder
from bot.transport.slack_channels import SlackWorkspaceMessenger

log = logging.getLogger(__name__)

INTERACTION_KINDS = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion", "interactive_message"}
)
# A submission's answer goes in the ack, which Slack wants within 3 s: the pipeline (its audit
# row included) gets this long, then the ack says so and the work goes on in the background.
FORM_ACK_BUDGET = 2.0
FORM_STILL_RUNNING = "opsbot is taking longer than Slack waits to answer this form; it goes on, and the audit log will show how it ended."
MODAL_TITLE = "opsbot"  # a modal's title: at most 24 characters
MODAL_BLOCKS = 100


def sentence_modal(reply: Reply) -> dict:
    """A modal showing a reply (one sentence, usually): valid Block Kit, a Close button and no Submit."""
    blocks = to_slack(reply).blocks[:MODAL_BLOCKS] or [{"type": "section", "text": {"type": "plain_text", "text": plain(reply.text)[:3000] or "-"}}]
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": MODAL_TITLE},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": blocks,
    }


def submission_ack(reply: Reply) -> dict:
    """What the pipeline's answer to a view_submission becomes in the ack body."""
    if isinstance(reply, FormErrors) and reply.errors:
        # Shown under the fields as plain text; a sentence may quote what was submitted.
        return {"response_action": "errors", "errors": {block: plain(sentence) for block, sentence in reply.errors.items()}}
    if reply.outcome is Outcome.ok and not reply.blocks:
        return {"response_action": "clear"}
    # A refusal, a failure, or an answer to read: shown in place of the form.
    return {"response_action": "update", "view": sentence_modal(reply)}


def _skipping(key: str) -> None:
    log.info("skipping a repeated delivery (same %s)", key.split(":", 1)[0])  # the id itself is body text


class SlackEdge:
    def __init__(self, bot, client: AsyncWebClient):
        self.bot = bot
        self.client = client
        self.work = BackgroundWork()
        bot.messengers["slack"] = SlackWorkspaceMessenger(client)

    async def receive(self, inbound: Inbound) -> dict | None:
        """The ack's body (None: an empty 200). Never raises for anything Slack can send."""
        if isinstance(inbound, UrlVerification):
            return {"challenge": inbound.challenge}
        key = inbound.delivery_key
        if isinstance(inbound, SlashCommand):
            self.work.spawn(self._once(key, lambda: self._command(inbound)))
            return None
        if isinstance(inbound, Interaction) and inbound.kind in ("block_actions", "shortcut", "message_action"):
            # A press may open a form (a typed confirmation, an incident update) within trigger_id's 3 s.
            work = self._button if inbound.kind == "block_actions" else self._shortcut
            self.work.spawn(self._once(key, lambda: work(inbound)), urgent=True)
            return None
        if isinstance(inbound, EventCallback):
            self._event(inbound, key)  # claimed after the ack, like commands: a slow database delays the work, not the ack
            return None
        # The rest is claimed before the ack: a submission's answer is the ack.
        if key is not None and not await self.bot.coordinator.claim(key):
            _skipping(key)
            return None
        if isinstance(inbound, Interaction):
            # Known types only: a label per arbitrary string would grow the metric without bound.
            INTERACTIONS.labels(inbound.kind if inbound.kind in INTERACTION_KINDS else "other").inc()
            if inbound.kind == "view_submission":
                return await self._submission(inbound)
            if inbound.kind == "block_suggestion":
                return {"options": []}  # opsbot has no external selects; an empty list, not an error
        return None

    async def _once(self, key: str | None, work) -> None:
        """`work()` unless the same delivery (Slack's retry, on any replica) was claimed first."""
        if key is not None and not await self.bot.coordinator.claim(key, budget=AFTER_ACK_CLAIM_BUDGET):
            _skipping(key)
            return
        await work()

    def _event(self, event: EventCallback, key: str | None) -> None:
        """Run an event a declared spec handles; acknowledge and ignore every other (no pipeline, no audit row)."""
        if not event.event_type or f"event:{event.event_type}" not in self.bot.interactions.known:
            return
        click = self._event_click(event)
        if click is None:
            # The type and a field's name only: the event's values are what people typed or chose.
            if event.problem:
                log.warning("acknowledged a malformed %s event without acting on it: %s", event.event_type, event.problem)
            else:
                log.info("acknowledged a %s event the Slack edge does not read (not on a message)", event.event_type)
            return
        self.work.spawn(self._once(key, lambda: self._run_event(click)))

    @staticmethod
    def _event_click(event: EventCallback) -> Click | None:
        """The event as a Click, for the types the edge can read (reaction_added on a message); None otherwise."""
        reaction = event.reaction
        if reaction is None:
            return None
        return Click(
            user_id=reaction.user_id,
            action_id=reaction.reaction,
            value=reaction.ts,
            channel_id=reaction.channel_id,
            transport="slack",
            team_id=event.team_id,
            kind="event",
            callback_id=event.event_type,
            message_ts=reaction.ts,
        )

    async def _run_event(self, click: Click) -> None:
        """An event has no response_url: its answer (a refusal included) is only logged, at debug level."""
        try:
            reply = await self.bot.handle_click(click)
        except Exception as exc:  # the pipeline contains handler errors; this is for what lies outside it
            log.error("a %s event could not be handled: %s", click.callback_id, exc.__class__.__name__)
            return
        log.debug("a %s event was handled: %s", click.callback_id, reply.outcome.value)

    async def _command(self, command: SlashCommand) -> None:
        request = Request(
            user_id=command.user_id,
            channel_id=command.channel_id,
            command=command.command,
            text=command.text,
            transport="slack",
            team_id=command.team_id,
            trigger_id=command.trigger_id,
        )
        reply = await self.bot.handle(request)
        await deliver(reply, responder(command.response_url), self.client, command.channel_id, command.command)

    @staticmethod
    def _click(interaction: Interaction) -> Click:
        return Click(
            user_id=interaction.user_id,
            action_id=interaction.action_id,
            value=interaction.value,
            channel_id=interaction.channel_id,
            transport="slack",
            team_id=interaction.team_id,
            kind=interaction.kind,
            callback_id=interaction.callback_id,
            trigger_id=interaction.trigger_id,
            fields=interaction.fields,
            metadata=interaction.metadata,
            message_ts=interaction.message_ts,
        )

    async def _submission(self, interaction: Interaction) -> dict:
        """The ack body for a modal submission, computed by the pipeline within FORM_ACK_BUDGET."""
        task = asyncio.ensure_future(self.bot.handle_click(self._click(interaction)))
        done, _ = await asyncio.wait({task}, timeout=FORM_ACK_BUDGET)
        if not done:
            self.work.spawn(self._late(task, interaction.callback_id))
            return {"response_action": "update", "view": sentence_modal(Reply.refusal(FORM_STILL_RUNNING, Outcome.ok))}
        return submission_ack(task.result())  # the pipeline contains errors: result() does not raise

    async def _late(self, task: asyncio.Future, callback_id: str) -> None:
        reply = await task
        log.info("a %s submission finished after its ack: %s", callback_id[:40], reply.outcome.value)

    async def _shortcut(self, interaction: Interaction) -> None:
        """A shortcut has no response_url: an answer with something to say opens a modal (trigger_id, 3 s)."""
        INTERACTIONS.labels(interaction.kind).inc()  # counted once claimed, as every other interaction
        reply = await self.bot.handle_click(self._click(interaction))
        if reply.outcome is Outcome.ok and not reply.text:
            return  # the handler opened its own modal, or had nothing to show
        if not interaction.trigger_id:
            log.info("no trigger_id on a %s shortcut; its answer is not shown", interaction.callback_id[:40])
            return
        try:
            await self.client.views_open(trigger_id=interaction.trigger_id, view=sentence_modal(reply))
        except Exception as exc:  # expired_trigger_id and the like: nothing else can show it
            log.warning("could not open the answer to a %s shortcut: %s", interaction.callback_id[:40], exc.__class__.__name__)

    async def _button(self, interaction: Interaction) -> None:
        INTERACTIONS.labels(interaction.kind).inc()  # counted once claimed, as every other interaction
        reply = await self.bot.handle_click(self._click(interaction))
        reply.ephemeral = True  # a shared message is edited in place; this answer is for the one who clicked
        if not interaction.response_url:
            log.info("no response_url on a %s click; its answer is not shown", interaction.action_id[:40])
            return
        await deliver(
            reply, responder(interaction.response_url), self.client, interaction.channel_id, "button", replace_original=False
        )
