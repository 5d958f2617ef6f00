"""Services on systemd: /restart, systemd_stop/start/reload, /logs and /health through signed Slack HTTP, Socket Mode and the console.

systemd is real: 252, booted as PID 1 in this checkout's container ${PREFIX}systemd
(tests/systemd/up.sh, started by scripts/test-env.sh), with its system bus socket and its journal
bind-mounted for the bot. The bot talks D-Bus to it as root (EXTERNAL auth) and reads the journal
with journalctl --directory. The test units (tests/systemd/units): opsbot-web runs, opsbot-failing
exits 3, opsbot-oom is OOM-killed under a 16 MiB MemoryMax, opsbot-flaky crashes and is restarted
by systemd. The test's own view of systemd is `systemctl` in the container, not the bot's client.
The shipped polkit rule (deploy/systemd/50-opsbot.rules) is installed there and tested with the
bot's D-Bus client run as an unprivileged user.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from drivers import drive  # noqa: F401 (fixture)
from test_incidents import incident_sections, open_incident, timeline

from action_helpers import approved, config_problems, request_rows, roles_and_restart, state_of, trail
from bot.config.types import Thresholds
from bot.targets.base import LogQuery
from bot.targets.systemd_journal import journal_arguments, parse_entries
from bot.targets.systemd_state import grade_unit

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / "tests" / ".fleet.systemd.env"
SECRET = "sy5temd-s3cret"  # printed by opsbot-web.service at start


@pytest.fixture(scope="module")
def systemd() -> dict[str, str]:
    if not ENV_FILE.exists():
        pytest.fail("tests/.fleet.systemd.env is missing: run scripts/test-env.sh (make test does) to boot the test systemd.")
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def systemctl(systemd, *args: str) -> str:
    done = subprocess.run(["docker", "exec", systemd["OPSBOT_FLEET_SYSTEMD_CONTAINER"], "systemctl", *args], capture_output=True, text=True, timeout=60)
    return done.stdout


def unit(systemd, name: str) -> dict[str, str]:
    """The unit's properties as systemctl shows them."""
    text = systemctl(systemd, "show", "-p", "ActiveState", "-p", "SubState", "-p", "InvocationID", "-p", "Result", "-p", "NRestarts", f"{name}.service")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def web_running(systemd):
    """opsbot-web is active before and after the test (a test may stop it)."""
    systemctl(systemd, "reset-failed", "opsbot-web.service")
    systemctl(systemd, "start", "opsbot-web.service")
    yield systemd
    systemctl(systemd, "start", "opsbot-web.service")


def config(systemd, extra: str = "") -> str:
    return f"""
version: 1
targets:
  systemd:
    bus: {systemd['OPSBOT_FLEET_SYSTEMD_BUS']}
    journal_directory: {systemd['OPSBOT_FLEET_SYSTEMD_JOURNAL']}
services:
  web:
    systemd: {{unit: opsbot-web.service}}
    owners: [ops]
    checks:
      - kind: systemd_unit
      - kind: container
  failing:
    systemd: {{unit: opsbot-failing.service}}
    owners: [ops]
    checks: [{{kind: systemd_unit}}]
  oom:
    systemd: {{unit: opsbot-oom.service}}
    owners: [ops]
    checks: [{{kind: systemd_unit}}]
  flaky:
    systemd: {{unit: opsbot-flaky.service}}
    owners: [ops]
    checks: [{{kind: systemd_unit, restarts: {{warn: 1, critical: 100000}}}}]
  ghost:
    systemd: {{unit: opsbot-ghost.service}}
    owners: [ops]
{roles_and_restart()}
  stop: {{kind: systemd_stop, timeout: 30s}}
  start: {{kind: systemd_start, timeout: 30s, verify: {{deadline: 30s, interval: 250ms}}}}
  reload: {{kind: systemd_reload, timeout: 30s}}
  journal: {{kind: systemd_logs}}
{extra}"""


