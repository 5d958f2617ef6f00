"""/run and the typed confirmation, against the real Docker fleet, Redis and PostgreSQL.

/run lists the declared actions and refuses bad input with one sentence (no request row);
a declared docker_exec action runs an argument list in the fleet's web container after a
second user approves; a declared http action POSTs its typed parameters to a small aiohttp
server this module starts; docker_stop and docker_start act on a busybox container a test
creates itself (labelled opsbot.test=1, removed afterwards); a read-only action answers at
once, on the audit log, without a request.

The typed confirmation of /cache flush (the approver types the cache's name) runs through
all three transports: Slack over HTTP and Socket Mode (Approve opens the action.confirm
modal; its signed view_submission approves only with the right name), and the console
(the approver presses the button number, then types the name at the prompt), plus a real
`opsbot shell` process. The cache is a Redis database of 9..14 claimed for the test alone
and flushed only by it.

Every service and cache name is unique per test (svc-<hex>, main-<hex>), so rows and
locks on the session's shared PostgreSQL database never mix between tests.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import docker
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from conftest import REDIS_TEST_DBS as CANDIDATE_DBS, REDIS_BASE as BASE, SIGNING_SECRET, fleet, free_port, redis_db_url
from drivers import drive  # noqa: F401 (fixture)
from slack_signing import sign, submission_state, view_submission_payload

from action_helpers import (  # noqa: E402
    OwnContainers,
    ask,
    assert_one_sentence,
    buttons,
    click,
    everything,
    own_fixture,
    request_id_of,
    request_rows,
    state_of,
    trail,
    unique_service,
)
from bot.action import service as requests
from bot.audit import service as audit
from bot.transport.console import run_console

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
FLEET = fleet()
WEB = FLEET["OPSBOT_FLEET_WEB"]
ROLES = {"ops": {"users": ["UOPS1", "UOPS2", "UOPS3"]}, "dev": {"users": ["UDEV1"]}}
WORD = r"^[a-z]{1,10}$"


# --------------------------------------------------------------------------- config


def config_text(
    svc: str,
    *,
    container: str = WEB,
    hook_url: str | None = None,
    cache_db: int | None = None,
    cache: str = "main",
) -> str:
    """app.yaml: service `svc` (owned by ops) on `container`, the declared actions say/hook/stop/start,
    and, with `cache_db`, the cache `cache` on that Redis database."""
    actions: dict = {
        "say": {
            "kind": "docker_exec",
            "description": "Echo one word in the web container.",
            "service": svc,
            "command": ["echo", "{word}"],
            "params": {"word": {"type": "pattern", "pattern": WORD, "description": "A lowercase word."}},
            "timeout": "30s",
            "approval": {"approvals": 1},
        },
        "stop": {"kind": "docker_stop", "timeout": "1s"},
        "start": {"kind": "docker_start", "verify": {"deadline": "20s", "interval": "200ms"}},
    }
    if hook_url:
        actions["hook"] = {
            "kind": "http",
            "service": svc,
            "method": "POST",
            "url": hook_url,
            "params": {
                "level": {"type": "enum", "values": ["low", "high"]},
                "count": {"type": "int", "min": 1, "max": 10, "default": "2"},
                "window": {"type": "duration", "max_duration": "1h"},
            },
            "timeout": "10s",
            "approval": {"approvals": 0},
        }
    data: dict = {
        "version": 1,
        "services": {svc: {"container": container, "owners": ["ops"], "checks": [{"kind": "container"}]}},
        "roles": ROLES,
        "actions": actions,
    }
    if cache_db is not None:
        # owners: a cache without them (and without a service) has no one who may flush it.
        data["caches"] = {cache: {"url": redis_url(cache_db), "owners": ["ops"]}}
    return yaml.safe_dump(data, sort_keys=False)


async def open_requests(bot) -> list[int]:
    return [row.id for row in await request_rows(bot)]


async def audit_of(bot, svc: str) -> list[tuple[str, str, str, str]]:
    """(user, command, arguments, outcome) of every audit row naming `svc` as target, oldest first."""
    rows = await audit.entries(bot.db, limit=1000, target=svc)
    return [(r.user_id, r.command, r.arguments, r.outcome) for r in reversed(rows)]


@pytest.fixture
def svc() -> str:
    return unique_service()


@pytest_asyncio.fixture
async def pg_bot(make_bot, pg_database_url):
    """pg_bot(config_text) -> a bot on the session's PostgreSQL database."""

    async def factory(text: str, **settings):
        return await make_bot(text, pg_database_url, **settings)

    return factory


