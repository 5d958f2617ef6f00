"""The Kubernetes adapter: a service's `kubernetes:` target (a Deployment or StatefulSet).

- describe: the workload by uid and its current revision (pinned in the plan: a rollout since
  the approval changes the hash), its pods' terminationGracePeriodSeconds and its
  progressDeadlineSeconds (what the plan shows instead of a grace the bot cannot set);
- restart: `kubectl rollout restart` (the restartedAt template annotation);
- settled: `kubectl rollout status`, polled on the bot's clock; ProgressDeadlineExceeded ends
  the wait at once and nothing more is done (no retry, no undo);
- logs: the pods of the selector, every container or the target's, merged by time;
- state: the workload's readiness and the pods' troubles (bot/targets/kubernetes/pods.py).

The platform-only kinds (k8s_rollout_undo, k8s_scale, k8s_logs) use the same adapter.
"""
from __future__ import annotations

import asyncio
from datetime import datetime

from bot.schedule.clock import SystemClock
from bot.targets.base import LogLines, LogQuery, Reading, Settled, TargetError, Workload
from bot.targets.kubernetes import pods as pod_views
from bot.targets.kubernetes import rollout
from bot.targets.kubernetes.client import CALL_TIMEOUT, Cluster, call, call_model, read_bounded, refusal
from bot.config.types import Thresholds

POLL_SECONDS = 1.0
DEFAULT_PROGRESS_DEADLINE = 600  # spec.progressDeadlineSeconds when unset, as the API server defaults it
DEFAULT_TERMINATION_GRACE = 30  # a pod's terminationGracePeriodSeconds when unset
PENDING_LIMIT = 300.0  # the `container` check's limit for a Pending pod (k8s_pods has its own setting)


