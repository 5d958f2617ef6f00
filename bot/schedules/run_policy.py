"""Who may run a schedule by hand (/schedule run NAME): whoever may do its work by hand.

/schedule declares this as the permission of its `run` subcommand, and the pipeline's central
check enforces it: each target the work touches, with the roles the command doing that by hand
(/backup, /db, /logs, /restore) would need there. A scheduled run is not a back door around them.
"""
from __future__ import annotations

from dataclasses import dataclass

from bot.action import policy
from bot.action.kinds.base import Target


@dataclass(frozen=True)
class Need:
    doing: str  # "backing up", for the sentence
    target: Target
    roles: frozenset[str]  # any one of them will do; empty: no one may


def needs(config, schedule) -> list[Need]:
    """What running `schedule` by hand needs, target by target; empty for a health check or a
    checklist, which only read what /health shows everyone, or post a list."""
    result: list[Need] = []

    def owned(names, doing: str = "reading") -> None:  # what /db reads and /backup need: a role owning the database
        for name in names:
            target = Target("database", name)
            result.append(Need(doing, target, frozenset(policy.owners(config, target))))

    def action(name: str, doing: str, targets: list[Target]) -> None:  # what the action's request needs
        spec = config.action(name)
        for target in targets:
            result.append(Need(doing, target, frozenset(policy.request_roles(config, spec, target))))

    databases = list(config.databases)
    if schedule.run == "backup":
        chosen = [schedule.database] if schedule.database else databases
        owned(chosen, "backing up")
        action("backup", "backing up", [Target("database", name) for name in chosen])
    elif schedule.run == "weekly_check":  # reads each database and restores its newest backup into a scratch copy
        owned(databases)
        action("restore", "restoring a backup of", [Target("database", name) for name in databases])
    elif schedule.run == "daily_check":  # reads each database, and each container's logs
        owned(databases)
        with_logs = [name for name, service in config.services.items() if service.container is not None]
        action("logs", "reading the logs of", policy.services(with_logs))
    return result


def run_permission(config, schedule, held: set[str]) -> str | None:
    """What someone holding `held` lacks to run `schedule` by hand, for "it needs ... in app.yaml";
    None when allowed. A role at least, as for every guarded subcommand."""
    if not held:
        return "a role"
    for need in needs(config, schedule):
        if not need.roles & held:
            if not need.roles:
                return f"a role for {need.doing} {need.target.name} (app.yaml gives it to none)"
            return f"the {policy.roles_phrase(set(need.roles))} role for {need.doing} {need.target.name}"
    return None
