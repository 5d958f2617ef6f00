"""/schedule list | run NAME | pause NAME | resume NAME: the posts that arrive on their own (schedules: in app.yaml)."""
from __future__ import annotations

from sqlalchemy import delete

from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.markup import Mention, Text
from bot.pipeline.parse import Grammar
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply
from bot.schedule.cron import next_slot
from bot.schedules.models import SchedulePause
from bot.schedules.runner import paused, run_slot
from bot.schedules.scheduled import last_slot_run

GRAMMAR = Grammar(usage="/schedule [list] | run NAME | pause NAME | resume NAME", rest="words", max_rest=2)
GUARDED = ("run", "pause", "resume")


def _when(dt, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return dt.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M %Z") if dt else "never"


async def _listing(bot) -> Reply:
    schedules = bot.config.schedules
    if not schedules:
        return Reply(text="app.yaml declares no schedules.")
    lines = []
    now = bot.clock.now()
    for name, schedule in sorted(schedules.items()):
        state = await paused(bot.db, name)
        upcoming = "paused" if state else _when(next_slot(schedule.cron, schedule.timezone, now), schedule.timezone)
        last = _when(await last_slot_run(bot.db, name), schedule.timezone)
        lines.append(f"{name:<16} {schedule.run:<18} '{schedule.cron}' {schedule.timezone}  next: {upcoming}  last: {last}")
    text = "\n".join(lines)
    return Reply(text=text, blocks=[Header("Schedules"), Preformatted(text), Context("/schedule run NAME posts one now.")])


async def handle(inv: Invocation) -> Reply:
    bot, words = inv.bot, inv.args.positionals["words"]
    if not words or words[0].lower() == "list":
        if len(words) > 1:
            return Reply.refusal(f"/schedule list takes no name. Usage: {GRAMMAR.usage}")
        return await _listing(bot)
    verb = words[0].lower()
    if verb not in GUARDED:
        return Reply.refusal(f"Unknown subcommand '{words[0][:20]}'. Usage: {GRAMMAR.usage}")
    if len(words) < 2:
        return Reply.refusal(f"/schedule {verb} needs a schedule name. Usage: {GRAMMAR.usage}")
    name = words[1]
    if name not in bot.config.schedules:
        known = ", ".join(sorted(bot.config.schedules)) or "none are declared"
        return Reply.refusal(f"Unknown schedule '{name[:40]}'. Schedules: {known}.")
    user, now = inv.request.user_id, bot.clock.now()
    if verb == "run":
        run = await run_slot(bot, name, now.replace(microsecond=0), late=False, trigger=user)
        if run is None:
            return Reply.refusal(f"{name} is already running for this second; try again.")
        return Reply(text=f"Ran {name} now (run #{run.id}); the post is in its channel.", ephemeral=True)
    if verb == "pause":
        async with bot.db.sessions() as session, session.begin():
            if await session.get(SchedulePause, name) is None:
                session.add(SchedulePause(schedule=name, paused_by=user, paused_at=now))
        return Reply(text=Text(f"{name} is paused: its slots post nothing until ", Mention(user), " or anyone holding a role resumes it."))
    async with bot.db.sessions() as session, session.begin():
        removed = await session.execute(delete(SchedulePause).where(SchedulePause.schedule == name))
    if removed.rowcount == 0:
        return Reply.refusal(f"{name} is not paused.", Outcome.usage_error)
    upcoming = next_slot(bot.config.schedules[name].cron, bot.config.schedules[name].timezone, now)
    return Reply(text=f"{name} is running again; next post {_when(upcoming, bot.config.schedules[name].timezone)}.")


COMMAND = CommandSpec(
    name="schedule",
    summary="Scheduled posts: list them with their next and last run; run one now, pause or resume one (a role).",
    grammar=GRAMMAR,
    handler=handle,
    public=True,  # the list is open to everyone
    guarded=tuple((verb, (ANY_ROLE,)) for verb in GUARDED),
)
