"""Build inbound Slack requests (slash commands, interactions, events) for tests.

``sign`` computes the headers exactly as Slack does; the body builders produce
the form bodies Slack POSTs to the bot, with every field the contract lists
(``/work/shared/docs/slack-contract.md``). Each body is built from a dict
builder (``slash_command_fields``, ``block_actions_payload``) whose output is
what a Socket Mode envelope carries as its ``payload``, so both transports see
the same content. ``view_submission_payload`` and ``event_callback_payload``
build the modal-submit and Events API objects the same way; ``element_state`` and
``submission_state`` give a submission's ``view.state.values`` as Slack fills them in
for a modal's inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "block_actions_body",
    "block_actions_payload",
    "element_state",
    "event_callback_payload",
    "new_trigger_id",
    "reaction_added_event",
    "sign",
    "slash_command_body",
    "slash_command_fields",
    "submission_state",
    "view_submission_payload",
]

TEAM_ID = "T0TEST"
TEAM_DOMAIN = "opsbot-test"
API_APP_ID = "A0TEST"
# Deprecated verification token Slack still sends in every payload.
VERIFICATION_TOKEN = "verification-token"
# Default response_url points at a closed local port on purpose: a test that
# forgets to pass ``double.new_response_url()`` fails loudly instead of the bot
# posting to the real hooks.slack.com.
UNSET_RESPONSE_URL = "http://127.0.0.1:9/response/not-configured"
DEFAULT_MESSAGE_TS = "1700000000.000100"


def sign(secret: str, body: str | bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds to a request: timestamp and ``v0=`` HMAC-SHA256 signature.

    The signature covers ``v0:{timestamp}:{raw body}``; pass the exact bytes the
    bot will receive. ``timestamp`` defaults to now (Bolt refuses > 300 s old).
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = b"v0:" + str(ts).encode("ascii") + b":" + raw
    digest = hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def new_trigger_id() -> str:
    """A unique id shaped like Slack's (``<digits>.<digits>.<hex>``)."""
    return f"{secrets.randbelow(10**13):013d}.{secrets.randbelow(10**12):012d}.{secrets.token_hex(16)}"


