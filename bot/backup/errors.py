"""The backup slice's errors, and the one line of a client's stderr a user is shown."""
from __future__ import annotations

from bot.redaction import redact_cut


class BackupError(Exception):
    """One sentence for the user: what failed and what state things are in."""


class ClientMissing(BackupError):
    """The client program could not run at all (not installed, Docker unreachable, not in the image)."""


class StillRunning(BackupError):
    """A timeout in a container: the bot stopped waiting, but the command may still be running there."""

    def __init__(self, message: str, container: str):
        super().__init__(message)
        self.container = container


class CheckNotRun(BackupError):
    """A check of a file could not run (no client, Docker down, a timeout): it says nothing about the file."""



DETAIL_KEPT = 200  # a DETAIL line longer than this is left out


def error_line(stderr: str) -> str:
    """The client's error, redacted: the last line that says "error:" (with the DETAIL line after it when
    short), not the last line (pg_restore ends with "Command was: <the SQL>"); the last line when none does."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no error output"
    found = next((i for i in range(len(lines) - 1, -1, -1) if "error:" in lines[i].lower()), None)
    if found is None:
        text = lines[-1]
    else:
        text = lines[found]
        following = lines[found + 1] if found + 1 < len(lines) else ""
        if following.upper().startswith("DETAIL:") and len(following) <= DETAIL_KEPT:
            text = f"{text} {following}"
    return redact_cut(text, 300)

