"""An opsbot killed mid-deploy: another process on the same database finishes the deploy from its record.

The deploy runs in a real `opsbot shell` process on PostgreSQL (piped standard input, two people
at one terminal with --allow-impersonation), which is killed with SIGKILL at a chosen step, so
nothing of it runs afterwards. A second Bot on the same database then runs the recovery job as
`opsbot serve` would (a scheduler job, claimed once). The lease the dead process held is aged in
the database rather than waited for.
"""
from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from sqlalchemy import update

from conftest import PG_ADMIN_DSN, PG_USER, ROOT, free_port, wait_until
from drivers import drive  # noqa: F401 (fixture)
from test_deploy import MIGRATE_JOB, App, app, approve, deploy_config, one_offs, request  # noqa: F401 (app: fixture)
from test_deploy_blue_green import front  # noqa: F401 (fixture)
from test_deploy_k8s import IMAGE, image_of, k8s_deploy_config, kubeconfig  # noqa: F401 (kubeconfig: fixture)

from action_helpers import RecordingMessenger, ask, everything, lock_of, request_id_of
from bot.action import service as requests
from bot.activity import Activity
from bot.deploy import service as record
from bot.deploy.models import Deployment
from bot.deploy.recovery import RECOVER
from bot.deploy.run import LEASE, RENEW_EVERY, agreed_time, hold_lease
from bot.migrate import upgrade_async
from bot.schedule import JobState
from bot.schedule import service as jobs
from bot.storage import utcnow


@pytest_asyncio.fixture
async def pg_database_url():
    """A PostgreSQL database of this test's own (the session's is shared, and every test here deploys a service named app)."""
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    name = f"opsbot_deploy_recovery_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"
        await upgrade_async(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class KilledShell:
    """`opsbot shell` as a separate process: lines typed into it, then killed without warning."""

    def __init__(self, config_path, database_url: str):
        self.config_path, self.database_url, self.process = config_path, database_url, None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REDIS_URL", "OPSBOT_"))}
        env.update({"DATABASE_URL": self.database_url, "PYTHONPATH": str(ROOT)})
        self.process = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "python"), "-m", "bot.cli", "shell", "--as", "UOPS1", "--allow-impersonation",
            "--config", str(self.config_path), cwd=self.config_path.parent, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )

    async def type(self, *lines: str) -> None:
        self.process.stdin.write("".join(line + "\n" for line in lines).encode())
        await self.process.stdin.drain()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def shells():
    made = []

    def factory(config_path, database_url):
        made.append(KilledShell(config_path, database_url))
        return made[-1]

    yield factory
    for shell in made:
        await shell.kill()


async def deploy_then_kill(shell: KilledShell, version: str, step_reached, service: str = "app") -> None:
    """/deploy <service> <version> asked by UOPS1 and approved by UOPS2 in the shell; SIGKILL once `step_reached()` holds."""
    await shell.start()
    await shell.type(f"/deploy {service} {version}", "as UOPS2", "1")
    await wait_until(step_reached, timeout=60, interval=0.05)
    await shell.kill()


async def interrupted_row(bot, service: str = "app") -> Deployment:
    [row] = await record.history(bot.db, service)
    assert row.state == "in_progress" and row.lease_until is not None, (row.state, row.phase)
    # The dead process's lease runs out: aged in the database, not waited for.
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(Deployment).where(Deployment.id == row.id).values(lease_until=utcnow().replace(year=2000)))
    return row


async def recover(bot) -> None:
    """The recovery job as serve runs it: due now, claimed and run by this bot's scheduler."""
    key = f"{RECOVER}:test-{uuid.uuid4().hex}"
    await bot.scheduler.enqueue(RECOVER, key, bot.scheduler.clock.now())
    assert await bot.scheduler.run_due() >= 1
    job = await jobs.get(bot.db, key)
    assert (job.state, job.error) == (JobState.done, "")


async def second_bot(make_bot, config_text: str, database_url: str):
    """Another opsbot on the same database, with the console's messages and the activity feed recorded."""
    bot = await make_bot(config_text, database_url=database_url)
    bot.messengers["console"] = RecordingMessenger()
    heard: list[Activity] = []

    async def listen(activity: Activity) -> None:
        heard.append(activity)

    bot.activity.subscribe(listen)
    return bot, heard


def running(app: App) -> dict | None:
    try:
        return app.inspect()
    except Exception:
        return None


