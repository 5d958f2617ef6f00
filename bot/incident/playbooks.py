"""A playbook attached to an incident: posted as a checklist; Run sends a step's command through the
normal pipeline (with its usual guard), Done records who ticked the step and when."""
from __future__ import annotations

import logging
from datetime import datetime

from bot.incident import service
from bot.incident.models import Incident, IncidentState
from bot.incident.notify import channel_of, messenger_for
from bot.incident.views import playbook_checklist
from bot.pipeline.messenger import MessagePostFailed
from bot.pipeline.reply import Outcome, Reply
from bot.pipeline.request import Request

log = logging.getLogger(__name__)


def checklist_key(incident_id: int) -> str:
    return f"playbook:{incident_id}"


def step_key(incident_id: int, step: int) -> str:
    return f"step:{incident_id}:{step}"


async def ticked(db, incident_id: int) -> dict[int, tuple[str, datetime]]:
    return {e.data["step"]: (e.user_id, e.at) for e in await service.entries_of(db, incident_id, "step")}


async def post_checklist(bot, incident: Incident, name: str) -> list[str]:
    playbook = bot.config.playbooks[name]
    messenger = messenger_for(bot, incident)
    try:
        ref = await messenger.post(channel_of(incident), playbook_checklist(incident, name, playbook, {}, bot.config))
    except MessagePostFailed as exc:
        return [f"the playbook could not be posted ({str(exc)[:60]})"]
    data = {"playbook": name, "ref": ref}
    await service.add_entry(bot.db, incident.id, service.Entry("playbook", "", f"Playbook {playbook.title} attached", data,
                                                               key=checklist_key(incident.id)), bot.clock.now())
    return []


def parse_step(value: str) -> tuple[int, int] | None:
    incident, _, step = value.partition(":")
    if not (incident.isdigit() and step.isdigit()) or len(value) > 24:
        return None
    return int(incident), int(step)


async def step_of(bot, value: str):
    """(incident, playbook name, step number, step) for a button's value, or a sentence."""
    parsed = parse_step(value)
    if parsed is None:
        return "That button does not name a playbook step; nothing was done."
    try:
        incident = await service.get(bot.db, parsed[0])
    except service.NoSuchIncident:
        return f"INC-{parsed[0]} does not exist; nothing was done."
    playbook = bot.config.playbooks.get(incident.playbook or "")
    if playbook is None or not 1 <= parsed[1] <= len(playbook.steps):
        return f"{incident.ref} has no playbook step {parsed[1]} (app.yaml may have changed); nothing was done."
    return incident, incident.playbook, parsed[1], playbook.steps[parsed[1] - 1]


async def tick(bot, user_id: str, value: str) -> Reply:
    """A refusal is one (a stale or forged button is on record as refused, not as done)."""
    found = await step_of(bot, value)
    if isinstance(found, str):
        return Reply.refusal(found)
    incident, name, number, step = found
    now = bot.clock.now()
    entry = service.Entry("step", user_id, f"Step {number} done: {step.text}", {"step": number}, key=step_key(incident.id, number))
    if not await service.add_entry(bot.db, incident.id, entry, now):
        await refresh_checklist(bot, incident)  # a press on a stale drawing: show the current one
        return Reply.refusal(f"Step {number} of {incident.ref}'s playbook was already ticked; nothing changed.", Outcome.ok)
    await refresh_checklist(bot, incident)
    return Reply(text=f"Step {number} of {incident.ref}'s playbook is done, on the timeline.", ephemeral=True)


async def refresh_checklist(bot, incident: Incident) -> None:
    """Redraw the checklist from the incident and its ticks as they are now."""
    incident = await service.get(bot.db, incident.id)
    posted = await service.entry_by_key(bot.db, checklist_key(incident.id))
    if posted is None or not incident.playbook or incident.playbook not in bot.config.playbooks:
        return
    playbook = bot.config.playbooks[incident.playbook]
    reply = playbook_checklist(incident, incident.playbook, playbook, await ticked(bot.db, incident.id), bot.config)
    try:
        await messenger_for(bot, incident).update(posted.data["ref"], reply)
    except Exception as exc:  # the tick or the state change is recorded; a stale drawing is said in the log
        log.warning("%s checklist not redrawn: %s", incident.ref, exc.__class__.__name__)


async def run_step(bot, click) -> object:
    """The step's command, as if the one who pressed Run had typed it in this channel."""
    found = await step_of(bot, click.value)
    if isinstance(found, str):
        return found
    incident, _, number, step = found
    if not step.command:
        return f"Step {number} of {incident.ref}'s playbook has no command to run."
    if incident.state is IncidentState.resolved:  # an old checklist's button: the incident is over
        return f"{incident.ref} is resolved; its playbook's steps are not run any more. /incident reopen {incident.id} reopens it."
    command, _, text = step.command[1:].partition(" ")
    request = Request(user_id=click.user_id, channel_id=click.channel_id, command=command, text=text, transport=click.transport,
                      trigger="playbook", team_id=click.team_id)
    reply = await bot.handle(request)
    # Recorded with how it went: a run the command's roles or guard refused ran nothing.
    outcome = reply.outcome.value
    entry = service.Entry("step_run", click.user_id, f"Ran step {number}: {step.command} ({outcome})", {"step": number, "outcome": outcome})
    await service.add_entry(bot.db, incident.id, entry, bot.clock.now())
    return reply
