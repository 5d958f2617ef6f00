"""docker_stop and docker_start: stop a service's container, or start it again and prove it healthy."""
from __future__ import annotations

import time

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, RunContext, StepResult, Target
from bot.action.kinds.docker_health import wait_healthy
from bot.action.kinds.docker_restart import service_steps
from bot.action.params import ParamType
from bot.docker_engine import DockerUnavailable


def _service_param() -> dict[str, ParamType]:
    return {"service": ParamType("service", "The service whose container it acts on.")}


class DockerStop(ActionKind):
    name = "docker_stop"
    thing = "container"
    verb = "stop"

    def params(self, spec) -> dict[str, ParamType]:
        return _service_param()

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        steps, _ = await service_steps(ctx, service, [service], "stop", spec.timeout, "stop")
        for step in steps:
            step.pop("oom_killed")
        return Plan(action, self.name, service, {"service": service}, steps, [Target("service", service)])

    def describe(self, plan: Plan) -> list[str]:
        return [
            f"{s['service']}: docker stop {s['container']} ({s['container_id'][:12]}) with {s['graceful_timeout']:g} s grace; it stays stopped"
            for s in plan.steps
        ]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        for step in plan.steps:
            started = time.perf_counter()
            try:
                await ctx.bot.checks.docker.stop(step["container_id"], step["graceful_timeout"])
            except DockerUnavailable as exc:
                report.steps.append(StepResult(step["service"], False, f"{step['service']}: {exc}"))
                break
            report.steps.append(StepResult(step["service"], True, f"{step['service']}: stopped in {time.perf_counter() - started:.1f} s"))
        return report


class DockerStart(ActionKind):
    name = "docker_start"
    thing = "container"
    verb = "start"

    def params(self, spec) -> dict[str, ParamType]:
        return _service_param()

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        steps, _ = await service_steps(ctx, service, [service], "start", 0.0, "start")
        for step in steps:
            step.pop("oom_killed")
            step.pop("graceful_timeout")
        verify = spec.verify.model_dump() if spec.verify else None
        return Plan(action, self.name, service, {"service": service}, steps, [Target("service", service)], verify=verify)

    def describe(self, plan: Plan) -> list[str]:
        then = f", then run its checks until they pass (up to {plan.verify['deadline']:g} s)" if plan.verify else ""
        return [f"{s['service']}: docker start {s['container']} ({s['container_id'][:12]}){then}" for s in plan.steps]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        for step in plan.steps:
            started = time.perf_counter()
            try:
                await ctx.bot.checks.docker.start(step["container_id"])
            except DockerUnavailable as exc:
                report.steps.append(StepResult(step["service"], False, f"{step['service']}: {exc}"))
                break
            done = f"started in {time.perf_counter() - started:.1f} s"
            report.steps.append(await wait_healthy(ctx, step["service"], step["container"], plan.verify, done))
        return report


STOP = DockerStop()
START = DockerStart()
