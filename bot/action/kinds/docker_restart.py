"""docker_restart: restart a service's container (and, on request, its dependents), then prove it healthy.

The plan names each container by id: the container approvers saw, not whatever holds the
name when it runs. --force-recreate makes a new container from the same image and settings
(runbook 000 section 1.1: an OOM-killed container a plain restart does not clear).
"""
from __future__ import annotations

import time

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.kinds.docker_health import container_logs, wait_healthy
from bot.action.params import ParamType
from bot.demo_fleet import missing_hint
from bot.docker_engine import DockerUnavailable
from bot.memory_kill import memory_kill


async def service_steps(ctx: PlanContext, service: str, targets: list[str], operation: str, timeout: float, verb: str) -> tuple[list[dict], list[str]]:
    """One step per target with a container (by id, as inspected now); the others are skipped.

    The first target must have a container: without one there is nothing to act on.
    """
    steps, skipped = [], []
    for name in targets:
        container = ctx.config.services[name].container
        if container is None:
            if name == service:
                raise PlanError(f"{service} has no container in app.yaml, so there is nothing to {verb}.")
            skipped.append(name)
            continue
        try:
            info = await ctx.bot.checks.docker.inspect(container)
        except DockerUnavailable as exc:
            raise PlanError(f"{exc}; nothing was requested.") from None
        if info is None:
            raise PlanError(f"Container {container} of {name} does not exist on the Docker Engine{missing_hint(container)}; nothing was requested.")
        steps.append(
            {
                "service": name,
                "container": container,
                "container_id": info["Id"],
                "operation": operation if name == service or operation != "recreate" else "restart",
                "graceful_timeout": timeout,
                "oom_killed": memory_kill(info),
            }
        )
    return steps, skipped


def restart_plan(action: str, kind: str, spec, params: dict, steps: list[dict], skipped: list[str], killed: dict[str, str | None]) -> Plan:
    """A restart's plan (this kind's and the generic restart's). Its facts are not hashed: the
    services without a target, and those OOM-killed (service -> the reading), which notes() turns
    into the --force-recreate advice."""
    return Plan(
        action=action,
        kind=kind,
        subject=params["service"],
        params=params,
        steps=steps,
        targets=[Target("service", s["service"]) for s in steps],
        verify=spec.verify.model_dump() if spec.verify else None,
        facts={
            "skipped": skipped,
            "oom_killed": [name for name, reading in killed.items() if reading],
            "memory_kills": {name: reading for name, reading in killed.items() if reading},
        },
    )


class DockerRestart(ActionKind):
    name = "docker_restart"
    thing = "container"
    verb = "restart"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The service whose container restarts."),
            "with_dependents": ParamType("bool", "Also restart what depends on it, in order.", default=False, required=False),
            "force_recreate": ParamType("bool", "Make a new container instead of restarting the old one.", default=False, required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        with_dependents, force_recreate = bool(params.get("with_dependents")), bool(params.get("force_recreate"))
        targets = [service] + (ctx.config.dependents_of(service) if with_dependents else [])
        steps, skipped = await service_steps(ctx, service, targets, "recreate" if force_recreate else "restart", spec.timeout, "restart")
        # oom_killed describes the target, it is not part of what runs (a restart clears it): a fact, not hashed.
        killed = {s["service"]: s.pop("oom_killed") for s in steps}
        params = {"service": service, "with_dependents": with_dependents, "force_recreate": force_recreate}
        return restart_plan(action, self.name, spec, params, steps, skipped, killed)

    def describe(self, plan: Plan) -> list[str]:
        lines = []
        for step in plan.steps:
            short = step["container_id"][:12]
            if step["operation"] == "recreate":
                what = (
                    f"stop {step['container']} ({short}) with {step['graceful_timeout']:g} s grace, "
                    "then create and start a new container from the same image and settings"
                )
            else:
                what = f"docker restart {step['container']} ({short}) with {step['graceful_timeout']:g} s grace"
            if plan.verify:
                what += f", then run {step['service']}'s checks until they pass (up to {plan.verify['deadline']:g} s)"
            lines.append(f"{step['service']}: {what}")
        return lines

    def notes(self, plan: Plan) -> list[str]:
        notes = []
        if plan.facts.get("skipped"):
            notes.append(f"Not restarted (no container in app.yaml): {', '.join(plan.facts['skipped'])}.")
        oom = [s for s in plan.steps if s["service"] in plan.facts.get("oom_killed", []) and s["operation"] == "restart"]
        if any(s["service"] == plan.subject for s in oom):
            # Plans stored before memory_kills existed name only the flag.
            reading = plan.facts.get("memory_kills", {}).get(plan.subject, "OOM-killed")
            said = "was OOM-killed" if reading.startswith("OOM-killed") else f"was {reading}"
            notes.append(
                f"{plan.subject} {said}: a plain restart may not clear it; "
                f"/{plan.action} {plan.subject} --force-recreate makes a new container (runbook 000 section 1.1)."
            )
        return notes

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        for step in plan.steps:
            result = await self.run_step(ctx, step, plan.verify)
            report.steps.append(result)
            if not result.ok:
                break  # dependents are not restarted onto a service that did not come back
        return report

    async def run_step(self, ctx: RunContext, step: dict, verify: dict | None) -> StepResult:
        """One container step of a plan: also what the generic restart kind runs for a container."""
        docker, service, container = ctx.bot.checks.docker, step["service"], step["container"]
        started = time.perf_counter()
        try:
            if step["operation"] == "recreate":
                await docker.recreate(container, step["graceful_timeout"], expected_id=step["container_id"])
            else:
                await docker.restart(step["container_id"], step["graceful_timeout"])
        except DockerUnavailable as exc:
            return StepResult(service, False, f"{service}: {exc}", await container_logs(docker, container))
        restarted_in = time.perf_counter() - started
        how = "recreated" if step["operation"] == "recreate" else "restarted"
        return await wait_healthy(ctx, service, container, verify, f"{how} in {restarted_in:.1f} s")


KIND = DockerRestart()
