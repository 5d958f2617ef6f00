"""Redaction stays linear: adversarial megabytes, bounded log records, /logs and audit input, and a
seeded fuzz through redact() and RedactingFilter.

The budgets are generous on purpose and counted in this process's CPU time, not the wall clock (this
runs on a 2-core machine next to other suites and CPU-heavy jobs): what they catch is quadratic
behaviour, which on these inputs takes minutes to hours, not a slow second.
Measured on that machine: at most about 0.4 s for any of the megabytes below.
"""
from __future__ import annotations

import base64
import logging
import random
import string
import time
import uuid
from urllib.parse import quote

import pytest

import commands.logs
from bot.audit import service as audit
from bot.redaction import CUT_MARK, MASK, MAX_RECORD, RedactingFilter, redact, redact_cut, redact_lines, register_secret

MEGABYTE = 1 << 20
BUDGET_PER_MEGABYTE = 2.0
SECRET = f"Fz{uuid.uuid4().hex[:18]}Q"  # registered below; no fuzz fragment can spell it by chance
register_secret(SECRET)


def fill(unit: str, size: int = MEGABYTE) -> str:
    return (unit * (size // len(unit) + 1))[:size]


ADVERSARIAL = {
    "letters": fill("a"),
    "mixed case letters": "".join(random.Random(1).choice(string.ascii_letters + "_") for _ in range(MEGABYTE)),
    "key repeated": fill("key"),
    "KEY_ repeated": fill("KEY_"),
    "password repeated": fill("password"),
    "token. repeated": fill("token."),
    ":// repeated": fill("://"),
    "a:// repeated": fill("a://"),
    "a://a: repeated": fill("a://a:"),
    "colon storm": fill(":"),
    "at storm": fill("@"),
    ":@ storm": fill(":@"),
    "a:a@ storm": fill("a:a@"),
    "password= storm": fill("password="),
    'password=" storm': fill('password="'),
    "quoted key storm": fill("'password': '"),
    "--password storm": fill("--password "),
    "?token= storm": fill("?token=&"),
    "a= storm": fill("a="),
    "Basic storm": fill("Basic "),
    "Basic base64 storm": fill("Basic YWJjZA "),
    "Bearer storm": fill("Bearer "),
    "authorization storm": fill("authorization: "),
    "PEM headers on one line": fill("-----BEGIN PRIVATE KEY-----"),
    "PEM headers on lines": fill("-----BEGIN PRIVATE KEY-----\n"),
    "PEM body without END": "-----BEGIN PRIVATE KEY-----\n" + fill("QUJDRA==\n"),
    "PEM header then spaces": "-----BEGIN PRIVATE KEY-----" + fill(" "),
    "eyJ run": fill("eyJ"),
    "JWT-like storm": fill("eyJhbGciOi.eyJzdWIi."),
    "double quotes": fill('"'),
    "escaped quotes": fill('\\"'),
    "newlines": fill("\n"),
    "short lines": fill("a\n"),
    "ghp_ storm": fill("ghp_"),
    "xoxb- run": fill("xoxb-"),
    "registered secret storm": fill(SECRET[:-1]),
    # the rules of issue 14, item 16
    "curl -u storm": fill("curl -u a:"),
    "curl on every line": fill("curl\n"),
    "curl continued on every line": fill("curl \\\n"),
    "curl, then -u a:b on one line": "curl " + fill("-u a:b "),
    "a://a: without @": fill("a://a:"),
    "://u: then a long address": fill("://u:" + "x" * 3000 + " "),
    ":= storm": fill("token := "),
    "=> storm": fill("key => "),
    "subscript key storm": fill("['password'] = '"),
    "digits:AA storm": fill("123456789:AA"),
    "sk- storm": fill("sk-"),
    "Discord-like storm": fill("-M1aaaaaaaaaaaaaaaaaaaaaa.bbbbbb."),
    "Q~ storm": fill("abc1Q~"),
    "-us storm": fill("0123456789abcdef0123456789abcdef-us"),
    "hooks storm": fill("hooks.slack.com/services/"),
    "?sig= storm": fill("?sig=&"),
    "hex storm": fill("0123456789abcdef"),
    "random printable": "".join(random.Random(2).choice(string.printable) for _ in range(MEGABYTE)),
}


def timed(function, *args):
    """The call's result and the CPU seconds this process spent on it: what a quadratic rule would
    burn, and unlike the wall clock, not stretched by other suites sharing the machine's two cores."""
    started = time.process_time()
    result = function(*args)
    return result, time.process_time() - started


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_a_megabyte_of_adversarial_text_is_redacted_within_budget(name):
    _, elapsed = timed(redact, ADVERSARIAL[name])
    assert elapsed < BUDGET_PER_MEGABYTE, f"{name}: {elapsed:.2f}s for 1 MB"


def test_a_huge_log_call_costs_a_bounded_amount_and_is_cut_with_a_note():
    text = "key" * (4 * MEGABYTE)  # old code: hours, on the event loop
    record = logging.LogRecord("opsbot", logging.ERROR, __file__, 1, "%s", (text,), None)
    _, elapsed = timed(RedactingFilter().filter, record)
    assert elapsed < 0.5
    assert record.getMessage() == text[:MAX_RECORD] + CUT_MARK


def test_redact_cut_reads_only_a_bounded_head():
    _, elapsed = timed(redact_cut, "password" * (4 * MEGABYTE), 2000)  # 32 MB
    assert elapsed < 0.1


def test_logs_tail_of_long_adversarial_lines_is_bounded():
    """5,000 lines of 2,000 characters blocked the old bot for 32 s; /logs now redacts line by line."""
    units = ["key", "a", "password", "://", "eyJ"]
    raw = "\n".join(fill(units[i % len(units)], 2000 + (i % 3) * 3000) for i in range(5000))
    lines, elapsed = timed(commands.logs._read_lines, raw.splitlines(), None)
    assert elapsed < 10
    assert len(lines) == 5000
    assert all(len(line) <= commands.logs.MAX_LINE + len(CUT_MARK) for line in lines)


async def test_audit_write_redacts_a_bounded_head(make_bot):
    bot = await make_bot()
    arguments = "key" * MEGABYTE  # the old write redacted all of it: hours
    started = time.process_time()  # CPU, as timed(): the budget is for redaction, not for a busy machine
    await audit.record(bot.db, user_id="U1", command="logs", arguments=arguments, channel="C1", transport="console", outcome="ok")
    assert time.process_time() - started < 1.0
    [row] = await audit.entries(bot.db, 1)
    assert row.arguments == arguments[: audit.MAX_ARGUMENTS]


# --------------------------------------------------------------------------- fuzz

FRAGMENTS = [
    "key", "KEY", "password", "Password", "pwd", "token", "secret", "api_key", "X-API-Key", "KeyError",
    "=", ":", ": ", "://", "@", "?", "&", "/", " ", "\t", "\n", "\r\n", '"', "'", "\\", ",", ";", "{", "}", "[", "]",
    "--password ", "--token=", "Basic ", "Bearer ", "Token ", "Authorization: ", "basic ", "dXNlcjpwYXNz",
    "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----\n", "MIIEvQIBADAN\n",
    "eyJhbGciOiJIUzI1NiJ9", ".", "postgresql://app:", "redis://:", "xoxb-", "ghp_", "AKIA", "sk_live_",
    "%", "%2F", "==", "aaaaaaaa", "0123456789", MASK, "é", "\x00",
    "curl ", "-u ", "--user=", ":=", "=>", "['", "glpat-", "sk-", "123456789:AA", "hooks.slack.com/services/", "?sig=",
]
SECRET_FORMS = [
    SECRET,
    quote(SECRET),
    base64.b64encode(SECRET.encode()).decode(),
    base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
]


def fuzz_inputs(count: int, seed: int = 20240601):
    rng = random.Random(seed)
    for _ in range(count):
        size = rng.choice([10, 100, 1000, 10_000, 60_000])
        parts, length = [], 0
        while length < size:
            roll = rng.random()
            if roll < 0.05:
                part = rng.choice(SECRET_FORMS)
            elif roll < 0.15:
                part = rng.choice(FRAGMENTS) * rng.randint(2, 400)  # a storm
            elif roll < 0.25:
                part = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 50)))
            else:
                part = rng.choice(FRAGMENTS)
            parts.append(part)
            length += len(part)
        yield "".join(parts)


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_redact(seed):
    for text in fuzz_inputs(60, seed):
        once, elapsed = timed(redact, text)
        assert elapsed < 0.5, f"{elapsed:.2f}s for {len(text)} characters: {text[:200]!r}"
        assert SECRET not in once
        # Not idempotent on arbitrary text: a mask makes a word boundary ('x[REDACTED]ghp_...' now starts a
        # GitHub token). But a second pass only ever masks more; it never shows anything new.
        twice = redact(once)
        assert all(piece in once for piece in twice.split(MASK)), text[:300]


