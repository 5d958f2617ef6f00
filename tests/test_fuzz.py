"""Fuzz sweeps over every inbound body shape and every text path, within a fixed budget.

tests/test_edge.py and tests/test_bad_inputs.py hold the hand-written cases; this file
generalises them with seeded random and adversarial inputs:

1. HTTP bodies: slash-command forms, interaction payloads (block_actions, view_submission,
   view_closed, shortcut, block_suggestion) and Events API JSON (event_callback,
   url_verification, app_rate_limited), mutated (fields dropped, retyped, huge, deeply nested,
   unicode with lone surrogates and NUL, repeated, truncated, random bytes, wrong content
   types and encodings), each sent signed and unsigned to a bot served over real HTTP: the
   status is 200/400/413 signed and 401 (413) unsigned, never 5xx, within a per-input budget.
2. Socket Mode: the same payload mutations in envelopes through the Socket Mode double to the
   bot's real SocketModeTransport: every envelope acknowledged in time, no contract breach.
3. Command texts for every command (and unknown names) through the pipeline, a sample through
   HTTP and Socket Mode: one sentence or a normal reply, never an internal error, always on
   record in the audit log, and no restart ever set off (restart needs two approvals here).
4. Button values and action ids through the console and HTTP: one sentence, never an error.

Every sweep also holds: no traceback in the log, a marker placed in the inputs never appears
in a log record, and the bot still answers /healthz, /readyz, /metrics and a genuine signed
/health afterwards. The bot runs on the real PostgreSQL and Redis; only Slack is faked.

The seed is fixed (DEFAULT_SEED) unless OPSBOT_FUZZ_SEED gives one, or `random` for a fresh
draw; it is printed (stderr, and in every failure message); replay a run with
OPSBOT_FUZZ_SEED=<seed>. Each test derives its own generator from the seed and its name,
so one test replays alone. What Slack makes unique per delivery (trigger_id, event_id,
response_url) stays fresh on a replay, so Redis's one-hour guard against repeated deliveries
does not skip a replayed input. Failures are grouped by kind, three examples each
(OPSBOT_FUZZ_EXAMPLES for more). Bugs the sweeps found are pinned by the small tests at the
end, each a minimal case of one.

Not counted as a failure: aiohttp itself refusing an HTTP message it cannot decode (a
Content-Encoding it does not support, such as br or zstd) with 400 before the bot's handler
runs. aiohttp logs each such refusal at ERROR with a traceback; that is the library's
behaviour for malformed HTTP, not the bot's.
"""
from __future__ import annotations

import asyncio
import copy
import gzip
import io
import json
import logging
import os
import random
import re
import secrets
import string
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from aiohttp.http_exceptions import HttpProcessingError
import pytest_asyncio
from aiohttp import web

from conftest import REDIS_URL, SIGNING_SECRET, fleet, free_port
from slack_signing import (
    block_actions_payload,
    event_callback_payload,
    new_trigger_id,
    reaction_added_event,
    sign,
    slash_command_fields,
    view_submission_payload,
)
from slack_double import block_texts
from socket_mode_double import NotAcked

from bot.action.models import ActionRequest
from bot.metrics import INTERACTIONS
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Button, Outcome
from bot.pipeline.request import Request
from bot.pipeline.roles import RoleDirectory
from bot.transport.console import Console
from bot.transport.edge import SlackEdge
from bot.transport.server import build_web_app
from bot.transport.slack import group_lookup, web_client
from bot.transport.socket_mode import SocketModeTransport


# CI runs one fixed seed, so a landing is never decided by the draw; OPSBOT_FUZZ_SEED=random explores.
DEFAULT_SEED = 20261124


def _seed() -> int:
    raw = os.environ.get("OPSBOT_FUZZ_SEED", "").strip()
    if not raw:
        return DEFAULT_SEED
    if raw == "random":
        return secrets.randbits(32)
    try:
        return int(raw, 0)
    except ValueError:
        raise ValueError(f"OPSBOT_FUZZ_SEED must be an integer, not {raw!r}") from None


SEED = _seed()

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
OPS_USER = "UOPS1"  # holds the ops role, which owns fuzzweb: may request (never approve) its restart
NOBODY = "UFUZZNOBODY"  # holds no role
HEALTH_USER = "UFUZZHEALTH"  # only the genuine /health after each sweep runs as this user
BUDGET = 2.0  # seconds per input, for the answer (HTTP status, Socket Mode ack, a reply)
LOGS_BUDGET = 5.0  # /logs: a /regex/ may use its whole 2 s grep budget before the sentence
EXAMPLES = int(os.environ.get("OPSBOT_FUZZ_EXAMPLES", "3"))  # examples shown per kind of failure


def fuzz_config() -> str:
    """Cheap checks only; fuzzweb names the fleet's web container for /logs and /restart.

    Restart needs two approvals and ops (OPS_USER alone) is the only approver role, with no
    self-approval: nothing any fuzzed input does can get a restart approved. Requests expire
    only after a day, so no other test's sweep in the same session expires (and edits) them.
    """
    return f"""
version: 1
services:
  host:
    checks:
      - kind: disk
        path: /
        usage: {{warn: 99, critical: 100}}
      - kind: memory
        usage: {{warn: 99, critical: 100}}
  fuzzweb:
    container: {fleet()["OPSBOT_FLEET_WEB"]}
    owners: [ops]
roles:
  ops:
    users: [{OPS_USER}]
actions:
  restart:
    kind: docker_restart
    approval: {{approvals: 2, self_approval: false, expires: 1d}}
"""


@pytest.fixture(scope="module", autouse=True)
def announce_seed(request, record_testsuite_property):
    """The seed on the terminal (past pytest's capture) and in the JUnit report, whether or not a test fails."""
    record_testsuite_property("opsbot_fuzz_seed", str(SEED))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n[test_fuzz] seed {SEED}: replay with OPSBOT_FUZZ_SEED={SEED}")


# --- the generator's vocabulary -------------------------------------------------------------

ADVERSARIAL = [
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "\r\n\r\n",
    "\x7f",
    "\ud800",
    "x\udfffy",
    "\ud83d",
    "\ufeff",
    "\u202eevil",
    "\u200b",
    "\u2028",
    "\u0085",
    "\U0010ffff",
    "e\u0301\u0301\u0301",
    "сервис",
    "🔥🔥",
    "١٢",
    "²",
    "٠",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "-0",
    "true",
    "null",
    "[]",
    "{}",
    '{"type": "block_actions"}',
    "<!channel>",
    "<@U123|ana>",
    "<#C1|ops>",
    "<!subteam^S1|x>",
    "<http://x.invalid|y>",
    "&lt;&amp;&gt;",
    "&#0;&#xd800;&#x110000;",
    "%00%ff%ED%A0%80",
    "'; DROP TABLE audit_log;--",
    "${jndi:ldap://x.invalid/a}",
    "{{7*7}}",
    "%s%n%x",
    "../../../etc/passwd",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://127.0.0.1:9/x",
    "https://",
    "U1",
    "UOPS1",
    "u1",
    "U" + "1" * 40,
    "/health",
    "/",
    "//",
    "/he alth",
    "approve",
    "deny",
    "action.approve",
    "action.deny",
    "block_actions",
    "url_verification",
    "event_callback",
    "\\",
    '"',
    "'",
]


def marker_for(rng: random.Random) -> str:
    return "ZQFZ" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(12))


