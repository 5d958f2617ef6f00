"""Incidents through the three transports: /incident, the headline's buttons, playbooks, incident channels.

Each test takes the `drive` fixture (tests/drivers.py), so it runs over signed Slack HTTP,
Socket Mode and the console unless it is parametrized to Slack only; time is a ManualClock
that starts at 2023-11-14 22:00 UTC, shown as 23:00 CET (calendar.timezone Europe/Berlin).
What is asserted is what people see (the answer, the messages the bot posted and edited)
and what the bot's database holds (the incident row, its timeline). The lifecycle and the
concurrent resolve also run on the session's PostgreSQL database, where incident numbers
are not known in advance. Forms, the 📌 event and what Slack accepts of channel names and
checklists: tests/test_incident_forms_events.py.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from conftest import wait_until
from drivers import drive  # noqa: F401 (fixture)
from test_action_transports import restart_config, service  # noqa: F401 (module fixture: a busybox httpd container)

from action_helpers import request_rows, state_of
from bot.audit import service as audit
from bot.incident import service as incidents
from bot.incident.models import Incident, TimelineEntry
from bot.incident.opening import channel_name
from bot.pipeline.messenger import Click
from bot.schedule import ManualClock
from bot.schedule.models import JobState, ScheduledJob

START = dt.datetime(2023, 11, 14, 22, 0, tzinfo=dt.timezone.utc)  # 23:00 CET
BERLIN = ZoneInfo("Europe/Berlin")
SLACK_CHANNEL_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")
HEADLINE_BUTTONS = ["incident.ack", "incident.update", "incident.escalate", "incident.resolve"]

SERVICES = """
version: 1
services:
  database:
    checks:
      - kind: postgres
        dsn: postgresql://postgres@127.0.0.1:5432/test
  cache:
    checks:
      - kind: redis
        url: redis://127.0.0.1:6379/0
roles:
  ops:
    users: [UOPS1, UOPS2, UOPS3]
"""
PLAYBOOKS = """
playbooks:
  db-down:
    title: Database connection failure
    services: [database]
    steps:
      - text: Check the database
        command: /health database
      - text: Tell support
"""
RESTART_PLAYBOOK = """
playbooks:
  svc-down:
    title: The web service is down
    services: [svc]
    steps:
      - text: Restart it
        command: /restart svc
"""


def incident_sections(*, create_channels: bool = False, playbooks: str = PLAYBOOKS) -> str:
    return f"""
oncall:
  primary:
    members: [UONC1, UONC2]
    starts: 2023-11-13
severities:
  P0:
    aliases: [Critical]
    respond_within: 15m
    escalation:
      - rotation: primary
      - users: [ULEAD1]
    status_updates: true
  P1:
    aliases: [High]
    respond_within: 1h
    escalation:
      - rotation: primary
      - users: [ULEAD1]
    status_updates: true
  P2:
    aliases: [Medium]
    respond_within: 4h
    escalation:
      - rotation: primary
{playbooks}
slack:
  incidents_channel: C0INCIDENTS
incidents:
  status_channel: C0STATUS
  create_channels: {str(create_channels).lower()}
  invite: [UCOMMS1]
calendar:
  timezone: Europe/Berlin
