"""deploy/kubernetes: rendered with `kubectl kustomize`, every object validated against the Kubernetes
API schemas (kubernetes-validate, strict: an unknown field is an error) for 1.29 and the newest version
the package ships, and the properties the deployment rests on asserted so none can silently vanish."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version, major_minor
from packaging.version import Version

from bot.config.types import env_references
from bot.settings import Settings
from bot.transport.serve import DRAIN_SECONDS

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy" / "kubernetes"
INGRESS = BASE / "components" / "ingress"
SECRET_NAME = "opsbot-secrets"
NEWEST = major_minor(latest_version())
VERSIONS = ["1.29", NEWEST]
# Environment variables whose values are secrets: they may only come from the Secret.
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSWORD|KEY|DSN|DATABASE_URL|REDIS_URL")


def kustomize(directory: Path) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is missing: scripts/test-env.sh (make test) says how to get it; it renders deploy/kubernetes.")
    done = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def overlay(tmp: Path, text: str) -> list[dict]:
    """An operator's overlay of the base: kustomize takes only relative paths, and no overlay inside the base."""
    tmp.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(BASE, tmp)
    (tmp / "kustomization.yaml").write_text(text.replace("@BASE@", base))
    return kustomize(tmp)


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def http(tmp_path_factory) -> list[dict]:
    return overlay(
        tmp_path_factory.mktemp("http-overlay"),
        "resources: ['@BASE@']\ncomponents: ['@BASE@/components/ingress']\n",
    )


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(workload: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(workload).get("env", [])}


def app_yaml(docs: list[dict]) -> tuple[str, dict]:
    config_map = one(docs, "ConfigMap")
    text = config_map["data"]["app.yaml"]
    return text, yaml.safe_load(text)


def strings(node) -> list[str]:
    """Every string value in a parsed YAML document (comments are not values)."""
    if isinstance(node, dict):
        return [s for child in node.values() for s in strings(child)]
    if isinstance(node, list):
        return [s for child in node for s in strings(child)]
    return [node] if isinstance(node, str) else []


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ------------------------------------------------------------------------------------ schemas


def test_the_newest_schemas_are_at_least_1_30():
    assert Version(NEWEST) >= Version("1.30"), f"kubernetes-validate ships schemas up to {NEWEST} only"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", ["base", "http"])
def test_every_object_validates_strictly(request, variant, version):
    docs = request.getfixturevalue(variant)
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            used = kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
            continue
        except SchemaNotFoundError as exc:  # an object nobody can check is a failure, not a pass
            problems.append(f"{where}: {exc.message}")
            continue
        assert used == version, f"{where} was checked against {used}, not {version}"
    assert not problems, "\n".join(problems)


def test_strict_validation_rejects_an_unknown_field(base):
    """The control: the validator used above does reject what a cluster would."""
    deployment = one(base, "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, NEWEST, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_example_secret_is_a_valid_manifest_outside_the_kustomization(base, version):
    example = yaml.safe_load((BASE / "secret.example.yaml").read_text())
    kubernetes_validate.validate(example, version, strict=True)
    assert example["metadata"]["name"] == SECRET_NAME
    assert not [d for d in base if d["kind"] == "Secret"], "the base must not ship a Secret"
    assert "secret.example.yaml" not in yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]


# ------------------------------------------------------------------------------------ the Deployment


def test_two_replicas_rolled_without_losing_one(base):
    spec = one(base, "Deployment", "opsbot")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_probes_ask_the_bots_own_endpoints(base):
    deployment = one(base, "Deployment", "opsbot")
    main = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert ports[main[probe]["httpGet"]["port"]] == int(env_of(deployment)["PORT"]["value"])


def test_prestop_and_grace_cover_the_drain(base):
    deployment = one(base, "Deployment", "opsbot")
    pod = deployment["spec"]["template"]["spec"]
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = float(command[1])
    assert 0 < pause <= 10
    # SIGTERM comes after preStop; the drain then takes up to DRAIN_SECONDS, and closing takes a few more.
    assert pod["terminationGracePeriodSeconds"] >= pause + DRAIN_SECONDS + 10


