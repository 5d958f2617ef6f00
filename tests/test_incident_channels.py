"""An incident's channel: who reads its content there, what its postmortem says, its name, who is in it.

- The postmortem is uploaded to the incident's own channel (with none, the incidents channel where its
  headline is), wherever it was asked; /incident show and the postmortem of an incident with a private
  channel, asked elsewhere, answer only a member of that channel (conversations.members), ephemerally.
- /incident rootcause fills the postmortem's Root Cause; the resolve summary fills Resolution.
- Channel names are transliterated to ASCII; a retry after name_taken never tries a name twice.
- Each escalation level is invited to the incident's channel when it is paged.

Through signed Slack HTTP and Socket Mode, and the console where it has something to show
(tests/drivers.py); time is the ManualClock of tests/test_incidents.py.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest

from conftest import wait_until
from drivers import drive  # noqa: F401 (fixture)
from test_incidents import config, open_incident, said, start, timeline
from test_postmortem import section

from bot.incident import service as incidents
from bot.incident.lifecycle import pinned_headline_key
from bot.incident.opening import channel_name

LEAD = "ULEAD1"


def private_config() -> str:
    return config(create_channels=True).replace("create_channels: true", "create_channels: true\n  private_channels: true")


def uploads(d) -> list:
    return [f for f in d.slack.uploaded_files.values() if f.completed]


# --------------------------------------------------------------------------- root cause and resolution


async def test_rootcause_fills_root_cause_and_the_resolve_summary_fills_resolution(drive):
    d = await start(drive)  # no channels of its own: the headline's, C0INCIDENTS, is the incident's
    number = await open_incident(d, "P1 Payments failing --service cache")
    seen = await d.command("UOPS2", "/incident", f"rootcause {number} idle transactions held the pool")
    assert said(d, seen) == f"Root cause of INC-{number} recorded; the postmortem shows it under Root Cause."
    seen = await d.command("UOPS2", "/incident", f"rootcause {number} 3 idle transactions & a leak held the pool")
    assert said(d, seen) == f"Root cause of INC-{number} recorded; the postmortem shows it under Root Cause."
    assert said(d, await d.command("UOPS1", "/incident", f"rootcause {number}")).startswith("/incident rootcause needs text")
    await d.command("UOPS1", "/incident", f"resolve {number} rolled back")

    seen = await d.command("UOPS1", "/incident", f"postmortem {number}")
    row = await incidents.get(d.bot.db, number)
    root_cause, resolution = section(row.postmortem, "Root Cause"), section(row.postmortem, "Resolution")
    assert root_cause.strip() == "3 idle transactions &amp; a leak held the pool"  # the newest, inert
    assert "rolled back" not in root_cause and resolution.strip().endswith("rolled back")
    assert [e.kind for e in await timeline(d.bot, number)].count("rootcause") == 2
    if d.name == "console":
        assert "is in #C0INCIDENTS: fill in root cause" in seen.words and f"--- INC-{number}-postmortem.md ---" in seen.words
        return
    # Asked in C1: uploaded to the incidents channel, where the incident lives; the answer says so, to the asker.
    assert seen.one_line == (f"Postmortem draft for INC-{number}, from its timeline, is in <#C0INCIDENTS>: "
                             "fill in root cause, impact and lessons.")
    assert seen.ephemeral is True
    await d.settle()
    [upload] = uploads(d)
    assert upload.channel_id == "C0INCIDENTS" and upload.data.decode() == row.postmortem


# --------------------------------------------------------------------------- where the postmortem goes


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_the_postmortem_goes_to_the_incidents_own_channel_wherever_it_is_asked(drive):
    d = await start(drive, config(create_channels=True))
    number = await open_incident(d, "P1 Checkout is down --service cache")
    channel = (await incidents.get(d.bot.db, number)).channel_id
    seen = await d.command("UOPS1", "/incident", f"postmortem {number}")  # typed in C1
    assert seen.ephemeral is True and f"is in <#{channel}>" in seen.post.text
    await d.settle()
    assert [u.channel_id for u in uploads(d)] == [channel]
    d.channel = channel  # typed in the incident's channel: for everyone there
    seen = await d.command("UOPS1", "/incident", "postmortem")
    assert seen.one_line == f"Postmortem draft for INC-{number}, from its timeline: fill in root cause, impact and lessons."
    assert seen.ephemeral is False
    await d.settle()
    assert [u.channel_id for u in uploads(d)] == [channel, channel]
    assert not d.slack.calls_to("conversations.members")  # a public channel: nobody's membership is asked


# --------------------------------------------------------------------------- a private channel's content


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_private_incidents_content_is_for_its_channels_members_only(drive):
    d = await start(drive, private_config())
    number = await open_incident(d, "P1 Card data exposure --service cache", user="UOPS2")
    channel = (await incidents.get(d.bot.db, number)).channel_id
    record = d.slack.channels[channel]
    assert record["is_private"] and record["members"] == {"UBOT", "UOPS2", "UONC1", "UCOMMS1"}
    await d.command("UOPS2", "/incident", f"note {number} the card vault logs show reads from 10.0.0.9")

    # UOPS1 holds a role but is not in the channel: refused, from anywhere else, and nothing is drafted or uploaded.
    refusal = f"INC-{number}'s channel is private and you are not in it: only its members see its timeline and postmortem."
    for text in (f"show {number}", f"postmortem {number}"):
        seen = await d.command("UOPS1", "/incident", text)
        assert seen.one_line == refusal and seen.ephemeral is True
        assert "10.0.0.9" not in seen.words
    await d.settle()
    assert uploads(d) == [] and "postmortem" not in [e.kind for e in await timeline(d.bot, number)]
    assert (await incidents.get(d.bot.db, number)).postmortem is None

    # A member asking elsewhere gets it, for their eyes only; the file goes to the private channel.
    record["members"] |= {f"U{n:05d}" for n in range(1500)} | {"UOPS3"}  # UOPS3 sorts past the first page (1,000)
    seen = await d.command("UOPS3", "/incident", f"show {number}")
    assert seen.ephemeral is True and "the card vault logs show reads from 10.0.0.9" in seen.words
    cursors = [c.args.get("cursor") for c in d.slack.calls_to("conversations.members")][-2:]
    assert cursors[0] is None and cursors[1]
    seen = await d.command("UOPS2", "/incident", f"postmortem {number}")
    assert seen.ephemeral is True and f"is in <#{channel}>" in seen.post.text
    await d.settle()
    [upload] = uploads(d)
    assert upload.channel_id == channel and "10.0.0.9" in upload.data.decode()

    # Slack does not answer who is in it: nothing is shown.
    d.slack.fail_next("conversations.members", "internal_error")
    seen = await d.command("UOPS2", "/incident", f"show {number}")
    assert seen.one_line == f"INC-{number}'s channel is private, and Slack did not say who is in it (internal_error); nothing is shown."

    # In the channel itself everyone there may see it, without asking Slack.
    asked = len(d.slack.calls_to("conversations.members"))
    d.channel = channel
    seen = await d.command("UOPS2", "/incident", "show")
    assert seen.ephemeral is False and "10.0.0.9" in seen.words
    assert len(d.slack.calls_to("conversations.members")) == asked


@pytest.mark.parametrize("drive", ["console"], indirect=True)
async def test_the_console_cannot_show_a_private_channels_incident(drive):
    d = await start(drive, private_config())
    number = await open_incident(d, "P1 Card data exposure --service cache")
    await d.command("UOPS1", "/incident", f"note {number} reads from 10.0.0.9")
    shown = await d.command("UOPS1", "/incident", f"show {number}")
    assert "10.0.0.9" in shown.words  # the console made no channel: nothing private about it
    # Made on Slack with a private channel, asked on a console that has no Slack connection to ask who is in it.
    now = d.bot.clock.now()
    await incidents.set_fields(d.bot.db, number, now, channel_id="C0PRIVATE1")
    await incidents.add_entry(d.bot.db, number, incidents.Entry("channel", "", "Channel #inc-1 created",
                                                                {"channel": "C0PRIVATE1", "name": "inc-1", "private": True},
                                                                key=pinned_headline_key(number)), now)
    for text in (f"show {number}", f"postmortem {number}"):
        seen = await d.command("UOPS1", "/incident", text)
        assert said(d, seen) == (f"INC-{number}'s channel is private, and who is in it cannot be checked here "
                                 "(no Slack connection); ask in its channel.")
        assert "10.0.0.9" not in seen.words
    assert (await incidents.get(d.bot.db, number)).postmortem is None


# --------------------------------------------------------------------------- channel names


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_channel_names_are_transliterated_and_a_retry_never_repeats_a_name(drive):
    d = await start(drive, config(create_channels=True))
    # Cut to 80 characters, this title's first retry would drop its "-2" and add "-2": the name just refused.
    title = "Orders stuck in the payments queue since the database moved onto replica 2"
    taken = channel_name("inc", 1, title)
    d.slack.channels["C0TAKEN"] = {"name": taken, "topic": "", "members": {"UBOT"}, "pins": [], "is_private": False}
    assert await open_incident(d, f"P1 {title} --service cache") == 1
    created = [c.args["name"] for c in d.slack.calls_to("conversations.create")]
    assert created == [taken, taken[:-1] + "3"]
    assert d.slack.channels[(await incidents.get(d.bot.db, 1)).channel_id]["name"] == taken[:-1] + "3"

    assert await open_incident(d, "P2 Datenbank überlastet --service cache") == 2
    assert await open_incident(d, "P2 Café down --service cache") == 3
    assert [c.args["name"] for c in d.slack.calls_to("conversations.create")][2:] == ["inc-2-datenbank-uberlastet", "inc-3-cafe-down"]


# --------------------------------------------------------------------------- a paged level is invited


async def delivered(bot, number: int, level: int) -> list:
    return [e for e in await timeline(bot, number) if e.kind == "ping" and e.data.get("level") == level and e.data.get("delivered")]


async def delivered_count(bot, number: int, level: int, count: int) -> bool:
    return len(await delivered(bot, number, level)) >= count


def invited_before_paged(d, channel: str, user: str) -> bool:
    """Slack got the invitation of `user` to `channel` before the page that mentions them there."""
    calls = [c for c in d.slack.calls if c.ok]
    invites = [i for i, c in enumerate(calls) if c.method == "conversations.invite" and c.args.get("channel") == channel
               and user in str(c.args.get("users", "")).split(",")]
    pages = [i for i, c in enumerate(calls) if c.method == "chat.postMessage" and c.args.get("channel") == channel
             and f"<@{user}>" in str(c.args.get("text", ""))]
    return bool(invites and pages) and invites[0] < pages[0]


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_each_level_is_invited_to_the_channel_when_it_is_first_paged(drive):
    d = await start(drive, config(create_channels=True))
    d.bot.scheduler.start()
    try:
        # Escalated by hand: the lead's level is paged at once, and invited first.
        first = await open_incident(d, "P1 Payments failing --service cache")
        await wait_until(lambda: delivered(d.bot, first, 0))
        channel = (await incidents.get(d.bot.db, first)).channel_id
        assert LEAD not in d.slack.channels[channel]["members"]
        seen = await d.command("UOPS1", "/incident", f"escalate {first} nobody from the database team")
        assert seen.one_line == f"INC-{first} escalated to level 2, {LEAD}."
        await wait_until(lambda: delivered(d.bot, first, 1))
        assert LEAD in d.slack.channels[channel]["members"] and invited_before_paged(d, channel, LEAD)
        seen = await d.command("UOPS1", "/incident", f"escalate {first}")  # the last level, paged (and invited) again
        assert seen.one_line == f"INC-{first} escalated to level 2, {LEAD} (already the last level: paging it again)."
        await wait_until(lambda: delivered_count(d.bot, first, 1, 2))
        assert d.slack.calls_to("conversations.invite")[-1].response.get("error") == "already_in_channel"

        # Escalated by the clock: nobody acknowledged within the hour; a refused invitation costs no page.
        second = await open_incident(d, "P1 Search is down --service cache")
        await wait_until(lambda: delivered(d.bot, second, 0))
        other = (await incidents.get(d.bot.db, second)).channel_id
        d.bot.clock.advance(dt.timedelta(hours=1))
        await wait_until(lambda: delivered(d.bot, second, 1))
        assert LEAD in d.slack.channels[other]["members"] and invited_before_paged(d, other, LEAD)

        third = await open_incident(d, "P1 Cart is down --service cache")
        await wait_until(lambda: delivered(d.bot, third, 0))
        d.slack.fail_next("conversations.invite", "restricted_action")
        await d.command("UOPS1", "/incident", f"escalate {third}")
        [page] = await wait_until(lambda: delivered(d.bot, third, 1))
        assert page.data["not_invited"] == "restricted_action" and page.data["failed"] == []
    finally:
        await d.bot.scheduler.stop()
    # Already in the channel is no error; the first level was invited with the channel, not again by its page.
    pages = [e for n in (first, second, third) for e in await timeline(d.bot, n) if e.kind == "ping"]
    assert len(pages) == 7 and [e.key for e in pages if "not_invited" in e.data] == [page.key]
    invited = Counter(c.args["users"] for c in d.slack.calls_to("conversations.invite"))
    assert invited == Counter({"UCOMMS1,UONC1,UOPS1": 3, LEAD: 4})
    assert all(re.fullmatch(r"[a-z0-9-]+", d.slack.channels[c]["name"]) for c in (channel, other))


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_an_incident_whose_headline_went_to_the_channel_it_was_opened_in_is_for_that_channels_members(drive):
    """No incidents channel and no channel of its own: the headline goes where /incident open was
    typed, which may be a private channel the bot cannot tell from a public one; membership decides."""
    d = await start(drive, config().replace("slack:\n  incidents_channel: C0INCIDENTS\n", ""))
    d.channel = "C0SECRET"
    number = await open_incident(d, "P1 Card data exposure --service cache", user="UOPS2")
    assert (await incidents.get(d.bot.db, number)).headline_channel == "C0SECRET"
    await d.command("UOPS2", "/incident", f"note {number} the card vault logs show reads from 10.0.0.9")
    # A private channel the bot is in, with one other member (the double records ids it never made as it meets them).
    d.slack.channels["C0SECRET"] = {"name": "sec", "topic": "", "members": {"UBOT", "UOPS2"}, "pins": [], "is_private": True}

    d.channel = "C1"
    seen = await d.command("UOPS1", "/incident", f"show {number}")
    assert seen.one_line == f"INC-{number}'s channel is private and you are not in it: only its members see its timeline and postmortem."
    assert "10.0.0.9" not in seen.words
    seen = await d.command("UOPS2", "/incident", f"show {number}")
    assert seen.ephemeral is True and "10.0.0.9" in seen.words
