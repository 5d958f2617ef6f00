"""systemd_start, systemd_stop and systemd_reload: one Manager job on the service's unit (`systemctl start|stop|reload UNIT`).

The plan pins the unit and its unit file (the adapter's Workload). Executing starts the job with
mode "replace" (StartUnit, StopUnit, ReloadUnit), waits for its JobRemoved result (done, failed,
timeout, canceled, dependency, skipped) within the action's timeout, and for start and reload
then runs the service's checks until they pass (the verify policy), as /restart does.
"""
from __future__ import annotations

from datetime import timedelta

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.kinds.target_health import recent_logs, wait_settled
from bot.action.params import ParamType
from bot.targets import TargetError, Workload


def systemd_target(ctx, service: str, kind: str):
    """(adapter, target) for a service on systemd, or PlanError with the sentence saying why not."""
    target = ctx.config.services[service].systemd
    if target is None:
        raise PlanError(f"{service} does not run on systemd, and {kind} acts on systemd units only; nothing was requested.")
    return ctx.bot.checks.targets.for_platform(ctx.config, "systemd"), target


class SystemdJob(ActionKind):
    thing = "unit"

    def __init__(self, operation: str):
        self.operation = operation
        self.name = f"systemd_{operation}"
        self.verb = operation

    def params(self, spec) -> dict[str, ParamType]:
        return {"service": ParamType("service", f"The service whose systemd unit to {self.operation}.")}

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service = params["service"]
        adapter, target = systemd_target(ctx, service, self.name)
        try:
            workload = await adapter.describe(service, target)
        except TargetError as exc:
            raise PlanError(f"{exc}; nothing was requested.") from None
        verify = spec.verify.model_dump() if getattr(spec, "verify", None) else None
        step = {"service": service, "platform": "systemd", "workload": workload.to_json(), "timeout": spec.timeout}
        return Plan(action, self.name, service, {"service": service}, [step], [Target("service", service)], verify=verify)

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        unit = step["workload"]["name"]
        what = f"systemctl {self.operation} {unit} (mode replace), then wait up to {step['timeout']:g} s for systemd's job to finish"
        if plan.verify:
            what += f" and run {step['service']}'s checks until they pass (up to {plan.verify['deadline']:g} s)"
        elif self.operation == "stop":
            what += "; it stays stopped"
        return [f"{step['service']}: {what}"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step = plan.steps[0]
        workload, service = Workload.from_json(step["workload"]), step["service"]
        clock = ctx.bot.clock
        started = clock.now()
        try:
            adapter = ctx.bot.checks.targets.for_platform(ctx.config, "systemd")
            done = await adapter.run_job(workload, self.operation)
            settled = await adapter.settled(workload, started + timedelta(seconds=step["timeout"]), clock)
        except TargetError as exc:
            return ExecutionReport([StepResult(service, False, f"{service}: {exc}")])
        took = (clock.now() - started).total_seconds()
        if not settled.ok:
            return ExecutionReport([StepResult(service, False, f"{service}: {done}: {settled.detail}", await recent_logs(ctx, adapter, service))])
        if not plan.verify:
            return ExecutionReport([StepResult(service, True, f"{service}: {done} finished in {took:.1f} s; {settled.detail}")])
        # The job is done: the checks decide, as after /restart (settled() finds no job left and reads the unit's state).
        return ExecutionReport([await wait_settled(ctx, adapter, workload, plan.verify, f"{done} finished in {took:.1f} s")])

    def max_runtime(self, spec, plan: Plan) -> float:
        return float(spec.timeout) + (float(plan.verify["deadline"]) if plan.verify else 0.0)


START = SystemdJob("start")
STOP = SystemdJob("stop")
RELOAD = SystemdJob("reload")
