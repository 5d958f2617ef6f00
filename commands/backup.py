"""/backup: dump a database through the `backup` action, list, verify and prune backups.

  /backup [database] [--label TEXT]          the backup action (pg_backup); every declared database when none is named
  /backup list [database]                    the newest 20 backups still on disk
  /backup verify ID                          re-hash the file, pg_restore --list and read every block of it
  /backup retention [database] [--dry-run]   apply retention now, or (--dry-run) only list what it would delete

A first word of list, verify or retention is the subcommand, never a database name.
Listing and verifying need a role that owns the database (as /db reads do); applying
retention needs the role that may request the backup action.
"""
from __future__ import annotations

from bot.action import policy
from bot.action.kinds.base import Target
from bot.audit import service as audit
from bot.backup import service as backups
from bot.backup import views
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, Option
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply

USAGE = "/backup [database] [--label TEXT] | /backup list [database] | /backup verify ID | /backup retention [database] [--dry-run]"
MAX_LABEL = 200
SUBCOMMANDS = ("list", "verify", "retention")


def _label(raw: str) -> str:
    text = raw.strip()
    if not text:
        raise ValueError("the label is empty")
    if len(text) > MAX_LABEL:
        raise ValueError(f"at most {MAX_LABEL} characters")
    return text


GRAMMAR = Grammar(
    usage=USAGE,
    rest="words",
    max_rest=2,
    options=(Option("--label", _label), Option("--dry-run")),
)


def _unknown_database(config, name: str) -> Reply:
    known = ", ".join(sorted(config.databases)[:20]) or "none: app.yaml declares no databases"
    return Reply.refusal(f"Unknown database '{name[:60]}'. Known: {known}.")


async def handle(inv: Invocation) -> Reply:
    words: list[str] = list(inv.args.positionals.get("words") or [])
    options = inv.args.options
    sub = words[0].lower() if words else ""
    if sub in SUBCOMMANDS:
        if options.get("label"):
            return Reply.refusal(f"--label is for making a backup. Usage: {USAGE}")
        if options.get("dry_run") and sub != "retention":
            return Reply.refusal(f"--dry-run is for /backup retention. Usage: {USAGE}")
        if sub == "list":
            return await _list(inv, words[1] if len(words) > 1 else None)
        if sub == "verify":
            if len(words) != 2:
                return Reply.refusal("Which backup? /backup verify ID (ids are in /backup list).")
            return await _verify(inv, words[1])
        return await _retention(inv, words[1] if len(words) > 1 else None, bool(options.get("dry_run")))
    if options.get("dry_run"):
        return Reply.refusal(f"--dry-run is for /backup retention. Usage: {USAGE}")
    if len(words) > 1:
        return Reply.refusal(f"One database at a time, or none for all of them. Usage: {USAGE}")
    raw: dict[str, str] = {}
    if words:
        if words[0] not in inv.ctx.config.databases:
            return _unknown_database(inv.ctx.config, words[0])
        raw["database"] = words[0]
    elif not inv.ctx.config.databases:
        return Reply.refusal("app.yaml declares no databases, so there is nothing to back up.")
    if options.get("label"):
        raw["label"] = options["label"]
    from bot.action.flow import request_action  # the generic flow; imported late (it imports the kinds)

    return await request_action(inv.ctx, inv.request, "backup", raw)


async def _readable(inv: Invocation, names: list[str]) -> list[str]:
    held = await inv.ctx.roles.roles_of(inv.request.user_id)
    return [n for n in names if policy.owners(inv.ctx.config, Target("database", n)) & held]


async def _list(inv: Invocation, database: str | None) -> Reply:
    config = inv.ctx.config
    if database is not None:
        if database not in config.databases:
            return _unknown_database(config, database)
        refusal = await policy.read_refusal(inv.ctx.roles, config, Target("database", database), inv.request.user_id, "list the backups of")
        if refusal:
            return Reply.refusal(refusal, Outcome.denied)
    rows = await backups.list_backups(inv.ctx.db, database, limit=200 if database is None else 20)
    if database is None:
        readable = set(await _readable(inv, sorted({r.database for r in rows if r.database in config.databases})))
        # Safety backups of scratch databases (not in app.yaml) are listed to anyone holding a role.
        rows = [r for r in rows if r.database in readable or r.database not in config.databases][:20]
    title = f"Backups of {database}" if database else "Backups"
    if not rows:
        return Reply(text=f"{title}: none on disk.", blocks=[Header(title), Context("None on disk yet; /backup makes one.")], ephemeral=True)
    table = views.table(rows, _now(inv.ctx))
    note = f"Newest {len(rows)}, newest first; /restore ID puts one back."
    return Reply(text=f"{title}\n{table}", blocks=[Header(title), Context(note), Preformatted(table)], ephemeral=True)


