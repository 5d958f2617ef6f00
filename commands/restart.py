"""/restart <service> [--with-dependents] [--force-recreate]: approved by a second person, then verified."""
from __future__ import annotations

from bot.action.flow import request_action
from bot.check.service import UnknownService, resolve_services
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, Option
from bot.pipeline.reply import Reply

GRAMMAR = Grammar(
    usage="/restart <service> [--with-dependents] [--force-recreate]",
    positionals=("service",),
    options=(Option("--with-dependents"), Option("--force-recreate")),
)


async def handle(inv: Invocation) -> Reply:
    name = inv.args.positionals["service"]
    try:
        resolve_services(inv.ctx.config, [name])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    options = inv.args.options
    return await request_action(
        inv.ctx,
        inv.request,
        "restart",
        {
            "service": name,
            "with_dependents": "true" if options.get("with_dependents") else "false",
            "force_recreate": "true" if options.get("force_recreate") else "false",
        },
    )


COMMAND = CommandSpec(
    name="restart",
    summary="Restart a service on its platform after a second person approves, then verify it is healthy.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the restart action's own policy decides per service
)
