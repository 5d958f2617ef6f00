"""A real imitation of Slack's Socket Mode, for tests.

``SocketModeDouble`` serves the Socket Mode WebSocket (``/link/``) on the Web
API double's aiohttp server. ``apps.connections.open`` on
:class:`slack_double.SlackDouble` hands out single-use tickets for it, so an
ordinary slack-sdk ``SocketModeClient`` connects, receives ``hello``, envelopes
and ``disconnect`` frames, pings and acknowledges exactly as it would with
Slack: the WebSocket path is exercised, not a mock.

The double enforces the Socket Mode part of ``/work/shared/docs/slack-contract.md``:

* every envelope is acknowledged with ``{"envelope_id": ...}`` within
  ``ack_deadline`` (3 s, Slack's limit), once;
* an ack carries ``payload`` only when the envelope said
  ``accepts_response_payload: true``, and that payload is an object;
* the client sends nothing else as data (binary or non-ack frames are breaches);
* tickets are single-use: reconnecting means calling ``apps.connections.open`` again.

Breaches are recorded in ``violations`` and late or missing acks in ``unacked``
rather than raised inside the server, so a test sees every problem at once
(``await double.socket.assert_clean()``). Payloads come from ``slack_signing``
(``slash_command_fields``, ``block_actions_payload``, ``view_submission_payload``,
``event_callback_payload``): the same objects the HTTP transport carries.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

try:  # tests/ on sys.path (rootdir-relative imports, no tests/__init__.py)
    from slack_signing import API_APP_ID
except ImportError:  # tests is a package
    from tests.slack_signing import API_APP_ID

__all__ = ["ACK_DEADLINE_S", "Ack", "Connection", "Delivery", "Envelope", "NotAcked", "SocketModeDouble"]

ACK_DEADLINE_S = 3.0  # Slack shows the user an error past this
ENVELOPE_TYPES = ("events_api", "slash_commands", "interactive")
DISCONNECT_REASONS = ("warning", "refresh_requested", "link_disabled")
DEBUG_HOST = "applink-double"
# Interactions whose ack body is the answer (modal errors, option lists).
_ANSWERED_IN_ACK = ("view_submission", "block_suggestion")


class NotAcked(AssertionError):
    """An envelope was not acknowledged within its deadline."""


@dataclass
class Ack:
    """An acknowledgement as the double received it."""

    envelope_id: str
    payload: dict[str, Any] | None
    elapsed: float  # seconds from sending the envelope to receiving this ack
    connection_id: int
    frame: dict[str, Any]


@dataclass
class Envelope:
    """One delivery: what was sent, on which connection, and its ack (if any)."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool
    retry_attempt: int
    retry_reason: str
    deadline: float
    connection_id: int = 0
    sent_at: float = 0.0  # time.monotonic()
    ack: Ack | None = None
    late: bool = False  # the deadline passed before any ack arrived

    def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
        }
        # Slack sends the retry fields on Events API envelopes (they can be retried).
        if self.type == "events_api" or self.retry_attempt or self.retry_reason:
            frame["retry_attempt"] = self.retry_attempt
            frame["retry_reason"] = self.retry_reason
        return frame


@dataclass
class Connection:
    """One accepted WebSocket; ``frames`` holds the parsed text frames the client sent."""

    id: int
    ticket: str
    opened_at: float
    hello: dict[str, Any]
    ws: web.WebSocketResponse = field(repr=False)
    closed_at: float | None = None
    closed_by: str | None = None  # "client" or "double"
    pings: int = 0  # pings from the client (slack-sdk pings every ping_interval)
    frames: list[Any] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.closed_at is None


class Delivery:
    """An envelope in flight; ``await delivery`` returns its :class:`Ack` or raises :class:`NotAcked`."""

    def __init__(self, envelope: Envelope, future: asyncio.Future[Ack | None]) -> None:
        self.envelope = envelope
        self._future = future

    async def wait(self) -> Ack:
        # shield: a cancelled waiter must not cancel the record of the delivery.
        ack = await asyncio.shield(self._future)
        if ack is None:
            env = self.envelope
            raise NotAcked(f"envelope {env.envelope_id} ({env.type}) not acknowledged within {env.deadline}s")
        return ack

    def __await__(self) -> Generator[Any, None, Ack]:
        return self.wait().__await__()


