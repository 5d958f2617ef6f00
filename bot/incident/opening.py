"""Opening an incident: validate, write INC-N, post the headline, make its channel, page, attach the playbook.

Only the row and its "opened" entry are the incident; everything after is announced on it.
A step that fails (Slack refuses a channel name, a group cannot be mentioned) is said in the
answer and the log, and the incident stays open and escalating: at 3 a.m. a missing channel
must not cost the page.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from anyascii import anyascii

from bot.config.incident_models import Playbook
from bot.config.models import AppConfig
from bot.incident import escalation, planning, service
from bot.incident.models import MAX_TEXT, MAX_TITLE, Incident
from bot.incident.lifecycle import headline_notes, pinned_headline_key, refresh_headline
from bot.incident.notify import channel_of, messenger_for, post_direct
from bot.incident.playbooks import post_checklist
from bot.incident.views import done, headline
from bot.pipeline.markup import Mention, Text, group
from bot.pipeline.messenger import ChannelAdmin, MessagePostFailed
from bot.pipeline.reply import Outcome, Reply, Section
from bot.redaction import redact_cut
from bot.schedule import Job, JobType
from bot.schedule import service as jobs

log = logging.getLogger(__name__)

SLUG_WORDS = re.compile(r"[a-z0-9]+")
MAX_CHANNEL_NAME = 80
ANNOUNCE_GRACE = timedelta(seconds=30)  # the first page waits this long at most for the headline and channel
ANNOUNCE = "incident.announce"
TOPIC_LIMIT = 250


class Refused(ValueError):
    """One sentence for the user; nothing was written."""


@dataclass(frozen=True)
class OpenRequest:
    severity: str
    title: str
    services: list[str]
    description: str
    playbook: str | None
    user_id: str
    channel_id: str
    transport: str
    team_id: str
    # What the incident is about (a schedule's reading, an alert's key): while one is open with this
    # key, opening again adds to its timeline and pages nobody (models.Incident.dedup_key).
    dedup_key: str | None = None
    # Who opened it: a person (/incident open), or automated detection ("schedule"; alerts later),
    # whose incidents alone a maintenance window keeps from paging (service.PERSON, service.origin_in).
    origin: str = "person"
    # The headline, channel, notifications and playbook as a job after the row is stored (ANNOUNCE), not
    # before the opener is answered: alert intake, whose sender (Alertmanager) times out and retries.
    announce_later: bool = False


@dataclass(frozen=True)
class Opened:
    incident: Incident | None  # None when refused
    reply: Reply
    joined: bool = False  # the key's incident was open already: the request went on its timeline instead


def validate(config: AppConfig, severity: str, title: str, services: list[str], playbook: str | None) -> tuple[str, str, str | None]:
    """(severity name, title, playbook name) or Refused with the sentence."""
    found = config.severity(severity)
    if found is None:
        known = ", ".join(f"{k} ({', '.join(s.aliases)})" if s.aliases else k for k, s in config.severities.items())
        raise Refused(f"There is no severity '{severity[:20]}'. Severities: {known}.")
    title = " ".join(title.split())
    if not title:
        raise Refused("An incident needs a title: /incident open P1 <title> [--service S] [--playbook NAME].")
    if len(title) > MAX_TITLE:
        raise Refused(f"A title is at most {MAX_TITLE} characters and this one has {len(title):,}; put the details in an update.")
    title = redact_cut(title, MAX_TITLE)  # a pasted secret must not name a channel, nor be paged around
    if not any(ch.isalnum() for ch in title):
        raise Refused("A title needs words, not only symbols or emoji: say what is broken.")
    unknown = [s for s in services if s not in config.services]
    if unknown:
        raise Refused(f"Unknown service '{unknown[0][:40]}'. Services: {', '.join(config.services) or 'none configured'}.")
    if playbook is not None and playbook not in config.playbooks:
        raise Refused(f"There is no playbook '{playbook[:40]}'. Playbooks: {', '.join(config.playbooks) or 'none configured'}.")
    return found[0], title, playbook or suggested_playbook(config, services, found[0])


def suggested_playbook(config: AppConfig, services: list[str], severity: str) -> str | None:
    """The first playbook naming one of the services, preferring one written for this severity."""
    matching = [name for name, playbook in config.playbooks.items() if set(playbook.services) & set(services)]
    for name in matching:
        suggested = config.playbooks[name].severity
        if suggested and (config.severity(suggested) or ("",))[0] == severity:
            return name
    return matching[0] if matching else None


def ascii_letters(title: str) -> str:
    """Letters and digits transliterated to ASCII by anyascii ("Café" -> "Cafe", "Ошибка" -> "Oshibka");
    anything else (punctuation, emoji, which anyascii would spell out as ":boom:") becomes a space."""
    return "".join(anyascii(ch) if unicodedata.category(ch)[0] in "LN" else " " for ch in title)


def channel_name(prefix: str, number: int, title: str, attempt: int = 0) -> str:
    """`inc-42-db-down`: Slack's rules (lowercase letters, digits, - and _, at most 80) for any title."""
    slug = "-".join(SLUG_WORDS.findall(ascii_letters(title).lower()))
    head = f"{prefix}-{number}"
    tail = f"-{attempt + 1}" if attempt else ""
    room = MAX_CHANNEL_NAME - len(head) - len(tail) - 1
    slug = slug[:room].rstrip("-")
    return f"{head}-{slug}{tail}" if slug else f"{head}{tail}"


