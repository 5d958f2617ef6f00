"""Every Slack special form, sent through every command that echoes text, arrives as characters.

Slack sends slash-command text with `&`, `<` and `>` escaped; the parser un-escapes it (it is
what the person typed) and the Slack renderer escapes every string of a Reply once, so a
user's `<!channel>`, a service's `<https://evil|Approve>` or a log line's `<@U123>` can never
become a ping or a link. Only the bot's own `Mention`s (requesters, approvers) are live.

Each case runs over HTTP, Socket Mode and the console (the `drive` fixture). The Slack
double records every outgoing call; `slack_problems` reads every string in them
(response_url posts, chat.postMessage/chat.update, file titles and comments; the plain_text
of headers and buttons too, which Slack never parses, to be strict) and reports any `<` that
is not one of the mentions the test itself expects the bot to make, and any bare `&`. File
*contents* are plain text, not mrkdwn, and are only checked for reading correctly.

Besides "nothing is live", each case checks that the words still read right for a person:
the html-unescaped Slack text, or what the console printed, contains the literal characters
(`<!channel>`), so escaping did not just delete them. Problems are collected per test and
reported together, each saying which command, which form and which payload.

Real components: the bot's own SQLite database, a busybox container on the real Docker
Engine for /logs (label opsbot.test=1, removed afterwards), a local aiohttp server playing a
service's /ready endpoint for /health.
"""
from __future__ import annotations

import html
import json
import re
import time
import uuid

import docker
import pytest
import pytest_asyncio
from aiohttp import web

from conftest import fleet
from drivers import drive  # noqa: F401
from slack_double import PLAIN
from slack_double import live_markup as double_live_markup

from bot.pipeline.markup import Mention, Text
from bot.pipeline.reply import Actions, Button, Context, Header, Preformatted, Reply, Section
from bot.transport.blocks import MAX_SECTION, WORD_JOINER, to_slack

OPS = "UOPS1"  # the person typing in every case; the only user the bot may mention live

# name -> the text as a person typed it (or, for the raw encoding, as Slack writes its markup)
FORMS = {
    "channel": "<!channel>",
    "here": "<!here>",
    "everyone": "<!everyone>",
    "subteam": "<!subteam^S0ABC|@oncall>",
    "user": "<@U0EVIL>",
    "conversation": "<#C0EVIL>",
    "link": "<https://evil.example|Approve restart #7>",
    "mailto": "<mailto:x@evil.example|x>",
    "date": "<!date^1392734382^{date}|Feb 18>",
}
# What the parser makes of each form when Slack sends it as live markup (the person used
# Slack's own @-mention, link or date): the id, the URL, the fallback text.
RAW_READS = {
    "channel": "@channel",
    "here": "@here",
    "everyone": "@everyone",
    "subteam": "S0ABC",
    "user": "U0EVIL",
    "conversation": "C0EVIL",
    "link": "https://evil.example",
    "mailto": "mailto:x@evil.example",
    "date": "Feb 18",
}
# Ampersand round trips: what the person typed, read back exactly.
TYPED_AMPERSANDS = {
    "amp": "a&b",
    "amp-entity": "&amp;",
    "entity-text": "&lt;!channel&gt;",
}

READS_LIMIT = 30  # replies shorten an echoed word (40 characters, with a prefix); check this much of it


