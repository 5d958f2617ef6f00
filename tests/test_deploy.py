"""/deploy and /rollback of a container, end to end over signed Slack HTTP, Socket Mode and the console.

The images come from this checkout's real registry (tests/deploy/registry.sh, started by
scripts/test-env.sh): v1 and v2 answer /cgi-bin/health with 200, v3-broken with 500 and logs an
ERROR line holding a password. Each test runs its own app container on the real Engine (host
network, a free port, labelled opsbot.test=1, removed afterwards) with many properties set on
the container itself, so a deploy that lost one would show.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.request
import uuid
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from conftest import PG_USER, ROOT, fleet, free_port, wait_until
from drivers import drive  # noqa: F401 (fixture)

from action_helpers import state_of, trail
from bot.deploy import service as record

# Set on the container, not in the image: each must survive a deploy.
OWN_ENV = {"FOO": "bar", "SECRET_TOKEN": "tok-123"}
OWN_LABELS = {"team": "payments", "opsbot.test": "1"}


def registry() -> dict[str, str]:
    path = ROOT / "tests" / ".fleet.deploy.env"
    if not path.exists():
        pytest.fail("tests/.fleet.deploy.env is missing: run scripts/test-env.sh (make test does) to start the registry.")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


REPOSITORY = registry()["OPSBOT_DEPLOY_REPOSITORY"]


class App:
    """The app container a test deploys to; it and every container made from it go at teardown."""

    def __init__(self, client: docker.DockerClient, tmp: Path):
        self.client, self.tag = client, uuid.uuid4().hex[:10]
        self.name = f"opsbot-test-deploy-{self.tag}"
        self.port = free_port()
        self.bind = tmp / "srv"
        self.bind.mkdir()

    def start(self, version: str, command: str = "exec /bin/serve", **extra_env) -> None:
        self.client.containers.run(
            f"{REPOSITORY}:{version}",
            ["sh", "-c", command],
            name=self.name,
            detach=True,
            network_mode="host",
            environment={"PORT": str(self.port), **OWN_ENV, **extra_env},
            labels={**OWN_LABELS, "opsbot.test.deploy": self.tag},
            volumes={f"{self.name}-data": {"bind": "/data", "mode": "rw"}, str(self.bind): {"bind": "/srv", "mode": "ro"}},
            restart_policy={"Name": "unless-stopped"},
            healthcheck={"test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{self.port}/cgi-bin/health"],
                         "interval": 2_000_000_000, "retries": 3},
            user="root",
            working_dir="/tmp",
        )
        self.wait_version(version)

    def inspect(self, name: str | None = None) -> dict:
        return self.client.api.inspect_container(name or self.name)

    def version(self, port: int | None = None) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.port}/version", timeout=2) as response:
                return response.read().decode().strip()
        except OSError:
            return None

    def wait_version(self, version: str, port: int | None = None, timeout: float = 20) -> None:
        import time

        deadline = time.monotonic() + timeout
        while self.version(port) != version:
            assert time.monotonic() < deadline, f"{self.name} does not serve {version}"
            time.sleep(0.1)

    def image_id(self, version: str) -> str:
        """The id of REPOSITORY:version, pulled again when an earlier test's deploy pruned it from the Engine."""
        try:
            return self.client.api.inspect_image(f"{REPOSITORY}:{version}")["Id"]
        except docker.errors.ImageNotFound:
            self.client.images.pull(REPOSITORY, tag=version)
            return self.client.api.inspect_image(f"{REPOSITORY}:{version}")["Id"]

    def cleanup(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"opsbot.test.deploy={self.tag}"}):
            container.remove(force=True, v=True)
        for image in self.client.images.list(name="opsbot-kept/app"):
            for tag in image.tags:
                try:
                    self.client.api.remove_image(tag)
                except docker.errors.APIError:
                    pass  # another test's container still runs it
        try:
            self.client.api.remove_volume(f"{self.name}-data", force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def app(tmp_path):
    client = docker.from_env(timeout=60)
    made = App(client, tmp_path)
    yield made
    made.cleanup()
    client.close()


def deploy_config(app: App, *, deploy: dict | None = None, databases: dict | None = None, backups: Path | None = None,
                  actions: dict | None = None, checks_url: str | None = None) -> str:
    body = {
        "version": 1,
        "services": {
            "app": {
                "container": app.name,
                "owners": ["ops"],
                "deploy": {"image": REPOSITORY, "versions": "v[0-9]+(-[a-z]+)?", **(deploy or {})},
                "checks": [{"kind": "http", "url": checks_url or f"http://127.0.0.1:{app.port}/cgi-bin/health"}, {"kind": "container"}],
            }
        },
        "roles": {"ops": {"users": ["UOPS1", "UOPS2", "UOPS3"]}},
        "actions": {
            "deploy": {"kind": "deploy", "timeout": "60s", "stop_grace": "1s", "verify": {"deadline": "6s", "interval": "250ms"}},
            "rollback": {"kind": "rollback", "stop_grace": "1s", "verify": {"deadline": "6s", "interval": "250ms"}},
            **(actions or {}),
        },
    }
    if databases:
        body["databases"] = databases
        body["backups"] = {"directory": str(backups)}
    return yaml.safe_dump(body, sort_keys=False)


# --------------------------------------------------------------------------- helpers


def one_sentence(d, seen, expected: str) -> str:
    assert seen.ephemeral is (None if d.name == "console" else True), seen
    line = seen.one_line
    assert expected in line, line
    return line


async def request(d, text: str, command: str = "/deploy", user: str = "UOPS1") -> tuple[int, str]:
    """A guarded request: (its id, the plan as approvers read it)."""
    seen = await d.command(user, command, text)
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    return int(match.group(1)), d.messages()[-1].now.words


async def approve(d, request_id: int, user: str = "UOPS2") -> tuple[str, str]:
    """(what the approver sees, the request's message as everyone sees it now)."""
    seen = await d.click(user, "action.approve", str(request_id))
    await d.settle()
    [message] = [m for m in d.messages() if f"request #{request_id}" in m.versions[0].words]
    return seen.words, message.now.words


def kept_properties(info: dict) -> dict:
    """What a deploy must carry over: everything set on the container rather than in its image."""
    config, host = info["Config"], info["HostConfig"]
    env = dict(e.split("=", 1) for e in config["Env"])
    return {
        "name": info["Name"],
        "env": {k: env.get(k) for k in ("PORT", *OWN_ENV)},
        "labels": {k: config["Labels"].get(k) for k in (*OWN_LABELS, "opsbot.test.deploy")},
        "mounts": sorted((m["Type"], m.get("Name") or m["Source"], m["Destination"], m["RW"]) for m in info["Mounts"]),
        "restart": host["RestartPolicy"]["Name"],
        "network": host["NetworkMode"],
        "healthcheck": config["Healthcheck"],
        "cmd": config["Cmd"],
        "user": config["User"],
        "workdir": config["WorkingDir"],
    }


# --------------------------------------------------------------------------- deploy, history, rollback


async def test_deploy_keeps_every_property_then_history_then_rollback_needs_no_registry(drive, app):
    app.start("v1")
    before = app.inspect()
    d = await drive(deploy_config(app))

    request_id, plan = await request(d, "app v2")
    assert f"pull {REPOSITORY}:v2 from its registry" in plan
    assert f"stop {app.name} ({before['Id'][:12]}, v1) with 1 s grace and keep it aside" in plan
    assert f"create {app.name} from {REPOSITORY}:v2 with everything the old one had" in plan
    assert "if that fails, remove the new container and start the old one again (v1" in plan
    assert app.inspect()["Id"] == before["Id"]  # nothing before the approval

    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen, done
    assert f"pulled {REPOSITORY}:v2" in done and "app: v2 started in" in done and "(2 checks pass)" in done
    after = app.inspect()
    assert after["Id"] != before["Id"] and after["Config"]["Image"] == app.image_id("v2")  # created from the id pulled, not the tag
    assert after["Image"] == app.image_id("v2")
    assert kept_properties(after) == kept_properties(before)
    env = dict(e.split("=", 1) for e in after["Config"]["Env"])
    assert env["APP_VERSION"] == "v2"  # the image's own environment follows the new image
    assert after["Config"]["Labels"]["opsbot.test.app.version"] == "v2"
    assert app.version() == "v2"
    assert not [c for c in app.client.containers.list(all=True, filters={"label": f"opsbot.test.deploy={app.tag}"}) if c.id == before["Id"]]
    [row] = await record.history(d.bot.db, "app")
    assert (row.operation, row.from_version, row.to_version, row.state) == ("deploy", "v1", "v2", "success")
    assert (row.from_image, row.to_image, row.request_id) == (before["Image"], app.image_id("v2"), request_id)
    assert row.requested_by == "UOPS1" and row.approved_by == ["UOPS2"] and row.finished_at is not None
    assert await trail(d.bot, "app", request_id) == ["requested", "approved", "running", "succeeded"]

    seen = await d.command("UOPS3", "/deploy", "history app")
    assert f"#{row.id} deploy v1 -> v2 by @UOPS1, approved by @UOPS2," in seen.words and ": succeeded" in seen.words

    # The rollback uses the kept image (opsbot tagged it): the v1 tag can go from the Engine and it still works.
    assert f"opsbot-kept/app:{before['Image'][7:19]}" in app.client.api.inspect_image(before["Image"])["RepoTags"]
    app.client.api.remove_image(f"{REPOSITORY}:v1")
    try:
        request_id, plan = await request(d, "app", command="/rollback")
        assert f"create {app.name} from v1 (kept image {before['Image'][7:19]}) with everything the old one had" in plan
        seen, done = await approve(d, request_id)
        assert f"Request #{request_id} succeeded." in seen, done
        rolled = app.inspect()
        assert rolled["Image"] == before["Image"] and kept_properties(rolled) == kept_properties(before)
        assert app.version() == "v1"
        newest = (await record.history(d.bot.db, "app"))[0]
        assert (newest.operation, newest.from_version, newest.to_version, newest.state) == ("rollback", "v2", "v1", "success")
        # A named earlier version: its kept image, from the record.
        _, plan = await request(d, "app v2", command="/rollback")
        assert f"create {app.name} from v2 (kept image {app.image_id('v2')[7:19]})" in plan
        seen = await d.command("UOPS1", "/rollback", "app v9")
        one_sentence(d, seen, "opsbot has no record of app running v9, so it has no image to go back to; nothing was requested.")
    finally:
        app.client.images.pull(REPOSITORY, tag="v1")


async def test_a_broken_version_is_rolled_back_automatically_with_the_failures_and_redacted_logs(drive, app):
    app.start("v2")
    before = app.inspect()
    d = await drive(deploy_config(app))
    request_id, _ = await request(d, "app v3-broken")
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} failed." in seen, done
    assert "app: not healthy after" in done and "HTTP 500" in done
    assert "app: rolled back to v2 automatically (the old container" in done and "(2 checks pass)" in done
    assert "ERROR app v3-broken: migration 42 missing" in done  # the broken version's last log lines...
    assert "hunter2secret" not in done  # ...redacted
    after = app.inspect()
    assert after["Id"] == before["Id"] and after["State"]["Running"] and app.version() == "v2"
    assert kept_properties(after) == kept_properties(before)
    [row] = await record.history(d.bot.db, "app")
    assert (row.to_version, row.state, row.from_version) == ("v3-broken", "rolled_back", "v2")
    assert await state_of(d.bot, request_id) == "failed"
    seen = await d.command("UOPS1", "/deploy", "history app")
    assert "deploy v2 -> v3-broken by @UOPS1" in seen.words and "failed, rolled back" in seen.words


