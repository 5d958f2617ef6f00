"""Reading lines at a terminal: prompt_toolkit owns the input line.

A page can arrive while someone is half-way through typing a command. Printed straight to the
terminal it would land in the middle of the typed text, which the terminal's own line editing
then neither shows again nor lets the person see before pressing Enter. prompt_toolkit keeps the
input line itself: output written meanwhile (through its patched standard output) is printed above
it, and the prompt with what was typed so far is drawn again below. It is the maintained library
for exactly this (IPython's and pgcli's input line); writing that redraw by hand means owning raw
terminal mode, cursor movement and wide characters.

Piped input (scripts, `make run < tour.txt`, the tests) does not come here: it is read line by
line as before (console.py), with nothing to redraw.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout


class TerminalLines:
    def __init__(self) -> None:
        self._session: PromptSession[str] = PromptSession()

    @contextmanager
    def printing(self) -> Iterator[TextIO]:
        """While the console runs: the stream to print to, which prompt_toolkit prints above the input line."""
        # Not raw: escape sequences in what is printed (a container's log lines) are shown, not obeyed.
        with patch_stdout(raw=False):
            yield sys.stdout

    async def read(self, prompt: str) -> str | None:
        """The next line typed after `prompt`; None at end of input (Ctrl-D). Ctrl-C drops the line being
        typed, as in a shell, rather than ending the console with the requests it left pending."""
        try:
            return await self._session.prompt_async(prompt)
        except EOFError:
            return None
        except KeyboardInterrupt:
            return ""
