"""The HTTP edge under attack and misuse: unsigned, malformed, slow and hostile requests.

Order at POST /slack/events: body read under a timeout, signature on the raw bytes, then
parsing. Unsigned -> 401, malformed -> 400, too slow -> 408, too big -> 413; never a 5xx,
never a body in the log, and every interaction Slack can send is acknowledged with 200.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from conftest import SIGNING_SECRET, free_port, wait_until
from slack_signing import block_actions_body, sign, slash_command_body
from test_slack_http import QUICK_CONFIG, QUIET, Served, serve_bot  # noqa: F401 (fixture)

from bot.coordination import CLAIMS
from bot.pipeline.interactions import UNKNOWN_FORM
from bot.pipeline.reply import Reply
from bot.pipeline.roles import RoleDirectory
from bot.transport.edge import SlackEdge, sentence_modal
from bot.transport.server import build_web_app
from bot.transport.slack import group_lookup, web_client

FORM = "application/x-www-form-urlencoded"
MARKER = "ZQXBODYMARKER"


async def post_raw(served: Served, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{served.url}/slack/events", data=body, headers=headers) as response:
            return response.status, await response.text()


def signed(body: bytes, content_type: str = FORM, **extra: str) -> dict[str, str]:
    return {"Content-Type": content_type, **sign(SIGNING_SECRET, body), **extra}


def interaction(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


UNSIGNED_BODIES = [b"{", b"payload=[]", b"payload=1", b"\xff\xfe\xfd" + MARKER.encode(), b"", MARKER.encode() * 1000, b'{"type": "url_verification", "challenge": "x"}']


@pytest.mark.parametrize("body", UNSIGNED_BODIES, ids=range(len(UNSIGNED_BODIES)))
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "1e10", "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=zz"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64},
    ],
    ids=["none", "ts-abc", "ts-1e10", "ts-negative", "ts-huge", "wrong-mac"],
)
async def test_unsigned_bodies_of_any_shape_get_401_and_are_never_logged(slack, serve_bot, caplog, body, headers):
    served = await serve_bot()
    caplog.set_level(logging.DEBUG)
    for content_type in (FORM, "application/json"):
        status, text = await post_raw(served, body, {"Content-Type": content_type, **headers})
        assert status == 401, text
    assert all(MARKER not in record.getMessage() for record in caplog.records)
    assert slack.response_posts() == []


SIGNED_MALFORMED = {
    "open-brace": (b"{", FORM),
    "payload-list": (b"payload=[]", FORM),
    "payload-number": (b"payload=1", FORM),
    "payload-not-json": (b"payload=%7Bnope", FORM),
    "not-utf8": (b"command=%2Fhealth&text=\xff\xfe", FORM),
    "not-utf8-escaped": (b"command=%2Fhealth&text=%ff%fe", FORM),
    "json-not-object": (b"[1, 2]", "application/json"),
    "json-broken": (b'{"type": ', "application/json"),
    "json-deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "empty-actions": (interaction({"type": "block_actions", "user": {"id": "U1"}, "actions": []}), FORM),
    "user-as-string": (interaction({"type": "block_actions", "user": "U1", "actions": [{"action_id": "approve", "value": "1"}]}), FORM),
    "action-not-object": (interaction({"type": "block_actions", "user": {"id": "U1"}, "actions": ["approve"]}), FORM),
    "no-type": (interaction({"user": {"id": "U1"}}), FORM),
    "repeated-field": (b"command=%2Fhealth&command=%2Frestart&user_id=U1&channel_id=C1&response_url=http%3A%2F%2Fx", FORM),
    "command-with-nul": (slash_command_body("/no\x00such", "").encode(), FORM),
    "command-without-slash": (slash_command_body("health", "").replace("command=%2Fhealth", "command=health").encode(), FORM),
    "user-id-odd": (slash_command_body("/health", "", user_id="U1<!channel>").encode(), FORM),
    "response-url-not-http": (slash_command_body("/health", "", response_url="file:///etc/passwd").encode(), FORM),
    "text-too-long": (slash_command_body("/health", "x" * 40001).encode(), FORM),
    "neither": (b"hello=world", FORM),
    "event-without-id": (b'{"type": "event_callback", "event": {}}', "application/json"),
}


@pytest.mark.parametrize("name", list(SIGNED_MALFORMED))
async def test_signed_but_malformed_bodies_get_400_and_run_nothing(slack, serve_bot, name):
    served = await serve_bot()
    body, content_type = SIGNED_MALFORMED[name]
    status, text = await post_raw(served, body, signed(body, content_type))
    assert status == 400, text
    assert json.loads(text) == {"error": "malformed request"}
    # The bot keeps serving.
    status, _ = await served.command(slash_command_body("/health", "", user_id="UOPS1", response_url=slack.new_response_url()))
    assert status == 200
    await slack.wait_for_response_posts(1)


def payload_of(kind: str, **extra) -> dict:
    payload = {
        "type": kind,
        "user": {"id": "UOPS1", "username": "uops1", "team_id": "T0TEST"},
        "team": {"id": "T0TEST"},
        "api_app_id": "A0TEST",
        "trigger_id": f"1.2.{kind}{time.time_ns()}",
    }
    payload.update(extra)
    return payload


@pytest.mark.parametrize(
    "payload, expected_body",
    [
        (
            payload_of("view_submission", view={"id": "V1", "callback_id": "not.ours", "state": {"values": {}}}),
            {"response_action": "update", "view": sentence_modal(Reply.refusal(UNKNOWN_FORM))},
        ),
        (payload_of("view_closed", view={"id": "V1", "callback_id": "not.ours"}), ""),
        (payload_of("shortcut", callback_id="whatever"), ""),
        (payload_of("message_action", callback_id="whatever", channel={"id": "C1"}), ""),
        (payload_of("block_suggestion", action_id="pick", value="ab"), {"options": []}),
        (payload_of("something_new_from_slack"), ""),
    ],
    ids=["view_submission", "view_closed", "shortcut", "message_action", "block_suggestion", "unknown-type"],
)
async def test_every_interaction_type_is_acknowledged(slack, serve_bot, payload, expected_body):
    served = await serve_bot()
    body = interaction(payload)
    status, text = await post_raw(served, body, signed(body))
    assert status == 200
    assert (json.loads(text) if text else "") == expected_body


async def test_unknown_button_is_acknowledged_and_answered_in_one_sentence(slack, serve_bot):
    served = await serve_bot()
    url = slack.new_response_url()
    body = block_actions_body("UOPS1", "incident.snooze", "7", response_url=url).encode()
    status, _ = await post_raw(served, body, signed(body))
    assert status == 200
    [post] = await slack.wait_for_response_posts(1)
    assert post.body["response_type"] == "ephemeral" and post.body.get("replace_original") is False
    assert post.text == "That button is not one opsbot knows (it may belong to an older version); nothing was done."


async def test_url_verification_answers_the_challenge(slack, serve_bot):
    served = await serve_bot()
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).encode()
    status, text = await post_raw(served, body, signed(body, "application/json"))
    assert status == 200 and json.loads(text) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_events_are_acknowledged_once_per_event_id(slack, serve_bot):
    served = await serve_bot()
    event = {
        "type": "event_callback",
        "team_id": "T0TEST",
        "event_id": "Ev0EDGE1",
        "event_time": int(time.time()),
        "event": {"type": "reaction_added", "user": "UOPS1", "reaction": "pushpin", "item": {"type": "message", "channel": "C1", "ts": "1.2"}},
    }
    body = json.dumps(event).encode()
    for retry in ("", "1", "2"):
        headers = signed(body, "application/json", **({"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"} if retry else {}))
        status, text = await post_raw(served, body, headers)
        assert (status, text) == (200, "")
    digest = hashlib.sha256(b"event:Ev0EDGE1").hexdigest()

    async def claimed() -> bool:  # after the ack, as a command is
        async with served.bot.db.sessions() as session:
            return (await session.execute(select(CLAIMS).where(CLAIMS.c.key == digest))).first() is not None

    await wait_until(claimed)
    assert not await served.bot.coordinator.claim("event:Ev0EDGE1")  # the first delivery claimed it


@pytest.mark.parametrize(
    "text",
    ["can't reach the db", "\"db can't\" web", "back\\slash /\\d+ ms/", "it's <!channel> &amp; more", "web\u2019s"],
)
async def test_ordinary_texts_with_apostrophes_and_backslashes_are_commands(slack, serve_bot, text):
    """shlex refused "can't" as an unclosed quote; Slack's own escapes come back as typed."""
    served = await serve_bot()
    url = slack.new_response_url()
    await served.command(slash_command_body("/HEALTH", text, user_id="UOPS1", response_url=url))
    [post] = await slack.wait_for_response_posts(1)
    assert "quote is not closed" not in post.text
    assert "Unknown service" in post.text  # parsed as service names, which do not exist


