"""What the daily check reads (runbook 001 "Morning checks", runbook 003 daily checklist), as items.

An item has a stable key (so runs compare), a status and one line of detail. Each reading
is taken through the slice that owns it (checks, database, backups, incidents), never
their tables, and a reading that fails is itself an item, so one dead part never hides
the rest.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import regex

from bot.config.target_models import target_of
from bot.docker_engine import DockerUnavailable
from bot.memory_kill import memory_kill
from bot.redaction import redact_cut
from bot.targets import LogQuery, TargetError

log = logging.getLogger(__name__)

# Runbook 001 morning checks: `docker logs --since 24h | grep -i error | wc -l`.
ERROR_LINE = regex.compile(r"\b(error|exception|fatal|panic|traceback)\b", regex.IGNORECASE)
LOG_LINES = 5000  # at most this many of the newest lines are counted per container
ERRORS = {"warn": 1, "critical": 100}  # error lines since the last run
GRADE_RANK = {"ok": 0, "warning": 1, "critical": 2}
MAX_READINGS = 5  # a workload's readings shown on its one line, the worst first
MAX_DETAIL = 500  # characters of a platform's words on one item, as the check engine keeps
BACKUP_AGE = {"warn": 26 * 3600, "critical": 50 * 3600}  # a daily backup a little late, then a day missed


@dataclass
class Item:
    key: str  # stable across runs: "check:web/http", "db:app", "backup:app"
    label: str
    status: str  # ok | warning | critical | maintenance
    detail: str
    service: str | None = None
    number: float | None = None  # what the next run compares (restart count, size)

    def as_dict(self) -> dict:
        return asdict(self)


def _grade(value: float, limits: dict) -> str:
    return "critical" if value >= limits["critical"] else "warning" if value >= limits["warn"] else "ok"


async def check_items(bot, services: list[str]) -> list[Item]:
    """Every configured check (health endpoints, containers, disk and memory, sql checks, metrics)."""
    results = await bot.checks.run(bot.config, services)
    return [Item(f"check:{r.service}/{r.check}", f"{r.service} {r.check}", r.status, r.detail, r.service) for r in results]


async def database_items(bot) -> list[Item]:
    from bot.database import DatabaseError
    from bot.database.status import status

    items = []
    for name, database in bot.config.databases.items():
        try:
            reading = await status(name, database)
        except DatabaseError as exc:
            items.append(Item(f"db:{name}", f"database {name}", "critical", str(exc), database.service))
            continue
        detail = (
            f"connections {reading.server_total}/{reading.max_connections}, {reading.idle_in_transaction} idle in transaction, "
            f"size {reading.size}"
        )
        items.append(Item(f"db:{name}", f"database {name}", reading.grade, detail, database.service, float(reading.size_bytes)))
    return items


async def log_error_items(bot, since: datetime, now: datetime) -> list[Item]:
    """Error lines in each service's logs since the last run (at most a day back): a container's
    from the Docker Engine, any other target's through its platform adapter (bot/targets)."""
    since = max(since, now - timedelta(days=1))
    hours = max(1, round((now - since).total_seconds() / 3600))
    items = []
    for name, service in bot.config.services.items():
        found = target_of(service)
        if found is None:
            continue
        try:
            if found[0] == "container":
                lines = (await bot.checks.docker.logs(service.container, tail=LOG_LINES, since=since.timestamp())).splitlines()
                window = f"the last {hours} h"
            else:
                lines, window = await _target_log_lines(bot, found, (now - since).total_seconds(), hours)
        except (DockerUnavailable, TargetError) as exc:
            items.append(Item(f"logs:{name}", f"{name} logs", "warning", redact_cut(f"not read: {exc}", MAX_DETAIL), name))
            continue
        count = await asyncio.to_thread(_count_errors, lines)
        items.append(Item(f"logs:{name}", f"{name} logs", _grade(count, ERRORS), f"{count} error lines in {window}", name, float(count)))
    return items


async def _target_log_lines(bot, found: tuple, seconds: float, hours: int) -> tuple[list[str], str]:
    """The newest LOG_LINES lines within `seconds`, and how the window reads; a platform whose logs
    carry no timestamps (supervisord) gives its newest lines, and the window says so."""
    adapter = bot.checks.targets.for_platform(bot.config, found[0])
    if adapter.log_times:
        return (await adapter.logs(found[1], LogQuery(tail=LOG_LINES, since=seconds))).lines, f"the last {hours} h"
    lines = (await adapter.logs(found[1], LogQuery(tail=LOG_LINES))).lines
    return lines, f"its newest {len(lines)} lines (its logs carry no timestamps)"


def _count_errors(lines: list[str]) -> int:
    return sum(1 for line in lines[-LOG_LINES:] if ERROR_LINE.search(line[:2000]))


