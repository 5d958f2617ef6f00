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
from bot.incident.notify import channel_of, messenger_for
from bot.pipeline.messenger import ChannelAdmin, MessagePostFailed
from bot.pipeline.reply import Outcome, Reply


@dataclass(frozen=True)
class Access:
    refusal: Reply | None  # the answer instead, when the asker may not see it
    only_for_asker: bool = False  # a private channel's content asked elsewhere: answered ephemerally


async def private_channel(bot, incident: Incident) -> bool:
    """Whether the channel holding the incident's content may be private: its own channel as recorded
    when it was made (its "channel" entry), else as incidents.private_channels says now. An incident
    with no channel of its own lives in its headline's channel: the configured incidents channel is
    the operator's choice of a shared place, but a headline posted wherever /incident open was typed
    (no incidents channel configured, or its own channel could not be made) may be a private
    channel, which cannot be told from here: that counts as private, so membership decides."""
    if not incident.channel_id:
        headline = incident.headline_channel or ""
        return bool(headline) and headline != (bot.config.incidents_channel or "")
    made = await service.entry_by_key(bot.db, pinned_headline_key(incident.id))
    recorded = (made.data or {}).get("private") if made is not None else None
    return bot.config.incidents.private_channels if recorded is None else bool(recorded)


async def check(bot, incident: Incident, user_id: str, asked_in: str) -> Access:
    """May `user_id`, asking in `asked_in`, see `incident`'s timeline and postmortem?"""
    channel = channel_of(incident)
    if asked_in == channel or not await private_channel(bot, incident):
        return Access(None)
    ref = incident.ref
    try:
        messenger = messenger_for(bot, incident)
        if not isinstance(messenger, ChannelAdmin):
            return _refused(f"{ref}'s channel is private, and who is in it cannot be checked here (no Slack connection); "
                            "ask in its channel.")
        members = await messenger.members(channel)
    except MessagePostFailed as exc:
        return _refused(f"{ref}'s channel is private, and Slack did not say who is in it ({str(exc)[:40]}); nothing is shown.")
    if user_id not in members:
        return _refused(f"{ref}'s channel is private and you are not in it: only its members see its timeline and postmortem.")
    return Access(None, only_for_asker=True)


def _refused(sentence: str) -> Access:
    return Access(Reply.refusal(sentence, Outcome.denied))
