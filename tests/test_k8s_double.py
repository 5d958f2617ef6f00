"""The Kubernetes API double keeps the API's documented semantics for the subset opsbot uses.

Raw HTTP (aiohttp) where the exact status and Status object matter; kubernetes-asyncio where the
client's own choices (patch Content-Type, query parameters) are what is tested.
"""
from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client, config

from k8s_objects import HASH_LABEL, REVISION
from k8s_double import ROLE

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = "/apis/apps/v1/namespaces/shop/deployments/web"


async def http(k8s, method: str, path: str, *, token: str | None = "default", body=None, content_type: str | None = None, **query):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {k8s.token if token == 'default' else token}"
    if content_type:
        headers["Content-Type"] = content_type
    import json

    data = json.dumps(body).encode() if body is not None else None
    async with aiohttp.ClientSession() as session:
        async with session.request(method, k8s.url + path, headers=headers, data=data, params=query) as response:
            text = await response.text()
            kind = response.headers.get("Content-Type", "")
            return response.status, (json.loads(text) if kind.startswith("application/json") else text)


@pytest.fixture
async def apps(k8s, tmp_path):
    api = await config.new_client_from_config(config_file=str(k8s.write_kubeconfig(tmp_path / "kubeconfig")))
    yield client.AppsV1Api(api), client.CoreV1Api(api)
    await api.close()


async def test_no_or_a_wrong_token_is_401_with_a_status_object(k8s):
    k8s.cluster.add_deployment("shop", "web")
    for token in (None, "wrong"):
        status, body = await http(k8s, "GET", DEPLOYMENT, token=token)
        assert status == 401
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


async def test_the_role_allows_exactly_the_deploy_roles_verbs(k8s):
    k8s.cluster.add_deployment("shop", "web")
    assert (await http(k8s, "GET", DEPLOYMENT))[0] == 200
    assert (await http(k8s, "GET", "/apis/apps/v1/namespaces/shop/replicasets"))[0] == 200
    status, body = await http(k8s, "GET", "/apis/apps/v1/namespaces/shop/replicasets/web-x")
    assert status == 403 and body["reason"] == "Forbidden"
    assert 'cannot get resource "replicasets" in API group "apps" in the namespace "shop"' in body["message"]
    status, body = await http(k8s, "PUT", DEPLOYMENT + "/scale", body={"spec": {"replicas": 3}}, content_type="application/json")
    assert status == 403 and 'cannot update resource "deployments/scale"' in body["message"]
    status, _ = await http(k8s, "DELETE", "/api/v1/namespaces/shop/pods/anything")
    assert status == 403
    k8s.tokens["reader"] = {("pods", ""): frozenset({"get", "list"})}
    status, body = await http(k8s, "PATCH", DEPLOYMENT, token="reader", body={}, content_type="application/merge-patch+json")
    assert status == 403 and 'cannot patch resource "deployments"' in body["message"]


