"""The console's button numbers: one sequence for the whole session, never reused.

A number names one button on one version of one message, so a scripted `7` always means the
same press: a page printed between a request and its approval takes the next numbers, and cannot
turn the `1` meant for Approve into an Acknowledge. When a message is printed again (edited), its
new version gets new numbers; the old ones keep naming their buttons (see press), and only the
newest version's count for what the console presses as it closes.
"""
from __future__ import annotations

from dataclasses import dataclass

from bot.pipeline.reply import Button


@dataclass(frozen=True)
class Numbered:
    button: Button
    message: str  # the reference of the message it is printed on ("console:3"), or a reply's ("reply:5")
    version: int  # which printing of that message


class ButtonNumbers:
    def __init__(self) -> None:
        self._numbered: dict[int, Numbered] = {}
        self._versions: dict[str, int] = {}  # each message's newest printing

    def start_version(self, message: str) -> int:
        """A message is printed (again): the numbers of its earlier printings are retired."""
        self._versions[message] = self._versions.get(message, 0) + 1
        return self._versions[message]

    def number(self, message: str, version: int, button: Button) -> int:
        number = len(self._numbered) + 1
        self._numbered[number] = Numbered(button, message, version)
        return number

    def press(self, number: int) -> Button | str:
        """The button `number` names, or the sentence to answer when it names none.

        A button on an older version of its message is still pressed, as a Slack client showing
        the old message would press it: its handler answers in one sentence when it no longer
        applies ("Request #4 was already decided by @U1: it is withdrawn.")."""
        numbered = self._numbered.get(number)
        if numbered is None:
            return f"There is no button {number}; the numbers are shown in brackets next to each button."
        return numbered.button

    @property
    def buttons(self) -> dict[int, Button]:
        """Every number given out this session, and its button."""
        return {number: numbered.button for number, numbered in self._numbered.items()}

    def shown_on_close(self) -> list[Button]:
        """The `on_close` buttons on the newest version of each message, oldest message first."""
        return [
            numbered.button
            for numbered in self._numbered.values()
            if numbered.button.on_close and self._versions.get(numbered.message) == numbered.version
        ]