def adversarial_string(rng: random.Random, marker: str) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(ADVERSARIAL)
    if roll < 0.65:
        return rng.choice(ADVERSARIAL) + marker + rng.choice(ADVERSARIAL)
    if roll < 0.8:
        return random_unicode(rng, rng.randint(1, 40))
    if roll < 0.9:
        return rng.choice("xa9 %") * rng.choice([33, 65, 256, 2001, 8001, 20000])
    return "".join(rng.choice(ADVERSARIAL) for _ in range(rng.randint(2, 8)))


def random_unicode(rng: random.Random, n: int) -> str:
    ranges = [(0, 0x1F), (0x20, 0x7E), (0x80, 0x2FF), (0x590, 0x6FF), (0x2000, 0x206F), (0xD800, 0xDFFF), (0xFFF0, 0xFFFF), (0x1F300, 0x1F64F), (0x10FFF0, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


NEST_TOKEN = "@@FUZZNEST{}@@"
_NEST = re.compile(r'"@@FUZZNEST(\d+)@@"')


def random_value(rng: random.Random, marker: str, *, http: bool) -> Any:
    kind = rng.choice(["str", "int", "float", "list", "null", "dict", "bool", "nest", "huge"])
    if kind == "str":
        return adversarial_string(rng, marker)
    if kind == "int":
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e308, float("nan"), float("inf")])
    if kind == "list":
        return [adversarial_string(rng, marker) for _ in range(rng.randint(0, 3))]
    if kind == "null":
        return None
    if kind == "dict":
        return {adversarial_string(rng, marker): adversarial_string(rng, marker) for _ in range(rng.randint(0, 3))}
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "nest":
        if http:  # serialised as text: as deep as a body can hold
            return NEST_TOKEN.format(rng.choice([20, 500, 990, 5000, 100_000]))
        depth = rng.choice([20, 200, 400])  # a Socket Mode frame is real JSON on both sides
        value: Any = marker
        for _ in range(depth):
            value = [value] if rng.random() < 0.5 else {"a": value}
        return value
    return (marker + "x") * rng.choice([100, 1000, 30000])


IMPORTANT = {
    "type", "user", "id", "actions", "action_id", "value", "command", "text", "user_id", "channel_id", "team_id",
    "response_url", "trigger_id", "event_id", "event", "challenge", "view", "callback_id", "team", "container", "channel",
}


def _slots(node: Any) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            out.extend(_slots(node[key]))
    elif isinstance(node, list):
        for index in range(len(node)):
            out.append((node, index))
            out.extend(_slots(node[index]))
    return out


def mutate_tree(rng: random.Random, doc: dict, marker: str, *, http: bool, flat: bool = False) -> list[str]:
    """Mutate `doc` in place, zero to four times (zero: the valid body, which must still work); returns what was done."""
    done = []
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        slots = _slots(doc)
        important = [s for s in slots if s[1] in IMPORTANT]
        parent, key = rng.choice(important) if important and rng.random() < 0.7 else (rng.choice(slots) if slots else (doc, "x"))
        op = rng.choice(["drop", "retype", "string", "marker", "extra", "swap", "unicode"])
        if flat and op == "retype":
            op = "string"  # a form value is text; Socket Mode gets real types (not flat)
        if op == "drop" and (isinstance(parent, dict) and key in parent or isinstance(parent, list) and key < len(parent)):
            del parent[key]
        elif op == "retype":
            parent[key] = random_value(rng, marker, http=http)
        elif op == "string":
            parent[key] = adversarial_string(rng, marker)
        elif op == "marker":
            parent[key] = f"{rng.choice(ADVERSARIAL)}{marker}"
        elif op == "extra":
            target = parent if isinstance(parent, dict) else doc
            target[adversarial_string(rng, marker)[:300] or "k"] = adversarial_string(rng, marker) if flat else random_value(rng, marker, http=http)
        elif op == "swap" and slots:
            other_parent, other_key = rng.choice(slots)
            try:
                parent[key] = copy.deepcopy(other_parent[other_key]) if other_parent is not parent or other_key != key else None
            except (KeyError, IndexError):
                pass
        else:
            parent[key] = random_unicode(rng, rng.randint(1, 30))
        done.append(f"{op} {str(key)[:30]!r}")
    return done


# --- base payloads: every body shape Slack sends ----------------------------------------------

COMMANDS = ["/health", "/help", "/logs", "/audit", "/restart", "/nope"]


@dataclass
class Shape:
    name: str
    envelope: str  # Socket Mode envelope type: slash_commands, interactive, events_api
    payload: dict


def base_shape(rng: random.Random, slack, marker: str) -> Shape:
    url = slack.new_response_url()
    user = rng.choice([OPS_USER, NOBODY, "U1"])
    kind = rng.choice(["slash", "slash", "block_actions", "view_submission", "view_closed", "shortcut", "block_suggestion", "event", "url_verification", "other_event"])
    if kind == "slash":
        command = rng.choice(COMMANDS)
        text = rng.choice(["", "host", "fuzzweb", f"nope{marker}", "host --tail 5", "fuzzweb --tail=5"])
        return Shape(kind, "slash_commands", slash_command_fields(command, text, user_id=user, response_url=url))
    if kind == "block_actions":
        action = rng.choice(["action.approve", "action.deny", "approve", "deny", "incident.ack", "x"])
        value = rng.choice(["1", "0", "999999999", f"{marker}", "١٢"])
        return Shape(kind, "interactive", block_actions_payload(user, action, value, response_url=url))
    if kind == "view_submission":
        state = {"b1": {"a1": {"type": "plain_text_input", "value": f"typed {marker}"}}}
        return Shape(kind, "interactive", view_submission_payload("fuzz.modal", state, user_id=user, private_metadata=marker))
    if kind in ("view_closed", "shortcut", "block_suggestion"):
        payload = {
            "type": kind,
            "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
            "team": {"id": "T0TEST"},
            "api_app_id": "A0TEST",
            "trigger_id": new_trigger_id(),
        }
        if kind == "view_closed":
            payload["view"] = {"id": "V1", "callback_id": "fuzz.modal", "private_metadata": marker}
        elif kind == "shortcut":
            payload["callback_id"] = "fuzz.shortcut"
        else:
            payload.update(action_id="pick", value=marker, block_id="b1")
        return Shape(kind, "interactive", payload)
    if kind == "event":
        event = reaction_added_event(user, rng.choice(["pushpin", "eyes", marker.lower()]), "C1", "1700000000.000100")
        return Shape(kind, "events_api", event_callback_payload(event))
    if kind == "url_verification":
        return Shape(kind, "events_api", {"token": "t", "challenge": f"ch{marker}", "type": "url_verification"})
    return Shape(kind, "events_api", {"token": "t", "type": "app_rate_limited", "team_id": "T0TEST", "minute_rate_limited": 1518467820, "api_app_id": "A0TEST"})


# --- serialising a payload as an HTTP body, then breaking the bytes ---------------------------


def _q(value: str, rng: random.Random) -> str:
    raw = value.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are not UTF-8
    return quote_plus(raw, safe="") if rng.random() < 0.8 else quote(raw, safe="/:")


