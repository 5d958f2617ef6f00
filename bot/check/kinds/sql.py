"""sql: a read-only, parameterised query whose first column of its first row is graded (runbooks 000, 003, 004).

`SELECT count(*) FROM payments WHERE status = $1 AND created_at < now() - interval '15 minutes'`
with params [pending] counts stuck payments; `SELECT EXTRACT(EPOCH FROM now() - MAX(updated_at))
FROM documents` says how stale the data is, in seconds. The query runs in a READ ONLY
transaction under the database's statement_timeout, its params bound, never pasted in.
"""
from __future__ import annotations

import datetime
import decimal

from bot.check.result import Finding
from bot.config.models import SqlCheck
from bot.database import DatabaseError
from bot.database.connection import reading


async def run(check: SqlCheck, ctx) -> list[Finding]:
    databases = getattr(ctx, "databases", None) or {}
    database = databases.get(check.database)
    if database is None:
        return [Finding("critical", f"database {check.database} is not in app.yaml's databases")]
    try:
        async with reading(check.database, database) as conn:
            row = await conn.fetchrow(check.query, *check.params)
    except DatabaseError as exc:
        return [Finding("critical", str(exc))]
    if row is None or len(row) == 0:
        return [Finding("critical", "the query returned no rows")]
    reading_value, unit = _number(row[0]), check.unit
    if reading_value is None:
        if row[0] is None:
            return [Finding("critical", "the query returned NULL (no data at all?)")]
        return [Finding("critical", f"the query returned a {type(row[0]).__name__}, not a number; return a count or seconds")]
    if isinstance(row[0], datetime.timedelta) and not unit:
        unit = "s"
    status = check.value.grade(reading_value)
    detail = f"{_shown(reading_value)} {unit}".strip()
    limits = [f"{label} at {_shown(limit)}" for label, limit in (("warning", check.value.warn), ("critical", check.value.critical)) if limit is not None]
    if status != "ok" and limits:
        detail += f" ({', '.join(limits)})"
    return [Finding(status, detail)]


def _number(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return None


def _shown(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:.1f}"
