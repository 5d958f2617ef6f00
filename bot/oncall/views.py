"""How an override is told: to the channel and the ops channel, and to each person it displaces."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.oncall.models import OncallOverride
from bot.oncall.rotation import Shift
from bot.pipeline.markup import Mention, Text
from bot.pipeline.reply import Reply, Section


def shown_time(at: dt.datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def announcement(row: OncallOverride, zone: ZoneInfo, displaced: list[str]) -> Reply:
    """'@UZED is on call for primary until ... (Europe/Berlin), instead of @UCAL; set by @UOPS1.'"""
    instead = _joined([Mention(user) for user in displaced]) if displaced else ["the rotation"]
    sentence = Text(
        Mention(row.user_id), f" is on call for {row.rotation} until {shown_time(row.ends_at, zone)} ({zone.key}), instead of ",
        *instead, "; set by ", Mention(row.created_by), ".",
    )
    return Reply(text=sentence, blocks=[Section(sentence)])


def displaced_notice(row: OncallOverride, zone: ZoneInfo, pieces: list[Shift]) -> Reply:
    """The direct message to someone the override takes off call, for the time it does."""
    spans = _joined([f"from {shown_time(piece.starts, zone)} until {shown_time(piece.ends, zone)}" for piece in pieces])
    sentence = Text(
        f"You are off call for {row.rotation}: ", Mention(row.user_id), " covers it instead of you ", *spans,
        f" ({zone.key}); set by ", Mention(row.created_by), ".",
    )
    return Reply(text=sentence, blocks=[Section(sentence)])


def _joined(parts: list) -> list:
    out: list = []
    for i, part in enumerate(parts):
        out += [" and " if i == len(parts) - 1 else ", ", part] if i else [part]
    return out
