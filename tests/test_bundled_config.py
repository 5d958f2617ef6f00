"""The bundled app.yaml exercises everything: each command /help lists, driven through the console as a
newcomer would after `make fleet`, does something real, and none answers that nothing is configured.

The bundled file names the demo fleet `make fleet` starts (opsbot-test-web on port 18080,
opsbot-test-pgclient, the registry on 127.0.0.1:15000). `make test` starts this checkout's own fleet
and registry under a per-checkout prefix and ports instead (tests/.fleet.env, tests/.fleet.deploy.env),
so the test rewrites those names and ports before loading the file, and nothing else, with three more
rewrites for isolation:
- `web` becomes a copy of this checkout's fleet web container (same image, command and health check,
  its own name and free port), because the tour restarts it, deploys v2 onto it and rolls it back, and
  other tests read the shared one;
- backups go to the test's own directory, not ./backups in the checkout;
- the data-retention job's demo table gets a name of its own, so parallel runs never share its rows.

The console serves no HTTP (`opsbot start` without Slack tokens opens it, and only `opsbot serve`
listens), so the alert integration is driven through the server `opsbot serve` builds
(bot.transport.server.build_web_app) on the same bot: an alert posted there opens the incident that
/incident list then shows in the console.
"""
from __future__ import annotations

import io
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import docker
import docker.errors
import pytest
from aiohttp import web

from conftest import ROOT, fleet, free_port, wait_until
from bot.transport.console import Console
from bot.transport.server import build_web_app

BUNDLED = ROOT / "app.yaml"
DEMO_WEB, DEMO_WEB_PORT, DEMO_PGCLIENT = "opsbot-test-web", "18080", "opsbot-test-pgclient"
DEMO_REGISTRY = "127.0.0.1:15000"  # `make fleet`'s registry (OPSBOT_TEST_REGISTRY_PORT in the Makefile)
ALERT_TOKEN_ENV = "OPSBOT_DEMO_ALERT_TOKEN"
DEMO_TABLE = "opsbot_demo_guest_sessions"
WEEKLY_SCRATCH = "opsbot_restore_test_test"  # where the weekly check restores database test (bot/schedules/weekly.py)
# Any way of saying a command has nothing to work on: the failure this test exists to catch.
UNCONFIGURED = re.compile(
    r"nothing is configured|not configured|no [a-z-]+(?: [a-z-]+)? (?:is |are )?configured|declares no|add (?:them|one) under",
    re.IGNORECASE,
)
BUTTON = re.compile(r"\[(\d+)\] ([^\[\n]+?)(?=\s{2,}\[|\s*\(|\s*$)", re.MULTILINE)


@pytest.fixture
def pg_admin():
    """Run statements on the test PostgreSQL server (clean-up of what the tour made)."""

    async def run(*statements: str) -> None:
        connection = await asyncpg.connect(fleet()["OPSBOT_TEST_POSTGRES_DSN"])
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    return run


@pytest.fixture
def engine():
    client = docker.from_env()
    yield client
    client.close()


def deploy_registry() -> str:
    """host:port of this checkout's registry (tests/deploy/registry.sh), which holds the demo web's v1 and v2."""
    path = ROOT / "tests" / ".fleet.deploy.env"
    if not path.exists():
        pytest.fail("tests/.fleet.deploy.env is missing: run scripts/test-env.sh (make test does) to start the registry.")
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return values["OPSBOT_DEPLOY_REGISTRY"]


