"""A notification, routed, becomes incidents: opened, joined, reopened or told of their resolution.

The de-duplication key is the incident slice's (its unique index over open incidents): two
replicas, or Alertmanager's retries, opening for one key open one incident with one plan of pages;
the other opening lands on that incident's timeline. Everything else is keyed too (timeline entries,
the alert list's rows), so a notification delivered twice changes nothing the second time but its counts.

An alert whose route's service is in a maintenance window opens nothing and pages nobody: it is
recorded (held.py) and listed when the window ends. An incident open before the window still gets its
alerts' repeats and resolution (a window opened to fix it must not hide that the fix worked).

The sender's answer waits on the database only, never on Slack, for a repeat or a resolution: a repeat of
an open group is one transaction, and the headline's redraw, the resolution note and an auto-resolution
are scheduled jobs booked before the answer (redraw.py, resolution.py), and so is a new incident's
announcement (its headline, channel and notifications: the incident slice's `announce_later`).
"""
from __future__ import annotations

from datetime import timedelta

from bot.alerts import alert_list, held, redraw, resolution, views
from bot.alerts import heartbeat as watchdog
from bot.alerts.notification import AlertNotification, common_labels, group_of
from bot.alerts.routing import Routed, routed, severity_for
from bot.incident import lifecycle
from bot.incident import service as incidents
from bot.incident.models import MAX_TITLE, Incident, IncidentState
from bot.incident.opening import OpenRequest, open_or_join
from bot.maintenance.service import covering_in

OPENER = "opsbot"  # who the timeline says opened, reopened or resolved it
ORIGIN = "alert"  # automated detection (incident.service.origin_in)


class NotOpened(RuntimeError):
    """The incident slice refused the opening (a title with no words left after redaction); said in the log."""


async def receive(bot, name: str, notification: AlertNotification) -> list[str]:
    """One phrase per incident the notification concerned ("INC-4", "held by maintenance window #2", "heartbeat")."""
    integration = bot.config.alerts.integrations[name]
    heartbeat = bot.config.alerts.heartbeat
    said = []
    if heartbeat is not None and heartbeat.integration == name:
        beats = [a for a in notification.alerts if a.labels.get("alertname") == heartbeat.alertname]
        if beats:  # the heartbeat alert is the pipeline's pulse, never an incident
            if any(a.status == "firing" for a in beats):
                await watchdog.beat(bot, name, bot.clock.now())
            said.append("heartbeat")
            rest = tuple(a for a in notification.alerts if a not in beats)
            if not rest:
                return said
            notification = without_heartbeat(notification, rest)
    return said + [await _one(bot, item) for item in routed(name, integration, notification)]


def without_heartbeat(notification: AlertNotification, rest: tuple) -> AlertNotification:
    """The group as if the heartbeat alert were not in it: its labels, title and status are the other alerts'."""
    titles = {alert.title for alert in rest}
    return group_of(list(rest), group_key=notification.group_key, labels=common_labels([alert.labels for alert in rest]),
                    title=titles.pop() if len(titles) == 1 else rest[0].title, description=notification.description,
                    source_url=notification.source_url)


async def _one(bot, item: Routed) -> str:
    """A repeat (the group's incident is open) is one transaction: the key's incident, the window check (only
    when none is open), the list's upsert and the headline's redraw booked. Opening, reopening and what the
    list's changes say come after."""
    now = bot.clock.now()
    service = item.route.service
    async with bot.db.sessions() as session:
        async with session.begin():
            incident = await incidents.open_with_key_in(session, item.dedup_key)
            # A window holds back only what would open an incident: the open one's repeats and resolution still land.
            windows = await covering_in(session, [service], now) if service and incident is None else []
            if windows:
                await held.record_in(session, windows[0].id, integration=item.integration, dedup_key=item.dedup_key, service=service,
                                     title=item.title, status=item.status, now=now)
                return f"held by maintenance window #{windows[0].id}"
            changes = await alert_list.record_in(session, incident.id, item.integration, item.alerts, now) if incident else None
        redraw.committed(session)
    if incident is None:
        if item.status != "firing":  # resolved, and nothing open for it: whoever resolved the incident was first
            return "nothing open"
        incident = await _reopened(bot, item, now) or await _opened(bot, item)
        changes = await alert_list.record(bot.db, incident.id, item.integration, item.alerts, now)
    await _told(bot, incident, item, changes, now)
    if item.status == "resolved":
        await _resolution(bot, incident, item, now)
    return incident.ref


