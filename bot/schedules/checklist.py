"""The monthly checklist (runbooks 003 and 004) as a post whose items are ticked with buttons.

Each tick is a row (schedule_ticks, unique per run and item): who ticked it and when. The
post is redrawn in place after every tick; a second press on a ticked item says who did it.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.pipeline.markup import Mention, Text
from bot.pipeline.reply import Actions, Button, Context, Header, Reply, Section
from bot.schedules.models import ScheduleRun, ScheduleTick

log = logging.getLogger(__name__)
TICK = "schedule.tick"


async def ticks_of(db, run_id: int) -> dict[int, ScheduleTick]:
    async with db.sessions() as session:
        rows = (await session.execute(select(ScheduleTick).where(ScheduleTick.run_id == run_id))).scalars()
        return {row.item: row for row in rows}


def checklist_post(title: str, items: list[str], run_id: int, ticks: dict[int, ScheduleTick]) -> Reply:
    blocks: list = [Header(title)]
    for index, item in enumerate(items):
        tick = ticks.get(index)
        if tick is None:
            blocks.append(Section(f"☐ {item}"))
            blocks.append(Actions((Button("Tick", TICK, f"{run_id}:{index}"),)))
        else:
            blocks.append(Section(Text(f"☑ {item} (ticked by ", Mention(tick.user_id), f" at {tick.at:%d %b %H:%M} UTC)")))
    done = len(ticks)
    blocks.append(Context(f"{done} of {len(items)} done."))
    return Reply(text=f"{title}: {done} of {len(items)} done.", blocks=blocks)


async def tick(bot, user: str, value: str) -> Reply:
    """A Tick press: `value` is "<run id>:<item index>"."""
    run_text, _, item_text = value.partition(":")
    if not (run_text.isdigit() and item_text.isdigit() and len(run_text) <= 9 and len(item_text) <= 3):
        return Reply.refusal("That button does not belong to a checklist opsbot knows.")
    async with bot.db.sessions() as session:
        run = await session.get(ScheduleRun, int(run_text))
    schedule = bot.config.schedules.get(run.schedule) if run else None
    index = int(item_text)
    if run is None or schedule is None or index >= len(schedule.checklist):
        return Reply.refusal("That checklist item no longer exists in app.yaml.")
    item = schedule.checklist[index]
    try:
        async with bot.db.sessions() as session, session.begin():
            session.add(ScheduleTick(run_id=run.id, item=index, user_id=user, at=bot.clock.now()))
    except IntegrityError:
        done = (await ticks_of(bot.db, run.id))[index]
        return Reply.refusal(Text(f"'{item}' was already ticked by ", Mention(done.user_id), f" at {done.at:%d %b %H:%M} UTC."))
    from bot.schedules.runner import messenger

    poster = messenger(bot)
    if poster is not None and run.message_ref:
        try:
            await poster.update(run.message_ref, checklist_post(run.headline, schedule.checklist, run.id, await ticks_of(bot.db, run.id)))
        except Exception as exc:  # the tick is recorded either way
            log.warning("could not redraw checklist run #%s: %s", run.id, exc)
    return Reply(text=f"Ticked: {item}.", ephemeral=True)
