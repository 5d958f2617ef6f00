"""/logs and /audit on real components.

/logs reads containers this module starts itself on the real Docker Engine (busybox,
labelled opsbot.test=1, removed afterwards) that print known lines: numbered filler,
ERROR lines and planted secrets. /audit reads the bot's real SQLite database. The Slack
path goes through the bot's own HTTP edge to the Slack Web API double, which validates
Block Kit and file upload v2.
"""
from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import aiohttp
import docker
import pytest
import pytest_asyncio
from aiohttp import web

from slack_double import block_texts
from conftest import SIGNING_SECRET, fleet, free_port, wait_until
from slack_signing import sign, slash_command_body

from bot.audit import service as audit
from bot.audit.models import AuditEntry
from bot.pipeline.reply import Context, Outcome, Preformatted
from bot.pipeline.request import Request
from bot.pipeline.roles import RoleDirectory
from bot.storage import utcnow
from bot.transport.blocks import to_slack
from bot.transport.server import build_web_app
from bot.transport.edge import SlackEdge
from bot.transport.slack import group_lookup, web_client
from bot.transport.text import to_text

ROOT = Path(__file__).resolve().parent.parent

SECRETS = ["hunter2", "s3cr3t", "abc.def.ghi", "xoxb-1234-5678-abcdef", "sk_live_123456"]
FILLER = 300
# What the container prints after the numbered filler lines, in order.
TAIL_LINES = [
    "ERROR disk full on /var/lib/app",
    "worker: DB_PASSWORD=hunter2",
    "ERROR connection refused to postgres://app:s3cr3t@db/app",
    "proxy: Authorization: Bearer abc.def.ghi",
    "notify: using token xoxb-1234-5678-abcdef",
    "billing: API_KEY=sk_live_123456",
    "markup: <!channel> see <https://evil.example/login|re-login> a&b",
    "warn: an error in lowercase",
    "shell: literal $(id) marker",
    "request id=42 took 17ms",
    "request id=43 took 250ms",
    "done",
]
ALL_LINES = [f"line {i}" for i in range(1, FILLER + 1)] + TAIL_LINES
ERROR_LINES = [line for line in ALL_LINES if "error" in line.lower()]
assert len(ERROR_LINES) == 3


# --- containers -----------------------------------------------------------------------


def _docker() -> docker.DockerClient:
    return docker.from_env(timeout=30)


def start_container(script: str) -> tuple[docker.DockerClient, object]:
    client = _docker()
    image = fleet().get("OPSBOT_FLEET_IMAGE", "opsbot-test/busybox:1")
    container = client.containers.run(
        image,
        ["sh", "-c", script],
        detach=True,
        name=f"opsbot-test-logs-{uuid.uuid4().hex[:10]}",
        network_mode="host",
        labels={"opsbot.test": "1"},
    )
    return client, container


