"""Guarded actions when something goes wrong around them: stranded requests recovered by the
sweep, a plan Slack would not post, `opsbot run` asked for an approval it cannot collect,
--with-dependents across owners, --force-recreate keeping anonymous volumes, and a Docker
Engine that cannot be reached.

Every container here is this module's own (opsbot-test-rec-*, labelled opsbot.test=1) and
removed afterwards, with the anonymous volumes it had; the shared opsbot-test-* fleet is
never touched. No mocks of Docker, the database or the role directory; no assertion on
wall-clock durations (ages are set in the database, not waited for).
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import docker
import pytest
import pytest_asyncio
from conftest import free_port, wait_until
from slack_double import block_texts
from sqlalchemy import update

from bot.action import service as requests
from bot.action.scheduled import SWEEP
from bot.action.models import ActionRequest
from bot.action.kinds.base import PlanContext
from bot.action.kinds.docker_restart import KIND as RESTART
from bot.pipeline.reply import Outcome, Reply
from bot.schedule import JobState
from bot.schedule import service as jobs
from bot.storage import utcnow


from action_helpers import (  # noqa: E402
    IMAGE,
    OwnContainers,
    RecordingMessenger,
    Served,
    app_yaml,
    ask,
    assert_one_sentence,
    blocks_of,
    buttons,
    click,
    everything,
    lock_of,
    own_fixture,
    request_id_of,
    request_rows,
    send_slash_restart,
    service,
    serving,
    state_of,
    trail,
    unique_service,
)
from action_helpers import database  # noqa: E402,F401 (fixture)


# --------------------------------------------------------------------------- containers


class RecoveryContainers(OwnContainers):
    """This module's containers (opsbot-test-rec-*): idle ones, one with an anonymous volume, and a shell in them."""

    prefix = "opsbot-test-rec-"
    run_label = "opsbot.test.recovery"

    def idle_with_anonymous_volume(self, path: str) -> str:
        """Like idle(), with an anonymous volume at `path` (declared in the image config, as VOLUME does)."""
        api = self.client.api
        name = self.name()
        created = api.create_container(
            IMAGE,
            ["sh", "-c", "exec sleep 3600"],
            volumes=[path],
            host_config=api.create_host_config(network_mode="host"),
            name=name,
            labels=self.labels(),
        )
        api.start(created["Id"])
        return name

    def sh(self, name: str, script: str) -> tuple[int, str]:
        api = self.client.api
        exec_id = api.exec_create(name, ["sh", "-c", script], stdout=True, stderr=True)["Id"]
        output = api.exec_start(exec_id).decode("utf-8", "replace")
        return api.exec_inspect(exec_id)["ExitCode"], output


@pytest.fixture(scope="module")
def docker_client():
    client = docker.from_env(timeout=30)
    yield client
    client.close()


own = own_fixture(RecoveryContainers)


# --------------------------------------------------------------------------- bot helpers


async def locked_refusal(bot, service_name: str, request_id: int, user: str = "UOPS3") -> Reply:
    reply = await bot.handle(ask(user, service_name))
    assert_one_sentence(reply)
    assert reply.text.startswith(f"{service_name} is locked by request #{request_id} "), reply.text
    return reply


# --------------------------------------------------------------------------- 1. stranded requests


async def strand(bot, svc: str, *, running: bool = False) -> ActionRequest:
    """What a process that stopped leaves: a request that is approved (or running) and holds its service's lock.

    Made as the flow makes an approvals: 0 request (created approved, decided_at unset), with a
    message to edit, and then never executed.
    """
    spec = bot.config.action("restart")
    plan = await RESTART.plan(PlanContext(bot, "UOPS1"), "restart", spec, {"service": svc, "with_dependents": False, "force_recreate": False})
    request = await requests.open_request(
        bot.db,
        action="restart",
        service=svc,
        plan=plan.to_json(),
        plan_hash=plan.hash,
        requester="UOPS1",
        channel="C1",
        transport="console",
        approvals_needed=0,
        expires_in=spec.approval.expires,
        locks=[f"service:{svc}"],
    )
    assert request.state == "approved"
    await requests.set_message_ref(bot.db, request.id, "rec:1")
    if running:
        assert await requests.start(bot.db, request.id)
    return request


async def sweep(bot) -> None:
    """The action sweep as serve runs it: a job of its kind due now, claimed and run by the bot's scheduler."""
    key = f"{SWEEP}:test-{uuid.uuid4().hex}"
    await bot.scheduler.enqueue(SWEEP, key, bot.scheduler.clock.now())
    assert await bot.scheduler.run_due() >= 1
    job = await jobs.get(bot.db, key)
    assert (job.state, job.error) == (JobState.done, "")