async def test_restart_waits_for_the_job_then_the_checks(drive, web_running):
    before = unit(web_running, "opsbot-web")
    d = await drive(config(web_running))
    request_id, plan, reply, done = await approved(d, "/restart", "web")
    assert "web: restart systemd opsbot-web.service (systemd stops it within its TimeoutStopSec of 90 s), then wait until systemd reports it up" in plan, plan
    assert "and run web's checks until they pass (up to 30 s)" in plan
    assert f"Request #{request_id} succeeded." in reply, reply
    assert re.search(r"web: systemd restart job \d+ for opsbot-web\.service in [\d.]+ s, healthy after [\d.]+ s \(2 checks pass\)", done), done
    assert await state_of(d.bot, request_id) == "succeeded"
    assert "succeeded" in await trail(d.bot, "web", request_id)
    after = unit(web_running, "opsbot-web")
    assert after["ActiveState"] == "active" and after["InvocationID"] != before["InvocationID"]

    seen = await d.command("UOPS1", "/restart", "web --force-recreate")
    assert seen.one_line == "--force-recreate is for containers, and web runs on systemd; nothing was requested."


@pytest.mark.parametrize("drive", ["http"], indirect=True)
async def test_a_restart_in_the_incident_channel_goes_on_its_timeline(drive, web_running):
    d = await drive(config(web_running, incident_sections(create_channels=True, playbooks="")))
    number = await open_incident(d, "P1 The web is down --service web")
    from bot.incident import service as incidents

    d.channel = (await incidents.get(d.bot.db, number)).channel_id
    request_id, _, reply, _ = await approved(d, "/restart", "web")
    assert f"Request #{request_id} succeeded." in reply
    [action] = [e for e in await timeline(d.bot, number) if e.kind == "action"]
    [row] = [r for r in await request_rows(d.bot, "web") if r.id == request_id]
    assert (action.user_id, action.text) == ("UOPS1", "restart web: succeeded")
    assert action.data["plan_hash"] == row.plan_hash and action.data["approvers"] == ["UOPS2"]
    assert "systemd restart job" in action.data["verification"]


async def test_a_unit_that_fails_to_start_reports_the_jobs_result(drive, systemd):
    d = await drive(config(systemd))
    request_id, plan, reply, done = await approved(d, "/restart", "failing")
    assert "failing: restart systemd opsbot-failing.service" in plan
    assert f"Request #{request_id} failed" in reply, reply
    assert re.search(r"systemd's restart job \d+ ended 'failed': opsbot-failing\.service is failed \(failed\), exit-code, status 3", done), done
    assert "failing: config missing" in done  # its journal, under the failure
    assert await state_of(d.bot, request_id) == "failed"


async def test_stop_then_start_wait_for_their_jobs(drive, web_running):
    d = await drive(config(web_running))
    request_id, plan, reply, done = await approved(d, "/run", "stop service=web")
    assert "web: systemctl stop opsbot-web.service (mode replace), then wait up to 30 s for systemd's job to finish; it stays stopped" in plan, plan
    assert f"Request #{request_id} succeeded." in reply, reply
    assert re.search(r"systemd stop job \d+ for opsbot-web\.service finished in [\d.]+ s; systemd stop job \d+ done, opsbot-web\.service is inactive \(dead\)", done), done
    assert unit(web_running, "opsbot-web")["ActiveState"] == "inactive"

    seen = await d.command("UOPS1", "/health", "web")
    assert re.search(r"CRITICAL +web \(\d+ ms\) systemd_unit: inactive \(dead\)", seen.words), seen.words

    request_id, plan, reply, done = await approved(d, "/run", "start service=web")
    assert "web: systemctl start opsbot-web.service (mode replace), then wait up to 30 s for systemd's job to finish and run web's checks" in plan
    assert f"Request #{request_id} succeeded." in reply, done
    assert "(2 checks pass)" in done, done
    assert unit(web_running, "opsbot-web")["ActiveState"] == "active"


async def test_a_job_systemd_cannot_run_is_one_sentence(drive, web_running):
    d = await drive(config(web_running))
    request_id, _, reply, done = await approved(d, "/run", "reload service=web")  # opsbot-web has no ExecReload
    assert f"Request #{request_id} failed" in reply, reply
    assert "web: systemd cannot do that to this unit (" in done, done
    assert unit(web_running, "opsbot-web")["ActiveState"] == "active"

    seen = await d.command("UOPS1", "/restart", "ghost")
    assert seen.one_line.startswith("systemd unit opsbot-ghost.service of ghost is not-found on the D-Bus system bus at "), seen.one_line
    assert seen.one_line.endswith("; nothing was requested.")


