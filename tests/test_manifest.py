"""slack-manifest.yaml declares every slash command the bot registers, with Socket Mode and interactivity on."""
from pathlib import Path

import yaml

from commands import ALL

ROOT = Path(__file__).resolve().parent.parent


def test_manifest_matches_the_commands():
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())
    declared = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert declared == {f"/{spec.name}" for spec in ALL}
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "usergroups:read", "files:write"} <= scopes
    # Incidents: their channels, pages by direct message, the pinned headline, 📌 events.
    assert {"channels:manage", "channels:history", "im:write", "pins:write", "reactions:read"} <= scopes
    assert {"channels:read", "groups:read"} <= scopes  # conversations.members: who may read a private incident's content
    assert "reaction_added" in manifest["settings"]["event_subscriptions"]["bot_events"]
