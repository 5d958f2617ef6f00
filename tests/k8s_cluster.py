"""The state and controllers behind the Kubernetes API double (tests/k8s_double.py).

Objects are kept as the JSON the API serves. Time is the cluster's own (`now`), moved only by
`tick(seconds)`: the controllers (Deployment, ReplicaSet, StatefulSet, kubelet) run on each tick,
never on a timer, so a test decides exactly when a rollout progresses.

Semantics kept, as the API documents them:
- every write (spec or status) sets a new `metadata.resourceVersion`, from one cluster-wide counter;
- a change to a workload's spec increments `metadata.generation`; the controller copies it to
  `status.observedGeneration` when it next runs (a tick), not at the write;
- a Deployment's template change makes a new ReplicaSet named <deployment>-<pod-template-hash>,
  labelled with that hash and annotated `deployment.kubernetes.io/revision` = the highest so far + 1;
  going back to an older template reuses its ReplicaSet and gives it the next revision (kubectl's undo);
  the old ReplicaSets are scaled to 0 once the new one's pods are all ready;
- pods become Running and ready `ready_after` seconds (cluster time) after they were created;
  `ready_after=None` keeps them waiting (ImagePullBackOff) forever: a rollout that never finishes;
- the Progressing condition turns False with reason ProgressDeadlineExceeded once a rollout has
  made no progress for spec.progressDeadlineSeconds;
- a StatefulSet replaces its pods one at a time, highest ordinal first (RollingUpdate).
"""
from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

try:  # tests/ on sys.path (rootdir-relative imports, no tests/__init__.py)
    from k8s_objects import HASH_LABEL, REVISION, SAFE_ALPHABET, is_ready, labels_match, owner_uid, parse_stamp, reference, stamp, template_hash
except ImportError:  # tests is a package
    from tests.k8s_objects import HASH_LABEL, REVISION, SAFE_ALPHABET, is_ready, labels_match, owner_uid, parse_stamp, reference, stamp, template_hash


@dataclass
class LogLine:
    at: datetime
    text: str


@dataclass
class Behaviour:
    """How a workload's new pods behave: seconds to ready (None: never), and log lines each container writes."""

    ready_after: float | None = 10.0