# --------------------------------------------------------------------------- 1. /run: listing and one-sentence refusals


async def test_run_alone_lists_every_action_with_its_usage(pg_bot, svc):
    bot = await pg_bot(config_text(svc, hook_url="http://127.0.0.1:9/hook"))
    reply = await bot.handle(ask("UOPS1", "", command="run"))
    shown = everything(reply)
    lines = reply.text.splitlines()
    # Declared actions with their typed parameters, and the shipped ones (restart, logs, flush_cache...).
    assert "/run say word=pattern  (docker_exec, 1 approval): Echo one word in the web container." in lines
    assert "/run hook level=low|high [count=N] window=1h  (http, 0 approvals)" in lines
    assert "/run stop service=service  (docker_stop, 1 approval)" in lines
    assert "/run start service=service  (docker_start, 1 approval)" in lines
    assert any(line.startswith("/run logs service=service [tail=N]  (logs, read-only)") for line in lines), lines
    assert any(line.startswith("/run restart service=service [with_dependents=true|false] [force_recreate=true|false]") for line in lines)
    assert any(line.startswith("/run flush_cache cache=cache  (redis_flush, 1 approval)") for line in lines)
    assert "Actions" in shown and "Traceback" not in shown


async def test_run_refuses_bad_input_with_one_sentence_and_no_request(pg_bot, svc):
    bot = await pg_bot(config_text(svc))
    before = await open_requests(bot)
    cases = [
        ("nope", "There is no action 'nope'. Actions: "),
        ("restart bogus=1", "Unknown parameter 'bogus'. This action takes: service, with_dependents, force_recreate."),
        ("restart service=", "Unknown service '' for service. Known: "),
        (f"restart service=no-{svc}", f"Unknown service 'no-{svc}' for service. Known: "),
        ("restart", "Missing service: service=service."),
        ("say notpair", "'notpair' is not name=value."),
        ("say word=hello word=again", "word is given twice."),
        ("say word=Hello", f"word must match {WORD}."),
    ]
    for text, expected in cases:
        reply = await bot.handle(ask("UOPS1", text, command="run"))
        assert_one_sentence(reply)
        assert reply.text.startswith(expected), (text, reply.text)
        assert not buttons(reply), text
    assert await open_requests(bot) == before


# --------------------------------------------------------------------------- 2. docker_exec on the fleet's web container


async def test_docker_exec_runs_the_declared_argv_after_a_second_approver(pg_bot, svc):
    bot = await pg_bot(config_text(svc))
    reply = await bot.handle(ask("UOPS1", "say word=hello", command="run"))
    request_id = request_id_of(reply)
    shown = everything(reply)
    assert f"/say {svc}: request #{request_id}" in shown
    assert re.search(rf"1\. {svc}: in {WEB} \([0-9a-f]{{12}}\), run echo hello \(no shell; reported failed if it runs over 30 s\)", shown), shown
    assert await state_of(bot, request_id) == "pending"
    [row] = [r for r in await request_rows(bot, svc) if r.id == request_id]
    assert row.plan["steps"][0]["argv"] == ["echo", "hello"] and row.plan["kind"] == "docker_exec"

    # The requester cannot approve it; a second ops member can, and it runs at once.
    refused = await bot.handle_click(click("UOPS1", request_id))
    assert refused.text == "You requested this, so someone else has to approve it (two-person rule)."
    done = await bot.handle_click(click("UOPS2", request_id))
    result = everything(done)
    assert await state_of(bot, request_id) == "succeeded", result
    assert re.search(rf"{svc}: exit 0 after \d+\.\d s", result), result
    request = await requests.get(bot.db, request_id)
    assert re.fullmatch(rf"{svc}: exit 0 after \d+\.\d s", request.result), request.result

    assert await trail(bot, svc, request_id) == ["requested", "approved", "running", "succeeded"]
    rows = await audit.entries(bot.db, limit=1000, target=svc)
    approved = [r for r in rows if r.outcome == "approved" and r.arguments.startswith(f"#{request_id} ")]
    assert [r.user_id for r in approved] == ["UOPS2"]


async def test_docker_exec_shows_the_commands_output_when_it_succeeds(pg_bot, svc):
    """What the command printed is what its requester asked for: it is shown with exit 0, not only under a failure."""
    bot = await pg_bot(config_text(svc))
    request_id = request_id_of(await bot.handle(ask("UOPS1", "say word=hello", command="run")))
    done = await bot.handle_click(click("UOPS2", request_id))
    assert await state_of(bot, request_id) == "succeeded"
    lines = everything(done).splitlines()
    assert "hello" in lines, everything(done)


