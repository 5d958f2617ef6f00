"""docker_exec: a declared argument list run in a service's container through the Docker exec API.

Chat fills only typed parameters, each as one whole argument (`{name}` in app.yaml): no
shell ever parses anything, so `; rm -rf /` typed as a value is one odd argument at most,
and the parameter's type refuses it first.
"""
from __future__ import annotations

import asyncio
import time

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType, from_config
from bot.docker_engine import DockerUnavailable
from bot.redaction import redact_lines

OUTPUT_LINES = 20
MAX_LINE = 2000


def argv(command: list[str], values: dict) -> list[str]:
    """The argument list with each `{name}` argument replaced by its value, as one argument."""
    out = []
    for argument in command:
        if argument.startswith("{") and argument.endswith("}") and argument[1:-1] in values:
            out.append(as_argument(values[argument[1:-1]]))
        else:
            out.append(argument)
    return out


def param_targets(spec, params: dict) -> list[Target]:
    """Services and databases a typed parameter names: locked, and their owners must request and approve too."""
    return [
        Target(declared.type, params[name])
        for name, declared in spec.params.items()
        if declared.type in ("service", "database") and params.get(name) and params[name] != spec.service
    ]


async def running_container(ctx: PlanContext, service: str, action: str) -> tuple[str, dict]:
    """The service's container name and inspect document; PlanError unless it exists and runs."""
    container = ctx.config.services[service].container
    if container is None:
        raise PlanError(f"{service} has no container in app.yaml, so /{action} has nowhere to run.")
    try:
        info = await ctx.bot.checks.docker.inspect(container)
    except DockerUnavailable as exc:
        raise PlanError(f"{exc}; nothing was requested.") from None
    if info is None or not info.get("State", {}).get("Running"):
        raise PlanError(f"Container {container} of {service} is not running; nothing was requested.")
    return container, info


def as_argument(value) -> str:
    """A typed value as the command line expects it: 1209600 not 1.2096e+06, true not True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def output_tail(output: str) -> str:
    lines = redact_lines(output.splitlines(), MAX_LINE)
    return "\n".join(lines[-OUTPUT_LINES:]).rstrip()


class DockerExec(ActionKind):
    name = "docker_exec"
    thing = "container"
    verb = "run commands in"

    def params(self, spec) -> dict[str, ParamType]:
        return {name: from_config(declared) for name, declared in spec.params.items()}

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        container, info = await running_container(ctx, spec.service, action)
        # By id: the container approvers saw; one replaced since then changes the plan's hash.
        step = {
            "service": spec.service, "container": container, "container_id": info["Id"],
            "argv": argv(list(spec.command), params), "timeout": spec.timeout,
        }
        return Plan(action, self.name, spec.service, params, [step], [Target("service", spec.service), *param_targets(spec, params)])

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        shown = " ".join(repr(a) if (not a or any(c.isspace() for c in a)) else a for a in step["argv"])
        return [f"{step['service']}: in {step['container']} ({step['container_id'][:12]}), run {shown} (no shell; reported failed if it runs over {step['timeout']:g} s)"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        return ExecutionReport([await run_step(ctx, plan.steps[0], plan.steps[0]["service"])])


async def run_step(ctx: RunContext, step: dict, label: str) -> StepResult:
    """Run a planned argument list in its container; the exit code and the last lines of output, redacted."""
    started = time.perf_counter()
    try:
        target = step.get("container_id") or step["container"]
        result = await asyncio.wait_for(ctx.bot.checks.docker.exec(target, step["argv"]), timeout=step["timeout"])
    except (TimeoutError, asyncio.TimeoutError):
        # The exec API cannot stop what it started: say so rather than claim it was stopped.
        summary = f"{label}: no exit within {step['timeout']:g} s; it may still be running in {step['container']}: check it by hand"
        return StepResult(step["service"], False, summary)
    except DockerUnavailable as exc:
        return StepResult(step["service"], False, f"{label}: {exc}")
    summary = f"{label}: exit {result.exit_code} after {time.perf_counter() - started:.1f} s"
    # Redacting up to 256 KiB of output is CPU work: off the event loop, so acks and pages keep moving.
    return StepResult(step["service"], result.exit_code == 0, summary, await asyncio.to_thread(output_tail, result.output))


KIND = DockerExec()
