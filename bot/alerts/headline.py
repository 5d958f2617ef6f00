"""An alert incident's alerts on its headline (and /incident show), for the incident slice's headline notes.

Registered in app.py as a headline note (bot.headline_notes): the incident slice asks whenever it draws
the headline and never reads this slice's tables. Bounded: the first MAX_LISTED alerts (firing first),
then how many more. A notification that changes the list books a redraw (redraw.py).
"""
from __future__ import annotations

from bot.alerts import alert_list, views
from bot.incident.models import Incident

MAX_LISTED = 10


async def note(bot, incident: Incident) -> list:
    if not (incident.dedup_key or "").startswith("alert:"):
        return []  # only alert incidents have a list (routing.dedup_key): no query for the others
    rows, total, firing = await alert_list.listed(bot.db, incident.id, MAX_LISTED)
    return views.alert_list(rows, total, firing, bot.config, bot.clock.now()) if rows else []
