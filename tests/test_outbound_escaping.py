"""Every Web API method the bot calls with text carries hostile text as characters, not markup.

The Slack double reads every string the bot sends as Slack would (tests/slack_double.py,
`live_markup`): a live `<!channel>`-style special, a link, or a mention the bot did not place
is a violation, and tests/conftest.py fails any test that leaves one. Here hostile incident
titles, notes and a service's answer go through every method that carries text: the headline
and its pinned copy, the channel's topic, notifications, pages in the channel and by direct
message, updates, the postmortem upload (file title and comment), and modals (title, labels,
hints and options). Each test names the mentions the bot may place (`expect_mentions`), so a
`<@U0EVIL>` left live is caught even though it is well-formed.

Real components: the bot's own SQLite database, the Slack double over HTTP, and a local
aiohttp server playing a service whose /ready answer is hostile.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import re

import pytest
import pytest_asyncio
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from conftest import BOT_TOKEN, wait_until
from drivers import drive  # noqa: F401 (fixture)
from slack_double import MESSAGE, PARSED, PLAIN, live_markup
from test_incident_forms_events import opened_view, submission, submit

from bot.incident import service as incidents
from bot.pipeline.forms import Form, FormField
from bot.schedule import ManualClock
from bot.transport.blocks import MAX_TOPIC, WORD_JOINER, channel_topic, form_view, plain
from bot.transport.slack import SlackMessenger

START = dt.datetime(2023, 11, 14, 22, 0, tzinfo=dt.timezone.utc)
slack_only = pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)

# Every form Slack would make live, in one line a person could type as a title or a note.
HOSTILE = ("DB <!channel> <!here> <!everyone> <@U0EVIL> <#C0EVIL> <!subteam^S0EVIL> "
           "<http://evil.example|click> <mailto:x@e.example|x> <!date^1^{date}|May> a&b")  # 148: a title holds 150
FORMS = re.findall(r"<[^<>]*>", HOSTILE)
# What the bot places itself in these tests: requester, on-call, incident invitees, paged and notified groups, @here.
OURS = ("UOPS1", "UOPS2", "UONC1", "UCOMMS1", "S0LEADS", "S0NOTIFY", "here")

# A service whose /ready answers in Slack's markup.
READY = {
    "status": "<!channel> wake up",
    "checks": {"db": {"status": "<@U0EVIL> approve <https://evil.example|Approve restart>"}},
}


def slack_escaped(text: str) -> str:
    """What Slack sends for text a person typed: &, < and > as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def config(ready_port: int = 9) -> str:
    return f"""
version: 1
services:
  api:
    owners: [ops]
    checks:
      - kind: http
        url: http://127.0.0.1:{ready_port}/ready
        expect_json: {{status: healthy}}
        nested_checks: checks
roles:
  ops:
    users: [UOPS1, UOPS2]
oncall:
  primary:
    members: [UONC1]
    starts: 2023-11-13
severities:
  P1:
    aliases: [High]
    respond_within: 15m
    escalation:
      - rotation: primary
      - here: true
      - group: S0LEADS
    notify:
      - channel: C0STATUS
      - group: S0NOTIFY
      - role: ops
slack:
  incidents_channel: C0INCIDENTS
  ops_channel: C0OPS
incidents:
  create_channels: true
  invite: [UCOMMS1]
schedules:
  watch:
    cron: "0 * * * *"
    run: health
    services: [api]
    open_incident: P1
calendar:
  timezone: UTC
"""


@pytest_asyncio.fixture
async def ready_port():
    """A local service whose /ready answers READY (503); its port is yielded."""

    async def ready(request):
        return web.json_response(READY, status=503)

    app = web.Application()
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def text_calls(slack) -> dict[str, int]:
    """How many calls of each method that carries text the double saw (response_url posts as "response_url")."""
    counts: dict[str, int] = {}
    for call in slack.calls:
        counts[call.method] = counts.get(call.method, 0) + 1
    counts["response_url"] = len(slack.response_posts())
    return counts


async def pages_delivered(bot, number: int) -> int:
    return sum(1 for e in await incidents.timeline(bot.db, number) if e.kind == "ping" and e.data.get("delivered"))


