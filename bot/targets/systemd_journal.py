"""A unit's journal, read with the host's own `journalctl -o json` as an argument list (never a shell).

journalctl is systemd's reader of its own file format (which changes: compact mode, zstd), so
the bot never parses journal files itself. With `targets.systemd.journal_directory` it reads the
files in that directory (`--directory=`): a journal kept elsewhere (a machine's
/var/log/journal mounted into the bot's container, as the tests do); otherwise the host's own
journal. Bounded: the newest `tail` entries (`-n`), within `since` (a relative time, so no wall
clock is read here), at most MAX_OUTPUT bytes, within READ_TIMEOUT seconds; every value is
joined to its option (`--unit=NAME`), so a name cannot be read as an option.
Lines are parsed in a worker thread; each is "YYYY-MM-DD HH:MM:SS message" (UTC), raw: the
caller redacts.
"""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

from bot.targets.base import LogLines, LogQuery, TargetError

READ_TIMEOUT = 15.0
MAX_OUTPUT = 16 * 1024 * 1024  # 5,000 entries of a 2,000-character message and journalctl's always-printed fields, with room
MAX_ERROR = 4096


def journal_arguments(unit: str, query: LogQuery, directory: str | None) -> list[str]:
    # --reverse: newest first, so --lines keeps the newest even with --since (which would keep the oldest).
    # --output-fields: only the message (the timestamp always comes): a JSON entry is ~1.5 KiB with every field.
    args = ["journalctl", "--no-pager", "--quiet", "--output=json", "--output-fields=MESSAGE", "--reverse", f"--unit={unit}", f"--lines={query.tail}"]
    if query.since is not None:
        args.append(f"--since=-{int(query.since)}s")
    if directory:
        args.append(f"--directory={directory}")
    return args


async def read_journal(unit: str, query: LogQuery, directory: str | None) -> LogLines:
    args = journal_arguments(unit, query, directory)
    try:
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError:
        raise TargetError("journalctl is not installed where the bot runs (Debian: the systemd package)") from None
    try:
        out, err = await asyncio.wait_for(_bounded(process), READ_TIMEOUT)
    except asyncio.TimeoutError:
        raise TargetError(f"journalctl did not finish within {READ_TIMEOUT:g} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode not in (0, None) and not out:
        first = err.decode("utf-8", "replace").strip().splitlines()[:1]
        raise TargetError(f"journalctl failed ({first[0] if first else f'exit status {process.returncode}'})")
    lines = (await asyncio.to_thread(parse_entries, out))[-query.tail :]  # a multi-line message is several lines
    where = f" in {directory}" if directory else ""
    return LogLines(lines, f"systemd {unit} journal{where}")


async def _bounded(process) -> tuple[bytes, bytes]:
    """stdout up to MAX_OUTPUT (past it the process is killed and the last, partial entry dropped), stderr up to MAX_ERROR."""
    async def take(stream, limit: int) -> bytes:
        data = bytearray()
        while len(data) < limit:
            chunk = await stream.read(min(65536, limit - len(data)))
            if not chunk:
                return bytes(data)
            data += chunk
        process.kill()
        return bytes(data[: data.rfind(b"\n") + 1])

    out, err = await asyncio.gather(take(process.stdout, MAX_OUTPUT), take(process.stderr, MAX_ERROR))
    await process.wait()
    return out, err


def parse_entries(raw: bytes) -> list[str]:
    """journalctl's JSON entries, newest first, as lines oldest first."""
    lines = []
    for text in reversed(raw.splitlines()):
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # not valid UTF-8: journalctl gives the bytes
            message = bytes(b & 0xFF for b in message if isinstance(b, int)).decode("utf-8", "replace")
        if message is None:
            continue
        stamp = entry.get("__REALTIME_TIMESTAMP")
        when = datetime.fromtimestamp(int(stamp) / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M:%S ") if str(stamp).isdigit() else ""
        lines.extend(when + part for part in str(message).splitlines() or [""])
    return lines
