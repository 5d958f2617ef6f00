"""k8s_logs: read-only; the logs of a Kubernetes service's pods, merged by time and redacted.

The pods of the target's selector, every container or the one named (`container=`), within
`since` and the last `tail` lines, as /logs reads them (the same bounds: 5,000 lines, 7 days).
`grep` keeps the lines containing its text (case-insensitive, literal: a substring test is linear
by construction), matched after redaction so it cannot confirm a secret the reply hides.
"""
from __future__ import annotations

import asyncio

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.kinds.k8s_plan import kubernetes_target
from bot.action.params import ParamType
from bot.config.types import format_duration
from bot.action.kinds.logs import MAX_GREP, MAX_SINCE, redacted_containing
from bot.redaction import redact
from bot.targets import LogQuery, TargetError
from bot.targets.base import MAX_LOG_TAIL


class K8sLogs(ActionKind):
    name = "k8s_logs"
    read_only = True
    thing = "pods"
    verb = "read the logs of"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The Kubernetes service whose pods' logs are read."),
            "tail": ParamType("int", "How many of the newest lines, all pods together.", min=1, max=MAX_LOG_TAIL, default=100, required=False),
            "since": ParamType("duration", "Only lines written this recently.", max_duration=MAX_SINCE, required=False),
            "container": ParamType("pattern", "One container of each pod; default: every container.", pattern=r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", required=False),
            "grep": ParamType("text", f"Keep the lines containing this text (at most {MAX_GREP} characters).", required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        _, target = kubernetes_target(ctx, service, self.name)
        grep = params.get("grep") or None
        if grep is not None and len(grep) > MAX_GREP:
            raise PlanError(f"grep is at most {MAX_GREP} characters; nothing was read.")
        step = {
            "service": service,
            "namespace": target.namespace,
            "workload": f"{target.workload_kind.lower()} {target.namespace}/{target.workload_name}",
            "tail": int(params.get("tail") or 100),
            "since": params.get("since"),
            "container": params.get("container") or target.container,
            "grep": grep,
        }
        return Plan(action, self.name, service, {k: step[k] for k in ("tail", "since", "container", "grep")} | {"service": service}, [step], [Target("service", service)])

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        window = f"the newest {step['tail']} lines"
        if step["since"]:
            window += f" of the last {format_duration(step['since'])}"
        which = f"container {step['container']}" if step["container"] else "every container"
        what = redact(f" containing '{step['grep']}'") if step["grep"] else ""
        return [f"{step['service']}: read {window}{what} from {which} of the pods of {step['workload']}, merged by time, redacted"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step, service = plan.steps[0], plan.steps[0]["service"]
        try:
            adapter, target = kubernetes_target(ctx, service, self.name)
            read = await adapter.logs(target, LogQuery(tail=step["tail"], since=step["since"]), container=step["container"])
        except (PlanError, TargetError) as exc:  # the config changed, or the cluster refused: one sentence either way
            return ExecutionReport([StepResult(service, False, f"Cannot read the logs of {service}: {exc}.")])
        lines = await asyncio.to_thread(redacted_containing, read.lines, step["grep"])
        what = redact(f" containing '{step['grep']}'") if step["grep"] else ""
        return ExecutionReport([StepResult(service, True, f"{service} logs: {len(lines)} lines{what} from {read.source}", "\n".join(lines))])


KIND = K8sLogs()
