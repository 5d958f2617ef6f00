"""Who holds which role: Slack user IDs directly, user groups through usergroups.users.list,
and the current on-call of a rotation (role.rotations) through an on-call lookup."""
from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable

from bot.config.models import AppConfig

log = logging.getLogger(__name__)

GroupLookup = Callable[[str], Awaitable[list[str]]]
# rotation name -> the users on call for it now (bot.oncall.service.OncallDirectory.on_call_users)
OncallLookup = Callable[[str], Awaitable[set[str]]]

# In a spec's roles: any configured role passes the pipeline; the handler applies a finer policy.
ANY_ROLE = "*"


def role_needed(held: set[str], roles: tuple[str, ...]) -> str | None:
    """None when `held` passes `roles`; otherwise what is missing, for a sentence: "a role", "the ops or dev role"."""
    if held.intersection(roles) or (ANY_ROLE in roles and held):
        return None
    return "a role" if ANY_ROLE in roles else "the " + (" or ".join(roles) or "a role that no one holds") + " role"


class RoleDirectory:
    def __init__(self, config: AppConfig, group_lookup: GroupLookup | None = None, ttl: float = 60.0, *, oncall: OncallLookup | None = None):
        self._config = config
        self._group_lookup = group_lookup
        self._oncall = oncall
        self._ttl = ttl
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    async def roles_of(self, user_id: str, *, fresh: bool = False) -> set[str]:
        """`fresh` skips the group cache: used right before an approved action runs."""
        held = set()
        on_call: dict[str, frozenset[str]] = {}  # per call: a hand-off must take effect at once, so never cached across calls
        for name, role in self._config.roles.items():
            if user_id in role.users:
                held.add(name)
                continue
            for group in role.groups:
                if user_id in await self._members(group, fresh):
                    held.add(name)
                    break
            else:  # no group granted it: one of its rotations may
                for rotation in role.rotations:
                    if rotation not in on_call:
                        on_call[rotation] = await self._on_call(rotation)
                    if user_id in on_call[rotation]:
                        held.add(name)
                        break
        return held

    async def _on_call(self, rotation: str) -> frozenset[str]:
        if self._oncall is None:
            return frozenset()  # no on-call lookup wired: the rotation grants nothing
        try:
            return frozenset(await self._oncall(rotation))
        except Exception as exc:  # fail closed, but say why in the log
            log.warning("cannot tell who is on call for rotation %s: %s", rotation, exc)
            return frozenset()

    async def _members(self, group: str, fresh: bool = False) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached and not fresh and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        if self._group_lookup is None:
            return frozenset()  # no Slack here: group membership cannot be shown, so it is not granted
        try:
            members = frozenset(await self._group_lookup(group))
        except Exception as exc:  # fail closed, but say why in the log
            log.warning("cannot resolve user group %s: %s", group, exc)
            return frozenset()
        self._groups[group] = (time.monotonic(), members)
        return members
