"""One run of a schedule at one slot: read, compare with the previous run, post, open or clear incidents.

The run's row is unique per schedule and slot, inserted before anything is read: a second
replica, or a second delivery of the same job, finds it and does nothing.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, false, literal, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from bot.pipeline.reply import Reply
from bot.schedules import readings
from bot.schedules.incidents import reconcile
from bot.schedules.models import SchedulePause, ScheduleRun
from bot.schedules.views import compare, daily_post

log = logging.getLogger(__name__)

STALE_RUN = timedelta(minutes=15)  # longer than the run job's lease
# Backups and the weekly restore test run for as long as a dump does (their job's lease is 8 h): a
# run of theirs left 'running' is in progress for that long, the others' for STALE_RUN.
LONG_RUNS = ("backup", "weekly_check")
LONG_HOLD = timedelta(hours=8)
TITLES = {"daily_check": "Daily check", "health": "Scheduled health check", "backup": "Scheduled backup",
          "monthly_checklist": "Monthly checklist", "weekly_check": "Weekly check"}


def channel_of(bot, schedule) -> str:
    return schedule.channel or bot.config.slack.ops_channel or ""


def messenger(bot):
    """Slack when this process runs it, else the console: a schedule posts where the bot is."""
    return bot.messengers.get("slack") or bot.messengers.get("console")


async def paused(db, name: str) -> SchedulePause | None:
    async with db.sessions() as session:
        return await session.get(SchedulePause, name)


async def previous_run(db, name: str, before: datetime) -> ScheduleRun | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(ScheduleRun)
            .where(ScheduleRun.schedule == name, ScheduleRun.slot < before, ScheduleRun.state == "posted")
            .order_by(ScheduleRun.slot.desc())
            .limit(1)
        )


class AlreadyRunning(Exception):
    """A run by hand was asked for while a run of the same schedule is in progress."""

    def __init__(self, since: datetime):
        super().__init__(f"a run is in progress since {since.isoformat()}")
        self.since = since


def in_progress_for(schedule) -> timedelta:
    """How long a run left 'running' counts as in progress (past that, its replica died)."""
    return LONG_HOLD if schedule.run in LONG_RUNS else STALE_RUN


async def _one_claim_at_a_time(session, name: str) -> None:
    """A claim looks for a running run and inserts its own under this lock, held until commit: two
    claims at once (a cron slot and a run by hand, two runs by hand) must not both see none."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"schedule_runs:{name}"})
    else:  # SQLite: any write takes the database's one write lock, held until commit
        await session.execute(update(ScheduleRun).where(false()).values(state=ScheduleRun.state))


async def claim(db, name: str, slot: datetime, *, late: bool, trigger: str, now: datetime, takeover: bool = False,
                alone_within: timedelta | None = None) -> ScheduleRun | None:
    """The run's row, or None when this slot already has one (another replica, a repeated delivery).

    `takeover`: the scheduler delivers this slot's job again because its holder died or stopped
    (only one holder at a time, by the job's claim): a row it left 'running' is taken over at once.
    `alone_within` (a run by hand): AlreadyRunning, with nothing stored, when a run of the schedule
    started within that long is still running."""
    run = ScheduleRun(schedule=name, slot=slot, late=late, trigger=trigger, state="running", started_at=now, items={}, headline="")
    try:
        async with db.sessions() as session, session.begin():
            await _one_claim_at_a_time(session, name)
            if alone_within is not None:
                since = await session.scalar(
                    select(ScheduleRun.started_at)
                    .where(ScheduleRun.schedule == name, ScheduleRun.slot != slot, ScheduleRun.state == "running",
                           ScheduleRun.started_at > now - alone_within)
                    .order_by(ScheduleRun.started_at).limit(1)
                )
                if since is not None:
                    raise AlreadyRunning(since)
            session.add(run)
            await session.flush()
            return run
    except IntegrityError:
        pass
    # A run left 'running' by a replica that died is taken over (the scheduler re-delivers its job after
    # the lease); a finished one, or one still within its lease, is left alone.
    async with db.sessions() as session, session.begin():
        taken = await session.execute(
            update(ScheduleRun)
            .where(ScheduleRun.schedule == name, ScheduleRun.slot == slot, ScheduleRun.state == "running",
                   or_(ScheduleRun.started_at < now - STALE_RUN, literal(takeover)))
            .values(started_at=now, late=True)
        )
        if taken.rowcount != 1:
            return None
        return await session.scalar(select(ScheduleRun).where(ScheduleRun.schedule == name, ScheduleRun.slot == slot))


