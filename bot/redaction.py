"""Strip secrets from any text before it leaves the bot (Slack, console, logs).

Redaction takes time linear in the text (see redaction_rules), so a caller that faces text of any
size bounds it: redact_cut() for one message and redact_lines() for log lines read a little past
what they keep (CONTEXT), redact that, and only then cut. A secret straddling the cut is masked as
a whole, never shown in part.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from bisect import bisect_left, bisect_right
from itertools import chain
from typing import Iterable, Iterator

from bot.redaction_rules import MIN_SECRET_LENGTH, PASSWORD_MAX, Span, encoded_forms, private_keys, rule_spans, word_forms

MASK = "[REDACTED]"
CUT_MARK = " …[cut]"
# Read past a cut: more than any rule needs to decide (://user:password@ is at most 2,308 characters; a
# key's value, a token or a JWT cut short by the end of what was read is masked to that end).
CONTEXT = PASSWORD_MAX + 512
CHUNK = 65536
MAX_RECORD = 8192  # a log record is cut to this, after redaction
MIN_WORD_LENGTH = 3  # a credential shorter than this is not masked: 'a' or 'pw' would blank ordinary text
_ENV_WORDS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "KEY")


def _env_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in ("DATABASE_URL", "REDIS_URL") or any(word in upper for word in _ENV_WORDS)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secret (long enough to be worth masking)."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _env_secret_name(k) and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


# What redact() searches for, computed on first use, by refresh_secrets() and register_secret(), not
# per call: every form (encoded_forms) of the secret-named environment variables and registered
# values, plus short credentials that are masked as whole words only.
_lock = threading.Lock()
_environment: list[str] | None = None  # None until read: registering a value first must not skip that
_registered: dict[str, bool] = {}  # value -> masked as a whole word only
_needles: tuple[str, ...] | None = None
_longest = 0
_words: re.Pattern[str] | None = None


def _merge() -> None:
    global _needles, _longest, _words
    values = set(_environment or ()) | {v for v, whole_word in _registered.items() if not whole_word}
    words = sorted({form for v, whole_word in _registered.items() if whole_word for form in word_forms(v)}, key=len, reverse=True)
    # Literal alternatives between lookarounds: at most one attempt per word start, each as long as a word.
    _words = re.compile(rf"(?<![A-Za-z0-9_])(?:{'|'.join(map(re.escape, words))})(?![A-Za-z0-9_])") if words else None
    _needles = tuple({form for value in values for form in encoded_forms(value)})
    _longest = max(map(len, _needles), default=0)


def refresh_secrets() -> None:
    """Re-read the secret-named environment variables (call after the environment changed, e.g. a .env load)."""
    global _environment
    values = secret_values()
    with _lock:
        _environment = values
        _merge()


def register_secret(value: str, *, credential: bool = False) -> None:
    """Mask this value in everything redact() cleans from now on (e.g. what a ${VAR} in app.yaml expanded to).

    A value shorter than MIN_SECRET_LENGTH is ignored unless it is a credential (app.yaml uses it as a
    password, token or header). A short credential, or a plain word one ('postgres'), is masked only
    where it stands as a whole word, so 'postgresql' and 'pw9x' stay readable.
    """
    if not value or len(value) < (MIN_WORD_LENGTH if credential else MIN_SECRET_LENGTH):
        return
    whole_word = credential and (len(value) < MIN_SECRET_LENGTH or (value.isalpha() and len(value) < 12))
    with _lock:
        known = _registered.get(value)
        updated = whole_word if known is None else known and whole_word  # masking everywhere wins
        if updated is not known:
            _registered[value] = updated
            _merge()


def _secrets() -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    if _environment is None:
        refresh_secrets()
    return _needles or (), _words


def _spans(text: str, extra_secrets: Iterable[str] | None = None) -> list[Span]:
    """The merged, sorted spans of text to mask."""
    needles, words = _secrets()
    if extra_secrets:
        needles = needles + tuple(f for v in extra_secrets if v for f in encoded_forms(v) | {v})
    found: list[Span] = []
    for needle in needles:  # on the whole text: a secret from the environment may span lines
        start = text.find(needle)
        while start != -1:
            found.append((start, start + len(needle)))
            start = text.find(needle, start + len(needle))
    chunks = list(_chunks(text))
    if words is not None:
        found += [(offset + m.start(), offset + m.end()) for offset, chunk in chunks for m in words.finditer(chunk)]
    values = _merged(found)
    starts = [a for a, _ in values]
    line_rules = ((offset + t, offset + a, offset + b) for offset, chunk in chunks for t, a, b in rule_spans(chunk))
    for trigger, start, end in chain(private_keys(text), line_rules):
        # A rule set off inside a known value stops with it, as if the value had been masked first:
        # '?sslpassword=' inside a registered DSN must not take the ':' after the DSN with it.
        index = bisect_right(starts, trigger) - 1
        if index >= 0 and start < values[index][1] and trigger < values[index][1]:
            end = min(end, values[index][1])
        found.append((start, end))
    return _merged(found)


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """Whole lines, about CHUNK characters at a time: the line rules (all but private keys, and curl's -u on
    lines continued with '\\') never cross a line break, and a regular expression holds the GIL for as
    long as it scans, event loop or not."""
    start = 0
    while start < len(text):
        cut = text.find("\n", start + CHUNK)
        end = len(text) if cut == -1 else cut + 1
        yield start, text[start:end]
        start = end


def _merged(found: list[Span]) -> list[Span]:
    found.sort()
    merged: list[Span] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _render(text: str, spans: list[Span], ends: list[int], start: int, end: int) -> str:
    """text[start:end] with each span masked. A span cut by start or end is masked for the part inside;
    an empty span (a PEM header with nothing after it) still shows the mask."""
    out, pos = [], start
    for index in range(bisect_left(ends, start), len(spans)):
        a, b = spans[index]
        if a > end or (a == end and b > a):
            break
        lo, hi = max(a, start), min(b, end)
        if lo < hi or a == b:
            out += (text[pos:lo], MASK)
            pos = hi
    out.append(text[pos:end])
    return "".join(out)


def redact(text: str, extra_secrets: list[str] | None = None) -> str:
    """The whole text, redacted. Linear in its length; bound what you pass (redact_cut, redact_lines)."""
    spans = _spans(text, extra_secrets)
    if not spans:
        return text
    return _render(text, spans, [b for _, b in spans], 0, len(text))


def redact_cut(text: str, limit: int, *, mark: bool = True) -> str:
    """At most `limit` characters of the redacted text (plus CUT_MARK when something was cut off).

    Reads at most limit + CONTEXT (+ the longest secret) characters, whatever the size of the text.
    """
    _secrets()
    window = limit + CONTEXT + _longest
    head = text[:window]
    spans = _spans(head)
    end = len(head) if len(text) <= window else limit  # past `limit`, the head is only context
    out = _render(head, spans, [b for _, b in spans], 0, end)
    if end == len(text) and len(out) <= limit:
        return out
    return out[:limit] + (CUT_MARK if mark else "")


def redact_lines(lines: list[str], max_line: int | None = None) -> list[str]:
    """Each line redacted and, with max_line, cut to it after redaction (CUT_MARK says so).

    One pass over the lines together, so a private key's lines are masked although each is a line of
    its own; a line longer than max_line is read only to max_line + CONTEXT. The lines stay as many.
    """
    _secrets()
    window = None if max_line is None else max_line + CONTEXT + _longest
    heads = lines if window is None else [line[:window] for line in lines]
    text = "\n".join(heads)
    spans = _spans(text)
    ends = [b for _, b in spans]
    out, pos = [], 0
    for line, head in zip(lines, heads):
        stop = pos + len(head)
        cut = max_line is not None and len(line) > len(head)
        piece = _render(text, spans, ends, pos, pos + max_line if cut else stop)
        if max_line is not None and (cut or len(piece) > max_line):
            piece = piece[:max_line] + CUT_MARK
        out.append(piece)
        pos = stop + 1
    return out


class RedactingFilter(logging.Filter):
    """Applied to the bot's log handlers so a secret in an exception message never reaches a log line.

    The traceback (exc_info) and stack_info are formatted into the message and redacted with it, then
    cleared from the record: a handler's formatter would otherwise print them unredacted. The record
    is cut to MAX_RECORD characters after redaction, so one log call costs a bounded amount of work
    here, on whatever thread (the event loop's, often) made it.
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
        cleaned = redact_cut(full, MAX_RECORD)
        if cleaned != message or full != message:
            record.msg, record.args = cleaned, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
