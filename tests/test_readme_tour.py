"""The README's five-minute tour is true: what it types, typed in order at the console on a fresh
database with the bundled app.yaml, shows what its prose says, and every button number it types
presses the button it means (Approve of the right request).

The lines typed are read from README.md itself (every fenced block of the tour's section: `opsbot> X`
is X typed, `Type NAME to approve request #N: NAME` is NAME answered at that prompt), so the README
cannot drift from this test. Output lines the README quotes in a block must be printed by the line typed
before them (`...` stands for anything; times, container ids and plan hashes are matched by shape). What
the prose says each step shows is attached below to the line typed (CHECKS), and a check whose line the
README no longer types fails the test, as does a typed line nobody checks. The scheduler runs, as in
`make run`'s console: pages and scheduled posts are its jobs.

The bundled file is rewritten for this checkout exactly as tests/test_bundled_config.py rewrites it
(its fleet's names and ports, a private copy of the web container for the restart, backups in the
test's directory, the job's demo table under a name of its own); the scratch database the restore
creates gets a name of its own too (the README's name is replaced in what is typed) and is dropped.
"""
from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass, field

import asyncpg

from conftest import ROOT, fleet, wait_until
from bot.transport.console import Console
# The rewrites and the web copy are test_bundled_config's own, so both tours run the same configuration.
from test_bundled_config import DEMO_TABLE, DEMO_WEB, UNCONFIGURED, bundled_for_this_checkout, engine, web_copy  # noqa: F401 (fixtures)

README = ROOT / "README.md"
SECTION = "## A five-minute tour"
PROMPT = "opsbot> "
CONFIRMATION = re.compile(r"^Type (\S+) to approve request #(\d+): (\S+)$")
FENCE = re.compile(r"^\s*```")
README_SCRATCH = "opsbot_tour_copy"  # the database the tour restores into (replaced by a unique name here)
VARYING = re.compile(r"(\.\.\.|…|\b\d\d:\d\d\b|\b[0-9a-f]{12}\b|\b[0-9a-f]{16}\b)")
_SHAPES = {"elided": ".*", "time": r"\d\d:\d\d", "hex": r"[0-9a-f]{12}(?:[0-9a-f]{4})?"}
TITLE = re.compile(r"^(\S.*)\n-{3,}$", re.MULTILINE)  # a message's first line, underlined (not psql's indented header)


@dataclass(frozen=True)
class Typed:
    text: str  # as the README types it
    answer: bool = False  # typed at a confirmation prompt, not at opsbot>
    prompt: str = ""  # the README's line for an answer: the prompt the console must print
    shows: list[str] = field(default_factory=list)  # the README's output lines after it: its answer must print them


def tour_blocks(readme: str) -> list[list[str]]:
    """The lines of each fenced block of the tour's section, in order."""
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks, current = [], None
    for line in section.splitlines():
        if FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    assert current is None, "the tour has an unclosed ``` block"
    return blocks


def tour_inputs(readme: str) -> list[Typed]:
    typed = []
    for block in tour_blocks(readme):
        for line in block:
            if line.startswith(PROMPT):
                typed.append(Typed(line[len(PROMPT):].strip()))
            elif match := CONFIRMATION.match(line.strip()):
                assert match.group(1) == match.group(3), f"the tour answers {match.group(3)!r} to a prompt asking for {match.group(1)!r}"
                typed.append(Typed(match.group(3), answer=True, prompt=line.strip().rsplit(": ", 1)[0]))
            elif line.strip() not in ("", "...", "…"):
                assert typed, f"the tour shows output before anything is typed: {line!r}"
                typed[-1].shows.append(line)
    return typed


def printed_line(readme_line: str, rewrites: dict[str, str]) -> re.Pattern:
    """A line of output the README quotes, as a pattern for the line printed: `...` (or `…`) stands for
    anything, and what differs from run to run (times, container ids, plan hashes, this checkout's
    names in `rewrites`) is matched by its shape."""
    pieces = VARYING.split(rewritten(readme_line.strip(), rewrites))  # literal text at even indexes, what varies at odd ones
    return re.compile("".join(re.escape(piece) if index % 2 == 0 else _SHAPES[_shape(piece)] for index, piece in enumerate(pieces)))