def wait_for_log(container, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in container.logs().decode("utf-8", "replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"container {container.name} never printed {text!r}")


def remove(client, container) -> None:
    try:
        container.remove(force=True)
    finally:
        client.close()


def _sh_quote(line: str) -> str:
    return "'" + line.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def logs_container():
    """A container that printed ALL_LINES and then sleeps; its name is yielded."""
    script = (
        f"for i in $(/bin/busybox seq 1 {FILLER}); do echo \"line $i\"; done; "
        + "; ".join(f"echo {_sh_quote(line)}" for line in TAIL_LINES)
        + "; exec sleep 3600"
    )
    client, container = start_container(script)
    try:
        wait_for_log(container, "\ndone\n")
        assert container.logs().decode().splitlines() == ALL_LINES
        yield container.name
    finally:
        remove(client, container)


def logs_config(container: str) -> str:
    return f"""
version: 1
services:
  app:
    container: {container}
    owners: [ops]
  other:
    container: {container}
    owners: [leads]
  nocontainer:
    owners: [ops]
  ghost:
    container: opsbot-test-logs-does-not-exist
    owners: [ops]
roles:
  ops:
    users: [UOPS1, UOPS2]
  leads:
    users: [ULEAD1]
"""


@pytest_asyncio.fixture
async def logs_bot(make_bot, logs_container):
    return await make_bot(logs_config(logs_container))


async def run(bot, command: str, text: str, user: str = "UOPS1"):
    return await bot.handle(Request(user, "C1", command, text, "console"))


def preformatted(reply) -> str:
    return "\n".join(b.text for b in reply.blocks if isinstance(b, Preformatted))


def everything_shown(reply) -> str:
    """Every character the reply carries to either transport."""
    message = to_slack(reply)
    parts = [reply.text, to_text(reply), message.text, repr(message.blocks), message.attachment or ""]
    parts += [getattr(b, "text", repr(b)) for b in reply.blocks]
    if reply.file:
        parts.append(reply.file.content)
    return "\n".join(parts)


def assert_one_sentence(reply, *expected: str) -> None:
    assert reply.outcome in (Outcome.usage_error, Outcome.denied), reply
    assert reply.ephemeral
    assert "\n" not in reply.text.strip(), reply.text
    assert reply.file is None
    for part in expected:
        assert part in reply.text, reply.text


# --- /logs: options ---------------------------------------------------------------------


async def test_tail_returns_the_last_n_lines(logs_bot):
    reply = await run(logs_bot, "logs", "app --tail 5")
    assert reply.outcome is Outcome.ok
    assert reply.file is None
    assert preformatted(reply).splitlines() == ALL_LINES[-5:]
    assert "app logs: 5 lines, last 5 lines" in reply.text
    assert not reply.ephemeral  # logs are shown to the channel


async def test_default_is_the_last_100_lines_as_a_file(logs_bot):
    reply = await run(logs_bot, "logs", "app")
    assert reply.outcome is Outcome.ok
    assert "app logs: 100 lines, last 100 lines" in reply.text
    assert reply.file is not None and reply.file.filename == "app-logs.txt"
    lines = reply.file.content.rstrip("\n").splitlines()
    assert len(lines) == 100
    assert lines[0] == ALL_LINES[-100] == f"line {len(ALL_LINES) - 99}"
    assert lines[-1] == "done"
    # The message shows the last 10 lines; the file has them all.
    shown = preformatted(reply).splitlines()
    assert shown == lines[-10:]
    assert any(isinstance(b, Context) and "the last 10 are below" in b.text for b in reply.blocks)
    # The console prints the whole file after the message.
    text = to_text(reply)
    assert "--- app-logs.txt ---" in text and f"\n{ALL_LINES[-100]}\n" in text


async def test_tail_over_forty_lines_goes_to_a_file(logs_bot):
    reply = await run(logs_bot, "logs", "app --tail 41")
    assert reply.file is not None
    assert len(reply.file.content.splitlines()) == 41
    reply = await run(logs_bot, "logs", "app --tail 40")
    assert reply.file is None
    assert len(preformatted(reply).splitlines()) == 40


async def test_tail_all_lines_within_the_maximum(logs_bot):
    reply = await run(logs_bot, "logs", "app --tail 5000")
    assert reply.outcome is Outcome.ok
    got = reply.file.content.splitlines()
    assert len(got) == len(ALL_LINES)
    assert got[:FILLER] == ALL_LINES[:FILLER]
    assert [a == b for a, b in zip(got[FILLER:], TAIL_LINES)] == [not any(s in line for s in SECRETS) for line in TAIL_LINES]


async def test_grep_is_literal_and_case_insensitive(logs_bot):
    reply = await run(logs_bot, "logs", "app --grep error")
    assert reply.outcome is Outcome.ok
    lines = preformatted(reply).splitlines()
    assert len(lines) == 3
    assert lines[0] == "ERROR disk full on /var/lib/app"
    assert lines[1].startswith("ERROR connection refused to postgres://app:")
    assert lines[2] == "warn: an error in lowercase"
    assert "3 lines matching 'error'" in reply.text

    # Regex metacharacters in a literal pattern mean themselves.
    reply = await run(logs_bot, "logs", "app --grep 'id=4.'")
    assert "No lines matching 'id=4.'" in to_text(reply)
    reply = await run(logs_bot, "logs", "app --grep 'ID=42 TOOK'")
    assert preformatted(reply).splitlines() == ["request id=42 took 17ms"]


async def test_grep_regex_between_slashes(logs_bot):
    reply = await run(logs_bot, "logs", r"app --grep '/took \d{3,}ms$/'")
    assert reply.outcome is Outcome.ok
    assert preformatted(reply).splitlines() == ["request id=43 took 250ms"]
    reply = await run(logs_bot, "logs", "app --grep '/^error (disk|connection)/'")
    assert [line.split()[1] for line in preformatted(reply).splitlines()] == ["disk", "connection"]
    reply = await run(logs_bot, "logs", "app --grep '/^line 29[0-9]$/' --tail 5000")
    assert preformatted(reply).splitlines() == [f"line {i}" for i in range(290, 300)]


async def test_grep_applies_within_the_tail(logs_bot):
    reply = await run(logs_bot, "logs", "app --tail 4 --grep request")
    assert preformatted(reply).splitlines() == ["request id=42 took 17ms", "request id=43 took 250ms"]
    reply = await run(logs_bot, "logs", "app --tail 2 --grep error")
    assert "No lines matching 'error' in the last 2 lines" in to_text(reply)
    assert reply.outcome is Outcome.ok


async def test_count_answers_how_many_errors_in_the_last_hour(logs_bot, logs_container):
    # Runbook 001: "how many errors in the last hour".
    reply = await run(logs_bot, "logs", "app --since 1h --grep error --count")
    assert reply.outcome is Outcome.ok
    assert reply.text == f"3 lines matching 'error' in the last 1h of app ({logs_container})."
    assert reply.file is None
    reply = await run(logs_bot, "logs", "app --tail 5000 --count")
    assert reply.text.startswith(f"{len(ALL_LINES)} lines in the last 5000 lines of app")
    reply = await run(logs_bot, "logs", "app --grep '/^line \\d+$/' --count --tail 5000")
    assert reply.text.startswith(f"{FILLER} lines matching '^line \\d+$' in the last 5000 lines of app")


async def test_since_window_uses_docker_timestamps(make_bot):
    client, container = start_container("echo before-the-pause; sleep 4; echo after-the-pause; exec sleep 3600")
    try:
        bot = await make_bot(logs_config(container.name))
        await asyncio.get_running_loop().run_in_executor(None, wait_for_log, container, "after-the-pause")
        reply = await run(bot, "logs", "app --since 2s")
        assert reply.outcome is Outcome.ok, reply.text
        assert preformatted(reply).splitlines() == ["after-the-pause"]
        assert "app logs: 1 lines, last 2s" in reply.text
        reply = await run(bot, "logs", "app --since 1m")
        assert preformatted(reply).splitlines() == ["before-the-pause", "after-the-pause"]
    finally:
        remove(client, container)


async def test_since_without_tail_is_capped(logs_bot, logs_spy, monkeypatch):
    import commands.logs

    monkeypatch.setattr(commands.logs, "MAX_TAIL", 50)
    reply = await run(logs_bot, "logs", "app --since 1h")
    assert reply.outcome is Outcome.ok, reply.text
    assert logs_spy[-1][1]["tail"] == 50  # the Docker Engine was never asked for the whole window
    assert "app logs: 50 lines, last 1h (newest 50 lines)" in reply.text
    lines = reply.file.content.splitlines()
    assert len(lines) == 50 and lines[0] == ALL_LINES[-50] and lines[-1] == "done"
    reply = await run(logs_bot, "logs", "app --since 1h --count")
    assert reply.text.startswith("50 lines in the last 1h (newest 50 lines) of app")
    # Below the cap nothing is said about one.
    monkeypatch.setattr(commands.logs, "MAX_TAIL", 5000)
    reply = await run(logs_bot, "logs", "app --since 1h --count")
    assert reply.text.startswith(f"{len(ALL_LINES)} lines in the last 1h of app (")
    assert logs_spy[-1][1]["tail"] == 5000


async def test_catastrophic_regex_is_cut_off_and_the_bot_keeps_serving(make_bot, monkeypatch):
    import commands.logs

    client, container = start_container("echo " + "a" * 40 + "!; exec sleep 3600")
    try:
        bot = await make_bot(logs_config(container.name))
        await asyncio.get_running_loop().run_in_executor(None, wait_for_log, container, "a!")
        # The textbook (a+)+$ is no trouble for the regex engine: an answer, at once.
        reply = await run(bot, "logs", "app --grep '/(a+)+$/'")
        assert reply.outcome is Outcome.ok and "No lines matching '(a+)+$'" in to_text(reply)

        # (a|aa)+$ still backtracks exponentially (about 1s at 30 a's, far past the budget at 40);
        # the matching must run off the event loop.
        matching = threading.Event()
        real = commands.logs._read_lines

        def read_lines(*args):
            matching.set()
            return real(*args)

        monkeypatch.setattr(commands.logs, "_read_lines", read_lines)
        slow = asyncio.create_task(run(bot, "logs", "app --grep '/(a|aa)+$/'"))
        await wait_until(matching.is_set)
        # While that pattern is being matched, the bot answers other commands.
        reply = await run(bot, "help", "")
        assert reply.outcome is Outcome.ok and "Commands you can run" in reply.text
        assert not slow.done()
        reply = await slow
        assert_one_sentence(reply, "The pattern took too long to match; use plain text or a simpler /regex/.")
        assert reply.outcome is Outcome.usage_error
        # And afterwards too.
        reply = await run(bot, "logs", "app --tail 1")
        assert reply.outcome is Outcome.ok and preformatted(reply) == "a" * 40 + "!"
        rows = await audit.entries(bot.db)
        # Newest first; /help finished (and was recorded) before the slow /logs did. A /logs that ran
        # is on record as requested before it ran; its refusal gets a row of its own.
        assert [(r.command, r.outcome) for r in rows][:4] == [
            ("logs", "requested"),
            ("logs", "usage_error"),
            ("help", "ok"),
            ("logs", "requested"),
        ]
    finally:
        remove(client, container)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("app --grep '/(unclosed/'", "--grep /(unclosed/: not a valid regular expression"),
        ("app --grep " + "a" * 201, "at most 200 characters"),
        ("app --grep '/" + "a" * 199 + "/'", "at most 200 characters"),
        ("app --tail 0", "--tail 0: must be between 1 and 5000"),
        ("app --tail 999999", "--tail 999999: must be between 1 and 5000"),
        ("app --tail -5", "--tail -5: must be between 1 and 5000"),
        ("app --tail abc", "--tail abc: must be a whole number of lines"),
        ("app --tail 1.5", "--tail 1.5: must be a whole number of lines"),
        ("app --since 30d", "--since 30d: at most 7d"),
        ("app --since soon", "--since soon: expected a duration like"),
        ("app --since 0s", "a duration must be greater than zero"),
        ("app --tail", "--tail needs a value"),
        ("app --count=yes", "--count takes no value"),
        ("", "Missing <service>"),
    ],
)
async def test_bad_options_get_one_sentence(logs_bot, text, expected):
    reply = await run(logs_bot, "logs", text)
    assert_one_sentence(reply, expected, "Usage: /logs <service>")
    assert "Traceback" not in reply.text and "invalid literal" not in reply.text


