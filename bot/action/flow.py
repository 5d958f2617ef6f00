"""Request, execute, recover: the guarded-action flow every transport and every action kind goes through.

Approve and Deny are in decisions.py. The flow knows an action only through its kind
(bot/action/kinds/): parameters, plan, describe, recheck, execute. Every step is written
to the audit log before the user gets an answer.
"""
from __future__ import annotations

import logging
import time

from bot.action import policy
from bot.action import service as requests
from bot.action.kinds import kind_of
from bot.action.kinds.base import ExecutionReport, Plan, PlanContext, PlanError, RunContext, Target
from bot.action.params import BadParameter, parse_params
from bot.action.views import request_message, when
from bot.activity import Activity
from bot.audit import service as audit
from bot.config.action_models import DEFAULT_ACTIONS
from bot.docker_engine import DockerUnavailable
from bot.maintenance.service import notes_for as maintenance_notes
from bot.pipeline.markup import Mention, Text
from bot.pipeline.messenger import MessagePostFailed
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply, Section
from bot.storage import utcnow

log = logging.getLogger(__name__)

PROGRESS_EVERY = 2.0  # seconds between edits of a running request's message


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


def plan_of(request) -> Plan:
    return Plan.from_json(request.plan)


def _sentence(exc: Exception) -> str:
    sentence = str(exc)
    return sentence if sentence.endswith(".") else f"{sentence}; nothing was requested."


async def request_action(bot, req, action: str, raw_params: dict[str, str]) -> Reply:
    """Plan `action` with the parameters as typed, check who asks, and open a request for approval.

    Read-only kinds run at once for anyone holding a role on their targets; an action with
    approvals: 0 runs at once too, on the record like any other.
    """
    config = bot.config
    spec = config.action(action)
    if spec is None:
        known = ", ".join(sorted(set(config.actions) | set(config.jobs) | set(DEFAULT_ACTIONS)))
        return Reply.refusal(f"There is no action '{action[:40]}' in app.yaml. Actions: {known}.")
    kind = kind_of(spec)
    raw = {name: value for name, value in raw_params.items() if value is not None}
    try:
        params = parse_params(kind.params(spec), raw, config)
    except BadParameter as exc:
        return Reply.refusal(str(exc), Outcome.usage_error)
    ctx = PlanContext(bot, req.user_id)
    # Roles first where the parameters name the targets, so nobody learns about what they may not touch.
    named = _named_targets(kind, spec, params)
    refusal = await policy.request_refusal(bot.roles, config, spec, named, req.user_id, kind.verb) if named else None
    if refusal:
        return Reply.refusal(refusal, Outcome.denied)
    try:
        plan = await kind.plan(ctx, action, spec, params)
    except (PlanError, DockerUnavailable) as exc:
        return Reply.refusal(_sentence(exc), Outcome.error)
    refusal = await policy.request_refusal(bot.roles, config, spec, plan.targets, req.user_id, kind.verb)
    if refusal:
        return Reply.refusal(refusal, Outcome.denied)
    if kind.read_only:
        return await _run_read_only(bot, req, kind, spec, plan)
    if spec.approval.approvals and req.trigger == "cli":
        return Reply.refusal(
            f"/{req.command} needs an approval, which opsbot run cannot collect; use opsbot shell or Slack.", Outcome.usage_error
        )
    # Overdue requests are expired first (audited, message edited) so their locks are free.
    await sweep_expired(bot)
    try:
        request = await requests.open_request(
            bot.db,
            action=action,
            service=plan.subject,
            plan=plan.to_json(),
            plan_hash=plan.hash,
            requester=req.user_id,
            channel=req.channel_id,
            team=req.team_id,
            transport=req.transport,
            approvals_needed=spec.approval.approvals,
            expires_in=spec.approval.expires,
            locks=[t.key for t in plan.targets],
        )
    except requests.Locked as exc:
        holder = exc.holder
        if holder is None:
            return Reply.refusal(f"{plan.subject} is busy with another action; try again in a minute.", Outcome.usage_error)
        return Reply.refusal(
            Text(
                f"{holder.service} is locked by request #{holder.request_id} (/{holder.action} by ",
                Mention(holder.holder),
                f") since {when(holder.since)}; wait for it to finish or be decided (its requester or an approver can withdraw it: /run cancel {holder.request_id}).",
            ),
            Outcome.usage_error,
        )
    await _audit(bot, request, req.user_id, "requested", f"plan {request.plan_hash[:16]}")
    message = await _message(bot, request)
    messenger = bot.messengers.get(req.transport)
    if request.state == "approved":  # approvals: 0
        if messenger is not None:
            # Posted first, so a long run (a dump) shows its progress on it; without it, it still runs.
            try:
                await requests.set_message_ref(bot.db, request.id, await messenger.post(req.channel_id, message))
            except Exception as exc:
                log.warning("could not post request #%s before running it: %s", request.id, exc)
        return await execute(bot, await requests.get(bot.db, request.id))
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