async def test_killed_between_replace_and_verify_puts_the_previous_container_back(make_bot, pg_database_url, app, shells, tmp_path):
    app.start("v2")
    before = app.inspect()
    config_text = deploy_config(app)
    config_path = tmp_path / "app.yaml"
    config_path.write_text(config_text)
    broken = app.image_id("v3-broken")

    def replaced() -> bool:  # the new (broken) container runs under the service's name; verification is under way
        info = running(app)
        return bool(info and info["Image"] == broken and info["State"]["Running"])

    await deploy_then_kill(shells(config_path, pg_database_url), "v3-broken", replaced)
    parked = app.client.api.inspect_container(before["Id"])
    assert parked["Name"] == f"/{app.name}-previous-{before['Id'][:12]}" and not parked["State"]["Running"]

    bot, heard = await second_bot(make_bot, config_text, pg_database_url)
    row = await interrupted_row(bot)
    assert row.phase == "change"
    request = await requests.get(bot.db, row.request_id)
    assert request.state == "running"  # what the dead process left: the service still locked
    await recover(bot)

    after = app.inspect()
    assert after["Id"] == before["Id"] and after["State"]["Running"] and app.version() == "v2"
    leftovers = app.client.containers.list(all=True, filters={"label": f"opsbot.test.deploy={app.tag}"})
    assert [c.id for c in leftovers] == [before["Id"]]  # the half-made v3-broken container is gone, nothing parked
    [row] = await record.history(bot.db, "app")
    said = "opsbot was interrupted during the deploy of app to v3-broken, so it put v2 back"
    assert row.state == "rolled_back" and row.finished_at is not None and row.detail.startswith(said), row.detail
    assert "(2 checks pass)" in row.detail
    request = await requests.get(bot.db, row.request_id)
    assert request.state == "failed" and request.result == said + "."
    assert await lock_of(bot, "app") is None
    [(_, post)] = bot.messengers["console"].posted.items()
    assert everything(post).startswith(f"Request #{request.id} (/deploy app): {said}.")
    await wait_until(lambda: any(a.kind == "deploy" for a in heard))
    [deploy] = [a for a in heard if a.kind == "deploy"]
    assert deploy.text == f"deploy of app to v3-broken: {said}" and deploy.data["state"] == "rolled_back"

    await recover(bot)  # a second pass finds nothing more to do
    assert [r.state for r in await record.history(bot.db, "app")] == ["rolled_back"]
    # The service takes a new deploy.
    assert request_id_of(await bot.handle(ask("UOPS1", "app v1", command="deploy")))


async def test_killed_during_the_migration_changes_nothing_and_removes_its_container(make_bot, pg_database_url, app, shells, tmp_path):
    app.start("v1", MIGRATE_SLEEP="60")
    before = app.inspect()
    body = yaml.safe_load(deploy_config(app, deploy={"migrate": "migrate"}))
    body["jobs"] = {"migrate": MIGRATE_JOB}
    config_text = yaml.safe_dump(body, sort_keys=False)
    config_path = tmp_path / "app.yaml"
    config_path.write_text(config_text)

    def migrating() -> bool:  # the one-off container of the approved image runs the (slow) migration
        return any(c.status == "running" and "migrate-plan" not in c.name for c in one_offs(app))

    await deploy_then_kill(shells(config_path, pg_database_url), "v2", migrating)
    bot, heard = await second_bot(make_bot, config_text, pg_database_url)
    row = await interrupted_row(bot)
    assert (row.phase, row.progress) == ("prepare", {"step": "migrate"})
    await recover(bot)

    assert one_offs(app) == []
    after = app.inspect()
    assert after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"] and app.version() == "v1"
    [row] = await record.history(bot.db, "app")
    said = ("opsbot was interrupted during the deploy of app to v2 before it changed the service, so v1 kept running; "
            "migration migrate may have been partly applied: check it before deploying again")
    assert row.state == "failure" and row.detail.startswith(said), row.detail
    request = await requests.get(bot.db, row.request_id)
    assert request.state == "failed" and request.result == said + "."
    assert await lock_of(bot, "app") is None
    await wait_until(lambda: any(a.kind == "deploy" for a in heard))


