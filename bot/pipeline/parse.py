"""Argument text -> validated arguments, per command grammar.

Slack formatting is normalised first, so `<@U123|ana>` and smart quotes from a phone
keyboard mean the same as what a terminal user types. Nothing here ever reaches a shell:
the result only selects among declared names and validated values.

The result is plain text: Slack's `&lt;` becomes `<` again. That is safe because every
reply is escaped once, by the renderer (bot/pipeline/markup.py), never here.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Callable

MAX_ARGUMENT_TEXT = 2000

_USER = re.compile(r"<@([UW][A-Z0-9]{1,32})(?:\|[^<>]{0,255})?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]{1,32})(?:\|[^<>]{0,255})?>")
_SUBTEAM = re.compile(r"<!subteam\^([A-Z0-9]{1,32})(?:\|[^<>]{0,255})?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^<>]{0,255})?>")
# Any other <target|label> Slack writes for what was typed: links (http, mailto, tel, ...), dates.
_LINK = re.compile(r"<([a-z][a-z0-9+.-]{0,20}:[^|<>]{0,3000})(?:\|[^<>]{0,3000})?>")
_DATE = re.compile(r"<!date\^[^|<>]{0,200}\|([^<>]{0,200})>")
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'", "\u00a0": " "})


class UsageError(ValueError):
    """The user typed something the grammar does not accept; the message is the whole answer."""


def normalise_slack_text(text: str) -> str:
    text = _USER.sub(r"\1", text)
    text = _CHANNEL.sub(r"\1", text)
    text = _SUBTEAM.sub(r"\1", text)
    text = _SPECIAL.sub(r"@\1", text)
    text = _DATE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = html.unescape(text)  # Slack escapes &, < and > as &amp; &lt; &gt;
    return text.translate(_QUOTES).strip()


@dataclass(frozen=True)
class Option:
    flag: str  # "--tail"
    parse: Callable[[str], object] | None = None  # None: a switch without a value


@dataclass(frozen=True)
class Grammar:
    usage: str  # "/health [service ...]"
    positionals: tuple[str, ...] = ()  # names of single positionals, in order
    rest: str | None = None  # name of a trailing list of positionals
    options: tuple[Option, ...] = ()
    max_rest: int = 50
    # The command reads its own words (/incident: an update's text may hold "--force"); parse()
    # only bounds and normalises the text, into positionals["text"].
    free_text: bool = False

    def parse(self, text: str) -> "ParsedArgs":
        if len(text) > MAX_ARGUMENT_TEXT:
            raise UsageError(
                f"That is {len(text):,} characters of arguments; commands take at most {MAX_ARGUMENT_TEXT:,}. "
                f"Usage: {self.usage}"
            )
        if any((ord(ch) < 32 and ch not in "\t\n") or "\ud800" <= ch <= "\udfff" for ch in text):
            raise UsageError(f"The arguments contain control characters. Usage: {self.usage}")
        if self.free_text:
            return ParsedArgs({"text": normalise_slack_text(text)})
        try:
            words = split_words(normalise_slack_text(text))
        except ValueError:
            raise UsageError(f"A quote is not closed. Usage: {self.usage}") from None
        by_flag = {o.flag: o for o in self.options}
        values: dict[str, object] = {}
        positionals: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            if word.startswith("-"):
                option = by_flag.get(word.split("=", 1)[0])
                if option is None:
                    raise UsageError(f"Unknown option '{_show(word)}'. Usage: {self.usage}")
                name = option.flag.lstrip("-").replace("-", "_")
                if option.parse is None:
                    if "=" in word:
                        raise UsageError(f"{option.flag} takes no value. Usage: {self.usage}")
                    values[name] = True
                else:
                    if "=" in word:
                        raw = word.split("=", 1)[1]
                    elif i + 1 < len(words):
                        i += 1
                        raw = words[i]
                    else:
                        raise UsageError(f"{option.flag} needs a value. Usage: {self.usage}")
                    try:
                        values[name] = option.parse(raw)
                    except ValueError as exc:
                        raise UsageError(f"{option.flag} {_show(raw)}: {exc}. Usage: {self.usage}") from None
            else:
                positionals.append(word)
            i += 1
        named: dict[str, object] = {}
        for name in self.positionals:
            if not positionals:
                raise UsageError(f"Missing <{name}>. Usage: {self.usage}")
            named[name] = positionals.pop(0)
        if self.rest is not None:
            if len(positionals) > self.max_rest:
                if self.max_rest == 1:
                    raise UsageError(f"Unexpected '{_show(positionals[1])}'. Usage: {self.usage}")
                raise UsageError(f"At most {self.max_rest} names at once. Usage: {self.usage}")
            named[self.rest] = positionals
        elif positionals:
            raise UsageError(f"Unexpected '{_show(positionals[0])}'. Usage: {self.usage}")
        return ParsedArgs(named, values)


def split_words(text: str) -> list[str]:
    r"""Words separated by spaces; "..." or '...' at the start of a word (or after `=`) groups spaces.

    Not shlex: an apostrophe inside a word is a letter ("can't connect"), and a backslash is
    kept as typed, so `--grep /\d+ ms/` reaches the regex intact. Inside quotes only `\"`
    (or `\'`) stands for the quote itself. ValueError when a quote is not closed.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        word: list[str] = []
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in "\"'" and (not word or word[-1] == "="):
                i += 1
                while i < n and text[i] != ch:
                    if text[i] == "\\" and i + 1 < n and text[i + 1] == ch:
                        i += 1
                    word.append(text[i])
                    i += 1
                if i >= n:
                    raise ValueError("a quote is not closed")
                i += 1  # the closing quote
                continue
            word.append(ch)
            i += 1
        words.append("".join(word))
    return words


@dataclass(frozen=True)
class ParsedArgs:
    positionals: dict[str, object] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)


def _show(word: str, limit: int = 40) -> str:
    """Echo user input back safely: short, printable."""
    word = "".join(ch if ch.isprintable() else "?" for ch in word)
    return word if len(word) <= limit else word[: limit - 1] + "…"
