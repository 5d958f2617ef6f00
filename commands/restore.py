"""/restore BACKUP_ID [--into DATABASE]: the `restore` action (pg_restore), two approvers typing the database name.

Without --into the backup goes back over its own database, after a safety backup and with
the database's dependents stopped; --into restores into a scratch database instead (created
when missing), touching nothing else: the weekly "test backup restoration" (runbook 003).
"""
from __future__ import annotations

from bot.backup import service as backups
from bot.backup.restore import check_database_name
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, Option
from bot.pipeline.reply import Reply

USAGE = "/restore BACKUP_ID [--into DATABASE]"


def _into(raw: str) -> str:
    return check_database_name(raw)  # ValueError: the grammar words it with the usage


GRAMMAR = Grammar(usage=USAGE, positionals=("backup",), options=(Option("--into", _into),))


async def handle(inv: Invocation) -> Reply:
    raw = str(inv.args.positionals["backup"]).lstrip("#")
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        return Reply.refusal(f"'{raw[:40]}' is not a backup id; /backup list shows them. Usage: {USAGE}")
    try:
        backup = await backups.get_backup(inv.ctx.db, int(raw))
    except backups.NoSuchBackup as exc:
        return Reply.refusal(str(exc))
    if backup.deleted_at is not None:
        return Reply.refusal(f"Backup #{backup.id}'s file was deleted by retention; /backup list shows what is left.")
    params = {"backup": str(backup.id)}
    into = inv.args.options.get("into")
    if into:
        params["into"] = into
    from bot.action.flow import request_action  # the generic flow; imported late (it imports the kinds)

    return await request_action(inv.ctx, inv.request, "restore", params)


COMMAND = CommandSpec(
    name="restore",
    summary="Restore a backup (into its database, or --into a scratch one) after two approvals.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the restore action's own policy decides per database
)
