"""/run <action> name=value ...: any action app.yaml declares, through the same guarded flow as /restart.

/run cancel ID withdraws a pending request (bot/action/withdrawal.py). An action may itself be
named cancel: its parameters are name=value words, so `/run cancel 12` still means request #12.
"""
from __future__ import annotations

from bot.action.flow import request_action
from bot.action.kinds import kind_of
from bot.action.withdrawal import CANCEL_USAGE, withdraw_command
from bot.config.action_models import DEFAULT_ACTIONS
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, UsageError
from bot.pipeline.reply import Context, Header, Reply, Section

GRAMMAR = Grammar(usage=f"/run <action> [name=value ...] | {CANCEL_USAGE}   (/run alone lists the actions)", rest="words", max_rest=20)
_NAME = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def _actions(config) -> dict:
    return {**DEFAULT_ACTIONS, **config.actions, **config.jobs}


def _usage(name: str, spec) -> str:
    params = " ".join(param.usage(key) for key, param in kind_of(spec).params(spec).items())
    return f"/run {name} {params}".rstrip()


def _listing(config) -> Reply:
    lines = []
    for name, spec in sorted(_actions(config).items()):
        guard = "read-only" if kind_of(spec).read_only else f"{spec.approval.approvals} approval{'s' if spec.approval.approvals != 1 else ''}"
        lines.append(f"{_usage(name, spec)}  ({spec.kind}, {guard}){': ' + spec.description if spec.description else ''}")
    text = "\n".join(lines)
    return Reply(text=text, blocks=[Header("Actions"), Section(text), Context("Each runs through its policy: roles, approvals, locks, audit.")])


def _pairs(words: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not name or any(ch not in _NAME for ch in name):
            raise UsageError(f"'{word[:40]}' is not name=value.")
        if name in given:
            raise UsageError(f"{name} is given twice.")
        given[name] = value
    return given


async def handle(inv: Invocation) -> Reply:
    words = inv.args.positionals["words"]
    config = inv.ctx.config
    if not words:
        return _listing(config)
    name = words[0].lower()
    if name == "cancel" and (name not in _actions(config) or (len(words) == 2 and "=" not in words[1])):
        return await withdraw_command(inv.ctx, inv.request, words[1:])
    if name not in _actions(config):
        known = ", ".join(sorted(_actions(config)))
        return Reply.refusal(f"There is no action '{words[0][:40]}'. Actions: {known}.")
    try:
        given = _pairs(words[1:])
    except UsageError as exc:
        return Reply.refusal(f"{exc} Usage: {_usage(name, config.action(name))}")
    return await request_action(inv.ctx, inv.request, name, given)


COMMAND = CommandSpec(
    name="run",
    summary="Run any declared action with typed parameters (/run alone lists them); each keeps its own guard. /run cancel ID withdraws a request.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # each action's policy decides per target
)