async def escalate_through_every_level(d, number: int, levels: int = 3) -> None:
    """Run the scheduler until each level was paged: the on-call (channel and direct message), @here, the group."""
    for level in range(levels):
        if level:
            d.bot.clock.advance(dt.timedelta(minutes=15))
        d.bot.scheduler.start()
        # 60 s: on SQLite a pass can meet 'database is locked' while the timeline's background writes
        # run, and the scheduler tries again on its next pass; the page still goes out once.
        await wait_until(lambda level=level: _at_least(d.bot, number, level + 1), timeout=60)
        await d.bot.scheduler.stop()


async def _at_least(bot, number: int, count: int) -> bool:
    return await pages_delivered(bot, number) >= count


def assert_nothing_live(slack) -> None:
    assert slack.violations == [], "\n".join(slack.violations)


# --------------------------------------------------------------------------- a person's title and notes


@slack_only
async def test_a_hostile_title_and_note_stay_text_in_every_method_that_carries_them(drive, slack):
    slack.expect_mentions(*OURS)
    d = await drive(config(), clock=ManualClock(START))
    seen = await d.command("UOPS1", "/incident", f"open P1 {slack_escaped(HOSTILE)} --service api")
    number = int(re.search(r"Opened INC-(\d+) ", seen.words).group(1))
    row = await incidents.get(d.bot.db, number)
    title = " ".join(HOSTILE.split())
    assert row.title == title  # stored as typed: escaping belongs to the renderer

    # The topic: escaped once, as message text, and it reads as typed.
    record = slack.channels[row.channel_id]
    assert html.unescape(record["topic"]) == f"INC-{number} P1: {title}" and "&lt;!channel&gt;" in record["topic"]
    assert record["pins"], "the headline copy was not pinned"

    await escalate_through_every_level(d, number)
    await d.command("UOPS2", "/incident", f"update {number} {slack_escaped(HOSTILE)}")
    await d.command("UOPS1", "/incident", f"postmortem {number}")
    await d.settle()

    counts = text_calls(slack)
    for method in ("conversations.setTopic", "pins.add", "conversations.open", "chat.postMessage", "chat.update",
                   "files.completeUploadExternal", "response_url"):
        assert counts.get(method), f"{method} was never called: the test did not reach it ({counts})"
    direct = {c.args["channel"] for c in slack.calls_to("chat.postMessage") if str(c.args["channel"]).startswith("D")}
    assert direct, "no direct message (page, role notification) was sent"
    # The bot's own mentions are live where it placed them: the page to the on-call, @here, the group.
    posted = "\n".join(str(c.args.get("text", "")) for c in slack.calls_to("chat.postMessage"))
    assert "<@UONC1>" in posted and "<!here>" in posted and "<!subteam^S0LEADS>" in posted and "<!subteam^S0NOTIFY>" in posted
    # Every hostile form went out, as characters (the notification texts carry the title whole).
    for form in FORMS:
        assert slack_escaped(form) in posted, form
    headers = [b["text"]["text"] for c in slack.calls_to("chat.postMessage") for b in _blocks(c.args) if b["type"] == "header"]
    assert any(h.replace(WORD_JOINER, "").startswith(f"INC-{number}") and "<!channel>" in h.replace(WORD_JOINER, "")
               for h in headers), headers
    [upload] = [f for f in slack.uploaded_files.values() if f.filename.endswith("postmortem.md")]
    assert upload.completed and "&lt;!channel&gt;" in upload.data.decode()  # the review is mrkdwn: its title inert
    assert_nothing_live(slack)


def _blocks(args) -> list[dict]:
    raw = args.get("blocks")
    return json.loads(raw) if isinstance(raw, str) else list(raw or [])


# --------------------------------------------------------------------------- a service's answer


