"""Table names: looked up with bound parameters, then quoted as identifiers from what pg_class says."""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from bot.config.data_models import Database
from bot.database.connection import QueryFailed, reading, reason

LOOKUP_QUERY = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1::text)
"""
TABLE_KINDS = {"r": "table", "m": "materialized view", "p": "partitioned table"}
OTHER_KINDS = {"v": "a view", "i": "an index", "S": "a sequence", "f": "a foreign table", "c": "a composite type", "I": "an index", "t": "a TOAST table"}


def quote_ident(name: str) -> str:
    """"name" with embedded double quotes doubled: PostgreSQL's quoting of an identifier."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain a NUL character")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    kind: str  # table | materialized view | partitioned table
    size: str

    @property
    def qualified(self) -> str:
        """schema.name as the database spells them, each quoted separately: safe in SQL text."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def shown(self) -> str:
        return f"{self.schema}.{self.name}"


class NoSuchTable(QueryFailed):
    pass


async def find_table(name: str, database: Database, table: str) -> Table:
    """The table `table` (as typed: table or schema.table, resolved like psql would) names; NoSuchTable otherwise."""
    async with reading(name, database) as conn:
        try:
            async with conn.transaction():  # a savepoint: a malformed name is a refusal, not a failed read
                row = await conn.fetchrow(LOOKUP_QUERY, table)
        except (asyncpg.InvalidNameError, asyncpg.SyntaxOrAccessError, asyncpg.DataError) as exc:
            raise NoSuchTable(f"'{table[:80]}' is not a table name {name} accepts ({reason(exc)}).") from None
    if row is None:
        raise NoSuchTable(f"There is no table '{table[:80]}' in database {name}.")
    if row["kind"] not in TABLE_KINDS:
        raise NoSuchTable(f"'{table[:80]}' in database {name} is {OTHER_KINDS.get(row['kind'], 'not a table')}, not a table.")
    return Table(row["schema"], row["name"], TABLE_KINDS[row["kind"]], row["size"])