def _json_text(rng: random.Random, doc: Any) -> str:
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.6, allow_nan=True)

    def nest(match: re.Match) -> str:
        depth = int(match.group(1))
        return ("[" * depth + "]" * depth) if rng.random() < 0.5 else ('{"a":' * depth + "1" + "}" * depth)

    text = _NEST.sub(nest, text)
    if rng.random() < 0.1 and text.startswith("{"):
        # Repeated keys: json.loads keeps the last one.
        text = '{"type": "' + rng.choice(["block_actions", "url_verification", "event_callback", "x"]) + '", ' + text[1:]
    return text


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def form_body(rng: random.Random, fields: dict) -> bytes:
    pairs = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()]
    if pairs and rng.random() < 0.15:
        pairs.append(rng.choice(pairs))  # a repeated field
    if rng.random() < 0.05:
        pairs += [(f"f{i}", "v") for i in range(rng.choice([63, 65, 500]))]  # around max_num_fields
    rng.shuffle(pairs)
    sep = "&" if rng.random() < 0.95 else rng.choice([";", "&&", "&=&"])
    return sep.join(f"{_q(k, rng)}={_q(v, rng)}" for k, v in pairs).encode("ascii")


def http_body(rng: random.Random, shape: Shape) -> tuple[bytes, str]:
    if shape.envelope == "slash_commands":
        return form_body(rng, shape.payload), FORM
    if shape.envelope == "interactive":
        fields: dict = {"payload": _json_text(rng, shape.payload)}
        if rng.random() < 0.1:
            fields[rng.choice(["command", "payload2", "text"])] = "/health"
        return form_body(rng, fields), FORM
    return _utf8(_json_text(rng, shape.payload)), JSON


BYTE_INSERTS = [b"\x00", b"\xff", b"\xed\xa0\x80", b"%", b"%zz", b"%ED%A0%80", b"%00", b"&", b"=", b"+", b"\r\n", b"\xef\xbb\xbf", b'"', b"\\u0000", b"\\ud800"]


def break_bytes(rng: random.Random, body: bytes) -> tuple[bytes, str]:
    op = rng.choice(["truncate", "flip", "insert", "append", "random", "empty", "bom", "huge", "over-limit"])
    if op == "truncate" and body:
        return body[: rng.randrange(len(body))], op
    if op == "flip" and body:
        data = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), op
    if op == "insert":
        at = rng.randint(0, len(body))
        return body[:at] + rng.choice(BYTE_INSERTS) + body[at:], op
    if op == "append":
        return body + rng.choice(BYTE_INSERTS) * rng.randint(1, 5), op
    if op == "random":
        return rng.randbytes(rng.choice([1, 16, 500, 20000])), op
    if op == "empty":
        return b"", op
    if op == "bom":
        return b"\xef\xbb\xbf" + body, op
    if op == "huge":
        return body + b"&pad=" + b"x" * rng.choice([100_000, 1024 * 1024 - len(body) - 6]), op
    if op == "over-limit":
        return body + b"&pad=" + b"x" * (1024 * 1024), op
    return body, "none"


CONTENT_TYPES = [FORM, JSON, "text/plain", None, "multipart/form-data; boundary=zz", "application/json; charset=utf-16", "APPLICATION/JSON",
                 f"{FORM}; charset=latin-1", "application/xml", "*/*", "application/json;;;", "application/x-www-form-urlencoded, application/json", "a/b; x=\"y"]


def unsigned_headers(rng: random.Random, body: bytes) -> tuple[dict[str, str], str]:
    now = int(time.time())
    good = sign(SIGNING_SECRET, body)
    variant = rng.choice(["none", "ts-only", "sig-only", "other-body", "stale", "future", "wrong-secret", "junk-sig", "junk-ts", "upper-hex"])
    if variant == "none":
        return {}, variant
    if variant == "ts-only":
        return {"X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"]}, variant
    if variant == "sig-only":
        return {"X-Slack-Signature": good["X-Slack-Signature"]}, variant
    if variant == "other-body":
        return sign(SIGNING_SECRET, body + b" "), variant
    if variant == "stale":
        return sign(SIGNING_SECRET, body, now - 301 - rng.randint(0, 10**6)), variant
    if variant == "future":
        return sign(SIGNING_SECRET, body, now + 301 + rng.randint(0, 10**6)), variant
    if variant == "wrong-secret":
        return sign(SIGNING_SECRET + "x", body), variant
    if variant == "junk-sig":
        junk = rng.choice(["v0=", "v1=" + "0" * 64, "v0=" + "g" * 64, "", "v0=" + "0" * 640, "".join(rng.choice(string.printable[:94]) for _ in range(70))])
        return {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": junk}, variant
    if variant == "junk-ts":
        junk = rng.choice(["", "-1", "1e10", " 17", str(now) + ".5", "9" * 40, "0x10", "٣", "00000" + str(now)])
        return {"X-Slack-Request-Timestamp": junk, "X-Slack-Signature": good["X-Slack-Signature"]}, variant
    return {"X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"], "X-Slack-Signature": good["X-Slack-Signature"].upper().replace("V0=", "v0=")}, variant


@dataclass
class HttpCase:
    index: int
    shape: str
    steps: list[str]
    body: bytes
    content_type: str | None
    transfer: str  # plain, chunked, gzip, deflate, bogus-gzip (says gzip, is not), gzip-bomb, encoding:<Content-Encoding>

    @property
    def encoded(self) -> bool:
        """Sent with a Content-Encoding other than identity."""
        declared = self.transfer.split(":", 1)[1] if self.transfer.startswith("encoding:") else self.transfer
        return declared in ("gzip", "deflate", "bogus-gzip", "gzip-bomb") or (
            self.transfer.startswith("encoding:") and (declared.strip().lower() or "identity") != "identity"
        )

    def describe(self) -> str:
        return f"{self.shape} {self.steps} ct={self.content_type!r} transfer={self.transfer} body[:160]={self.body[:160]!r} ({len(self.body)} bytes)"


def make_http_case(rng: random.Random, index: int, slack, marker: str) -> HttpCase:
    shape = base_shape(rng, slack, marker)
    steps = mutate_tree(rng, shape.payload, marker, http=True, flat=shape.envelope == "slash_commands")
    body, content_type = http_body(rng, shape)
    if rng.random() < 0.3:
        body, op = break_bytes(rng, body)
        steps.append(f"bytes:{op}")
    if rng.random() < 0.25:
        content_type = rng.choice(CONTENT_TYPES)
    transfer = rng.choices(["plain", "chunked", "gzip", "deflate", "bogus-gzip", "gzip-bomb", "encoding"], [80, 6, 4, 3, 3, 2, 2])[0]
    if transfer == "encoding":
        transfer = "encoding:" + rng.choice(["br", "zstd", "identity", "x-fuzz", "gzip, deflate", "", "GZIP", "compress"])
    return HttpCase(index, shape.name, steps, body, content_type, transfer)


# --- a bot served over HTTP and Socket Mode, with its edge at hand ----------------------------


@dataclass
class Rig:
    bot: Any
    edge: SlackEdge
    url: str | None = None
    runner: web.AppRunner | None = None
    transport: SocketModeTransport | None = None


