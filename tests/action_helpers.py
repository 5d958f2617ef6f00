"""Helpers shared by the guarded-action tests (test_actions, test_action_recovery, test_action_transports).

Test containers on the real Docker Engine, app.yaml builders, console requests and clicks,
readers of the action tables and the audit trail, and a Slack-facing bot served over HTTP.
Fixtures defined here are imported by name into the test modules that use them.
"""
from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator

import aiohttp
import docker
import docker.errors
import pytest
import yaml
from aiohttp import web
from conftest import SIGNING_SECRET, fleet, free_port
from slack_signing import sign, slash_command_body
from sqlalchemy import select

from bot.action import service as requests
from bot.action.models import ActionLock, ActionRequest
from bot.audit import service as audit
from bot.config.loader import ConfigError, parse_config
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Actions, Context, Header, Preformatted, Reply, Section
from bot.pipeline.request import Request
from bot.pipeline.roles import RoleDirectory
from bot.transport.server import build_web_app
from bot.transport.edge import SlackEdge
from bot.transport.slack import group_lookup, web_client

IMAGE = fleet()["OPSBOT_FLEET_IMAGE"]
ROLES = {"ops": {"users": ["UOPS1", "UOPS2", "UOPS3"]}, "dev": {"users": ["UDEV1"]}}
# The role the target tests' app.yaml gives their requesters and approvers.
OPS_ROLE = "roles:\n  ops:\n    users: [UOPS1, UOPS2, UOPS3]"


def roles_and_restart(*, deadline: str = "30s", timeout: str | None = "5s") -> str:
    """app.yaml's OPS_ROLE and an `actions:` section opening with the generic restart, verified
    within `deadline`; the caller's own actions may follow, indented two spaces."""
    lines = [OPS_ROLE, "actions:", "  restart:", "    kind: restart"]
    if timeout:
        lines.append(f"    timeout: {timeout}")
    lines.append(f"    verify: {{deadline: {deadline}, interval: 250ms}}")
    return "\n".join(lines)

HEALTHY_VERIFY = {"deadline": "20s", "interval": "200ms"}


# --------------------------------------------------------------------------- containers


