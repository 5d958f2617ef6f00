"""/db status: connections against max_connections (runbook 000: 80 % / 90 %), size, the longest transaction."""
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

    @property
    def percent(self) -> float:
        return 100.0 * self.server_total / self.max_connections if self.max_connections else 0.0


async def status(name: str, database: Database) -> Status:
    async with reading(name, database) as conn:
        row = await conn.fetchrow(STATUS_QUERY)
        longest = await conn.fetchrow(LONGEST_QUERY)
    percent = 100.0 * row["server_total"] / row["max_connections"] if row["max_connections"] else 0.0
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
    )
