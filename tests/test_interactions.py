"""Buttons go through the interaction pipeline, as commands go through theirs.

Every press is found by its declared, namespaced id (an unknown one gets one sentence),
role-checked before its handler runs (deny by default), contained when its handler breaks,
counted in opsbot_interactions_handled_total and on record in the audit log. Through Slack
over HTTP, Slack over Socket Mode and the console (tests/drivers.py); a few checks call
`Bot.handle_click` directly. The interactions named test.* are declared here, the way
interactions/ declares the bot's own.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from prometheus_client import REGISTRY


from drivers import drive  # noqa: E402,F401 (fixture)
from slack_signing import new_trigger_id  # noqa: E402
from test_action_transports import restart_config, service  # noqa: E402,F401 (module fixture: a busybox httpd container)

from action_helpers import request_id_of, state_of, trail  # noqa: E402
from bot.audit import service as audit  # noqa: E402
from bot.metrics import INTERACTIONS_HANDLED  # noqa: E402
from bot.pipeline.interactions import (  # noqa: E402
    FAILED,
    PRESS_MIDDLEWARE,
    UNKNOWN_BUTTON,
    InteractionPipeline,
    InteractionSpec,
    Press,
)
from bot.pipeline.messenger import Click  # noqa: E402
from bot.pipeline.reply import Button, Outcome, Reply  # noqa: E402
from bot.pipeline.request import Request  # noqa: E402
from interactions import ALL, LEGACY, action  # noqa: E402

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
TOKEN = "xoxb-1234567890-abcdefghijklmnop"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _metric_labels():
    """The test.* interactions become label values of the process-wide counter; they go again after each test."""
    before = set(INTERACTIONS_HANDLED._metrics)
    yield
    for labels in set(INTERACTIONS_HANDLED._metrics) - before:
        INTERACTIONS_HANDLED.remove(*labels)


def counted(interaction: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("opsbot_interactions_handled_total", {"interaction": interaction, "outcome": outcome}) or 0.0


def declare(bot, *specs: InteractionSpec) -> None:
    """The bot's own interactions plus `specs`, as interactions/__init__.py would list them."""
    bot.interactions = InteractionPipeline([*ALL, *specs], PRESS_MIDDLEWARE, aliases=LEGACY)


async def press(d, user: str, action_id: str, value: str = "7"):
    """A press of a button with `action_id`: on the console, one printed by this test first."""
    if d.name == "console":
        number = d.console._number(Button("Press", action_id, value))
        return await d.type(user, str(number))
    return await d.click(user, action_id, value)


def sentence(d, seen) -> str:
    """The answer is one line, for the one who pressed only."""
    assert seen.ephemeral is (None if d.name == "console" else True), seen
    return seen.one_line


async def rows(bot, n: int) -> list[tuple[str, str, str, str, str, str]]:
    """The newest `n` audit rows, oldest first: (user, command, arguments, outcome, channel, transport)."""
    found = await audit.entries(bot.db, n)
    return [(r.user_id, r.command, r.arguments, r.outcome, r.channel, r.transport) for r in reversed(found)]


def where(d) -> tuple[str, str]:
    return d.channel, "console" if d.name == "console" else "slack"


# --------------------------------------------------------------------------- declaring


def test_ids_are_namespaced_and_declared_once():
    async def handler(press: Press) -> Reply:
        return Reply(text="x")

    for bad in ("approve", "Action.approve", "action.approve2", "action.approve.x", "action.", ".approve", "action approve", "action-x.y"):
        with pytest.raises(ValueError):
            InteractionSpec(bad, "x", handler)
    InteractionSpec("incident.ack", "x", handler)
    InteractionSpec("incident.set_severity", "x", handler)
    with pytest.raises(ValueError):
        InteractionPipeline([action.APPROVE, InteractionSpec("action.approve", "again", handler)], PRESS_MIDDLEWARE)
    with pytest.raises(ValueError):
        InteractionPipeline(ALL, PRESS_MIDDLEWARE, aliases={"ack": "incident.acknowledge"})  # an alias of nothing
    # Approve and deny are two declarations with two handlers; the old ids are aliases of them.
    assert [spec.id for spec in ALL][:2] == ["action.approve", "action.deny"]
    assert len({spec.id for spec in ALL}) == len(ALL)
    assert action.APPROVE.handler is not action.DENY.handler
    assert LEGACY == {"approve": "action.approve", "deny": "action.deny"}