def test_non_root_with_a_read_only_root_filesystem(base):
    for kind in ("Deployment", "Job"):
        pod = one(base, kind)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        security = pod["containers"][0]["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{kind}: /tmp must be a writable emptyDir"


def test_resources_are_requested_and_memory_is_limited(base):
    for kind in ("Deployment", "Job"):
        resources = container(one(base, kind))["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]


def test_backups_directory_is_one_volume_every_replica_shares(base):
    _, config = app_yaml(base)
    directory = config["backups"]["directory"]
    assert directory.startswith("/"), "a relative backups directory would land on the read-only root filesystem"
    pod = one(base, "Deployment", "opsbot")["spec"]["template"]["spec"]
    mount = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}[directory]
    assert not mount.get("readOnly")
    claim_name = {v["name"]: v for v in pod["volumes"]}[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert one(base, "PersistentVolumeClaim", claim_name)["spec"]["accessModes"] == ["ReadWriteMany"]


def test_config_comes_from_the_generated_config_map(base):
    deployment = one(base, "Deployment", "opsbot")
    path = Path(env_of(deployment)["OPSBOT_CONFIG"]["value"])
    pod = deployment["spec"]["template"]["spec"]
    mount = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}[str(path.parent)]
    assert mount["readOnly"] is True
    volume = {v["name"]: v for v in pod["volumes"]}[mount["name"]]
    config_map = one(base, "ConfigMap")
    # The hashed name: a changed app.yaml rolls the Deployment.
    assert volume["configMap"]["name"] == config_map["metadata"]["name"] != "opsbot-config"
    assert path.name in config_map["data"]


def test_the_example_app_yaml_passes_config_check():
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "config", "check", str(BASE / "app.yaml")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------------------ secrets and environment


def test_environment_names_are_the_ones_the_bot_reads(base):
    class Recording(dict):
        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

    read: set[str] = set()
    Settings.from_env(Recording())
    _, config = app_yaml(base)
    referenced = {name for value in strings(config) for name, _ in env_references(value)}
    for kind in ("Deployment", "Job"):
        names = set(env_of(one(base, kind)))
        assert names <= read | referenced, f"{kind} sets variables nothing reads: {sorted(names - read - referenced)}"
    assert referenced <= set(env_of(one(base, "Deployment"))), "app.yaml refers to variables the pod does not get"


def test_secrets_are_references_never_values(base):
    required = {"DATABASE_URL", "SLACK_BOT_TOKEN"}
    for kind in ("Deployment", "Job"):
        for name, entry in env_of(one(base, kind)).items():
            if not SECRET_LIKE.search(name):
                continue
            assert "value" not in entry, f"{kind} has a literal value for {name}"
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET_NAME
            assert ref.get("optional", False) is (name not in required), f"{kind}: {name} optional={ref.get('optional')}"
    assert env_of(one(base, "Job"))["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"


# ------------------------------------------------------------------------------------ migration, Service, PDB


def test_the_migration_job_runs_opsbot_migrate_with_the_same_image(base):
    job = one(base, "Job", "opsbot-migrate")
    assert container(job)["args"] == ["migrate"]
    assert container(job)["image"] == container(one(base, "Deployment"))["image"] == "opsbot:latest"
    assert container(one(base, "Deployment"))["args"] == ["serve"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_an_operators_overlay_sets_the_image_and_app_yaml(tmp_path):
    """As docs/deploying.md shows: the image in one place, the operator's own app.yaml replacing the example."""
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "app.yaml").write_text("version: 1\n")
    docs = overlay(
        tmp_path / "release",
        "resources: ['@BASE@']\n"
        "images:\n- {name: opsbot, newName: registry.example.com/ops/opsbot, newTag: '1.2.3'}\n"
        "configMapGenerator:\n- {name: opsbot-config, behavior: replace, files: [app.yaml]}\n",
    )
    for kind in ("Deployment", "Job"):
        assert container(one(docs, kind))["image"] == "registry.example.com/ops/opsbot:1.2.3"
    config_map = one(docs, "ConfigMap")
    assert config_map["data"] == {"app.yaml": "version: 1\n"}
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert config_map["metadata"]["name"] in [v.get("configMap", {}).get("name") for v in volumes]


def test_service_and_budget_select_the_servers_only(base):
    pods = one(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
    job_pods = one(base, "Job")["spec"]["template"]["metadata"]["labels"]
    service = one(base, "Service", "opsbot")
    assert matches(service["spec"]["selector"], pods) and not matches(service["spec"]["selector"], job_pods)
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    budget = one(base, "PodDisruptionBudget", "opsbot")["spec"]
    assert matches(budget["selector"]["matchLabels"], pods) and not matches(budget["selector"]["matchLabels"], job_pods)
    assert budget["minAvailable"] == 1 < one(base, "Deployment")["spec"]["replicas"]


# ------------------------------------------------------------------------------------ RBAC


def test_the_role_grants_exactly_what_the_kubernetes_target_needs(base):
    granted = {
        (group, resource, verb)
        for rule in one(base, "Role", "opsbot-workloads")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    expected = {("", "pods", v) for v in ("get", "list", "watch")} | {("", "pods/log", "get")}
    expected |= {("apps", r, v) for r in ("deployments", "statefulsets") for v in ("get", "list", "patch")}
    expected |= {("apps", "replicasets", "list")}
    expected |= {("apps", r, v) for r in ("deployments/scale", "statefulsets/scale") for v in ("get", "patch")}
    assert granted == expected


def test_the_binding_gives_the_role_to_the_pods_account(base):
    binding = one(base, "RoleBinding", "opsbot-workloads")
    account = one(base, "ServiceAccount", "opsbot")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "opsbot-workloads"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "opsbot", "namespace": account["metadata"]["namespace"]}
    ]
    assert one(base, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "opsbot"


def test_an_overlay_namespace_moves_the_binding_subject_too(tmp_path):
    docs = overlay(tmp_path / "elsewhere", "namespace: tools\nresources: ['@BASE@']\n")
    assert {d["metadata"]["namespace"] for d in docs} == {"tools"}
    assert one(docs, "RoleBinding")["subjects"][0]["namespace"] == "tools"


# ------------------------------------------------------------------------------------ HTTP mode


def test_socket_mode_base_has_no_ingress(base):
    assert not [d for d in base if d["kind"] == "Ingress"]


def test_http_mode_exposes_only_slack_events(http):
    ingress = one(http, "Ingress", "opsbot")
    service = one(http, "Service", "opsbot")
    assert ingress["metadata"]["namespace"] == service["metadata"]["namespace"]
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/slack/events", "Exact")]
    backend = paths[0]["backend"]["service"]
    assert backend["name"] == "opsbot"
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["tls"], "Slack only calls HTTPS request URLs"
