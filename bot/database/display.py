"""How database text and ages are shown: text from the database stays data, redacted and cut to one line."""
from __future__ import annotations

from bot.redaction import redact_cut

QUERY_CHARS = 200  # of a statement's text in a listing
NAME_CHARS = 64  # of a user or application name


def one_line(text: str | None, limit: int = QUERY_CHARS) -> str:
    """Whitespace runs (newlines too) become one space, then the line is redacted and cut."""
    if not text:
        return ""
    return redact_cut(" ".join(text[: limit * 20].split()), limit)


def age(seconds: float | None) -> str:
    """12.3 -> '12 s', 3725 -> '1 h 2 m', 200000 -> '2 d 7 h'."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.0f} s" if seconds.is_integer() else f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} m" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} m {secs} s" if secs else f"{minutes} m"
    return f"{secs} s"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Columns padded to their widest cell, for a Preformatted block."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)
