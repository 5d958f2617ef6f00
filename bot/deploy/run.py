"""Running a planned deploy or rollback: the record, the steps in the runbooks' order, the outcome told.

The deployment row is opened pending when the approved request starts, moves to in_progress,
and ends success, failure, or rolled_back (verification failed and the old version is back).
The preparing steps (backup, migrate, pull) come first and a failure there changes nothing;
the platform's change step (bot/deploy/container.py, kubernetes.py) verifies and rolls back.
The outcome reaches an incident's timeline through the activity feed; a success is the
postmortem's "fix deployed" milestone.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from bot.action import service as requests
from bot.action.kinds.base import ExecutionReport, Plan, RunContext, StepResult
from bot.activity import Activity
from bot.coordination import AgreedTime, fixed_now
from bot.deploy import container, kubernetes, prepare
from bot.deploy import service as record
from bot.docker_images import ImageGateway

log = logging.getLogger(__name__)

CHANGES = ("replace", "blue_green", "set_image", "undo")
# The running process renews its hold on the row this often; a hold not renewed for LEASE means
# the process stopped, and recovery (bot/deploy/recovery.py) takes the deploy over.
LEASE = timedelta(seconds=60)
RENEW_EVERY = 15.0


def agreed_time(bot) -> AgreedTime:
    return AgreedTime(bot.db.engine.dialect.name, fixed_now(bot.clock))


class Journal:
    """The run's phases on its row: written before each step that needs undoing if the process dies there.

    Each write holds only while this process still holds the row (record.LeaseLost otherwise), so a run
    whose lease lapsed stops before its next change instead of undoing what recovery put back."""

    def __init__(self, db, deployment: int, held_by: str):
        self.db, self.deployment, self.held_by, self.current = db, deployment, held_by, ""

    async def phase(self, name: str, progress: dict | None = None) -> None:
        await record.mark(self.db, self.deployment, name, progress, self.held_by)
        self.current = name

    async def confirm(self) -> None:
        """Before a destructive step that starts no new phase (a rollback's removals): still ours?"""
        await record.mark(self.db, self.deployment, self.current, None, self.held_by)


async def hold_lease(bot, deployment: int, replica: str, run_task: asyncio.Task | None = None) -> None:
    """Renew the row's lease while the run lasts (cancelled when it ends); when a renewal is refused,
    `run_task` is cancelled, since another process now owns the deploy."""
    while True:
        await asyncio.sleep(RENEW_EVERY)
        try:
            if not await record.renew(bot.db, deployment, replica, agreed_time(bot), LEASE):
                log.error("deployment #%s: another process took it over (this one stalled past its lease); stopping", deployment)
                if run_task is not None:
                    run_task.cancel()
                return
        except Exception as exc:  # a database blip: the next renewal tries again, within the lease
            log.warning("deployment #%s: renewing its lease failed: %s", deployment, exc.__class__.__name__)


def change_of(plan: Plan) -> dict:
    return next(step for step in plan.steps if step["step"] in CHANGES)


async def run(ctx: RunContext, spec, plan: Plan, operation: str) -> ExecutionReport:
    bot, step = ctx.bot, change_of(plan)
    platform = "kubernetes" if step["step"] in ("set_image", "undo") else "container"
    approvers = [a.approver for a in await requests.approvers(bot.db, ctx.request_id)] if ctx.request_id else []
    replica = bot.scheduler.replica
    deployment = await record.open_deployment(
        bot.db, service=step["service"], operation=operation, platform=platform, from_version=step.get("from_version"),
        to_version=step["version"], from_image=step.get("from_image") or _first_image(step), to_image=None,
        request_id=ctx.request_id, requested_by=ctx.requested_by, approved_by=approvers, channel=ctx.channel, now=bot.clock.now(),
        plan=plan.to_json(), held_by=replica, lease=(agreed_time(bot), LEASE),
    )
    steps = asyncio.create_task(_steps(ctx, spec, plan, deployment, step, platform, replica), name=f"deployment-{deployment}-steps")
    holding = asyncio.create_task(hold_lease(bot, deployment, replica, steps), name=f"deployment-{deployment}-lease")
    try:
        report, state, new_image = await steps
    except asyncio.CancelledError:
        if not _refused(holding):
            raise  # cancelled from outside, not by a lost lease
        return _stopped(step, deployment)
    except record.LeaseLost:
        return _stopped(step, deployment)
    finally:
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding
    await finish(ctx, deployment, state, report, step, operation, new_image)
    return report


def _refused(holding: asyncio.Task) -> bool:
    """hold_lease ended by itself: its renewal was refused."""
    return holding.done() and not holding.cancelled() and holding.exception() is None


def _stopped(step: dict, deployment: int) -> ExecutionReport:
    return ExecutionReport([StepResult(step["service"], False, (
        f"{step['service']}: opsbot stalled past its hold on deployment #{deployment} and another process took it over, "
        "so this one stopped without changing anything more; that process finishes it"))])


async def _steps(ctx: RunContext, spec, plan: Plan, deployment: int, step: dict, platform: str,
                 replica: str) -> tuple[ExecutionReport, str, str | None]:
    """The steps in order; (the report, the row's end state, the new image's id). The image created is
    the id the pull step got and checked, so re-tagging the tag meanwhile cannot change what runs."""
    bot, journal = ctx.bot, Journal(ctx.bot.db, deployment, replica)
    await record.move(bot.db, deployment, "pending", "in_progress")
    report, images = ExecutionReport(), ImageGateway(bot.checks.docker)
    image = step.get("image")
    for prior in plan.steps:
        if prior is step:
            break
        await journal.phase("prepare", {"step": prior["step"]})
        result, pulled = await prepare.run(ctx, prior, images, deployment)
        report.steps.append(result)
        if not result.ok:
            return report, "failure", None
        if pulled is not None and prior["image"] == step.get("image"):
            image = pulled
    if platform == "container":
        results, state, new_image = await container.apply(ctx, plan, step, image, journal)
    else:
        results, state, new_image = await kubernetes.apply(ctx, spec, plan, step, journal)
    report.steps.extend(results)
    return report, state, new_image


def _first_image(step: dict) -> str | None:
    images = step.get("images")  # a rollout undo's goal, as k8s_rollout_undo plans it
    return images.split(", ")[0] if images else None


async def finish(ctx: RunContext, deployment: int, state: str, report: ExecutionReport, step: dict, operation: str,
                 new_image: str | None, said: str | None = None) -> bool:
    """The row to its end state and the outcome on the activity feed (an incident's timeline); False when
    the row had already ended (recovery finished it meanwhile), and then nothing is published."""
    bot = ctx.bot
    summary = report.summary().replace("\n", "; ")
    if state == "rolled_back":
        if not await record.move(bot.db, deployment, "in_progress", "failure", detail=summary, to_image=new_image):
            return False
        await record.move(bot.db, deployment, "failure", "rolled_back", now=bot.clock.now())
    elif not await record.move(bot.db, deployment, "in_progress", state, now=bot.clock.now(), detail=summary, to_image=new_image):
        return False
    said = said or {"success": "done", "failure": "failed", "rolled_back": "failed and was rolled back"}[state]
    text = f"{operation} of {step['service']} to {step['version']}: {said}"
    data = {"service": step["service"], "operation": operation, "version": step["version"], "from_version": step.get("from_version"),
            "state": state, "deployment": deployment, "summary": summary[:2000]}
    if state == "success":
        data["milestone"] = "fix_deployed"  # the postmortem's "Fix deployed" (bot/incident/postmortem.py)
    await bot.activity.publish(Activity(ctx.channel, "deploy", ctx.requested_by, text, data))
    return True
