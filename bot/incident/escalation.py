"""Paging by the response-time matrix: the scheduled jobs planning.py writes, run.

A ping that runs (it may have been claimed a moment before an acknowledgement cancelled its
plan) reads the incident first and does nothing unless the incident still waits for that plan.

Sending is recorded as a timeline entry keyed like the job, written before the message
goes out and marked delivered after: a run that finds its entry delivered sends nothing,
so a retried job does not ping twice. One that finds it undelivered (its replica died
mid-send) looks for the page in Slack's history first and sends it, marked late, only where
it did not arrive (see run_ping).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from bot.config.incident_models import EscalationLevel
from bot.incident import service
from bot.incident.models import Incident, IncidentState, TimelineEntry
from bot.incident.notify import channel_of, messenger_for
from bot.incident.planning import PING, REMIND, severity_rank
from bot.incident.views import ping_message, reminder_message
from bot.maintenance.service import covering_in
from bot.oncall.rotation import shift_at
from bot.pipeline.markup import HERE, Mention, group
from bot.pipeline.markers import already_posted, marker
from bot.pipeline.messenger import ChannelAdmin, MessagePostFailed, urgent
from bot.schedule import Job, JobType
from bot.schedule import service as jobs

log = logging.getLogger(__name__)

PAGE_RETRIES = 3  # a page nobody received is tried again this often


async def targets(bot, level: EscalationLevel) -> tuple[list[Mention], list[str]]:
    """Who a level pages: the mentions for the incident channel, and the users to message directly."""
    if level.here:
        return [HERE], []
    if level.group:
        return [group(level.group)], []
    users: list[str] = list(level.users)
    mentions: list[Mention] = []
    if level.rotation:
        users += await _on_call(bot, level.rotation)
    if level.role:
        role = bot.config.roles[level.role]
        users += role.users
        mentions += [group(g) for g in role.groups]
        for rotation in role.rotations:
            users += await _on_call(bot, rotation)
    users = list(dict.fromkeys(users))
    return [Mention(u) for u in users] + mentions, users


async def _on_call(bot, rotation: str) -> list[str]:
    """Who is on call, overrides included; when those cannot be read (the database), the rotation's
    own schedule: a page to the scheduled member beats no page."""
    try:
        return sorted(await bot.oncall.on_call_users(rotation))
    except Exception as exc:
        log.warning("on-call overrides of %s unreadable (%s): paging the scheduled member", rotation, exc.__class__.__name__)
        return [shift_at(bot.config.oncall[rotation], bot.clock.now()).user]


def _waits_for(incident: Incident, payload: dict) -> bool:
    if incident.escalation_plan != payload["plan"] or incident.state is IncidentState.resolved:
        return False
    return incident.state is IncidentState.open or bool(payload.get("forced"))


async def run_ping(bot, job: Job) -> None:
    """Page one level once: read the incident and write the ping's entry (undelivered) in one
    transaction, send, then mark the entry delivered (and raise the incident's level) in another.

    Once: the entry keyed by the job is the claim on sending. A run that finds it delivered sends
    nothing. One that finds it undelivered (an earlier run died, or was stopped, before the mark)
    first looks in the channel and each direct-message channel for the page's marker, and sends
    only where it is missing, marked late. A page can still double only where that history cannot
    be read (the console, a refused conversations.history, a busy channel that pushed it past the
    newest 2,000 messages): a page twice beats a page lost, so the mark is not written before sending."""
    payload = job.payload
    now = bot.clock.now()
    retry = False
    entry_key = payload.get("entry", job.key)  # a retry of a page that did not arrive keeps the first run's entry
    async with bot.db.sessions() as session, session.begin():
        incident = await session.get(Incident, payload["incident"])
        if incident is None:
            raise service.NoSuchIncident(payload["incident"])
        if not _waits_for(incident, payload):
            return
        if job.late and "entry" not in payload and not payload.get("forced") and await jobs.later_due_in(session, f"{PING}:{incident.id}:{payload['plan']}:", job.due_at, now):
            # Back from a downtime with several pages of this plan overdue: only the newest goes
            # out, not a burst of every level and repeat missed meanwhile.
            await service._add(session, incident.id, service.Entry("ping", "", "Page skipped: a later one fell due while the bot was down",
                                                                   {"skipped": True}, key=entry_key), now)
            return
        found = bot.config.severity(incident.severity)
        if found is None or payload["level"] >= len(found[1].escalation):
            return  # app.yaml changed under a planned ping: nothing left to page at that level
        level = found[1].escalation[payload["level"]]
        # Only automated detection is silenced: someone who opened an incident during a window wants it paged.
        automated = await service.origin_in(session, incident.id) != service.PERSON
        windows = await covering_in(session, incident.services, now) if automated else []
        if windows:  # every service of the incident is in maintenance: on the timeline, not paged
            text = f"Page to {level.label} silenced by maintenance window " + ", ".join(f"#{w.id}" for w in windows)
            data = {"level": payload["level"], "repeat": payload["repeat"], "skipped": True, "maintenance": [w.id for w in windows]}
            await service._add(session, incident.id, service.Entry("ping", "", text, data, key=entry_key), now)
            return
        data = {"level": payload["level"], "level_name": level.label, "repeat": payload["repeat"], "due": job.due_at.isoformat(),
                "late": job.late, "delivered": False}
        text = f"Paged {level.label}" + (f" (repeat {payload['repeat']})" if payload["repeat"] else "") + (" late" if job.late else "")
        if not await service._add(session, incident.id, service.Entry("ping", "", text, data, key=entry_key), now):
            earlier = await session.scalar(select(TimelineEntry.data).where(TimelineEntry.key == entry_key))
            if earlier is not None and (earlier.get("delivered") or earlier.get("skipped")):
                return  # sent (or skipped for a later page) by an earlier run of this job
            data["late"] = retry = True  # the run that wrote it did not get to mark it sent: it may have sent it
    mentions, direct = await targets(bot, level)
    data["to"] = [m.plain for m in mentions]
    messenger = messenger_for(bot, incident)
    marker = page_marker(entry_key)
    reply = ping_message(incident, level.label, mentions, payload["repeat"], late=data["late"], config=bot.config, marker=marker)
    channel = channel_of(incident)
    if payload["repeat"] == 0 and (payload["level"], payload["plan"]) != (0, 1):  # the level's first page in this plan
        await _invite(messenger, incident, direct, data)
    with urgent(severity_rank(bot.config, incident.severity)):  # queued behind Slack's limit, P0 goes first
        sent, failures = await _send(bot, messenger, reply, marker, [channel] if channel else [], direct, retry=retry)
    if not sent:
        await _failed(bot, job, entry_key, incident.id, text, data, failures)
        return
    async with bot.db.sessions() as session, session.begin():
        marked = data | {"delivered": True, "failed": failures}
        await session.execute(update(TimelineEntry).where(TimelineEntry.key == entry_key).values(data=marked))
        if payload["level"] > incident.escalation_level:
            await session.execute(update(Incident).where(Incident.id == incident.id, Incident.escalation_level < payload["level"])
                                  .values(escalation_level=payload["level"], updated_at=now))


async def _send(bot, messenger, reply, marker: str, channels: list[str], users: list[str], *, retry: bool) -> tuple[int, list[str]]:
    """The page in the incident's channel and to each user, each on its own: one refusal does not
    keep the on-call's direct message from going out. (how many arrived, what failed and why)."""
    sent, failures = 0, []
    for target in [*channels, *users]:
        if retry and await already_posted(messenger, target, marker):
            sent += 1
            continue
        try:
            if target in users:
                await messenger.direct(target, reply)
            else:
                await messenger.post(target, reply)
            sent += 1
        except Exception as exc:  # Slack's refusal, the network: said on the timeline, retried
            reason = str(exc)[:40] if isinstance(exc, MessagePostFailed) else exc.__class__.__name__
            failures.append(f"{target}: {reason}")
    return sent, failures


async def _failed(bot, job: Job, entry_key: str, incident_id: int, text: str, data: dict, failures: list[str]) -> None:
    """Nothing arrived: the entry says so, and the page is tried again (1, 2, then 4 minutes later)."""
    attempt = job.payload.get("retry", 0) + 1
    now = bot.clock.now()
    gave_up = attempt > PAGE_RETRIES
    note = f"{text}: not delivered ({'; '.join(failures) or 'no channel and no one to message'})"
    note += "; gave up" if gave_up else f"; trying again ({attempt} of {PAGE_RETRIES})"
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(TimelineEntry).where(TimelineEntry.key == entry_key)
                              .values(text=note, data=data | {"delivered": False, "failed": failures}))
        if not gave_up:
            payload = {**job.payload, "entry": entry_key, "retry": attempt}
            # Priority 0: a page that did not arrive is tried again ahead of any first page.
            await jobs.add(session, PING, f"{entry_key}:retry{attempt}", now + timedelta(minutes=2 ** (attempt - 1)), payload)
    if gave_up:
        raise MessagePostFailed(f"page {entry_key} not delivered after {PAGE_RETRIES} retries")
    bot.scheduler.wake()


