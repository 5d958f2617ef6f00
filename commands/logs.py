"""/logs <service> [--tail N] [--since 1h] [--grep PATTERN] [--count]: a service's logs from its platform, filtered in process, redacted."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import regex

from bot.action import policy
from bot.check.service import UnknownService, resolve_services
from bot.config.types import format_duration, parse_duration
from bot.action.kinds.logs import target_label
from bot.config.target_models import target_of
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, Option
from bot.pipeline.reply import Context, FileAttachment, Header, Outcome, Preformatted, Reply
from bot.redaction import redact, redact_lines
from bot.targets import LogQuery, TargetError

MAX_TAIL = 5000
MAX_SINCE = 7 * 86400
MAX_PATTERN = 200
MAX_LINE = 2000
INLINE_LINES = 40
INLINE_CHARS = 2800
GREP_BUDGET = 2.0  # seconds of matching for the whole --grep pass, all lines together
TOO_SLOW = "The pattern took too long to match; use plain text or a simpler /regex/."


@dataclass(frozen=True)
class Pattern:
    """What --grep asked for: literal text (case-insensitive), or a compiled /regex/."""

    text: str  # as typed, without the slashes of a /regex/
    compiled: "regex.Pattern | None" = None

    def filter(self, lines: list[str], budget: float = GREP_BUDGET) -> list[str]:
        """The lines that match. A /regex/ shares one time budget across all lines (TimeoutError past it)."""
        if self.compiled is None:
            needle = self.text.casefold()
            return [line for line in lines if needle in line.casefold()]
        deadline = time.monotonic() + budget
        kept = []
        for line in lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("grep budget spent")
            # concurrent=True releases the GIL while matching, so the event loop keeps running.
            if self.compiled.search(line, timeout=remaining, concurrent=True):
                kept.append(line)
        return kept


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


_RECURSION = regex.compile(r"\(\?(?:R|[+-]?[0-9]|&|P>)")


def _pattern(raw: str) -> Pattern:
    """Literal text, or /regex/ for a regular expression; bounded in size either way."""
    if len(raw) > MAX_PATTERN:
        raise ValueError(f"at most {MAX_PATTERN} characters")
    if len(raw) > 2 and raw.startswith("/") and raw.endswith("/"):
        if _RECURSION.search(raw):
            # (?R), (?1), (?&name): recursion grows memory without bound before any time budget applies.
            raise ValueError("recursive patterns ((?R), (?1), (?&name)) are not allowed")
        try:
            return Pattern(raw[1:-1], regex.compile(raw[1:-1], regex.IGNORECASE))
        except (regex.error, ValueError, OverflowError, RecursionError):
            raise ValueError("not a valid regular expression") from None
    return Pattern(raw)


def _read_lines(raw: list[str], pattern: Pattern | None) -> list[str]:
    """Lines redacted, then cut to MAX_LINE, then filtered. Runs in a worker thread."""
    # Redacted before the cut, so a secret across it is masked whole, and before matching, so a
    # pattern cannot confirm a secret the reply hides. redact_lines reads a long line only a little
    # past MAX_LINE: the rest of it is dropped, and the line ends with a mark saying so.
    lines = redact_lines(raw, MAX_LINE)
    return pattern.filter(lines) if pattern is not None else lines


GRAMMAR = Grammar(
    usage="/logs <service> [--tail N] [--since 1h] [--grep TEXT or /regex/] [--count]",
    positionals=("service",),
    options=(Option("--tail", _tail), Option("--since", _since), Option("--grep", _pattern), Option("--count")),
)


async def handle(inv: Invocation) -> Reply:
    bot, name, options = inv.ctx, inv.args.positionals["service"], inv.args.options
    try:
        resolve_services(bot.config, [name])
    except UnknownService as exc:
        return Reply.refusal(str(exc))
    spec = bot.config.action("logs")
    refusal = await policy.request_refusal(bot.roles, bot.config, spec, policy.services([name]), inv.request.user_id, "read the logs of")
    if refusal:
        return Reply.refusal(refusal, Outcome.denied)
    found = target_of(bot.config.services[name])
    if found is None:
        return Reply.refusal(f"{name} has no container in app.yaml, so opsbot has no logs for it.")
    source = target_label(*found)

    since = options.get("since")
    tail = options.get("tail")
    if tail is None:
        # Never read a whole window: --since 7d on a chatty service would be millions of lines.
        tail = MAX_TAIL if since else 100
    try:
        # Whatever the service runs on: its platform's adapter reads the lines (bot/targets).
        adapter = bot.checks.targets.for_platform(bot.config, found[0])
        read = await adapter.logs(found[1], LogQuery(tail=tail, since=since or None))
    except TargetError as exc:
        return Reply.refusal(f"Cannot read the logs of {name}: {exc}.", Outcome.error)

    pattern: Pattern | None = options.get("grep")
    # In a worker thread: redaction and matching of up to MAX_TAIL lines must not stall the event loop.
    try:
        lines = await asyncio.to_thread(_read_lines, read.lines, pattern)
    except (TimeoutError, MemoryError):
        return Reply.refusal(TOO_SLOW)
    window = f"last {tail} lines"
    if since:
        window = f"last {format_duration(since)}"
        if len(read.lines) >= tail:
            window += f" (newest {tail} lines)"
    what = redact(f" matching '{pattern.text}'") if pattern is not None else ""

    if options.get("count"):
        sentence = f"{len(lines)} lines{what} in the {window} of {name} ({source})."
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


COMMAND = CommandSpec(
    name="logs",
    summary="Show a service's logs from its container, pods, unit or program (redacted); --grep filters, --count counts.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the logs action's own policy decides per service
)
