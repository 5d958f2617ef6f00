"""app.yaml: the bundled file and every example validate; bad files are explained line by line."""
from pathlib import Path

import pytest

from bot.cli import main as cli
from bot.config.loader import ConfigError, load_config, parse_config
from bot.config.reference import render_reference

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", [ROOT / "app.yaml", *sorted((ROOT / "examples").glob("*/app.yaml"))], ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_configs_validate(path):
    config = load_config(path)
    assert config.services
    assert all(service.checks for service in config.services.values())


def test_examples_cover_runbooks_000_and_001():
    names = {p.parent.name for p in (ROOT / "examples").glob("*/app.yaml")}
    assert {"stayafrica", "loyalty"} <= names


def test_reference_doc_is_generated_from_the_models():
    assert (ROOT / "docs" / "config-reference.md").read_text() == render_reference(), (
        "docs/config-reference.md is stale: run make config-reference"
    )


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    return [str(p) for p in info.value.problems]


def test_unknown_key_names_line_path_and_allowed_keys():
    [message] = problems("services:\n  web:\n    checks:\n      - kind: tcp\n        host: a\n        port: 1\n        colour: red\n")
    assert message.startswith("bad.yaml:7: services.web.checks[0].colour: unknown key; allowed here: ")
    assert "host" in message and "port" in message


def test_unknown_check_kind_lists_kinds():
    [message] = problems("services:\n  web:\n    checks:\n      - kind: ping\n")
    assert "bad.yaml:4" in message and "'http'" in message and "'tls'" in message


def test_missing_kind_and_missing_required_key():
    messages = problems("services:\n  web:\n    checks:\n      - url: http://x\n      - kind: tcp\n        host: h\n")
    assert any("'kind' is required" in m for m in messages)
    assert any("checks[1].port: required key is missing" in m for m in messages)


def test_bad_values_are_explained():
    messages = problems(
        "services:\n  Web Server:\n    checks: []\n"
        "  db:\n    checks:\n      - kind: disk\n        usage: {warn: 95, critical: 90}\n"
        "      - kind: http\n        url: ftp://x\n        timeout: soon\n"
        "roles:\n  ops: {users: [alice]}\n"
    )
    joined = "\n".join(messages)
    assert "bad.yaml:2: services.Web Server: the name does not match the allowed form" in joined
    assert "warn must not be above critical" in joined
    assert "must start with http:// or https://" in joined
    assert "expected a duration like 5s" in joined
    assert "roles.ops.users[0]" in joined


def test_literal_password_is_refused_but_env_reference_is_fine():
    [message] = problems("services:\n  db:\n    checks:\n      - kind: postgres\n        dsn: postgresql://app:hunter2@db/app\n")
    assert "use ${VAR}" in message and "hunter2" not in message
    parse_config("services:\n  db:\n    checks:\n      - kind: postgres\n        dsn: postgresql://app:${DB_PASSWORD}@db/app\n")
    parse_config("services:\n  db:\n    checks:\n      - kind: postgres\n        dsn: ${DATABASE_DSN}\n")


def test_references_between_services_and_roles_are_checked():
    messages = problems(
        "services:\n  a:\n    depends_on: [b]\n  b:\n    depends_on: [a]\n    owners: [nobody]\n  c:\n    depends_on: [zzz]\n"
    )
    joined = "\n".join(messages)
    assert "depends_on has a cycle" in joined
    assert "unknown service 'zzz'" in joined
    assert "unknown role 'nobody'" in joined


def test_container_checks_need_a_container():
    [message] = problems("services:\n  a:\n    checks:\n      - kind: container\n")
    assert "needs a container" in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("services: [a, b\n", "not valid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("services:\n  a: {}\n  a: {}\n", "duplicate key 'a'"),
        ("services:\n  a:\n    checks:\n      - kind: tcp\n        host: h\n        port: 70000\n", "less than or equal to 65535"),
        ("version: 2\n", "version"),
    ],
)
def test_malformed_files(text, expected):
    assert any(expected in m for m in problems(text))


