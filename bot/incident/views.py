"""How incidents read: the headline with its buttons, pings, reminders, /incident show and list,
the playbook checklist. Replies only; the renderer escapes every string and keeps the mentions.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config.incident_models import Playbook
from bot.config.models import AppConfig
from bot.incident.models import FollowUp, Incident, IncidentState, TimelineEntry
from bot.pipeline.markup import Mention, Text, channel
from bot.pipeline.reply import Actions, Button, Context, Header, Outcome, Reply, Section

MAX_SHOWN_ENTRIES = 40
# Bounded so a checklist (40 steps, one actions block each) and /incident show stay within
# Block Kit's 50 blocks whatever app.yaml and users wrote.
MAX_ENTRY_SHOWN = 200
MAX_STEP_TEXT = 140
MAX_STEP_COMMAND = 80


def when(at: datetime | None, config: AppConfig, *, date: bool = True) -> str:
    """A time in the configured zone (calendar.timezone), with the zone's abbreviation."""
    if at is None:
        return "-"
    local = at.astimezone(ZoneInfo(config.calendar.timezone))
    return local.strftime("%Y-%m-%d %H:%M %Z" if date else "%H:%M")


def span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


def severity_label(incident: Incident, config: AppConfig) -> str:
    found = config.severity(incident.severity)
    if found and found[1].aliases:
        return f"{incident.severity} ({found[1].aliases[0]})"
    return incident.severity


def _state_line(incident: Incident, config: AppConfig) -> Text:
    if incident.state is IncidentState.resolved:
        line = Text("*Resolved* by ", Mention(incident.resolved_by or ""), f" at {when(incident.resolved_at, config)}")
        return Text(line, f": {incident.summary}") if incident.summary else line
    if incident.state is IncidentState.acknowledged:
        return Text("*Acknowledged* by ", Mention(incident.acknowledged_by or ""), f" at {when(incident.acknowledged_at, config)}")
    return Text("*Open*, not acknowledged yet")


def _roles_line(incident: Incident) -> Text | None:
    parts: list = []
    if incident.commander:
        parts += ["Commander: ", Mention(incident.commander)]
    if incident.comms:
        parts += ["  Comms: " if parts else "Comms: ", Mention(incident.comms)]
    return Text(*parts) if parts else None


def headline(incident: Incident, config: AppConfig, notes: Sequence = ()) -> Reply:
    """`notes`: blocks other slices add (lifecycle.headline_notes: an alert incident's alerts), after the description."""
    title = f"{incident.ref} · {severity_label(incident, config)} · {incident.title}"
    blocks: list = [Header(title[:150]), Section(_state_line(incident, config))]
    if incident.services:
        blocks.append(Section("Services: " + ", ".join(incident.services)))
    roles = _roles_line(incident)
    if roles:
        blocks.append(Section(roles))
    if incident.description:
        blocks.append(Section(incident.description))
    blocks.extend(notes)
    where = [" · channel ", channel(incident.channel_id)] if incident.channel_id else []
    blocks.append(Context(Text("Opened by ", Mention(incident.opened_by), f" at {when(incident.opened_at, config)}", *where)))
    buttons = action_buttons(incident)
    if buttons:
        blocks.append(Actions(tuple(buttons)))
    return Reply(text=f"{title} [{incident.state.value}]", blocks=blocks)


def action_buttons(incident: Incident) -> list[Button]:
    value = str(incident.id)
    if incident.state is IncidentState.resolved:
        return []
    buttons = [Button("Acknowledge", "incident.ack", value, "primary")] if incident.state is IncidentState.open else []
    return buttons + [
        Button("Post update", "incident.update", value),
        Button("Escalate", "incident.escalate", value),
        Button("Resolve", "incident.resolve", value, "danger"),
    ]


def ping_message(incident: Incident, level: str, targets: list[Mention], repeat: int, *, late: bool, config: AppConfig,
                 marker: str) -> Reply:
    """`marker` names this one page ("page 42.3.1.0"): a retried ping looks for it in the channel before sending again."""
    again = f" (reminder {repeat})" if repeat else ""
    note = " This page is late: the bot was down when it fell due." if late else ""
    line = Text(*_joined(targets), f" {incident.ref} {severity_label(incident, config)} \"{incident.title}\" is not acknowledged{again}. "
                f"Paging {level}.{note}")
    return Reply(text=Text(line, f" {marker}"), blocks=[
        Section(line), Context(marker), Actions((Button("Acknowledge", "incident.ack", str(incident.id), "primary"),))])


def _joined(targets: list[Mention]) -> list:
    parts: list = []
    for i, target in enumerate(targets):
        parts += ([" "] if i else []) + [target]
    return parts


def reminder_message(incident: Incident, who: str, since: timedelta, *, marker: str) -> Reply:
    """`marker` names this one reminder ("update reminder 42.1.3"): a retried reminder looks for it before sending again."""
    line = Text(Mention(who), f" {incident.ref} has had no update for {span(since)}. Post one with /incident update {incident.id} <text>.")
    return Reply(text=Text(line, f" {marker}"), blocks=[
        Section(line), Context(marker), Actions((Button("Post update", "incident.update", str(incident.id)),))])