async def test_docker_exec_refuses_a_value_outside_its_pattern(pg_bot, svc):
    bot = await pg_bot(config_text(svc))
    before = await open_requests(bot)
    reply = await bot.handle(ask("UOPS1", 'say word="; rm -rf /"', command="run"))
    assert_one_sentence(reply)
    assert reply.text == f"word must match {WORD}."
    for value in ("; rm -rf /", "$(id)", "hello world", "héllo"):
        # Unquoted, the words split: the grammar, the name=value check or the pattern refuses it.
        reply = await bot.handle(ask("UOPS1", f"say word={value}", command="run"))
        assert_one_sentence(reply)
        assert not buttons(reply), value
    reply = await bot.handle(ask("UOPS1", "say word=;rm${IFS}-rf${IFS}/", command="run"))
    assert_one_sentence(reply)
    assert reply.text == f"word must match {WORD}."
    assert await open_requests(bot) == before
    # Nobody without the service's role gets to learn about it either.
    reply = await bot.handle(ask("UDEV1", "say word=hello", command="run"))
    assert_one_sentence(reply)
    assert reply.text == f"You cannot run commands in {svc}: it needs the ops role in app.yaml."
    assert await open_requests(bot) == before


# --------------------------------------------------------------------------- 3. http against a server this test starts


class Hook:
    """A small aiohttp server: records each request, answers with `status`."""

    def __init__(self):
        self.status = 200
        self.received: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.received.append({"method": request.method, "path": request.path, "type": request.content_type, "raw": raw})
        if self.status == 200:
            return web.json_response({"ok": True})
        return web.Response(status=self.status, text="rollback exploded")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


@pytest_asyncio.fixture
async def hook():
    server = Hook()
    await server.start()
    yield server
    await server.runner.cleanup()


async def test_http_action_posts_the_typed_parameters_and_succeeds_on_200(pg_bot, svc, hook):
    bot = await pg_bot(config_text(svc, hook_url=hook.url))
    reply = await bot.handle(ask("UOPS1", "hook level=high window=5m", command="run"))
    shown = everything(reply)
    [row] = await request_rows(bot, svc)
    assert row.state == "succeeded", shown
    assert row.approvals_needed == 0
    assert re.fullmatch(rf"{svc}: POST answered 200 in \d+\.\d s", row.result), row.result
    assert f"{svc}: POST answered 200" in shown
    [got] = hook.received
    assert (got["method"], got["path"], got["type"]) == ("POST", "/hook", "application/json")
    assert json.loads(got["raw"]) == {"level": "high", "count": 2, "window": 300.0}
    assert await trail(bot, svc, row.id) == ["requested", "running", "succeeded"]

    # A bad value is refused before anything is sent.
    bad = await bot.handle(ask("UOPS1", "hook level=extreme window=5m", command="run"))
    assert_one_sentence(bad)
    assert bad.text == "level must be one of: low, high."
    bad = await bot.handle(ask("UOPS1", "hook level=low window=2h", command="run"))
    assert_one_sentence(bad)
    assert bad.text == "window can be at most 1h."
    assert len(hook.received) == 1 and len(await request_rows(bot, svc)) == 1


async def test_http_action_fails_on_500_with_the_status_in_the_result(pg_bot, svc, hook):
    bot = await pg_bot(config_text(svc, hook_url=hook.url))
    hook.status = 500
    reply = await bot.handle(ask("UOPS1", "hook level=low count=7 window=30s", command="run"))
    [row] = await request_rows(bot, svc)
    assert row.state == "failed", everything(reply)
    assert re.fullmatch(rf"{svc}: POST answered 500 in \d+\.\d s, expected 200, 201, 202, 204", row.result), row.result
    assert "rollback exploded" in everything(reply)  # the answer's body, under the failure
    [got] = hook.received
    assert json.loads(got["raw"]) == {"level": "low", "count": 7, "window": 30.0}
    assert await trail(bot, svc, row.id) == ["requested", "running", "failed"]
    assert await requests.get(bot.db, row.id) is not None


# --------------------------------------------------------------------------- 4. docker_stop and docker_start on an own container


class RunContainers(OwnContainers):
    prefix = "opsbot-test-run-"
    run_label = "opsbot.test.run"


