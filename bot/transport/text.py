"""Reply -> plain text for the console and `opsbot run`."""
from __future__ import annotations

import re

from typing import Callable

from bot.pipeline.reply import Actions, Button, Context, Header, Preformatted, Reply, Section

_BOLD = re.compile(r"\*([^*\n]+)\*")
_CODE = re.compile(r"`([^`\n]+)`")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")


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
            out.append(_plain(_CODE.sub(r"\1", _BOLD.sub(r"\1", block.text))))
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
    return _MENTION.sub(r"@\1", text)


def _file(reply: Reply) -> str:
    if reply.file is None:
        return ""
    return f"\n--- {reply.file.filename} ---\n{reply.file.content.rstrip()}\n--- end of {reply.file.filename} ---"