@pytest.mark.parametrize("drive", ["http"], indirect=True)
async def test_a_hostile_service_answer_stays_text_when_a_schedule_opens_an_incident(drive, slack, ready_port):
    """The schedule's red reading names the incident: the service's words reach its topic, headline and pages."""
    slack.expect_mentions(*OURS)
    d = await drive(config(ready_port), clock=ManualClock(START))
    seen = await d.command("UOPS1", "/schedule", "run watch")
    assert "Ran watch now" in seen.words, seen.words
    await d.settle()
    opened = await incidents.get(d.bot.db, 1)
    assert "<!channel> wake up" in opened.title
    assert html.unescape(slack.channels[opened.channel_id]["topic"]).startswith("INC-1 P1: ")
    assert "&lt;!channel&gt; wake up" in slack.channels[opened.channel_id]["topic"]
    await escalate_through_every_level(d, 1, levels=1)
    await d.settle()
    posted = "\n".join(str(c.args.get("text", "")) for c in slack.calls_to("chat.postMessage"))
    assert "&lt;!channel&gt; wake up" in posted and "<@UONC1>" in posted
    assert [c for c in slack.calls_to("chat.postMessage") if str(c.args["channel"]).startswith("D")], "no page by direct message"
    assert_nothing_live(slack)


# --------------------------------------------------------------------------- modals


@slack_only
async def test_the_open_form_and_its_submission_carry_a_hostile_title_as_text(drive, slack):
    """The form's options come from app.yaml; what is typed in it reaches the headline, the topic and the submitter's DM."""
    slack.expect_mentions(*OURS)
    d = await drive(config(), clock=ManualClock(START))
    assert (await d.command("UOPS2", "/incident", "open")).ephemeral
    view = opened_view(d, "incident.open_form")
    answers = {"severity": "P1", "title": HOSTILE, "services": ["api"], "description": HOSTILE}
    assert await submit(d, submission(view, answers)) == {"response_action": "clear"}
    await d.settle()
    row = await incidents.get(d.bot.db, 1)
    assert html.unescape(slack.channels[row.channel_id]["topic"]) == f"INC-1 P1: {' '.join(HOSTILE.split())}"
    dm = [c for c in slack.calls_to("chat.postMessage") if str(c.args["channel"]).startswith("D")]
    assert any("Opened INC-1 (P1): DB &lt;!channel&gt;" in str(c.args["text"]) for c in dm), [c.args["text"] for c in dm]
    assert_nothing_live(slack)


@slack_only
async def test_a_forged_submission_is_quoted_under_its_field_as_text(drive, slack):
    """A select's value comes back as sent: a forged one is quoted in the error shown under the field."""
    d = await drive(config(), clock=ManualClock(START))
    await d.command("UOPS2", "/incident", "open")
    view = opened_view(d, "incident.open_form")
    ack = await submit(d, submission(view, {"severity": "<!channel>", "title": "Checkout fails"}))
    assert ack["response_action"] == "errors", ack
    sentence = ack["errors"]["severity"]
    assert sentence.replace(WORD_JOINER, "").startswith("There is no severity '<!channel>'.")
    assert live_markup(sentence, PLAIN) == []


async def test_a_modal_with_hostile_title_labels_hints_and_options_reads_as_typed_and_holds_no_markup(slack):
    """Through the bot's messenger to the double's views.open: plain_text everywhere, markup nowhere."""
    form = Form("test.hostile", "<!channel> form", "<@U0EVIL>", (
        FormField("pick", "<!here> pick", "select", options=(("a", "<https://evil.example|Approve>"), ("b", "<!everyone>")),
                  initial="a", hint="<#C0EVIL> hint"),
        FormField("many", "<@U0EVIL> many", "multi_select", options=(("x", "<!subteam^S0EVIL>"),), initial="x"),
    ))
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    assert await SlackMessenger(client).open_form("T-1", form)
    [view] = slack.views.values()
    shown = [view["title"]["text"], view["submit"]["text"]]
    for block in view["blocks"]:
        shown += [block["label"]["text"], *([block["hint"]["text"]] if "hint" in block else [])]
        shown += [option["text"]["text"] for option in block["element"]["options"]]
    # Each reads as typed once the invisible word joiner is dropped (Slack shows plain_text as given).
    assert [text.replace(WORD_JOINER, "") for text in shown] == [
        "<!channel> form", "<@U0EVIL>", "<!here> pick", "<#C0EVIL> hint", "<https://evil.example|Approve>", "<!everyone>",
        "<@U0EVIL> many", "<!subteam^S0EVIL>"]
    assert view["blocks"][0]["element"]["initial_option"]["text"]["text"] == shown[4]  # still one of the options
    assert_nothing_live(slack)