# --- /logs: redaction ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["app --tail 20", "app", "app --tail 5000", "app --grep /./", "app --since 1h"])
async def test_planted_secrets_never_leave_the_bot(logs_bot, text):
    reply = await run(logs_bot, "logs", text)
    assert reply.outcome is Outcome.ok
    shown = everything_shown(reply)
    for secret in SECRETS:
        assert secret not in shown, f"{secret!r} leaked with /logs {text}"
    assert "[REDACTED]" in shown
    if reply.file:
        assert "[REDACTED]" in reply.file.content
        for secret in SECRETS:
            assert secret not in reply.file.content
    # What is left of each line says where the secret was.
    assert "DB_PASSWORD=[REDACTED]" in shown
    assert "postgres://app:[REDACTED]@db/app" in shown
    assert "Bearer [REDACTED]" in shown
    assert "API_KEY=[REDACTED]" in shown


async def test_grep_cannot_probe_a_redacted_secret(logs_bot):
    # Matching runs on what the user may see, so a pattern cannot confirm a secret
    # one character at a time.
    for probe in ("hunter2", "/DB_PASSWORD=h/", "/s3cr3t@/", "/Bearer abc/", "/sk_live_1/", "xoxb-1234"):
        reply = await run(logs_bot, "logs", f"app --grep '{probe}' --count --tail 5000")
        assert reply.text.startswith("0 lines matching"), (probe, reply.text)
    reply = await run(logs_bot, "logs", "app --grep REDACTED --tail 5000")
    assert len(preformatted(reply).splitlines()) == 5
    # A token typed into the pattern is not echoed into the channel either.
    reply = await run(logs_bot, "logs", "app --grep xoxb-1234-5678-abcdef --count")
    assert "xoxb-1234-5678-abcdef" not in everything_shown(reply)