"""


def config(**options) -> str:
    return SERVICES + incident_sections(**options)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request):
    """None (the bot's own SQLite file) or the session's PostgreSQL database."""
    return request.getfixturevalue("pg_database_url") if request.param == "postgres" else None


async def start(drive, config_text: str | None = None, database: str | None = None):
    return await drive(config_text or config(), database, clock=ManualClock(START))


def said(d, seen) -> str:
    """The answer to the one who typed or pressed, as one line (the console prints posted messages before it)."""
    if d.name == "console":
        text = d.lines[-1][-1].strip()
        assert text and "\n" not in text, text
        return text
    return seen.one_line


async def open_incident(d, text: str, user: str = "UOPS1") -> int:
    seen = await d.command(user, "/incident", f"open {text}")
    match = re.search(r"Opened INC-(\d+) \(", said(d, seen))
    assert match, seen.words
    return int(match.group(1))


def message(d, ref: str):
    [found] = [m for m in d.messages() if m.ref == ref]
    return found


async def headline(d, number: int):
    return message(d, (await incidents.get(d.bot.db, number)).headline_ref)


def buttons(seen) -> list[str]:
    return [action for action, _ in seen.buttons]


async def timeline(bot, number: int) -> list[TimelineEntry]:
    return await incidents.timeline(bot.db, number)


async def kinds(bot, number: int) -> list[str]:
    return [e.kind for e in await timeline(bot, number)]


async def delivered_ping(bot, number: int) -> bool:
    return any(e.kind == "ping" and e.data.get("delivered") for e in await timeline(bot, number))


async def pending_pings(bot, number: int) -> int:
    query = select(func.count()).select_from(ScheduledJob).where(
        ScheduledJob.key.startswith(f"incident.ping:{number}:"), ScheduledJob.state == JobState.pending)
    async with bot.db.sessions() as session:
        return (await session.execute(query)).scalar_one()


async def incident_count(bot) -> int:
    async with bot.db.sessions() as session:
        return (await session.execute(select(func.count()).select_from(Incident))).scalar_one()


def advance(d, minutes: int) -> None:
    d.bot.clock.advance(dt.timedelta(minutes=minutes))


# --------------------------------------------------------------------------- the lifecycle, typed


async def test_the_lifecycle_typed_with_the_incident_number(drive, database):
    d = await start(drive, database=database)
    number = await open_incident(d, "P1 Payments failing --service cache")
    row = await incidents.get(d.bot.db, number)
    # Stored in UTC, shown in calendar.timezone.
    assert row.opened_at == START and row.opened_at.utcoffset() == dt.timedelta(0)
    assert (row.severity, row.state.value, row.services, row.playbook, row.opened_by) == ("P1", "open", ["cache"], None, "UOPS1")
    assert row.headline_channel == "C0INCIDENTS" and row.channel_id is None
    [posted] = d.messages()
    assert posted.ref == row.headline_ref
    assert f"INC-{number} · P1 (High) · Payments failing" in posted.now.words
    assert "Open, not acknowledged yet" in posted.now.words and "Services: cache" in posted.now.words
    assert "Opened by @UOPS1 at 2023-11-14 23:00 CET" in posted.now.words
    assert posted.now.buttons == [(action, str(number)) for action in HEADLINE_BUTTONS]
    if d.name != "console":
        assert [c.args["channel"] for c in d.slack.calls_to("chat.postMessage")] == ["C0INCIDENTS"]
    assert await pending_pings(d.bot, number) > 0

    # The first level is paged at once: the scheduler runs it and puts it on the timeline.
    d.bot.scheduler.start()
    await wait_until(lambda: delivered_ping(d.bot, number))
    await d.bot.scheduler.stop()
    [ping] = [e for e in await timeline(d.bot, number) if e.kind == "ping"]
    assert ping.text == "Paged on-call (primary)" and ping.data["to"] == ["@UONC1"] and ping.data["delivered"]

    advance(d, 3)
    seen = await d.command("UOPS2", "/incident", f"ack {number}")
    assert said(d, seen) == f"INC-{number} acknowledged by @UOPS2 after 3m; escalation stopped."
    now = (await headline(d, number)).now
    assert "Acknowledged by @UOPS2 at 2023-11-14 23:03 CET" in now.words
    assert buttons(now) == HEADLINE_BUTTONS[1:]  # Acknowledge is gone
    assert await pending_pings(d.bot, number) == 0

    advance(d, 1)
    before = len(d.messages())
    seen = await d.command("UOPS2", "/incident", f"update {number} rolled back the deploy")
    assert said(d, seen) == f"Update posted to INC-{number} and the status channel."
    updates = d.messages()[before:]
    assert len(updates) == 2 and all(f"INC-{number} P1 (High) update from @UOPS2" in u.now.words for u in updates)
    assert all("rolled back the deploy" in u.now.words for u in updates)
    if d.name != "console":
        assert [c.args["channel"] for c in d.slack.calls_to("chat.postMessage")][-2:] == ["C0INCIDENTS", "C0STATUS"]

    advance(d, 1)
    seen = await d.command("UOPS2", "/incident", f"severity INC-{number} critical")
    assert said(d, seen) == f"INC-{number} is now P0 (was P1); escalation re-planned from now."
    assert f"INC-{number} · P0 (Critical) · Payments failing" in (await headline(d, number)).now.words
    advance(d, 1)
    seen = await d.command("UOPS2", "/incident", f"role {number} commander <@UOPS3|cara>")
    assert said(d, seen) == f"@UOPS3 is INC-{number}'s commander."
    assert "Commander: @UOPS3" in (await headline(d, number)).now.words
    advance(d, 1)
    assert said(d, await d.command("UOPS3", "/incident", f"note {number} root cause: pool exhausted")) == f"Noted on INC-{number}'s timeline."
    seen = await d.command("UOPS3", "/incident", f"followup inc-{number} add a pool alarm <@UOPS2>")
    assert said(d, seen) == f"Follow-up 1 recorded on INC-{number}; the postmortem lists it."
    seen = await d.command("UOPS3", "/incident", f"followup {number} store times in UTC")  # UTC is no owner
    assert said(d, seen) == f"Follow-up 2 recorded on INC-{number}; the postmortem lists it."
    seen = await d.command("UOPS3", "/incident", f"role {number} comms @UOPS1")  # @U123 as typed on the console
    assert said(d, seen) == f"@UOPS1 is INC-{number}'s comms."
    seen = await d.command("UOPS3", "/incident", f"escalate {number} nobody from the database team")
    assert said(d, seen) == f"INC-{number} escalated to level 2, ULEAD1."

    seen = await d.command("UOPS1", "/incident", "list")
    assert (f"INC-{number} P0 (Critical) acknowledged · Payments failing · opened 2023-11-14 23:00 CET · commander @UOPS3"
            in seen.words)
    advance(d, 5)
    seen = await d.command("UOPS1", "/incident", f"resolve {number} pool resized")
    assert said(d, seen) == f"INC-{number} resolved after 12m. /incident postmortem {number} writes the review."
    now = (await headline(d, number)).now
    assert "Resolved by @UOPS1 at 2023-11-14 23:12 CET: pool resized" in now.words and now.buttons == []
    assert f"INC-{number} " not in (await d.command("UOPS1", "/incident", "list")).words
    assert f"INC-{number} P0 (Critical) resolved" in (await d.command("UOPS1", "/incident", "list --all")).words

    advance(d, 2)
    seen = await d.command("UOPS1", "/incident", f"reopen {number}")
    assert said(d, seen) == f"INC-{number} is open again; escalation starts over at its first level."
    assert buttons((await headline(d, number)).now) == HEADLINE_BUTTONS
    assert await pending_pings(d.bot, number) > 0

    seen = await d.command("UOPS1", "/incident", f"postmortem {number}")
    where = "#C0INCIDENTS" if d.name == "console" else "<#C0INCIDENTS>"
    sentence = f"Postmortem draft for INC-{number}, from its timeline, is in {where}: fill in root cause, impact and lessons."
    row = await incidents.get(d.bot.db, number)
    assert row.postmortem.startswith(f"**Incident:** INC-{number} - Payments failing") and row.postmortem_at == START + dt.timedelta(minutes=14)
    assert "1. add a pool alarm" in row.postmortem
    if d.name == "console":
        assert sentence in seen.words and f"--- INC-{number}-postmortem.md ---" in seen.words
        assert row.postmortem.splitlines()[0] in seen.words
    else:
        # Typed in C1: the file goes to the incident's channel (with none of its own, the incidents channel);
        # the answer says where, to the one who asked.
        assert seen.one_line == sentence and seen.ephemeral is True
        await d.settle()  # the file goes up after the answer
        [upload] = d.slack.uploaded_files.values()
        assert upload.filename == f"INC-{number}-postmortem.md" and upload.completed and upload.channel_id == "C0INCIDENTS"
        assert upload.data.decode() == row.postmortem

    seen = await d.command("UOPS1", "/incident", f"show {number}")
    for line in ("Timeline (Europe/Berlin)", "23:00  opened by @UOPS1: Payments failing", "23:03  acknowledged by @UOPS2: after 3m",
                 "23:04  update by @UOPS2: rolled back the deploy", "23:05  severity by @UOPS2: P1 to P0",
                 "23:07  note by @UOPS3: root cause: pool exhausted", "23:12  resolved by @UOPS1: pool resized",
                 "23:14  reopened by @UOPS1", "Follow-ups", "1. add a pool alarm (@UOPS2)\n2. store times in UTC"):
        assert line in seen.words, (line, seen.words)
    assert await kinds(d.bot, number) == ["opened", "ping", "acknowledged", "update", "severity", "role", "note", "followup",
                                          "followup", "role", "escalated", "resolved", "reopened", "postmortem"]
    assert [(f.text, f.owner) for f in await incidents.followups(d.bot.db, number)] == [("add a pool alarm", "UOPS2"),
                                                                                       ("store times in UTC", None)]
    entries = await timeline(d.bot, number)
    assert all(e.at.utcoffset() == dt.timedelta(0) for e in entries)
    assert [e.at for e in entries if e.kind == "resolved"] == [START + dt.timedelta(minutes=12)]



# --------------------------------------------------------------------------- the headline's buttons


async def test_the_headline_buttons(drive):
    d = await start(drive)
    number = await open_incident(d, "P1 Checkout is slow --service cache")
    advance(d, 2)
    seen = await d.click("UOPS2", "incident.ack", str(number))
    assert said(d, seen) == f"INC-{number} acknowledged by @UOPS2 after 2m; escalation stopped."
    await d.settle()
    assert await pending_pings(d.bot, number) == 0
    redrawn = (await headline(d, number)).now
    assert "Acknowledged by @UOPS2 at 2023-11-14 23:02 CET" in redrawn.words and buttons(redrawn) == HEADLINE_BUTTONS[1:]
    # A second Acknowledge (an older copy of the message) says who was first and changes nothing.
    seen = await d.click("UOPS3", "incident.ack", str(number))
    assert said(d, seen) == f"INC-{number} was already acknowledged by @UOPS2 at 2023-11-14 23:02 CET."
    assert (await kinds(d.bot, number)).count("acknowledged") == 1

    seen = await d.click("UOPS3", "incident.update", str(number))
    if d.name == "console":
        assert said(d, seen) == f"Type /incident update {number} <what is happening now>."
    else:
        assert said(d, seen) == f"The form to post an update on INC-{number} is open."
        [opened] = d.slack.calls_to("views.open")
        assert opened.ok and opened.args["view"]["callback_id"] == "incident.update_form"
        assert opened.args["view"]["private_metadata"] == str(number)

    seen = await d.click("UOPS3", "incident.escalate", str(number))
    assert said(d, seen) == f"INC-{number} escalated to level 2, ULEAD1."
    assert [e.data for e in await timeline(d.bot, number) if e.kind == "escalated"] == [{"level": 1}]
    assert await pending_pings(d.bot, number) > 0  # the forced page of level 2

    # Someone without a role is refused, and nothing changes.
    seen = await d.click("UNOBODY", "incident.resolve", str(number))
    assert said(d, seen) == "You are not allowed to press this button: it needs a role in app.yaml; nothing was done."
    assert (await incidents.get(d.bot.db, number)).state.value == "acknowledged"

    advance(d, 8)
    seen = await d.click("UOPS1", "incident.resolve", str(number))
    assert said(d, seen) == f"INC-{number} resolved after 10m. /incident postmortem {number} writes the review."
    await d.settle()
    redrawn = (await headline(d, number)).now
    assert "Resolved by @UOPS1 at 2023-11-14 23:10 CET" in redrawn.words and redrawn.buttons == []
    assert await pending_pings(d.bot, number) == 0
    assert await kinds(d.bot, number) == ["opened", "acknowledged", "escalated", "resolved"]


async def test_two_people_resolving_at_once_give_one_resolution(drive, database):
    d = await start(drive, database=database)
    number = await open_incident(d, "P2 Search results are stale --service cache")
    where = "console" if d.name == "console" else "C0INCIDENTS"
    transport = "console" if d.name == "console" else "slack"
    for attempt in range(3):
        advance(d, 1)
        presses = [Click(user, "incident.resolve", str(number), where, transport) for user in ("UOPS1", "UOPS2")]
        replies = await asyncio.gather(*(d.bot.handle_click(press) for press in presses))
        won = [r for r in replies if r.text.startswith(f"INC-{number} resolved after")]
        lost = [r for r in replies if r not in won]
        assert len(won) == 1 and len(lost) == 1, [r.text for r in replies]
        row = await incidents.get(d.bot.db, number)
        assert row.state.value == "resolved" and row.resolved_by in ("UOPS1", "UOPS2")
        assert lost[0].text == (f"INC-{number} was resolved by <@{row.resolved_by}> at {row.resolved_at.astimezone(BERLIN):%Y-%m-%d %H:%M} CET; "
                                f"there is nothing to resolve. /incident reopen {number} reopens it.")
        assert "\n" not in lost[0].text and lost[0].ephemeral
        assert (await kinds(d.bot, number)).count("resolved") == attempt + 1
        await d.command("UOPS3", "/incident", f"reopen {number}")
    assert (await kinds(d.bot, number)).count("reopened") == 3


# --------------------------------------------------------------------------- bad input


async def test_bad_input_is_one_sentence_and_changes_nothing(drive):
    d = await start(drive)
    number = await open_incident(d, "P2 Old incident --service cache")
    await d.command("UOPS1", "/incident", f"resolve {number}")
    entries = len(await timeline(d.bot, number))
    missing = number + 1
    cases = [
        ("UOPS1", "open P9 Database down", "There is no severity 'P9'. Severities: P0 (Critical), P1 (High), P2 (Medium)."),
        ("UOPS1", "open P1", "An incident needs a title: /incident open P1 <title> [--service S] [--playbook NAME]."),
        ("UOPS1", "open P1 --service cache", "An incident needs a title: /incident open P1 <title> [--service S] [--playbook NAME]."),
        # 10 KB of title (5,120 two-byte letters): the grammar's bound answers before anything else.
        ("UOPS1", "open P1 " + "ü" * 5120, "That is 5,128 characters of arguments; commands take at most 2,000. Usage: /incident open"),
        ("UOPS1", "open P1 " + "x" * 151, "A title is at most 150 characters and this one has 151; put the details in an update."),
        ("UOPS1", "open P1 🔥🔥🔥 💥 !!!", "A title needs words, not only symbols or emoji: say what is broken."),
        ("UOPS1", "open P1 DB down --service nosuch", "Unknown service 'nosuch'. Services: database, cache."),
        ("UOPS1", "open P1 DB down --playbook nosuch", "There is no playbook 'nosuch'. Playbooks: db-down."),
        ("UOPS1", "open P1 DB down --force", "Unknown option '--force'. /incident open takes --service and --playbook."),
        ("UOPS1", f"ack {missing}", f"INC-{missing} does not exist. /incident list shows the open ones."),
        ("UOPS1", f"show INC-{missing}", f"INC-{missing} does not exist. /incident list shows the open ones."),
        ("UOPS1", "ack", "Which incident? Give its number, e.g. /incident ack 42, or run the command in the incident's own channel."),
        ("UOPS1", f"ack {number}", f"INC-{number} was resolved by @UOPS1 at 2023-11-14 23:00 CET; there is nothing to acknowledge. "
                                   f"/incident reopen {number} reopens it."),
        ("UOPS1", f"update {number} all good", f"INC-{number} was resolved by @UOPS1"),
        ("UOPS1", f"role {number} commander bob", "'bob' is not a Slack user: mention them with @ so Slack fills in who they are."),
        ("UOPS1", f"role {number} boss <@UOPS2>", "Usage: /incident role commander|comms @user"),
        ("UOPS1", f"severity {number} P9", "There is no severity 'P9'. Severities: P0, P1, P2."),
        ("UOPS1", f"note {number}", f"/incident note needs text, e.g. /incident note {number} rolled back the deploy."),
        ("UOPS1", "frobnicate 1", "There is no /incident frobnicate. Usage: /incident open <severity> <title>"),
        ("UOPS1", "list everything", "Usage: /incident list [--all]"),
        ("UNOBODY", f"show {number}", "You are not allowed to run /incident: it needs a role in app.yaml."),
        ("UNOBODY", "open P1 Database down", "You are not allowed to run /incident: it needs a role in app.yaml."),
    ]
    versions = [len(m.versions) for m in d.messages()]
    for user, text, expected in cases:
        seen = await d.command(user, "/incident", text)
        line = said(d, seen)
        assert line.startswith(expected), (text[:40], line)
        assert seen.ephemeral is (None if d.name == "console" else True) and len(line) < 600, text[:40]
        assert await incident_count(d.bot) == 1, text[:40]
        assert len(await timeline(d.bot, number)) == entries, text[:40]
    await d.settle()
    assert [len(m.versions) for m in d.messages()] == versions  # nothing was posted or edited for any of them


# --------------------------------------------------------------------------- incident channels (Slack)


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_an_incident_gets_its_own_channel(drive):
    d = await start(drive, config(create_channels=True))
    title = ("Zahlungen «EU»: 50% Fehler — Ünïcode & <tags> / checkout_v2!!! " * 3)[:150]
    taken = channel_name("inc", 1, title)
    d.slack.channels["C0TAKEN"] = {"name": taken, "topic": "", "members": {"UBOT"}, "pins": [], "is_private": False}
    number = await open_incident(d, f"High {title} --service cache --playbook db-down", user="UOPS2")
    assert number == 1
    row = await incidents.get(d.bot.db, number)
    channel = row.channel_id
    created = d.slack.calls_to("conversations.create")
    assert [c.response.get("error") for c in created] == ["name_taken", None] and created[0].args["name"] == taken
    name = created[1].args["name"]
    assert SLACK_CHANNEL_NAME.fullmatch(name) and name != taken and name.startswith("inc-1-zahlungen-eu-50-fehler")
    record = d.slack.channels[channel]
    assert record["name"] == name and not record["is_private"]
    # The requester, the on-call of the first level (rotation primary) and incidents.invite.
    assert record["members"] == {"UBOT", "UOPS2", "UONC1", "UCOMMS1"}
    # The topic is escaped as message text (Slack announces it in the channel): it reads as the title.
    assert len(record["topic"]) <= 250 and html.unescape(record["topic"]) == f"INC-1 P1: {' '.join(title.split())}"
    assert "&amp; &lt;tags&gt;" in record["topic"]
    # The headline, posted there and pinned; the one in the incidents channel links to the channel.
    [copy, checklist] = [m for m in d.messages() if m.ref.startswith(channel + ":")]  # the playbook goes there too
    assert record["pins"] == [copy.ref.split(":", 1)[1]]
    assert "Playbook for INC-1: Database connection failure" in checklist.now.words
    assert copy.now.buttons == [(action, "1") for action in HEADLINE_BUTTONS]
    assert f"channel <#{channel}>" in (await headline(d, number)).now.words
    first = d.slack.calls_to("chat.postMessage")[0].args["text"]  # the title is text: escaped, never markup
    assert "&amp; &lt;tags&gt;" in first and "<tags>" not in first
    assert [e.kind for e in await timeline(d.bot, number)] == ["opened", "channel", "playbook"]

    # Inside its channel the incident is implied; a number there that is not this incident's is text.
    d.channel = channel
    seen = await d.command("UOPS1", "/incident", "ack")
    assert seen.one_line == "INC-1 acknowledged by @UOPS1 after 0m; escalation stopped."
    for shown in (copy.ref, row.headline_ref):  # both copies redrawn: no Acknowledge left anywhere
        assert buttons(message(d, shown).now) == HEADLINE_BUTTONS[1:], shown
    seen = await d.command("UOPS1", "/incident", "update 3 replicas are down")
    assert seen.one_line == "Update posted to INC-1 and the status channel."
    seen = await d.command("UOPS1", "/incident", "update 1 failing over")  # this incident's own number
    assert seen.one_line == "Update posted to INC-1 and the status channel."
    assert [e.text for e in await timeline(d.bot, number) if e.kind == "update"] == ["3 replicas are down", "failing over"]
    seen = await d.command("UOPS1", "/incident", "show")
    assert "INC-1 · P1 (High)" in seen.words and "update by @UOPS1: 3 replicas are down" in seen.words
    d.channel = "C1"
    seen = await d.command("UOPS1", "/incident", "ack")
    assert seen.one_line.startswith("Which incident?")


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_channel_that_cannot_be_made_does_not_stop_the_incident(drive):
    d = await start(drive, config(create_channels=True))
    d.slack.fail_next("conversations.create", "restricted_action")
    seen = await d.command("UOPS1", "/incident", "open P1 Database is down --service cache")
    assert "Opened INC-1 (P1): Database is down." in seen.words
    assert "Not done: the incident channel was not created (restricted_action)." in seen.words
    row = await incidents.get(d.bot.db, 1)
    assert row.channel_id is None and row.headline_ref and await pending_pings(d.bot, 1) > 0


# --------------------------------------------------------------------------- playbooks


async def test_a_playbook_checklist_done_and_run(drive):
    d = await start(drive)
    number = await open_incident(d, "P1 Database is down --service database")  # suggested by the playbook's services
    row = await incidents.get(d.bot.db, number)
    assert row.playbook == "db-down"
    [_, checklist] = d.messages()
    assert "Playbook for INC-1: Database connection failure" in checklist.now.words
    assert "[ ] 1. Check the database  /health database" in checklist.now.words.replace("`", "")
    assert checklist.now.buttons == [("incident.run_step", "1:1"), ("incident.tick_step", "1:1"), ("incident.tick_step", "1:2")]
    if d.name != "console":
        assert d.slack.calls_to("chat.postMessage")[1].args["channel"] == "C0INCIDENTS"  # no channel of its own: the headline's

    advance(d, 4)
    seen = await d.click("UOPS2", "incident.tick_step", "1:2")
    assert said(d, seen) == "Step 2 of INC-1's playbook is done, on the timeline."
    redrawn = message(d, checklist.ref).now
    assert "[x] 2. Tell support (@UOPS2 23:04)" in redrawn.words and "1 of 2 steps done" in redrawn.words
    assert redrawn.buttons == [("incident.run_step", "1:1"), ("incident.tick_step", "1:1")]
    seen = await d.click("UOPS3", "incident.tick_step", "1:2")
    assert said(d, seen) == "Step 2 of INC-1's playbook was already ticked; nothing changed."
    [step] = [e for e in await timeline(d.bot, number) if e.kind == "step"]
    assert (step.user_id, step.text, step.at) == ("UOPS2", "Step 2 done: Tell support", START + dt.timedelta(minutes=4))

    # Run sends the step's command through the pipeline, as if the one who pressed had typed it.
    seen = await d.click("UNOBODY", "incident.run_step", "1:1")
    assert said(d, seen) == "You are not allowed to press this button: it needs a role in app.yaml; nothing was done."
    seen = await d.click("UOPS3", "incident.run_step", "1:1")
    assert "Health: OK (1 ok)" in seen.words and "database" in seen.words
    [run] = [e for e in await timeline(d.bot, number) if e.kind == "step_run"]
    assert (run.user_id, run.text, run.data) == ("UOPS3", "Ran step 1: /health database (ok)", {"step": 1, "outcome": "ok"})
    for value, sentence in (("1:9", "INC-1 has no playbook step 9 (app.yaml may have changed); nothing was done."),
                            ("7:1", "INC-7 does not exist; nothing was done."),
                            ("1:x", "That button does not name a playbook step; nothing was done.")):
        for action in ("incident.run_step", "incident.tick_step"):  # a stale or forged button
            reply = await d.bot.handle_click(Click("UOPS3", action, value, d.channel, "console" if d.name == "console" else "slack"))
            assert reply.text == sentence, (action, value)
    assert (await kinds(d.bot, number)).count("step_run") == 1 and (await kinds(d.bot, number)).count("step") == 1
    ticks = [(r.user_id, r.arguments, r.outcome) for r in reversed(await audit.entries(d.bot.db, 100)) if r.command == "incident.tick_step"]
    assert ticks == [("UOPS2", "1:2", "ok"), ("UOPS3", "1:2", "ok"), ("UOPS3", "1:9", "usage_error"), ("UOPS3", "7:1", "usage_error"),
                     ("UOPS3", "1:x", "usage_error")]

    # --playbook names it whatever the services.
    other = await open_incident(d, "P2 Cache misses --service cache --playbook db-down")
    assert (await incidents.get(d.bot.db, other)).playbook == "db-down"
    assert "Playbook for INC-2: Database connection failure" in d.messages()[-1].now.words
    assert (await incidents.get(d.bot.db, await open_incident(d, "P2 Cache is cold --service cache"))).playbook is None


async def test_running_a_restart_step_still_needs_a_second_person(drive, service):  # noqa: F811 (fixture)
    d = await start(drive, restart_config(service) + incident_sections(playbooks=RESTART_PLAYBOOK))
    before = service.started_at()
    number = await open_incident(d, "P1 The web service is down --service svc")
    assert (await incidents.get(d.bot.db, number)).playbook == "svc-down"
    # The command's own roles apply: a viewer may press Run, and /restart refuses them.
    seen = await d.click("UVIEW1", "incident.run_step", f"{number}:1")
    assert said(d, seen) == "You cannot restart svc: it needs the ops role in app.yaml."
    assert await request_rows(d.bot, "svc") == []
    seen = await d.click("UOPS1", "incident.run_step", f"{number}:1")
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    request_id = int(match.group(1))
    plan = d.messages()[-1]
    assert f"/restart svc: request #{request_id}" in plan.now.words and "Requested by @UOPS1" in plan.now.words
    assert plan.now.buttons == [(action, str(request_id)) for action in ("action.approve", "action.deny", "action.withdraw")]
    seen = await d.click("UOPS1", "action.approve", str(request_id))
    assert said(d, seen) == "You requested this, so someone else has to approve it (two-person rule)."
    await d.settle()
    assert await state_of(d.bot, request_id) == "pending" and service.started_at() == before
    runs = [(e.user_id, e.text) for e in await timeline(d.bot, number) if e.kind == "step_run"]
    assert runs == [("UVIEW1", "Ran step 1: /restart svc (denied)"), ("UOPS1", "Ran step 1: /restart svc (ok)")]
    assert "action" not in await kinds(d.bot, number)  # nothing ran


# --------------------------------------------------------------------------- checks and actions on the timeline (Slack)


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_health_and_a_guarded_restart_in_the_incident_channel_go_on_its_timeline(drive, service):  # noqa: F811 (fixture)
    d = await start(drive, restart_config(service) + incident_sections(create_channels=True, playbooks=RESTART_PLAYBOOK))
    number = await open_incident(d, "P1 The web service is down --service svc")
    d.channel = (await incidents.get(d.bot.db, number)).channel_id
    advance(d, 1)
    seen = await d.command("UOPS2", "/health", "svc")
    assert "Health: OK" in seen.words
    await d.settle()  # the timeline's entry is written in the background
    [check] = [e for e in await timeline(d.bot, number) if e.kind == "check"]
    assert check.user_id == "UOPS2" and check.at == START + dt.timedelta(minutes=1)
    assert check.data["outcome"] == "ok" and check.data["summary"].startswith("Health: OK (1 ok)") and check.data["services"] == ["svc"]

    before = service.started_at()
    seen = await d.command("UOPS1", "/restart", "svc")
    request_id = int(re.search(r"Request #(\d+) is posted", seen.words).group(1))
    assert "action" not in await kinds(d.bot, number)
    seen = await d.click("UOPS2", "action.approve", str(request_id))
    assert seen.one_line == f"Request #{request_id} succeeded."
    await d.settle()
    assert service.started_at() != before
    [action] = [e for e in await timeline(d.bot, number) if e.kind == "action"]
    [row] = [r for r in await request_rows(d.bot, "svc") if r.id == request_id]
    assert (action.user_id, action.text) == ("UOPS1", "restart svc: succeeded")
    assert {k: action.data[k] for k in ("requester", "approvers", "plan_hash", "outcome")} == {
        "requester": "UOPS1", "approvers": ["UOPS2"], "plan_hash": row.plan_hash, "outcome": "succeeded"}
    assert "svc: restarted in" in action.data["verification"]
    # A check elsewhere is not this incident's.
    d.channel = "C1"
    await d.command("UOPS2", "/health", "svc")
    await d.settle()
    assert (await kinds(d.bot, number)).count("check") == 1
