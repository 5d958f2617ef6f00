"""The Details button under a scheduled post: every reading of that run, shown to whoever pressed it."""
from __future__ import annotations

from bot.pipeline.interactions import InteractionSpec, Press
from bot.pipeline.reply import Reply
from bot.pipeline.roles import ANY_ROLE
from bot.schedules import checklist
from bot.schedules.models import ScheduleRun
from bot.schedules.readings import Item
from bot.schedules.views import DETAILS, details_reply


async def details(press: Press) -> Reply:
    value = press.click.value
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        return Reply.refusal("That button does not belong to a scheduled post opsbot knows.")
    async with press.ctx.db.sessions() as session:
        run = await session.get(ScheduleRun, int(value))
    if run is None:
        return Reply.refusal(f"Run #{value} does not exist.")
    items = [Item(**data) for data in (run.items or {}).values()]
    return details_reply(f"{run.schedule}: {run.slot:%Y-%m-%d %H:%M} UTC, {len(items)} readings", items)


async def tick(press: Press) -> Reply:
    return await checklist.tick(press.ctx, press.click.user_id, press.click.value)


TICK_BUTTON = InteractionSpec(id=checklist.TICK, summary="Tick an item of a checklist post: who and when are recorded.",
                              handler=tick, roles=(ANY_ROLE,))
DETAILS_BUTTON = InteractionSpec(id=DETAILS, summary="Show every reading of a scheduled post.", handler=details, roles=(ANY_ROLE,))