# --- /logs: who and what -------------------------------------------------------------------


async def test_roles(logs_bot):
    # No role at all: the pipeline refuses before the handler runs.
    reply = await run(logs_bot, "logs", "app --tail 1", user="UNOBODY")
    assert_one_sentence(reply, "not allowed to run /logs")
    assert reply.outcome is Outcome.denied
    # A role, but not one that owns the service.
    reply = await run(logs_bot, "logs", "app --tail 1", user="ULEAD1")
    assert_one_sentence(reply, "You cannot read the logs of app: it needs the ops role in app.yaml.")
    reply = await run(logs_bot, "logs", "other --tail 1", user="UOPS1")
    assert_one_sentence(reply, "You cannot read the logs of other: it needs the leads role in app.yaml.")
    # The owners can.
    reply = await run(logs_bot, "logs", "other --tail 1", user="ULEAD1")
    assert reply.outcome is Outcome.ok and preformatted(reply) == "done"
    reply = await run(logs_bot, "logs", "app --tail 1", user="UOPS2")
    assert reply.outcome is Outcome.ok and preformatted(reply) == "done"
    rows = await audit.entries(logs_bot.db, 100)
    # The pipeline refuses UNOBODY before anything is recorded as requested; the service's own
    # policy refuses after the request is on record.
    assert [(r.user_id, r.outcome) for r in reversed(rows)] == [
        ("UNOBODY", "denied"),
        ("ULEAD1", "requested"),
        ("ULEAD1", "denied"),
        ("UOPS1", "requested"),
        ("UOPS1", "denied"),
        ("ULEAD1", "requested"),
        ("UOPS2", "requested"),
    ]


