"""Guarded actions (/restart) end to end: request, approve or deny, execute on the real Docker
Engine, verify, audit; the two-person rule, expiry, locks and exactly-once execution.

Every container restarted here is the test's own (opsbot-test-act-*, labelled opsbot.test=1)
and removed afterwards; the shared opsbot-test-* fleet is never touched. Exactly-once is
proven on SQLite, on PostgreSQL and with two bot replicas sharing PostgreSQL and Redis;
"exactly one restart" is counted in the Docker Engine's own event stream. No mocks of
Docker, the database or the role directory; no assertion on wall-clock durations.
"""
from __future__ import annotations

import asyncio
import calendar
import re
import time
import uuid

import aiohttp
import docker
import pytest
from conftest import REDIS_URL, fleet, free_port, wait_until
from sqlalchemy import select

from bot.action import service as requests
from bot.action.flow import sweep_expired
from bot.audit import service as audit
from bot.check.models import CheckRun
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Actions, Outcome, Preformatted, Section
from bot.pipeline.request import Request
from bot.storage import utcnow


from action_helpers import (  # noqa: E402
    IMAGE,
    OwnContainers,
    RecordingMessenger,
    app_yaml,
    ask,
    assert_one_sentence,
    buttons,
    click,
    everything,
    lock_of,
    own_fixture,
    request_id_of,
    request_rows,
    service,
    state_of,
    trail,
    unique_service,
)
from action_helpers import database  # noqa: E402,F401 (fixture)

FLEET = fleet()
REDIS = FLEET.get("OPSBOT_TEST_REDIS_URL", REDIS_URL)

FAILING_VERIFY = {"deadline": "3s", "interval": "200ms"}
LOCKED = re.compile(r"is locked by request #(\d+) \(/restart by <@(U[A-Z0-9]+)>\) since \d\d:\d\d UTC")


# --------------------------------------------------------------------------- containers


class ActionContainers(OwnContainers):
    """This module's containers (opsbot-test-act-*): busybox httpd, crashing and OOM-killed ones besides idle."""

    prefix = "opsbot-test-act-"
    run_label = "opsbot.test.actions"

    async def httpd(self, *, name: str | None = None, port: int | None = None) -> tuple[str, int]:
        """A busybox httpd (PID 1, ignores SIGTERM) serving /health; returns once it answers."""
        port = port or free_port()
        name = self.run(
            ["sh", "-c", f"mkdir -p /www && echo ok > /www/health && exec httpd -f -p 127.0.0.1:{port} -h /www"], name=name
        )
        await wait_until(lambda: http_ok(port), timeout=20)
        return name, port

    async def crashing(self) -> str:
        """Exits 3 right after logging an error and a planted secret."""
        name = self.run(["sh", "-c", "echo starting; echo DB_PASSWORD=hunter2; echo 'ERROR fatal: config missing'; exit 3"])
        await wait_until(lambda: not self.inspect(name)["State"]["Running"], timeout=20)
        return name

    async def oom(self) -> str:
        """Allocates 64 MB under a 16 MB limit: OOM-killed where the engine enforces limits."""
        name = self.run(
            ["sh", "-c", "exec dd if=/dev/zero bs=64M count=2 of=/dev/null"], mem_limit="16m", memswap_limit="16m"
        )
        await wait_until(lambda: not self.inspect(name)["State"]["Running"], timeout=30)
        return name


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env()
    yield client
    client.close()


own = own_fixture(ActionContainers)


@pytest.fixture(scope="module")
def idle_container(docker_client):
    """Read-only target for tests that never approve: it only has to exist."""
    containers = ActionContainers(docker_client)
    name = containers.idle()
    yield name
    containers.cleanup()