class CheckGate:
    """The service's http check target, held by the test: 500 until opened, then 200; counts the checks asked."""

    def __init__(self):
        self.port, self.is_open, self.asked, self.runner = free_port(), False, 0, None

    async def start(self) -> str:
        async def health(_request):
            self.asked += 1
            return web.Response(status=200 if self.is_open else 500, text="ok" if self.is_open else "not yet")

        site_app = web.Application()
        site_app.router.add_get("/health", health)
        self.runner = web.AppRunner(site_app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}/health"


async def test_a_run_that_lost_its_lease_stops_before_its_next_change_and_leaves_the_containers(drive, app):
    # The database failed over mid-verification, the lease lapsed and another replica took the row; the
    # checks then pass, and the run must not mark it verified nor remove the old container.
    app.start("v1")
    before = app.inspect()
    gate = CheckGate()
    d = await drive(deploy_config(app, checks_url=await gate.start()))
    try:
        request_id, _ = await request(d, "app v2")
        gate.asked = 0
        approving = asyncio.create_task(approve(d, request_id))
        await wait_until(lambda: gate.asked > 0, timeout=60)  # the new container started, the old one parked; verifying
        [row] = await record.history(d.bot.db, "app")
        assert (row.state, row.phase) == ("in_progress", "change")
        async with d.bot.db.sessions() as session, session.begin():
            await session.execute(update(Deployment).where(Deployment.id == row.id)
                                  .values(held_by="another-replica", lease_until=utcnow().replace(year=2000)))
        gate.is_open = True
        seen, done = await approving
        assert f"Request #{request_id} failed." in seen, done
        assert f"opsbot stalled past its hold on deployment #{row.id} and another process took it over" in done, done
        row = await record.get(d.bot.db, row.id)
        assert (row.state, row.phase, row.held_by) == ("in_progress", "change", "another-replica")
        parked = app.inspect(before["Id"])  # the old container is still there, parked for recovery to put back
        assert parked["Name"].lstrip("/").startswith(f"{app.name}-previous-") and not parked["State"]["Running"]
        new = app.inspect()
        assert new["Id"] != before["Id"] and new["State"]["Running"] and app.version() == "v2"
    finally:
        await gate.runner.cleanup()


async def test_a_refused_lease_renewal_cancels_the_run(make_bot, pg_database_url):
    # One real renewal period (RENEW_EVERY, 15 s): the row was taken over meanwhile, so the run is cancelled.
    bot = await make_bot("version: 1\n", database_url=pg_database_url)
    deployment = await record.open_deployment(
        bot.db, service="app", operation="deploy", platform="container", from_version="v1", to_version="v2", from_image=None,
        to_image=None, request_id=None, requested_by="UOPS1", approved_by=["UOPS2"], channel="C1", now=bot.clock.now(),
        plan=None, held_by="replica-a", lease=(agreed_time(bot), LEASE))
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(Deployment).where(Deployment.id == deployment).values(held_by="replica-b"))
    the_run = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.wait_for(hold_lease(bot, deployment, "replica-a", the_run), timeout=RENEW_EVERY + 15)
    with pytest.raises(asyncio.CancelledError):
        await the_run
    assert (await record.get(bot.db, deployment)).held_by == "replica-b"


# --------------------------------------------------------------------------- blue-green


def blue_green_config(app: App, front, green: int, *, health_path: str, grace: str = "1s") -> str:
    switch = {"kind": "http", "service": "app", "url": f"http://127.0.0.1:{front.port}/switch", "approval": {"approvals": 0},
              "params": {"port": {"type": "int", "min": 1, "max": 65535}, "color": {"type": "enum", "values": ["blue", "green"]}}}
    bg = {"blue_green": {"ports": {"blue": app.port, "green": green}, "health_url": "http://127.0.0.1:{port}" + health_path, "switch": "switch"}}
    body = yaml.safe_load(deploy_config(app, deploy=bg, actions={"switch": switch}, checks_url=f"http://127.0.0.1:{front.port}/cgi-bin/health"))
    body["actions"]["deploy"]["stop_grace"] = grace
    return yaml.safe_dump(body, sort_keys=False)


