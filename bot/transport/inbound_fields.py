"""Slack payload field checks shared by the inbound parsers.

Each helper reads one field of a decoded Slack payload (a string of bounded length, a Slack
id, a URL, a message ts, a nested object or list, a printable block or action id) and either
returns it or raises `Malformed`, naming the field but never quoting its value. The parsers in
bot/transport/inbound.py and bot/transport/form_state.py build on these, so every shape of
payload applies the same rules to the same kind of field.
"""
from __future__ import annotations

import json
import re

_ID = re.compile(r"^[A-Z0-9]{1,32}$")
_ACTION_ID = re.compile(r"^[^\x00-\x1f]{1,255}$")
_TS = re.compile(r"^[0-9]{1,16}\.[0-9]{1,16}$")  # a message's ts: "1700000000.000100"


class Malformed(ValueError):
    """The body is not one Slack sends; str() says which part, for the log (never the body itself)."""


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
    if value and not _ID.fullmatch(value):
        raise Malformed(f"{key} is not a Slack id")
    return value


def _url(data: dict, key: str, *, required: bool = True) -> str:
    value = _str(data, key, 2000, required=required)
    if value and not value.startswith(("https://", "http://")):
        raise Malformed(f"{key} is not a URL")
    return value


def _list(data: dict, key: str, *, limit: int) -> list:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise Malformed(f"{key} is not a list of at most {limit}")
    return value


def _printable_id(value: object, what: str) -> str:
    """A block_id or action_id: a string of 1..255 characters without control characters."""
    if not isinstance(value, str) or not _ACTION_ID.fullmatch(value):
        raise Malformed(f"{what} is not printable")
    return _str({what: value}, what, 255)


def _ts(data: dict, key: str, *, required: bool = True) -> str:
    value = _str(data, key, 33, required=required)
    if value and not _TS.fullmatch(value):
        raise Malformed(f"{key} is not a message ts")
    return value