async def http_ok(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                return resp.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


def started_ns(info: dict) -> int:
    """State.StartedAt as integer nanoseconds (Docker trims trailing zeros, so strings do not sort)."""
    return _ns(info["State"]["StartedAt"])


def created_s(info: dict) -> int:
    """The container's creation time, epoch seconds rounded down: `since` for all of its events."""
    return _ns(info["Created"]) // 1_000_000_000 - 1


def _ns(stamp: str) -> int:
    stamp = stamp.rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


async def docker_events(client: docker.DockerClient, container_id: str, since: int, action: str) -> int:
    """How many `action` events the engine reported for the container since `since` (epoch seconds)."""

    def count() -> int:
        until = int(time.time()) + 1
        stream = client.api.events(since=since, until=until, filters={"container": container_id, "event": action}, decode=True)
        return sum(1 for _ in stream)

    return await asyncio.to_thread(count)


# --------------------------------------------------------------------------- bot helpers


async def verify_runs(bot, channel: str = "C1") -> list[CheckRun]:
    async with bot.db.sessions() as session:
        rows = await session.execute(select(CheckRun).where(CheckRun.trigger == "verify", CheckRun.channel == channel))
        return list(rows.scalars())


# --------------------------------------------------------------------------- the happy path


async def test_approved_restart_restarts_the_container_once_and_verifies_it(make_bot, own, docker_client):
    name, port = await own.httpd()
    bot = await make_bot(app_yaml({"web": service(name, port=port)}))
    before = own.inspect(name)
    since = int(time.time()) - 1

    reply = await bot.handle(ask("UOPS1", "web"))
    request_id = request_id_of(reply)
    assert reply.outcome is Outcome.ok
    assert f"/restart web: request #{request_id}" in reply.text
    text = everything(reply)
    assert f"docker restart {name} ({before['Id'][:12]}) with 1 s grace" in text
    assert "needs 1 approval from ops" in text
    assert await state_of(bot, request_id) == "pending"
    assert (await lock_of(bot, "web")).request_id == request_id

    result = await bot.handle_click(click("UOPS2", request_id))

    request = await requests.get(bot.db, request_id)
    assert request.state == "succeeded", request.result
    assert re.search(r"web: restarted in \d+\.\d s, healthy after \d+\.\d s \(2 checks pass\)", request.result)
    assert result.outcome is Outcome.ok
    assert "Succeeded" in result.text and "approved by <@UOPS2>" in result.text
    assert re.search(r"healthy after \d+\.\d s", result.text)
    assert not buttons(result)

    after = own.inspect(name)
    assert after["Id"] == before["Id"]
    assert after["State"]["Running"]
    assert started_ns(after) > started_ns(before)
    assert after["RestartCount"] == before["RestartCount"]  # a manual restart is not a restart-policy restart
    assert await docker_events(docker_client, before["Id"], since, "restart") == 1
    # Its whole life: the first start, then exactly one more.
    assert await docker_events(docker_client, before["Id"], created_s(before), "start") == 2
    assert await http_ok(port)

    runs = await verify_runs(bot)
    assert len(runs) == 1
    assert runs[0].status == "ok" and runs[0].requested_by == "UOPS1"
    assert {r["check"] for r in runs[0].results} == {"http", "container"}

    assert await trail(bot, "web", request_id) == ["requested", "approved", "running", "succeeded"]
    assert await lock_of(bot, "web") is None


# --------------------------------------------------------------------------- failures: crash, OOM


async def test_a_container_that_does_not_come_back_fails_with_its_state_and_redacted_logs(make_bot, own):
    name = await own.crashing()
    bot = await make_bot(app_yaml({"api": service(name, min_uptime="1s")}, verify=FAILING_VERIFY))

    request_id = request_id_of(await bot.handle(ask("UOPS1", "api")))
    result = await bot.handle_click(click("UOPS2", request_id))

    request = await requests.get(bot.db, request_id)
    assert request.state == "failed"
    assert "exited, exit code 3" in request.result
    assert result.outcome is Outcome.critical
    shown = everything(result)
    assert "Failed" in shown
    assert "exited, exit code 3" in shown
    logs = [block.text for block in result.blocks if isinstance(block, Preformatted)]
    assert len(logs) == 1
    assert "ERROR fatal: config missing" in logs[0]
    assert "DB_PASSWORD=[REDACTED]" in logs[0]
    assert "hunter2" not in shown
    assert "hunter2" not in request.result
    assert all("hunter2" not in row.detail for row in await audit.entries(bot.db, target="api"))
    assert await trail(bot, "api", request_id) == ["requested", "approved", "running", "failed"]
    assert await lock_of(bot, "api") is None
    assert not own.inspect(name)["State"]["Running"]


async def test_oom_killed_container_needs_force_recreate_which_makes_a_new_container(make_bot, own):
    name = await own.oom()
    old = own.inspect(name)
    # Decided from this container's own state, not from a marker the fleet set once: the kernel may
    # kill it (exit 137) while the engine misses the OOM event and leaves OOMKilled false.
    killed = old["State"]["OOMKilled"] or old["State"]["ExitCode"] == 137
    flagged = old["State"]["OOMKilled"]
    bot = await make_bot(app_yaml({"batch": service(name, min_uptime="1s")}, verify=FAILING_VERIFY))

    health = await bot.handle(Request("UOPS1", "C1", "health", "batch", "console"))
    plain = await bot.handle(ask("UOPS1", "batch"))
    plain_id = request_id_of(plain)
    if killed:
        said = "OOM-killed" if flagged else "killed by SIGKILL (exit 137), probably out of memory: its limit is 16 MiB"
        assert said in everything(health)
        assert "--force-recreate" in everything(plain)
        assert f"was {said}: a plain restart may not clear it" in everything(plain)
    else:  # this engine does not enforce memory limits: dd finishes and exits 0
        assert "exited with exit code 0" in everything(health)
        assert "OOM" not in everything(plain)
    assert "docker restart" in everything(plain)
    # The plain request is withdrawn by its requester; that frees the service.
    withdrawn = await bot.handle_click(click("UOPS1", plain_id, "action.deny"))
    assert withdrawn.text == f"You denied request #{plain_id}; nothing was run."

    reply = await bot.handle(ask("UOPS1", "batch --force-recreate"))
    request_id = request_id_of(reply)
    assert f"stop {name} ({old['Id'][:12]}) with 1 s grace, then create and start a new container" in everything(reply)
    assert "plain restart may not clear it" not in everything(reply)
    result = await bot.handle_click(click("UOPS2", request_id))

    new = own.inspect(name)
    assert new is not None and new["Id"] != old["Id"]
    assert new["Name"] == f"/{name}"
    assert new["Image"] == old["Image"] and new["Config"]["Image"] == IMAGE
    assert new["HostConfig"]["Memory"] == old["HostConfig"]["Memory"] == 16 * 1024 * 1024
    assert new["HostConfig"]["MemorySwap"] == old["HostConfig"]["MemorySwap"]
    assert new["Config"]["Cmd"] == old["Config"]["Cmd"]
    assert own.inspect(old["Id"]) is None  # the old container is gone, not parked
    assert [c.name for c in own.client.containers.list(all=True, filters={"name": f"{name}-replaced"})] == []

    request = await requests.get(bot.db, request_id)
    assert request.state == "failed"
    shown = everything(result)
    assert result.outcome is Outcome.critical
    if new["State"]["OOMKilled"] or new["State"]["ExitCode"] == 137:  # the new container's own fate, read the same way
        assert "exit code 137" in request.result
        said = "OOM-killed" if new["State"]["OOMKilled"] else "probably out of memory"
        assert said in request.result and said in shown
    else:
        assert "exited, exit code 0" in request.result
    assert await trail(bot, "batch", request_id) == ["requested", "approved", "running", "failed"]


async def test_exit_137_under_a_memory_limit_without_the_oom_flag_reads_as_a_probable_memory_kill(make_bot, own):
    # What the Docker Engine leaves when it misses the kernel's OOM event: exit 137, OOMKilled false.
    # A SIGKILL from outside gives exactly that state on a real container.
    name = own.run(["sleep", "600"], mem_limit="16m", memswap_limit="16m")
    await wait_until(lambda: own.inspect(name)["State"]["Running"], timeout=20)
    own.client.containers.get(name).kill()
    await wait_until(lambda: not own.inspect(name)["State"]["Running"], timeout=20)
    state = own.inspect(name)["State"]
    assert (state["ExitCode"], state["OOMKilled"]) == (137, False)
    bot = await make_bot(app_yaml({"batch": service(name, min_uptime="1s")}))

    reading = "killed by SIGKILL (exit 137), probably out of memory: its limit is 16 MiB"
    health = await bot.handle(Request("UOPS1", "C1", "health", "batch", "console"))
    assert reading in everything(health)
    plain = await bot.handle(ask("UOPS1", "batch"))
    assert f"batch was {reading}: a plain restart may not clear it" in everything(plain)
    assert "--force-recreate" in everything(plain)
    await bot.handle_click(click("UOPS1", request_id_of(plain), "action.deny"))


async def test_exit_137_without_a_memory_limit_is_not_called_a_memory_kill(make_bot, own):
    name = own.run(["sleep", "600"])
    await wait_until(lambda: own.inspect(name)["State"]["Running"], timeout=20)
    own.client.containers.get(name).kill()
    await wait_until(lambda: not own.inspect(name)["State"]["Running"], timeout=20)
    bot = await make_bot(app_yaml({"batch": service(name, min_uptime="1s")}))
    health = await bot.handle(Request("UOPS1", "C1", "health", "batch", "console"))
    assert "exit code 137" in everything(health)
    assert "memory" not in everything(health) and "OOM" not in everything(health)


async def test_with_dependents_restarts_the_chain_in_order(make_bot, own, docker_client):
    (a, pa), (b, pb), (c, pc) = [await own.httpd() for _ in range(3)]
    config = app_yaml(
        {
            "a": service(a, port=pa),
            "b": service(b, port=pb, depends_on=["a"]),
            "c": service(c, port=pc, depends_on=["b"]),
        }
    )
    bot = await make_bot(config)
    before = {n: own.inspect(n) for n in (a, b, c)}
    since = int(time.time()) - 1

    reply = await bot.handle(ask("UOPS1", "a --with-dependents"))
    request_id = request_id_of(reply)
    plan = next(block.text for block in reply.blocks if isinstance(block, Section) and block.text.startswith("*Plan*"))
    lines = plan.splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == ["1. a", "2. b", "3. c"]
    for line, container in zip(lines, (a, b, c)):
        assert f"docker restart {container} ({before[container]['Id'][:12]})" in line

    result = await bot.handle_click(click("UOPS2", request_id))
    request = await requests.get(bot.db, request_id)
    assert request.state == "succeeded", request.result
    assert [line.split(":")[0] for line in request.result.splitlines()] == ["a", "b", "c"]
    assert result.outcome is Outcome.ok

    after = {n: own.inspect(n) for n in (a, b, c)}
    for n in (a, b, c):
        assert started_ns(after[n]) > started_ns(before[n])
        assert await docker_events(docker_client, before[n]["Id"], since, "restart") == 1
    assert started_ns(after[a]) < started_ns(after[b]) < started_ns(after[c])


# --------------------------------------------------------------------------- policy


async def test_requester_without_the_role_is_denied_and_nothing_is_created(make_bot, idle_container):
    bot = await make_bot(app_yaml({"web": service(idle_container)}))
    reply = await bot.handle(ask("UDEV1", "web"))
    assert reply.text == "You cannot restart web: it needs the ops role in app.yaml."
    assert reply.outcome is Outcome.denied
    assert_one_sentence(reply)
    nobody = await bot.handle(ask("UNOBODY1", "web"))
    assert nobody.outcome is Outcome.denied and "not allowed to run /restart" in nobody.text
    assert_one_sentence(nobody)
    assert await request_rows(bot) == []
    assert await lock_of(bot, "web") is None


async def test_self_approval_and_non_approvers_are_refused(make_bot, idle_container):
    bot = await make_bot(app_yaml({"web": service(idle_container)}))
    before = started_ns(await bot.checks.docker.inspect(idle_container))
    request_id = request_id_of(await bot.handle(ask("UOPS1", "web")))

    own_click = await bot.handle_click(click("UOPS1", request_id))
    assert own_click.text == "You requested this, so someone else has to approve it (two-person rule)."
    assert own_click.outcome is Outcome.denied
    assert_one_sentence(own_click)

    outsider = await bot.handle_click(click("UDEV1", request_id))
    assert outsider.text == "You cannot approve this: approving needs the ops role."
    assert_one_sentence(outsider)

    # Someone with a role but neither requester nor approver: the action's policy refuses.
    bystander = await bot.handle_click(click("UDEV1", request_id, "action.deny"))
    assert bystander.text == "You cannot deny this request: only its requester or an approver can."
    # Someone with no role at all: the interaction pipeline refuses before the flow runs.
    stranger = await bot.handle_click(click("UNOBODY1", request_id, "action.deny"))
    assert stranger.text == "You are not allowed to press this button: it needs a role in app.yaml; nothing was done."
    assert stranger.outcome is Outcome.denied

    assert await state_of(bot, request_id) == "pending"
    assert await requests.approvers(bot.db, request_id) == []
    assert await trail(bot, "web", request_id, refusals=True) == ["requested", "approval refused", "approval refused", "denial refused"]
    [row] = await audit.entries(bot.db, 1)
    assert (row.user_id, row.command, row.arguments, row.outcome) == ("UNOBODY1", "action.deny", str(request_id), "refused")
    assert (await lock_of(bot, "web")).request_id == request_id
    assert started_ns(await bot.checks.docker.inspect(idle_container)) == before


async def test_self_approval_allowed_by_policy_runs_it(make_bot, own):
    name, port = await own.httpd()
    bot = await make_bot(app_yaml({"web": service(name, port=port)}, approval={"self_approval": True}))
    before = own.inspect(name)
    request_id = request_id_of(await bot.handle(ask("UOPS1", "web")))
    result = await bot.handle_click(click("UOPS1", request_id))
    assert result.outcome is Outcome.ok
    assert await state_of(bot, request_id) == "succeeded"
    assert started_ns(own.inspect(name)) > started_ns(before)
    assert await trail(bot, "web", request_id) == ["requested", "approved", "running", "succeeded"]


async def test_deny_releases_the_lock_removes_the_buttons_and_runs_nothing(make_bot, own, docker_client):
    name, port = await own.httpd()
    bot = await make_bot(app_yaml({"web": service(name, port=port)}))
    messenger = RecordingMessenger()
    bot.messengers["console"] = messenger
    before = own.inspect(name)
    since = int(time.time()) - 1

    posted = await bot.handle(ask("UOPS1", "web"))
    assert posted.ephemeral and "waits for approval" in posted.text
    (ref, message), = messenger.posted.items()
    request_id = request_id_of(message)
    assert posted.text == f"Request #{request_id} is posted and waits for approval."

    reply = await bot.handle_click(click("UOPS2", request_id, "action.deny"))
    assert reply.text == f"You denied request #{request_id}; nothing was run."
    request = await requests.get(bot.db, request_id)
    assert request.state == "denied" and request.decided_by == "UOPS2"
    assert await lock_of(bot, "web") is None
    updated_ref, updated = messenger.updates[-1]
    assert updated_ref == ref
    assert not any(isinstance(block, Actions) for block in updated.blocks)
    assert "Denied by <@UOPS2>" in everything(updated)

    late = await bot.handle_click(click("UOPS3", request_id))
    assert late.text == f"Request #{request_id} was already decided by <@UOPS2>: it is denied."
    assert await state_of(bot, request_id) == "denied"
    assert await trail(bot, "web", request_id) == ["requested", "denied"]
    assert started_ns(own.inspect(name)) == started_ns(before)
    assert await docker_events(docker_client, before["Id"], since, "restart") == 0
    # The lock is free: the next request for the service is accepted.
    await bot.handle(ask("UOPS1", "web"))
    assert [r.state for r in await request_rows(bot, "web")] == ["denied", "pending"]


async def test_expired_request_cannot_be_approved_and_the_sweep_expires_the_rest(make_bot, idle_container):
    bot = await make_bot(app_yaml({"web": service(idle_container)}, approval={"expires": "1s"}))
    request_id = request_id_of(await bot.handle(ask("UOPS1", "web")))
    expires_at = (await requests.get(bot.db, request_id)).expires_at
    await wait_until(lambda: utcnow() > expires_at, timeout=10)

    reply = await bot.handle_click(click("UOPS2", request_id))
    assert re.fullmatch(rf"Request #{request_id} expired at \d\d:\d\d UTC; request it again\.", reply.text)
    assert_one_sentence(reply)
    assert await state_of(bot, request_id) == "expired"
    assert await lock_of(bot, "web") is None
    assert await trail(bot, "web", request_id) == ["requested", "expired"]
    assert await requests.approvers(bot.db, request_id) == []

    # The sweep expires overdue requests nobody clicked, and frees their service.
    second = request_id_of(await bot.handle(ask("UOPS1", "web")))
    assert await sweep_expired(bot) == 0
    expires_at = (await requests.get(bot.db, second)).expires_at
    await wait_until(lambda: utcnow() > expires_at, timeout=10)
    assert await sweep_expired(bot) == 1
    assert await sweep_expired(bot) == 0
    assert await state_of(bot, second) == "expired"
    assert await lock_of(bot, "web") is None
    late = await bot.handle_click(click("UOPS2", second))
    assert "expired" in late.text and await state_of(bot, second) == "expired"
    third = request_id_of(await bot.handle(ask("UOPS1", "web")))
    assert await state_of(bot, third) == "pending"

    # Nobody clicked and no sweep ran: a new request takes the overdue request's lock over.
    expires_at = (await requests.get(bot.db, third)).expires_at
    await wait_until(lambda: utcnow() > expires_at, timeout=10)
    fourth = request_id_of(await bot.handle(ask("UOPS2", "web")))
    assert await state_of(bot, third) == "expired"
    assert await state_of(bot, fourth) == "pending"
    assert (await lock_of(bot, "web")).request_id == fourth


async def test_two_approvals_need_two_different_approvers(make_bot, own, docker_client):
    name, port = await own.httpd()
    bot = await make_bot(app_yaml({"web": service(name, port=port)}, approval={"approvals": 2}))
    before = own.inspect(name)
    since = int(time.time()) - 1
    reply = await bot.handle(ask("UOPS1", "web"))
    request_id = request_id_of(reply)
    assert "needs 2 approvals from ops" in everything(reply)

    first = await bot.handle_click(click("UOPS2", request_id))
    assert first.text == f"Approved request #{request_id}; it needs one more approver."
    assert await state_of(bot, request_id) == "pending"
    again = await bot.handle_click(click("UOPS2", request_id))
    assert again.text == f"You already approved request #{request_id}; it needs another approver."
    assert_one_sentence(again)
    assert await state_of(bot, request_id) == "pending"
    assert started_ns(own.inspect(name)) == started_ns(before)

    second = await bot.handle_click(click("UOPS3", request_id))
    assert second.outcome is Outcome.ok
    assert await state_of(bot, request_id) == "succeeded"
    assert [a.approver for a in await requests.approvers(bot.db, request_id)] == ["UOPS2", "UOPS3"]
    assert await docker_events(docker_client, before["Id"], since, "restart") == 1
    assert await trail(bot, "web", request_id) == ["requested", "approved", "approved", "running", "succeeded"]


async def test_approver_who_left_the_group_before_execution_stops_it(make_bot, own, docker_client):
    name, port = await own.httpd()
    members = {"SOPSGRP": ["UGRPA", "UGRPB"]}

    async def lookup(group: str) -> list[str]:
        return list(members.get(group, []))

    roles = {"ops": {"users": ["UOPS1"], "groups": ["SOPSGRP"]}}
    bot = await make_bot(app_yaml({"web": service(name, port=port)}, approval={"approvals": 2}, roles=roles), group_lookup=lookup)
    before = own.inspect(name)
    since = int(time.time()) - 1
    request_id = request_id_of(await bot.handle(ask("UOPS1", "web")))

    first = await bot.handle_click(click("UGRPA", request_id))
    assert "needs one more approver" in first.text
    members["SOPSGRP"].remove("UGRPA")  # removed from the user group; the role cache still has them
    result = await bot.handle_click(click("UGRPB", request_id))

    assert result.text == f"Request #{request_id} was not run: approver <@UGRPA> no longer holds the ops role."
    assert_one_sentence(result)
    request = await requests.get(bot.db, request_id)
    assert request.state == "failed" and "no longer holds" in request.result
    assert await lock_of(bot, "web") is None
    assert started_ns(own.inspect(name)) == started_ns(before)
    assert await docker_events(docker_client, before["Id"], since, "restart") == 0
    assert await trail(bot, "web", request_id) == ["requested", "approved", "approved", "refused"]


async def test_requester_who_left_the_group_before_execution_stops_it(make_bot, own, docker_client):
    name, port = await own.httpd()
    members = {"SOPSGRP": ["UGRPA"]}

    async def lookup(group: str) -> list[str]:
        return list(members.get(group, []))

    roles = {"ops": {"users": ["UOPS2"], "groups": ["SOPSGRP"]}}
    bot = await make_bot(app_yaml({"web": service(name, port=port)}, roles=roles), group_lookup=lookup)
    before = own.inspect(name)
    since = int(time.time()) - 1
    request_id = request_id_of(await bot.handle(ask("UGRPA", "web")))
    members["SOPSGRP"].remove("UGRPA")  # the requester lost the role; the approver still holds it
    result = await bot.handle_click(click("UOPS2", request_id))

    assert result.text == f"Request #{request_id} was not run: its requester <@UGRPA> no longer holds the ops role."
    assert_one_sentence(result)
    assert (await requests.get(bot.db, request_id)).state == "failed"
    assert await lock_of(bot, "web") is None
    assert started_ns(own.inspect(name)) == started_ns(before)
    assert await docker_events(docker_client, before["Id"], since, "restart") == 0
    assert await trail(bot, "web", request_id) == ["requested", "approved", "refused"]


async def test_a_click_from_another_channel_or_workspace_is_refused(make_bot, idle_container):
    bot = await make_bot(app_yaml({"web": service(idle_container)}))
    request_id = request_id_of(await bot.handle(ask("UOPS1", "web", team_id="T0HOME")))
    for channel, team in (("C2", "T0HOME"), ("C1", "T0OTHER"), ("C1", "")):
        reply = await bot.handle_click(Click("UOPS2", "action.approve", str(request_id), channel, "slack", team))
        assert reply.text == f"That button does not belong to request #{request_id} in this channel; nothing was done."
        assert reply.outcome is Outcome.denied
    assert await state_of(bot, request_id) == "pending"
    assert await trail(bot, "web", request_id, refusals=True) == ["requested"] + ["approve refused"] * 3


@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "1e3", "\u0661", "", " 1", "1" * 10])
async def test_button_values_that_are_not_request_ids_get_one_sentence(make_bot, value):
    bot = await make_bot(app_yaml({"web": service("opsbot-test-no-such-container")}))
    reply = await bot.handle_click(Click("UOPS2", "action.approve", value.encode().decode("unicode_escape"), "C1", "console"))
    assert reply.text == "That button does not belong to a request opsbot knows."
    assert_one_sentence(reply)
    [row] = await audit.entries(bot.db, 1)  # on record, though it names no request
    assert (row.user_id, row.command, row.outcome, row.target) == ("UOPS2", "action.approve", "approve refused", "")


