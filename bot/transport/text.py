"""Reply -> plain text for the console and `opsbot run`."""
from __future__ import annotations

import re

from bot.pipeline.reply import Context, Header, Preformatted, Reply, Section

_BOLD = re.compile(r"\*([^*\n]+)\*")
_CODE = re.compile(r"`([^`\n]+)`")


def to_text(reply: Reply) -> str:
    if not reply.blocks:
        return reply.text
    out = []
    for block in reply.blocks:
        if isinstance(block, Header):
            out.append(block.text)
            out.append("-" * min(len(block.text), 72))
        elif isinstance(block, Section):
            out.append(_CODE.sub(r"\1", _BOLD.sub(r"\1", block.text)))
        elif isinstance(block, Preformatted):
            out.append(block.text)
        elif isinstance(block, Context):
            out.append(f"({block.text})")
    return "\n".join(out)
