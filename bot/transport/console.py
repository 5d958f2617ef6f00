"""The console: type `/health backend`, get the reply as text. Works with piped standard input."""
from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.pipeline.request import Request
from bot.transport.text import to_text

CONSOLE_CHANNEL = "console"
PROMPT = "opsbot> "


def split_command(line: str) -> tuple[str, str] | None:
    """'/health backend' -> ('health', 'backend'); None when the line is not a command."""
    line = line.strip()
    if not line.startswith("/") or len(line) < 2:
        return None
    name, _, rest = line[1:].partition(" ")
    return name.lower(), rest.strip()


async def run_console(bot, user_id: str, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    interactive = stdin.isatty()
    if interactive:
        stdout.write(f"opsbot console as {user_id}. Type /help, or quit to leave.\n")
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            stdout.write(PROMPT)
            stdout.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line in ("quit", "exit"):
            break
        parsed = split_command(line)
        if parsed is None:
            stdout.write("Commands start with a slash, like /health or /help.\n")
            stdout.flush()
            continue
        command, text = parsed
        reply = await bot.handle(Request(user_id=user_id, channel_id=CONSOLE_CHANNEL, command=command, text=text, transport="console"))
        stdout.write(to_text(reply) + "\n")
        stdout.flush()
