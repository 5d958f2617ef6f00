"""`opsbot serve`: the aiohttp server with Bolt over HTTP, or Socket Mode plus the same endpoints."""
from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from bot.settings import Settings
from bot.transport.server import build_web_app
from bot.transport.slack import build_slack_app, group_lookup, web_client

log = logging.getLogger(__name__)



async def serve(settings: Settings, config_path: str | None, host: str, port: int, load_bot) -> int:
    client = web_client(settings)
    bot = load_bot(settings, config_path, group_lookup(client))
    if bot is None:
        return 2
    socket_mode = bool(settings.slack_app_token)
    slack_app = build_slack_app(bot, settings, client, socket_mode=socket_mode)
    runner = web.AppRunner(build_web_app(bot, None if socket_mode else slack_app), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    socket_handler = None
    if socket_mode:
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        socket_handler = AsyncSocketModeHandler(slack_app, settings.slack_app_token)
        await socket_handler.connect_async()
        log.info("opsbot connected over Socket Mode; endpoints on http://%s:%s", host, port)
    else:
        log.info("opsbot listening on http://%s:%s (Slack at POST /slack/events)", host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sweeper = loop.create_task(bot.sweep_forever())
    await stop.wait()
    log.info("shutting down")
    sweeper.cancel()
    if socket_handler is not None:
        await socket_handler.close_async()
    await runner.cleanup()
    await slack_app.background_work.drain()  # replies already acknowledged still go out
    await bot.close()
    return 0
