"""/audit [service] [--since 24h]: who did what, from the append-only audit log."""
from __future__ import annotations

from datetime import timedelta

from bot.audit.service import entries
from bot.check.service import UnknownService, resolve_services
from bot.config.types import format_duration, parse_duration
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, Option
from bot.pipeline.reply import Context, FileAttachment, Header, Preformatted, Reply
from bot.storage import utcnow

LIMIT = 200
INLINE = 30

GRAMMAR = Grammar(usage="/audit [service] [--since 24h]", rest="services", max_rest=1, options=(Option("--since", parse_duration),))


async def handle(inv: Invocation) -> Reply:
    names = inv.args.positionals["services"]
    target = None
    if names:
        try:
            target = resolve_services(inv.ctx.config, names)[0]
        except UnknownService as exc:
            return Reply.refusal(str(exc))
    since_seconds = inv.args.options.get("since", 86400.0)
    rows = await entries(inv.ctx.db, LIMIT, target=target, since=utcnow() - timedelta(seconds=since_seconds))
    scope = f"{target}, " if target else ""
    title = f"Audit: {scope}last {format_duration(since_seconds)}, {len(rows)} entries" + (" (newest 200)" if len(rows) == LIMIT else "")
    lines = [
        f"{row.at:%m-%d %H:%M:%S} {row.user_id:<11} {_what(row.command)} {row.arguments[:60]} -> {row.outcome}"
        + (f" ({row.detail[:80]})" if row.detail and row.outcome not in ("ok",) else "")
        for row in rows
    ]
    if not lines:
        return Reply(text=f"{title}.", blocks=[Header("Audit log"), Context(f"{title}.")], ephemeral=True)
    text = "\n".join(lines)
    if len(lines) <= INLINE:
        return Reply(text=f"{title}\n{text}", blocks=[Header("Audit log"), Context(title), Preformatted(text)], ephemeral=True)
    return Reply(
        text=f"{title}; newest {INLINE} shown.",
        blocks=[Header("Audit log"), Context(f"{title}; newest {INLINE} below."), Preformatted("\n".join(lines[:INLINE]))],
        ephemeral=True,
        file=FileAttachment("audit.txt", text + "\n"),
    )


def _what(command: str) -> str:
    """Commands as typed (/logs); interactions by their id (action.approve), which has a dot."""
    return command if "." in command else f"/{command}"


COMMAND = CommandSpec(
    name="audit",
    summary="Show the audit log, optionally for one service and period.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),
)
