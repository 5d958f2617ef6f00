"""deploy: /deploy <service> <version>, in the runbooks' order as one plan's steps.

Backup first (when the service declares backup_first), the image pull, the migration job from
the new image (bot/deploy/migration.py: the image is pulled when planning, so its dry run runs
then and shows in the approval), then the platform's change with its verification and automatic
rollback (bot/deploy/). The version must match the service's
declared pattern. The approval, the lock, the audit trail and the timeline are the flow's.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, Target
from bot.action.params import BadParameter, ParamType
from bot.deploy import container, kubernetes, migration, prepare
from bot.deploy.run import run
from bot.deploy.views import plan_lines

MAX_VERSION = 128


def deploy_of(ctx, service: str, kind: str):
    """The service's deploy: declaration, or PlanError saying it has none."""
    deploy = ctx.config.services[service].deploy
    if deploy is None:
        raise PlanError(f"{service} declares no deploy: in app.yaml, so /{kind} has nothing to put on it; nothing was requested.")
    return deploy


def checked_version(deploy, version: str) -> str:
    """`version` when it matches the declared pattern (and is a Docker tag); PlanError otherwise."""
    try:
        ParamType("pattern", pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}").parse("version", version, None)
        return ParamType("pattern", pattern=deploy.versions).parse("version", version, None)
    except BadParameter:
        raise PlanError(f"Version '{version[:MAX_VERSION]}' does not match the service's declared versions ({deploy.versions}); nothing was requested.") from None


class Deploy(ActionKind):
    name = "deploy"
    thing = "service"
    verb = "deploy"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The service to deploy."),
            "version": ParamType("text", "The version (the image tag); it must match the service's declared versions."),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        return await self._plan(ctx, action, spec, params)

    async def _plan(self, ctx: PlanContext, action: str, spec, params: dict, dry_run: dict | None = None) -> Plan:
        service = params["service"]
        deploy = deploy_of(ctx, service, action)
        version = checked_version(deploy, params["version"])
        image = f"{deploy.image}:{version}"
        steps, facts = [], {}
        if deploy.backup_first:
            steps.append(prepare.backup_step(deploy.backup_first))
        if ctx.config.services[service].container:
            name, info = await container.current(ctx, service)
            from_version = await container.version_running(ctx, service, info, deploy.image)
            if from_version == version:
                raise PlanError(f"{service} already runs {version}; nothing was requested.")
            image_id = None
            if deploy.migrate:  # the new release's migration, dry run included: its image is pulled now
                image_id = await migration.image_for_plan(ctx, image, spec.timeout, pull=dry_run is None)
            steps.append(prepare.pull_step(image, spec.timeout, image_id))
            if deploy.migrate:
                step, output = await migration.plan_step(ctx, service, deploy.migrate, info, image, image_id, dry_run)
                steps.append(step)
                facts["dry_run_output"] = output
            steps.append(await container.change_step(ctx, service, deploy, spec.stop_grace, image, version, from_version, name, info))
        else:
            step = await kubernetes.deploy_step(ctx, service, deploy, image, version)
            if step["from_image"] == image:
                raise PlanError(f"{service} already runs {version}; nothing was requested.")
            steps.append(step)
        targets = [Target("service", service)] + ([Target("database", deploy.backup_first)] if deploy.backup_first else [])
        verify = spec.verify.model_dump() if spec.verify else None
        return Plan(action, self.name, service, {"service": service, "version": version}, steps, targets, verify=verify, facts=facts)

    async def recheck(self, ctx: PlanContext, spec, plan: Plan) -> str | None:
        # The approved plan's dry run stands (a new one would be another row): only what would run is compared.
        dry_run = next((s["dry_run"] for s in plan.steps if s["step"] == "migrate"), None)
        try:
            current = await self._plan(ctx, plan.action, spec, plan.params, dry_run)
        except PlanError as exc:
            return str(exc)
        if current.hash != plan.hash:
            return "the plan changed since it was approved (config or containers); request it again."
        return None

    def describe(self, plan: Plan) -> list[str]:
        return plan_lines(plan)

    def notes(self, plan: Plan) -> list[str]:
        output = plan.facts.get("dry_run_output")
        return [f"*Migration dry run output (redacted, last lines)*\n{output or '(no output)'}"] if "dry_run_output" in plan.facts else []

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        return await run(ctx, spec, plan, "deploy")

    def max_runtime(self, spec, plan: Plan) -> float:
        # A backup runs under its own timeout; the change may verify twice (the new version, then the old one back).
        deadline = float(plan.verify["deadline"]) if plan.verify else 30.0
        backup = 6 * 3600.0 if any(s["step"] == "backup" for s in plan.steps) else 0.0
        return backup + float(spec.timeout) + 2 * float(spec.stop_grace) + 3 * deadline


KIND = Deploy()
