"""The incident headline's buttons, its forms, the playbook checklist and the 📌 event."""
from __future__ import annotations

from bot.incident import forms, lifecycle, pins, playbooks
from bot.pipeline.interactions import InteractionSpec, Press
from bot.pipeline.reply import Reply
from bot.pipeline.roles import ANY_ROLE


async def _incident(press: Press):
    return await lifecycle.named(press.ctx, press.click.value)


async def ack(press: Press) -> Reply:
    incident = await _incident(press)
    return incident if isinstance(incident, Reply) else await lifecycle.acknowledge(press.ctx, incident, press.click.user_id)


async def escalate(press: Press) -> Reply:
    incident = await _incident(press)
    return incident if isinstance(incident, Reply) else await lifecycle.escalate(press.ctx, incident, press.click.user_id, "pressed Escalate")


async def resolve(press: Press) -> Reply:
    incident = await _incident(press)
    return incident if isinstance(incident, Reply) else await lifecycle.resolve(press.ctx, incident, press.click.user_id, "")


async def tick_step(press: Press) -> Reply:
    return await playbooks.tick(press.ctx, press.click.user_id, press.click.value)


async def run_step(press: Press) -> Reply:
    result = await playbooks.run_step(press.ctx, press.click)
    return Reply.refusal(result) if isinstance(result, str) else result


async def pin(press: Press) -> Reply:
    return await pins.pinned(press.ctx, press.click)


def _button(id: str, summary: str, handler) -> InteractionSpec:
    return InteractionSpec(id=id, summary=summary, handler=handler, roles=(ANY_ROLE,))


ACK = _button("incident.ack", "Acknowledge an incident: stops its escalation.", ack)
UPDATE = _button("incident.update", "Post an update on an incident (a form in Slack).", forms.update_button)
ESCALATE = _button("incident.escalate", "Page the next level of the incident's chain now.", escalate)
RESOLVE = _button("incident.resolve", "Resolve an incident.", resolve)
TICK_STEP = _button("incident.tick_step", "Tick a playbook step: who and when go on the timeline.", tick_step)
# The step's own command then goes through the command pipeline with its own roles and guard.
RUN_STEP = _button("incident.run_step", "Run a playbook step's command.", run_step)
OPEN_FORM = InteractionSpec(id=forms.OPEN_FORM, summary="The open-an-incident form.", handler=forms.submit_open,
                            roles=(ANY_ROLE,), kinds=("view_submission",))
UPDATE_FORM = InteractionSpec(id=forms.UPDATE_FORM, summary="The post-an-update form.", handler=forms.submit_update,
                              roles=(ANY_ROLE,), kinds=("view_submission",))
# Anyone in an incident's channel may pin a message to its timeline; elsewhere it is ignored.
# The timeline entry is the record: no audit row for every reaction in the workspace.
PIN = InteractionSpec(id="incident.pin", summary="A 📌 on a message in an incident's channel adds it to the timeline.",
                      handler=pin, public=True, audits_itself=True, kinds=("event",), events=("reaction_added",))

ALL = [ACK, UPDATE, ESCALATE, RESOLVE, TICK_STEP, RUN_STEP, OPEN_FORM, UPDATE_FORM, PIN]
