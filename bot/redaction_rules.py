"""What a secret looks like in text, found in time linear in the length of the text.

Each pattern either starts on a literal ('://', 'bearer', '-----BEGIN ') or behind a boundary
that a run of name characters passes only once, repeats without backtracking (possessive
quantifiers) or within a fixed bound, and never crosses a line break. A rule that needs more than
a regular expression (is this name a secret's name? does this base64 decode to user:password?
where does this PEM block end?) runs in Python on what one match found. The rules return spans
of the original text; bot.redaction merges them and writes the mask.
"""
from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Iterator
from urllib.parse import quote, quote_plus

Span = tuple[int, int]
Found = tuple[int, int, int]  # where the match that found it starts, then the span to mask
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words

# A key that may name a secret: the hint looks for one of the words within its first 64 characters,
# so only such keys (not every a=b) reach is_secret_name().
_HINT = r"(?=[A-Za-z0-9_.-]{0,64}?(?i:pass|pwd|secret|token|key))"
_NAME = r"(?P<name>[A-Za-z0-9_.-]++)"
_DELIMITER = r"[ \t]{0,16}+[=:][ \t]{0,16}+"
_QUOTED_KEY = re.compile(rf"([\"']){_HINT}{_NAME}\1{_DELIMITER}")  # "password": ..., 'x-api-key': ...
_PLAIN_KEY = re.compile(rf"(?<![A-Za-z0-9_.?&-]){_HINT}{_NAME}{_DELIMITER}")  # DB_PASSWORD=..., --token=...
_QUERY_KEY = re.compile(rf"(?<=[?&]){_HINT}{_NAME}=")  # ?sslpassword=...&
_FLAG = re.compile(rf"(?<![A-Za-z0-9_.-])--{_HINT}(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*+)[ \t]++(?![-\s])")  # --password X
_QUOTED = r"\"(?:[^\"\\\n]|\\.)*+\"?|'(?:[^'\\\n]|\\.)*+'?"  # an unclosed quote runs to the end of the line
_VALUE = re.compile(rf"{_QUOTED}|[^\s,;]++")
_JSON_VALUE = re.compile(rf"{_QUOTED}|[^\s,;}}\]]++")
_QUERY_VALUE = re.compile(r"[^&#\s\"'<>]++")
_FLAG_VALUE = re.compile(rf"{_QUOTED}|\S++")

