"""/logs <service> [--tail N] [--since 1h] [--grep PATTERN] [--count]: container logs, filtered in process, redacted."""
from __future__ import annotations

import re
import time

from bot.action import policy
from bot.check.service import UnknownService, resolve_services
from bot.config.types import format_duration, parse_duration
from bot.docker_engine import DockerUnavailable
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, Option
from bot.pipeline.reply import Context, FileAttachment, Header, Outcome, Preformatted, Reply
from bot.redaction import redact

MAX_TAIL = 5000
MAX_SINCE = 7 * 86400
MAX_PATTERN = 200
MAX_LINE = 2000
INLINE_LINES = 40
INLINE_CHARS = 2800


def _tail(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be a whole number of lines") from None
    if not 1 <= value <= MAX_TAIL:
        raise ValueError(f"must be between 1 and {MAX_TAIL}")
    return value


def _since(raw: str) -> float:
    seconds = parse_duration(raw)
    if seconds > MAX_SINCE:
        raise ValueError("at most 7d")
    return seconds


def _pattern(raw: str) -> re.Pattern:
    """Literal text, or /regex/ for a regular expression; bounded in size either way."""
    if len(raw) > MAX_PATTERN:
        raise ValueError(f"at most {MAX_PATTERN} characters")
    if len(raw) > 2 and raw.startswith("/") and raw.endswith("/"):
        try:
            return re.compile(raw[1:-1], re.IGNORECASE)
        except re.error:
            raise ValueError("not a valid regular expression") from None
    return re.compile(re.escape(raw), re.IGNORECASE)


GRAMMAR = Grammar(
    usage="/logs <service> [--tail N] [--since 1h] [--grep TEXT or /regex/] [--count]",
    positionals=("service",),
    options=(Option("--tail", _tail), Option("--since", _since), Option("--grep", _pattern), Option("--count")),
)


async def handle(inv: Invocation) -> Reply:
    bot, name, options = inv.bot, inv.args.positionals["service"], inv.args.options
    try:
        resolve_services(bot.config, [name])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    spec = bot.config.action("logs")
    if not await policy.can_request(bot.roles, bot.config, spec, name, inv.request.user_id):
        needed = policy.roles_phrase(policy.request_roles(bot.config, spec, name))
        return Reply.refusal(f"You cannot read the logs of {name}: it needs the {needed} role in app.yaml.", Outcome.denied)
    container = bot.config.services[name].container
    if container is None:
        return Reply.refusal(f"{name} has no container in app.yaml, so opsbot has no logs for it.")

    since = options.get("since")
    tail = options.get("tail")
    if tail is None and since is None:
        tail = 100
    try:
        raw = await bot.checks.docker.logs(container, tail=tail, since=time.time() - since if since else None)
    except DockerUnavailable as exc:
        return Reply.refusal(f"Cannot read the logs of {name}: {exc}.", Outcome.error)

    pattern: re.Pattern | None = options.get("grep")
    # Redacted before matching: a pattern must not be able to confirm a secret the reply hides.
    lines = redact("\n".join(line[:MAX_LINE] for line in raw.splitlines())).splitlines()
    if pattern is not None:
        lines = [line for line in lines if pattern.search(line)]
    window = f"last {format_duration(since)}" if since else f"last {tail} lines"
    what = redact(f" matching '{pattern.pattern if not _literal(pattern) else _unescape(pattern)}'") if pattern is not None else ""

    if options.get("count"):
        sentence = f"{len(lines)} lines{what} in the {window} of {name} ({container})."
        return Reply(text=sentence, blocks=[Header(f"/logs {name}"), Preformatted(sentence)])

    text = "\n".join(lines)
    title = f"{name} logs: {len(lines)} lines{what}, {window}"
    if not lines:
        return Reply(text=f"{title}.", blocks=[Header(f"/logs {name}"), Context(f"No lines{what} in the {window}.")])
    if len(lines) <= INLINE_LINES and len(text) <= INLINE_CHARS:
        return Reply(text=f"{title}\n{text}", blocks=[Header(f"/logs {name}"), Context(title), Preformatted(text)])
    shown = "\n".join(lines[-10:])
    return Reply(
        text=f"{title}; the full output is attached.",
        blocks=[Header(f"/logs {name}"), Context(f"{title}; the last 10 are below, the whole output is attached."), Preformatted(shown)],
        file=FileAttachment(f"{name}-logs.txt", text + "\n"),
    )


def _literal(pattern: re.Pattern) -> bool:
    return re.escape(_unescape(pattern)) == pattern.pattern


def _unescape(pattern: re.Pattern) -> str:
    return re.sub(r"\\(.)", r"\1", pattern.pattern)


COMMAND = CommandSpec(
    name="logs",
    summary="Show a service's container logs (redacted); --grep filters, --count counts.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the logs action's own policy decides per service
)