# --------------------------------------------------------------------------- the pipeline, on every transport


async def test_a_role_gated_interaction_refuses_before_its_handler_runs(drive):
    d = await drive(CONFIG)
    ran: list[str] = []

    async def poke(press: Press) -> Reply:
        ran.append(press.click.user_id)
        return Reply(text=f"Poked {press.click.value}.", ephemeral=True)

    async def wave(press: Press) -> Reply:
        return Reply(text="Waved.", ephemeral=True)

    declare(
        d.bot,
        InteractionSpec("test.poke", "Leads only.", poke, roles=("leads",)),
        InteractionSpec("test.wave", "Anyone.", wave, public=True),
        InteractionSpec("test.locked", "Nobody: declares no role and is not public.", poke),
    )
    refused_before = counted("test.poke", "denied")

    for user in ("UOPS1", "UNOBODY"):
        seen = await press(d, user, "test.poke")
        assert sentence(d, seen) == "You are not allowed to press this button: it needs the leads role in app.yaml; nothing was done."
    seen = await press(d, "ULEAD1", "test.locked")
    assert "You are not allowed to press this button" in sentence(d, seen)
    assert ran == []  # the handler never ran for them

    seen = await press(d, "ULEAD1", "test.poke")
    assert "Poked 7." in seen.words and ran == ["ULEAD1"]
    seen = await press(d, "UNOBODY", "test.wave")
    assert "Waved." in seen.words

    await d.settle()
    channel, transport = where(d)
    assert await rows(d.bot, 5) == [
        ("UOPS1", "test.poke", "7", "refused", channel, transport),
        ("UNOBODY", "test.poke", "7", "refused", channel, transport),
        ("ULEAD1", "test.locked", "7", "refused", channel, transport),
        ("ULEAD1", "test.poke", "7", "ok", channel, transport),
        ("UNOBODY", "test.wave", "7", "ok", channel, transport),
    ]
    assert counted("test.poke", "denied") == refused_before + 2
    assert counted("test.poke", "ok") >= 1


async def test_an_unknown_button_gets_the_sentence_and_is_on_record(drive):
    d = await drive(CONFIG)
    before = counted("unknown", "usage_error")
    for action_id in ("incident.nope", "action.approvex", "APPROVE"):
        seen = await press(d, "UOPS1", action_id, "1")
        assert sentence(d, seen) == UNKNOWN_BUTTON
    await d.settle()
    channel, transport = where(d)
    assert await rows(d.bot, 3) == [
        ("UOPS1", action_id, "1", "unknown", channel, transport) for action_id in ("incident.nope", "action.approvex", "APPROVE")
    ]
    assert counted("unknown", "usage_error") == before + 3  # one label for every unknown id, whatever it was


async def test_a_handler_that_raises_gets_one_sentence_and_the_bot_keeps_serving(drive, caplog):
    caplog.set_level(logging.INFO)
    d = await drive(CONFIG)

    async def boom(press: Press) -> Reply:
        raise RuntimeError(f"the handler broke holding {TOKEN}")

    declare(d.bot, InteractionSpec("test.boom", "Breaks.", boom, public=True))
    before = counted("test.boom", "error")
    for _ in range(2):
        seen = await press(d, "UOPS1", "test.boom")
        assert sentence(d, seen) == FAILED
    await d.settle()
    assert counted("test.boom", "error") == before + 2
    channel, transport = where(d)
    assert await rows(d.bot, 2) == [("UOPS1", "test.boom", "7", "error", channel, transport)] * 2

    failures = [r for r in caplog.records if r.name == "bot.pipeline.interactions" and r.levelno == logging.ERROR]
    assert len(failures) == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "button test.boom failed" in logged and "RuntimeError" in logged
    assert TOKEN not in logged  # the traceback is redacted before it is logged

    # Still serving: a command and another button.
    seen = await d.command("UOPS1", "/help")
    assert "/health" in seen.words
    seen = await press(d, "UOPS1", "incident.nope")
    assert sentence(d, seen) == UNKNOWN_BUTTON


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_slow_button_is_acknowledged_at_once_and_answered_later(drive):
    d = await drive(CONFIG)

    async def slow(press: Press) -> Reply:
        await asyncio.sleep(3.5)
        return Reply(text="Done slowly.", ephemeral=True)

    declare(d.bot, InteractionSpec("test.slow", "Takes longer than Slack waits for an ack.", slow, public=True))
    payload = d.press("UOPS1", "test.slow", "7")
    started = time.monotonic()
    await d.send_click(payload)  # HTTP: the 200; Socket Mode: the envelope's ack
    assert time.monotonic() - started < 1.0
    seen = await d.answer(payload["response_url"], "test.slow", 15)
    assert seen.one_line == "Done slowly."


