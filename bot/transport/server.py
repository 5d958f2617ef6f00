"""The HTTP server: Slack at POST /slack/events, plus /healthz, /readyz and /metrics."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request


def build_web_app(bot, slack_app=None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def slack_events(request: web.Request) -> web.Response:
        work = slack_app.background_work
        work.ack_started()
        try:
            bolt_response = await slack_app.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(bolt_response)
        finally:
            work.ack_finished()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    async def readyz(_: web.Request) -> web.Response:
        document = await readiness(bot)
        return web.json_response(document, status=200 if document["status"] == "healthy" else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    if slack_app is not None:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def readiness(bot) -> dict:
    """In the shape of runbook 001's /ready: overall status plus nested checks."""
    checks = {}
    checks["database"] = await _probe(bot.db.ping)
    if bot.settings.redis_url:
        checks["redis"] = await _probe(bot.coordinator.ping)
    else:
        checks["redis"] = {"status": "healthy", "message": "not configured: single-process fallbacks in use"}
    checks["config"] = {"status": "healthy", "message": f"{len(bot.config.services)} services loaded"}
    status = "healthy" if all(c["status"] == "healthy" for c in checks.values()) else "unhealthy"
    return {"status": status, "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "checks": checks}


async def _probe(fn) -> dict:
    started = time.perf_counter()
    try:
        await fn()
    except Exception as exc:
        return {"status": "unhealthy", "message": f"{exc.__class__.__name__}: unreachable"}
    return {"status": "healthy", "latency": f"{(time.perf_counter() - started) * 1000:.0f}ms"}
