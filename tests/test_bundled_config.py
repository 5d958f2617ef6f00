"""The bundled app.yaml exercises everything: each command /help lists, driven through the console as a
newcomer would after `make fleet`, does something real, and none answers that nothing is configured.

The bundled file names the demo fleet `make fleet` starts (opsbot-test-web on port 18080,
opsbot-test-pgclient). `make test` starts this checkout's own fleet under a per-checkout prefix and
ports instead (tests/.fleet.env), so the test rewrites those names and ports before loading the file,
and nothing else, with three more rewrites for isolation:
- `web` becomes a copy of this checkout's fleet web container (same image, command and health check,
  its own name and free port), because the tour restarts it and other tests read the shared one;
- backups go to the test's own directory, not ./backups in the checkout;
- the data-retention job's demo table gets a name of its own, so parallel runs never share its rows.
"""
from __future__ import annotations

import io
import re
import time
import uuid
from pathlib import Path

import asyncpg
import docker
import pytest

from conftest import fleet, free_port, wait_until
from bot.transport.console import Console

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "app.yaml"
DEMO_WEB, DEMO_WEB_PORT, DEMO_PGCLIENT = "opsbot-test-web", "18080", "opsbot-test-pgclient"
DEMO_TABLE = "opsbot_demo_guest_sessions"
WEEKLY_SCRATCH = "opsbot_restore_test_test"  # where the weekly check restores database test (bot/schedules/weekly.py)
# Any way of saying a command has nothing to work on: the failure this test exists to catch.
UNCONFIGURED = re.compile(
    r"nothing is configured|not configured|no [a-z-]+(?: [a-z-]+)? (?:is |are )?configured|declares no|add (?:them|one) under",
    re.IGNORECASE,
)
# /deploy and /rollback pull an image from a registry; the deploy images live in this checkout's own
# registry on a per-checkout port (tests/deploy/registry.sh), which a bundled file cannot name, so the
# bundled app.yaml declares no deploy yet and the tour leaves these two out (tests/test_deploy*.py drive them).
NOT_IN_THE_BUNDLED_FILE = {"/deploy", "/rollback"}
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


@pytest.fixture
def web_copy(engine):
    """(name, port) of a private copy of the fleet's web container, serving on host networking like the original."""
    values = fleet()
    original = engine.containers.get(values["OPSBOT_FLEET_WEB"])
    config, port = original.attrs["Config"], str(free_port())
    old_port = values["OPSBOT_FLEET_WEB_PORT"]
    command = [part.replace(old_port, port) for part in config["Cmd"]]
    health = config.get("Healthcheck") or {}
    prefix_key, _, prefix = values["OPSBOT_FLEET_PREFIX_LABEL"].partition("=")
    label_key, _, label_value = values["OPSBOT_FLEET_LABEL"].partition("=")
    name = f"{values['OPSBOT_FLEET_PREFIX']}tour-web-{uuid.uuid4().hex[:8]}"
    copy = engine.containers.run(
        config["Image"], command, entrypoint=config.get("Entrypoint"), name=name, detach=True, network_mode="host",
        healthcheck={**health, "Test": [part.replace(old_port, port) for part in health.get("Test", [])]} if health else None,
        labels={label_key: label_value, prefix_key: prefix},  # scripts/test-env-down.sh removes it if this test dies
    )
    try:
        for _ in range(150):  # as `make fleet` leaves it: serving, and Docker's health check has passed
            copy.reload()
            if copy.attrs["State"].get("Health", {}).get("Status") == "healthy" or not health and copy.status == "running":
                break
            time.sleep(0.2)
        yield name, port
    finally:
        copy.remove(force=True)


def bundled_for_this_checkout(web: tuple[str, str], backups: Path, table: str) -> str:
    text = BUNDLED.read_text()
    for demo in (DEMO_WEB, DEMO_WEB_PORT, DEMO_PGCLIENT, "directory: backups\n", DEMO_TABLE):
        assert demo in text, f"app.yaml no longer names {demo!r}: update this test's rewrites"
    name, port = web
    text = text.replace(f"container: {DEMO_WEB}\n", f"container: {name}\n").replace(DEMO_WEB_PORT, port)
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


def help_commands(help_text: str) -> set[str]:
    return {match.group(1) for match in re.finditer(r"^(/[a-z]+)\b", help_text, re.MULTILINE)}


async def test_every_help_command_does_something_real_with_the_bundled_config(make_bot, web_copy, tmp_path, pg_admin):
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

        await tour.command("/audit web --since 1h", "/restart")

        driven = {line.split()[0] for line in tour.seen}
        assert listed - driven == NOT_IN_THE_BUNDLED_FILE, f"/help lists commands this tour never ran: {sorted(listed - driven)}"
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
