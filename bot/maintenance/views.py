"""What maintenance windows look like: the channel posts, the command's answers, the notes.

Times are shown in calendar.timezone with the zone's abbreviation. The reason is user text:
kept a plain str, so the renderer escapes it (a `<!channel>` in it pings nobody).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config.models import AppConfig
from bot.maintenance.service import Chain, Window
from bot.pipeline.markup import Mention, Text
from bot.pipeline.reply import Context, Header, Outcome, Reply, Section

# Runbook 001 "Maintenance Checklist": what to do before and after.
BEFORE = "Before it starts: create a backup, test the change in staging, notify users."
MAX_SECTION = 3000  # one section block
AFTER = "Now: check that every service is healthy (/health), watch logs and metrics, update the documentation."


def time_of(at: datetime, config: AppConfig, now: datetime | None = None) -> str:
    """"23:00 UTC" on the same local day as `now`, else "Wed 2026-11-25 22:00 CET"."""
    zone = ZoneInfo(config.calendar.timezone)
    local = at.astimezone(zone)
    if now is not None and now.astimezone(zone).date() == local.date():
        return local.strftime("%H:%M %Z")
    return local.strftime("%a %Y-%m-%d %H:%M %Z")


def length(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return " ".join(p for p in parts if p) or "0m"


def services_of(window: Window) -> str:
    return ", ".join(window.services) if window.services else "all services"


def span_of(window: Window, config: AppConfig, now: datetime) -> str:
    return (f"{services_of(window)} from {time_of(window.starts_at, config, now)} to {time_of(window.ends_at, config, window.starts_at)}"
            f" ({length(window.ends_at - window.starts_at)})")


def note(service: str, window: Window, config: AppConfig, now: datetime) -> str:
    """A guarded action's request note: "backend is in maintenance window #3 until 23:00 UTC: reason"."""
    return f"{service} is in maintenance window #{window.id} until {time_of(window.until, config, now)}: {window.reason}"


def held(window: Window) -> str:
    return (f"Until it ends, red checks on {services_of(window)} open no incident, and incidents they opened on them alone are "
            f"not paged; incidents people open are paged as always. /maintenance end {window.id} ends it early.")


def too_long(chain: Chain, longest: timedelta, config: AppConfig, now: datetime) -> str:
    """Why a window that would chain with others past maintenance.max_duration is refused."""
    what = chain.service or "every service"
    span = f"{time_of(chain.starts_at, config, now)} to {time_of(chain.ends_at, config, chain.starts_at)}"
    others = ", ".join(f"#{number}" for number in chain.windows)
    return (f"With window{'s' if len(chain.windows) > 1 else ''} {others} this keeps {what} in maintenance for {length(chain.length)} in a row ({span}); "
            f"windows less than an hour apart can last at most {length(longest)} together (maintenance.max_duration).")


def created(window: Window, config: AppConfig, now: datetime, *, announce_at: datetime | None, channel: str) -> Reply:
    started = window.starts_at <= now
    verb = "started" if started else "scheduled"
    sentence = Text(f"Maintenance window #{window.id} {verb} by ", Mention(window.created_by),
                    f": {span_of(window, config, now)}: {window.reason}")
    lines = [Section(sentence)]
    where = f" in {channel}" if channel else ""
    if announce_at is not None:
        lines.append(Context(f"Announced{where} at {time_of(announce_at, config, now)}; its start and end are posted there too."))
    elif started:
        lines.append(Context(held(window)))
    return Reply(text=sentence, blocks=[Header(f"Maintenance window #{window.id}"), *lines])


def _marked(reply: Reply, marker: str) -> Reply:
    """A channel post names itself ("(maintenance announce 3)"): a retried job looks for it before posting again."""
    if marker:
        reply.text = Text(reply.text, f" {marker}")
        reply.blocks.append(Context(marker))
    return reply


def announcement(window: Window, config: AppConfig, now: datetime, *, marker: str = "") -> Reply:
    ahead = length(window.starts_at - now)
    sentence = f"Scheduled maintenance #{window.id} in {ahead}: {span_of(window, config, now)}: {window.reason}"
    return _marked(Reply(text=sentence, blocks=[Header(f"Scheduled maintenance #{window.id}"), Section(sentence), Context(BEFORE)]), marker)


def started(window: Window, config: AppConfig, now: datetime, *, marker: str = "") -> Reply:
    sentence = (f"Maintenance window #{window.id} started: {services_of(window)} until {time_of(window.ends_at, config, now)}: "
                f"{window.reason}")
    return _marked(Reply(text=sentence, blocks=[Section(sentence), Context(held(window))]), marker)


def ended(window: Window, config: AppConfig, now: datetime, *, marker: str = "", held_alerts: list[str] = ()) -> Reply:
    if window.cancelled:
        planned = f"{services_of(window)}, {time_of(window.starts_at, config, now)}"
        sentence = Text(f"Maintenance window #{window.id} ({planned}) is cancelled by ",
                        Mention(window.ended_by or "?"), ".")
        return _marked(Reply(text=sentence, blocks=[Section(sentence)]), marker)
    sentence = Text(f"Maintenance window #{window.id} ended: {services_of(window)}")
    if window.ended_at is not None and window.ended_at < window.ends_at:
        sentence = Text(sentence, ", ended early by ", Mention(window.ended_by or "?"))
    sentence = Text(sentence, ".")
    if not held_alerts:
        return _marked(Reply(text=sentence, blocks=[Section(sentence), Context(AFTER)]), marker)
    listed = "\n".join(held_alerts)[:MAX_SECTION]  # plain text: the renderer escapes it
    return _marked(Reply(text=Text(sentence, "\n", listed), blocks=[Section(sentence), Section(listed), Context(AFTER)]), marker)


def listing(active: list[Window], upcoming: list[Window], config: AppConfig, now: datetime) -> Reply:
    if not active and not upcoming:
        return Reply.refusal("No maintenance window is active or scheduled.", Outcome.ok)

    def line(window: Window) -> Text:
        return Text(f"#{window.id} {span_of(window, config, now)}: {window.reason} (by ", Mention(window.created_by), ")")

    blocks = [Header("Maintenance windows")]
    text: list = []
    for title, windows in (("Active", active), ("Upcoming", upcoming)):
        if windows:
            lines = [line(w) for w in windows]
            blocks.append(Section(Text(f"*{title}*\n", *_joined(lines, "\n"))))
            text.append(Text(f"{title}: ", *_joined(lines, "; ")))
    return Reply(text=Text(*_joined(text, "\n")), blocks=blocks, ephemeral=True)


def _joined(parts: list, between: str) -> list:
    out: list = []
    for i, part in enumerate(parts):
        out += [between, part] if i else [part]
    return out

