"""Who may request and who may approve an action. Everything not granted is denied.

A plan can touch several services (--with-dependents): the requester and every approver
must hold the right role for each of them.
"""
from __future__ import annotations

from bot.config.models import ActionSpec, AppConfig


def request_roles(config: AppConfig, spec: ActionSpec, service: str) -> set[str]:
    return set(spec.request_roles or config.services[service].owners)


def approver_roles(config: AppConfig, spec: ActionSpec, service: str) -> set[str]:
    return set(spec.approval.approver_roles or config.services[service].owners)


def roles_phrase(roles: set[str]) -> str:
    return " or ".join(sorted(roles)) if roles else "a role (none is configured for it in app.yaml)"


def missing_role(held: set[str], roles_for, config: AppConfig, spec: ActionSpec, services: list[str]) -> tuple[str, set[str]] | None:
    """The first service whose `roles_for` roles `held` does not intersect, with those roles; None when all are covered."""
    for service in services:
        allowed = roles_for(config, spec, service)
        if not allowed & held:
            return service, allowed
    return None


async def request_refusal(roles_directory, config: AppConfig, spec: ActionSpec, services: list[str], user: str, verb: str) -> str | None:
    """None when `user` may request the action on all of `services`; otherwise the sentence saying why not."""
    missing = missing_role(await roles_directory.roles_of(user), request_roles, config, spec, services)
    if missing:
        service, allowed = missing
        return f"You cannot {verb} {service}: it needs the {roles_phrase(allowed)} role in app.yaml."
    return None


async def approval_refusal(
    roles_directory, config: AppConfig, spec: ActionSpec, services: list[str], requester: str, user: str
) -> str | None:
    """None when `user` may approve an action on all of `services` now; otherwise the sentence saying why not."""
    if user == requester and not spec.approval.self_approval:
        return "You requested this, so someone else has to approve it (two-person rule)."
    missing = missing_role(await roles_directory.roles_of(user), approver_roles, config, spec, services)
    if missing:
        return f"You cannot approve this: approving needs the {roles_phrase(missing[1])} role."
    return None