def slash_command_fields(
    command: str,
    text: str,
    user_id: str = "U1",
    channel_id: str = "C1",
    response_url: str = UNSET_RESPONSE_URL,
    trigger_id: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The fields of a slash command, every value a string.

    Over HTTP they are form-encoded (:func:`slash_command_body`); over Socket
    Mode this dict is the ``slash_commands`` envelope's payload as it is.
    ``extra`` overrides or adds fields, e.g. ``channel_name="incidents"`` or
    ``enterprise_id="E1", enterprise_name="Acme"`` for Enterprise Grid.
    """
    fields: dict[str, str] = {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": "ops",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command if command.startswith("/") else f"/{command}",
        "text": text,
        "api_app_id": API_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    fields.update(extra)
    return fields


def slash_command_body(
    command: str,
    text: str,
    user_id: str = "U1",
    channel_id: str = "C1",
    response_url: str = UNSET_RESPONSE_URL,
    trigger_id: str | None = None,
    **extra: str,
) -> str:
    """The urlencoded body Slack POSTs for a slash command (see :func:`slash_command_fields`)."""
    return urlencode(slash_command_fields(command, text, user_id, channel_id, response_url, trigger_id, **extra))


def block_actions_payload(
    user_id: str,
    action_id: str,
    value: str,
    channel_id: str = "C1",
    message_ts: str = DEFAULT_MESSAGE_TS,
    response_url: str = UNSET_RESPONSE_URL,
    block_id: str = "actions",
    *,
    button_text: str | None = None,
    message_blocks: list[dict[str, Any]] | None = None,
    message_text: str = "",
    state_values: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    is_ephemeral: bool = False,
) -> dict[str, Any]:
    """The ``block_actions`` object Slack sends when a button is clicked.

    Over HTTP it is JSON in the ``payload`` form field (:func:`block_actions_body`);
    over Socket Mode it is the ``interactive`` envelope's payload as it is.
    Unless ``message_blocks`` is given, the clicked message is synthesised as a
    single actions block holding the button, so the payload is self-consistent.
    """
    text = button_text or value
    button = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "value": value,
    }
    blocks = message_blocks if message_blocks is not None else [
        {"type": "actions", "block_id": block_id, "elements": [button]}
    ]
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "ops"},
        "message": {
            "type": "message",
            "user": "UBOT",
            "bot_id": "BBOT",
            "ts": message_ts,
            "text": message_text,
            "team": TEAM_ID,
            "blocks": blocks,
        },
        "state": {"values": state_values or {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": text, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return payload


def block_actions_body(user_id: str, action_id: str, value: str, *args: Any, **kwargs: Any) -> str:
    """The ``payload=<json>`` form body Slack POSTs when a button is clicked; arguments as :func:`block_actions_payload`."""
    return urlencode({"payload": json.dumps(block_actions_payload(user_id, action_id, value, *args, **kwargs))})


def view_submission_payload(
    callback_id: str,
    state_values: dict[str, Any],
    *,
    user_id: str = "U1",
    private_metadata: str = "",
    blocks: list[dict[str, Any]] | None = None,
    view_id: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """The ``view_submission`` object Slack sends when a modal is submitted.

    Input values go in ``state_values`` as ``{block_id: {action_id: {"type": ..., "value": ...}}}``.
    """
    view_id = view_id or f"V{secrets.token_hex(5).upper()}"
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": "modal",
            "blocks": blocks or [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state_values},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": {"type": "plain_text", "text": "Opsbot", "emoji": True},
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": API_APP_ID,
            "external_id": "",
            "app_installed_team_id": TEAM_ID,
            "bot_id": "BBOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def element_state(element_type: str, value: str | list[str] | None) -> dict[str, Any]:
    """One input's state as Slack sends it in ``view.state.values[block_id][action_id]``.

    ``value``: the text typed, the option value or user id chosen (a list for the multi
    selects and checkboxes); None or empty is an input left empty.
    """
    state: dict[str, Any] = {"type": element_type}
    values = value if isinstance(value, list) else ([] if value in (None, "") else [value])

    def option(v: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": v, "emoji": True}, "value": v}

    if element_type == "plain_text_input":
        state["value"] = value if isinstance(value, str) and value else None
    elif element_type in ("static_select", "radio_buttons", "external_select"):
        state["selected_option"] = option(values[0]) if values else None
    elif element_type in ("multi_static_select", "checkboxes", "multi_external_select"):
        state["selected_options"] = [option(v) for v in values]
    elif element_type == "users_select":
        state["selected_user"] = values[0] if values else None
    elif element_type == "multi_users_select":
        state["selected_users"] = list(values)
    elif element_type == "conversations_select":
        state["selected_conversation"] = values[0] if values else None
    elif element_type == "datepicker":
        state["selected_date"] = values[0] if values else None
    else:
        raise ValueError(f"no state shape for {element_type!r} here")
    return state


def submission_state(view: dict[str, Any], answers: dict[str, str | list[str] | None]) -> dict[str, Any]:
    """``view.state.values`` for submitting ``view`` (as opened with views.open), every input block
    present as Slack sends it, filled with ``answers`` (block_id -> value, see :func:`element_state`)."""
    unknown = set(answers) - {b.get("block_id") for b in view["blocks"]}
    if unknown:
        raise ValueError(f"the view has no blocks {sorted(unknown)}")
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element = block["element"]
        values[block["block_id"]] = {element["action_id"]: element_state(element["type"], answers.get(block["block_id"]))}
    return values


def event_callback_payload(
    event: dict[str, Any], *, event_id: str | None = None, event_time: int | None = None
) -> dict[str, Any]:
    """The Events API ``event_callback`` body around ``event`` (HTTP body or ``events_api`` payload)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": API_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": "UBOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def reaction_added_event(
    user_id: str, reaction: str, channel_id: str, ts: str, *, item_user: str = "UBOT"
) -> dict[str, Any]:
    """A ``reaction_added`` event on a message (``pushpin`` is the 📌 reaction)."""
    return {
        "type": "reaction_added",
        "user": user_id,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel_id, "ts": ts},
        "item_user": item_user,
        "event_ts": f"{time.time():.6f}",
    }
