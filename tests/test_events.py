"""Events API deliveries go through the same interaction pipeline as buttons.

An event whose type a declared InteractionSpec lists (`kinds=("event",), events=(...)`)
becomes a Click of kind "event" (found as "event:<type>"), after the ack, over signed HTTP and
Socket Mode alike: role-checked, contained, on record, and answered to no one (an event has no
response_url). Any other event is acknowledged and ignored: no pipeline run, no audit row. A
retried delivery (same event_id) runs once; a body Slack would not send is still acknowledged.
"""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import aiohttp
import pytest

from conftest import SIGNING_SECRET
from drivers import drive  # noqa: F401 (fixture)
from slack_signing import event_callback_payload, reaction_added_event, sign
from test_slack_http import serve_bot  # noqa: F401 (fixture)

from bot.audit import service as audit
from bot.pipeline.interactions import (
    PRESS_MIDDLEWARE,
    UNKNOWN_EVENT,
    InteractionPipeline,
    InteractionSpec,
    Press,
)
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Outcome, Reply
from bot.transport.inbound import EventCallback, Malformed, ReactionAdded, parse_http, parse_payload
from interactions import ALL, LEGACY

CONFIG = """
version: 1
services:
  api:
    checks:
      - kind: http
        url: http://127.0.0.1:9/health
roles:
  ops:
    users: [UOPS1]
  leads:
    users: [ULEAD1]
"""
MARKER = "zqxeventmarker"
TS = "1700000000.000100"


def with_specs(bot, *specs: InteractionSpec) -> None:
    """Constructor injection, not mocking: the bot's pipeline rebuilt from its own interactions plus
    this test's specs. A bot spec claiming one of the same event types (incident pins take
    reaction_added) is left out, since one event type has one handler."""
    claimed = {event for spec in specs for event in spec.events}
    own = [spec for spec in ALL if not claimed & set(spec.events)]
    bot.interactions = InteractionPipeline([*own, *specs], PRESS_MIDDLEWARE, aliases=LEGACY)


def reaction_spec(seen: list[Click], **options) -> InteractionSpec:
    async def on_reaction(press: Press) -> Reply:
        seen.append(press.click)
        if press.click.action_id == "boom":
            raise RuntimeError("broke")
        return Reply(text=f"Saw {press.click.action_id}.")

    return InteractionSpec("test.reaction", "Reactions on messages.", on_reaction, kinds=("event",), events=("reaction_added",), **options)


def reaction(user: str = "UOPS1", name: str = "pushpin", channel: str = "C0INCIDENTS", ts: str = TS, event_id: str | None = None) -> dict:
    return event_callback_payload(reaction_added_event(user, name, channel, ts), event_id=event_id)


async def send(d, body: dict | bytes, *, retry_attempt: int = 0) -> tuple[int, str]:
    """An Events API delivery over the driver's transport: (HTTP status, body); Socket Mode's ack is (200, payload)."""
    if d.name == "http":
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **sign(SIGNING_SECRET, raw)}
        if retry_attempt:
            headers.update({"X-Slack-Retry-Num": str(retry_attempt), "X-Slack-Retry-Reason": "http_timeout"})
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{d.url}/slack/events", data=raw, headers=headers) as response:
                return response.status, await response.text()
    reason = "timeout" if retry_attempt else ""
    ack = await d.slack.socket.deliver("events_api", body, retry_attempt=retry_attempt, retry_reason=reason)
    return 200, "" if ack.payload is None else json.dumps(ack.payload)


async def rows(bot) -> list[tuple[str, str, str, str, str, str]]:
    """Every audit row, oldest first: (user, command, arguments, outcome, channel, transport)."""
    return [(r.user_id, r.command, r.arguments, r.outcome, r.channel, r.transport) for r in reversed(await audit.entries(bot.db, 100))]


# --------------------------------------------------------------------------- reading an event


def test_a_reaction_on_a_message_is_read():
    body = reaction("UOPS1", "pushpin", "C0INCIDENTS", TS, event_id="Ev0READ1")
    parsed = parse_payload("events_api", body)
    assert isinstance(parsed, EventCallback)
    assert (parsed.event_id, parsed.team_id, parsed.event_type, parsed.problem) == ("Ev0READ1", "T0TEST", "reaction_added", "")
    assert parsed.reaction == ReactionAdded("UOPS1", "pushpin", "C0INCIDENTS", TS, body["event"]["event_ts"])
    assert parsed.delivery_key == "event:Ev0READ1"
    assert parse_http("application/json", json.dumps(body).encode()) == parsed
    for name in ("+1", "thumbsup::skin-tone-2", "white_check_mark", "ü"):
        assert parse_payload("events_api", reaction(name=name)).reaction.reaction == name