async def _finish(db, run_id: int, now: datetime, **values) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(ScheduleRun).where(ScheduleRun.id == run_id).values(finished_at=now, **values))


async def _in_maintenance(bot, items: list, now: datetime) -> None:
    """Readings of services in a maintenance window are marked so, not red (and open nothing)."""
    from bot.maintenance.service import window_for

    for item in items:
        if item.service and item.status in ("warning", "critical") and await window_for(bot.db, item.service, now):
            item.status = "maintenance"
            item.detail += " (in a maintenance window)"


async def _read(bot, name: str, schedule, previous: ScheduleRun | None, now: datetime) -> list:
    services = list(schedule.services) or list(bot.config.services)
    if schedule.run == "health":
        return await readings.check_items(bot, services)
    if schedule.run == "backup":
        return await _backups(bot, name, schedule)
    if schedule.run == "weekly_check":
        from bot.schedules.weekly import weekly_items

        return await weekly_items(bot, previous=previous.items if previous else {})
    since = previous.started_at if previous else now - timedelta(days=1)
    return await readings.daily_items(bot, services=services, previous=previous.items if previous else {}, since=since, now=now)


async def _backups(bot, name: str, schedule) -> list:
    from bot.backup.dump import BackupError
    from bot.backup.service import apply_retention, make_backup

    items = []
    for database in [schedule.database] if schedule.database else list(bot.config.databases):
        key = f"backup:{database}"
        try:
            made = await make_backup(bot, database, made_by=f"schedule:{name}", label=f"{name} schedule")
        except BackupError as exc:
            items.append(readings.Item(key, f"backup of {database}", "critical", f"failed: {exc}"))
            continue
        if not made.verified:
            items.append(readings.Item(key, f"backup of {database}", "critical", f"#{made.id} failed verification: {made.verify_error}"))
            continue
        pruned = await apply_retention(bot, database)  # the one retention decision, as /backup retention and the kind use
        detail = f"#{made.id} {made.file_name}, {made.size / 1048576:.1f} MiB in {made.duration:.1f} s, verified; retention deleted {len(pruned.delete)}"
        if pruned.unseen:
            detail += f", left {len(pruned.unseen)} whose file this replica cannot see"
        items.append(readings.Item(key, f"backup of {database}", "ok", detail, None, float(made.size)))
    return items


async def run_slot(bot, name: str, slot: datetime, *, late: bool, trigger: str = "cron", takeover: bool = False,
                   by_hand: bool = False) -> ScheduleRun | None:
    """Run `name` for `slot` once: None when another replica (or an earlier delivery) has this slot.
    `by_hand`: AlreadyRunning while another run of `name` is in progress; a cron slot meeting such a
    run is recorded as skipped, so a manual backup and the nightly one never run side by side."""
    schedule = bot.config.schedules.get(name)
    now = bot.clock.now()
    if schedule is None:
        return None
    try:
        run = await claim(bot.db, name, slot, late=late, trigger=trigger, now=now, takeover=takeover,
                          alone_within=in_progress_for(schedule))
    except AlreadyRunning:
        if by_hand:
            raise
        # A run by hand is still at it (a backup, say): the slot does not start a second one beside it.
        await _skipped(bot.db, name, slot, late, trigger, now, "skipped: a run started by hand was still in progress")
        return None
    if run is None:
        return None
    try:
        return await _run(bot, name, schedule, run, slot, late, trigger, now)
    except asyncio.CancelledError:
        # A stop: the scheduler hands the job back, and its next delivery must find the slot free.
        await asyncio.shield(_forget(bot.db, run.id))
        raise
    except Exception as exc:  # a bug, a dead part: the row must not stay 'running' unsaid
        log.exception("schedule %s failed at %s", name, slot)
        await _say_failed(bot, name, schedule, run, slot, exc)
        raise


async def _skipped(db, name: str, slot: datetime, late: bool, trigger: str, now: datetime, headline: str) -> None:
    try:
        async with db.sessions() as session, session.begin():
            session.add(ScheduleRun(schedule=name, slot=slot, late=late, trigger=trigger, state="skipped", started_at=now,
                                    finished_at=now, items={}, headline=headline))
    except IntegrityError:
        pass  # the slot is on record already (another replica, a repeated delivery)


