"""A real HTTP imitation of the Kubernetes API server, for the subset opsbot uses.

``K8sDouble`` runs an aiohttp server on 127.0.0.1 (free port); the bot reaches it through an
ordinary kubeconfig (``write_kubeconfig``: the server URL and a bearer token), so the client
library's whole HTTP path is exercised. State and controllers live in tests/k8s_cluster.py
(``double.cluster``); the cluster's time moves only on ``tick()`` or, when
``seconds_per_read`` is set, by that much on each read of a single workload (how a test lets
a rollout progress while the bot polls, without sleeping).

What the double enforces, as the API server does:
- authentication: no or an unknown ``Authorization: Bearer`` token is 401 (a Status object);
- authorization: each token has a role (``ROLE``: the verbs on resources of deploy/kubernetes/'s
  Role); anything else is 403 with the API server's sentence;
- 404 for an absent object, 409 when a write carries a ``metadata.resourceVersion`` that is
  not the object's current one, 415 for a PATCH whose Content-Type is not one of the four
  patch types, 422 for a patch that breaks the object's schema;
- ``pods/log``: ``container`` (400 when a pod with several containers gets none, or a container
  it does not have), ``sinceSeconds``, ``tailLines``, ``timestamps`` (RFC 3339 with nanoseconds),
  streamed in chunks; 400 for a container still waiting to start;
- every object it serves, error Status objects included, is validated against the official
  schemas (tests/k8s_schemas.py); a failure is recorded in ``violations``, and
  tests/conftest.py fails the test that leaves one.

Every request is recorded in ``calls`` (method, path, query, content type, parsed body).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web

try:  # tests/ on sys.path (rootdir-relative imports, no tests/__init__.py)
    import k8s_schemas
    from k8s_cluster import Cluster
    from k8s_objects import labels_match, served
except ImportError:  # tests is a package
    from tests import k8s_schemas
    from tests.k8s_cluster import Cluster
    from tests.k8s_objects import labels_match, served

# deploy/kubernetes/'s Role: (resource, subresource) -> verbs.
ROLE: dict[tuple[str, str], frozenset[str]] = {
    ("pods", ""): frozenset({"get", "list", "watch"}),
    ("pods", "log"): frozenset({"get"}),
    ("deployments", ""): frozenset({"get", "list", "patch"}),
    ("statefulsets", ""): frozenset({"get", "list", "patch"}),
    ("replicasets", ""): frozenset({"list"}),
    ("deployments", "scale"): frozenset({"get", "patch"}),
    ("statefulsets", "scale"): frozenset({"get", "patch"}),
}
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
SERVICE_ACCOUNT = "system:serviceaccount:opsbot:opsbot"
GROUPS = {"deployments": "apps", "statefulsets": "apps", "replicasets": "apps", "pods": ""}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


@dataclass
class Call:
    method: str
    path: str
    query: dict
    content_type: str
    body: object = None


@dataclass
class K8sDouble:
    token: str = "k8s-test-token-0123456789"
    cluster: Cluster = field(default_factory=Cluster)
    seconds_per_read: float = 0.0
    tokens: dict = field(default_factory=dict)  # bearer token -> role (as ROLE)
    calls: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _port: int | None = None

    def __post_init__(self) -> None:
        self.tokens.setdefault(self.token, ROLE)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{resource}", self._handle)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{resource}/{name}", self._handle)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{resource}/{name}/{sub}", self._handle)
        app.router.add_route("*", "/apis/apps/v1/namespaces/{ns}/{resource}", self._handle)
        app.router.add_route("*", "/apis/apps/v1/namespaces/{ns}/{resource}/{name}", self._handle)
        app.router.add_route("*", "/apis/apps/v1/namespaces/{ns}/{resource}/{name}/{sub}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        """A new, empty cluster and clean recordings (the server keeps running)."""
        self.cluster = Cluster()
        self.seconds_per_read = 0.0
        self.tokens = {self.token: ROLE}
        self.calls.clear()
        self.violations.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def write_kubeconfig(self, path: Path, token: str | None = None, context: str = "double") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "opsbot", "user": {"token": token or self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "double", "user": "opsbot"}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def tick(self, seconds: float = 0.0) -> None:
        self.cluster.tick(seconds)

    def patches(self) -> list[Call]:
        return [call for call in self.calls if call.method == "PATCH"]

    # ------------------------------------------------------------------ dispatch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        resource, name, sub = info["resource"], info.get("name", ""), info.get("sub", "")
        body = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
        self.calls.append(Call(request.method, request.path, dict(request.query), request.content_type, body))
        try:
            self._authorize(request, resource, name, sub)
            if sub == "log":
                return await self._log(request, info["ns"], name)
            data = self._route(request, info["ns"], resource, name, sub, body)
        except ApiError as exc:
            return self._status(exc)
        return self._json(200, data)

    def _authorize(self, request: web.Request, resource: str, name: str, sub: str) -> None:
        header = request.headers.get("Authorization", "")
        role = self.tokens.get(header[len("Bearer "):]) if header.startswith("Bearer ") else None
        if role is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        verb = {"GET": "get" if name else ("watch" if request.query.get("watch") in ("1", "true") else "list"),
                "PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"}.get(request.method, request.method.lower())
        if verb not in role.get((resource, sub), frozenset()):
            group = GROUPS.get(resource, "")
            what = f'{resource}.{group} "{name}"' if group and name else (f'{resource} "{name}"' if name else (f"{resource}.{group}" if group else resource))
            full = f"{resource}/{sub}" if sub else resource
            raise ApiError(
                403, "Forbidden",
                f'{what} is forbidden: User "{SERVICE_ACCOUNT}" cannot {verb} resource "{full}" in API group "{group}" '
                f'in the namespace "{request.match_info["ns"]}"',
                {"name": name, "group": group, "kind": full} if name else {"group": group, "kind": full},
            )

    def _route(self, request: web.Request, ns: str, resource: str, name: str, sub: str, body) -> dict:
        store = {"deployments": self.cluster.deployments, "statefulsets": self.cluster.statefulsets,
                 "replicasets": self.cluster.replicasets, "pods": self.cluster.pods}.get(resource)
        if store is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not name:
            return self._list(request, ns, resource, store)
        if request.method == "GET" and not sub and resource in ("deployments", "statefulsets") and self.seconds_per_read:
            self.cluster.tick(self.seconds_per_read)
        obj = store.get((ns, name))
        if obj is None:
            group = GROUPS[resource]
            raise ApiError(404, "NotFound", f'{resource}.{group} "{name}" not found' if group else f'{resource} "{name}" not found',
                           {"name": name, "group": group, "kind": resource} if group else {"name": name, "kind": resource})
        if sub == "scale":
            return self._scale(request, obj, body)
        if request.method == "GET":
            return served(obj)
        if request.method == "PATCH":
            return self._patch(request, obj, body)
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource")

    def _list(self, request: web.Request, ns: str, resource: str, store: dict) -> dict:
        selector = _selector(request.query.get("labelSelector", ""))
        items = [served(obj) for (ons, _), obj in sorted(store.items()) if ons == ns and labels_match(obj, selector)]
        for item in items:  # list items carry no kind/apiVersion
            item.pop("kind", None)
            item.pop("apiVersion", None)
        kind = {"deployments": "DeploymentList", "statefulsets": "StatefulSetList", "replicasets": "ReplicaSetList", "pods": "PodList"}[resource]
        api = "v1" if resource == "pods" else "apps/v1"
        return {"apiVersion": api, "kind": kind, "metadata": {"resourceVersion": str(next(self.cluster._versions))}, "items": items}

    # ------------------------------------------------------------------ writes

    def _patch(self, request: web.Request, obj: dict, body) -> dict:
        kind = request.content_type
        if kind not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: {", ".join(PATCH_TYPES)}')
        if kind == "application/apply-patch+yaml":
            raise ApiError(400, "BadRequest", "server-side apply is not supported by this double")
        updated = copy.deepcopy(served(obj))
        if kind == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            updated = _json_patch(updated, body)
        else:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "json: cannot unmarshal into Go value of type map[string]interface {}")
            updated = _merge(updated, body, strategic=kind == "application/strategic-merge-patch+json")
        self._precondition(obj, body if isinstance(body, dict) else {})
        problems = k8s_schemas.problems(updated)
        if problems or updated["metadata"]["name"] != obj["metadata"]["name"]:
            raise ApiError(422, "Invalid", f'{obj["kind"]}.apps "{obj["metadata"]["name"]}" is invalid: {"; ".join(problems) or "metadata.name: field is immutable"}')
        if updated["spec"] != obj["spec"]:
            updated["metadata"]["generation"] = obj["metadata"]["generation"] + 1
        updated["status"] = obj["status"]  # the main resource ignores status in a patch
        obj.clear()
        obj.update(updated)
        self.cluster.touch(obj)
        return served(obj)

    def _precondition(self, obj: dict, body: dict) -> None:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {obj["kind"].lower()}s.apps "{obj["metadata"]["name"]}": '
                "the object has been modified; please apply your changes to the latest version and try again",
                {"name": obj["metadata"]["name"], "group": "apps", "kind": obj["kind"].lower() + "s"},
            )

    def _scale(self, request: web.Request, obj: dict, body) -> dict:
        if request.method == "PATCH":
            if request.content_type not in PATCH_TYPES[:3]:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
            replicas = ((body or {}).get("spec") or {}).get("replicas") if isinstance(body, dict) else None
            self._precondition(obj, body if isinstance(body, dict) else {})
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", f'Scale.autoscaling "{obj["metadata"]["name"]}" is invalid: spec.replicas: Invalid value: must be greater than or equal to 0')
            if replicas != obj["spec"]["replicas"]:
                obj["spec"]["replicas"] = replicas
                obj["metadata"]["generation"] += 1
                self.cluster.touch(obj)
        elif request.method == "PUT":
            self._precondition(obj, body if isinstance(body, dict) else {})
        selector = ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items())
        meta = obj["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
            "spec": {"replicas": obj["spec"]["replicas"]},
            "status": {"replicas": obj["status"].get("replicas", 0), "selector": selector},
        }

    # ------------------------------------------------------------------ logs

    async def _log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        pod = self.cluster.pods.get((ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = request.query.get("container")
        if container is None:
            if len(names) > 1:
                raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
            container = names[0]
        if container not in names:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
        waiting = status["state"].get("waiting")
        if waiting and not status["restartCount"]:
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {waiting["reason"]}')
        lines = list(self.cluster.logs.get((ns, name, container), []))
        since = request.query.get("sinceSeconds")
        if since is not None:
            lines = [line for line in lines if (self.cluster.now - line.at).total_seconds() <= int(since)]
        tail = request.query.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail):] if int(tail) else []
        stamps = request.query.get("timestamps", "").lower() in ("1", "t", "true")  # Go strconv.ParseBool
        text = "".join((line.at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z " if stamps else "") + line.text + "\n" for line in lines).encode()
        if request.query.get("limitBytes"):
            text = text[: int(request.query["limitBytes"])]
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(text), 4096):  # streamed in chunks, as the kubelet does
            await response.write(text[start:start + 4096])
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ answers

    def _json(self, code: int, data: dict) -> web.Response:
        for problem in k8s_schemas.problems(data):
            self.violations.append(f"served an invalid {data.get('kind')}: {problem}")
        return web.json_response(data, status=code)

    def _status(self, exc: ApiError) -> web.Response:
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": exc.message, "reason": exc.reason, "code": exc.code}
        if exc.details:
            status["details"] = exc.details
        return self._json(exc.code, status)


def _selector(text: str) -> dict:
    selector = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key.endswith("!"):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: only equality selectors are supported by this double: {part}")
        selector[key] = value.lstrip("=")
    return selector


def _merge(target, patch, strategic: bool):
    """RFC 7386 merge patch; with `strategic`, lists of objects with a name merge by name (containers)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif strategic and isinstance(value, list) and isinstance(out.get(key), list) and all(isinstance(v, dict) and "name" in v for v in value):
            merged = {item["name"]: item for item in out[key] if isinstance(item, dict)}
            for item in value:
                merged[item["name"]] = _merge(merged.get(item["name"], {}), item, strategic)
            out[key] = list(merged.values())
        else:
            out[key] = _merge(out.get(key), value, strategic)
    return out


def _json_patch(doc: dict, ops: list) -> dict:
    """RFC 6902 add/replace/remove/test on object paths (the operations kubectl sends)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "path" not in op:
            raise ApiError(400, "BadRequest", "the server rejected our request due to an error in our request")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            if not isinstance(parent, dict) or part not in parent:
                raise ApiError(422, "Invalid", f"the server rejected our request: path {op['path']} does not exist")
            parent = parent[part]
        last = parts[-1]
        kind = op.get("op")
        if kind == "test":
            if parent.get(last) != op.get("value"):
                raise ApiError(422, "Invalid", f"the server rejected our request: testing value {op['path']} failed")
        elif kind in ("add", "replace"):
            if kind == "replace" and last not in parent:
                raise ApiError(422, "Invalid", f"the server rejected our request: replace operation does not apply: doc is missing key: {op['path']}")
            parent[last] = copy.deepcopy(op.get("value"))
        elif kind == "remove":
            parent.pop(last, None)
        else:
            raise ApiError(400, "BadRequest", f"Unexpected kind: {kind}")
    return doc