def slack_escaped(text: str) -> str:
    """What Slack sends for text a person typed: &, < and > as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cases() -> list[tuple[str, str, str]]:
    """(label, text as Slack sends it, what a person must read back)."""
    out = [(f"escaped {name}", slack_escaped(form), form) for name, form in FORMS.items()]
    out += [(f"raw {name}", form, RAW_READS[name]) for name, form in FORMS.items()]
    out += [(name, slack_escaped(typed), typed) for name, typed in TYPED_AMPERSANDS.items()]
    return out


CASES = cases()


# --- what a person sees, and what Slack would parse -----------------------------------------


_ALLOWED_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")
_ENTITY = ("&amp;", "&lt;", "&gt;")


def live_markup(text: str, allowed: frozenset[str]) -> list[str]:
    """Every `<` in mrkdwn text that Slack would parse, except `<@U…>` for the allowed ids; bare `&`."""
    found = []
    for match in re.finditer("<", text):
        mention = _ALLOWED_MENTION.match(text, match.start())
        if mention and mention.group(1) in allowed:
            continue
        found.append("live " + repr(text[match.start() : match.start() + 50]))
    for match in re.finditer("&", text):
        if not text.startswith(_ENTITY, match.start()):
            found.append("unescaped & " + repr(text[max(0, match.start() - 10) : match.start() + 20]))
    return found


def _text_objects(where: str, node) -> list[tuple[str, str]]:
    """(where, text) of every Block Kit text object under node; blocks may arrive as a JSON string."""
    if isinstance(node, str):
        try:
            node = json.loads(node)
        except ValueError:
            return []
    found = []
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            found.append((f"{where} {node['type']}", node["text"]))
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                found += _text_objects(where, value)
    elif isinstance(node, list):
        for item in node:
            found += _text_objects(where, item)
    return found


def _message_texts(where: str, args: dict) -> list[tuple[str, str]]:
    found = []
    if isinstance(args.get("text"), str):
        found.append((f"{where} text", args["text"]))
    if args.get("blocks") is not None:
        found += _text_objects(f"{where} blocks", args["blocks"])
    for key in ("initial_comment", "title"):
        if isinstance(args.get(key), str):
            found.append((f"{where} {key}", args[key]))
    files = args.get("files")
    if isinstance(files, str):
        try:
            files = json.loads(files)
        except ValueError:
            files = None
    for item in files if isinstance(files, list) else []:
        if isinstance(item, dict) and isinstance(item.get("title"), str):
            found.append((f"{where} file title", item["title"]))
    return found


def outgoing_texts(slack) -> list[tuple[str, str]]:
    """Every string the bot sent to Slack that Slack would render as mrkdwn (or plain_text)."""
    found = []
    for post in slack.response_posts():
        found += _message_texts(f"response_url post {post.url.rsplit('/', 1)[-1][:8]}", post.body or {})
    for call in slack.calls:
        found += _message_texts(call.method, call.args)
    for upload in slack.uploaded_files.values():
        for key in ("title", "initial_comment"):
            value = getattr(upload, key)
            if value:
                found.append((f"uploaded file {upload.filename} {key}", value))
    return found


def slack_problems(slack, allowed: frozenset[str] = frozenset()) -> list[str]:
    problems = []
    for where, text in outgoing_texts(slack):
        for found in live_markup(text, allowed):
            problems.append(f"LIVE MARKUP in {where}: {found}")
    return problems


# --- per-command checks --------------------------------------------------------------------


class Check:
    """Collects what is wrong across a test's commands, to report all of it at once."""

    def __init__(self, driver):
        self.driver = driver
        self.problems: list[str] = []
        self.sent = 0

    @property
    def console(self) -> bool:
        return self.driver.name == "console"

    async def command(self, command: str, wire: str, reads, label: str, *, fold: bool = False, literal_ok=()):
        """Run `command wire` as OPS; the reply must read each of `reads`.

        A string is read whole; a (prefix, echoed) pair as the prefix and the first READS_LIMIT
        characters of the echoed text (replies shorten what they echo).
        """
        seen = await self.driver.command(OPS, command, wire)
        self.sent += 1
        where = f"[{self.driver.name}] {command} {wire} ({label})"
        wants = [w if isinstance(w, str) else w[0] + w[1][:READS_LIMIT] for w in ([reads] if isinstance(reads, (str, tuple)) else reads)]
        for want in wants:
            self.reads(where, seen.plain, want, fold=fold)
        if self.console:
            self.console_clean(where, seen.plain, [*wants, *literal_ok])
        elif seen.post is not None and seen.post.status != 200:
            self.problems.append(f"REFUSED BY SLACK {where}: response_url answered {seen.post.status}")
        return seen

    def reads(self, where: str, plain: str, want: str, *, fold: bool = False) -> None:
        head, got = want, plain
        if fold:
            head, got = head.lower(), got.lower()
        if head in got:
            return
        if self.console and _ALLOWED_MENTION.sub(r"@\1", head) in got:
            # The console shows any <@U…> in a message as @U…, typed or not: reported once, by
            # test_console_prints_a_typed_mention_as_typed, not by every test that echoes one.
            return
        self.problems.append(f"NOT READABLE {where}: a person should read {head!r}; they see {plain[:400]!r}")

    def console_clean(self, where: str, printed: str, literals) -> None:
        """The console prints text as it is: no Slack entities, except inside text that has them literally."""
        rest = printed
        for literal in sorted(literals, key=len, reverse=True):
            rest = rest.replace(literal, "")
        for entity in _ENTITY:
            if entity in rest:
                at = rest.index(entity)
                self.problems.append(f"ENTITY ON THE CONSOLE {where}: {entity} in {rest[max(0, at - 40) : at + 40]!r}")

    async def finish(self, slack, allowed: frozenset[str] = frozenset()) -> None:
        """Once the bot's background work is done (file uploads follow the reply), check all of it."""
        await self.driver.settle()
        if not self.console:
            self.problems += slack_problems(slack, allowed)
            assert outgoing_texts(slack), "no outgoing Slack text was recorded: the check saw nothing"
        assert self.sent, "no command was sent"
        assert not self.problems, f"{len(self.problems)} problem(s):\n" + "\n".join(self.problems[:60])