async def _forget(db, run_id: int) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(delete(ScheduleRun).where(ScheduleRun.id == run_id, ScheduleRun.state == "running"))


async def _say_failed(bot, name: str, schedule, run: ScheduleRun, slot: datetime, exc: BaseException) -> None:
    """One sentence in the schedule's channel: a scheduled check or backup that fails must not be silent."""
    sentence = f"{_title(schedule, name, slot)} failed: opsbot could not finish it ({exc.__class__.__name__}); see its logs."
    try:
        poster, channel = messenger(bot), channel_of(bot, schedule)
        ref = await asyncio.shield(poster.post(channel, Reply(text=sentence))) if poster is not None and channel else None
        await asyncio.shield(_finish(bot.db, run.id, bot.clock.now(), state="failed", headline=sentence[:500], message_ref=ref))
    except Exception:  # the database or chat is what failed: the log line above is what is left
        log.error("schedule %s: could not record its failure either", name)


async def _run(bot, name: str, schedule, run: ScheduleRun, slot: datetime, late: bool, trigger: str, now: datetime) -> ScheduleRun:
    if trigger == "cron" and await paused(bot.db, name):
        await _finish(bot.db, run.id, now, state="skipped", headline="paused")
        return run
    previous = await previous_run(bot.db, name, slot)
    if schedule.run == "monthly_checklist":
        return await _post_checklist(bot, name, schedule, run, slot, late)
    items = await _read(bot, name, schedule, previous, now)
    await _in_maintenance(bot, items, now)
    channel = channel_of(bot, schedule)
    poster = messenger(bot)
    transport = "slack" if poster is bot.messengers.get("slack") else "console"
    notes: list[str] = []
    if schedule.open_incident:
        try:
            notes = await reconcile(bot, name, schedule, items, channel, transport)
        except Exception as exc:  # the post still goes out, and says so
            log.exception("schedule %s could not open or clear incidents", name)
            notes = [f"incidents could not be opened or cleared ({exc.__class__.__name__})"]
    title = _title(schedule, name, slot)
    late_sentence = f"Late: this slot was missed while opsbot was down and ran at {now:%H:%M} UTC." if late else ""
    reply = daily_post(title, items, compare(items, previous.items if previous else {}), run.id, late=late_sentence, first=previous is None)
    if notes:
        reply = _with_notes(reply, notes)
    ref = None
    if poster is not None and channel:
        try:
            ref = await poster.post(channel, reply)
        except Exception as exc:
            log.error("schedule %s could not post in %s: %s", name, channel, exc)
    state = "posted" if ref else "failed"
    await _finish(bot.db, run.id, bot.clock.now(), state=state, items={i.key: i.as_dict() for i in items},
                  headline=reply.text.splitlines()[0][:500], message_ref=ref)
    return run


def _title(schedule, name: str, slot: datetime) -> str:
    when = slot.astimezone(_zone(schedule)).strftime("%a %d %b %H:%M %Z")
    return f"{TITLES.get(schedule.run, schedule.run)} ({name}, {when})"


async def _post_checklist(bot, name: str, schedule, run: ScheduleRun, slot: datetime, late: bool) -> ScheduleRun:
    from bot.schedules.checklist import checklist_post

    title = _title(schedule, name, slot)
    reply = checklist_post(title, schedule.checklist, run.id, {})
    ref = None
    poster, channel = messenger(bot), channel_of(bot, schedule)
    if poster is not None and channel:
        try:
            ref = await poster.post(channel, reply)
        except Exception as exc:
            log.error("schedule %s could not post in %s: %s", name, channel, exc)
    await _finish(bot.db, run.id, bot.clock.now(), state="posted" if ref else "failed", headline=title, message_ref=ref)
    return run


def _with_notes(reply: Reply, notes: list[str]) -> Reply:
    from bot.pipeline.reply import Section

    sentence = "Incidents: " + "; ".join(notes) + "."
    reply.blocks.insert(max(0, len(reply.blocks) - 1), Section(sentence))
    reply.text += "\n" + sentence
    return reply


def _zone(schedule):
    from zoneinfo import ZoneInfo

    return ZoneInfo(schedule.timezone)
