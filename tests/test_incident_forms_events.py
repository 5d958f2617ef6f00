"""The incident forms (open an incident, post an update) and the 📌 event, over Slack HTTP and Socket Mode;
on the console, the sentence saying what to type instead of a form. And what else Slack must accept
of incidents: channel names made from any title, a playbook checklist of any length.

A modal submission is answered in its ack (errors under the fields, or the modal closes), so
these tests read the ack: the HTTP response body, or the Socket Mode ack's payload. Events are
sent as Slack sends them, retries included. The lifecycle itself: tests/test_incidents.py.
"""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode

import re

import aiohttp
import pytest

from conftest import SIGNING_SECRET
from drivers import drive  # noqa: F401 (fixture)
from slack_double import validate_blocks
from slack_signing import event_callback_payload, reaction_added_event, sign, submission_state, view_submission_payload
from test_action_transports import restart_config, service  # noqa: F401 (module fixture: a busybox httpd container)
from test_incidents import RESTART_PLAYBOOK, START, config, incident_count, incident_sections, kinds, open_incident, said, start, timeline

from bot.config.incident_models import Playbook, PlaybookStep
from bot.config.models import AppConfig
from bot.incident import service as incidents
from bot.incident.forms import FORM_REFUSED, FORM_SHOWN, NO_FORMS_OPEN
from bot.incident.models import Incident, IncidentState
from bot.incident.opening import channel_name, channel_names
from bot.incident.views import playbook_checklist
from bot.transport.blocks import to_slack

slack_only = pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
SLACK_CHANNEL_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")


async def submit(d, payload: dict) -> dict | None:
    """A view_submission as Slack sends it; the ack's body (None: an empty 200)."""
    if d.name == "http":
        body = urlencode({"payload": json.dumps(payload)})
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{d.url}/slack/events", data=body.encode(), headers=headers) as response:
                assert response.status == 200
                text = await response.text()
        return json.loads(text) if text else None
    return (await d.slack.socket.deliver("interactive", payload)).payload


async def send_event(d, body: dict, *, retry_attempt: int = 0) -> None:
    """An Events API delivery, acknowledged with an empty 200 (HTTP) or a bare ack (Socket Mode)."""
    if d.name == "http":
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **sign(SIGNING_SECRET, raw)}
        if retry_attempt:
            headers.update({"X-Slack-Retry-Num": str(retry_attempt), "X-Slack-Retry-Reason": "http_timeout"})
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{d.url}/slack/events", data=raw, headers=headers) as response:
                assert (response.status, await response.text()) == (200, "")
    else:
        ack = await d.slack.socket.deliver("events_api", body, retry_attempt=retry_attempt, retry_reason="timeout" if retry_attempt else "")
        assert ack.payload is None


def opened_view(d, callback_id: str) -> dict:
    """The newest view the bot opened with this callback_id, as the double stored it."""
    views = [v for v in d.slack.views.values() if v["callback_id"] == callback_id]
    assert views, f"no {callback_id} view was opened"
    return views[-1]


def submission(view: dict, answers: dict, user: str = "UOPS2", metadata: str | None = None) -> dict:
    state = submission_state(view, answers)
    return view_submission_payload(view["callback_id"], state, user_id=user,
                                   private_metadata=view["private_metadata"] if metadata is None else metadata)


# --------------------------------------------------------------------------- opening an incident with the form