# --- real components: a container with hostile log lines, a service with a hostile /ready -----

FILLER = 45
LOG_FORM_LINES = [f"form {name}: {form}" for name, form in FORMS.items()] + ["form amp: a&b &amp; &lt;!here&gt;"]
LOG_LINES = [f"filler {i}" for i in range(1, FILLER + 1)] + LOG_FORM_LINES + ["done"]


def _sh_quote(line: str) -> str:
    return "'" + line.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def logs_container():
    """A busybox container that printed LOG_LINES and sleeps; its name is yielded, it is removed after."""
    client = docker.from_env(timeout=30)
    script = "; ".join(f"echo {_sh_quote(line)}" for line in LOG_LINES) + "; exec sleep 3600"
    container = client.containers.run(
        fleet().get("OPSBOT_FLEET_IMAGE", "opsbot-test/busybox:1"),
        ["sh", "-c", script],
        detach=True,
        name=f"opsbot-test-escaping-{uuid.uuid4().hex[:10]}",
        network_mode="host",
        labels={"opsbot.test": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        while container.logs().decode("utf-8", "replace").splitlines()[-1:] != ["done"]:
            assert time.monotonic() < deadline, f"container {container.name} never printed its lines"
            time.sleep(0.1)
        assert container.logs().decode().splitlines() == LOG_LINES
        yield container.name
    finally:
        try:
            container.remove(force=True)
        finally:
            client.close()


# A service's /ready answer: every string a person will see in /health is hostile.
READY = {
    "status": "<!channel> all good",
    "checks": {
        "db": {"status": "<!here>", "message": "<@U0EVIL> please approve <https://evil.example|Approve restart #7>"},
        "queue": {
            "status": "degraded",
            "message": "<!subteam^S0ABC|@oncall> see <#C0EVIL>",
            "latency": "<mailto:x@evil.example|x>",
            "error": "since <!date^1392734382^{date}|Feb 18>",
        },
        "<!everyone>": "<!everyone>",
        "cache": {"status": "down", "message": "a&b &amp; &lt;!here&gt;"},
    },
}
READY_READS = [
    "status is '<!channel> all good', expected 'healthy'",
    "db: <!here>, <@U0EVIL> please approve <https://evil.example|Approve restart #7>",
    "queue: degraded, <!subteam^S0ABC|@oncall> see <#C0EVIL>, <mailto:x@evil.example|x>, since <!date^1392734382^{date}|Feb 18>",
    "<!everyone>: <!everyone>",
    "cache: down, a&b &amp; &lt;!here&gt;",
]


@pytest_asyncio.fixture(scope="module")
async def ready_port():
    """A local service whose /ready answers READY; its port is yielded."""

    async def ready(request):
        return web.json_response(READY)

    app = web.Application()
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def config(container: str, ready_port: int) -> str:
    return f"""
version: 1
services:
  app:
    container: {container}
    owners: [ops]
  api:
    owners: [ops]
    checks:
      - kind: http
        url: http://127.0.0.1:{ready_port}/ready
        expect_json: {{status: healthy}}
        nested_checks: checks
roles:
  ops:
    users: [{OPS}, UOPS2]
actions:
  restart:
    kind: docker_restart
    timeout: 1s
"""


@pytest_asyncio.fixture
async def driver(drive, logs_container, ready_port):  # noqa: F811
    return await drive(config(logs_container, ready_port))


# --- through every transport -------------------------------------------------------------------

# Command names cannot hold whitespace (Slack's and the console's), and Slack does not escape
# them: the raw forms without spaces, plus one escaped, as a forged name would look.
# Nor can they hold a slash (Slack's command names), so no https:// link either.
COMMAND_NAMES = [form for form in FORMS.values() if " " not in form and "/" not in form] + ["&lt;!channel&gt;"]


async def test_unknown_command_names_are_echoed_as_text(driver, slack):
    check = Check(driver)
    for name in COMMAND_NAMES:
        # The command name is matched case-insensitively, so it is echoed in lower case.
        await check.command(f"/{name}", "", f"/{name}", f"name {name!r}", fold=True, literal_ok=[f"/{name}".lower()])
    await check.finish(slack)


@pytest.mark.parametrize("command", ["/health", "/restart", "/logs", "/audit"])
async def test_unknown_service_names_are_echoed_as_text(driver, slack, command):
    check = Check(driver)
    for label, wire, reads in CASES:
        await check.command(command, f'"{wire}"', ("Unknown service '", reads), label)
    await check.finish(slack)


async def test_usage_errors_quote_the_bad_word_as_text(driver, slack):
    check = Check(driver)
    for label, wire, reads in CASES:
        await check.command("/logs", f'app --bad="{wire}"', ("Unknown option '--bad=", reads), label)
        await check.command("/health", f'--x="{wire}"', ("Unknown option '--x=", reads), label)
        await check.command("/logs", f'app --tail "{wire}"', ("--tail ", reads), label)
        await check.command("/logs", f'app --since "{wire}"', ("--since ", reads), label)
        await check.command("/audit", f'app "{wire}"', ("Unexpected '", reads), label)
        await check.command("/restart", f'app "{wire}"', ("Unexpected '", reads), label)
    await check.finish(slack)


async def test_logs_grep_pattern_and_log_lines_arrive_as_text(driver, slack):
    check = Check(driver)
    for label, wire, reads in CASES:
        line = next((line for line in LOG_FORM_LINES if reads in line), None)
        # The pattern is echoed in the title (Context); a matching log line in the code block.
        expected = [f"matching '{reads}"] + ([line] if line else [])
        await check.command("/logs", f'app --grep "{wire}"', expected, label)
        await check.command("/logs", f'app --grep "{wire}" --count', f"matching '{reads}", label)
    # Every hostile log line at once (inline), then as a file (the message shows the last 10).
    await check.command("/logs", "app --grep form", LOG_FORM_LINES, "all form lines")
    await check.command("/logs", "app --tail 5000", LOG_FORM_LINES[-9:], "as a file")
    await driver.settle()
    if not check.console:
        files = [f for f in slack.uploaded_files.values() if f.filename == "app-logs.txt"]
        assert len(files) == 1, f"expected one app-logs.txt upload, got {[f.filename for f in slack.uploaded_files.values()]}"
        content = files[0].data.decode()
        # File contents are plain text, not mrkdwn: the lines as printed, not entities.
        for line in LOG_FORM_LINES:
            if line not in content:
                check.problems.append(f"NOT READABLE [{driver.name}] uploaded app-logs.txt lacks {line!r}")
    await check.finish(slack)


async def test_audit_lists_hostile_arguments_as_text(driver, slack):
    check = Check(driver)
    wires = []
    for label, wire, reads in CASES:
        await check.command("/health", f'"{wire}"', ("Unknown service '", reads), label)
        wires += [f'"{wire}"', f'"{reads}"']
    # The audit log shows each command's arguments (as typed) and its refusal (with the echoed name).
    # A person who typed an entity (&amp;) reads it back on the console: that is the literal text there.
    await check.command("/audit", "", [("Unknown service '", reads) for _, _, reads in CASES], "21 hostile rows", literal_ok=wires)
    for label, wire, reads in CASES:
        await check.command("/logs", f'"{wire}"', ("Unknown service '", reads), label)
        wires += [f'"{wire}"', f'"{reads}"']
    # Over 30 rows: newest 30 inline, the rest in a file (not uploaded for an ephemeral reply on Slack).
    await check.command("/audit", "", [("Unknown service '", reads) for _, _, reads in CASES[-10:]], "over 30 rows", literal_ok=wires)
    await check.finish(slack)


@pytest.mark.parametrize("drive", ["http"], indirect=True)
async def test_audit_lists_arguments_as_typed(driver, slack):
    """What a person typed reads back the same in the audit log's arguments column (its refusals already do)."""
    for typed in ("<!channel>", "a&b"):
        await driver.command(OPS, "/health", f'"{slack_escaped(typed)}"')
    seen = await driver.command(OPS, "/audit", "")
    await driver.settle()
    assert not slack_problems(slack)
    for typed in ("<!channel>", "a&b"):
        assert f'/health "{typed}" -> usage_error' in seen.plain, f"the audit row does not read {typed!r} as typed:\n{seen.plain}"


async def test_health_shows_service_text_as_text(driver, slack):
    check = Check(driver)
    await check.command("/health", "api", READY_READS, "hostile /ready")
    await check.finish(slack)


async def test_the_bots_own_mentions_stay_live(driver, slack):
    """The positive control: the checker allows the requester's mention, and the bot still makes it live."""
    check = Check(driver)
    seen = await check.command("/restart", "app", "is posted and waits for approval", "request")
    request_id = re.search(r"Request #(\d+)", seen.plain).group(1)
    await check.command("/restart", "app", f"app is locked by request #{request_id} (/restart by ", "locked")
    await driver.click(OPS, "action.deny", request_id)
    await check.finish(slack, frozenset({OPS}))
    (plan,) = driver.messages()
    assert len(plan.versions) == 2, f"expected the plan posted, then edited once (denied): {[v.plain for v in plan.versions]}"
    if check.console:
        check.reads("[console] plan", plan.versions[0].plain, f"Requested by @{OPS}")
        check.reads("[console] plan", plan.now.plain, f"Denied by @{OPS}")
    else:
        for version, want in ((plan.versions[0], f"Requested by <@{OPS}>"), (plan.now, f"Denied by <@{OPS}>")):
            # Seen.screen is the blocks as sent: the mention must be live markup there, not &lt;@…&gt;.
            assert want in version.screen, f"the bot's own mention is not live: {version.screen[:500]!r}"
        locked = [p for p in slack.response_posts() if "is locked by" in (p.text or "")]
        assert locked and f"(/restart by <@{OPS}>)" in locked[0].text, [p.text for p in slack.response_posts()]
    assert not check.problems, "\n".join(check.problems)


@pytest.mark.parametrize("drive", ["console"], indirect=True)
async def test_console_prints_a_typed_mention_as_typed(driver):
    """A person who typed `<@U0EVIL>` (Slack sends `&lt;@U0EVIL&gt;`) reads it back as typed, not as `@U0EVIL`."""
    for command, text, sentence in [
        ("/health", '"&lt;@U0EVIL&gt;"', "Unknown service '<@U0EVIL>'"),
        ("/logs", 'app --grep "&lt;@U0EVIL&gt;"', "matching '<@U0EVIL>'"),
        ("/health", "api", "http db: <!here>, <@U0EVIL> please approve"),
    ]:
        seen = await driver.command(OPS, command, text)
        assert sentence in seen.plain, (
            f"{command} {text}: the console rewrote text that only looks like a mention; it printed {seen.plain[:300]!r}. "
            "bot/transport/text.py _plain() turns every <@U…> in Section/Context text into @U…, not only the bot's "
            "own Mention parts of a Text (bot/pipeline/markup.py)."
        )


# --- the renderer itself ----------------------------------------------------------------------

HOSTILE = " ".join(FORMS.values()) + " a&b &amp; &lt;x&gt; `<!here>` *<@U0EVIL>*"


def _mrkdwn_and_plain(message) -> tuple[list[str], list[tuple[str, str]]]:
    mrkdwn = [message.text]
    plain = []
    for where, text in _text_objects("blocks", message.blocks):
        (plain.append((where, text)) if where.endswith("plain_text") else mrkdwn.append(text))
    return mrkdwn, plain


def test_renderer_escapes_every_string_and_keeps_only_the_bots_mentions():
    reply = Reply(
        text=Text(HOSTILE, " requested by ", Mention(OPS)),
        blocks=[
            Header(HOSTILE),
            Section(HOSTILE),
            Context(HOSTILE),
            Preformatted(HOSTILE),
            Section(Text("Requested by ", Mention(OPS), " and ", Mention("U1><!channel"), "; ", HOSTILE)),
            Section(f"{Text('lost: ', Mention(OPS))}"),  # rebuilt as a str: the mention shows as text
            Actions((Button(HOSTILE[:70], "action.approve", "1", "primary"), Button("<!channel>", "action.deny", "1"))),
        ],
    )
    message = to_slack(reply)
    mrkdwn, plain = _mrkdwn_and_plain(message)
    problems = [f"{text[:60]!r}: {found}" for text in mrkdwn for found in live_markup(text, frozenset({OPS}))]
    assert not problems, "\n".join(problems)

    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    context = message.blocks[2]["elements"][0]["text"]
    # Each string reads back exactly; the code block keeps its fences around the escaped text.
    assert html.unescape(sections[0]) == HOSTILE
    assert html.unescape(context) == HOSTILE
    assert sections[1] == "```" + HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "```"
    assert html.unescape(sections[1]) == f"```{HOSTILE}```"
    # The bot's mention is live; one with an invalid id is text ("@U1><!channel"), not markup.
    assert sections[2].startswith(f"Requested by <@{OPS}> and @U1&gt;&lt;!channel; ")
    assert sections[2].count("<@") == 1
    assert html.unescape(sections[2]) == f"Requested by <@{OPS}> and @U1><!channel; {HOSTILE}"
    assert sections[3] == f"lost: &lt;@{OPS}&gt;"
    assert message.text.endswith(f" requested by <@{OPS}>") and message.text.count("<") == 1
    assert html.unescape(message.text) == f"{HOSTILE} requested by <@{OPS}>"
    # Header and button labels are plain_text, where Slack decodes no entity: every character as typed, with
    # an invisible word joiner after each `<` (blocks.plain), so no markup can form in them.
    header, first, second = (text for _, text in plain)
    assert message.blocks[0]["text"]["type"] == "plain_text" and header.endswith("…")
    assert HOSTILE.startswith(header[:-1].replace(WORD_JOINER, "")) and len(header) > 100
    assert HOSTILE.startswith(first.removesuffix("…").replace(WORD_JOINER, "")) and second == f"<{WORD_JOINER}!channel>"
    assert [found for text in (header, first, second) for found in double_live_markup(text, PLAIN)] == []


def test_renderer_splits_and_clips_without_breaking_an_entity():
    """Past Block Kit's limits text is split or clipped; no piece may end inside `&lt;` or start a live form."""
    long = (HOSTILE + " ") * 60  # ~16,000 characters on one line: hard splits
    message = to_slack(Reply(text=long, blocks=[Section(long), Context(long), Preformatted(long)]))
    mrkdwn, _ = _mrkdwn_and_plain(message)
    assert len(mrkdwn) > 4
    for text in mrkdwn:
        assert not live_markup(text, frozenset()), text[:200]
        assert len(text) <= MAX_SECTION + 8 or text is message.text
        # No entity cut in half at either end of a piece.
        assert not re.search(r"&[a-z]{0,3}$", text.rstrip("…`")), text[-20:]
        assert not re.match(r"^`*[a-z]{1,3};", text), text[:20]
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert html.unescape("".join(s for s in sections if not s.startswith("```"))) == long
    assert html.unescape("".join(s[3:-3] for s in sections if s.startswith("```"))) == long


def test_the_checker_itself():
    """live_markup flags every form Slack would parse, allows only the named mentions, and reads entities as text."""
    allowed = frozenset({OPS})
    for form in [*FORMS.values(), "<@UOPS1|ops>", "<@UOPS2>", "<!channel|x>", "a < b", "a&b"]:
        assert live_markup(f"x {form} y", allowed), form
    for text in [f"<@{OPS}>", f"by <@{OPS}>, <@{OPS}>", slack_escaped(HOSTILE), "```&lt;!here&gt;```", "&amp;lt;"]:
        assert not live_markup(text, allowed), text
    assert live_markup(f"<@{OPS}>", frozenset()), "an allowed mention is allowed only when the test names it"
