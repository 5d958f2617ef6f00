"""PostgreSQL databases of app.yaml `databases:`: what /db, the sql check and the pg_* action kinds read and do.

Every read runs in a READ ONLY transaction under the database's statement_timeout
(connection.reading); the two writes, terminating backends and VACUUM ANALYZE, each check
what they act on right before acting. Values always travel as bound parameters; the only
identifiers put into SQL text are names read back from pg_class, quoted (names.quote_table).
Text from the database (query texts, application names) is plain data: redacted and cut here,
escaped by the renderer. A database that cannot be reached is a DatabaseUnavailable whose
message is one sentence.
"""
from bot.database.connection import DatabaseError, DatabaseUnavailable, QueryFailed

__all__ = ["DatabaseError", "DatabaseUnavailable", "QueryFailed"]