def test_config_check_command(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("services:\n  a:\n    checks:\n      - kind: memory\n")
    bad.write_text("services:\n  a:\n    checks:\n      - kind: memory\n        usage: {warn: high}\n")
    assert cli(["config", "check", str(good)]) == 0
    assert "is valid: 1 services, 1 checks" in capsys.readouterr().out
    assert cli(["config", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:5: services.a.checks[0].usage.warn:" in out and "1 problem in" in out
    assert cli(["config", "check", str(tmp_path / "missing.yaml")]) == 1
    assert "file not found" in capsys.readouterr().out


def test_a_literal_password_next_to_a_user_reference_is_refused():
    [message] = problems("services:\n  db:\n    checks:\n      - kind: postgres\n        dsn: postgresql://${PGUSER}:hunter2@db/app\n")
    assert "use ${VAR}" in message
    parse_config("services:\n  db:\n    checks:\n      - kind: redis\n        url: redis://:${REDIS_PASSWORD}@cache:6379/0\n")


EXAMPLES = sorted((ROOT / "examples").glob("*/app.yaml"))
SERVICE_POSITIONALS = ("service", "services")


def test_examples_carry_the_escalation_matrix_calendar_rotation_and_playbooks():
    for path in EXAMPLES:
        config = load_config(path)
        assert [config.severity(word)[0] for word in ("Critical", "High", "Medium", "Low")] == ["P0", "P1", "P2", "P3"], path
        p0 = config.severities["P0"]
        assert p0.respond_within == 900 and p0.update_reminder == 1800
        assert [bool(level.rotation) for level in p0.escalation] == [True, False] and p0.escalation[1].role in config.roles
        assert any(n.group for n in p0.notify) and any(n.channel for n in p0.notify)  # management, the status page
        assert config.severities["P1"].respond_within == 3600 and config.severities["P1"].notify
        assert config.severities["P2"].respond_within == 4 * 3600
        assert config.severities["P3"].business_hours_only and not config.severities["P3"].notify
        assert config.calendar.timezone != "UTC" and config.calendar.holidays
        assert "primary" in config.oncall and any("primary" in role.rotations for role in config.roles.values())
        assert config.incidents.create_channels and config.incidents.channel and config.incidents.status_channel
        assert {"application-down", "database-connection-failure", "redis-down", "high-error-rate", "disk-space-full",
                "memory-exhaustion", "slow-response-times", "failed-deployment-rollback", "site-down", "degraded",
                "minor"} <= set(config.playbooks), path
    assert "queue-backlog" in load_config(ROOT / "examples" / "stayafrica" / "app.yaml").playbooks


def test_example_playbook_steps_run_only_the_bots_commands():
    from commands import ALL

    specs = {spec.name: spec for spec in ALL}
    allowed = set(specs) | {"incident", "oncall"}
    for path in EXAMPLES:
        config = load_config(path)
        for name, playbook in config.playbooks.items():
            for step in playbook.steps:
                if step.command is None:
                    continue
                where = f"{path.parent.name}: playbook {name}: {step.command}"
                command, _, rest = step.command[1:].partition(" ")
                assert command in allowed, where
                if command == "incident":
                    assert rest.split()[0] in ("note", "update") and len(rest.split()) > 1, where
                if command not in specs or command == "incident":
                    continue
                args = specs[command].grammar.parse(rest)  # a UsageError fails the test with the grammar's sentence
                for key in SERVICE_POSITIONALS:
                    named = args.positionals.get(key) or []
                    for service in [named] if isinstance(named, str) else named:
                        assert service in config.services, where


ONE_PASS = """\
version: 1
services:
  web:
    depends_on: [databse]
    owners: [ops]
    checks:
      - kind: http
        url: http://127.0.0.1:1/${OPSBOT_TEST_SURELY_UNSET_VAR}
databases:
  main:
    dsn: postgresql://app@127.0.0.1/app
    owners: [ops]
roles:
  ops: {users: [UOPS1, UOPS2]}
playbooks:
  down:
    title: Web down
    services: [wbe]
    steps:
      - text: Restart it
        command: /restart databse
      - text: Check
        command: /health web
incidents: {}
"""


def test_config_check_reports_every_problem_in_one_pass_at_the_line_of_each_reference(tmp_path, capsys):
    path = tmp_path / "app.yaml"
    path.write_text(ONE_PASS)
    assert cli(["config", "check", str(path)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    # The cross-references, each at its own line and key path (not at `version: 1`).
    assert f"{path}:4: services.web.depends_on[0]: service 'web' depends on unknown service 'databse'" in lines
    assert f"{path}:18: playbooks.down.services[0]: playbook 'down' names unknown service 'wbe'" in lines
    assert not any(f"{path}:1:" in line for line in lines)
    # In the same pass: the playbook step, parsed with /restart's grammar, and /restore's policy.
    assert any("playbooks.down.steps[0].command" in line and "unknown service 'databse'" in line for line in lines)
    assert any("action 'restore' on database 'main' can never be approved" in line for line in lines)
    assert "4 problems in" in out


def test_config_check_parses_playbook_steps_and_finds_unmeetable_approvals_and_unset_variables(tmp_path, capsys):
    path = tmp_path / "app.yaml"
    path.write_text(ONE_PASS.replace("    depends_on: [databse]\n", "").replace("services: [wbe]", "services: [web]"))
    assert cli(["config", "check", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    # The step's command, parsed with /restart's own grammar and checked against services:.
    [step] = [line for line in lines if "playbooks.down.steps[0].command" in line]
    assert step.startswith(f"{path}:20: ") and "unknown service 'databse'" in step
    assert not any("steps[1]" in line for line in lines)
    # /restore needs two approvers besides the one who asks; ops has two people in all.
    [restore] = [line for line in lines if "action 'restore'" in line]
    assert restore == (
        f"{path}:11: databases.main.owners: action 'restore' on database 'main' can never be approved: "
        "it needs 2 approvals, and at most 1 person besides the requester holds the ops role"
    )
    # An unset ${VAR} is a warning with its line, not a problem.
    assert f"warning: {path}:7: services.web.checks[0].url: ${{OPSBOT_TEST_SURELY_UNSET_VAR}} is not set in this environment" in lines
    assert "2 problems in" in lines[-1]


def test_a_third_approver_or_a_user_group_makes_the_policy_meetable(tmp_path, capsys):
    text = ONE_PASS.replace("    depends_on: [databse]\n", "").replace("services: [wbe]", "services: [web]").replace("/restart databse", "/restart web")
    for roles in ("  ops: {users: [UOPS1, UOPS2, UOPS3]}", "  ops: {users: [UOPS1], groups: [SOPS1]}"):
        path = tmp_path / "app.yaml"
        path.write_text(text.replace("  ops: {users: [UOPS1, UOPS2]}", roles))
        assert cli(["config", "check", str(path)]) == 0, capsys.readouterr().out
        out = capsys.readouterr().out
        assert "is valid" in out and "warning:" in out


def test_the_bundled_and_example_files_pass_config_check(capsys):
    for path in [ROOT / "app.yaml", *EXAMPLES]:
        assert cli(["config", "check", str(path)]) == 0, capsys.readouterr().out
