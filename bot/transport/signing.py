"""Slack's request signature, checked on the raw bytes before anything reads the body.

`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret; requests
older (or newer) than five minutes are refused, so a captured request cannot be replayed.
"""
from __future__ import annotations

import hashlib
import hmac
import re

MAX_AGE_SECONDS = 300
# Unix seconds are digits only: '1e10', '-1', ' 17' or 'abc' are refused before int() sees them.
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")


def signature_problem(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> str | None:
    """None when the request is Slack's; otherwise a short reason for the log (never the body)."""
    if not timestamp or not signature:
        return "missing signature headers"
    if not _TIMESTAMP.match(timestamp):
        return "malformed timestamp"
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return "stale timestamp"
    if not _SIGNATURE.match(signature):
        return "malformed signature"
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature mismatch"
    return None