def _shape(piece: str) -> str:
    if piece in ("...", "…"):
        return "elided"
    return "time" if ":" in piece else "hex"


@dataclass
class Check:
    """What the answer to a typed line shows (`shows`: substrings or compiled patterns), and what is
    printed after it, up to `timeout` seconds later (`then`: work that goes on after the answer).
    `press`: the label of the button a typed number must press, on the request its command made."""

    shows: list = field(default_factory=list)
    then: list = field(default_factory=list)
    press: str | None = None
    timeout: float = 120


def shown(expected, text: str) -> bool:
    return bool(expected.search(text)) if isinstance(expected, re.Pattern) else expected in text


def rewritten(expected, rewrites: dict[str, str]):
    """What the README (or a check, in the README's words) says, in this run's names (plain names: no regex metacharacters)."""
    is_pattern = isinstance(expected, re.Pattern)
    text = expected.pattern if is_pattern else expected
    for demo, here in rewrites.items():
        text = text.replace(demo, here)
    return re.compile(text, expected.flags) if is_pattern else text


# Keyed by the line as the README types it; a typed number by (the command that made its request, which press).
# In the README's words: its scratch database's name stands for this run's.
RESTART = "/restart web"
RESTORE = f"/restore 1 --into {README_SCRATCH}"
JOB = "/job data-retention"
CHECKS: dict = {
    "/health": Check(shows=["Health: "]),
    RESTART: Check(shows=["Waiting for approval", re.compile(r"docker restart \S+ \([0-9a-f]{12}\)")]),
    (RESTART, 1): Check(press="Approve", then=[re.compile(r"web: restarted in [\d.]+ s, healthy after [\d.]+ s")]),
    "/backup test --label tour": Check(shows=[re.compile(r'test: backup #1 "tour" .*verified')]),
    RESTORE: Check(shows=["Waiting for approval"]),
    (RESTORE, 1): Check(press="Approve", shows=[re.compile(r"Approved request #\d+; it needs one more approver\.")]),
    (RESTORE, 2): Check(press="Approve", then=[re.compile(rf"Restored backup #1 .*into {README_SCRATCH}")]),
    "/job data-retention --dry-run": Check(shows=[re.compile(r"would_delete\D+3\b")]),
    JOB: Check(shows=["Waiting for approval", "would_delete"]),
    (JOB, 1): Check(press="Approve", then=["DELETE 3"]),
    '/incident open P0 "web is down" --service web --playbook application-down': Check(
        shows=["Opened INC-1 (P0)", re.compile(r"\[\d+\] Acknowledge  \[\d+\] Post update  \[\d+\] Escalate  \[\d+\] Resolve"),
               "Application Down (runbook 004)", re.compile(r"\[\d+\] Run 1 ")],
        then=[re.compile(r"^── page · INC-1 · .*\n.*Paging on-call \(primary\)", re.MULTILINE)],  # a block of its own
    ),
    "/incident escalate 1 nobody answered": Check(shows=["INC-1 escalated to level 2, DevOps lead."], then=["Paging DevOps lead."]),
    "/incident ack 1": Check(shows=["Acknowledged"]),
    "/incident rootcause 1 the web container ran out of memory": Check(shows=["Root cause of INC-1 recorded"]),
    "/incident resolve 1 restarted web": Check(shows=["Resolved"]),
    "/incident postmortem 1": Check(shows=["Postmortem draft for INC-1", "**Root Cause:** the web container ran out of memory"]),
    "/oncall": Check(shows=["primary", re.compile(r"On call: @U(CONSOLE|OPS2|OPS3) until"), re.compile(r"Next: @U(CONSOLE|OPS2|OPS3) from")]),
    "/schedule": Check(shows=["daily"]),
    "/schedule run daily": Check(shows=["Ran daily now"], then=[re.compile(r"^Daily check \(daily, .*\n-+\n", re.MULTILINE)]),
    '/maintenance start 30m web "tour"': Check(shows=["Maintenance window #1 started by @UCONSOLE: web from"]),
    # web is healthy here: the window is noted beside it; were it red, it would show MAINT, not CRITICAL
    "/health web": Check(shows=[re.compile(r"^(OK|MAINT) +web .*\(in maintenance window #1 until ", re.MULTILINE)]),
    "/maintenance end": Check(shows=["ended"]),
}