class SocketModeDouble:
    """Slack's Socket Mode server side; normally reached as ``SlackDouble.socket``.

    Usage::

        client = SocketModeClient(app_token=double.app_token,
                                  web_client=AsyncWebClient(token=double.bot_token, base_url=double.api_url))
        await client.connect()
        await double.socket.wait_connected()
        ack = await double.socket.deliver("slash_commands", slash_command_fields("/ops", "status"))
        await double.socket.assert_clean()
    """

    def __init__(self, app_id: str = API_APP_ID, ack_deadline: float = ACK_DEADLINE_S) -> None:
        self.app_id = app_id
        self.default_ack_deadline = ack_deadline
        self.ack_deadline = ack_deadline  # tests may shorten it; reset() restores it
        self.connections: list[Connection] = []
        self.envelopes: list[Envelope] = []
        self.violations: list[str] = []
        self._by_id: dict[str, Envelope] = {}
        self._pending: dict[str, tuple[asyncio.Future[Ack | None], asyncio.TimerHandle]] = {}
        self._pongs: dict[bytes, asyncio.Future[None]] = {}
        self._tickets: set[str] = set()
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()

    # -- wiring (called by SlackDouble) ---------------------------------------

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/link/", self._handle_link)

    def issue_url(self, base_url: str) -> str:
        """A fresh single-use WebSocket URL on ``base_url``'s server (for apps.connections.open)."""
        ticket = secrets.token_urlsafe(16)
        self._tickets.add(ticket)
        return f"{base_url.replace('http://', 'ws://', 1)}/link/?ticket={ticket}"

    async def close(self) -> None:
        """Close every live connection and give up on envelopes in flight."""
        for conn in self.live:
            await self._close(conn)
        self._drop_pending()

    def reset(self) -> None:
        """Forget envelopes, violations, tickets and closed connections; restore ``ack_deadline``.

        Live connections are kept: they belong to clients the tests still run.
        """
        self._drop_pending()
        self.ack_deadline = self.default_ack_deadline
        self.connections = [c for c in self.connections if c.live]
        self.envelopes.clear()
        self.violations.clear()
        self._by_id.clear()
        self._tickets.clear()

    # -- state ----------------------------------------------------------------

    @property
    def live(self) -> list[Connection]:
        return [c for c in self.connections if c.live]

    @property
    def unacked(self) -> list[Envelope]:
        """Envelopes whose deadline passed without an ack (a late ack keeps them here)."""
        return [e for e in self.envelopes if e.late]

    @property
    def acks(self) -> list[Ack]:
        return [e.ack for e in self.envelopes if e.ack is not None]

    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> Connection:
        """Wait until ``count`` connections have been accepted (since reset) and return the count-th."""
        await self._wait(lambda: len(self.connections) >= count, timeout, f"{count} connection(s)")
        return self.connections[count - 1]

    async def wait_closed(self, connection: Connection, timeout: float = 5.0) -> None:
        await self._wait(lambda: not connection.live, timeout, f"connection {connection.id} to close")

    async def settle(self, timeout: float | None = None) -> None:
        """Wait until every envelope in flight is acked or past its deadline."""
        limit = timeout if timeout is not None else max((e.deadline for e in self.envelopes), default=0) + 1
        await self._wait(lambda: not self._pending, limit, "envelopes in flight to settle")

    async def assert_clean(self) -> None:
        """Settle, then fail if anything breached the contract or went unacknowledged."""
        await self.settle()
        problems = list(self.violations)
        problems += [f"envelope {e.envelope_id} ({e.type}) not acknowledged within {e.deadline}s" for e in self.unacked]
        assert not problems, "Socket Mode contract broken:\n" + "\n".join(problems)

    # -- driving the client ---------------------------------------------------

    async def deliver(self, envelope_type: str, payload: dict[str, Any], **options: Any) -> Ack:
        """Send an envelope and wait for its ack; raises :class:`NotAcked` past the deadline.

        Takes the same keyword options as :meth:`deliver_nowait`.
        """
        return await (await self.deliver_nowait(envelope_type, payload, **options))

    async def deliver_nowait(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        deadline: float | None = None,
        connection: Connection | None = None,
    ) -> Delivery:
        """Send an envelope and return at once; ``await`` the :class:`Delivery` for the ack.

        The deadline (``ack_deadline`` unless given) runs whether or not anyone
        awaits. ``accepts_response_payload`` defaults to what Slack sends: true
        for ``slash_commands``, ``view_submission`` and ``block_suggestion``,
        false otherwise. The envelope goes to ``connection`` or the newest live one.
        """
        if envelope_type not in ENVELOPE_TYPES:
            raise ValueError(f"envelope type must be one of {ENVELOPE_TYPES}, not {envelope_type!r}")
        if not isinstance(payload, dict):
            raise TypeError("Socket Mode payloads are JSON objects")
        if accepts_response_payload is None:
            accepts_response_payload = envelope_type == "slash_commands" or (
                envelope_type == "interactive" and payload.get("type") in _ANSWERED_IN_ACK
            )
        conn = connection or await self._newest_live()
        envelope = Envelope(
            envelope_id=str(uuid.uuid4()),
            type=envelope_type,
            payload=payload,
            accepts_response_payload=accepts_response_payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            deadline=self.ack_deadline if deadline is None else deadline,
            connection_id=conn.id,
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ack | None] = loop.create_future()
        # Registered before sending: the ack can arrive while send_str is still awaiting.
        self.envelopes.append(envelope)
        self._by_id[envelope.envelope_id] = envelope
        self._pending[envelope.envelope_id] = (future, loop.call_later(envelope.deadline, self._expire, envelope))
        envelope.sent_at = time.monotonic()
        try:
            await conn.ws.send_str(json.dumps(envelope.frame()))
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(envelope.envelope_id)[1].cancel()
            self.envelopes.remove(envelope)
            del self._by_id[envelope.envelope_id]
            raise ConnectionError(f"connection {conn.id} is closed: {exc}") from exc
        return Delivery(envelope, future)

    async def disconnect(
        self, reason: str = "refresh_requested", *, close_after: float | None = 1.0, connection: Connection | None = None
    ) -> Connection:
        """Send ``{"type": "disconnect", "reason": ...}`` on the newest live connection.

        The client should call ``apps.connections.open`` again and drop this
        socket. If it has not closed it within ``close_after`` seconds the double
        closes it (``closed_by`` tells which side did); ``close_after=0`` closes
        at once, ``None`` leaves it open (as Slack does for a while after ``warning``).
        """
        if reason not in DISCONNECT_REASONS:
            raise ValueError(f"reason must be one of {DISCONNECT_REASONS}, not {reason!r}")
        conn = connection or await self._newest_live()
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": DEBUG_HOST}}
        await conn.ws.send_str(json.dumps(frame))
        if close_after is not None:
            try:
                await self.wait_closed(conn, close_after)
            except TimeoutError:
                await self._close(conn)
        return conn

    async def ping(self, timeout: float = 2.0, connection: Connection | None = None) -> float:
        """Ping the client like Slack does; return the round trip in seconds (a missing pong is a violation)."""
        conn = connection or await self._newest_live()
        data = f"double-ping:{secrets.token_hex(4)}".encode()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs[data] = waiter
        started = time.monotonic()
        try:
            await conn.ws.ping(data)
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self._violation(f"connection {conn.id}: no pong within {timeout}s")
            raise
        finally:
            self._pongs.pop(data, None)
        return time.monotonic() - started

    # -- the WebSocket endpoint -----------------------------------------------

    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            # A ticket is good for one connection; a reconnect needs a new apps.connections.open.
            self._violation(f"WebSocket connect with an unknown or already used ticket {ticket!r}")
            return web.Response(status=401, text="invalid_ticket")
        self._tickets.discard(ticket)
        # autoping off: the double answers pings itself, to count them and to see the pongs to its own.
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        hello = {
            "type": "hello",
            "num_connections": len(self.live) + 1,
            "debug_info": {"host": DEBUG_HOST, "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        # hello goes out before the connection is counted, so deliver() can never precede it.
        await ws.send_str(json.dumps(hello))
        conn = Connection(id=next(self._ids), ticket=ticket, opened_at=time.monotonic(), hello=hello, ws=ws)
        self.connections.append(conn)
        self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    conn.pings += 1
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    waiter = self._pongs.get(bytes(msg.data))
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                elif msg.type == WSMsgType.BINARY:
                    self._violation(f"connection {conn.id}: binary frame ({len(msg.data)} bytes); Slack expects text")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            conn.closed_at = time.monotonic()
            conn.closed_by = conn.closed_by or "client"
            self._notify()
        return ws

    def _on_text(self, conn: Connection, data: str) -> None:
        where = f"connection {conn.id}"
        try:
            frame = json.loads(data)
        except ValueError:
            self._violation(f"{where}: text frame is not JSON: {data[:200]!r}")
            return
        conn.frames.append(frame)
        envelope_id = frame.get("envelope_id") if isinstance(frame, dict) else None
        if not isinstance(envelope_id, str) or not envelope_id:
            self._violation(f"{where}: frame is not an ack (no envelope_id): {data[:200]}")
            return
        envelope = self._by_id.get(envelope_id)
        if envelope is None:
            self._violation(f"{where}: ack for unknown envelope_id {envelope_id!r}")
            return
        if envelope.ack is not None:
            self._violation(f"{where}: envelope {envelope_id} acknowledged twice")
            return
        extra = sorted(set(frame) - {"envelope_id", "payload"})
        if extra:
            self._violation(f"{where}: ack for {envelope_id} has unexpected keys {extra}")
        if "payload" in frame:
            if not envelope.accepts_response_payload:
                self._violation(
                    f"{where}: ack for {envelope_id} ({envelope.type}) carries a payload "
                    "but the envelope had accepts_response_payload false"
                )
            elif not isinstance(frame["payload"], dict):
                self._violation(f"{where}: ack payload for {envelope_id} is not an object")
        elapsed = time.monotonic() - envelope.sent_at
        envelope.ack = Ack(envelope_id, frame.get("payload"), elapsed, conn.id, frame)
        if envelope.late:
            late = f"acknowledged after {elapsed:.3f}s (limit {envelope.deadline}s)"
            self._violation(f"{where}: envelope {envelope_id} {late}")
        pending = self._pending.pop(envelope_id, None)
        if pending is not None:
            future, timer = pending
            timer.cancel()
            if not future.done():
                future.set_result(envelope.ack)
        self._notify()

    # -- internals --------------------------------------------------------------

    def _expire(self, envelope: Envelope) -> None:
        pending = self._pending.pop(envelope.envelope_id, None)
        if pending is None or envelope.ack is not None:
            return
        envelope.late = True
        if not pending[0].done():
            pending[0].set_result(None)
        self._notify()

    def _drop_pending(self) -> None:
        for future, timer in self._pending.values():
            timer.cancel()
            if not future.done():
                future.set_result(None)
        self._pending.clear()

    async def _close(self, conn: Connection) -> None:
        if conn.live:
            conn.closed_by = "double"
            await conn.ws.close()

    async def _newest_live(self, timeout: float = 5.0) -> Connection:
        await self._wait(lambda: bool(self.live), timeout, "a live Socket Mode connection")
        return self.live[-1]

    def _violation(self, message: str) -> None:
        self.violations.append(message)
        self._notify()

    def _notify(self) -> None:
        # Wake every waiter; each re-checks its own predicate against the new state.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                states = [f"{c.id}:{'live' if c.live else 'closed by ' + str(c.closed_by)}" for c in self.connections]
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}; connections {states}, violations {self.violations}"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
