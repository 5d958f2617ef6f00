"""/db [database] status|slow|tables|kill-idle|vacuum: PostgreSQL for the person on call (runbooks 000, 001, 003).

status, slow and tables read (a READ ONLY transaction under the database's statement_timeout)
and need a role that owns the database. kill-idle and vacuum change things: they become
requests of the kill_idle and vacuum actions, planned, approved and run by the action flow.
The database may be left out when app.yaml declares exactly one.
"""
from __future__ import annotations

from bot.action import policy
from bot.action.kinds.base import Target
from bot.action.params import BadParameter, parse_params
from bot.database import DatabaseError
from bot.database.display import age, table
from bot.database.slow import slow
from bot.database.status import status
from bot.database.tables import largest_tables
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, split_words
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply, Section

USAGE = (
    "/db [database] status | slow | tables | kill-idle [--older-than 1h] [--idle-in-transaction] | vacuum [table]"
)
GRAMMAR = Grammar(usage=USAGE, free_text=True)
READS = ("status", "slow", "tables")
CHANGES = {"kill-idle": "kill_idle", "vacuum": "vacuum"}  # subcommand -> the action it requests
SUBCOMMANDS = (*READS, *CHANGES)
GRADE_OUTCOME = {"ok": Outcome.ok, "warning": Outcome.warning, "critical": Outcome.critical}
LABEL = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"}


class Refused(ValueError):
    """The sentence is the whole answer."""


def _known(config) -> str:
    return ", ".join(sorted(config.databases)) or "none (app.yaml declares no databases)"


def split(config, words: list[str]) -> tuple[str, str, list[str]]:
    """(database, subcommand, the words after it) from what was typed; Refused with a sentence otherwise."""
    if not words:
        raise Refused(f"Say what to show or do. Usage: {USAGE}")
    first, subs = words[0], set(SUBCOMMANDS)
    if len(words) > 1 and words[1].lower() in subs and (first in config.databases or first.lower() not in subs):
        if first not in config.databases:
            raise Refused(f"Unknown database '{first[:60]}'. Known: {_known(config)}.")
        return first, words[1].lower(), words[2:]
    if first.lower() in subs:
        if len(config.databases) == 1:
            return next(iter(config.databases)), first.lower(), words[1:]
        if not config.databases:
            raise Refused("app.yaml declares no databases: add them under databases: to use /db.")
        raise Refused(f"Which database? Known: {_known(config)}. Usage: {USAGE}")
    if first in config.databases:
        if len(words) > 1:
            raise Refused(f"Unknown subcommand '{words[1][:40]}'. Usage: {USAGE}")
        raise Refused(f"What about {first}? Usage: {USAGE}")
    raise Refused(f"Unknown database or subcommand '{first[:60]}'. Known databases: {_known(config)}. Usage: {USAGE}")


def kill_idle_params(name: str, rest: list[str]) -> dict[str, str]:
    """The raw parameters of the kill_idle action from `[--older-than 1h] [--idle-in-transaction]`."""
    raw = {"database": name, "older_than": "1h", "idle_in_transaction": "false"}
    i = 0
    while i < len(rest):
        word = rest[i]
        flag, has_value, inline = word.partition("=")
        if flag == "--older-than":
            if has_value:
                value = inline
            elif i + 1 < len(rest):
                i += 1
                value = rest[i]
            else:
                raise Refused(f"--older-than needs a duration, e.g. --older-than 1h. Usage: {USAGE}")
            raw["older_than"] = value
        elif flag == "--idle-in-transaction" and not has_value:
            raw["idle_in_transaction"] = "true"
        else:
            raise Refused(f"Unexpected '{word[:40]}': kill-idle takes --older-than DURATION and --idle-in-transaction. Usage: {USAGE}")
        i += 1
    return raw


def vacuum_params(name: str, rest: list[str]) -> dict[str, str]:
    if len(rest) > 1 or any(word.startswith("-") for word in rest):
        raise Refused(f"vacuum takes at most one table name. Usage: {USAGE}")
    return {"database": name, **({"table": rest[0]} if rest else {})}


async def handle(inv: Invocation) -> Reply:
    bot = inv.ctx
    try:
        words = split_words(inv.args.positionals["text"])
    except ValueError:
        return Reply.refusal(f"A quote is not closed. Usage: {USAGE}")
    try:
        name, sub, rest = split(bot.config, words)
        if sub in CHANGES:
            raw = kill_idle_params(name, rest) if sub == "kill-idle" else vacuum_params(name, rest)
        elif rest:
            raise Refused(f"/db {sub} takes nothing after it; unexpected '{rest[0][:40]}'. Usage: {USAGE}")
    except Refused as exc:
        return Reply.refusal(str(exc))

    if sub in CHANGES:
        action = CHANGES[sub]
        refusal = _bad_parameters(bot.config, action, raw)
        if refusal:
            return Reply.refusal(refusal)
        from bot.action.flow import request_action

        return await request_action(bot, inv.request, action, raw)

    refusal = await policy.read_refusal(bot.roles, bot.config, Target("database", name), inv.request.user_id, "read")
    if refusal:
        return Reply.refusal(refusal, Outcome.denied)
    database = bot.config.databases[name]
    try:
        if sub == "status":
            return render_status(name, database, await status(name, database))
        if sub == "slow":
            return render_slow(name, await slow(name, database))
        return render_tables(name, await largest_tables(name, database))
    except DatabaseError as exc:
        return Reply.refusal(str(exc), Outcome.error)


