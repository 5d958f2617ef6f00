"""Issue 16's "done when", across the platforms at once: the daily check reads Kubernetes, systemd and
supervisor through their adapters; /restart locks a service whatever it runs on; a supervisor
restart leaves its audit trail and incident timeline as a container's does; a restart without
verification waits for the platform's own deadline, and the plan says how long.

Real parts: the Kubernetes API double, systemd 252 in its container, a private supervisord; all
three transports (signed Slack HTTP, Socket Mode, the console) through the `drive` fixture.
"""
from __future__ import annotations

import re

import pytest

from drivers import drive  # noqa: F401 (fixture)
from test_incidents import incident_sections, open_incident, timeline
from test_supervisor_target import config as supervisor_config
from test_supervisor_target import credentials, supervisor  # noqa: F401 (fixtures)
from test_systemd_target import systemctl
from test_systemd_target import systemd  # noqa: F401 (fixture)

from action_helpers import OPS_ROLE, approve_request, approved, lock_of, posted_request, request_rows, state_of, trail


@pytest.fixture
def kubeconfig(k8s, tmp_path):
    return k8s.write_kubeconfig(tmp_path / "kubeconfig")


def three_platforms(kubeconfig, systemd, supervisor) -> str:  # noqa: F811
    return f"""
version: 1
targets:
  kubernetes:
    kubeconfig: {kubeconfig}
  systemd:
    bus: {systemd['OPSBOT_FLEET_SYSTEMD_BUS']}
    journal_directory: {systemd['OPSBOT_FLEET_SYSTEMD_JOURNAL']}
  supervisor:
    url: {supervisor['OPSBOT_FLEET_SUPERVISOR_URL']}
    username_env: OPSBOT_TEST_SUPERVISOR_USER
    password_env: OPSBOT_TEST_SUPERVISOR_PASSWORD
services:
  shop:
    kubernetes: {{namespace: shop, deployment: web}}
    owners: [ops]  # the daily check reads logs: /schedule run needs what /logs needs
  failing:
    systemd: {{unit: opsbot-failing.service}}
    owners: [ops]
  broken:
    supervisor: {{program: crasher}}
    owners: [ops]
{OPS_ROLE}
slack:
  ops_channel: "#ops"
schedules:
  morning:
    cron: "0 8 * * 1-5"
    timezone: UTC
    run: daily_check
    channel: C0OPS1
actions:
  restart:
    kind: restart
    verify: null  # the wait is the platform's own deadline
"""


async def test_the_daily_check_reads_every_platform_through_its_adapter(drive, k8s, kubeconfig, systemd, credentials):  # noqa: F811
    k8s.cluster.add_deployment("shop", "web", replicas=2)
    first, second = sorted(name for (_, name) in k8s.cluster.pods)
    k8s.cluster.terminate("shop", first, "app", "Error", waiting="CrashLoopBackOff")
    k8s.cluster.write_log("shop", second, "app", "ERROR payment failed", ago=60)
    k8s.tick(0)
    systemctl(systemd, "start", "opsbot-failing.service")  # exits 3: failed
    d = await drive(three_platforms(kubeconfig, systemd, credentials))

    seen = await d.command("UOPS1", "/schedule", "run morning")
    assert "Ran morning now" in seen.words, seen.words
    await d.settle()
    [post] = [m.now.words for m in d.messages() if "Daily check (morning" in m.now.words]
    # Each platform's own state reading, with no check configured: the workload, the unit, the program.
    assert re.search(rf"CRITICAL +shop on kubernetes: [^\n]*{first}/app: CrashLoopBackOff after 1 restarts", post), post
    assert re.search(r"CRITICAL +failing on systemd: failed \(failed\)[^\n]*exit-code", post), post
    assert re.search(r"(CRITICAL|WARNING) +broken on supervisor: (FATAL|BACKOFF|EXITED)", post), post
    # Error lines from the pods' logs (by time) and from the program's newest lines (it keeps no time).
    assert re.search(r"WARNING +shop logs: 1 error lines in the last \d+ h", post), post
    assert "not read:" not in post and "could not be read" not in post, post


async def test_a_second_restart_of_a_kubernetes_service_waits_for_the_lock(drive, k8s, kubeconfig, systemd, credentials):  # noqa: F811
    k8s.cluster.add_deployment("shop", "web", replicas=1)
    k8s.seconds_per_read = 30
    d = await drive(three_platforms(kubeconfig, systemd, credentials))

    first, plan = await posted_request(d, "/restart", "shop")
    # No verification: the wait is the Deployment's own progressDeadlineSeconds (600 s) and a margin.
    assert "then wait until kubernetes reports it up (up to 610 s)" in plan.now.words, plan.now.words
    assert (await lock_of(d.bot, "shop")).request_id == first
    seen = await d.command("UOPS3", "/restart", "shop")
    assert re.search(rf"shop is locked by request #{first} \(/restart by \S+\) since \d\d:\d\d UTC", seen.words), seen.words
    assert [r.id for r in await request_rows(d.bot, "shop")] == [first]

    seen, done = await approve_request(d, first)
    assert f"Request #{first} succeeded." in seen.words, done
    assert await lock_of(d.bot, "shop") is None
    second, _ = await posted_request(d, "/restart", "shop", user="UOPS3")  # the lock is free again
    assert second != first
    assert await trail(d.bot, "shop", first) == ["requested", "approved", "running", "succeeded"]


async def test_a_supervisor_restart_is_audited_and_goes_on_the_incident_timeline(drive, credentials):  # noqa: F811
    d = await drive(supervisor_config(credentials, "http") + incident_sections(create_channels=True, playbooks=""))
    number = await open_incident(d, "P1 The queue is stuck --service queue")
    from bot.incident import service as incidents

    d.channel = (await incidents.get(d.bot.db, number)).channel_id
    request_id, _, reply, final = await approved(d, "/restart", "queue")
    assert f"Request #{request_id} succeeded." in reply, final
    assert await state_of(d.bot, request_id) == "succeeded"
    assert await trail(d.bot, "queue", request_id) == ["requested", "approved", "running", "succeeded"]
    if d.name == "console":
        return  # an incident's channel is a Slack channel: the console asks from its own
    [action] = [e for e in await timeline(d.bot, number) if e.kind == "action"]
    [row] = [r for r in await request_rows(d.bot, "queue") if r.id == request_id]
    assert (action.user_id, action.text) == ("UOPS1", "restart queue: succeeded")
    assert action.data["plan_hash"] == row.plan_hash and action.data["approvers"] == ["UOPS2"]
    assert "restarted supervisor group worker:*" in action.data["verification"]
