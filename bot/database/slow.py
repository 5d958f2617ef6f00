"""/db slow: statements running longer than slow_after (runbook 001), and pg_stat_statements' slowest on average."""
from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from bot.config.data_models import Database
from bot.database.connection import reading
from bot.database.display import NAME_CHARS, one_line
from bot.database.names import quote_ident

MAX_LISTED = 20
TOP_STATEMENTS = 10

RUNNING_QUERY = """
SELECT pid, usename, application_name, state,
       EXTRACT(EPOCH FROM clock_timestamp() - query_start)::float8 AS seconds,
       left(query, 4000) AS query,
       count(*) OVER () AS matching
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state IS NOT NULL AND state <> 'idle'
  AND query_start < clock_timestamp() - make_interval(secs => $1::float8)
ORDER BY query_start
LIMIT $2
"""

EXTENSION_QUERY = """
SELECT n.nspname, e.extversion
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""

TOP_QUERY = """
SELECT calls, {mean}::float8 AS mean_ms, {total}::float8 AS total_ms, left(query, 4000) AS query
FROM {view}
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {mean} DESC
LIMIT $1
"""


@dataclass(frozen=True)
class Running:
    pid: int
    user: str
    application: str
    state: str
    seconds: float
    query: str  # one line, redacted and cut


@dataclass(frozen=True)
class TopStatement:
    calls: int
    mean_ms: float
    total_ms: float
    query: str


@dataclass
class Slow:
    slow_after: float
    running: list[Running] = field(default_factory=list)
    matching: int = 0  # how many run longer than slow_after; at most MAX_LISTED are listed
    top: list[TopStatement] = field(default_factory=list)
    top_note: str | None = None  # why there is no top list, when there is none


async def slow(name: str, database: Database) -> Slow:
    result = Slow(slow_after=database.slow_after)
    async with reading(name, database) as conn:
        rows = await conn.fetch(RUNNING_QUERY, database.slow_after, MAX_LISTED)
        result.matching = rows[0]["matching"] if rows else 0
        result.running = [
            Running(
                pid=row["pid"],
                user=one_line(row["usename"], NAME_CHARS),
                application=one_line(row["application_name"], NAME_CHARS),
                state=row["state"],
                seconds=row["seconds"],
                query=one_line(row["query"]),
            )
            for row in rows
        ]
        extension = await conn.fetchrow(EXTENSION_QUERY)
        if extension is None:
            result.top_note = (
                f"pg_stat_statements is not installed in {name}, so there are no averages per statement"
                "; CREATE EXTENSION pg_stat_statements adds them."
            )
            return result
        new_columns = tuple(int(part) for part in extension["extversion"].split(".")[:2]) >= (1, 8)
        query = TOP_QUERY.format(
            mean="mean_exec_time" if new_columns else "mean_time",
            total="total_exec_time" if new_columns else "total_time",
            view=f"{quote_ident(extension['nspname'])}.pg_stat_statements",
        )
        try:
            async with conn.transaction():  # a savepoint: a refusal here must not end the read
                top = await conn.fetch(query, TOP_STATEMENTS)
        except asyncpg.ObjectNotInPrerequisiteStateError:
            result.top_note = (
                f"pg_stat_statements is installed in {name} but not loaded (shared_preload_libraries), "
                "so there are no averages per statement."
            )
            return result
        except asyncpg.InsufficientPrivilegeError:
            result.top_note = f"The user opsbot connects to {name} as may not read pg_stat_statements."
            return result
        result.top = [TopStatement(row["calls"], row["mean_ms"], row["total_ms"], one_line(row["query"])) for row in top]
    return result