def channel_names(prefix: str, number: int, title: str, count: int) -> list[str]:
    """`count` different names to try in turn after `name_taken`: a suffix that only repeats an earlier
    name (a title ending in "replica 2", cut to fit 80 characters) is skipped, not tried again."""
    names: list[str] = []
    for attempt in range(count * 3):
        name = channel_name(prefix, number, title, attempt)
        if name not in names:
            names.append(name)
        if len(names) == count:
            break
    return names


async def open_incident(bot, request: OpenRequest) -> Reply:
    return (await open_incident_record(bot, request))[1]


async def open_incident_record(bot, request: OpenRequest) -> tuple[Incident | None, Reply]:
    """The incident opened (None when refused) and the answer for whoever asked."""
    opened = await open_or_join(bot, request)
    return opened.incident, opened.reply


async def open_or_join(bot, request: OpenRequest) -> Opened:
    """Open an incident, or, when its dedup key's incident is open, put the request on that one's timeline."""
    try:
        severity, title, playbook = validate(bot.config, request.severity, request.title, request.services, request.playbook)
    except Refused as exc:
        return Opened(None, Reply.refusal(str(exc)))
    now = bot.clock.now()
    try:
        incident = await _open_row(bot, request, severity, title, playbook, now)
    except service.AlreadyOpen as taken:
        return await _join(bot, taken.incident, request, title, now)
    if request.announce_later:
        bot.scheduler.wake()
        return Opened(incident, done(f"Opened {incident.ref} ({severity}): {title}; announced shortly.", ephemeral=True))
    problems: list[str] = []
    try:
        incident = await _announce(bot, incident, request.user_id, playbook, problems)
    finally:
        await planning.release_first(bot, incident)  # announced or not, the first page goes out now
    where = [" Its channel: ", Mention(incident.channel_id, "channel"), "."] if incident.channel_id else []
    sentence = Text(f"Opened {incident.ref} ({severity}): {title}. Escalation follows the {severity} matrix.", *where)
    reply = done(sentence, ephemeral=True)
    if problems:
        reply.blocks.append(Section("Not done: " + "; ".join(problems) + "."))
        reply.outcome = Outcome.warning
    return Opened(incident, reply)


async def _open_row(bot, request: OpenRequest, severity: str, title: str, playbook: str | None, now) -> Incident:
    async def then(session, opened: Incident) -> None:
        await planning.plan_in(session, bot, opened, now, hold_first_until=now + ANNOUNCE_GRACE)
        if request.announce_later:  # booked with the row: a replica dying after the commit leaves it to another
            await jobs.add(session, ANNOUNCE, f"{ANNOUNCE}:{opened.id}", now, {"incident": opened.id, "user": request.user_id, "playbook": playbook})

    return await service.open_incident(
        bot.db, title=title, severity=severity, services=request.services, description=redact_cut(request.description, MAX_TEXT),
        playbook=playbook, opened_by=request.user_id, transport=request.transport, team=request.team_id, now=now,
        headline_channel=bot.config.incidents_channel or request.channel_id, dedup_key=request.dedup_key, origin=request.origin,
        # No incident without its pages: planned in the same transaction, the first held until it is announced.
        then=then,
    )


async def _join(bot, incident: Incident, request: OpenRequest, title: str, now) -> Opened:
    """The key's incident is open: what this opener saw goes on its timeline. No headline, no channel,
    no pages: whoever the first opening paged is already on it."""
    data = {"dedup_key": request.dedup_key, "severity": request.severity, "services": request.services,
            "description": redact_cut(request.description, MAX_TEXT)}
    await service.add_entry(bot.db, incident.id, service.Entry("repeated", request.user_id, title, data), now)
    sentence = f"{incident.ref} is already open for this ({incident.severity}: {incident.title}); added to its timeline."
    return Opened(incident, done(sentence, ephemeral=True), joined=True)


