"""Slack's inbound payloads -> typed values, defensively, for HTTP and Socket Mode alike.

HTTP bodies come in three shapes (slash command form, `payload=<json>` form for
interactions, JSON for the Events API); Socket Mode envelopes carry the same objects
already decoded. Both end up in `parse_payload`, so the two transports can never
disagree on what a field means. Anything off (wrong type, missing field, too long,
not UTF-8, not JSON) raises `Malformed`, which HTTP answers with 400: a signed but
malformed request is a bug or an attack, never a reason for a 5xx and a traceback.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from bot.transport.form_state import _state_values
from bot.transport.inbound_fields import _ACTION_ID, Malformed, _id, _json, _object, _str, _ts, _url

MAX_TEXT = 40000  # the grammar refuses over 2,000 with a sentence (a pasted 10 KB title gets it); past a message's 40,000 the body is not Slack's
MAX_FIELDS = 64
MAX_METADATA = 3000  # view.private_metadata, as Slack bounds it
_COMMAND = re.compile(r"^/[^\s/\x00-\x1f\x7f]{1,32}$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z_]{0,63}$")
_REACTION = re.compile(r"^[^\s\x00-\x1f\x7f]{1,100}$")  # an emoji name: pushpin, +1, thumbsup::skin-tone-2


@dataclass(frozen=True)
class SlashCommand:
    command: str  # without the slash, lower case: Slack matches command names case-insensitively
    text: str
    user_id: str
    channel_id: str
    team_id: str
    response_url: str
    trigger_id: str

    @property
    def delivery_key(self) -> str | None:
        return f"trigger:{self.trigger_id}" if self.trigger_id else None


@dataclass(frozen=True)
class Interaction:
    """Any interactive payload. Only block_actions carry action_id/value; the rest are acknowledged."""

    kind: str  # block_actions, view_submission, view_closed, shortcut, block_suggestion, ...
    user_id: str
    team_id: str
    channel_id: str
    response_url: str
    trigger_id: str
    action_id: str = ""
    value: str = ""
    callback_id: str = ""  # a view's or shortcut's
    # view_submission: each block's input as one string, (block_id, value) in the view's order.
    fields: tuple[tuple[str, str], ...] = ()
    metadata: str = ""  # view_submission / view_closed: the view's private_metadata
    message_ts: str = ""  # block_actions: the ts of the message the button is on

    @property
    def delivery_key(self) -> str | None:
        return f"trigger:{self.trigger_id}" if self.trigger_id else None


@dataclass(frozen=True)
class ReactionAdded:
    """A reaction_added event on a message: who reacted, with which emoji, on which message."""

    user_id: str
    reaction: str  # the emoji's name, without colons: pushpin for 📌
    channel_id: str
    ts: str  # the message's ts
    event_ts: str = ""


@dataclass(frozen=True)
class EventCallback:
    """An Events API delivery. The envelope is checked strictly (400 when off); the event inside is
    read defensively: a body Slack would not send leaves `reaction` None and says why in `problem`,
    and the delivery is still acknowledged (a 400 would only make Slack retry it)."""

    event_id: str
    team_id: str
    event: dict
    event_type: str = ""  # event.type when it is an event type's name, else ""
    reaction: ReactionAdded | None = None  # set for a well-formed reaction_added on a message
    problem: str = ""  # why the event's fields could not be read: a field's name, never its value

    @property
    def delivery_key(self) -> str:
        return f"event:{self.event_id}"


@dataclass(frozen=True)
class UrlVerification:
    challenge: str
    delivery_key = None


@dataclass(frozen=True)
class OtherEvent:
    """An Events API body of another type (app_rate_limited, ...): acknowledged, nothing else."""

    kind: str
    delivery_key = None


Inbound = SlashCommand | Interaction | EventCallback | UrlVerification | OtherEvent


def parse_http(content_type: str, body: bytes) -> Inbound:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("body is not UTF-8") from None
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        return parse_payload("events_api", _json(text, "body"))
    try:
        form = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise Malformed("form body cannot be parsed") from None
    if any(len(values) != 1 for values in form.values()):
        raise Malformed("a form field is repeated")
    fields = {key: values[0] for key, values in form.items()}
    if "payload" in fields:
        return parse_payload("interactive", _json(fields["payload"], "payload"))
    if "command" in fields:
        return parse_payload("slash_commands", fields)
    raise Malformed("neither a slash command nor an interaction")


def parse_payload(envelope_type: str, payload: object) -> Inbound:
    """`envelope_type` as Socket Mode names it: slash_commands, interactive or events_api."""
    if not isinstance(payload, dict):
        raise Malformed(f"{envelope_type} payload is not an object")
    if envelope_type == "slash_commands":
        return _slash_command(payload)
    if envelope_type == "interactive":
        return _interaction(payload)
    if envelope_type == "events_api":
        return _event(payload)
    raise Malformed("unknown envelope type")


def _slash_command(fields: dict) -> SlashCommand:
    command = _str(fields, "command", 33)
    if not _COMMAND.fullmatch(command):
        raise Malformed("command is not a slash command name")
    return SlashCommand(
        command=command[1:].lower(),
        text=_str(fields, "text", MAX_TEXT, required=False),
        user_id=_id(fields, "user_id"),
        channel_id=_id(fields, "channel_id"),
        team_id=_id(fields, "team_id", required=False),
        response_url=_url(fields, "response_url"),
        trigger_id=_str(fields, "trigger_id", 255, required=False),
    )


def _interaction(payload: dict) -> Interaction:
    kind = _str(payload, "type", 64)
    user = _object(payload, "user")
    team = payload.get("team")
    team_id = _id(team, "id", required=False) if isinstance(team, dict) else _id(user, "team_id", required=False)
    channel = payload.get("channel")
    container = payload.get("container")
    channel_id = ""
    if isinstance(channel, dict):
        channel_id = _id(channel, "id", required=False)
    elif isinstance(container, dict):
        channel_id = _id(container, "channel_id", required=False)
    action_id = value = callback_id = metadata = message_ts = ""
    fields: tuple[tuple[str, str], ...] = ()
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise Malformed("block_actions without actions")
        action_id = _str(actions[0], "action_id", 255)
        if not _ACTION_ID.fullmatch(action_id):
            raise Malformed("action_id is not printable")
        value = _str(actions[0], "value", 2000, required=False)
        message_ts = _message_ts(payload)
    view = payload.get("view")
    if isinstance(view, dict):
        callback_id = _str(view, "callback_id", 255, required=False)
        metadata = _str(view, "private_metadata", MAX_METADATA, required=False)
        if kind == "view_submission":
            fields = _state_values(view)
    elif "callback_id" in payload:
        callback_id = _str(payload, "callback_id", 255, required=False)
    return Interaction(
        kind=kind,
        user_id=_id(user, "id"),
        team_id=team_id,
        channel_id=channel_id,
        response_url=_url(payload, "response_url", required=False),
        trigger_id=_str(payload, "trigger_id", 255, required=False),
        action_id=action_id,
        value=value,
        callback_id=callback_id,
        fields=fields,
        metadata=metadata,
        message_ts=message_ts,
    )


def _message_ts(payload: dict) -> str:
    """The clicked message's ts: container.message_ts, else message.ts; "" on a modal's button."""
    for holder, key in (("container", "message_ts"), ("message", "ts")):
        data = payload.get(holder)
        if isinstance(data, dict) and data.get(key) is not None:
            return _ts(data, key)
    return ""


def _event(body: dict) -> Inbound:
    kind = _str(body, "type", 64)
    if kind == "url_verification":
        return UrlVerification(_str(body, "challenge", 255))
    if kind == "event_callback":
        event = _object(body, "event")
        event_type = event.get("type")
        if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
            event_type = ""
        reaction, problem = None, ""
        if event_type == "reaction_added":
            try:
                reaction = _reaction_added(event)
            except Malformed as exc:
                problem = str(exc)
        return EventCallback(
            event_id=_str(body, "event_id", 64),
            team_id=_id(body, "team_id", required=False),
            event=event,
            event_type=event_type,
            reaction=reaction,
            problem=problem,
        )
    return OtherEvent(kind)


def _reaction_added(event: dict) -> ReactionAdded | None:
    """None for a reaction on something other than a message (a file, a file comment)."""
    item = _object(event, "item")
    if item.get("type") != "message":
        return None
    reaction = _str(event, "reaction", 100)
    if not _REACTION.fullmatch(reaction):
        raise Malformed("reaction is not an emoji name")
    return ReactionAdded(
        user_id=_id(event, "user"),
        reaction=reaction,
        channel_id=_id(item, "channel"),
        ts=_ts(item, "ts"),
        event_ts=_ts(event, "event_ts", required=False),
    )
