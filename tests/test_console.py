"""The console and `opsbot run`, driven as a newcomer would: a real process, piped standard input."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FLEET_CONFIG

ROOT = Path(__file__).resolve().parent.parent
OPSBOT = [sys.executable, "-m", "bot.cli"]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "app.yaml").write_text(FLEET_CONFIG)
    (tmp_path / "healthy.yaml").write_text("services:\n  host:\n    checks:\n      - kind: memory\n        usage: {warn: 99.9}\n")
    return tmp_path


def opsbot(workdir, *args, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REDIS_URL", "OPSBOT_"))}
    environment.update({"DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'opsbot.db'}", "PYTHONPATH": str(ROOT)})
    environment.update(env or {})
    return subprocess.run(OPSBOT + list(args), input=stdin, capture_output=True, text=True, cwd=workdir, env=environment, timeout=120)


def test_shell_runs_piped_commands_through_the_pipeline(workdir):
    result = opsbot(workdir, "shell", "--as", "UOPS1", stdin="/health web database\n/help\n/health webb\n\n# a comment\nhello\n/health broken\n")
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "Health: OK (2 ok)" in out
    assert "Commands you can run" in out and "/health [service ...]" in out and "Your roles: ops" in out
    assert "Unknown service 'webb'. Did you mean 'web'? Known: database, cache, web, broken." in out
    assert "Commands start with a slash" in out
    assert "Health: CRITICAL (1 critical)" in out and "HTTP 500, expected 200" in out
    assert result.stderr == ""


def test_shell_keeps_serving_after_bad_lines(workdir):
    lines = ["/health " + "x" * 5000, "/nosuch", "/health 'open", "/health \x01", "/health database"]
    result = opsbot(workdir, "shell", stdin="\n".join(lines) + "\n")
    assert "commands take at most 2,000" in result.stdout
    assert "There is no /nosuch command" in result.stdout
    assert "A quote is not closed" in result.stdout
    assert "control characters" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("(") and "Health: OK (1 ok)" in result.stdout


def test_run_exit_status(workdir):
    ok = opsbot(workdir, "run", "/health", "--config", "healthy.yaml")
    assert ok.returncode == 0 and "Health: OK" in ok.stdout
    critical = opsbot(workdir, "run", "/health broken")
    assert critical.returncode == 1 and "Health: CRITICAL" in critical.stdout
    usage = opsbot(workdir, "run", "/health nosuch")
    assert usage.returncode == 2 and "Unknown service 'nosuch'" in usage.stdout
    not_a_command = opsbot(workdir, "run", "health")
    assert not_a_command.returncode == 2 and "is not a command" in not_a_command.stderr


def test_invalid_config_stops_start_up_with_the_problems(workdir):
    (workdir / "bad.yaml").write_text("services:\n  web:\n    checks:\n      - kind: nope\n")
    result = opsbot(workdir, "run", "/health", "--config", "bad.yaml")
    assert result.returncode == 2
    assert "bad.yaml:4: services.web.checks[0]: unknown check kind" in result.stderr


def test_start_without_tokens_opens_the_console(workdir):
    result = opsbot(workdir, "start", stdin="/health database\n")
    assert "opening the console" in result.stderr
    assert "Health: OK (1 ok)" in result.stdout


def test_serve_refuses_to_start_without_signing_secret(workdir):
    result = opsbot(workdir, "serve", env={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert result.returncode == 2
    assert "SLACK_SIGNING_SECRET" in result.stderr and "xoxb-1" not in result.stderr


def test_health_run_is_saved(workdir):
    opsbot(workdir, "run", "/health database")
    import sqlite3

    with sqlite3.connect(workdir / "opsbot.db") as conn:
        trigger, user, status, results = conn.execute("SELECT trigger, requested_by, status, results FROM check_runs").fetchone()
        audit = conn.execute("SELECT user_id, command, outcome FROM audit_log").fetchall()
    assert (trigger, user, status) == ("cli", "UCONSOLE", "ok")
    assert '"service": "database"' in results
    assert audit == [("UCONSOLE", "health", "ok")]