async def run_announce(bot, job: Job) -> None:
    """An incident opened with announce_later: announced now, then its first page released. A run taken back
    after its headline went out (the ref is stored) does not post it again; one that died between the post
    and storing its ref posts a second headline, which beats none."""
    incident = await service.get(bot.db, int(job.payload["incident"]))
    if incident.headline_ref:
        return
    problems: list[str] = []
    try:
        await _announce(bot, incident, job.payload["user"], job.payload.get("playbook"), problems)
    finally:
        await planning.release_first(bot, incident)
    if problems:
        log.warning("%s announced, but not: %s", incident.ref, "; ".join(problems))


async def _announce(bot, incident: Incident, requester: str, playbook: str | None, problems: list[str]) -> Incident:
    """Headline, channel, notifications, playbook; what Slack refuses goes into `problems`."""
    messenger = messenger_for(bot, incident)
    try:
        ref = await messenger.post(incident.headline_channel, headline(incident, bot.config, await headline_notes(bot, incident)))
        await service.set_fields(bot.db, incident.id, bot.clock.now(), headline_ref=ref)
    except MessagePostFailed as exc:
        problems.append(f"the headline could not be posted in {incident.headline_channel} ({str(exc)[:60]})")
    incident = await service.get(bot.db, incident.id)
    if bot.config.incidents.create_channels and isinstance(messenger, ChannelAdmin):
        problems += await _make_channel(bot, messenger, incident, requester)
        incident = await service.get(bot.db, incident.id)
        if incident.channel_id:
            await refresh_headline(bot, incident)  # the headline was posted before its channel existed: link it
    problems += await _notify(bot, incident)
    if playbook:
        problems += await post_checklist(bot, incident, playbook)
    return incident


async def _make_channel(bot, messenger: ChannelAdmin, incident: Incident, requester: str) -> list[str]:
    settings = bot.config.incidents
    channel_id = None
    # name_taken: an older incident of the same number and title, another workspace bot
    for name in channel_names(settings.channel_prefix, incident.id, incident.title, 5):
        try:
            channel_id = await messenger.create_channel(name, private=settings.private_channels)
            break
        except MessagePostFailed as exc:
            if str(exc) != "name_taken":
                return [f"the incident channel was not created ({str(exc)[:60]})"]
    if channel_id is None:
        return ["the incident channel was not created (every name tried was taken)"]
    await service.set_fields(bot.db, incident.id, bot.clock.now(), channel_id=channel_id)
    problems = []
    users = {requester, *settings.invite}
    found = bot.config.severity(incident.severity)
    if found:
        users |= set((await escalation.targets(bot, found[1].escalation[0]))[1])
    try:
        await messenger.invite(channel_id, sorted(users))
    except MessagePostFailed as exc:
        problems.append(f"not everyone was invited ({str(exc)[:60]})")
    topic = f"{incident.ref} {incident.severity}: {incident.title}"[:TOPIC_LIMIT]
    try:
        await messenger.set_topic(channel_id, topic)
        copy = await messenger.post(channel_id, headline(await service.get(bot.db, incident.id), bot.config))
        # Kept so that the pinned copy is redrawn with the headline (no stale Acknowledge button).
        await service.add_entry(bot.db, incident.id, service.Entry("channel", "", f"Channel #{name} created",
                                                                   {"channel": channel_id, "name": name, "ref": copy,
                                                                    "private": settings.private_channels},
                                                                   key=pinned_headline_key(incident.id)), bot.clock.now())
        await messenger.pin(copy)
    except MessagePostFailed as exc:
        problems.append(f"the channel's topic or pinned headline failed ({str(exc)[:60]})")
    return problems


async def _notify(bot, incident: Incident) -> list[str]:
    """The severity's notify list: a channel gets the headline, a group is mentioned, a role's users get a message."""
    found = bot.config.severity(incident.severity)
    if not found or not found[1].notify:
        return []
    messenger = messenger_for(bot, incident)
    problems = []
    note = headline(incident, bot.config)
    for notify in found[1].notify:
        try:
            if notify.channel:
                await messenger.post(notify.channel, note)
            elif notify.group:
                line = Text(group(notify.group), f" {incident.ref} {incident.severity} is open: {incident.title}")
                await messenger.post(channel_of(incident), Reply(text=line, blocks=[Section(line)]))
            elif notify.role:
                for user in bot.config.roles[notify.role].users:
                    await post_direct(bot, messenger, user, note)
        except MessagePostFailed as exc:
            problems.append(f"notifying {notify.channel or notify.group or notify.role} failed ({str(exc)[:60]})")
    await service.add_entry(bot.db, incident.id, service.Entry("notified", "", "Notified " + ", ".join(
        n.channel or n.group or f"role {n.role}" for n in found[1].notify), {}), bot.clock.now())
    return problems


def playbook_of(config: AppConfig, name: str | None) -> Playbook | None:
    return config.playbooks.get(name) if name else None


JOBS = [JobType(ANNOUNCE, run_announce, lease=timedelta(minutes=2))]
