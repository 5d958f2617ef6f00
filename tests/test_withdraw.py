"""Withdrawing a pending action request (bot/action/withdrawal.py): the Withdraw button, /run cancel ID,
and a console that closes with a request still pending.

Through all three transports (tests/drivers.py). The action is a declared http hook on a
service without a container: its plan needs no Docker, and no test lets it run (its URL
answers nothing). Each test has its own SQLite database, so request ids start at 1.
"""
from __future__ import annotations

import io
import re

import pytest

from drivers import drive  # noqa: F401 (fixture)

from action_helpers import lock_of, request_rows, state_of, trail
from bot.audit import service as audit
from bot.transport.console import run_console

CONFIG = """
version: 1
services:
  svc:
    description: a service without a container
    owners: [ops]
roles:
  ops:
    users: [UOPS1, UOPS2]
  viewers:
    users: [UVIEW1]
actions:
  hook:
    kind: http
    service: svc
    url: http://127.0.0.1:9/never-called
    approval: {approvals: 1}
"""
BUTTONS = ("action.approve", "action.deny", "action.withdraw")


def one_sentence(d, seen, expected: str) -> None:
    assert seen.ephemeral is (None if d.name == "console" else True), seen
    assert seen.one_line == expected, seen.one_line


async def request_hook(d, user: str = "UOPS1") -> int:
    seen = await d.command(user, "/run", "hook")
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    request_id = int(match.group(1))
    assert d.messages()[-1].now.buttons == [(action, str(request_id)) for action in BUTTONS]
    return request_id


async def withdrawals(bot) -> list[tuple[str, str, str]]:
    """(user, arguments, outcome) of the request's own audit rows about withdrawing, oldest first."""
    rows = await audit.entries(bot.db, 1000, target="svc")
    return [(r.user_id, r.arguments, r.outcome) for r in reversed(rows) if "withdraw" in r.outcome]


async def test_the_requester_withdraws_with_the_button_and_the_lock_goes_at_once(drive):
    d = await drive(CONFIG)
    request_id = await request_hook(d)
    [plan] = d.messages()

    # Someone who is neither its requester nor an approver cannot, and nothing changes.
    seen = await d.click("UVIEW1", "action.withdraw", str(request_id))
    one_sentence(d, seen, f"You cannot withdraw request #{request_id}: only its requester or an approver can.")
    await d.settle()
    assert await state_of(d.bot, request_id) == "pending" and (await lock_of(d.bot, "svc")).request_id == request_id
    assert d.messages()[0].edits == []

    seen = await d.click("UOPS1", "action.withdraw", str(request_id))
    assert f"You withdrew request #{request_id}; nothing was run, and what it had locked is free again." in seen.words
    await d.settle()
    [withdrawn] = [m for m in d.messages() if m.ref == plan.ref][0].edits
    assert "Status: Withdrawn by @UOPS1 at" in withdrawn.words and withdrawn.buttons == []
    assert await state_of(d.bot, request_id) == "withdrawn" and await lock_of(d.bot, "svc") is None
    assert await trail(d.bot, "svc", request_id) == ["requested", "withdrawn"]
    refusal = f"You cannot withdraw request #{request_id}: only its requester or an approver can."
    assert await withdrawals(d.bot) == [
        ("UVIEW1", f"#{request_id} svc", "withdraw refused"),
        ("UOPS1", f"#{request_id} svc", "withdrawn"),
    ]
    assert [r.detail for r in await audit.entries(d.bot.db, 1000, target="svc") if r.outcome == "withdraw refused"] == [refusal]

    # Decided now: a late approval is told so, and the target can be requested again at once.
    seen = await d.click("UOPS2", "action.approve", str(request_id))
    one_sentence(d, seen, f"Request #{request_id} was already decided by @UOPS1: it is withdrawn.")
    assert await request_hook(d, "UOPS2") == request_id + 1


