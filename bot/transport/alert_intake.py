"""POST /alerts/<name>: alert webhooks in, with the Slack endpoint's edge.

In this order: the integration named in the path (404), its bearer token compared in constant
time before a byte of the body is read (401), the body read under a time limit (408) and capped
(413), parsed by the integration's format (400 with one sentence), then handled (bot.alerts.intake).
The answer comes after the work is stored: 200 means every incident it concerns is open, joined or
told; a failure on the way (the database away) is a 503, and the sender retries (Alertmanager does),
which the de-duplication keys make harmless. A body is never logged.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os

from aiohttp import HttpVersion11, web

from bot.alerts.formats import parse
from bot.alerts.intake import receive
from bot.alerts.notification import Malformed
from bot.config.types import register_env_value

log = logging.getLogger(__name__)

# Alertmanager's payload is about 1 KB per alert: 512 KiB is some 400 alerts in one group (set max_alerts
# on the webhook_config to stay under it).
MAX_ALERT_BODY = 512 * 1024
BODY_TIMEOUT = 5.0
PARSE_INLINE = 64 * 1024  # bigger bodies are parsed off the event loop
BEARER = "bearer "


class TooLarge(Exception):
    pass


def add_alert_intake(app: web.Application, bot, body_timeout: float = BODY_TIMEOUT) -> None:
    def refusal(request: web.Request) -> web.Response | None:
        """What the headers alone refuse: an unknown integration, a wrong token, a compressed or declared-too-big body."""
        integration = bot.config.alerts.integrations.get(request.match_info["name"])
        if integration is None:
            return _answer(404, "No alert integration has this name; they are declared under alerts.integrations in app.yaml.")
        if not _authorized(request.headers.get("Authorization", ""), integration.token_env):
            return _answer(401, "The bearer token is missing or wrong.")
        if (request.headers.get("Content-Encoding", "").strip().lower() or "identity") != "identity":
            return _answer(400, "Send the body uncompressed.")
        if request.content_length is not None and request.content_length > MAX_ALERT_BODY:
            return _too_large()
        return None

    async def expect(request: web.Request) -> web.Response | None:
        """`Expect: 100-continue` (curl sends it for bigger bodies): refused before the body is sent, else told to go on."""
        refused = refusal(request)
        if refused is not None:
            return refused
        if request.headers.get("Expect", "").lower() != "100-continue" or request.version != HttpVersion11:
            return _answer(417, "Only Expect: 100-continue is understood.")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def alerts(request: web.Request) -> web.Response:
        refused = refusal(request)
        if refused is not None:
            return refused
        name = request.match_info["name"]
        integration = bot.config.alerts.integrations[name]
        try:
            body = await asyncio.wait_for(_read_capped(request, MAX_ALERT_BODY), body_timeout)
        except asyncio.TimeoutError:
            return _answer(408, "The body took too long to arrive.")
        except (TooLarge, web.HTTPRequestEntityTooLarge):
            return _too_large()
        except Exception as exc:  # a broken chunked body and the like
            log.debug("unreadable alert body: %s", exc.__class__.__name__)
            return _answer(400, "The body could not be read.")
        try:
            if len(body) > PARSE_INLINE:
                notification = await asyncio.to_thread(parse, integration, body)
            else:
                notification = parse(integration, body)
        except Malformed as exc:
            return _answer(400, str(exc)[:300])
        try:
            said = await receive(bot, name, notification)
        except Exception as exc:  # the class only: a driver's message can carry hosts and credentials
            log.error("alert from %s not handled (%s); the sender is told to retry", name, exc.__class__.__name__)
            return _answer(503, "The alert could not be handled now; send it again.")
        return web.json_response({"status": "accepted", "incidents": said})

    app.router.add_route("POST", "/alerts/{name}", alerts, expect_handler=expect)


def _too_large() -> web.Response:
    return _answer(413, f"The body is larger than {MAX_ALERT_BODY // 1024} KiB; lower max_alerts on the sender.")


_warned: set[str] = set()  # token variables found unset, said once each: a sender's retries must not flood the log


def _authorized(header: str, token_env: str) -> bool:
    expected = os.environ.get(token_env, "")
    if not expected:
        if token_env not in _warned:
            _warned.add(token_env)
            log.warning("alerts: %s is not set, so every request to this integration is refused", token_env)
        return False
    register_env_value(expected, credential=True)  # masked wherever it could be echoed (idempotent)
    presented = header[len(BEARER):].strip() if header[: len(BEARER)].lower() == BEARER else ""
    return hmac.compare_digest(presented.encode(), expected.encode())


async def _read_capped(request: web.Request, cap: int) -> bytes:
    if request.content_length is not None and request.content_length > cap:
        raise TooLarge()
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, sentence: str) -> web.Response:
    return web.json_response({"error": sentence}, status=status)