async def test_plan_changed_since_the_request_is_refused(make_bot, own, docker_client):
    name, port = await own.httpd()
    bot = await make_bot(app_yaml({"web": service(name, port=port)}))
    request_id = request_id_of(await bot.handle(ask("UOPS1", "web")))
    old_id = own.inspect(name)["Id"]

    # Someone recreates the container by hand: same name, new id.
    own.client.api.remove_container(name, force=True)
    await own.httpd(name=name, port=port)
    replaced = own.inspect(name)
    assert replaced["Id"] != old_id
    since = int(time.time()) - 1

    result = await bot.handle_click(click("UOPS2", request_id))
    assert "the plan changed since it was approved" in result.text
    assert_one_sentence(result)
    assert await state_of(bot, request_id) == "failed"
    assert await lock_of(bot, "web") is None
    assert started_ns(own.inspect(name)) == started_ns(replaced)
    assert await docker_events(docker_client, replaced["Id"], since, "restart") == 0
    assert await trail(bot, "web", request_id) == ["requested", "approved", "refused"]


# --------------------------------------------------------------------------- exactly once


def _exactly_once_config(svc: str, name: str, port: int, approvers: list[str]) -> str:
    roles = {"ops": {"users": sorted({"UOPS1", *approvers})}}
    return app_yaml({svc: service(name, port=port)}, roles=roles)


