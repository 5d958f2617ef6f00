"""The HTTP server: Slack at POST /slack/events, alerts at POST /alerts/<name>, plus /healthz, /readyz and /metrics.

POST /slack/events, in this order: read the body under a timeout, check the signature on
the raw bytes, and only then parse (bot/transport/inbound.py). Unsigned -> 401, malformed
-> 400, too slow -> 408, too big -> 413; a body is never logged, whatever it holds.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.audit.service import probe_writable
from bot.metrics import SLACK_REFUSED
from bot.migrate import head_revision, known_revision, schema_revision
from bot.transport.alert_intake import add_alert_intake
from bot.transport.inbound import Malformed, parse_http
from bot.transport.signing import signature_problem

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
# Slack sends its whole body at once; a client still sending after this is holding a connection open.
BODY_TIMEOUT = 5.0


def build_web_app(bot, edge=None, signing_secret: str | None = None, body_timeout: float = BODY_TIMEOUT,
                  stopping: asyncio.Event | None = None) -> web.Application:
    """`stopping`: set on SIGTERM; from then on /readyz answers 503 while acknowledged work drains."""
    # lingering_time 0: a body the bot refused to read (too slow, compressed, broken) is not read after
    # the answer either; the connection is closed instead (aiohttp would read, decode and log the failure).
    app = web.Application(client_max_size=MAX_BODY, handler_args={"lingering_time": 0})

    async def slack_events(request: web.Request) -> web.Response:
        if (request.headers.get("Content-Encoding", "").strip().lower() or "identity") != "identity":
            # Slack never compresses, and its signature covers the bytes as sent, not as decoded.
            return _refused("unsigned", 401, "invalid request")
        try:
            body = await asyncio.wait_for(request.read(), body_timeout)
        except asyncio.TimeoutError:
            return _refused("too_slow", 408, "request body too slow")
        except web.HTTPRequestEntityTooLarge:
            return _refused("too_large", 413, "request body too large")
        except Exception as exc:  # a broken chunked body and the like: nothing to verify or parse
            log.debug("unreadable request body: %s", exc.__class__.__name__)
            return _refused("malformed", 400, "malformed request")
        problem = signature_problem(
            signing_secret or "",
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
            body,
            time.time(),
        )
        if problem is not None or not signing_secret:
            log.debug("refused an unsigned request: %s", problem)
            return _refused("unsigned", 401, "invalid request")
        # Counted only now: a slow or forged request must not hold back acknowledged work.
        edge.work.ack_started()
        try:
            ack = await edge.receive(parse_http(request.content_type, body))
        except Malformed as exc:
            log.warning("refused a malformed Slack request: %s", exc)
            return _refused("malformed", 400, "malformed request")
        finally:
            edge.work.ack_finished()
        return web.Response(status=200) if ack is None else web.json_response(ack)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    async def readyz(_: web.Request) -> web.Response:
        document = _stopping() if stopping is not None and stopping.is_set() else await readiness(bot)
        return web.json_response(document, status=503 if document["status"] == "unhealthy" else 200)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    if edge is not None:
        app.router.add_post("/slack/events", slack_events)
    if bot is not None:
        add_alert_intake(app, bot.context, body_timeout)  # POST /alerts/<name>, the same edge as Slack's
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def _refused(reason: str, status: int, error: str) -> web.Response:
    SLACK_REFUSED.labels(reason).inc()
    return web.json_response({"error": error}, status=status)


async def readiness(bot) -> dict:
    """In the shape of runbook 001's /ready: overall status plus nested checks.

    Ready means able to do the work: the database answers, is at the revision this code expects,
    and takes audit rows (every command writes one before it acts)."""
    checks = {}
    checks["database"] = await _probe(bot.db.ping)
    if checks["database"]["status"] == "healthy":
        checks["migrations"] = await _schema_check(bot.db)
        checks["audit_log"] = await _probe(lambda: probe_writable(bot.db), failed="cannot be written")
    else:
        checks["migrations"] = {"status": "unhealthy", "message": "unknown: the database is unreachable"}
        checks["audit_log"] = {"status": "unhealthy", "message": "unknown: the database is unreachable"}
    if bot.settings.redis_url:
        checks["redis"] = await _probe(bot.coordinator.ping)
        if checks["redis"]["status"] != "healthy":
            # Optional: the database de-duplicates meanwhile. Unready here would take every replica
            # out of rotation for an outage of a part the bot can do without.
            checks["redis"] = {"status": "degraded", "message": f"{checks['redis']['message']}: optional, the database de-duplicates meanwhile"}
    else:
        checks["redis"] = {"status": "healthy", "message": "not configured (optional)"}
    checks["deduplication"] = _deduplication(bot, checks)
    checks["config"] = {"status": "healthy", "message": f"{len(bot.config.services)} services loaded"}
    statuses = {c["status"] for c in checks.values()}
    status = "unhealthy" if "unhealthy" in statuses else "degraded" if "degraded" in statuses else "healthy"
    return {"status": status, "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "checks": checks}


def _deduplication(bot, checks: dict) -> dict:
    """Where retried deliveries are claimed once right now: Redis when set and answering, else the database."""
    if bot.settings.redis_url and checks["redis"]["status"] == "healthy":
        return {"status": "healthy", "message": "retried deliveries are claimed once in Redis"}
    if checks["database"]["status"] != "healthy":
        return {"status": "unhealthy", "message": "retried deliveries are claimed once in this replica's memory only (database unreachable)"}
    where = bot.coordinator.database_kind + (" (Redis unreachable)" if bot.settings.redis_url else "")
    return {"status": "healthy", "message": f"retried deliveries are claimed once in {where}"}


def _stopping() -> dict:
    """What /readyz answers once SIGTERM arrived: no probes, so the answer is immediate."""
    stopping = {"status": "unhealthy", "message": "stopping: acknowledged work drains, new work goes to other replicas"}
    return {"status": "unhealthy", "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "checks": {"shutdown": stopping}}


async def _schema_check(db) -> dict:
    head = await asyncio.to_thread(head_revision)  # reads the migration scripts once, off the event loop
    try:
        found = await schema_revision(db)
    except Exception as exc:
        return {"status": "unhealthy", "message": f"{exc.__class__.__name__}: revision unreadable"}
    if found is None:
        return {"status": "unhealthy", "message": f"not migrated: no revision found, expected {head} (run `opsbot migrate`)"}
    if found != head and not await asyncio.to_thread(known_revision, found):
        # A newer release migrated it and this replica is the old version a rolling upgrade is about
        # to replace. Migrations are additive (a column or table the old code does not read), so the
        # old replicas keep serving until the new ones are ready; failing here would empty the Service.
        return {"status": "healthy", "message": f"at revision {found}, newer than this release's {head}: an upgrade is rolling out"}
    if found != head:
        return {"status": "unhealthy", "message": f"at revision {found}, expected {head} (run `opsbot migrate`)"}
    return {"status": "healthy", "message": f"at revision {head}"}


async def _probe(fn, failed: str = "unreachable") -> dict:
    started = time.perf_counter()
    try:
        await fn()
    except Exception as exc:  # the class only: a driver's message can carry hosts and credentials
        return {"status": "unhealthy", "message": f"{exc.__class__.__name__}: {failed}"}
    return {"status": "healthy", "latency": f"{(time.perf_counter() - started) * 1000:.0f}ms"}
