"""rollback: /rollback <service> [version]: the previous version, or a named earlier one, under the same guard.

Containers go back to a kept image (its id, from the deployment record: no registry needed), with
the same replace or blue-green step as a deploy and the same verification; Kubernetes workloads
use a rollout undo (k8s_rollout_undo's plan and execution).
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, Target
from bot.action.kinds.deploy import checked_version, deploy_of
from bot.action.params import ParamType
from bot.deploy import container, kubernetes
from bot.deploy import service as record
from bot.deploy.run import run
from bot.deploy.views import plan_lines
from bot.docker_images import ImageGateway


class Rollback(ActionKind):
    name = "rollback"
    thing = "service"
    verb = "roll back"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The service to roll back."),
            "version": ParamType("text", "An earlier version to go to; default: the one before the current.", required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service, wanted = params["service"], params.get("version")
        deploy = deploy_of(ctx, service, action)
        if wanted is not None:
            wanted = checked_version(deploy, wanted)
        verify = spec.verify.model_dump() if spec.verify else None
        if ctx.config.services[service].container is None:
            step = await kubernetes.rollback_step(ctx, action, spec, service, deploy, wanted)
            return Plan(action, self.name, service, {"service": service, "version": wanted}, [step], [Target("service", service)], verify=verify)
        name, info = await container.current(ctx, service)
        from_version = container.tag_of(info["Config"]["Image"], deploy.image)
        last = await record.current(ctx.bot.db, service)
        if from_version is None:
            from_version = last.to_version if last is not None and last.to_image == info["Image"] else f"image {info['Image'][7:19]}"
        if wanted is None:
            if last is None or not last.from_image or last.to_image != info["Image"]:
                raise PlanError(f"opsbot has no record of the version {service} ran before {from_version}; name one: /rollback {service} <version>.")
            version, image = last.from_version or f"image {last.from_image[7:19]}", last.from_image
        else:
            version, image = wanted, await record.image_of(ctx.bot.db, service, wanted)
            if image is None:
                raise PlanError(f"opsbot has no record of {service} running {wanted}, so it has no image to go back to; nothing was requested.")
        if image == info["Image"]:
            raise PlanError(f"{service} already runs {version}; nothing was requested.")
        if await ImageGateway(ctx.bot.checks.docker).image(image) is None:
            if version == f"image {image[7:19]}":  # a version opsbot never recorded: no /deploy can name it
                raise PlanError(f"The image {service} ran before ({image[7:19]}) is no longer on the Docker Engine; nothing was requested.")
            raise PlanError(f"The image of {service} {version} ({image[7:19]}) is no longer on the Docker Engine; deploy it again with /deploy {service} {version}.")
        step = await container.change_step(ctx, service, deploy, spec.stop_grace, image, version, from_version, name, info)
        return Plan(action, self.name, service, {"service": service, "version": wanted}, [step], [Target("service", service)], verify=verify)

    def describe(self, plan: Plan) -> list[str]:
        return plan_lines(plan)

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        return await run(ctx, spec, plan, "rollback")

    def max_runtime(self, spec, plan: Plan) -> float:
        deadline = float(plan.verify["deadline"]) if plan.verify else 30.0
        return 2 * float(spec.stop_grace) + 3 * deadline


KIND = Rollback()
