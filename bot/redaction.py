"""Strip secrets from any text before it leaves the bot (Slack, console, logs)."""
from __future__ import annotations

import logging
import os
import re

MASK = "[REDACTED]"
_SECRET_NAME = r"[A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|KEY)[A-Za-z0-9_]*"
_PATTERNS = [
    # NAME=value or NAME: value where NAME says what it is.
    (re.compile(rf"(?i)\b({_SECRET_NAME})(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;]+)"), rf"\1\2{MASK}"),
    # user:password@ inside DSNs and URLs.
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)"), rf"\1{MASK}\3"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{MASK}"),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]+"), MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), MASK),
]
_ENV_SECRET = re.compile(rf"^{_SECRET_NAME}$|^(DATABASE_URL|REDIS_URL)$", re.IGNORECASE)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secret (long enough to be worth masking)."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _ENV_SECRET.match(k) and len(v) >= 6}, key=len, reverse=True)


def redact(text: str, extra_secrets: list[str] | None = None) -> str:
    for value in secret_values() + list(extra_secrets or []):
        if value:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Applied to the bot's log handlers so a secret in an exception message never reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True