async def age(bot, request_id: int, **ago: timedelta) -> None:
    """Move the request's timestamps into the past: age(..., decided_at=timedelta(minutes=10))."""
    now = utcnow()
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(ActionRequest).where(ActionRequest.id == request_id).values(**{k: now - v for k, v in ago.items()}))


async def test_sweep_fails_a_request_left_approved_and_frees_its_service(make_bot, own, database):
    container = own.idle()
    svc = unique_service()
    bot = await make_bot(app_yaml({svc: service(container)}), database_url=database)
    messenger = bot.messengers["console"] = RecordingMessenger()
    started = own.inspect(container)["State"]["StartedAt"]
    request = await strand(bot, svc)

    # Approved a minute ago: it may still be starting on another replica; the sweep leaves it alone.
    await age(bot, request.id, created_at=timedelta(minutes=1), decided_at=timedelta(minutes=1))
    await sweep(bot)
    assert await state_of(bot, request.id) == "approved"
    assert (await lock_of(bot, svc)).request_id == request.id
    await locked_refusal(bot, svc, request.id)

    # Approved ten minutes ago and never started: the process that approved it is gone.
    await age(bot, request.id, created_at=timedelta(minutes=11), decided_at=timedelta(minutes=10))
    await sweep(bot)
    stranded = await requests.get(bot.db, request.id)
    assert stranded.state == "failed"
    assert stranded.result == "opsbot stopped before running it"
    assert await lock_of(bot, svc) is None
    assert await trail(bot, svc, request.id) == ["failed"]
    [(ref, message)] = messenger.updates
    assert ref == "rec:1"
    assert "Failed" in everything(message) and "opsbot stopped before running it" in everything(message)
    assert not buttons(message)
    # Recovery does not run it: the container was not touched.
    assert own.inspect(container)["State"]["StartedAt"] == started

    # A second sweep finds nothing more; the service takes a new request.
    await sweep(bot)
    assert await trail(bot, svc, request.id) == ["failed"]
    new = request_id_of(await bot.handle(ask("UOPS2", svc)))
    assert [(r.id, r.state) for r in await request_rows(bot, svc)] == [(request.id, "failed"), (new, "pending")]
    assert (await lock_of(bot, svc)).request_id == new


async def test_sweep_fails_a_request_left_running_and_frees_its_service(make_bot, own, database):
    container = own.idle()
    svc = unique_service()
    bot = await make_bot(app_yaml({svc: service(container)}), database_url=database)
    messenger = bot.messengers["console"] = RecordingMessenger()
    request = await strand(bot, svc, running=True)
    assert await state_of(bot, request.id) == "running"

    # Running for half an hour: a long dependents chain may still be at it.
    await age(bot, request.id, created_at=timedelta(minutes=31), decided_at=timedelta(minutes=31), started_at=timedelta(minutes=30))
    await sweep(bot)
    assert await state_of(bot, request.id) == "running"
    await locked_refusal(bot, svc, request.id)

    await age(bot, request.id, created_at=timedelta(hours=2, minutes=1), decided_at=timedelta(hours=2, minutes=1), started_at=timedelta(hours=2))
    await sweep(bot)
    stranded = await requests.get(bot.db, request.id)
    assert stranded.state == "failed"
    assert "opsbot stopped while running it" in stranded.result
    assert "check the container by hand" in stranded.result
    assert await lock_of(bot, svc) is None
    assert await trail(bot, svc, request.id) == ["failed"]
    [(_, message)] = messenger.updates
    assert "Failed" in everything(message) and "opsbot stopped while running it" in everything(message)

    new = request_id_of(await bot.handle(ask("UOPS2", svc)))
    assert await state_of(bot, new) == "pending"


async def test_sweep_recovers_an_approvals_0_request_that_never_started(make_bot, own, database):
    """The flow creates an approvals: 0 request already approved, without a decision time; if the
    process stops before executing it, the request's age alone must let the sweep recover it."""
    container = own.idle()
    svc = unique_service()
    bot = await make_bot(app_yaml({svc: service(container)}), database_url=database)
    request = await strand(bot, svc)
    assert (await requests.get(bot.db, request.id)).decided_at is None

    await age(bot, request.id, created_at=timedelta(minutes=1))
    await sweep(bot)
    assert await state_of(bot, request.id) == "approved"

    await age(bot, request.id, created_at=timedelta(minutes=10))
    await sweep(bot)
    stranded = await requests.get(bot.db, request.id)
    assert (stranded.state, stranded.result) == ("failed", "opsbot stopped before running it")
    assert await lock_of(bot, svc) is None
    assert await trail(bot, svc, request.id) == ["failed"]