async def test_an_approver_withdraws_with_run_cancel_from_another_channel(drive):
    d = await drive(CONFIG)
    request_id = await request_hook(d)
    locked = await d.command("UOPS2", "/run", "hook")
    assert re.fullmatch(
        rf"svc is locked by request #{request_id} \(/hook by @UOPS1\) since \d\d:\d\d UTC; wait for it to finish or be decided "
        rf"\(its requester or an approver can withdraw it: /run cancel {request_id}\)\.",
        locked.one_line,
    ), locked.one_line

    d.channel = "C2" if d.name != "console" else d.channel  # Slack: not where it was posted; the console has one channel
    for user, text, expected in [
        ("UOPS2", "cancel", "Name one request to withdraw. Usage: /run cancel ID"),
        ("UOPS2", f"cancel {request_id} {request_id}", "Name one request to withdraw. Usage: /run cancel ID"),
        ("UOPS2", "cancel abc", "'abc' is not a request number; give the number shown as request #ID. Usage: /run cancel ID"),
        ("UOPS2", "cancel 99999", "Request #99999 does not exist."),
        ("UVIEW1", f"cancel {request_id}", f"You cannot withdraw request #{request_id}: only its requester or an approver can."),
        ("UNOBODY", f"cancel {request_id}", "You are not allowed to run /run: it needs a role in app.yaml."),
    ]:
        one_sentence(d, await d.command(user, "/run", text), expected)
    assert await state_of(d.bot, request_id) == "pending"

    seen = await d.command("UOPS2", "/run", f"cancel #{request_id}")
    assert seen.words.rstrip().endswith(f"You withdrew request #{request_id}; nothing was run, and what it had locked is free again."), seen.words
    await d.settle()
    [withdrawn] = d.messages()[0].edits  # the message where it was posted, edited in place
    assert "Status: Withdrawn by @UOPS2 at" in withdrawn.words and withdrawn.buttons == []
    assert await state_of(d.bot, request_id) == "withdrawn" and await lock_of(d.bot, "svc") is None
    [(user, arguments, outcome)] = [row for row in await withdrawals(d.bot) if row[2] == "withdrawn"]
    assert (user, arguments, outcome) == ("UOPS2", f"#{request_id} svc", "withdrawn")
    one_sentence(d, await d.command("UOPS1", "/run", f"cancel {request_id}"), f"Request #{request_id} was already decided by @UOPS2: it is withdrawn.")


@pytest.mark.parametrize("drive", ["http"], indirect=True)
async def test_run_cancel_from_another_workspace_is_refused(drive):
    d = await drive(CONFIG)
    request_id = await request_hook(d)
    fields = d.fields("UOPS1", "/run", f"cancel {request_id}", team_id="T0OTHER")
    await d.send_command(fields)
    seen = await d.answer(fields["response_url"], "/run cancel")
    one_sentence(d, seen, f"Request #{request_id} belongs to another Slack workspace; nothing was done.")
    assert await state_of(d.bot, request_id) == "pending"


async def test_a_console_that_closes_withdraws_what_it_leaves_pending(make_bot):
    bot = await make_bot(CONFIG)
    out = io.StringIO()
    # The first request is decided before the end; the second is still pending when input ends.
    lines = ["/run hook", "3", "/run hook"]
    await run_console(bot, "UOPS1", io.StringIO("\n".join(lines) + "\n"), out)
    printed = out.getvalue()
    first, second = [row.id for row in await request_rows(bot, "svc")]
    assert printed.count("Closing the console: pressing Withdraw on what it leaves behind.") == 1
    assert printed.rstrip().endswith(f"You withdrew request #{second}; nothing was run, and what it had locked is free again.")
    assert (await state_of(bot, first), await state_of(bot, second)) == ("withdrawn", "withdrawn")
    assert await lock_of(bot, "svc") is None
    assert [row[0] for row in await withdrawals(bot)] == ["UOPS1", "UOPS1"]

    # A console closing with nothing pending presses nothing.
    out = io.StringIO()
    await run_console(await make_bot(CONFIG), "UOPS1", io.StringIO("/run hook\n3\n"), out)
    assert "Closing the console" not in out.getvalue()