@pytest.fixture
def approvers_50():
    return [f"UAPP{i:02d}" for i in range(50)]


async def _setup_exactly_once(make_bot, own, approvers, database_url, replicas=1, **settings):
    name, port = await own.httpd()
    svc = unique_service()
    config = _exactly_once_config(svc, name, port, approvers)
    bots = [await make_bot(config, database_url=database_url, **settings) for _ in range(replicas)]
    return bots, svc, name, port


async def _run_exactly_once(bots, own, docker_client, svc, name, clickers, *, stale_claim: bool = False):
    bot = bots[0]
    before = own.inspect(name)
    since = int(time.time()) - 1
    request_id = request_id_of(await bot.handle(ask("UOPS1", svc)))
    if stale_claim:
        # Left in Redis by an earlier database whose request had the same id (ids restart when the
        # database is recreated), or by a replica that died: it must not strand this request.
        key = f"opsbot:claim:action:{request_id}"
        await bot.coordinator.redis.set(key, b"1", ex=60)

    replies = await asyncio.gather(
        *(bots[i % len(bots)].handle_click(click(user, request_id)) for i, user in enumerate(clickers))
    )

    request = await requests.get(bot.db, request_id)
    assert request.state == "succeeded", request.result
    executed = [r for r in replies if not r.ephemeral]
    assert len(executed) == 1, [r.text for r in replies]
    assert "Succeeded" in executed[0].text
    refused = [r for r in replies if r.ephemeral]
    assert len(refused) == len(clickers) - 1
    for reply in refused:
        assert_one_sentence(reply)
        assert re.fullmatch(
            rf"Request #{request_id} was already decided by <@U[A-Z0-9]+>: it is (approved|running|succeeded)\."
            rf"|You already approved request #{request_id}; it needs another approver\.",
            reply.text,
        ), reply.text
    assert await trail(bot, svc, request_id) == ["requested", "approved", "running", "succeeded"]
    assert len(await requests.approvers(bot.db, request_id)) == 1
    assert await lock_of(bot, svc) is None
    after = own.inspect(name)
    assert started_ns(after) > started_ns(before)
    assert await docker_events(docker_client, before["Id"], since, "restart") == 1
    # Its whole life: the first start, then exactly one more.
    assert await docker_events(docker_client, before["Id"], created_s(before), "start") == 2
    if stale_claim:
        await bot.coordinator.redis.delete(key)


