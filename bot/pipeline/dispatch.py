"""The one request pipeline both transports use: a list of middleware around the handler.

Each middleware is `async def mw(call, call_next) -> Reply`, bolt-style; the order is the
list order, outermost first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

from bot.metrics import COMMANDS
from bot.pipeline.commands import CommandSpec, Invocation
from bot.pipeline.parse import ParsedArgs, UsageError, normalise_slack_text
from bot.pipeline.reply import Context, Outcome, Reply
from bot.pipeline.request import Request
from bot.pipeline.roles import role_needed
from bot.redaction import redact_cut

if TYPE_CHECKING:
    from bot.context import BotContext

log = logging.getLogger(__name__)


@dataclass
class Call:
    request: Request
    ctx: BotContext
    spec: CommandSpec | None = None
    args: ParsedArgs = field(default_factory=ParsedArgs)
    recorded_first: bool = False  # audit_first wrote the "requested" row


Next = Callable[[Call], Awaitable[Reply]]
Middleware = Callable[[Call, Next], Awaitable[Reply]]


class Pipeline:
    def __init__(self, commands: list[CommandSpec], middleware: list[Middleware]):
        self.commands = {c.name: c for c in commands}
        self.middleware = middleware

    async def handle(self, request: Request, ctx: BotContext) -> Reply:
        async def run_handler(call: Call) -> Reply:
            return await call.spec.handler(Invocation(call.request, call.args, ctx))

        return await chain(self.middleware, run_handler)(Call(request=request, ctx=ctx))


def chain(middleware: list, innermost: Callable) -> Callable:
    """`innermost` wrapped in the middleware, the list's first outermost (the press pipeline uses it too)."""
    for mw in reversed(middleware):
        innermost = _bind(mw, innermost)
    return innermost


def _bind(mw: Middleware, nxt: Next) -> Next:
    async def step(call: Call) -> Reply:
        return await mw(call, nxt)

    return step


async def count_outcome(call: Call, call_next: Next) -> Reply:
    reply = await call_next(call)
    COMMANDS.labels(call.spec.name if call.spec else "unknown", reply.outcome.value).inc()
    return reply


async def contain_errors(call: Call, call_next: Next) -> Reply:
    """Whatever breaks inside, the user gets one sentence and the process keeps serving."""
    try:
        return await call_next(call)
    except Exception:
        log.error("command /%s failed:\n%s", call.request.command, redact_cut(_traceback(), 8000))
        return Reply.refusal(
            f"/{call.request.command} failed inside opsbot and nothing was changed; the error is in the bot's log. "
            "Try again, or run /health to see what is down.",
            Outcome.error,
        )


async def _record(call: Call, outcome: str, detail: str = "") -> None:
    from bot.audit import service as audit

    await audit.record(
        call.ctx.db,
        user_id=call.request.user_id,
        command=call.spec.name if call.spec else call.request.command[:64],
        # As the person typed it, not Slack's &lt; form; bounded first (the grammar refuses over 2,000).
        arguments=normalise_slack_text(call.request.text[:8000]),
        channel=call.request.channel_id,
        transport=call.request.transport,
        outcome=outcome,
        detail=detail,
        target=str(call.args.positionals.get("service") or ""),
    )


async def audit_trail(call: Call, call_next: Next) -> Reply:
    """Every command is recorded before the user sees the answer.

    A role-gated command that ran and succeeded is already on record as "requested"
    (audit_first); any other outcome gets its own row.
    """
    reply = await call_next(call)
    if call.recorded_first and reply.outcome is Outcome.ok:
        return reply
    try:
        await _record(call, reply.outcome.value, "" if reply.outcome in (Outcome.ok, Outcome.warning, Outcome.critical) else reply.text)
    except Exception as exc:
        log.error("audit write failed: %s", exc.__class__.__name__)  # its message quotes the row: user text
        reply.blocks.append(Context("Not recorded in the audit log: the bot's database is unreachable."))
    return reply


async def audit_first(call: Call, call_next: Next) -> Reply:
    """A role-gated command is on record as requested before it runs; if that cannot be written, it does not run.

    Public commands (/health, /help) still answer with the database down: that is when they matter.
    """
    if call.spec.roles_for(call.args) is None:
        return await call_next(call)
    try:
        await _record(call, "requested")
    except Exception as exc:
        log.error("audit write failed, /%s not run: %s", call.spec.name, exc.__class__.__name__)
        return Reply.refusal(
            f"{call.spec.title_for(call.args)} was not run: opsbot cannot write its audit log (the bot's database is unreachable). Try again shortly.",
            Outcome.error,
        )
    call.recorded_first = True
    return await call_next(call)


async def find_command(call: Call, call_next: Next) -> Reply:
    spec = call.ctx.commands.get(call.request.command)
    if spec is None:
        shown = "".join(ch if ch.isprintable() else "?" for ch in call.request.command[:40])
        known = ", ".join(f"/{n}" for n in call.ctx.commands)
        return Reply.refusal(f"There is no /{shown} command. Commands: {known}; /help explains them.")
    call.spec = spec
    return await call_next(call)


async def parse_arguments(call: Call, call_next: Next) -> Reply:
    try:
        call.args = call.spec.grammar.parse(call.request.text)
    except UsageError as exc:
        return Reply.refusal(str(exc))
    return await call_next(call)


async def authorize(call: Call, call_next: Next) -> Reply:
    spec = call.spec
    roles = spec.roles_for(call.args)
    if roles is not None:
        if callable(roles):  # a PermissionCheck: the arguments decide which roles or people
            needed = await roles(call.ctx, call.request.user_id, call.args)
        else:
            needed = role_needed(await call.ctx.roles.roles_of(call.request.user_id), roles)
        if needed:
            return Reply.refusal(f"You are not allowed to run {spec.title_for(call.args)}: it needs {needed} in app.yaml.", Outcome.denied)
    return await call_next(call)


# audit_trail sits outside contain_errors so that failures are on record too; audit_first runs
# once the caller is known to be allowed, so refusals are not doubled.
DEFAULT_MIDDLEWARE: list[Middleware] = [
    count_outcome,
    audit_trail,
    contain_errors,
    find_command,
    parse_arguments,
    authorize,
    audit_first,
]


def _traceback() -> str:
    import traceback

    return traceback.format_exc()