# --------------------------------------------------------------------------- 2. plan not posted (Slack)


@pytest_asyncio.fixture
async def served(slack, make_bot, own):
    container = own.idle()
    bot = await make_bot(app_yaml({"svc": service(container)}), api_url=slack.api_url)
    async with serving(bot) as running:
        yield running


async def slash_restart(slack, served: Served, user: str):
    """Signed /restart svc; returns the response_url it carried, once something was posted to it."""
    url = await send_slash_restart(slack, served, user)
    await wait_until(lambda: slack.response_posts(url), timeout=15)
    return url


async def test_slack_plan_that_cannot_be_posted_is_withdrawn_and_frees_the_service(slack, served):
    slack.fail_next("chat.postMessage", "not_in_channel")
    url = await slash_restart(slack, served, "UOPS1")

    [refused] = slack.calls_to("chat.postMessage")
    assert not refused.ok and refused.response["error"] == "not_in_channel"
    [line] = slack.response_posts(url)
    assert line.body["response_type"] == "ephemeral"
    assert "withdrawn" in line.text and "not_in_channel" in line.text, line.text
    assert "\n" not in line.text

    [row] = await request_rows(served.bot, "svc")
    assert row.state == "failed" and "not_in_channel" in row.result
    assert row.message_ref is None
    assert f"Request #{row.id} was withdrawn" in line.text
    assert await lock_of(served.bot, "svc") is None
    assert await trail(served.bot, "svc", row.id) == ["requested", "failed"]

    # Nothing holds the service: a second /restart posts its plan.
    url2 = await slash_restart(slack, served, "UOPS2")
    posts = await slack.wait_for("chat.postMessage", 2, timeout=15)
    assert posts[-1].ok, posts[-1].response
    shown = block_texts(blocks_of(posts[-1]))
    rows = await request_rows(served.bot, "svc")
    assert [r.state for r in rows] == ["failed", "pending"]
    assert f"/restart svc: request #{rows[1].id}" in shown
    [ack] = slack.response_posts(url2)
    assert ack.text == f"Request #{rows[1].id} is posted and waits for approval."
    assert (await lock_of(served.bot, "svc")).request_id == rows[1].id


# --------------------------------------------------------------------------- 3. opsbot run


async def test_opsbot_run_refuses_a_restart_that_needs_an_approval(make_bot, own):
    container = own.idle()
    bot = await make_bot(app_yaml({"web": service(container)}))
    reply = await bot.handle(ask("UOPS1", "web", trigger="cli"))
    assert "opsbot run cannot collect" in reply.text
    assert_one_sentence(reply)
    assert reply.outcome is not Outcome.ok
    assert not buttons(reply)
    assert await request_rows(bot) == []
    assert await lock_of(bot, "web") is None
    # The same request from the shell (or Slack) is posted for approval.
    request_id_of(await bot.handle(ask("UOPS1", "web")))


# --------------------------------------------------------------------------- 4. --with-dependents


async def test_with_dependents_needs_the_roles_and_holds_the_locks_of_every_service(make_bot, own):
    a, b = own.idle(), own.idle()
    roles = {"ops": {"users": ["UOPS1", "UBOTH1", "UBOTH2"]}, "dbteam": {"users": ["UDB1", "UBOTH1", "UBOTH2"]}}
    services = {"a": service(a, owners=["ops"]), "b": service(b, owners=["dbteam"], depends_on=["a"])}
    bot = await make_bot(app_yaml(services, roles=roles))
    before = {name: own.inspect(name)["State"]["StartedAt"] for name in (a, b)}

    refused = await bot.handle(ask("UOPS1", "a --with-dependents"))
    assert refused.text.startswith("You cannot restart b: it needs the dbteam role"), refused.text
    assert refused.outcome is Outcome.denied
    assert_one_sentence(refused)
    assert await request_rows(bot) == []
    assert await lock_of(bot, "a") is None and await lock_of(bot, "b") is None

    reply = await bot.handle(ask("UBOTH1", "a --with-dependents"))
    request_id = request_id_of(reply)
    request = await requests.get(bot.db, request_id)
    assert [step["service"] for step in request.plan["steps"]] == ["a", "b"]
    assert (await lock_of(bot, "a")).request_id == request_id
    assert (await lock_of(bot, "b")).request_id == request_id

    # b is held by the chain request, even for someone who may restart b.
    for user, target in (("UDB1", "b"), ("UOPS1", "a")):
        locked = await bot.handle(ask(user, target))
        assert_one_sentence(locked)
        assert locked.text.startswith(f"{target} is locked by request #{request_id} (/restart by <@UBOTH1>)"), locked.text
    assert [r.id for r in await request_rows(bot)] == [request_id]

    # Approving needs an approver role for a and for b.
    for user, missing in (("UOPS1", "dbteam"), ("UDB1", "ops")):
        no = await bot.handle_click(click(user, request_id))
        assert no.text == f"You cannot approve this: approving needs the {missing} role.", no.text
        assert_one_sentence(no)
        assert await state_of(bot, request_id) == "pending"
    assert await trail(bot, "a", request_id, refusals=True) == ["requested", "approval refused", "approval refused"]

    result = await bot.handle_click(click("UBOTH2", request_id))
    done = await requests.get(bot.db, request_id)
    assert done.state == "succeeded", done.result
    assert result.outcome is Outcome.ok
    assert "a: restarted in" in done.result and "b: restarted in" in done.result
    assert await lock_of(bot, "a") is None and await lock_of(bot, "b") is None
    for name in (a, b):
        after = own.inspect(name)
        assert after["State"]["Running"] and after["State"]["StartedAt"] != before[name]
    assert await trail(bot, "a", request_id, refusals=True) == ["requested", "approval refused", "approval refused", "approved", "running", "succeeded"]


