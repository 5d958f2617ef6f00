"""deploy/compose/compose.yaml run with Debian's docker-compose (1.29), as an operator would, with
tests/compose.override.yaml on top (host network, this machine's PostgreSQL and Redis, the image
built for this run). Two replicas become healthy and answer signed commands through the Slack
double; with the first replica stopped, the second still serves and sends the page that falls due
for an incident the first one opened. Each run is its own compose project on a fresh database,
torn down (containers and volumes) after."""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest_asyncio
import yaml

from conftest import BOT_TOKEN, PG_ADMIN_DSN, PG_USER, REDIS_URL, SIGNING_SECRET, free_port, wait_until
from image_build import CHECKOUT, ROOT, docker, opsbot_image, signed_command  # noqa: F401  (opsbot_image: the session fixture)

COMPOSE_FILES = [ROOT / "deploy" / "compose" / "compose.yaml", ROOT / "tests" / "compose.override.yaml"]
REPLICAS = ("opsbot-1", "opsbot-2")
ESCALATE_AFTER = 40  # seconds: longer than stopping a replica takes, so the page falls due after it is gone

CONFIG = """
version: 1
services:
  database:
    checks:
      - kind: postgres
        dsn: postgresql://{pg_user}@127.0.0.1:5432/{database}
roles:
  ops: {{users: [UOPS1, UOPS2]}}
severities:
  P1:
    respond_within: {escalate_after}s
    escalation:
      - {{users: [UOPS1], name: first responder}}
      - {{users: [UOPS2], name: second responder}}
slack:
  ops_channel: C0OPS
  incidents_channel: C0INCIDENTS
"""