async def _invite(messenger, incident: Incident, users: list[str], data: dict) -> None:
    """A level is invited to the incident's own channel with its first page (of each plan: after a
    reopen, a re-grade or an escalation too), so the page's mention there reaches them. The first
    plan's first level is not: it was invited when the channel was made. Those already in it are no
    error. A refusal is on the page's entry and costs no page: the direct message still goes. The
    console has no channels: nothing to do."""
    if not users or not incident.channel_id or not isinstance(messenger, ChannelAdmin):
        return
    try:
        await messenger.invite(incident.channel_id, users)
    except Exception as exc:  # Slack's refusal, the network
        data["not_invited"] = str(exc)[:40] if isinstance(exc, MessagePostFailed) else exc.__class__.__name__
        log.warning("%s: paged users not invited to its channel (%s)", incident.ref, data["not_invited"])


def page_marker(job_key: str) -> str:
    """"(page 42.3.1.0)" for incident.ping:42:3:1:0: shown on the page, looked for before a retry sends it again."""
    return marker("page", job_key)


async def run_reminder(bot, job: Job) -> None:
    """Remind the commander (or whoever opened it) to post an update when none was posted for the
    interval; the next reminder falls an interval after the latest update, so reminders follow the
    updates instead of drifting up to twice the interval apart."""
    payload = job.payload
    incident = await service.get(bot.db, payload["incident"])
    if incident.state is IncidentState.resolved or incident.escalation_plan != payload["plan"]:
        return
    found = bot.config.severity(incident.severity)
    if found is None or not found[1].update_reminder:
        return
    every = timedelta(seconds=found[1].update_reminder)
    now = bot.clock.now()
    last_update = await service.latest(bot.db, incident.id, ("update", "opened")) or incident.opened_at
    due = now - last_update >= every
    next_key = f"{REMIND}:{incident.id}:{payload['plan']}:{payload['n'] + 1}"
    await bot.scheduler.enqueue(REMIND, next_key, (now if due else last_update) + every, {**payload, "n": payload["n"] + 1})
    if not due:
        return
    # Once, as a page: the entry (undelivered) before the post, marked delivered after; a run that finds it
    # undelivered (the earlier one died or ran out of lease mid-post) looks for the reminder's marker first.
    entry = service.Entry("reminder", "", "Update reminder", {"delivered": False}, key=job.key)
    async with bot.db.sessions() as session, session.begin():
        retry = not await service._add(session, incident.id, entry, now)
        if retry:
            earlier = await session.scalar(select(TimelineEntry.data).where(TimelineEntry.key == job.key))
            if earlier is None or earlier.get("delivered", True):  # an entry without the flag predates it: it was sent
                return
    messenger, channel, mark = messenger_for(bot, incident), channel_of(incident), marker("update reminder", job.key)
    if not (retry and await already_posted(messenger, channel, mark)):
        who = incident.commander or incident.opened_by
        await messenger.post(channel, reminder_message(incident, who, now - last_update, marker=mark))
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(TimelineEntry).where(TimelineEntry.key == job.key).values(data={"delivered": True}))


JOBS = [
    JobType(PING, run_ping, lease=timedelta(minutes=2)),
    JobType(REMIND, run_reminder, lease=timedelta(minutes=2)),
]
