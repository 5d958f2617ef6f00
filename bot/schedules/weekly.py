"""What the weekly check reads (runbook 004 "Weekly Checks", runbook 003 weekly checklist):
database size and its trend, slow statements, the largest tables, and a restore test of the
newest verified backup into a scratch database (runbook 003 "Test backup restoration").

The restore test goes into `opsbot_restore_test_<database>`, a scratch database the backup
slice creates and marks as its own; the next week's test overwrites it.
"""
from __future__ import annotations

import time

import asyncpg

from bot.redaction import redact_cut
from bot.schedules.readings import Item

GROWTH_WARN = 50.0  # % in a week: worth a look
TABLES_SHOWN = 3


def scratch_name(database: str) -> str:
    return f"opsbot_restore_test_{database.replace('-', '_')}"[:56]


async def size_items(bot, previous: dict) -> list[Item]:
    from bot.database import DatabaseError
    from bot.database.status import status

    items = []
    for name, database in bot.config.databases.items():
        key = f"size:{name}"
        try:
            reading = await status(name, database)
        except DatabaseError as exc:
            items.append(Item(key, f"database {name} size", "critical", str(exc), database.service))
            continue
        before = (previous.get(key) or {}).get("number")
        trend, grade = "no earlier reading", "ok"
        if before:
            growth = 100.0 * (reading.size_bytes - before) / before
            trend = f"{growth:+.1f}% since the last weekly check"
            grade = "warning" if growth >= GROWTH_WARN else "ok"
        items.append(Item(key, f"database {name} size", grade, f"{reading.size} ({trend})", database.service, float(reading.size_bytes)))
    return items


async def slow_items(bot) -> list[Item]:
    from bot.database import DatabaseError
    from bot.database.slow import slow
    from bot.database.tables import largest_tables

    items = []
    for name, database in bot.config.databases.items():
        try:
            found = await slow(name, database)
            tables = await largest_tables(name, database, limit=TABLES_SHOWN)
        except DatabaseError as exc:
            items.append(Item(f"slow:{name}", f"database {name} statements", "critical", str(exc), database.service))
            continue
        running = f"{found.matching} running longer than {found.slow_after:g} s"
        if found.top:
            worst = found.top[0]
            running += f"; slowest by mean: {worst.mean_ms:.0f} ms over {worst.calls} calls"
        elif found.top_note:
            running += f"; {found.top_note.rstrip('.')}"
        items.append(Item(f"slow:{name}", f"database {name} statements", "warning" if found.matching else "ok", running, database.service))
        largest = ", ".join(f"{t.schema}.{t.name} {t.total}" for t in tables) or "no tables"
        items.append(Item(f"tables:{name}", f"database {name} largest tables", "ok", largest, database.service))
    return items


async def restore_test_items(bot) -> list[Item]:
    from bot.backup.dump import BackupError
    from bot.backup.restore import restore_backup
    from bot.backup.service import list_backups

    items = []
    for name in bot.config.databases:
        key = f"restore-test:{name}"
        verified = [b for b in await list_backups(bot.db, name, limit=50) if b.verified]
        if not verified:
            items.append(Item(key, f"restore test of {name}", "critical", "no verified backup to restore"))
            continue
        newest = max(verified, key=lambda b: b.created_at)
        scratch = scratch_name(name)
        started = time.perf_counter()
        try:
            target = await restore_backup(bot, newest, into=scratch)
            tables = await _tables_in(target.dsn)
        except (BackupError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = redact_cut(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__, 300)
            items.append(Item(key, f"restore test of {name}", "critical", f"backup #{newest.id} did not restore: {reason}"))
            continue
        took = time.perf_counter() - started
        detail = f"backup #{newest.id} restored into {scratch} in {took:.1f} s: {tables} tables"
        items.append(Item(key, f"restore test of {name}", "ok" if tables else "warning", detail, None, float(tables)))
    return items


async def _tables_in(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ))
    finally:
        await conn.close()


async def weekly_items(bot, *, previous: dict) -> list[Item]:
    """Each part on its own, as the daily check's: one that fails is an item, not a missing post."""
    parts = [("sizes", size_items(bot, previous)), ("statements", slow_items(bot)), ("restore test", restore_test_items(bot))]
    items: list[Item] = []
    for name, coro in parts:  # one after another: the restore test should not compete with the reads
        try:
            items.extend(await coro)
        except Exception as exc:
            items.append(Item(f"part:{name}", name, "warning", f"could not be read ({exc.__class__.__name__})"))
    return items
