"""The console: type `/health backend`, get the reply as text. Works with piped standard input.

Buttons are numbered once for the whole session (console_buttons.py); typing the number
presses it. Posts that arrive on their own (pages, scheduled posts) are printed as blocks of
their own under a header, never inside an answer (console_output.py); at a terminal the line
being typed stays below them (console_terminal.py). `as U123` switches the user, so one
terminal can play requester and approver: allowed on the embedded SQLite database, and on
a server database only with --allow-impersonation (see bot/cli.py). Everything typed here
is audited with transport "console".

Once the console is closed nobody can press the buttons it printed, so as it closes it
presses the `on_close` ones still shown on its messages (a pending request's Withdraw), as
the user at it, through the same pipeline as any press.
"""
from __future__ import annotations

import asyncio
import re
import sys
from typing import TextIO

from bot.pipeline.forms import Form
from bot.pipeline.messenger import ChatUser, Click
from bot.pipeline.reply import Button, Reply
from bot.pipeline.request import Request
from bot.schedule.current import current_job
from bot.transport import console_headers
from bot.transport.console_buttons import ButtonNumbers
from bot.transport.console_output import ConsoleOutput, in_line
from bot.transport.console_terminal import TerminalLines
from bot.transport.text import to_text

CONSOLE_CHANNEL = "console"
PROMPT = "opsbot> "
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def split_command(line: str) -> tuple[str, str] | None:
    """'/health backend' -> ('health', 'backend'); None when the line is not a command."""
    line = line.strip()
    if not line.startswith("/") or len(line) < 2:
        return None
    name, _, rest = line[1:].partition(" ")
    return name.lower(), rest.strip()


class ConsoleMessenger:
    """Posts and edits are printed; edits say which message they replace. What the line being
    typed posts is part of its answer; anything else is a block with a header saying what it is."""

    def __init__(self, console: "Console"):
        self._console = console
        self._count = 0

    async def post(self, channel: str, reply: Reply) -> str:
        self._count += 1
        ref = f"console:{self._count}"
        self._show(None, self._console.render(reply, ref))
        return ref

    async def update(self, ref: str, reply: Reply) -> None:
        number = ref.split(":", 1)[1]
        self._show(f"update of message {number}", f"[message {number} updated]\n" + self._console.render(reply, ref))

    def _show(self, detail: str | None, text: str) -> None:
        if in_line():
            self._console.write(text)
            return
        words = console_headers.what(current_job.get())
        if detail is not None:
            words.append(detail)
        self._console.output.block(console_headers.header(words, self._console.bot.clock.now()), text)

    async def open_form(self, trigger_id: str, form: Form) -> bool:
        """The console has no forms: the caller answers with a sentence saying what to type instead."""
        return False

    async def prompt(self, user_id: str, question: str) -> str | None:
        """Asks on the terminal and reads the next line of input (a typed confirmation)."""
        return await self._console.read_answer(question)

    async def direct(self, user_id: str, reply: Reply) -> str:
        """Printed like a post, marked as a direct message to that user."""
        self._count += 1
        ref = f"console:{self._count}"
        self._show(f"direct message to @{user_id}", f"(direct message to @{user_id})\n" + self._console.render(reply, ref))
        return ref

    async def user(self, user_id: str) -> ChatUser | None:
        """The console has no workspace directory: its users are the one at the terminal and those app.yaml
        names (roles, rotations, escalation levels, incident invites), none of them deleted or a bot."""
        known = _named_users(self._console.bot.config) | {self._console.user_id}
        return ChatUser(user_id) if user_id in known else None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or bare stream
        return False


def _named_users(config) -> set[str]:
    named = {user for role in config.roles.values() for user in role.users}
    named.update(member for rotation in config.oncall.values() for member in rotation.members)
    named.update(user for severity in config.severities.values() for level in severity.escalation for user in level.users)
    named.update(config.incidents.invite)
    return named