def update_message(incident: Incident, user: str, text: str, config: AppConfig) -> Reply:
    head = Text(f"{incident.ref} {severity_label(incident, config)} update from ", Mention(user), ":")
    return Reply(text=Text(head, " ", text), blocks=[Section(head), Section(text), Context(f"\"{incident.title}\" is {incident.state.value}")])


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_entry(entry: TimelineEntry, config: AppConfig) -> Text:
    """One line of /incident show; the postmortem has every entry in full."""
    who = [" by ", Mention(entry.user_id)] if entry.user_id else []
    text = f": {clip(' '.join(entry.text.split()), MAX_ENTRY_SHOWN)}" if entry.text else ""
    return Text(f"{when(entry.at, config, date=False)}  {entry.kind}", *who, text)


def show(incident: Incident, entries: list[TimelineEntry], total: int, followups: list[FollowUp], config: AppConfig,
         notes: Sequence = ()) -> Reply:
    """The headline (with its notes), the newest entries (`total` in all) and the follow-ups, each line clipped."""
    reply = headline(incident, config, notes)
    reply.blocks = [b for b in reply.blocks if not isinstance(b, Actions)]
    lines = [describe_entry(e, config) for e in entries[-MAX_SHOWN_ENTRIES:]]
    if lines:
        reply.blocks.append(Section(Text("*Timeline* (" + config.calendar.timezone + ")\n", *_lines(lines))))
    if total > len(lines):
        reply.blocks.append(Context(f"{total - len(lines)} earlier entries are in /incident postmortem {incident.id}."))
    if followups:
        items = [Text(f"{i}. {clip(f.text, MAX_ENTRY_SHOWN)}", *((" (", Mention(f.owner), ")") if f.owner else ()))
                 for i, f in enumerate(followups[:MAX_SHOWN_ENTRIES], 1)]
        reply.blocks.append(Section(Text("*Follow-ups*\n", *_lines(items))))
    buttons = action_buttons(incident)
    if buttons:
        reply.blocks.append(Actions(tuple(buttons)))
    return reply


def _lines(lines: list[Text]) -> list:
    parts: list = []
    for i, line in enumerate(lines):
        parts += (["\n"] if i else []) + [line]
    return parts


def listing(incidents: list[Incident], config: AppConfig, *, include_resolved: bool) -> Reply:
    if not incidents:
        sentence = "No incidents yet." if include_resolved else "No open incidents. /incident list --all shows resolved ones too."
        return Reply(text=sentence, blocks=[Section(sentence)])
    lines = []
    for incident in incidents:
        owner = [" · commander ", Mention(incident.commander)] if incident.commander else []
        lines.append(Text(f"*{incident.ref}* {severity_label(incident, config)} {incident.state.value} · {incident.title} · "
                          f"opened {when(incident.opened_at, config)}", *owner))
    title = "Incidents" if include_resolved else "Open incidents"
    return Reply(text=f"{title}: {len(incidents)}", blocks=[Header(title), Section(Text(*_lines(lines)))])


def playbook_checklist(incident: Incident, name: str, playbook: Playbook, ticked: dict[int, tuple[str, datetime]], config: AppConfig) -> Reply:
    lines: list[Text] = []
    rows: list[Actions] = []
    for number, step in enumerate(playbook.steps, 1):
        done = ticked.get(number)
        mark = "[x]" if done else "[ ]"
        command = f"  `{clip(step.command, MAX_STEP_COMMAND)}`" if step.command else ""
        by = [" (", Mention(done[0]), f" {when(done[1], config, date=False)})"] if done else []
        lines.append(Text(f"{mark} {number}. {clip(step.text, MAX_STEP_TEXT)}{command}", *by))
        buttons = [Button(f"Run {number}", "incident.run_step", f"{incident.id}:{number}")] if step.command else []
        if not done:
            buttons.append(Button(f"Done {number}", "incident.tick_step", f"{incident.id}:{number}"))
        if buttons:
            rows.append(Actions(tuple(buttons)))
    blocks: list = [Header(f"Playbook for {incident.ref}: {playbook.title}"[:150]), Section(Text(*_lines(lines)))]
    if incident.state is not IncidentState.resolved:
        # One actions block per step: Slack refuses a block holding two elements with one action_id
        # (every step's Done is incident.tick_step), so the steps' buttons cannot share a row.
        blocks += rows
    blocks.append(Context(f"playbook {name}: {len(ticked)} of {len(playbook.steps)} steps done"))
    return Reply(text=f"Playbook {playbook.title} for {incident.ref}", blocks=blocks)


def done(sentence: str | Text, outcome: Outcome = Outcome.ok, *, ephemeral: bool = False) -> Reply:
    return Reply(text=sentence, blocks=[Section(sentence)], outcome=outcome, ephemeral=ephemeral)

