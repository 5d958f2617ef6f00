"""Write and read the audit trail. Only inserts: the trail is append-only."""
from __future__ import annotations

from sqlalchemy import insert, select

from bot.audit.models import AuditEntry
from bot.redaction import redact_cut
from bot.storage import Database, utcnow

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


# An id no real row has: the probe's insert never takes a sequence value, so it leaves no gap
# in the ids an auditor reads, and it is rolled back, so no row is ever left behind.
_PROBE_ID = -1


async def probe_writable(db: Database) -> None:
    """Raise unless an audit row could be written now: the table exists, the role may insert, the
    database accepts writes. Nothing is kept: the insert is rolled back."""
    async with db.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(
                insert(AuditEntry).values(
                    id=_PROBE_ID, at=utcnow(), user_id="", command="readyz", target="", arguments="",
                    channel="", transport="probe", outcome="probe", detail="",
                )
            )
        finally:
            await transaction.rollback()
