"""k8s_scale: set a Deployment's or StatefulSet's replicas, within the bounds app.yaml declares (the scale subresource).

`replicas` outside the action's min_replicas..max_replicas is refused with one sentence before
anything is requested. The plan pins the workload (uid) and the count it is at now, so a scale by
someone else between approval and execution stops the request. Verification: the rollout status
(all desired replicas ready and available), then the service's checks.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.kinds.k8s_plan import kubernetes_target
from bot.action.kinds.target_health import then_phrase, wait_settled
from bot.action.params import ParamType
from bot.targets import TargetError, Workload
from bot.targets.kubernetes import rollout
from bot.targets.kubernetes.client import call_model


class K8sScale(ActionKind):
    name = "k8s_scale"
    thing = "workload"
    verb = "scale"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The service whose Deployment or StatefulSet is scaled."),
            "replicas": ParamType("int", "How many pods it should run.", min=spec.min_replicas, max=spec.max_replicas),
        }

    async def _scale(self, adapter, detail: dict):
        apps, ns, name = await adapter.cluster.apps(), detail["namespace"], detail["name"]
        if detail["kind"] == "Deployment":
            request = apps.read_namespaced_deployment_scale(name, ns, _preload_content=False)
        else:
            request = apps.read_namespaced_stateful_set_scale(name, ns, _preload_content=False)
        return await call_model(f"read the scale of {detail['kind'].lower()} {ns}/{name}", request, apps.api_client, "V1Scale")

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service, replicas = params["service"], int(params["replicas"])
        if not spec.min_replicas <= replicas <= spec.max_replicas:  # also checked when parsed; a stored plan is checked again
            raise PlanError(f"replicas must be between {spec.min_replicas} and {spec.max_replicas} for {service}; nothing was requested.")
        adapter, target = kubernetes_target(ctx, service, self.name)
        detail = {"kind": target.workload_kind, "namespace": target.namespace, "name": target.workload_name}
        try:
            scale = await self._scale(adapter, detail)
            settle_within = (await adapter.describe(service, target)).settle_within  # its progressDeadlineSeconds
        except TargetError as exc:
            raise PlanError(f"{exc}; nothing was requested.") from None
        current = scale.spec.replicas or 0
        if current == replicas:
            raise PlanError(f"{service} already runs {replicas} replicas; nothing was requested.")
        step = {**detail, "service": service, "uid": scale.metadata.uid, "from": current, "to": replicas, "settle_within": settle_within}
        return Plan(
            action=action,
            kind=self.name,
            subject=service,
            params={"service": service, "replicas": replicas},
            steps=[step],
            targets=[Target("service", service)],
            verify=spec.verify.model_dump() if spec.verify else None,
        )

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        what = f"{step['service']}: scale {step['kind'].lower()} {step['namespace']}/{step['name']} from {step['from']} to {step['to']} replicas, then wait until they are ready"
        return [what + then_phrase(step["service"], plan.verify, step.get("settle_within"))]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step, service = plan.steps[0], plan.steps[0]["service"]
        detail = {"kind": step["kind"], "namespace": step["namespace"], "name": step["name"]}
        label = f"{step['kind'].lower()} {step['namespace']}/{step['name']}"
        try:
            adapter, _ = kubernetes_target(ctx, service, self.name)
            scale = await self._scale(adapter, detail)
            if scale.metadata.uid != step["uid"] or (scale.spec.replicas or 0) != step["from"]:
                raise TargetError(f"{label} changed since the plan was made (it runs {scale.spec.replicas or 0} replicas now); nothing was changed")
            apps = await adapter.cluster.apps()
            # No resourceVersion precondition: status writes change it every few seconds on a busy
            # workload, so it would refuse scales for no reason; the replica count was checked just above.
            body = rollout.scale_patch(step["to"])
            if step["kind"] == "Deployment":
                request = apps.patch_namespaced_deployment_scale(step["name"], step["namespace"], body, _preload_content=False)
            else:
                request = apps.patch_namespaced_stateful_set_scale(step["name"], step["namespace"], body, _preload_content=False)
            await call_model(f"scale {label}", request, apps.api_client, None)
        except (TargetError, PlanError) as exc:
            return ExecutionReport([StepResult(service, False, f"{service}: {exc}")])
        workload = Workload("kubernetes", service, label, step["uid"], (), detail, settle_within=step.get("settle_within"))
        return ExecutionReport([await wait_settled(ctx, adapter, workload, plan.verify, f"scaled {label} from {step['from']} to {step['to']} replicas")])


KIND = K8sScale()
