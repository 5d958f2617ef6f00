"""Interrupted deploys: a deployment whose process died is finished by another, from its row.

The running process holds a lease on its row and writes its phase before each stretch that would
need undoing (bot/deploy/run.py). A periodic scheduler job looks for unfinished rows whose lease
ran out, takes each over once across replicas (a conditional UPDATE judged by the database's
clock), and decides from the phase:
- before the service was touched (prepare: backup, pull, migration): nothing to put back; the
  migration's one-off container goes, and the sentence says a migration may be partly applied;
- mid-change (change, switching): the previous version is put back, as the run's own automatic
  rollback would (the kept `-previous-` container started again and the half-made new one removed;
  blue-green traffic switched back; a Kubernetes workload's images set back), then verified;
- verified: the new version had passed, only the cleanup was missing; it is done and the row is
  marked success.
The row ends rolled_back, failure or success with one sentence saying opsbot was interrupted; the
request ends with it (its locks released), the channel is told and the timeline hears it. A
recovery that cannot finish (the Engine is down) leaves the row held until its lease runs out, and
the next pass tries again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from bot.action import flow
from bot.action.kinds.base import ExecutionReport, Plan, RunContext, StepResult
from bot.action.kinds.docker_health import wait_healthy
from bot.action.kinds.k8s_plan import kubernetes_target
from bot.action.kinds.target_health import wait_settled
from bot.deploy import container, kubernetes, migration
from bot.deploy import service as record
from bot.deploy.run import LEASE, hold_lease, agreed_time, change_of, finish
from bot.docker_engine import DockerUnavailable
from bot.docker_images import ImageGateway
from bot.schedule import JobType
from bot.targets import TargetError, Workload

log = logging.getLogger(__name__)

RECOVER = "deploy.recover"


async def recover_interrupted(bot, job=None) -> int:
    """Finish every deploy whose process stopped; how many were taken over here."""
    at, replica, count = agreed_time(bot), bot.scheduler.replica, 0
    for deployment in await record.lapsed(bot.db, at):
        if not await record.take_over(bot.db, deployment, replica, at, LEASE):
            continue  # another replica took it
        count += 1
        holding = asyncio.create_task(hold_lease(bot, deployment, replica), name=f"deployment-{deployment}-recovery")
        try:
            await _recover(bot, await record.get(bot.db, deployment))
        except Exception:  # the Engine is down, say: the row stays held until its lease runs out, then a pass tries again
            log.exception("recovering deployment #%s failed; it is tried again once its lease runs out", deployment)
        finally:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
    return count


async def _noop(*_args) -> None:
    return None


async def _recover(bot, row) -> None:
    if row.plan is None:  # opened without its plan (not by run.py): nothing to undo from, only the record to end
        await record.move(bot.db, row.id, "pending", "in_progress")
        await record.move(bot.db, row.id, "in_progress", "failure", now=bot.clock.now(),
                          detail=f"opsbot was interrupted during this {row.operation}, which kept no plan: check {row.service} by hand")
        return
    plan = Plan.from_json(row.plan)
    step = change_of(plan)
    ctx = RunContext(bot, row.request_id, row.requested_by, row.channel, _noop, _noop)
    what = f"the {row.operation} of {step['service']} to {step['version']}"
    was = step.get("from_version") or "the previous version"
    if row.phase in ("", "prepare"):
        results, state = await _untouched(ctx, plan, step, row), "failure"
        said = f"opsbot was interrupted during {what} before it changed the service, so {was} kept running"
        if (row.progress or {}).get("step") == "migrate":
            said += f"; migration {_migration(plan)} may have been partly applied: check it before deploying again"
    elif row.phase == "verified":
        results = await _complete(ctx, step)
        state = "success" if all(r.ok for r in results) else "failure"
        said = f"opsbot was interrupted after {step['version']} passed its checks; it finished {what}"
        if state == "failure":
            said += ", but its cleanup failed: check it by hand"
    else:
        results, state = await _put_back(ctx, plan, step, row)
        said = {"rolled_back": f"opsbot was interrupted during {what}, so it put {was} back",
                "failure": f"opsbot was interrupted during {what} and could not put {was} back: check {step['service']} by hand"}[state]
        if state == "failure" and results and results[0].summary.endswith("nothing on it was changed"):
            said = f"opsbot was interrupted during {what} before it changed the service, so {was} kept running"
    report = ExecutionReport([StepResult(step["service"], state == "success", said), *results])
    await record.move(bot.db, row.id, "pending", "in_progress")  # a row its process left before its first step
    new_image = await _running_image(ctx, step) if state == "success" else None
    if not await finish(ctx, row.id, state, report, step, row.operation, new_image, said=said):
        return  # ended meanwhile (its own process came back): nothing more to say
    if row.request_id is not None:
        await flow.end_interrupted(bot, row.request_id, state == "success", said + ".")


def _migration(plan: Plan) -> str:
    return next((s["job"] for s in plan.steps if s["step"] == "migrate"), "?")


async def _untouched(ctx: RunContext, plan: Plan, step: dict, row) -> list[StepResult]:
    """Interrupted while preparing: only a migration's one-off container may be left; it goes."""
    if (row.progress or {}).get("step") != "migrate":
        return []
    try:
        removed = await ImageGateway(ctx.bot.checks.docker).remove_labelled(migration.ONE_OFF_LABEL, f"deployment-{row.id}")
    except DockerUnavailable as exc:
        raise RuntimeError(f"deployment #{row.id}: the migration container could not be removed ({exc})") from None
    return [StepResult(step["service"], True, f"{step['service']}: removed {removed} migration container(s) left running")] if removed else []


