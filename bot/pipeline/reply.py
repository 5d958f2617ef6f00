"""What a command handler returns, independent of the transport that shows it."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Outcome(str, enum.Enum):
    ok = "ok"
    warning = "warning"
    critical = "critical"
    usage_error = "usage_error"
    denied = "denied"
    error = "error"

    @property
    def exit_code(self) -> int:
        """`opsbot run` exit status: 0 healthy, 1 warning or critical, 2 usage error."""
        if self is Outcome.ok:
            return 0
        if self in (Outcome.warning, Outcome.critical, Outcome.error):
            return 1
        return 2


@dataclass(frozen=True)
class Header:
    text: str


@dataclass(frozen=True)
class Section:
    """mrkdwn text; the Slack renderer splits it when it is over Block Kit's 3,000 characters."""

    text: str


@dataclass(frozen=True)
class Preformatted:
    """Raw output (logs, tables): a code block in Slack, verbatim on the console."""

    text: str


@dataclass(frozen=True)
class Context:
    text: str


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str  # which declared interaction runs: "action.approve" (interactions/)
    value: str  # what it acts on: a request id
    style: str | None = None  # "primary" or "danger"
    # Pressed by a console as it closes, as whoever sits at it: nobody can press the message's
    # buttons afterwards, so what it holds (a request's locks) would wait for its expiry.
    on_close: bool = False


@dataclass(frozen=True)
class Actions:
    """Buttons: Block Kit buttons in Slack, numbered choices on the console."""

    buttons: tuple[Button, ...]


Block = Header | Section | Preformatted | Context | Actions


@dataclass(frozen=True)
class FileAttachment:
    """Output too long for a message: uploaded as a file in Slack, printed in full on the console."""

    filename: str
    content: str
    # Slack: the channel the file is shared in (an incident's postmortem goes to the incident's channel,
    # even when the answer is only for the one who asked); None: where the command was typed.
    channel: str | None = None


@dataclass
class Reply:
    text: str
    blocks: list[Block] = field(default_factory=list)
    outcome: Outcome = Outcome.ok
    # Only the caller sees it (errors, refusals, help); otherwise the channel does.
    ephemeral: bool = False
    file: FileAttachment | None = None

    @classmethod
    def refusal(cls, sentence: str, outcome: Outcome = Outcome.usage_error) -> "Reply":
        """One plain sentence saying what was wrong and what to type instead."""
        return cls(text=sentence, blocks=[Section(sentence)], outcome=outcome, ephemeral=True)
