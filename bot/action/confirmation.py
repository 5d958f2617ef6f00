"""The typed confirmation of the most dangerous actions (restore, flush): the approver types the target's name.

In Slack, Approve opens a form (a modal) asking for the name; its submission comes back as
the interaction `action.confirm` and approves only when the name matches. On the console
the approver is prompted for it on the next line. A wrong name approves nothing and says so.
"""
from __future__ import annotations

from bot.pipeline.forms import Form, FormField
from bot.pipeline.messenger import Click, Prompter
from bot.pipeline.reply import Outcome, Reply

CONFIRM_FORM = "action.confirm"
FIELD = "confirm"


def form(request, expected: str) -> Form:
    return Form(
        callback_id=CONFIRM_FORM,
        title=f"Approve request #{request.id}"[:24],
        submit="Approve",
        fields=(FormField(FIELD, f"Type {expected} to approve /{request.action}", "text", max_length=200),),
        # Where the button was pressed: the submission is checked against the request like the press.
        metadata=f"{request.id}:{request.channel}:{request.team}",
    )


def submitted_click(click: Click) -> Click | None:
    """The form's submission as the Approve press it stands for; None when its metadata is not ours."""
    request_id, _, rest = click.metadata.partition(":")
    channel, _, team = rest.partition(":")
    if not (request_id.isascii() and request_id.isdigit() and channel):
        return None
    return Click(
        user_id=click.user_id, action_id=CONFIRM_FORM, value=request_id, channel_id=channel, transport=click.transport,
        team_id=team, kind="view_submission", callback_id=CONFIRM_FORM, fields=click.fields,
    )


async def ask(bot, click: Click, request, expected: str) -> Reply | None:
    """None when `click` carries the right name; otherwise the Reply that ends this press (a form opened, a refusal)."""
    from bot.action.flow import _audit

    if click.kind == "view_submission":
        typed = click.form_value(FIELD)
    else:
        messenger = bot.messengers.get(click.transport)
        if isinstance(messenger, Prompter):
            typed = await messenger.prompt(click.user_id, f"Type {expected} to approve request #{request.id}:")
        elif messenger is not None and click.trigger_id and await messenger.open_form(click.trigger_id, form(request, expected)):
            return Reply(text=f"Type {expected} in the form to approve request #{request.id}.", ephemeral=True)
        else:
            return Reply.refusal(f"Request #{request.id} needs its target's name typed to approve, and no form could be shown here.")
    if (typed or "").strip() != expected:
        refusal = f"That is not {expected}: request #{request.id} was not approved. Press Approve again to retry."
        await _audit(bot, request, click.user_id, "approval refused", "typed confirmation did not match", click.channel_id, click.transport)
        return Reply.refusal(refusal, Outcome.denied)
    return None
