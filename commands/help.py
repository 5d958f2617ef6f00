"""/help: the commands the caller may run, one usage line each."""
from __future__ import annotations

from bot.pipeline.commands import CommandSpec, Invocation
from bot.pipeline.parse import Grammar
from bot.pipeline.reply import Header, Reply, Section
from bot.pipeline.roles import role_needed

GRAMMAR = Grammar(usage="/help")


async def handle(inv: Invocation) -> Reply:
    held = await inv.ctx.roles.roles_of(inv.request.user_id)
    allowed = [
        spec
        for spec in inv.ctx.commands.values()
        if spec.public or role_needed(held, spec.roles) is None
    ]
    lines = [f"`{spec.usage}`  {spec.summary}" for spec in allowed]
    roles = ", ".join(sorted(held)) or "none"
    text = "Commands you can run:\n" + "\n".join(lines) + f"\nYour roles: {roles}"
    return Reply(
        text=text.replace("`", ""),
        blocks=[Header("Commands you can run"), Section("\n".join(lines)), Section(f"Your roles: {roles}")],
        ephemeral=True,
    )


COMMAND = CommandSpec(name="help", summary="List the commands you may run.", grammar=GRAMMAR, handler=handle, public=True)