async def test_bad_versions_and_services_get_one_sentence_and_nothing_is_requested(drive, app):
    app.start("v1")
    d = await drive(deploy_config(app))
    seen = await d.command("UOPS1", "/deploy", "app 1.0;rm")
    one_sentence(d, seen, "Version '1.0;rm' does not match the service's declared versions (v[0-9]+(-[a-z]+)?); nothing was requested.")
    seen = await d.command("UOPS1", "/deploy", "app v1")
    one_sentence(d, seen, "app already runs v1; nothing was requested.")
    seen = await d.command("UOPS1", "/deploy", "app")
    one_sentence(d, seen, "Missing <version>.")
    seen = await d.command("UOPS1", "/rollback", "app")
    one_sentence(d, seen, "opsbot has no record of the version app ran before v1; name one: /rollback app <version>.")
    seen = await d.command("UOPS1", "/deploy", "history app")
    assert "opsbot has deployed nothing to app yet." in seen.words
    assert await record.history(d.bot.db, "app") == []


async def test_two_people_deploying_at_once_get_one_deploy_and_one_locked_answer(drive, app):
    app.start("v1")
    d = await drive(deploy_config(app))
    if d.name == "console":  # one terminal prints one answer at a time: the second person types while the first waits
        first, second = await d.command("UOPS1", "/deploy", "app v2"), await d.command("UOPS2", "/deploy", "app v2")
    else:
        first, second = await asyncio.gather(d.command("UOPS1", "/deploy", "app v2"), d.command("UOPS2", "/deploy", "app v2"))
    answers = sorted([first.words, second.words], key=lambda words: "locked" in words)
    assert re.search(r"Request #\d+ is posted and waits for approval\.", answers[0]), answers
    assert "app is locked by request #" in answers[1] and "(/deploy by @UOPS" in answers[1], answers
    assert len([m for m in d.messages() if "/deploy app: request #" in m.versions[0].words]) == 1