@pytest.fixture(scope="module")
def docker_client():
    client = docker.from_env(timeout=30)
    yield client
    client.close()


own = own_fixture(RunContainers)


async def test_docker_stop_then_start_a_container_of_its_own(pg_bot, svc, own):
    name = own.idle()
    assert own.inspect(name)["State"]["Running"]
    bot = await pg_bot(config_text(svc, container=name))

    reply = await bot.handle(ask("UOPS1", f"stop service={svc}", command="run"))
    stop_id = request_id_of(reply)
    assert f"1. {svc}: docker stop {name} (" in everything(reply) and "it stays stopped" in everything(reply)
    assert own.inspect(name)["State"]["Running"]  # nothing before the approval
    done = await bot.handle_click(click("UOPS2", stop_id))
    assert await state_of(bot, stop_id) == "succeeded", everything(done)
    state = own.inspect(name)["State"]
    assert not state["Running"] and state["Status"] == "exited"
    assert await trail(bot, svc, stop_id) == ["requested", "approved", "running", "succeeded"]

    reply = await bot.handle(ask("UOPS2", f"start service={svc}", command="run"))
    start_id = request_id_of(reply)
    assert f"1. {svc}: docker start {name} (" in everything(reply)
    assert not own.inspect(name)["State"]["Running"]
    done = await bot.handle_click(click("UOPS3", start_id))
    assert await state_of(bot, start_id) == "succeeded", everything(done)
    assert own.inspect(name)["State"]["Running"]
    assert "started in" in (await requests.get(bot.db, start_id)).result
    assert await trail(bot, svc, start_id) == ["requested", "approved", "running", "succeeded"]


# --------------------------------------------------------------------------- 6. a read-only action through /run


async def test_read_only_logs_through_run_answer_at_once_without_a_request(pg_bot, svc):
    bot = await pg_bot(config_text(svc))
    before = await open_requests(bot)
    reply = await bot.handle(ask("UOPS1", f"logs service={svc} tail=5", command="run"))
    shown = everything(reply)
    assert f"{svc} logs: " in shown and "web: listening on" in shown, shown
    assert "s3cr3t" not in shown  # redacted
    assert len([line for line in reply.text.splitlines()[1:] if line.strip()]) <= 5, reply.text
    assert not buttons(reply)
    assert await open_requests(bot) == before
    rows = await audit_of(bot, svc)
    assert ("UOPS1", "logs", svc, "succeeded") in rows, rows

    # Someone without the service's role reads nothing; that is on record too.
    refused = await bot.handle(ask("UDEV1", f"logs service={svc} tail=5", command="run"))
    assert_one_sentence(refused)
    assert refused.text == f"You cannot read the logs of {svc}: it needs the ops role in app.yaml."
    assert "web: listening" not in everything(refused)


# --------------------------------------------------------------------------- 5. typed confirmation of /cache flush




redis_url = redis_db_url


@pytest.fixture
def cache_db(claimed_redis_db):
    """(db number, client on it): a Redis database of 9..14 this test owns (conftest.claimed_redis_db)."""
    return claimed_redis_db


SEEDED = {f"cache:item:{i}".encode(): b"v" for i in range(25)}


@pytest.fixture
def cache() -> str:
    """The cache's name, which the approver types: its own per test, so no lock or row is shared."""
    return f"main-{uuid.uuid4().hex[:6]}"


async def submit(d, payload: dict) -> dict | None:
    """A view_submission as Slack sends it (signed over HTTP, an envelope over Socket Mode); the ack's body."""
    if d.name == "http":
        body = urlencode({"payload": json.dumps(payload)})
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{d.url}/slack/events", data=body.encode(), headers=headers) as response:
                assert response.status == 200
                text = await response.text()
        return json.loads(text) if text else None
    return (await d.slack.socket.deliver("interactive", payload)).payload


def confirm_views(d) -> list[dict]:
    return [v for v in d.slack.views.values() if v.get("callback_id") == "action.confirm"]


