"""/schedule list | run NAME | pause NAME | resume NAME: the posts that arrive on their own (schedules: in app.yaml)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.markup import Mention, Text
from bot.pipeline.parse import Grammar, ParsedArgs
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply
from bot.schedule.cron import next_slot, previous_slot
from bot.schedules.models import SchedulePause, ScheduleRun
from bot.schedules.run_policy import run_permission
from bot.schedules.runner import AlreadyRunning, paused, run_slot

GRAMMAR = Grammar(usage="/schedule [list] | run NAME | pause NAME | resume NAME", rest="words", max_rest=2)
GUARDED = ("run", "pause", "resume")


async def _run_permission(bot, user_id: str, args: ParsedArgs) -> str | None:
    """/schedule run NAME needs what the schedule's work needs by hand (bot/schedules/run_policy.py).
    An unknown name passes here: the handler says which names there are."""
    words = args.positionals["words"]
    schedule = bot.config.schedules.get(words[1]) if len(words) > 1 else None
    held = await bot.roles.roles_of(user_id)
    if schedule is None:
        return None if held else "a role"
    return run_permission(bot.config, schedule, held)


def _when(dt, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return dt.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M %Z") if dt else "never"


async def _last(db, name: str, zone: str) -> str:
    """The newest run, cron or by hand, with how it ended when that was not a post."""
    async with db.sessions() as session:
        run = await session.scalar(
            select(ScheduleRun).where(ScheduleRun.schedule == name).order_by(ScheduleRun.started_at.desc(), ScheduleRun.id.desc()).limit(1)
        )
    if run is None:
        return "never"
    how = "" if run.state == "posted" else f" ({run.state})"
    return f"{_when(run.started_at, zone)}{how}"


async def _listing(bot) -> Reply:
    schedules = bot.config.schedules
    if not schedules:
        return Reply(text="app.yaml declares no schedules.")
    lines = []
    now = bot.clock.now()
    for name, schedule in sorted(schedules.items()):
        state = await paused(bot.db, name)
        upcoming = "paused" if state else _when(next_slot(schedule.cron, schedule.timezone, now), schedule.timezone)
        last = await _last(bot.db, name, schedule.timezone)
        lines.append(f"{name:<16} {schedule.run:<18} '{schedule.cron}' {schedule.timezone}  next: {upcoming}  last: {last}")
    text = "\n".join(lines)
    return Reply(text=text, blocks=[Header("Schedules"), Preformatted(text), Context("/schedule run NAME posts one now.")])


async def handle(inv: Invocation) -> Reply:
    bot, words = inv.ctx, inv.args.positionals["words"]
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
        # Never on a whole minute: a cron slot is one, and its run must stay its own.
        slot = now if now.microsecond else now + timedelta(microseconds=1)
        try:
            run = await run_slot(bot, name, slot, late=False, trigger=user, by_hand=True)
        except AlreadyRunning as running:
            since = _when(running.since, bot.config.schedules[name].timezone)
            return Reply.refusal(f"{name} is already running (since {since}); try again once it has posted.")
        if run is None:
            return Reply.refusal(f"{name} is already running at this instant; try again.")
        async with bot.db.sessions() as session:
            state = (await session.get(ScheduleRun, run.id)).state
        if state != "posted":
            return Reply.refusal(f"Ran {name} now (run #{run.id}), but its post could not be made ({state}); see the logs.", Outcome.error)
        return Reply(text=f"Ran {name} now (run #{run.id}); the post is in its channel.", ephemeral=True)
    if verb == "pause":
        async with bot.db.sessions() as session, session.begin():
            if await session.get(SchedulePause, name) is None:
                session.add(SchedulePause(schedule=name, paused_by=user, paused_at=now))
        return Reply(text=Text(f"{name} is paused: its slots post nothing until ", Mention(user), " or anyone who may run it resumes it."))
    schedule = bot.config.schedules[name]
    passed = previous_slot(schedule.cron, schedule.timezone, now)
    async with bot.db.sessions() as session, session.begin():
        removed = await session.execute(delete(SchedulePause).where(SchedulePause.schedule == name))
        if removed.rowcount and passed is not None and await session.get(SchedulePause, name) is None:
            # The slot that passed while paused is on record as skipped, so it is not posted late now.
            exists = await session.scalar(select(ScheduleRun.id).where(ScheduleRun.schedule == name, ScheduleRun.slot == passed))
            if exists is None:
                session.add(ScheduleRun(schedule=name, slot=passed, late=False, trigger="cron", state="skipped", started_at=now,
                                        finished_at=now, items={}, headline="paused"))
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
    # Pausing the nightly backup is as much a power over it as running it: the same permission.
    guarded=(("run", _run_permission), ("pause", _run_permission), ("resume", _run_permission)),
)
