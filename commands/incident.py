"""/incident: open, acknowledge, update, re-grade, staff, resolve and review incidents.

The text after the subcommand is free (an update may say "--force failed"), so the grammar
takes it whole and each subcommand reads its own words. A leading number or INC-N names
the incident; inside an incident's own channel it may be left out.
"""
from __future__ import annotations

import re

from bot.action.flow import request_action
from bot.incident import access, lifecycle, opening, review, service
from bot.incident.forms import open_incident_form
from bot.incident.models import Incident
from bot.incident.views import MAX_SHOWN_ENTRIES, listing, show
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, split_words
from bot.pipeline.reply import Reply

USAGE = ("/incident open <severity> <title> [--service S ...] [--playbook NAME] | ack | update <text> | severity <P0-P3> | "
         "role commander|comms @user | resolve [summary] | reopen | note <text> | followup <text> [@owner] | escalate [reason] | "
         "rootcause <text> | silence <duration> | postmortem | list [--all] | show N")
GRAMMAR = Grammar(usage=USAGE, free_text=True)
NUMBER = re.compile(r"^(?:inc-)?(\d{1,9})$", re.IGNORECASE)
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
OWNER = re.compile(r"(?:<@([UW][A-Z0-9]{2,31})(?:\|[^<>]{0,255})?>|(?<!\S)@([UW][A-Z0-9]{2,31}))\s*$")
FREE_TEXT = ("update", "note", "followup", "resolve", "escalate", "rootcause")  # text that may start with a number
NEEDS_INCIDENT = ("ack", "update", "severity", "role", "resolve", "reopen", "note", "followup", "escalate", "rootcause",
                  "postmortem", "show", "silence")