class Console:
    def __init__(
        self, bot, user_id: str, stdin: TextIO, stdout: TextIO, allow_impersonation: bool = False, terminal: TerminalLines | None = None
    ):
        """`terminal`: lines are read at a terminal (console_terminal.py); without it, from `stdin` as piped."""
        self.bot, self.user_id, self.stdin, self.stdout = bot, user_id, stdin, stdout
        self.allow_impersonation = allow_impersonation
        self.terminal = terminal
        self.output = ConsoleOutput(stdout, bot.clock)
        self.numbers = ButtonNumbers()
        self._replies = 0
        bot.messengers["console"] = ConsoleMessenger(self)

    @property
    def _buttons(self) -> dict[int, Button]:
        """Every button number given out this session (tests press the newest of a kind)."""
        return self.numbers.buttons

    def _number(self, button: Button) -> int:
        """Number `button` as if printed alone on an answer (tests/test_fuzz.py presses fuzzed buttons so)."""
        ref = self._answer_ref()
        return self.numbers.number(ref, self.numbers.start_version(ref), button)

    def render(self, reply: Reply, ref: str | None = None) -> str:
        """`ref`: the message this prints (again); None for an answer, which is never edited."""
        ref = ref or self._answer_ref()
        version = self.numbers.start_version(ref)
        return to_text(reply, lambda button: self.numbers.number(ref, version, button))

    def _answer_ref(self) -> str:
        self._replies += 1
        return f"reply:{self._replies}"

    async def read_answer(self, question: str) -> str | None:
        if self.terminal is not None:
            return await self.terminal.read(question + " ")
        self.output.question(question + " ")
        try:
            line = await asyncio.get_running_loop().run_in_executor(None, self.stdin.readline)
        finally:
            self.output.answered()
        return line.rstrip("\n") if line else None

    async def read_line(self) -> str | None:
        """The next line typed: after the prompt at a terminal, as it comes when piped; None at end of input."""
        if self.terminal is not None:
            return await self.terminal.read(PROMPT)
        line = await asyncio.get_running_loop().run_in_executor(None, self.stdin.readline)
        return line or None

    def write(self, text: str) -> None:
        self.output.write(text)

    async def close(self) -> None:
        """Press what its messages ask to be pressed when nobody can press them any more (see the module's docstring)."""
        with self.output.line():
            for button in self.numbers.shown_on_close():
                self.write(f"Closing the console: pressing {button.label} on what it leaves behind.")
                click = Click(self.user_id, button.action_id, button.value, CONSOLE_CHANNEL, "console")
                self.write(self.render(await self.bot.handle_click(click)))
        self.output.close()

    async def handle_line(self, line: str) -> None:
        with self.output.line():
            await self._handle(line)

    async def _handle(self, line: str) -> None:
        if line.isascii() and line.isdigit():
            button = self.numbers.press(int(line))
            if isinstance(button, str):
                self.write(button)
                return
            click = Click(self.user_id, button.action_id, button.value, CONSOLE_CHANNEL, "console")
            self.write(self.render(await self.bot.handle_click(click)))
            return
        if line.startswith("as "):
            if not self.allow_impersonation:
                self.write(
                    "Switching user is off here (a server database, or next to the Slack bot): it would let one person "
                    "approve their own request. Start opsbot shell with --allow-impersonation to allow it."
                )
                return
            user = line[3:].strip()
            if not _USER_ID.match(user):
                self.write("Type as followed by a Slack user ID, like: as U012ABCDEF")
                return
            self.user_id = user
            self.write(f"Now acting as {user}.")
            return
        parsed = split_command(line)
        if parsed is None:
            self.write("Commands start with a slash, like /health or /help; a number presses a button; as U123 switches user.")
            return
        command, text = parsed
        request = Request(user_id=self.user_id, channel_id=CONSOLE_CHANNEL, command=command, text=text, transport="console")
        self.write(self.render(await self.bot.handle(request)))


async def run_console(
    bot, user_id: str, stdin: TextIO | None = None, stdout: TextIO | None = None, *, allow_impersonation: bool = False
) -> None:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    if not (_is_terminal(stdin) and _is_terminal(stdout)):
        await _serve(Console(bot, user_id, stdin, stdout, allow_impersonation))
        return
    terminal = TerminalLines()
    with terminal.printing() as printed:
        console = Console(bot, user_id, stdin, printed, allow_impersonation, terminal)
        console.write(f"opsbot console as {user_id}. Type /help, or quit to leave.")
        await _serve(console)


async def _serve(console: Console) -> None:
    console.bot.scheduler.start()
    try:
        while True:
            line = await console.read_line()
            if line is None:
                break
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("quit", "exit"):
                break
            await console.handle_line(line)
    finally:
        try:
            await console.close()
        finally:
            await console.bot.scheduler.stop()
