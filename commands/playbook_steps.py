"""Playbook steps checked with the commands' own grammars, when app.yaml is checked.

A step's Run button sends its command through the normal pipeline; a step that the grammar
refuses (`/restart databse`) would fail only when someone presses it mid-incident. The models
cannot see the grammars (they live here, above the config), so `opsbot config check` asks this.
"""
from __future__ import annotations

from bot.config.types import At
from bot.pipeline.parse import UsageError

# Positional arguments that name services (checked against services:).
_SERVICE_POSITIONALS = ("service", "services")


def playbook_step_problems(config) -> list[At]:
    from commands import ALL

    specs = {spec.name: spec for spec in ALL}
    problems: list[At] = []
    for name, playbook in config.playbooks.items():
        for index, step in enumerate(playbook.steps):
            if step.command is None:
                continue
            at = ("playbooks", name, "steps", index, "command")
            command, _, rest = step.command.removeprefix("/").partition(" ")
            spec = specs.get(command)
            if spec is None:
                problems.append(At(at, f"playbook '{name}' step {index + 1} runs /{command[:40]}, which is not a command of this bot"))
                continue
            try:
                args = spec.grammar.parse(rest)
            except UsageError as exc:
                problems.append(At(at, f"playbook '{name}' step {index + 1}: {step.command[:80]}: {exc}"))
                continue
            for key in _SERVICE_POSITIONALS:
                named = args.positionals.get(key) or []
                for service in [named] if isinstance(named, str) else named:
                    if service not in config.services:
                        problems.append(At(at, f"playbook '{name}' step {index + 1} names unknown service '{service}'"))
    return problems
