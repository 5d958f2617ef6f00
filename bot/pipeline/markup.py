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
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,31}$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,31}$")
_PATTERNS = {"user": _USER_ID, "group": _GROUP_ID, "channel": _CHANNEL_ID}


@dataclass(frozen=True)
class Mention:
    """Someone the bot names on purpose: a user (requester, approver, the on-call) as `<@U123>`,
    a user group paged by an escalation as `<!subteam^S123>`, `here` as `<!here>`, or an
    incident's channel as `<#C123>`. On the console: `@U123`, `@S123`, `@here`, `#C123`."""

    user_id: str
    kind: str = "user"  # or "group", "here", "channel"

    @property
    def valid(self) -> bool:
        if self.kind == "here":
            return True
        return bool(_PATTERNS[self.kind].match(self.user_id))

    @property
    def slack(self) -> str:
        return {"here": "<!here>", "group": f"<!subteam^{self.user_id}>", "channel": f"<#{self.user_id}>"}.get(self.kind, f"<@{self.user_id}>")

    @property
    def plain(self) -> str:
        return {"here": "@here", "channel": f"#{self.user_id}"}.get(self.kind, f"@{self.user_id}")


def group(group_id: str) -> Mention:
    return Mention(group_id, "group")


def channel(channel_id: str) -> Mention:
    return Mention(channel_id, "channel")


HERE = Mention("here", "here")


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
        value = "".join(p.slack if isinstance(p, Mention) else p for p in flat)
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
            out.append(part.slack if part.valid else escape(part.plain))
        else:
            out.append(escape(part))
    return "".join(out)
