"""VACUUM ANALYZE a database or one table (runbook 001), outside any transaction, under the action's timeout."""
from __future__ import annotations

import time

from bot.config.data_models import Database
from bot.database.connection import connect
from bot.database.names import Table


async def vacuum(name: str, database: Database, table: Table | None, timeout: float) -> float:
    """Runs VACUUM (ANALYZE) on `table` (found with names.find_table) or the whole database; the seconds it took."""
    statement = "VACUUM (ANALYZE)" + (f" {table.qualified}" if table is not None else "")
    async with connect(name, database, statement_timeout=timeout) as conn:
        started = time.perf_counter()
        await conn.execute(statement)  # simple protocol, autocommit: VACUUM cannot run in a transaction
        return time.perf_counter() - started
