"""A deploy's migration (runbook 002: `docker compose run --rm backend python manage.py migrate`), from the NEW image.

The migration that must run is the new release's, so it runs in a one-off container made from
the new image with the service container's environment, mounts and network, and removed
afterwards (bot/docker_images.py run_once). Its dry run must show in the approval, so the image
is pulled when the plan is made: the plan names the image id both ran from, and the run-time pull
must find the tag still pointing there. Output is kept as a job's is: a bounded tail, redacted.
"""
from __future__ import annotations

import asyncio
import time
import uuid

from bot.action.kinds.base import PlanContext, PlanError, RunContext, StepResult
from bot.action.kinds.docker_exec import output_tail
from bot.docker_engine import DockerUnavailable
from bot.docker_images import ImageGateway
from bot.job.service import record_dry_run, use

ONE_OFF_LABEL = "opsbot.deploy.one-off"  # its value: deployment-<id>, or plan-<service> for a dry run


def _name(container: str, what: str) -> str:
    return f"{container}-{what}-{uuid.uuid4().hex[:8]}"


async def image_for_plan(ctx: PlanContext, reference: str, timeout: float, pull: bool) -> str:
    """The new image's id: pulled now (a new plan), or the one already here (re-checking an approved plan)."""
    images = ImageGateway(ctx.bot.checks.docker)
    try:
        found = None if pull else await images.image(reference)
        return found["Id"] if found is not None else await images.pull(reference, timeout)
    except DockerUnavailable as exc:
        raise PlanError(f"{str(exc).rstrip('.')}; nothing was requested.") from None


async def plan_step(ctx: PlanContext, service: str, job_name: str, info: dict, image: str, image_id: str,
                    dry_run: dict | None) -> tuple[dict, str]:
    """The migrate step and its dry run's output; the dry run runs now, unless `dry_run` (an approved plan's) is given."""
    job = ctx.config.jobs[job_name]
    container = ctx.config.services[service].container
    output = ""
    if dry_run is None:
        images = ImageGateway(ctx.bot.checks.docker)
        try:
            result, killed = await images.run_once(info, image_id, list(job.dry_run), _name(container, "migrate-plan"),
                                                   {ONE_OFF_LABEL: f"plan-{service}"}, job.timeout)
        except DockerUnavailable as exc:
            raise PlanError(f"The dry run of migration {job_name} could not run: {str(exc).rstrip('.')}; nothing was requested.") from None
        if killed:
            raise PlanError(f"The dry run of migration {job_name} did not finish within {job.timeout:g} s; nothing was requested.")
        # Redacting up to 256 KiB of output is CPU work: off the event loop.
        output = await asyncio.to_thread(output_tail, result.output)
        row = await record_dry_run(ctx.bot.db, job_name, ctx.user, ctx.bot.clock.now(), result.exit_code, output)
        if row.exit_code != 0:
            raise PlanError(f"The dry run #{row.id} of migration {job_name} failed (exit {row.exit_code}); nothing was requested.")
        dry_run = {"id": row.id, "at": row.at.isoformat(), "exit_code": row.exit_code}
    step = {"step": "migrate", "job": job_name, "service": service, "container": container, "container_id": info["Id"],
            "image": image, "image_id": image_id, "argv": list(job.command), "timeout": job.timeout, "dry_run": dry_run}
    return step, output


def describe(step: dict) -> str:
    return (f"run migration {step['job']} from {step['image']} (image {step['image_id'][7:19]}) in a one-off container with "
            f"{step['container']}'s environment, mounts and network, removed afterwards: {' '.join(step['argv'])} "
            f"(no shell; its dry run #{step['dry_run']['id']} from the same image exited {step['dry_run']['exit_code']})")


async def run(ctx: RunContext, step: dict, deployment: int, unchanged: str) -> StepResult:
    """The approved migration, once (its dry run is spent), in a one-off container of the approved image."""
    service, label = step["service"], f"migration {step['job']}"
    if not await use(ctx.bot.db, step["dry_run"]["id"], ctx.bot.clock.now()):
        return StepResult(service, False, f"{label}: its dry run #{step['dry_run']['id']} was already used; {unchanged}.")
    docker = ctx.bot.checks.docker
    started = time.perf_counter()
    try:
        info = await docker.inspect(step["container_id"])
        if info is None:
            raise DockerUnavailable(f"container {step['container']} was replaced or removed since the plan was made")
        result, killed = await ImageGateway(docker).run_once(info, step["image_id"], step["argv"], _name(step["container"], "migrate"),
                                                             {ONE_OFF_LABEL: f"deployment-{deployment}"}, step["timeout"])
    except DockerUnavailable as exc:
        return StepResult(service, False, f"{label}: {exc}; the deploy stopped before the new version started")
    logs = await asyncio.to_thread(output_tail, result.output)
    if killed:
        return StepResult(service, False, f"{label}: no exit within {step['timeout']:g} s, so it was stopped and may be partly applied; "
                                          "the deploy stopped before the new version started", logs)
    summary = f"{label}: exit {result.exit_code} after {time.perf_counter() - started:.1f} s (image {step['image_id'][7:19]})"
    if result.exit_code != 0:
        summary += "; the deploy stopped before the new version started"
    return StepResult(service, result.exit_code == 0, summary, logs)