@slack_only
async def test_the_open_form_opens_an_incident(drive):
    d = await start(drive)
    seen = await d.command("UOPS2", "/incident", "open")
    assert seen.one_line == FORM_SHOWN and seen.ephemeral
    view = opened_view(d, "incident.open_form")
    inputs = {block["block_id"]: block["element"] for block in view["blocks"]}
    assert list(inputs) == ["severity", "title", "services", "description"]
    assert [(o["value"], o["text"]["text"]) for o in inputs["severity"]["options"]] == [("P0", "P0 Critical"), ("P1", "P1 High"),
                                                                                       ("P2", "P2 Medium")]
    assert inputs["title"]["type"] == "plain_text_input" and inputs["title"]["max_length"] == 150
    assert [o["value"] for o in inputs["services"]["options"]] == ["database", "cache"]
    assert inputs["description"]["multiline"] is True
    assert json.loads(view["private_metadata"]) == {"channel": "C1"}
    # The bare command shows the form too.
    assert (await d.command("UOPS2", "/incident")).one_line == FORM_SHOWN
    assert len(d.slack.calls_to("views.open")) == 2

    # A bad title or severity keeps the modal open, the sentence under the field; nothing is opened.
    bad = [
        ({"severity": "P1", "title": "   "}, "title", "An incident needs a title"),
        ({"severity": "P1", "title": "🔥🔥 💥"}, "title", "A title needs words, not only symbols or emoji: say what is broken."),
        ({"severity": "P9", "title": "Checkout fails"}, "severity", "There is no severity 'P9'."),
        ({"severity": None, "title": "Checkout fails"}, "severity", "There is no severity ''."),
    ]
    for answers, field, sentence in bad:
        ack = await submit(d, submission(view, answers))
        assert ack["response_action"] == "errors" and list(ack["errors"]) == [field], ack
        assert ack["errors"][field].startswith(sentence)
    ack = await submit(d, submission(view, {"severity": "P1", "title": "Checkout fails"}, user="UNOBODY"))
    assert ack["response_action"] == "update"
    assert "You are not allowed to use this form: it needs a role in app.yaml; nothing was done." in json.dumps(ack["view"])
    assert await incident_count(d.bot) == 0

    answers = {"severity": "P1", "title": "Checkout returns 500", "services": ["cache"], "description": "Since 22:55, EU only"}
    assert await submit(d, submission(view, answers)) == {"response_action": "clear"}
    await d.settle()
    row = await incidents.get(d.bot.db, 1)
    assert (row.title, row.severity, row.services, row.description, row.opened_by) == (
        "Checkout returns 500", "P1", ["cache"], "Since 22:55, EU only", "UOPS2")
    assert row.opened_at == START and row.headline_channel == "C0INCIDENTS"
    [headline, told] = d.messages()  # the outcome also reaches the one who submitted, directly
    assert told.now.words.startswith("Opened INC-1 (P1): Checkout returns 500.")
    assert [c.args["users"] for c in d.slack.calls_to("conversations.open")] == ["UOPS2"]
    assert headline.ref == row.headline_ref and "INC-1 · P1 (High) · Checkout returns 500" in headline.now.words
    assert "Since 22:55, EU only" in headline.now.words and "Opened by @UOPS2" in headline.now.words
    assert await kinds(d.bot, 1) == ["opened"]

    # Slack refuses to show a form (the trigger_id lives 3 s): one sentence with what to type.
    d.slack.fail_next("views.open", "expired_trigger_id")
    seen = await d.command("UOPS2", "/incident", "open")
    assert seen.one_line == FORM_REFUSED and seen.ephemeral


@pytest.mark.parametrize("drive", ["console"], indirect=True)
async def test_the_console_says_what_to_type_instead_of_a_form(drive):
    d = await start(drive)
    for text in ("open", ""):
        seen = await d.command("UOPS1", "/incident", text)
        assert said(d, seen) == NO_FORMS_OPEN
    number = await open_incident(d, "P2 Cache is cold --service cache")
    seen = await d.click("UOPS1", "incident.update", str(number))
    assert said(d, seen) == f"Type /incident update {number} <what is happening now>."
    assert await incident_count(d.bot) == 1 and await kinds(d.bot, number) == ["opened"]


# --------------------------------------------------------------------------- the update form


@slack_only
async def test_the_update_form_posts_the_update(drive):
    d = await start(drive)
    number = await open_incident(d, "P2 Search is slow --service cache")
    seen = await d.click("UOPS3", "incident.update", str(number))
    assert seen.one_line == f"The form to post an update on INC-{number} is open."
    view = opened_view(d, "incident.update_form")
    assert view["title"]["text"] == f"Update INC-{number}" and view["private_metadata"] == str(number)

    ack = await submit(d, submission(view, {"text": "  "}, user="UOPS3"))
    assert ack == {"response_action": "errors", "errors": {"text": "An update needs text."}}
    d.bot.clock.advance(dt.timedelta(minutes=5))
    assert await submit(d, submission(view, {"text": "Reindexing, 40% done"}, user="UOPS3")) == {"response_action": "clear"}
    await d.settle()
    [update] = [e for e in await timeline(d.bot, number) if e.kind == "update"]
    assert (update.user_id, update.text, update.at) == ("UOPS3", "Reindexing, 40% done", START + dt.timedelta(minutes=5))
    posted = d.messages()[-1]
    assert f"INC-{number} P2 (Medium) update from @UOPS3" in posted.now.words and "Reindexing, 40% done" in posted.now.words
    # P2 has no status_updates: the incident's channel only.
    assert [c.args["channel"] for c in d.slack.calls_to("chat.postMessage")] == ["C0INCIDENTS", "C0INCIDENTS"]

    # A form naming no incident, or a resolved one, is answered in place of the form; nothing is posted.
    ack = await submit(d, submission(view, {"text": "x"}, metadata="99"))
    assert ack["response_action"] == "update" and "INC-99 does not exist; nothing was posted." in json.dumps(ack["view"])
    await d.command("UOPS1", "/incident", f"resolve {number}")
    ack = await submit(d, submission(view, {"text": "late news"}, user="UOPS3"))
    assert ack["response_action"] == "update" and f"INC-{number} was resolved by" in json.dumps(ack["view"])
    await d.settle()
    assert [e.text for e in await timeline(d.bot, number) if e.kind == "update"] == ["Reindexing, 40% done"]
    assert len(d.slack.calls_to("chat.postMessage")) == 2


