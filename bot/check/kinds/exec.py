"""exec: an argument list run inside a container via the Docker exec API (runbook 000's `celery inspect ping`)."""
from __future__ import annotations

from bot.check.result import Finding
from bot.config.models import ExecCheck


def last_line(output: str) -> str:
    """The last non-blank line, found from the end: only the trailing blanks and that line are read."""
    text = output.rstrip()
    return text[text.rfind("\n") + 1 :].strip()


async def run(check: ExecCheck, ctx) -> list[Finding]:
    name = check.container or ctx.container
    result = await ctx.docker.exec(name, list(check.command))
    last = last_line(result.output)
    if result.exit_code == 0:
        return [Finding("ok", f"exit 0{': ' + last if last else ''}")]
    return [Finding("critical", f"exit {result.exit_code}{': ' + last if last else ''}")]
