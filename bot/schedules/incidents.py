"""A red reading of a schedule opens one incident, and says so on it when it is green again.

One open row per schedule and reading (schedule_incidents): a reading red on ten mornings
opens one incident, not ten. The incident is opened through the incident slice like any
other, so it escalates by its severity; a reading whose service is in a maintenance window
is not red (its status is "maintenance") and opens nothing.

The reading's key is the incident's de-duplication key, so two schedules (or two replicas)
reading the same failing check in the same minute open one incident between them: the
database lets one opening win, and the other reading goes on that incident's timeline.
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update

from bot.incident import service as incidents
from bot.incident.notify import channel_of, messenger_for
from bot.incident.opening import OpenRequest, open_or_join
from bot.pipeline.reply import Actions, Button, Reply, Section
from bot.schedules.models import ScheduleIncident

log = logging.getLogger(__name__)
OPENER = "opsbot"  # who the timeline says opened it


async def reconcile(bot, name: str, schedule, items: list, channel: str, transport: str) -> list[str]:
    """Open incidents for newly critical readings, and tell the open ones whose reading is green again.
    Returns sentences for the post ("opened INC-4 for web http")."""
    said: list[str] = []
    now = bot.clock.now()
    by_key = {item.key: item for item in items}
    # Open rows of every schedule: a reading two schedules both watch has one incident between them.
    async with bot.db.sessions() as session:
        open_rows = list((await session.execute(select(ScheduleIncident).where(ScheduleIncident.cleared_at.is_(None)))).scalars())
    tracked = {row.item: row for row in open_rows}
    for item in items:
        if item.status != "critical" or item.key in tracked:
            continue
        title = f"{item.label}: {item.detail}"[:140]
        request = OpenRequest(
            severity=schedule.open_incident, title=title, services=[item.service] if item.service in bot.config.services else [],
            description=f"Opened by the {name} schedule: {item.label} is critical ({item.detail}).", playbook=None,
            user_id=OPENER, channel_id=channel, transport=transport, team_id="", dedup_key=item.key, origin="schedule",
        )
        opened = await open_or_join(bot, request)
        incident = opened.incident
        if incident is None:
            log.error("schedule %s could not open an incident for %s: %s", name, item.key, opened.reply.text[:200])
            continue
        if opened.joined:  # its opener tracks it; this reading is on its timeline
            said.append(f"{incident.ref} is open already for {item.label}")
            continue
        async with bot.db.sessions() as session, session.begin():
            session.add(ScheduleIncident(schedule=name, item=item.key, incident_id=incident.id, opened_at=now))
        said.append(f"opened {incident.ref} for {item.label}")
    for key, row in tracked.items():
        item = by_key.get(key)
        # Only a green reading clears: one in maintenance is still red underneath, and stays tracked.
        if item is None or item.status != "ok" or row.schedule != name:
            continue
        async with bot.db.sessions() as session, session.begin():
            cleared = await session.execute(
                update(ScheduleIncident).where(ScheduleIncident.id == row.id, ScheduleIncident.cleared_at.is_(None)).values(cleared_at=now)
            )
        if cleared.rowcount != 1:
            continue
        try:
            incident = await incidents.get(bot.db, row.incident_id)
        except incidents.NoSuchIncident:
            continue
        if incident.state == "resolved":
            continue
        sentence = f"{item.label} is green again ({item.detail}), says the {name} schedule."
        await incidents.add_entry(bot.db, incident.id, incidents.Entry("note", OPENER, sentence, key=f"schedule.green:{row.id}"), now)
        try:
            await messenger_for(bot, incident).post(
                channel_of(incident),
                Reply(text=f"{incident.ref}: {sentence}", blocks=[
                    Section(f"{incident.ref}: {sentence} Resolve it if nothing else is wrong."),
                    Actions((Button("Resolve", "incident.resolve", str(incident.id), "primary"),)),
                ]),
            )
        except Exception as exc:  # the note is on the timeline either way
            log.warning("could not post on %s: %s", incident.ref, exc)
        said.append(f"{incident.ref}: {item.label} is green again")
    return said
