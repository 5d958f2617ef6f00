"""/health [service ...]: every configured check, or those of the named services, at once.

Concurrent requests for the same services share one run, and each user may start only so many
runs a minute (bot.check.limits, per replica); `opsbot run` is not capped.
"""
from __future__ import annotations

from dataclasses import replace

from bot.activity import Activity
from bot.check.limits import UNCAPPED_TRIGGERS, Limited
from bot.check.result import SEVERITY
from bot.check.service import UnknownService, resolve_services, run_health
from bot.pipeline.commands import CommandSpec, Invocation
from bot.pipeline.parse import Grammar
from bot.pipeline.reply import Context, Header, Outcome, Reply, Section

GRAMMAR = Grammar(usage="/health [service ...]", rest="services")
LABEL = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"}


async def handle(inv: Invocation) -> Reply:
    config = inv.bot.config
    try:
        services = resolve_services(config, inv.args.positionals["services"])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    if not services:
        return Reply.refusal("No services are configured: add them under services: in app.yaml, then run /health.")
    request = inv.request

    def work():
        return run_health(
            inv.bot.checks,
            inv.bot.db,
            config,
            services,
            trigger=request.trigger,
            user=request.user_id,
            channel=request.channel_id,
        )

    capped_as = None if request.trigger in UNCAPPED_TRIGGERS else (request.team_id, request.user_id)
    outcome = await inv.bot.checks.health.run(services, work, user=capped_as)
    if isinstance(outcome, Limited):
        return Reply.refusal(outcome.sentence)
    report, shared = outcome
    reply = render(replace(report, shared=True) if shared else report, services)
    data = {"summary": reply.text, "outcome": report.status, "services": services, "run_id": report.run_id}
    await inv.bot.activity.publish(Activity(request.channel_id, "check", request.user_id, reply.text, data))
    return reply


def render(report, services: list[str]) -> Reply:
    by_service: dict[str, list] = {name: [] for name in services}
    for result in report.results:
        by_service[result.service].append(result)
    rows = []
    for name, results in by_service.items():
        status = max((r.status for r in results), key=SEVERITY.__getitem__, default="ok")
        rows.append((SEVERITY[status], name, status, results))
    rows.sort(key=lambda row: (-row[0], services.index(row[1])))

    counts = {s: sum(1 for row in rows if row[2] == s) for s in SEVERITY}
    overall = report.status
    summary = ", ".join(f"{counts[s]} {s}" for s in ("critical", "warning", "ok") if counts[s])
    header = f"Health: {LABEL[overall]} ({summary})"

    lines = []
    for _, name, status, results in rows:
        slowest = max((r.latency_ms for r in results), default=0.0)
        if not results:
            lines.append(f"{LABEL['ok']:<8} *{name}*: no checks configured")
            continue
        if status == "ok":
            detail = "; ".join(f"{r.check}: {r.detail}" for r in results[:3])
        else:
            detail = "; ".join(f"{r.check}: {r.detail}" for r in results if r.status != "ok")
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