async def test_cache_flush_needs_the_cache_name_typed_by_the_approver(drive, pg_database_url, cache_db, svc, cache):  # noqa: F811
    db, client = cache_db
    await client.mset(SEEDED)
    d = await drive(config_text(svc, cache_db=db, cache=cache), pg_database_url)

    seen = await d.command("UOPS1", "/cache", "flush")
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    request_id = int(match.group(1))
    plan = d.messages()[-1]
    assert f"/flush_cache {cache}: request #{request_id}" in plan.now.words
    assert f"{cache}: FLUSHDB database {db} on " in plan.now.words and "every key in it goes" in plan.now.words
    assert "It held 25 keys when this was planned." in plan.now.words
    assert plan.now.buttons == [(action, str(request_id)) for action in ("action.approve", "action.deny", "action.withdraw")]
    [row] = [r for r in await request_rows(d.bot, cache) if r.id == request_id]
    assert row.plan["confirm"] == cache and row.state == "pending"

    async def press_and_type(typed: str):
        """The second user presses Approve and types `typed`; returns what they are told at the end."""
        if d.name == "console":
            d.console.stdin = io.StringIO(typed + "\n")
            seen = await d.click("UOPS2", "action.approve", str(request_id))
            assert f"Type {cache} to approve request #{request_id}:" in seen.words
            return seen.words
        opened = len(confirm_views(d))
        seen = await d.click("UOPS2", "action.approve", str(request_id))  # block_actions with a trigger_id
        assert seen.ephemeral and seen.one_line == f"Type {cache} in the form to approve request #{request_id}.", seen.words
        views = confirm_views(d)
        assert len(views) == opened + 1, "no action.confirm view was opened"
        [call] = d.slack.calls_to("views.open")[opened:]
        assert call.ok and call.args["trigger_id"]
        view = views[-1]
        [block] = view["blocks"]
        assert block["block_id"] == "confirm" and block["element"]["type"] == "plain_text_input"
        assert f"Type {cache} to approve /flush_cache" in block["label"]["text"]
        assert view["private_metadata"] == f"{request_id}:{d.channel}:T0TEST"
        state = submission_state(view, {"confirm": typed})
        payload = view_submission_payload("action.confirm", state, user_id="UOPS2", private_metadata=view["private_metadata"])
        ack = await submit(d, payload)
        await d.settle()
        return ack

    # The wrong name: refused, nothing approved, every key still there.
    answer = await press_and_type("mian")
    refusal = f"That is not {cache}: request #{request_id} was not approved. Press Approve again to retry."
    if d.name == "console":
        assert refusal in answer
    else:
        assert answer["response_action"] == "update" and refusal in json.dumps(answer["view"]), answer
    assert await state_of(d.bot, request_id) == "pending"
    assert await client.dbsize() == len(SEEDED)
    assert await trail(d.bot, cache, request_id) == ["requested"]
    assert "approval refused" in await trail(d.bot, cache, request_id, refusals=True)

    # The right name: approved, flushed, succeeded; the plan message edited in place.
    answer = await press_and_type(cache)
    if d.name == "console":
        assert f"Request #{request_id} succeeded." in answer, answer
    else:
        assert answer == {"response_action": "clear"}, answer  # the form closes
        assert len(d.slack.calls_to("views.open")) == 2 and len(confirm_views(d)) == 2
    assert await state_of(d.bot, request_id) == "succeeded"
    assert await client.dbsize() == 0
    request = await requests.get(d.bot.db, request_id)
    assert request.result == f"{cache}: flushed db {db}: 25 keys before, 0 after."
    assert request.decided_by == "UOPS2"
    assert await trail(d.bot, cache, request_id) == ["requested", "approved", "running", "succeeded"]
    final = [m for m in d.messages() if m.ref == plan.ref][0].now
    assert "Succeeded" in final.words and "approved by @UOPS2" in final.words
    assert final.buttons == []


@pytest.mark.parametrize("drive", ["http"], indirect=True)
async def test_a_confirm_form_from_another_request_or_user_approves_nothing(drive, pg_database_url, cache_db, svc, cache):  # noqa: F811
    """The submission is checked as the press it stands for: the requester cannot confirm their own request,
    and metadata naming no request is refused."""
    db, client = cache_db
    await client.mset(SEEDED)
    d = await drive(config_text(svc, cache_db=db, cache=cache), pg_database_url)
    seen = await d.command("UOPS1", "/cache", "flush")
    request_id = int(re.search(r"Request #(\d+) is posted", seen.words).group(1))
    metadata = f"{request_id}:{d.channel}:T0TEST"
    state = {"confirm": {"confirm": {"type": "plain_text_input", "value": cache}}}

    own_form = view_submission_payload("action.confirm", state, user_id="UOPS1", private_metadata=metadata)
    ack = await submit(d, own_form)
    assert "You requested this, so someone else has to approve it (two-person rule)." in json.dumps(ack["view"]), ack
    outsider = view_submission_payload("action.confirm", state, user_id="UDEV1", private_metadata=metadata)
    ack = await submit(d, outsider)
    assert "You cannot approve this: approving needs the ops role." in json.dumps(ack["view"]), ack
    garbage = view_submission_payload("action.confirm", state, user_id="UOPS2", private_metadata="not-ours")
    ack = await submit(d, garbage)
    assert "That form does not belong to a request opsbot knows; nothing was approved." in json.dumps(ack["view"]), ack
    elsewhere = view_submission_payload("action.confirm", state, user_id="UOPS2", private_metadata=f"{request_id}:C999:T0TEST")
    ack = await submit(d, elsewhere)
    assert f"That button does not belong to request #{request_id} in this channel; nothing was done." in json.dumps(ack["view"])
    await d.settle()
    assert await state_of(d.bot, request_id) == "pending"
    assert await client.dbsize() == len(SEEDED)