def log_lines(count: int, seed: int):
    """Lines as services write them: words, key=value pairs, DSNs, headers, JSON."""
    rng = random.Random(seed)
    words = ["GET", "/api/v1", "200", "took", "17ms", "user=bob", "KeyError: 'type'", "monkey", "tokenizer", "ERROR"]
    secrets = [
        "password=hunter2", "api_key: abc123", '{"token": "t0k3n", "n": 1}', "postgresql://app:pa/ss@db/app",
        "Authorization: Bearer abc.def", "Authorization: Token token=abc", "--password s3cr3t", "pwd=x",
        "Basic dXNlcjpwYXNz", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", f"secret is {SECRET}", "?sslpassword=x&a=1",
    ]
    for _ in range(count):
        yield " ".join(rng.choice(words + secrets) for _ in range(rng.randint(1, 12)))


def test_redacting_log_lines_twice_changes_nothing():
    for line in log_lines(500, 7):
        once = redact(line)
        assert SECRET not in once
        assert redact(once) == once, line


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_log_filter(seed):
    log_filter = RedactingFilter()
    for text in fuzz_inputs(60, 100 + seed):
        record = logging.LogRecord("opsbot", logging.INFO, __file__, 1, "%s", (text,), None)
        _, elapsed = timed(log_filter.filter, record)
        message = record.getMessage()
        assert elapsed < 0.5
        assert len(message) <= MAX_RECORD + len(CUT_MARK)
        assert not _part_of_secret_in(message)


def _part_of_secret_in(text: str, width: int = 8) -> bool:
    return any(SECRET[i : i + width] in text for i in range(len(SECRET) - width + 1))


# --------------------------------------------------------------------------- cuts never leak a part


@pytest.mark.parametrize("limit", [50, 2000, MAX_RECORD])
def test_a_secret_across_the_cut_is_masked_whole(limit):
    password = f"Pw{uuid.uuid4().hex[:14]}"  # not registered: only the user:password@ rule knows it
    signature = uuid.uuid4().hex + uuid.uuid4().hex[:11]
    jwt = f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{signature}"
    for shift in range(-80, 10):
        before = "x " * (max(0, limit + shift) // 2)
        for secret_text, secret in ((SECRET, SECRET), (f"postgresql://app:{password}@db/app", password), (jwt, signature)):
            text = f"{before}{secret_text} and more after it"
            out = redact_cut(text, limit)
            assert not any(secret[i : i + 6] in out for i in range(len(secret) - 5)), (shift, out[-60:])
            [line] = redact_lines([text], limit)
            assert not any(secret[i : i + 6] in line for i in range(len(secret) - 5)), (shift, line[-60:])
