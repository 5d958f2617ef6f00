"""Approve, Deny and Withdraw on an action request's message (bot/action/views.py draws them)."""
from __future__ import annotations

from bot.action import confirmation, decisions, withdrawal
from bot.pipeline.interactions import InteractionSpec, Press
from bot.pipeline.reply import Reply
from bot.pipeline.roles import ANY_ROLE


async def approve(press: Press) -> Reply:
    return await decisions.approve(press.ctx, press.click)


async def deny(press: Press) -> Reply:
    return await decisions.deny(press.ctx, press.click)


# Any role passes the pipeline; the action's policy then decides per service (approver roles,
# two-person rule; deny: the requester or an approver). The flow audits every press itself.
APPROVE = InteractionSpec(
    id="action.approve",
    summary="Approve a pending action request.",
    handler=approve,
    roles=(ANY_ROLE,),
    audits_itself=True,
)
DENY = InteractionSpec(
    id="action.deny",
    summary="Deny a pending action request, or withdraw your own.",
    handler=deny,
    roles=(ANY_ROLE,),
    audits_itself=True,
)


async def withdraw(press: Press) -> Reply:
    return await withdrawal.withdraw_press(press.ctx, press.click)


WITHDRAW = InteractionSpec(
    id="action.withdraw",
    summary="Withdraw a pending action request: its requester or an approver; its locks are released at once.",
    handler=withdraw,
    roles=(ANY_ROLE,),
    audits_itself=True,
)


async def confirm(press: Press) -> Reply:
    """The typed-confirmation form of an Approve press (bot/action/confirmation.py)."""
    click = confirmation.submitted_click(press.click)
    if click is None:
        return Reply.refusal("That form does not belong to a request opsbot knows; nothing was approved.")
    return await decisions.approve(press.ctx, click)


CONFIRM = InteractionSpec(
    id=confirmation.CONFIRM_FORM,
    summary="The form in which an approver types the target's name to approve a restore or flush.",
    handler=confirm,
    roles=(ANY_ROLE,),
    audits_itself=True,
    kinds=("view_submission",),
)