async def test_console_run_console_prompts_for_the_name(make_bot, pg_database_url, cache_db, svc, cache):
    """run_console with piped input: request, switch user, press Approve, type a wrong name; press again, type it right."""
    db, client = cache_db
    await client.mset(SEEDED)
    # Its own SQLite database: run_console starts the scheduler, which must not find other tests' pages.
    bot = await make_bot(config_text(svc, cache_db=db, cache=cache))
    stdin = io.StringIO("\n".join(["/cache flush", "as UOPS2", "1", "mian", "1", cache, f"/cache {cache} status"]) + "\n")
    stdout = io.StringIO()
    await run_console(bot, "UOPS1", stdin, stdout, allow_impersonation=True)
    out = stdout.getvalue()
    request_id = int(re.search(rf"/flush_cache {cache}: request #(\d+)", out).group(1))
    assert "[1] Approve  [2] Deny  [3] Withdraw   (type the number to press)" in out
    first, second = out.split(f"Type {cache} to approve request #{request_id}:")[1:]
    assert f"That is not {cache}: request #{request_id} was not approved. Press Approve again to retry." in first
    assert "[message 1 updated]" not in first
    assert f"Request #{request_id} succeeded." in second
    assert "Status: Succeeded · approved by @UOPS2" in second
    assert await state_of(bot, request_id) == "succeeded"
    assert await client.dbsize() == 0
    assert await trail(bot, cache, request_id, refusals=True) == ["requested", "approval refused", "approved", "running", "succeeded"]


def test_opsbot_shell_prompts_for_the_name(tmp_path, cache_db_sync, svc, cache):
    """A real `opsbot shell` process, standard input piped: the prompt reads the next line."""
    db, keys_left = cache_db_sync
    config = tmp_path / "app.yaml"
    config.write_text(config_text(svc, cache_db=db, cache=cache))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REDIS_URL", "OPSBOT_"))}
    env.update({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'opsbot.db'}", "PYTHONPATH": str(ROOT)})
    lines = ["/cache flush", "as UOPS2", "1", "nope", "1", cache, f"/audit {cache}"]
    result = subprocess.run(
        [str(PYTHON), "-m", "bot.cli", "shell", "--as", "UOPS1", "--config", str(config)],
        input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert f"/flush_cache {cache}: request #1" in out
    assert "It held 25 keys when this was planned." in out
    assert f"That is not {cache}: request #1 was not approved. Press Approve again to retry." in out
    assert "Request #1 succeeded." in out
    assert f"{cache}: flushed db {db}: 25 keys before, 0 after." in out
    assert keys_left() == 0


@pytest.fixture
def cache_db_sync():
    """cache_db for a synchronous test: (db, a function giving its key count); seeded with SEEDED."""
    import redis

    admin = redis.Redis.from_url(redis_url(0), socket_timeout=5)
    token = uuid.uuid4().hex
    claimed = None
    try:
        for db in CANDIDATE_DBS:
            claim = f"opsbot:test:cache-db:{db}"
            if not admin.set(claim, token, nx=True, ex=600):
                continue
            client = redis.Redis.from_url(redis_url(db), socket_timeout=5)
            if client.dbsize() == 0:
                claimed = (db, client)
                break
            client.close()
            admin.delete(claim)
        if claimed is None:
            pytest.fail(f"No empty Redis database among 9..14 to claim at {BASE}.")
        db, client = claimed
        client.mset(SEEDED)
        yield db, client.dbsize
    finally:
        if claimed is not None:
            db, client = claimed
            client.flushdb()
            client.close()
            claim = f"opsbot:test:cache-db:{db}"
            if admin.get(claim) == token.encode():
                admin.delete(claim)
        admin.close()
