"""/restart with approval, driven through both transports end to end.

The service is this module's own busybox httpd container on the real Docker Engine
(host network, a free port, label opsbot.test=1, removed afterwards); its checks are
the container check and an HTTP check. Busybox httpd as PID 1 ignores SIGTERM, so the
restart action's grace is 1 s.

Console: a real `python -m bot.cli shell` process with piped standard input.
Slack: the bot's own HTTP edge in-process, signed slash commands and block_actions POSTed
to it, the bot's AsyncWebClient and response_url posts going to the Slack double.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import docker
import pytest
import pytest_asyncio

from slack_double import block_texts
from conftest import SIGNING_SECRET, fleet, free_port, wait_until
from slack_signing import block_actions_body, sign

from bot.action import service as requests
from bot.audit import service as audit


from action_helpers import Served, blocks_of, send_slash_restart, serving  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
QUIET = 1.0


# --- the service: a busybox httpd container -----------------------------------------------


class Service:
    def __init__(self, client: docker.DockerClient, container, port: int):
        self.client, self.container, self.port = client, container, port

    @property
    def name(self) -> str:
        return self.container.name

    def started_at(self) -> str:
        self.container.reload()
        return self.container.attrs["State"]["StartedAt"]

    def running(self) -> bool:
        self.container.reload()
        return self.container.attrs["State"]["Running"]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


@pytest.fixture(scope="module")
def service():
    client = docker.from_env(timeout=30)
    port = free_port()
    script = f"mkdir -p /www && echo ok >/www/health && echo 'svc: listening' && exec httpd -f -p 127.0.0.1:{port} -h /www"
    container = client.containers.run(
        fleet().get("OPSBOT_FLEET_IMAGE", "opsbot-test/busybox:1"),
        ["sh", "-c", script],
        detach=True,
        name=f"opsbot-test-restart-{uuid.uuid4().hex[:10]}",
        network_mode="host",
        labels={"opsbot.test": "1"},
    )
    svc = Service(client, container, port)
    try:
        deadline = time.monotonic() + 20
        while not svc.healthy():
            assert time.monotonic() < deadline, "the httpd container did not come up"
            time.sleep(0.1)
        yield svc
    finally:
        try:
            container.remove(force=True)
        finally:
            client.close()


def restart_config(svc: Service) -> str:
    return f"""
version: 1
services:
  svc:
    container: {svc.name}
    owners: [ops]
    checks:
      - kind: container
      - kind: http
        url: http://127.0.0.1:{svc.port}/health
roles:
  ops:
    users: [UOPS1, UOPS2, UOPS3]
  viewers:
    users: [UVIEW1]
actions:
  restart:
    kind: docker_restart
    timeout: 1s
    verify: {{deadline: 30s, interval: 250ms}}
