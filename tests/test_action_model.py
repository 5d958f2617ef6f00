"""The action model's data: plans as stored, targets named by parameters, values as command arguments."""
from __future__ import annotations

from conftest import fleet

from bot.action import policy
from bot.action.kinds.base import Plan, PlanContext, Target
from bot.action.kinds.docker_exec import KIND as EXEC, as_argument


def test_a_plan_stored_before_action_kinds_still_names_its_services():
    # What a pending /restart request holds in the database after an upgrade from the restart-only flow.
    legacy = {
        "action": "restart", "kind": "docker_restart", "service": "web",
        "options": {"with_dependents": True, "force_recreate": False},
        "steps": [{"service": "web", "container": "c", "container_id": "abc", "operation": "restart", "graceful_timeout": 30.0}],
        "skipped": [], "verify": None,
    }
    plan = Plan.from_json(legacy)
    assert plan.subject == "web" and plan.targets == [Target("service", "web")]
    assert plan.params == {"with_dependents": True, "force_recreate": False}


def test_a_plan_without_targets_is_covered_by_nobody(make_bot):
    # An empty list must never read as "every target is covered".
    assert policy.missing_role({"ops"}, lambda *_: {"ops"}, None, None, []) is not None


def test_typed_values_become_the_arguments_a_command_line_expects():
    assert as_argument(1209600.0) == "1209600"  # 14d, not 1.2096e+06
    assert as_argument(1.5) == "1.5"
    assert as_argument(True) == "true" and as_argument(False) == "false"
    assert as_argument(7) == "7" and as_argument("; rm -rf /") == "; rm -rf /"  # one argument, never a shell


async def test_a_service_named_by_a_parameter_is_locked_and_role_checked_too(make_bot):
    web = fleet()["OPSBOT_FLEET_WEB"]
    bot = await make_bot(f"""
version: 1
services:
  web: {{container: {web}, owners: [ops]}}
  billing: {{owners: [finance]}}
roles:
  ops: {{users: [UOPS1, UOPS2]}}
  finance: {{users: [UFIN1]}}
actions:
  poke:
    kind: docker_exec
    service: web
    command: [echo, "{{target}}"]
    params:
      target: {{type: service}}
""")
    spec = bot.config.action("poke")
    plan = await EXEC.plan(PlanContext(bot, "UOPS1"), "poke", spec, {"target": "billing"})
    assert plan.targets == [Target("service", "web"), Target("service", "billing")]
    assert plan.steps[0]["argv"] == ["echo", "billing"]
    # The requester holds ops only: billing's owners (finance) are needed as well.
    refusal = await policy.request_refusal(bot.roles, bot.config, spec, plan.targets, "UOPS1", "run commands in")
    assert refusal == "You cannot run commands in billing: it needs the finance role in app.yaml."