@pytest.fixture
def web_copy(engine):
    """(name, port) of a private copy of the fleet's web container, serving on host networking like the original.

    A deploy or rollback replaces the container with a new one carrying the same labels (a failed one
    leaves the old one parked under another name), so everything labelled with this copy's tag goes."""
    values = fleet()
    original = engine.containers.get(values["OPSBOT_FLEET_WEB"])
    config, port = original.attrs["Config"], str(free_port())
    old_port = values["OPSBOT_FLEET_WEB_PORT"]
    command = [part.replace(old_port, port) for part in config["Cmd"]]
    health = config.get("Healthcheck") or {}
    prefix_key, _, prefix = values["OPSBOT_FLEET_PREFIX_LABEL"].partition("=")
    label_key, _, label_value = values["OPSBOT_FLEET_LABEL"].partition("=")
    tag = uuid.uuid4().hex[:8]
    name = f"{values['OPSBOT_FLEET_PREFIX']}tour-web-{tag}"
    copy = engine.containers.run(
        config["Image"], command, entrypoint=config.get("Entrypoint"), name=name, detach=True, network_mode="host",
        healthcheck={**health, "Test": [part.replace(old_port, port) for part in health.get("Test", [])]} if health else None,
        # scripts/test-env-down.sh removes it if this test dies (by the prefix label)
        labels={label_key: label_value, prefix_key: prefix, "opsbot.test.tour": tag},
    )
    try:
        for _ in range(150):  # as `make fleet` leaves it: serving, and Docker's health check has passed
            copy.reload()
            if copy.attrs["State"].get("Health", {}).get("Status") == "healthy" or not health and copy.status == "running":
                break
            time.sleep(0.2)
        yield name, port
    finally:
        for made in engine.containers.list(all=True, filters={"label": f"opsbot.test.tour={tag}"}):
            made.remove(force=True)
        for image in engine.images.list(name="opsbot-kept/web"):  # what a deploy tagged for /rollback web
            for kept in [tag for tag in image.tags if tag.startswith("opsbot-kept/web:")]:  # not the image's other tags
                try:
                    engine.api.remove_image(kept)  # only the tag: the image keeps its own (the fleet's, the registry's)
                except docker.errors.APIError:
                    pass  # a parallel tour's container runs it


def served_version(port: str) -> str | None:
    """What the web copy's /version answers: a release of the demo web ships it; the fleet's own image does not."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=2) as response:
            return response.read().decode().strip()
    except urllib.error.HTTPError:
        return None


@pytest.fixture
async def alert_intake(monkeypatch):
    """start(bot) -> the base URL of the HTTP server `opsbot serve` builds, for the bot, with the demo token set
    and the bot's scheduler running, as serve runs it: an alert's announcement and auto-resolution are its jobs."""
    monkeypatch.setenv(ALERT_TOKEN_ENV, f"tour-{uuid.uuid4().hex}")
    runners = []

    async def start(bot) -> str:
        runner = web.AppRunner(build_web_app(bot), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        bot.scheduler.start()  # stopped by make_bot's bot.close()
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def bundled_for_this_checkout(web: tuple[str, str], backups: Path, table: str) -> str:
    text = BUNDLED.read_text()
    for demo in (DEMO_WEB, DEMO_WEB_PORT, DEMO_PGCLIENT, DEMO_REGISTRY, "directory: backups\n", DEMO_TABLE):
        assert demo in text, f"app.yaml no longer names {demo!r}: update this test's rewrites"
    name, port = web
    text = text.replace(f"container: {DEMO_WEB}\n", f"container: {name}\n").replace(DEMO_WEB_PORT, port)
    text = text.replace(DEMO_REGISTRY, deploy_registry())
    text = text.replace(DEMO_PGCLIENT, fleet()["OPSBOT_FLEET_PGCLIENT"])
    text = text.replace("directory: backups\n", f"directory: {backups}\n")
    return text.replace(DEMO_TABLE, table)


class Tour:
    """The console as a person at it: type a line, read what it printed since, press a button by its label."""

    def __init__(self, bot):
        self.out = io.StringIO()
        self.answers = io.StringIO()
        self.console = Console(bot, "UCONSOLE", self.answers, self.out, allow_impersonation=True)
        self.seen: dict[str, str] = {}

    async def type(self, line: str) -> str:
        start = len(self.out.getvalue())
        await self.console.handle_line(line)
        said = self.out.getvalue()[start:]
        if line.startswith("/"):
            self.seen[line] = said
        return said

    async def command(self, line: str, expect: str) -> str:
        said = await self.type(line)
        assert expect in said, f"{line}\n{said}"
        assert not UNCONFIGURED.search(said), f"{line} answered that something is not configured:\n{said}"
        return said

    def button(self, label: str) -> str:
        """The number of the newest button with this label printed so far."""
        found = [number for number, shown in BUTTON.findall(self.out.getvalue()) if shown.strip() == label]
        assert found, f"no {label} button was printed:\n{self.out.getvalue()[-3000:]}"
        return found[-1]

    async def press(self, label: str, as_user: str, typed: str | None = None) -> str:
        await self.type(f"as {as_user}")
        if typed is not None:  # a typed confirmation is read from standard input at its prompt
            self.answers.seek(0)
            self.answers.truncate()
            self.answers.write(typed + "\n")
            self.answers.seek(0)
        said = await self.type(self.button(label))
        await self.type("as UCONSOLE")
        return said

    def mark(self) -> int:
        return len(self.out.getvalue())

    async def eventually(self, text: str, since: int, timeout: float = 90) -> None:
        """Wait until `text` is printed after position `since` (work that goes on after a button is pressed)."""
        await wait_until(lambda: text in self.out.getvalue()[since:], timeout=timeout)


async def _resolved(tour: Tour, incident: str) -> bool:
    """The alert's resolution auto-resolved its incident (route auto_resolve): it left /incident list."""
    return incident not in await tour.type("/incident list")


