"""A TCP proxy in front of PostgreSQL that makes the database blip on demand.

It listens on 127.0.0.1:<free port> and forwards every connection to the real server. A test
points the bot's DATABASE_URL at it (`url_for`) and then:

- `cut()` aborts every connection it carries, as a restarting server or a dropped route does;
- `refuse()` turns every new connection away (closed at once, before the server sees it) until
  `accept()`; `refused` counts them, so a test can wait until the bot has tried again;
- `lose_next(marker)` drops the next client message containing `marker` (say, the SQL of an
  INSERT) before the server sees it, then refuses and cuts: the write is lost, and the bot knows it;
- `lose_answer_after(marker)` lets the connection that sent `marker` go on until its next COMMIT,
  forwards that COMMIT, swallows the server's answer, then refuses and cuts: the write is stored,
  and the bot cannot know it (the ambiguous failure a retry must not double).

Markers are matched within one read of the socket; the bot's statements are small and sent in one
write, so that is where they are. `seen` counts the markers met, to wait on.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

COMMIT = b"COMMIT"


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    swallow_answers: bool = False  # the COMMIT went through; its answer must not
    armed: bool = False  # sent the marker of lose_answer_after; cut after its next COMMIT
    tasks: list[asyncio.Task] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()


class PgProxy:
    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432):
        self.upstream = (upstream_host, upstream_port)
        self.port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[_Pair] = set()
        self._lose: bytes | None = None
        self._lose_answer: bytes | None = None
        self.seen = 0  # markers met (either kind)
        self.connections = 0  # forwarded since start
        self.refused = 0  # turned away while refusing
        self.refusing = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url_for(self, database_url: str) -> str:
        """The same database, reached through this proxy."""
        head, _, rest = database_url.partition("@")
        _, _, path = rest.partition("/")
        return f"{head}@127.0.0.1:{self.port}/{path}"

    # ------------------------------------------------------------------ what a test does

    def cut(self) -> None:
        for pair in list(self._pairs):
            pair.abort()

    def refuse(self) -> None:
        self.refusing = True

    def accept(self) -> None:
        self.refusing = False

    def lose_next(self, marker: bytes) -> None:
        self._lose = marker

    def lose_answer_after(self, marker: bytes) -> None:
        self._lose_answer = marker

    async def stop(self) -> None:
        if self._server is not None:
            # Not wait_closed(): on newer Pythons it waits for the connections, which cut() ends below.
            self._server.close()
        self.refuse()
        self.cut()
        tasks = [task for pair in self._pairs for task in pair.tasks]
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ forwarding

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        pair = _Pair(client_writer, server_writer)
        self._pairs.add(pair)
        pair.tasks = [asyncio.ensure_future(self._pump(pair, client_reader, server_writer, self._to_server)),
                      asyncio.ensure_future(self._pump(pair, server_reader, client_writer, self._to_client))]
        try:
            await asyncio.gather(*pair.tasks, return_exceptions=True)
        finally:
            pair.abort()
            self._pairs.discard(pair)

    async def _pump(self, pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, passes) -> None:
        """One direction, until either side closes or `passes(pair, chunk)` says the blip starts here."""
        try:
            while chunk := await reader.read(65536):
                if not passes(pair, chunk):
                    self.refuse()
                    self.cut()
                    return
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            pair.abort()

    def _to_server(self, pair: _Pair, chunk: bytes) -> bool:
        """Client to server, where the markers are looked for."""
        if self._lose is not None and self._lose in chunk:
            self._lose = None
            self.seen += 1
            return False
        if self._lose_answer is not None and self._lose_answer in chunk:
            self._lose_answer = None
            self.seen += 1
            pair.armed = True
        if pair.armed and COMMIT in chunk:
            pair.armed, pair.swallow_answers = False, True
        return True

    def _to_client(self, pair: _Pair, chunk: bytes) -> bool:
        return not pair.swallow_answers  # once the server has committed, the client never hears it


@contextlib.asynccontextmanager
async def pg_proxy(upstream_port: int = 5432):
    proxy = PgProxy(upstream_port=upstream_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
