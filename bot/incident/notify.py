"""Where incident messages go: the incident's transport's messenger, its channel, direct messages."""
from __future__ import annotations

import logging

from bot.incident.models import Incident
from bot.pipeline.messenger import MessagePostFailed, Messenger
from bot.pipeline.reply import Reply

log = logging.getLogger(__name__)


def messenger_for(bot, incident: Incident) -> Messenger:
    """The messenger of the transport the incident was opened on, else whichever this process runs
    (an incident opened on the console keeps escalating when the bot runs in Slack)."""
    messenger = bot.messengers.get(incident.transport) or next(iter(bot.messengers.values()), None)
    if messenger is None:
        raise MessagePostFailed("no transport is running to send incident messages")
    return messenger


def channel_of(incident: Incident) -> str:
    return incident.channel_id or incident.headline_channel or ""


async def post_direct(bot, messenger: Messenger, user_id: str, reply: Reply) -> bool:
    """A direct message (Slack: conversations.open, then chat.postMessage). A refusal is logged, not
    raised: what it tells was said elsewhere too, and one unreachable user must not stop the others."""
    try:
        await messenger.direct(user_id, reply)
        return True
    except MessagePostFailed as exc:
        log.warning("direct message to a user failed: %s", str(exc)[:80])
        return False
