"""/maintenance: maintenance windows (runbook 001 "Scheduled Maintenance").

    /maintenance start 2h [service ...] "reason"                  now until now + 2h
    /maintenance schedule 2026-11-25T22:00 2h [service ...] "reason"   ahead; announced 48 h before
    /maintenance end [ID]                                         the active one, or that one
    /maintenance list                                             active and upcoming

No service named: every service. The length is a duration (2h, 90m) or the end time, at most
maintenance.max_duration (4 h), and so are windows on one service less than an hour apart. Times
are read in calendar.timezone, or as ISO 8601 with an offset. The reason is required, in quotes,
at most 200 characters, and stored redacted. Any role may run it (the pipeline checks that and
puts every call on record first); opening or ending a window needs a role owning each of its
services, or one of maintenance.all_services_roles for every service (bot.maintenance.scope).
"""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from bot.config.types import parse_duration
from bot.maintenance import scope, service, views
from bot.maintenance.scheduled import channel_of
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, split_words
from bot.pipeline.parse import _show as _shown  # user input echoed back: short, printable
from bot.pipeline.reply import Outcome, Reply
from bot.redaction import redact, redact_cut

USAGE = ('/maintenance start <duration> [service ...] "reason" | schedule <YYYY-MM-DDTHH:MM> <duration|end> [service ...] "reason" | '
         "end [ID] | list")
GRAMMAR = Grammar(usage=USAGE, free_text=True)
MAX_AHEAD = dt.timedelta(days=366)
MAX_REASON = 200
EXAMPLE = '/maintenance start 2h backend "database upgrade"'

_DURATION = re.compile(r"^\d+(\.\d+)?(s|m|h|d)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^\d{2}:\d{2}$")
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}$")
_OFFSET_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})$")
_ID = re.compile(r"^#?(\d{1,9})$")


class Refused(ValueError):
    """The sentence to answer with."""

    outcome = Outcome.usage_error


class Denied(Refused):
    """Not this user's to do (scope.py): the sentence says whose it is."""

    outcome = Outcome.denied


async def handle(inv: Invocation) -> Reply:
    text = inv.args.positionals["text"]
    parts = text.split(None, 1)
    sub, rest = (parts[0].lower(), parts[1] if len(parts) > 1 else "") if parts else ("", "")
    try:
        if sub in ("start", "schedule"):
            return await _create(inv, rest, ahead=sub == "schedule")
        if sub == "end":
            return await _end(inv, rest)
        if sub == "list" and not rest.strip():
            now = inv.ctx.clock.now()
            return views.listing(await service.active(inv.ctx.db, now), await service.upcoming(inv.ctx.db, now), inv.ctx.config, now)
    except Refused as exc:
        return Reply.refusal(str(exc), exc.outcome)
    return Reply.refusal(f"Usage: {USAGE}")


async def _create(inv: Invocation, rest: str, *, ahead: bool) -> Reply:
    bot, now = inv.ctx, inv.ctx.clock.now()
    before, reason = split_reason(rest)
    reason = _reason(reason)
    try:
        words = split_words(before)
    except ValueError:
        raise Refused(f"A quote is not closed. Usage: {USAGE}") from None
    zone = ZoneInfo(bot.config.calendar.timezone)
    if ahead:
        if not words:
            raise Refused(f'When does it start? e.g. /maintenance schedule 2026-11-25T22:00 2h backend "database upgrade" '
                          f"({zone.key} time).")
        starts_at, words = _time_words(words, zone)
        if starts_at < now:
            raise Refused(f"{views.time_of(starts_at, bot.config)} is already past; give a later start, or use /maintenance start.")
        if starts_at - now > MAX_AHEAD:
            raise Refused("A maintenance window can be scheduled at most a year ahead.")
    else:
        starts_at = now
    if not words:
        raise Refused(f"How long? Give a duration such as 2h, or the end time, e.g. {EXAMPLE}.")
    ends_at, services = _end_of(words[0], words[1:], starts_at, zone), words[1:]
    if ends_at <= starts_at:
        raise Refused(f"That window ends ({views.time_of(ends_at, bot.config)}) before it starts "
                      f"({views.time_of(starts_at, bot.config)}); give a later end or a duration such as 2h.")
    services = _services(bot.config, services)
    denied = await scope.refusal(bot.roles, bot.config, services, inv.request.user_id, "open")
    if denied:
        raise Denied(denied)
    longest = dt.timedelta(seconds=bot.config.maintenance.max_duration)
    if ends_at - starts_at > longest:
        raise Refused(f"A maintenance window can last at most {views.length(longest)} (maintenance.max_duration); give a shorter one.")
    try:
        window = await service.create(bot, services, reason, starts_at, ends_at, inv.request.user_id)
    except service.TooLong as exc:
        raise Refused(views.too_long(exc.chain, longest, bot.config, now)) from None
    announce_before = dt.timedelta(seconds=bot.config.maintenance.announce_before)
    announce_at = max(now, starts_at - announce_before) if starts_at > now else None
    return views.created(window, bot.config, now, announce_at=announce_at, channel=channel_of(bot.config))