@dataclass
class Project:
    name: str
    env_file: Path
    ports: dict[str, int]

    def compose(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        argv = ["docker-compose", "--no-ansi", "-p", self.name, "--env-file", str(self.env_file)]
        for path in COMPOSE_FILES:
            argv += ["-f", str(path)]
        done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"docker-compose {args[0]} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return done

    async def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(self.compose, *args, timeout=timeout)

    async def container(self, service: str) -> str:
        return (await self.run("ps", "-q", service)).stdout.strip()

    async def health(self, service: str) -> str:
        found = await asyncio.to_thread(docker, "inspect", "-f", "{{.State.Health.Status}}", await self.container(service), check=False)
        return found.stdout.strip()

    async def logs(self) -> str:
        return (await asyncio.to_thread(self.compose, "logs", "--tail", "30", check=False)).stdout[-6000:]


@pytest_asyncio.fixture
async def project(opsbot_image, slack, tmp_path):  # noqa: F811
    """The compose project, up: a fresh database, its own name and ports; down -v after."""
    database = f"opsbot_compose_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE DATABASE "{database}"')
    app_yaml = tmp_path / "app.yaml"
    app_yaml.write_text(CONFIG.format(pg_user=PG_USER, database=database, escalate_after=ESCALATE_AFTER))
    env_file = tmp_path / "compose.env"
    ports = {service: free_port() for service in REPLICAS}
    socket_gid = Path("/var/run/docker.sock").stat().st_gid  # group_add: the image's user may use the socket
    env_file.write_text("\n".join([
        f"OPSBOT_IMAGE={opsbot_image.tag}",
        f"OPSBOT_ENV_FILE={env_file}",
        f"OPSBOT_APP_YAML={app_yaml}",
        f"OPSBOT_TEST_PORT_1={ports['opsbot-1']}",
        f"OPSBOT_TEST_PORT_2={ports['opsbot-2']}",
        f"DOCKER_GID={socket_gid}",
        "POSTGRES_PASSWORD=unused-the-stand-in-has-none",
        f"DATABASE_URL=postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{database}",
        f"REDIS_URL={REDIS_URL}",
        f"SLACK_API_URL={slack.api_url}",
        f"SLACK_BOT_TOKEN={BOT_TOKEN}",
        f"SLACK_SIGNING_SECRET={SIGNING_SECRET}",
    ]) + "\n")
    created = Project(f"opsbot-test-{CHECKOUT}-{uuid.uuid4().hex[:6]}", env_file, ports)
    try:
        await created.run("up", "-d", timeout=300)
        yield created
    finally:
        await asyncio.to_thread(created.compose, "down", "-v", "--remove-orphans", "-t", "30", timeout=180, check=False)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def command(slack, port: int, text: str = "", command: str = "/health") -> str:
    """A signed slash command from UOPS1 in C0OPS to the replica on `port`; the text of its answer."""
    return await signed_command(slack, f"http://127.0.0.1:{port}", command, text, user="UOPS1", channel="C0OPS")


def pages_to(slack, user: str) -> list:
    """Messages the bot posted that page `user` (a live mention in the channel)."""
    return [c for c in slack.calls_to("chat.postMessage") if c.ok and f"<@{user}>" in json.dumps(c.args)]


async def test_two_replicas_serve_and_the_survivor_sends_the_page_that_falls_due(project, slack):
    for service in REPLICAS:
        try:
            await wait_until(lambda s=service: _is(project.health(s), "healthy"), timeout=120, interval=1)
        except AssertionError:
            raise AssertionError(f"{service} did not become healthy:\n{await project.logs()}") from None
    migrate = await asyncio.to_thread(docker, "inspect", "-f", "{{.State.ExitCode}}", await project.container("migrate"))
    assert migrate.stdout.strip() == "0"

    for service in REPLICAS:
        assert "Health:" in await command(slack, project.ports[service])

    # Opened through the first replica: the first level is paged now, the second in ESCALATE_AFTER.
    opened = await command(slack, project.ports["opsbot-1"], "open P1 compose failover drill", "/incident")
    assert "P1" in opened, opened
    await wait_until(lambda: pages_to(slack, "UOPS1"), timeout=30)
    opened_at = time.monotonic()

    await project.run("stop", "opsbot-1", timeout=90)  # SIGTERM: the drain, then exit 0
    stopped_after = time.monotonic() - opened_at
    assert stopped_after < ESCALATE_AFTER - 5, f"stopping took {stopped_after:.0f}s; the page could have gone before"
    assert pages_to(slack, "UOPS2") == [], "the second level was paged before it fell due"
    first = await asyncio.to_thread(docker, "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", await project.container("opsbot-1"))
    assert first.stdout.split() == ["false", "0"], first.stdout

    # The survivor still answers, and sends the page the stopped replica would have sent.
    assert "Health:" in await command(slack, project.ports["opsbot-2"])
    try:
        await wait_until(lambda: pages_to(slack, "UOPS2"), timeout=ESCALATE_AFTER + 60, interval=0.5)
    except AssertionError:
        raise AssertionError(f"the second level was never paged:\n{await project.logs()}") from None
    assert await project.health("opsbot-2") == "healthy"


async def _is(value, expected: str) -> bool:
    return (await value) == expected


def test_the_example_env_and_the_http_ports_file_make_a_valid_project():
    """What an operator types for Slack over HTTP: .env from .env.example, ports.yaml on top."""
    compose_dir = ROOT / "deploy" / "compose"
    done = subprocess.run(
        ["docker-compose", "--env-file", str(compose_dir / ".env.example"), "-f", str(compose_dir / "compose.yaml"),
         "-f", str(compose_dir / "ports.yaml"), "config"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "OPSBOT_ENV_FILE": ".env.example"},
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert sorted(services) == ["migrate", "opsbot-1", "opsbot-2", "postgres", "redis"]
    for replica, port in (("opsbot-1", 3001), ("opsbot-2", 3002)):
        assert services[replica]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[replica]["stop_grace_period"] == "30s"
        assert [p["published"] for p in services[replica]["ports"]] == [port]
    assert services["migrate"]["command"] == ["migrate"]
    assert "SLACK_BOT_TOKEN" not in (compose_dir / "compose.yaml").read_text()  # secrets come from .env only
