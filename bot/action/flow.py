"""Request, approve or deny, execute: the guarded-action flow both transports drive.

Every step is written to the audit log before the user gets an answer.
"""
from __future__ import annotations

import logging

from bot.action import policy
from bot.action import service as requests
from bot.action.executor import run_restart
from bot.activity import Activity
from bot.action.plan import PlanError, plan_hash, restart_plan
from bot.action.views import request_message, when
from bot.audit import service as audit
from bot.docker_engine import DockerUnavailable
from bot.pipeline.markup import Mention, Text
from bot.pipeline.messenger import MessagePostFailed
from bot.pipeline.reply import Outcome, Reply

log = logging.getLogger(__name__)


async def _audit(bot, request, user: str, outcome: str, detail: str = "", channel: str = "", transport: str = "") -> None:
    await audit.record(
        bot.db,
        user_id=user,
        command=request.action,
        arguments=f"#{request.id} {request.service}",
        channel=channel or request.channel,
        transport=transport or request.transport,
        outcome=outcome,
        detail=detail,
        target=request.service,
    )


def _services(plan: dict) -> list[str]:
    return [step["service"] for step in plan["steps"]]


async def request_restart(bot, req, service: str, *, with_dependents: bool, force_recreate: bool) -> Reply:
    config = bot.config
    spec = config.action("restart")
    refusal = await policy.request_refusal(bot.roles, config, spec, [service], req.user_id, "restart")
    if refusal:
        return Reply.refusal(refusal, Outcome.denied)
    try:
        plan = await restart_plan(config, bot.checks.docker, "restart", spec, service, with_dependents=with_dependents, force_recreate=force_recreate)
    except (PlanError, DockerUnavailable) as exc:
        sentence = str(exc)
        return Reply.refusal(sentence if sentence.endswith(".") else f"{sentence}; nothing was requested.", Outcome.error)
    refusal = await policy.request_refusal(bot.roles, config, spec, _services(plan), req.user_id, "restart")
    if refusal:
        return Reply.refusal(refusal, Outcome.denied)
    if spec.approval.approvals and req.trigger == "cli":
        return Reply.refusal(
            "/restart needs an approval, which opsbot run cannot collect; use opsbot shell or Slack.", Outcome.usage_error
        )
    # Overdue requests are expired first (audited, message edited) so their locks are free.
    await sweep_expired(bot)
    try:
        request = await requests.open_request(
            bot.db,
            action="restart",
            service=service,
            plan=plan,
            plan_hash=plan_hash(plan),
            requester=req.user_id,
            channel=req.channel_id,
            team=req.team_id,
            transport=req.transport,
            approvals_needed=spec.approval.approvals,
            expires_in=spec.approval.expires,
            locked_services=_services(plan),
        )
    except requests.Locked as exc:
        holder = exc.holder
        if holder is None:
            return Reply.refusal(f"{service} is busy with another action; try again in a minute.", Outcome.usage_error)
        return Reply.refusal(
            Text(
                f"{holder.service} is locked by request #{holder.request_id} (/{holder.action} by ",
                Mention(holder.holder),
                f") since {when(holder.since)}; wait for it to finish or be decided.",
            ),
            Outcome.usage_error,
        )
    await _audit(bot, request, req.user_id, "requested", f"plan {request.plan_hash[:16]}")
    if request.state == "approved":  # approvals: 0
        return await execute(bot, request)
    message = await _message(bot, request)
    messenger = bot.messengers.get(req.transport)
    if messenger is None:
        return message
    try:
        ref = await messenger.post(req.channel_id, message)
    except Exception as exc:  # e.g. not_in_channel: nobody could press Approve, so do not hold the lock
        error = str(exc) if isinstance(exc, MessagePostFailed) else exc.__class__.__name__
        reason = f"the plan could not be posted in this channel ({error})"
        await requests.fail_unstarted(bot.db, request.id, reason, from_state="pending")
        await _audit(bot, request, req.user_id, "failed", reason)
        return Reply.refusal(
            f"Request #{request.id} was withdrawn: {reason}. Invite opsbot to the channel and request it again.", Outcome.error
        )
    await requests.set_message_ref(bot.db, request.id, ref)
    return Reply(text=f"Request #{request.id} is posted and waits for approval.", outcome=Outcome.ok, ephemeral=True)


# Approve and Deny: bot/action/decisions.py.


