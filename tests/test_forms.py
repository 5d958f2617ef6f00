"""Forms: a transport-neutral description (bot/pipeline/forms.py), drawn as a Slack modal
(`form_view`, checked by the Slack double like Slack checks views), opened by the messenger,
and submitted back: the inputs and the form's metadata reach the handler's Click, as a
button's message_ts does. The console has no forms (open_form is False there).
"""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from drivers import drive  # noqa: F401 (fixture)
from slack_double import validate_view
from slack_signing import (
    block_actions_payload,
    element_state,
    new_trigger_id,
    submission_state,
    view_submission_payload,
)

from bot.pipeline.forms import Form, FormField
from bot.pipeline.interactions import PRESS_MIDDLEWARE, InteractionPipeline, InteractionSpec, Press
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Reply
from bot.transport.blocks import form_view
from bot.transport.console import Console, ConsoleMessenger
from bot.transport.inbound import Interaction, Malformed, parse_http, parse_payload
from bot.transport.slack import SlackMessenger
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
"""
MARKER = "ZQXFORMMARKER"


def declare_form() -> Form:
    return Form(
        callback_id="test.declare",
        title="Declare an incident",
        submit="Declare",
        fields=(
            FormField("title", "Title", "text", max_length=150, hint="What is broken, in a few words."),
            FormField("summary", "Summary", "multiline", optional=True, initial="Seen at 10:02"),
            FormField("severity", "Severity", "select", options=(("sev1", "SEV1: customers down"), ("sev2", "SEV2: degraded")), initial="sev2"),
            FormField("services", "Services", "multi_select", options=(("api", "api"), ("db", "db"), ("web", "web")), initial="api,db", optional=True),
            FormField("commander", "Commander", "user", initial="UOPS1"),
        ),
        metadata=json.dumps({"channel": "C0INCIDENTS", "incident": 42}),
    )


def submit(view: dict, answers: dict, *, user: str = "UOPS1") -> dict:
    """A view_submission of `view` (as Slack holds it) with `answers` filled in."""
    return view_submission_payload(
        view["callback_id"], submission_state(view, answers), user_id=user, private_metadata=view.get("private_metadata", ""), blocks=view["blocks"]
    )


# --------------------------------------------------------------------------- the form as a modal


def test_form_view_is_a_modal_slack_accepts():
    form = declare_form()
    view = form_view(form)
    assert validate_view(view) == [], validate_view(view)
    assert view["type"] == "modal" and view["callback_id"] == "test.declare"
    assert view["title"]["text"] == "Declare an incident" and view["submit"]["text"] == "Declare" and view["close"]["text"]
    assert view["private_metadata"] == form.metadata
    inputs = {block["block_id"]: block for block in view["blocks"]}
    assert list(inputs) == ["title", "summary", "severity", "services", "commander"]
    assert all(block["type"] == "input" for block in view["blocks"])
    title, summary, severity, services, commander = (inputs[k]["element"] for k in inputs)
    assert title == {"action_id": "title", "type": "plain_text_input", "multiline": False, "max_length": 150}
    assert inputs["title"]["hint"]["text"] == "What is broken, in a few words." and inputs["title"]["optional"] is False
    assert summary["multiline"] is True and summary["initial_value"] == "Seen at 10:02" and inputs["summary"]["optional"] is True
    assert severity["type"] == "static_select" and severity["initial_option"]["value"] == "sev2"
    assert [o["value"] for o in severity["options"]] == ["sev1", "sev2"] and severity["options"][0]["text"]["text"] == "SEV1: customers down"
    assert services["type"] == "multi_static_select" and [o["value"] for o in services["initial_options"]] == ["api", "db"]
    assert commander == {"action_id": "commander", "type": "users_select", "initial_user": "UOPS1"}


def test_form_view_keeps_within_slack_limits_whatever_the_text():
    long = "ü" * 5000
    form = Form(
        callback_id="test.declare",
        title=long,
        submit=long,
        fields=(
            FormField("service", long, "select", options=tuple((f"s{i}", long) for i in range(150)), initial="s120", hint=long),
            FormField("notes", "Notes", "text", initial="n" * 4000),
            FormField("short", "Short", "text", max_length=10, initial="far longer than ten"),
            FormField("who", "Who", "user", initial="not-a-user"),
            FormField("pick", "Pick", "multi_select", options=(("a", ""),), initial="zzz"),
        ),
        metadata="m" * 3000,
    )
    view = form_view(form)
    assert validate_view(view) == [], validate_view(view)
    assert len(view["title"]["text"]) == 24 and view["title"]["text"].endswith("…") and len(view["submit"]["text"]) == 24
    service = view["blocks"][0]
    assert len(service["label"]["text"]) == 2000 and len(service["hint"]["text"]) == 2000
    assert len(service["element"]["options"]) == 100 and all(len(o["text"]["text"]) == 75 for o in service["element"]["options"])
    assert "initial_option" not in service["element"]  # s120 is past the 100 options shown
    assert view["blocks"][1]["element"]["initial_value"] == "n" * 3000
    assert view["blocks"][2]["element"]["initial_value"] == "far longer"  # within its own max_length of 10
    assert "initial_user" not in view["blocks"][3]["element"]
    assert view["blocks"][4]["element"]["options"] == [{"text": {"type": "plain_text", "text": "a"}, "value": "a"}]
    assert "initial_options" not in view["blocks"][4]["element"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: FormField("b", "Label", "date"),  # not a kind
        lambda: FormField("b", "Label", "select"),  # a select without options
        lambda: FormField("b", "Label", "text", options=(("a", "A"),)),
        lambda: FormField("b", "Label", "select", options=(("a", "A"), ("a", "again"))),
        lambda: FormField("b", "Label", "select", options=(("v" * 151, "A"),)),
        lambda: FormField("b", "Label", "text", max_length=3001),
        lambda: FormField("b", "Label", "user", max_length=10),
        lambda: FormField("", "Label", "text"),
        lambda: FormField("b" * 256, "Label", "text"),
        lambda: FormField("b\n", "Label", "text"),
        lambda: FormField("b", " ", "text"),
        lambda: Form("test.x", "Title", "Go", ()),
        lambda: Form("test.x", "Title", "Go", (FormField("b", "L", "text"), FormField("b", "L", "text"))),
        lambda: Form("test.x", "Title", "Go", (FormField("b", "L", "text"),), metadata="m" * 3001),
        lambda: Form("test.x", "", "Go", (FormField("b", "L", "text"),)),
        lambda: Form("", "Title", "Go", (FormField("b", "L", "text"),)),
        lambda: Form("test.x", "Title", "Go", tuple(FormField(f"b{i}", "L", "text") for i in range(51))),
    ],
)
def test_a_form_slack_could_not_show_is_a_programming_error(build):
    with pytest.raises(ValueError):
        build()


# --------------------------------------------------------------------------- opening it


async def test_slack_messenger_opens_the_form_with_views_open(slack, caplog):
    messenger = SlackMessenger(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
    form = declare_form()
    trigger = new_trigger_id()
    assert await messenger.open_form(trigger, form) is True
    [call] = slack.calls_to("views.open")
    assert call.ok and call.args["trigger_id"] == trigger and call.args["view"] == form_view(form)

    # Slack refuses (the trigger_id lives 3 s): False, and a log line without what the form holds.
    caplog.set_level(logging.DEBUG)
    marked = Form("test.declare", f"T{MARKER}", "Go", (FormField("title", f"L{MARKER}", "text", initial=MARKER),), metadata=MARKER)
    slack.fail_next("views.open", "expired_trigger_id")
    assert await messenger.open_form(new_trigger_id(), marked) is False
    assert any("expired_trigger_id" in r.getMessage() and "test.declare" in r.getMessage() for r in caplog.records)
    assert all(MARKER not in r.getMessage() for r in caplog.records if r.name.startswith("bot"))  # slack_sdk's own debug log shows bodies
    assert await messenger.open_form("", form) is False  # no trigger_id: nothing to open it with
    assert len(slack.calls_to("views.open")) == 2


async def test_the_console_has_no_forms(make_bot):
    import io

    bot = await make_bot(CONFIG)
    messenger = ConsoleMessenger(Console(bot, "UOPS1", io.StringIO(), io.StringIO()))
    assert await messenger.open_form("", declare_form()) is False
    assert await bot.messengers["console"].open_form("1.2.3", declare_form()) is False


# --------------------------------------------------------------------------- reading the submission


def test_every_input_kind_becomes_one_string_per_block():
    view = form_view(declare_form())
    payload = submit(view, {"title": "db down", "summary": None, "severity": "sev1", "services": ["api", "web"], "commander": "UOPS1"})
    interaction = parse_payload("interactive", payload)
    assert isinstance(interaction, Interaction)
    assert interaction.fields == (("title", "db down"), ("summary", ""), ("severity", "sev1"), ("services", "api,web"), ("commander", "UOPS1"))
    assert interaction.metadata == view["private_metadata"] and interaction.callback_id == "test.declare"
    # The same over HTTP's payload= form body.
    body = urlencode({"payload": json.dumps(payload)}).encode()
    assert parse_http("application/x-www-form-urlencoded", body) == interaction


def test_other_element_types_and_empty_inputs():
    values = {
        "radio": {"r": element_state("radio_buttons", "b")},
        "checks": {"c": element_state("checkboxes", ["x", "y"])},
        "people": {"p": element_state("multi_users_select", ["U1", "W2"])},
        "nobody": {"p": element_state("users_select", None)},
        "none": {"s": element_state("static_select", None)},
        "nothing": {"m": element_state("multi_static_select", [])},
        "date": {"d": element_state("datepicker", "2026-01-02")},  # not a kind opsbot reads: ""
        "channel": {"c": element_state("conversations_select", "C1")},
        "empty_block": {},
    }
    interaction = parse_payload("interactive", view_submission_payload("test.x", values, private_metadata=""))
    assert dict(interaction.fields) == {
        "radio": "b", "checks": "x,y", "people": "U1,W2", "nobody": "", "none": "", "nothing": "", "date": "", "channel": "", "empty_block": "",
    }  # fmt: skip
    assert interaction.metadata == ""
    click = Click("U1", "", "", "", "slack", kind="view_submission", callback_id="test.x", fields=interaction.fields)
    assert click.form_value("checks") == "x,y" and click.form_value("absent") == "" and click.form_value("none") == ""
    assert click.target == "test.x"


def test_a_view_without_state_has_no_fields():
    payload = view_submission_payload("test.x", {})
    del payload["view"]["state"]
    assert parse_payload("interactive", payload).fields == ()
    closed = {**payload, "type": "view_closed"}
    closed["view"] = {**payload["view"], "state": {"values": {"b": {"a": element_state("plain_text_input", "typed")}}}, "private_metadata": "ctx"}
    parsed = parse_payload("interactive", closed)
    assert parsed.fields == () and parsed.metadata == "ctx"  # only a submission carries inputs


def _state(**blocks) -> dict:
    return {block_id: {"a": element} for block_id, element in blocks.items()}


MALFORMED_SUBMISSIONS = {
    "metadata-too-long": ({}, "m" * 3001),
    "metadata-not-text": ({}, 7),
    "value-too-long": (_state(b={"type": "plain_text_input", "value": "v" * 3001}), ""),
    "joined-too-long": (_state(b=element_state("multi_static_select", ["v" * 100] * 31)), ""),
    "too-many-blocks": ({f"b{i}": {"a": element_state("plain_text_input", "x")} for i in range(51)}, ""),
    "values-not-object": ([], ""),
    "block-not-object": ({"b": "typed"}, ""),
    "element-not-object": ({"b": {"a": "typed"}}, ""),
    "element-without-type": (_state(b={"value": "typed"}), ""),
    "value-not-text": (_state(b={"type": "plain_text_input", "value": 7}), ""),
    "option-not-object": (_state(b={"type": "static_select", "selected_option": "sev1"}), ""),
    "option-without-value": (_state(b={"type": "static_select", "selected_option": {"text": {}}}), ""),
    "options-not-list": (_state(b={"type": "multi_static_select", "selected_options": {"value": "a"}}), ""),
    "too-many-options": (_state(b=element_state("checkboxes", ["a"] * 101)), ""),
    "user-not-an-id": (_state(b={"type": "users_select", "selected_user": "U1<!channel>"}), ""),
    "users-not-ids": (_state(b={"type": "multi_users_select", "selected_users": ["U1", 2]}), ""),
    "block-id-control": ({"b\n": {"a": element_state("plain_text_input", "x")}}, ""),
    "block-id-too-long": ({"b" * 256: {"a": element_state("plain_text_input", "x")}}, ""),
    "action-id-empty": ({"b": {"": element_state("plain_text_input", "x")}}, ""),
    "too-many-elements": ({"b": {f"a{i}": element_state("plain_text_input", "x") for i in range(26)}}, ""),
    "lone-surrogate": (_state(b={"type": "plain_text_input", "value": "\ud800"}), ""),
}


@pytest.mark.parametrize("name", list(MALFORMED_SUBMISSIONS))
def test_a_submission_slack_would_not_send_is_malformed(name):
    values, metadata = MALFORMED_SUBMISSIONS[name]
    payload = view_submission_payload("test.x", {})
    payload["view"]["state"]["values"] = values
    payload["view"]["private_metadata"] = metadata
    with pytest.raises(Malformed) as raised:
        parse_payload("interactive", payload)
    assert "\ud800" not in str(raised.value) and "v" * 50 not in str(raised.value)  # names a part, never the value


def test_the_limits_themselves_are_accepted():
    values = {f"b{i}": {"a": element_state("plain_text_input", "v" * 3000)} for i in range(50)}
    parsed = parse_payload("interactive", view_submission_payload("test.x", values, private_metadata="m" * 3000))
    assert len(parsed.fields) == 50 and parsed.metadata == "m" * 3000


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda p: None, "1700000000.000100"),
        (lambda p: p["container"].pop("message_ts"), "1700000000.000100"),  # from message.ts
        (lambda p: (p["container"].pop("message_ts"), p.pop("message")), ""),
        (lambda p: p.update(container={"type": "view", "view_id": "V1"}, message=None), ""),  # a button on a modal
    ],
    ids=["container", "message", "neither", "modal"],
)
def test_a_button_carries_its_message_ts(change, expected):
    payload = block_actions_payload("U1", "action.approve", "7", message_ts="1700000000.000100")
    change(payload)
    assert parse_payload("interactive", payload).message_ts == expected


@pytest.mark.parametrize("ts", ["", "17000", "1700000000.000100\n", "x.1", 1700000000.0001, "1" * 17 + ".1"])
def test_a_message_ts_slack_would_not_send_is_malformed(ts):
    payload = block_actions_payload("U1", "action.approve", "7")
    payload["container"]["message_ts"] = ts
    if ts == "":
        payload["container"]["message_ts"] = None
        payload["message"]["ts"] = ts
    with pytest.raises(Malformed):
        parse_payload("interactive", payload)


# --------------------------------------------------------------------------- through the edge, to a handler


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_submitted_form_reaches_its_handler_with_inputs_and_metadata(drive):
    d = await drive(CONFIG)
    seen: list[Click] = []

    async def declared(press: Press) -> Reply:
        seen.append(press.click)
        return Reply(text="")

    async def pressed(press: Press) -> Reply:
        seen.append(press.click)
        return Reply(text="Pressed.", ephemeral=True)

    # Constructor injection, not mocking: the bot's own interactions plus this test's form and button.
    d.bot.interactions = InteractionPipeline(
        [
            *ALL,
            InteractionSpec("test.declare", "A form.", declared, public=True, kinds=("view_submission",)),
            InteractionSpec("test.press", "A button.", pressed, public=True),
        ],
        PRESS_MIDDLEWARE,
        aliases=LEGACY,
    )
    view = form_view(declare_form())
    payload = submit(view, {"title": f"db down {MARKER}", "severity": "sev1", "services": ["db"], "commander": "UOPS1"})
    if d.name == "http":
        status = await d.post(urlencode({"payload": json.dumps(payload)}))
        assert status == 200
    else:
        ack = await d.slack.socket.deliver("interactive", payload)
        assert ack.payload == {"response_action": "clear"}
    [click] = seen
    assert click.kind == "view_submission" and click.user_id == "UOPS1" and click.transport == "slack"
    assert click.form_value("title") == f"db down {MARKER}" and click.form_value("summary") == ""
    assert click.form_value("severity") == "sev1" and click.form_value("services") == "db" and click.form_value("commander") == "UOPS1"
    assert json.loads(click.metadata) == {"channel": "C0INCIDENTS", "incident": 42}

    seen.clear()
    answer = await d.click("UOPS1", "test.press", "7")
    assert answer.one_line == "Pressed."
    [click] = seen
    assert click.message_ts == "1700000000.000100" and click.fields == () and click.metadata == ""
