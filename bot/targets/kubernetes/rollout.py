"""Rollouts, as kubectl reads and writes them: status, restart, history and undo, scale.

Pure functions over the API's objects (kubernetes-asyncio models), so what counts as "done",
"stuck" or "the previous revision" is one place and testable without a cluster:
- done (kubectl rollout status): observedGeneration >= generation, and updated, ready and
  available replicas all equal the desired count (no old pods left);
- stuck: the Progressing condition is False with reason ProgressDeadlineExceeded (Deployments);
- restart: the pod template gets the annotation kubectl.kubernetes.io/restartedAt = now;
- history: a Deployment's ReplicaSets by their deployment.kubernetes.io/revision annotation; undo
  sets the Deployment's template to that ReplicaSet's, less its pod-template-hash label.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True)
class Progress:
    done: bool
    stuck: bool  # ProgressDeadlineExceeded: it will not finish by itself
    detail: str  # one sentence


def progress(kind: str, obj) -> Progress:
    """Where a Deployment's or StatefulSet's rollout stands now (kubectl rollout status)."""
    status, desired = obj.status, obj.spec.replicas if obj.spec.replicas is not None else 1
    if status is None or (status.observed_generation or 0) < (obj.metadata.generation or 0):
        return Progress(False, False, "waiting for the controller to observe the change")
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return Progress(False, True, f"the rollout exceeded its progress deadline (ProgressDeadlineExceeded): {status.ready_replicas or 0} of {desired} ready")
    updated, ready, available = status.updated_replicas or 0, status.ready_replicas or 0, status.available_replicas or 0
    if kind == "StatefulSet" and status.update_revision and status.current_revision != status.update_revision and updated < desired:
        return Progress(False, False, f"{updated} of {desired} pods updated")
    if updated < desired:
        return Progress(False, False, f"{updated} of {desired} new pods updated, {ready} ready")
    if (status.replicas or 0) > updated:
        return Progress(False, False, f"{(status.replicas or 0) - updated} old pods pending termination")
    if ready < desired or available < desired:
        return Progress(False, False, f"{ready} of {desired} ready, {available} available")
    return Progress(True, False, f"rollout finished: {ready} of {desired} ready and available")


def restart_patch(now: datetime) -> dict:
    """What `kubectl rollout restart` sends (a strategic merge patch on the pod template)."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now.isoformat(timespec="seconds")}}}}}


@dataclass(frozen=True)
class Revision:
    number: int
    replicaset: str
    template: dict  # the ReplicaSet's pod template as the API spells it, pod-template-hash removed
    image: str  # its containers' images, for the plan


def history(deployment, replicasets: list, api_client) -> list[Revision]:
    """The Deployment's revisions, oldest first, from the ReplicaSets it controls."""
    uid, revisions = deployment.metadata.uid, []
    for rs in replicasets:
        owners = rs.metadata.owner_references or []
        number = (rs.metadata.annotations or {}).get(REVISION)
        if not any(o.uid == uid and o.controller for o in owners) or number is None or not number.isdigit():
            continue
        template = copy.deepcopy(api_client.sanitize_for_serialization(rs.spec.template))
        (template.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
        images = ", ".join(c["image"] for c in template["spec"]["containers"])
        revisions.append(Revision(int(number), rs.metadata.name, template, images))
    return sorted(revisions, key=lambda r: r.number)


def rollback_target(revisions: list[Revision], wanted: int | None) -> Revision:
    """The revision undo goes to: `wanted`, or the one before the current (highest). ValueError says why not."""
    if not revisions:
        raise ValueError("it has no recorded revisions")
    current = revisions[-1]
    if wanted is None:
        if len(revisions) < 2:
            raise ValueError(f"it has no revision before the current one ({current.number})")
        return revisions[-2]
    if wanted == current.number:
        raise ValueError(f"revision {wanted} is the current one")
    for revision in revisions:
        if revision.number == wanted:
            return revision
    known = ", ".join(str(r.number) for r in revisions)
    raise ValueError(f"it has no revision {wanted} (known: {known})")


def undo_patch(revision: Revision) -> list[dict]:
    """kubectl's undo: replace the template with the revision's (a JSON patch: the whole template, not merged)."""
    return [{"op": "replace", "path": "/spec/template", "value": revision.template}]


def scale_patch(replicas: int) -> dict:
    return {"spec": {"replicas": replicas}}
