"""A command request as every transport hands it to the pipeline."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    user_id: str
    channel_id: str
    command: str  # without the slash: "health"
    text: str  # argument text exactly as received
    transport: str  # "slack" or "console"
    trigger: str = "command"  # what started it; stored with check runs
    team_id: str = ""  # the Slack workspace; empty on the console
    trigger_id: str = ""  # Slack: lets the handler open a form (views.open) within 3 s