async def test_fifty_concurrent_approvers_execute_once(make_bot, own, docker_client, database, approvers_50):
    bots, svc, name, _ = await _setup_exactly_once(make_bot, own, approvers_50, database)
    await _run_exactly_once(bots, own, docker_client, svc, name, approvers_50)


async def test_fifty_concurrent_clicks_by_one_approver_execute_once(make_bot, own, docker_client, database):
    bots, svc, name, _ = await _setup_exactly_once(make_bot, own, ["UOPS2"], database)
    await _run_exactly_once(bots, own, docker_client, svc, name, ["UOPS2"] * 50)


async def test_two_replicas_on_one_postgres_and_redis_execute_once(make_bot, own, docker_client, pg_database_url, approvers_50):
    bots, svc, name, _ = await _setup_exactly_once(make_bot, own, approvers_50, pg_database_url, replicas=2, redis_url=REDIS)
    assert bots[0] is not bots[1] and bots[0].coordinator.redis is not None
    await _run_exactly_once(bots, own, docker_client, svc, name, approvers_50, stale_claim=True)


# --------------------------------------------------------------------------- locks


async def test_second_request_for_a_locked_service_is_refused(make_bot, idle_container, database):
    svc = unique_service()
    bot = await make_bot(app_yaml({svc: service(idle_container)}), database_url=database)
    first = request_id_of(await bot.handle(ask("UOPS1", svc)))
    second = await bot.handle(ask("UOPS2", f"{svc} --with-dependents"))
    assert_one_sentence(second)
    match = LOCKED.search(second.text)
    assert match, second.text
    assert (int(match.group(1)), match.group(2)) == (first, "UOPS1")
    assert second.text.startswith(f"{svc} is locked by request #{first} (/restart by <@UOPS1>) since ")
    assert [r.id for r in await request_rows(bot, svc)] == [first]
    assert await state_of(bot, first) == "pending"