# --------------------------------------------------------------------------- 📌


def pushpin(user: str, channel: str, ts: str, event_id: str, reaction: str = "pushpin") -> dict:
    return event_callback_payload(reaction_added_event(user, reaction, channel, ts), event_id=event_id)


@slack_only
async def test_a_pushpin_puts_the_message_on_the_timeline_once(drive):
    d = await start(drive, config(create_channels=True))
    number = await open_incident(d, "P1 Database is down --service cache")
    channel = (await incidents.get(d.bot.db, number)).channel_id
    posts = len([c for c in d.slack.calls if c.method.startswith("chat.")])
    ts = d.slack.add_message(channel, "UOPS3", "pool is full &amp; <@UOPS1|ana> is on it")
    body = pushpin("UOPS2", channel, ts, "Ev0PIN1")
    await send_event(d, body)
    await d.settle()
    await send_event(d, body, retry_attempt=1)  # Slack's retry of the same delivery
    await send_event(d, pushpin("UOPS1", channel, ts, "Ev0PIN2"))  # a second 📌 on the same message
    await d.settle()
    [pin] = [e for e in await timeline(d.bot, number) if e.kind == "pin"]
    # The message's own time and author; the text as the person wrote it.
    assert pin.at == dt.datetime.fromtimestamp(int(ts.split(".")[0]), dt.timezone.utc) and pin.at > START
    assert (pin.user_id, pin.text, pin.data) == ("UOPS3", "pool is full & UOPS1 is on it", {"pinned_by": "UOPS2", "ts": ts})
    assert len(d.slack.calls_to("conversations.history")) == 2  # the retry never ran
    seen = await d.command("UOPS1", "/incident", f"show {number}")
    assert "23:13  pin by @UOPS3: pool is full &amp; UOPS1 is on it" not in seen.words
    assert "23:13  pin by @UOPS3: pool is full & UOPS1 is on it" in seen.words

    # Another reaction, or a 📌 outside incident channels, does nothing.
    elsewhere = d.slack.add_message("C1", "UOPS3", "not an incident channel")
    await send_event(d, pushpin("UOPS2", channel, ts, "Ev0PIN3", reaction="eyes"))
    await send_event(d, pushpin("UOPS2", "C1", elsewhere, "Ev0PIN4"))
    await send_event(d, pushpin("UOPS2", channel, "1699999999.000100", "Ev0PIN5"))  # a message that is gone
    await d.settle()
    assert await kinds(d.bot, number) == ["opened", "channel", "pin"]
    assert len(d.slack.calls_to("conversations.history")) == 3
    assert len([c for c in d.slack.calls if c.method.startswith("chat.")]) == posts  # an event is answered to no one

    # A reply in a thread is not in the channel's history: it is read from its thread.
    reply = d.slack.add_message(channel, "UOPS1", "rolled back in the thread", thread_ts=ts)
    await send_event(d, pushpin("UOPS2", channel, reply, "Ev0PIN6"))
    await d.settle()
    threaded = [e for e in await timeline(d.bot, number) if e.kind == "pin"]
    assert [(e.user_id, e.text) for e in threaded] == [("UOPS3", "pool is full & UOPS1 is on it"), ("UOPS1", "rolled back in the thread")]


# --------------------------------------------------------------------------- channel names


@pytest.mark.parametrize("title, expected", [
    ("DB down!", "inc-42-db-down"),
    ("Zahlungen: 50% Fehler / checkout_v2 (EU)", "inc-42-zahlungen-50-fehler-checkout-v2-eu"),
    # Letters transliterated to ASCII (anyascii) before the slug is made; emoji and punctuation dropped.
    ("Café down", "inc-42-cafe-down"),
    ("Datenbank überlastet", "inc-42-datenbank-uberlastet"),
    ("Ошибка базы данных", "inc-42-oshibka-bazy-dannykh"),
    ("Checkout 💥 in Åre", "inc-42-checkout-in-are"),
    ("  ...!!!  ", "inc-42"),
])
def test_channel_names_follow_slacks_rules_for_any_title(title, expected):
    assert channel_name("inc", 42, title) == expected
    assert channel_name("inc", 42, title, attempt=1) == expected + "-2"