def _named_targets(kind, spec, params: dict) -> list:
    """Targets the typed parameters name outright (a service=, database= or cache= parameter)."""
    found = []
    for name, param in kind.params(spec).items():
        if param.type in ("service", "database", "cache") and params.get(name):
            found.append(Target(param.type, params[name]))
    return found


async def _run_read_only(bot, req, kind, spec, plan: Plan) -> Reply:
    """A read-only kind: no request, no lock; on the audit log like every action."""
    ctx = _run_context(bot, None, req.user_id, req.channel_id)
    try:
        report = await kind.execute(ctx, spec, plan)
    except Exception as exc:
        log.exception("read-only action %s crashed", plan.action)
        report = ExecutionReport()
        summary = f"/{plan.action} failed ({exc.__class__.__name__})."
    else:
        summary = report.summary()
    await audit.record(
        bot.db, user_id=req.user_id, command=plan.action, arguments=plan.subject, channel=req.channel_id,
        transport=req.transport, outcome="succeeded" if report.succeeded else "failed", detail=summary[:500], target=plan.subject,
    )
    blocks = [Header(f"/{plan.action} {plan.subject}"), Context(summary)]
    body = "\n".join(step.logs for step in report.steps if step.logs)
    if body:
        blocks.append(Preformatted(body))
    return Reply(text=f"{summary}\n{body}".rstrip(), blocks=blocks, outcome=Outcome.ok if report.succeeded else Outcome.error)


def _run_context(bot, request, user: str, channel: str) -> RunContext:
    last = [0.0]

    async def progress(line: str) -> None:
        # At most one edit every PROGRESS_EVERY seconds: Slack rate-limits chat.update, and nobody reads faster.
        if request is None or time.monotonic() - last[0] < PROGRESS_EVERY:
            return
        last[0] = time.monotonic()
        await _update(bot, await requests.get(bot.db, request.id), progress=line)

    async def audit_step(outcome: str, detail: str) -> None:
        if request is not None:
            await _audit(bot, request, user, outcome, detail)

    return RunContext(bot, request.id if request else None, user, channel, progress, audit_step)


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
        ctx = _run_context(bot, request, request.requested_by, request.channel)
        report = await kind_of(spec).execute(ctx, spec, plan_of(request))
        succeeded, summary, logs = report.succeeded, report.summary(), report.logs
    except Exception as exc:  # the request must never stay 'running'
        log.exception("request #%s crashed", request.id)
        summary = f"opsbot failed while running it ({exc.__class__.__name__}); check the {_thing(spec)} by hand."
    finally:
        finished = await requests.finish(bot.db, request.id, succeeded, summary or f"opsbot stopped while running it; check the {_thing(spec)} by hand.")
    request = await requests.get(bot.db, request.id)
    if not finished:  # recovery took it for abandoned meanwhile: the record says both
        summary = f"(it ran past its limit and had been marked failed) {summary}"
    await _audit(bot, request, request.decided_by or request.requested_by, "succeeded" if succeeded else "failed", summary)
    await _publish(bot, request, summary)
    message = await _message(bot, request, logs)
    if await _update(bot, request, logs):
        # Everyone sees the edited message; the one who pressed the button gets the outcome in a line.
        return Reply(text=f"Request #{request.id} {request.state}.", ephemeral=True, outcome=message.outcome)
    return message


def _thing(spec) -> str:
    return kind_of(spec).thing if spec is not None else "target"


async def _publish(bot, request, summary: str) -> None:
    """The result, for whoever keeps a record of the channel (an incident's timeline)."""
    approvers = [a.approver for a in await requests.approvers(bot.db, request.id)]
    data = {"action": request.action, "service": request.service, "requester": request.requested_by, "approvers": approvers,
            "plan_hash": request.plan_hash, "outcome": request.state, "verification": summary[:2000]}
    await bot.activity.publish(Activity(request.channel, "action", request.requested_by,
                                        f"{request.action} {request.service}: {request.state}", data))