class OwnContainers:
    """Containers a test creates (named `prefix`…, labelled opsbot.test=1 and `run_label`=this instance's tag);
    they (and any the bot recreated from them) and their volumes go at teardown. Subclasses set the two names."""

    prefix = "opsbot-test-own-"
    run_label = "opsbot.test.own"

    def __init__(self, client: docker.DockerClient):
        self.client = client
        self.tag = uuid.uuid4().hex[:12]

    def labels(self) -> dict[str, str]:
        return {"opsbot.test": "1", self.run_label: self.tag}

    def name(self) -> str:
        return f"{self.prefix}{uuid.uuid4().hex[:12]}"

    def run(self, command: list[str], *, name: str | None = None, **kwargs) -> str:
        name = name or self.name()
        self.client.containers.run(IMAGE, command, name=name, detach=True, network_mode="host", labels=self.labels(), **kwargs)
        return name

    def idle(self) -> str:
        """`sleep` as PID 1: long-running, ignores SIGTERM (so a restart takes the 1 s grace)."""
        return self.run(["sh", "-c", "exec sleep 3600"])

    def inspect(self, name: str) -> dict | None:
        try:
            return self.client.api.inspect_container(name)
        except docker.errors.NotFound:
            return None

    def cleanup(self) -> None:
        volumes: set[str] = set()
        for container in self.client.containers.list(all=True, filters={"label": f"{self.run_label}={self.tag}"}):
            volumes |= {m["Name"] for m in container.attrs.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")}
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
        # A recreated container names the kept volume in its binds, so `v=True` leaves it: remove it here.
        for volume in volumes:
            try:
                self.client.api.remove_volume(volume, force=True)
            except docker.errors.NotFound:
                pass


def own_fixture(containers: type[OwnContainers]):
    """An `own` fixture (needs a `docker_client` fixture): a fresh `containers` per test, cleaned up after it."""

    @pytest.fixture
    def own(docker_client):
        made = containers(docker_client)
        yield made
        made.cleanup()

    return own


# --------------------------------------------------------------------------- config and bot helpers


@pytest.fixture(params=["sqlite", "postgres"])
def database(request):
    """Each test runs on its own SQLite file and on the session PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_database_url")


def service(container: str, *, port: int | None = None, min_uptime: str | None = None, owners: list[str] | None = None, **extra) -> dict:
    checks: list[dict] = []
    if port is not None:
        checks.append({"kind": "http", "url": f"http://127.0.0.1:{port}/health"})
    container_check: dict = {"kind": "container"}
    if min_uptime:
        container_check["min_uptime"] = min_uptime
    checks.append(container_check)
    return {"container": container, "owners": owners or ["ops"], "checks": checks, **extra}


def app_yaml(services: dict, *, approval: dict | None = None, verify: dict | None = None, roles: dict | None = None) -> str:
    action = {
        "kind": "docker_restart",
        "timeout": "1s",
        "approval": {"approvals": 1, "expires": "15m", **(approval or {})},
        "verify": verify or HEALTHY_VERIFY,
    }
    return yaml.safe_dump(
        {"version": 1, "services": services, "roles": roles or ROLES, "actions": {"restart": action}}, sort_keys=False
    )


def unique_service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def ask(user: str, text: str, command: str = "restart", **kwargs) -> Request:
    return Request(user, "C1", command, text, "console", **kwargs)


def click(user: str, request_id: int, action: str = "action.approve") -> Click:
    return Click(user, action, str(request_id), "C1", "console")


def buttons(reply: Reply) -> list:
    return [button for block in reply.blocks if isinstance(block, Actions) for button in block.buttons]


def request_id_of(reply: Reply) -> int:
    """The new request's id: from its buttons, or from the line saying its plan was posted by a messenger."""
    found = buttons(reply)
    if not found:
        match = re.fullmatch(r"Request #(\d+) is posted and waits for approval\.", reply.text)
        assert match, reply.text
        return int(match.group(1))
    assert [b.action_id for b in found] == ["action.approve", "action.deny", "action.withdraw"], reply.text
    assert len({b.value for b in found}) == 1
    return int(found[0].value)


def everything(reply: Reply) -> str:
    """The reply as a person sees it: text and every block."""
    parts = [reply.text]
    for block in reply.blocks:
        if isinstance(block, (Header, Section, Preformatted, Context)):
            parts.append(block.text)
    return "\n".join(parts)


def assert_one_sentence(reply: Reply) -> None:
    assert reply.ephemeral
    assert "\n" not in reply.text and len(reply.text) < 600, reply.text
    assert "Traceback" not in reply.text


def config_problems(text: str) -> list[str]:
    """What `opsbot config check` says of `text` (read as bad.yaml): one sentence a problem."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    return [str(p) for p in info.value.problems]


async def posted_request(d, command: str, text: str, user: str = "UOPS1"):
    """A guarded request through a `drive` transport: (request id, the posted plan message)."""
    seen = await d.command(user, command, text)
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    return int(match.group(1)), d.messages()[-1]


async def approve_request(d, request_id: int, user: str = "UOPS2"):
    """Approve and let it run: (the reply to the click, the request's message as it ends)."""
    seen = await d.click(user, "action.approve", str(request_id))
    await d.settle()
    [message] = [m for m in d.messages() if f"request #{request_id}" in m.versions[0].words]
    return seen, message.now.words


async def approved(d, command: str, text: str) -> tuple[int, str, str, str]:
    """A request by UOPS1 approved by UOPS2: (request id, the plan as approvers read it, the reply to the approval, the final message)."""
    request_id, plan = await posted_request(d, command, text)
    seen, final = await approve_request(d, request_id)
    return request_id, plan.now.words, seen.words, final


async def state_of(bot, request_id: int) -> str:
    return (await requests.get(bot.db, request_id)).state


async def trail(bot, service_name: str, request_id: int, *, refusals: bool = False) -> list[str]:
    """Audit outcomes recorded for one request, oldest first; refused clicks only when asked for."""
    rows = await audit.entries(bot.db, limit=1000, target=service_name)
    return [
        row.outcome
        for row in reversed(rows)
        if row.arguments.startswith(f"#{request_id} ") and (refusals or not row.outcome.endswith(" refused"))
    ]


async def request_rows(bot, service_name: str | None = None) -> list[ActionRequest]:
    query = select(ActionRequest).order_by(ActionRequest.id)
    if service_name is not None:
        query = query.where(ActionRequest.service == service_name)
    async with bot.db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def lock_of(bot, service_name: str) -> ActionLock | None:
    async with bot.db.sessions() as session:
        return await session.get(ActionLock, f"service:{service_name}")


class RecordingMessenger:
    """A transport's post/update, recorded: shows what the edited request message looks like."""

    def __init__(self):
        self.posted: dict[str, Reply] = {}
        self.updates: list[tuple[str, Reply]] = []

    async def post(self, channel: str, reply: Reply) -> str:
        ref = f"rec:{len(self.posted) + 1}"
        self.posted[ref] = reply
        return ref

    async def update(self, ref: str, reply: Reply) -> None:
        self.updates.append((ref, reply))


# --------------------------------------------------------------------------- Slack over HTTP


class Served:
    def __init__(self, bot, url: str):
        self.bot, self.url = bot, url

    async def post(self, body: str, secret: str = SIGNING_SECRET) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(secret, body)}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as response:
                return response.status, await response.text()


@contextlib.asynccontextmanager
async def serving(bot) -> AsyncIterator[Served]:
    """The bot behind its own HTTP edge on a free local port, talking to the Slack Web API at its settings' URL."""
    client = web_client(bot.settings)
    bot.roles = RoleDirectory(bot.config, group_lookup(client))
    edge = SlackEdge(bot, client)
    runner = web.AppRunner(build_web_app(bot, edge, bot.settings.slack_signing_secret), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Served(bot, f"http://127.0.0.1:{port}")
    await edge.work.drain(30)
    await runner.cleanup()


def blocks_of(call) -> list[dict]:
    blocks = call.args.get("blocks")
    return json.loads(blocks) if isinstance(blocks, str) else blocks


async def send_slash_restart(slack, served: Served, user: str) -> str:
    """Signed /restart svc in C1, answered 200; returns the response_url it carried."""
    url = slack.new_response_url()
    status, _ = await served.post(slash_command_body("/restart", "svc", user_id=user, channel_id="C1", response_url=url))
    assert status == 200
    return url
