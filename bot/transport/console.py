"""The console: type `/health backend`, get the reply as text. Works with piped standard input.

Buttons are numbered; typing the number presses it. `as U123` switches the user, so one
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
from bot.pipeline.reply import Actions, Button, Reply
from bot.pipeline.request import Request
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
    """Posts and edits are printed; edits say which message they replace."""

    def __init__(self, console: "Console"):
        self._console = console
        self._count = 0
        self._shown: dict[str, list[Button]] = {}  # each message's buttons, as its newest version shows them

    async def post(self, channel: str, reply: Reply) -> str:
        self._count += 1
        ref = f"console:{self._count}"
        self._console.write(self._render(ref, reply))
        return ref

    async def update(self, ref: str, reply: Reply) -> None:
        self._console.write(f"[message {ref.split(':', 1)[1]} updated]\n" + self._render(ref, reply))

    def _render(self, ref: str, reply: Reply) -> str:
        self._shown[ref] = [button for block in reply.blocks if isinstance(block, Actions) for button in block.buttons]
        return self._console.render(reply)

    def pressed_on_close(self) -> list[Button]:
        """The `on_close` buttons still shown on the messages printed here, oldest message first."""
        return [button for buttons in self._shown.values() for button in buttons if button.on_close]

    async def open_form(self, trigger_id: str, form: Form) -> bool:
        """The console has no forms: the caller answers with a sentence saying what to type instead."""
        return False

    async def prompt(self, user_id: str, question: str) -> str | None:
        """Asks on the terminal and reads the next line of input (a typed confirmation)."""
        return await self._console.read_answer(question)

    async def direct(self, user_id: str, reply: Reply) -> str:
        """Printed like a post, marked as a direct message to that user."""
        self._count += 1
        self._console.write(f"(direct message to @{user_id})\n" + self._console.render(reply))
        return f"console:{self._count}"

    async def user(self, user_id: str) -> ChatUser | None:
        """The console has no workspace directory: its users are the one at the terminal and those app.yaml
        names (roles, rotations, escalation levels, incident invites), none of them deleted or a bot."""
        known = _named_users(self._console.bot.config) | {self._console.user_id}
        return ChatUser(user_id) if user_id in known else None


def _named_users(config) -> set[str]:
    named = {user for role in config.roles.values() for user in role.users}
    named.update(member for rotation in config.oncall.values() for member in rotation.members)
    named.update(user for severity in config.severities.values() for level in severity.escalation for user in level.users)
    named.update(config.incidents.invite)
    return named


class Console:
    def __init__(self, bot, user_id: str, stdin: TextIO, stdout: TextIO, allow_impersonation: bool = False):
        self.bot, self.user_id, self.stdin, self.stdout = bot, user_id, stdin, stdout
        self.allow_impersonation = allow_impersonation
        self._buttons: dict[int, Button] = {}
        bot.messengers["console"] = ConsoleMessenger(self)

    def render(self, reply: Reply) -> str:
        return to_text(reply, self._number)

    def _number(self, button: Button) -> int:
        number = len(self._buttons) + 1
        self._buttons[number] = button
        return number

    async def read_answer(self, question: str) -> str | None:
        self.stdout.write(question + " ")
        self.stdout.flush()
        line = await asyncio.get_running_loop().run_in_executor(None, self.stdin.readline)
        return line.rstrip("\n") if line else None

    def write(self, text: str) -> None:
        self.stdout.write(text.rstrip("\n") + "\n")
        self.stdout.flush()

    async def close(self) -> None:
        """Press what its messages ask to be pressed when nobody can press them any more (see the module's docstring)."""
        messenger = self.bot.messengers.get("console")
        if not isinstance(messenger, ConsoleMessenger):
            return
        for button in messenger.pressed_on_close():
            self.write(f"Closing the console: pressing {button.label} on what it leaves behind.")
            click = Click(self.user_id, button.action_id, button.value, CONSOLE_CHANNEL, "console")
            self.write(self.render(await self.bot.handle_click(click)))

    async def handle_line(self, line: str) -> None:
        if line.isascii() and line.isdigit():
            button = self._buttons.get(int(line))
            if button is None:
                self.write(f"There is no button {line}; the numbers are shown in brackets next to each button.")
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
    bot, user_id: str, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, *, allow_impersonation: bool = False
) -> None:
    console = Console(bot, user_id, stdin, stdout, allow_impersonation)
    interactive = stdin.isatty()
    if interactive:
        console.write(f"opsbot console as {user_id}. Type /help, or quit to leave.")
    bot.scheduler.start()
    loop = asyncio.get_running_loop()
    try:
        while True:
            if interactive:
                stdout.write(PROMPT)
                stdout.flush()
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
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
            await bot.scheduler.stop()