def test_a_long_odd_title_still_gives_a_valid_channel_name():
    title = ("Ünïcödé 💥 «quotes» & <tags> — " * 10)[:150]
    for attempt in range(5):
        name = channel_name("incident-channel", 123456789, title, attempt)
        assert SLACK_CHANNEL_NAME.fullmatch(name) and not name.endswith("-") and "--" not in name, name
        assert name.startswith("incident-channel-123456789-")
    assert len({channel_name("inc", 7, title, attempt) for attempt in range(5)}) == 5


def test_a_retry_after_name_taken_never_repeats_an_earlier_name():
    # Cut to 80 characters, the first retry of this title would drop "-2" and add "-2": the same name again.
    title = "Orders stuck in the payments queue since the database moved onto replica 2"
    first = "inc-1-orders-stuck-in-the-payments-queue-since-the-database-moved-onto-replica-2"
    assert channel_name("inc", 1, title) == channel_name("inc", 1, title, attempt=1) == first
    names = channel_names("inc", 1, title, 5)
    assert names[0] == first and len(set(names)) == 5
    assert names[1:] == [first[:-1] + str(n) for n in (3, 4, 5, 6)]
    assert all(SLACK_CHANNEL_NAME.fullmatch(name) for name in names)
    assert channel_names("inc", 42, "replica 2", 3) == ["inc-42-replica-2", "inc-42-replica-2-2", "inc-42-replica-2-3"]


def test_a_checklist_of_forty_steps_is_a_message_slack_accepts():
    longest = "/logs backend --grep " + "x" * 279  # the longest command a step may hold (300 characters after the name)
    steps = [PlaybookStep(text=f"Step {n} of the runbook " + "y" * 470, command=longest if n % 2 else None) for n in range(1, 41)]
    playbook = Playbook(title="Everything at once", steps=steps)
    incident = Incident(id=7, title="t", severity="P1", state=IncidentState.open, opened_by="UOPS1", opened_at=START)
    for ticked in ({}, {n: ("UOPS2", START) for n in range(1, 41, 3)}):
        blocks = to_slack(playbook_checklist(incident, "all", playbook, ticked, AppConfig())).blocks
        assert validate_blocks(blocks) == [] and len(blocks) <= 50
        shown = [(e["action_id"], e["value"]) for b in blocks if b["type"] == "actions" for e in b["elements"]]
        assert ("incident.tick_step", "7:39") in shown and ("incident.run_step", "7:39") in shown  # the last rows too
        assert len([a for a in shown if a[0] == "incident.tick_step"]) == 40 - len(ticked)


# --------------------------------------------------------------------------- done when: the postmortem from what the bot saw


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_the_postmortem_holds_the_actions_and_the_pins_of_the_incident(drive, service):  # noqa: F811 (fixture)
    """Opened from Slack with its channel, a guarded restart approved there and a message pinned
    there: the postmortem lists the restart with its requester, approver and result, and the pin."""
    d = await start(drive, restart_config(service) + incident_sections(create_channels=True, playbooks=RESTART_PLAYBOOK))
    number = await open_incident(d, "P1 The web service is down --service svc")
    d.channel = (await incidents.get(d.bot.db, number)).channel_id
    seen = await d.command("UOPS1", "/restart", "svc")
    request_id = int(re.search(r"Request #(\d+) is posted", seen.words).group(1))
    assert (await d.click("UOPS2", "action.approve", str(request_id))).one_line == f"Request #{request_id} succeeded."
    await d.settle()
    ts = d.slack.add_message(d.channel, "UOPS3", "the pool of svc was exhausted at 23:02")
    await send_event(d, pushpin("UOPS2", d.channel, ts, "Ev0PM1"))
    await d.settle()
    await d.command("UOPS1", "/incident", "resolve pool raised")

    seen = await d.command("UOPS1", "/incident", "postmortem")
    review = (await incidents.get(d.bot.db, number)).postmortem
    assert review.startswith(f"**Incident:** INC-{number} - The web service is down")
    assert "restart svc" in review and "<@UOPS1>" in review and "<@UOPS2>" in review and "succeeded" in review
    assert "the pool of svc was exhausted at 23:02" in review
    await d.slack.wait_for("files.completeUploadExternal")  # the upload ends after the answer is shown
    [upload] = d.slack.uploaded_files.values()
    assert upload.completed and upload.channel_id == d.channel and upload.data.decode() == review
