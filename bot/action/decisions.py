"""Approve and Deny on a pending request: two handlers, their shared checks in one place.

Part of the guarded-action flow (flow.py: request, execute, recover); the interactions
`action.approve` and `action.deny` (interactions/action.py) call them. Every press is
written to the audit log before the one who pressed gets an answer.
"""
from __future__ import annotations

from bot.action import confirmation, policy
from bot.action import service as requests
from bot.action.flow import _audit, _update, execute, plan_of
from bot.action.views import when
from bot.audit import service as audit
from bot.pipeline.markup import Mention, Text
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Outcome, Reply


def request_id_of(value: str) -> int | None:
    """A button's value or a typed number as a request id; None when it cannot be one."""
    # Request ids are the database's integers: anything else (or too big for the column) is not ours.
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


async def _decidable(bot, click: Click, verb: str):
    """What approve and deny both check first: the button's request, pressed where it was made, not expired.

    Returns (request, spec, targets), or the Reply that ends the press.
    """
    request_id = request_id_of(click.value)
    if request_id is None:
        return await _no_request(bot, click, verb, "That button does not belong to a request opsbot knows.")
    request = await requests.get(bot.db, request_id)
    if request is None:
        return await _no_request(bot, click, verb, f"Request #{request_id} does not exist.")
    spec = bot.config.action(request.action)
    targets = plan_of(request).targets
    if spec is None or not all(policy.exists(bot.config, target) for target in targets):
        refusal = f"Request #{request_id} is for something app.yaml no longer declares; request it again."
        await _audit(bot, request, click.user_id, f"{verb} refused", refusal, click.channel_id, click.transport)
        return Reply.refusal(refusal)
    # The button must be pressed where the request was made: same channel, same workspace.
    if (click.channel_id, click.team_id) != (request.channel, request.team):
        refusal = f"That button does not belong to request #{request_id} in this channel; nothing was done."
        await _audit(bot, request, click.user_id, f"{verb} refused", refusal, click.channel_id, click.transport)
        return Reply.refusal(refusal, Outcome.denied)
    if request.state == "pending" and await requests.expire(bot.db, request.id) is not None:
        return await _expired(bot, request.id, click)
    return request, spec, targets


async def _no_request(bot, click: Click, verb: str, refusal: str) -> Reply:
    """A press naming no request there is: on record under its interaction, with the value as pressed."""
    await audit.record(
        bot.db,
        user_id=click.user_id,
        command=f"action.{verb}",
        arguments=click.value,
        channel=click.channel_id,
        transport=click.transport,
        outcome=f"{verb} refused",
        detail=refusal,
    )
    return Reply.refusal(refusal)


async def deny(bot, click: Click) -> Reply:
    """The Deny button: an approver refuses the request, or its requester withdraws it."""
    found = await _decidable(bot, click, "deny")
    if isinstance(found, Reply):
        return found
    request, spec, targets = found
    held = await bot.roles.roles_of(click.user_id)
    if click.user_id != request.requested_by and policy.missing_role(held, policy.approver_roles, bot.config, spec, targets):
        refusal = "You cannot deny this request: only its requester or an approver can."
        await _audit(bot, request, click.user_id, "denial refused", refusal, click.channel_id, click.transport)
        return Reply.refusal(refusal, Outcome.denied)
    try:
        request = await requests.deny(bot.db, request.id, click.user_id)
    except requests.NotPending:
        return await _already_decided(bot, request.id, click, "deny")
    await _audit(bot, request, click.user_id, "denied", channel=click.channel_id, transport=click.transport)
    await _update(bot, request)
    return Reply(text=f"You denied request #{request.id}; nothing was run.", ephemeral=True, outcome=Outcome.ok)


async def approve(bot, click: Click) -> Reply:
    """The Approve button: one approval; the last one needed runs the request."""
    found = await _decidable(bot, click, "approve")
    if isinstance(found, Reply):
        return found
    request, spec, targets = found
    request_id = request.id
    refusal = await policy.approval_refusal(bot.roles, bot.config, spec, targets, request.requested_by, click.user_id)
    if refusal:
        await _audit(bot, request, click.user_id, "approval refused", refusal, click.channel_id, click.transport)
        return Reply.refusal(refusal, Outcome.denied)
    expected = plan_of(request).confirm
    if expected and spec.approval.confirm:
        confirmed = await confirmation.ask(bot, click, request, expected)
        if isinstance(confirmed, Reply):
            return confirmed
    try:
        request = await requests.approve(bot.db, request_id, click.user_id)
    except requests.AlreadyApproved:
        refusal = f"You already approved request #{request_id}; it needs another approver."
        await _audit(bot, request, click.user_id, "approval refused", refusal, click.channel_id, click.transport)
        return Reply.refusal(refusal)
    except requests.NotPending:
        current = await requests.get(bot.db, request_id)
        if current.state == "pending" and await requests.expire(bot.db, request_id) is not None:
            return await _expired(bot, request_id, click)
        return await _already_decided(bot, request_id, click, "approve")
    await _audit(bot, request, click.user_id, "approved", channel=click.channel_id, transport=click.transport)
    if request.state != "approved":
        await _update(bot, request)
        return Reply(text=f"Approved request #{request.id}; it needs one more approver.", ephemeral=True)
    return await execute(bot, request)


async def _expired(bot, request_id: int, click: Click) -> Reply:
    request = await requests.get(bot.db, request_id)
    await _audit(bot, request, click.user_id, "expired")
    await _update(bot, request)
    return Reply.refusal(f"Request #{request_id} expired at {when(request.expires_at)}; request it again.")


async def _already_decided(bot, request_id: int, click: Click, verb: str) -> Reply:
    request = await requests.get(bot.db, request_id)
    by = Text(" by ", Mention(request.decided_by)) if request.decided_by else ""
    refusal = Text(f"Request #{request_id} was already decided", by, f": it is {request.state}.")
    await _audit(bot, request, click.user_id, f"{verb} refused", refusal, click.channel_id, click.transport)
    return Reply.refusal(refusal)