@pytest.mark.parametrize("drive", ["socket"], indirect=True)
@pytest.mark.parametrize("kind", ["view_submission", "view_closed", "shortcut", "message_action", "something_new_from_slack"])
async def test_every_interaction_type_is_acknowledged_over_socket_mode(drive, kind):
    d = await drive(CONFIG)
    payload = {
        "type": kind,
        "user": {"id": "UOPS1", "username": "uops1", "team_id": "T0TEST"},
        "team": {"id": "T0TEST"},
        "api_app_id": "A0TEST",
        "trigger_id": new_trigger_id(),
        "callback_id": "not.ours",
    }
    if kind.startswith("view_"):
        payload["view"] = {"id": "V1", "callback_id": "not.ours", "state": {"values": {}}}
    started = time.monotonic()
    ack = await d.slack.socket.deliver("interactive", payload)
    assert ack is not None and time.monotonic() - started < 3.0


# --------------------------------------------------------------------------- approve and deny


async def test_approve_and_deny_cannot_be_confused(make_bot, service):
    bot = await make_bot(restart_config(service))
    request_id = request_id_of(await bot.handle(Request("UOPS1", "C1", "restart", "svc", "console")))
    # Near misses are unknown: none of them is taken for an approval (or a denial) of the request.
    near_misses = ("action.approvex", "action.approve ", "action.Approve", "approve\u200b", "action.deny2", "action", "", "incident.acknowledge")
    for action_id in near_misses:
        reply = await bot.handle_click(Click("UOPS2", action_id, str(request_id), "C1", "console"))
        assert reply.text == UNKNOWN_BUTTON, action_id
    assert await state_of(bot, request_id) == "pending"
    # Deny denies; a later approval is told so.
    denied = await bot.handle_click(Click("UOPS2", "action.deny", str(request_id), "C1", "console"))
    assert denied.text == f"You denied request #{request_id}; nothing was run." and denied.outcome is Outcome.ok
    late = await bot.handle_click(Click("UOPS3", "action.approve", str(request_id), "C1", "console"))
    assert f"Request #{request_id} was already decided" in late.text and late.text.endswith("it is denied.")
    assert await state_of(bot, request_id) == "denied"
    assert await trail(bot, "svc", request_id, refusals=True) == ["requested", "denied", "approve refused"]


async def test_buttons_on_messages_posted_before_the_rename_still_work(make_bot, service):
    """Messages posted by an older version carry action ids "approve" and "deny": aliases of the new ones."""
    bot = await make_bot(restart_config(service))
    before = service.started_at()
    approved_before = counted("action.approve", "ok")

    first = request_id_of(await bot.handle(Request("UOPS1", "C1", "restart", "svc", "console")))
    reply = await bot.handle_click(Click("UOPS2", "deny", str(first), "C1", "console"))
    assert reply.text == f"You denied request #{first}; nothing was run."
    assert await trail(bot, "svc", first) == ["requested", "denied"]

    second = request_id_of(await bot.handle(Request("UOPS1", "C1", "restart", "svc", "console")))
    reply = await bot.handle_click(Click("UOPS1", "approve", str(second), "C1", "console"))
    assert reply.text == "You requested this, so someone else has to approve it (two-person rule)."
    reply = await bot.handle_click(Click("UOPS2", "approve", str(second), "C1", "console"))
    assert reply.outcome is Outcome.ok and "Succeeded" in reply.text, reply.text
    assert await state_of(bot, second) == "succeeded"
    assert await trail(bot, "svc", second, refusals=True) == ["requested", "approval refused", "approved", "running", "succeeded"]
    assert service.started_at() != before
    # Counted under the interaction that answered, not the old id.
    assert counted("action.approve", "ok") == approved_before + 1
    assert counted("approve", "ok") == 0