# --------------------------------------------------------------------------- 5. --force-recreate keeps anonymous volumes


async def test_force_recreate_keeps_the_anonymous_volume(make_bot, own, docker_client):
    name = own.idle_with_anonymous_volume("/data")
    old = own.inspect(name)
    [old_mount] = [m for m in old["Mounts"] if m["Destination"] == "/data"]
    assert old_mount["Type"] == "volume"
    assert own.sh(name, "echo keep > /data/marker") == (0, "")
    bot = await make_bot(app_yaml({"db": service(name)}))

    reply = await bot.handle(ask("UOPS1", "db --force-recreate"))
    request_id = request_id_of(reply)
    assert f"stop {name} ({old['Id'][:12]})" in everything(reply)
    result = await bot.handle_click(click("UOPS2", request_id))

    request = await requests.get(bot.db, request_id)
    assert request.state == "succeeded", request.result
    assert "db: recreated in" in request.result
    assert result.outcome is Outcome.ok
    new = own.inspect(name)
    assert new["Id"] != old["Id"] and new["Name"] == old["Name"]
    assert new["State"]["Running"]
    assert new["Config"]["Labels"] == old["Config"]["Labels"]
    [new_mount] = [m for m in new["Mounts"] if m["Destination"] == "/data"]
    assert new_mount["Name"] == old_mount["Name"]
    code, output = own.sh(name, "cat /data/marker")
    assert (code, output.strip()) == (0, "keep")
    assert own.inspect(old["Id"]) is None
    leftovers = docker_client.containers.list(all=True, filters={"name": f"{name}-replaced-"})
    assert leftovers == []
    assert await lock_of(bot, "db") is None


# --------------------------------------------------------------------------- 6. Docker Engine unreachable


async def test_a_docker_engine_that_cannot_be_reached_is_contained(make_bot, monkeypatch):
    dead = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKER_HOST", dead)
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    services = {
        "web": service("opsbot-test-rec-unreachable"),
        "database": {"owners": ["ops"], "checks": [{"kind": "tcp", "host": "127.0.0.1", "port": 5432}]},
    }
    bot = await make_bot(app_yaml(services))

    for _ in range(2):  # the bot keeps serving: asking again gives the same answer
        health = await bot.handle(ask("UOPS1", "", command="health"))
        assert health.outcome is Outcome.critical
        text = everything(health)
        assert "Docker Engine is not reachable" in text, text
        assert "Traceback" not in text
        web_line = next(line for line in health.text.splitlines() if "web" in line)
        assert web_line.startswith("CRITICAL") and "Docker Engine is not reachable" in web_line
        database_line = next(line for line in health.text.splitlines() if "database" in line)
        assert database_line.startswith("OK"), database_line

        logs = await bot.handle(ask("UOPS1", "web", command="logs"))
        assert_one_sentence(logs)
        assert logs.text.startswith("Cannot read the logs of web:") and "Docker Engine is not reachable" in logs.text, logs.text

        restart = await bot.handle(ask("UOPS1", "web"))
        assert_one_sentence(restart)
        assert "Docker Engine is not reachable" in restart.text and "nothing was requested" in restart.text, restart.text
        assert not buttons(restart)

    assert await request_rows(bot) == []
    assert await lock_of(bot, "web") is None
