"""The incident forms: open (severity, title, services, description) and post an update.

Slack shows them as modals; the console has none, so there the answer says what to type.
The channel the form was asked from travels in the form's metadata.
"""
from __future__ import annotations

import json

from bot.incident import lifecycle, opening
from bot.incident.notify import post_direct
from bot.incident.models import MAX_TEXT, MAX_TITLE
from bot.pipeline.forms import Form, FormField
from bot.pipeline.interactions import FormErrors
from bot.pipeline.reply import Outcome, Reply

OPEN_FORM = "incident.open_form"
UPDATE_FORM = "incident.update_form"
FORM_SHOWN = "The form to open an incident is open."
FORM_REFUSED = "Slack did not show the form: type /incident open <severity> <title> [--service S ...] [--playbook NAME]."
NO_FORMS_OPEN = "The console has no forms: type /incident open <severity> <title> [--service S ...] [--playbook NAME]."


def _open_form(config, channel: str) -> Form:
    severities = tuple((name, f"{name} {sev.aliases[0] if sev.aliases else ''}".strip()) for name, sev in config.severities.items())
    fields = [
        FormField("severity", "Severity", "select", options=severities),
        FormField("title", "Title", "text", max_length=MAX_TITLE, hint="What is broken, in a few words."),
    ]
    if config.services:
        fields.append(FormField("services", "Services", "multi_select", options=tuple((s, s) for s in list(config.services)[:100]),
                                optional=True))
    fields.append(FormField("description", "Description", "multiline", optional=True, max_length=MAX_TEXT))
    return Form(OPEN_FORM, "Open an incident", "Open", tuple(fields), metadata=json.dumps({"channel": channel}))


async def _show(bot, transport: str, trigger_id: str, form: Form) -> bool:
    messenger = bot.messengers.get(transport)
    return bool(messenger and trigger_id and await messenger.open_form(trigger_id, form))


async def open_incident_form(inv) -> Reply:
    """/incident open with no arguments."""
    request = inv.request
    if await _show(inv.ctx, request.transport, request.trigger_id, _open_form(inv.ctx.config, request.channel_id)):
        # Slack refuses an empty answer (no_text) on the response_url: say where the form is.
        return Reply(text=FORM_SHOWN, outcome=Outcome.ok, ephemeral=True)
    # Slack may refuse the form (an expired trigger_id): that is no console.
    return Reply.refusal(NO_FORMS_OPEN if request.transport == "console" else FORM_REFUSED)


def _channel(metadata: str) -> str:
    try:
        channel = json.loads(metadata).get("channel", "")
    except (ValueError, AttributeError):
        return ""
    return channel if isinstance(channel, str) and len(channel) <= 32 else ""


async def submit_open(press) -> Reply:
    click, bot = press.click, press.ctx
    services = [s for s in click.form_value("services").split(",") if s]
    try:
        opening.validate(bot.config, click.form_value("severity"), click.form_value("title"), services, None)
    except opening.Refused as exc:
        field = "title" if "title" in str(exc) or "words" in str(exc) else "severity" if "severity" in str(exc) else "services"
        return FormErrors(text=str(exc), outcome=Outcome.usage_error, errors={field: str(exc)})
    reply = await opening.open_incident(bot, opening.OpenRequest(
        severity=click.form_value("severity"), title=click.form_value("title"), services=services,
        description=click.form_value("description"), playbook=None, user_id=click.user_id,
        channel_id=_channel(click.metadata) or click.channel_id, transport=click.transport, team_id=click.team_id))
    # Opening (a channel, invitations, a pin) can outlast the 2 s a form's answer has: the
    # outcome also goes by direct message, so it is not lost in the bot's log.
    messenger = bot.messengers.get(click.transport)
    if messenger is not None:
        await post_direct(bot, messenger, click.user_id, reply)
    # The modal closes on success; what was not done (a channel refused) stays on screen.
    return Reply(text="", outcome=Outcome.ok) if reply.outcome is Outcome.ok else reply


async def update_button(press) -> Reply:
    """Post update: a form in Slack; on the console, the command to type."""
    click, bot = press.click, press.ctx
    incident = await lifecycle.named(bot, click.value)
    if isinstance(incident, Reply):
        return incident
    form = Form(UPDATE_FORM, f"Update {incident.ref}"[:24], "Post",
                (FormField("text", "What is happening now?", "multiline", max_length=MAX_TEXT),), metadata=str(incident.id))
    if await _show(bot, click.transport, click.trigger_id, form):
        return Reply(text=f"The form to post an update on {incident.ref} is open.", outcome=Outcome.ok, ephemeral=True)
    return Reply.refusal(f"Type /incident update {incident.id} <what is happening now>.", Outcome.ok)


async def submit_update(press) -> Reply:
    click, bot = press.click, press.ctx
    text = click.form_value("text").strip()
    if not text:
        return FormErrors(text="An update needs text.", outcome=Outcome.usage_error, errors={"text": "An update needs text."})
    incident = await lifecycle.named(bot, click.metadata, holder="This form", undone="nothing was posted")
    if isinstance(incident, Reply):
        return incident
    reply = await lifecycle.post_update(bot, incident, click.user_id, text)
    return Reply(text="", outcome=Outcome.ok) if reply.outcome is Outcome.ok else reply
