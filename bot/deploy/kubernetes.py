"""A Kubernetes workload's deploy (`kubectl set image`) and rollback (`kubectl rollout undo`).

Deploy: the container's image is set on the workload (bot/targets/kubernetes/image.py), the
rollout and then the service's checks must finish within the deadline; when they do not, the
previous image is set back and that rollout is waited for too. Rollback: the k8s_rollout_undo
kind's own plan and execution, to the revision before, or to the newest one running the named
version.
"""
from __future__ import annotations

from bot.action.kinds import k8s_rollout_undo
from bot.action.kinds.base import Plan, PlanContext, PlanError, RunContext, StepResult
from bot.action.kinds.k8s_plan import kubernetes_target
from bot.action.kinds.target_health import wait_settled
from bot.targets import TargetError, Workload
from bot.targets.kubernetes.image import container_image, set_image


def _tag(image: str, repository: str) -> str:
    return image[len(repository) + 1:] if image.startswith(repository + ":") else image


async def deploy_step(ctx: PlanContext, service: str, deploy, image: str, version: str) -> dict:
    adapter, target = kubernetes_target(ctx, service, "deploy")
    try:
        workload = await adapter.read_workload(target)
        container, from_image = container_image(workload, deploy.container or target.container)
    except TargetError as exc:
        raise PlanError(f"{service} cannot be deployed: {exc}; nothing was requested.") from None
    return {"step": "set_image", "service": service, "kind": target.workload_kind, "namespace": target.namespace,
            "name": target.workload_name, "uid": workload.metadata.uid, "container": container, "from_image": from_image,
            "from_version": _tag(from_image, deploy.image), "image": image, "version": version}


async def rollback_step(ctx: PlanContext, action: str, spec, service: str, deploy, version: str | None) -> dict:
    """k8s_rollout_undo's step, to the revision before the current or to the newest revision running `version`."""
    revision = None
    if version is not None:
        adapter, target = kubernetes_target(ctx, service, "rollback", deployment_only=True)
        try:
            _, revisions = await adapter.revisions(target)
        except TargetError as exc:
            raise PlanError(f"{exc}; nothing was requested.") from None
        wanted = f"{deploy.image}:{version}"
        found = [r for r in revisions[:-1] if wanted in r.image.split(", ")]
        if not found:
            raise PlanError(f"{service} has no earlier revision running {wanted}; nothing was requested.")
        revision = found[-1].number
    undo = await k8s_rollout_undo.KIND.plan(ctx, action, spec, {"service": service, "revision": revision})
    step = undo.steps[0]
    return {**step, "step": "undo", "version": version or _tag(step["images"], deploy.image)}


def describe(step: dict, verify: dict | None) -> list[str]:
    checks = f" and run {step['service']}'s checks until they pass (up to {verify['deadline']:g} s)" if verify else ""
    if step["step"] == "undo":
        return k8s_rollout_undo.KIND.describe(Plan("", "", step["service"], {}, [step], [], verify=verify))
    where = f"{step['kind'].lower()} {step['namespace']}/{step['name']}"
    return [
        f"{step['service']}: set the image of container {step['container']} of {where} from {step['from_image']} to {step['image']}, "
        f"then wait for the rollout{checks}",
        f"{step['service']}: if that fails, set it back to {step['from_image']} and wait for that rollout, then say why with the last log lines",
    ]


def workload_of(step: dict) -> dict:
    """The workload a step changes, as the adapter's patch names it."""
    if step["step"] == "undo":
        return {"kind": "Deployment", "namespace": step["namespace"], "name": step["deployment"]}
    return {"kind": step["kind"], "namespace": step["namespace"], "name": step["name"]}


def images_of(workload) -> dict[str, str]:
    """Each pod container's image: what recovery sets back if the process dies mid-change."""
    return {c.name: c.image for c in workload.spec.template.spec.containers or []}


async def apply(ctx: RunContext, spec, plan: Plan, step: dict, journal) -> tuple[list[StepResult], str, str | None]:
    service = step["service"]
    if step["step"] == "undo":
        adapter, target = kubernetes_target(ctx, service, "rollback")
        try:
            before = images_of(await adapter.read_workload(target))
        except TargetError as exc:
            return [StepResult(service, False, f"{service}: {exc}")], "failure", None
        await journal.phase("change", {"images": before})
        report = await k8s_rollout_undo.KIND.execute(ctx, spec, Plan(plan.action, "k8s_rollout_undo", service, {}, [step], [], verify=plan.verify))
        if report.succeeded:
            await journal.phase("verified")
        return report.steps, "success" if report.succeeded else "failure", step["images"]
    adapter, target = kubernetes_target(ctx, service, "deploy")
    detail = workload_of(step)
    try:
        workload = await adapter.read_workload(target)
        _, image_now = container_image(workload, step["container"])
        if workload.metadata.uid != step["uid"] or image_now != step["from_image"]:
            raise TargetError(f"{step['kind'].lower()} {step['namespace']}/{step['name']} changed since the plan was made; nothing was changed")
        await journal.phase("change", {"images": images_of(workload)})
        await set_image(adapter, detail, step["container"], step["image"])
    except TargetError as exc:
        return [StepResult(service, False, f"{service}: {exc}")], "failure", None
    shown = Workload("kubernetes", service, f"{step['kind'].lower()} {step['namespace']}/{step['name']}", step["uid"], (), detail)
    result = await wait_settled(ctx, adapter, shown, plan.verify, f"set {step['container']} to {step['image']}")
    if result.ok:
        await journal.phase("verified")
        return [result], "success", step["image"]
    try:
        await set_image(adapter, detail, step["container"], step["from_image"])
    except TargetError as exc:
        return [result, StepResult(service, False, f"{service}: rolling back to {step['from_image']} failed: {exc}")], "failure", step["image"]
    back = await wait_settled(ctx, adapter, shown, plan.verify, f"rolled back to {step['from_image']} automatically")
    return [result, back], "rolled_back" if back.ok else "failure", step["image"]
