"""Who may open or end a maintenance window: silencing is a power over the services it names.

A window on services needs, for each of them, a role that owns it (`services.<name>.owners`,
the roles a guarded action on it needs too). A window on every service needs a role in
`maintenance.all_services_roles`; when none is declared, nobody may open one.
"""
from __future__ import annotations

from bot.action.kinds.base import Target
from bot.action.policy import owners, roles_phrase
from bot.config.models import AppConfig


async def refusal(roles_directory, config: AppConfig, services: list[str] | tuple[str, ...], user: str, verb: str) -> str | None:
    """None when `user` may `verb` ("open", "end") a window on `services` (empty: every service); else the sentence why not."""
    held = await roles_directory.roles_of(user)
    if not services:
        allowed = set(config.maintenance.all_services_roles)
        if not allowed:
            return (f"You cannot {verb} a window on every service: app.yaml declares no role for it "
                    "(maintenance.all_services_roles); name the services instead.")
        if not allowed & held:
            return f"You cannot {verb} a window on every service: it needs the {roles_phrase(allowed)} role (maintenance.all_services_roles)."
        return None
    for name in services:
        allowed = owners(config, Target("service", name))
        if not allowed:
            return f"You cannot {verb} a window on {name}: app.yaml names no owners for it (services.{name}.owners)."
        if not allowed & held:
            return f"You cannot {verb} a window on {name}: it needs the {roles_phrase(allowed)} role (its owners in app.yaml)."
    return None
