"""/oncall [rotation]: who is on call now and next; /oncall override <rotation> <@user> until <time>: a member covers.

Viewing is open to everyone. An override needs the rotation's override_roles, or else
membership of the rotation (bot/oncall/policy.py): the pipeline checks it and puts the
request on record first, as for every guarded command. It starts now, and is audited,
announced and told to those it displaces (bot/oncall/overriding.py). Times are shown and
read in the rotation's time zone.
"""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from bot.config.types import parse_duration
from bot.oncall.overriding import make_override
from bot.oncall.policy import override_permission
from bot.oncall.service import OnCall, next_on_call, on_call
from bot.oncall.views import shown_time as _time
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.markup import Mention, Text
from bot.pipeline.parse import Grammar, ParsedArgs
from bot.pipeline.parse import _show as _shown  # user input echoed back: short, printable
from bot.pipeline.reply import Header, Reply, Section
from bot.pipeline.roles import role_needed

OVERRIDE_USAGE = "/oncall override <rotation> <@user> until <time>"
GRAMMAR = Grammar(usage=f"/oncall [rotation] | {OVERRIDE_USAGE}", rest="words", max_rest=8)
MAX_OVERRIDE = dt.timedelta(days=366)

_IN_DURATION = re.compile(r"^\d+(\.\d+)?(m|h|d)$")
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}$")
_OFFSET_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$")


async def handle(inv: Invocation) -> Reply:
    words: list[str] = inv.args.positionals["words"]
    rotations = inv.ctx.config.oncall
    if not rotations:
        return Reply.refusal("No on-call rotations are configured; add them under oncall: in app.yaml.")
    if words and words[0] == "override" and not (len(words) == 1 and "override" in rotations):
        return await _override(inv, words[1:])
    if len(words) > 1:
        return Reply.refusal(f"Unexpected '{_shown(words[1])}'. Usage: {GRAMMAR.usage}")
    names = words or list(rotations)
    refusal = _unknown_rotation(inv, names[0])
    if refusal:
        return refusal
    now = inv.ctx.clock.now()
    sections, summary = [], []
    for name in names:
        zone = ZoneInfo(rotations[name].timezone)
        current = await on_call(inv.ctx.db, inv.ctx.config, name, now)
        upcoming = await next_on_call(inv.ctx.db, inv.ctx.config, name, now)
        sections.append(Section(Text(
            f"*{name}* (times in {zone.key})\n",
            "On call: ", *_who(current), f" until {_time(current.until, zone)}\n",
            "Next: ", *_who(upcoming), f" from {_time(current.until, zone)} until {_time(upcoming.until, zone)}",
        )))
        summary.append(Text(f"{name}: ", Mention(current.user)))
    return Reply(text=Text("On call: ", *_joined(summary)), blocks=[Header("On call"), *sections], ephemeral=True)


async def _override(inv: Invocation, rest: list[str]) -> Reply:
    if len(rest) < 4 or rest[2].lower() != "until":
        return Reply.refusal(f"An override names a rotation, a user and an end time. Usage: {OVERRIDE_USAGE}")
    name, who, when = rest[0], rest[1], rest[3:]
    refusal = _unknown_rotation(inv, name)
    if refusal:
        return refusal
    user = Mention(who.removeprefix("@"))  # the grammar turned <@U123|ana> into U123; a console user may type @U123
    if not user.valid:
        return Reply.refusal(
            f"'{_shown(who)}' is not a Slack user mention; mention them with @ and pick them from the list, so Slack fills in their user id."
        )
    zone = ZoneInfo(inv.ctx.config.oncall[name].timezone)
    now = inv.ctx.clock.now()
    try:
        until = parse_until(when, zone, now)
    except ValueError as exc:
        return Reply.refusal(str(exc))
    if until <= now:
        return Reply.refusal(f"{_time(until, zone)} ({zone.key}) is already past; give a later time, or a duration such as 8h.")
    if until - now > MAX_OVERRIDE:
        return Reply.refusal(f"An override can last at most {MAX_OVERRIDE.days} days; give an earlier end, such as 7d.")
    return await make_override(inv.ctx, inv.request, name, user.user_id, until)


def parse_until(words: list[str], zone: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """`8h` / `2d` from now, `YYYY-MM-DD HH:MM` in `zone` (one word or two), or ISO 8601 with an offset; UTC.

    ValueError with the sentence to answer when it is none of these.
    """
    text = " ".join(words)
    try:
        if len(words) == 1 and _IN_DURATION.match(text):
            return now + dt.timedelta(seconds=parse_duration(text))
        if len(words) <= 2 and _LOCAL_TIME.match(text):
            local = dt.datetime.fromisoformat(text).replace(tzinfo=zone, fold=0)
            return local.astimezone(dt.timezone.utc)
        if len(words) <= 2 and _OFFSET_TIME.match(text):
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        pass  # a month 13, a 25:00: the same answer as any other unreadable time
    raise ValueError(
        f"'{_shown(text)}' is not a time opsbot can read; give YYYY-MM-DD HH:MM ({zone.key} time), "
        "an ISO 8601 time with an offset such as 2026-03-02T17:00+01:00, or a duration such as 8h or 2d."
    )


def _unknown_rotation(inv: Invocation, name: str) -> Reply | None:
    if name in inv.ctx.config.oncall:
        return None
    known = ", ".join(inv.ctx.config.oncall)
    return Reply.refusal(f"There is no rotation '{_shown(name)}'; the rotations are: {known}.")


def _who(answer: OnCall) -> tuple[str | Mention, ...]:
    return (Mention(answer.user), " (override)") if answer.source == "override" else (Mention(answer.user),)


def _joined(parts: list[Text]) -> list[str | Text]:
    out: list[str | Text] = []
    for i, part in enumerate(parts):
        out += [", ", part] if i else [part]
    return out


async def may_override(bot, user_id: str, args: ParsedArgs) -> str | None:
    """The pipeline's check of /oncall override: the named rotation says who may override it. Words that
    name no rotation need a role, as before; the handler then says what is wrong with them."""
    words = args.positionals["words"]
    name = words[1] if len(words) > 1 else ""
    held = await bot.roles.roles_of(user_id)
    rotation = bot.config.oncall.get(name)
    if rotation is None:
        return role_needed(held, (ANY_ROLE,))
    return override_permission(name, rotation, user_id, held)


COMMAND = CommandSpec(
    name="oncall",
    summary="Who is on call now and next, per rotation; override sets someone to cover until a time.",
    grammar=GRAMMAR,
    handler=handle,
    public=True,  # viewing is open to everyone
    guarded=(("override", may_override),),  # checked and put on record first by the pipeline
)