# --------------------------------------------------------------------------- modal submissions and shortcuts

from conftest import SIGNING_SECRET  # noqa: E402
from slack_double import validate_view  # noqa: E402
from slack_signing import sign, view_submission_payload  # noqa: E402
from slack_sdk.errors import SlackApiError  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402

import aiohttp  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

from bot.pipeline.interactions import FORM_FAILED, UNKNOWN_FORM, FormErrors  # noqa: E402
from bot.transport.edge import FORM_STILL_RUNNING  # noqa: E402


async def deliver(d, payload: dict) -> tuple[dict | None, float]:
    """An interaction payload as Slack sends it over the driver's transport: (the ack's body, seconds it took)."""
    started = time.monotonic()
    if d.name == "http":
        body = urlencode({"payload": json.dumps(payload)})
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{d.url}/slack/events", data=body.encode(), headers=headers) as response:
                assert response.status == 200
                text = await response.text()
        return (json.loads(text) if text else None), time.monotonic() - started
    ack = await d.slack.socket.deliver("interactive", payload)
    return ack.payload, time.monotonic() - started


def submission(user: str, callback_id: str) -> dict:
    return view_submission_payload(callback_id, {"b1": {"a1": {"type": "plain_text_input", "value": "typed"}}}, user_id=user)


def shortcut(kind: str, user: str, callback_id: str) -> dict:
    payload = {
        "type": kind,
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
        "team": {"id": "T0TEST"},
        "api_app_id": "A0TEST",
        "trigger_id": new_trigger_id(),
        "callback_id": callback_id,
    }
    if kind == "message_action":
        payload.update(channel={"id": "C1"}, message={"type": "message", "text": "hi", "ts": "1.2"}, response_url="https://hooks.slack.invalid/x")
    return payload


def shown(view: dict) -> str:
    """The words on a modal the bot showed; the modal is one Slack accepts."""
    assert validate_view(view) == [], validate_view(view)
    return " ".join(block["text"]["text"] for block in view["blocks"] if block["type"] == "section")


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_an_unknown_form_is_answered_in_the_ack_and_on_record(drive):
    d = await drive(CONFIG)
    declare(d.bot, InteractionSpec("test.wave", "A button, not a form.", lambda press: None, public=True))
    before = counted("unknown", "usage_error")
    for callback_id in ("incident.nope", "test.wave", "fuzz.modal"):  # test.wave is a button's id: not a form's
        body, took = await deliver(d, submission("UOPS1", callback_id))
        assert body["response_action"] == "update" and shown(body["view"]) == UNKNOWN_FORM
        assert took < 1.0  # the pipeline, its audit row included, ran inside the ack
    await d.settle()
    assert await rows(d.bot, 3) == [("UOPS1", c, "", "unknown", "", "slack") for c in ("incident.nope", "test.wave", "fuzz.modal")]
    assert counted("unknown", "usage_error") == before + 3
    assert d.slack.calls_to("views.open") == []


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_declared_form_goes_through_the_press_pipeline(drive):
    d = await drive(CONFIG)
    submitted: list[str] = []

    async def incident_form(press: Press) -> Reply:
        submitted.append(press.click.user_id)
        assert press.click.kind == "view_submission" and press.click.trigger_id
        if len(submitted) == 1:
            return FormErrors(text="A title is needed.", errors={"b1": "Give the incident a title."}, outcome=Outcome.usage_error)
        return Reply(text="")

    async def boom(press: Press) -> Reply:
        raise RuntimeError("broke")

    declare(
        d.bot,
        InteractionSpec("test.form", "Leads only.", incident_form, roles=("leads",), kinds=("view_submission",)),
        InteractionSpec("test.boom", "Breaks.", boom, public=True, kinds=("view_submission",)),
    )
    body, _ = await deliver(d, submission("UOPS1", "test.form"))
    assert body["response_action"] == "update"
    assert shown(body["view"]) == "You are not allowed to use this form: it needs the leads role in app.yaml; nothing was done."
    assert submitted == []
    body, _ = await deliver(d, submission("ULEAD1", "test.form"))
    assert body == {"response_action": "errors", "errors": {"b1": "Give the incident a title."}}
    body, _ = await deliver(d, submission("ULEAD1", "test.form"))
    assert body == {"response_action": "clear"}
    body, _ = await deliver(d, submission("ULEAD1", "test.boom"))
    assert body["response_action"] == "update" and shown(body["view"]) == FORM_FAILED
    assert submitted == ["ULEAD1", "ULEAD1"]
    await d.settle()
    assert await rows(d.bot, 4) == [
        ("UOPS1", "test.form", "", "refused", "", "slack"),
        ("ULEAD1", "test.form", "", "usage_error", "", "slack"),
        ("ULEAD1", "test.form", "", "ok", "", "slack"),
        ("ULEAD1", "test.boom", "", "error", "", "slack"),
    ]
    assert counted("test.form", "ok") == 1 and counted("test.form", "denied") == 1 and counted("test.boom", "error") == 1