async def test_logs_with_grep_tail_and_since_redacted(drive, systemd):
    d = await drive(config(systemd))
    seen = await d.command("UOPS1", "/logs", "web --grep DATABASE_URL --tail 5000")
    assert "DATABASE_URL=postgres://app:" in seen.words, seen.words
    assert SECRET not in seen.words and SECRET not in seen.screen

    seen = await d.command("UOPS1", "/logs", "web --tail 2")
    assert re.search(r"web logs: 2 lines, last 2 lines", seen.words) and seen.words.count("web: tick") == 2, seen.words

    seen = await d.command("UOPS1", "/logs", "failing --since 7d --grep /status=3/ --count")
    assert re.search(r"[1-9]\d* lines matching 'status=3' in the last 7d of failing \(systemd opsbot-failing\.service\)\.", seen.words), seen.words

    seen = await d.command("UOPS1", "/run", "journal service=web grep=tick since=1h tail=3")
    assert re.search(r"web logs: [1-3] lines containing 'tick' from systemd opsbot-web\.service journal", seen.words), seen.words

    seen = await d.command("UOPS1", "/run", "logs service=web tail=3")  # the generic logs kind
    assert "web logs: 3 lines" in seen.words, seen.words


async def test_health_shows_the_failed_the_oom_killed_and_the_restarting_unit(drive, web_running):
    d = await drive(config(web_running))
    seen = await d.command("UOPS1", "/health")
    assert "Health: CRITICAL" in seen.words, seen.words
    assert re.search(r"CRITICAL +failing \(\d+ ms\) systemd_unit: failed \(failed\), since \w+, restarts 0, last run: exit-code, status 3", seen.words), seen.words
    assert re.search(r"CRITICAL +oom \(\d+ ms\) systemd_unit: failed \(failed\), .*killed by the OOM killer \(SIGKILL under its 16 MiB memory limit\)", seen.words), seen.words
    assert re.search(r"WARNING +flaky \(\d+ ms\) systemd_unit: \w+ \([\w-]+\), \w+ \w+, restarts [1-9]\d*", seen.words), seen.words
    assert re.search(r"OK +web \(\d+ ms\)", seen.words), seen.words


def test_a_systemd_target_without_its_connection_is_an_error_at_its_line():
    [message] = config_problems("version: 1\nservices:\n  web:\n    description: nginx\n    systemd: {unit: nginx.service}\n")
    assert message == "bad.yaml:5: services.web.systemd: service 'web' runs on systemd, but app.yaml has no targets.systemd connection"


def test_a_unit_name_must_be_a_service_unit():
    text = "version: 1\ntargets:\n  systemd: {}\nservices:\n  web:\n    systemd: {unit: 'nginx.service; rm -rf /'}\n"
    [message] = config_problems(text)
    assert message.startswith("bad.yaml:6: services.web.systemd.unit: "), message


def test_a_systemd_unit_check_on_a_container_service_is_an_error():
    [message] = config_problems("version: 1\nservices:\n  web:\n    container: web-1\n    checks: [{kind: systemd_unit}]\n")
    assert "service 'web' has a systemd_unit check, but it does not run on systemd" in message, message


async def test_an_unreachable_bus_or_journal_is_one_sentence(drive, systemd, tmp_path):
    text = config(systemd).replace(systemd["OPSBOT_FLEET_SYSTEMD_BUS"], f"unix:path={tmp_path}/no-bus")
    text = text.replace(systemd["OPSBOT_FLEET_SYSTEMD_JOURNAL"], str(tmp_path / "no-journal"))
    d = await drive(text)
    seen = await d.command("UOPS1", "/health", "web")
    assert f"systemd_unit: cannot reach the D-Bus system bus at {tmp_path}/no-bus (No such file or directory)" in seen.words, seen.words
    seen = await d.command("UOPS1", "/restart", "web")
    assert seen.one_line == f"cannot reach the D-Bus system bus at {tmp_path}/no-bus (No such file or directory); nothing was requested.", seen.words
    seen = await d.command("UOPS1", "/logs", "web")
    assert seen.one_line.startswith(f"Cannot read the logs of web: journalctl failed (Failed to open {tmp_path}/no-journal"), seen.one_line