@pytest_asyncio.fixture
async def rig(slack, make_bot, pg_database_url):
    """rig(http=True, socket=False) -> Rig: the bot on PostgreSQL and Redis, served as `opsbot serve` wires it."""
    made: list[Rig] = []

    async def factory(*, http: bool = True, socket: bool = False) -> Rig:
        bot = await make_bot(fuzz_config(), pg_database_url, api_url=slack.api_url, redis_url=REDIS_URL)
        client = web_client(bot.settings)
        bot.roles = RoleDirectory(bot.config, group_lookup(client))
        edge = SlackEdge(bot, client)
        rig = Rig(bot, edge)
        made.append(rig)
        if http:
            rig.runner = web.AppRunner(build_web_app(bot, edge, SIGNING_SECRET), access_log=None)
            await rig.runner.setup()
            port = free_port()
            await web.TCPSite(rig.runner, "127.0.0.1", port).start()
            rig.url = f"http://127.0.0.1:{port}"
        if socket:
            rig.transport = SocketModeTransport(edge, slack.app_token, client)
            await rig.transport.connect()
            await slack.socket.wait_connected()
        return rig

    yield factory
    for rig in made:
        await rig.edge.work.drain(30)
        if rig.transport is not None:
            await rig.transport.close()
        if rig.runner is not None:
            await rig.runner.cleanup()


@pytest.fixture
def logs(caplog):
    """Everything at INFO and up, and all of the bot's own records."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="bot")
    caplog.set_level(logging.DEBUG, logger="commands")
    return caplog


@pytest.fixture
def metrics_hygiene():
    """Fuzzed payload types become label values of opsbot_interactions_total in the process-wide
    registry; the ones this test added are removed again, so no later test's /metrics carries them."""
    before = set(INTERACTIONS._metrics)
    yield
    for labels in set(INTERACTIONS._metrics) - before:
        INTERACTIONS.remove(*labels)


class Failures:
    """Failures grouped by kind, so that a hundred hits of one bug do not hide a single hit of another."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[str]] = {}

    def add(self, kind: str, message: str) -> None:
        self.by_kind.setdefault(kind, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_kind)

    def __repr__(self) -> str:
        return f"<{sum(len(m) for m in self.by_kind.values())} fuzz failures>"

    def report(self, test: str, count: int) -> str:
        total = sum(len(messages) for messages in self.by_kind.values())
        lines = [
            f"{total} fuzz failure(s) of {len(self.by_kind)} kind(s) in {count} inputs; seed {SEED}, replay with "
            f"OPSBOT_FUZZ_SEED={SEED} .venv/bin/python -m pytest -q tests/test_fuzz.py::{test}"
        ]
        for kind, messages in sorted(self.by_kind.items(), key=lambda item: -len(item[1])):
            lines.append(f"* {kind} ({len(messages)}x):")
            lines += [f"    - {message}" for message in messages[:EXAMPLES]]
        return "\n".join(lines)


def log_problems(failures: Failures, records: list[logging.LogRecord], markers: list[str], *, strict: bool = False) -> None:
    """Tracebacks, input markers and (strict: where nothing outside the bot can fail) any ERROR of the bot's own."""
    for record in records:
        try:
            message = record.getMessage()
        except Exception as exc:  # a record that cannot even be formatted is a problem too
            failures.add("an unformattable log record", f"from {record.name}: {exc!r}")
            continue
        template = str(record.msg)[:60]
        if record.name == "aiohttp.server" and record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            # aiohttp itself refused a malformed HTTP message (e.g. Content-Encoding: br, not installed) with a 400
            # before the bot's handler ran; it logs every such refusal with its traceback (see the module's notes).
            pass
        elif record.levelno >= logging.ERROR and record.exc_info:
            failures.add(f"traceback logged by {record.name} ({type(record.exc_info[1]).__name__})", f"{message[:200]!r} ({record.exc_info[1]!r})"[:400])
        elif "Traceback (most recent call last)" in message:
            failures.add(f"traceback text logged by {record.name}", repr(message[:300]))
        elif strict and record.levelno >= logging.ERROR and record.name.startswith(("bot", "commands")):
            failures.add(f"ERROR logged by {record.name}: {template!r}", repr(message[:240]))
        shown = record.name.startswith(("bot", "commands")) or record.levelno >= logging.INFO
        for marker in markers:
            if shown and marker in message:
                failures.add(f"input marker logged by {record.name}: {template!r}", f"{record.levelname} {message[:240]!r}")


def rng_for(test: str) -> random.Random:
    return random.Random(f"{SEED}/{test}")


def printable(text: str | None, limit: int = 160) -> str:
    return repr((text or "")[:limit])


async def post(http: aiohttp.ClientSession, url: str, case: HttpCase, headers: dict[str, str]) -> int:
    body = case.body
    headers = dict(headers)
    skip = ()
    if case.content_type is None:
        skip = ("Content-Type",)
    else:
        headers["Content-Type"] = case.content_type
    data: Any = body
    if case.transfer == "chunked":

        async def chunks():
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        data = chunks()
    elif case.transfer == "gzip":
        data, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    elif case.transfer == "deflate":
        data, headers["Content-Encoding"] = zlib.compress(body), "deflate"
    elif case.transfer == "bogus-gzip":
        headers["Content-Encoding"] = "gzip"  # says gzip, is not
    elif case.transfer == "gzip-bomb":
        data, headers["Content-Encoding"] = gzip.compress(body + b"&pad=" + b"0" * (8 * 1024 * 1024)), "gzip"
    elif case.transfer.startswith("encoding:"):
        headers["Content-Encoding"] = case.transfer.split(":", 1)[1]  # declared, body left as it is
    async with http.post(f"{url}/slack/events", data=data, headers=headers, skip_auto_headers=skip) as response:
        await response.read()
        return response.status


async def genuine_health_over_http(slack, url: str) -> list[str]:
    """A real signed /health, and the health endpoints: what went wrong, if anything."""
    problems = []
    response_url = slack.new_response_url()
    # A user of its own: /health is capped per user and minute, and the sweep may have used OPS_USER's runs.
    fields = slash_command_fields("/health", "host", user_id=HEALTH_USER, response_url=response_url)
    body = "&".join(f"{k}={quote_plus(v)}" for k, v in fields.items()).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/slack/events", data=body, headers={"Content-Type": FORM, **sign(SIGNING_SECRET, body)}) as response:
            if response.status != 200:
                problems.append(f"a genuine signed /health got {response.status}")
        for path in ("/healthz", "/readyz", "/metrics"):
            async with http.get(f"{url}{path}") as response:
                if response.status != 200:
                    problems.append(f"GET {path} answered {response.status} after the sweep")
    if not problems:
        try:
            await slack._wait(lambda: slack.response_posts(response_url), 15, "the genuine /health reply")
        except TimeoutError as exc:
            return [str(exc)]
        [posted] = slack.response_posts(response_url)
        if posted.status != 200 or "Health" not in (posted.text or ""):
            problems.append(f"the genuine /health reply was {posted.status} {printable(posted.text)}")
    return problems


# --- 1. HTTP bodies -----------------------------------------------------------------------------

HTTP_CASES = 700