async def test_service_without_container_or_missing_container(logs_bot):
    reply = await run(logs_bot, "logs", "nocontainer")
    assert_one_sentence(reply, "nocontainer has no container in app.yaml, so opsbot has no logs for it.")
    reply = await run(logs_bot, "logs", "ghost")
    assert reply.outcome is Outcome.error
    assert "\n" not in reply.text
    assert reply.text == "Cannot read the logs of ghost: container opsbot-test-logs-does-not-exist does not exist."


async def test_unknown_service_with_suggestion(logs_bot):
    reply = await run(logs_bot, "logs", "ap")
    assert_one_sentence(reply, "Unknown service 'ap'. Did you mean 'app'?", "Known: app, other, nocontainer, ghost.")
    reply = await run(logs_bot, "logs", "zzz")
    assert_one_sentence(reply, "Unknown service 'zzz'.")
    assert "Did you mean" not in reply.text


# --- /logs: injection attempts ---------------------------------------------------------------


@pytest_asyncio.fixture
async def logs_spy(logs_bot):
    """Counts reads of container logs; the real gateway still does the work."""
    calls = []
    real = logs_bot.checks.docker.logs

    async def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return await real(*args, **kwargs)

    logs_bot.checks.docker.logs = spy
    return calls


async def test_grep_shell_syntax_is_literal(logs_bot, logs_spy):
    reply = await run(logs_bot, "logs", "app --grep '$(id)' --tail 5000")
    assert reply.outcome is Outcome.ok
    assert preformatted(reply).splitlines() == ["shell: literal $(id) marker"]
    assert "uid=" not in everything_shown(reply)
    reply = await run(logs_bot, "logs", "app --grep '`id`' --tail 5000")
    assert "No lines matching '`id`'" in to_text(reply)
    assert len(logs_spy) == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("app; cat /etc/passwd", "Unexpected 'cat'"),
        ("app && cat /etc/passwd", "Unexpected '&&'"),
        ("app | sh", "Unexpected '|'"),
        ("app --privileged", "Unknown option '--privileged'"),
        ("--privileged app", "Unknown option '--privileged'"),
        ("app\n/restart app", "Unexpected '/restart'"),
        ("app\nrm -rf /", "Unknown option '-rf'"),
        ("app\x00--tail 1", "control characters"),
        ("app --tail 5 " + "x" * 5000, "commands take at most 2,000"),
        ("'app --tail 5", "A quote is not closed"),
        ("../../etc/passwd", "Unknown service '../../etc/passwd'"),
        ("app$(id)", "Unknown service 'app$(id)'"),
    ],
)
async def test_injection_attempts_get_one_sentence_and_run_nothing(logs_bot, logs_spy, text, expected):
    reply = await run(logs_bot, "logs", text)
    assert_one_sentence(reply, expected)
    assert "uid=" not in reply.text and "root:x:0:0" not in reply.text
    assert len(reply.text) < 400
    assert logs_spy == []  # the Docker Engine was not asked for anything
    row = (await audit.entries(logs_bot.db))[0]  # an unknown service is refused after the request is on record
    assert row.outcome == "usage_error" and row.command == "logs"


