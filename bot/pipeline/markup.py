"""Which parts of a message are the bot's own markup and which are text to show as it is.

Every string a handler puts in a Reply is treated as text: the Slack renderer escapes
`&`, `<` and `>` in it, so a user's `<!channel>`, a service's `<https://evil|Approve>` or
a log line's `<@U123>` arrive as characters, never as a ping or a link. The only live
markup is a `Mention` that the bot itself places, carried by `Text`.

`Text` is a `str` (its value is the mention written as Slack writes it, `<@U123>`), so it
prints, compares and audits like any string. Anything that rebuilds it (slicing,
concatenation, an f-string) gets a plain `str` back, which is escaped: a mention lost
that way shows as literal text, never the other way round.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")


@dataclass(frozen=True)
class Mention:
    """A Slack user the bot names on purpose (requester, approver): `<@U123>` in Slack, `@U123` on the console."""

    user_id: str

    @property
    def valid(self) -> bool:
        return bool(_USER_ID.match(self.user_id))


class Text(str):
    """A line made of plain text and mentions; the renderer escapes the text parts only."""

    parts: tuple[str | Mention, ...]

    def __new__(cls, *parts: "str | Mention | Text") -> "Text":
        flat: list[str | Mention] = []
        for part in parts:
            if isinstance(part, Text):
                flat.extend(part.parts)
            elif isinstance(part, Mention):
                flat.append(part)
            else:
                flat.append(str(part))
        value = "".join(f"<@{p.user_id}>" if isinstance(p, Mention) else p for p in flat)
        self = super().__new__(cls, value)
        self.parts = tuple(flat)
        return self


def mentions(user_ids, separator: str = ", ") -> Text:
    """`<@U1>, <@U2>`: a list of users as mentions."""
    parts: list[str | Mention] = []
    for i, user in enumerate(user_ids):
        if i:
            parts.append(separator)
        parts.append(Mention(user))
    return Text(*parts)


def escape(text: str) -> str:
    """Slack's three control characters as entities (its formatting docs ask for exactly these)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(text: str) -> str:
    """Slack mrkdwn for any text a Reply carries: escaped, except the bot's own mentions."""
    if not isinstance(text, Text):
        return escape(text)
    out = []
    for part in text.parts:
        if isinstance(part, Mention):
            out.append(f"<@{part.user_id}>" if part.valid else escape(f"@{part.user_id}"))
        else:
            out.append(escape(part))
    return "".join(out)