async def test_fuzz_http_bodies_signed_and_unsigned(slack, rig, logs, metrics_hygiene):
    rng = rng_for("http")
    marker = marker_for(rng)
    served = await rig()
    failures = Failures()
    slowest = 0.0
    statuses: Counter = Counter()
    async with aiohttp.ClientSession() as http:
        for index in range(HTTP_CASES):
            case = make_http_case(rng, index, slack, marker)
            for signed in (True, False):
                if signed:
                    headers, how = sign(SIGNING_SECRET, case.body), "signed"
                    allowed = {200, 400, 413}
                else:
                    headers, how = unsigned_headers(rng, case.body)
                    allowed = {401, 413}
                if case.encoded:
                    # Slack never compresses: a signature over the decoded bytes is not Slack's (401); an
                    # encoding aiohttp cannot decode at all (br, zstd) is its own 400 before the bot sees it.
                    allowed = {400, 401}
                started = time.perf_counter()
                try:
                    status = await asyncio.wait_for(post(http, served.url, case, headers), BUDGET)
                except asyncio.TimeoutError:
                    failures.add(f"no answer within {BUDGET}s", f"#{index} {how}: no answer within {BUDGET}s: {case.describe()}")
                    continue
                except aiohttp.ClientError as exc:
                    failures.add("connection failed", f"#{index} {how}: connection failed ({exc!r}): {case.describe()}")
                    continue
                elapsed = time.perf_counter() - started
                slowest = max(slowest, elapsed)
                statuses[("signed" if signed else "unsigned", status)] += 1
                if status not in allowed:
                    failures.add(f"status {status} to a {'signed' if signed else 'unsigned'} request", f"#{index} {how}: status {status}, expected one of {sorted(allowed)}: {case.describe()}")
    await served.edge.work.drain(30)
    for problem in await genuine_health_over_http(slack, served.url):
        failures.add("after the sweep", problem)
    log_problems(failures, logs.records, [marker])
    print(f"{HTTP_CASES * 2} HTTP requests, slowest answer {slowest * 1000:.0f} ms, statuses {dict(statuses)}, seed {SEED}")
    assert not failures, failures.report("test_fuzz_http_bodies_signed_and_unsigned", HTTP_CASES * 2)


# --- 2. Socket Mode envelopes -------------------------------------------------------------------

SOCKET_CASES = 600


async def test_fuzz_socket_mode_envelopes_are_all_acknowledged(slack, rig, logs, metrics_hygiene):
    rng = rng_for("socket")
    marker = marker_for(rng)
    served = await rig(http=True, socket=True)
    failures = Failures()
    slowest = 0.0
    for index in range(SOCKET_CASES):
        shape = base_shape(rng, slack, marker)
        steps = mutate_tree(rng, shape.payload, marker, http=False)
        envelope = shape.envelope if rng.random() < 0.85 else rng.choice(["slash_commands", "interactive", "events_api"])
        options: dict = {}
        if rng.random() < 0.2:
            options["accepts_response_payload"] = rng.choice([True, False])
        if envelope == "events_api" and rng.random() < 0.2:
            options.update(retry_attempt=rng.randint(1, 3), retry_reason="timeout")
        what = f"#{index} {envelope}/{shape.name} {steps} payload[:200]={printable(json.dumps(shape.payload)[:200], 200)}"
        started = time.perf_counter()
        try:
            ack = await slack.socket.deliver(envelope, shape.payload, **options)
        except NotAcked as exc:
            failures.add("envelope not acknowledged", f"{what}: {exc}")
            continue
        except (ConnectionError, TimeoutError) as exc:
            failures.add("the socket failed", f"{what}: the socket failed ({exc!r})")
            break
        slowest = max(slowest, time.perf_counter() - started)
        if ack.elapsed > BUDGET:
            failures.add("late acknowledgement", f"{what}: acknowledged after {ack.elapsed:.2f}s")
    await served.edge.work.drain(30)
    try:
        await slack.socket.assert_clean()
    except AssertionError as exc:
        failures.add("Socket Mode contract", str(exc))
    # Still serving on the socket: a genuine /health is acked and answered.
    url = slack.new_response_url()
    try:
        await slack.socket.deliver("slash_commands", slash_command_fields("/health", "host", user_id=HEALTH_USER, response_url=url))
        await slack._wait(lambda: slack.response_posts(url), 15, "the genuine /health reply over Socket Mode")
    except (NotAcked, TimeoutError, ConnectionError) as exc:
        failures.add("after the sweep", f"after the sweep: {exc}")
    for problem in await genuine_health_over_http(slack, served.url):
        failures.add("after the sweep", problem)
    log_problems(failures, logs.records, [marker])
    print(f"{SOCKET_CASES} envelopes, slowest ack {slowest * 1000:.0f} ms, seed {SEED}")
    assert not failures, failures.report("test_fuzz_socket_mode_envelopes_are_all_acknowledged", SOCKET_CASES)


# --- 3. command texts ---------------------------------------------------------------------------

TEXT_TOKENS = [
    "host", "fuzzweb", "HOST", "host\u200b", "bakend", "web", "fuzzweb fuzzweb", "host host host",
    "--tail", "--tail=", "--tail=5", "--tail=0", "--tail=-1", "--tail=5001", "--tail=99999999999999999999", "--tail=١٢", "--tail=²", "--tail 3",
    "--since", "--since=", "--since=1h", "--since=999999999d", "--since=7d", "--since=8d", "--since=0", "--since=-5m", "--since=1e9",
    "--since=NaN", "--since=inf", "--since=0.0001ms", "--since=١h", "--since=3660d", "--since=3661d", "--since=1.5.5h",
    "--grep", "--grep=", "--grep=error", "--grep=/(a+)+$/", "--grep=/(.*a){25}/", "--grep=/[/", "--grep=/(?R)/", "--grep=/\\d+ ms/",
    "--grep=/\\p{L}+/", "--grep=//", "--grep=///", '--grep="a b"', "--grep=" + "a" * 250,
    "--count", "--count=1", "--with-dependents", "--force-recreate", "--force-recreate=yes", "--with-dependents=",
    "-", "--", "---", "-x", "—tail", "–since", "--TAIL=5", "--tail==5",
    '"', "'", '"unclosed', "'unclosed", '"a b"', "'a b'", "it's", "can't", "\u201cweb\u201d", "\u201cweb", "\\", "\\\\", '\\"', '"\\"',
    "<@U123|ana>", "<#C1|ops>", "<!channel>", "<!here|here>", "<!subteam^S1|@ops>", "<http://x.invalid|label>", "<mailto:a@b.invalid>",
    "<!date^1700000000^{date}|Nov 14>", "&lt;", "&amp;amp;", "&#0;", "&#xd800;", "&#x110000;", "<", ">", "<<>>", "<@>",
    "\x00", "\x07", "\x1b[2J", "\r", "\x7f", "\t", "\n", "\x0b", "\x0c",
    "сервис", "🔥", "\u202e", "\u2028", "\u0085", "١٢", "²", "\ufeff", "e\u0301", "\U0010ffff", "\ud800", "\udfff",
    "-1", "0", "999999999999999999999999", "1e309", "9" * 500, "$(id)", "`reboot`", "; rm -rf /", "| cat /etc/passwd", "&&", "%s", "{}", "[]",
]


def command_text(rng: random.Random, marker: str) -> str:
    roll = rng.random()
    if roll < 0.05:
        return ""
    if roll < 0.12:
        return rng.choice(["x" * 2001, "a " * 1100, "--tail " * 600, "é" * 2001, "\u00a0" * 2500, "host " * 401, "x" * 1999 + "\x00"])
    if roll < 0.2:
        return random_unicode(rng, rng.randint(1, 60))
    words = [rng.choice(TEXT_TOKENS) for _ in range(rng.randint(1, 7))]
    if rng.random() < 0.3:
        words.insert(rng.randint(0, len(words)), marker)
    if rng.random() < 0.1:
        words = [f"--{rng.choice(['tail', 'since', 'grep'])}"] * rng.randint(2, 40) + words  # an option storm
    seps = [" ", " ", " ", "  ", "\t", "", "=", "\u00a0", "\u3000"]
    text = words[0]
    for word in words[1:]:
        text += rng.choice(seps) + word
    return text


