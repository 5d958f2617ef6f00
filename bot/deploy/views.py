"""How deploys read in chat: the plan's lines, /deploy history, the daily check's line."""
from __future__ import annotations

from bot.action.kinds.base import Plan
from bot.deploy import container, kubernetes, prepare
from bot.deploy.models import Deployment
from bot.pipeline.markup import Mention, Text, mentions
from bot.pipeline.reply import Context, Header, Outcome, Reply, Section

OUTCOMES = {"pending": "pending", "in_progress": "in progress", "success": "succeeded", "failure": "failed",
            "rolled_back": "failed, rolled back"}


def plan_lines(plan: Plan) -> list[str]:
    """What approvers read, one line per step, in the order they run."""
    lines = []
    for step in plan.steps:
        said = prepare.describe(step)
        if said is not None:
            lines.append(f"{plan.subject}: {said}")
        elif step["step"] in ("replace", "blue_green"):
            lines += container.describe(step, plan.verify)
        else:
            lines += kubernetes.describe(step, plan.verify)
    return lines


def _when(row: Deployment) -> str:
    return f"{row.started_at:%Y-%m-%d %H:%M} UTC"


def _took(row: Deployment) -> str:
    if row.finished_at is None:
        return "still running"
    return f"took {(row.finished_at - row.started_at).total_seconds():.0f} s"


def history_line(row: Deployment) -> Text:
    """`#3 deploy v1 -> v2 by @U1, approved by @U2, 2026-12-07 10:00 UTC, took 12 s: succeeded`."""
    parts: list = [f"#{row.id} {row.operation} {row.from_version or '?'} -> {row.to_version} by ", Mention(row.requested_by)]
    approvers = [a for a in row.approved_by or [] if a]
    if approvers:
        parts += [", approved by ", mentions(approvers)]
    else:
        parts.append(", no approval needed")
    parts.append(f", {_when(row)}, {_took(row)}: {OUTCOMES.get(row.state, row.state)}")
    return Text(*parts)


def history(service: str, rows: list[Deployment]) -> Reply:
    title = f"Deploys of {service}"
    if not rows:
        sentence = f"opsbot has deployed nothing to {service} yet."
        return Reply(text=sentence, blocks=[Header(title), Section(sentence)], outcome=Outcome.ok, ephemeral=True)
    lines = [history_line(row) for row in rows]
    body = Text(*[part for i, line in enumerate(lines) for part in (["\n"] if i else []) + [line]])
    return Reply(text=Text(title, "\n", body), blocks=[Header(title), Section(body), Context("Newest first; rolled back: verification failed and the old version was put back.")],
                 outcome=Outcome.ok, ephemeral=True)


def daily_line(row: Deployment) -> str:
    return f"{row.service}: {row.operation} {row.from_version or '?'} -> {row.to_version}, {OUTCOMES.get(row.state, row.state)} ({_when(row)})"
