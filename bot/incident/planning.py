"""When an incident's escalation chain pages whom: the plan, written as scheduled jobs.

On open (and on a severity change, an escalation or a reopen) the whole chain is planned
from "now": one job per (incident, plan, level, repeat), keyed so that any number of
replicas enqueue and run it once (bot/schedule), in the transaction of the change that asks
for it. Acknowledging or resolving cancels the plan's pending jobs in theirs. Sending the
pages is escalation.py's.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.incident_models import NEXT_BUSINESS_DAY, Severity
from bot.config.models import AppConfig
from bot.incident.models import Incident
from bot.schedule import service as jobs
from bot.schedule.business_hours import add_business_time, next_business_day

PING = "incident.ping"
REMIND = "incident.remind"


def severity_rank(config: AppConfig, severity: str) -> int:
    """Where the severity stands in app.yaml's list: the first (P0) is the most urgent, 0. Pages carry
    it, so a backlog is claimed (and a busy channel is posted to) most urgent first."""
    found = config.severity(severity)
    return list(config.severities).index(found[0]) if found else len(config.severities)


@dataclass(frozen=True)
class PlannedPing:
    level: int
    repeat: int
    due: datetime


def ping_key(incident_id: int, plan: int, level: int, repeat: int) -> str:
    return f"{PING}:{incident_id}:{plan}:{level}:{repeat}"


def planned_pings(severity: Severity, config: AppConfig, start: datetime, from_level: int = 0) -> list[PlannedPing]:
    """When each level is paged and re-paged, from `start`. A level lasts its escalate_after (or the
    severity's respond_within); its repeats that fall after the next level starts are dropped.
    next_business_day severities page within working hours only, and count their waits in working
    time: a 4 h escalate_after started at 16:00 ends at 12:00 the next working day, not at 09:00."""
    calendar = config.calendar
    if severity.business_hours_only:
        def later(t: datetime, seconds: float) -> datetime:
            return add_business_time(calendar, t, seconds)
    else:
        def later(t: datetime, seconds: float) -> datetime:
            return t + timedelta(seconds=seconds)
    pings: list[PlannedPing] = []
    level_start = later(start, 0)
    chain = severity.escalation
    for index in range(min(from_level, len(chain) - 1), len(chain)):
        level = chain[index]
        if level.escalate_after is not None:
            level_end = later(level_start, level.escalate_after)
        elif severity.respond_within == NEXT_BUSINESS_DAY:
            level_end = next_business_day(calendar, level_start)
        else:
            level_end = later(level_start, severity.respond_within)
        last = index == len(chain) - 1
        for repeat in range(level.max_repeats + 1):
            due = later(level_start, (level.repeat_every or 0) * repeat)
            if repeat and not last and due >= level_end:
                break
            pings.append(PlannedPing(index, repeat, due))
        level_start = level_end
    return pings


async def plan(bot, incident: Incident, now: datetime, *, from_level: int = 0, forced: bool = False, pings: bool = True) -> int:
    """plan_in, in a transaction of its own (tests and benchmarks plan incidents they wrote directly)."""
    async with bot.db.sessions() as session, session.begin():
        planned = await plan_in(session, bot, incident, now, from_level=from_level, forced=forced, pings=pings)
    bot.scheduler.wake()
    return planned


async def plan_in(session: AsyncSession, bot, incident: Incident, now: datetime, *, from_level: int = 0, forced: bool = False,
                  pings: bool = True, hold_first_until: datetime | None = None) -> int:
    """The incident's current plan (incident.escalation_plan) as jobs, in the caller's transaction: the
    change that asks for it (open, reopen, severity, escalate) and its pages commit together, so no
    crash in between leaves an incident that never pages. Older plans' pending jobs are cancelled
    first; the incident row the caller updated is locked until commit, so two concurrent re-plans
    run one after the other and the later one's jobs are the ones left. How many pings were planned.

    `forced` (/incident escalate) pages the first level now, even at night for a working-hours
    severity and even if someone acknowledged; `pings=False` plans only the update reminders (an
    acknowledged incident changed severity). `hold_first_until` keeps the first page back while a new
    incident's headline and channel are made (release_first sends it on once they are); if the
    process dies meanwhile, it goes out then anyway."""
    await stop_in(session, incident.id, reminders=True, keep_plan=incident.escalation_plan)
    found = bot.config.severity(incident.severity)
    if found is None:
        return 0
    name, severity = found
    rank = severity_rank(bot.config, name)
    planned = planned_pings(severity, bot.config, now, from_level) if pings else []
    for index, ping in enumerate(planned):
        first = forced and index == 0
        payload = {"incident": incident.id, "plan": incident.escalation_plan, "level": ping.level, "repeat": ping.repeat, "forced": first}
        due = now if first else ping.due
        if index == 0 and hold_first_until is not None:
            due = max(due, hold_first_until)
        await jobs.add(session, PING, ping_key(incident.id, incident.escalation_plan, ping.level, ping.repeat), due, payload, priority=rank)
    if severity.update_reminder:
        due = now + timedelta(seconds=severity.update_reminder)
        key = f"{REMIND}:{incident.id}:{incident.escalation_plan}:1"
        await jobs.add(session, REMIND, key, due, {"incident": incident.id, "plan": incident.escalation_plan, "n": 1})
    return len(planned)


async def release_first(bot, incident: Incident) -> None:
    """The new incident is announced: its first page, held back by plan_in, is due when it was planned."""
    found = bot.config.severity(incident.severity)
    if found is None:
        return
    planned = planned_pings(found[1], bot.config, incident.opened_at)
    if planned:
        first = planned[0]
        await jobs.reschedule(bot.db, ping_key(incident.id, incident.escalation_plan, first.level, first.repeat), max(first.due, incident.opened_at))
        bot.scheduler.wake()


async def stop_in(session: AsyncSession, incident_id: int, *, reminders: bool = False, keep_plan: int | None = None) -> int:
    """Cancel the pending pings (on acknowledge), and the update reminders too (on resolve), in the
    caller's transaction; those of `keep_plan` stay."""
    kept = (lambda kind: f"{kind}:{incident_id}:{keep_plan}:") if keep_plan is not None else (lambda kind: None)
    cancelled = await jobs.cancel_prefix_in(session, f"{PING}:{incident_id}:", keep=kept(PING))
    if reminders:
        cancelled += await jobs.cancel_prefix_in(session, f"{REMIND}:{incident_id}:", keep=kept(REMIND))
    return cancelled
