"""logs: read-only; the last lines of a service's logs from whatever it runs on, redacted (/logs has the filters).

The service's platform adapter (bot/targets) reads them raw; redaction happens here, off the
event loop, before anything is cut or shown.
"""
from __future__ import annotations

import asyncio

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.config.target_models import target_of
from bot.redaction import redact_lines
from bot.targets import LogQuery, TargetError

MAX_LINE = 2000
MAX_SINCE = 7 * 86400  # the platform kinds' `since` bound, as /logs'
MAX_GREP = 200  # their `grep`: literal text


def redacted_containing(lines: list[str], grep: str | None) -> list[str]:
    """Redacted, cut to MAX_LINE, then the lines containing `grep` (case-insensitive; a substring
    test is linear by construction), matched after redaction so it cannot confirm a secret the
    reply hides. Runs in a worker thread."""
    lines = redact_lines(lines, MAX_LINE)
    if not grep:
        return lines
    needle = grep.casefold()
    return [line for line in lines if needle in line.casefold()]


def target_label(platform: str, target) -> str:
    """How the plan names what is read: the container's name, or the platform and its own label."""
    if platform == "container":
        return str(target)
    label = getattr(target, "label", None) or getattr(target, "unit", None) or getattr(target, "workload_name", None) or platform
    return f"{platform} {label}"


class Logs(ActionKind):
    name = "logs"
    read_only = True
    thing = "service"
    verb = "read the logs of"
    platforms: tuple[str, ...] | None = None  # None: any platform; a platform's own kind narrows it

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The service whose logs are read, on whatever it runs on."),
            "tail": ParamType("int", "How many of the last lines.", min=1, max=5000, default=100, required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        found = target_of(ctx.config.services[service])
        if found is None:
            raise PlanError(f"{service} has no container in app.yaml, so opsbot has no logs for it.")
        if self.platforms and found[0] not in self.platforms:
            raise PlanError(f"{service} runs on {found[0]}, and {self.name} reads {' or '.join(self.platforms)} services only; use /logs.")
        tail = params.get("tail") or 100
        step = {"service": service, "platform": found[0], "source": target_label(*found), "tail": tail}
        return Plan(action, self.name, service, {"service": service, "tail": tail}, [step], [Target("service", service)])

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        return [f"{step['service']}: read the last {step['tail']} lines of {step['source']}'s logs, redacted"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step = plan.steps[0]
        service = step["service"]
        found = target_of(ctx.config.services[service])
        try:
            if found is None:
                raise TargetError("it has no target in app.yaml any more")
            adapter = ctx.bot.checks.targets.for_platform(ctx.config, found[0])
            read = await adapter.logs(found[1], LogQuery(tail=step["tail"]))
        except TargetError as exc:
            return ExecutionReport([StepResult(service, False, f"Cannot read the logs of {service}: {exc}.")])
        lines = await asyncio.to_thread(redact_lines, read.lines, MAX_LINE)
        return ExecutionReport([StepResult(service, True, f"{service} logs: {len(lines)} lines", "\n".join(lines))])


KIND = Logs()
