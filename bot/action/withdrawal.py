"""Withdrawing a pending request: the Withdraw button on it, or /run cancel ID from anywhere in its workspace.

Its requester or a holder of the action's approver roles may withdraw it; its locks are
released in the same transaction (service.withdraw), and the audit log says who withdrew
it. A request is only decidable where it was posted, so one left behind (a console that
was closed, a channel nobody reads) would otherwise hold its targets until it expires:
`/run cancel ID` works from any channel, and a console withdraws what it leaves pending
when it closes (bot/transport/console.py).
"""
from __future__ import annotations

from bot.action import policy
from bot.action import service as requests
from bot.action.decisions import _already_decided, _expired, _no_request, request_id_of
from bot.action.flow import _audit, _update, plan_of
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Outcome, Reply
from bot.pipeline.request import Request

CANCEL_USAGE = "/run cancel ID"


async def withdraw_press(bot, click: Click) -> Reply:
    """The Withdraw button: pressed where the request was posted, as Approve and Deny are."""
    request_id = request_id_of(click.value)
    request = await requests.get(bot.db, request_id) if request_id is not None else None
    if request is None:
        shown = f"Request #{request_id} does not exist." if request_id is not None else "That button does not belong to a request opsbot knows."
        return await _no_request(bot, click, "withdraw", shown)
    if (click.channel_id, click.team_id) != (request.channel, request.team):
        refusal = f"That button does not belong to request #{request.id} in this channel; nothing was done."
        await _audit(bot, request, click.user_id, "withdraw refused", refusal, click.channel_id, click.transport)
        return Reply.refusal(refusal, Outcome.denied)
    return await _withdraw(bot, request, click)


async def withdraw_command(bot, req: Request, words: list[str]) -> Reply:
    """/run cancel ID (or #ID): from any channel of the request's workspace, or the console."""
    if len(words) != 1:
        return Reply.refusal(f"Name one request to withdraw. Usage: {CANCEL_USAGE}")
    request_id = request_id_of(words[0].removeprefix("#"))
    if request_id is None:
        return Reply.refusal(f"'{words[0][:20]}' is not a request number; give the number shown as request #ID. Usage: {CANCEL_USAGE}")
    request = await requests.get(bot.db, request_id)
    if request is None:
        return Reply.refusal(f"Request #{request_id} does not exist.")
    if (request.team or "") != (req.team_id or ""):  # the console's requests stay the console's, Slack's Slack's
        return Reply.refusal(f"Request #{request_id} belongs to another Slack workspace; nothing was done.", Outcome.denied)
    return await _withdraw(bot, request, req)


async def _withdraw(bot, request, actor: Click | Request) -> Reply:
    """`actor` is who withdraws it, and where: a press or a command (both carry user_id, channel_id, transport)."""
    if request.state == "pending" and await requests.expire(bot.db, request.id) is not None:
        return await _expired(bot, request.id, actor)
    refusal = await _refusal(bot, request, actor.user_id)
    if refusal:
        await _audit(bot, request, actor.user_id, "withdraw refused", refusal, actor.channel_id, actor.transport)
        return Reply.refusal(refusal, Outcome.denied)
    try:
        request = await requests.withdraw(bot.db, request.id, actor.user_id)
    except requests.NotPending:
        return await _already_decided(bot, request.id, actor, "withdraw")
    await _audit(bot, request, actor.user_id, "withdrawn", channel=actor.channel_id, transport=actor.transport)
    await _update(bot, request)
    return Reply(
        text=f"You withdrew request #{request.id}; nothing was run, and what it had locked is free again.", ephemeral=True, outcome=Outcome.ok
    )


async def _refusal(bot, request, user: str) -> str | None:
    """None when `user` may withdraw `request`: its requester, or someone holding its approver roles for every target."""
    if user == request.requested_by:
        return None
    spec = bot.config.action(request.action)
    targets = plan_of(request).targets
    if spec is None or not all(policy.exists(bot.config, target) for target in targets):
        return f"Only its requester can withdraw request #{request.id}: app.yaml no longer declares what it was for."
    if policy.missing_role(await bot.roles.roles_of(user), policy.approver_roles, bot.config, spec, targets):
        return f"You cannot withdraw request #{request.id}: only its requester or an approver can."
    return None
