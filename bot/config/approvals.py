"""Approval policies that no set of users can meet, found when app.yaml is read.

An action that needs two approvals from a role of two people, one of whom asks, can never run:
at 3 a.m. that is found out by the person who needs it. The count is an upper bound on the
people who could approve: a role's users, plus one for each rotation behind it (only its current
on-call holds the role), and no bound at all for a Slack user group (its members are known only
at run time). A policy is refused only when even that bound falls short.
"""
from __future__ import annotations

from dataclasses import dataclass

from bot.config.action_models import DEFAULT_ACTIONS
from bot.config.types import At

# Which section a kind's target lives in, by the kind's name (the shipped actions and any declared one).
_TARGET_SECTIONS = (("pg_", "databases"), ("redis_", "caches"))


@dataclass(frozen=True)
class _People:
    users: frozenset[str]
    rotations: int
    unbounded: bool  # a user group: any number

    def at_most(self) -> float:
        return float("inf") if self.unbounded else len(self.users) + self.rotations


def _people(config, roles: set[str]) -> _People:
    users: set[str] = set()
    rotations: set[str] = set()
    unbounded = False
    for name in roles:
        role = config.roles.get(name)
        if role is None:
            continue  # an unknown role is reported on its own
        users.update(role.users)
        rotations.update(role.rotations)
        unbounded = unbounded or bool(role.groups)
    return _People(frozenset(users), len(rotations), unbounded)


def _owners(config, section: str, name: str) -> list[str]:
    if section == "services":
        return list(config.services[name].owners)
    entry = getattr(config, section)[name]
    if entry.owners:
        return list(entry.owners)
    service = config.services.get(entry.service) if entry.service else None
    return list(service.owners) if service else []


def _targets(config, spec) -> list[tuple[str, str]]:
    """(section, name) of every target the action can be asked for."""
    service = getattr(spec, "service", None)
    if service:
        return [("services", service)] if service in config.services else []
    section = next((s for prefix, s in _TARGET_SECTIONS if spec.kind.startswith(prefix)), "services")
    return [(section, name) for name in getattr(config, section)]


def _declared_at(config, name: str) -> tuple:
    if name in config.actions:
        return ("actions", name)
    if name in config.jobs:
        return ("jobs", name)
    return ()


def approval_problems(config) -> list[At]:
    problems: list[At] = []
    specs = {**DEFAULT_ACTIONS, **config.actions, **config.jobs}
    for action, spec in specs.items():
        needed = spec.approval.approvals
        if needed == 0:
            continue
        for section, target in _targets(config, spec):
            owners = _owners(config, section, target)
            approver_roles = set(spec.approval.approver_roles or owners)
            request_roles = set(spec.request_roles or owners)
            if not approver_roles or not request_roles:
                continue  # nobody may ask: a deliberate lock, not a policy that cannot be met
            approvers, requesters = _people(config, approver_roles), _people(config, request_roles)
            if requesters.at_most() == 0:
                continue
            # The requester counts against the approvers only when every possible requester is one of them.
            requester_is_an_approver = (
                not spec.approval.self_approval
                and not requesters.unbounded
                and requesters.rotations == 0
                and requesters.users <= approvers.users
            )
            could_approve = approvers.at_most() - (1 if requester_is_an_approver else 0)
            if could_approve >= needed:
                continue
            where = _declared_at(config, action)
            path = where + ("approval",) if where else (section, target, "owners")
            who = ", ".join(sorted(approver_roles))
            besides = " besides the requester" if requester_is_an_approver else ""
            problems.append(
                At(
                    path,
                    f"action '{action}' on {section[:-1]} '{target}' can never be approved: it needs {needed} "
                    f"approval{'s' if needed != 1 else ''}, and at most {max(0, int(could_approve))} "
                    f"{'person' if int(could_approve) == 1 else 'people'}{besides} hold{'s' if int(could_approve) == 1 else ''} "
                    f"the {who} role{'s' if len(approver_roles) != 1 else ''}",
                )
            )
    return problems
