"""Making an override: check who covers, write the row, put it on the audit log, tell everyone concerned.

Who may make it is checked before this runs, by the pipeline (commands/oncall.py declares
override_permission). The override starts now; the people it displaces are those who
would have been on call at some moment until its end, each told in a direct message
(Slack: conversations.open, then chat.postMessage). The announcement goes to the ops
channel (slack.ops_channel) unless the command was typed there; the answer to the command
is the same sentence, in the channel it was typed in.
"""
from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from bot.audit import service as audit
from bot.oncall import views
from bot.oncall.policy import cover_refusal
from bot.oncall.rotation import Shift
from bot.oncall.service import add_override, on_call_between
from bot.pipeline.markup import Mention, Text
from bot.pipeline.messenger import MessagePostFailed, UserDirectory
from bot.pipeline.reply import Context, Reply
from bot.pipeline.request import Request

log = logging.getLogger(__name__)


async def make_override(bot, request: Request, name: str, user_id: str, until: dt.datetime) -> Reply:
    rotation = bot.config.oncall[name]
    messenger = bot.messengers.get(request.transport)
    refusal = await cover_refusal(name, rotation, user_id, messenger if isinstance(messenger, UserDirectory) else None)
    if refusal:
        return Reply.refusal(refusal)
    now = bot.clock.now()
    before = await on_call_between(bot.db, bot.config, name, now, until)
    row = await add_override(bot.db, name, user_id, now, until, request.user_id, now)
    displaced = _displaced(before, user_id)
    await audit.record(
        bot.db,
        user_id=request.user_id,
        command="oncall",
        arguments=f"override {name} {user_id} until {row.ends_at.isoformat()}",
        channel=request.channel_id,
        transport=request.transport,
        outcome="overridden",
        detail=f"override #{row.id}: {user_id} on call for {name} until {row.ends_at.isoformat()}, "
        f"instead of {', '.join(displaced) or 'nobody else'}",
        target=name,
    )
    zone = ZoneInfo(rotation.timezone)
    reply = views.announcement(row, zone, list(displaced))
    notes = await _announce(bot, messenger, request, reply)
    for person, pieces in displaced.items():
        notes += await _tell(messenger, person, views.displaced_notice(row, zone, pieces))
    reply.blocks.extend(Context(note) for note in notes)
    return reply


def _displaced(pieces: list[Shift], covering: str) -> dict[str, list[Shift]]:
    """Everyone but the covering user who would have been on call, with when, in order of first shift."""
    found: dict[str, list[Shift]] = {}
    for piece in pieces:
        if piece.user != covering:
            found.setdefault(piece.user, []).append(piece)
    return found


async def _announce(bot, messenger, request: Request, reply: Reply) -> list[Text | str]:
    channel = bot.config.slack.ops_channel
    if messenger is None or not channel or channel == request.channel_id:
        return []  # the answer, in the channel it was asked in, is the announcement
    try:
        await messenger.post(channel, reply)
    except MessagePostFailed as exc:
        log.warning("override not announced in the ops channel: %s", str(exc)[:64])
        return [f"Not announced in the ops channel: Slack answered {str(exc)[:64]}."]
    return []


async def _tell(messenger, user_id: str, notice: Reply) -> list[Text | str]:
    if messenger is None:
        return [Text(Mention(user_id), " was not told directly: no transport is running to send it.")]
    try:
        await messenger.direct(user_id, notice)
    except MessagePostFailed as exc:
        log.warning("a displaced on-call was not told directly: %s", str(exc)[:64])
        return [Text(Mention(user_id), f" was not told directly: Slack answered {str(exc)[:64]}.")]
    return []