async def _end(inv: Invocation, rest: str) -> Reply:
    bot, now = inv.ctx, inv.ctx.clock.now()
    words = rest.split()
    if len(words) > 1:
        raise Refused("Usage: /maintenance end [ID]")
    if words:
        match = _ID.match(words[0])
        if not match:
            raise Refused(f"'{_shown(words[0])}' is not a window number; /maintenance list shows them.")
        window = await service.get(bot.db, int(match.group(1)))
        if window is None:
            raise Refused(f"There is no maintenance window #{int(match.group(1))}; /maintenance list shows them.")
    else:
        windows = await service.active(bot.db, now)
        if not windows:
            raise Refused("No maintenance window is active; /maintenance end <ID> cancels an upcoming one (/maintenance list).")
        if len(windows) > 1:
            numbers = ", ".join(f"#{w.id}" for w in sorted(windows, key=lambda w: w.id))
            raise Refused(f"Several windows are active ({numbers}); say which, e.g. /maintenance end {windows[0].id}.")
        window = windows[0]
    denied = await scope.refusal(bot.roles, bot.config, window.services, inv.request.user_id, "end")
    if denied:
        raise Denied(denied)
    ended = await service.end(bot, window, inv.request.user_id)
    if ended is None:
        raise Refused(f"Maintenance window #{window.id} is already over.")
    return views.ended(ended, bot.config, now)


def split_reason(text: str) -> tuple[str, str | None]:
    """(what comes before, the reason): the reason is the quoted text at the very end, None when there is none."""
    text = text.rstrip()
    if not text or text[-1] not in "\"'":
        return text, None
    quote = text[-1]
    for i, ch in enumerate(text):
        if ch == quote and (i == 0 or text[i - 1].isspace()):
            try:
                words = split_words(text[i:])
            except ValueError:
                continue
            if len(words) == 1:
                return text[:i], words[0]
    return text, None


def _reason(reason: str | None) -> str:
    if reason is None or not reason.strip():
        raise Refused(f"A reason is required, in quotes, e.g. {EXAMPLE}.")
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise Refused(f"The reason is {len(reason)} characters; keep it to {MAX_REASON}.")
    reason = redact(reason)
    return reason if len(reason) <= MAX_REASON else redact_cut(reason, MAX_REASON)


def _services(config, names: list[str]) -> list[str]:
    for name in names:
        if name not in config.services:
            known = ", ".join(config.services) or "none are configured"
            raise Refused(f"There is no service '{_shown(name)}' in app.yaml; the services are: {known}.")
    return list(dict.fromkeys(names))


def _time_words(words: list[str], zone: ZoneInfo) -> tuple[dt.datetime, list[str]]:
    """A start time of one word (2026-11-25T22:00) or two (2026-11-25 22:00), and the words after it."""
    if len(words) > 1 and _DATE.match(words[0]) and _CLOCK.match(words[1]):
        return parse_time(f"{words[0]} {words[1]}", zone), words[2:]
    return parse_time(words[0], zone), words[1:]


def parse_time(text: str, zone: ZoneInfo) -> dt.datetime:
    """YYYY-MM-DD[T| ]HH:MM in `zone`, or ISO 8601 with an offset; UTC."""
    try:
        if _LOCAL_TIME.match(text):
            return dt.datetime.fromisoformat(text).replace(tzinfo=zone, fold=0).astimezone(dt.timezone.utc)
        if _OFFSET_TIME.match(text):
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        pass  # a month 13, a 25:00: the same answer as any other unreadable time
    raise Refused(f"'{_shown(text)}' is not a time opsbot can read; give YYYY-MM-DDTHH:MM ({zone.key} time) "
                  "or an ISO 8601 time with an offset such as 2026-11-25T22:00+01:00.")


def _end_of(word: str, rest: list[str], starts_at: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The end: a duration after `starts_at`, or a time."""
    if _DURATION.match(word):
        try:
            return starts_at + dt.timedelta(seconds=parse_duration(word))
        except (ValueError, OverflowError) as exc:
            raise Refused(f"'{_shown(word)}': {exc}; give a duration such as 2h.") from None
    if _LOCAL_TIME.match(word) or _OFFSET_TIME.match(word) or _DATE.match(word):
        if _DATE.match(word) and rest and _CLOCK.match(rest[0]):
            raise Refused("Write the end time as one word, 2026-11-25T23:00, or give a duration such as 2h.")
        return parse_time(word, zone)
    raise Refused(f"'{_shown(word)}' is neither a duration (2h, 90m, 1d) nor an end time (2026-11-25T23:00); e.g. {EXAMPLE}.")


COMMAND = CommandSpec(
    name="maintenance",
    summary="Maintenance windows: start one now, schedule one ahead (announced), end one, list them.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),
)