async def test_blue_green_killed_after_the_switch_switches_back(make_bot, pg_database_url, app, shells, front, tmp_path):
    green = free_port()
    front.backend = app.port
    app.start("v2")
    before = app.inspect()
    # /version answers on the broken version too, so it is switched to, and then its checks fail.
    config_text = blue_green_config(app, front, green, health_path="/version")
    config_path = tmp_path / "app.yaml"
    config_path.write_text(config_text)

    await deploy_then_kill(shells(config_path, pg_database_url), "v3-broken", lambda: front.switches == [(green, "green")])
    assert front.backend == green  # what the dead process left: traffic on the broken color
    bot, heard = await second_bot(make_bot, config_text, pg_database_url)
    row = await interrupted_row(bot)
    assert row.phase == "switching"
    await recover(bot)

    assert front.switches == [(green, "green"), (app.port, "blue")] and front.backend == app.port
    assert app.client.containers.list(all=True, filters={"name": f"{app.name}-green"}) == []
    after = app.inspect()
    assert after["Id"] == before["Id"] and after["State"]["Running"] and app.version() == "v2"
    [row] = await record.history(bot.db, "app")
    said = "opsbot was interrupted during the deploy of app to v3-broken, so it put v2 back"
    assert row.state == "rolled_back" and row.detail.startswith(said), row.detail
    assert "app: switch to blue (/switch)" in row.detail
    assert (await requests.get(bot.db, row.request_id)).result == said + "."


async def test_blue_green_killed_after_verification_is_finished_and_marked_success(make_bot, pg_database_url, app, shells, front, tmp_path):
    green = free_port()
    front.backend = app.port
    app.start("v1", command="trap '' TERM; /bin/serve & wait")  # ignores SIGTERM: retiring it takes the stop's whole grace
    before = app.inspect()
    config_text = blue_green_config(app, front, green, health_path="/cgi-bin/health", grace="4s")
    config_path = tmp_path / "app.yaml"
    config_path.write_text(config_text)
    bot, heard = await second_bot(make_bot, config_text, pg_database_url)

    async def verified() -> bool:
        rows = await record.history(bot.db, "app")
        return bool(rows) and rows[0].phase == "verified"

    await deploy_then_kill(shells(config_path, pg_database_url), "v2", verified)
    row = await interrupted_row(bot)
    await recover(bot)

    after = app.inspect()
    assert after["Id"] != before["Id"] and after["Name"] == f"/{app.name}" and app.version(green) == "v2"
    assert app.client.api.containers(all=True, filters={"id": before["Id"]}) == []  # the old color retired
    [row] = await record.history(bot.db, "app")
    said = "opsbot was interrupted after v2 passed its checks; it finished the deploy of app to v2"
    assert row.state == "success" and row.detail.startswith(said) and row.to_image == app.image_id("v2"), row.detail
    assert f"opsbot-kept/app:{before['Image'][7:19]}" in app.client.api.inspect_image(before["Image"])["RepoTags"]
    request = await requests.get(bot.db, row.request_id)
    assert request.state == "succeeded" and request.result == said + "."
    await wait_until(lambda: any(a.kind == "deploy" and a.data.get("milestone") == "fix_deployed" for a in heard))


# --------------------------------------------------------------------------- Kubernetes


async def test_kubernetes_killed_mid_rollout_sets_the_old_image_back(make_bot, pg_database_url, k8s, kubeconfig, shells, tmp_path):
    k8s.cluster.add_deployment("shop", "web", ready_after=None, progress_deadline=600)  # the new pods never get ready
    k8s.cluster.deployments[("shop", "web")]["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:1.0"
    k8s.seconds_per_read = 30
    config_text = k8s_deploy_config(kubeconfig)
    config_path = tmp_path / "app.yaml"
    config_path.write_text(config_text)

    await deploy_then_kill(shells(config_path, pg_database_url), "3.0", lambda: len(k8s.patches()) == 1, service="shop")
    assert image_of(k8s) == f"{IMAGE}:3.0"  # what the dead process left: a rollout that will not finish
    bot, heard = await second_bot(make_bot, config_text, pg_database_url)
    row = await interrupted_row(bot, "shop")
    assert (row.phase, row.progress) == ("change", {"images": {"app": f"{IMAGE}:1.0"}})
    await recover(bot)

    assert image_of(k8s) == f"{IMAGE}:1.0"
    [_, back] = k8s.patches()
    assert back.body == {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": f"{IMAGE}:1.0"}]}}}}
    [row] = await record.history(bot.db, "shop")
    said = "opsbot was interrupted during the deploy of shop to 3.0, so it put 1.0 back"
    assert row.state == "rolled_back" and row.detail.startswith(said), row.detail
    request = await requests.get(bot.db, row.request_id)
    assert request.state == "failed" and request.result == said + "."
    assert await lock_of(bot, "shop") is None
    await wait_until(lambda: any(a.kind == "deploy" for a in heard))
