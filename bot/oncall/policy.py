"""Who may override a rotation, and who may be put on call by an override.

An override hands the rotation's roles (role.rotations) to the covering user, so it must not
mint them: the rotation says who may override it (`override_roles`, else only its own
members, swapping among themselves), and the covering user must be one of its members, a
person the workspace knows, not deleted and not a bot.
"""
from __future__ import annotations

from bot.config.incident_models import Rotation
from bot.pipeline.markup import Mention, Text
from bot.pipeline.messenger import UserDirectory, UserLookupFailed
from bot.pipeline.roles import role_needed


def override_permission(name: str, rotation: Rotation, user_id: str, held: set[str]) -> str | None:
    """What `user_id` (holding `held`) lacks to override `rotation`, for "it needs ... in app.yaml"; None when allowed."""
    if rotation.override_roles:
        return role_needed(held, tuple(rotation.override_roles))
    return None if user_id in rotation.members else f"membership of the {name} rotation"


async def cover_refusal(name: str, rotation: Rotation, user_id: str, directory: UserDirectory | None) -> Text | None:
    """Why `user_id` cannot cover `rotation`, as one sentence; None when they can."""
    if user_id not in rotation.members:
        return Text(Mention(user_id), f" is not a member of the {name} rotation; an override hands it to one of its members.")
    if directory is None:
        return Text("opsbot cannot look up users here, so it cannot check ", Mention(user_id), "; nothing was changed.")
    try:
        found = await directory.user(user_id)
    except UserLookupFailed as exc:
        return Text("Slack could not say who ", Mention(user_id), f" is ({str(exc)[:64]}); nothing was changed. Try again shortly.")
    if found is None:
        return Text(f"{user_id} is not a user in this workspace; nothing was changed.")
    if found.deleted:
        return Text(Mention(user_id), "'s account is deactivated; an override needs someone who can answer pages.")
    if found.is_bot:
        return Text(Mention(user_id), " is a bot; an override needs a person who can answer pages.")
    return None
