"""Write and read the audit trail. Only inserts: the trail is append-only."""
from __future__ import annotations

from sqlalchemy import select

from bot.audit.models import AuditEntry
from bot.redaction import redact_cut
from bot.storage import Database

MAX_ARGUMENTS = 2000


async def record(
    db: Database,
    *,
    user_id: str,
    command: str,
    arguments: str,
    channel: str,
    transport: str,
    outcome: str,
    detail: str = "",
    target: str = "",
) -> None:
    def clean(text: str) -> str:
        # Redacted on a bounded head of the text (an argument can be any size), then cut, so a secret
        # across the cut is masked whole. PostgreSQL text cannot hold NUL; an attempt with one must
        # still be on record.
        return _storable(redact_cut(text, MAX_ARGUMENTS, mark=False))[:MAX_ARGUMENTS]

    def short(text: str) -> str:
        return _storable(text)[:64]

    entry = AuditEntry(
        target=short(target),
        user_id=short(user_id),
        command=short(command),
        arguments=clean(arguments),
        channel=short(channel),
        transport=transport,
        outcome=outcome,
        detail=clean(detail),
    )
    async with db.sessions() as session, session.begin():
        session.add(entry)


def _storable(text: str) -> str:
    """What any database column can hold: NUL spelled out, a lone surrogate replaced. An attempt
    with either must still be on record."""
    text = text.replace("\x00", "\\x00")
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


async def entries(db: Database, limit: int = 50, *, target: str | None = None, since=None) -> list[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())