async def _still_allowed(bot, request, spec) -> str | None:
    if spec is None:
        return f"Request #{request.id} was not run: app.yaml no longer declares /{request.action}."
    plan = plan_of(request)
    if spec.kind != plan.kind:
        return f"Request #{request.id} was not run: /{request.action} is a different kind of action now; request it again."
    # Everyone whose role made the request runnable must still hold it: the requester and each approver.
    people = [("its requester ", request.requested_by, policy.request_roles)]
    people += [("approver ", approval.approver, policy.approver_roles) for approval in await requests.approvers(bot.db, request.id)]
    for who, user, roles_for in people:
        held = await bot.roles.roles_of(user, fresh=True)
        missing = policy.missing_role(held, roles_for, bot.config, spec, plan.targets)
        if missing:
            return Text(
                f"Request #{request.id} was not run: {who}",
                Mention(user),
                f" no longer holds the {policy.roles_phrase(missing[1])} role.",
            )
    try:
        problem = await kind_of(spec).recheck(PlanContext(bot, request.requested_by), spec, plan)
    except DockerUnavailable as exc:
        problem = str(exc)
    if problem:
        return f"Request #{request.id} was not run: {problem}"
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
# No plan runs longer than this, unless its action's timeout is longer (a dump of a big database).
STALE_RUNNING_SECONDS = 3600
RUNNING_GRACE_SECONDS = 600  # past the action's own timeout


def _running_limit(bot, request) -> float:
    spec = bot.config.action(request.action)
    plan = plan_of(request)
    if spec is None or spec.kind != plan.kind:
        return STALE_RUNNING_SECONDS
    return max(STALE_RUNNING_SECONDS, kind_of(spec).max_runtime(spec, plan) + RUNNING_GRACE_SECONDS)


async def recover_stale(bot) -> int:
    """Fail requests a stopped process left approved or running, so their locks are released."""
    approved, running = await requests.stale(bot.db, approved_for=STALE_APPROVED_SECONDS, running_for=STALE_RUNNING_SECONDS)
    now = utcnow()
    overdue = []
    for request_id in running:
        request = await requests.get(bot.db, request_id)
        if request.started_at and (now - request.started_at).total_seconds() >= _running_limit(bot, request):
            overdue.append(request_id)
    count = 0
    for request_id, state in [(i, "approved") for i in approved] + [(i, "running") for i in overdue]:
        spec = bot.config.action((await requests.get(bot.db, request_id)).action)
        reason = "opsbot stopped before running it" if state == "approved" else f"opsbot stopped while running it; check the {_thing(spec)} by hand"
        if await requests.fail_unstarted(bot.db, request_id, reason, from_state=state):
            count += 1
            request = await requests.get(bot.db, request_id)
            await _audit(bot, request, "opsbot", "failed", reason)
            await _update(bot, request)
    return count


async def end_interrupted(bot, request_id: int, succeeded: bool, summary: str) -> None:
    """End a running request whose process stopped, once another process finished its work (an
    interrupted deploy, bot/deploy/recovery.py): its locks released, on the audit trail, its message
    edited, and the channel told in a message of its own, since nobody may be watching the old one."""
    finished = await requests.finish(bot.db, request_id, succeeded, summary)
    request = await requests.get(bot.db, request_id)
    if request is None:
        return
    if finished:  # the sweep may have failed it already (it ran past its limit): the record keeps that
        await _audit(bot, request, "opsbot", "succeeded" if succeeded else "failed", summary)
        await _publish(bot, request, summary)
        await _update(bot, request)
    messenger = bot.messengers.get(request.transport)
    if messenger is None:
        return
    sentence = f"Request #{request.id} (/{request.action} {request.service}): {summary}"
    try:
        await messenger.post(request.channel, Reply(text=sentence, blocks=[Section(sentence)], outcome=Outcome.ok if succeeded else Outcome.error))
    except Exception as exc:  # the record says it; a channel that cannot be posted to must not undo it
        log.error("could not tell the channel of request #%s how it was recovered: %s", request.id, exc)


async def _message(bot, request, logs: str = "", progress: str = "") -> Reply:
    spec = bot.config.action(request.action)
    plan = plan_of(request)
    known = [t for t in plan.targets if policy.exists(bot.config, t)]
    # Approvers need the approving role of every target in the plan: "ops and dbteam".
    phrases = dict.fromkeys(policy.roles_phrase(policy.approver_roles(bot.config, spec, t)) for t in known) if spec else {}
    roles = " and ".join(phrases) or "?"
    approvers = [a.approver for a in await requests.approvers(bot.db, request.id)]
    kind = kind_of(spec) if spec is not None and spec.kind == plan.kind else None
    steps = kind.describe(plan) if kind else [f"{step}" for step in plan.steps]
    notes = [*(kind.notes(plan) if kind else []), *await maintenance_notes(bot, plan.services())]
    return request_message(request, plan, steps, notes, approvers, approver_roles=roles, logs=logs, progress=progress)


async def _update(bot, request, logs: str = "", progress: str = "") -> bool:
    """Edit the request's message in place; False when there is none to edit."""
    messenger = bot.messengers.get(request.transport)
    if messenger is None or not request.message_ref:
        return False
    try:
        await messenger.update(request.message_ref, await _message(bot, request, logs, progress))
    except Exception as exc:  # the state is in the database; a failed edit must not undo it
        log.error("could not update the message of request #%s: %s", request.id, exc)
        return False
    return True

