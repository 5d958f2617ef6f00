"""/db status: connections against max_connections (runbook 000: 80 % / 90 %), size, the longest transaction.

Without pg_read_all_stats (or superuser) a role sees only its own role's backends in pg_stat_activity:
the others show no database, state nor backend type, and "<insufficient privilege>" for a query. They
are counted as `hidden`, and the grade takes them as connections (at most: background processes are
among them), so a storm of another role's connections never reads OK.
"""
from __future__ import annotations

from dataclasses import dataclass

from bot.config.data_models import Database
from bot.database.connection import reading

STATUS_QUERY = """
SELECT
  count(*) FILTER (WHERE backend_type = 'client backend') AS server_total,
  count(*) FILTER (WHERE backend_type = 'client backend' AND datname = current_database()) AS total,
  count(*) FILTER (WHERE datname = current_database() AND state = 'active') AS active,
  count(*) FILTER (WHERE datname = current_database() AND state = 'idle') AS idle,
  count(*) FILTER (WHERE datname = current_database() AND state LIKE 'idle in transaction%') AS idle_in_transaction,
  count(*) FILTER (WHERE state IS NULL AND query = '<insufficient privilege>') AS hidden,
  current_setting('max_connections')::int AS max_connections,
  current_database() AS database_name,
  pg_database_size(current_database()) AS size_bytes,
  pg_size_pretty(pg_database_size(current_database())) AS size
FROM pg_stat_activity
"""

LONGEST_QUERY = """
SELECT pid, state, EXTRACT(EPOCH FROM now() - xact_start)::float8 AS seconds
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
ORDER BY xact_start
LIMIT 1
"""


@dataclass(frozen=True)
class Status:
    database: str  # the PostgreSQL database's own name
    server_total: int  # client connections on the whole server: what max_connections caps
    total: int  # of them, on this database
    active: int
    idle: int
    idle_in_transaction: int
    max_connections: int
    size: str  # pg_size_pretty
    size_bytes: int
    longest_transaction_seconds: float | None
    longest_transaction_pid: int | None
    longest_transaction_state: str | None
    grade: str  # ok | warning | critical, of percent against the database's connections thresholds
    hidden: int = 0  # backends of other roles whose details this role may not read (no pg_read_all_stats)

    @property
    def in_use(self) -> int:
        """Connections counted against max_connections: the hidden backends too, when there are any (at most)."""
        return self.server_total + self.hidden

    @property
    def percent(self) -> float:
        return 100.0 * self.in_use / self.max_connections if self.max_connections else 0.0


async def status(name: str, database: Database) -> Status:
    async with reading(name, database) as conn:
        row = await conn.fetchrow(STATUS_QUERY)
        longest = await conn.fetchrow(LONGEST_QUERY)
    in_use = row["server_total"] + row["hidden"]
    percent = 100.0 * in_use / row["max_connections"] if row["max_connections"] else 0.0
    return Status(
        database=row["database_name"],
        server_total=row["server_total"],
        total=row["total"],
        active=row["active"],
        idle=row["idle"],
        idle_in_transaction=row["idle_in_transaction"],
        max_connections=row["max_connections"],
        size=row["size"],
        size_bytes=row["size_bytes"],
        longest_transaction_seconds=longest["seconds"] if longest else None,
        longest_transaction_pid=longest["pid"] if longest else None,
        longest_transaction_state=longest["state"] if longest else None,
        grade=database.connections.grade(percent),
        hidden=row["hidden"],
    )
