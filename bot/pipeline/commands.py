"""How a command is declared: grammar, who may run it, and the handler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from bot.pipeline.parse import Grammar, ParsedArgs
from bot.pipeline.reply import Reply
from bot.pipeline.request import Request
from bot.pipeline.roles import ANY_ROLE  # noqa: F401 (commands declare roles=(ANY_ROLE,) from here)

if TYPE_CHECKING:
    from bot.context import BotContext


@dataclass(frozen=True)
class Invocation:
    """What a handler receives: the request, its parsed arguments and the bot's parts."""

    request: Request
    args: ParsedArgs
    ctx: BotContext


Handler = Callable[[Invocation], Awaitable[Reply]]
# A permission that depends on the call's arguments (the rotation an override names says who may
# override it): (ctx, user_id, args) -> what is missing, for "it needs ... in app.yaml", or None.
PermissionCheck = Callable[["BotContext", str, ParsedArgs], Awaitable[str | None]]
Permission = tuple[str, ...] | PermissionCheck


@dataclass(frozen=True)
class CommandSpec:
    name: str  # "health"
    summary: str
    grammar: Grammar
    handler: Handler
    # Deny by default: a command is open to everyone only when it says so.
    public: bool = False
    roles: tuple[str, ...] = ()
    # Subcommands (the first word) of a public command that need roles, or a PermissionCheck, of
    # their own, checked by the same central middleware: (("run", (ANY_ROLE,)),) for /schedule.
    guarded: tuple[tuple[str, Permission], ...] = ()

    def roles_for(self, args: ParsedArgs) -> Permission | None:
        """The roles (or the check) this call needs; None when it is open to everyone."""
        if not self.public:
            return self.roles
        word = self.subcommand(args)
        return next((roles for sub, roles in self.guarded if sub == word), None)

    def subcommand(self, args: ParsedArgs) -> str:
        """The first word of the arguments, lowercased ("" when there is none)."""
        first = next(iter(args.positionals.values()), None)
        if isinstance(first, list):
            first = first[0] if first else None
        words = str(first).split(None, 1) if first else []
        return words[0].lower() if words else ""

    def title_for(self, args: ParsedArgs) -> str:
        """"/oncall override" for a guarded subcommand, else "/oncall": how refusals name what was run."""
        return f"/{self.name} {self.subcommand(args)}" if self.public and self.roles_for(args) is not None else f"/{self.name}"

    @property
    def usage(self) -> str:
        return self.grammar.usage