def test_a_reaction_on_a_file_is_not_a_message_reaction():
    body = reaction()
    body["event"]["item"] = {"type": "file", "file": "F1"}
    parsed = parse_payload("events_api", body)
    assert parsed.event_type == "reaction_added" and parsed.reaction is None and parsed.problem == ""


BROKEN_EVENTS = {
    "item-missing": lambda e: e.pop("item"),
    "item-not-object": lambda e: e.update(item="C1/1.2"),
    "user-missing": lambda e: e.pop("user"),
    "user-not-an-id": lambda e: e.update(user="U1<!channel>"),
    "user-with-newline": lambda e: e.update(user="U1\n"),
    "reaction-missing": lambda e: e.pop("reaction"),
    "reaction-with-space": lambda e: e.update(reaction=f"push pin {MARKER}"),
    "reaction-too-long": lambda e: e.update(reaction="p" * 101),
    "channel-not-an-id": lambda e: e["item"].update(channel="#incidents"),
    "ts-not-a-ts": lambda e: e["item"].update(ts=MARKER),
    "ts-number": lambda e: e["item"].update(ts=1700000000.0001),
    "event-ts-odd": lambda e: e.update(event_ts=MARKER),
    "lone-surrogate": lambda e: e.update(reaction="\ud800"),
}


@pytest.mark.parametrize("name", list(BROKEN_EVENTS))
def test_a_reaction_slack_would_not_send_is_read_without_raising(name):
    body = reaction()
    BROKEN_EVENTS[name](body["event"])
    parsed = parse_payload("events_api", body)
    assert parsed.event_type == "reaction_added" and parsed.reaction is None
    assert parsed.problem and MARKER not in parsed.problem  # the part's name, never its value


@pytest.mark.parametrize("event_type", [None, 7, "", "Reaction_Added", "reaction added", "x" * 65, ["reaction_added"]])
def test_an_event_type_that_is_no_type_is_empty(event_type):
    body = reaction()
    body["event"]["type"] = event_type
    parsed = parse_payload("events_api", body)
    assert parsed.event_type == "" and parsed.reaction is None


@pytest.mark.parametrize(
    "change",
    [lambda b: b.pop("event_id"), lambda b: b.update(event="reaction"), lambda b: b.update(team_id="T0<x>"), lambda b: b.update(event_id=7)],
    ids=["no-event-id", "event-not-object", "team-not-an-id", "event-id-number"],
)
def test_an_envelope_slack_would_not_send_is_malformed(change):
    body = reaction()
    change(body)
    with pytest.raises(Malformed):
        parse_payload("events_api", body)


# --------------------------------------------------------------------------- declaring

def test_an_event_spec_names_its_event_types_and_each_type_has_one_handler():
    async def handler(press: Press) -> Reply:
        return Reply(text="")

    with pytest.raises(ValueError):
        InteractionSpec("test.react", "x", handler, kinds=("event",))  # which events?
    with pytest.raises(ValueError):
        InteractionSpec("test.react", "x", handler, events=("reaction_added",))  # a button with events
    for bad in ("Reaction_added", "reaction added", "", "event:reaction_added"):
        with pytest.raises(ValueError):
            InteractionSpec("test.react", "x", handler, kinds=("event",), events=(bad,))
    with pytest.raises(ValueError):
        InteractionSpec("test.react", "x", handler, kinds=("event",), events=("reaction_added", "reaction_added"))
    one = InteractionSpec("test.react", "x", handler, kinds=("event",), events=("reaction_added", "reaction_removed"))
    two = InteractionSpec("test.other", "x", handler, kinds=("event",), events=("reaction_added",))
    with pytest.raises(ValueError):
        InteractionPipeline([one, two], PRESS_MIDDLEWARE)
    pipeline = InteractionPipeline([one], PRESS_MIDDLEWARE)
    assert pipeline.known["event:reaction_added"] is one and pipeline.known["event:reaction_removed"] is one
    event = Click("UOPS1", "pushpin", TS, "C1", "slack", kind="event", callback_id="reaction_added")
    assert event.target == "event:reaction_added"
    assert Click("UOPS1", "test.react", "7", "C1", "slack").target == "test.react"  # buttons unchanged