def _split_first(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    return (parts[0].lower(), parts[1] if len(parts) > 1 else "") if parts else ("", "")


async def _target(inv: Invocation, sub: str, rest: str) -> tuple[Incident | str, str]:
    """(incident, remaining text), or (sentence, "") when it cannot be told which incident is meant."""
    first, after = _split_first(rest)
    match = NUMBER.match(first) if first else None
    here = await service.by_channel(inv.ctx.db, inv.request.channel_id)
    if here is not None and match and sub in FREE_TEXT and not first.startswith("inc-") and int(match.group(1)) != here.id:
        # In an incident's own channel, "/incident update 3 replicas down" is about this incident:
        # there a bare number names an incident only when it is this one's (INC-N always does).
        return here, rest
    if match:
        try:
            return await service.get(inv.ctx.db, int(match.group(1))), after
        except service.NoSuchIncident:
            return f"INC-{int(match.group(1))} does not exist. /incident list shows the open ones.", ""
    if here is not None:
        return here, rest
    return "Which incident? Give its number, e.g. /incident ack 42, or run the command in the incident's own channel.", ""


def _open_args(text: str) -> tuple[str, list[str], str | None] | str:
    """(title, services, playbook) from `<title words> [--service S ...] [--playbook NAME]`, or a sentence."""
    try:
        words = split_words(text)
    except ValueError:
        return "A quote is not closed. Usage: /incident open <severity> <title> [--service S ...] [--playbook NAME]"
    title, services, playbook = [], [], None
    i = 0
    while i < len(words):
        word = words[i]
        flag, _, inline = word.partition("=")
        if flag in ("--service", "--playbook"):
            value = inline or (words[i + 1] if i + 1 < len(words) and not inline else "")
            if not value:
                return f"{flag} needs a value, e.g. {flag} backend."
            i += 0 if inline else 1
            if flag == "--service":
                services += [s for s in value.split(",") if s]
            else:
                playbook = value
        elif word.startswith("--"):
            return f"Unknown option '{word[:30]}'. /incident open takes --service and --playbook."
        else:
            title.append(word)
        i += 1
    return " ".join(title), list(dict.fromkeys(services)), playbook


async def _open(inv: Invocation, rest: str) -> Reply:
    severity, after = _split_first(rest)
    if not severity:
        return await open_incident_form(inv)
    parsed = _open_args(after)
    if isinstance(parsed, str):
        return Reply.refusal(parsed)
    title, services, playbook = parsed
    request = inv.request
    return await opening.open_incident(inv.ctx, opening.OpenRequest(
        severity=rest.split(None, 1)[0], title=title, services=services, description="", playbook=playbook,
        user_id=request.user_id, channel_id=request.channel_id, transport=request.transport, team_id=request.team_id))


async def _role(inv: Invocation, incident: Incident, text: str) -> Reply:
    words = text.split()
    if len(words) != 2 or words[0].lower() not in lifecycle.ROLES:
        return Reply.refusal("Usage: /incident role commander|comms @user")
    holder = words[1].removeprefix("@")  # Slack's mention arrives as the id; @U123 is typed on the console
    if not USER_ID.match(holder):
        return Reply.refusal(f"'{words[1][:30]}' is not a Slack user: mention them with @ so Slack fills in who they are.")
    return await lifecycle.set_role(inv.ctx, incident, inv.request.user_id, words[0].lower(), holder)


async def _followup(inv: Invocation, incident: Incident, text: str) -> Reply:
    words = text.split()
    # The owner is a mention at the very end, read from the text as typed (Slack's <@U123>, or @U123):
    # "store times in UTC" names no owner, though UTC looks like an id once the mentions are flattened.
    mention = OWNER.search(inv.request.text)
    owner = (mention.group(1) or mention.group(2)) if mention else None
    body = " ".join(words[:-1] if owner else words)
    if not body:
        return Reply.refusal("A follow-up needs text: /incident followup <what to do> [@owner]")
    return await lifecycle.followup(inv.ctx, incident, inv.request.user_id, body, owner)


async def _silence(inv: Invocation, incident: Incident, text: str) -> Reply:
    """An Alertmanager silence of the incident's alerts: the `silence` action, requested and approved like any other."""
    words = text.split()
    if len(words) != 1:
        return Reply.refusal(f"Usage: /incident silence {incident.id} <duration>, e.g. /incident silence {incident.id} 2h")
    return await request_action(inv.ctx, inv.request, "silence", {"incident": str(incident.id), "duration": words[0]})


async def _on_incident(inv: Invocation, sub: str, incident: Incident, text: str) -> Reply:
    bot, user = inv.ctx, inv.request.user_id
    if sub == "ack":
        return await lifecycle.acknowledge(bot, incident, user)
    if sub in ("update", "note") and not text.strip():
        return Reply.refusal(f"/incident {sub} needs text, e.g. /incident {sub} {incident.id} rolled back the deploy.")
    if sub == "update":
        return await lifecycle.post_update(bot, incident, user, text)
    if sub == "note":
        return await lifecycle.note(bot, incident, user, text)
    if sub == "severity":
        if not text.strip():
            return Reply.refusal(f"Which severity? /incident severity {incident.id} P0")
        return await lifecycle.change_severity(bot, incident, user, text.split()[0])
    if sub == "role":
        return await _role(inv, incident, text)
    if sub == "resolve":
        return await lifecycle.resolve(bot, incident, user, text)
    if sub == "reopen":
        return await lifecycle.reopen(bot, incident, user)
    if sub == "followup":
        return await _followup(inv, incident, text)
    if sub == "escalate":
        return await lifecycle.escalate(bot, incident, user, text)
    if sub == "rootcause":
        return await review.root_cause(bot, incident, user, text)
    if sub == "silence":
        return await _silence(inv, incident, text)
    return await _content(inv, sub, incident)


async def _content(inv: Invocation, sub: str, incident: Incident) -> Reply:
    """/incident show and postmortem: refused to whoever cannot read a private incident channel;
    for one who can, asked elsewhere, answered to them alone."""
    bot, user, asked_in = inv.ctx, inv.request.user_id, inv.request.channel_id
    allowed = await access.check(bot, incident, user, asked_in)
    if allowed.refusal is not None:
        return allowed.refusal
    if sub == "postmortem":
        reply = await review.postmortem(bot, incident, user, asked_in)
    else:
        entries, total = await service.recent(bot.db, incident.id, MAX_SHOWN_ENTRIES)
        reply = show(incident, entries, total, await service.followups(bot.db, incident.id), bot.config, await lifecycle.headline_notes(bot, incident))
    reply.ephemeral = reply.ephemeral or allowed.only_for_asker
    return reply


async def handle(inv: Invocation) -> Reply:
    sub, rest = _split_first(inv.args.positionals["text"])
    if sub == "open" or not sub:  # no arguments at all: the form too (on the console, what to type)
        return await _open(inv, rest)
    if sub == "list":
        extra = rest.split()
        if extra and extra != ["--all"]:
            return Reply.refusal("Usage: /incident list [--all]")
        everything = extra == ["--all"]
        return listing(await service.listing(inv.ctx.db, include_resolved=everything), inv.ctx.config, include_resolved=everything)
    if sub not in NEEDS_INCIDENT:
        shown = "".join(ch for ch in sub[:20] if ch.isprintable())
        return Reply.refusal(f"There is no /incident {shown}. Usage: {USAGE}")
    incident, text = await _target(inv, sub, rest)
    if isinstance(incident, str):
        return Reply.refusal(incident)
    return await _on_incident(inv, sub, incident, text)


COMMAND = CommandSpec(
    name="incident",
    summary="Open and run incidents: timeline, escalation by severity, playbook, postmortem.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),
)