# The password of user:password@ in a DSN or URL; it may hold '/', but host:8080/path@x is a port.
# It stops at the next '://', so a run of them costs one short attempt each.
_USERINFO = re.compile(r"://[^\s:/@]{0,256}+:(?!\d{1,5}+(?:[/?#\s]|\Z))(?P<secret>(?:(?!://)[^\s@]){1,256}+)@")
_SCHEMES = r"(?:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|key|sso-key)"
_AUTHORIZATION = re.compile(
    rf"\b(?:proxy-)?authorization[\"']?{_DELIMITER}[\"']?"
    rf"(?:{_SCHEMES}[ \t]++(?P<secret>[^\s\"',;]++)|(?P<bare>[A-Za-z0-9._~+/=-]{{16,}}+))",
    re.IGNORECASE,
)
# SQL: ALTER ROLE app PASSWORD 'x', CREATE USER u WITH ENCRYPTED PASSWORD 'x' (and E'x'); '' is a quote
# inside the literal. The word is a literal behind a boundary; the literal is read once, to its closing
# quote or, unclosed, to the end of the line.
_SQL_PASSWORD = re.compile(r"(?<![A-Za-z0-9_])password[ \t]++(?P<secret>E?'(?:[^'\n]|'')*+'?)", re.IGNORECASE)
_BEARER = re.compile(r"\bbearer[ \t]++(?P<secret>[A-Za-z0-9._~+/=-]++)", re.IGNORECASE)
_BASIC = re.compile(r"\bbasic[ \t]++(?P<secret>[A-Za-z0-9+/]{4,}+={0,2}+)(?![A-Za-z0-9+/=])", re.IGNORECASE)
_TOKENS = re.compile(
    r"\beyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]*+(?:\.[A-Za-z0-9_-]*+)?"  # a bare JWT, also when cut short
    r"|\bxox[abposre]-[A-Za-z0-9-]++|\bxapp-[A-Za-z0-9-]++"  # Slack
    r"|\bgh[pousr]_[A-Za-z0-9]{10,}+|\bgithub_pat_[A-Za-z0-9_]{10,}+"  # GitHub, classic and fine-grained
    r"|\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]++"  # Stripe secret and restricted keys
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_INDENT = re.compile(r"[ \t]*+")
_PEM_BODY = re.compile(r"[ \t]*+(?:[A-Za-z0-9+/=]++|(?:Proc-Type|DEK-Info|Version|Comment):[^\n]*+)?[ \t\r]*+")

# Words of a key name: snake, kebab, dotted and camelCase (APIKey -> API, Key; KeyError -> Key, Error).
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")  # names are cut to 64 characters first
_ANYWHERE = {"password", "passwd", "secret", "passphrase"}
_LAST = {"key", "pwd", "token"}  # only as the last word: KeyError, token_type, keyboard are not secrets
_SUFFIXES = ("password", "passwd", "secret", "token", "passphrase", "apikey", "secretkey", "accesskey", "privatekey")


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """api_key, X-API-Key, AWS_SECRET_ACCESS_KEY, db_password, auth_token, pwd: yes. KeyError, monkey, tokenizer: no."""
    parts = [p.lower() for p in _PART.findall(name[-64:])]
    while parts and parts[-1].isdigit():
        parts.pop()  # password2, token_1
    if not parts:
        return False
    return parts[-1] in _LAST or parts[-1].endswith(_SUFFIXES) or not _ANYWHERE.isdisjoint(parts)


def rule_spans(text: str) -> Iterator[Found]:
    """Every span of text that the line rules say is secret (they may overlap), with where its match
    starts. Private keys, the one rule that follows lines, are private_keys()."""
    yield from _keyed(text, _QUOTED_KEY, _JSON_VALUE, inside_quotes=True)
    yield from _keyed(text, _PLAIN_KEY, _VALUE)
    yield from _keyed(text, _QUERY_KEY, _QUERY_VALUE)
    yield from _keyed(text, _FLAG, _FLAG_VALUE)
    for pattern in (_USERINFO, _AUTHORIZATION, _BEARER):
        for match in pattern.finditer(text):
            yield match.start(), *match.span("secret" if match["secret"] is not None else "bare")
    for match in _SQL_PASSWORD.finditer(text):
        start, end = match.span("secret")
        start = text.index("'", start) + 1
        end -= end - start >= 1 and text[end - 1] == "'" and not text.endswith("''", start, end)
        if start < end:
            yield match.start(), start, end
    for match in _BASIC.finditer(text):
        if _is_user_password(match["secret"]):
            yield match.start(), *match.span("secret")
    for match in _TOKENS.finditer(text):
        yield match.start(), *match.span()


def _keyed(text: str, key: re.Pattern[str], value: re.Pattern[str], inside_quotes: bool = False) -> Iterator[Found]:
    """The value after a key named like a secret. A masked value is skipped whole; any other key only
    up to its '=' or ':', so 'env=DB_PASSWORD=x' still finds DB_PASSWORD."""
    pos = 0
    while match := key.search(text, pos):
        pos = match.end()
        if not is_secret_name(match["name"]):
            continue
        found = value.match(text, pos)
        if found is None:
            continue
        start, end = found.span()
        if inside_quotes and text[start] in "\"'":
            closed = end - start > 1 and text[end - 1] == text[start]
            start, end = start + 1, end - closed
        yield match.start(), start, end
        pos = max(pos, found.end())


def _is_user_password(encoded: str) -> bool:
    """A bare 'Basic <base64>' is masked only when it decodes to user:password ('basic configuration' is not)."""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return ":" in decoded and decoded.isprintable()


def private_keys(text: str) -> Iterator[Found]:
    """From a BEGIN ... PRIVATE KEY line: to the END line, or over the key's lines when the END was cut off.

    A BEGIN with no END on its line masks the rest of that line (a key escaped into one JSON string, or
    cut short), then every following line that looks like key material.
    """
    pos = 0
    while begin := _PEM_BEGIN.search(text, pos):
        start = begin.end()
        line_end = _line_end(text, start)
        end = _PEM_END.search(text, start, line_end)
        if end is not None:
            yield begin.start(), start, end.start()
            pos = end.end()
            continue
        stop = line_end
        while stop < len(text):
            next_end = _line_end(text, stop + 1)
            indent = _INDENT.match(text, stop + 1, next_end).end()
            if _PEM_END.match(text, indent, next_end):
                stop = indent
                break
            if not _PEM_BODY.fullmatch(text, stop + 1, next_end):
                break
            stop = next_end
        yield begin.start(), start, stop
        pos = max(stop, line_end)


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end


@lru_cache(maxsize=1024)
def encoded_forms(value: str) -> frozenset[str]:
    """The value as it may appear in text: as is, URL-encoded, base64 (standard and URL-safe, padded or
    not, whole or as part of a longer encoded blob such as user:password)."""
    forms = {value}
    for form in (quote(value, safe=""), quote(value), quote_plus(value)):
        forms.update((form, re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), form)))
    raw = value.encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms.update((whole, whole.rstrip("=")))
        for offset in (0, 1, 2):
            # Inside a longer blob only the characters that the value's own bits decide are fixed.
            coded = encode(b"\0" * offset + raw).decode()
            forms.add(coded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6])
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def word_forms(value: str) -> frozenset[str]:
    """A short credential as it may appear: as is and URL-encoded (masked as whole words only)."""
    return frozenset({value, quote(value, safe=""), quote_plus(value)})