async def target_items(bot) -> list[Item]:
    """How each service that is not a container is doing, from its platform (a unit, a program, a
    workload and its pods): the same readings as the `container` check, graded by the worst."""
    items = []
    for name, service in bot.config.services.items():
        found = target_of(service)
        if found is None or found[0] == "container":
            continue
        key, label = f"target:{name}", f"{name} on {found[0]}"
        try:
            readings = await bot.checks.targets.for_platform(bot.config, found[0]).state(found[1])
        except TargetError as exc:
            items.append(Item(key, label, "warning", redact_cut(f"not read: {exc}", MAX_DETAIL), name))
            continue
        if not readings:
            continue
        shown = sorted(readings, key=lambda r: -GRADE_RANK[r.status])[:MAX_READINGS]
        detail = "; ".join((f"{r.part}: " if r.part else "") + r.detail for r in shown)
        if len(readings) > len(shown):
            detail += f"; and {len(readings) - len(shown)} more"
        # What a platform says (a spawn error, a waiting reason) is not the bot's text: redacted, then cut.
        items.append(Item(key, label, shown[0].status, redact_cut(detail, MAX_DETAIL), name))
    return items


async def container_items(bot, previous: dict) -> list[Item]:
    """Restarts since the last run and OOM kills, from Docker's own counters."""
    items = []
    for name, service in bot.config.services.items():
        if service.container is None:
            continue
        try:
            info = await bot.checks.docker.inspect(service.container)
        except DockerUnavailable as exc:
            items.append(Item(f"container:{name}", f"{name} container", "warning", f"not inspected: {exc}", name))
            continue
        if info is None:
            items.append(Item(f"container:{name}", f"{name} container", "critical", f"container {service.container} does not exist", name))
            continue
        count = int(info.get("RestartCount", 0))
        before = (previous.get(f"container:{name}") or {}).get("number")
        restarts = count - int(before) if before is not None and count >= before else count
        state = info.get("State", {})
        parts, status = [f"{restarts} restarts since the last run"], "warning" if restarts else "ok"
        killed = memory_kill(info)
        if killed:
            parts.append(killed)
            status = "critical"
        if not state.get("Running"):
            parts.append(f"not running ({state.get('Status', '?')})")
            status = "critical"
        items.append(Item(f"container:{name}", f"{name} container", status, ", ".join(parts), name, float(count)))
    return items


async def backup_items(bot, now: datetime) -> list[Item]:
    from bot.backup.service import list_backups

    items = []
    for name in bot.config.databases:
        verified = [b for b in await list_backups(bot.db, name, limit=50) if b.verified]
        if not verified:
            items.append(Item(f"backup:{name}", f"backup of {name}", "critical", "no verified backup on disk", None))
            continue
        newest = max(verified, key=lambda b: b.created_at)
        age = (now - newest.created_at).total_seconds()
        detail = f"newest verified backup #{newest.id} is {_age(age)} old"
        items.append(Item(f"backup:{name}", f"backup of {name}", _grade(age, BACKUP_AGE), detail, None, age))
    return items


async def deploy_items(bot, since: datetime) -> list[Item]:
    """The deploys and rollbacks since the last run, one line each (a failed one is a warning)."""
    from bot.deploy.service import since as deploys_since
    from bot.deploy.views import daily_line

    rows = await deploys_since(bot.db, since)
    if not rows:
        return [Item("deploys", "deploys since the last run", "ok", "none")]
    status = "ok" if all(row.state in ("success", "in_progress", "pending") for row in rows) else "warning"
    return [Item("deploys", "deploys since the last run", status, "; ".join(daily_line(row) for row in rows), None, float(len(rows)))]


async def incident_items(bot) -> list[Item]:
    from bot.incident.service import listing

    open_incidents = await listing(bot.db, include_resolved=False, limit=20)
    if not open_incidents:
        return [Item("incidents", "open incidents", "ok", "none open")]
    refs = ", ".join(f"{i.ref} {i.severity}" for i in open_incidents[:10])
    return [Item("incidents", "open incidents", "warning", f"{len(open_incidents)} open: {refs}", None, float(len(open_incidents)))]


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} d"


async def daily_items(bot, *, services: list[str], previous: dict, since: datetime, now: datetime) -> list[Item]:
    """The whole daily check; each part on its own, so one that fails is an item, not a missing post."""
    parts = [
        ("checks", check_items(bot, services)),
        ("databases", database_items(bot)),
        ("logs", log_error_items(bot, since, now)),
        ("containers", container_items(bot, previous)),
        ("targets", target_items(bot)),
        ("backups", backup_items(bot, now)),
        ("deploys", deploy_items(bot, since)),
        ("incidents", incident_items(bot)),
    ]
    results = await asyncio.gather(*(coro for _, coro in parts), return_exceptions=True)
    items: list[Item] = []
    for (name, _), result in zip(parts, results):
        if isinstance(result, BaseException):
            log.error("daily check part %s failed: %r", name, result)
            items.append(Item(f"part:{name}", name, "warning", f"could not be read ({result.__class__.__name__})"))
        else:
            items.extend(result)
    return items
