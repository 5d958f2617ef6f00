"""Build inbound Slack requests (slash commands, block actions) for tests.

``sign`` computes the headers exactly as Slack does; the body builders produce
the form bodies Slack POSTs to the bot, with every field the contract lists
(``/work/shared/docs/slack-contract.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

__all__ = ["block_actions_body", "new_trigger_id", "sign", "slash_command_body"]

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


def slash_command_body(
    command: str,
    text: str,
    user_id: str = "U1",
    channel_id: str = "C1",
    response_url: str = UNSET_RESPONSE_URL,
    trigger_id: str | None = None,
    **extra: str,
) -> str:
    """The urlencoded body Slack POSTs for a slash command.

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
    return urlencode(fields)


def block_actions_body(
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
) -> str:
    """The ``payload=<json>`` form body Slack POSTs when a button is clicked.

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
    return urlencode({"payload": json.dumps(payload)})