# --------------------------------------------------------------------------- backup first


def database(name: str) -> dict:
    return {"dsn": f"postgresql://{PG_USER}@127.0.0.1:5432/{name}", "owners": ["ops"]}


# /bin/migrate is the release's own (tests/deploy/migrate.sh, its release baked into each image): what it
# prints and writes says which image it ran from.
MIGRATE_JOB = {"service": "app", "command": ["/bin/migrate"], "dry_run": ["/bin/migrate", "--plan"], "approval": {"approvals": 0}}


def deploy_config_with_jobs(app: App, tmp_path: Path, database_name: str = "test") -> str:
    body = yaml.safe_load(deploy_config(app, deploy={"backup_first": "appdb", "migrate": "migrate"}, databases={"appdb": database(database_name)},
                                        backups=tmp_path / "backups"))
    body["jobs"] = {"migrate": MIGRATE_JOB}
    return yaml.safe_dump(body, sort_keys=False)


def one_offs(app: App) -> list:
    """Containers a migration ran in: opsbot's one-off containers of this test's app (they carry opsbot's label, not the service's)."""
    for _ in range(50):
        try:
            return [c for c in app.client.containers.list(all=True, filters={"label": "opsbot.deploy.one-off"}) if c.name.startswith(app.name)]
        except docker.errors.NotFound:  # one was removed between the list and its inspect (a plan's dry run ended): look again
            continue
    raise AssertionError("one-off containers kept vanishing while being listed")