async def test_twenty_concurrent_requests_make_one(make_bot, idle_container, database):
    svc = unique_service()
    bot = await make_bot(app_yaml({svc: service(idle_container)}), database_url=database)
    users = ["UOPS1", "UOPS2", "UOPS3"]
    replies = await asyncio.gather(*(bot.handle(ask(users[i % 3], svc)) for i in range(20)))

    rows = await request_rows(bot, svc)
    assert len(rows) == 1 and rows[0].state == "pending"
    created = [r for r in replies if buttons(r)]
    assert len(created) == 1 and request_id_of(created[0]) == rows[0].id
    refused = [r for r in replies if not buttons(r)]
    assert len(refused) == 19
    for reply in refused:
        assert_one_sentence(reply)
        match = LOCKED.search(reply.text)
        assert match, reply.text
        assert (int(match.group(1)), match.group(2)) == (rows[0].id, rows[0].requested_by)
    assert (await lock_of(bot, svc)).request_id == rows[0].id


# --------------------------------------------------------------------------- bad input


async def test_nothing_to_restart_is_one_sentence_and_creates_nothing(make_bot, idle_container):
    missing = f"opsbot-test-act-missing-{uuid.uuid4().hex[:8]}"
    services = {
        "web": service(idle_container),
        "database": {"owners": ["ops"], "checks": [{"kind": "tcp", "host": "127.0.0.1", "port": 5432}]},
        "ghost": service(missing),
    }
    bot = await make_bot(app_yaml(services))
    no_container = await bot.handle(ask("UOPS1", "database"))
    assert no_container.text.lower() == "database has no container in app.yaml, so there is nothing to restart."
    gone = await bot.handle(ask("UOPS1", "ghost"))
    assert gone.text == f"Container {missing} of ghost does not exist on the Docker Engine; nothing was requested."
    unknown = await bot.handle(ask("UOPS1", "wbe"))
    assert unknown.text.startswith("Unknown service 'wbe'. Did you mean 'web'?")
    for reply in (no_container, gone, unknown):
        assert_one_sentence(reply)
        assert not buttons(reply)
    assert await request_rows(bot) == []


