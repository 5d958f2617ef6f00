"""docker_logs: read-only; the last lines of a service's container logs, redacted (/logs has the filters)."""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.docker_engine import DockerUnavailable
from bot.redaction import redact_lines

MAX_LINE = 2000


class DockerLogs(ActionKind):
    name = "docker_logs"
    read_only = True
    thing = "container"
    verb = "read the logs of"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The service whose container logs are read."),
            "tail": ParamType("int", "How many of the last lines.", min=1, max=5000, default=100, required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        container = ctx.config.services[service].container
        if container is None:
            raise PlanError(f"{service} has no container in app.yaml, so opsbot has no logs for it.")
        step = {"service": service, "container": container, "tail": params.get("tail") or 100}
        return Plan(action, self.name, service, {"service": service, "tail": step["tail"]}, [step], [Target("service", service)])

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        return [f"{step['service']}: read the last {step['tail']} lines of {step['container']}'s logs, redacted"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step = plan.steps[0]
        try:
            raw = await ctx.bot.checks.docker.logs(step["container"], tail=step["tail"])
        except DockerUnavailable as exc:
            return ExecutionReport([StepResult(step["service"], False, f"Cannot read the logs of {step['service']}: {exc}.")])
        lines = redact_lines(raw.splitlines(), MAX_LINE)
        summary = f"{step['service']} logs: {len(lines)} lines"
        return ExecutionReport([StepResult(step["service"], True, summary, "\n".join(lines))])


KIND = DockerLogs()
