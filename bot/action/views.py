"""How an action request looks at each step; the same message is edited in place."""
from __future__ import annotations

import re

from bot.action.models import ActionRequest
from bot.pipeline.markup import Mention, Text, mentions
from bot.pipeline.reply import Actions, Button, Context, Header, Outcome, Preformatted, Reply, Section

STATE_LINE = {
    "pending": "Waiting for approval",
    "approved": "Approved, starting",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "denied": "Denied",
    "withdrawn": "Withdrawn",
    "expired": "Expired",
}


_STORED_MENTION = re.compile(r"<@([UW][A-Z0-9]{2,31})>")


def _people_mentioned(stored: str, people: set) -> Text:
    """A result read back from the database is plain text; the request's own requester and approvers,
    named in it by the bot (`<@U…>`), are mentions again. Nobody else's id becomes live."""
    parts: list = []
    pos = 0
    for match in _STORED_MENTION.finditer(stored or ""):
        if match.group(1) in people:
            parts += [stored[pos : match.start()], Mention(match.group(1))]
            pos = match.end()
    parts.append((stored or "")[pos:])
    return Text(*parts)


def when(dt) -> str:
    return dt.strftime("%H:%M UTC") if dt else "?"


def request_message(
    request: ActionRequest, plan, steps: list[str], notes: list[str], approvers: list[str], *, approver_roles: str, logs: str = "", progress: str = ""
) -> Reply:
    """`steps` and `notes` are the kind's describe() and notes() of `plan`; `progress` a running action's last report."""
    title = f"/{request.action} {request.service}: request #{request.id}"
    who = Text("Requested by ", Mention(request.requested_by), f" at {when(request.created_at)}")
    needed = request.approvals_needed
    if needed:
        who = Text(who, f" · needs {needed} approval{'s' if needed > 1 else ''} from {approver_roles}")
    numbered = "\n".join(f"{number}. {line}" for number, line in enumerate(steps, 1))
    status = Text(STATE_LINE[request.state])
    if request.state == "pending":
        status = Text(status, f" (expires {when(request.expires_at)})")
        if approvers:
            status = Text(status, "; approved so far by ", mentions(approvers))
    elif request.state in ("denied", "withdrawn"):
        status = Text(status, " by ", Mention(request.decided_by), f" at {when(request.decided_at)}")
    elif request.state in ("approved", "running", "succeeded", "failed") and approvers:
        status = Text(status, " · approved by ", mentions(approvers))
    if progress and request.state == "running":
        status = Text(status, f": {progress}")
    if plan.confirm and request.state == "pending":
        who = Text(who, f" · each approver types {plan.confirm} to confirm")
    blocks = [Header(title), Section(who), Section("*Plan*\n" + numbered)]
    blocks += [Section(note) for note in notes]
    blocks.append(Section(Text("*Status:* ", status)))
    result = _people_mentioned(request.result, {request.requested_by, request.decided_by, *approvers})
    if result:
        blocks.append(Section(result))
    if logs:
        blocks.append(Section("*Last log lines (redacted)*" if request.state == "failed" else "*Output (redacted)*"))
        blocks.append(Preformatted(logs))
    blocks.append(Context(f"plan sha256 {request.plan_hash[:16]}"))
    if request.state == "pending":
        blocks.append(
            Actions(
                (
                    Button("Approve", "action.approve", str(request.id), "primary"),
                    Button("Deny", "action.deny", str(request.id), "danger"),
                    Button("Withdraw", "action.withdraw", str(request.id), on_close=True),
                )
            )
        )
    outcome = {"succeeded": Outcome.ok, "failed": Outcome.critical, "denied": Outcome.denied, "withdrawn": Outcome.warning,
               "expired": Outcome.warning}.get(
        request.state, Outcome.ok
    )
    text = Text(f"{title}: ", status, "\n" if result else "", result)
    return Reply(text=text, blocks=blocks, outcome=outcome)
