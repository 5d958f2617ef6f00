"""The console as a place to work: pages and other posts that arrive on their own print as blocks
of their own after the answer being printed, button numbers hold for the whole session, and
withdrawing works there as in Slack.

In-process on a real bot (its own SQLite file, a ManualClock): the console reads a real pipe, so
a typed confirmation can be left waiting while the bot's own scheduler sends a page; pages are
the escalation jobs bot.scheduler.run_due() runs, as the running console's loop would.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re

import pytest

from conftest import redis_db_url, wait_until
from action_helpers import state_of
from drivers import _Transcript
from bot.incident import service as incidents
from bot.schedule import ManualClock
from bot.transport.console import Console, run_console
from bot.transport.console_output import HOLD_SECONDS, ConsoleOutput

START = dt.datetime(2026, 11, 24, 3, 14, tzinfo=dt.timezone.utc)
PAGE_HEADER = "── page · INC-1 · 03:14 UTC ──"
CONFIG = """
version: 1
services:
  svc:
    description: a service without a container
    owners: [ops]
roles:
  ops:
    users: [UOPS1, UOPS2]
severities:
  P1:
    respond_within: 1h
    escalation:
      - users: [UOPS2]
      - users: [UOPS1]
slack:
  incidents_channel: C0INCIDENTS
actions:
  hook:
    kind: http
    service: svc
    url: http://127.0.0.1:9/never-called
    approval: {approvals: 1}
"""
NUMBER = re.compile(r"\[(\d+)\] ")


class Transcript(_Transcript):
    """Standard output, one chunk per write: a block or a message is one chunk, never two."""

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@pytest.fixture
def keyboard():
    """(stdin the console reads, a function that types a line into it): a real pipe."""
    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end, "r")
    writer = os.fdopen(write_end, "w")

    def type_line(line: str) -> None:
        writer.write(line + "\n")
        writer.flush()

    yield stdin, type_line
    writer.close()
    stdin.close()


async def console_on(make_bot, stdin=None, config: str = CONFIG) -> tuple[Console, Transcript]:
    bot = await make_bot(config, clock=ManualClock(START))
    out = Transcript()
    return Console(bot, "UOPS1", stdin or io.StringIO(), out), out


def numbers_of(text: str, action: str) -> list[int]:
    """The numbers printed next to buttons labelled `action`, in order."""
    return [int(n) for n in re.findall(rf"\[(\d+)\] {action}\b", text)]


async def typed(console: Console, user: str, line: str) -> None:
    console.user_id = user
    await console.handle_line(line)


async def test_a_page_arriving_while_an_answer_prints_comes_after_it_as_a_block_of_its_own(make_bot, keyboard, claimed_redis_db):
    """The answer is a /cache flush approval, which waits for the approver to type the cache's name
    (a Redis database of 9..14 this test owns): the page is sent meanwhile."""
    stdin, type_line = keyboard
    cache = f"caches:\n  main: {{url: '{redis_db_url(claimed_redis_db[0])}', owners: [ops]}}\n"
    console, out = await console_on(make_bot, stdin, CONFIG + cache)
    await typed(console, "UOPS1", "/incident open P1 Checkout is down")
    assert PAGE_HEADER not in out.text  # its page is a job: nothing has run it yet
    await typed(console, "UOPS1", "/cache flush")
    [approve] = numbers_of(out.text, "Approve")

    # The approver presses Approve; the console asks for the cache's name and waits on the pipe.
    console.user_id = "UOPS2"
    pressing = asyncio.create_task(console.handle_line(str(approve)))
    await wait_until(lambda: "to approve request #1:" in out.text or pressing.done())
    assert "Type main to approve request #1:" in out.text, out.text
    mark = len(out.chunks)
    assert await console.bot.scheduler.run_due() >= 1  # the page goes out now, while the answer is unfinished
    assert await paged(console) and out.chunks[mark:] == []  # sent, but held back

    type_line("main")
    await pressing
    after = out.chunks[mark:]
    answer = next(i for i, chunk in enumerate(after) if "Request #1 " in chunk)
    blocks = [i for i, chunk in enumerate(after) if chunk.startswith("──")]
    assert blocks and min(blocks) > answer, after  # every block after the answer's chunks
    assert all(i > max(j for j, chunk in enumerate(after) if not chunk.startswith("──")) for i in blocks)
    page = after[blocks[0]]
    assert page.splitlines()[0] == PAGE_HEADER
    assert "[" in page and "Acknowledge" in page  # the page itself, in the same block as its header
    direct = [after[i] for i in blocks if "direct message to @UOPS2" in after[i].splitlines()[0]]
    assert direct and direct[0].splitlines()[0] == "── page · INC-1 · direct message to @UOPS2 · 03:14 UTC ──"

    # Printed when nothing is being answered, a block comes at once: the second level's page, an hour on.
    console.bot.clock.advance(dt.timedelta(hours=1))
    mark = len(out.chunks)
    await console.bot.scheduler.run_due()
    later = out.chunks[mark:]
    assert later and all(chunk.startswith("── page · INC-1 · ") for chunk in later), later
    assert later[0].splitlines()[0] == "── page · INC-1 · 04:14 UTC ──"


async def paged(console: Console) -> bool:
    """Whether INC-1's timeline says it was paged (sent, whatever the console printed meanwhile)."""
    return any(entry.kind == "ping" for entry in await incidents.timeline(console.bot.db, 1))


