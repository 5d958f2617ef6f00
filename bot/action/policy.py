"""Who may request and who may approve an action. Everything not granted is denied."""
from __future__ import annotations

from bot.config.models import ActionSpec, AppConfig


def request_roles(config: AppConfig, spec: ActionSpec, service: str) -> set[str]:
    return set(spec.request_roles or config.services[service].owners)


def approver_roles(config: AppConfig, spec: ActionSpec, service: str) -> set[str]:
    return set(spec.approval.approver_roles or config.services[service].owners)


def roles_phrase(roles: set[str]) -> str:
    return " or ".join(sorted(roles)) if roles else "a role (none is configured for it in app.yaml)"


async def can_request(roles_directory, config: AppConfig, spec: ActionSpec, service: str, user: str) -> bool:
    allowed = request_roles(config, spec, service)
    return bool(allowed & await roles_directory.roles_of(user))


async def approval_refusal(roles_directory, config: AppConfig, spec: ActionSpec, service: str, requester: str, user: str) -> str | None:
    """None when `user` may approve now; otherwise the sentence saying why not."""
    if user == requester and not spec.approval.self_approval:
        return "You requested this, so someone else has to approve it (two-person rule)."
    allowed = approver_roles(config, spec, service)
    if not allowed & await roles_directory.roles_of(user):
        return f"You cannot approve this: approving needs the {roles_phrase(allowed)} role."
    return None
