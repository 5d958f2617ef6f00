"""The Socket Mode double enforces Slack's contract, as seen through slack-sdk's own client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

try:  # tests/ on sys.path (rootdir-relative imports, no tests/__init__.py)
    from slack_double import SlackDouble
    from slack_signing import (
        block_actions_payload,
        event_callback_payload,
        reaction_added_event,
        slash_command_fields,
        view_submission_payload,
    )
    from socket_mode_double import NotAcked
except ImportError:  # tests is a package
    from tests.slack_double import SlackDouble
    from tests.slack_signing import (
        block_actions_payload,
        event_callback_payload,
        reaction_added_event,
        slash_command_fields,
        view_submission_payload,
    )
    from tests.socket_mode_double import NotAcked


class App:
    """A Socket Mode app in miniature: records every frame and request, acks as told.

    ``answer(request)`` gives the ack payload (None: a bare ack); ``delay`` holds
    the ack back; ``ack=False`` never sends one.
    """

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.requests: list[SocketModeRequest] = []
        self.answer: Callable[[SocketModeRequest], dict[str, Any] | None] = lambda request: None
        self.delay = 0.0
        self.ack = True

    async def on_frame(self, message: aiohttp.WSMessage) -> None:
        self.frames.append(json.loads(message.data))

    async def on_request(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.ack:
            response = SocketModeResponse(envelope_id=request.envelope_id, payload=self.answer(request))
            await client.send_socket_mode_response(response)


def socket_client(slack: SlackDouble, app: App, app_token: str | None = None) -> SocketModeClient:
    client = SocketModeClient(
        app_token=app_token or slack.app_token,
        web_client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        on_message_listeners=[app.on_frame],
    )
    client.socket_mode_request_listeners.append(app.on_request)
    return client


@pytest_asyncio.fixture
async def connected(slack: SlackDouble) -> AsyncIterator[tuple[SocketModeClient, App]]:
    app = App()
    client = socket_client(slack, app)
    await client.connect()
    await slack.socket.wait_connected()
    try:
        yield client, app
    finally:
        await client.close()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --- connecting -------------------------------------------------------------------


async def test_client_connects_with_the_app_token_and_gets_hello(slack, connected):
    client, app = connected
    (opened,) = slack.calls_to("apps.connections.open")
    assert opened.ok and opened.headers["Authorization"] == f"Bearer {slack.app_token}"
    assert opened.response["url"].startswith(f"ws://127.0.0.1:{slack.base_url.rsplit(':', 1)[1]}/link/?ticket=")

    await until(lambda: app.frames)
    hello = app.frames[0]
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": "A0TEST"}
    assert isinstance(hello["debug_info"], dict)
    (conn,) = slack.socket.connections
    assert conn.hello == hello and conn.live


async def test_pings_go_both_ways(slack, connected):
    conn = await slack.socket.wait_connected()
    # slack-sdk pings right after connecting and the double answers.
    await until(lambda: conn.pings >= 1)
    # The client answers Slack's pings (a missing pong would be a violation).
    assert await slack.socket.ping() < 2.0
    await slack.socket.assert_clean()


@pytest.mark.parametrize(
    ("token", "error"),
    [("xoxb-test-token", "not_allowed_token_type"), ("xapp-1-A0TEST-1-someone-else", "invalid_auth")],
)
async def test_apps_connections_open_refuses_other_tokens(slack, token, error):
    client = socket_client(slack, App(), app_token=token)
    try:
        # The call SocketModeClient.connect() makes first; connect() itself retries forever.
        with pytest.raises(SlackApiError) as info:
            await client.issue_new_wss_url()
        assert info.value.response["error"] == error
    finally:
        await client.close()
    assert slack.socket.connections == []


async def test_bot_methods_refuse_the_app_token(slack):
    web = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as info:
        await web.chat_postMessage(channel="C1", text="hi")
    assert info.value.response["error"] == "not_allowed_token_type"


async def test_a_ticket_opens_one_connection(slack):
    web = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    url = (await web.apps_connections_open(app_token=slack.app_token))["url"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            assert (await ws.receive_json(timeout=2))["type"] == "hello"
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(url)
            assert info.value.status == 401
    assert len(slack.socket.connections) == 1
    assert any("already used ticket" in v for v in slack.socket.violations)


# --- envelopes and acks -----------------------------------------------------------


async def test_slash_command_is_acked_with_its_envelope_id_and_answer(slack, connected):
    _, app = connected
    app.answer = lambda request: {"text": f"got {request.payload['text']}"}
    fields = slash_command_fields("/ops", "status web", response_url=slack.new_response_url())

    ack = await slack.socket.deliver("slash_commands", fields)

    (request,) = app.requests
    assert request.type == "slash_commands" and request.accepts_response_payload is True
    assert request.payload == fields and all(isinstance(v, str) for v in request.payload.values())
    assert ack.envelope_id == request.envelope_id == slack.socket.envelopes[0].envelope_id
    assert ack.payload == {"text": "got status web"}
    assert 0 <= ack.elapsed < 3.0
    await slack.socket.assert_clean()


async def test_button_press_is_acked_without_a_payload(slack, connected):
    _, app = connected
    ack = await slack.socket.deliver("interactive", block_actions_payload("U1", "approve", "42"))

    (request,) = app.requests
    assert request.type == "interactive" and request.accepts_response_payload is False
    assert request.payload["actions"][0]["action_id"] == "approve"
    assert ack.envelope_id == request.envelope_id and ack.payload is None
    assert ack.frame == {"envelope_id": request.envelope_id}
    await slack.socket.assert_clean()


async def test_events_api_envelope_carries_retry_fields(slack, connected):
    _, app = connected
    body = event_callback_payload(reaction_added_event("U1", "pushpin", "C1", "1700000000.000100"))

    await slack.socket.deliver("events_api", body, retry_attempt=1, retry_reason="timeout")

    (request,) = app.requests
    assert (request.retry_attempt, request.retry_reason) == (1, "timeout")
    assert request.accepts_response_payload is False
    assert request.payload["type"] == "event_callback" and request.payload["event"]["reaction"] == "pushpin"
    await slack.socket.assert_clean()


async def test_ack_payload_only_when_the_envelope_accepts_one(slack, connected):
    _, app = connected
    app.answer = lambda request: {"response_action": "errors", "errors": {"title": "required"}}

    # view_submission answers in the ack body: allowed.
    submit = view_submission_payload("incident", {"title": {"value": {"type": "plain_text_input", "value": ""}}})
    ack = await slack.socket.deliver("interactive", submit)
    assert ack.payload == {"response_action": "errors", "errors": {"title": "required"}}
    assert slack.socket.violations == []

    # block_actions does not: the ack still counts, the payload is a breach.
    press = await slack.socket.deliver("interactive", block_actions_payload("U1", "approve", "42"))
    assert press.payload is not None
    (violation,) = slack.socket.violations
    assert press.envelope_id in violation and "accepts_response_payload false" in violation
    with pytest.raises(AssertionError, match="Socket Mode contract broken"):
        await slack.socket.assert_clean()


async def test_concurrent_envelopes_are_acked_independently(slack, connected):
    _, app = connected
    app.delay = 0.3
    started = time.monotonic()
    deliveries = [
        await slack.socket.deliver_nowait("slash_commands", slash_command_fields("/ops", f"status {i}"))
        for i in range(5)
    ]
    acks = await asyncio.gather(*deliveries)

    # Handled side by side: five 0.3 s handlers finish well before 1.5 s.
    assert time.monotonic() - started < 1.2
    assert [a.envelope_id for a in acks] == [d.envelope.envelope_id for d in deliveries]
    assert all(a.elapsed >= 0.3 for a in acks)
    await slack.socket.assert_clean()


async def test_unacked_envelope_is_recorded_after_the_deadline(slack, connected):
    _, app = connected
    app.ack = False
    slack.socket.ack_deadline = 0.2  # Slack's 3 s, shortened; reset() restores it

    started = time.monotonic()
    with pytest.raises(NotAcked):
        await slack.socket.deliver("interactive", block_actions_payload("U1", "unknown_button", "1"))
    assert 0.2 <= time.monotonic() - started < 1.0
    (missed,) = slack.socket.unacked
    assert missed.envelope_id == app.requests[0].envelope_id and missed.ack is None
    with pytest.raises(AssertionError, match="not acknowledged within 0.2s"):
        await slack.socket.assert_clean()

    slack.reset()
    assert slack.socket.ack_deadline == 3.0
    assert slack.socket.unacked == [] and slack.socket.violations == []


async def test_late_ack_is_a_violation(slack, connected):
    _, app = connected
    app.delay = 0.4
    slack.socket.ack_deadline = 0.2

    delivery = await slack.socket.deliver_nowait("slash_commands", slash_command_fields("/ops", "slow"))
    with pytest.raises(NotAcked):
        await delivery
    await until(lambda: delivery.envelope.ack is not None)
    assert slack.socket.unacked == [delivery.envelope]
    (violation,) = slack.socket.violations
    assert "acknowledged after" in violation


async def test_unknown_and_malformed_frames_are_violations(slack):
    web = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    url = (await web.apps_connections_open(app_token=slack.app_token))["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive_json(timeout=2)  # hello
        await ws.send_str('{"envelope_id": "never-sent"}')
        await ws.send_str("not json")
        await ws.send_bytes(b"\x00")
        await until(lambda: len(slack.socket.violations) == 3)
    unknown, not_json, binary = slack.socket.violations
    assert "unknown envelope_id" in unknown and "not JSON" in not_json and "binary" in binary


# --- disconnects ------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["refresh_requested", "warning", "link_disabled"])
async def test_disconnect_makes_the_client_reconnect_with_a_fresh_url(slack, connected, reason):
    _, app = connected
    first = await slack.socket.wait_connected()

    await slack.socket.disconnect(reason)

    second = await slack.socket.wait_connected(count=2)
    assert not first.live and first.closed_by == "client"  # slack-sdk dropped the old socket itself
    assert second.ticket != first.ticket
    assert len(slack.calls_to("apps.connections.open")) == 2
    frame = next(f for f in app.frames if f["type"] == "disconnect")
    assert frame["reason"] == reason and isinstance(frame["debug_info"], dict)

    ack = await slack.socket.deliver("interactive", block_actions_payload("U1", "approve", "42"))
    assert ack.connection_id == second.id
    await slack.socket.assert_clean()


async def test_double_closes_a_socket_the_client_keeps(slack):
    # A bare client that ignores the disconnect frame.
    web = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    url = (await web.apps_connections_open(app_token=slack.app_token))["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive_json(timeout=2)
        conn = await slack.socket.disconnect("warning", close_after=0.2)
        assert (await ws.receive_json(timeout=2))["reason"] == "warning"
        assert (await ws.receive(timeout=2)).type == aiohttp.WSMsgType.CLOSE
    assert conn.closed_by == "double"


async def test_stopping_the_double_closes_its_sockets():
    async with SlackDouble() as double:
        web = AsyncWebClient(token=double.app_token, base_url=double.api_url)
        url = (await web.apps_connections_open(app_token=double.app_token))["url"]
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.receive_json(timeout=2)
            await asyncio.wait_for(double.stop(), 5)
            assert (await ws.receive(timeout=2)).type == aiohttp.WSMsgType.CLOSE
        assert double.socket.connections[0].closed_by == "double"
