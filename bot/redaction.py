"""Strip secrets from any text before it leaves the bot (Slack, console, logs)."""
from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words
_SECRET_WORDS = r"(?:PASSWORD|PASSWD|SECRET|TOKEN|KEY)"
_SECRET_NAME = rf"[A-Za-z0-9_]*{_SECRET_WORDS}[A-Za-z0-9_]*"
# Quoted keys (JSON, Python reprs, YAML) may also carry '-' and '.': "x-api-key", 'db.password'.
_QUOTED_SECRET_NAME = rf"[A-Za-z0-9_.-]*{_SECRET_WORDS}[A-Za-z0-9_.-]*"


def _quoted_key(match: re.Match[str]) -> str:
    value = match.group(4)
    masked = f"{value[0]}{MASK}{value[0]}" if value[0] in "\"'" else MASK
    return f"{match.group(1)}{match.group(2)}{match.group(1)}{match.group(3)}{masked}"


def _basic_credentials(match: re.Match[str]) -> str:
    """'Basic <base64>' outside an Authorization header: masked when it decodes to user:password."""
    try:
        decoded = base64.b64decode(match.group(2), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return match.group(0)
    return f"{match.group(1)}{MASK}" if ":" in decoded and decoded.isprintable() else match.group(0)


def _private_key(match: re.Match[str]) -> str:
    return f"{match.group(1)}{MASK}{match.group(2) or ''}"


_PATTERNS = [
    # PEM private key blocks, whole (to the END line) or cut short (the base64 lines that follow).
    (
        re.compile(
            r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)"
            r"(?:.*?(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)"
            r"|(?:\r?\n(?:[A-Za-z0-9+/=]+|(?:Proc-Type|DEK-Info|Version|Comment):[^\r\n]*|[ \t]*)(?=\r?\n|\Z))*)",
            re.S,
        ),
        _private_key,
    ),
    # "password": "value" / 'secret': 'value' (JSON, reprs): the quotes around the key stop the next pattern.
    (
        re.compile(
            rf"(?i)([\"'])({_QUOTED_SECRET_NAME})\1(\s*[=:]\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,;}}\]]+)"
        ),
        _quoted_key,
    ),
    # NAME=value or NAME: value where NAME says what it is.
    (re.compile(rf"(?i)\b({_SECRET_NAME})(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;]+)"), rf"\1\2{MASK}"),
    # user:password@ inside DSNs and URLs.
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)"), rf"\1{MASK}\3"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{MASK}"),
    # Authorization: Basic <base64>, and a bare 'Basic <base64 of user:password>'.
    (re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*[\"']?basic\s+)[A-Za-z0-9+/=._~-]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])"), _basic_credentials),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]+"), MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), MASK),
    # GitHub tokens: classic (ghp_ gho_ ghu_ ghs_ ghr_) and fine-grained (github_pat_).
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{10,}"), MASK),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{10,}"), MASK),
    # Stripe-style secret and restricted keys.
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+"), MASK),
    # AWS access key ids (long-lived AKIA, temporary ASIA).
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
]
_ENV_SECRET = re.compile(rf"^{_SECRET_NAME}$|^(DATABASE_URL|REDIS_URL)$", re.IGNORECASE)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secret (long enough to be worth masking)."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _ENV_SECRET.match(k) and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


# The values redact() replaces, longest first: secret-named environment variables plus every value
# registered with register_secret(). Computed on first use and by refresh_secrets(), not per call.
_lock = threading.Lock()
_environment: list[str] = []
_registered: set[str] = set()
_values: tuple[str, ...] | None = None


def _merge() -> None:
    global _values
    _values = tuple(sorted(set(_environment) | _registered, key=len, reverse=True))


def refresh_secrets() -> None:
    """Re-read the secret-named environment variables (call after the environment changed, e.g. a .env load)."""
    global _environment
    values = secret_values()
    with _lock:
        _environment = values
        _merge()


def register_secret(value: str) -> None:
    """Mask this value in everything redact() cleans from now on (e.g. what a ${VAR} in app.yaml expanded to)."""
    if not value or len(value) < MIN_SECRET_LENGTH or value in _registered:
        return
    with _lock:
        _registered.add(value)
        _merge()


def _secrets() -> tuple[str, ...]:
    if _values is None:
        refresh_secrets()
    return _values or ()


def redact(text: str, extra_secrets: list[str] | None = None) -> str:
    values = _secrets()
    if extra_secrets:
        values = tuple(sorted(set(values) | {v for v in extra_secrets if v}, key=len, reverse=True))
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Applied to the bot's log handlers so a secret in an exception message never reaches a log line.

    The traceback (exc_info) and stack_info are formatted into the message and redacted with it, then
    cleared from the record: a handler's formatter would otherwise print them unredacted.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        full = message
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            full = f"{full}\n{record.exc_text}" if full else record.exc_text
        if record.stack_info:
            full = f"{full}\n{self._formatter.formatStack(record.stack_info)}"
        cleaned = redact(full)
        if cleaned != message or full != message:
            record.msg, record.args = cleaned, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
