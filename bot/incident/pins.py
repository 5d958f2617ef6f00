"""📌 on a message in an incident's channel: the message joins the timeline with its own time, once."""
from __future__ import annotations

from bot.incident import service
from bot.incident.lifecycle import clean, message_time
from bot.incident.notify import messenger_for
from bot.pipeline.messenger import ChannelAdmin, MessagePostFailed
from bot.pipeline.parse import normalise_slack_text
from bot.pipeline.reply import Outcome, Reply

PUSHPIN = "pushpin"
IGNORED = Reply(text="", outcome=Outcome.ok)


def pin_key(channel: str, ts: str) -> str:
    return f"pin:{channel}:{ts}"


async def pinned(bot, click) -> Reply:
    if click.action_id != PUSHPIN:
        return IGNORED
    incident = await service.by_channel(bot.db, click.channel_id)
    at = message_time(click.value)
    if incident is None or at is None:
        return IGNORED
    messenger = messenger_for(bot, incident)
    if not isinstance(messenger, ChannelAdmin):
        return IGNORED
    try:
        message = await messenger.message(click.channel_id, click.value)
    except MessagePostFailed as exc:
        return Reply(text=f"the pinned message could not be read: {str(exc)[:60]}", outcome=Outcome.error)
    if message is None:
        return IGNORED
    author, text = message
    # The message as Slack stores it is mrkdwn (&amp;, <@U1>): kept as the person wrote it, escaped once when shown.
    entry = service.Entry("pin", author, clean(normalise_slack_text(text)), {"pinned_by": click.user_id, "ts": click.value},
                          key=pin_key(click.channel_id, click.value))
    added = await service.add_entry(bot.db, incident.id, entry, at)
    return Reply(text="pinned" if added else "already pinned", outcome=Outcome.ok)
