"""Reply -> plain text for the console and `opsbot run`."""
from __future__ import annotations

import re

from typing import Callable

from bot.pipeline.markup import Mention, Text
from bot.pipeline.reply import Actions, Button, Context, Header, Preformatted, Reply, Section

_BOLD = re.compile(r"\*([^*\n]+)\*")
_CODE = re.compile(r"`([^`\n]+)`")


def to_text(reply: Reply, number: Callable[[Button], int] | None = None) -> str:
    """`number` gives each button the number the console user types to press it."""
    if not reply.blocks:
        return _plain(reply.text) + _file(reply)
    out = []
    for block in reply.blocks:
        if isinstance(block, Header):
            out.append(block.text)
            out.append("-" * min(len(block.text), 72))
        elif isinstance(block, Section):
            out.append(_CODE.sub(r"\1", _BOLD.sub(r"\1", _plain(block.text))))
        elif isinstance(block, Preformatted):
            out.append(block.text)
        elif isinstance(block, Context):
            out.append(f"({_plain(block.text)})")
        elif isinstance(block, Actions):
            if number is None:
                out.append("  ".join(f"[{b.label}]" for b in block.buttons))
            else:
                out.append("  ".join(f"[{number(b)}] {b.label}" for b in block.buttons) + "   (type the number to press)")
    return "\n".join(out) + _file(reply)


def _plain(text: str) -> str:
    """The bot's own mentions as @U123; anything else exactly as it reads, `<@U…>` typed by a user included."""
    if not isinstance(text, Text):
        return text
    return "".join(part.plain if isinstance(part, Mention) else part for part in text.parts)


def _file(reply: Reply) -> str:
    if reply.file is None:
        return ""
    return f"\n--- {reply.file.filename} ---\n{reply.file.content.rstrip()}\n--- end of {reply.file.filename} ---"
