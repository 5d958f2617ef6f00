"""/deploy <service> <version>: a guarded deploy (backup, migrate, start, switch, verify, roll back on failure);
/deploy history <service>: the service's deploys and rollbacks."""
from __future__ import annotations

from bot.action.flow import request_action
from bot.check.service import UnknownService, resolve_services
from bot.deploy import service as record
from bot.deploy import views
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar
from bot.pipeline.reply import Outcome, Reply

USAGE = "/deploy <service> <version> | /deploy history <service>"
GRAMMAR = Grammar(usage=USAGE, positionals=("service",), rest="version", max_rest=1)


async def handle(inv: Invocation) -> Reply:
    bot, first, rest = inv.ctx, inv.args.positionals["service"], inv.args.positionals["version"]
    if first == "history" and rest and rest[0] in bot.config.services:
        return views.history(rest[0], await record.history(bot.db, rest[0]))
    if not rest:
        return Reply.refusal(f"Missing <version>. Usage: {USAGE}", Outcome.usage_error)
    try:
        resolve_services(bot.config, [first])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    return await request_action(bot, inv.request, "deploy", {"service": first, "version": rest[0]})


COMMAND = CommandSpec(
    name="deploy",
    summary="Deploy a version of a service after approval: backup, migrate, start, switch, verify; rolled back when verification fails.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the deploy action's own policy decides per service
)
