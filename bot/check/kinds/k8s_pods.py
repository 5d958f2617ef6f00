"""k8s_pods: the service's pods: CrashLoopBackOff, OOMKilled, Pending past a limit, and restarts in the last hour.

bot/targets/kubernetes/pods.py grades; one finding per trouble, named by pod/container, or one ok finding.
"""
from __future__ import annotations

from bot.check.result import Finding
from bot.config.target_check_models import K8sPodsCheck


async def run(check: K8sPodsCheck, ctx) -> list[Finding]:
    if ctx.target_adapter is None or getattr(ctx.target_adapter, "platform", None) != "kubernetes":
        return [Finding("critical", "the service does not run on Kubernetes")]
    now = ctx.target_adapter.clock.now()  # the adapter's clock: checks carry none of their own
    readings = await ctx.target_adapter.pod_readings(ctx.target, now, pending_limit=check.pending_limit, restarts=check.restarts)
    return [Finding(r.status, r.detail, r.part) for r in readings]
