"""Services on supervisord: /restart, /logs and /health through signed Slack HTTP, Socket Mode and the console.

The supervisord is real (Debian's package, installed by scripts/test-env.sh): this module's
own, started by tests/supervisor/up.sh, with a healthy program, one that exits at once (FATAL)
and a group worker:* of two processes. Slack and Socket Mode are the doubles. The Slack transports reach
supervisord over HTTP with basic auth (credentials from the environment), the console over its
unix socket. Also here: the generic /restart on a container service, and the config errors.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import xmlrpc.client
from pathlib import Path

import pytest

from conftest import free_port
from drivers import drive  # noqa: F401 (fixture)
from test_action_transports import restart_config, service  # noqa: F401 (module fixture: a busybox httpd container)

from action_helpers import approved, config_problems, roles_and_restart, state_of

HERE = Path(__file__).resolve().parent / "supervisor"
SECRET = "superv1s0r-s3cret"  # printed by tests/supervisor/healthy.sh at start


@pytest.fixture(scope="module")
def supervisor(tmp_path_factory) -> dict[str, str]:
    """A private supervisord for this module (tests/supervisor/up.sh on a temp dir and a free port):
    a concurrent run of these tests in the same checkout must not restart this run's programs."""
    if shutil.which("supervisord") is None:
        pytest.fail("supervisord is missing: run scripts/test-env.sh (make test does), which installs Debian's supervisor package.")
    state = tmp_path_factory.mktemp("supervisord")
    env_file = state / "fleet.env"
    started = subprocess.run([str(HERE / "up.sh"), str(env_file), str(state), str(free_port())], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#"))
    yield {key: value for key, value in pairs}
    subprocess.run([str(HERE / "down.sh"), str(env_file), str(state)], capture_output=True, timeout=60)


@pytest.fixture
def credentials(supervisor, monkeypatch):
    monkeypatch.setenv("OPSBOT_TEST_SUPERVISOR_USER", supervisor["OPSBOT_FLEET_SUPERVISOR_USER"])
    monkeypatch.setenv("OPSBOT_TEST_SUPERVISOR_PASSWORD", supervisor["OPSBOT_FLEET_SUPERVISOR_PASSWORD"])
    return supervisor


def rpc(supervisor) -> xmlrpc.client.ServerProxy:
    """The test's own view of supervisord, over HTTP, independent of the bot's client."""
    url = supervisor["OPSBOT_FLEET_SUPERVISOR_URL"].replace(
        "http://", f"http://{supervisor['OPSBOT_FLEET_SUPERVISOR_USER']}:{supervisor['OPSBOT_FLEET_SUPERVISOR_PASSWORD']}@"
    )
    return xmlrpc.client.ServerProxy(url)


def pids(supervisor, *names: str) -> dict[str, int]:
    server = rpc(supervisor)
    return {name: server.supervisor.getProcessInfo(name)["pid"] for name in names}


def config(supervisor, transport: str) -> str:
    if transport == "console":
        connection = f"url: {supervisor['OPSBOT_FLEET_SUPERVISOR_SOCKET']}"
    else:
        connection = (
            f"url: {supervisor['OPSBOT_FLEET_SUPERVISOR_URL']}\n"
            "    username_env: OPSBOT_TEST_SUPERVISOR_USER\n    password_env: OPSBOT_TEST_SUPERVISOR_PASSWORD"
        )
    return f"""
version: 1
targets:
  supervisor:
    {connection}
services:
  queue:
    supervisor: {{group: worker}}
    owners: [ops]
    checks:
      - kind: supervisor_program
        min_uptime: 1s
      - kind: container
  app:
    supervisor: {{program: healthy}}
    owners: [ops]
    checks:
      - kind: supervisor_program
  broken:
    supervisor: {{program: crasher}}
    owners: [ops]
    checks:
      - kind: supervisor_program
{roles_and_restart()}
"""


async def test_restart_of_a_group_and_of_a_program_after_approval(drive, credentials):
    d = await drive(config(credentials, "http"))
    before = pids(credentials, "worker:worker_00", "worker:worker_01", "healthy:healthy")

    request_id, plan, reply, final = await approved(d, "/restart", "queue")
    assert "queue: restart supervisor worker:* (worker:worker_00, worker:worker_01) (supervisord stops each process within its stopwaitsecs of 5 s)" in plan, plan
    assert "then wait until supervisor reports it up and run queue's checks until they pass (up to 30 s)" in plan
    assert f"Request #{request_id} succeeded." in reply, reply
    done = final
    assert "queue: restarted supervisor group worker:* (worker:worker_00, worker:worker_01)" in done, done
    assert "(4 checks pass)" in done  # two processes, graded by supervisor_program and by container
    assert await state_of(d.bot, request_id) == "succeeded"
    after = pids(credentials, "worker:worker_00", "worker:worker_01", "healthy:healthy")
    assert after["worker:worker_00"] != before["worker:worker_00"] and after["worker:worker_01"] != before["worker:worker_01"]
    assert after["healthy:healthy"] == before["healthy:healthy"]  # only what the plan named

    seen = await d.command("UOPS1", "/restart", "app --force-recreate")
    assert seen.one_line == "--force-recreate is for containers, and app runs on supervisor; nothing was requested."

    request_id, plan, reply, final = await approved(d, "/restart", "app")
    assert "app: restart supervisor healthy (healthy:healthy) (supervisord stops each process within its stopwaitsecs of 5 s)" in plan, plan
    assert f"Request #{request_id} succeeded." in reply, final
    assert pids(credentials, "healthy:healthy")["healthy:healthy"] != before["healthy:healthy"]


async def test_restart_of_a_program_that_will_not_start_fails_with_its_reason(drive, credentials):
    d = await drive(config(credentials, "http"))
    request_id, plan, reply, final = await approved(d, "/restart", "broken")
    assert "broken: restart supervisor crasher (crasher:crasher)" in plan
    assert f"Request #{request_id} failed" in reply, reply
    assert "crasher:crasher did not start" in final, final
    assert await state_of(d.bot, request_id) == "failed"


async def test_logs_with_grep_and_tail_redacted(drive, credentials):
    d = await drive(config(credentials, "http"))

    seen = await d.command("UOPS1", "/logs", "app --grep DATABASE_URL --tail 5000")
    assert "DATABASE_URL=postgres://app:" in seen.words, seen.words
    assert SECRET not in seen.words and SECRET not in seen.screen

    seen = await d.command("UOPS1", "/logs", "app --grep /^\\[healthy.stderr\\].ERROR/ --count")
    assert re.search(r"[1-9]\d* lines matching .* in the last 100 lines of app \(supervisor healthy\)\.", seen.words), seen.words

    seen = await d.command("UOPS1", "/logs", "queue --tail 2")
    assert "[worker_00 stdout] worker 00:" in seen.words and "[worker_01 stdout] worker 01:" in seen.words, seen.words

    seen = await d.command("UOPS1", "/run", "logs service=app tail=3")  # the generic logs kind, as /run reaches it
    assert "app logs: 3 lines" in seen.words and "healthy: tick" in seen.words and "[healthy stderr] ERROR" in seen.words, seen.words

    seen = await d.command("UOPS1", "/logs", "app --since 1h")
    assert seen.one_line == "Cannot read the logs of app: supervisord keeps no timestamps in its logs, so --since cannot be applied; use --tail."


async def test_health_shows_fatal_as_critical(drive, credentials):
    d = await drive(config(credentials, "http"))
    seen = await d.command("UOPS1", "/health")
    assert "Health: CRITICAL" in seen.words, seen.words
    assert re.search(r"CRITICAL +broken \(\d+ ms\) supervisor_program: FATAL", seen.words), seen.words
    assert re.search(r"OK +app \(\d+ ms\)", seen.words), seen.words


@pytest.mark.parametrize("drive", ["console"], indirect=True)
async def test_the_console_reaches_supervisord_over_its_unix_socket(drive, supervisor):
    d = await drive(config(supervisor, "console"))
    seen = await d.command("UOPS1", "/health", "broken")
    assert re.search(r"CRITICAL +broken \(\d+ ms\) supervisor_program: FATAL", seen.words), seen.words
    seen = await d.command("UOPS1", "/logs", "app --grep tick --count")
    assert re.search(r"[1-9]\d* lines matching 'tick'", seen.words), seen.words


async def test_generic_restart_on_a_container_still_restarts_the_container(drive, service):  # noqa: F811
    before = service.started_at()
    d = await drive(restart_config(service).replace("kind: docker_restart", "kind: restart"))
    request_id, plan, reply, final = await approved(d, "/restart", "svc")
    assert f"svc: docker restart {service.name}" in plan, plan
    assert f"Request #{request_id} succeeded." in reply, reply
    assert "svc: restarted in" in final and "(2 checks pass)" in final, final
    assert service.started_at() != before and service.running()


def test_two_targets_on_one_service_is_one_sentence_at_its_line():
    [message] = config_problems("version: 1\nservices:\n  web:\n    container: web-1\n    supervisor: {program: web}\n")
    assert message.startswith("bad.yaml:3: services.web: "), message
    assert "a service names at most one target, and this one names container and supervisor" in message


def test_a_target_without_its_platform_connection_is_an_error_at_its_line():
    [message] = config_problems("version: 1\nservices:\n  queue:\n    description: workers\n    supervisor: {group: worker}\n")
    assert message == "bad.yaml:5: services.queue.supervisor: service 'queue' runs on supervisor, but app.yaml has no targets.supervisor connection"


def test_a_container_only_restart_kind_with_services_elsewhere_is_an_error():
    text = (
        "version: 1\ntargets:\n  supervisor: {url: 'unix:///run/supervisor.sock'}\nservices:\n  queue:\n    supervisor: {group: worker}\n"
        "actions:\n  restart:\n    kind: docker_restart\n"
    )
    [message] = config_problems(text)
    assert message.startswith("bad.yaml:9: actions.restart.kind: action 'restart' has kind docker_restart, which works on container only"), message
