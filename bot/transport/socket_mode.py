"""Socket Mode: the same edge as HTTP, fed by slack-sdk's WebSocket client.

Every envelope is acknowledged, whatever it holds: Bolt's adapter acks only when a
listener matched, so an unknown button left the user with an error. The socket is
authenticated by the app token, so there is no signature to check.
"""
from __future__ import annotations

import logging

from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import SLACK_REFUSED
from bot.transport.edge import SlackEdge
from bot.transport.inbound import Malformed, parse_payload

log = logging.getLogger(__name__)


class SocketModeTransport:
    def __init__(self, edge: SlackEdge, app_token: str, client: AsyncWebClient):
        self.edge = edge
        self.client = SocketModeClient(app_token=app_token, web_client=client)
        self.client.socket_mode_request_listeners.append(self._on_envelope)
        self.client.message_listeners.append(self._on_unbuildable)

    async def _on_envelope(self, client: SocketModeClient, envelope: SocketModeRequest) -> None:
        work = self.edge.work
        work.ack_started()
        try:
            ack = None
            try:
                ack = await self.edge.receive(parse_payload(envelope.type, envelope.payload))
            except Malformed as exc:
                SLACK_REFUSED.labels("malformed").inc()
                log.warning("acknowledged a malformed Socket Mode envelope without acting on it: %s", exc)
            except Exception:  # an ack must still go out, or Slack shows the user an error
                log.exception("handling a Socket Mode envelope failed")
            payload = ack if ack is not None and envelope.accepts_response_payload else None
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope.envelope_id, payload=payload))
        finally:
            work.ack_finished()

    async def _on_unbuildable(self, client: SocketModeClient, message: dict, raw: str | None) -> None:
        """slack-sdk drops an envelope it cannot build (no payload, an odd payload type) without calling
        _on_envelope; it still gets its ack, so Slack does not retry it or show the user an error."""
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str) or not envelope_id:
            return
        try:
            built = SocketModeRequest.from_dict(message)
        except Exception:
            built = None
        if built is None:
            SLACK_REFUSED.labels("malformed").inc()
            log.warning("acknowledged a Socket Mode envelope slack-sdk could not read")
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))

    async def connect(self) -> None:
        await self.client.connect()

    async def close(self) -> None:
        await self.client.close()
