"""Approve and Deny on an action request's message (bot/action/views.py draws them)."""
from __future__ import annotations

from bot.action import decisions
from bot.pipeline.interactions import InteractionSpec, Press
from bot.pipeline.reply import Reply
from bot.pipeline.roles import ANY_ROLE


async def approve(press: Press) -> Reply:
    return await decisions.approve(press.bot, press.click)


async def deny(press: Press) -> Reply:
    return await decisions.deny(press.bot, press.click)


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