async def execute(bot, request) -> Reply:
    """approved -> running -> succeeded | failed, after checking again that it may and should run.

    Whatever goes wrong, the request does not stay approved or running: it ends failed
    and its locks are released.
    """
    spec = bot.config.action(request.action)
    try:
        reason = await _still_allowed(bot, request, spec)
    except Exception as exc:
        log.exception("re-checking request #%s failed", request.id)
        reason = f"Request #{request.id} was not run: opsbot could not re-check it ({exc.__class__.__name__})."
    if reason:
        if await requests.fail_unstarted(bot.db, request.id, reason):
            await _audit(bot, request, request.decided_by or request.requested_by, "refused", reason)
            await _update(bot, await requests.get(bot.db, request.id))
        return Reply.refusal(reason, Outcome.denied)
    # The database row decides: exactly one caller, on any replica, moves it approved -> running.
    if not await requests.start(bot.db, request.id):
        return Reply.refusal(f"Request #{request.id} is already running or done.")
    succeeded, summary, logs = False, "", ""
    try:
        request = await requests.get(bot.db, request.id)
        await _audit(bot, request, request.decided_by or request.requested_by, "running")
        await _update(bot, request)
        report = await run_restart(bot, request.plan, requested_by=request.requested_by, channel=request.channel)
        succeeded, summary = report.succeeded, report.summary()
        logs = next((step.logs for step in report.steps if not step.ok), "")
    except Exception as exc:  # the request must never stay 'running'
        log.exception("request #%s crashed", request.id)
        summary = f"opsbot failed while running it ({exc.__class__.__name__}); check the container by hand."
    finally:
        await requests.finish(bot.db, request.id, succeeded, summary or "opsbot stopped while running it; check the container by hand.")
    request = await requests.get(bot.db, request.id)
    await _audit(bot, request, request.decided_by or request.requested_by, "succeeded" if succeeded else "failed", summary)
    await _publish(bot, request, summary)
    message = await _message(bot, request, logs)
    if await _update(bot, request, logs):
        # Everyone sees the edited message; the one who pressed the button gets the outcome in a line.
        return Reply(text=f"Request #{request.id} {request.state}.", ephemeral=True, outcome=message.outcome)
    return message


async def _publish(bot, request, summary: str) -> None:
    """The result, for whoever keeps a record of the channel (an incident's timeline)."""
    approvers = [a.approver for a in await requests.approvers(bot.db, request.id)]
    data = {"action": request.action, "service": request.service, "requester": request.requested_by, "approvers": approvers,
            "plan_hash": request.plan_hash, "outcome": request.state, "verification": summary[:2000]}
    await bot.activity.publish(Activity(request.channel, "action", request.requested_by,
                                        f"{request.action} {request.service}: {request.state}", data))


async def _still_allowed(bot, request, spec) -> str | None:
    services = _services(request.plan)
    # Everyone whose role made the request runnable must still hold it: the requester and each approver.
    people = [("its requester ", request.requested_by, policy.request_roles)]
    people += [("approver ", approval.approver, policy.approver_roles) for approval in await requests.approvers(bot.db, request.id)]
    for who, user, roles_for in people:
        held = await bot.roles.roles_of(user, fresh=True)
        missing = policy.missing_role(held, roles_for, bot.config, spec, services)
        if missing:
            return Text(
                f"Request #{request.id} was not run: {who}",
                Mention(user),
                f" no longer holds the {policy.roles_phrase(missing[1])} role.",
            )
    try:
        current = await restart_plan(bot.config, bot.checks.docker, request.action, spec, request.service, **request.plan["options"])
    except (PlanError, DockerUnavailable) as exc:
        return f"Request #{request.id} was not run: {exc}"
    if plan_hash(current) != request.plan_hash:
        return f"Request #{request.id} was not run: the plan changed since it was approved (config or container); request it again."
    return None


async def sweep_expired(bot) -> int:
    """Expire overdue pending requests and update their messages; run periodically."""
    count = 0
    for request_id in await requests.overdue(bot.db):
        request = await requests.expire(bot.db, request_id)
        if request is not None:
            count += 1
            await _audit(bot, request, "opsbot", "expired")
            await _update(bot, request)
    return count


# An approved request starts within seconds; one still approved after this was left by a stopped process.
STALE_APPROVED_SECONDS = 300
# No restart plan runs longer than this (graceful stops and verifications of a long dependents chain).
STALE_RUNNING_SECONDS = 3600


async def recover_stale(bot) -> int:
    """Fail requests a stopped process left approved or running, so their locks are released."""
    approved, running = await requests.stale(bot.db, approved_for=STALE_APPROVED_SECONDS, running_for=STALE_RUNNING_SECONDS)
    count = 0
    for request_id, state in [(i, "approved") for i in approved] + [(i, "running") for i in running]:
        reason = "opsbot stopped before running it" if state == "approved" else "opsbot stopped while running it; check the container by hand"
        if await requests.fail_unstarted(bot.db, request_id, reason, from_state=state):
            count += 1
            request = await requests.get(bot.db, request_id)
            await _audit(bot, request, "opsbot", "failed", reason)
            await _update(bot, request)
    return count


async def _message(bot, request, logs: str = "") -> Reply:
    spec = bot.config.action(request.action)
    known = [name for name in _services(request.plan) if name in bot.config.services]
    # Approvers need the approving role of every service in the plan: "ops and dbteam".
    phrases = dict.fromkeys(policy.roles_phrase(policy.approver_roles(bot.config, spec, name)) for name in known) if spec else {}
    roles = " and ".join(phrases) or "?"
    approvers = [a.approver for a in await requests.approvers(bot.db, request.id)]
    return request_message(request, approvers, approver_roles=roles, logs=logs)


async def _update(bot, request, logs: str = "") -> bool:
    """Edit the request's message in place; False when there is none to edit."""
    messenger = bot.messengers.get(request.transport)
    if messenger is None or not request.message_ref:
        return False
    try:
        await messenger.update(request.message_ref, await _message(bot, request, logs))
    except Exception as exc:  # the state is in the database; a failed edit must not undo it
        log.error("could not update the message of request #%s: %s", request.id, exc)
        return False
    return True