DURATIONS = ["1h", "999999999d", "7d", "8d", "0", "-5m", "1e9", "NaN", "inf", "0.0001ms", "\u0661h", "3660d", "3661d", "1.5.5h", "", "5",
             "90s", "1.5h", " 1h ", "1 h", "1" + "0" * 40 + "s", "\u00b2h", "1H", "1y", "9" * 400 + "d"]
TAILS = ["5", "0", "-1", "5000", "5001", "1", "99999999999999999999", "\u0661\u0662", "\u00b2", "1e3", "0x10", " 5", "+5", "5_000", "9" * 500, "", "5.0"]
PATTERNS = ["error", "/(a+)+$/", "/(.*a){25}/", "/[/", "/(?R)/", "/\\d+ ms/", "/\\p{L}+/", "//", "///", "a" * 201, "/.*/", "/(?i)GET/",
            "/\\x00/", "<!channel>", "password", "/(?s).{0,9999}/", "/a{99999}/", "/(a|a)*b/", "/(?<=a+)b/", "/\\1(a)/", "/[\\w\\W]*x/", "GET", "/(?0)/", "/x(?R)/", "/(a)(?1)/"]
SERVICES = ["fuzzweb", "fuzzweb", "host", "FUZZWEB", "bakend", "fuzzweb\u200b", "<#C1|fuzzweb>", '"fuzzweb"', "'host'"]


def structured_text(rng: random.Random, command: str, marker: str) -> str:
    """Arguments shaped like the command's grammar, with adversarial values: they get past the parser into the handler."""
    words: list[str] = []
    if command in ("logs", "restart") or (command == "audit" and rng.random() < 0.6):
        words.append(rng.choice(SERVICES))
    elif command == "health":
        words += [rng.choice(SERVICES) for _ in range(rng.randint(0, 3))]
    options = {
        "logs": [("--tail", TAILS), ("--since", DURATIONS), ("--grep", PATTERNS), ("--count", None)],
        "audit": [("--since", DURATIONS)],
        "restart": [("--with-dependents", None), ("--force-recreate", None)],
    }.get(command, [])
    for _ in range(rng.randint(0, 3) if options else 0):
        flag, values = rng.choice(options)
        if values is None:
            words.append(flag)
            continue
        value = rng.choice(values) if rng.random() < 0.9 else marker
        if " " in value or not value or rng.random() < 0.15:
            value = '"' + value.replace('"', '\\"') + '"'
        words.append(f"{flag}={value}" if rng.random() < 0.5 else f"{flag} {value}")
    if rng.random() < 0.2:
        rng.shuffle(words)
    return " ".join(words)


UNKNOWN_COMMANDS = ["", "restartt", "HEALTH", "héalth", "x" * 100, "\x00", "logs\u200b", "he alth", "/health", "help!", "\ud800", "*"]


def check_reply(reply, budget: float, elapsed: float) -> tuple[str, str] | None:
    """(kind, detail) of what is wrong with a reply to a fuzzed input, or None."""
    if elapsed > budget:
        return "over the per-input budget", f"answered after {elapsed:.2f}s (budget {budget}s)"
    text = reply.text if isinstance(reply.text, str) else str(reply.text)
    if reply.outcome is Outcome.error:
        return "outcome error", printable(text, 300)
    if not text.strip():
        return "an empty reply", ""
    if "Traceback" in text or "failed inside opsbot" in text:
        return "an internal failure", printable(text, 300)
    if reply.outcome in (Outcome.usage_error, Outcome.denied) and ("\n" in text or len(text) > 1000):
        return "a refusal that is not one sentence", printable(text, 300)
    if any("Not recorded in the audit log" in str(getattr(block, "text", "")) for block in reply.blocks):
        return "not on record: the audit write failed", printable(text, 120)
    return None


async def restarts_started(bot) -> list[str]:
    """Requests of fuzzweb that got past pending: any is a restart a fuzzed input set off."""
    from sqlalchemy import select

    async with bot.db.sessions() as session:
        rows = (await session.execute(select(ActionRequest).where(ActionRequest.service == "fuzzweb"))).scalars()
        return [f"request #{r.id} {r.state} by {r.requested_by}" for r in rows if r.state in ("approved", "running", "succeeded") or r.started_at is not None]


TEXT_CASES = 1200


async def test_fuzz_command_texts_through_the_pipeline(rig, logs):
    rng = rng_for("texts")
    marker = marker_for(rng)
    served = await rig(http=False)
    bot = served.bot
    failures = Failures()
    names = ["health", "help", "logs", "audit", "restart"]
    outcomes: Counter = Counter()
    started_all = time.perf_counter()
    for index in range(TEXT_CASES):
        command = rng.choice(names) if rng.random() < 0.9 else rng.choice(UNKNOWN_COMMANDS)
        text = structured_text(rng, command, marker) if rng.random() < 0.5 else command_text(rng, marker)
        user = rng.choice([OPS_USER, OPS_USER, NOBODY])
        transport = rng.choice(["console", "slack"])
        request = Request(user, "C1" if transport == "slack" else "console", command, text, transport, team_id="T0TEST" if transport == "slack" else "")
        started = time.perf_counter()
        try:
            reply = await asyncio.wait_for(bot.handle(request), LOGS_BUDGET + 1)
        except Exception as exc:  # bot.handle must never raise
            failures.add(f"bot.handle raised {type(exc).__name__}", f"#{index} /{command} {printable(text)} as {user}: raised {exc!r}")
            continue
        problem = check_reply(reply, LOGS_BUDGET if command == "logs" else BUDGET, time.perf_counter() - started)
        outcomes[(command if command in names else "unknown", reply.outcome.value)] += 1
        if problem:
            failures.add(problem[0], f"#{index} /{command} {printable(text)} as {user} via {transport}: {problem[1]}")
    started_runs = await restarts_started(bot)
    if started_runs:
        failures.add("a restart was set off", f"fuzzed text set off a restart: {started_runs}")
    log_problems(failures, logs.records, [marker], strict=True)
    print(f"{TEXT_CASES} command texts in {time.perf_counter() - started_all:.1f}s, outcomes {sorted(outcomes.items())}, seed {SEED}")
    assert not failures, failures.report("test_fuzz_command_texts_through_the_pipeline", TEXT_CASES)


SAMPLE_CASES = 80


