"""What alerts say in Slack: the alert list on the headline, the resolution note with its Resolve button.
Plain strings; the renderer escapes them (once)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.alerts.models import AlertInstance
from bot.alerts.notification import common_labels
from bot.incident.models import Incident
from bot.incident.views import clip
from bot.pipeline.reply import Actions, Button, Context, Reply, Section

# Labels that name where an alert fires: shown for a lone alert, which has no labels that tell it from others.
WHERE_LABELS = ("instance", "pod", "host", "job", "namespace", "service")
MAX_LABELS_SHOWN = 4
MAX_LABEL_TEXT = 60
MAX_LINE = 300  # 10 lines and a heading stay well within a section's 3,000 characters


def alert_list(rows: list[AlertInstance], total: int, firing: int, config, now: datetime) -> list:
    """The headline's alert list: one line per alert (name, the labels that matter, firing or resolved, how many
    notifications said it fires, when last seen), `rows` of `total`, and how many more there are."""
    shared = common_labels([row.labels or {} for row in rows]) if len(rows) > 1 else {}
    lines = [f"Alerts ({total}, {firing} firing)"]
    for row in rows:
        labels = row.labels or {}
        name = labels.get("alertname") or row.title
        if shared or len(rows) > 1:
            matter = [(k, v) for k, v in sorted(labels.items()) if k not in shared and k != "alertname"]
        else:
            matter = [(k, labels[k]) for k in WHERE_LABELS if k in labels]
        shown = ", ".join(f"{clip(k, 30)}={clip(v, MAX_LABEL_TEXT)}" for k, v in matter[:MAX_LABELS_SHOWN])
        local = row.last_seen.astimezone(ZoneInfo(config.calendar.timezone))
        seen = local.strftime("%H:%M %Z" if local.date() == now.astimezone(local.tzinfo).date() else "%Y-%m-%d %H:%M %Z")
        times = "1 notification" if row.firing_count == 1 else f"{row.firing_count} notifications"
        line = " · ".join(part for part in (f"• {row.status}", clip(" ".join(name.split()), 80), shown, f"{times} firing", f"last seen {seen}") if part)
        lines.append(clip(line, MAX_LINE))
    if total > len(rows):
        lines.append(f"and {total - len(rows)} more")
    return [Section("\n".join(lines))]


def resolved_note(incident: Incident, integration: str, count: int, *, marker: str) -> Reply:
    """`marker` names this one note: a retried post looks for it in the channel before sending again."""
    alerts = "its alert is" if count == 1 else f"all {count} of its alerts are"
    sentence = f"{incident.ref}: {alerts} resolved, says {integration}."
    return Reply(text=f"{sentence} {marker}", blocks=[
        Section(f"{sentence} Resolve it if nothing else is wrong."),
        Actions((Button("Resolve", "incident.resolve", str(incident.id), "primary"),)),
        Context(f"\"{incident.title}\" stays open until someone resolves it (auto_resolve is off for this route). {marker}"),
    ])


def resolved_sentence(integration: str, count: int) -> str:
    return f"All alerts resolved ({count}, {integration})." if count != 1 else f"The alert is resolved ({integration})."


def description(integration: str, text: str, source_url: str, count: int) -> str:
    lines = [f"Opened by the {integration} alert integration ({count} alert{'s' if count != 1 else ''})."]
    if text:
        lines.append(text)
    if source_url:
        lines.append(f"Source: {source_url}")
    return "\n".join(lines)
