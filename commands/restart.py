"""/restart <service> [--with-dependents] [--force-recreate]: approved by a second person, then verified."""
from __future__ import annotations

from bot.action.flow import request_restart
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
        resolve_services(inv.bot.config, [name])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    return await request_restart(
        inv.bot,
        inv.request,
        name,
        with_dependents=bool(inv.args.options.get("with_dependents")),
        force_recreate=bool(inv.args.options.get("force_recreate")),
    )


COMMAND = CommandSpec(
    name="restart",
    summary="Restart a service's container after a second person approves, then verify it is healthy.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the restart action's own policy decides per service
)