# The bot's own D-Bus client, run as the unprivileged user opsbot (uid 1000), under deploy/systemd/50-opsbot.rules
# as up.sh installs it with the unit list [opsbot-web.service].
AS_OPSBOT = """
import asyncio, sys
from bot.targets.base import TargetError
from bot.targets.systemd_bus import SystemdBus

async def main(address):
    bus = SystemdBus(address)
    for unit in ("opsbot-web.service", "opsbot-flaky.service"):
        try:
            job = await bus.start_job("RestartUnit", unit)
            print(unit, "job", await asyncio.wait_for(job.done, 30))
        except TargetError as exc:
            print(unit, "refused:", exc)
    print("read:", (await bus.unit_properties("opsbot-flaky.service"))["Id"])
    await bus.close()

asyncio.run(main(sys.argv[1]))
"""


def test_the_polkit_rule_lets_the_bot_user_manage_only_the_declared_units(web_running):
    uid = web_running["OPSBOT_FLEET_SYSTEMD_POLKIT_UID"]
    before = unit(web_running, "opsbot-web")
    done = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", str(ROOT / ".venv" / "bin" / "python"), "-c", AS_OPSBOT,
         web_running["OPSBOT_FLEET_SYSTEMD_BUS"]],
        capture_output=True, text=True, timeout=90, cwd="/",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "opsbot-web.service job done", done.stdout
    assert lines[1].startswith("opsbot-flaky.service refused: systemd refused: the bot's user may not manage this unit"), done.stdout
    assert lines[2] == "read: opsbot-flaky.service"  # reading state needs no rule
    assert unit(web_running, "opsbot-web")["InvocationID"] != before["InvocationID"]


# How readings are graded, for what this host cannot produce (cgroup v2's oom-kill, a unit systemd cannot load).

NOW = 1_800_000_000 * 1_000_000


def props(**values) -> dict:
    return {"LoadState": "loaded", "ActiveState": "failed", "SubState": "failed", "Result": "success", "NRestarts": 0,
            "StateChangeTimestamp": NOW - 90 * 1_000_000, "MemoryMax": 2**64 - 1, "MemoryLimit": 2**64 - 1} | values


def test_grading_of_unit_states():
    assert grade_unit(props(Result="oom-kill", MemoryMax=64 << 20), NOW).detail == "failed (failed), since 1m, restarts 0, last run: killed by the OOM killer (memory limit 64 MiB)"
    # SIGKILL without a memory limit is a kill, not an OOM reading.
    assert grade_unit(props(Result="signal", ExecMainStatus=9, ExecMainCode=2), NOW).detail.endswith("last run: signal, signal 9")
    assert grade_unit(props(Result="start-limit-hit"), NOW).detail.endswith("last run: start-limit-hit")
    reading = grade_unit(props(ActiveState="active", SubState="running", NRestarts=7), NOW, min_uptime=300, restarts=Thresholds(warn=1, critical=5))
    assert (reading.status, reading.detail) == ("critical", "active (running), up 1m, restarted less than 5m ago, restarts 7")
    assert grade_unit(props(ActiveState="activating", SubState="auto-restart"), NOW).status == "warning"
    assert grade_unit({"LoadState": "masked"}, NOW).detail == "unit masked"


def test_journal_is_read_with_an_argument_list_and_parsed_newest_last():
    args = journal_arguments("-x.service", LogQuery(tail=20, since=3600), "/var/log/journal")
    assert args == ["journalctl", "--no-pager", "--quiet", "--output=json", "--output-fields=MESSAGE", "--reverse", "--unit=-x.service", "--lines=20",
                    "--since=-3600s", "--directory=/var/log/journal"]
    raw = b"\n".join([
        b'{"__REALTIME_TIMESTAMP": "1800000002000000", "MESSAGE": [104, 105, 255]}',
        b'{"__REALTIME_TIMESTAMP": "1800000001000000", "MESSAGE": "two\\nlines"}',
        b"not json",
    ])
    assert parse_entries(raw) == ["2027-01-15 08:00:01 two", "2027-01-15 08:00:01 lines", "2027-01-15 08:00:02 hi\ufffd"]
