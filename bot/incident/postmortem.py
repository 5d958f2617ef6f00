"""The post-incident review as Markdown for Slack readers, in runbook 003's "Post-Incident Review
Template" structure. Templates see plain strings, lists and dicts, never database rows. A person's
text (titles, notes, summaries, results) is made inert as Slack escapes it (&amp; &lt; &gt;), so
`<!channel>` in a note stays characters; the mentions the bot places itself stay live. A replacement
template (incidents.postmortem_template, read by `load_template`) renders in Jinja2's sandbox.
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined, Template, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bot.config.models import AppConfig
from bot.incident.models import FollowUp, Incident, IncidentState, TimelineEntry
from bot.pipeline.markup import Mention, escape

MAX_TEMPLATE_BYTES = 64 * 1024
MAX_OUTPUT_CHARS = 1_000_000
BUILTIN_TEMPLATE = "templates/postmortem.md.j2"
NOT_RECORDED = "_not recorded_"
TO_BE_WRITTEN = "_to be written_"
TO_BE_FILLED = "_to be filled in_"
BOT_NAME = "opsbot"
MILESTONES = (("root_cause", "Root cause identified"), ("fix_deployed", "Fix deployed"))
MILESTONE_KINDS = ("note", "update", "rootcause", "deploy")  # entries that may mark a milestone (data["milestone"]); a deploy: "fix deployed"
# What a template may name; load_template refuses others before the first review is due.
CONTEXT_NAMES = frozenset({
    "incident", "date", "duration", "timezone", "tz", "milestones", "timeline", "time_to_acknowledge",
    "time_to_resolve", "root_cause", "impact", "actions", "resolution_summary", "followups", "generated_at",
})
# Markdown, not HTML: no autoescape; inert() is applied to every person's text instead.
_OPTIONS = {"autoescape": False, "undefined": StrictUndefined, "trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": True}
_BUILTIN_ENV = Environment(**_OPTIONS)
_SANDBOX = ImmutableSandboxedEnvironment(**_OPTIONS)


def inert(text: object) -> str:
    """A person's text as Slack shows characters: `<!channel>` cannot ping, `<url|label>` cannot link."""
    return escape("" if text is None else str(text))


def _line(text: object) -> str:
    """Inert and on one line, so a note cannot start a section or a list item of its own."""
    return " ".join(inert(text).split())


def mention(user_id: str | None) -> str:
    """A live `<@U123>` for a well-formed user id; anything else as inert text; the bot by name."""
    if not user_id:
        return BOT_NAME
    return f"<@{user_id}>" if Mention(str(user_id)).valid else inert(f"@{user_id}")


def human(seconds: float) -> str:
    """45s, 12m, 2h 5m, 1d 3h 0m."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    days, rest = divmod(seconds // 60, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    return " ".join(parts)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class Clock:
    """Times as HH:MM in the calendar's zone: the zone's abbreviation is said once (in the
    Timeline heading) and again only where it changes (daylight saving); another day gets its date."""

    def __init__(self, zone: tzinfo, opened: datetime):
        self.zone = zone
        self.first = _utc(opened).astimezone(zone)

    @property
    def abbreviation(self) -> str:
        return self.first.tzname() or ""

    def local(self, moment: datetime) -> datetime:
        return _utc(moment).astimezone(self.zone)

    def stamp(self, moment: datetime | None, *, zone: bool = False) -> str:
        if moment is None:
            return NOT_RECORDED
        local = self.local(moment)
        text = local.strftime("%H:%M")
        if local.date() != self.first.date():
            text = f"{local:%Y-%m-%d} {text}"
        if zone or local.tzname() != self.abbreviation:
            text = f"{text} {local.tzname()}"
        return text


def _data(entry: TimelineEntry) -> dict:
    return entry.data if isinstance(entry.data, dict) else {}  # unset on an entry not yet stored


def _first(timeline: list[TimelineEntry], wanted) -> TimelineEntry | None:
    return next((entry for entry in timeline if wanted(entry)), None)


def _milestones(incident: Incident, timeline: list[TimelineEntry], clock: Clock) -> list[dict]:
    notified = _first(timeline, lambda e: e.kind in ("ping", "notified"))
    rows = [{"time": clock.stamp(incident.opened_at), "label": "Issue detected"},
            {"time": clock.stamp(notified.at if notified else None), "label": "Team notified"}]
    for key, label in MILESTONES:
        found = _first(timeline, lambda e, key=key: e.kind in MILESTONE_KINDS and _data(e).get("milestone") == key)
        rows.append({"time": clock.stamp(found.at if found else None), "label": label})
    resolved = _resolved_at(incident)
    rows.append({"time": clock.stamp(resolved) if resolved else "_ongoing_", "label": "Incident resolved"})
    return rows


def _head(text: object) -> str:
    """The first non-blank line, inert: a check's whole report stays in the audit log."""
    return _line(next((line for line in str(text or "").splitlines() if line.strip()), ""))


