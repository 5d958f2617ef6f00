"""/rollback <service> [version]: the previous version (or a named earlier one) back, guarded and verified like a deploy."""
from __future__ import annotations

from bot.action.flow import request_action
from bot.check.service import UnknownService, resolve_services
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar
from bot.pipeline.reply import Reply

GRAMMAR = Grammar(usage="/rollback <service> [version]", positionals=("service",), rest="version", max_rest=1)


async def handle(inv: Invocation) -> Reply:
    service, rest = inv.args.positionals["service"], inv.args.positionals["version"]
    try:
        resolve_services(inv.ctx.config, [service])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    return await request_action(inv.ctx, inv.request, "rollback", {"service": service, "version": rest[0] if rest else None})


COMMAND = CommandSpec(
    name="rollback",
    summary="Put a service's previous (or a named earlier) version back after approval, then verify it.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the rollback action's own policy decides per service
)