class Session:
    """The console as the README's reader uses it: lines typed, answers to prompts typed when asked."""

    def __init__(self, bot):
        self.out = io.StringIO()
        self.answers = io.StringIO()
        self.console = Console(bot, "UCONSOLE", self.answers, self.out, allow_impersonation=True)

    def mark(self) -> int:
        return len(self.out.getvalue())

    def since(self, mark: int) -> str:
        return self.out.getvalue()[mark:]

    def answer_next_prompt(self, text: str) -> None:
        """A confirmation is read from standard input when its prompt asks, as piped input is."""
        self.answers.seek(0)
        self.answers.truncate()
        self.answers.write(text + "\n")
        self.answers.seek(0)

    async def type(self, line: str) -> str:
        mark = self.mark()
        await self.console.handle_line(line)
        return self.since(mark)

    def button(self, number: str) -> tuple[str, str | None]:
        """(label, request number) of button `number` as printed: the request is the one named by the
        message the button is printed on (from its last request-naming line before the button)."""
        printed = self.out.getvalue()
        match = re.search(rf"\[{number}\] ([^\[\n]+?)(?=\s{{2,}}\[|\s*\(|\s*$)", printed, re.MULTILINE)
        assert match, f"button {number} was never printed:\n{printed[-3000:]}"
        titles = TITLE.findall(printed[:match.start()])  # the message it is on is the last titled before it
        request = re.search(r": request #(\d+)$", titles[-1]) if titles else None
        return match.group(1).strip(), request.group(1) if request else None


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(fleet()["OPSBOT_TEST_POSTGRES_DSN"])
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def drop_table(name: str) -> None:
    connection = await asyncpg.connect(fleet()["OPSBOT_TEST_POSTGRES_DSN"])
    try:
        await connection.execute(f'DROP TABLE IF EXISTS "{name}"')
    finally:
        await connection.close()


def test_the_tour_is_read_from_the_readme():
    typed = tour_inputs(README.read_text(encoding="utf-8"))
    lines = [step.text for step in typed if not step.answer]
    assert lines[0] == "/health" and RESTART in lines and RESTORE in lines and JOB in lines, lines
    assert [step.text for step in typed if step.answer] == [README_SCRATCH, README_SCRATCH]


def test_quoted_output_matches_by_its_shape():
    quoted = "1. web: docker restart opsbot-test-web (d3287b4ba954) with 30 s grace, then run web's checks"
    pattern = printed_line(quoted, {DEMO_WEB: "opsbot-test-f2af6c09-tour-web-8628422f"})
    assert pattern.fullmatch("1. web: docker restart opsbot-test-f2af6c09-tour-web-8628422f (a6b8210bb9c6) with 30 s grace, then run web's checks")
    assert not pattern.fullmatch("1. web: docker restart opsbot-test-web (a6b8210bb9c6) with 30 s grace, then run web's checks")
    buttons = printed_line("[1] Approve  [2] Deny  [3] Withdraw   (type the number to press)", {})
    assert buttons.fullmatch("[1] Approve  [2] Deny  [3] Withdraw   (type the number to press)")
    assert not buttons.fullmatch("[4] Approve  [5] Deny  [6] Withdraw   (type the number to press)")
    assert printed_line("Status: Waiting for approval (expires 11:12 UTC)", {}).fullmatch("Status: Waiting for approval (expires 03:46 UTC)")
    assert printed_line("Health: OK (...)", {}).fullmatch("Health: OK (5 ok)")
    assert not printed_line("Health: OK (...)", {}).fullmatch("Health: CRITICAL (1 critical, 4 ok)")


