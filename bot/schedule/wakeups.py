"""Jobs handed back by a stopping replica, announced to the others through PostgreSQL LISTEN/NOTIFY.

A replica's loop looks at the table at least once per `poll`, and while another replica runs a job
it sleeps towards that job's lease, not its hand-back. So service.release notifies HANDED_BACK in
its transaction, and each replica listens on one connection of its own: the handed-back jobs are
claimed as soon as the notice arrives, not at the next poll. Only a wake-up: a lost notice (the
listening connection down) costs one poll, never a job, so failures here are logged once and retried.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url

from bot.redaction import redact_cut
from bot.schedule.service import HANDED_BACK
from bot.storage import APPLICATION_NAME, OWN_BACKEND_QUERY, OWN_BACKENDS

log = logging.getLogger(__name__)


class HandBackListener:
    def __init__(self, database_url: str, on_notice: Callable[[], None]):
        url = make_url(database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False) if url.get_backend_name() == "postgresql" else None
        self._on_notice = on_notice
        self._connection: asyncpg.Connection | None = None
        self._failing = False

    async def ensure(self) -> None:
        """Listening from here on (connecting again if the last connection broke); a no-op on SQLite."""
        if self._dsn is None or (self._connection is not None and not self._connection.is_closed()):
            return
        await self.close()  # a broken one: no longer ours to spare
        connection = None
        try:
            connection = await asyncpg.connect(self._dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME})
            backend = await connection.fetchrow(OWN_BACKEND_QUERY)
            OWN_BACKENDS.add(connection, backend[0], backend[1])  # kill-idle spares it, as the pool's
            await connection.add_listener(HANDED_BACK, self._notified)
        except Exception as exc:
            if connection is not None:
                OWN_BACKENDS.discard(connection)
                connection.terminate()
            if not self._failing:  # the class only: a driver's message can carry the host and user
                log.warning("cannot listen for handed-back jobs (%s); other replicas' hand-backs wait for the next poll",
                            redact_cut(exc.__class__.__name__, 80))
            self._failing = True
            return
        self._connection, self._failing = connection, False

    def _notified(self, connection, pid, channel, payload) -> None:
        self._on_notice()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            OWN_BACKENDS.discard(connection)
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=2)
            except Exception:  # closing a broken connection: nothing left to release
                connection.terminate()
