"""What the console prints, in an order a person can follow.

Two kinds of output share one terminal: the answer to the line just typed (with the messages
that line posts and edits), and posts that arrive on their own (a page, a scheduled post, a
maintenance notice). The second kind is printed as a block of its own under a header line
saying what it is, and never inside an answer: while a line is being handled, blocks wait and
are printed after its answer. A line that runs long (an approved restart, a backup, a prompt
nobody answers) holds them at most HOLD_SECONDS: a page must not wait for a backup, so then
they are printed between two of the line's messages, never inside one (each message is one write).

Which output belongs to the line is told by a context variable set while the line is handled:
whatever the line's code posts (in its task, or tasks it starts) carries it; the scheduler's
jobs, started before any line, do not.

At a terminal, prompt_toolkit keeps the input line (console_terminal.py): what is printed goes
above it, and the prompt with what was typed so far is drawn again. Piped input is not echoed, so
a block printed while a question waits for its answer starts on a line of its own.
"""
from __future__ import annotations

import asyncio
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

HOLD_SECONDS = 10.0

_in_line: ContextVar[bool] = ContextVar("console_in_line", default=False)


def in_line() -> bool:
    """Whether the running code is handling a line typed at the console (its output is part of the answer)."""
    return _in_line.get()


class ConsoleOutput:
    def __init__(self, stdout: TextIO, clock):
        self._stdout, self._clock = stdout, clock
        self._lines_running = 0
        self._held: list[str] = []
        self._hold_timer: asyncio.Task | None = None
        self._question_open = False  # a question printed on piped output waits for its (unechoed) answer

    def write(self, text: str) -> None:
        """Part of an answer (or the console's own words): printed at once."""
        self._emit(text.rstrip("\n") + "\n")

    def block(self, header: str, text: str) -> None:
        """A post that arrived on its own: printed now, or after the answer being printed."""
        block = f"{header}\n{text.rstrip(chr(10))}\n"
        if self._lines_running:
            self._held.append(block)
            if self._hold_timer is None or self._hold_timer.done():
                self._hold_timer = asyncio.get_running_loop().create_task(self._release_after_hold())
            return
        self._print_block(block)

    @contextmanager
    def line(self):
        """Around handling one typed line: its output is the answer; blocks arriving meanwhile wait for its end."""
        token = _in_line.set(True)
        self._lines_running += 1
        try:
            yield
        finally:
            self._lines_running -= 1
            _in_line.reset(token)
            if not self._lines_running:
                self._release()

    def question(self, text: str) -> None:
        """Piped input: print `text` and wait for the answer, which is not echoed."""
        self._emit(text)
        self._question_open = True

    def answered(self) -> None:
        self._question_open = False

    def close(self) -> None:
        self._release()

    async def _release_after_hold(self) -> None:
        await self._clock.sleep(HOLD_SECONDS)
        self._release()

    def _release(self) -> None:
        if self._hold_timer is not None and not self._hold_timer.done() and self._hold_timer is not asyncio.current_task():
            self._hold_timer.cancel()
        self._hold_timer = None
        held, self._held = self._held, []
        for block in held:
            self._print_block(block)

    def _print_block(self, block: str) -> None:
        self._emit("\n" + block if self._question_open else block)  # off the open question's line

    def _emit(self, text: str) -> None:
        self._stdout.write(text)
        self._stdout.flush()