async def test_backup_first_then_the_new_releases_migration_from_its_image_then_the_new_version(drive, app, tmp_path):
    app.start("v1")
    d = await drive(deploy_config_with_jobs(app, tmp_path))
    request_id, plan = await request(d, "app v2")
    v2 = app.image_id("v2")
    steps = ("back up database appdb (pg_dump, verified)", f"pull {REPOSITORY}:v2 from its registry (it must still be image {v2[7:19]}",
             f"run migration migrate from {REPOSITORY}:v2 (image {v2[7:19]}) in a one-off container with {app.name}'s environment, mounts and network",
             "stop")
    for number, step in enumerate(steps, 1):
        assert f"{number}. app: {step}" in plan, plan  # runbook 002's order: backup, pull, migrate, the new version
    # The dry run in the approval is the NEW release's, run with the service container's own environment, redacted.
    assert "release v2: would apply 0002_v2_marker" in plan and "release v2: FOO=bar" in plan, plan
    assert "release v1" not in plan and "hunter2secret" not in plan
    assert one_offs(app) == []  # the dry run's container was removed
    assert app.inspect()["Config"]["Image"] == f"{REPOSITORY}:v1"  # nothing changed before the approval
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen, done
    assert re.search(r"appdb: backup #\d+ .* verified", done) and "migration migrate: exit 0" in done and f"(image {v2[7:19]})" in done, done
    assert "release v2: applied 0002_v2_marker" in done and "hunter2secret" not in done  # its output, kept and redacted
    assert app.version() == "v2"
    applied = app.client.containers.get(app.name).exec_run(["cat", "/data/migrations.log"]).output.decode()
    assert applied == "release v2 applied 0002_v2_marker\n"  # once, by v2's migration, in the volume the service keeps
    assert one_offs(app) == []
    from bot.backup.service import list_backups

    [backup] = await list_backups(d.bot.db, "appdb")
    assert backup.verified and backup.label == "before a deploy"


