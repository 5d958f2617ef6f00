"""Changes to an open incident, the same whether typed, pressed or delivered as an event.

Each is one conditional transition (service.transition) with its timeline entry; the loser of
a race is told who won. After a change the headline is redrawn and the escalation adjusted.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy.exc import IntegrityError

from bot.incident import planning, playbooks, service
from bot.incident.models import MAX_TEXT, Incident, IncidentState
from bot.incident.notify import channel_of, messenger_for
from bot.incident.views import done, headline, span, update_message, when
from bot.pipeline.markup import Mention, Text
from bot.pipeline.messenger import MessagePostFailed
from bot.pipeline.reply import Outcome, Reply
from bot.redaction import redact_cut

log = logging.getLogger(__name__)

UNRESOLVED = (IncidentState.open, IncidentState.acknowledged)
ROLES = ("commander", "comms")


def clean(text: str) -> str:
    """User text kept on the timeline: secrets masked first, then bounded."""
    return redact_cut(" ".join(text.split()) if "\n" not in text else text.strip(), MAX_TEXT)


MILESTONES = {"root cause": "root_cause", "fix deployed": "fix_deployed"}


def milestone(text: str) -> dict:
    """"root cause: ..." or "fix deployed: ..." at the start of a note or update marks that moment
    for the postmortem's timeline (runbook 003: root cause identified, fix deployed)."""
    head = text[:20].lower()
    for prefix, name in MILESTONES.items():
        if head.startswith(prefix):
            return {"milestone": name}
    return {}


def pinned_headline_key(incident_id: int) -> str:
    """The timeline entry holding the ref of the headline's copy pinned in the incident's own channel."""
    return f"headline:{incident_id}"


async def headline_notes(bot, incident: Incident) -> list:
    """What other slices add to the headline (bot.headline_notes: (bot, incident) -> blocks; an alert
    incident's alerts). A note must never cost the headline: one that fails is left out, said in the log."""
    notes: list = []
    for note in bot.headline_notes:
        try:
            notes += await note(bot, incident)
        except Exception as exc:
            log.warning("%s headline note left out: %s", incident.ref, exc.__class__.__name__)
    return notes


async def refresh_headline(bot, incident: Incident) -> None:
    """Redraw the headline and its pinned copy in the incident's channel (create_channels), from
    the row as it is now: of two changes racing, the later redraw shows both."""
    incident = await service.get(bot.db, incident.id)
    pinned = await service.entry_by_key(bot.db, pinned_headline_key(incident.id)) if incident.channel_id else None
    refs = [incident.headline_ref, pinned.data.get("ref") if pinned else None]
    notes = await headline_notes(bot, incident) if any(refs) else []
    for ref in filter(None, refs):
        try:
            await messenger_for(bot, incident).update(ref, headline(incident, bot.config, notes))
        except Exception as exc:  # the change is recorded; a stale headline is said in the log
            log.warning("%s headline not redrawn: %s", incident.ref, exc.__class__.__name__)


async def named(bot, value: str, *, holder: str = "That button", undone: str = "nothing was done") -> Incident | Reply:
    """The incident a button's value or a form's metadata names, or the one-sentence refusal."""
    if not value.isdigit() or len(value) > 9:
        return Reply.refusal(f"{holder} does not name an incident; {undone}.")
    try:
        return await service.get(bot.db, int(value))
    except service.NoSuchIncident:
        return Reply.refusal(f"INC-{value} does not exist; {undone}.")


def _resolved(incident: Incident, bot, doing: str) -> Reply:
    return Reply.refusal(Text(f"{incident.ref} was resolved by ", Mention(incident.resolved_by or ""),
                              f" at {when(incident.resolved_at, bot.config)}; there is nothing to {doing}. "
                              f"/incident reopen {incident.id} reopens it."))