# --------------------------------------------------------------------------- the renderer's field kinds


def test_a_topic_is_escaped_once_and_cut_to_slacks_limit_without_splitting_an_entity():
    title = "INC-7 P1: " + "<&>" * 100  # 310 characters as typed, 1,210 escaped
    topic = channel_topic(title)
    assert len(topic) <= MAX_TOPIC and topic.endswith("…")
    assert re.fullmatch(r"INC-7 P1: (&lt;&amp;&gt;)*(&lt;|&lt;&amp;)?…", topic), topic
    assert title.startswith(html.unescape(topic[:-1]))
    assert channel_topic("a & b <!here>") == "a &amp; b &lt;!here&gt;"


def test_plain_text_reads_as_typed_and_cannot_form_markup():
    for form in FORMS:
        neutral = plain(form)
        assert neutral.replace(WORD_JOINER, "") == form and live_markup(neutral, PLAIN) == []
    assert plain("a&b &amp;") == "a&b &amp;"  # plain_text decodes no entity: nothing to escape there
    view = form_view(Form("t", HOSTILE[:24], "Go", (FormField("f", HOSTILE, "text"),)))
    assert live_markup(view["title"]["text"], PLAIN) == [] and live_markup(view["blocks"][0]["label"]["text"], PLAIN) == []


# --------------------------------------------------------------------------- the double's rule itself


def test_the_rule_tells_the_bots_mentions_from_carried_over_markup():
    ours = frozenset({"UOPS1", "S0LEADS", "here", "C0INC"})
    assert live_markup("Paging <@UOPS1> <!subteam^S0LEADS> <!here> in <#C0INC>; a &lt;!channel&gt;", MESSAGE, ours) == []
    for form in FORMS:
        assert live_markup(f"x {form} y", MESSAGE, ours - {"here"}), f"{form} was not caught in message text"
    # A test that lets the bot page @here cannot tell a carried-over <!here> by its look: it checks the words
    # went out escaped (as test_a_hostile_title_and_note_stay_text_in_every_method_that_carries_them does).
    assert live_markup("x <!here> y", MESSAGE, ours) == []
    # Without expect_mentions any well-formed mention may be the bot's; specials, labels and links never are.
    assert live_markup("<@U0EVIL> <!here> <!subteam^S1>", MESSAGE) == []
    assert len(live_markup("<!channel> <@U1|x> <http://e|c> <https://e> <mailto:a@b> <@bad id>", MESSAGE)) == 6
    # A topic holds no mention of the bot's at all; neither does plain_text, and the renderer's neutral form passes.
    assert live_markup("INC-1 <@UOPS1>", PARSED, ours) and live_markup("INC-1 <@UOPS1>", PLAIN, ours)
    assert live_markup("raw <b>", PARSED) and live_markup("raw <b>", PLAIN) == []


async def test_the_double_records_what_slack_would_make_live_in_each_method(slack):
    """Calls made with hostile text on purpose (not the bot's code): each one is recorded, then forgiven here."""
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    slack.expect_mentions("UOPS1")
    await client.chat_postMessage(channel="C0X", text="hi <@UOPS1>", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": "<@U0EVIL>"}},
        {"type": "header", "text": {"type": "plain_text", "text": "<!channel>"}}])
    await client.conversations_setTopic(channel="C0X", topic="INC-1 <http://evil.example|click>")
    await client.files_upload_v2(channel="C0X", content="x", filename="x.txt", title="<!here> title", initial_comment="<!everyone>")
    await client.views_open(trigger_id="T-1", view={"type": "modal", "title": {"type": "plain_text", "text": "<@U0EVIL>"},
                                                    "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "ok"}}]})
    found, slack.violations[:] = list(slack.violations), []
    where = [line.split(":", 1)[0] for line in found]
    assert where == ["chat.postMessage /blocks/0/text/text", "chat.postMessage /blocks/1/text/text", "conversations.setTopic topic",
                     "files.completeUploadExternal initial_comment", "files.completeUploadExternal files/0/title",
                     "views.open /view/title/text"], found
