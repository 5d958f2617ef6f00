"""k8s_rollout_undo: roll a Deployment back to its previous revision, or to a given one (`kubectl rollout undo [--to-revision N]`).

The revisions are the Deployment's ReplicaSets, numbered by their deployment.kubernetes.io/revision
annotation, as kubectl reads them. The plan pins the Deployment (uid), the revision it is at and the
one it goes to, with that ReplicaSet's name and images: a rollout between approval and execution
changes the plan, and the request stops. Executing replaces the Deployment's pod template with the
ReplicaSet's (less pod-template-hash); the controller then gives that ReplicaSet the next revision
number. Verification: the rollout, then the service's checks.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.kinds.k8s_plan import kubernetes_target
from bot.action.kinds.target_health import then_phrase, wait_settled
from bot.action.params import ParamType
from bot.targets import TargetError, Workload
from bot.targets.kubernetes import DEFAULT_PROGRESS_DEADLINE, rollout


class K8sRolloutUndo(ActionKind):
    name = "k8s_rollout_undo"
    thing = "deployment"
    verb = "roll back"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "service": ParamType("service", "The service whose Deployment rolls back."),
            "revision": ParamType("int", "The revision to go back to; default: the one before the current.", min=1, max=1_000_000, required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        service, wanted = params["service"], params.get("revision")
        adapter, target = kubernetes_target(ctx, service, self.name, deployment_only=True)
        try:
            deployment, revisions = await adapter.revisions(target)
        except TargetError as exc:
            raise PlanError(f"{exc}; nothing was requested.") from None
        try:
            goal = rollout.rollback_target(revisions, wanted)
        except ValueError as exc:
            raise PlanError(f"{service} cannot be rolled back: {exc}; nothing was requested.") from None
        step = {
            "service": service,
            "namespace": target.namespace,
            "deployment": target.deployment,
            "uid": deployment.metadata.uid,
            "from_revision": revisions[-1].number,
            "to_revision": goal.number,
            "replicaset": goal.replicaset,
            "images": goal.image,
            "settle_within": float(deployment.spec.progress_deadline_seconds or DEFAULT_PROGRESS_DEADLINE),
        }
        return Plan(
            action=action,
            kind=self.name,
            subject=service,
            params={"service": service, "revision": wanted},
            steps=[step],
            targets=[Target("service", service)],
            verify=spec.verify.model_dump() if spec.verify else None,
        )

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        what = (
            f"{step['service']}: roll deployment {step['namespace']}/{step['deployment']} back from revision "
            f"{step['from_revision']} to revision {step['to_revision']} (ReplicaSet {step['replicaset']}: {step['images']}), "
            "then wait for the rollout"
        )
        return [what + then_phrase(step["service"], plan.verify, step.get("settle_within"))]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step, service = plan.steps[0], plan.steps[0]["service"]
        try:
            adapter, target = kubernetes_target(ctx, service, self.name, deployment_only=True)
            deployment, revisions = await adapter.revisions(target)
            goal = next((r for r in revisions if r.number == step["to_revision"] and r.replicaset == step["replicaset"]), None)
            if deployment.metadata.uid != step["uid"] or goal is None or revisions[-1].number != step["from_revision"]:
                raise TargetError("the Deployment or its revisions changed since the plan was made; nothing was changed")
            detail = {"kind": "Deployment", "namespace": step["namespace"], "name": step["deployment"]}
            await adapter.patch(detail, rollout.undo_patch(goal), "roll back")
        except (TargetError, PlanError) as exc:
            return ExecutionReport([StepResult(service, False, f"{service}: {exc}")])
        workload = Workload("kubernetes", service, f"deployment {step['namespace']}/{step['deployment']}", step["uid"], (), detail,
                            settle_within=step.get("settle_within"))
        done = f"rolled deployment {step['namespace']}/{step['deployment']} back to revision {step['to_revision']}"
        return ExecutionReport([await wait_settled(ctx, adapter, workload, plan.verify, done)])


KIND = K8sRolloutUndo()