async def acknowledge(bot, incident: Incident, user: str) -> Reply:
    now = bot.clock.now()
    tta = int((now - incident.opened_at).total_seconds())
    result = await service.transition(bot.db, incident.id, states=(IncidentState.open,),
                                      values={"state": IncidentState.acknowledged, "acknowledged_by": user, "acknowledged_at": now},
                                      entry=service.Entry("acknowledged", user, f"after {span(now - incident.opened_at)}",
                                                          {"tta_seconds": tta}), now=now,
                                      then=lambda session, changed: planning.stop_in(session, changed.id))
    current = result.incident
    if not result.won:
        if current.state is IncidentState.resolved:
            return _resolved(current, bot, "acknowledge")
        return Reply.refusal(Text(f"{current.ref} was already acknowledged by ", Mention(current.acknowledged_by or ""),
                                  f" at {when(current.acknowledged_at, bot.config)}."), Outcome.ok)
    bot.scheduler.wake()
    await refresh_headline(bot, current)
    return done(Text(f"{current.ref} acknowledged by ", Mention(user), f" after {span(now - current.opened_at)}; escalation stopped."))


async def resolve(bot, incident: Incident, user: str, summary: str) -> Reply:
    now = bot.clock.now()
    summary = clean(summary)
    ttr = int((now - incident.opened_at).total_seconds())
    result = await service.transition(bot.db, incident.id, states=UNRESOLVED,
                                      values={"state": IncidentState.resolved, "resolved_by": user, "resolved_at": now, "summary": summary},
                                      entry=service.Entry("resolved", user, summary, {"ttr_seconds": ttr}), now=now,
                                      then=lambda session, changed: planning.stop_in(session, changed.id, reminders=True))
    if not result.won:
        return _resolved(result.incident, bot, "resolve")
    for hook in bot.incident_resolved_hooks:  # other slices' part (alert silences expired); never the resolution's cost
        try:
            await hook(bot, result.incident)
        except Exception as exc:
            log.warning("%s: a resolution hook failed (%s)", incident.ref, exc.__class__.__name__)
    await refresh_headline(bot, result.incident)
    await playbooks.refresh_checklist(bot, result.incident)  # resolved: no more Run and Done; reopened: back
    return done(f"{incident.ref} resolved after {span(now - incident.opened_at)}. /incident postmortem {incident.id} writes the review.")


async def reopen(bot, incident: Incident, user: str) -> Reply:
    now = bot.clock.now()
    values = {"state": IncidentState.open, "acknowledged_by": None, "acknowledged_at": None, "resolved_by": None,
              "resolved_at": None, "escalation_level": 0}
    try:
        result = await service.transition(bot.db, incident.id, states=(IncidentState.resolved,), values=values,
                                          entry=service.Entry("reopened", user), now=now, extra=service.next_plan(),
                                          then=lambda session, changed: planning.plan_in(session, bot, changed, now))
    except IntegrityError:  # the unique index on open dedup keys: a newer incident holds this one's key
        holder = await service.open_with_key(bot.db, incident.dedup_key) if incident.dedup_key else None
        if holder is None:
            raise
        return Reply.refusal(f"{incident.ref} cannot be reopened while {holder.ref} is open for the same thing; follow that one.")
    if not result.won:
        return Reply.refusal(f"{incident.ref} is not resolved ({result.incident.state.value}); there is nothing to reopen.")
    bot.scheduler.wake()
    await refresh_headline(bot, result.incident)
    await playbooks.refresh_checklist(bot, result.incident)  # resolved: no more Run and Done; reopened: back
    return done(f"{incident.ref} is open again; escalation starts over at its first level.")


async def change_severity(bot, incident: Incident, user: str, wanted: str) -> Reply:
    found = bot.config.severity(wanted)
    if found is None:
        return Reply.refusal(f"There is no severity '{wanted[:20]}'. Severities: {', '.join(bot.config.severities)}.")
    name = found[0]
    if name == incident.severity:
        return Reply.refusal(f"{incident.ref} is already {name}; nothing changed.", Outcome.ok)
    now = bot.clock.now()
    result = await service.transition(bot.db, incident.id, states=UNRESOLVED, values={"severity": name, "escalation_level": 0},
                                      entry=service.Entry("severity", user, f"{incident.severity} to {name}",
                                                          {"from": incident.severity, "to": name}),
                                      now=now, extra=service.next_plan(),
                                      then=lambda session, changed: planning.plan_in(
                                          session, bot, changed, now, pings=changed.state is IncidentState.open))
    if not result.won:
        return _resolved(result.incident, bot, "re-grade")
    bot.scheduler.wake()
    await refresh_headline(bot, result.incident)
    return done(f"{incident.ref} is now {name} (was {incident.severity}); escalation re-planned from now.")


