"""A real HTTP imitation of Slack's Web API, for tests.

``SlackDouble`` runs an aiohttp server on 127.0.0.1 (free port) that speaks
enough of Slack's Web API for opsbot: the bot talks to it through an ordinary
``AsyncWebClient(base_url=double.api_url)``, so the whole HTTP path (headers,
body encodings, status codes, retry handlers) is exercised, not a mock.

The double enforces the facts in ``/work/shared/docs/slack-contract.md`` so a
green test means the real Slack would accept the same traffic:

* bearer-token auth on every ``/api/<method>`` call (``not_authed`` /
  ``invalid_auth``, HTTP 200 like Slack); ``apps.connections.open`` takes the
  app-level ``xapp-`` token and every other method the bot token (the wrong
  kind is ``not_allowed_token_type``);
* Socket Mode: ``apps.connections.open`` returns a single-use ``ws://`` URL
  served by ``socket`` (:class:`socket_mode_double.SocketModeDouble`);
* arguments accepted as JSON body, form body, or query string (merged);
* Block Kit limits (see :func:`validate_blocks`) and message ``text`` length;
* ``chat.update`` only on messages the bot previously posted in that channel;
* channels: ``conversations.create`` (Slack's name rules, a fresh id), ``conversations.invite``,
  ``conversations.setTopic`` (at most 250 characters), ``pins.add`` (of a message posted in
  that channel), ``conversations.open`` (one D id per user), ``conversations.history``
  (newest first, ``latest``/``oldest``/``inclusive``/``limit``) and ``conversations.members``
  (paginated with ``cursor``; a private channel, made with ``conversations.create(is_private)``,
  is ``channel_not_found`` unless the bot is in it), recorded in ``channels``;
  ids the double never created (configured ones such as C0INCIDENTS) are taken as existing
  public channels and recorded on first use; ``add_message`` puts a person's message in one;
* ``views.open`` (a ``trigger_id`` is required) and ``views.update`` (of an opened
  view) with the view checked like Slack: a modal, title/submit/close plain text of at
  most 24 characters, at most 100 blocks, ``private_metadata`` at most 3,000 characters;
* file upload v2 (get URL -> POST bytes without auth -> complete);
* ``response_url``: at most 5 posts within 30 minutes, then 404 ``used_url``;
* rate limiting (HTTP 429 + ``Retry-After``) and error injection on demand, and
  ``chat.postMessage``'s per-channel limit always (about 1 a second, bursts allowed;
  ``limit_channel_posts`` tightens it, ``posts_refused`` lists the 429s);
* escaping: no string the bot sends (message text, blocks, modals, topics, file titles and
  comments, bookmarks) holds a live ``<!channel>``-style special, a link, or a mention the bot
  did not place (see :func:`live_markup`; ``expect_mentions`` names the ones it may place).
  Slack would accept such a call, so the double answers as Slack does and records the breach
  in ``violations``; tests/conftest.py fails any test that leaves one.

Every call is recorded (``calls``, ``response_posts``, ``uploaded_files``) and
tests can await traffic produced by background tasks with ``wait_for``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

try:  # tests/ on sys.path (rootdir-relative imports, no tests/__init__.py)
    from socket_mode_double import SocketModeDouble
except ImportError:  # tests is a package
    from tests.socket_mode_double import SocketModeDouble

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "Call",
    "ResponsePost",
    "SlackDouble",
    "UploadedFile",
    "live_markup",
    "outbound_texts",
    "validate_blocks",
    "validate_view",
]

TEAM_ID = "T0TEST"
TEAM_DOMAIN = "opsbot-test"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_USER_NAME = "opsbot"

# --- Slack limits (see the contract's Block Kit table) ----------------------
MAX_BLOCKS_PER_MESSAGE = 50
MAX_BLOCKS_PER_MODAL = 100
MAX_MODAL_TITLE = 24  # title, submit and close
MAX_PRIVATE_METADATA = 3_000
MAX_MESSAGE_TEXT = 40_000
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_SECTION_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_URL = 3_000
MAX_ID = 255  # action_id, block_id, callback_id
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTIONS = 100
MAX_IMAGE_ALT_TEXT = 2_000
MAX_INPUT_LABEL = 2_000  # an input block's label and hint
MAX_PLAIN_TEXT_INPUT = 3_000  # a plain_text_input's max_length and initial_value
MAX_PLACEHOLDER = 150
# Elements an input block takes.
INPUT_ELEMENT_TYPES = frozenset(
    {
        "checkboxes",
        "channels_select",
        "conversations_select",
        "datepicker",
        "datetimepicker",
        "email_text_input",
        "external_select",
        "file_input",
        "multi_channels_select",
        "multi_conversations_select",
        "multi_external_select",
        "multi_static_select",
        "multi_users_select",
        "number_input",
        "plain_text_input",
        "radio_buttons",
        "rich_text_input",
        "static_select",
        "timepicker",
        "url_text_input",
        "users_select",
    }
)

MAX_CHANNEL_NAME = 80
MAX_TOPIC = 250
MAX_HISTORY_LIMIT = 999
MAX_MEMBERS_LIMIT, DEFAULT_MEMBERS_LIMIT = 1000, 100  # conversations.members
DEFAULT_HISTORY_LIMIT = 100
_CHANNEL_NAME_CHARS = re.compile(r"^[a-z0-9_-]+$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,31}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{1,31}$")

RESPONSE_URL_MAX_POSTS = 5
RESPONSE_URL_LIFETIME_S = 30 * 60

# Block types Slack accepts in messages; anything else is ``invalid_blocks``.
KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)
TEXT_OBJECT_TYPES = frozenset({"plain_text", "mrkdwn"})


# =============================================================================
# Block Kit validation
# =============================================================================


class _BlockErrors:
    """Collects validation messages, each prefixed with a JSON pointer."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, pointer: str, message: str) -> None:
        self.messages.append(f"{pointer}: {message}")

    def max_len(self, pointer: str, value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(pointer, f"must be at most {limit} characters (got {len(value)})")


def _check_text_object(
    errors: _BlockErrors,
    pointer: str,
    obj: Any,
    *,
    limit: int,
    plain_only: bool = False,
    required: bool = True,
) -> None:
    """Validate a composition text object ``{"type": ..., "text": ...}``."""
    if obj is None:
        if required:
            errors.add(pointer, "is required")
        return
    if not isinstance(obj, dict):
        errors.add(pointer, "must be a text object")
        return
    kind = obj.get("type")
    allowed = {"plain_text"} if plain_only else TEXT_OBJECT_TYPES
    if kind not in allowed:
        errors.add(f"{pointer}/type", f"must be one of {sorted(allowed)} (got {kind!r})")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        # Slack's minimum length for text objects is 1.
        errors.add(f"{pointer}/text", "must be a non-empty string")
        return
    errors.max_len(f"{pointer}/text", text, limit)


def _check_options(errors: _BlockErrors, pointer: str, options: Any) -> None:
    if not isinstance(options, list):
        errors.add(pointer, "must be an array")
        return
    if len(options) > MAX_OPTIONS:
        errors.add(pointer, f"must have at most {MAX_OPTIONS} items (got {len(options)})")
    for i, option in enumerate(options):
        op = f"{pointer}/{i}"
        if not isinstance(option, dict):
            errors.add(op, "must be an option object")
            continue
        _check_text_object(errors, f"{op}/text", option.get("text"), limit=MAX_OPTION_TEXT)
        value = option.get("value")
        if not isinstance(value, str) or not value:
            errors.add(f"{op}/value", "must be a non-empty string")
        else:
            errors.max_len(f"{op}/value", value, MAX_OPTION_VALUE)


def _check_element(errors: _BlockErrors, pointer: str, element: Any, action_ids: set[str]) -> None:
    """Validate an interactive element (button, select, ...) or image element."""
    if not isinstance(element, dict):
        errors.add(pointer, "must be an object")
        return
    kind = element.get("type")
    if not isinstance(kind, str):
        errors.add(f"{pointer}/type", "is required")
        return
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str):
            errors.add(f"{pointer}/action_id", "must be a string")
        else:
            errors.max_len(f"{pointer}/action_id", action_id, MAX_ID)
            # Slack requires action_ids to be unique within their block.
            if action_id in action_ids:
                errors.add(f"{pointer}/action_id", f"duplicate action_id {action_id!r}")
            action_ids.add(action_id)
    if kind == "button":
        _check_text_object(errors, f"{pointer}/text", element.get("text"), limit=MAX_BUTTON_TEXT, plain_only=True)
        errors.max_len(f"{pointer}/value", element.get("value"), MAX_BUTTON_VALUE)
        errors.max_len(f"{pointer}/url", element.get("url"), MAX_URL)
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            errors.add(f"{pointer}/style", f"must be 'primary' or 'danger' (got {style!r})")
    elif kind == "image":
        errors.max_len(f"{pointer}/image_url", element.get("image_url"), MAX_URL)
        if not element.get("alt_text"):
            errors.add(f"{pointer}/alt_text", "is required")
        errors.max_len(f"{pointer}/alt_text", element.get("alt_text"), MAX_IMAGE_ALT_TEXT)
    elif kind in ("static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"):
        if "options" in element:
            _check_options(errors, f"{pointer}/options", element["options"])
        elif "option_groups" not in element:
            errors.add(f"{pointer}/options", "is required")
        # Initial options must be among the options, text and all.
        offered = element.get("options") if isinstance(element.get("options"), list) else []
        initial = element.get("initial_option")
        if initial is not None and initial not in offered:
            errors.add(f"{pointer}/initial_option", "must be one of the options")
        initials = element.get("initial_options")
        if initials is not None and (not isinstance(initials, list) or any(o not in offered for o in initials)):
            errors.add(f"{pointer}/initial_options", "must be options of the element")
    elif kind == "plain_text_input":
        max_length = element.get("max_length")
        if max_length is not None and (not isinstance(max_length, int) or not 1 <= max_length <= MAX_PLAIN_TEXT_INPUT):
            errors.add(f"{pointer}/max_length", f"must be an integer from 1 to {MAX_PLAIN_TEXT_INPUT}")
        min_length = element.get("min_length")
        if min_length is not None and (not isinstance(min_length, int) or not 0 <= min_length <= MAX_PLAIN_TEXT_INPUT):
            errors.add(f"{pointer}/min_length", f"must be an integer from 0 to {MAX_PLAIN_TEXT_INPUT}")
        initial_value = element.get("initial_value")
        if initial_value is not None:
            limit = max_length if isinstance(max_length, int) else MAX_PLAIN_TEXT_INPUT
            if not isinstance(initial_value, str):
                errors.add(f"{pointer}/initial_value", "must be a string")
            else:
                errors.max_len(f"{pointer}/initial_value", initial_value, limit)
        multiline = element.get("multiline")
        if multiline is not None and not isinstance(multiline, bool):
            errors.add(f"{pointer}/multiline", "must be a boolean")
    elif kind == "users_select":
        initial_user = element.get("initial_user")
        if initial_user is not None and not (isinstance(initial_user, str) and _USER_ID.fullmatch(initial_user)):
            errors.add(f"{pointer}/initial_user", "must be a user id")
    if "placeholder" in element:
        _check_text_object(errors, f"{pointer}/placeholder", element["placeholder"], limit=MAX_PLACEHOLDER, plain_only=True)


