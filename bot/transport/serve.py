"""`opsbot serve`: the aiohttp server with the Slack edge over HTTP, or Socket Mode plus the same endpoints.

SIGTERM (or SIGINT) is a clean stop, in this order: /readyz answers 503 at once, so the load
balancer sends new work to other replicas; Socket Mode disconnects (Slack sends to the other
connections); acknowledged work and running scheduled jobs get DRAIN_SECONDS to finish while the
HTTP endpoints keep answering; a job still running then is cut short and handed back (pending,
its attempt not counted: its handler is idempotent), and other replicas are told at once
(bot.schedule.wakeups); only then does the listener close and the database go.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import signal

from aiohttp import web

from bot.settings import Settings
from bot.transport.server import build_web_app
from bot.transport.edge import SlackEdge
from bot.transport.slack import group_lookup, web_client

log = logging.getLogger(__name__)



# Within Kubernetes' default 30 s grace, with room left to cancel and record what is still running.
DRAIN_SECONDS = 20.0


async def serve(settings: Settings, config_path: str | None, host: str, port: int, load_bot) -> int:
    # Signals first: a SIGTERM while starting up is a clean stop too, not Python's default exit.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = web_client(settings)
    bot = load_bot(settings, config_path, group_lookup(client))
    if bot is None:
        return 2
    refusal = await _token_refusal(client)
    if refusal:
        log.error("opsbot serve cannot start: %s", refusal)
        await bot.close()
        return 2
    edge = SlackEdge(bot, client)
    socket = None
    if settings.slack_app_token:
        from bot.transport.socket_mode import SocketModeTransport

        socket = SocketModeTransport(edge, settings.slack_app_token, client)
    app = build_web_app(bot, None if socket else edge, settings.slack_signing_secret, stopping=stop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        # The commonest start-up failure (another opsbot, or anything, on the port) is one sentence, not a traceback.
        log.error("opsbot serve cannot start: %s", _bind_refusal(exc, host, port))
        await runner.cleanup()
        await bot.close()
        return 2
    if socket is not None:
        await socket.connect()
        log.info("opsbot connected over Socket Mode; endpoints on http://%s:%s", host, port)
    else:
        log.info("opsbot listening on http://%s:%s (Slack at POST /slack/events)", host, port)

    bot.scheduler.start()
    await stop.wait()
    log.info("shutting down: draining for up to %.0f s", DRAIN_SECONDS)
    # Order matters: stop taking new work, let acknowledged work finish (its replies still go
    # out), and only then close what that work uses. The HTTP site stays up meanwhile: /readyz
    # says 503, and a request routed here before the balancer noticed is still served.
    deadline = loop.time() + DRAIN_SECONDS
    if socket is not None:
        await socket.close()
    await asyncio.gather(edge.work.drain(DRAIN_SECONDS), bot.scheduler.stop(drain=DRAIN_SECONDS))
    await runner.cleanup()
    await edge.work.drain(max(0.0, deadline - loop.time()))  # what was accepted while draining
    await bot.close()
    log.info("stopped")
    return 0


def _bind_refusal(exc: OSError, host: str, port: int) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; stop what listens there or set PORT (or --port) to a free one."
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where}; ports below 1024 need privileges, so use a higher one."
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; use 0.0.0.0 or one of its own."
    return f"cannot listen on {where}: {exc.strerror or exc.__class__.__name__}."


async def _token_refusal(client) -> str | None:
    """Slack's answer to the bot token, once at start: a revoked token should stop the bot, not each command."""
    from slack_sdk.errors import SlackApiError

    try:
        await client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown"))
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"):
            return f"Slack refused SLACK_BOT_TOKEN ({error})"
        log.warning("auth.test failed (%s); starting anyway", error)
    except Exception as exc:  # Slack unreachable right now: serve anyway, commands will say so
        log.warning("auth.test could not reach Slack (%s); starting anyway", exc.__class__.__name__)
    return None