async def _reopened(bot, item: Routed, now) -> Incident | None:
    """The key's incident, reopened, when it was resolved within the route's reopen_within."""
    recent = await incidents.latest_with_key(bot.db, item.dedup_key)
    if recent is None or recent.state is not IncidentState.resolved or recent.resolved_at is None:
        return None
    if now - recent.resolved_at > timedelta(seconds=item.route.reopen_within):
        return None
    await lifecycle.reopen(bot, recent, OPENER)  # a conditional transition: of two replicas one reopens
    return await incidents.open_with_key(bot.db, item.dedup_key)


def _title(item: Routed) -> str:
    title = " ".join(item.title.split())
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1] + "…"
    return title if any(ch.isalnum() for ch in title) else f"Alert from {item.integration}"


async def _opened(bot, item: Routed) -> Incident:
    config = bot.config
    request = OpenRequest(
        severity=severity_for(item, config), title=_title(item), services=[item.route.service] if item.route.service else [],
        description=views.description(item.integration, item.description, item.source_url, len(item.alerts)),
        playbook=item.route.playbook, user_id=OPENER, channel_id=config.incidents_channel or config.slack.ops_channel or "",
        transport="slack" if "slack" in bot.messengers else "console", team_id="", dedup_key=item.dedup_key, origin=ORIGIN,
        announce_later=True,  # the sender's answer must not wait on Slack: the headline is a job
    )
    opened = await open_or_join(bot, request)
    if opened.incident is None:
        raise NotOpened(str(opened.reply.text)[:200])
    return opened.incident


async def _told(bot, incident: Incident, item: Routed, changes: alert_list.Changes, now) -> None:
    """Each alert, each time it starts firing, once on the incident's timeline, and each that stops while
    others of the group still fire (the group's end is said once, by _resolution). Nothing for a plain repeat."""
    for alert in changes.started:  # keyed by its start: a second replica's entry for it is not written
        started = alert.starts_at.isoformat() if alert.starts_at else "-"
        data = {"fingerprint": alert.fingerprint, "labels": alert.labels, "source_url": alert.source_url, "integration": item.integration}
        entry = incidents.Entry("alert", OPENER, alert.title, data, key=f"alert:{incident.id}:{alert.fingerprint}:{started}")
        await incidents.add_entry(bot.db, incident.id, entry, now)
    if item.status == "firing":
        for alert in changes.stopped:
            started = alert.starts_at.isoformat() if alert.starts_at else "-"
            entry = incidents.Entry("alert_resolved", OPENER, alert.title, {"fingerprint": alert.fingerprint},
                                    key=f"alert.resolved:{incident.id}:{alert.fingerprint}:{started}")
            await incidents.add_entry(bot.db, incident.id, entry, now)


async def _resolution(bot, incident: Incident, item: Routed, now) -> None:
    """Every alert is resolved: said once on the timeline (keyed by the incident's plan and the alerts' last start).
    What follows (the incident resolved by auto_resolve, or a Resolve button in its channel) is a job booked
    first, run after the sender is answered (resolution.py)."""
    if incident.state is IncidentState.resolved:
        return
    starts = max((a.starts_at for a in item.alerts if a.starts_at), default=None)
    key = f"alerts.resolved:{incident.id}:{incident.escalation_plan}:{starts.isoformat() if starts else '-'}"
    await resolution.book(bot.db, resolution.key_of(incident.id, incident.escalation_plan, starts), now, incident_id=incident.id,
                          integration=item.integration, count=len(item.alerts), auto_resolve=item.route.auto_resolve)
    sentence = views.resolved_sentence(item.integration, len(item.alerts))
    entry = incidents.Entry("alerts_resolved", OPENER, sentence, {"integration": item.integration, "alerts": len(item.alerts)}, key=key)
    await incidents.add_entry(bot.db, incident.id, entry, now)
    bot.scheduler.wake()
