"""restart: /restart on whatever the service runs on, so an operator never writes a different command per stack.

Each step restarts one service through its platform's adapter (bot/targets). A container step
is docker_restart's own (the container pinned by id, --force-recreate, the OOM note); any other
step pins what the adapter resolved (its `Workload`), so approvers see exactly what runs and the
plan hash covers it. Afterwards: the platform must say the restart finished (adapter.settled),
then the service's checks must pass (the verify policy), each step before the next.
"""
from __future__ import annotations

from dataclasses import replace

from bot.action.kinds import docker_restart
from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult
from bot.action.kinds.target_health import settle_seconds, then_phrase, wait_settled
from bot.action.params import ParamType
from bot.config.target_models import target_of
from bot.targets import TargetError, Workload


class Restart(ActionKind):
    name = "restart"
    thing = "service"
    verb = "restart"
    platforms: tuple[str, ...] | None = None  # None: any platform; a platform's own kind narrows it

    def params(self, spec) -> dict[str, ParamType]:
        # docker_restart's, so /restart's options mean the same on every platform.
        return {**docker_restart.KIND.params(spec), "service": ParamType("service", "The service to restart, on whatever it runs on.")}

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        with_dependents, force_recreate = bool(params.get("with_dependents")), bool(params.get("force_recreate"))
        found = target_of(ctx.config.services[service])
        if found is None:
            raise PlanError(f"{service} has no container in app.yaml, so there is nothing to restart.")
        if self.platforms and found[0] not in self.platforms:
            raise PlanError(f"{service} runs on {found[0]}, and {self.name} restarts {' or '.join(self.platforms)} services only; use /restart.")
        if force_recreate and found[0] != "container":
            raise PlanError(f"--force-recreate is for containers, and {service} runs on {found[0]}; nothing was requested.")
        names = [service] + (ctx.config.dependents_of(service) if with_dependents else [])
        steps, skipped, killed = [], [], {}
        for name in names:
            step = await self._step_for(ctx, name, spec.timeout, "recreate" if force_recreate and name == service else "restart")
            if step is None:
                skipped.append(name)
                continue
            if "oom_killed" in step:  # describes the container, not what runs: a fact, not hashed
                killed[name] = step.pop("oom_killed")
            steps.append(step)
        params = {"service": service, "with_dependents": with_dependents, "force_recreate": force_recreate}
        return docker_restart.restart_plan(action, self.name, spec, params, steps, skipped, killed)

    async def _step_for(self, ctx: PlanContext, name: str, timeout: float, operation: str) -> dict | None:
        found = target_of(ctx.config.services[name])
        if found is None:
            return None
        if found[0] == "container":
            steps, _ = await docker_restart.service_steps(ctx, name, [name], operation, timeout, "restart")
            return {**steps[0], "platform": "container"}
        try:
            adapter = ctx.bot.checks.targets.for_platform(ctx.config, found[0])
            workload = await adapter.describe(name, found[1])
        except TargetError as exc:
            raise PlanError(f"{exc}; nothing was requested.") from None
        return {"service": name, "platform": found[0], "workload": workload.to_json(), "graceful_timeout": timeout}

    def describe(self, plan: Plan) -> list[str]:
        lines = []
        for step in plan.steps:
            if step.get("platform", "container") == "container":
                lines += docker_restart.KIND.describe(replace(plan, steps=[step]))
                continue
            workload = Workload.from_json(step["workload"])
            what = restart_phrase(workload) + f", then wait until {workload.platform} reports it up"
            lines.append(f"{step['service']}: {what}{then_phrase(step['service'], plan.verify, workload.settle_within)}")
        return lines

    def max_runtime(self, spec, plan: Plan) -> float:
        total = 0.0
        for step in plan.steps:
            if step.get("platform", "container") == "container":
                total += float(spec.timeout) + (float(plan.verify["deadline"]) if plan.verify else 0.0)
                continue
            workload = Workload.from_json(step["workload"])
            stop = max(float(spec.timeout), workload.stop_grace or 0.0)
            total += stop + (float(plan.verify["deadline"]) if plan.verify else settle_seconds(workload.settle_within))
        return total

    def notes(self, plan: Plan) -> list[str]:
        return docker_restart.KIND.notes(plan)

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        for step in plan.steps:
            if step.get("platform", "container") == "container":
                result = await docker_restart.KIND.run_step(ctx, step, plan.verify)
            else:
                result = await self._target_step(ctx, step, plan.verify)
            report.steps.append(result)
            if not result.ok:
                break  # dependents are not restarted onto a service that did not come back
        return report

    async def _target_step(self, ctx: RunContext, step: dict, verify: dict | None) -> StepResult:
        workload, service = Workload.from_json(step["workload"]), step["service"]
        started = ctx.bot.clock.now()
        try:
            adapter = ctx.bot.checks.targets.for_platform(ctx.config, workload.platform)
            done = await adapter.restart(workload, step["graceful_timeout"])
        except TargetError as exc:
            return StepResult(service, False, f"{service}: {exc}")
        took = (ctx.bot.clock.now() - started).total_seconds()
        return await wait_settled(ctx, adapter, workload, verify, f"{done} in {took:.1f} s")


def restart_phrase(workload: Workload) -> str:
    """What a restart does on the workload's platform, with the platform's own stop grace: the
    action's timeout is Docker's; the others have theirs in their own configuration."""
    grace = workload.stop_grace
    if workload.platform == "kubernetes":
        said = f"roll out a restart of {workload.name} (new pods replace the old as its rollout strategy says"
        return said + (f"; each old pod gets its {grace:g} s terminationGracePeriodSeconds)" if grace is not None else ")")
    members = f" ({', '.join(workload.members)})" if workload.members else ""
    said = f"restart {workload.platform} {workload.name}{members}"
    if grace is None:
        return said
    if workload.platform == "systemd":
        return said + f" (systemd stops it within its TimeoutStopSec of {grace:g} s)"
    if workload.platform == "supervisor":
        return said + f" (supervisord stops each process within its stopwaitsecs of {grace:g} s)"
    return said + f" ({grace:g} s to stop)"


KIND = Restart()
