"""Messages a handler posts and later edits in place (an action's plan, then its progress).

Slack posts with chat.postMessage and edits with chat.update; the console prints each
version. Handlers only see this protocol, never the transport.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.pipeline.reply import Reply


class MessagePostFailed(Exception):
    """The transport refused the message; str() is its reason (e.g. Slack's not_in_channel)."""


class Messenger(Protocol):
    async def post(self, channel: str, reply: Reply) -> str:
        """Post a message; returns a reference to pass to update()."""

    async def update(self, ref: str, reply: Reply) -> None:
        """Replace the message `ref` with `reply` (buttons gone once decided)."""


@dataclass(frozen=True)
class Click:
    """A button press from either transport, or a modal submission or shortcut from Slack.

    `kind` is Slack's payload type; buttons are found by `action_id`, forms and shortcuts by
    `callback_id` (see `target`).
    """

    user_id: str
    action_id: str
    value: str
    channel_id: str
    transport: str
    team_id: str = ""  # the Slack workspace; empty on the console
    kind: str = "block_actions"  # or view_submission, shortcut, message_action
    callback_id: str = ""  # a modal's or shortcut's
    trigger_id: str = ""  # Slack: lets a handler open a modal (views.open) within 3 s

    @property
    def target(self) -> str:
        """The id the interaction is declared under: a button's action_id, else the callback_id."""
        return self.action_id if self.kind == "block_actions" else self.callback_id