async def test_fuzz_command_texts_over_http_and_socket_mode(slack, rig, logs, metrics_hygiene):
    """A sample of the same texts as Slack delivers them: the reply posted is a valid message, never an internal failure."""
    rng = rng_for("texts-slack")
    marker = marker_for(rng)
    served = await rig(http=True, socket=True)
    failures = Failures()
    async with aiohttp.ClientSession() as http:
        for index in range(SAMPLE_CASES):
            command = rng.choice(["/health", "/help", "/logs", "/audit", "/restart", "/nope"])
            text = structured_text(rng, command[1:], marker) if rng.random() < 0.5 else command_text(rng, marker)
            url = slack.new_response_url()
            fields = slash_command_fields(command, text, user_id=rng.choice([OPS_USER, NOBODY]), response_url=url)
            via = "http" if index % 2 == 0 else "socket"
            what = f"#{index} {command} {printable(text)} via {via}"
            started = time.perf_counter()
            if via == "http":
                body = "&".join(f"{k}={_q(v, rng)}" for k, v in fields.items()).encode()
                async with http.post(f"{served.url}/slack/events", data=body, headers={"Content-Type": FORM, **sign(SIGNING_SECRET, body)}) as response:
                    status = response.status
                if status == 400:
                    continue  # a text Slack cannot send (not UTF-8: a lone surrogate); refused as malformed
                if status != 200:
                    failures.add(f"status {status}", f"{what}: status {status}")
                    continue
            else:
                try:
                    await slack.socket.deliver("slash_commands", fields)
                except NotAcked as exc:
                    failures.add("envelope not acknowledged", f"{what}: {exc}")
                    continue
                if any("\ud800" <= ch <= "\udfff" for ch in text):
                    continue  # as over HTTP: not text Slack can send, acknowledged and refused as malformed
            budget = LOGS_BUDGET if command == "/logs" else BUDGET
            try:
                await slack._wait(lambda: slack.response_posts(url), budget + 2.5, what)  # + the ack-priority wait
            except TimeoutError:
                failures.add("no reply", f"{what}: no reply within {budget + 2.5}s")
                continue
            [posted] = slack.response_posts(url)[:1]
            words = (posted.text or "") + "\n" + block_texts(posted.blocks or [])
            if posted.status != 200:
                failures.add("Slack refused the reply", f"{what}: Slack refused the reply ({posted.status}): {printable(words)}")
            elif "failed inside opsbot" in words or "Traceback" in words or "database is unreachable" in words or not words.strip():
                failures.add("an internal failure in the reply", f"{what}: {printable(words, 300)}")
            elif time.perf_counter() - started > budget + 2.5:
                failures.add("slow reply", f"{what}: replied after {time.perf_counter() - started:.2f}s")
    await served.edge.work.drain(30)
    try:
        await slack.socket.assert_clean()
    except AssertionError as exc:
        failures.add("Socket Mode contract", str(exc))
    started_runs = await restarts_started(served.bot)
    if started_runs:
        failures.add("a restart was set off", f"fuzzed text set off a restart: {started_runs}")
    log_problems(failures, logs.records, [marker])
    assert not failures, failures.report("test_fuzz_command_texts_over_http_and_socket_mode", SAMPLE_CASES)


# --- 4. button values and action ids -------------------------------------------------------------

BUTTON_VALUES = ["", "0", "1", "-1", "+1", " 1", "1 ", "01", "999999999", "1000000000", "2147483648", "9223372036854775808", "9" * 400,
                 "١٢", "²", "٠", "１", "1e3", "0x10", "1.0", "NaN", "null", "\x00", "1\x00", "\ud800", "🔥", "#1", "1;2", "-0"]
BUTTON_ACTIONS = ["action.approve", "action.deny", "action.approvex", "action.deny ", "ACTION.APPROVE", "action", "action.", ".approve", "approve", "deny", "APPROVE", "approve ", " deny", "approve\x00", "", "x" * 300, "incident.ack", "approve\u200b", "ａｐｐｒｏｖｅ", "\ud800", "deny\n"]


def button(rng: random.Random, marker: str) -> tuple[str, str]:
    action_id = rng.choice(BUTTON_ACTIONS) if rng.random() < 0.8 else adversarial_string(rng, marker)
    value = rng.choice(BUTTON_VALUES) if rng.random() < 0.8 else adversarial_string(rng, marker)
    if rng.random() < 0.1:
        value = str(rng.randint(-(10**20), 10**20))
    return action_id, value


BUTTON_CASES = 400


async def test_fuzz_button_values_through_the_console(rig, logs):
    rng = rng_for("buttons-console")
    marker = marker_for(rng)
    served = await rig(http=False)
    bot = served.bot
    out = io.StringIO()
    console = Console(bot, NOBODY, io.StringIO(), out)
    failures = Failures()
    for index in range(BUTTON_CASES):
        action_id, value = button(rng, marker)
        user = rng.choice([OPS_USER, NOBODY])
        what = f"#{index} action_id={printable(action_id, 60)} value={printable(value, 60)} as {user}"
        # The click as the pipeline sees it, with its outcome...
        started = time.perf_counter()
        try:
            reply = await asyncio.wait_for(bot.handle_click(Click(user, action_id, value, "console", "console")), BUDGET + 1)
        except Exception as exc:
            failures.add(f"handle_click raised {type(exc).__name__}", f"{what}: handle_click raised {exc!r}")
            continue
        problem = check_reply(reply, BUDGET, time.perf_counter() - started)
        if problem:
            failures.add(problem[0], f"{what}: {problem[1]}")
        # ...and as a console user presses it: the button printed, then its number typed.
        console.user_id = user
        number = console._number(Button("Fuzz", action_id, value))
        out.seek(0)
        out.truncate()
        try:
            await console.handle_line(str(number))
        except Exception as exc:
            failures.add(f"the console raised {type(exc).__name__}", f"{what}: the console raised {exc!r}")
            continue
        printed = out.getvalue().strip()
        if not printed or "\n" in printed or "failed inside opsbot" in printed:
            failures.add("the console printed more or less than a sentence", f"{what}: the console printed {printable(printed, 300)}")
    # Lines a person may type at the console where a button number goes.
    for index, line in enumerate([rng.choice(BUTTON_VALUES) for _ in range(40)] + ["١٢", "²", "٠", "1" * 30]):
        out.seek(0)
        out.truncate()
        try:
            await console.handle_line(line)
        except Exception as exc:
            failures.add(f"the console raised {type(exc).__name__}", f"console line #{index} {printable(line, 60)}: raised {exc!r}")
            continue
        printed = out.getvalue().strip()
        if not printed or "failed inside opsbot" in printed:
            failures.add("the console printed nothing or an internal failure", f"console line #{index} {printable(line, 60)}: printed {printable(printed, 300)}")
    started_runs = await restarts_started(bot)
    if started_runs:
        failures.add("a restart was set off", f"a fuzzed button set off a restart: {started_runs}")
    log_problems(failures, logs.records, [marker], strict=True)
    assert not failures, failures.report("test_fuzz_button_values_through_the_console", BUTTON_CASES + 44)


HTTP_BUTTON_CASES = 120


async def test_fuzz_button_values_over_http(slack, rig, logs, metrics_hygiene):
    rng = rng_for("buttons-http")
    marker = marker_for(rng)
    served = await rig()
    failures = Failures()
    async with aiohttp.ClientSession() as http:
        for index in range(HTTP_BUTTON_CASES):
            action_id, value = button(rng, marker)
            url = slack.new_response_url()
            payload = block_actions_payload(rng.choice([OPS_USER, NOBODY]), action_id, value, response_url=url)
            body = "payload=" + quote_plus(json.dumps(payload))  # ASCII JSON: lone surrogates as \ud800 escapes
            what = f"#{index} action_id={printable(action_id, 60)} value={printable(value, 60)}"
            async with http.post(f"{served.url}/slack/events", data=body.encode(), headers={"Content-Type": FORM, **sign(SIGNING_SECRET, body)}) as response:
                status = response.status
            if status == 400:
                continue  # an action_id Slack never sends (empty, control characters, over 255): malformed
            if status != 200:
                failures.add(f"status {status}", f"{what}: status {status}")
                continue
            try:
                await slack._wait(lambda: slack.response_posts(url), BUDGET + 2.5, what)
            except TimeoutError:
                failures.add("no answer", f"{what}: no answer within {BUDGET + 2.5}s")
                continue
            posted = slack.response_posts(url)[0]
            words = posted.text or ""
            if posted.status != 200 or "\n" in words.strip() or not words.strip() or "failed inside opsbot" in words:
                failures.add("an answer that is not one sentence", f"{what}: answered {posted.status} {printable(words, 300)}")
    await served.edge.work.drain(30)
    for problem in await genuine_health_over_http(slack, served.url):
        failures.add("after the sweep", problem)
    started_runs = await restarts_started(served.bot)
    if started_runs:
        failures.add("a restart was set off", f"a fuzzed button set off a restart: {started_runs}")
    log_problems(failures, logs.records, [marker])
    assert not failures, failures.report("test_fuzz_button_values_over_http", HTTP_BUTTON_CASES)


