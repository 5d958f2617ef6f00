"""`opsbot shell` at a terminal: a real process on a pseudo-terminal, typed at key by key.

A page arriving while a command is half typed is printed above the input line, and the prompt with
what was typed so far is drawn again; Enter then runs the whole command. The pages are the bot's
own escalation: P1's first level lasts 3 s, so the second page arrives on its own while the test
has typed part of a line and waits.
"""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")
CONFIG = """
version: 1
roles:
  ops:
    users: [UOPS1, UOPS2]
severities:
  P1:
    respond_within: 1h
    escalation:
      - {users: [UOPS2], escalate_after: 3s}
      - {users: [UOPS1]}
slack:
  incidents_channel: C0INCIDENTS
"""


class Terminal:
    """The master side of a pseudo-terminal the shell runs on: what it printed, as a screen shows it in order."""

    def __init__(self, workdir: Path):
        self.master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REDIS_URL", "OPSBOT_"))}
        env.update(
            DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'opsbot.db'}", PYTHONPATH=str(ROOT), TERM="xterm",
            PROMPT_TOOLKIT_NO_CPR="1",  # a pseudo-terminal nobody draws answers no cursor-position request
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "shell", "--as", "UOPS1"], stdin=slave, stdout=slave, stderr=slave,
            cwd=workdir, env=env, close_fds=True, start_new_session=True,
        )
        os.close(slave)
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode(errors="replace"))

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        """Read until `pattern` (a regex over the printed text, escape sequences left out) has appeared."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never appeared; the screen so far:\n{self.text[-3000:]}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:  # the shell ended
                    assert False, f"the shell ended before {pattern!r}; it printed:\n{self.text[-3000:]}"
        return self.text

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        os.close(self.master)


def test_a_page_arriving_mid_line_prints_above_it_and_the_typed_text_is_kept(tmp_path):
    (tmp_path / "app.yaml").write_text(CONFIG)
    terminal = Terminal(tmp_path)
    try:
        terminal.wait_for(r"opsbot console as UOPS1\. Type /help")
        terminal.wait_for(r"opsbot> ?$")  # the space may be drawn as a cursor move
        terminal.type("/incident open P1 Checkout is down\r")
        terminal.wait_for(r"── page · INC-1 · \d\d:\d\d UTC ──\n@UOPS2 INC-1 P1")  # the first level, at once

        terminal.type("/he")  # half a command, no Enter
        terminal.wait_for(r"opsbot> ?/he$")
        screen = terminal.wait_for(r"Paging UOPS1\.(.|\n)*opsbot> ?/he$", timeout=90)  # the second level, 3 s on
        second = screen.rindex("@UOPS1 INC-1 P1")
        assert screen.rfind("── page · INC-1 · ", 0, second) > screen.rfind("/he", 0, second)  # the block above the line
        assert re.search(r"opsbot> ?/he$", screen[second:])  # ... which is drawn again, what was typed kept

        terminal.type("lp\r")  # the rest of /help: Enter runs the whole line
        terminal.wait_for(r"Commands you can run")
        terminal.type("quit\r")
        assert terminal.process.wait(60) == 0
    finally:
        terminal.close()
