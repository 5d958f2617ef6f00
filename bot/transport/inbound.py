"""Slack's inbound payloads -> typed values, defensively, for HTTP and Socket Mode alike.

HTTP bodies come in three shapes (slash command form, `payload=<json>` form for
interactions, JSON for the Events API); Socket Mode envelopes carry the same objects
already decoded. Both end up in `parse_payload`, so the two transports can never
disagree on what a field means. Anything off (wrong type, missing field, too long,
not UTF-8, not JSON) raises `Malformed`, which HTTP answers with 400: a signed but
malformed request is a bug or an attack, never a reason for a 5xx and a traceback.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_TEXT = 8000  # the grammar refuses over 2,000 with a sentence; past this the body is not Slack's
MAX_FIELDS = 64
_ID = re.compile(r"^[A-Z0-9]{1,32}$")
_COMMAND = re.compile(r"^/[^\s/\x00-\x1f\x7f]{1,32}$")
_ACTION_ID = re.compile(r"^[^\x00-\x1f]{1,255}$")


class Malformed(ValueError):
    """The body is not one Slack sends; str() says which part, for the log (never the body itself)."""


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

    @property
    def delivery_key(self) -> str | None:
        return f"trigger:{self.trigger_id}" if self.trigger_id else None


@dataclass(frozen=True)
class EventCallback:
    event_id: str
    team_id: str
    event: dict

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
    if not _COMMAND.match(command):
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
    action_id = value = callback_id = ""
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise Malformed("block_actions without actions")
        action_id = _str(actions[0], "action_id", 255)
        if not _ACTION_ID.match(action_id):
            raise Malformed("action_id is not printable")
        value = _str(actions[0], "value", 2000, required=False)
    view = payload.get("view")
    if isinstance(view, dict):
        callback_id = _str(view, "callback_id", 255, required=False)
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
    )


def _event(body: dict) -> Inbound:
    kind = _str(body, "type", 64)
    if kind == "url_verification":
        return UrlVerification(_str(body, "challenge", 255))
    if kind == "event_callback":
        return EventCallback(event_id=_str(body, "event_id", 64), team_id=_id(body, "team_id", required=False), event=_object(body, "event"))
    return OtherEvent(kind)


def _json(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a deeply nested document
        raise Malformed(f"{what} is not JSON") from None


def _object(data: dict, key: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise Malformed(f"{key} is not an object")
    return value


def _str(data: dict, key: str, limit: int, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise Malformed(f"{key} is missing or not a string")
    if len(value) > limit:
        raise Malformed(f"{key} is too long")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSON \ud800 escape: no text Slack sends
            raise Malformed(f"{key} is not text") from None
    return value


def _id(data: dict, key: str, *, required: bool = True) -> str:
    value = _str(data, key, 32, required=required)
    if value and not _ID.match(value):
        raise Malformed(f"{key} is not a Slack id")
    return value


def _url(data: dict, key: str, *, required: bool = True) -> str:
    value = _str(data, key, 2000, required=required)
    if value and not value.startswith(("https://", "http://")):
        raise Malformed(f"{key} is not a URL")
    return value
