"""Who may read an incident's content (/incident show, its postmortem): the people who can read its channel.

In the incident's own channel, and for an incident whose channel is public (or that has none),
whoever may run /incident sees it. An incident with a private channel, asked about anywhere else,
is answered only to a member of that channel (Slack's conversations.members), and only to them
(ephemerally). Where membership cannot be shown (no Slack connection, Slack refused), nothing is
shown: it fails closed, as group roles do.
"""
from __future__ import annotations

from dataclasses import dataclass

from bot.incident import service
from bot.incident.lifecycle import pinned_headline_key
from bot.incident.models import Incident
from bot.incident.notify import messenger_for
from bot.pipeline.messenger import ChannelAdmin, MessagePostFailed
from bot.pipeline.reply import Outcome, Reply


@dataclass(frozen=True)
class Access:
    refusal: Reply | None  # the answer instead, when the asker may not see it
    only_for_asker: bool = False  # a private channel's content asked elsewhere: answered ephemerally


async def private_channel(bot, incident: Incident) -> bool:
    """Whether the incident's own channel is private: as recorded when it was made (its "channel"
    entry), else as incidents.private_channels says now."""
    if not incident.channel_id:
        return False
    made = await service.entry_by_key(bot.db, pinned_headline_key(incident.id))
    recorded = (made.data or {}).get("private") if made is not None else None
    return bot.config.incidents.private_channels if recorded is None else bool(recorded)


async def check(bot, incident: Incident, user_id: str, asked_in: str) -> Access:
    """May `user_id`, asking in `asked_in`, see `incident`'s timeline and postmortem?"""
    if asked_in == incident.channel_id or not await private_channel(bot, incident):
        return Access(None)
    ref = incident.ref
    try:
        messenger = messenger_for(bot, incident)
        if not isinstance(messenger, ChannelAdmin):
            return _refused(f"{ref}'s channel is private, and who is in it cannot be checked here (no Slack connection); "
                            "ask in its channel.")
        members = await messenger.members(incident.channel_id)
    except MessagePostFailed as exc:
        return _refused(f"{ref}'s channel is private, and Slack did not say who is in it ({str(exc)[:40]}); nothing is shown.")
    if user_id not in members:
        return _refused(f"{ref}'s channel is private and you are not in it: only its members see its timeline and postmortem.")
    return Access(None, only_for_asker=True)


def _refused(sentence: str) -> Access:
    return Access(Reply.refusal(sentence, Outcome.denied))