async def test_the_new_container_is_the_image_pulled_even_when_the_tag_moves_after_the_pull(drive, app):
    # A tag of this test's own, pushed to the registry as v2's image; moved locally to v1's image while the
    # (slow) migration runs, after the pull step got and checked the id.
    for version in ("v1", "v2"):  # another test's teardown may have untagged them (App.cleanup)
        app.client.images.pull(REPOSITORY, tag=version)
    retagged, v2 = "v8-retagged", app.image_id("v2")
    app.client.api.tag(v2, REPOSITORY, retagged)
    app.client.images.push(REPOSITORY, tag=retagged)
    app.start("v1", MIGRATE_SLEEP="3")
    body = yaml.safe_load(deploy_config(app, deploy={"migrate": "migrate"}))
    body["jobs"] = {"migrate": MIGRATE_JOB}
    d = await drive(yaml.safe_dump(body, sort_keys=False))
    try:
        request_id, _ = await request(d, f"app {retagged}")
        approving = asyncio.create_task(approve(d, request_id))
        await wait_until(lambda: any(c.status == "running" and "migrate-plan" not in c.name for c in one_offs(app)), timeout=60)
        app.client.api.tag(app.image_id("v1"), REPOSITORY, retagged)
        seen, done = await approving
        assert f"Request #{request_id} succeeded." in seen, done
        after = app.inspect()
        assert after["Image"] == v2 and app.version() == "v2"
        [row] = await record.history(d.bot.db, "app")
        assert (row.state, row.to_image) == ("success", v2)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            app.client.api.remove_image(f"{REPOSITORY}:{retagged}")


async def test_a_migration_that_runs_past_its_timeout_is_stopped_and_nothing_changes(drive, app, tmp_path):
    app.start("v1", MIGRATE_SLEEP="120")
    before = app.inspect()
    body = yaml.safe_load(deploy_config(app, deploy={"migrate": "migrate"}))
    body["jobs"] = {"migrate": {**MIGRATE_JOB, "timeout": "2s"}}
    d = await drive(yaml.safe_dump(body, sort_keys=False))
    request_id, plan = await request(d, "app v2")
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} failed." in seen, done
    assert "migration migrate: no exit within 2 s, so it was stopped and may be partly applied" in done, done
    assert "the deploy stopped before the new version started" in done and "release v2: FOO=bar" in done
    assert one_offs(app) == []
    after = app.inspect()
    assert after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"] and app.version() == "v1"
    [row] = await record.history(d.bot.db, "app")
    assert row.state == "failure"


async def test_a_failed_backup_stops_the_deploy_before_anything_changes(drive, app, tmp_path):
    app.start("v1")
    before = app.inspect()
    missing = f"opsbot_gone_{uuid.uuid4().hex[:8]}"
    d = await drive(deploy_config(app, deploy={"backup_first": "appdb"}, databases={"appdb": database(missing)}, backups=tmp_path / "backups"))
    request_id, _ = await request(d, "app v2")
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} failed." in seen, done
    assert "appdb: the backup failed" in done and "nothing on the service was changed" in done
    assert "pulled" not in done
    after = app.inspect()
    assert after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"] and app.version() == "v1"
    [row] = await record.history(d.bot.db, "app")
    assert row.state == "failure"


# --------------------------------------------------------------------------- app.yaml and the daily check


