"""What the Kubernetes-only kinds share: the service's kubernetes target and the adapter that reaches it."""
from __future__ import annotations

from bot.action.kinds.base import PlanError


def kubernetes_target(ctx, service: str, kind: str, *, deployment_only: bool = False):
    """(adapter, target) for a service on Kubernetes, or PlanError with the sentence saying why not."""
    target = ctx.config.services[service].kubernetes
    if target is None:
        raise PlanError(f"{service} does not run on Kubernetes, and {kind} acts on Kubernetes workloads only; nothing was requested.")
    if deployment_only and target.deployment is None:
        raise PlanError(
            f"{service} is a StatefulSet, and {kind} needs a Deployment's ReplicaSet history; nothing was requested."
        )
    return ctx.bot.checks.targets.for_platform(ctx.config, "kubernetes"), target
