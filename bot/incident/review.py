"""/incident postmortem: runbook 003's Post-Incident Review, written from what the bot saw; /incident rootcause."""
from __future__ import annotations

import asyncio
from pathlib import Path

from bot.incident import service
from bot.incident.lifecycle import clean
from bot.incident.models import Incident
from bot.incident.notify import channel_of
from bot.incident.postmortem import load_template, render_postmortem
from bot.incident.views import done
from bot.pipeline.markup import Mention, Text
from bot.pipeline.reply import FileAttachment, Outcome, Reply

ROOT_CAUSE = "rootcause"  # the timeline entry /incident rootcause writes; the newest is the postmortem's Root Cause


async def postmortem(bot, incident: Incident, user: str, asked_in: str) -> Reply:
    """The review, stored and uploaded to the incident's own channel (with none, the incidents channel
    where its headline is), wherever it was asked: asked elsewhere, the answer says where, to the asker only."""
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
    home = channel_of(incident)
    where = Mention(home, "channel")
    if not where.valid:  # no channel, or the console's (an incident opened there): where it was typed
        home = ""
    if not home or home == asked_in:
        reply = done(f"Postmortem draft for {incident.ref}, from its timeline: fill in root cause, impact and lessons.")
    else:
        reply = done(Text(f"Postmortem draft for {incident.ref}, from its timeline, is in ", where,
                          ": fill in root cause, impact and lessons."), ephemeral=True)
    reply.file = FileAttachment(f"{incident.ref}-postmortem.md", markdown, channel=home or None)
    return reply


async def root_cause(bot, incident: Incident, user: str, text: str) -> Reply:
    """The postmortem's Root Cause: a timeline entry, the newest one counts (also once resolved)."""
    text = clean(text)
    if not text:
        return Reply.refusal(f"/incident rootcause needs text, e.g. /incident rootcause {incident.id} connection pool exhausted.")
    await service.add_entry(bot.db, incident.id, service.Entry(ROOT_CAUSE, user, text, {"milestone": "root_cause"}), bot.clock.now())
    return done(f"Root cause of {incident.ref} recorded; the postmortem shows it under Root Cause.", ephemeral=True)
