"""job: a runbook job (jobs: in app.yaml) whose real run rests on the requester's own recent dry run.

The plan names that dry run and shows its output, so approvers approve what the dry run
said would happen. A later dry run, or none at all, changes the plan: the request is not run.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.kinds.docker_exec import run_step, running_container
from bot.config.types import format_duration
from bot.job.service import latest_dry_run, use, valid_since


class Job(ActionKind):
    name = "job"
    thing = "container"
    verb = "run jobs of"

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        dry = await latest_dry_run(ctx.bot.db, action, ctx.user, valid_since(ctx.bot.clock.now(), spec))
        if dry is None:
            raise PlanError(
                f"Run /job {action} --dry-run first: the real run needs your own dry run "
                f"from the last {format_duration(spec.dry_run_valid_for)}; nothing was requested."
            )
        if dry.used_at is not None:
            raise PlanError(f"Your dry run #{dry.id} of {action} was already used by a real run; run it dry again. Nothing was requested.")
        if dry.exit_code != 0:
            raise PlanError(f"Your dry run #{dry.id} of {action} failed (exit {dry.exit_code}); fix that and run it dry again. Nothing was requested.")
        container, info = await running_container(ctx, spec.service, action)
        step = {
            "service": spec.service,
            "container": container,
            "container_id": info["Id"],
            "argv": list(spec.command),
            "timeout": spec.timeout,
            "dry_run": {"id": dry.id, "at": dry.at.isoformat(), "exit_code": dry.exit_code},
        }
        return Plan(action, self.name, spec.service, {}, [step], [Target("service", spec.service)], facts={"dry_run_output": dry.output})

    async def recheck(self, ctx: PlanContext, spec, plan: Plan) -> str | None:
        # The dry run must still be the requester's newest (no later one with another outcome); its age
        # counted at the request, not at the approval, so a slow approver does not void it.
        dry = await latest_dry_run(ctx.bot.db, plan.action, ctx.user)
        if dry is None or dry.id != plan.steps[0]["dry_run"]["id"]:
            return f"a newer dry run of {plan.action} exists than the one approved; request it again."
        if list(spec.command) != plan.steps[0]["argv"] or spec.service != plan.steps[0]["service"]:
            return "the job changed in app.yaml since it was approved; request it again."
        info = await ctx.bot.checks.docker.inspect(plan.steps[0]["container"])
        if info is None or info["Id"] != plan.steps[0]["container_id"]:
            return f"container {plan.steps[0]['container']} was replaced or removed since it was approved; request it again."
        return None

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        dry = step["dry_run"]
        return [
            f"{step['service']}: in {step['container']} ({step['container_id'][:12]}), run {' '.join(step['argv'])} (no shell; reported failed if it runs over {step['timeout']:g} s); "
            f"its dry run #{dry['id']} at {dry['at'][11:16]} UTC exited {dry['exit_code']}"
        ]

    def notes(self, plan: Plan) -> list[str]:
        output = plan.facts.get("dry_run_output") or "(no output)"
        return [f"*Dry run output (redacted, last lines)*\n{output}"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step = plan.steps[0]
        if not await use(ctx.bot.db, step["dry_run"]["id"], ctx.bot.clock.now()):
            return ExecutionReport([StepResult(step["service"], False, f"{plan.action}: its dry run #{step['dry_run']['id']} was already used by another run; nothing ran")])
        return ExecutionReport([await run_step(ctx, step, plan.action)])


KIND = Job()