def _describe(entry: TimelineEntry) -> str:
    """The entry's text; a check as its outcome and headline; an action without text from its data."""
    data = _data(entry)
    if entry.kind == "check":
        return " - ".join(part for part in (_line(data.get("outcome") or ""), _head(entry.text or data.get("summary"))) if part)
    if entry.text or entry.kind != "action":
        return _line(entry.text)
    return _line(" ".join(str(data[k]) for k in ("action", "service", "outcome") if data.get(k)))


def _timeline(timeline: list[TimelineEntry], clock: Clock) -> list[dict]:
    return [{"time": clock.stamp(entry.at), "who": mention(entry.user_id), "kind": _line(entry.kind), "text": _describe(entry)}
            for entry in timeline]


def _action(entry: TimelineEntry, clock: Clock) -> dict:
    data = _data(entry)
    approvers = [mention(user) for user in data.get("approvers") or [] if user]
    return {
        "time": clock.stamp(entry.at),
        "action": _line(data.get("action") or "action"),
        "service": _line(data.get("service") or ""),
        "requester": mention(data.get("requester") or entry.user_id),
        "approvers": approvers,
        "approvers_text": ", ".join(approvers) if approvers else "none",
        "outcome": _line(data.get("outcome") or "outcome not recorded"),
        "verification": _head(data.get("verification")),
        "plan": _line(str(data.get("plan_hash") or "")[:12]),
    }


def _resolved_at(incident: Incident) -> datetime | None:
    return incident.resolved_at if incident.state == IncidentState.resolved else None


def _root_cause(timeline: list[TimelineEntry]) -> str:
    """What /incident rootcause said last (entries oldest first): the newest wins."""
    said = [entry.text for entry in timeline if entry.kind == "rootcause" and entry.text]
    return said[-1] if said else ""


def _summary(incident: Incident, timeline: list[TimelineEntry]) -> str:
    """The resolve summary: on the incident, else on its last `resolved` entry."""
    resolved = [entry.text or str(_data(entry).get("summary") or "") for entry in timeline if entry.kind == "resolved"]
    return incident.summary or (resolved[-1] if resolved else "")


def _severity_label(incident: Incident, config: AppConfig) -> str:
    found = config.severity(incident.severity or "")
    if found is None:
        return _line(incident.severity)
    name, severity = found
    return f"{name} ({_line(severity.aliases[0])})" if severity.aliases else name


def _duration(incident: Incident, clock: Clock, now: datetime) -> str:
    opened, resolved = _utc(incident.opened_at), _resolved_at(incident)
    if resolved is None:
        return f"ongoing ({human((_utc(now) - opened).total_seconds())} so far)"
    span = human((_utc(resolved) - opened).total_seconds())
    return f"{span} ({clock.stamp(opened, zone=True)} → {clock.stamp(resolved, zone=True)})"


def _since_open(incident: Incident, moment: datetime | None, missing: str) -> str:
    return missing if moment is None else human((_utc(moment) - _utc(incident.opened_at)).total_seconds())


def _incident(incident: Incident, config: AppConfig) -> dict:
    services = [_line(service) for service in incident.services or []]
    return {
        "ref": incident.ref, "title": _line(incident.title), "severity": _line(incident.severity),
        "severity_label": _severity_label(incident, config), "state": _line(getattr(incident.state, "value", incident.state)),
        "services": services, "services_text": ", ".join(services) if services else "none named",
        "description": inert(incident.description or ""), "playbook": _line(incident.playbook or ""),
        "opened_by": mention(incident.opened_by), "commander": mention(incident.commander) if incident.commander else "",
        "comms": mention(incident.comms) if incident.comms else "",
    }