def test_a_deploy_must_name_what_exists_and_run_where_deploys_run():
    from bot.config.loader import ConfigError, parse_config

    text = """
version: 1
services:
  web:
    container: web
    deploy:
      image: registry.example/web
      backup_first: nodb
      migrate: nojob
      blue_green: {ports: {blue: 8081, green: 8082}, health_url: "http://127.0.0.1:{port}/health", switch: nosuch}
  worker:
    deploy: {image: registry.example/worker}
actions:
  deploy: {kind: docker_restart}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    said = str(info.value)
    assert "service 'web' backs up unknown database 'nodb' first" in said
    assert "service 'web' migrates with unknown job 'nojob'" in said
    assert "service 'web' switches with 'nosuch', which is not a declared http or docker_exec action" in said
    assert "service 'worker' declares a deploy, but deploys run on a container or a Kubernetes workload and it has neither" in said
    assert "action 'deploy' is used by its command, so it must have kind deploy" in said
    with pytest.raises(ConfigError) as info:
        parse_config("version: 1\nservices:\n  web:\n    container: web\n    deploy:\n      image: r/web\n"
                     "      blue_green: {ports: {blue: 1, green: 1}, health_url: 'http://x/{port}', switch: s}\n")
    assert "ports needs blue and green, on two different ports" in str(info.value)
    # The migration runs from the new image of the service deployed: its own job, and a container's.
    with pytest.raises(ConfigError) as info:
        parse_config("version: 1\nservices:\n  web:\n    container: web\n    deploy: {image: r/web, migrate: other}\n"
                     "  worker:\n    container: worker\n"
                     "  shop:\n    kubernetes: {namespace: shop, deployment: web}\n    deploy: {image: r/shop, migrate: shopjob}\n"
                     "targets:\n  kubernetes: {}\n"
                     "jobs:\n  other: {service: worker, command: [m], dry_run: [m, --plan]}\n"
                     "  shopjob: {service: shop, command: [m], dry_run: [m, --plan]}\n")
    said = str(info.value)
    assert "service 'web' migrates with job 'other' of service 'worker': a deploy's migration must be the service's own job" in said, said
    assert "service 'shop' declares migrate, which runs in a one-off container of the new image: containers only" in said, said


async def test_the_daily_check_lists_the_deploys_since_the_last_run(make_bot):
    from datetime import datetime, timedelta, timezone

    from bot.schedules.readings import deploy_items

    bot = await make_bot("version: 1\n")
    now = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    assert [(i.status, i.detail) for i in await deploy_items(bot, now - timedelta(days=1))] == [("ok", "none")]
    for hours, version, state in ((30, "v1", "success"), (5, "v2", "success"), (3, "v3", "rolled_back")):
        row = await record.open_deployment(bot.db, service="web", operation="deploy", platform="container", from_version="v0",
                                           to_version=version, from_image=None, to_image=None, request_id=None, requested_by="UOPS1",
                                           approved_by=["UOPS2"], channel="C1", now=now - timedelta(hours=hours))
        await record.move(bot.db, row, "pending", "in_progress")
        await record.move(bot.db, row, "in_progress", state, now=now - timedelta(hours=hours - 1))
    [item] = await deploy_items(bot, now - timedelta(days=1))
    assert item.status == "warning" and item.number == 2
    assert item.detail == ("web: deploy v0 -> v2, succeeded (2026-12-07 04:00 UTC); "
                           "web: deploy v0 -> v3, failed, rolled back (2026-12-07 06:00 UTC)")


# --------------------------------------------------------------------------- --mount (HostConfig.Mounts)


def run_in(app: App, container: str, argv: list[str]) -> int:
    """`docker exec` in `container`; its exit code (an exit code is never lost, a short output can be)."""
    made = app.client.api.exec_create(container, argv)
    app.client.api.exec_start(made)
    return app.client.api.exec_inspect(made)["ExitCode"]


def mounts(info: dict) -> list:
    return sorted((m["Type"], m.get("Name") or m["Source"], m["Destination"], m["RW"]) for m in info["Mounts"])


async def test_a_container_with_mount_flags_deploys_and_keeps_the_same_mounts(drive, app):
    """`--mount type=volume` (named and anonymous) and `--mount type=bind`, as Compose v2 makes them: the
    Engine refused the new container ("Duplicate mount point") when its volumes were also added as binds."""
    from docker.types import Mount

    app.client.containers.run(
        f"{REPOSITORY}:v1", ["sh", "-c", "exec /bin/serve"], name=app.name, detach=True, network_mode="host",
        environment={"PORT": str(app.port)}, labels={**OWN_LABELS, "opsbot.test.deploy": app.tag},
        mounts=[Mount("/data", f"{app.name}-data", type="volume"), Mount("/cache", None, type="volume"),
                Mount("/srv", str(app.bind), type="bind", read_only=True)],
    )
    app.wait_version("v1")
    before = app.inspect()
    [anonymous] = [m["Name"] for m in before["Mounts"] if m["Destination"] == "/cache"]
    assert run_in(app, before["Id"], ["sh", "-c", "echo kept > /cache/marker"]) == 0
    try:
        d = await drive(deploy_config(app))
        request_id, _ = await request(d, "app v2")
        seen, done = await approve(d, request_id)
        assert f"Request #{request_id} succeeded." in seen, done
        after = app.inspect()
        assert after["Id"] != before["Id"] and after["Image"] == app.image_id("v2") and app.version() == "v2"
        assert mounts(after) == mounts(before)  # the anonymous volume too: the same one
        assert not after["HostConfig"]["Binds"]
        assert [(m["Type"], m["Target"], m.get("ReadOnly", False)) for m in after["HostConfig"]["Mounts"]] == \
            [(m["Type"], m["Target"], m.get("ReadOnly", False)) for m in before["HostConfig"]["Mounts"]]
        assert run_in(app, after["Id"], ["grep", "-qx", "kept", "/cache/marker"]) == 0  # the anonymous volume's data
    finally:
        app.cleanup()
        try:
            app.client.api.remove_volume(anonymous, force=True)
        except docker.errors.NotFound:
            pass
