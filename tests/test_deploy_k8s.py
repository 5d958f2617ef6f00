"""/deploy and /rollback of a Kubernetes Deployment against the Kubernetes API double, over all three
transports; a deploy in an incident's channel reaches its timeline and the postmortem's "Fix deployed".

The double's cluster time moves 30 s on each read of the workload, so a rollout the bot polls
progresses without the test sleeping (see tests/test_kubernetes_target.py).
"""
from __future__ import annotations

import pytest

from drivers import drive  # noqa: F401 (fixture)
from test_deploy import approve, one_sentence, request
from test_incidents import incident_sections, open_incident, timeline

from bot.deploy import service as record
from bot.incident import service as incidents
from bot.incident.postmortem import render_postmortem
from bot.targets.kubernetes.rollout import REVISION

IMAGE = "registry.example/web-app"


def k8s_deploy_config(kubeconfig, extra: str = "") -> str:
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
    deploy:
      image: {IMAGE}
      versions: "[0-9]+[.][0-9]+"
    checks:
      - kind: k8s_workload
      - kind: k8s_pods
roles:
  ops:
    users: [UOPS1, UOPS2, UOPS3]
actions:
  deploy:
    kind: deploy
    verify: {{deadline: 120s, interval: 250ms}}
  rollback:
    kind: rollback
    verify: {{deadline: 120s, interval: 250ms}}
{extra}"""


@pytest.fixture
def kubeconfig(k8s, tmp_path):
    return k8s.write_kubeconfig(tmp_path / "kubeconfig")


def image_of(k8s) -> str:
    return k8s.cluster.deployments[("shop", "web")]["spec"]["template"]["spec"]["containers"][0]["image"]


def revisions(k8s) -> list[str]:
    return sorted(rs["metadata"]["annotations"][REVISION] for rs in k8s.cluster.replicasets.values())


async def test_set_image_then_rollout_undo(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web")
    k8s.cluster.deployments[("shop", "web")]["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:1.0"
    k8s.seconds_per_read = 30
    d = await drive(k8s_deploy_config(kubeconfig))

    request_id, plan = await request(d, "shop 2.0")
    assert f"shop: set the image of container app of deployment shop/web from {IMAGE}:1.0 to {IMAGE}:2.0, then wait for the rollout" in plan
    assert f"if that fails, set it back to {IMAGE}:1.0" in plan
    assert k8s.patches() == []
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen, done
    assert f"shop: set app to {IMAGE}:2.0" in done and "(2 checks pass)" in done
    [patch] = k8s.patches()
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.body == {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": f"{IMAGE}:2.0"}]}}}}
    assert image_of(k8s) == f"{IMAGE}:2.0" and revisions(k8s) == ["1", "2"]
    [row] = await record.history(d.bot.db, "shop")
    assert (row.platform, row.from_version, row.to_version, row.state) == ("kubernetes", "1.0", "2.0", "success")

    request_id, plan = await request(d, "shop", command="/rollback")
    assert "shop: roll deployment shop/web back from revision 2 to revision 1" in plan
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen, done
    assert image_of(k8s) == f"{IMAGE}:1.0"
    newest = (await record.history(d.bot.db, "shop"))[0]
    assert (newest.operation, newest.to_version, newest.state) == ("rollback", "1.0", "success")

    seen = await d.command("UOPS1", "/rollback", "shop 9.9")
    one_sentence(d, seen, f"shop has no earlier revision running {IMAGE}:9.9; nothing was requested.")


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_deploy_in_the_incident_channel_is_the_fix_deployed(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web")
    k8s.seconds_per_read = 30
    d = await drive(k8s_deploy_config(kubeconfig, incident_sections(create_channels=True, playbooks="")))
    number = await open_incident(d, "P1 The shop is down --service shop")
    incident = await incidents.get(d.bot.db, number)
    d.channel = incident.channel_id
    request_id, _ = await request(d, "shop 2.0")
    seen, _ = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen
    entries = await timeline(d.bot, number)
    [deploy] = [e for e in entries if e.kind == "deploy"]
    assert deploy.text == "deploy of shop to 2.0: done" and deploy.data["milestone"] == "fix_deployed"
    assert deploy.data["from_version"] == "1.0"
    assert [e.kind for e in entries if e.kind == "action"] == ["action"]  # the guarded request, as for any action
    review = render_postmortem(incident, entries, [], config=d.bot.config, now=d.bot.clock.now())
    fixed = next(line for line in review.splitlines() if "Fix deployed" in line)
    assert "_not recorded_" not in fixed, review
    assert "deploy of shop to 2.0: done" in review


async def test_a_rollout_that_never_gets_ready_is_rolled_back_to_the_previous_image(drive, k8s, kubeconfig):
    k8s.cluster.add_deployment("shop", "web", ready_after=None, progress_deadline=60)  # new pods never get ready
    k8s.seconds_per_read = 30
    d = await drive(k8s_deploy_config(kubeconfig))
    request_id, _ = await request(d, "shop 3.0")
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} failed." in seen, done
    assert "the rollout exceeded its progress deadline (ProgressDeadlineExceeded)" in done
    assert f"shop: rolled back to {IMAGE}:1.0 automatically" in done
    assert image_of(k8s) == f"{IMAGE}:1.0"
    [row] = await record.history(d.bot.db, "shop")
    assert (row.to_version, row.state) == ("3.0", "rolled_back")
