"""Messages a handler posts and later edits in place (an action's plan, then its progress).

Slack posts with chat.postMessage and edits with chat.update; the console prints each
version. Handlers only see this protocol, never the transport.

A handler may also open a form (a Slack modal, bot/pipeline/forms.py) with the trigger_id of
the click or command that asked for it; the console has no forms, so `open_form` returns False
there and the handler answers with a sentence saying what to type instead.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.pipeline.forms import Form
from bot.pipeline.reply import Reply


UNRANKED = 1000

# How urgent the posts made in this task are, lower first: a page carries its severity's rank
# (P0 is 0). A transport that must queue posts to one channel (Slack's per-channel limit) sends
# the most urgent first. Set with `urgent(rank)`; posts nobody ranked come after every page.
urgency: ContextVar[int] = ContextVar("urgency", default=UNRANKED)


@contextmanager
def urgent(rank: int):
    token = urgency.set(rank)
    try:
        yield
    finally:
        urgency.reset(token)


class MessagePostFailed(Exception):
    """The transport refused the message; str() is its reason (e.g. Slack's not_in_channel)."""


class Messenger(Protocol):
    async def post(self, channel: str, reply: Reply) -> str:
        """Post a message; returns a reference to pass to update()."""

    async def update(self, ref: str, reply: Reply) -> None:
        """Replace the message `ref` with `reply` (buttons gone once decided)."""

    async def open_form(self, trigger_id: str, form: Form) -> bool:
        """Show `form` to the one whose click or command carried `trigger_id` (valid 3 s on Slack).

        False when it could not be shown (the console has no forms; Slack refused, e.g.
        expired_trigger_id): the caller then answers with a sentence saying what to type.
        """

    async def direct(self, user_id: str, reply: Reply) -> str:
        """A direct message to one user (Slack: conversations.open, then chat.postMessage)."""


@runtime_checkable
class ChannelAdmin(Protocol):
    """What only a chat workspace can do (Slack; the console cannot): incident channels and pins.
    Each raises MessagePostFailed with Slack's error (name_taken, already_pinned, ...)."""

    async def create_channel(self, name: str, *, private: bool) -> str:
        """A new channel; its id."""

    async def invite(self, channel: str, users: list[str]) -> None:
        """Invite users; those already in it are not an error."""

    async def members(self, channel: str) -> set[str]:
        """Who is in `channel` (conversations.members, every page); Slack's channel_not_found for a
        private channel the bot is not in."""

    async def set_topic(self, channel: str, topic: str) -> None: ...

    async def pin(self, ref: str) -> None:
        """Pin a message the bot posted (a post() reference)."""

    async def message(self, channel: str, ts: str) -> tuple[str, str] | None:
        """(author, text) of the message at `ts` in `channel` (conversations.history), None when gone."""

    async def posted(self, channel: str, marker: str) -> bool:
        """Whether one of the newest messages in `channel` (a user id: their direct messages with
        the bot) contains `marker`: a retried page checks before sending twice."""


class UserLookupFailed(Exception):
    """The workspace could not say who a user is (Slack unreachable, rate-limited); str() is its reason."""


@dataclass(frozen=True)
class ChatUser:
    """A user as the workspace knows them: what a handler checks before giving someone a duty."""

    id: str
    deleted: bool = False
    is_bot: bool = False


@runtime_checkable
class UserDirectory(Protocol):
    """Who a user id is (Slack: users.info; the console: the users app.yaml names)."""

    async def user(self, user_id: str) -> ChatUser | None:
        """The user, deleted or not; None when the workspace has no such user. UserLookupFailed when it cannot tell."""


@dataclass(frozen=True)
class Click:
    """A button press from either transport, or a modal submission, shortcut or event from Slack.

    `kind` is Slack's payload type; buttons are found by `action_id`, forms and shortcuts by
    `callback_id` (see `target`). An event (kind "event", e.g. a reaction_added) has the event
    type as `callback_id`, the one who caused it as `user_id`, the reaction's name as
    `action_id`, the message's channel and ts as `channel_id` and `value`; nobody can be
    answered, since Slack gives an event no response_url.
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
    # A modal submission's inputs, (block_id, value) in the form's order (see form_value).
    fields: tuple[tuple[str, str], ...] = ()
    metadata: str = ""  # a modal's private_metadata: the context its opener put there
    message_ts: str = ""  # a button's (or an event's) message, to edit or thread under

    @property
    def target(self) -> str:
        """The id the interaction is declared under: a button's action_id, "event:<type>" for an
        event, else the callback_id."""
        if self.kind == "block_actions":
            return self.action_id
        if self.kind == "event":
            return "event:" + self.callback_id
        return self.callback_id

    def form_value(self, block_id: str) -> str:
        """What was entered in the form's block `block_id`; "" when the form has no such block."""
        for key, value in self.fields:
            if key == block_id:
                return value
        return ""


@runtime_checkable
class Prompter(Protocol):
    """A transport that can ask the person at it for one more line (the console): a typed confirmation."""

    async def prompt(self, user_id: str, question: str) -> str | None:
        """The line typed in answer; None when there is none (end of input)."""