async def test_an_event_no_spec_handles_is_refused_on_record_only(make_bot):
    bot = await make_bot(CONFIG)
    with_specs(bot)
    reply = await bot.handle_click(Click("UOPS1", "eyes", TS, "C1", "slack", kind="event", callback_id="emoji_changed"))
    assert reply.text == UNKNOWN_EVENT
    assert await rows(bot) == [("UOPS1", "event:emoji_changed", TS, "unknown", "C1", "slack")]


# --------------------------------------------------------------------------- through the edge


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_declared_event_runs_through_the_pipeline_once(drive):
    d = await drive(CONFIG)
    seen: list[Click] = []
    with_specs(d.bot, reaction_spec(seen, public=True))
    body = reaction("UOPS1", "pushpin", "C0INCIDENTS", TS)
    assert await send(d, body) == (200, "")
    # Slack retries what it thinks was not acknowledged in time: the same event_id runs once.
    for attempt in (1, 2):
        assert await send(d, body, retry_attempt=attempt) == (200, "")
    await d.settle()
    [click] = seen
    assert click == Click(
        user_id="UOPS1", action_id="pushpin", value=TS, channel_id="C0INCIDENTS", transport="slack",
        team_id="T0TEST", kind="event", callback_id="reaction_added", message_ts=TS,
    )  # fmt: skip
    assert click.target == "event:reaction_added"
    assert await rows(d.bot) == [("UOPS1", "test.reaction", TS, "ok", "C0INCIDENTS", "slack")]
    # Its answer goes to no one: an event has no response_url, and nothing is posted.
    assert d.slack.response_posts() == [] and d.slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_refusals_and_failures_of_events_reach_only_the_record(drive, caplog):
    d = await drive(CONFIG)
    seen: list[Click] = []
    with_specs(d.bot, reaction_spec(seen, roles=("leads",)))
    caplog.set_level(logging.DEBUG, logger="bot")
    assert await send(d, reaction("UOPS1", "pushpin")) == (200, "")  # not a lead
    assert await send(d, reaction("ULEAD1", "boom")) == (200, "")  # the handler breaks
    await d.settle()
    assert [c.user_id for c in seen] == ["ULEAD1"]
    # Both events run in the background: their rows may be written in either order.
    assert sorted(await rows(d.bot)) == [
        ("ULEAD1", "test.reaction", TS, "error", "C0INCIDENTS", "slack"),
        ("UOPS1", "test.reaction", TS, "refused", "C0INCIDENTS", "slack"),
    ]
    assert d.slack.response_posts() == [] and not any(c.method.startswith(("chat.", "views.")) for c in d.slack.calls)
    assert any("event was handled" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_undeclared_and_unreadable_events_are_acknowledged_and_ignored(drive, caplog):
    d = await drive(CONFIG)
    seen: list[Click] = []
    with_specs(d.bot, reaction_spec(seen, public=True))
    caplog.set_level(logging.DEBUG, logger="bot")
    undeclared = event_callback_payload({"type": "emoji_changed", "subtype": "add", "name": MARKER, "event_ts": TS})
    app_mention = event_callback_payload({"type": "app_mention", "user": "UOPS1", "text": f"<@UBOT> {MARKER}", "channel": "C1", "ts": TS, "event_ts": TS})
    on_a_file = reaction()
    on_a_file["event"]["item"] = {"type": "file", "file": "F1"}
    broken = [reaction(name=f"push pin {MARKER}"), reaction(ts=MARKER), {**reaction(), "event": {"type": "reaction_added"}}]
    no_type = {**reaction(), "event": {"user": "UOPS1"}}
    for body in (undeclared, app_mention, on_a_file, *broken, no_type):
        assert await send(d, body) == (200, "")
    await d.settle()
    assert "event:emoji_changed" not in d.bot.interactions.known
    assert seen == [] and await rows(d.bot) == []
    assert all(MARKER not in r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert sum("malformed reaction_added event" in r.getMessage() for r in caplog.records) == 3


async def test_url_verification_is_answered_and_other_bodies_acknowledged(serve_bot):
    served = await serve_bot(CONFIG)
    http = SimpleNamespace(name="http", url=served.url)
    challenge = {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    status, text = await send(http, challenge)
    assert status == 200 and json.loads(text) == {"challenge": challenge["challenge"]}
    limited = {"token": "t", "type": "app_rate_limited", "team_id": "T0TEST", "minute_rate_limited": 1518467820, "api_app_id": "A0TEST"}
    assert await send(http, limited) == (200, "")
    assert await rows(served.bot) == []
