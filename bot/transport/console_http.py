"""The console's own listener: alert webhooks (POST /alerts/<name>) reach a console as they reach
`opsbot serve`, so the bundled alert integration can be tried without a Slack app.

Only for a local rehearsal (the embedded SQLite database, no Slack tokens: bot/cli.py decides), so a
console opened next to a serving bot (`docker exec ... opsbot shell`) never takes its port or its
alerts. Loopback only; the endpoints are the bot's own (/alerts, /healthz, /readyz, /metrics), and
there is no /slack/events. A port already in use turns the listener off with one sentence; the
console still opens.
"""
from __future__ import annotations

import contextlib
from typing import AsyncIterator, Callable

from aiohttp import web

from bot.transport.server import build_web_app

HOST = "127.0.0.1"


@contextlib.asynccontextmanager
async def webhook_listener(bot, port: int | None, say: Callable[[str], None]) -> AsyncIterator[None]:
    """Serve on `port` (None: not at all) while the console runs, when app.yaml declares alert
    integrations; `say` tells the user where."""
    names = sorted(bot.config.alerts.integrations)
    if not names or port is None:
        yield
        return
    runner: web.AppRunner | None = web.AppRunner(build_web_app(bot), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port).start()
    except OSError as exc:
        say(f"Alert webhooks are off in this console: it cannot listen on {HOST}:{port} ({exc.strerror or exc.__class__.__name__}); "
            "set PORT to a free port to take them.")
        await runner.cleanup()
        runner = None
    else:
        say(f"Alert webhooks: POST http://{HOST}:{port}/alerts/{names[0] if len(names) == 1 else '<name>'} (docs/alerts.md).")
    try:
        yield
    finally:
        if runner is not None:
            await runner.cleanup()