# --- /logs over Slack: file upload v2 and Block Kit limits ----------------------------------------


class Served:
    def __init__(self, bot, url: str):
        self.bot, self.url = bot, url

    async def command(self, body: str, secret: str = SIGNING_SECRET) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(secret, body)}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as response:
                return response.status


@pytest_asyncio.fixture
async def serve_bot(slack, make_bot):
    runners: list[web.AppRunner] = []

    async def factory(config_text: str) -> Served:
        bot = await make_bot(config_text, api_url=slack.api_url)
        client = web_client(bot.settings)
        bot.roles = RoleDirectory(bot.config, group_lookup(client))
        runner = web.AppRunner(build_web_app(bot, SlackEdge(bot, client), bot.settings.slack_signing_secret), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Served(bot, f"http://127.0.0.1:{port}")

    yield factory
    for runner in runners:
        await runner.cleanup()




async def test_slack_long_logs_upload_a_file_and_fit_block_kit(slack, serve_bot, logs_container):
    served = await serve_bot(logs_config(logs_container))
    url = slack.new_response_url()
    body = slash_command_body("/logs", "app --tail 5000", user_id="UOPS1", channel_id="CLOGS", response_url=url)
    assert await served.command(body) == 200

    [post] = await slack.wait_for_response_posts(1, timeout=15)
    assert post.status == 200, post  # the double validated the blocks
    assert post.body["response_type"] == "in_channel"
    assert len(post.blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in post.blocks if b["type"] == "section")
    assert len(post.text) <= 4000
    shown = block_texts(post.blocks)
    assert "the last 10 are below" in shown
    code = [b["text"]["text"] for b in post.blocks if b["type"] == "section" and b["text"]["text"].startswith("```")]

    completes = await slack.wait_for("files.completeUploadExternal", 1, timeout=15)
    assert completes[-1].ok
    [get_url] = slack.calls_to("files.getUploadURLExternal")
    assert get_url.ok and get_url.args["filename"] == "app-logs.txt"
    [upload] = slack.uploaded_files.values()
    assert upload.completed and upload.channel_id == "CLOGS"
    assert upload.filename == "app-logs.txt"
    assert upload.title == "/logs output"
    data = upload.data.decode()
    assert upload.length == len(upload.data)
    assert len(data.splitlines()) == len(ALL_LINES)
    assert data.splitlines()[0] == "line 1" and data.splitlines()[-1] == "done"
    # The message shows the last 10 lines, escaped so that log text cannot ping or link (<!channel>, <url|text>).
    last10 = "\n".join(data.splitlines()[-10:])
    assert [c.strip("`") for c in code] == [last10.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")]
    assert "<!channel>" not in repr(post.blocks) and "<https://evil" not in repr(post.blocks)
    assert "&lt;!channel&gt;" in code[0]
    assert "[REDACTED]" in data
    everything = data + post.text + repr(post.blocks) + repr([c.args for c in slack.calls])
    for secret in SECRETS:
        assert secret not in everything
    await asyncio.sleep(0.5)
    assert len(slack.response_posts(url)) == 1

    rows = await audit.entries(served.bot.db)
    assert [(r.command, r.target, r.transport, r.outcome) for r in rows] == [("logs", "app", "slack", "requested")]


async def test_slack_short_logs_need_no_file_and_refusals_are_ephemeral(slack, serve_bot, logs_container):
    served = await serve_bot(logs_config(logs_container))
    url = slack.new_response_url()
    assert await served.command(slash_command_body("/logs", "app --grep error", user_id="UOPS1", response_url=url)) == 200
    [post] = await slack.wait_for_response_posts(1, timeout=15)
    assert post.status == 200 and post.body["response_type"] == "in_channel"
    assert "3 lines matching 'error'" in post.text
    assert "postgres://app:[REDACTED]@db/app" in block_texts(post.blocks)

    url2 = slack.new_response_url()
    assert await served.command(slash_command_body("/logs", "app --tail 1", user_id="ULEAD1", response_url=url2)) == 200
    await wait_until(lambda: slack.response_posts(url2))
    [denied] = slack.response_posts(url2)
    assert denied.status == 200 and denied.body["response_type"] == "ephemeral"
    assert denied.text == "You cannot read the logs of app: it needs the ops role in app.yaml."
    await asyncio.sleep(0.3)
    assert slack.calls_to("files.getUploadURLExternal") == []


async def test_slack_long_ephemeral_reply_is_not_shared_as_a_file(slack, serve_bot, logs_container):
    # /audit is only for the caller (and only for role holders): a file shared into the
    # channel would show the whole trail to everyone there.
    served = await serve_bot(logs_config(logs_container))
    for i in range(35):
        await run(served.bot, "logs", f"app --tail {i + 1} --count")
    url = slack.new_response_url()
    assert await served.command(slash_command_body("/audit", "app", user_id="UOPS1", channel_id="CAUD", response_url=url)) == 200
    [post] = await slack.wait_for_response_posts(1, timeout=15)
    assert post.status == 200, post
    assert post.body["response_type"] == "ephemeral"
    shown = block_texts(post.blocks)
    assert "35 entries" in shown and "--tail 35 --count" in shown
    assert "not attached" in shown
    await asyncio.sleep(0.5)
    assert slack.calls_to("files.getUploadURLExternal") == []
    assert slack.calls_to("files.completeUploadExternal") == []
    assert slack.uploaded_files == {}


# --- /audit ---------------------------------------------------------------------------------


def audit_lines(reply) -> list[str]:
    return preformatted(reply).splitlines()


async def snapshot(bot) -> list[tuple]:
    rows = await audit.entries(bot.db, 100_000)
    return [(r.id, r.at, r.user_id, r.command, r.target, r.arguments, r.channel, r.transport, r.outcome, r.detail) for r in rows]


async def test_audit_lists_newest_first_and_filters_by_service(logs_bot):
    await run(logs_bot, "logs", "app --tail 1")
    await run(logs_bot, "logs", "other --tail 2", user="ULEAD1")
    await run(logs_bot, "logs", "app --tail 3", user="ULEAD1")  # denied
    await run(logs_bot, "logs", "app --tail abc")  # usage error

    reply = await run(logs_bot, "audit", "")
    assert reply.outcome is Outcome.ok and reply.ephemeral
    # Five /logs rows (the denied one also as requested) and this /audit's own "requested".
    assert "Audit: last 1d, 6 entries" in reply.text
    lines = audit_lines(reply)
    assert len(lines) == 6
    assert "UOPS1" in lines[0] and "/audit  -> requested" in lines[0]
    assert "UOPS1" in lines[1] and "/logs app --tail abc -> usage_error" in lines[1]
    assert "must be a whole number" in lines[1]  # refusals carry their sentence
    assert "ULEAD1" in lines[2] and "/logs app --tail 3 -> denied" in lines[2]
    assert "ULEAD1" in lines[3] and "/logs app --tail 3 -> requested" in lines[3]
    assert "ULEAD1" in lines[4] and "/logs other --tail 2 -> requested" in lines[4]
    assert "UOPS1" in lines[5] and "/logs app --tail 1 -> requested" in lines[5]
    for line in lines:
        assert re.match(r"^\d\d-\d\d \d\d:\d\d:\d\d ", line), line

    reply = await run(logs_bot, "audit", "other")
    assert "Audit: other, last 1d, 1 entries" in reply.text
    assert [line.split(" /", 1)[1] for line in audit_lines(reply)] == ["logs other --tail 2 -> requested"]

    # The /audit commands are on record too (target empty: they act on no service).
    reply = await run(logs_bot, "audit", "")
    assert "/audit  -> requested" in audit_lines(reply)[0]
    assert "/audit other -> requested" in audit_lines(reply)[1]

    reply = await run(logs_bot, "audit", "nosuch")
    assert_one_sentence(reply, "Unknown service 'nosuch'")


async def test_audit_since_window(logs_bot):
    async with logs_bot.db.sessions() as session, session.begin():  # an insert, as record() does
        session.add(
            AuditEntry(
                at=utcnow() - timedelta(hours=2),
                user_id="UOPS2",
                command="logs",
                target="app",
                arguments="app --since 1h",
                channel="C1",
                transport="slack",
                outcome="ok",
                detail="",
            )
        )
    await run(logs_bot, "logs", "app --tail 1")

    reply = await run(logs_bot, "audit", "app --since 1h")
    assert "Audit: app, last 1h, 1 entries" in reply.text
    assert all("UOPS2" not in line for line in audit_lines(reply))

    reply = await run(logs_bot, "audit", "app --since 3h")
    assert "Audit: app, last 3h, 2 entries" in reply.text
    assert "UOPS2" in audit_lines(reply)[1]

    reply = await run(logs_bot, "audit", "app")  # default 24h
    assert "2 entries" in reply.text

    reply = await run(logs_bot, "audit", "app --since 30m")
    assert "Audit: app, last 30m, 1 entries" in reply.text

    reply = await run(logs_bot, "audit", "app --since whenever")
    assert_one_sentence(reply, "--since whenever: expected a duration like")


async def test_audit_needs_a_role(logs_bot):
    await run(logs_bot, "logs", "app --tail 1")
    reply = await run(logs_bot, "audit", "", user="UNOBODY")
    assert_one_sentence(reply, "not allowed to run /audit")
    assert reply.outcome is Outcome.denied
    assert "UOPS1" not in reply.text
    # Any role is enough to read the trail.
    reply = await run(logs_bot, "audit", "", user="ULEAD1")
    assert reply.outcome is Outcome.ok and "/logs app --tail 1 -> requested" in audit_lines(reply)[-1]


async def test_audit_long_list_is_attached(logs_bot):
    for i in range(35):
        await run(logs_bot, "logs", f"app --tail {i + 1} --count")
    reply = await run(logs_bot, "audit", "app")
    assert "35 entries" in reply.text
    assert reply.file is not None and reply.file.filename == "audit.txt"
    assert len(reply.file.content.splitlines()) == 35
    assert len(audit_lines(reply)) == 30
    assert "--tail 35 --count" in audit_lines(reply)[0]


async def test_audit_rows_only_ever_grow(logs_bot):
    history = [await snapshot(logs_bot)]
    for text, user in [
        ("app --tail 1", "UOPS1"),
        ("app --tail 1", "UNOBODY"),
        ("app --tail 0", "UOPS1"),
        ("ghost", "UOPS1"),
        ("app; cat /etc/passwd", "UOPS1"),
    ]:
        await run(logs_bot, "logs", text, user=user)
        await run(logs_bot, "audit", "app")
        history.append(await snapshot(logs_bot))
    for before, after in zip(history, history[1:]):
        # The command (one row, or requested plus its refusal) and the /audit that read it.
        added = len(after) - len(before)
        assert added in (2, 3)
        assert after[added:] == before  # nothing earlier changed or went away
        assert after[0][0] > after[1][0] > (before[0][0] if before else 0)
    assert len(history[-1]) == 11  # the unknown service 'ghost' was requested, then refused


AUDIT_WRITE = [
    re.compile(r"\b(update|delete)\s*\(\s*AuditEntry\b"),
    re.compile(r"\bAuditEntry\b.*\.(update|delete)\s*\("),
    re.compile(r"(?i)\b(update\s+\"?audit_log\b|delete\s+from\s+\"?audit_log\b|truncate\s+(table\s+)?\"?audit_log\b)"),
    re.compile(r"(?i)op\.(execute|bulk_update)\(.*audit_log"),
    re.compile(r"(?i)drop_table\(\s*[\"']audit_log"),
]


def test_no_code_path_updates_or_deletes_audit_rows():
    offenders = []
    files = [p for d in ("bot", "commands") for p in (ROOT / d).rglob("*.py")]
    migrations = list((ROOT / "migrations").rglob("*.py"))
    for path in files + migrations:
        text = path.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in AUDIT_WRITE:
                if pattern.search(line):
                    # The first migration's downgrade may drop the table it created; nothing else may.
                    if path.name.startswith("0001_") and "drop_table" in line:
                        continue
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
        if path in files and "AuditEntry" in text:
            # Who touches the model at all: only the audit service (insert, select) and its model.
            assert path.relative_to(ROOT).as_posix() in ("bot/audit/models.py", "bot/audit/service.py"), path
            assert "session.delete(" not in text and "session.merge(" not in text, path
    assert offenders == []
    # And the writer itself only ever adds.
    service = (ROOT / "bot" / "audit" / "service.py").read_text()
    assert "session.add(entry)" in service
    assert not re.search(r"\b(update|delete)\b\s*\(", service)