def _bad_parameters(config, action: str, raw: dict[str, str]) -> str | None:
    """The sentence the action flow would refuse these parameters with, before any request is made; None when fine."""
    spec = config.action(action)
    if spec is None:
        return f"No action {action} is declared in app.yaml."
    from bot.action.kinds.pg_terminate import KIND as PG_TERMINATE
    from bot.action.kinds.pg_vacuum import KIND as PG_VACUUM

    kind = {"pg_terminate": PG_TERMINATE, "pg_vacuum": PG_VACUUM}.get(spec.kind)
    if kind is None:
        return None  # another kind bound by app.yaml: the flow checks its parameters
    try:
        parse_params(kind.params(spec), raw, config)
    except BadParameter as exc:
        return str(exc)
    return None


def render_status(name: str, database, found) -> Reply:
    limits = database.connections
    longest = (
        f"{age(found.longest_transaction_seconds)} (pid {found.longest_transaction_pid}, {found.longest_transaction_state or 'no state'})"
        if found.longest_transaction_seconds is not None
        else "none open"
    )
    # Without pg_read_all_stats other roles' backends are hidden: counted as connections (at most), and said.
    at_most = "at most " if found.hidden else ""
    facts = [
        ("Connections", f"{at_most}{found.in_use}/{found.max_connections} on the server ({found.percent:.0f}%)"),
        (f"On {name}", f"{found.total}: {found.active} active, {found.idle} idle, {found.idle_in_transaction} idle in transaction"),
        ("Size", found.size),
        ("Longest transaction", longest),
    ]
    if found.hidden:
        facts.append(("Hidden", f"{found.hidden} backends of other roles (no database, state or query shown)"))
    width = max(len(label) for label, _ in facts)
    lines = [f"{label.ljust(width)}  {value}" for label, value in facts]
    title = f"{name}: {LABEL[found.grade]}, connections {at_most}{found.in_use}/{found.max_connections} ({found.percent:.0f}%), {found.size}"
    blind = None
    if found.hidden:
        blind = (
            f"opsbot's database user sees only its own role's backends ({found.hidden} others are hidden): "
            "grant it pg_read_all_stats to see every connection."
        )
        title += "; it sees only its own role's backends (grant pg_read_all_stats)"
    thresholds = ", ".join(
        f"{label} at {value:g}%" for label, value in (("warning", limits.warn), ("critical", limits.critical)) if value is not None
    )
    return Reply(
        text=title,
        blocks=[
            Header(f"/db {name} status"),
            Section(title),
            Preformatted("\n".join(lines)),
            Context(f"Connections in use against max_connections: {thresholds or 'no limits set'}, as runbook 000 says."),
            *([Context(blind)] if blind else []),
        ],
        outcome=GRADE_OUTCOME[found.grade],  # of the count with the hidden backends: an upper bound, so OK is true
    )


def render_slow(name: str, found) -> Reply:
    blocks: list = [Header(f"/db {name} slow")]
    after = age(found.slow_after)
    if found.running:
        shown = f"{found.matching} statements" if found.matching != 1 else "1 statement"
        title = f"{shown} on {name} running longer than {after}"
        if found.matching > len(found.running):
            title += f" (the {len(found.running)} longest-running are listed)"
        rows = [[str(r.pid), r.user, r.application, r.state, age(r.seconds), r.query] for r in found.running]
        blocks += [Section(title), Preformatted(table(rows, ["pid", "user", "application", "state", "running", "query"]))]
    else:
        title = f"No statement on {name} has been running longer than {after}."
        blocks.append(Section(title))
    if found.top:
        rows = [[str(t.calls), f"{t.mean_ms:.1f}", f"{t.total_ms / 1000:.1f}", t.query] for t in found.top]
        blocks += [Context("Slowest on average (pg_stat_statements):"), Preformatted(table(rows, ["calls", "mean ms", "total s", "query"]))]
    elif found.top_note:
        blocks.append(Context(found.top_note))
    return Reply(text=title, blocks=blocks, outcome=Outcome.warning if found.running else Outcome.ok)


def render_tables(name: str, found) -> Reply:
    if not found:
        sentence = f"{name} has no tables."
        return Reply(text=sentence, blocks=[Header(f"/db {name} tables"), Section(sentence)])
    title = f"The {len(found)} largest tables of {name}" if len(found) > 1 else f"The only table of {name}"
    rows = [[t.shown, t.total, t.table, t.indexes, f"{t.rows_estimate:,}"] for t in found]
    return Reply(
        text=title,
        blocks=[
            Header(f"/db {name} tables"),
            Section(title),
            Preformatted(table(rows, ["table", "total", "table", "indexes", "rows (est.)"])),
            Context("Rows are PostgreSQL's estimate as of the last VACUUM or ANALYZE."),
        ],
    )


COMMAND = CommandSpec(
    name="db",
    summary="PostgreSQL: status, slow statements, largest tables; kill idle connections or vacuum, once approved.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # reads need a role owning the database; kill-idle and vacuum follow their action's policy
)
