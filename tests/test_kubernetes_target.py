"""Services on Kubernetes, end to end through all three transports, against the Kubernetes API double.

The bot reaches the double (tests/k8s_double.py) through an ordinary kubeconfig with a bearer
token. The double's cluster time moves 30 s on each read of the workload (`seconds_per_read`),
so a rollout the bot polls progresses without the test sleeping; new pods are ready 10 s
(cluster time) after they are created. What is asserted is what a person sees, what the bot
recorded (audit trail, requests, timeline) and what the API received (patches, their Content-Type).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from drivers import drive  # noqa: F401 (fixture)
from test_incidents import incident_sections, open_incident, timeline

from action_helpers import approve_request as approve, posted_request as request, request_rows, roles_and_restart, state_of, trail
from bot.targets.kubernetes.rollout import RESTARTED_AT, REVISION

GRACE = 30


def k8s_config(kubeconfig, extra: str = "") -> str:
    return f"""
version: 1
targets:
  kubernetes:
    kubeconfig: {kubeconfig}
services:
  shop:
    kubernetes:
      namespace: shop
      deployment: web
    owners: [ops]
    checks:
      - kind: k8s_workload
      - kind: k8s_pods
      - kind: container  # on Kubernetes: the platform's own state readings
{roles_and_restart(deadline="120s", timeout=None)}
  undo:
    kind: k8s_rollout_undo
    verify: {{deadline: 120s, interval: 250ms}}
  scale:
    kind: k8s_scale
    min_replicas: 1
    max_replicas: 5
    verify: {{deadline: 120s, interval: 250ms}}
  podlogs:
    kind: k8s_logs
{extra}"""


@pytest.fixture
def kubeconfig(k8s, tmp_path):
    return k8s.write_kubeconfig(tmp_path / "kubeconfig")


def one_sentence(d, seen, expected: str) -> str:
    assert seen.ephemeral is (None if d.name == "console" else True), seen
    line = seen.one_line
    assert expected in line, line
    return line


def restart_patches(k8s) -> list:
    return [c for c in k8s.patches() if c.path.endswith("/deployments/web")]


def template_of(k8s) -> dict:
    return k8s.cluster.deployments[("shop", "web")]["spec"]["template"]


def revisions(k8s) -> dict[str, str]:
    """ReplicaSet name -> its revision annotation."""
    return {name: rs["metadata"]["annotations"][REVISION] for (_, name), rs in k8s.cluster.replicasets.items()}


# --------------------------------------------------------------------------- /restart


async def test_restart_rolls_out_after_approval_then_verifies(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web", replicas=2)
    k8s.seconds_per_read = 30
    d = await drive(k8s_config(kubeconfig))

    request_id, plan = await request(d, "/restart", "shop")
    assert ("shop: roll out a restart of deployment shop/web (new pods replace the old as its rollout strategy says; each old pod gets "
            f"its {GRACE} s terminationGracePeriodSeconds), then wait until kubernetes reports it up "
            "and run shop's checks until they pass (up to 120 s)") in plan.now.words
    assert restart_patches(k8s) == []  # nothing before the approval

    seen = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen[0].words
    done = seen[1]
    assert "Status: Succeeded · approved by @UOPS2" in done
    assert "shop: rolled out a restart of deployment shop/web in" in done and "(3 checks pass)" in done

    [patch] = restart_patches(k8s)
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert RESTARTED_AT in patch.body["spec"]["template"]["metadata"]["annotations"]
    assert sorted(revisions(k8s).values()) == ["1", "2"]
    status = k8s.cluster.deployments[("shop", "web")]["status"]
    assert (status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"], status["replicas"]) == (2, 2, 2, 2)
    assert await state_of(d.bot, request_id) == "succeeded"
    assert await trail(d.bot, "shop", request_id) == ["requested", "approved", "running", "succeeded"]


async def test_a_rollout_that_never_becomes_ready_reports_progress_deadline_exceeded_and_changes_nothing_more(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web", replicas=2, ready_after=None, progress_deadline=60)
    k8s.seconds_per_read = 30
    d = await drive(k8s_config(kubeconfig))
    request_id, _ = await request(d, "/restart", "shop")
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} failed." in seen.words
    assert "Status: Failed" in done
    assert "but it is not up: the rollout exceeded its progress deadline (ProgressDeadlineExceeded): 2 of 2 ready" in done
    assert await state_of(d.bot, request_id) == "failed"
    k8s.tick(600)
    await d.settle()
    assert len(restart_patches(k8s)) == 1  # no retry patch, no undo
    assert sorted(revisions(k8s).values()) == ["1", "2"]


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_restart_in_the_incident_channel_goes_on_its_timeline(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web")
    k8s.seconds_per_read = 30
    d = await drive(k8s_config(kubeconfig, incident_sections(create_channels=True, playbooks="")))
    number = await open_incident(d, "P1 The shop is down --service shop")
    from bot.incident import service as incidents

    d.channel = (await incidents.get(d.bot.db, number)).channel_id
    request_id, _ = await request(d, "/restart", "shop")
    seen, _ = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen.words
    [action] = [e for e in await timeline(d.bot, number) if e.kind == "action"]
    [row] = [r for r in await request_rows(d.bot, "shop") if r.id == request_id]
    assert (action.user_id, action.text) == ("UOPS1", "restart shop: succeeded")
    assert action.data["plan_hash"] == row.plan_hash and action.data["approvers"] == ["UOPS2"]
    assert "rolled out a restart of deployment shop/web" in action.data["verification"]


async def test_a_role_without_patch_is_one_sentence_and_nothing_changes(drive, k8s, tmp_path):
    k8s.cluster.add_deployment("shop", "web")
    k8s.tokens["read-only"] = {("deployments", ""): frozenset({"get", "list"}), ("pods", ""): frozenset({"list"})}
    d = await drive(k8s_config(k8s.write_kubeconfig(tmp_path / "kc", token="read-only")))
    request_id, _ = await request(d, "/restart", "shop")
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} failed." in seen.words
    assert "shop: opsbot's Kubernetes role does not allow it to restart deployment shop/web (403)" in done
    assert template_of(k8s)["metadata"].get("annotations") is None


async def test_a_statefulset_restarts_pod_by_pod_and_has_no_undo(drive, k8s, kubeconfig):
    k8s.cluster.add_statefulset("shop", "db", replicas=2)
    k8s.seconds_per_read = 30
    d = await drive(k8s_config(kubeconfig).replace("deployment: web", "statefulset: db"))
    request_id, plan = await request(d, "/restart", "shop")
    assert "shop: roll out a restart of statefulset shop/db (new pods replace the old as its rollout strategy says" in plan.now.words
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen.words, done
    assert "rolled out a restart of statefulset shop/db" in done
    status = k8s.cluster.statefulsets[("shop", "db")]["status"]
    assert status["currentRevision"] == status["updateRevision"] and status["updatedReplicas"] == status["readyReplicas"] == 2
    [patch] = k8s.patches()
    assert patch.path == "/apis/apps/v1/namespaces/shop/statefulsets/db"

    seen = await d.command("UOPS1", "/run", "undo service=shop")
    one_sentence(d, seen, "shop is a StatefulSet, and k8s_rollout_undo needs a Deployment's ReplicaSet history; nothing was requested.")


# --------------------------------------------------------------------------- k8s_rollout_undo, k8s_scale


def roll_out_image(k8s, tag: str) -> None:
    template_of(k8s)["spec"]["containers"][0]["image"] = f"registry.example/web-app:{tag}"
    k8s.cluster.deployments[("shop", "web")]["metadata"]["generation"] += 1
    k8s.tick(0)
    k8s.tick(30)


async def test_rollout_undo_to_the_previous_and_to_a_given_revision(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web")
    roll_out_image(k8s, "2.0")
    roll_out_image(k8s, "3.0")
    k8s.seconds_per_read = 30
    d = await drive(k8s_config(kubeconfig))

    request_id, plan = await request(d, "/run", "undo service=shop")
    assert "shop: roll deployment shop/web back from revision 3 to revision 2 (ReplicaSet web-" in plan.now.words
    assert "registry.example/web-app:2.0), then wait for the rollout and run shop's checks" in plan.now.words
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen.words, done
    assert "rolled deployment shop/web back to revision 2" in done
    [undo] = k8s.patches()
    assert undo.content_type == "application/json-patch+json" and undo.body[0]["path"] == "/spec/template"
    assert template_of(k8s)["spec"]["containers"][0]["image"] == "registry.example/web-app:2.0"
    assert "pod-template-hash" not in template_of(k8s)["metadata"]["labels"]
    assert sorted(revisions(k8s).values()) == ["1", "3", "4"]  # 2's ReplicaSet is the current one again, as revision 4

    request_id, plan = await request(d, "/run", "undo service=shop revision=1")
    assert "back from revision 4 to revision 1" in plan.now.words and "web-app:1.0" in plan.now.words
    seen, _ = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen.words
    assert template_of(k8s)["spec"]["containers"][0]["image"] == "registry.example/web-app:1.0"

    seen = await d.command("UOPS1", "/run", "undo service=shop revision=9")
    one_sentence(d, seen, "shop cannot be rolled back: it has no revision 9 (known: 3, 4, 5); nothing was requested.")


async def test_scale_within_the_declared_bounds_and_one_sentence_outside(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web", replicas=2)
    k8s.seconds_per_read = 30
    d = await drive(k8s_config(kubeconfig))

    request_id, plan = await request(d, "/run", "scale service=shop replicas=4")
    assert "shop: scale deployment shop/web from 2 to 4 replicas, then wait until they are ready" in plan.now.words
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen.words, done
    assert "scaled deployment shop/web from 2 to 4 replicas" in done
    [scale] = k8s.patches()
    assert scale.path == "/apis/apps/v1/namespaces/shop/deployments/web/scale" and scale.body == {"spec": {"replicas": 4}}
    assert k8s.cluster.deployments[("shop", "web")]["status"]["readyReplicas"] == 4

    for text in ("scale service=shop replicas=9", "scale service=shop replicas=0"):
        seen = await d.command("UOPS1", "/run", text)
        one_sentence(d, seen, "replicas must be between 1 and 5.")
    seen = await d.command("UOPS1", "/run", "scale service=shop replicas=4")
    one_sentence(d, seen, "shop already runs 4 replicas; nothing was requested.")
    assert len(k8s.patches()) == 1


# --------------------------------------------------------------------------- /logs, k8s_logs


def write_logs(k8s) -> tuple[str, str]:
    k8s.cluster.add_deployment("shop", "web", replicas=2, containers=("app", "proxy"))
    first, second = sorted(name for (_, name) in k8s.cluster.pods)
    k8s.cluster.write_log("shop", first, "app", "old line from an hour ago", ago=3600)
    k8s.cluster.write_log("shop", first, "app", "GET /cart 200", ago=40)
    k8s.cluster.write_log("shop", second, "proxy", "upstream error: connect to postgres://shop:s3cr3tpw@db/shop refused", ago=30)
    k8s.cluster.write_log("shop", second, "app", "ERROR payment failed", ago=20)
    k8s.cluster.write_log("shop", first, "proxy", "GET /health 200", ago=10)
    return first, second


async def test_logs_of_every_pod_and_container_merged_by_time_and_redacted(drive, k8s, kubeconfig):
    first, second = write_logs(k8s)
    d = await drive(k8s_config(kubeconfig))

    seen = await d.command("UOPS1", "/logs", "shop --since 5m")
    assert "shop logs: 4 lines, last 5m" in seen.words
    expected = [
        f"[{first}/app] GET /cart 200",
        f"[{second}/proxy] upstream error: connect to postgres://shop:[REDACTED]@db/shop refused",
        f"[{second}/app] ERROR payment failed",
        f"[{first}/proxy] GET /health 200",
    ]
    assert "\n".join(expected) in seen.words
    assert "s3cr3tpw" not in seen.plain and "an hour ago" not in seen.words

    seen = await d.command("UOPS1", "/logs", "shop --tail 2")
    assert "shop logs: 2 lines, last 2 lines" in seen.words
    assert "\n".join(expected[-2:]) in seen.words and "GET /cart" not in seen.words

    seen = await d.command("UOPS1", "/logs", "shop --grep error")
    assert "shop logs: 2 lines matching 'error'" in seen.words
    assert "\n".join(expected[1:3]) in seen.words

    seen = await d.command("UOPS1", "/logs", "shop --grep s3cr3tpw --count")
    assert "0 lines matching '[REDACTED]'" in seen.words or "0 lines matching 's3cr3tpw'" in seen.words  # never confirms a secret


async def test_k8s_logs_reads_one_container_with_grep(drive, k8s, kubeconfig):
    first, second = write_logs(k8s)
    d = await drive(k8s_config(kubeconfig))
    seen = await d.command("UOPS1", "/run", "podlogs service=shop container=app grep=error")
    assert "shop logs: 1 lines containing 'error' from deployment shop/web: 2 container logs" in seen.words, seen.words
    assert f"[{second}/app] ERROR payment failed" in seen.words and "proxy" not in seen.words.split("container logs", 1)[1]


# --------------------------------------------------------------------------- /health


async def test_health_shows_crashloopbackoff_and_oomkilled(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web", replicas=2)
    first, second = sorted(name for (_, name) in k8s.cluster.pods)
    d = await drive(k8s_config(kubeconfig))

    seen = await d.command("UOPS1", "/health", "shop")
    assert "Health: OK (1 ok)" in seen.words, seen.words
    assert "k8s_workload: deployment shop/web: 2 of 2 ready and available" in seen.words
    assert "container: deployment shop/web: 2 of 2 ready and available" in seen.words

    k8s.cluster.terminate("shop", first, "app", "Error", waiting="CrashLoopBackOff")
    k8s.cluster.terminate("shop", second, "app", "OOMKilled", waiting=None)
    k8s.tick(0)
    seen = await d.command("UOPS1", "/health", "shop")
    assert "Health: CRITICAL (1 critical)" in seen.words, seen.words
    assert f"{first}/app: CrashLoopBackOff after 1 restarts" in seen.words
    assert f"{second}/app: OOMKilled" in seen.words and "exit code 137" in seen.words
    assert "2 containers restarted in the last 60 min" in seen.words
    assert "deployment shop/web: 1 of 2 ready, 1 available" in seen.words


# --------------------------------------------------------------------------- app.yaml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("services:\n  a:\n    container: x\n    checks: [{kind: k8s_pods}]\n",
         "app.yaml:5: services.a.checks[0].kind: service 'a' has a k8s_pods check, but it does not run on kubernetes"),
        ("services:\n  a:\n    kubernetes: {namespace: shop, deployment: web}\n",
         "app.yaml:4: services.a.kubernetes: service 'a' runs on kubernetes, but app.yaml has no targets.kubernetes connection"),
        ("services:\n  a:\n    kubernetes: {namespace: shop, deployment: web, statefulset: db}\n",
         "name exactly one of deployment or statefulset"),
        ("services: {}\nactions:\n  scale: {kind: k8s_scale, min_replicas: 5, max_replicas: 2}\n",
         "min_replicas must not be above max_replicas"),
    ],
)
def test_app_yaml_refuses_kubernetes_mistakes_with_their_line(text, expected):
    from bot.config.loader import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config("version: 1\n" + text)
    assert expected in str(caught.value), str(caught.value)


async def test_health_shows_pods_pending_too_long_and_a_rollout_past_its_deadline(drive, k8s, kubeconfig):
    # The cluster's clock starts 15 minutes back, so its pods' ages agree with the bot's clock at the end.
    k8s.cluster.now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=15)
    k8s.cluster.add_deployment("shop", "web", replicas=1, ready_after=None, progress_deadline=600)
    roll_out_image(k8s, "2.0")  # its new pod never starts: ImagePullBackOff
    k8s.tick(14 * 60 - 30)
    d = await drive(k8s_config(kubeconfig))
    seen = await d.command("UOPS1", "/health", "shop")
    assert "Health: CRITICAL (1 critical)" in seen.words, seen.words
    assert "k8s_workload: deployment shop/web: the rollout exceeded its progress deadline (ProgressDeadlineExceeded): 1 of 1 ready" in seen.words
    [pending] = [name for (_, name), pod in k8s.cluster.pods.items() if pod["status"]["phase"] == "Pending"]
    assert re.search(rf"{pending}: Pending for 1[45] min \(ImagePullBackOff\)", seen.words), seen.words


async def test_no_service_account_or_an_unreachable_api_is_one_sentence(drive, k8s, tmp_path):
    # Outside a cluster and without a kubeconfig: the in-cluster service account is missing.
    d = await drive(k8s_config("null").replace("    kubeconfig: null\n", "    context: null\n"))
    seen = await d.command("UOPS1", "/restart", "shop")
    one_sentence(d, seen, "cannot load the Kubernetes credentials from the in-cluster service account (ConfigException); nothing was requested.")
    seen = await d.command("UOPS1", "/health", "shop")
    assert "k8s_workload: cannot load the Kubernetes credentials from the in-cluster service account" in seen.words, seen.words

    unreachable = tmp_path / "unreachable"
    unreachable.write_text(k8s.write_kubeconfig(tmp_path / "kc").read_text().replace(k8s.url, "http://127.0.0.1:9"))
    d = await drive(k8s_config(unreachable))
    seen = await d.command("UOPS1", "/logs", "shop")
    one_sentence(d, seen, "Cannot read the logs of shop: the Kubernetes API is unreachable (ClientConnectorError) to read deployment shop/web.")