# --- bugs the sweeps found: one minimal case each -----------------------------------------------
#
# Each fails until the bot is fixed; the assertion message names the file and line.


async def _signed_post(url: str, body: bytes, content_type: str = FORM, **headers: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/slack/events", data=body, headers={"Content-Type": content_type, **sign(SIGNING_SECRET, body), **headers}
        ) as response:
            await response.read()
            return response.status


async def test_a_compressed_or_broken_body_is_refused_without_a_traceback(rig, logs):
    served = await rig()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{served.url}/slack/events", data=b"command=%2Fhealth", headers={"Content-Type": FORM, "Content-Encoding": "gzip"}
        ) as response:
            status = response.status
    tracebacks = [f"{r.name}: {r.exc_info[1]!r}" for r in logs.records if r.exc_info]
    assert status in (400, 401) and not tracebacks, (
        "bot/transport/server.py:33: request.read() raises aiohttp's RequestPayloadError ('Can not decode content-encoding: gzip') "
        "for an unsigned POST whose body is not the gzip its Content-Encoding header claims; only TimeoutError and "
        f"HTTPRequestEntityTooLarge are caught, so anyone gets a {status} and writes tracebacks into the log: {tracebacks}"
    )


async def test_a_lone_surrogate_in_a_delivery_key_is_malformed_not_a_500(rig, logs):
    served = await rig()  # on Redis, as production runs
    # json.dumps writes the lone surrogate as the escape \ud800: valid JSON, valid UTF-8, as Slack could deliver it.
    body = json.dumps({"type": "event_callback", "team_id": "T0TEST", "event_id": "Ev\ud800", "event": {"type": "app_mention"}}).encode()
    status = await _signed_post(served.url, body, JSON)
    assert status in (200, 400), (
        f"bot/coordination.py:25: a signed Events API body with event_id 'Ev\\ud800' got {status}. Coordinator.claim hands the "
        "delivery key to redis-py, which raises UnicodeEncodeError for a lone surrogate; only RedisError/OSError are caught, "
        "so SlackEdge.receive (bot/transport/edge.py:35) raises: 500 over HTTP, 'handling a Socket Mode envelope failed' with "
        "a traceback over Socket Mode. The same happens with a trigger_id of an interaction."
    )


async def test_an_odd_interaction_type_does_not_break_metrics(rig, metrics_hygiene):
    served = await rig()
    body = ("payload=" + quote_plus(json.dumps({"type": "x\ud800", "user": {"id": OPS_USER}}))).encode()
    assert await _signed_post(served.url, body) in (200, 400)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.url}/metrics") as response:
            status = response.status
    assert status == 200, (
        f"bot/transport/edge.py:41: after one signed interaction of type 'x\\ud800', GET /metrics answers {status} until the "
        "process restarts: the type becomes a label value of opsbot_interactions_total, and prometheus_client cannot encode "
        "a lone surrogate as UTF-8. (Any type string, up to 32 characters, also makes a new series: unbounded cardinality.)"
    )


async def test_a_lone_surrogate_in_command_text_is_a_usage_error(rig):
    served = await rig(http=False)
    # Reachable from Slack: a Socket Mode slash_commands envelope is JSON, whose text may carry the escape \ud800.
    reply = await served.bot.handle(Request(OPS_USER, "C1", "restart", "\ud800", "slack", team_id="T0TEST"))
    assert reply.outcome is not Outcome.error, (
        f"/restart '\\ud800' answered {reply.text!r} (outcome error): bot/audit/service.py record() (clean/short) replaces "
        "NUL but not lone surrogates, so the audit INSERT fails to encode and audit_first (bot/pipeline/dispatch.py:119) blames the "
        "database; the grammar (bot/pipeline/parse.py:61) lets the text through. Public commands answer, but with 'Not "
        "recorded in the audit log: the bot's database is unreachable.' and no audit row."
    )


async def test_a_failed_audit_write_does_not_log_the_arguments(rig, logs):
    served = await rig(http=False)
    marker = "ZQFZ" + secrets.token_hex(6).upper()
    await served.bot.handle(Request(OPS_USER, "C1", "health", f"{marker} \ud800", "slack", team_id="T0TEST"))
    leaked = [r.getMessage()[:240] for r in logs.records if marker in r.getMessage()]
    assert not leaked, (
        "bot/pipeline/dispatch.py:104 (and :119) log str(exc) of the failed audit INSERT, and SQLAlchemy's message quotes the "
        f"bound parameters, so the user's argument text is written to the ERROR log: {leaked}"
    )


async def test_a_recursive_grep_pattern_is_refused(rig):
    served = await rig(http=False)
    # Any user who may read fuzzweb's logs; the fleet's web container has log lines to match against.
    reply = await served.bot.handle(Request(OPS_USER, "C1", "logs", "fuzzweb --grep=/(?R)/", "slack", team_id="T0TEST"))
    assert reply.outcome is not Outcome.error, (
        f"/logs fuzzweb --grep=/(?R)/ answered {reply.text!r}: commands/logs.py:76 compiles the user's pattern with the "
        "regex module, which accepts recursion ((?R), (?1)); the search (commands/logs.py:48) grows to about 550 MB in under "
        "a second and raises MemoryError, which Pattern.filter does not catch (only TimeoutError), so the command fails "
        "inside opsbot with a traceback, and a bot with a memory limit is OOM-killed instead."
    )


async def test_a_console_line_of_superscript_digits_is_not_a_button(rig):
    served = await rig(http=False)
    out = io.StringIO()
    console = Console(served.bot, OPS_USER, io.StringIO(), out)
    try:
        await console.handle_line("\u00b2")
    except ValueError as exc:
        pytest.fail(
            "bot/transport/console.py:70-71: '\u00b2'.isdigit() is True but int('\u00b2') raises "
            f"({exc}); typing the line \u00b2 (or \u00b3, \u2460) ends `opsbot shell` with a traceback instead of 'There is no button'."
        )
    assert "There is no button" in out.getvalue() or "Commands start with a slash" in out.getvalue()


async def test_a_repeated_delivery_does_not_log_its_ids(slack, rig, logs):
    served = await rig()
    marker = "ZQFZ" + secrets.token_hex(6).upper()
    payload = block_actions_payload(NOBODY, "incident.ack", "1", response_url=slack.new_response_url(), trigger_id=f"1.2.{marker}\nERROR forged line")
    body = ("payload=" + quote_plus(json.dumps(payload))).encode()
    assert [await _signed_post(served.url, body), await _signed_post(served.url, body)] == [200, 200]  # Slack's retry
    await served.edge.work.drain(10)
    leaked = [r.getMessage() for r in logs.records if marker in r.getMessage()]
    assert not leaked, (
        "bot/transport/edge.py:36 logs the delivery key, which is the body's trigger_id (or event_id) verbatim: up to 255 "
        f"characters, control characters included, so a repeated delivery writes body content (here a forged line) into the log: {leaked}"
    )
