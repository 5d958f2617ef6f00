"""systemd_logs: read-only; a systemd service's unit journal (journalctl -u), with since, tail and grep, redacted.

The generic logs kind with the journal's own filters: `since` (the journal has timestamps) and
`grep` (case-insensitive literal text, matched after redaction so it cannot confirm a secret the
reply hides). /logs reaches the same journal with --since/--tail/--grep whatever the kind.
"""
from __future__ import annotations

import asyncio

from bot.action.kinds.base import ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult
from bot.action.kinds.logs import MAX_GREP, MAX_SINCE, Logs, redacted_containing
from bot.action.kinds.systemd_jobs import systemd_target
from bot.action.params import ParamType
from bot.config.types import format_duration
from bot.redaction import redact
from bot.targets import LogQuery, TargetError


class SystemdLogs(Logs):
    name = "systemd_logs"
    platforms = ("systemd",)

    def params(self, spec) -> dict[str, ParamType]:
        return super().params(spec) | {
            "since": ParamType("duration", "Only entries written this recently.", max_duration=MAX_SINCE, required=False),
            "grep": ParamType("text", f"Keep the lines containing this text (at most {MAX_GREP} characters).", required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        plan = await super().plan(ctx, action, spec, params)
        grep = params.get("grep") or None
        if grep is not None and len(grep) > MAX_GREP:
            raise PlanError(f"grep is at most {MAX_GREP} characters; nothing was read.")
        plan.steps[0] |= {"since": params.get("since"), "grep": grep}
        plan.params |= {"since": params.get("since"), "grep": grep}
        return plan

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        window = f"the newest {step['tail']} entries" + (f" of the last {format_duration(step['since'])}" if step["since"] else "")
        what = redact(f" containing '{step['grep']}'") if step["grep"] else ""
        return [f"{step['service']}: read {window}{what} of {step['source']}'s journal, redacted"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step, service = plan.steps[0], plan.steps[0]["service"]
        try:
            adapter, target = systemd_target(ctx, service, self.name)
            read = await adapter.logs(target, LogQuery(tail=step["tail"], since=step["since"]))
        except (PlanError, TargetError) as exc:
            return ExecutionReport([StepResult(service, False, f"Cannot read the logs of {service}: {exc}.")])
        lines = await asyncio.to_thread(redacted_containing, read.lines, step["grep"])
        what = redact(f" containing '{step['grep']}'") if step["grep"] else ""
        return ExecutionReport([StepResult(service, True, f"{service} logs: {len(lines)} lines{what} from {read.source}", "\n".join(lines))])


KIND = SystemdLogs()