async def test_404_409_and_415(k8s):
    k8s.cluster.add_deployment("shop", "web")
    status, body = await http(k8s, "GET", "/apis/apps/v1/namespaces/shop/deployments/nope")
    assert status == 404 and body["message"] == 'deployments.apps "nope" not found' and body["details"]["name"] == "nope"
    status, body = await http(k8s, "PATCH", DEPLOYMENT, body={"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 3}},
                              content_type="application/merge-patch+json")
    assert status == 409 and body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    status, body = await http(k8s, "PATCH", DEPLOYMENT, body={"spec": {"replicas": 3}}, content_type="application/json")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    assert k8s.cluster.deployments[("shop", "web")]["spec"]["replicas"] == 2  # none of them changed anything


async def test_a_template_patch_makes_a_new_replicaset_whose_pods_become_ready_on_ticks(k8s, apps):
    apps_api, core = apps
    k8s.cluster.add_deployment("shop", "web", replicas=2, ready_after=10)
    before = await apps_api.read_namespaced_deployment("web", "shop")
    patched = await apps_api.patch_namespaced_deployment("web", "shop", {"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}})
    assert k8s.patches()[-1].content_type == "application/strategic-merge-patch+json"
    assert patched.metadata.generation == 2 and patched.status.observed_generation == 1  # not observed until the controller runs
    assert int(patched.metadata.resource_version) > int(before.metadata.resource_version)

    k8s.tick(1)
    rs = (await apps_api.list_namespaced_replica_set("shop", label_selector="app=web")).items
    assert sorted(r.metadata.annotations[REVISION] for r in rs) == ["1", "2"]
    new = next(r for r in rs if r.metadata.annotations[REVISION] == "2")
    assert new.metadata.name == f"web-{new.metadata.labels[HASH_LABEL]}" and new.spec.replicas == 2
    status = (await apps_api.read_namespaced_deployment("web", "shop")).status
    assert (status.observed_generation, status.updated_replicas, status.ready_replicas) == (2, 2, 2)  # the old pods still serve
    assert status.replicas == 4
    pods = (await core.list_namespaced_pod("shop", label_selector=f"{HASH_LABEL}={new.metadata.labels[HASH_LABEL]}")).items
    assert {p.status.phase for p in pods} == {"Pending"}

    k8s.tick(10)
    status = (await apps_api.read_namespaced_deployment("web", "shop")).status
    assert (status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas) == (2, 2, 2, 2)
    assert [c.reason for c in status.conditions if c.type == "Progressing"] == ["NewReplicaSetAvailable"]
    old = next(r for r in (await apps_api.list_namespaced_replica_set("shop")).items if r.metadata.annotations[REVISION] == "1")
    assert old.spec.replicas == 0


async def test_a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline(k8s, apps):
    apps_api, _ = apps
    k8s.cluster.add_deployment("shop", "web", ready_after=None, progress_deadline=60)
    await apps_api.patch_namespaced_deployment("web", "shop", {"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}})
    k8s.tick(0)  # the controller sees the change: the deadline counts from here
    k8s.tick(30)
    progressing = [c for c in (await apps_api.read_namespaced_deployment("web", "shop")).status.conditions if c.type == "Progressing"]
    assert progressing[0].reason == "ReplicaSetUpdated"
    k8s.tick(31)
    progressing = [c for c in (await apps_api.read_namespaced_deployment("web", "shop")).status.conditions if c.type == "Progressing"]
    assert (progressing[0].status, progressing[0].reason) == ("False", "ProgressDeadlineExceeded")


async def test_pod_logs_honour_container_since_tail_and_timestamps(k8s, apps):
    _, core = apps
    k8s.cluster.add_deployment("shop", "web", replicas=1, containers=("app", "sidecar"))
    (_, pod), = list(k8s.cluster.pods)
    for ago, text in ((600, "old"), (50, "middle"), (10, "new")):
        k8s.cluster.write_log("shop", pod, "app", text, ago=ago)
    path = f"/api/v1/namespaces/shop/pods/{pod}/log"
    status, body = await http(k8s, "GET", path)
    assert status == 400 and body["message"] == f"a container name must be specified for pod {pod}, choose one of: [app sidecar]"
    status, body = await http(k8s, "GET", path, container="nope")
    assert status == 400 and "container nope is not valid" in body["message"]
    assert (await http(k8s, "GET", path, container="app"))[1] == "old\nmiddle\nnew\n"
    assert (await http(k8s, "GET", path, container="app", sinceSeconds="60"))[1] == "middle\nnew\n"
    assert (await http(k8s, "GET", path, container="app", tailLines="1"))[1] == "new\n"
    text = await (await core.read_namespaced_pod_log(pod, "shop", container="app", timestamps=True, tail_lines=1, _preload_content=False)).text()
    stamp, _, line = text.rstrip("\n").partition(" ")
    assert line == "new" and stamp.endswith("Z") and len(stamp.split(".")[1]) == 10  # nanoseconds and Z


async def test_every_served_object_is_checked_against_the_official_schemas(k8s):
    k8s.cluster.add_deployment("shop", "web")
    assert (await http(k8s, "GET", DEPLOYMENT))[0] == 200
    assert k8s.violations == []
    k8s.cluster.deployments[("shop", "web")]["status"]["readyReplicas"] = "two"  # a shape no cluster sends
    k8s.cluster.deployments[("shop", "web")]["spec"]["surprise"] = True
    await http(k8s, "GET", DEPLOYMENT)
    found, k8s.violations[:] = list(k8s.violations), []
    assert any(".status.readyReplicas: 'two' is not of type 'integer'" in v for v in found), found
    assert any("'surprise' was unexpected" in v for v in found), found


def test_the_doubles_role_is_the_one_deploy_kubernetes_grants():
    """The double refuses exactly what the shipped Role does not allow (deploy/kubernetes/role.yaml)."""
    documents = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "role.yaml").read_text())
    role = next(doc for doc in documents if doc and doc.get("kind") == "Role")
    granted: dict = {}
    for rule in role["rules"]:
        for resource in rule["resources"]:
            name, _, sub = resource.partition("/")
            granted[(name, sub)] = granted.get((name, sub), frozenset()) | frozenset(rule["verbs"])
    assert granted == ROLE