"""


# --- console ------------------------------------------------------------------------------


def shell(tmp_path: Path, svc: Service, lines: list[str], user: str = "UOPS1") -> subprocess.CompletedProcess:
    config = tmp_path / "app.yaml"
    config.write_text(restart_config(svc))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REDIS_URL", "OPSBOT_"))}
    env.update({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'opsbot.db'}", "PYTHONPATH": str(ROOT)})
    return subprocess.run(
        [str(PYTHON), "-m", "bot.cli", "shell", "--as", user, "--config", str(config)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_console_restart_approved_by_a_second_user(tmp_path, service):
    before = service.started_at()
    result = shell(tmp_path, service, ["/restart svc", "as UOPS2", "1", "/audit svc"])
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    # The plan, with numbered buttons.
    assert "/restart svc: request #1" in out
    assert "Requested by @UOPS1" in out and "needs 1 approval from ops" in out
    assert f"1. svc: docker restart {service.name} (" in out and "with 1 s grace" in out
    assert "Status: Waiting for approval" in out
    assert "[1] Approve  [2] Deny  [3] Withdraw   (type the number to press)" in out
    assert "Request #1 is posted and waits for approval." in out
    assert "Now acting as UOPS2." in out

    # The same message, updated in place: running, then the outcome; no buttons after the decision.
    after_click = out.split("Now acting as UOPS2.", 1)[1]
    updates = after_click.split("[message 1 updated]")[1:]
    assert len(updates) == 2, out
    assert "Status: Running · approved by @UOPS2" in updates[0]
    assert "Status: Succeeded · approved by @UOPS2" in updates[1]
    assert "svc: restarted in" in updates[1] and "(2 checks pass)" in updates[1]
    assert "Approve" not in after_click.split("Audit:")[0]
    assert "Request #1 succeeded." in out

    # The audit trail, newest first: the command on record before it ran, then the request's steps.
    audit_part = out.split("Audit: svc, last 1d, ", 1)[1]
    lines = [line for line in audit_part.splitlines() if " /" in line]
    assert [line.split(" /", 1)[1].split(" -> ")[1].split(" (")[0] for line in lines] == [
        "succeeded",
        "running",
        "approved",
        "requested",
        "requested",
    ]
    assert "UOPS2" in lines[0] and "/restart #1 svc -> succeeded (svc: restarted in" in lines[0]
    assert "UOPS2" in lines[2] and "/restart #1 svc -> approved" in lines[2]
    assert "UOPS1" in lines[3] and "/restart #1 svc -> requested (plan " in lines[3]
    assert "UOPS1" in lines[4] and "/restart svc -> requested" in lines[4]

    assert service.started_at() != before
    assert service.running() and service.healthy()


def test_console_refuses_self_approval_and_lets_the_requester_deny(tmp_path, service):
    before = service.started_at()
    result = shell(tmp_path, service, ["/restart svc", "1", "2", "as UOPS2", "1", "/audit svc"])
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "[1] Approve  [2] Deny  [3] Withdraw" in out
    assert "You requested this, so someone else has to approve it (two-person rule)." in out
    # Denied by the requester: the message loses its buttons and says so.
    assert "[message 1 updated]" in out
    update = out.split("[message 1 updated]", 1)[1]
    assert "Status: Denied by @UOPS1 at" in update
    assert "You denied request #1; nothing was run." in out
    assert "Request #1 was already decided by @UOPS1: it is denied." in out.split("Now acting as UOPS2.", 1)[1]
    audit_part = out.split("Audit: svc, last 1d, ", 1)[1]
    assert "/restart #1 svc -> denied" in audit_part
    assert "/restart #1 svc -> approval refused (You requested this" in audit_part
    assert "-> running" not in audit_part and "-> succeeded" not in audit_part
    assert service.started_at() == before  # nothing was restarted


def test_console_numbers_that_are_not_buttons_and_users_without_the_role(tmp_path, service):
    before = service.started_at()
    result = shell(tmp_path, service, ["7", "/restart svc", "as UVIEW1", "1", "as nobody", "/restart svc"])
    out = result.stdout
    assert "There is no button 7" in out
    assert "You cannot approve this: approving needs the ops role." in out
    assert "Type as followed by a Slack user ID" in out
    assert "You cannot restart svc: it needs the ops role in app.yaml." in out
    assert service.started_at() == before


# --- Slack ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def served(slack, make_bot, service):
    bot = await make_bot(restart_config(service), api_url=slack.api_url)
    async with serving(bot) as running:
        yield running


async def request_restart(slack, served: Served, user: str = "UOPS1") -> tuple[int, str]:
    """Slash command /restart svc; returns (request id, message ts) of the posted plan."""
    url = await send_slash_restart(slack, served, user)
    [posted] = await slack.wait_for("chat.postMessage", 1, timeout=15)
    assert posted.ok, posted.response  # the double validated the blocks
    assert posted.args["channel"] == "C1"
    blocks = blocks_of(posted)
    [actions] = [b for b in blocks if b["type"] == "actions"]
    approve, deny, withdraw = actions["elements"]
    assert (approve["action_id"], approve["text"]["text"], approve["style"]) == ("action.approve", "Approve", "primary")
    assert (deny["action_id"], deny["text"]["text"], deny["style"]) == ("action.deny", "Deny", "danger")
    assert (withdraw["action_id"], withdraw["text"]["text"], withdraw.get("style")) == ("action.withdraw", "Withdraw", None)
    assert approve["value"] == deny["value"] == withdraw["value"]
    request_id = int(approve["value"])
    shown = block_texts(blocks)
    assert f"/restart svc: request #{request_id}" in shown
    assert f"Requested by <@{user}>" in shown and "*Status:* Waiting for approval" in shown

    await wait_until(lambda: slack.response_posts(url))
    [ack] = slack.response_posts(url)
    assert ack.status == 200 and ack.body["response_type"] == "ephemeral"
    assert ack.text == f"Request #{request_id} is posted and waits for approval."
    return request_id, posted.response["ts"]


async def click(slack, served: Served, user: str, action: str, request_id: int, ts: str, *, secret: str = SIGNING_SECRET):
    url = slack.new_response_url()
    body = block_actions_body(user, action, str(request_id), channel_id="C1", message_ts=ts, response_url=url)
    status, text = await served.post(body, secret)
    return status, url


async def test_slack_restart_approved_edits_the_message_in_place(slack, served, service):
    before = service.started_at()
    request_id, ts = await request_restart(slack, served)

    status, url = await click(slack, served, "UOPS2", "action.approve", request_id, ts)
    assert status == 200
    updates = await slack.wait_for("chat.update", 2, timeout=45)
    await wait_until(lambda: slack.response_posts(url), timeout=45)
    updates = slack.calls_to("chat.update")
    assert len(updates) == 2, [u.args.get("text") for u in updates]
    for update in updates:
        assert update.ok, update.response
        assert (update.args["channel"], update.args["ts"]) == ("C1", ts)  # the plan message, edited in place
        assert all(b["type"] != "actions" for b in blocks_of(update))  # buttons gone after the decision
    assert "*Status:* Running · approved by <@UOPS2>" in block_texts(blocks_of(updates[0]))
    final = block_texts(blocks_of(updates[1]))
    assert "*Status:* Succeeded · approved by <@UOPS2>" in final
    assert "svc: restarted in" in final and "(2 checks pass)" in final
    assert "Succeeded" in updates[1].args["text"]
    message = slack.messages[("C1", ts)]
    assert "Succeeded" in message["text"] and "edited" in message

    # The clicker gets one ephemeral line; the shared message is left alone.
    [line] = slack.response_posts(url)
    assert line.status == 200
    assert line.body["response_type"] == "ephemeral" and line.body.get("replace_original") is False
    assert line.text == f"Request #{request_id} succeeded."
    assert len(slack.calls_to("chat.postMessage")) == 1

    assert service.started_at() != before and service.healthy()
    restarted_at = service.started_at()
    rows = await audit.entries(served.bot.db, 100)
    assert [r.outcome for r in rows if r.command == "restart" and r.arguments.startswith("#")] == [
        "succeeded",
        "running",
        "approved",
        "requested",
    ]

    # A second approver, a new click (new trigger_id): already decided, nothing runs again.
    status, url2 = await click(slack, served, "UOPS3", "action.approve", request_id, ts)
    assert status == 200
    await wait_until(lambda: slack.response_posts(url2))
    [late] = slack.response_posts(url2)
    assert late.body["response_type"] == "ephemeral"
    assert late.text == f"Request #{request_id} was already decided by <@UOPS2>: it is succeeded."
    await asyncio.sleep(QUIET)
    assert len(slack.calls_to("chat.update")) == 2
    assert service.started_at() == restarted_at
    rows = await audit.entries(served.bot.db, 100)
    assert [r.outcome for r in rows].count("running") == 1


async def test_slack_forged_click_is_refused_then_deny(slack, served, service):
    before = service.started_at()
    request_id, ts = await request_restart(slack, served)
    audit_before = len(await audit.entries(served.bot.db, 100))

    status, url = await click(slack, served, "UOPS2", "action.approve", request_id, ts, secret="not-the-signing-secret")
    assert status == 401
    # A correct signature over another body does not carry over either.
    other = block_actions_body("UOPS2", "action.approve", str(request_id), message_ts=ts, response_url=url)
    forged = block_actions_body("UOPS2", "action.approve", str(request_id), message_ts=ts, response_url=url)
    async with aiohttp.ClientSession() as http:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, other)}
        async with http.post(f"{served.url}/slack/events", data=forged.encode(), headers=headers) as response:
            assert response.status == 401
    await asyncio.sleep(QUIET)
    assert slack.calls_to("chat.update") == []
    assert slack.response_posts(url) == []
    assert (await requests.get(served.bot.db, request_id)).state == "pending"
    assert len(await audit.entries(served.bot.db, 100)) == audit_before

    # Deny, genuinely signed.
    status, url = await click(slack, served, "UOPS2", "action.deny", request_id, ts)
    assert status == 200
    [update] = await slack.wait_for("chat.update", 1, timeout=15)
    await wait_until(lambda: slack.response_posts(url))
    assert update.ok and (update.args["channel"], update.args["ts"]) == ("C1", ts)
    shown = block_texts(blocks_of(update))
    assert "*Status:* Denied by <@UOPS2> at" in shown
    assert all(b["type"] != "actions" for b in blocks_of(update))
    assert "Denied by <@UOPS2>" in update.args["text"]
    [line] = slack.response_posts(url)
    assert line.body["response_type"] == "ephemeral"
    assert line.text == f"You denied request #{request_id}; nothing was run."

    # Approving after the deny changes nothing.
    status, url2 = await click(slack, served, "UOPS3", "action.approve", request_id, ts)
    await wait_until(lambda: slack.response_posts(url2))
    assert slack.response_posts(url2)[0].text == f"Request #{request_id} was already decided by <@UOPS2>: it is denied."
    await asyncio.sleep(QUIET)
    assert len(slack.calls_to("chat.update")) == 1
    assert service.started_at() == before
    request = await requests.get(served.bot.db, request_id)
    assert request.state == "denied" and request.decided_by == "UOPS2"


async def test_slack_self_approval_and_outsiders_are_refused(slack, served, service):
    before = service.started_at()
    request_id, ts = await request_restart(slack, served)

    status, url = await click(slack, served, "UOPS1", "action.approve", request_id, ts)
    assert status == 200
    await wait_until(lambda: slack.response_posts(url))
    [line] = slack.response_posts(url)
    assert line.body["response_type"] == "ephemeral"
    assert line.text == "You requested this, so someone else has to approve it (two-person rule)."

    for user, action, expected in [
        ("UVIEW1", "action.approve", "You cannot approve this: approving needs the ops role."),
        ("UVIEW1", "action.deny", "You cannot deny this request: only its requester or an approver can."),
    ]:
        status, url = await click(slack, served, user, action, request_id, ts)
        await wait_until(lambda: slack.response_posts(url))
        assert slack.response_posts(url)[0].text == expected

    # A button value that is not a request.
    status, url = await click(slack, served, "UOPS2", "action.approve", 99999, ts)
    await wait_until(lambda: slack.response_posts(url))
    assert slack.response_posts(url)[0].text == "Request #99999 does not exist."

    await asyncio.sleep(QUIET)
    assert slack.calls_to("chat.update") == []
    assert (await requests.get(served.bot.db, request_id)).state == "pending"
    assert service.started_at() == before

    # Requesters can withdraw (deny) their own request; that releases the lock.
    status, url = await click(slack, served, "UOPS1", "action.deny", request_id, ts)
    await wait_until(lambda: slack.response_posts(url))
    assert (await requests.get(served.bot.db, request_id)).state == "denied"
