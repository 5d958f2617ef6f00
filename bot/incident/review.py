"""/incident postmortem: runbook 003's Post-Incident Review, written from what the bot saw."""
from __future__ import annotations

import asyncio
from pathlib import Path

from bot.incident import service
from bot.incident.models import Incident
from bot.incident.postmortem import load_template, render_postmortem
from bot.incident.views import done
from bot.pipeline.reply import FileAttachment, Outcome, Reply


async def postmortem(bot, incident: Incident, user: str) -> Reply:
    now = bot.clock.now()
    entries = await service.timeline(bot.db, incident.id)
    followups = await service.followups(bot.db, incident.id)
    template = None
    path = bot.config.incidents.postmortem_template
    try:
        if path:
            template = await asyncio.to_thread(load_template, path, Path(bot.settings.config_path).resolve().parent)
        # A replaced template is user code (sandboxed): rendered off the event loop.
        markdown = await asyncio.to_thread(render_postmortem, incident, entries, followups, config=bot.config, now=now,
                                           template_text=template)
    except ValueError as exc:
        return Reply.refusal(f"The postmortem template cannot be used: {str(exc)[:200]}", Outcome.error)
    await service.set_fields(bot.db, incident.id, now, postmortem=markdown, postmortem_at=now)
    await service.add_entry(bot.db, incident.id, service.Entry("postmortem", user, "Postmortem drafted"), now)
    reply = done(f"Postmortem draft for {incident.ref}, from its timeline: fill in root cause, impact and lessons.")
    reply.file = FileAttachment(f"{incident.ref}-postmortem.md", markdown)
    return reply