def _check_block(errors: _BlockErrors, pointer: str, block: Any, block_ids: set[str]) -> None:
    if not isinstance(block, dict):
        errors.add(pointer, "must be an object")
        return
    kind = block.get("type")
    if kind not in KNOWN_BLOCK_TYPES:
        errors.add(f"{pointer}/type", f"unknown block type {kind!r}")
        return

    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str):
            errors.add(f"{pointer}/block_id", "must be a string")
        else:
            errors.max_len(f"{pointer}/block_id", block_id, MAX_ID)
            # Duplicate block_ids in one message are rejected by Slack.
            if block_id in block_ids:
                errors.add(f"{pointer}/block_id", f"duplicate block_id {block_id!r}")
            block_ids.add(block_id)

    action_ids: set[str] = set()
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            errors.add(pointer, "section must have text or fields")
        _check_text_object(errors, f"{pointer}/text", text, limit=MAX_SECTION_TEXT, required=False)
        if fields is not None:
            if not isinstance(fields, list):
                errors.add(f"{pointer}/fields", "must be an array")
            else:
                if len(fields) > MAX_SECTION_FIELDS:
                    errors.add(
                        f"{pointer}/fields", f"must have at most {MAX_SECTION_FIELDS} items (got {len(fields)})"
                    )
                for i, item in enumerate(fields):
                    _check_text_object(errors, f"{pointer}/fields/{i}", item, limit=MAX_SECTION_FIELD_TEXT)
        if "accessory" in block:
            _check_element(errors, f"{pointer}/accessory", block["accessory"], action_ids)
    elif kind == "header":
        _check_text_object(errors, f"{pointer}/text", block.get("text"), limit=MAX_HEADER_TEXT, plain_only=True)
    elif kind in ("actions", "context"):
        limit = MAX_ACTIONS_ELEMENTS if kind == "actions" else MAX_CONTEXT_ELEMENTS
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            errors.add(f"{pointer}/elements", "must be a non-empty array")
            return
        if len(elements) > limit:
            errors.add(f"{pointer}/elements", f"must have at most {limit} items (got {len(elements)})")
        for i, element in enumerate(elements):
            ep = f"{pointer}/elements/{i}"
            if kind == "context":
                if not isinstance(element, dict) or element.get("type") not in (*TEXT_OBJECT_TYPES, "image"):
                    errors.add(ep, "context elements must be text objects or images")
                elif element["type"] == "image":
                    _check_element(errors, ep, element, action_ids)
                else:
                    _check_text_object(errors, ep, element, limit=MAX_SECTION_TEXT)
            else:
                _check_element(errors, ep, element, action_ids)
    elif kind == "image":
        if not block.get("image_url") and not block.get("slack_file"):
            errors.add(f"{pointer}/image_url", "is required")
        errors.max_len(f"{pointer}/image_url", block.get("image_url"), MAX_URL)
        if not block.get("alt_text"):
            errors.add(f"{pointer}/alt_text", "is required")
        errors.max_len(f"{pointer}/alt_text", block.get("alt_text"), MAX_IMAGE_ALT_TEXT)
    elif kind == "input":
        _check_text_object(errors, f"{pointer}/label", block.get("label"), limit=MAX_INPUT_LABEL, plain_only=True)
        _check_text_object(errors, f"{pointer}/hint", block.get("hint"), limit=MAX_INPUT_LABEL, plain_only=True, required=False)
        for flag in ("optional", "dispatch_action"):
            if flag in block and not isinstance(block[flag], bool):
                errors.add(f"{pointer}/{flag}", "must be a boolean")
        if "element" not in block:
            errors.add(f"{pointer}/element", "is required")
        else:
            element = block["element"]
            if isinstance(element, dict) and element.get("type") not in INPUT_ELEMENT_TYPES:
                errors.add(f"{pointer}/element/type", f"an input block cannot hold {element.get('type')!r}")
            _check_element(errors, f"{pointer}/element", element, action_ids)