async def escalate(bot, incident: Incident, user: str, reason: str) -> Reply:
    found = bot.config.severity(incident.severity)
    chain = found[1].escalation if found else []
    level = min(incident.escalation_level + 1, max(len(chain) - 1, 0))
    now = bot.clock.now()
    result = await service.transition(bot.db, incident.id, states=UNRESOLVED, values={"escalation_level": level},
                                      entry=service.Entry("escalated", user, clean(reason), {"level": level}),
                                      now=now, extra=service.next_plan(),
                                      then=lambda session, changed: planning.plan_in(session, bot, changed, now, from_level=level, forced=True))
    if not result.won:
        return _resolved(result.incident, bot, "escalate")
    bot.scheduler.wake()
    label = chain[level].label if chain else "nobody"
    again = " (already the last level: paging it again)" if level == incident.escalation_level else ""
    return done(f"{incident.ref} escalated to level {level + 1}, {label}{again}.")


async def set_role(bot, incident: Incident, user: str, role: str, holder: str) -> Reply:
    now = bot.clock.now()
    result = await service.transition(bot.db, incident.id, states=UNRESOLVED, values={role: holder},
                                      entry=service.Entry("role", user, f"{role}: {holder}", {"role": role, "user": holder}), now=now)
    if not result.won:
        return _resolved(result.incident, bot, "staff")
    await refresh_headline(bot, result.incident)
    return done(Text(Mention(holder), f" is {incident.ref}'s {role}."))


async def post_update(bot, incident: Incident, user: str, text: str) -> Reply:
    if incident.state is IncidentState.resolved:
        return _resolved(incident, bot, "update")
    text = clean(text)
    now = bot.clock.now()
    await service.add_entry(bot.db, incident.id, service.Entry("update", user, text, milestone(text)), now)
    message = update_message(incident, user, text, bot.config)
    messenger = messenger_for(bot, incident)
    problems = []
    targets = [channel_of(incident)]
    found = bot.config.severity(incident.severity)
    status = bot.config.incidents.status_channel
    if found and found[1].status_updates and status:
        targets.append(status)
    for channel in targets:
        try:
            await messenger.post(channel, message)
        except MessagePostFailed as exc:
            problems.append(f"{channel} ({str(exc)[:40]})")
    sentence = f"Update posted to {incident.ref}" + (" and the status channel." if len(targets) > 1 else ".")
    if problems:
        return done(f"The update is on {incident.ref}'s timeline, but posting failed in " + ", ".join(problems) + ".", Outcome.warning)
    return done(sentence, ephemeral=True)


async def note(bot, incident: Incident, user: str, text: str) -> Reply:
    text = clean(text)
    await service.add_entry(bot.db, incident.id, service.Entry("note", user, text, milestone(text)), bot.clock.now())
    return done(f"Noted on {incident.ref}'s timeline.", ephemeral=True)


async def followup(bot, incident: Incident, user: str, text: str, owner: str | None) -> Reply:
    await service.add_followup(bot.db, incident.id, text=clean(text), owner=owner, by=user, now=bot.clock.now())
    count = len(await service.followups(bot.db, incident.id))
    return done(f"Follow-up {count} recorded on {incident.ref}; the postmortem lists it.", ephemeral=True)


def message_time(ts: str) -> datetime | None:
    """A Slack message ts ("1732400000.000100") as a time."""
    seconds, _, _ = ts.partition(".")
    if not seconds.isdigit() or len(seconds) > 12:
        return None
    return datetime.fromtimestamp(int(seconds), timezone.utc)