async def test_the_readme_tour_shows_what_it_says(make_bot, web_copy, tmp_path):
    table = f"{DEMO_TABLE}_{uuid.uuid4().hex[:8]}"
    scratch = f"opsbot_tour_{uuid.uuid4().hex[:8]}"
    bot = await make_bot(bundled_for_this_checkout(web_copy, tmp_path / "backups", table))
    session = Session(bot)
    bot.scheduler.start()  # as `make run`'s console starts it: pages and scheduled posts are its jobs (stopped by bot.close())
    try:
        checked = await take_the_tour(session, tour_inputs(README.read_text(encoding="utf-8")),
                                      {DEMO_WEB: web_copy[0], README_SCRATCH: scratch})
        assert not UNCONFIGURED.search(session.out.getvalue()), session.out.getvalue()
        unused = set(CHECKS) - checked
        assert not unused, f"the README's tour no longer types {sorted(map(str, unused))}: update CHECKS or the README"
    finally:
        await drop_database(scratch)
        await drop_table(table)
        print(session.out.getvalue())  # shown when the test fails: the whole session as the reader saw it


async def take_the_tour(session: Session, typed: list[Typed], rewrites: dict[str, str]) -> set:
    """Type the tour's lines and check each answer; the keys of CHECKS it used."""
    checked, last_command, presses = set(), None, 0
    answers: dict[str, str] = {}  # each command's answer, by the command as the README types it
    for index, step in enumerate(typed):
        if step.answer:
            continue  # answered when the number before it is pressed
        line = rewritten(step.text, rewrites)
        following = typed[index + 1] if index + 1 < len(typed) and typed[index + 1].answer else None
        if following is not None:
            session.answer_next_prompt(rewritten(following.text, rewrites))
        if re.fullmatch(r"as U[A-Z0-9]+", step.text):
            key = None
        elif step.text.isdigit():
            presses += 1
            key = (last_command, presses)
        else:
            last_command, presses, key = step.text, 0, step.text
        check = CHECKS.get(key)
        if key is not None:
            assert check is not None, f"the tour types {key!r}, which this test does not check: add it to CHECKS"
            checked.add(key)
        pressed = session.button(step.text) if step.text.isdigit() else None
        mark = session.mark()
        said = await session.type(line)
        answers[step.text] = said
        assert not UNCONFIGURED.search(said), f"{line} answered that something is not configured:\n{said}"
        assert "There is no button" not in said and "Commands start with a slash" not in said, f"{line}\n{said}"
        if following is not None:
            prompt = rewritten(following.prompt, rewrites)
            assert prompt in said, f"pressing {line} did not ask {prompt!r}:\n{said}"
        printed = said.splitlines()
        for quoted in step.shows:
            pattern = printed_line(quoted, rewrites)
            assert any(pattern.fullmatch(one) for one in printed), f"the README shows {quoted!r} after {step.text}; it printed:\n{said}"
        if check is None:
            continue
        for expected in check.shows:
            expected = rewritten(expected, rewrites)
            assert shown(expected, said), f"{line} did not show {expected!r}:\n{said}"
        if check.press is not None:
            made = re.search(r": request #(\d+)$", answers[last_command], re.MULTILINE)
            assert made, f"{last_command} made no request:\n{answers[last_command]}"
            assert pressed == (check.press, made.group(1)), (
                f"the tour types {line} after {last_command} to press {check.press} on its request #{made.group(1)}; "
                f"button {line} is {pressed[0]} on request #{pressed[1]}"
            )
        for expected in check.then:
            expected = rewritten(expected, rewrites)
            await wait_until(lambda: shown(expected, session.since(mark)), timeout=check.timeout)
    return checked
