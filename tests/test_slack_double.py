"""The Slack double enforces Slack's contract, as seen through the real slack_sdk."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

try:  # tests/ on sys.path (rootdir-relative imports, no tests/__init__.py)
    from slack_double import SlackDouble, validate_blocks, validate_view
    from slack_signing import block_actions_body, sign, slash_command_body
except ImportError:  # tests is a package
    from tests.slack_double import SlackDouble, validate_blocks, validate_view
    from tests.slack_signing import block_actions_body, sign, slash_command_body

TOKEN = "xoxb-test-token"


@pytest_asyncio.fixture
async def double() -> AsyncIterator[SlackDouble]:
    d = SlackDouble(bot_token=TOKEN)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


@pytest.fixture
def client(double: SlackDouble) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=double.api_url)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str, action_id: str = "act", **extra: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, **extra}


async def slack_error(call: Any) -> SlackApiError:
    """Await ``call`` and return the SlackApiError it must raise."""
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# --- auth -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_auth_test_identifies_the_bot(double: SlackDouble, client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp.status_code == 200
    assert resp["team_id"] == "T0TEST"
    assert resp["user_id"] == "UBOT"
    assert resp["bot_id"] == "BBOT"
    assert resp["url"].startswith("https://") and resp["team"] and resp["user"]
    assert double.api_url.endswith("/api/") and double.api_url.startswith("http://127.0.0.1:")
    assert double.calls_to("auth.test")[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.asyncio
async def test_wrong_token_is_invalid_auth(double: SlackDouble) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=double.api_url)
    err = await slack_error(bad.chat_postMessage(channel="C1", text="hi"))
    assert err.response.status_code == 200
    assert err.response["error"] == "invalid_auth"
    assert double.messages == {}


@pytest.mark.asyncio
async def test_missing_token_is_not_authed(double: SlackDouble) -> None:
    anonymous = AsyncWebClient(token=None, base_url=double.api_url)
    err = await slack_error(anonymous.auth_test())
    assert err.response["error"] == "not_authed"
    assert "Authorization" not in double.calls[0].headers


# --- arguments and wire formats -----------------------------------------------


@pytest.mark.asyncio
async def test_post_message_requires_channel_and_content(client: AsyncWebClient) -> None:
    err = await slack_error(client.api_call("chat.postMessage", json={"text": "hi"}))
    assert err.response["error"] == "channel_not_found"
    err = await slack_error(client.api_call("chat.postMessage", json={"channel": "C1"}))
    assert err.response["error"] == "no_text"


@pytest.mark.asyncio
async def test_post_message_returns_increasing_unique_ts(double: SlackDouble, client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel="C1", text="one")
    second = await client.chat_postMessage(channel="C1", text="two", blocks=[section("two")])
    assert first["channel"] == "C1"
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    assert second["message"]["blocks"][0]["text"]["text"] == "two"
    call = double.calls_to("chat.postMessage")[0]
    assert call.http_verb == "POST" and call.content_type == "application/json"
    assert call.args == {"channel": "C1", "text": "one"}


@pytest.mark.asyncio
async def test_post_ephemeral_requires_user(client: AsyncWebClient) -> None:
    err = await slack_error(client.api_call("chat.postEphemeral", json={"channel": "C1", "text": "psst"}))
    assert err.response["error"] in ("user_not_found", "invalid_arguments")
    resp = await client.chat_postEphemeral(channel="C1", user="U1", text="psst")
    assert resp["message_ts"]


@pytest.mark.asyncio
async def test_form_body_and_query_string_are_merged(double: SlackDouble, client: AsyncWebClient) -> None:
    # Form-encoded callers send blocks as a JSON string; it must be validated too.
    ok = await client.api_call(
        "chat.postMessage", params={"channel": "C9"}, data={"blocks": json.dumps([section("hi")])}
    )
    assert ok["channel"] == "C9"
    err = await slack_error(
        client.api_call("chat.postMessage", params={"channel": "C9"}, data={"blocks": json.dumps([section("")])})
    )
    assert err.response["error"] == "invalid_blocks"
    err = await slack_error(client.api_call("chat.postMessage", data={"channel": "C9", "blocks": "[{"}))
    assert err.response["error"] == "invalid_blocks_format"
    assert double.calls_to("chat.postMessage")[0].content_type == "application/x-www-form-urlencoded"


@pytest.mark.asyncio
async def test_usergroups_and_users_are_gets(double: SlackDouble, client: AsyncWebClient) -> None:
    double.set_usergroup("S0ONCALL", ["U1", "U2"])
    resp = await client.usergroups_users_list(usergroup="S0ONCALL")
    assert resp["users"] == ["U1", "U2"]
    err = await slack_error(client.usergroups_users_list(usergroup="S0NOPE"))
    assert err.response["error"] == "no_such_subteam"
    err = await slack_error(client.api_call("usergroups.users.list", http_verb="GET", params={}))
    assert err.response["error"] == "invalid_arguments"

    double.set_user("U1", real_name="Ada Lovelace")
    user = await client.users_info(user="U1")
    assert user["user"]["id"] == "U1" and user["user"]["real_name"] == "Ada Lovelace"
    err = await slack_error(client.users_info(user="not-a-user"))
    assert err.response["error"] == "user_not_found"
    assert {c.http_verb for c in double.calls_to("users.info")} == {"GET"}
    assert {c.http_verb for c in double.calls_to("usergroups.users.list")} == {"GET"}


@pytest.mark.asyncio
async def test_unknown_method_and_fail_next(double: SlackDouble, client: AsyncWebClient) -> None:
    err = await slack_error(client.api_call("conversations.nope"))
    assert err.response["error"] == "unknown_method"

    double.fail_next("chat.postMessage", error="channel_is_archived")
    err = await slack_error(client.chat_postMessage(channel="C1", text="hi"))
    assert err.response["error"] == "channel_is_archived"
    assert (await client.chat_postMessage(channel="C1", text="hi"))["ok"]


@pytest.mark.asyncio
async def test_set_handler_serves_extra_methods(double: SlackDouble, client: AsyncWebClient) -> None:
    double.set_handler("conversations.create", lambda args: {"ok": True, "channel": {"id": "C0NEW"}})
    resp = await client.conversations_create(name="inc-42")
    assert resp["channel"]["id"] == "C0NEW"
    # conversations.create sends its arguments in the query string with no body.
    call = double.calls_to("conversations.create")[0]
    assert call.args["name"] == "inc-42" and call.content_type == ""


# --- Block Kit limits -------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("blocks", "fragment"),
    [
        ([section(f"b{i}") for i in range(51)], "at most 50 items"),
        ([section("x" * 3001)], "/blocks/0/text/text: must be at most 3000"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "at most 150"),
        ([{"type": "actions", "elements": [button("b" * 76)]}], "/blocks/0/elements/0/text/text"),
    ],
    ids=["51-blocks", "3001-char-section", "151-char-header", "76-char-button"],
)
async def test_block_limits_are_rejected(client: AsyncWebClient, blocks: list[Any], fragment: str) -> None:
    err = await slack_error(client.chat_postMessage(channel="C1", text="fallback", blocks=blocks))
    assert err.response["error"] == "invalid_blocks"
    assert any(fragment in e for e in err.response["errors"]), err.response["errors"]


@pytest.mark.asyncio
async def test_blocks_at_the_limits_are_accepted(client: AsyncWebClient) -> None:
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}]
    blocks += [section("x" * 3000)]
    blocks += [{"type": "actions", "elements": [button("b" * 75, value="v" * 2000, url="https://x.test/")]}]
    blocks += [section(f"b{i}") for i in range(50 - len(blocks))]
    assert len(blocks) == 50
    resp = await client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    assert resp["ok"]


@pytest.mark.asyncio
async def test_blocks_validated_on_ephemeral_and_update(client: AsyncWebClient) -> None:
    too_long = [section("x" * 3001)]
    err = await slack_error(client.chat_postEphemeral(channel="C1", user="U1", text="t", blocks=too_long))
    assert err.response["error"] == "invalid_blocks"
    posted = await client.chat_postMessage(channel="C1", text="t")
    err = await slack_error(client.chat_update(channel="C1", ts=posted["ts"], text="t", blocks=too_long))
    assert err.response["error"] == "invalid_blocks"


@pytest.mark.asyncio
async def test_message_text_over_40000_chars_is_msg_too_long(client: AsyncWebClient) -> None:
    err = await slack_error(client.chat_postMessage(channel="C1", text="x" * 40_001))
    assert err.response["error"] == "msg_too_long"


def test_validate_blocks_other_limits() -> None:
    assert validate_blocks([section("ok")]) == []
    assert validate_blocks(json.dumps([section("ok")])) == []

    def one_error(blocks: list[Any], fragment: str) -> None:
        errors = validate_blocks(blocks)
        assert any(fragment in e for e in errors), errors

    field = {"type": "mrkdwn", "text": "f"}
    one_error([{"type": "section", "fields": [field] * 11}], "/blocks/0/fields: must have at most 10")
    one_error([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}], "/blocks/0/fields/0/text")
    one_error([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type")
    one_error([{"type": "actions", "elements": [button("b", value="v" * 2001)]}], "/elements/0/value")
    one_error([{"type": "actions", "elements": [button("b", url="u" * 3001)]}], "/elements/0/url")
    one_error([{"type": "actions", "elements": [button("b", action_id="a" * 256)]}], "/elements/0/action_id")
    one_error([{**section("s"), "block_id": "b" * 256}], "/blocks/0/block_id")
    one_error([{**section("s"), "block_id": "dup"}, {**section("t"), "block_id": "dup"}], "duplicate block_id")
    buttons = [button("b", action_id=f"a{i}") for i in range(26)]
    one_error([{"type": "actions", "elements": buttons}], "at most 25 items")
    one_error([{"type": "context", "elements": [field] * 11}], "at most 10 items")
    one_error([{"type": "carousel"}], "unknown block type")
    one_error([{"type": "section"}], "text or fields")
    assert validate_blocks([section("s")] * 100, max_blocks=100) == []


# --- rate limiting -------------------------------------------------------------


@pytest.mark.asyncio
async def test_429_with_retry_after_is_honoured_by_the_retry_handler(double: SlackDouble) -> None:
    double.rate_limit("chat.postMessage", times=1, retry_after=1)
    client = AsyncWebClient(
        token=TOKEN,
        base_url=double.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    started = time.monotonic()
    resp = await client.chat_postMessage(channel="C1", text="after the wait")
    elapsed = time.monotonic() - started

    assert resp["ok"]
    assert elapsed >= 1.0  # the client slept for Retry-After before retrying
    statuses = [c.status for c in double.calls_to("chat.postMessage")]
    assert statuses == [429, 200]


@pytest.mark.asyncio
async def test_429_surfaces_without_a_retry_handler(double: SlackDouble, client: AsyncWebClient) -> None:
    double.rate_limit("users.info", times=1, retry_after=7)
    err = await slack_error(client.users_info(user="U1"))
    assert err.response.status_code == 429
    assert err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "7"
    assert (await client.users_info(user="U1"))["ok"]


# --- chat.update -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_chat_update_needs_a_message_posted_in_that_channel(
    double: SlackDouble, client: AsyncWebClient
) -> None:
    err = await slack_error(client.chat_update(channel="C1", ts="1700000000.999999", text="new"))
    assert err.response["error"] == "message_not_found"

    posted = await client.chat_postMessage(channel="C1", text="old", blocks=[section("old")])
    err = await slack_error(client.chat_update(channel="C2", ts=posted["ts"], text="new"))
    assert err.response["error"] == "message_not_found"

    ephemeral = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    err = await slack_error(client.chat_update(channel="C1", ts=ephemeral["message_ts"], text="new"))
    assert err.response["error"] == "message_not_found"

    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="new")
    assert updated["ts"] == posted["ts"]
    stored = double.messages[("C1", posted["ts"])]
    assert stored["text"] == "new"
    assert stored["blocks"] == [section("old")]  # omitted blocks are kept, like Slack


# --- file upload v2 ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_files_upload_v2_round_trip(double: SlackDouble, client: AsyncWebClient) -> None:
    content = b"timeline\n10:00 paged\n10:05 acked\n"
    resp = await client.files_upload_v2(
        content=content,
        filename="timeline.txt",
        title="Incident timeline",
        channel="C1",
        initial_comment="Postmortem attached",
        thread_ts="1700000000.000100",
    )
    file_id = resp["file"]["id"]
    uploaded = double.uploaded_files[file_id]
    assert uploaded.data == content
    assert uploaded.length == len(content)
    assert uploaded.filename == "timeline.txt" and uploaded.title == "Incident timeline"
    assert uploaded.completed
    assert uploaded.channel_id == "C1"
    assert uploaded.initial_comment == "Postmortem attached"
    assert uploaded.thread_ts == "1700000000.000100"
    # The bytes went to the double without a bearer token, like files.slack.com.
    assert [c.method for c in double.calls] == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    assert double.calls_to("files.getUploadURLExternal")[0].content_type == ""  # query string, empty body


@pytest.mark.asyncio
async def test_complete_upload_requires_uploaded_bytes(double: SlackDouble, client: AsyncWebClient) -> None:
    err = await slack_error(client.files_getUploadURLExternal(filename="x.txt", length=None))  # type: ignore[arg-type]
    assert err.response["error"] == "invalid_arguments"

    pending = await client.files_getUploadURLExternal(filename="x.txt", length=3)
    err = await slack_error(client.files_completeUploadExternal(files=[{"id": pending["file_id"], "title": "x"}]))
    assert err.response["error"] == "file_not_found"
    err = await slack_error(client.files_completeUploadExternal(files=[{"id": "F0NOPE", "title": "x"}]))
    assert err.response["error"] == "file_not_found"

    async with aiohttp.ClientSession() as http:  # multipart upload, no auth header
        form = aiohttp.FormData()
        form.add_field("file", b"abc", filename="x.txt")
        async with http.post(pending["upload_url"], data=form) as r:
            assert r.status == 200
    done = await client.files_completeUploadExternal(files=[{"id": pending["file_id"], "title": "x"}])
    assert done["files"][0]["id"] == pending["file_id"]
    assert double.uploaded_files[pending["file_id"]].data == b"abc"


# --- response_url ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_response_url_accepts_five_posts_then_used_url(double: SlackDouble) -> None:
    url = double.new_response_url()
    async with aiohttp.ClientSession() as http:
        for i in range(5):
            async with http.post(url, json={"text": f"update {i}", "response_type": "ephemeral"}) as r:
                assert r.status == 200
        async with http.post(url, json={"text": "one too many"}) as r:
            assert r.status == 404
            assert await r.text() == "used_url"
        async with http.post(f"{double.base_url}/response/unknown", json={"text": "x"}) as r:
            assert r.status == 404

    posts = double.response_posts(url)
    assert [p.status for p in posts] == [200] * 5 + [404]
    assert posts[0].text == "update 0" and posts[0].body["response_type"] == "ephemeral"


@pytest.mark.asyncio
async def test_response_url_validates_blocks(double: SlackDouble) -> None:
    url = double.new_response_url()
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"blocks": [section("x" * 3001)], "replace_original": True}) as r:
            assert r.status == 400
            assert "invalid_blocks" in await r.text()
        async with http.post(url, json={"blocks": json.dumps([section("fine")])}) as r:
            assert r.status == 200
    posts = await double.wait_for_response_posts(2)
    assert posts[1].blocks == [section("fine")]


# --- recording helpers ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_wait_for_sees_calls_made_in_the_background(double: SlackDouble, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="from a task")

    task = asyncio.create_task(later())
    calls = await double.wait_for("chat.postMessage", timeout=2.0)
    assert calls[0].args["text"] == "from a task"
    await task

    with pytest.raises(TimeoutError, match="chat.update"):
        await double.wait_for("chat.update", timeout=0.05)


@pytest.mark.asyncio
async def test_reset_clears_recordings_and_injections(double: SlackDouble, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="C1", text="hi")
    double.fail_next("auth.test")
    double.rate_limit("auth.test", times=3)
    double.reset()
    assert double.calls == [] and double.messages == {} and double.response_posts() == []
    assert (await client.auth_test())["ok"]


# --- channels, pins, DMs, history ---------------------------------------------------


@pytest.mark.asyncio
async def test_conversations_create_checks_names_and_records_the_channel(
    double: SlackDouble, client: AsyncWebClient
) -> None:
    created = await client.conversations_create(name="inc-42-db_down", is_private=False)
    channel = created["channel"]
    assert channel["name"] == "inc-42-db_down" and channel["id"].startswith("C")
    assert double.channels[channel["id"]] == {
        "name": "inc-42-db_down", "topic": "", "members": {"UBOT"}, "pins": [], "is_private": False,
    }  # fmt: skip
    private = await client.conversations_create(name="inc-43", is_private=True)
    assert private["channel"]["id"] != channel["id"] and private["channel"]["is_private"] is True
    assert double.channels[private["channel"]["id"]]["is_private"] is True
    # Arguments travel in the query string with an empty body, as slack-sdk sends them.
    call = double.calls_to("conversations.create")[0]
    assert call.content_type == "" and call.args["is_private"] == "0"

    for name, error in [
        ("inc-42-db_down", "name_taken"),
        ("", "invalid_name_required"),
        ("x" * 81, "invalid_name_maxlength"),
        ("Inc-44", "invalid_name_specials"),
        ("inc 44", "invalid_name_specials"),
        ("inc.44", "invalid_name_specials"),
        ("#inc-44", "invalid_name_specials"),
        ("---", "invalid_name_punctuation"),
    ]:
        err = await slack_error(client.conversations_create(name=name))
        assert err.response["error"] == error, name
    assert (await client.conversations_create(name="x" * 80))["ok"]
    assert len(double.channels) == 3


@pytest.mark.asyncio
async def test_conversations_invite_adds_members_once(double: SlackDouble, client: AsyncWebClient) -> None:
    channel = (await client.conversations_create(name="inc-1"))["channel"]["id"]
    invited = await client.conversations_invite(channel=channel, users=["U1", "W2"])
    assert invited["channel"]["id"] == channel
    assert double.channels[channel]["members"] == {"UBOT", "U1", "W2"}
    assert double.calls_to("conversations.invite")[0].args["users"] == "U1,W2"

    err = await slack_error(client.conversations_invite(channel=channel, users=["U1", "W2"]))
    assert err.response["error"] == "already_in_channel"
    assert (await client.conversations_invite(channel=channel, users="U1,U3"))["ok"]  # one new member is enough
    assert double.channels[channel]["members"] == {"UBOT", "U1", "W2", "U3"}

    for users, error in [("not-a-user", "user_not_found"), ("U4,u5", "user_not_found"), ("UBOT", "cant_invite_self")]:
        err = await slack_error(client.conversations_invite(channel=channel, users=users))
        assert err.response["error"] == error, users
    double.unknown_user("U0GONE")
    err = await slack_error(client.conversations_invite(channel=channel, users="U0GONE"))
    assert err.response["error"] == "user_not_found"
    err = await slack_error(client.api_call("conversations.invite", params={"channel": channel}))
    assert err.response["error"] == "no_user"
    err = await slack_error(client.conversations_invite(channel="#incidents", users="U1"))
    assert err.response["error"] == "channel_not_found"
    assert double.channels[channel]["members"] == {"UBOT", "U1", "W2", "U3"}  # failures change nothing

    # A channel the double never created (a configured id) is taken as an existing one.
    assert (await client.conversations_invite(channel="C0INCIDENTS", users="U1"))["ok"]
    assert double.channels["C0INCIDENTS"]["members"] == {"UBOT", "U1"}


@pytest.mark.asyncio
async def test_conversations_members_pages_with_a_cursor(double: SlackDouble, client: AsyncWebClient) -> None:
    channel = (await client.conversations_create(name="inc-3", is_private=True))["channel"]["id"]
    users = [f"U{n:04d}" for n in range(250)]
    await client.conversations_invite(channel=channel, users=users)
    first = await client.conversations_members(channel=channel)  # 100 a page unless asked
    assert first["members"] == sorted(["UBOT", *users])[:100] and first["response_metadata"]["next_cursor"]
    seen, cursor = list(first["members"]), first["response_metadata"]["next_cursor"]
    while cursor:
        page = await client.conversations_members(channel=channel, cursor=cursor, limit=120)
        seen += page["members"]
        cursor = page["response_metadata"]["next_cursor"]
    assert seen == sorted(["UBOT", *users])  # every member once, in pages
    assert double.calls_to("conversations.members")[0].args["channel"] == channel

    for args, error in [({"channel": channel, "cursor": "not-a-cursor"}, "invalid_cursor"),
                        ({"channel": channel, "limit": "0"}, "invalid_limit"),
                        ({"channel": channel, "limit": "1001"}, "invalid_limit"),
                        ({"channel": "#inc-3"}, "channel_not_found"), ({}, "channel_not_found")]:
        err = await slack_error(client.api_call("conversations.members", http_verb="GET", params=args))
        assert err.response["error"] == error, args
    # A private channel the bot is not in cannot be read; a configured public one can.
    double.channels[channel]["members"].discard("UBOT")
    err = await slack_error(client.conversations_members(channel=channel))
    assert err.response["error"] == "channel_not_found"
    assert (await client.conversations_members(channel="C0INCIDENTS"))["members"] == ["UBOT"]


@pytest.mark.asyncio
async def test_set_topic_takes_at_most_250_characters(double: SlackDouble, client: AsyncWebClient) -> None:
    channel = (await client.conversations_create(name="inc-2"))["channel"]["id"]
    answered = await client.conversations_setTopic(channel=channel, topic="t" * 250)
    assert answered["channel"]["topic"]["value"] == "t" * 250
    err = await slack_error(client.conversations_setTopic(channel=channel, topic="t" * 251))
    assert err.response["error"] == "too_long"
    assert double.channels[channel]["topic"] == "t" * 250
    assert (await client.conversations_setTopic(channel="C0INCIDENTS", topic="SEV1: db down"))["ok"]
    assert double.channels["C0INCIDENTS"]["topic"] == "SEV1: db down"


@pytest.mark.asyncio
async def test_pins_add_needs_a_message_of_that_channel_once(double: SlackDouble, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0INCIDENTS", text="SEV1 declared")
    err = await slack_error(client.pins_add(channel="C0OTHER", timestamp=posted["ts"]))
    assert err.response["error"] == "message_not_found"
    err = await slack_error(client.pins_add(channel="C0INCIDENTS", timestamp="1700000000.999999"))
    assert err.response["error"] == "message_not_found"
    assert (await client.pins_add(channel="C0INCIDENTS", timestamp=posted["ts"]))["ok"]
    err = await slack_error(client.pins_add(channel="C0INCIDENTS", timestamp=posted["ts"]))
    assert err.response["error"] == "already_pinned"
    typed = double.add_message("C0INCIDENTS", "U1", "the db is back")
    assert (await client.pins_add(channel="C0INCIDENTS", timestamp=typed))["ok"]
    assert double.channels["C0INCIDENTS"]["pins"] == [posted["ts"], typed]
    assert double.calls_to("pins.add")[0].content_type == ""  # query string, empty body


@pytest.mark.asyncio
async def test_conversations_open_gives_one_dm_per_user(double: SlackDouble, client: AsyncWebClient) -> None:
    first = await client.conversations_open(users="U1")
    again = await client.conversations_open(users=["U1"])
    other = await client.conversations_open(users="U2")
    assert first["channel"]["id"].startswith("D") and first["channel"]["id"] == again["channel"]["id"]
    assert other["channel"]["id"] != first["channel"]["id"]
    dm = first["channel"]["id"]
    sent = await client.chat_postMessage(channel=dm, text="You are on call for SEV1")
    assert double.messages[(dm, sent["ts"])]["text"] == "You are on call for SEV1"
    for users, error in [("nobody", "user_not_found"), ("", "users_list_not_supplied")]:
        err = await slack_error(client.api_call("conversations.open", params={"users": users}))
        assert err.response["error"] == error, users


@pytest.mark.asyncio
async def test_conversations_history_is_newest_first_within_latest_and_limit(
    double: SlackDouble, client: AsyncWebClient
) -> None:
    first = (await client.chat_postMessage(channel="C0INCIDENTS", text="declared"))["ts"]
    second = double.add_message("C0INCIDENTS", "U1", "restarting the primary")
    await client.chat_postMessage(channel="C0ELSEWHERE", text="not here")
    third = double.add_message("C0INCIDENTS", "U2", "it is back")

    everything = await client.conversations_history(channel="C0INCIDENTS")
    assert [m["ts"] for m in everything["messages"]] == [third, second, first]
    assert everything["messages"][1] == {"type": "message", "user": "U1", "text": "restarting the primary", "ts": second, "team": "T0TEST"}
    assert everything["has_more"] is False
    # The way a pinned message's text is fetched: latest=ts, inclusive, limit=1.
    pinned = await client.conversations_history(channel="C0INCIDENTS", latest=second, inclusive=True, limit=1)
    assert [m["text"] for m in pinned["messages"]] == ["restarting the primary"] and pinned["has_more"] is True
    before = await client.conversations_history(channel="C0INCIDENTS", latest=second, limit=1)
    assert [m["ts"] for m in before["messages"]] == [first]
    after = await client.conversations_history(channel="C0INCIDENTS", oldest=first)
    assert [m["ts"] for m in after["messages"]] == [third, second]
    assert (await client.conversations_history(channel="C0EMPTY"))["messages"] == []
    assert {c.http_verb for c in double.calls_to("conversations.history")} == {"GET"}
    err = await slack_error(client.conversations_history(channel="general"))
    assert err.response["error"] == "channel_not_found"

    # A person's message is not the bot's to edit.
    err = await slack_error(client.chat_update(channel="C0INCIDENTS", ts=second, text="edited"))
    assert err.response["error"] == "cant_update_message"


@pytest.mark.asyncio
async def test_users_info_answers_user_not_found_for_unknown_users(double: SlackDouble, client: AsyncWebClient) -> None:
    assert (await client.users_info(user="U0SOMEONE"))["user"]["id"] == "U0SOMEONE"
    for user in ("not-a-user", "u0lower", "U0\n", "C0CHANNEL"):
        err = await slack_error(client.api_call("users.info", http_verb="GET", params={"user": user}))
        assert err.response["error"] == "user_not_found", user
    double.set_user("U0LEFT", real_name="Gone Soon")
    double.unknown_user("U0LEFT")
    err = await slack_error(client.users_info(user="U0LEFT"))
    assert err.response["error"] == "user_not_found"


@pytest.mark.asyncio
async def test_set_handler_replaces_a_built_in_method(double: SlackDouble, client: AsyncWebClient) -> None:
    double.set_handler("pins.add", lambda args: {"ok": False, "error": "restricted_action"})
    err = await slack_error(client.pins_add(channel="C1", timestamp="1.2"))
    assert err.response["error"] == "restricted_action"


@pytest.mark.asyncio
async def test_reset_forgets_channels_and_dms(double: SlackDouble, client: AsyncWebClient) -> None:
    await client.conversations_create(name="inc-9")
    dm = (await client.conversations_open(users="U1"))["channel"]["id"]
    double.reset()
    assert double.channels == {}
    assert (await client.conversations_create(name="inc-9"))["ok"]  # the name is free again
    assert (await client.conversations_open(users="U1"))["channel"]["id"].startswith("D")
    assert double.messages == {} and dm


# --- modal inputs ----------------------------------------------------------------------


def test_validate_view_checks_input_blocks() -> None:
    def modal(*blocks: dict[str, Any]) -> dict[str, Any]:
        return {"type": "modal", "title": {"type": "plain_text", "text": "Declare"}, "blocks": list(blocks)}

    def field(element: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"type": "input", "block_id": "b", "label": {"type": "plain_text", "text": "What"}, "element": element, **extra}

    sev = [{"text": {"type": "plain_text", "text": "SEV1"}, "value": "sev1"}]
    assert validate_view(modal(field({"type": "plain_text_input", "action_id": "a", "max_length": 3000, "initial_value": "x"}))) == []
    assert validate_view(modal(field({"type": "static_select", "action_id": "a", "options": sev, "initial_option": sev[0]}))) == []
    assert validate_view(modal(field({"type": "users_select", "action_id": "a", "initial_user": "U1"}, optional=True))) == []
    for view, fragment in [
        (modal(field({"type": "plain_text_input", "max_length": 3001})), "/max_length"),
        (modal(field({"type": "plain_text_input", "max_length": 5, "initial_value": "too long"})), "/initial_value"),
        (modal(field({"type": "static_select", "options": sev, "initial_option": {**sev[0], "value": "sev9"}})), "/initial_option"),
        (modal(field({"type": "button", "text": {"type": "plain_text", "text": "x"}})), "cannot hold 'button'"),
        (modal(field({"type": "users_select", "initial_user": "nobody"})), "/initial_user"),
        (modal(field({"type": "plain_text_input"}, hint={"type": "mrkdwn", "text": "*x*"})), "/hint/type"),
        (modal(field({"type": "plain_text_input"}, optional="yes")), "/optional"),
        (modal(field({"type": "plain_text_input"}, label={"type": "plain_text", "text": "l" * 2001})), "/label/text"),
    ]:
        errors = validate_view(view)
        assert any(fragment in e for e in errors), (fragment, errors)


# --- signing helpers -----------------------------------------------------------------


def test_sign_matches_slack_sdk_verifier() -> None:
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    body = slash_command_body("/incident", "declare sev2 db down", response_url="http://127.0.0.1:1/response/x")
    headers = sign(secret, body)
    verifier = SignatureVerifier(signing_secret=secret)
    assert verifier.is_valid_request(body, headers)
    assert verifier.is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    assert verifier.is_valid_request(body.encode(), sign(secret, body.encode()))
    assert not verifier.is_valid_request(body + "&x=1", headers)
    assert not verifier.is_valid_request(body, sign("other-secret", body))
    stale = sign(secret, body, timestamp=int(time.time()) - 301)
    assert not verifier.is_valid_request(body, stale)


def test_slash_command_body_has_every_field_slack_sends() -> None:
    body = slash_command_body("/incident", "declare sev2", user_id="U7", channel_id="C7", response_url="http://r/1")
    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    expected = {
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name",
        "command", "text", "api_app_id", "is_enterprise_install", "response_url", "trigger_id",
    }  # fmt: skip
    assert expected <= fields.keys()
    assert fields["command"] == "/incident" and fields["text"] == "declare sev2"
    assert fields["user_id"] == "U7" and fields["channel_id"] == "C7" and fields["response_url"] == "http://r/1"
    other = parse_qs(slash_command_body("/incident", ""))
    assert other["trigger_id"] != [fields["trigger_id"]]
    grid = parse_qs(slash_command_body("/incident", "x", enterprise_id="E1", enterprise_name="Acme"))
    assert grid["enterprise_id"] == ["E1"]


def test_block_actions_body_carries_the_contract_fields() -> None:
    body = block_actions_body("U7", "ack", "INC-42", channel_id="C7", message_ts="1700000000.000200",
                              response_url="http://r/2", block_id="incident_actions")  # fmt: skip
    form = parse_qs(body)
    assert list(form) == ["payload"]
    payload = json.loads(form["payload"][0])
    assert payload["type"] == "block_actions"
    assert {"id", "username", "name", "team_id"} <= payload["user"].keys()
    for key in ("api_app_id", "trigger_id", "team", "channel", "response_url"):
        assert payload[key], key
    assert payload["container"] == {
        "type": "message", "message_ts": "1700000000.000200", "channel_id": "C7", "is_ephemeral": False,
    }  # fmt: skip
    assert payload["state"] == {"values": {}}
    action = payload["actions"][0]
    assert {"action_id", "block_id", "text", "value", "type", "action_ts"} <= action.keys()
    assert (action["action_id"], action["block_id"], action["value"]) == ("ack", "incident_actions", "INC-42")
    assert validate_blocks(payload["message"]["blocks"]) == []
