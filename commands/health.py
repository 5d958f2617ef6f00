"""/health [service ...]: every configured check, or those of the named services, at once.

Concurrent requests for the same services share one run, and each user may start only so many
runs a minute (bot.check.limits, per replica); `opsbot run` is not capped.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from bot.activity import Activity
from bot.check.limits import UNCAPPED_TRIGGERS, Limited
from bot.check.result import SEVERITY
from bot.check.service import UnknownService, resolve_services, run_health
from bot.maintenance import service as maintenance
from bot.maintenance.views import time_of
from bot.pipeline.commands import CommandSpec, Invocation
from bot.pipeline.parse import Grammar
from bot.pipeline.reply import Context, Header, Outcome, Reply, Section

GRAMMAR = Grammar(usage="/health [service ...]", rest="services")
LABEL = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL", "maintenance": "MAINT"}
RANK = {**SEVERITY, "maintenance": 0.5}  # listed after the red ones, before the green ones
WORD = {"maintenance": "in maintenance"}
log = logging.getLogger(__name__)


async def handle(inv: Invocation) -> Reply:
    config = inv.ctx.config
    try:
        services = resolve_services(config, inv.args.positionals["services"])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    if not services:
        return Reply.refusal("No services are configured: add them under services: in app.yaml, then run /health.")
    request = inv.request

    def work():
        return run_health(
            inv.ctx.checks,
            inv.ctx.db,
            config,
            services,
            trigger=request.trigger,
            user=request.user_id,
            channel=request.channel_id,
        )

    capped_as = None if request.trigger in UNCAPPED_TRIGGERS else (request.team_id, request.user_id)
    outcome = await inv.ctx.checks.health.run(services, work, user=capped_as)
    if isinstance(outcome, Limited):
        return Reply.refusal(outcome.sentence)
    report, shared = outcome
    reply = render(replace(report, shared=True) if shared else report, services, await _windows(inv), config)
    data = {"summary": reply.text, "outcome": reply.outcome.value, "services": services, "run_id": report.run_id}
    await inv.ctx.activity.publish(Activity(request.channel_id, "check", request.user_id, reply.text, data))
    return reply


async def _windows(inv: Invocation) -> list:
    """The maintenance windows active now; none when they cannot be read (the report still goes out)."""
    try:
        return await maintenance.active(inv.ctx.db, inv.ctx.clock.now())
    except Exception as exc:  # the bot's database: the checks do not need it
        log.warning("maintenance windows unreadable (%s): /health without them", exc.__class__.__name__)
        return []


def _in_window(window, config) -> str:
    if window is None:
        return ""
    until = f" until {time_of(window.until, config)}" if config is not None else ""
    return f"in maintenance window #{window.id}{until}"


def render(report, services: list[str], windows: list = (), config=None) -> Reply:
    """A service in a maintenance window (`windows`, bot.maintenance) that is not OK shows as MAINT,
    and does not make the overall outcome red."""
    by_service: dict[str, list] = {name: [] for name in services}
    for result in report.results:
        by_service[result.service].append(result)
    rows = []
    for name, results in by_service.items():
        status = max((r.status for r in results), key=SEVERITY.__getitem__, default="ok")
        window = maintenance.covering(list(windows), name)
        if window is not None and status != "ok":
            status = "maintenance"
        rows.append((RANK[status], name, status, results, window))
    rows.sort(key=lambda row: (-row[0], services.index(row[1])))

    counts = {s: sum(1 for row in rows if row[2] == s) for s in LABEL}
    overall = max((row[2] for row in rows if row[2] != "maintenance"), key=SEVERITY.__getitem__, default="ok") if windows else report.status
    summary = ", ".join(f"{counts[s]} {WORD.get(s, s)}" for s in ("critical", "warning", "maintenance", "ok") if counts[s])
    header = f"Health: {LABEL[overall]} ({summary})"

    lines = []
    for _, name, status, results, window in rows:
        slowest = max((r.latency_ms for r in results), default=0.0)
        maint = _in_window(window, config)
        if not results:
            lines.append(f"{LABEL['ok']:<8} *{name}*: no checks configured" + (f" ({maint})" if maint else ""))
            continue
        if status == "ok":
            detail = "; ".join(f"{r.check}: {r.detail}" for r in results[:3]) + (f" ({maint})" if maint else "")
        else:
            detail = "; ".join(f"{r.check}: {r.detail}" for r in results if r.status != "ok")
            detail = f"{maint}: {detail}" if maint else detail
        lines.append(f"{LABEL[status]:<8} *{name}* ({slowest:.0f} ms) {detail}")

    blocks = [Header(header), Section("\n".join(lines))]
    footer = f"{len(report.results)} checks in {report.duration_ms:.0f} ms"
    if report.run_id is None:
        footer += " · not saved: the bot's database is unreachable"
    else:
        footer += f" · run #{report.run_id}"
    if report.shared:
        footer += " · shared with a run already in progress"
    blocks.append(Context(footer))
    text = header + "\n" + "\n".join(line.replace("*", "") for line in lines)
    return Reply(text=text, blocks=blocks, outcome=Outcome(overall))


COMMAND = CommandSpec(
    name="health",
    summary="Check every service, or the ones named, and report the worst first.",
    grammar=GRAMMAR,
    handler=handle,
    public=True,
)
