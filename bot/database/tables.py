"""/db tables: the ten largest tables, with their table and index sizes (runbook 001)."""
from __future__ import annotations

from dataclasses import dataclass

from bot.config.data_models import Database
from bot.database.connection import reading
from bot.database.display import NAME_CHARS, one_line

LARGEST = 10

TABLES_QUERY = """
SELECT n.nspname AS schema, c.relname AS name,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS total,
       pg_size_pretty(pg_table_size(c.oid)) AS table_size,
       pg_size_pretty(pg_indexes_size(c.oid)) AS index_size,
       GREATEST(c.reltuples, 0)::bigint AS rows_estimate
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY pg_total_relation_size(c.oid) DESC, n.nspname, c.relname
LIMIT $1
"""


@dataclass(frozen=True)
class TableSize:
    schema: str
    name: str
    total: str  # table, TOAST and indexes, pg_size_pretty
    table: str  # the table with its TOAST
    indexes: str
    total_bytes: int
    rows_estimate: int  # pg_class.reltuples: as of the last VACUUM/ANALYZE

    @property
    def shown(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


async def largest_tables(name: str, database: Database, limit: int = LARGEST) -> list[TableSize]:
    async with reading(name, database) as conn:
        rows = await conn.fetch(TABLES_QUERY, limit)
    return [
        TableSize(
            schema=one_line(row["schema"], NAME_CHARS),
            name=one_line(row["name"], NAME_CHARS),
            total=row["total"],
            table=row["table_size"],
            indexes=row["index_size"],
            total_bytes=row["total_bytes"],
            rows_estimate=row["rows_estimate"],
        )
        for row in rows
    ]