async def test_a_slow_body_is_cut_off_and_holds_back_nothing(slack, make_bot):
    bot = await make_bot(QUICK_CONFIG, api_url=slack.api_url)
    client = web_client(bot.settings)
    bot.roles = RoleDirectory(bot.config, group_lookup(client))
    edge = SlackEdge(bot, client)
    runner = web.AppRunner(build_web_app(bot, edge, SIGNING_SECRET, body_timeout=1.0), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    served = Served(bot, f"http://127.0.0.1:{port}", runner)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 5000\r\n\r\ncommand=%2Fhea"
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        # The half-sent request is not an ack in flight: work behind other acks is not held back.
        assert edge.work._acks_in_flight == 0
        url = slack.new_response_url()
        assert (await served.command(slash_command_body("/health", "", user_id="UOPS1", response_url=url)))[0] == 200
        await slack.wait_for_response_posts(1)
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert b" 408 " in status_line
        writer.close()
    finally:
        await runner.cleanup()


async def test_slash_commands_without_trigger_id_are_not_taken_for_retries(slack, serve_bot):
    """A missing trigger_id must not become one shared delivery key that swallows every later command."""
    served = await serve_bot()
    urls = []
    for user in ("UOPS1", "UOPS1", "U2"):
        url = slack.new_response_url()
        urls.append(url)
        body = slash_command_body("/help", "", user_id=user, response_url=url).replace("trigger_id=", "x_trigger_id=")
        assert (await served.command(body))[0] == 200
    await slack.wait_for_response_posts(3)
    assert all(len(slack.response_posts(url)) == 1 for url in urls)


async def test_a_body_over_one_megabyte_is_refused_with_413(slack, serve_bot):
    served = await serve_bot()
    body = b"a" * (1024 * 1024 + 1)
    status, _ = await post_raw(served, body, signed(body))
    assert status == 413


HOSTILE = [
    b"a" * 1_000_000,
    b"key" * 330_000,
    b"://" * 330_000,
    b":@" * 500_000,
    b"password=" * 110_000,
    b"payload=" + b"%5B" * 300_000,
]


async def test_healthz_answers_within_100ms_while_hostile_bodies_arrive(slack, serve_bot):
    served = await serve_bot()
    latencies: list[float] = []

    async def attack(body: bytes, sign_it: bool):
        headers = signed(body) if sign_it else {"Content-Type": FORM}
        for _ in range(3):
            status, _ = await post_raw(served, body, headers)
            assert status in (400, 401)

    async def probe():
        async with aiohttp.ClientSession() as http:
            for _ in range(40):
                started = time.perf_counter()
                async with http.get(f"{served.url}/healthz") as response:
                    assert response.status == 200
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)

    await asyncio.gather(probe(), *(attack(body, i % 2 == 0) for i, body in enumerate(HOSTILE)))
    latencies.sort()
    assert latencies[-1] < 0.1, f"slowest /healthz {latencies[-1] * 1000:.0f} ms"