def _followups(followups: list[FollowUp]) -> list[dict]:
    return [{"text": _line(item.text), "owner": mention(item.owner) if item.owner else ""} for item in followups]


def build_context(incident: Incident, timeline: list[TimelineEntry], followups: list[FollowUp], *, config: AppConfig,
                  now: datetime) -> dict:
    """What a template sees: the review's parts as strings, already inert where a person wrote them."""
    clock = Clock(ZoneInfo(config.calendar.timezone), incident.opened_at)
    entries = sorted(timeline, key=lambda entry: _utc(entry.at))
    summary = _summary(incident, entries)
    info = _incident(incident, config)
    return {
        "incident": info, "date": f"{clock.first:%Y-%m-%d}", "duration": _duration(incident, clock, now),
        "timezone": config.calendar.timezone, "tz": clock.abbreviation,
        "milestones": _milestones(incident, entries, clock), "timeline": _timeline(entries, clock),
        "time_to_acknowledge": _since_open(incident, _acknowledged_at(incident, entries), "not acknowledged"),
        "time_to_resolve": _since_open(incident, _resolved_at(incident), "not resolved"),
        "root_cause": _line(_root_cause(entries)) or TO_BE_WRITTEN,
        "impact": {"users_affected": TO_BE_FILLED, "services": info["services_text"], "data_loss": TO_BE_FILLED},
        "actions": [_action(entry, clock) for entry in entries if entry.kind == "action"],
        "resolution_summary": inert(summary).strip(), "followups": _followups(followups),
        "generated_at": f"{clock.local(now):%Y-%m-%d %H:%M} {clock.local(now).tzname()}",
    }


def _acknowledged_at(incident: Incident, timeline: list[TimelineEntry]) -> datetime | None:
    if incident.acknowledged_at is not None:
        return incident.acknowledged_at
    found = _first(timeline, lambda entry: entry.kind == "acknowledged")
    return found.at if found else None


@cache
def _builtin() -> Template:
    return _BUILTIN_ENV.from_string(resources.files("bot.incident").joinpath(BUILTIN_TEMPLATE).read_text(encoding="utf-8"))


def render_postmortem(incident: Incident, timeline: list[TimelineEntry], followups: list[FollowUp], *, config: AppConfig,
                      now: datetime, template_text: str | None = None) -> str:
    """The review as Markdown; `template_text` (from load_template) replaces the built-in template."""
    context = build_context(incident, timeline, followups, config=config, now=now)
    if template_text is None:
        return _builtin().render(**context)
    return _bounded(_compile(template_text, "The postmortem template"), context)


def _bounded(template: Template, context: dict) -> str:
    """Rendered in the sandbox, stopped past MAX_OUTPUT_CHARS; any failure is one sentence."""
    out: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**context):
            out.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                break
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as error:
        raise ValueError(f"The postmortem template failed to render: {_first_line(error)}.") from None
    if size > MAX_OUTPUT_CHARS:
        raise ValueError(f"The postmortem template produced more than {MAX_OUTPUT_CHARS:,} characters.")
    return "".join(out)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0].rstrip(".")[:200]


def _compile(text: str, where: str) -> Template:
    try:
        parsed = _SANDBOX.parse(text)
        unknown = sorted(meta.find_undeclared_variables(parsed) - CONTEXT_NAMES - set(_SANDBOX.globals))
        template = _SANDBOX.from_string(text)
    except TemplateError as error:
        at = f" line {error.lineno}" if getattr(error, "lineno", None) else ""
        raise ValueError(f"{where}{at} does not compile: {_first_line(error)}.") from None
    if unknown:
        raise ValueError(f"{where} names unknown variables {', '.join(unknown[:5])}; known: {', '.join(sorted(CONTEXT_NAMES))}.")
    return template


def load_template(path: str, base_dir: Path) -> str:
    """incidents.postmortem_template, relative to the app.yaml directory: read, size-checked, compiled."""
    file = Path(path) if Path(path).is_absolute() else Path(base_dir) / path
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"Postmortem template {path} cannot be read: {error.strerror or type(error).__name__}.") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise ValueError(f"Postmortem template {path} is over {MAX_TEMPLATE_BYTES // 1024} KiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"Postmortem template {path} is not UTF-8 text.") from None
    _compile(text, f"Postmortem template {path}")
    return text
