"""Idle connections (runbooks 000 and 003): listing the ones that match, and terminating exactly those.

The bot's own connections (its pools and its direct connections: bot.storage.OWN_BACKENDS, by pid and
backend_start) are never listed nor terminated; application_name decides nothing, since any client may
set it to "opsbot". A backend is named by its pid *and* its backend_start: a pid is reused by a later
connection, which must never be killed in its place. Terminating checks each backend again,
in the statement that signals it, and then waits until it is gone.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bot.config.data_models import Database
from bot.database.connection import connect, reading
from bot.database.display import NAME_CHARS, age, one_line
from bot.storage import OWN_BACKENDS

MAX_BACKENDS = 100  # listed in one plan; the oldest first
GONE_WITHIN = 5.0  # seconds a terminated backend has to leave pg_stat_activity
IDLE = ("idle",)
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")


def _not_own(pids: int, starts: int) -> str:
    """The condition that spares opsbot's own connections: parameters $pids, $starts and the one after
    (the secret application names of its running dump and restore clients) are own_backends()."""
    return f"""
  AND NOT EXISTS (SELECT 1 FROM unnest(${pids}::int[], ${starts}::timestamptz[]) AS own(pid, started)
                  WHERE own.pid = a.pid AND own.started = a.backend_start)
  AND NOT (a.application_name = ANY(${starts + 1}::text[]))"""


IDLE_QUERY = f"""
SELECT pid, usename, application_name, state, backend_start,
       EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8 AS idle_seconds,
       count(*) OVER () AS matching
FROM pg_stat_activity a
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'{_not_own(4, 5)}
  AND state = ANY($1::text[])
  AND state_change < clock_timestamp() - make_interval(secs => $2::float8)
ORDER BY state_change, pid
LIMIT $3
"""

# Each statement runs on its own (autocommit), so it sees pg_stat_activity as it is now.
LOOK_QUERY = """
SELECT backend_start, state, EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8 AS idle_seconds
FROM pg_stat_activity
WHERE pid = $1 AND datname = current_database()
"""
TERMINATE_QUERY = f"""
SELECT pg_terminate_backend(pid) AS signalled
FROM pg_stat_activity a
WHERE pid = $1 AND backend_start = $2 AND datname = current_database() AND pid <> pg_backend_pid(){_not_own(5, 6)}
  AND state = ANY($3::text[])
  AND state_change < clock_timestamp() - make_interval(secs => $4::float8)
"""
ALIVE_QUERY = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2"


def states(idle_in_transaction: bool) -> tuple[str, ...]:
    """Plain idle connections (runbook 000), or, asked for, those idle inside a transaction (runbook 003)."""
    return IDLE_IN_TRANSACTION if idle_in_transaction else IDLE


@dataclass(frozen=True)
class Backend:
    pid: int
    backend_start: datetime
    user: str
    application: str
    state: str
    idle_seconds: float

    def as_step(self) -> dict:
        return {
            "pid": self.pid,
            "backend_start": self.backend_start.isoformat(),
            "user": self.user,
            "application": self.application,
            "state": self.state,
            "age_seconds": round(self.idle_seconds, 1),
        }


def own_backends() -> tuple[list[int], list[datetime], list[str]]:
    """opsbot's own connections now, as the arrays the queries take: pids, backend_starts, and the
    secret application names of the dump and restore clients running now."""
    own = OWN_BACKENDS.snapshot()
    return [pid for pid, _ in own], [started for _, started in own], OWN_BACKENDS.names()


async def idle_backends(name: str, database: Database, older_than: float, idle_in_transaction: bool) -> tuple[list[Backend], int]:
    """The matching backends of this database (not opsbot's own), longest idle first, and how many match in all."""
    async with reading(name, database) as conn:
        rows = await conn.fetch(IDLE_QUERY, list(states(idle_in_transaction)), float(older_than), MAX_BACKENDS, *own_backends())
    backends = [
        Backend(
            pid=row["pid"],
            backend_start=row["backend_start"],
            user=one_line(row["usename"], NAME_CHARS),
            application=one_line(row["application_name"], NAME_CHARS),
            state=row["state"],
            idle_seconds=row["idle_seconds"],
        )
        for row in rows
    ]
    return backends, (rows[0]["matching"] if rows else 0)


@dataclass(frozen=True)
class Termination:
    pid: int
    result: str  # terminated | skipped (gone, busy or replaced since: rightly left alone) | failed
    sentence: str  # "pid 123 (app, psql): terminated ..." / "...: skipped, it is active now."

    @property
    def terminated(self) -> bool:
        return self.result == "terminated"


async def terminate(name: str, database: Database, backends: list[dict], older_than: float, idle_in_transaction: bool) -> list[Termination]:
    """Terminate each of `backends` (plan steps: pid, backend_start iso, ...) that is still the same connection
    and still matches; one Termination per backend, in order, saying whether it died and, if not, why."""
    wanted = list(states(idle_in_transaction))
    outcomes = []
    async with connect(name, database) as conn:
        for step in backends:
            outcomes.append(await _terminate_one(conn, step, wanted, older_than))
    return outcomes


async def _terminate_one(conn: asyncpg.Connection, step: dict, wanted: list[str], older_than: float) -> Termination:
    pid = int(step["pid"])
    started = datetime.fromisoformat(step["backend_start"])
    label = f"pid {pid} ({step.get('user') or '?'}, {step.get('application') or 'no application name'})"
    try:
        signalled = await conn.fetchval(TERMINATE_QUERY, pid, started, wanted, float(older_than), *own_backends())
    except asyncpg.InsufficientPrivilegeError as exc:
        return Termination(pid, "failed", f"{label}: not terminated, opsbot's database user may not ({one_line(str(exc), 120)}).")
    if not signalled:
        return Termination(pid, "skipped", f"{label}: skipped, {await _why_not(conn, pid, started, wanted, older_than)}.")
    deadline = time.monotonic() + GONE_WITHIN
    while await conn.fetchval(ALIVE_QUERY, pid, started):
        if time.monotonic() > deadline:
            return Termination(pid, "failed", f"{label}: signalled, but still connected after {GONE_WITHIN:g} s.")
        await asyncio.sleep(0.05)
    return Termination(pid, "terminated", f"{label}: terminated (was {step.get('state', 'idle')} for {age(step.get('age_seconds'))} when planned).")


async def _why_not(conn: asyncpg.Connection, pid: int, started: datetime, wanted: list[str], older_than: float) -> str:
    row = await conn.fetchrow(LOOK_QUERY, pid)
    if row is None:
        return "it had already disconnected"
    if row["backend_start"] != started:
        return "the pid now belongs to a newer connection"
    if (pid, started) in OWN_BACKENDS.snapshot():
        return "it is one of opsbot's own connections"
    if row["state"] not in wanted:
        return f"it is {row['state'] or 'not a client'} now"
    if row["idle_seconds"] is not None and row["idle_seconds"] < older_than:
        return f"it was busy {age(row['idle_seconds'])} ago"
    return "it no longer matches"
