"""Who may request and who may approve an action. Everything not granted is denied.

A plan can touch several targets (--with-dependents, a restore's dependents): the requester
and every approver must hold the right role for each of them. A target's owners are its
own `owners:`, or those of the service it belongs to.
"""
from __future__ import annotations

from bot.action.kinds.base import Target
from bot.config.models import AppConfig


def owners(config: AppConfig, target: Target) -> set[str]:
    if target.kind == "service":
        service = config.services.get(target.name)
        return set(service.owners) if service else set()
    entry = (config.databases if target.kind == "database" else config.caches).get(target.name)
    if entry is None:
        return set()
    if entry.owners:
        return set(entry.owners)
    service = config.services.get(entry.service) if entry.service else None
    return set(service.owners) if service else set()


def exists(config: AppConfig, target: Target) -> bool:
    known = {"service": config.services, "database": config.databases, "cache": config.caches}[target.kind]
    return target.name in known


def request_roles(config: AppConfig, spec, target: Target) -> set[str]:
    return set(spec.request_roles or owners(config, target))


def approver_roles(config: AppConfig, spec, target: Target) -> set[str]:
    return set(spec.approval.approver_roles or owners(config, target))


def roles_phrase(roles: set[str]) -> str:
    return " or ".join(sorted(roles)) if roles else "a role (none is configured for it in app.yaml)"


def missing_role(held: set[str], roles_for, config: AppConfig, spec, targets: list[Target]) -> tuple[Target, set[str]] | None:
    """The first target whose `roles_for` roles `held` does not intersect, with those roles; None when all are covered.

    A plan without targets is covered by nobody: an empty list must never mean "anyone"."""
    if not targets:
        return Target("service", "?"), set()
    for target in targets:
        allowed = roles_for(config, spec, target)
        if not allowed & held:
            return target, allowed
    return None


async def request_refusal(roles_directory, config: AppConfig, spec, targets: list[Target], user: str, verb: str) -> str | None:
    """None when `user` may request the action on all of `targets`; otherwise the sentence saying why not."""
    missing = missing_role(await roles_directory.roles_of(user), request_roles, config, spec, targets)
    if missing:
        target, allowed = missing
        return f"You cannot {verb} {target.name}: it needs the {roles_phrase(allowed)} role in app.yaml."
    return None


async def approval_refusal(roles_directory, config: AppConfig, spec, targets: list[Target], requester: str, user: str) -> str | None:
    """None when `user` may approve an action on all of `targets` now; otherwise the sentence saying why not."""
    if user == requester and not spec.approval.self_approval:
        return "You requested this, so someone else has to approve it (two-person rule)."
    missing = missing_role(await roles_directory.roles_of(user), approver_roles, config, spec, targets)
    if missing:
        return f"You cannot approve this: approving needs the {roles_phrase(missing[1])} role."
    return None


def services(names: list[str]) -> list[Target]:
    return [Target("service", name) for name in names]


async def read_refusal(roles_directory, config: AppConfig, target: Target, user: str, verb: str) -> str | None:
    """For read-only commands (/db status, /cache queues): the target's owners may read it; None when `user` may."""
    allowed = owners(config, target)
    if not allowed & await roles_directory.roles_of(user):
        return f"You cannot {verb} {target.name}: it needs the {roles_phrase(allowed)} role in app.yaml."
    return None