BAD = [
    ("web; rm -rf /", "Unknown option '-rf'"),
    ("$(id)", "Unknown service '$(id)'"),
    ("--privileged", "Unknown option '--privileged'"),
    ("web --privileged", "Unknown option '--privileged'"),
    ("web\nrm", "Unexpected 'rm'"),
    ("x" * 5120, "at most 2,000"),
    ("сервис", "Unknown service 'сервис'"),
    ("🔥", "Unknown service '🔥'"),
    ("-web", "Unknown option '-web'"),
    ("", "Missing <service>"),
    ("web web", "Unexpected 'web'"),
    ("web --force-recreate=yes", "--force-recreate takes no value"),
]


@pytest.mark.parametrize("text, fragment", BAD, ids=[repr(t[:14]) for t, _ in BAD])
async def test_bad_restart_input_is_one_sentence_and_creates_nothing(make_bot, idle_container, text, fragment):
    bot = await make_bot(app_yaml({"web": service(idle_container)}))
    reply = await bot.handle(ask("UOPS1", text))
    assert fragment in reply.text
    assert reply.outcome in (Outcome.usage_error, Outcome.denied)
    assert_one_sentence(reply)
    assert not buttons(reply)
    assert await request_rows(bot) == []
    assert await lock_of(bot, "web") is None
    # The process still serves: a good request right after works.
    after = await bot.handle(ask("UOPS1", "web"))
    request_id_of(after)
    assert [r.state for r in await request_rows(bot)] == ["pending"]



async def test_refused_and_late_clicks_are_on_the_audit_trail(make_bot, own):
    container, port = await own.httpd()
    bot = await make_bot(app_yaml({"web": service(container, port=port)}))
    request_id = request_id_of(await bot.handle(ask("UOPS1", "web")))
    await bot.handle_click(click("UOPS2", request_id, "action.deny"))
    late = await bot.handle_click(click("UOPS2", request_id))
    assert late.text.startswith(f"Request #{request_id} was already decided by <@UOPS2>")
    assert await trail(bot, "web", request_id, refusals=True) == ["requested", "denied", "approve refused"]
