"""How backups read in chat: sizes, ages, the /backup list table, verification and retention lines."""
from __future__ import annotations

from datetime import datetime

from bot.backup.models import Backup
from bot.backup.retention import RetentionPlan
from bot.config.types import format_duration


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def human_age(then: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{(seconds % 86400) // 3600:.0f}h"


def made_by(who: str) -> str:
    return who if who.startswith("schedule:") else f"<@{who}>"


def progress_line(database: str, size: int, elapsed: float) -> str:
    rate = size / elapsed if elapsed > 0 else 0
    return f"{database}: {human_size(size)} dumped in {elapsed:.0f} s ({human_size(int(rate))}/s)"


def done_line(backup: Backup) -> str:
    label = f" \"{backup.label}\"" if backup.label else ""
    state = "verified" if backup.verified else f"NOT verified: {backup.verify_error}"
    return (
        f"{backup.database}: backup #{backup.id}{label} {backup.file_name}, {human_size(backup.size)} "
        f"in {backup.duration:.1f} s, sha256 {backup.sha256[:12]}, {state}"
    )


def table(backups: list[Backup], now: datetime) -> str:
    """The /backup list table: id, database, file, size, duration, verified, made by, age."""
    header = ("id", "database", "file", "size", "took", "verified", "made by", "age")
    rows = [header]
    for b in backups:
        rows.append(
            (
                f"#{b.id}",
                b.database,
                b.file_name + (f" ({b.label})" if b.label else ""),
                human_size(b.size),
                f"{b.duration:.1f}s",
                "yes" if b.verified else "NO",
                b.made_by,
                human_age(b.created_at, now),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def retention_lines(database: str, plan: RetentionPlan, dry_run: bool) -> list[str]:
    verb = "would delete" if dry_run else "deleted"
    lines = [f"{database}: keeps {len(plan.keep)}, {verb} {len(plan.delete)}"]
    for b in plan.delete:
        lines.append(f"  {verb} #{b.id} {b.file_name} ({plan.reasons.get(b.id, '')})")
    for b in plan.unseen:
        lines.append(f"  left #{b.id} {b.file_name} as it is: this replica cannot see its file")
    for b in plan.keep:
        lines.append(f"  keeps #{b.id} {b.file_name} ({plan.reasons.get(b.id, '')})")
    return lines


def retention_rules(retention) -> str:
    """The rules of bot.backup.retention as one sentence, under /backup retention's result."""
    return (
        f"Keeps the newest of each day for {retention.daily_days} days and of each ISO week for {retention.weekly_weeks} weeks, "
        f"nothing older than {retention.max_age_days} days; never deletes a backup an open /restore request names, "
        f"the newest verified backup, or one younger than {format_duration(retention.min_age)}."
    )