def block_texts(blocks: list[dict]) -> str:
    """The visible text of headers, sections and context blocks, one per line (for assertions)."""
    out = []
    for block in blocks:
        if block["type"] in ("section", "header"):
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out.extend(e.get("text", "") for e in block["elements"])
    return "\n".join(out)


def _decoded(value: Any, pointer: str) -> tuple[Any, str | None]:
    """Form-encoded calls send JSON arguments as strings: the value decoded, or why it is not JSON."""
    if not isinstance(value, str):
        return value, None
    try:
        return json.loads(value), None
    except json.JSONDecodeError as exc:
        return None, f"{pointer}: not valid JSON ({exc.msg})"


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_BLOCKS_PER_MESSAGE) -> list[str]:
    """Return Slack's objections to ``blocks`` (an empty list means valid).

    ``blocks`` may be a list or a JSON string (form-encoded calls send it that
    way). Each message starts with a JSON pointer into the payload, e.g.
    ``/blocks/0/text/text: must be at most 3000 characters (got 3001)``.
    Use ``max_blocks=MAX_BLOCKS_PER_MODAL`` for modal views.
    """
    blocks, problem = _decoded(blocks, "/blocks")
    if problem:
        return [problem]
    if not isinstance(blocks, list):
        return ["/blocks: must be an array"]
    errors = _BlockErrors()
    if len(blocks) > max_blocks:
        errors.add("/blocks", f"must have at most {max_blocks} items (got {len(blocks)})")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        _check_block(errors, f"/blocks/{i}", block, block_ids)
    return errors.messages


def validate_view(view: Any) -> list[str]:
    """Return Slack's objections to a modal ``view`` (a dict or JSON string); empty means valid."""
    view, problem = _decoded(view, "/view")
    if problem:
        return [problem]
    if not isinstance(view, dict):
        return ["/view: must be an object"]
    errors = _BlockErrors()
    if view.get("type") != "modal":
        errors.add("/view/type", f"must be 'modal' (got {view.get('type')!r})")
    _check_text_object(errors, "/view/title", view.get("title"), limit=MAX_MODAL_TITLE, plain_only=True)
    for key in ("submit", "close"):
        _check_text_object(errors, f"/view/{key}", view.get(key), limit=MAX_MODAL_TITLE, plain_only=True, required=False)
    metadata = view.get("private_metadata")
    if metadata is not None:
        if not isinstance(metadata, str):
            errors.add("/view/private_metadata", "must be a string")
        else:
            errors.max_len("/view/private_metadata", metadata, MAX_PRIVATE_METADATA)
    callback_id = view.get("callback_id")
    if callback_id is not None:
        errors.max_len("/view/callback_id", callback_id, MAX_ID)
    blocks = view.get("blocks")
    if blocks is None:
        errors.add("/view/blocks", "is required")
    else:
        errors.messages.extend(f"/view{m}" for m in validate_blocks(blocks, max_blocks=MAX_BLOCKS_PER_MODAL))
    return errors.messages


# =============================================================================
# Recordings
# =============================================================================


@dataclass
class Call:
    """One request to ``/api/<method>`` as the double saw it.

    ``args`` merges query string, form body and JSON body. The trailing fields
    (verb, status, response) let tests assert wire format and outcome.
    """

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    at: float
    http_verb: str = "POST"
    content_type: str = ""
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class ResponsePost:
    """One POST to a ``response_url``; ``status`` is what the double answered."""

    url: str
    body: dict[str, Any]
    at: float
    status: int = 200

    @property
    def text(self) -> str | None:
        return self.body.get("text")

    @property
    def blocks(self) -> list[dict[str, Any]] | None:
        return _coerce_blocks(self.body.get("blocks"))


@dataclass
class UploadedFile:
    """A file going through upload v2: registered, bytes received, completed."""

    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None
    completed: bool = False
    channel_id: str | None = None
    channels: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    thread_ts: str | None = None


# Slack grants "generous burst behavior" above one post per second per channel; its size is not
# documented. Tests post in bursts of up to a few dozen to one channel.
DEFAULT_POST_BURST = 40


@dataclass
class _RateLimit:
    retry_after: int


