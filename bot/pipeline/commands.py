"""How a command is declared: grammar, who may run it, and the handler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from bot.pipeline.parse import Grammar, ParsedArgs
from bot.pipeline.reply import Reply
from bot.pipeline.request import Request
from bot.pipeline.roles import ANY_ROLE  # noqa: F401 (commands declare roles=(ANY_ROLE,) from here)

if TYPE_CHECKING:
    from bot.app import Bot


@dataclass(frozen=True)
class Invocation:
    """What a handler receives: the request, its parsed arguments and the bot's services."""

    request: Request
    args: ParsedArgs
    bot: "Bot"


Handler = Callable[[Invocation], Awaitable[Reply]]


@dataclass(frozen=True)
class CommandSpec:
    name: str  # "health"
    summary: str
    grammar: Grammar
    handler: Handler
    # Deny by default: a command is open to everyone only when it says so.
    public: bool = False
    roles: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        return self.grammar.usage