class KubernetesAdapter:
    platform = "kubernetes"
    log_times = True

    def __init__(self, connection, clock=None):
        self.cluster = Cluster(connection)
        self.clock = clock or SystemClock()  # the restartedAt stamp; waits use the caller's clock

    async def close(self) -> None:
        await self.cluster.close()

    # ------------------------------------------------------------------ reads

    async def read_workload(self, target):
        apps, kind, ns, name = await self.cluster.apps(), target.workload_kind, target.namespace, target.workload_name
        if kind == "Deployment":
            return await call_model(f"read deployment {ns}/{name}", apps.read_namespaced_deployment(name, ns, _preload_content=False), apps.api_client, "V1Deployment")
        return await call_model(f"read statefulset {ns}/{name}", apps.read_namespaced_stateful_set(name, ns, _preload_content=False), apps.api_client, "V1StatefulSet")

    async def selector(self, target, workload=None) -> dict:
        if target.selector:
            return dict(target.selector)
        workload = workload or await self.read_workload(target)
        return dict(workload.spec.selector.match_labels or {})

    async def list_pods(self, target, selector: dict) -> list:
        core = await self.cluster.core()
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        request = core.list_namespaced_pod(target.namespace, label_selector=text, _preload_content=False)
        return (await call_model(f"list pods in {target.namespace}", request, core.api_client, "V1PodList")).items

    async def revisions(self, target) -> tuple[object, list[rollout.Revision]]:
        """The Deployment and its revisions, oldest first."""
        deployment = await self.read_workload(target)
        apps = await self.cluster.apps()
        text = ",".join(f"{k}={v}" for k, v in sorted((deployment.spec.selector.match_labels or {}).items()))
        request = apps.list_namespaced_replica_set(target.namespace, label_selector=text, _preload_content=False)
        found = await call_model(f"list replicasets in {target.namespace}", request, apps.api_client, "V1ReplicaSetList")
        return deployment, rollout.history(deployment, found.items, apps.api_client)

    # ------------------------------------------------------------------ the protocol

    async def describe(self, service: str, target) -> Workload:
        obj = await self.read_workload(target)
        kind = target.workload_kind.lower()
        detail = {"kind": target.workload_kind, "namespace": target.namespace, "name": target.workload_name}
        revision = (obj.metadata.annotations or {}).get(rollout.REVISION)
        if revision:
            detail["revision"] = revision
        template = obj.spec.template.spec if obj.spec.template else None
        grace = template.termination_grace_period_seconds if template else None
        # A Deployment's own deadline; a StatefulSet has none, so it gets the Deployment default.
        deadline = getattr(obj.spec, "progress_deadline_seconds", None) or DEFAULT_PROGRESS_DEADLINE
        return Workload(
            "kubernetes", service, f"{kind} {target.namespace}/{target.workload_name}", obj.metadata.uid, (), detail,
            stop_grace=float(grace if grace is not None else DEFAULT_TERMINATION_GRACE), settle_within=float(deadline),
        )

    async def patch(self, detail: dict, body, what: str) -> None:
        """A patch on the workload itself (strategic merge for a dict, JSON patch for a list, as the client picks)."""
        apps, ns, name = await self.cluster.apps(), detail["namespace"], detail["name"]
        if detail["kind"] == "Deployment":
            await call_model(f"{what} deployment {ns}/{name}", apps.patch_namespaced_deployment(name, ns, body, _preload_content=False), apps.api_client, None)
        else:
            await call_model(f"{what} statefulset {ns}/{name}", apps.patch_namespaced_stateful_set(name, ns, body, _preload_content=False), apps.api_client, None)

    async def restart(self, workload: Workload, timeout: float) -> str:
        await self._same(workload)
        await self.patch(workload.detail, rollout.restart_patch(self.clock.now()), "restart")
        return f"rolled out a restart of {workload.name}"

    async def _same(self, workload: Workload) -> None:
        """The workload approvers saw is still the one behind the name (same uid)."""
        detail = workload.detail
        target = _Named(detail["namespace"], detail["kind"], detail["name"])
        current = await self.read_workload(target)
        if current.metadata.uid != workload.ident:
            raise TargetError(f"{workload.name} was replaced since the plan was made; nothing was changed")

    async def settled(self, workload: Workload, deadline: datetime, clock) -> Settled:
        detail = workload.detail
        target = _Named(detail["namespace"], detail["kind"], detail["name"])
        while True:
            state = rollout.progress(detail["kind"], await self.read_workload(target))
            if state.done:
                return Settled(True, state.detail)
            if state.stuck or clock.now() >= deadline:
                return Settled(False, state.detail)
            await clock.sleep(POLL_SECONDS)

    async def logs(self, target, query: LogQuery, container: str | None = None) -> LogLines:
        selector = await self.selector(target)
        found = await self.list_pods(target, selector)
        pairs = pod_views.streams(found, container or target.container)
        if not pairs:
            raise TargetError(f"{target.workload_kind.lower()} {target.namespace}/{target.workload_name} has no pods with {'container ' + (container or target.container) if (container or target.container) else 'containers'} to read")
        results = await asyncio.gather(*(self._stream(target.namespace, pod, name, query) for pod, name in pairs))
        read = [(pod, name, raw) for (pod, name), raw in zip(pairs, results) if raw is not None]
        lines = await asyncio.to_thread(pod_views.merge, read, query.tail)
        skipped = len(pairs) - len(read)
        source = f"{target.workload_kind.lower()} {target.namespace}/{target.workload_name}: {len(read)} container logs"
        if skipped:
            source += f" ({skipped} not started yet)"
        return LogLines(lines, source)

    async def _stream(self, namespace: str, pod: str, container: str, query: LogQuery) -> str | None:
        """One container's log text with timestamps, bounded; None for a container not started yet (400)."""
        core = await self.cluster.core()
        what = f"read the logs of pod {namespace}/{pod}"
        response = await call(what, core.read_namespaced_pod_log(
            pod, namespace, container=container, timestamps=True, tail_lines=query.tail,
            since_seconds=pod_views.since_seconds(query.since), limit_bytes=pod_views.MAX_STREAM_BYTES, _preload_content=False,
        ))
        try:
            if response.status == 400:
                return None
            if response.status != 200:
                raise TargetError(refusal(what, response.status))
            body = await asyncio.wait_for(read_bounded(response.content, pod_views.MAX_STREAM_BYTES), CALL_TIMEOUT)
        finally:
            response.release()
        return body.decode("utf-8", errors="replace")

    async def workload_readings(self, target) -> list[Reading]:
        obj = await self.read_workload(target)
        state = rollout.progress(target.workload_kind, obj)
        label = f"{target.workload_kind.lower()} {target.namespace}/{target.workload_name}"
        if state.done:
            return [Reading("ok", f"{label}: {state.detail.removeprefix('rollout finished: ')}")]
        if state.stuck:
            return [Reading("critical", f"{label}: {state.detail}")]
        desired = obj.spec.replicas if obj.spec.replicas is not None else 1
        available = (obj.status.available_replicas or 0) if obj.status else 0
        grade = "critical" if available == 0 and desired > 0 else "warning"
        return [Reading(grade, f"{label}: {state.detail}")]

    async def pod_readings(self, target, now: datetime, *, pending_limit: float, restarts) -> list[Reading]:
        found = await self.list_pods(target, await self.selector(target))
        return pod_views.pod_readings(found, now, pending_limit=pending_limit, restarts=restarts)

    async def state(self, target) -> list[Reading]:
        readings = await self.workload_readings(target)
        troubles = await self.pod_readings(target, self.clock.now(), pending_limit=PENDING_LIMIT, restarts=Thresholds(warn=1, critical=5))
        return readings + [r for r in troubles if r.status != "ok"]


class _Named:
    """A workload named by a plan's detail, shaped like KubernetesTarget for the reads."""

    def __init__(self, namespace: str, kind: str, name: str):
        self.namespace, self.workload_kind, self.workload_name = namespace, kind, name
        self.selector, self.container = None, None


def build(connection, adapters) -> KubernetesAdapter:
    return KubernetesAdapter(connection)