class ChannelPostBucket:
    """chat.postMessage's documented limit: about one message per second per channel, with bursts
    allowed. A token bucket per channel: `burst` posts at once, then one per `1 / per_second`; a
    post with no token is answered 429 with Retry-After, the whole seconds until the next token."""

    def __init__(self, per_second: float, burst: int):
        self.per_second, self.burst = per_second, burst
        self._tokens: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)

    def take(self, channel: str, now: float) -> int | None:
        """None when the post may go; otherwise its Retry-After in whole seconds (at least 1)."""
        tokens, at = self._tokens.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        if tokens >= 1.0:
            self._tokens[channel] = (tokens - 1.0, now)
            return None
        self._tokens[channel] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.per_second))


Handler = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]


class _ApiError(Exception):
    """Raised by method handlers; becomes ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _coerce_blocks(raw: Any) -> list[dict[str, Any]] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    return raw if isinstance(raw, list) else None


def _ts_key(ts: str) -> tuple[int, int]:
    """A Slack ts ("1700000000.000100") as a sortable pair; ValueError for anything else."""
    seconds, dot, fraction = ts.partition(".")
    if not seconds.isdigit() or (dot and not fraction.isdigit()):
        raise ValueError(ts)
    return int(seconds), int(fraction.ljust(16, "0")[:16]) if fraction else 0


def _present(args: Mapping[str, Any], key: str) -> bool:
    value = args.get(key)
    return value is not None and value != ""


# =============================================================================
# Outbound text: nothing live that the bot did not place
# =============================================================================
#
# Every string the bot sends Slack is read as Slack would read it. Three kinds of field:
# MESSAGE (chat.* text, mrkdwn objects, a file's initial_comment): parsed for mentions and
# links; the bot places its own mentions here, nothing else. PARSED (a channel's topic and
# purpose, which Slack announces in the channel as a message): parsed, and the bot places no
# mention in them. PLAIN (plain_text objects, file titles, bookmark titles): Slack shows them as
# given, but nothing that would be live if parsed may be there either, so no field needs
# knowing which surfaces parse what.

MESSAGE, PARSED, PLAIN = "message", "parsed", "plain"
_BRACKETED = re.compile(r"<([^<>]*)>")  # each match stops at the next < or >: linear
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_MENTION_ID = {"@": re.compile(r"[UW][A-Z0-9]{1,31}"), "#": re.compile(r"[CG][A-Z0-9]{1,31}"),
               "subteam": re.compile(r"S[A-Z0-9]{1,31}")}
_MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage", "response_url"})
_PARSED_ARGS = {"conversations.setTopic": "topic", "conversations.setPurpose": "purpose"}


def _mention_problem(inner: str, targets: frozenset[str] | None) -> str | None:
    """Why `<inner>` (a `<@…>`, `<#…>` or `<!…>`) in message text is not a mention the bot placed; None if it may be."""
    if "|" in inner:
        return "a labelled mention (the bot's own carry no label)"
    sigil, body = inner[0], inner[1:]
    if sigil == "!":
        if body == "here":
            target, shape = "here", None
        elif body.startswith("subteam^"):
            target, shape = body[len("subteam^"):], _MENTION_ID["subteam"]
        else:
            return "a <!…> the bot never sends (@channel, @everyone, a date)"
    else:
        target, shape = body, _MENTION_ID[sigil]
    if shape is not None and not shape.fullmatch(target):
        return "not a well-formed id"
    if targets is not None and target not in targets:
        return "a mention the test did not expect the bot to place"
    return None


def live_markup(text: str, kind: str, targets: frozenset[str] | None = None) -> list[str]:
    """What in `text` (a field of `kind`) Slack would make a ping or a link that the bot did not place.

    `targets`: the ids (and "here") the bot may mention in MESSAGE fields; None takes any
    well-formed `<@U…>`, `<#C…>`, `<!subteam^S…>` and `<!here>` there as the bot's.
    """
    found = []
    for match in _BRACKETED.finditer(text):
        inner = match.group(1)
        if inner[:1] in ("!", "@", "#"):
            problem = _mention_problem(inner, targets) if kind == MESSAGE else "a mention where the bot places none"
        elif _SCHEME.match(inner):
            problem = "a link (the bot places none in text)"
        elif kind != PLAIN:
            problem = "unescaped < and > (Slack reads them as markup)"
        else:
            continue
        if problem:
            found.append(f"{problem}: {match.group(0)[:80]!r}")
    return found


def _text_objects(pointer: str, node: Any) -> list[tuple[str, str, str]]:
    """(pointer, kind, text) of every Block Kit text object under `node` (a modal's title and options included)."""
    if isinstance(node, list):
        return [found for i, item in enumerate(node) for found in _text_objects(f"{pointer}/{i}", item)]
    if not isinstance(node, dict):
        return []
    found = []
    if node.get("type") in TEXT_OBJECT_TYPES and isinstance(node.get("text"), str):
        found.append((f"{pointer}/text", MESSAGE if node["type"] == "mrkdwn" else PLAIN, node["text"]))
    for key, value in node.items():
        if isinstance(value, (dict, list)):
            found += _text_objects(f"{pointer}/{key}", value)
    return found


def outbound_texts(method: str, args: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(field, kind, text) of every string in a call that Slack shows to people."""
    found: list[tuple[str, str, str]] = []
    if method in _MESSAGE_METHODS and isinstance(args.get("text"), str):
        found.append(("text", MESSAGE, args["text"]))
    for key in ("blocks", "view"):
        if args.get(key) not in (None, ""):
            value, _ = _decoded(args[key], f"/{key}")
            found += _text_objects(f"/{key}", value)
    if method in _PARSED_ARGS and isinstance(args.get(_PARSED_ARGS[method]), str):
        found.append((_PARSED_ARGS[method], PARSED, args[_PARSED_ARGS[method]]))
    if isinstance(args.get("initial_comment"), str):
        found.append(("initial_comment", MESSAGE, args["initial_comment"]))
    if method.startswith(("files.", "bookmarks.")):
        for key in ("title", "filename", "alt_txt"):
            if isinstance(args.get(key), str):
                found.append((key, PLAIN, args[key]))
        files, _ = _decoded(args.get("files"), "/files")
        for i, item in enumerate(files if isinstance(files, list) else []):
            if isinstance(item, dict) and isinstance(item.get("title"), str):
                found.append((f"files/{i}/title", PLAIN, item["title"]))
    return found


# =============================================================================
# The double
# =============================================================================


class SlackDouble:
    """A Slack Web API imitation served over real HTTP on 127.0.0.1.

    Usage::

        double = SlackDouble()
        await double.start()
        client = AsyncWebClient(token=double.bot_token, base_url=double.api_url)
        ...
        await double.stop()
    """

    def __init__(self, bot_token: str = "xoxb-test-token", app_token: str = "xapp-1-A0TEST-1-test-token") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        # Socket Mode rides on this server: /link/ is its WebSocket endpoint.
        self.socket = SocketModeDouble()
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}  # view id -> the view as opened or last updated
        # channel id -> {"name", "topic", "members": set, "pins": [ts, ...], "is_private"}
        self.channels: dict[str, dict[str, Any]] = {}
        self._channel_counter = itertools.count(1)
        self._dms: dict[tuple[str, ...], str] = {}  # conversations.open: the users -> the D (or G) id
        self._unknown_users: set[str] = set()
        self._view_counter = itertools.count(1)
        self._response_posts: list[ResponsePost] = []
        self._uploads: dict[str, UploadedFile] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._response_urls: dict[str, float] = {}  # token -> created (monotonic)
        self._rate_limits: dict[str, deque[_RateLimit]] = defaultdict(deque)
        self._channel_rate_limits: dict[str, deque[_RateLimit]] = defaultdict(deque)  # chat.postMessage, by channel
        # Enforced always, as Slack does; generous by default so a test's burst of posts to one
        # channel goes through, and tightened by limit_channel_posts where the limit is the subject.
        self.post_limit = ChannelPostBucket(per_second=1.0, burst=DEFAULT_POST_BURST)
        self.posts_refused: list[tuple[str, int]] = []  # (channel, Retry-After) of every post answered 429
        self._failures: dict[str, deque[str]] = defaultdict(deque)
        self._custom_handlers: dict[str, Handler] = {}
        self.violations: list[str] = []  # live markup the bot did not place (live_markup), one line each
        self.mention_targets: frozenset[str] | None = None  # expect_mentions; None: any well-formed mention
        # Slack ts values look like "1700000000.000100" and grow per message.
        self._ts_counter = itertools.count(100, 100)
        self._file_counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._changed: asyncio.Condition | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        if self._runner is not None:
            raise RuntimeError("SlackDouble already started")
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{token}", self._handle_response_url)
        self.socket.attach(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._changed = asyncio.Condition()

    async def stop(self) -> None:
        if self._runner is not None:
            # Close WebSockets first: cleanup would otherwise wait on their handlers.
            await self.socket.close()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("SlackDouble not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """API root for ``AsyncWebClient(base_url=...)``; ends with a slash."""
        return f"{self.base_url}/api/"

    # -- configuration --------------------------------------------------------

    def set_usergroup(self, group_id: str, user_ids: list[str]) -> None:
        self._usergroups[group_id] = list(user_ids)

    def set_user(self, user_id: str, **fields: Any) -> None:
        """Override fields of the ``users.info`` answer for ``user_id``.

        Unconfigured ids that look like Slack user ids (``U...``/``W...``) get
        a synthesised user; anything else is ``user_not_found``.
        """
        self._users[user_id] = fields

    def unknown_user(self, user_id: str) -> None:
        """Make a well-shaped id unknown to Slack: ``users.info``, ``conversations.invite`` and
        ``conversations.open`` answer ``user_not_found`` for it (a deleted or foreign account)."""
        self._unknown_users.add(user_id)
        self._users.pop(user_id, None)

    def add_message(self, channel: str, user: str, text: str, **fields: Any) -> str:
        """Record a message ``user`` wrote in ``channel`` (as ``conversations.history`` returns it); its ts.

        ``fields`` adds to the message (``thread_ts=...``). The bot cannot edit it
        (``chat.update`` answers ``cant_update_message``), as on Slack.
        """
        ts = self._next_ts()
        self.messages[(channel, ts)] = {"type": "message", "user": user, "text": text, "ts": ts, "team": TEAM_ID, **fields}
        return ts

    def new_response_url(self) -> str:
        token = uuid.uuid4().hex
        self._response_urls[token] = time.monotonic()
        return f"{self.base_url}/response/{token}"

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls to ``method`` with HTTP 429.

        ``retry_after`` must be whole seconds: slack-sdk parses it with int().
        """
        self._rate_limits[method].extend(_RateLimit(int(retry_after)) for _ in range(times))

    def rate_limit_channel_posts(self, channel: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` chat.postMessage calls to ``channel`` with HTTP 429 and
        ``Retry-After``; posts to other channels go through (one slow conversation among many)."""
        self._channel_rate_limits[channel].extend(_RateLimit(int(retry_after)) for _ in range(times))

    def limit_channel_posts(self, per_second: float = 1.0, burst: int = DEFAULT_POST_BURST) -> None:
        """Set chat.postMessage's per-channel limit (see ChannelPostBucket); reset() restores the default."""
        self.post_limit = ChannelPostBucket(per_second, burst)

    def fail_next(self, method: str, error: str = "internal_error") -> None:
        """Answer the next call to ``method`` with ``{"ok": false, "error": error}``."""
        self._failures[method].append(error)

    def set_handler(self, method: str, handler: Handler) -> None:
        """Serve ``method`` with ``handler(args) -> response``, in place of a built-in one if there is one.

        The handler may be sync or async; auth, rate limits and injected
        failures still apply. Raise nothing: return ``{"ok": False, ...}``.
        """
        self._custom_handlers[method] = handler

    def expect_mentions(self, *targets: str) -> None:
        """The only mentions the bot may place in message text from now on: user ids, user-group ids
        (S…), channel ids (besides those in ``channels``), and "here" for ``<!here>``. Any other
        ``<@…>``, ``<#…>``, ``<!subteam^…>`` or ``<!here>`` is then a violation: text a person or a
        service supplied, left live."""
        self.mention_targets = frozenset(targets)

    def reset(self) -> None:
        """Clear recordings, posted messages, channels, uploads, pending injections, violations and
        expected mentions.

        Configured usergroups, users (known and unknown) and custom handlers are kept.
        """
        self.violations.clear()
        self.mention_targets = None
        self.calls.clear()
        self.messages.clear()
        self.views.clear()
        self.channels.clear()
        self._dms.clear()
        self._response_posts.clear()
        self._uploads.clear()
        self._response_urls.clear()
        self._rate_limits.clear()
        self._channel_rate_limits.clear()
        self.post_limit = ChannelPostBucket(per_second=1.0, burst=DEFAULT_POST_BURST)
        self.posts_refused.clear()
        self._failures.clear()
        self.socket.reset()

    # -- recordings -----------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def response_posts(self, url: str | None = None) -> list[ResponsePost]:
        return [p for p in self._response_posts if url is None or p.url == url]

    @property
    def uploaded_files(self) -> dict[str, UploadedFile]:
        """Files whose bytes reached the upload URL, keyed by file id."""
        return {fid: f for fid, f in self._uploads.items() if f.data is not None}

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait until at least ``count`` calls to ``method`` were recorded."""
        await self._wait(lambda: len(self.calls_to(method)) >= count, timeout, f"{count} call(s) to {method}")
        return self.calls_to(method)

    async def wait_for_response_posts(self, count: int = 1, timeout: float = 5.0) -> list[ResponsePost]:
        await self._wait(lambda: len(self._response_posts) >= count, timeout, f"{count} response_url post(s)")
        return self.response_posts()

    async def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        if self._changed is None:
            raise RuntimeError("SlackDouble not started")
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
        except TimeoutError:
            seen = [c.method for c in self.calls]
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {what}; calls so far: {seen}, "
                f"response_url posts: {len(self._response_posts)}"
            ) from None

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    # -- HTTP handlers --------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._read_args(request)
        self._judge_text(method, args)
        status, body, headers = await self._dispatch(method, args, request)
        self.calls.append(
            Call(
                method=method,
                args=args,
                headers=dict(request.headers),
                at=time.time(),
                http_verb=request.method,
                content_type=request.content_type if request.body_exists else "",
                status=status,
                response=body,
            )
        )
        await self._notify()
        return web.json_response(body, status=status, headers=headers)

    async def _dispatch(
        self, method: str, args: dict[str, Any], request: web.Request
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        # Order mirrors Slack: authenticate first, then rate limit, then run.
        auth = request.headers.get("Authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        # apps.connections.open takes only the app-level token, every other method only the bot token.
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if auth != f"Bearer {expected}":
            # Slack tells a valid token of the wrong kind apart from an unknown one.
            known = auth.removeprefix("Bearer ") in (self.bot_token, self.app_token)
            return 200, {"ok": False, "error": "not_allowed_token_type" if known else "invalid_auth"}, {}

        limits = self._rate_limits.get(method)
        if not limits and method == "chat.postMessage":
            limits = self._channel_rate_limits.get(str(args.get("channel", "")))
        if limits:
            limit = limits.popleft()
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(limit.retry_after)}
        if method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            retry_after = self.post_limit.take(channel, time.monotonic())
            if retry_after is not None:
                self.posts_refused.append((channel, retry_after))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}

        failures = self._failures.get(method)
        if failures:
            return 200, {"ok": False, "error": failures.popleft()}, {}

        handler = self._builtin_handlers().get(method)
        try:
            if method in self._custom_handlers:  # a test's own answer wins over the built-in one
                produced = self._custom_handlers[method](args)
                result = await produced if isinstance(produced, Awaitable) else produced
            elif handler is not None:
                result = handler(args)
            else:
                raise _ApiError("unknown_method", req_method=method)
        except _ApiError as exc:
            return 200, {"ok": False, "error": exc.error, **exc.extra}, {}
        return 200, result, {}

    @staticmethod
    async def _read_args(request: web.Request) -> dict[str, Any]:
        """Merge query string, form body and JSON body (later wins)."""
        args: dict[str, Any] = dict(request.query)
        if not request.body_exists:
            return args
        if request.content_type == "application/json":
            try:
                payload = await request.json()
            except json.JSONDecodeError:
                payload = None
            if isinstance(payload, dict):
                args.update(payload)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                args[key] = value.file.read() if isinstance(value, web.FileField) else value
        return args

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """The upload URL: raw bytes or multipart; no auth (like files.slack.com)."""
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="file_not_found")
        if request.content_type == "multipart/form-data":
            # Take the first file part; fall back to the first plain field.
            form = await request.post()
            parts = list(form.values())
            file_part = next((v for v in parts if isinstance(v, web.FileField)), None)
            if file_part is not None:
                data = file_part.file.read()
            else:
                first = parts[0] if parts else ""
                data = first.encode() if isinstance(first, str) else bytes(first)
        else:
            data = await request.read()
        upload.data = data
        await self._notify()
        # files.slack.com answers plain text; slack-sdk checks only the status.
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        url = f"{self.base_url}/response/{token}"
        try:
            raw = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raw = None
        body: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self._judge_text("response_url", body)
        status, text = self._judge_response_post(token, url, body, valid_json=isinstance(raw, dict))
        self._response_posts.append(ResponsePost(url=url, body=body, at=time.time(), status=status))
        await self._notify()
        return web.Response(status=status, text=text, content_type="text/plain")

    def _judge_response_post(
        self, token: str, url: str, body: dict[str, Any], *, valid_json: bool
    ) -> tuple[int, str]:
        """Slack's answer to a response_url post: (status, plain-text body)."""
        created = self._response_urls.get(token)
        if created is None:
            return 404, "no_service"
        if time.monotonic() - created > RESPONSE_URL_LIFETIME_S:
            return 404, "expired_url"
        # Only accepted posts use up the URL's allowance of five.
        accepted = sum(1 for p in self._response_posts if p.url == url and p.status == 200)
        if accepted >= RESPONSE_URL_MAX_POSTS:
            return 404, "used_url"
        if not valid_json:
            return 400, "invalid_payload"
        if body.get("delete_original"):
            return 200, "ok"
        try:
            self._check_message_content(body)
        except _ApiError as exc:
            detail = "\n".join(exc.extra.get("errors", []))
            return 400, f"{exc.error}\n{detail}".rstrip()
        return 200, "ok"

    def _judge_text(self, method: str, args: Mapping[str, Any]) -> None:
        """Record in ``violations`` every live special, link or foreign mention in what the bot sent.
        A channel the bot created or addressed (``channels``) is its own to link as ``<#C…>``."""
        targets = None if self.mention_targets is None else self.mention_targets | set(self.channels)
        for where, kind, text in outbound_texts(method, args):
            for problem in live_markup(text, kind, targets):
                self.violations.append(f"{method} {where}: {problem}")

    # -- Web API methods ------------------------------------------------------

    def _builtin_handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "apps.connections.open": self._apps_connections_open,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.create": self._conversations_create,
            "conversations.invite": self._conversations_invite,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.open": self._conversations_open,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "pins.add": self._pins_add,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    def _next_ts(self) -> str:
        n = next(self._ts_counter)
        return f"{1_700_000_000 + n // 1_000_000}.{n % 1_000_000:06d}"

    @staticmethod
    def _check_message_content(args: Mapping[str, Any], *, require_content: bool = True) -> None:
        """Text/blocks rules shared by chat.* and response_url posts."""
        has_blocks = args.get("blocks") not in (None, "", [])
        if require_content and not (_present(args, "text") or has_blocks or _present(args, "attachments")):
            raise _ApiError("no_text")
        text = args.get("text")
        if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
            raise _ApiError("msg_too_long")
        if "blocks" in args and args["blocks"] not in (None, ""):
            raw = args["blocks"]
            if isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError:
                    raise _ApiError("invalid_blocks_format") from None
            if not isinstance(raw, list):
                raise _ApiError("invalid_blocks_format")
            errors = validate_blocks(raw)
            if errors:
                raise _ApiError("invalid_blocks", errors=errors)

    @staticmethod
    def _require(args: Mapping[str, Any], *names: str) -> None:
        for name in names:
            if not _present(args, name):
                raise _ApiError("invalid_arguments", response_metadata={"messages": [f"missing required: {name}"]})

    def _message(self, args: Mapping[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
            "text": args.get("text") or "",
            "team": TEAM_ID,
        }
        blocks = _coerce_blocks(args.get("blocks"))
        if blocks is not None:
            message["blocks"] = blocks
        if _present(args, "thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        return message

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.socket.issue_url(self.base_url)}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_DOMAIN,
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _present(args, "channel"):
            raise _ApiError("channel_not_found")
        self._check_message_content(args)
        channel = str(args["channel"])
        ts = self._next_ts()
        message = self._message(args, ts)
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _present(args, "channel"):
            raise _ApiError("channel_not_found")
        if not _present(args, "user"):
            raise _ApiError("user_not_found")
        self._check_message_content(args)
        # Ephemeral messages are not stored: chat.update cannot touch them.
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _present(args, "channel"):
            raise _ApiError("channel_not_found")
        self._require(args, "ts")
        channel, ts = str(args["channel"]), str(args["ts"])
        # chat.update keeps the old content for fields it is not given.
        self._check_message_content(args, require_content=False)
        message = self.messages.get((channel, ts))
        if message is None:
            raise _ApiError("message_not_found")
        if message.get("user") != BOT_USER_ID:  # a person's message (add_message)
            raise _ApiError("cant_update_message")
        if "text" in args:
            message["text"] = args["text"] or ""
        blocks = _coerce_blocks(args.get("blocks"))
        if blocks is not None:
            message["blocks"] = blocks
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": dict(message)}

    @staticmethod
    def _checked_view(args: Mapping[str, Any]) -> dict[str, Any]:
        if not _present(args, "view"):
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["missing required: view"]})
        errors = validate_view(args["view"])
        if errors:
            raise _ApiError("invalid_arguments", response_metadata={"messages": errors})
        view = args["view"]
        return dict(json.loads(view) if isinstance(view, str) else view)

    def _stored_view(self, view: dict[str, Any], view_id: str) -> dict[str, Any]:
        stored = {**view, "id": view_id, "team_id": TEAM_ID, "private_metadata": view.get("private_metadata", "")}
        self.views[view_id] = stored
        return {"ok": True, "view": dict(stored)}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _present(args, "trigger_id"):
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["missing required: trigger_id"]})
        view = self._checked_view(args)
        return self._stored_view(view, f"V{next(self._view_counter):08d}")

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._checked_view(args)
        view_id = str(args.get("view_id") or "")
        if not view_id and _present(args, "external_id"):
            view_id = next((v for v, stored in self.views.items() if stored.get("external_id") == args["external_id"]), "")
        if not view_id:
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["missing required: view_id or external_id"]})
        if view_id not in self.views:
            raise _ApiError("not_found")
        return self._stored_view(view, view_id)

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "usergroup")
        users = self._usergroups.get(str(args["usergroup"]))
        if users is None:
            raise _ApiError("no_such_subteam")
        return {"ok": True, "users": list(users)}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "user")
        user_id = str(args["user"])
        if not self._user_exists(user_id):
            raise _ApiError("user_not_found")
        name = user_id.lower()
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": f"User {user_id}",
            "deleted": False,
            "is_bot": user_id == BOT_USER_ID,
            "tz": "Etc/UTC",
            "profile": {"display_name": name, "real_name": f"User {user_id}", "email": f"{name}@example.com"},
        }
        user.update(self._users.get(user_id, {}))
        return {"ok": True, "user": user}

    def _user_exists(self, user_id: str) -> bool:
        """Configured users, and any other id shaped like Slack's (U.../W...) unless made unknown."""
        if user_id in self._unknown_users:
            return False
        return user_id in self._users or bool(_USER_ID.fullmatch(user_id))

    def _channel(self, args: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The ``channel`` argument's record; one the double never created is taken as an existing
        public channel (a configured id such as C0INCIDENTS) and recorded now."""
        if not _present(args, "channel"):
            raise _ApiError("channel_not_found")
        channel_id = str(args["channel"])
        if not _CHANNEL_ID.fullmatch(channel_id):
            raise _ApiError("channel_not_found")
        record = self.channels.get(channel_id)
        if record is None:
            record = {"name": "", "topic": "", "members": {BOT_USER_ID}, "pins": [], "is_private": False}
            self.channels[channel_id] = record
        return channel_id, record

    @staticmethod
    def _channel_object(channel_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": channel_id,
            "name": record["name"],
            "is_channel": not record["is_private"],
            "is_group": False,
            "is_im": False,
            "is_private": record["is_private"],
            "is_member": BOT_USER_ID in record["members"],
            "creator": BOT_USER_ID,
            "num_members": len(record["members"]),
            "topic": {"value": record["topic"], "creator": BOT_USER_ID if record["topic"] else "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    def _conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name") or "")
        if not name:
            raise _ApiError("invalid_name_required")
        if len(name) > MAX_CHANNEL_NAME:
            raise _ApiError("invalid_name_maxlength")
        if not _CHANNEL_NAME_CHARS.fullmatch(name):
            raise _ApiError("invalid_name_specials")
        if not any(c.isalnum() for c in name):
            raise _ApiError("invalid_name_punctuation")
        if any(record["name"] == name for record in self.channels.values()):
            raise _ApiError("name_taken")
        is_private = str(args.get("is_private", "")).lower() in ("1", "true")
        channel_id = f"C0{next(self._channel_counter):08d}"  # private channels have C ids too nowadays
        record = {"name": name, "topic": "", "members": {BOT_USER_ID}, "pins": [], "is_private": is_private}
        self.channels[channel_id] = record
        return {"ok": True, "channel": self._channel_object(channel_id, record)}

    def _conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id, record = self._channel(args)
        if not _present(args, "users"):
            raise _ApiError("no_user")
        users = [u.strip() for u in str(args["users"]).split(",") if u.strip()]
        if not users:
            raise _ApiError("no_user")
        if BOT_USER_ID in users:
            raise _ApiError("cant_invite_self")
        if not all(self._user_exists(u) for u in users):
            raise _ApiError("user_not_found")
        if all(u in record["members"] for u in users):
            raise _ApiError("already_in_channel")
        record["members"].update(users)
        return {"ok": True, "channel": self._channel_object(channel_id, record)}

    def _conversations_set_topic(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id, record = self._channel(args)
        topic = str(args.get("topic") or "")
        if len(topic) > MAX_TOPIC:
            raise _ApiError("too_long")
        record["topic"] = topic
        return {"ok": True, "channel": self._channel_object(channel_id, record)}

    def _pins_add(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _present(args, "timestamp"):
            raise _ApiError("no_item_specified")
        channel_id, record = self._channel(args)
        ts = str(args["timestamp"])
        if (channel_id, ts) not in self.messages:
            raise _ApiError("message_not_found")
        if ts in record["pins"]:
            raise _ApiError("already_pinned")
        record["pins"].append(ts)
        return {"ok": True}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _present(args, "users"):
            raise _ApiError("users_list_not_supplied")
        users = tuple(sorted({u.strip() for u in str(args["users"]).split(",") if u.strip()}))
        if not users:
            raise _ApiError("users_list_not_supplied")
        if not all(self._user_exists(u) for u in users):
            raise _ApiError("user_not_found")
        already = users in self._dms
        if not already:
            # One user: a DM (D...); several: a group DM (G...). The same users get the same id.
            self._dms[users] = f"{'D' if len(users) == 1 else 'G'}0{len(self._dms) + 1:08d}"
        return {"ok": True, "no_op": already, "already_open": already, "channel": {"id": self._dms[users]}}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        """A channel's member ids, `limit` (default 100, at most 1,000) a page, continued with the
        `next_cursor` of the page before ("" on the last). A private channel the bot is not in is
        `channel_not_found`, as Slack answers; so is an id shaped like no channel."""
        channel_id, record = self._channel(args)
        if record["is_private"] and BOT_USER_ID not in record["members"]:
            raise _ApiError("channel_not_found")
        try:
            limit = int(args.get("limit") or DEFAULT_MEMBERS_LIMIT)
        except ValueError:
            raise _ApiError("invalid_limit") from None
        if not 1 <= limit <= MAX_MEMBERS_LIMIT:
            raise _ApiError("invalid_limit")
        start = 0
        if _present(args, "cursor"):
            try:
                kind, _, offset = base64.b64decode(str(args["cursor"]), validate=True).decode().partition(":")
                start = int(offset)
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                raise _ApiError("invalid_cursor") from None
            if kind != "members" or not 0 < start <= len(record["members"]):
                raise _ApiError("invalid_cursor")
        members = sorted(record["members"])
        page = members[start:start + limit]
        more = start + limit < len(members)
        cursor = base64.b64encode(f"members:{start + limit}".encode()).decode() if more else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """The thread that holds message ``ts`` (its parent or any reply): the parent first, then the replies."""
        self._require(args, "channel", "ts")
        channel_id, ts = str(args["channel"]), str(args["ts"])
        found = self.messages.get((channel_id, ts))
        if found is None:
            raise _ApiError("thread_not_found")
        root = found.get("thread_ts", ts)
        thread = [m for (channel, _), m in self.messages.items() if channel == channel_id and m.get("thread_ts", m["ts"]) == root]
        thread.sort(key=lambda m: _ts_key(m["ts"]))
        return {"ok": True, "messages": [json.loads(json.dumps(m)) for m in thread], "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        if not _present(args, "channel") or not _CHANNEL_ID.fullmatch(str(args["channel"])):
            raise _ApiError("channel_not_found")
        channel_id = str(args["channel"])
        try:
            limit = int(args.get("limit") or DEFAULT_HISTORY_LIMIT)
            latest = _ts_key(str(args["latest"])) if _present(args, "latest") else None
            oldest = _ts_key(str(args["oldest"])) if _present(args, "oldest") else None
        except ValueError:
            raise _ApiError("invalid_arguments") from None
        limit = max(1, min(limit, MAX_HISTORY_LIMIT))
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
        found = []
        for (channel, ts), message in self.messages.items():
            if channel != channel_id or message.get("thread_ts", ts) != ts:
                continue  # another channel, or a reply in a thread: Slack lists those with conversations.replies only
            key = _ts_key(ts)
            if latest is not None and (key > latest or (key == latest and not inclusive)):
                continue
            if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
                continue
            found.append((key, message))
        found.sort(key=lambda item: item[0], reverse=True)
        messages = [json.loads(json.dumps(message)) for _, message in found[:limit]]
        has_more = len(found) > limit
        return {
            "ok": True,
            "messages": messages,
            "has_more": has_more,
            "pin_count": len(self.channels.get(channel_id, {}).get("pins", [])),
            "response_metadata": {"next_cursor": ""},
        }

    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "filename", "length")
        try:
            length = int(args["length"])
        except (TypeError, ValueError):
            raise _ApiError("invalid_arguments") from None
        file_id = f"F{next(self._file_counter):08d}"
        self._uploads[file_id] = UploadedFile(
            file_id=file_id,
            filename=str(args["filename"]),
            length=length,
            alt_txt=args.get("alt_txt"),
            snippet_type=args.get("snippet_type"),
        )
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "files")
        raw = args["files"]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise _ApiError("invalid_arguments") from None
        if not isinstance(raw, list) or not raw or not all(isinstance(f, dict) and f.get("id") for f in raw):
            raise _ApiError("invalid_arguments")
        # Validate every id before mutating, so a bad batch records nothing.
        uploads: list[tuple[UploadedFile, dict[str, Any]]] = []
        for item in raw:
            upload = self._uploads.get(str(item["id"]))
            if upload is None or upload.data is None:
                raise _ApiError("file_not_found")
            uploads.append((upload, item))
        channels = [c for c in str(args.get("channels") or "").split(",") if c]
        answered = []
        for upload, item in uploads:
            upload.completed = True
            upload.title = item.get("title") or upload.filename
            upload.channel_id = args.get("channel_id") or None
            upload.channels = channels
            upload.initial_comment = args.get("initial_comment") or None
            upload.thread_ts = args.get("thread_ts") or None
            answered.append(
                {
                    "id": upload.file_id,
                    "name": upload.filename,
                    "title": upload.title,
                    "size": len(upload.data or b""),
                    "user": BOT_USER_ID,
                    "created": int(time.time()),
                }
            )
        return {"ok": True, "files": answered}