def help_commands(help_text: str) -> set[str]:
    return {match.group(1) for match in re.finditer(r"^(/[a-z]+)\b", help_text, re.MULTILINE)}


async def test_every_help_command_does_something_real_with_the_bundled_config(make_bot, web_copy, alert_intake, tmp_path, pg_admin):
    table = f"opsbot_demo_guest_sessions_{uuid.uuid4().hex[:8]}"
    scratch = f"opsbot_tour_{uuid.uuid4().hex[:8]}"
    bot = await make_bot(bundled_for_this_checkout(web_copy, tmp_path / "backups", table))
    tour = Tour(bot)
    try:
        listed = help_commands(await tour.command("/help", "Commands you can run"))

        await tour.command("/health", "Health: ")
        await tour.command("/health web database cache", "Health: OK")

        await tour.command("/restart web", "Waiting for approval")
        since = tour.mark()
        await tour.press("Approve", "UOPS2")
        await tour.eventually("web: restarted in", since)

        await tour.command("/logs web --tail 20", "listening on")

        # Runbook 002's deploy: a backup first, v2 from the registry, verified; then the history, and back.
        web_name, web_port = web_copy
        said = await tour.command("/deploy web v2", "Waiting for approval")
        assert "web: back up database test (pg_dump, verified)" in said, said
        assert f"web: pull {deploy_registry()}/opsbot-test/web:v2 from its registry" in said, said
        # The fleet's web runs an image no deploy recorded: it is named once, as "image <id>".
        assert re.search(r"start the old one again \(image [0-9a-f]{12}: no registry needed\)", said), said
        since = tour.mark()
        await tour.press("Approve", "UOPS2")
        await tour.eventually("web: v2 started in", since, timeout=180)
        assert served_version(web_port) == "v2"
        await tour.command("/deploy history web", "-> v2 by @UCONSOLE, approved by @UOPS2")
        await tour.command("/rollback web", "Waiting for approval")
        since = tour.mark()
        await tour.press("Approve", "UOPS2")
        await tour.eventually("started in", since, timeout=120)
        assert served_version(web_port) is None  # the fleet's own image again: it ships no /version
        said = await tour.command("/deploy history web", "rollback v2 -> ")
        assert said.count(": succeeded") == 2, said

        await tour.command("/run", "connections")
        since = tour.mark()
        await tour.command("/run connections", "request #")
        await tour.eventually("exit 0", since)

        await tour.command("/job", "data-retention")
        await tour.command("/job data-retention --dry-run", "would_delete")
        await tour.command("/job data-retention", "Waiting for approval")
        since = tour.mark()
        await tour.press("Approve", "UOPS2")
        await tour.eventually("DELETE 3", since)

        await tour.command("/db status", "connections")
        await tour.command("/db test tables", "")
        said = await tour.command("/backup test --label tour", "verified")
        backup_id = re.search(r"backup #(\d+)", said).group(1)
        await tour.command("/backup list", f"#{backup_id}")
        await tour.command(f"/restore {backup_id} --into {scratch}", "Waiting for approval")
        await tour.press("Approve", "UOPS2", typed=scratch)
        since = tour.mark()
        await tour.press("Approve", "UOPS3", typed=scratch)
        await tour.eventually(f"Restored backup #{backup_id}", since, timeout=120)

        await tour.command("/cache status", "memory")
        await tour.command("/cache queues", "queues:default")

        await tour.command("/oncall", "primary")
        await tour.command("/schedule", "daily")
        since = tour.mark()
        await tour.command("/schedule run daily", "daily")
        await tour.eventually("Daily check", since)
        since = tour.mark()
        await tour.command("/schedule run weekly", "weekly")
        await tour.eventually("Weekly check", since, timeout=120)
        details = await tour.type(tour.button("Details"))  # the weekly restore test, into the scratch database
        assert f"restore test of test: backup #{backup_id} restored into {WEEKLY_SCRATCH}" in details, details
        await tour.command("/schedule run monthly", "monthly")

        await tour.command("/maintenance start 30m web \"bundled-config tour\"", "web")
        await tour.command("/maintenance list", "bundled-config tour")
        await tour.command("/maintenance end", "ended")

        said = await tour.command('/incident open P1 "web is down" --service web --playbook application-down', "Application Down (runbook 004)")
        number = re.search(r"Opened INC-(\d+) \(P1\)", said).group(1)
        assert re.search(r"\(direct message to @U(CONSOLE|OPS2|OPS3)\)", said), said  # the on-call of primary is paged
        await tour.command(f"/incident ack {number}", "Acknowledged")
        await tour.command(f"/incident update {number} restarted web; watching it", "restarted web")
        await tour.command(f"/incident resolve {number} restarted web", "Resolved")
        await tour.command(f"/incident postmortem {number}", "Root")
        await tour.command("/incident list --all", "web is down")

        # An alert in, as a monitor would send it to `opsbot serve`: it opens an incident on web with its playbook.
        base = await alert_intake(bot)
        since = tour.mark()
        alert = {"id": "tour-web-500", "title": "web answers 500 on /health", "status": "firing", "severity": "critical",
                 "service": "web", "description": "3 of 3 probes failed"}
        token = {"Authorization": f"Bearer {os.environ[ALERT_TOKEN_ENV]}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/alerts/demo", json=alert, headers={"Authorization": "Bearer wrong"}) as answer:
                assert answer.status == 401, await answer.text()
            async with session.post(f"{base}/alerts/demo", json=alert, headers=token) as answer:
                assert answer.status == 200, await answer.text()
                [alerted] = (await answer.json())["incidents"]
        said = await tour.command("/incident list", "web answers 500 on /health")
        assert alerted in said and "P1" in said, said
        await tour.eventually("Application Down (runbook 004)", since, timeout=60)  # announced, the route's playbook attached
        await tour.command(f"/incident show {alerted.removeprefix('INC-')}", "firing · web answers 500 on /health")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/alerts/demo", json={**alert, "status": "resolved"}, headers=token) as answer:
                assert answer.status == 200, await answer.text()
        await wait_until(lambda: _resolved(tour, alerted), timeout=60, interval=1)

        await tour.command("/audit web --since 1h", "/restart")

        driven = {line.split()[0] for line in tour.seen}
        assert not listed - driven, f"/help lists commands this tour never ran: {sorted(listed - driven)}"
    finally:
        await pg_admin(f'DROP TABLE IF EXISTS "{table}"', f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)',
                       f'DROP DATABASE IF EXISTS "{WEEKLY_SCRATCH}" WITH (FORCE)')
        print(tour.out.getvalue())  # shown when the test fails: the whole session as a person saw it


def test_the_unconfigured_pattern_catches_the_answers_it_exists_for():
    for answer in ("No on-call rotations are configured; add them under oncall: in app.yaml.",
                   "app.yaml declares no schedules.", "app.yaml declares no jobs.", "Nothing is configured for /cache.",
                   "web has no deploy configured."):
        assert UNCONFIGURED.search(answer), answer
    for answer in ("memory 1.7 MB (no maxmemory)", "Health: OK (5 ok)", "retention deleted nothing"):
        assert not UNCONFIGURED.search(answer), answer