@pytest.mark.parametrize("drive", ["socket"], indirect=True)
async def test_a_slow_form_is_still_acknowledged_in_time(drive):
    d = await drive(CONFIG)
    done: list[str] = []

    async def slow(press: Press) -> Reply:
        await asyncio.sleep(2.5)
        done.append("yes")
        return Reply(text="")

    declare(d.bot, InteractionSpec("test.slow", "Slower than an ack.", slow, public=True, kinds=("view_submission",)))
    body, took = await deliver(d, submission("UOPS1", "test.slow"))  # the double fails it past 3 s
    assert took < 2.8 and shown(body["view"]) == FORM_STILL_RUNNING
    await d.settle()
    assert done == ["yes"]
    assert await rows(d.bot, 1) == [("UOPS1", "test.slow", "", "ok", "", "slack")]


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_an_unknown_shortcut_opens_a_modal_with_the_sentence(drive):
    d = await drive(CONFIG)
    sent = [shortcut("shortcut", "UOPS1", "incident.nope"), shortcut("message_action", "UOPS1", "incident.quote")]
    for payload in sent:
        body, took = await deliver(d, payload)
        assert body is None and took < 1.0
    opened = await d.slack.wait_for("views.open", 2)
    assert all(call.ok for call in opened)
    assert sorted(call.args["trigger_id"] for call in opened) == sorted(p["trigger_id"] for p in sent)
    assert [shown(call.args["view"]) for call in opened] == [UNKNOWN_FORM] * 2
    # A closed modal is acknowledged and nothing more.
    body, _ = await deliver(d, {**shortcut("view_closed", "UOPS1", "x"), "view": {"id": "V1", "callback_id": "incident.nope"}})
    assert body is None
    await d.settle()
    assert len(d.slack.calls_to("views.open")) == 2
    assert sorted(await rows(d.bot, 2)) == sorted(
        [("UOPS1", "incident.nope", "", "unknown", "", "slack"), ("UOPS1", "incident.quote", "", "unknown", "C1", "slack")]
    )


async def test_the_double_checks_views_like_slack(slack):
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    good = {"type": "modal", "title": {"type": "plain_text", "text": "x" * 24}, "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "hi"}}]}
    opened = await client.views_open(trigger_id=new_trigger_id(), view=good)
    view_id = opened["view"]["id"]
    await client.views_update(view_id=view_id, view={**good, "private_metadata": "m" * 3000})
    assert slack.views[view_id]["private_metadata"] == "m" * 3000
    section = good["blocks"][0]
    bad = [
        ({"trigger_id": ""}, good),
        ({}, {**good, "type": "home"}),
        ({}, {**good, "title": {"type": "plain_text", "text": "x" * 25}}),
        ({}, {**good, "title": {"type": "mrkdwn", "text": "x"}}),
        ({}, {**good, "submit": {"type": "plain_text", "text": "s" * 25}}),
        ({}, {**good, "blocks": [section] * 101}),
        ({}, {**good, "private_metadata": "m" * 3001}),
    ]
    for extra, view in bad:
        with pytest.raises(SlackApiError) as raised:
            await client.views_open(**{"trigger_id": new_trigger_id(), **extra}, view=view)
        assert raised.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as raised:
        await client.views_update(view_id="VNOPE", view=good)
    assert raised.value.response["error"] == "not_found"
    assert len(slack.views) == 1