def _now(bot):
    from datetime import datetime, timezone

    clock = getattr(bot, "clock", None)
    return clock.now() if clock is not None else datetime.now(timezone.utc)


def _backup_id(raw: str) -> int | None:
    text = raw.lstrip("#")
    if not text.isdigit() or len(text) > 9:
        return None
    return int(text)


async def _verify(inv: Invocation, raw: str) -> Reply:
    backup_id = _backup_id(raw)
    if backup_id is None:
        return Reply.refusal(f"'{raw[:40]}' is not a backup id; /backup list shows them.")
    try:
        backup = await backups.get_backup(inv.ctx.db, backup_id)
    except backups.NoSuchBackup as exc:
        return Reply.refusal(str(exc))
    if backup.database in inv.ctx.config.databases:
        refusal = await policy.read_refusal(
            inv.ctx.roles, inv.ctx.config, Target("database", backup.database), inv.request.user_id, "verify the backups of"
        )
        if refusal:
            return Reply.refusal(refusal, Outcome.denied)
    result = await backups.verify_backup(inv.ctx, backup_id)
    b = result.backup
    if result.unchecked:
        flag = "verified" if b.verified else "not verified"
        return Reply(
            text=f"Backup #{b.id} ({b.database}, {b.file_name}) could not be checked: {result.unchecked}; it stays marked {flag}.",
            outcome=Outcome.error,
        )
    if result.ok:
        if result.archive_read:
            checks = "SHA-256 matches, pg_restore lists and reads every block"
        else:
            checks = "SHA-256 and size match and it starts with the PGDMP header (a scratch database's safety backup: pg_restore was not run on it)"
        text = f"Backup #{b.id} ({b.database}, {b.file_name}, {views.human_size(b.size)}) verified: {checks}."
        return Reply(text=text, outcome=Outcome.ok)
    return Reply(text=f"Backup #{b.id} ({b.database}, {b.file_name}) FAILED verification: {result.problem}.", outcome=Outcome.critical)


async def _retention(inv: Invocation, database: str | None, dry_run: bool) -> Reply:
    config, user = inv.ctx.config, inv.request.user_id
    if database is not None and database not in config.databases:
        return _unknown_database(config, database)
    names = [database] if database else sorted(config.databases)
    if not names:
        return Reply.refusal("app.yaml declares no databases, so there is no retention to apply.")
    targets = [Target("database", n) for n in names]
    if dry_run:
        for target in targets:
            refusal = await policy.read_refusal(inv.ctx.roles, config, target, user, "see the backups of")
            if refusal:
                return Reply.refusal(refusal, Outcome.denied)
    else:
        spec = config.action("backup")
        refusal = await policy.request_refusal(inv.ctx.roles, config, spec, targets, user, "apply retention to")
        if refusal:
            return Reply.refusal(refusal, Outcome.denied)
    lines: list[str] = []
    for name in names:
        plan = await backups.apply_retention(inv.ctx, name, dry_run=dry_run)
        lines += views.retention_lines(name, plan, dry_run)
        if plan.delete and not dry_run:
            await audit.record(
                inv.ctx.db,
                user_id=user,
                command="backup",
                arguments=f"retention {name}",
                channel=inv.request.channel_id,
                transport=inv.request.transport,
                outcome="ok",
                detail="deleted " + ", ".join(f"#{b.id} {b.file_name}" for b in plan.delete),
                target=name,
            )
    # What an open request (a /restore) names is kept by the retention decision itself: no refusal needed here.
    rules = views.retention_rules(config.backups.retention)
    title = "Retention (dry run)" if dry_run else "Retention"
    text = "\n".join(lines)
    return Reply(text=f"{title}\n{text}", blocks=[Header(title), Context(rules), Preformatted(text)], ephemeral=dry_run)


COMMAND = CommandSpec(
    name="backup",
    summary="Back up a database (verified, with retention), list, verify or prune backups.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the backup action's policy and the databases' owners decide per database
)
