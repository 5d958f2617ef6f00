"""k8s_workload: the service's Deployment or StatefulSet: ready and available replicas against desired, and a rollout stuck past its deadline.

Ok when the rollout is done (kubectl rollout status); critical when nothing is available or the
Progressing condition says ProgressDeadlineExceeded; a warning while a rollout is under way.
"""
from __future__ import annotations

from bot.check.result import Finding
from bot.config.target_check_models import K8sWorkloadCheck


async def run(check: K8sWorkloadCheck, ctx) -> list[Finding]:
    if ctx.target_adapter is None or getattr(ctx.target_adapter, "platform", None) != "kubernetes":
        return [Finding("critical", "the service does not run on Kubernetes")]
    return [Finding(r.status, r.detail, r.part) for r in await ctx.target_adapter.workload_readings(ctx.target)]