async def _put_back(ctx: RunContext, plan: Plan, step: dict, row) -> tuple[list[StepResult], str]:
    if step["step"] == "replace":
        return await _replace_back(ctx, plan, step)
    if step["step"] == "blue_green":
        return await _blue_green_back(ctx, plan, step, row.phase == "switching")
    return await _images_back(ctx, plan, step, (row.progress or {}).get("images") or {})


async def _replace_back(ctx: RunContext, plan: Plan, step: dict) -> tuple[list[StepResult], str]:
    """The kept old container back under its name and running; the half-made new one removed."""
    docker, images, service = ctx.bot.checks.docker, ImageGateway(ctx.bot.checks.docker), step["service"]
    old = await docker.inspect(step["container_id"])
    if old is None:
        return [StepResult(service, False, f"{service}: the old container {step['container_id'][:12]} is gone")], "failure"
    named = await docker.inspect(step["container"])
    new_id = named["Id"] if named is not None and named["Id"] != step["container_id"] else None
    in_place = old["Name"].lstrip("/") == step["container"]
    if in_place and new_id is None and old["State"]["Running"]:
        return [StepResult(service, False, f"{service}: nothing on it was changed")], "failure"
    try:
        if new_id is not None:
            await images.remove(new_id)
        if not in_place:
            await images.rename(step["container_id"], step["container"])
        if not old["State"]["Running"]:
            await docker.start(step["container_id"])
    except DockerUnavailable as exc:
        return [StepResult(service, False, f"{service}: putting the old container back failed ({exc})")], "failure"
    removed = f", the new one {new_id[:12]} removed" if new_id else ""
    result = await wait_healthy(ctx, service, step["container"], plan.verify,
                                f"the old container {step['container_id'][:12]} ({step['from_version']}) is running again{removed}")
    return [result], "rolled_back" if result.ok else "failure"


async def _blue_green_back(ctx: RunContext, plan: Plan, step: dict, switched: bool) -> tuple[list[StepResult], str]:
    """Traffic back to the old color (when a switch may have happened), the new color removed."""
    docker, images, service = ctx.bot.checks.docker, ImageGateway(ctx.bot.checks.docker), step["service"]
    results = [await container.switch(ctx, step, "back")] if switched else []
    try:
        await images.remove(step["new_name"])
        old = await docker.inspect(step["container_id"])
        if old is not None and not old["State"]["Running"]:
            await docker.start(step["container_id"])
    except DockerUnavailable as exc:
        return [*results, StepResult(service, False, f"{service}: removing {step['new_name']} failed ({exc})")], "failure"
    if results and not results[0].ok:
        return results, "failure"
    result = await wait_healthy(ctx, service, step["container"], plan.verify,
                                f"{step['from_color']} ({step['from_version']}) serves, {step['new_name']} removed")
    return [*results, result], "rolled_back" if result.ok else "failure"


async def _images_back(ctx: RunContext, plan: Plan, step: dict, before: dict[str, str]) -> tuple[list[StepResult], str]:
    """A Kubernetes workload's container images set back to what they were before the change."""
    service = step["service"]
    adapter, target = kubernetes_target(ctx, service, plan.action)
    detail = kubernetes.workload_of(step)
    try:
        now = kubernetes.images_of(await adapter.read_workload(target))
        changed = [{"name": name, "image": image} for name, image in before.items() if now.get(name) != image]
        if not changed:
            return [StepResult(service, False, f"{service}: nothing on it was changed")], "failure"
        await adapter.patch(detail, {"spec": {"template": {"spec": {"containers": changed}}}}, "set the image of")
    except TargetError as exc:
        return [StepResult(service, False, f"{service}: setting the images back failed: {exc}")], "failure"
    shown = Workload("kubernetes", service, f"{detail['kind'].lower()} {detail['namespace']}/{detail['name']}", step["uid"], (), detail)
    images = ", ".join(c["image"] for c in changed)
    result = await wait_settled(ctx, adapter, shown, plan.verify, f"set back to {images}")
    return [result], "rolled_back" if result.ok else "failure"


async def _complete(ctx: RunContext, step: dict) -> list[StepResult]:
    """The cleanup after a verified change: the old container goes, the replaced image is kept."""
    if step["step"] not in ("replace", "blue_green"):
        return []
    docker, images, service = ctx.bot.checks.docker, ImageGateway(ctx.bot.checks.docker), step["service"]
    done = StepResult(service, True, f"{service}: {step['version']} kept running")
    try:
        if step["step"] == "replace":
            await images.remove(step["container_id"])
        else:
            new = await docker.inspect(step["new_name"])
            if new is not None:
                await container.retire(ctx, step, new["Id"])
    except DockerUnavailable as exc:
        return [StepResult(service, False, f"{service}: retiring the old version failed ({exc})")]
    await container.keep(images, step, done, ctx)
    return [done]


async def _running_image(ctx: RunContext, step: dict) -> str | None:
    if step["step"] in ("set_image", "undo"):
        return step.get("image") or step.get("images")
    return (await ctx.bot.checks.docker.inspect(step["container"]) or {}).get("Image")


JOBS = [JobType(RECOVER, recover_interrupted, every=timedelta(seconds=30), lease=timedelta(minutes=15))]