@dataclass
class Cluster:
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    deployments: dict = field(default_factory=dict)  # (namespace, name) -> object
    statefulsets: dict = field(default_factory=dict)
    replicasets: dict = field(default_factory=dict)
    pods: dict = field(default_factory=dict)
    logs: dict = field(default_factory=dict)  # (namespace, pod, container) -> [LogLine]
    behaviour: dict = field(default_factory=dict)  # (namespace, workload name) -> Behaviour
    _versions: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------ writes

    def touch(self, obj: dict) -> dict:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return obj

    def _meta(self, name: str, namespace: str, labels: dict | None = None) -> dict:
        meta = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "creationTimestamp": stamp(self.now)}
        if labels:
            meta["labels"] = dict(labels)
        return meta

    def _workload(self, kind: str, namespace: str, name: str, replicas: int, containers, labels: dict, **spec) -> dict:
        return {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {**self._meta(name, namespace, labels), "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": c, "image": f"registry.example/{name}-{c}:1.0"} for c in containers]},
                },
                **spec,
            },
            "status": {},
        }

    def add_deployment(self, namespace: str, name: str, *, replicas: int = 2, containers=("app",), ready_after: float | None = 10.0,
                       progress_deadline: int = 600, labels: dict | None = None) -> dict:
        """A Deployment whose first rollout has finished: its pods are running and ready."""
        deployment = self._workload(
            "Deployment", namespace, name, replicas, containers, labels or {"app": name},
            strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            revisionHistoryLimit=10,
            progressDeadlineSeconds=progress_deadline,
        )
        self.deployments[(namespace, name)] = deployment
        self.behaviour[(namespace, name)] = Behaviour(ready_after=0.0)
        self._reconcile_deployment(deployment)
        self._kubelet()
        self._reconcile_deployment(deployment)
        self.behaviour[(namespace, name)] = Behaviour(ready_after=ready_after)
        return deployment

    def add_statefulset(self, namespace: str, name: str, *, replicas: int = 2, containers=("app",), ready_after: float | None = 10.0) -> dict:
        """A StatefulSet whose pods are all running and ready."""
        statefulset = self._workload("StatefulSet", namespace, name, replicas, containers, {"app": name},
                                     serviceName=name, updateStrategy={"type": "RollingUpdate"})
        self.statefulsets[(namespace, name)] = statefulset
        self.behaviour[(namespace, name)] = Behaviour(ready_after=0.0)
        for _ in range(replicas + 1):
            self._reconcile_statefulset(statefulset)
            self._kubelet()
        self._reconcile_statefulset(statefulset)
        self.behaviour[(namespace, name)] = Behaviour(ready_after=ready_after)
        return statefulset

    def tick(self, seconds: float = 0.0) -> None:
        """Move the cluster's time on and let every controller run once."""
        self.now += timedelta(seconds=seconds)
        self._kubelet()
        for deployment in list(self.deployments.values()):
            self._reconcile_deployment(deployment)
        for statefulset in list(self.statefulsets.values()):
            self._reconcile_statefulset(statefulset)
        self._kubelet()
        for deployment in list(self.deployments.values()):
            self._reconcile_deployment(deployment)

    def write_log(self, namespace: str, pod: str, container: str, text: str, ago: float = 0.0) -> None:
        line = LogLine(self.now - timedelta(seconds=ago), text)
        lines = self.logs.setdefault((namespace, pod, container), [])
        lines.append(line)
        lines.sort(key=lambda item: item.at)

    def terminate(self, namespace: str, pod: str, container: str, reason: str, *, ago: float = 60.0, exit_code: int = 137,
                  waiting: str | None = "CrashLoopBackOff") -> None:
        """The container died (reason: OOMKilled, Error) `ago` seconds back and restarted; it now waits in
        `waiting` (CrashLoopBackOff) or, with waiting=None, runs again."""
        obj = self.pods[(namespace, pod)]
        status = next(s for s in obj["status"]["containerStatuses"] if s["name"] == container)
        finished = self.now - timedelta(seconds=ago)
        status["restartCount"] += 1
        status["lastState"] = {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": stamp(finished - timedelta(seconds=30)),
                "finishedAt": stamp(finished),
                "containerID": status["containerID"],
            }
        }
        if waiting:
            status["state"] = {"waiting": {"reason": waiting, "message": f"back-off restarting failed container {container} in pod {pod}"}}
            status["ready"], status["started"] = False, False
        else:
            status["state"] = {"running": {"startedAt": stamp(finished)}}
        self._pod_conditions(obj)
        self.touch(obj)

    # ------------------------------------------------------------------ reads

    def pods_of(self, namespace: str, selector: dict) -> list[dict]:
        return [pod for (ns, _), pod in sorted(self.pods.items()) if ns == namespace and labels_match(pod, selector)]

    def replicasets_of(self, namespace: str, selector: dict) -> list[dict]:
        return [rs for (ns, _), rs in sorted(self.replicasets.items()) if ns == namespace and labels_match(rs, selector)]

    # ------------------------------------------------------------------ controllers

    def _reconcile_deployment(self, deployment: dict) -> None:
        ns, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        spec, selector = deployment["spec"], deployment["spec"]["selector"]["matchLabels"]
        owned = [rs for rs in self.replicasets_of(ns, selector) if owner_uid(rs) == deployment["metadata"]["uid"]]
        wanted = template_hash(spec["template"])
        new = next((rs for rs in owned if rs["metadata"]["labels"][HASH_LABEL] == wanted), None)
        newest = max((int(rs["metadata"]["annotations"][REVISION]) for rs in owned), default=0)
        status = deployment.setdefault("status", {})
        if new is None or int(new["metadata"]["annotations"][REVISION]) != newest:
            new = new or self._new_replicaset(deployment, wanted)
            new["metadata"]["annotations"][REVISION] = str(newest + 1)
            deployment["metadata"].setdefault("annotations", {})[REVISION] = str(newest + 1)
            self.touch(new)
            status["_progress"] = stamp(self.now)
        old = [rs for rs in owned if rs is not new]
        desired = spec["replicas"]
        if new["spec"]["replicas"] != desired:
            new["spec"]["replicas"] = desired
            new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(desired)
            self.touch(new)
        new_pods = self.pods_of(ns, new["spec"]["selector"]["matchLabels"])
        new_ready = sum(1 for pod in new_pods if is_ready(pod))
        for rs in old:  # scaled down once the new ReplicaSet is ready
            if new_ready >= desired and rs["spec"]["replicas"]:
                rs["spec"]["replicas"] = 0
                self.touch(rs)
        for rs in owned + ([new] if new not in owned else []):
            self._reconcile_replicaset(rs)
        all_pods = [pod for rs in [new, *old] for pod in self.pods_of(ns, rs["spec"]["selector"]["matchLabels"])]
        ready = sum(1 for pod in all_pods if is_ready(pod))
        updated = len(self.pods_of(ns, new["spec"]["selector"]["matchLabels"]))
        complete = updated == desired and ready == desired and len(all_pods) == desired
        progress = status.pop("_progress", None) or status.get("_since") or stamp(self.now)
        if new_ready != status.get("_new_ready"):
            progress = stamp(self.now)  # a pod became ready: progress, the deadline starts again
        if complete:
            condition = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.')
        elif self.now - parse_stamp(progress) > timedelta(seconds=spec.get("progressDeadlineSeconds", 600)):
            condition = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.')
        else:
            condition = ("True", "ReplicaSetUpdated", f'ReplicaSet "{new["metadata"]["name"]}" is progressing.')
        available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.") if ready >= desired - desired // 4 else (
            "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        served = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": len(all_pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [self._condition("Available", *available, status), self._condition("Progressing", *condition, status)],
        }
        if len(all_pods) - ready > 0:
            served["unavailableReplicas"] = len(all_pods) - ready
        private = {"_since": progress, "_new_ready": new_ready}
        if {k: v for k, v in status.items() if not k.startswith("_")} != served:
            deployment["status"] = {**served, **private}
            self.touch(deployment)
        else:
            status.update(private)

    def _condition(self, kind: str, value: str, reason: str, message: str, status: dict) -> dict:
        before = next((c for c in status.get("conditions", []) if c["type"] == kind), None)
        if before and (before["status"], before["reason"], before["message"]) == (value, reason, message):
            return before
        changed = stamp(self.now) if not before or before["status"] != value else before["lastTransitionTime"]
        return {"type": kind, "status": value, "lastUpdateTime": stamp(self.now), "lastTransitionTime": changed, "reason": reason, "message": message}

    def _new_replicaset(self, deployment: dict, wanted: str) -> dict:
        ns, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        template = copy.deepcopy(deployment["spec"]["template"])
        template["metadata"].setdefault("labels", {})[HASH_LABEL] = wanted
        labels = dict(template["metadata"]["labels"])
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                **self._meta(f"{name}-{wanted}", ns, labels),
                "annotations": {REVISION: "0"},
                "ownerReferences": [reference(deployment)],
                "generation": 1,
            },
            "spec": {"replicas": 0, "selector": {"matchLabels": {**deployment["spec"]["selector"]["matchLabels"], HASH_LABEL: wanted}}, "template": template},
            "status": {"replicas": 0},
        }
        self.replicasets[(ns, rs["metadata"]["name"])] = rs
        return rs

    def _reconcile_replicaset(self, rs: dict) -> None:
        ns = rs["metadata"]["namespace"]
        pods = self.pods_of(ns, rs["spec"]["selector"]["matchLabels"])
        for pod in pods[rs["spec"]["replicas"]:]:
            del self.pods[(ns, pod["metadata"]["name"])]
        for _ in range(rs["spec"]["replicas"] - len(pods)):
            suffix = "".join(SAFE_ALPHABET[(next(self._names) * 7 + i * 13) % len(SAFE_ALPHABET)] for i in range(5))
            self._new_pod(rs, f"{rs['metadata']['name']}-{suffix}", rs["spec"]["template"])
        pods = self.pods_of(ns, rs["spec"]["selector"]["matchLabels"])
        served = {"replicas": len(pods), "readyReplicas": sum(1 for p in pods if is_ready(p)), "observedGeneration": rs["metadata"]["generation"]}
        served["availableReplicas"] = served["readyReplicas"]
        if rs["status"] != served:
            rs["status"] = served
            self.touch(rs)

    def _reconcile_statefulset(self, sts: dict) -> None:
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        revision = f"{name}-{template_hash(sts['spec']['template'])}"
        pods = {pod["metadata"]["name"]: pod for pod in self.pods_of(ns, sts["spec"]["selector"]["matchLabels"])}
        template = copy.deepcopy(sts["spec"]["template"])
        template["metadata"].setdefault("labels", {})["controller-revision-hash"] = revision
        desired = sts["spec"]["replicas"]
        for ordinal in range(desired):  # one missing pod created per pass, lowest ordinal first
            if f"{name}-{ordinal}" not in pods:
                self._new_pod(sts, f"{name}-{ordinal}", template)
                break
        else:
            stale = [p for p in pods.values() if p["metadata"]["labels"].get("controller-revision-hash") != revision]
            if stale and all(is_ready(p) for p in pods.values()):  # replace the highest ordinal when all are ready
                victim = max(stale, key=lambda p: int(p["metadata"]["name"].rsplit("-", 1)[1]))
                del self.pods[(ns, victim["metadata"]["name"])]
        for pod_name in [n for n in pods if int(n.rsplit("-", 1)[1]) >= desired]:
            self.pods.pop((ns, pod_name), None)
        pods = self.pods_of(ns, sts["spec"]["selector"]["matchLabels"])
        updated = sum(1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == revision)
        ready = sum(1 for p in pods if is_ready(p))
        served = {
            "observedGeneration": sts["metadata"]["generation"],
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "currentRevision": revision if updated == desired else sts["status"].get("currentRevision", revision),
            "updateRevision": revision,
            "collisionCount": 0,
        }
        if sts["status"] != served:
            sts["status"] = served
            self.touch(sts)

    def _new_pod(self, owner: dict, name: str, template: dict) -> None:
        ns = owner["metadata"]["namespace"]
        containers = template["spec"]["containers"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**self._meta(name, ns, template["metadata"].get("labels")), "ownerReferences": [reference(owner)]},
            "spec": copy.deepcopy(template["spec"]),
            "status": {
                "phase": "Pending",
                "startTime": stamp(self.now),
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": "",
                        "ready": False,
                        "started": False,
                        "restartCount": 0,
                        "containerID": f"containerd://{uuid.uuid4().hex}",
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                        "lastState": {},
                    }
                    for c in containers
                ],
            },
        }
        self._pod_conditions(pod)
        self.pods[(ns, name)] = self.touch(pod)

    def _kubelet(self) -> None:
        """Pods whose time has come start; those that never will wait in ImagePullBackOff."""
        for (ns, _), pod in self.pods.items():
            if pod["status"]["phase"] != "Pending":
                continue
            owners = [(len(w), b) for (bns, w), b in self.behaviour.items() if bns == ns and pod["metadata"]["name"].startswith(w + "-")]
            behaviour = max(owners, key=lambda item: item[0])[1] if owners else Behaviour()
            age = (self.now - parse_stamp(pod["metadata"]["creationTimestamp"])).total_seconds()
            if behaviour.ready_after is None:
                for status in pod["status"]["containerStatuses"]:
                    status["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{status["image"]}"'}}
                self.touch(pod)
                continue
            if age < behaviour.ready_after:
                continue
            pod["status"]["phase"] = "Running"
            pod["status"]["podIP"] = "10.0.0.%d" % (len(self.pods) % 250 + 1)
            for status in pod["status"]["containerStatuses"]:
                status.update(ready=True, started=True, imageID=f"{status['image']}@sha256:{'0' * 64}", state={"running": {"startedAt": stamp(self.now)}})
            self._pod_conditions(pod)
            self.touch(pod)

    def _pod_conditions(self, pod: dict) -> None:
        ready = "True" if pod["status"]["phase"] == "Running" and all(s["ready"] for s in pod["status"]["containerStatuses"]) else "False"
        pod["status"]["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": pod["metadata"]["creationTimestamp"]},
            {"type": "Ready", "status": ready, "lastTransitionTime": stamp(self.now)},
        ]