async def test_button_numbers_hold_for_the_session_and_a_1_after_a_page_is_still_approve(make_bot):
    console, out = await console_on(make_bot)
    await typed(console, "UOPS1", "/run hook")
    assert numbers_of(out.text, "Approve") == [1] and numbers_of(out.text, "Withdraw") == [3]

    # An incident opened and paged meanwhile: its buttons take the next numbers, never 1 again.
    await typed(console, "UOPS1", "/incident open P1 Checkout is down")
    await console.bot.scheduler.run_due()
    acknowledge = numbers_of(out.text, "Acknowledge")
    assert len(acknowledge) >= 2 and min(acknowledge) > 3  # the headline's and the page's
    printed = [int(n) for n in NUMBER.findall(out.text)]
    assert printed == list(range(1, len(printed) + 1))  # one sequence, none given twice

    # A scripted `1` is Approve, as it was when it was printed.
    await typed(console, "UOPS2", "1")
    assert await state_of(console.bot, 1) in ("failed", "succeeded")  # approved and run (the URL answers nothing)
    incident = await incidents.get(console.bot.db, 1)
    assert incident.acknowledged_at is None, "the 1 meant for Approve acknowledged the incident"

    # An old number still means its button: request #1's Withdraw answers for request #1.
    await typed(console, "UOPS1", "/run hook")
    mark = len(out.chunks)
    await typed(console, "UOPS1", "3")
    assert out.chunks[mark:] == [f"Request #1 was already decided by @UOPS2: it is {await state_of(console.bot, 1)}.\n"]
    assert await state_of(console.bot, 2) == "pending"

    # The newest request's buttons are numbered on from the highest so far.
    [withdraw_2] = numbers_of(out.text, "Withdraw")[-1:]
    assert withdraw_2 == max(int(n) for n in NUMBER.findall(out.text))


async def test_withdraw_from_the_console_with_its_button_and_with_run_cancel(make_bot):
    console, out = await console_on(make_bot)
    await typed(console, "UOPS1", "/run hook")
    [withdraw] = numbers_of(out.text, "Withdraw")
    await typed(console, "UOPS1", str(withdraw))
    assert out.chunks[-1] == "You withdrew request #1; nothing was run, and what it had locked is free again.\n"
    assert "[message 1 updated]" in out.text and await state_of(console.bot, 1) == "withdrawn"

    await typed(console, "UOPS1", "/run hook")
    await typed(console, "UOPS1", "/run cancel 2")
    assert out.chunks[-1] == "You withdrew request #2; nothing was run, and what it had locked is free again.\n"
    assert await state_of(console.bot, 2) == "withdrawn"

    # Pressing request #2's Withdraw after /run cancel: its number still names it, and it says why nothing happens.
    await typed(console, "UOPS1", str(numbers_of(out.text, "Withdraw")[-1]))
    assert out.chunks[-1].startswith("Request #2 was already decided by @UOPS1: it is withdrawn.")


async def test_a_console_closing_presses_only_what_its_newest_messages_show(make_bot):
    """The Withdraw of a decided request's older version is not pressed on close; a pending one's is."""
    bot = await make_bot(CONFIG, clock=ManualClock(START))
    out = io.StringIO()
    await run_console(bot, "UOPS1", io.StringIO("/run hook\n3\n/run hook\n"), out)
    printed = out.getvalue()
    assert printed.count("Closing the console: pressing Withdraw on what it leaves behind.") == 1
    assert printed.rstrip().endswith("You withdrew request #2; nothing was run, and what it had locked is free again.")


async def test_a_held_block_waits_at_most_the_hold_and_starts_off_an_open_questions_line():
    """A line that runs long (a question nobody answers) holds a page HOLD_SECONDS on the console's
    clock, then prints it between two of its writes. Piped answers are not echoed, so a block printed
    while a question waits starts a line of its own."""
    clock = ManualClock(START)
    out = Transcript()
    output = ConsoleOutput(out, clock)
    question = "Type main to approve request #1: "
    with output.line():
        output.write("/flush_cache main: request #1")
        output.question(question)
        output.block("── page · INC-1 · 03:15 UTC ──", "Paging UOPS1.")
        for _ in range(3):
            await asyncio.sleep(0)
        assert out.chunks[-1] == question  # held
        clock.advance(HOLD_SECONDS - 1)
        await asyncio.sleep(0)
        assert out.chunks[-1] == question
        clock.advance(1)
        await wait_until(lambda: out.chunks[-1] != question)
        assert out.chunks[-1] == "\n── page · INC-1 · 03:15 UTC ──\nPaging UOPS1.\n"
        output.answered()
        output.write("Request #1 succeeded.")
    assert out.chunks[-1] == "Request #1 succeeded.\n"  # nothing was left to print after it

    # Outside a line a block is printed at once.
    output.block(PAGE_HEADER, "Paging UOPS2.")
    assert out.chunks[-1] == f"{PAGE_HEADER}\nPaging UOPS2.\n"
